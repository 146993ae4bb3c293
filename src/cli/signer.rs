//! `rootkeeper signer add | remove | list` and `rootkeeper root renew-targets`: Docker Content
//! Trust's signers (the delegations `targets/NAME` and `targets/releases`) on a repository whose
//! repository key stays in hardware.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Subcommand;
use rootkeeper::root::signers::{self, ExpiryWarning, SignerOutcome};
use rootkeeper::trustdir;
use rootkeeper::tuf::model::{self, UtcTime};
use serde_json::json;

use super::{Ctx, Output, json};

#[derive(Debug, Subcommand)]
pub enum SignerCommand {
    /// Draft targets.json with signer NAME added (docker's `targets/NAME` and
    /// `targets/releases`), over the last `server pull`; then `root sign` with the targets key.
    Add {
        /// The signer's name (docker's rule: a-z 0-9 first, then a-z 0-9 - _; not `releases`).
        #[arg(value_name = "NAME")]
        name: String,
        /// Repository name (GUN).
        #[arg(long, value_name = "GUN")]
        gun: String,
        /// The signer's public key: NAME.pub from `docker trust key generate NAME` (PEM PUBLIC
        /// KEY) or a P-256 certificate. Repeat (or list several) for several keys.
        #[arg(long = "key", value_name = "FILE", required = true, num_args = 1..)]
        keys: Vec<PathBuf>,
        /// Replace a pending draft of this GUN.
        #[arg(long)]
        force: bool,
    },
    /// Draft targets.json without signer NAME (its keys leave `targets/releases`, its role
    /// goes), over the last `server pull`; then `root sign` with the targets key.
    Remove {
        /// The signer's name.
        #[arg(value_name = "NAME")]
        name: String,
        /// Repository name (GUN).
        #[arg(long, value_name = "GUN")]
        gun: String,
        /// Replace a pending draft of this GUN.
        #[arg(long)]
        force: bool,
    },
    /// The signers of the repository as the last `server pull` verified it: names, key IDs
    /// (docker's short form too), roles, tags.
    List {
        /// Repository name (GUN).
        #[arg(long, value_name = "GUN")]
        gun: String,
    },
}

pub fn run(ctx: &Ctx, cmd: SignerCommand) -> anyhow::Result<Output> {
    let now = UtcTime::now();
    match cmd {
        SignerCommand::Add {
            name,
            gun,
            keys,
            force,
        } => {
            trustdir::check_gun(&gun)?;
            let files = keys
                .iter()
                .map(|path| Ok((path.display().to_string(), trustdir::read(path)?)))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let dir = ctx.trust_dir()?;
            let outcome = signers::add(&dir, &gun, &name, &files, now, force)?;
            Ok(drafted(&outcome))
        }
        SignerCommand::Remove { name, gun, force } => {
            trustdir::check_gun(&gun)?;
            let dir = ctx.trust_dir()?;
            let outcome = match signers::remove(&dir, &gun, &name, now, false, force) {
                Err(e @ rootkeeper::Error::SignerHoldsReleases { .. }) => {
                    // docker asks here (unless --force); rootkeeper asks too (unless --yes).
                    ctx.show(&format!("{e}\n"));
                    ctx.prompter
                        .confirm(&format!("Remove signer {name} all the same?"))?;
                    signers::remove(&dir, &gun, &name, now, true, force)?
                }
                other => other?,
            };
            Ok(drafted(&outcome))
        }
        SignerCommand::List { gun } => {
            trustdir::check_gun(&gun)?;
            let dir = ctx.trust_dir_read()?;
            list(&dir, &gun, now)
        }
    }
}

/// `root renew-targets`.
pub fn renew_targets(ctx: &Ctx, gun: &str, expires: &str, force: bool) -> anyhow::Result<Output> {
    trustdir::check_gun(gun)?;
    let now = UtcTime::now();
    let expires = model::parse_expiry(expires, now)?;
    let dir = ctx.trust_dir()?;
    let outcome = signers::renew_targets(&dir, gun, expires, now, force)?;
    Ok(drafted(&outcome))
}

fn drafted(o: &SignerOutcome) -> Output {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "{}: drafted targets v{} ({}), expires {}, over the pull of {} at {}",
        o.gun, o.targets_version, o.purpose, o.targets_expires, o.pulled.server, o.pulled.at
    );
    let c = &o.change;
    for r in &c.roles {
        let _ = writeln!(text, "  {r}");
    }
    for (what, ids) in [
        ("added to the signer's role", &c.added_to_signer),
        ("added to targets/releases", &c.added_to_releases),
        ("removed from targets/releases", &c.removed_from_releases),
    ] {
        for id in ids {
            let _ = writeln!(
                text,
                "  key {id} (docker shows {}) {what}",
                signers::docker_short(id)
            );
        }
    }
    for n in &c.notes {
        let _ = writeln!(text, "  note: {n}");
    }
    match o.snapshot_version {
        None => {
            let _ = writeln!(
                text,
                "  snapshot: the server holds the snapshot key and makes every snapshot, so signers publish their tags with their own key alone"
            );
        }
        Some(v) => {
            let _ = writeln!(
                text,
                "  snapshot: signed offline here (snapshot v{v} is drafted too; sign it after targets)"
            );
            if o.purpose.starts_with("signer") && o.purpose.ends_with("added") {
                let _ = writeln!(
                    text,
                    "  warning: this repository's snapshot key is offline, so the server cannot make snapshots: every tag a signer publishes (`docker trust sign`) needs a new snapshot signed with that key, and notary-server refuses a signer's publish without one (\"no snapshot was included in update and server does not hold current snapshot key for repository\"). The signer cannot publish alone; move the snapshot key to the server for the docker flow (docs/signers.md)"
                );
            }
        }
    }
    super::root::fingerprint_text(
        &mut text,
        "fingerprint (SHA-256 of the targets' signed bytes, what the targets key signs)",
        &o.status.fingerprint,
    );
    let signers: Vec<String> = o
        .status
        .needed
        .iter()
        .map(|n| format!("--key '{}'", n.uri))
        .collect();
    let _ = writeln!(
        text,
        "next: `rootkeeper root sign --gun {} {}`, then `rootkeeper root export --gun {} --out DIR` and, online, `rootkeeper server publish DIR --server URL --gun {}`",
        o.gun,
        signers.join(" "),
        o.gun,
        o.gun
    );
    Output::new(text, json!({"drafted": json(o)}))
}

fn list(dir: &trustdir::TrustDir, gun: &str, now: UtcTime) -> anyhow::Result<Output> {
    let l = signers::list(dir, gun, now)?;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "{}: targets v{}, as pulled from {} at {}",
        l.gun, l.targets_version, l.pulled.server, l.pulled.at
    );
    if l.signers.is_empty() {
        let _ = writeln!(text, "  no signers");
    }
    for s in &l.signers {
        let _ = writeln!(
            text,
            "  signer {}  ({}, threshold {}){}",
            s.name,
            s.role,
            s.threshold,
            if s.tags.is_empty() {
                String::new()
            } else {
                format!("  tags: {}", s.tags.join(", "))
            }
        );
        for k in &s.keys {
            key_line(&mut text, k);
        }
    }
    for k in &l.releases_only {
        let _ = writeln!(text, "  a key of targets/releases that no signer holds:");
        key_line(&mut text, k);
    }
    if !l.released_tags.is_empty() {
        let _ = writeln!(
            text,
            "  released tags (targets/releases): {}",
            l.released_tags.join(", ")
        );
    }
    let _ = writeln!(
        text,
        "  snapshot: {}",
        if l.server_snapshot {
            "made by the server (signers publish alone)"
        } else {
            "signed offline (every signer's publish needs a new snapshot signed here)"
        }
    );
    if let Some(p) = &l.pending_draft {
        let _ = writeln!(
            text,
            "  a draft is pending ({p}); this list is the server's state until it is published"
        );
    }
    if let Some(e) = &l.unpulled_export {
        let _ = writeln!(text, "  note: {e}");
    }
    let warnings = expiry_warnings(dir, &[gun.to_owned()], &mut text);
    expiry_text(&mut text, &warnings);
    let mut doc = json!({"signers": json(&l)});
    doc["expiry_warnings"] = json(&warnings);
    Ok(Output::new(text, doc))
}

fn key_line(text: &mut String, k: &signers::ListedKey) {
    let _ = writeln!(
        text,
        "    key {} (docker shows {}, {}){}  in {}",
        k.key_id,
        k.docker_short,
        k.keytype,
        k.canonical
            .as_ref()
            .map(|c| format!(", canonical {c}"))
            .unwrap_or_default(),
        k.roles.join(", ")
    );
}

/// The pulled targets and delegations of `guns` (every GUN when empty) that expire soon; a
/// pulled state that cannot be read is a warning line here, not the command's failure.
pub fn expiry_warnings(
    dir: &trustdir::TrustDir,
    guns: &[String],
    text: &mut String,
) -> Vec<ExpiryWarning> {
    signers::expiry_warnings(dir, guns, UtcTime::now()).unwrap_or_else(|e| {
        let _ = writeln!(text, "warning: expiries not checked: {e}");
        Vec::new()
    })
}

/// The lines warning of pulled targets and delegations that expire soon.
pub fn expiry_text(text: &mut String, warnings: &[ExpiryWarning]) {
    for w in warnings {
        let when = if w.days_left < 0 {
            format!("EXPIRED at {}", w.expires)
        } else {
            format!("expires at {} (in {} days)", w.expires, w.days_left)
        };
        let _ = writeln!(
            text,
            "warning: {} of {} {when}, as pulled at {}: {}",
            if w.role == "targets" {
                "targets.json".to_string()
            } else {
                format!("the delegation {}", w.role)
            },
            w.gun,
            w.pulled_at,
            w.remedy
        );
    }
}
