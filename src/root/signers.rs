//! Signers: Docker Content Trust's delegations `targets/NAME` and `targets/releases`, changed
//! with the repository (targets) key that stays in hardware.
//!
//! `docker trust signer add NAME REPO --key NAME.pub` needs the repository key, which a
//! rootkeeper repository keeps inside a token; so rootkeeper makes that one change and the
//! signers go on with their own keys (`docker trust sign`). [`add`] and [`remove`] change the
//! delegations exactly as docker's client does (docker/cli `signer_add.go`, `sign.go
//! addStagedSigner`, `signer_remove.go`; notary `tuf/tuf.go delegationUpdateVisitor`,
//! `DeleteDelegation`, `utils.RemoveUnusedKeys`):
//!
//! - add: the keys go into `targets/NAME` and then `targets/releases`; an existing role keeps
//!   its place in `delegations.roles`, its threshold and its key order, new key IDs are
//!   appended and `""` is merged into its paths; a new role is appended with threshold 1 and
//!   `paths: [""]`; keys no role names any more are dropped from `delegations.keys`;
//! - remove: NAME's key IDs leave `targets/releases` (except a key another signer still
//!   holds: docker would drop it there too and so take that signer's power over released
//!   tags, see docs/signers.md), the role `targets/NAME` goes, and unused keys with it.
//!
//! Both, and [`renew_targets`], make a draft over [`change::base`] (what `server pull` last
//! verified): a new targets.json (version = the server's + 1), and with an offline snapshot
//! key a new snapshot; `root sign`, `root status`, `root export` and `server publish` take it
//! from there. [`list`] shows the signers of the pulled repository, and [`expiry_warnings`]
//! the pulled targets and delegations that expire soon.
//!
//! Signer keys come from files people hand over, parsed strictly by [`parse_signer_key`]:
//! exactly one PEM block, `PUBLIC KEY` (an `ecdsa` key of the DER SubjectPublicKeyInfo, as
//! docker makes it) or `CERTIFICATE` (an `ecdsa-x509` key of its Go PEM encoding), whose DER
//! re-encodes to itself.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use p256::pkcs8::{DecodePublicKey, EncodePublicKey};
use serde::Serialize;
use x509_cert::der::{Decode, Encode};

use crate::error::{Error, Result};
use crate::root::change::{self, Base, Change};
use crate::root::draft::{DraftStatus, SnapshotPlan};
use crate::root::pull;
use crate::trustdir::{Batch, RepoDir, TrustDir};
use crate::tuf::model::{
    DelegationRole, Delegations, KeyId, KeyType, PublicKey, RoleKeys, RoleName, Signed, Targets,
    Threshold, UtcTime, escape_untrusted,
};
use crate::tuf::notary;
use crate::tuf::verify;

/// The role every signer is added to: what `docker pull` reads tags from (with `targets`).
pub const RELEASES: &str = "targets/releases";

/// How many hex characters of a key ID docker shows in its tables (`stringid.TruncateID`).
pub const DOCKER_SHORT_ID: usize = 12;

pub use crate::root::draft::EXPIRY_WARNING_DAYS;

/// The largest key file read (docker reads at most 1 MiB).
pub const MAX_KEY_FILE: usize = 1 << 20;

/// Docker's short form of a key ID: its first 12 hex characters.
pub fn docker_short(id: &KeyId) -> &str {
    id.as_str().get(..DOCKER_SHORT_ID).unwrap_or(id.as_str())
}

fn bad_name(name: &str, reason: &str) -> Error {
    Error::SignerName {
        name: escape_untrusted(name),
        reason: reason.into(),
    }
}

/// Docker's rule for a signer name: `^[a-z0-9][a-z0-9_-]*$`, and not `releases` (reserved for
/// the role every signer is in). The delegation is `targets/NAME`, which notary limits to
/// under 256 characters.
pub fn check_signer_name(name: &str) -> Result<()> {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok =
        bytes.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-');
    if !first_ok || !rest_ok {
        return Err(bad_name(
            name,
            "a signer name starts with a lower-case letter or digit and holds only a-z, 0-9, `-` and `_` (docker's rule)",
        ));
    }
    if name == "releases" {
        return Err(bad_name(
            name,
            "`releases` is reserved: it is the role every signer is added to",
        ));
    }
    verify::check_delegation_name(&role_name(name), "targets").map_err(|why| bad_name(name, &why))
}

/// The delegation of a signer: `targets/NAME`.
pub fn role_name(signer: &str) -> String {
    format!("targets/{signer}")
}

fn key_error(file: &str, reason: impl Into<String>) -> Error {
    Error::SignerKey {
        file: escape_untrusted(file),
        reason: reason.into(),
    }
}

/// One PEM block, as Go's `pem.Decode` reads it but strictly: nothing but blank lines around
/// it, optional `Name: value` headers (docker writes `role: NAME`), a canonical base64 body.
fn one_pem_block<'a>(file: &str, text: &'a str) -> Result<(&'a str, Vec<u8>)> {
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let begin = lines
        .by_ref()
        .find(|l| !l.trim().is_empty())
        .ok_or_else(|| key_error(file, "is empty"))?;
    let label = begin
        .strip_prefix("-----BEGIN ")
        .and_then(|l| l.strip_suffix("-----"))
        .ok_or_else(|| {
            key_error(
                file,
                format!(
                    "does not start with a PEM block (its first line is `{}`)",
                    escape_untrusted(begin)
                ),
            )
        })?;
    let end = format!("-----END {label}-----");
    let mut body = String::new();
    let mut in_headers = true;
    let mut ended = false;
    for line in lines.by_ref() {
        if line == end {
            ended = true;
            break;
        }
        if in_headers {
            if let Some((name, value)) = line.split_once(':') {
                let printable = |s: &str| s.bytes().all(|c| (0x20..0x7f).contains(&c));
                if name.is_empty() || name.contains(' ') || !printable(name) || !printable(value) {
                    return Err(key_error(
                        file,
                        format!(
                            "has a PEM header line `{}` Go would not read",
                            escape_untrusted(line)
                        ),
                    ));
                }
                continue;
            }
            in_headers = false;
            if line.is_empty() {
                continue;
            }
        }
        if !line
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/' || c == b'=')
        {
            return Err(key_error(
                file,
                format!(
                    "has a line `{}` that is not base64 inside its PEM block",
                    escape_untrusted(line)
                ),
            ));
        }
        body.push_str(line);
    }
    if !ended {
        return Err(key_error(file, format!("has no `{end}` line")));
    }
    if lines.any(|l| !l.trim().is_empty()) {
        return Err(key_error(
            file,
            "holds more than its one PEM block (one key per file, as docker reads only the first)",
        ));
    }
    let der = crate::tuf::model::Base64::parse(&body)
        .map_err(|_| key_error(file, "its PEM body is not canonical base64"))?
        .0;
    Ok((label, der))
}

/// Reads a signer's public key file (see the module documentation) as docker's
/// `tufutils.ParsePEMPublicKey` does, strictly; a certificate must be valid now (notary's
/// `ValidateCertificate` with the expiry check). RSA keys, which docker would take, are
/// refused: rootkeeper neither makes nor checks RSA signatures.
pub fn parse_signer_key(file: &str, bytes: &[u8], now: UtcTime) -> Result<PublicKey> {
    if bytes.len() > MAX_KEY_FILE {
        return Err(key_error(
            file,
            "is larger than 1 MiB; a public key file is a few hundred bytes",
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| key_error(file, "is not text"))?;
    let (label, der) = one_pem_block(file, text)?;
    match label {
        "PUBLIC KEY" => {
            let key = p256::PublicKey::from_public_key_der(&der).map_err(|_| {
                key_error(
                    file,
                    format!("is not a P-256 public key{}", other_algorithm(&der)),
                )
            })?;
            let again = key
                .to_public_key_der()
                .map_err(|e| key_error(file, e.to_string()))?;
            if again.as_bytes() != der.as_slice() {
                return Err(key_error(
                    file,
                    "holds a P-256 key in another encoding than Go writes (e.g. a compressed point); docker would store these bytes as they are",
                ));
            }
            Ok(PublicKey::new(KeyType::Ecdsa, der))
        }
        "CERTIFICATE" => {
            let cert = x509_cert::Certificate::from_der(&der)
                .map_err(|e| key_error(file, format!("is not an X.509 certificate: {e}")))?;
            let again = cert.to_der().map_err(|e| key_error(file, e.to_string()))?;
            if again != der {
                return Err(key_error(
                    file,
                    "holds a certificate whose DER does not re-encode to itself",
                ));
            }
            let facts =
                crate::x509::cert_facts(&der).map_err(|e| key_error(file, e.to_string()))?;
            if facts.p256_key.is_none() {
                return Err(key_error(
                    file,
                    "holds a certificate whose key is not P-256",
                ));
            }
            if facts.sha1_signature {
                return Err(key_error(
                    file,
                    "holds a certificate signed with SHA-1, which notary refuses",
                ));
            }
            let not_before = UtcTime::from_system(facts.not_before);
            let not_after = UtcTime::from_system(facts.not_after);
            if not_before > not_after
                || not_before > now.plus(crate::tuf::model::days(1))
                || now > not_after
            {
                return Err(key_error(
                    file,
                    format!(
                        "holds a certificate valid from {not_before} to {not_after}, not now (notary refuses it)"
                    ),
                ));
            }
            Ok(notary::x509_key(&crate::x509::go_pem(&der)))
        }
        other => Err(key_error(
            file,
            format!(
                "holds a PEM `{}` block; docker takes a `PUBLIC KEY` (`docker trust key generate NAME` writes NAME.pub) or a `CERTIFICATE`",
                escape_untrusted(other)
            ),
        )),
    }
}

/// ` (an RSA key …)` when the SubjectPublicKeyInfo names an algorithm other than P-256.
fn other_algorithm(der: &[u8]) -> String {
    const RSA: &str = "1.2.840.113549.1.1.1";
    match x509_cert::spki::SubjectPublicKeyInfoRef::from_der(der) {
        Ok(spki) if spki.algorithm.oid.to_string() == RSA => {
            " (it is an RSA key: docker would take it, but rootkeeper neither makes nor checks RSA signatures; make an ECDSA key with `docker trust key generate NAME`)".into()
        }
        Ok(spki) => format!(" (its algorithm is {})", spki.algorithm.oid),
        Err(_) => " (not a DER SubjectPublicKeyInfo)".into(),
    }
}

/// What [`add_signer`] and [`remove_signer`] found, for people.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DelegationChange {
    /// Key IDs added to `targets/NAME`.
    pub added_to_signer: Vec<KeyId>,
    /// Key IDs added to `targets/releases`.
    pub added_to_releases: Vec<KeyId>,
    /// Key IDs removed from `targets/releases`.
    pub removed_from_releases: Vec<KeyId>,
    /// Roles created (`targets/NAME`, `targets/releases`) or removed.
    pub roles: Vec<String>,
    /// Notes (a key another signer holds too…).
    pub notes: Vec<String>,
}

fn role_index(targets: &Targets, name: &str) -> Option<usize> {
    targets
        .delegations
        .roles
        .iter()
        .position(|r| r.name == name)
}

/// notary's `RemoveUnusedKeys`: keys no role of the file names are dropped.
fn remove_unused_keys(delegations: &mut Delegations) {
    let used: BTreeSet<KeyId> = delegations
        .roles
        .iter()
        .flat_map(|r| r.keyids.iter().cloned())
        .collect();
    delegations.keys.retain(|id, _| used.contains(id));
}

/// notary's `delegationUpdateVisitor` adding `keys` (and the path `""`) to the role `name`.
fn add_keys_to_role(
    targets: &mut Targets,
    name: &str,
    keys: &[(KeyId, PublicKey)],
) -> (Vec<KeyId>, bool) {
    let mut added = Vec::new();
    let created = role_index(targets, name).is_none();
    if created {
        targets.delegations.roles.push(DelegationRole {
            keyids: Vec::new(),
            name: name.to_owned(),
            paths: Vec::new(),
            threshold: Threshold::ONE,
        });
    }
    if let Some(role) = targets
        .delegations
        .roles
        .iter_mut()
        .find(|r| r.name == name)
    {
        for (id, _) in keys {
            if !role.keyids.contains(id) {
                role.keyids.push(id.clone());
                added.push(id.clone());
            }
        }
        if !role.paths.iter().any(String::is_empty) {
            role.paths.push(String::new());
        }
    }
    for (id, key) in keys {
        targets.delegations.keys.insert(id.clone(), key.clone());
    }
    remove_unused_keys(&mut targets.delegations);
    (added, created)
}

/// The signers of a targets file: every direct child `targets/NAME` but `targets/releases`.
pub fn signer_roles(targets: &Targets) -> impl Iterator<Item = &DelegationRole> {
    targets
        .delegations
        .roles
        .iter()
        .filter(|r| r.name != RELEASES && r.name.starts_with("targets/"))
}

/// Adds signer `name` with `keys` to `targets` as `docker trust signer add` does (see the
/// module documentation); the version and expiry are left as they are.
pub fn add_signer(
    targets: &Targets,
    name: &str,
    keys: &[PublicKey],
) -> Result<(Targets, DelegationChange)> {
    check_signer_name(name)?;
    let mut with_ids: Vec<(KeyId, PublicKey)> = Vec::new();
    for key in keys {
        let id = notary::key_id(key);
        if with_ids.iter().any(|(i, _)| *i == id) {
            return Err(Error::Invalid(format!("key {id} is given twice")));
        }
        with_ids.push((id, key.clone()));
    }
    if with_ids.is_empty() {
        return Err(Error::Invalid("a signer needs at least one --key".into()));
    }
    let mut out = targets.clone();
    let mut change = DelegationChange::default();
    let signer = role_name(name);
    for (id, _) in &with_ids {
        for other in signer_roles(targets).filter(|r| r.name != signer) {
            if other.keyids.contains(id) {
                change.notes.push(format!(
                    "key {id} is also a key of signer `{}`; docker allows one key for several signers",
                    other.name.trim_start_matches("targets/")
                ));
            }
        }
    }
    let (added, created) = add_keys_to_role(&mut out, &signer, &with_ids);
    change.added_to_signer = added;
    if created {
        change.roles.push(format!("{signer} created"));
    }
    let (added, created) = add_keys_to_role(&mut out, RELEASES, &with_ids);
    change.added_to_releases = added;
    if created {
        change.roles.push(format!("{RELEASES} created"));
    }
    Ok((out, change))
}

/// Removes signer `name` from `targets` as `docker trust signer remove` does (see the module
/// documentation); the version and expiry are left as they are.
pub fn remove_signer(targets: &Targets, name: &str) -> Result<(Targets, DelegationChange)> {
    if name == "releases" {
        return Err(bad_name(
            name,
            "`releases` is reserved and cannot be removed (docker's rule)",
        ));
    }
    let signer = role_name(name);
    let Some(role) = targets.delegations.roles.iter().find(|r| r.name == signer) else {
        return Err(Error::NoSuchSigner {
            name: escape_untrusted(name),
            signers: signer_roles(targets)
                .map(|r| r.name.trim_start_matches("targets/").to_owned())
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    let mut change = DelegationChange::default();
    let held_by_others: BTreeSet<&KeyId> = signer_roles(targets)
        .filter(|r| r.name != signer)
        .flat_map(|r| r.keyids.iter())
        .collect();
    let leaving: Vec<KeyId> = role
        .keyids
        .iter()
        .filter(|id| {
            if held_by_others.contains(id) {
                change.notes.push(format!(
                    "key {id} stays in {RELEASES}: another signer holds it too (docker would remove it there as well)"
                ));
                false
            } else {
                true
            }
        })
        .cloned()
        .collect();
    let mut out = targets.clone();
    out.delegations.roles.retain(|r| r.name != signer);
    change.roles.push(format!("{signer} removed"));
    let mut releases_empty = false;
    if let Some(releases) = out
        .delegations
        .roles
        .iter_mut()
        .find(|r| r.name == RELEASES)
    {
        for id in &leaving {
            if releases.keyids.contains(id) {
                change.removed_from_releases.push(id.clone());
            }
        }
        releases.keyids.retain(|id| !leaving.contains(id));
        releases_empty = releases.keyids.is_empty();
    }
    if releases_empty {
        out.delegations.roles.retain(|r| r.name != RELEASES);
        change.roles.push(format!("{RELEASES} removed"));
        change.notes.push(format!(
            "{RELEASES} has no key left, so it is removed too (notary could not check a role without keys); `rootkeeper signer add` makes it again"
        ));
    }
    remove_unused_keys(&mut out.delegations);
    Ok((out, change))
}

/// What a signer command drafted.
#[derive(Debug, Clone, Serialize)]
pub struct SignerOutcome {
    /// The GUN.
    pub gun: String,
    /// What the draft does.
    pub purpose: String,
    /// The delegation change (empty for a renewal).
    pub change: DelegationChange,
    /// The new targets version.
    pub targets_version: u64,
    /// Its expiry.
    pub targets_expires: String,
    /// The new snapshot version, when the snapshot is signed offline.
    pub snapshot_version: Option<u64>,
    /// True when the server holds the snapshot key (signers then publish on their own).
    pub server_snapshot: bool,
    /// The draft's state.
    pub status: DraftStatus,
    /// What the pull the draft builds on saw (server, time).
    pub pulled: pull::PullRecord,
}

/// New targets content, for [`draft_targets`].
struct TargetsChange {
    targets: Targets,
    expires: Option<UtcTime>,
    purpose: String,
    change: DelegationChange,
}

/// Writes the change of targets over `base` as the GUN's draft, with the new targets version
/// and expiry (by default [`change::role_expiry`]).
fn draft_targets(
    repo: &RepoDir<'_>,
    base: &Base,
    new: TargetsChange,
    now: UtcTime,
    replace: bool,
) -> Result<SignerOutcome> {
    let TargetsChange {
        mut targets,
        expires,
        purpose,
        change,
    } = new;
    let expires = expires.unwrap_or_else(|| change::role_expiry(&base.root.doc.signed, now));
    if targets == base.targets.signed {
        return Err(Error::Invalid(format!(
            "nothing would change in {}: {purpose} is already so in the targets.json the server serves",
            repo.gun()
        )));
    }
    targets.version = base.next_targets_version()?;
    targets.expires = crate::tuf::model::GoTime::utc(expires);
    let inventory = repo.trust_dir().inventory()?;
    let root = &base.root.doc.signed;
    let mut signers =
        change::role_signers(&inventory, root, &base.root.keys, RoleName::Targets, false);
    if signers.is_empty() {
        return Err(Error::NotFound(format!(
            "the inventory of this trust directory holds no targets key of {} (the root names {}); the targets key's token must be recorded here (`rootkeeper key generate` or the trust directory that made the repository)",
            repo.gun(),
            root.roles
                .targets
                .keyids
                .iter()
                .map(|k| k.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let snapshot_expires = change::role_expiry(root, now);
    let plan = change::snapshot_plan(
        &inventory,
        root,
        &base.root.keys,
        base.next_snapshot_version()?,
        snapshot_expires,
    );
    if matches!(plan, SnapshotPlan::Offline { .. }) {
        signers.extend(change::role_signers(
            &inventory,
            root,
            &base.root.keys,
            RoleName::Snapshot,
            false,
        ));
    }
    let snapshot_version = match &plan {
        SnapshotPlan::Offline { version, .. } => Some(*version),
        SnapshotPlan::ServerManaged => None,
    };
    let server_snapshot = snapshot_version.is_none();
    let targets_version = targets.version.get();
    let targets_expires = targets.expires.to_string();
    let mut batch = Batch::new();
    let status = change::write_draft(
        repo,
        base,
        Change {
            purpose: purpose.clone(),
            root: None,
            targets: Some(targets),
            signers,
            server_keys: Vec::new(),
            snapshot: plan,
        },
        now,
        replace,
        &mut batch,
    )?;
    repo.trust_dir().commit(batch)?;
    Ok(SignerOutcome {
        gun: repo.gun().to_owned(),
        purpose,
        change,
        targets_version,
        targets_expires,
        snapshot_version,
        server_snapshot,
        status,
        pulled: base.pulled.clone(),
    })
}

/// `signer add`: drafts targets.json with signer `name` added with the keys `keys` (file
/// name, bytes), over the last pull.
pub fn add(
    dir: &TrustDir,
    gun: &str,
    name: &str,
    keys: &[(String, Vec<u8>)],
    now: UtcTime,
    replace: bool,
) -> Result<SignerOutcome> {
    check_signer_name(name)?;
    let parsed = keys
        .iter()
        .map(|(file, bytes)| parse_signer_key(file, bytes, now))
        .collect::<Result<Vec<_>>>()?;
    let repo = dir.repo(gun)?;
    let base = change::base(&repo, now)?;
    let (targets, change) = add_signer(&base.targets.signed, name, &parsed)?;
    draft_targets(
        &repo,
        &base,
        TargetsChange {
            targets,
            expires: None,
            purpose: format!("signer {name} added"),
            change,
        },
        now,
        replace,
    )
}

/// The tags of `targets/releases` that only `leaving` keys' signatures keep valid: removing
/// those keys leaves the released file below its threshold (docker: "Removing this signer will
/// make GUN unpullable").
fn releases_left_unsigned(base: &Base, new_targets: &Targets) -> Result<Option<Vec<String>>> {
    let Some(bytes) = base.delegation_files.get(RELEASES) else {
        return Ok(None);
    };
    let doc = Signed::<Targets>::parse(&format!("pulled {RELEASES}.json"), bytes)?;
    if doc.signed.targets.is_empty() {
        return Ok(None);
    }
    let role = match new_targets
        .delegations
        .roles
        .iter()
        .find(|r| r.name == RELEASES)
    {
        Some(role) => RoleKeys {
            keyids: role.keyids.clone(),
            threshold: role.threshold,
        },
        None => return Ok(Some(doc.signed.targets.keys().cloned().collect())),
    };
    let keys = verify::key_table(RELEASES, &new_targets.delegations.keys)?;
    let report = verify::signature_report(&doc, &doc.signed_bytes()?, &keys, &role);
    if report.count() < role.threshold.get() {
        Ok(Some(doc.signed.targets.keys().cloned().collect()))
    } else {
        Ok(None)
    }
}

/// `signer remove`: drafts targets.json without signer `name`, over the last pull. Refuses,
/// unless `force` (the operator confirmed), when the signer's signature is what keeps the released tags valid.
pub fn remove(
    dir: &TrustDir,
    gun: &str,
    name: &str,
    now: UtcTime,
    force: bool,
    replace: bool,
) -> Result<SignerOutcome> {
    let repo = dir.repo(gun)?;
    let base = change::base(&repo, now)?;
    let (targets, mut change) = remove_signer(&base.targets.signed, name).map_err(|e| match e {
        Error::NoSuchSigner { name, signers } => Error::NoSuchSigner {
            name: format!("{name} in {gun}"),
            signers,
        },
        other => other,
    })?;
    if let Some(tags) = releases_left_unsigned(&base, &targets)? {
        let tags = tags
            .iter()
            .map(|t| escape_untrusted(t))
            .collect::<Vec<_>>()
            .join(", ");
        if !force {
            return Err(Error::SignerHoldsReleases {
                gun: gun.to_owned(),
                name: escape_untrusted(name),
                tags,
            });
        }
        change.notes.push(format!(
            "confirmed: the released tags ({tags}) stop being pullable until another signer signs {RELEASES} again (their next `docker trust sign`)"
        ));
    }
    draft_targets(
        &repo,
        &base,
        TargetsChange {
            targets,
            expires: None,
            purpose: format!("signer {name} removed"),
            change,
        },
        now,
        replace,
    )
}

/// `root renew-targets`: drafts the served targets.json again, unchanged but for a new
/// version and the expiry `expires`, over the last pull.
pub fn renew_targets(
    dir: &TrustDir,
    gun: &str,
    expires: UtcTime,
    now: UtcTime,
    replace: bool,
) -> Result<SignerOutcome> {
    if expires <= now {
        return Err(Error::Invalid(format!(
            "--expires {expires} is not in the future"
        )));
    }
    let repo = dir.repo(gun)?;
    let base = change::base(&repo, now)?;
    let mut change = DelegationChange::default();
    let root_expires = base.root.doc.signed.expires.instant();
    if expires > root_expires {
        change.notes.push(format!(
            "targets.json will expire after the root ({root_expires}); clients stop trusting the repository when the root expires, whatever targets says (`rootkeeper root renew` renews the root)"
        ));
    }
    let targets = change::resigned_targets(&base, expires)?;
    draft_targets(
        &repo,
        &base,
        TargetsChange {
            targets,
            expires: Some(expires),
            purpose: "targets renewed".into(),
            change,
        },
        now,
        replace,
    )
}

/// One key of a signer, as `signer list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ListedKey {
    /// The key ID the delegation lists.
    pub key_id: KeyId,
    /// Docker's short form (what `docker trust inspect` shows).
    pub docker_short: String,
    /// The canonical key ID (the bare key's; the name of the signer's private key file),
    /// when it differs (a certificate key).
    pub canonical: Option<KeyId>,
    /// `ecdsa` or `ecdsa-x509`.
    pub keytype: String,
    /// The roles that list the key.
    pub roles: Vec<String>,
}

/// One signer, as `signer list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ListedSigner {
    /// The name (`ci` for `targets/ci`).
    pub name: String,
    /// Its role.
    pub role: String,
    /// Its threshold.
    pub threshold: u64,
    /// Its keys.
    pub keys: Vec<ListedKey>,
    /// Tags the signer's own role holds (from the pulled `targets/NAME.json`).
    pub tags: Vec<String>,
}

/// What `signer list` shows.
#[derive(Debug, Clone, Serialize)]
pub struct SignerList {
    /// The GUN.
    pub gun: String,
    /// Targets version the list is of.
    pub targets_version: u64,
    /// The signers, in the order targets.json lists them.
    pub signers: Vec<ListedSigner>,
    /// Keys of `targets/releases` that no signer holds.
    pub releases_only: Vec<ListedKey>,
    /// Tags released (in the pulled `targets/releases.json`).
    pub released_tags: Vec<String>,
    /// True when the server holds the snapshot key.
    pub server_snapshot: bool,
    /// The pull the list is of.
    pub pulled: pull::PullRecord,
    /// The purpose of a pending draft, when there is one (the list shows the server's state).
    pub pending_draft: Option<String>,
    /// Set when the last export came after the last pull (the list does not show it yet).
    pub unpulled_export: Option<String>,
}

fn listed_key(targets: &Targets, id: &KeyId) -> ListedKey {
    let key = targets.delegations.keys.get(id);
    let canonical = key
        .and_then(|k| notary::canonical_key_id(k).ok())
        .filter(|c| c != id);
    ListedKey {
        key_id: id.clone(),
        docker_short: docker_short(id).to_owned(),
        canonical,
        keytype: key.map(|k| k.keytype.to_string()).unwrap_or_default(),
        roles: targets
            .delegations
            .roles
            .iter()
            .filter(|r| r.keyids.contains(id))
            .map(|r| r.name.clone())
            .collect(),
    }
}

fn tags_of(base: &Base, role: &str) -> Vec<String> {
    base.delegation_files
        .get(role)
        .and_then(|b| Signed::<Targets>::parse(role, b).ok())
        .map(|d| d.signed.targets.keys().cloned().collect())
        .unwrap_or_default()
}

/// `signer list`: the signers of the repository as the last pull verified it.
pub fn list(dir: &TrustDir, gun: &str, now: UtcTime) -> Result<SignerList> {
    let repo = dir.repo(gun)?;
    let base = change::pulled(&repo, now)?;
    let unpulled_export = change::exported_after_pull(&repo, &base.pulled)?;
    let targets = &base.targets.signed;
    let signers: Vec<ListedSigner> = signer_roles(targets)
        .map(|r| ListedSigner {
            name: r.name.trim_start_matches("targets/").to_owned(),
            role: r.name.clone(),
            threshold: r.threshold.get(),
            keys: r.keyids.iter().map(|id| listed_key(targets, id)).collect(),
            tags: tags_of(&base, &r.name),
        })
        .collect();
    let held: BTreeSet<&KeyId> = signer_roles(targets)
        .flat_map(|r| r.keyids.iter())
        .collect();
    let releases_only = targets
        .delegations
        .roles
        .iter()
        .filter(|r| r.name == RELEASES)
        .flat_map(|r| r.keyids.iter())
        .filter(|id| !held.contains(id))
        .map(|id| listed_key(targets, id))
        .collect();
    let inventory = dir.inventory()?;
    let server_snapshot = change::role_signers(
        &inventory,
        &base.root.doc.signed,
        &base.root.keys,
        RoleName::Snapshot,
        false,
    )
    .is_empty();
    let pending_draft = if repo.has_pending() {
        crate::root::draft::load(&repo, &inventory)
            .ok()
            .map(|p| p.draft.purpose)
            .or_else(|| Some("a draft that does not load".into()))
    } else {
        None
    };
    Ok(SignerList {
        gun: gun.to_owned(),
        targets_version: targets.version.get(),
        signers,
        releases_only,
        released_tags: tags_of(&base, RELEASES),
        server_snapshot,
        pulled: base.pulled.clone(),
        pending_draft,
        unpulled_export,
    })
}

/// A pulled targets file that expires soon (or has expired).
#[derive(Debug, Clone, Serialize)]
pub struct ExpiryWarning {
    /// The GUN.
    pub gun: String,
    /// `targets` or the delegation's name.
    pub role: String,
    /// When it expires.
    pub expires: String,
    /// Whole days left (negative once expired).
    pub days_left: i64,
    /// When the state was pulled.
    pub pulled_at: String,
    /// What to do.
    pub remedy: String,
}

/// The targets.json and delegation files of each GUN's last pull (every GUN of the trust
/// directory when `guns` is empty) that expire within [`EXPIRY_WARNING_DAYS`] days. GUNs never
/// pulled are skipped; a pulled state that does not parse is an error.
pub fn expiry_warnings(
    dir: &TrustDir,
    guns: &[String],
    now: UtcTime,
) -> Result<Vec<ExpiryWarning>> {
    let guns = if guns.is_empty() {
        dir.guns()?
    } else {
        guns.to_vec()
    };
    let mut out = Vec::new();
    for gun in &guns {
        let repo = dir.repo(gun)?;
        let Some(state) = pull::state(&repo)? else {
            continue;
        };
        let mut files: BTreeMap<String, &[u8]> = BTreeMap::new();
        files.insert("targets".into(), state.targets.as_slice());
        for (name, bytes) in &state.delegations {
            files.insert(name.clone(), bytes.as_slice());
        }
        for (role, bytes) in files {
            let doc = Signed::<Targets>::parse(&format!("pulled {role}.json"), bytes)?;
            let expires = doc.signed.expires.instant();
            let days_left = now.days_until(expires);
            if days_left >= EXPIRY_WARNING_DAYS {
                continue;
            }
            let remedy = if role == "targets" {
                format!(
                    "`rootkeeper root renew-targets --gun {gun}` re-signs it with the repository key"
                )
            } else {
                format!(
                    "the signers' next `docker trust sign` re-signs {role} for 3 years; or remove the signer"
                )
            };
            out.push(ExpiryWarning {
                gun: gun.clone(),
                role,
                expires: expires.to_string(),
                days_left,
                pulled_at: state.record.at.clone(),
                remedy,
            });
        }
    }
    Ok(out)
}

/// The text of a key file's key for messages: its key ID and docker's short form.
pub fn describe_key(key: &PublicKey) -> String {
    let id = notary::key_id(key);
    format!(
        "{} key {id} (docker shows {})",
        key.keytype,
        docker_short(&id)
    )
}

/// The base64 of a key's public bytes (for tests and reports).
pub fn public_b64(key: &PublicKey) -> String {
    B64.encode(key.public())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tuf::model::{GoTime, Version};

    const DOCKER_PUB: &str = "-----BEGIN PUBLIC KEY-----\nrole: ci\n\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE7RIMJuEN6WbTzsbkbq5ttInv1hMX\nplENSc1GmU+ByWQ1rsq2NdEDQNfkXse35Up7W9SSr9S4lVvzLk13MO9f6g==\n-----END PUBLIC KEY-----\n";

    fn now() -> UtcTime {
        UtcTime::parse("2026-01-01T00:00:00Z").unwrap()
    }

    fn key(n: u8) -> PublicKey {
        let sk = p256::SecretKey::from_slice(&[n; 32]).unwrap();
        let der = sk.public_key().to_public_key_der().unwrap();
        PublicKey::new(KeyType::Ecdsa, der.as_bytes().to_vec())
    }

    fn targets() -> Targets {
        notary::new_targets(now().plus(crate::tuf::model::days(30)), Version::FIRST)
    }

    #[test]
    fn docker_pub_files_are_read_as_docker_reads_them() {
        let k = parse_signer_key("ci.pub", DOCKER_PUB.as_bytes(), now()).unwrap();
        assert_eq!(k.keytype, KeyType::Ecdsa);
        assert!(public_b64(&k).starts_with("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE7RIM"));
        // Without the header, with CRLF: the same key.
        let plain = DOCKER_PUB.replace("role: ci\n\n", "").replace('\n', "\r\n");
        assert_eq!(parse_signer_key("p", plain.as_bytes(), now()).unwrap(), k);
    }

    #[test]
    fn key_files_are_strict() {
        let two = format!("{DOCKER_PUB}{DOCKER_PUB}");
        let cases: Vec<(String, &str)> = vec![
            (two, "more than its one PEM block"),
            (
                format!("junk\n{DOCKER_PUB}"),
                "does not start with a PEM block",
            ),
            (
                DOCKER_PUB.replace("PUBLIC KEY", "EC PRIVATE KEY"),
                "`EC PRIVATE KEY`",
            ),
            (
                DOCKER_PUB.replace("-----END PUBLIC KEY-----\n", ""),
                "no `-----END",
            ),
            (DOCKER_PUB.replace("6g==", "6g="), "canonical base64"),
            (DOCKER_PUB.replace("MFkw", "MFk*"), "not base64"),
            (
                DOCKER_PUB.replace(
                    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE",
                    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAF",
                ),
                "P-256",
            ),
            (String::new(), "is empty"),
        ];
        for (text, want) in cases {
            let err = parse_signer_key("k.pub", text.as_bytes(), now())
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{want}: {err}");
        }
        // A compressed point is a P-256 key Go would store in other bytes than it shows.
        let sk = p256::SecretKey::from_slice(&[7; 32]).unwrap();
        let point = p256::elliptic_curve::sec1::ToSec1Point::to_sec1_point(&sk.public_key(), true);
        let mut der = hex::decode("3039301306072a8648ce3d020106082a8648ce3d030107032200").unwrap();
        der.extend_from_slice(point.as_bytes());
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            B64.encode(&der)
        );
        let err = parse_signer_key("c.pub", pem.as_bytes(), now())
            .unwrap_err()
            .to_string();
        assert!(err.contains("another encoding"), "{err}");
    }

    #[test]
    fn a_certificate_becomes_an_x509_key_of_its_go_pem() {
        let signer = crate::backend::memory::MemorySigner::from_scalar(&[9; 32], "signer").unwrap();
        let day = std::time::Duration::from_secs(86_400);
        let at = now().to_system();
        let pem = crate::x509::root_certificate(&signer, "ci", at - day, at + day).unwrap();
        let key = parse_signer_key("ci.crt", pem.as_bytes(), now()).unwrap();
        assert_eq!(key.keytype, KeyType::EcdsaX509);
        assert_eq!(key.public(), pem.as_bytes());
        // Expired by the time it is read: notary refuses it, so does rootkeeper.
        let later = now().plus(day * 3);
        let err = parse_signer_key("ci.crt", pem.as_bytes(), later).unwrap_err();
        assert!(err.to_string().contains("not now"), "{err}");
    }

    #[test]
    fn names_follow_dockers_rule() {
        for ok in ["ci", "0day", "a_b-c", "alice"] {
            check_signer_name(ok).unwrap();
        }
        for bad in ["", "releases", "Ci", "-ci", "_ci", "c i", "c/i", "é"] {
            assert!(check_signer_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn add_and_remove_as_notary_does() {
        let (a, b) = (key(1), key(2));
        let (ida, idb) = (notary::key_id(&a), notary::key_id(&b));
        let (t, change) = add_signer(&targets(), "alice", std::slice::from_ref(&a)).unwrap();
        let names: Vec<&str> = t
            .delegations
            .roles
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(names, ["targets/alice", RELEASES]);
        assert!(
            t.delegations
                .roles
                .iter()
                .all(|r| r.paths == [""] && r.threshold == Threshold::ONE)
        );
        assert_eq!(change.roles.len(), 2);
        let (t, _) = add_signer(&t, "bob", std::slice::from_ref(&b)).unwrap();
        let names: Vec<&str> = t
            .delegations
            .roles
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(names, ["targets/alice", RELEASES, "targets/bob"]);
        let releases = &t.delegations.roles[1];
        assert_eq!(releases.keyids, [ida.clone(), idb.clone()]);
        assert_eq!(t.delegations.keys.len(), 2);
        // Adding the same key again changes nothing.
        let (again, change) = add_signer(&t, "bob", std::slice::from_ref(&b)).unwrap();
        assert_eq!(again, t);
        assert!(change.added_to_signer.is_empty() && change.added_to_releases.is_empty());
        // A key shared by two signers: allowed, noted, and kept in releases on removal.
        let (shared, change) = add_signer(&t, "bob-ci", std::slice::from_ref(&b)).unwrap();
        assert!(
            change.notes.iter().any(|n| n.contains("signer `bob`")),
            "{:?}",
            change.notes
        );
        let (after, change) = remove_signer(&shared, "bob").unwrap();
        assert!(change.removed_from_releases.is_empty());
        assert!(after.delegations.roles[1].keyids.contains(&idb));
        // Removing alice: her key leaves releases and the key table; bob's stays.
        let (after, change) = remove_signer(&t, "alice").unwrap();
        assert_eq!(change.removed_from_releases, [ida]);
        let names: Vec<&str> = after
            .delegations
            .roles
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(names, [RELEASES, "targets/bob"]);
        assert_eq!(after.delegations.keys.keys().collect::<Vec<_>>(), [&idb]);
        // The last signer: releases goes too.
        let (empty, change) = remove_signer(&after, "bob").unwrap();
        assert!(empty.delegations.roles.is_empty() && empty.delegations.keys.is_empty());
        assert!(
            change
                .roles
                .iter()
                .any(|r| r.contains("targets/releases removed"))
        );
        assert!(matches!(
            remove_signer(&t, "carol"),
            Err(Error::NoSuchSigner { .. })
        ));
        assert!(remove_signer(&t, "releases").is_err());
        // The targets stay as they are: expiry and version are the caller's.
        assert_eq!(
            after.expires,
            GoTime::utc(now().plus(crate::tuf::model::days(30)))
        );
    }
}
