//! `rootkeeper server timestamp-key | snapshot-key | publish`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use rootkeeper::server::TrustServer;
use rootkeeper::trustdir;
use rootkeeper::tuf::model::{Root, Signed, UtcTime, Version};
use rootkeeper::tuf::notary;
use rootkeeper::tuf::verify::{self, RepoFiles};
use serde_json::json;

use rootkeeper::fingerprint::Fingerprint;

use super::{Ctx, GunArgs, Hinted, Output, json};

#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// The trust server: https://notary.example.com:4443, or http:// to a loopback address only.
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
            "{gun}: {role} key {id} ({}) written to {}",
            key.keytype,
            path.display()
        );
        docs.push(json!({"gun": gun, "key_id": id, "keytype": key.keytype, "file": path}));
    }
    Ok(Output::new(text, json!({"keys": docs})))
}

/// The files of one GUN's export folder, checked with every client rule, the chain of
/// earlier roots included.
struct Checked {
    gun: String,
    root: Vec<u8>,
    targets: Vec<u8>,
    snapshot: Option<Vec<u8>>,
    previous: Option<Vec<u8>>,
    version: Version,
    verified: verify::Verified,
}

fn check_folder(folder: &Path, gun: &str, now: UtcTime) -> anyhow::Result<Checked> {
    let read = |name: &str| trustdir::read(&folder.join(name));
    let root = read("root.json")?;
    let targets = read("targets.json")?;
    let snapshot_path = folder.join("snapshot.json");
    let snapshot = if snapshot_path.exists() {
        Some(trustdir::read(&snapshot_path)?)
    } else {
        None
    };
    let version = Signed::<Root>::parse("root.json", &root)?.signed.version;
    // The chain a client that trusted an older version walks: 1.root.json … (N-1).root.json.
    let mut chain: Vec<verify::CheckedRoot> = Vec::new();
    let mut v = Version::FIRST;
    while v < version {
        let name = format!("{v}.root.json");
        let bytes = read(&name).map_err(|e| {
            anyhow::Error::new(e).context(format!(
                "root v{version} needs every earlier version beside it (`rootkeeper root export` writes them)"
            ))
        })?;
        chain.push(verify::check_chain_root(
            &folder.join(&name).display().to_string(),
            &bytes,
            gun,
            chain.last(),
            now,
        )?);
        v = v.next()?;
    }
    let (_, verified) = verify::verify_repo(
        RepoFiles {
            root: &root,
            targets: Some(&targets),
            snapshot: snapshot.as_deref(),
            timestamp: None,
        },
        Some(gun),
        chain.last(),
        now,
    )?;
    Ok(Checked {
        gun: gun.to_owned(),
        previous: chain.last().map(|c| c.bytes.clone()),
        root,
        targets,
        snapshot,
        version,
        verified,
    })
}

/// What the server holds now, compared with our chain.
enum ServerState {
    /// Nothing: a first publish.
    Empty,
    /// Our previous version: a rotation.
    Previous,
    /// Exactly our root already.
    Same,
}

fn server_state(client: &TrustServer, c: &Checked) -> anyhow::Result<ServerState> {
    let served = client.get(&c.gun, "root.json")?;
    let Some(served) = served else {
        if c.version > Version::FIRST {
            anyhow::bail!(Hinted::new(
                format!(
                    "the server holds no root for {}, but this export is root v{}",
                    c.gun, c.version
                ),
                "publish the versions before it first, in order: a client that has never seen this repository should start from version 1",
            ));
        }
        return Ok(ServerState::Empty);
    };
    if served == c.root {
        return Ok(ServerState::Same);
    }
    if c.previous.as_deref() == Some(served.as_slice()) {
        return Ok(ServerState::Previous);
    }
    let what = match Signed::<Root>::parse("served root.json", &served) {
        Ok(doc) => format!("version {}", doc.signed.version),
        Err(_) => "a root.json rootkeeper cannot read".into(),
    };
    anyhow::bail!(Hinted::new(
        format!(
            "the server's current root for {} is {what} (SHA-256 {}), not {}",
            c.gun,
            Fingerprint::of(&served).hex(),
            if c.version > Version::FIRST {
                format!(
                    "our root v{}, which this export replaces",
                    c.version.get().saturating_sub(1)
                )
            } else {
                "empty".into()
            }
        ),
        "someone else published to this repository, or this export belongs to another chain; compare the server's root with the trust directory before doing anything",
    ))
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
        let checked = check_folder(&folder, gun, now)?;
        let state = server_state(&client, &checked)?;
        batches.push((checked, state));
    }
    let mut text = String::new();
    let mut docs = Vec::new();
    let to_upload: Vec<String> = batches
        .iter()
        .filter(|(_, s)| !matches!(s, ServerState::Same))
        .map(|(c, _)| format!("root v{} of {}", c.version, c.gun))
        .collect();
    if !to_upload.is_empty() {
        ctx.prompter.confirm(&format!(
            "Publish {} to {}?",
            to_upload.join(", "),
            server.server
        ))?;
    }
    for (c, state) in &batches {
        let already = matches!(state, ServerState::Same);
        if !already {
            let mut files: Vec<(&str, &[u8])> = vec![("root", &c.root), ("targets", &c.targets)];
            if let Some(s) = &c.snapshot {
                files.push(("snapshot", s));
            }
            client.publish(&c.gun, &files)?;
        }
        let confirmed = client
            .confirm(&c.gun, &c.root, &c.targets, c.snapshot.as_deref())
            .map_err(|e| {
                if already {
                    anyhow::Error::new(e).context(format!(
                        "the server already serves root v{} of {}, but not the targets/snapshot of this export",
                        c.version, c.gun
                    ))
                } else {
                    anyhow::Error::new(e)
                }
            })?;
        let _ = writeln!(
            text,
            "{}: {} root v{}; the server serves it byte for byte with timestamp v{} over snapshot v{}",
            c.gun,
            if already {
                "already published, nothing to do:"
            } else {
                "published"
            },
            c.version,
            confirmed.timestamp_version,
            confirmed.snapshot_version
        );
        super::root::fingerprint_text(
            &mut text,
            "fingerprint of the served root.json (SHA-256 of the file)",
            &confirmed.root_fingerprint,
        );
        docs.push(json!({"gun": c.gun, "already_published": already, "verified": json(&c.verified), "confirmation": json(&confirmed)}));
    }
    Ok(Output::new(text, json!({"published": docs})))
}
