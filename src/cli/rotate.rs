//! `rootkeeper root rotate | renew | rotate-key`: drafts of the next root version.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use rootkeeper::backend::Keyring;
use rootkeeper::root::init::SnapshotKey;
use rootkeeper::root::rotate::{self, KeySelector, RotateRequest};
use rootkeeper::tuf::model::{self, UtcTime};
use serde_json::json;

use super::{Ctx, GunArgs, Output, json, usage};

/// Options every new root version takes.
#[derive(Debug, Args)]
pub struct NextRootArgs {
    #[command(flatten)]
    guns: GunArgs,
    /// Also ask the root keys of this many older versions to sign (optional signatures), so
    /// that clients that trusted them take the new root at once instead of walking the chain.
    #[arg(long, value_name = "N", default_value_t = 0)]
    legacy: u64,
    /// Root expiry: a duration (10y, 90d; y = calendar years), a date, or an RFC 3339 time
    /// (default: the current root's expiry; `root renew`: 10y).
    #[arg(long)]
    expires: Option<String>,
    /// Replace a pending draft.
    #[arg(long)]
    force: bool,
    /// The URI (e.g. with pin-source) of a root key that makes a new certificate (a renewed
    /// key); others are opened by their inventory URI. Repeat for several.
    #[arg(long = "cert-key", value_name = "URI")]
    cert_keys: Vec<String>,
}

/// `root rotate`.
#[derive(Debug, Args)]
pub struct RotateArgs {
    #[command(flatten)]
    next: NextRootArgs,
    /// A root key to add (its certificate is made now, on its token).
    #[arg(long = "add-root-key", value_name = "URI")]
    add: Vec<String>,
    /// A root key to remove: its URI or key ID.
    #[arg(long = "remove-root-key", value_name = "URI|KEYID")]
    remove: Vec<String>,
    /// A key that can no longer sign (lost, destroyed, compromised): never asked to sign. It
    /// must be removed too.
    #[arg(long, value_name = "URI|KEYID")]
    lost: Vec<String>,
    /// The new root threshold (default: the current one).
    #[arg(long)]
    threshold: Option<u64>,
}

/// `root renew`.
#[derive(Debug, Args)]
pub struct RenewArgs {
    #[command(flatten)]
    next: NextRootArgs,
    /// Re-issue every root certificate, not only those that would expire before the root.
    #[arg(long)]
    new_certificates: bool,
}

/// The key `root rotate-key` replaces.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RotatedRole {
    /// The repository key: targets.json is re-signed with the new key.
    Targets,
    /// The snapshot key: to a token (--key) or to the server (--server-snapshot).
    Snapshot,
    /// The server's timestamp key (after `server timestamp-key --rotate`).
    Timestamp,
}

/// `root rotate-key`.
#[derive(Debug, Args)]
pub struct RotateKeyArgs {
    /// Which key.
    #[arg(value_enum)]
    role: RotatedRole,
    #[command(flatten)]
    next: NextRootArgs,
    /// The new key on a token (targets, snapshot).
    #[arg(long, value_name = "URI")]
    key: Option<String>,
    /// snapshot: hand the snapshot key to the server.
    #[arg(long, requires = "server_key")]
    server_snapshot: bool,
    /// The server's new key, from `server snapshot-key` or `server timestamp-key --rotate`
    /// (FILE for every GUN, or DIR with GUN/<role>.key.json).
    #[arg(long, value_name = "FILE|DIR")]
    server_key: Option<PathBuf>,
}

fn selectors(texts: &[String]) -> anyhow::Result<Vec<KeySelector>> {
    texts
        .iter()
        .map(|t| {
            t.parse::<KeySelector>()
                .map_err(|e| anyhow::Error::new(e).context(super::Usage("invalid argument".into())))
        })
        .collect()
}

fn request(
    next: &NextRootArgs,
    purpose: String,
    default_expiry: Option<&str>,
) -> anyhow::Result<RotateRequest> {
    let now = UtcTime::now();
    let mut req = RotateRequest::new(next.guns.resolve()?, now);
    req.legacy = next.legacy;
    req.expires = next
        .expires
        .as_deref()
        .or(default_expiry)
        .map(|e| model::parse_expiry(e, now))
        .transpose()?;
    req.replace_draft = next.force;
    req.purpose = purpose;
    req.certificate_keys = super::key_uris(&next.cert_keys)?;
    Ok(req)
}

fn run_request(ctx: &Ctx, req: &RotateRequest) -> anyhow::Result<Output> {
    let dir = ctx.trust_dir()?;
    if req.replace_draft
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
    let outcome = rotate::rotate(&dir, &mut keyring, req);
    ctx.note_logins(&keyring);
    let outcome = outcome?;
    let mut text = String::new();
    for w in &outcome.warnings {
        let _ = writeln!(text, "warning: {w}");
    }
    for s in &outcome.drafts {
        let _ = writeln!(
            text,
            "drafted {} for {} (expires {})",
            s.purpose, s.gun, s.expires
        );
        super::root::draft_text(&mut text, s);
    }
    let _ = writeln!(
        text,
        "next: write the fingerprint in the ceremony log; collect the signatures with `rootkeeper root sign --gun GUN --key URI` (the previous root's keys too); `rootkeeper root status` shows who must still sign"
    );
    Ok(Output::new(
        text,
        json!({"drafts": json(&outcome.drafts), "warnings": outcome.warnings}),
    ))
}

/// `root rotate`.
pub fn rotate_cmd(ctx: &Ctx, args: RotateArgs) -> anyhow::Result<Output> {
    if args.add.is_empty() && args.remove.is_empty() && args.threshold.is_none() {
        return Err(usage(
            "say what changes: --add-root-key, --remove-root-key and/or --threshold (`root renew` for a later expiry)",
        ));
    }
    let mut what = Vec::new();
    if !args.add.is_empty() {
        what.push(format!("{} root key(s) added", args.add.len()));
    }
    if !args.remove.is_empty() {
        what.push(format!("{} removed", args.remove.len()));
    }
    if let Some(k) = args.threshold {
        what.push(format!("threshold {k}"));
    }
    let mut req = request(&args.next, what.join(", "), None)?;
    req.add_root_keys = super::key_uris(&args.add)?;
    req.remove_root_keys = selectors(&args.remove)?;
    req.lost = selectors(&args.lost)?;
    req.threshold = args.threshold;
    run_request(ctx, &req)
}

/// `root renew`.
pub fn renew_cmd(ctx: &Ctx, args: RenewArgs) -> anyhow::Result<Output> {
    let expires = args.next.expires.clone().unwrap_or_else(|| "10y".into());
    let mut req = request(&args.next, format!("renewed ({expires})"), Some("10y"))?;
    req.renew_certificates = args.new_certificates;
    run_request(ctx, &req)
}

/// `root rotate-key`.
pub fn rotate_key_cmd(ctx: &Ctx, args: RotateKeyArgs) -> anyhow::Result<Output> {
    let mut req = request(&args.next, String::new(), None)?;
    match (args.role, &args.key, args.server_snapshot, &args.server_key) {
        (RotatedRole::Targets, Some(key), false, None) => {
            req.targets_key = Some(super::key_uri(key)?);
            req.purpose = "a new repository (targets) key; targets re-signed with it".into();
        }
        (RotatedRole::Snapshot, Some(key), false, None) => {
            req.snapshot_key = Some(SnapshotKey::Token(Box::new(super::key_uri(key)?)));
            req.purpose = "a new snapshot key on a token".into();
        }
        (RotatedRole::Snapshot, None, true, Some(path)) => {
            req.snapshot_key = Some(SnapshotKey::Server(super::root::server_keys(
                path, &req.guns, "snapshot",
            )?));
            req.purpose = "the snapshot key handed to the server".into();
        }
        (RotatedRole::Timestamp, None, false, Some(path)) => {
            req.timestamp_keys = Some(super::root::server_keys(path, &req.guns, "timestamp")?);
            req.purpose = "the server's new timestamp key".into();
        }
        (RotatedRole::Targets, ..) => {
            return Err(usage(
                "rotate-key targets takes --key URI (the new repository key)",
            ));
        }
        (RotatedRole::Snapshot, ..) => {
            return Err(usage(
                "rotate-key snapshot takes --key URI (a key on a token) or --server-snapshot --server-key FILE (from `server snapshot-key`)",
            ));
        }
        (RotatedRole::Timestamp, ..) => {
            return Err(usage(
                "rotate-key timestamp takes --server-key FILE (from `server timestamp-key --rotate`)",
            ));
        }
    }
    run_request(ctx, &req)
}
