//! `rootkeeper root init | sign | status | verify | export`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::{Subcommand, ValueEnum};
use rootkeeper::backend::Keyring;
use rootkeeper::root::{self, DraftStatus, InitRequest, SnapshotKey};
use rootkeeper::trustdir;
use rootkeeper::tuf::model::{self, Envelope, PublicKey, UtcTime};
use rootkeeper::tuf::notary;
use rootkeeper::tuf::verify::{self, RepoFiles, Verified};
use serde_json::json;

use super::{Ctx, GunArgs, Hinted, Output, json, usage};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Profile {
    /// Notary v1 (notary-server, docker trust).
    Notary,
    /// Standard TUF 1.0.
    Tuf,
}

// clap builds these once per run; boxing the large variants would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum RootCommand {
    /// Make the draft root.json (and targets.json) for one or more GUNs. Every root token is
    /// needed once, to sign its certificate for each GUN.
    Init {
        #[command(flatten)]
        guns: GunArgs,
        /// A root key URI; repeat for k-of-n.
        #[arg(long = "root-key", value_name = "URI", required = true)]
        root_keys: Vec<String>,
        /// Root signatures required (needed when there is more than one root key).
        #[arg(long)]
        threshold: Option<u64>,
        /// The targets key URI.
        #[arg(long, value_name = "URI")]
        targets_key: String,
        /// The snapshot key URI (offline snapshot).
        #[arg(
            long,
            value_name = "URI",
            conflicts_with = "server_snapshot",
            required_unless_present = "server_snapshot"
        )]
        snapshot_key: Option<String>,
        /// Let the server hold the snapshot key and sign snapshots.
        #[arg(long, requires = "server_snapshot_key")]
        server_snapshot: bool,
        /// With --server-snapshot: the server's snapshot key, from `server snapshot-key` (FILE, or DIR with one GUN/snapshot.key.json each).
        #[arg(long, value_name = "FILE|DIR")]
        server_snapshot_key: Option<PathBuf>,
        /// The server's timestamp key, from `server timestamp-key` (FILE for every GUN, or DIR with GUN/timestamp.key.json).
        #[arg(long, value_name = "FILE|DIR")]
        timestamp_key: PathBuf,
        /// Metadata profile.
        #[arg(long, value_enum, default_value = "notary")]
        profile: Profile,
        /// Root expiry: a duration (10y, 90d) or an RFC 3339 time.
        #[arg(long, default_value = "10y")]
        expires: String,
        /// Replace an existing draft.
        #[arg(long)]
        force: bool,
    },
    /// Add signatures with the given keys to the drafts (root, then targets, then snapshot).
    Sign {
        #[command(flatten)]
        guns: GunArgs,
        /// A key URI; repeat for several.
        #[arg(long = "key", value_name = "URI", required = true)]
        keys: Vec<String>,
    },
    /// Show each draft: version, expiry, signatures present and missing, which tokens must sign.
    Status {
        #[command(flatten)]
        guns: GunArgs,
    },
    /// Apply every client rule; exit 1 naming the first broken rule.
    Verify {
        #[command(flatten)]
        guns: GunArgs,
        /// Files to verify instead (root.json, and targets.json / snapshot.json beside it).
        #[arg(value_name = "FILE")]
        files: Vec<PathBuf>,
        /// The previous, trusted root (checks a rotation).
        #[arg(long, value_name = "ROOT.json")]
        trusted: Option<PathBuf>,
    },
    /// Verify, then write the files the trust server takes into DIR (DIR/<gun>/ for several).
    Export {
        #[command(flatten)]
        guns: GunArgs,
        /// The output folder.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

pub fn run(ctx: &Ctx, cmd: RootCommand) -> anyhow::Result<Output> {
    match cmd {
        RootCommand::Init {
            guns,
            root_keys,
            threshold,
            targets_key,
            snapshot_key,
            server_snapshot: _,
            server_snapshot_key,
            timestamp_key,
            profile,
            expires,
            force,
        } => {
            if profile == Profile::Tuf {
                anyhow::bail!(Hinted::new(
                    "the tuf profile is not available in this version",
                    "use --profile notary (the default)"
                ));
            }
            let guns = guns.resolve()?;
            let threshold = match (threshold, root_keys.len()) {
                (Some(k), _) => k,
                (None, 1) => 1,
                (None, n) => {
                    return Err(usage(format!(
                        "{n} root keys need an explicit --threshold (e.g. --threshold 2 for 2-of-{n})"
                    )));
                }
            };
            let now = UtcTime::now();
            let snapshot_key = match (snapshot_key, server_snapshot_key) {
                (Some(uri), _) => SnapshotKey::Token(Box::new(super::key_uri(&uri)?)),
                (None, Some(path)) => SnapshotKey::Server(server_keys(&path, &guns, "snapshot")?),
                (None, None) => {
                    return Err(usage(
                        "give --snapshot-key URI or --server-snapshot --server-snapshot-key FILE",
                    ));
                }
            };
            let req = InitRequest {
                timestamp_keys: server_keys(&timestamp_key, &guns, "timestamp")?,
                guns,
                root_keys: super::key_uris(&root_keys)?,
                threshold,
                targets_key: super::key_uri(&targets_key)?,
                snapshot_key,
                expires: model::parse_expiry(&expires, now)?,
                now,
                replace_draft: force,
            };
            let dir = ctx.trust_dir()?;
            if force
                && req
                    .guns
                    .iter()
                    .any(|g| dir.repo(g).is_ok_and(|r| r.has_pending()))
            {
                ctx.prompter
                    .confirm("Discard the existing draft(s) and start again?")?;
            }
            let pins = ctx.pins();
            let mut keyring = Keyring::new(&pins);
            let statuses = root::init(&dir, &mut keyring, &req);
            ctx.note_logins(&keyring);
            let statuses = statuses?;
            let mut text = String::new();
            for s in &statuses {
                let _ = writeln!(
                    text,
                    "drafted root v{} for {} ({}-of-{} root keys, expires {})",
                    s.version,
                    s.gun,
                    s.root.threshold,
                    s.root.signed.len() + s.root.missing.len(),
                    s.expires
                );
            }
            let _ = writeln!(
                text,
                "next: collect signatures with `rootkeeper root sign --gun GUN --key URI`; `rootkeeper root status` shows who must sign"
            );
            Ok(Output::new(text, json!({"drafts": json(&statuses)})))
        }
        RootCommand::Sign { guns, keys } => {
            let guns = guns.resolve()?;
            let dir = ctx.trust_dir()?;
            let pins = ctx.pins();
            let mut keyring = Keyring::new(&pins);
            let outcomes = root::sign(&dir, &mut keyring, &guns, &super::key_uris(&keys)?);
            ctx.note_logins(&keyring);
            let outcomes = outcomes?;
            let mut text = String::new();
            for o in &outcomes {
                let _ = writeln!(
                    text,
                    "{}: signed {}",
                    o.gun,
                    if o.signed.is_empty() {
                        "nothing new".into()
                    } else {
                        o.signed.join(", ")
                    }
                );
                for n in &o.notes {
                    let _ = writeln!(text, "  note: {n}");
                }
                status_text(&mut text, &o.status);
            }
            Ok(Output::new(text, json!({"signed": json(&outcomes)})))
        }
        RootCommand::Status { guns } => {
            let guns = guns.resolve()?;
            let dir = ctx.trust_dir()?;
            let mut statuses = Vec::new();
            let mut text = String::new();
            for gun in &guns {
                let s = root::draft_status(&dir.repo(gun)?)?;
                let _ = writeln!(
                    text,
                    "{}: draft root v{}, expires {}",
                    s.gun, s.version, s.expires
                );
                status_text(&mut text, &s);
                statuses.push(s);
            }
            Ok(Output::new(text, json!({"drafts": json(&statuses)})))
        }
        RootCommand::Verify {
            guns,
            files,
            trusted,
        } => verify_cmd(ctx, &guns, &files, trusted.as_deref()),
        RootCommand::Export { guns, out } => {
            let guns = guns.resolve()?;
            let dir = ctx.trust_dir()?;
            let outcomes = root::export(&dir, &guns, &out, UtcTime::now())?;
            let mut text = String::new();
            for o in &outcomes {
                let _ = writeln!(
                    text,
                    "{}: root v{} verified ({} rules) and exported to {}: {}",
                    o.gun,
                    o.verified.root_version,
                    o.verified.rules.len(),
                    o.dir.display(),
                    o.files.join(", ")
                );
            }
            let _ = writeln!(
                text,
                "next: on the online machine, `rootkeeper server publish {} --server URL --gun GUN`",
                out.display()
            );
            Ok(Output::new(text, json!({"exported": json(&outcomes)})))
        }
    }
}

fn status_text(text: &mut String, s: &DraftStatus) {
    let _ = writeln!(
        text,
        "  root:     {} of {} signatures",
        s.root.signed.len(),
        s.root.threshold
    );
    for m in &s.root.signed {
        let _ = writeln!(text, "    signed   {}  {}", verify::short(&m.keyid), m.uri);
    }
    let label = if s.root.complete() {
        "unsigned (not needed)"
    } else {
        "missing "
    };
    for m in &s.root.missing {
        let _ = writeln!(text, "    {label} {}  {}", verify::short(&m.keyid), m.uri);
    }
    let _ = writeln!(
        text,
        "  targets:  {}",
        if s.targets.complete() {
            "signed".to_string()
        } else {
            format!(
                "needs {}",
                s.targets
                    .missing
                    .iter()
                    .map(|m| m.uri.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    let _ = writeln!(text, "  snapshot: {}", s.snapshot);
    let _ = writeln!(
        text,
        "  ready to export: {}{}",
        if s.ready { "yes" } else { "no" },
        s.exported
            .as_ref()
            .map(|t| format!(" (last exported {t})"))
            .unwrap_or_default()
    );
}

/// Server keys for every GUN: one FILE for all, or DIR/<gun>/<role>.key.json each.
fn server_keys(
    path: &Path,
    guns: &[String],
    role: &str,
) -> anyhow::Result<BTreeMap<String, PublicKey>> {
    let mut keys = BTreeMap::new();
    for gun in guns {
        let file = if path.is_dir() {
            trustdir::server_key_file(path, gun, role)
        } else {
            path.to_owned()
        };
        let bytes = trustdir::read(&file).map_err(|e| {
            anyhow::Error::new(e).context(format!(
                "the {role} key of {gun}; fetch it online with `rootkeeper server {role}-key`"
            ))
        })?;
        keys.insert(
            gun.clone(),
            notary::parse_server_key(&file.display().to_string(), &bytes)?,
        );
    }
    Ok(keys)
}

fn verified_text(text: &mut String, what: &str, v: &Verified) {
    let _ = writeln!(
        text,
        "{what}: OK  GUN {}  root v{} ({} of {} signatures, expires {}){}{}",
        v.gun,
        v.root_version,
        v.root_signatures.0,
        v.root_signatures.1,
        v.root_expires,
        v.targets_version
            .map(|t| format!("  targets v{t}"))
            .unwrap_or_default(),
        v.snapshot_version
            .map(|t| format!("  snapshot v{t}"))
            .unwrap_or_default(),
    );
    let _ = writeln!(text, "  rules passed: {}", v.rules.join(", "));
}

fn verify_cmd(
    ctx: &Ctx,
    guns: &GunArgs,
    files: &[PathBuf],
    trusted: Option<&Path>,
) -> anyhow::Result<Output> {
    let now = UtcTime::now();
    let mut text = String::new();
    let mut results = Vec::new();
    if !files.is_empty() {
        let mut by_type: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for file in files {
            let bytes = trustdir::read(file)?;
            let env = Envelope::parse(&file.display().to_string(), &bytes)?;
            by_type.insert(env.type_name().to_owned(), bytes);
        }
        let root = by_type
            .get("Root")
            .ok_or_else(|| usage("give the root.json to verify the other files against"))?;
        let previous = trusted.map(trustdir::read).transpose()?;
        let gun = guns.gun.first().map(String::as_str);
        let v = verify::verify_repo(
            RepoFiles {
                root,
                targets: by_type.get("Targets").map(Vec::as_slice),
                snapshot: by_type.get("Snapshot").map(Vec::as_slice),
            },
            gun,
            previous.as_deref(),
            now,
        )?;
        verified_text(&mut text, "files", &v);
        results.push(v);
    } else {
        let guns = guns.resolve()?;
        let dir = ctx.trust_dir()?;
        for gun in &guns {
            let repo = dir.repo(gun)?;
            let v = root::verify_draft(&repo, now)?;
            verified_text(&mut text, gun, &v);
            results.push(v);
        }
    }
    Ok(Output::new(text, json!({"verified": json(&results)})))
}
