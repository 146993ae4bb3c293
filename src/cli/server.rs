//! `rootkeeper server timestamp-key | snapshot-key | publish`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use rootkeeper::root::publish;
use rootkeeper::server::TrustServer;
use rootkeeper::trustdir;
use rootkeeper::tuf::model::UtcTime;
use rootkeeper::tuf::notary;
use serde_json::json;

use super::{Ctx, GunArgs, Output, json};

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
        /// Ask the server for a NEW timestamp key (for `root rotate-key timestamp`); the old
        /// one stays in use until a root naming the new one is published.
        #[arg(long)]
        rotate: bool,
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
        /// Ask the server for a NEW snapshot key.
        #[arg(long)]
        rotate: bool,
    },
    /// Download the repository's current metadata, verify it against the root chain kept in
    /// the trust directory, and keep it there for the offline machine.
    Pull {
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        guns: GunArgs,
        /// A repository made elsewhere (docker, notary): start this trust directory's root
        /// chain from ROOT.json, the root its clients already trust (e.g.
        /// ~/.docker/trust/tuf/GUN/metadata/root.json). One GUN; compare the fingerprint shown.
        #[arg(long, value_name = "ROOT.json")]
        adopt: Option<PathBuf>,
    },
    /// Upload the files of an export the server does not already serve (root.json,
    /// targets.json, snapshot.json) in one POST per GUN, then read back what the server serves
    /// to confirm the repository works.
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
        ServerCommand::TimestampKey {
            server,
            guns,
            out,
            rotate,
        } => fetch_keys(&server, &guns, &out, "timestamp", rotate),
        ServerCommand::SnapshotKey {
            server,
            guns,
            out,
            rotate,
        } => fetch_keys(&server, &guns, &out, "snapshot", rotate),
        ServerCommand::Publish { dir, server, guns } => publish(ctx, &dir, &server, &guns),
        ServerCommand::Pull {
            server,
            guns,
            adopt,
        } => pull(ctx, &server, &guns, adopt.as_deref()),
    }
}

fn fetch_keys(
    server: &ServerArgs,
    guns: &GunArgs,
    out: &Path,
    role: &str,
    rotate: bool,
) -> anyhow::Result<Output> {
    let guns = guns.resolve()?;
    let client = server.connect()?;
    let mut text = String::new();
    let mut docs = Vec::new();
    for gun in &guns {
        let bytes = if rotate {
            client.rotate_role_key(gun, role)?
        } else {
            client.role_key(gun, role)?
        };
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
        let export = publish::check_export(&folder, gun, now)?;
        let plan = publish::plan(&client, &export)?;
        batches.push((export, plan));
    }
    let to_upload: Vec<String> = batches
        .iter()
        .filter(|(_, p)| !p.upload.is_empty())
        .map(|(e, p)| {
            format!(
                "{} of {} (root v{})",
                p.upload.join(" + "),
                e.gun,
                e.version
            )
        })
        .collect();
    if !to_upload.is_empty() {
        ctx.prompter.confirm(&format!(
            "Publish {} to {}?",
            to_upload.join(", "),
            server.server
        ))?;
    }
    let mut text = String::new();
    let mut docs = Vec::new();
    for (export, plan) in &batches {
        let already = plan.upload.is_empty();
        let confirmed = publish::publish(&client, export, plan).map_err(|e| {
            if already {
                anyhow::Error::new(e).context(format!(
                    "the server already serves these files of {}, but",
                    export.gun
                ))
            } else {
                anyhow::Error::new(e)
            }
        })?;
        let _ = writeln!(
            text,
            "{}: {}; the server serves root v{} byte for byte with timestamp v{} over snapshot v{}",
            export.gun,
            if already {
                "already published, nothing to do".to_string()
            } else {
                format!("published {}", plan.upload.join(", "))
            },
            export.version,
            confirmed.timestamp_version,
            confirmed.snapshot_version
        );
        super::root::fingerprint_text(
            &mut text,
            "fingerprint of the served root.json (SHA-256 of the file)",
            &confirmed.root_fingerprint,
        );
        docs.push(json!({"gun": export.gun, "already_published": already, "uploaded": plan.upload, "server_held": plan.server_holds, "verified": json(&export.verified), "confirmation": json(&confirmed)}));
    }
    Ok(Output::new(text, json!({"published": docs})))
}

fn pull(
    ctx: &Ctx,
    server: &ServerArgs,
    guns: &GunArgs,
    adopt: Option<&Path>,
) -> anyhow::Result<Output> {
    let guns = guns.resolve()?;
    let adopted = match adopt {
        Some(_) if guns.len() != 1 => {
            return Err(super::usage(
                "--adopt takes the root of one repository: give one --gun",
            ));
        }
        Some(path) => Some((
            path.display().to_string(),
            rootkeeper::trustdir::read(path)?,
        )),
        None => None,
    };
    let client = server.connect()?;
    let dir = ctx.trust_dir()?;
    let now = UtcTime::now();
    let mut text = String::new();
    let mut docs = Vec::new();
    for gun in &guns {
        let adopt = adopted
            .as_ref()
            .map(|(file, bytes)| rootkeeper::root::pull::Adopt { file, bytes });
        let outcome = rootkeeper::root::pull::pull(&dir, &client, &server.server, gun, now, adopt)?;
        if let Some((file, bytes)) = &adopted {
            let _ = writeln!(
                text,
                "{gun}: adopted {file} as root v{} (with the server's versions before it: {:?}); compare its fingerprint with what the repository's users trust:",
                outcome.adopted_root_versions.last().copied().unwrap_or(1),
                outcome.adopted_root_versions
            );
            super::root::fingerprint_text(
                &mut text,
                "fingerprint of the adopted root.json (SHA-256 of the file)",
                &rootkeeper::fingerprint::Fingerprint::of(bytes),
            );
        }
        let r = &outcome.record;
        let _ = writeln!(
            text,
            "{gun}: pulled and verified root v{}, targets v{}, snapshot v{}, timestamp v{}{}",
            r.root,
            r.targets,
            r.snapshot,
            r.timestamp,
            if r.delegations.is_empty() {
                String::new()
            } else {
                format!(
                    ", delegations {}",
                    r.delegations
                        .iter()
                        .map(|(n, v)| format!("{n} v{v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        );
        if !outcome.new_root_versions.is_empty() {
            let _ = writeln!(
                text,
                "  the server's chain brought root versions {:?}, each checked against the one before",
                outcome.new_root_versions
            );
        }
        for n in &outcome.notes {
            let _ = writeln!(text, "  note: {n}");
        }
        docs.push(json(&outcome));
    }
    Ok(Output::new(text, json!({"pulled": docs})))
}
