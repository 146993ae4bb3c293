//! `rootkeeper root init | sign | unsign | status | verify | export`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::{Subcommand, ValueEnum};
use rootkeeper::backend::Keyring;
use rootkeeper::fingerprint::Fingerprint;
use rootkeeper::root::sign::SignPlan;
use rootkeeper::root::{self, DraftStatus, InitRequest, RoleStatus, SnapshotKey};
use rootkeeper::trustdir;
use rootkeeper::tuf::model::{self, Document, PublicKey, UtcTime};
use rootkeeper::tuf::notary;
use rootkeeper::tuf::verify::{self, RepoFiles, Verified};
use serde_json::json;

use super::{Ctx, GunArgs, Hinted, Output, json, usage};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Profile {
    /// Notary v1 (notary-server, docker trust).
    Notary,
    /// Standard TUF 1.0 (not available yet: hidden until it works).
    #[value(hide = true)]
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
        #[arg(long, value_enum, default_value = "notary", hide = true)]
        profile: Profile,
        /// Root expiry: a duration (10y, 90d; y = calendar years), a date, or an RFC 3339 time.
        #[arg(long, default_value = "10y")]
        expires: String,
        /// Replace an existing draft.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        insist: super::insist::InsistArgs,
    },
    /// Add signatures with the given keys to the drafts (root, then targets, then snapshot).
    /// What will be signed, with its fingerprint, is shown before any PIN is asked for.
    Sign {
        #[command(flatten)]
        guns: GunArgs,
        /// A key URI; repeat for several.
        #[arg(long = "key", value_name = "URI", required = true)]
        keys: Vec<String>,
        /// Show what would be signed (and its fingerprint) without logging in or signing.
        #[arg(long)]
        dry_run: bool,
    },
    Unsign(super::unsign::UnsignArgs),
    /// Show each draft: version, expiry, fingerprint, signatures present and missing. Without
    /// --gun, every draft in the trust directory.
    Status {
        /// Repository name (GUN); repeat for several. Default: every draft.
        #[arg(long = "gun", value_name = "GUN")]
        gun: Vec<String>,
        /// File listing GUNs, one per line.
        #[arg(long, value_name = "FILE")]
        gun_file: Option<PathBuf>,
    },
    /// Apply every client rule; exit 1 naming the first broken rule.
    Verify {
        #[command(flatten)]
        guns: GunArgs,
        /// Files to verify instead: root.json, and targets.json / snapshot.json /
        /// timestamp.json; every file given is checked.
        #[arg(value_name = "FILE")]
        files: Vec<PathBuf>,
        /// The previous, trusted root (checks a rotation).
        #[arg(long, value_name = "ROOT.json")]
        trusted: Option<PathBuf>,
    },
    /// Draft targets.json again, unchanged but for a new version and expiry, over the last
    /// `server pull`; then `root sign` with the targets key (hardware).
    RenewTargets {
        /// Repository name (GUN).
        #[arg(long, value_name = "GUN")]
        gun: String,
        /// Targets expiry: a duration (3y, 90d; y = calendar years), a date, or an RFC 3339 time.
        #[arg(long, default_value = "3y")]
        expires: String,
        /// Replace a pending draft of this GUN.
        #[arg(long)]
        force: bool,
    },
    /// Verify, then write the files the trust server takes into DIR (DIR/<gun>/ for several).
    Export {
        #[command(flatten)]
        guns: GunArgs,
        /// The output folder.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Draft the next root version with root keys added, removed or replaced, or another
    /// threshold (after `server pull`). The previous root's keys sign it too.
    Rotate(super::rotate::RotateArgs),
    /// Draft the next root version with a later expiry; certificates that would expire before
    /// it are re-issued (each such key then signs under both certificates).
    Renew(super::rotate::RenewArgs),
    /// Draft the next root version with a new repository (targets), snapshot or timestamp key.
    RotateKey(super::rotate::RotateKeyArgs),
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
            insist,
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
                insist: insist.insist(),
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
            let mut warnings: Vec<String> = Vec::new();
            for w in statuses.iter().flat_map(|s| &s.warnings) {
                if !warnings.contains(w) {
                    warnings.push(w.clone());
                }
            }
            for s in &statuses {
                let _ = writeln!(
                    text,
                    "drafted root v{} for {} ({}-of-{} root keys, expires {})",
                    s.version,
                    s.gun,
                    s.root.threshold,
                    s.root.signers.len(),
                    s.expires
                );
                fingerprint_text(&mut text, &draft_fingerprint_label(s), &s.fingerprint);
            }
            let _ = writeln!(
                text,
                "next: write the fingerprint in the ceremony log; collect signatures with `rootkeeper root sign --gun GUN --key URI`; `rootkeeper root status` shows who must sign"
            );
            Ok(Output::new(text, json!({"drafts": json(&statuses)})).warning(warnings))
        }
        RootCommand::Sign {
            guns,
            keys,
            dry_run,
        } => {
            let guns = guns.resolve()?;
            let dir = ctx.trust_dir_existing()?;
            let pins = ctx.pins();
            let mut keyring = Keyring::new(&pins);
            let plan =
                root::sign::plan(&dir, &mut keyring, &pins, &guns, &super::key_uris(&keys)?)?;
            let plan_text = plan_text(&plan);
            if dry_run {
                return Ok(Output::new(plan_text, json!({"plan": json(&plan)})));
            }
            if !plan.is_empty() {
                ctx.show(&plan_text);
            }
            let outcomes = root::sign::execute(&dir, &mut keyring, plan);
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
        RootCommand::Status { gun, gun_file } => {
            let guns = if gun.is_empty() && gun_file.is_none() {
                Vec::new()
            } else {
                super::guns(&gun, gun_file.as_deref())?
            };
            let dir = ctx.trust_dir_read()?;
            let mut warned = String::new();
            let warnings = super::signer::expiry_warnings(&dir, &guns, &mut warned);
            super::signer::expiry_text(&mut warned, &warnings);
            let statuses = match root::status(&dir, &guns) {
                Ok(statuses) => statuses,
                // No draft: the expiry warnings are still worth showing, before the error.
                Err(e) if !warned.is_empty() => {
                    let text = warned;
                    let doc = json!({"expiry_warnings": json(&warnings)});
                    return Err(super::Partial::error(
                        Output::new(text, doc),
                        anyhow::Error::new(e),
                    ));
                }
                Err(e) => return Err(e.into()),
            };
            let mut text = String::new();
            if statuses.is_empty() {
                let _ = writeln!(
                    text,
                    "no drafts in the trust directory {}",
                    dir.path().display()
                );
            }
            for s in &statuses {
                let _ = writeln!(text, "{}, made {}", draft_title(s), s.created);
                fingerprint_text(&mut text, &draft_fingerprint_label(s), &s.fingerprint);
                status_text(&mut text, s);
            }
            text.push_str(&warned);
            Ok(Output::new(
                text,
                json!({"drafts": json(&statuses), "expiry_warnings": json(&warnings)}),
            ))
        }
        RootCommand::Unsign(args) => super::unsign::run(ctx, args),
        RootCommand::Verify {
            guns,
            files,
            trusted,
        } => verify_cmd(ctx, &guns, &files, trusted.as_deref()),
        RootCommand::Rotate(args) => super::rotate::rotate_cmd(ctx, args),
        RootCommand::Renew(args) => super::rotate::renew_cmd(ctx, args),
        RootCommand::RotateKey(args) => super::rotate::rotate_key_cmd(ctx, args),
        RootCommand::RenewTargets {
            gun,
            expires,
            force,
        } => super::signer::renew_targets(ctx, &gun, &expires, force),
        RootCommand::Export { guns, out } => {
            let guns = guns.resolve()?;
            let dir = ctx.trust_dir_existing()?;
            let notifier = ctx.prompter.notifier.clone();
            let outcomes = root::export(&dir, &guns, &out, UtcTime::now(), notifier.as_ref())?;
            let mut text = String::new();
            for o in &outcomes {
                let _ = writeln!(
                    text,
                    "{}: root v{} verified ({} rules) and {} to {}: {}",
                    o.gun,
                    o.verified.root_version,
                    o.verified.rules.len(),
                    if o.again {
                        "the last export written again"
                    } else {
                        "exported"
                    },
                    o.dir.display(),
                    o.files.join(", ")
                );
            }
            let _ = writeln!(
                text,
                "next: on the online machine, `rootkeeper server publish {} --server URL --gun GUN`",
                out.display()
            );
            let mut warnings: Vec<String> = Vec::new();
            for o in &outcomes {
                warnings.extend(o.warnings.iter().map(|w| format!("{}: {w}", o.gun)));
            }
            Ok(Output::new(text, json!({"exported": json(&outcomes)})).warning(warnings))
        }
    }
}

/// What a draft is: `GUN: draft root v2, expires …` for a new root, `GUN: draft targets v3
/// (signer ci added) over root v1` for a change of targets alone.
fn draft_title(s: &DraftStatus) -> String {
    if s.root.pending {
        format!(
            "{}: draft root v{}, expires {}",
            s.gun, s.version, s.expires
        )
    } else {
        format!(
            "{}: draft targets v{} ({}) over root v{}",
            s.gun, s.targets_version, s.purpose, s.version
        )
    }
}

/// How the fingerprint of a draft is introduced.
pub(super) fn draft_fingerprint_label(s: &DraftStatus) -> String {
    format!(
        "fingerprint (SHA-256 of the {}'s signed bytes, what custodians sign)",
        s.fingerprint_of
    )
}

/// The fingerprint as hex in groups of 4 and as 8 numbered groups of 4 PGP words.
pub fn fingerprint_text(text: &mut String, label: &str, fp: &Fingerprint) {
    let _ = writeln!(text, "  {label}:");
    let _ = writeln!(text, "    {}", fp.hex_groups().join(" "));
    let groups = fp.word_groups();
    for (i, pair) in groups.chunks(2).enumerate() {
        let line: Vec<String> = pair
            .iter()
            .enumerate()
            .map(|(j, g)| format!("{}. {}", i * 2 + j + 1, g.join(" ")))
            .collect();
        let _ = writeln!(text, "    {}", line.join("   "));
    }
}

/// `  cert 1a2b3c4d` for a root key (its certificate's key ID for this GUN), else nothing.
fn cert_of(s: &rootkeeper::root::SignerState) -> String {
    if s.keyid != s.key_id {
        format!("  cert {}", s.keyid.short())
    } else {
        String::new()
    }
}

fn role_text(text: &mut String, name: &str, role: &RoleStatus) {
    if !role.pending {
        let _ = writeln!(
            text,
            "  {name:<9} the current one (this draft does not change it)"
        );
        return;
    }
    let _ = writeln!(
        text,
        "  {name:<9} {} of {} signatures (distinct keys)",
        role.signed, role.threshold
    );
    for s in &role.signers {
        let state = match s.state {
            "missing" if role.complete() => "unsigned (not needed)",
            "invalid" => "INVALID (a bad signature is there; signing again replaces it)",
            other => other,
        };
        let cert = cert_of(s);
        let _ = writeln!(text, "    {state:<8} key ID {}{cert}  {}", s.key_id, s.uri);
    }
}

/// A draft's fingerprint and signature state, as `root status` shows it.
pub(super) fn draft_text(text: &mut String, s: &DraftStatus) {
    fingerprint_text(text, &draft_fingerprint_label(s), &s.fingerprint);
    status_text(text, s);
}

pub(super) fn status_text(text: &mut String, s: &DraftStatus) {
    role_text(text, "root:", &s.root);
    if let Some(previous) = &s.previous_root {
        role_text(
            text,
            "previous root keys (the root it replaces must sign it too):",
            previous,
        );
    }
    for legacy in &s.legacy {
        role_text(
            text,
            &format!(
                "root v{} keys (optional, --legacy: its clients then take this root directly):",
                legacy.version
            ),
            &legacy.signatures,
        );
    }
    role_text(text, "targets:", &s.targets);
    let _ = writeln!(text, "  snapshot: {}", s.snapshot);
    if !s.ready && !s.needed.is_empty() {
        let _ = writeln!(
            text,
            "  still needed (the fewest tokens that complete every threshold):"
        );
        for n in &s.needed {
            let token = if n.token_label.is_empty() {
                String::new()
            } else {
                format!(
                    "  (key {} on token {} serial {})",
                    n.label, n.token_label, n.token_serial
                )
            };
            let _ = writeln!(
                text,
                "    key ID {}  {}{token}  for {}",
                n.key_id,
                n.uri,
                n.for_.join(", ")
            );
        }
    }
    if !s.expiries.is_empty() {
        let _ = writeln!(
            text,
            "  expiries: {}",
            s.expiries
                .iter()
                .filter(|e| !e.what.starts_with("root certificate"))
                .map(|e| format!("{} in {} days", e.what, e.days_left))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let certs: Vec<_> = s
            .expiries
            .iter()
            .filter(|e| e.what.starts_with("root certificate"))
            .collect();
        if let Some(soonest) = certs.first() {
            let _ = writeln!(
                text,
                "  root certificates: the first of {} expires in {} days ({})",
                certs.len(),
                soonest.days_left,
                soonest.at
            );
        }
        for e in s.expiries.iter().filter(|e| e.soon) {
            let hint = if e.what.starts_with("root") {
                format!("; `root renew --gun {}` drafts a later root", s.gun)
            } else {
                String::new()
            };
            let _ = writeln!(
                text,
                "warning: {} expires in {} days ({}){hint}",
                e.what, e.days_left, e.at
            );
        }
    }
    let _ = writeln!(
        text,
        "  ready to export: {}",
        if s.ready { "yes" } else { "no" }
    );
}

/// Up to this many drafts, `root sign` shows each in full before any PIN prompt; with more,
/// one line per GUN with its fingerprint in hex (`root status --gun GUN` shows any one in
/// full, words included).
const PLAN_DETAIL_MAX: usize = 3;

/// The root keys of a draft, with the key IDs custodians wrote down at `key generate`.
fn root_keys_text(text: &mut String, role: &RoleStatus, with_state: bool) {
    let _ = writeln!(
        text,
        "  root keys{} ({} of {} must sign; key IDs as written down at `key generate`):",
        if with_state {
            ""
        } else {
            ", the same in every draft"
        },
        role.threshold,
        role.signers.len()
    );
    for s in &role.signers {
        let cert = cert_of(s);
        if with_state {
            let _ = writeln!(
                text,
                "    {:<8} key ID {}{cert}  {}",
                s.state, s.key_id, s.uri
            );
        } else {
            let _ = writeln!(text, "    key ID {}  {}", s.key_id, s.uri);
        }
    }
}

fn planned_signatures_text(text: &mut String, d: &rootkeeper::root::sign::PlannedDraft) {
    for p in &d.signatures {
        let _ = writeln!(
            text,
            "  will sign {:<8} with key ID {}{}",
            p.role.as_str(),
            p.key_id,
            if p.replaces_invalid {
                " (replacing its invalid signature)"
            } else {
                ""
            }
        );
    }
    if d.snapshot {
        let _ = writeln!(text, "  will sign snapshot");
    }
    for n in &d.notes {
        let _ = writeln!(text, "  note: {n}");
    }
}

/// What `root sign` is about to sign, shown before any PIN prompt: GUN, version, threshold,
/// the root keys, expiry and the fingerprint custodians compare with the ceremony log.
fn plan_text(plan: &SignPlan) -> String {
    let mut text = String::new();
    if plan.drafts.len() <= PLAN_DETAIL_MAX {
        for d in &plan.drafts {
            let s = &d.before;
            if s.root.pending {
                let _ = writeln!(
                    text,
                    "{}: root v{}, {}-of-{} root keys ({} signed so far), expires {}",
                    s.gun,
                    s.version,
                    s.root.threshold,
                    s.root.signers.len(),
                    s.root.signed,
                    s.expires
                );
                root_keys_text(&mut text, &s.root, true);
            } else {
                let _ = writeln!(text, "{}", draft_title(s));
            }
            fingerprint_text(&mut text, &draft_fingerprint_label(s), &s.fingerprint);
            planned_signatures_text(&mut text, d);
        }
    } else {
        let _ = writeln!(
            text,
            "{} drafts; each GUN's fingerprint in full (words too): `rootkeeper root status --gun GUN`",
            plan.drafts.len()
        );
        // The root keys once when every draft has the same ones (one ceremony, many GUNs).
        let ids = |d: &rootkeeper::root::sign::PlannedDraft| -> Vec<String> {
            d.before
                .root
                .signers
                .iter()
                .map(|s| s.key_id.to_string())
                .collect()
        };
        let shared = plan.drafts.first().filter(|first| {
            plan.drafts.iter().all(|d| {
                ids(d) == ids(first) && d.before.root.threshold == first.before.root.threshold
            })
        });
        if let Some(first) = shared {
            root_keys_text(&mut text, &first.before.root, false);
        }
        let _ = writeln!(
            text,
            "  GUN, version, root signatures so far, expiry, fingerprint (SHA-256 of the root's signed bytes):"
        );
        for d in &plan.drafts {
            let s = &d.before;
            let _ = writeln!(
                text,
                "  {}  v{}  {} of {}  expires {}  {}",
                s.gun,
                s.version,
                s.root.signed,
                s.root.threshold,
                s.expires,
                s.fingerprint.hex_groups().join(" ")
            );
        }
        let count = |what: &str| {
            plan.drafts
                .iter()
                .filter(|d| d.signatures.iter().any(|p| p.role.as_str() == what))
                .count()
        };
        let snapshots = plan.drafts.iter().filter(|d| d.snapshot).count();
        let _ = writeln!(
            text,
            "  will sign: root in {} drafts, targets in {}, snapshot in {}",
            count("root"),
            count("targets"),
            snapshots
        );
        let mut notes: Vec<&String> = plan.drafts.iter().flat_map(|d| &d.notes).collect();
        notes.sort();
        notes.dedup();
        for n in notes.iter().take(PLAN_DETAIL_MAX) {
            let _ = writeln!(text, "  note (some drafts): {n}");
        }
    }
    for k in &plan.keys {
        if k.signs.is_empty() {
            let _ = writeln!(text, "{} (key ID {}): nothing to sign", k.uri, k.key_id);
        }
    }
    text
}

/// Server keys for every GUN: one FILE for all, or DIR/<gun>/<role>.key.json each.
pub(super) fn server_keys(
    path: &Path,
    guns: &[String],
    role: &str,
) -> anyhow::Result<BTreeMap<String, PublicKey>> {
    let mut keys = BTreeMap::new();
    let mut cache: BTreeMap<PathBuf, PublicKey> = BTreeMap::new();
    for gun in guns {
        let file = if path.is_dir() {
            trustdir::server_key_file(path, gun, role)
        } else {
            path.to_owned()
        };
        if let Some(key) = cache.get(&file) {
            keys.insert(gun.clone(), key.clone());
            continue;
        }
        let bytes = trustdir::read(&file).map_err(|e| {
            anyhow::Error::new(e).context(format!(
                "the {role} key of {gun}; fetch it online with `rootkeeper server {role}-key`"
            ))
        })?;
        let key = notary::parse_server_key(&file.display().to_string(), &bytes)?;
        cache.insert(file, key.clone());
        keys.insert(gun.clone(), key);
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
    let _ = writeln!(
        text,
        "  {} rules passed: {}",
        v.rules.len(),
        v.rules.join(", ")
    );
}

/// The chain of root versions and what it means for older clients.
fn chain_text(text: &mut String, chain: &root::chain::ChainReport) {
    if chain.newest > 1 {
        let _ = writeln!(
            text,
            "  chain: root v1 to v{} checked link by link; clients that trust {} take v{} directly{}",
            chain.newest,
            chain
                .direct_from
                .iter()
                .map(|v| format!("v{v}"))
                .collect::<Vec<_>>()
                .join(", "),
            chain.newest,
            if chain.direct_from.len() + 1 < usize::try_from(chain.newest).unwrap_or(usize::MAX) {
                ", older ones walk every version in between"
            } else {
                ""
            }
        );
    }
    for w in &chain.warnings {
        let _ = writeln!(text, "warning: {w}");
    }
}

fn verify_cmd(
    ctx: &Ctx,
    guns: &GunArgs,
    files: &[PathBuf],
    trusted: Option<&Path>,
) -> anyhow::Result<Output> {
    let now = UtcTime::now();
    let mut text = String::new();
    if !files.is_empty() {
        let gun = guns.gun.first().map(String::as_str);
        let v = verify_files(files, gun, trusted, now)?;
        verified_text(&mut text, "files", &v);
        return Ok(Output::new(text, json!({"verified": [json(&v)]})));
    }
    let guns = guns.resolve()?;
    let dir = ctx.trust_dir_read()?;
    let (mut results, mut chains) = (Vec::new(), Vec::new());
    for gun in &guns {
        let repo = dir.repo(gun)?;
        let found = root::verify_gun(&repo, now)?;
        verified_text(
            &mut text,
            &format!("{gun} ({})", found.checked),
            &found.verified,
        );
        chain_text(&mut text, &found.chain);
        results.push(found.verified);
        chains.push(found.chain);
    }
    Ok(Output::new(
        text,
        json!({"verified": json(&results), "chains": json(&chains)}),
    ))
}

/// Checks every file given: exactly one root.json, and any of targets, snapshot and timestamp
/// against it (a timestamp needs the snapshot beside it).
fn verify_files(
    files: &[PathBuf],
    gun: Option<&str>,
    trusted: Option<&Path>,
    now: UtcTime,
) -> anyhow::Result<Verified> {
    let mut by_type: BTreeMap<&'static str, (String, Vec<u8>)> = BTreeMap::new();
    for file in files {
        let name = file.display().to_string();
        let bytes = trustdir::read(file)?;
        let doc = Document::parse(&name, &bytes)?;
        if let Some((other, _)) = by_type.insert(doc.type_name(), (name.clone(), bytes)) {
            return Err(usage(format!(
                "{other} and {name} are both {} files; give one of each",
                doc.type_name()
            )));
        }
    }
    let (root_name, root) = by_type
        .remove("Root")
        .ok_or_else(|| usage("give the root.json to verify the other files against"))?;
    let previous = match trusted {
        None => None,
        Some(path) => {
            // The trusted root may have expired since: notary walks through such roots, so
            // only its structure, keys and signatures are checked, for the GUN of the new one.
            let gun = match gun {
                Some(g) => g.to_owned(),
                None => verify::check_root(&root_name, &root, None, None, now)?.gun,
            };
            let bytes = trustdir::read(path)?;
            Some(verify::check_chain_root(
                &path.display().to_string(),
                &bytes,
                &gun,
                None,
                now,
            )?)
        }
    };
    let file = |t: &str| by_type.get(t).map(|(_, b)| b.as_slice());
    let (_, verified) = verify::verify_repo(
        RepoFiles {
            root: &root,
            targets: file("Targets"),
            snapshot: file("Snapshot"),
            timestamp: file("Timestamp"),
        },
        gun,
        previous.as_ref(),
        now,
    )?;
    Ok(verified)
}
