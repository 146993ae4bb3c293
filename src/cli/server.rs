//! `rootkeeper server timestamp-key | snapshot-key | publish`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use rootkeeper::server::TrustServer;
use rootkeeper::trustdir;
use rootkeeper::tuf::model::{Envelope, Root, UtcTime};
use rootkeeper::tuf::notary;
use rootkeeper::tuf::verify::{self, RepoFiles};
use serde_json::json;

use super::{Ctx, GunArgs, Output, json};

#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// The trust server, e.g. https://notary.example.com:4443.
    #[arg(long, value_name = "URL")]
    server: String,
    /// PEM file of the CA that signed the server's TLS certificate.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
}

impl ServerArgs {
    fn connect(&self) -> anyhow::Result<TrustServer> {
        Ok(TrustServer::new(&self.server, self.ca.as_deref())?)
    }
}

#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// Fetch each GUN's timestamp public key (the server makes it on first request).
    TimestampKey {
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        guns: GunArgs,
        /// Output FILE (one GUN) or DIR (writes DIR/<gun>/timestamp.key.json).
        #[arg(long, value_name = "FILE|DIR")]
        out: PathBuf,
    },
    /// Fetch each GUN's server-held snapshot key, for `root init --server-snapshot`.
    SnapshotKey {
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        guns: GunArgs,
        /// Output FILE (one GUN) or DIR (writes DIR/<gun>/snapshot.key.json).
        #[arg(long, value_name = "FILE|DIR")]
        out: PathBuf,
    },
    /// Upload exported files (root.json, targets.json, snapshot.json) in one POST per GUN, then
    /// read back what the server serves to confirm the repository works.
    Publish {
        /// The export folder (DIR/<gun>/ for several GUNs).
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        guns: GunArgs,
    },
}

pub fn run(ctx: &Ctx, cmd: ServerCommand) -> anyhow::Result<Output> {
    match cmd {
        ServerCommand::TimestampKey { server, guns, out } => {
            fetch_keys(&server, &guns, &out, "timestamp")
        }
        ServerCommand::SnapshotKey { server, guns, out } => {
            fetch_keys(&server, &guns, &out, "snapshot")
        }
        ServerCommand::Publish { dir, server, guns } => publish(ctx, &dir, &server, &guns),
    }
}

fn fetch_keys(
    server: &ServerArgs,
    guns: &GunArgs,
    out: &Path,
    role: &str,
) -> anyhow::Result<Output> {
    let guns = guns.resolve()?;
    let client = server.connect()?;
    let mut text = String::new();
    let mut docs = Vec::new();
    for gun in &guns {
        let bytes = client.role_key(gun, role)?;
        let key = notary::parse_server_key(role, &bytes)?;
        let path = if guns.len() == 1 && !out.is_dir() {
            out.to_owned()
        } else {
            trustdir::server_key_file(out, gun, role)
        };
        trustdir::write_atomic(&path, &bytes)?;
        let id = notary::key_id(&key);
        let _ = writeln!(
            text,
            "{gun}: {role} key {} ({}) written to {}",
            &id[..16],
            key.keytype,
            path.display()
        );
        docs.push(json!({"gun": gun, "key_id": id, "keytype": key.keytype, "file": path}));
    }
    Ok(Output::new(text, json!({"keys": docs})))
}

fn publish(ctx: &Ctx, dir: &Path, server: &ServerArgs, guns: &GunArgs) -> anyhow::Result<Output> {
    let guns = guns.resolve()?;
    let client = server.connect()?;
    let now = UtcTime::now();
    let mut batches = Vec::new();
    for gun in &guns {
        let folder = if guns.len() == 1 {
            dir.to_owned()
        } else {
            dir.join(gun)
        };
        let root = trustdir::read(&folder.join("root.json"))?;
        let targets = trustdir::read(&folder.join("targets.json"))?;
        let snapshot_path = folder.join("snapshot.json");
        let snapshot = if snapshot_path.exists() {
            Some(trustdir::read(&snapshot_path)?)
        } else {
            None
        };
        let v = verify::verify_repo(
            RepoFiles {
                root: &root,
                targets: Some(&targets),
                snapshot: snapshot.as_deref(),
            },
            Some(gun),
            None,
            now,
        )?;
        batches.push((gun, root, targets, snapshot, v));
    }
    let summary: Vec<String> = batches
        .iter()
        .map(|(g, _, _, _, v)| format!("root v{} of {g}", v.root_version))
        .collect();
    ctx.prompter.confirm(&format!(
        "Publish {} to {}?",
        summary.join(", "),
        server.server
    ))?;
    let mut text = String::new();
    let mut docs = Vec::new();
    for (gun, root, targets, snapshot, v) in &batches {
        let mut files: Vec<(&str, &[u8])> = vec![("root", root), ("targets", targets)];
        if let Some(s) = snapshot {
            files.push(("snapshot", s));
        }
        client.publish(gun, &files)?;
        let confirmed = client.confirm(gun, root, targets, snapshot.as_deref())?;
        let version: Root = Envelope::parse("root.json", root)?.typed("root.json")?;
        let _ = writeln!(
            text,
            "{gun}: published root v{}; the server serves it{} with timestamp v{} over snapshot v{}",
            version.version,
            if confirmed.root_matches {
                " byte for byte"
            } else {
                " (re-encoded)"
            },
            confirmed.timestamp_version,
            confirmed.snapshot_version
        );
        docs.push(json!({"gun": gun, "verified": json(v), "confirmation": json(&confirmed)}));
    }
    Ok(Output::new(text, json!({"published": docs})))
}
