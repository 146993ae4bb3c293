//! Every client rule, applied before anything is exported or published. Each rule has a name
//! (listed in docs/formats.md); the first broken one is reported as [`Error::Rule`].
//!
//! The rules follow notary's client and server (`ValidateRoot`, `VerifySignatures`,
//! `validateUpdate`): key IDs are hashes of the keys; files equal Go's re-serialisation of
//! themselves; root certificates are single non-CA leaves with CN = GUN and valid now; root
//! meets its own threshold and, on rotation, the previous root's; versions and expiries hold;
//! the snapshot's hashes match the exact root and targets bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::tuf::model::{Envelope, MetaRole, PublicKey, Role, Root, Targets, UtcTime};
use crate::tuf::notary::{self, ECDSA_X509, ROLES};

fn rule(file: &str, rule: &'static str, detail: impl Into<String>) -> Error {
    Error::Rule {
        file: file.into(),
        rule,
        detail: detail.into(),
    }
}

/// Parses a file and checks that its bytes are exactly Go's re-serialisation of themselves
/// (notary-server hashes its own re-serialisation; any difference silently breaks the repo).
pub fn parse_exact(file: &str, bytes: &[u8]) -> Result<Envelope> {
    let envelope = Envelope::parse(file, bytes)?;
    let again = envelope
        .to_bytes()
        .map_err(|e| rule(file, "canonical-round-trip", e.to_string()))?;
    if again != bytes {
        let at = again
            .iter()
            .zip(bytes)
            .position(|(a, b)| a != b)
            .unwrap_or(again.len().min(bytes.len()));
        return Err(rule(
            file,
            "canonical-round-trip",
            format!(
                "the bytes differ from their canonical form at offset {at}; notary-server would hash other bytes than these"
            ),
        ));
    }
    Ok(envelope)
}

/// The key IDs of `role` whose signatures on `envelope` are valid, distinct. A signature whose
/// key ID does not match the hash of its key is an error, as in notary.
pub fn valid_signers(
    file: &str,
    envelope: &Envelope,
    keys: &BTreeMap<String, PublicKey>,
    role: &Role,
) -> Result<BTreeSet<String>> {
    valid_signers_trusting(file, envelope, keys, role, &BTreeSet::new())
}

/// Like [`valid_signers`], but counts the signatures by `checked` key IDs as valid without
/// checking them again: for signatures this process made and already checked with `p256`.
pub fn valid_signers_trusting(
    file: &str,
    envelope: &Envelope,
    keys: &BTreeMap<String, PublicKey>,
    role: &Role,
    checked: &BTreeSet<String>,
) -> Result<BTreeSet<String>> {
    let message = envelope.signed_bytes()?;
    let mut valid = BTreeSet::new();
    for sig in &envelope.signatures {
        if !role.keyids.contains(&sig.keyid) {
            continue;
        }
        let Some(key) = keys.get(&sig.keyid) else {
            continue;
        };
        if checked.contains(&sig.keyid) {
            valid.insert(sig.keyid.clone());
            continue;
        }
        if notary::key_id(key) != sig.keyid {
            return Err(rule(
                file,
                "key-ids",
                format!(
                    "signature key ID {} does not match the hash of its key",
                    sig.keyid
                ),
            ));
        }
        if notary::check_signature(key, sig, &message)? {
            valid.insert(sig.keyid.clone());
        } else if role.keyids.contains(&sig.keyid) {
            return Err(rule(
                file,
                "signatures",
                format!("the signature by key {} does not verify", short(&sig.keyid)),
            ));
        }
    }
    Ok(valid)
}

/// The first 8 characters of a key ID.
pub fn short(keyid: &str) -> &str {
    &keyid[..keyid.len().min(8)]
}

fn check_expiry(file: &str, name: &'static str, expires: &str, now: UtcTime) -> Result<UtcTime> {
    let at = UtcTime::parse(expires).map_err(|e| rule(file, name, e.to_string()))?;
    if at <= now {
        return Err(rule(file, name, format!("expired at {expires}")));
    }
    Ok(at)
}

/// What was verified, for reports.
#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    /// The GUN the root certificates name.
    pub gun: String,
    /// Root version.
    pub root_version: u64,
    /// Root expiry.
    pub root_expires: String,
    /// Valid root signatures / threshold.
    pub root_signatures: (usize, u64),
    /// Targets version, if checked.
    pub targets_version: Option<u64>,
    /// Snapshot version, if checked (absent when the server manages it).
    pub snapshot_version: Option<u64>,
    /// The rules that passed, in order.
    pub rules: Vec<&'static str>,
}

/// Files of one repository to verify.
#[derive(Debug, Clone, Copy)]
pub struct RepoFiles<'a> {
    /// root.json bytes.
    pub root: &'a [u8],
    /// targets.json bytes.
    pub targets: Option<&'a [u8]>,
    /// snapshot.json bytes.
    pub snapshot: Option<&'a [u8]>,
}

/// Checks a root file alone: structure, key IDs, certificates, expiry, its own threshold, and
/// (with `previous`) the rotation rules. `gun` may be `None` to take it from the certificates.
pub fn verify_root(
    bytes: &[u8],
    gun: Option<&str>,
    previous: Option<&[u8]>,
    now: UtcTime,
) -> Result<(Root, Envelope, Verified)> {
    let file = "root.json";
    let mut passed = Vec::new();
    let envelope = parse_exact(file, bytes)?;
    passed.push("canonical-round-trip");
    if envelope.type_name() != "Root" {
        return Err(rule(
            file,
            "structure",
            format!("_type is `{}`, not `Root`", envelope.type_name()),
        ));
    }
    let root: Root = envelope.typed(file)?;
    if root.version < 1 {
        return Err(rule(file, "structure", "version must be at least 1"));
    }
    for name in ROLES {
        let role = root
            .roles
            .get(name)
            .ok_or_else(|| rule(file, "structure", format!("role `{name}` is missing")))?;
        if role.threshold < 1 {
            return Err(rule(
                file,
                "structure",
                format!("role `{name}` has threshold 0"),
            ));
        }
        if role.keyids.is_empty() {
            return Err(rule(
                file,
                "structure",
                format!("role `{name}` has no keys"),
            ));
        }
        for id in &role.keyids {
            if !root.keys.contains_key(id) {
                return Err(rule(
                    file,
                    "structure",
                    format!("role `{name}` lists key {} that is not in keys", short(id)),
                ));
            }
        }
        if role.threshold as usize > role.keyids.len() {
            return Err(rule(
                file,
                "structure",
                format!(
                    "role `{name}` needs {} signatures but has {} keys",
                    role.threshold,
                    role.keyids.len()
                ),
            ));
        }
    }
    passed.push("structure");
    for (id, key) in &root.keys {
        if &notary::key_id(key) != id {
            return Err(rule(
                file,
                "key-ids",
                format!(
                    "key listed as {} hashes to {}",
                    short(id),
                    short(&notary::key_id(key))
                ),
            ));
        }
        if key.keyval.private.is_some() {
            return Err(rule(
                file,
                "key-ids",
                format!("key {} carries private material", short(id)),
            ));
        }
    }
    passed.push("key-ids");

    let root_role = &root.roles["root"];
    let valid = valid_signers(file, &envelope, &root.keys, root_role)?;
    if (valid.len() as u64) < root_role.threshold {
        return Err(rule(
            file,
            "root-threshold",
            format!(
                "{} of {} required root signatures",
                valid.len(),
                root_role.threshold
            ),
        ));
    }
    passed.push("root-threshold");

    let mut cert_not_after = None;
    let mut names = BTreeSet::new();
    for id in &root_role.keyids {
        let key = &root.keys[id];
        if key.keytype != ECDSA_X509 {
            return Err(rule(
                file,
                "root-certs",
                format!(
                    "root key {} is `{}`; notary clients only accept certificate (ecdsa-x509) root keys",
                    short(id),
                    key.keytype
                ),
            ));
        }
        let certs =
            notary::key_certificates(key).map_err(|e| rule(file, "root-certs", e.to_string()))?;
        let leaves = certs.iter().filter(|c| !c.is_ca).count();
        if leaves != 1 || certs[0].is_ca {
            return Err(rule(
                file,
                "root-certs",
                format!(
                    "root key {} must hold exactly one non-CA certificate, first",
                    short(id)
                ),
            ));
        }
        if notary::rebuilt_pem(key)? != String::from_utf8_lossy(&base64_decode(&key.keyval.public))
        {
            return Err(rule(
                file,
                "root-certs",
                format!(
                    "root key {}'s PEM is not in Go's encoding; clients would compute another key ID",
                    short(id)
                ),
            ));
        }
        let leaf = &certs[0];
        if leaf.sha1_signature {
            return Err(rule(
                file,
                "root-certs",
                format!("root certificate {} is signed with SHA-1", short(id)),
            ));
        }
        let cn = leaf.common_name.clone().unwrap_or_default();
        names.insert(cn.clone());
        if let Some(gun) = gun
            && cn != gun
        {
            return Err(rule(
                file,
                "root-cn",
                format!(
                    "root certificate {} has CN `{cn}`, not the GUN `{gun}`",
                    short(id)
                ),
            ));
        }
        let not_before = UtcTime::from_system(leaf.not_before);
        let not_after = UtcTime::from_system(leaf.not_after);
        if not_before > now.plus(Duration::from_secs(86_400))
            || now > not_after
            || not_before > not_after
        {
            return Err(rule(
                file,
                "root-cert-validity",
                format!(
                    "root certificate {} is valid from {not_before} to {not_after}, not now",
                    short(id)
                ),
            ));
        }
        cert_not_after = Some(cert_not_after.map_or(not_after, |t: UtcTime| t.min(not_after)));
    }
    let gun = match gun {
        Some(g) => g.to_owned(),
        None if names.len() == 1 => names.into_iter().next().unwrap_or_default(),
        None => {
            return Err(rule(
                file,
                "root-cn",
                format!("root certificates name different GUNs: {names:?}"),
            ));
        }
    };
    passed.extend(["root-certs", "root-cn", "root-cert-validity"]);

    let expires = check_expiry(file, "root-expiry", &root.expires, now)?;
    if let Some(limit) = cert_not_after
        && expires.whole_seconds() > limit
    {
        return Err(rule(
            file,
            "root-expiry",
            format!(
                "root expires {} after its certificate ({limit}); clients would reject it then",
                root.expires
            ),
        ));
    }
    passed.push("root-expiry");

    let mut owners: BTreeMap<String, &str> = BTreeMap::new();
    for name in ROLES {
        for id in &root.roles[name].keyids {
            let canonical = notary::canonical_key_id(&root.keys[id])?;
            if let Some(other) = owners.insert(canonical, name)
                && other != name
            {
                return Err(rule(
                    file,
                    "distinct-role-keys",
                    format!("key {} serves both `{other}` and `{name}`", short(id)),
                ));
            }
        }
    }
    passed.push("distinct-role-keys");

    match previous {
        Some(prev_bytes) => {
            let prev_env = Envelope::parse("previous root.json", prev_bytes)?;
            let prev: Root = prev_env.typed("previous root.json")?;
            if root.version != prev.version + 1 {
                return Err(rule(
                    file,
                    "root-version",
                    format!(
                        "version {} does not follow the previous root's {}",
                        root.version, prev.version
                    ),
                ));
            }
            let prev_role = prev
                .roles
                .get("root")
                .ok_or_else(|| rule("previous root.json", "structure", "no root role"))?;
            let by_old = valid_signers(file, &envelope, &prev.keys, prev_role)?;
            if (by_old.len() as u64) < prev_role.threshold {
                return Err(rule(
                    file,
                    "root-rotation",
                    format!(
                        "{} of the {} signatures the previous root requires",
                        by_old.len(),
                        prev_role.threshold
                    ),
                ));
            }
            passed.extend(["root-version", "root-rotation"]);
        }
        None => passed.push("root-version"),
    }

    let verified = Verified {
        gun,
        root_version: root.version,
        root_expires: root.expires.clone(),
        root_signatures: (valid.len(), root_role.threshold),
        targets_version: None,
        snapshot_version: None,
        rules: passed,
    };
    Ok((root, envelope, verified))
}

/// Checks a repository: the root (see [`verify_root`]), then targets and snapshot against it.
pub fn verify_repo(
    files: RepoFiles<'_>,
    gun: Option<&str>,
    previous: Option<&[u8]>,
    now: UtcTime,
) -> Result<Verified> {
    let (root, _, mut verified) = verify_root(files.root, gun, previous, now)?;
    if let Some(bytes) = files.targets {
        let file = "targets.json";
        let envelope = parse_exact(file, bytes)?;
        if envelope.type_name() != "Targets" {
            return Err(rule(
                file,
                "structure",
                format!("_type is `{}`, not `Targets`", envelope.type_name()),
            ));
        }
        let targets: Targets = envelope.typed(file)?;
        if targets.version < 1 {
            return Err(rule(file, "structure", "version must be at least 1"));
        }
        let role = &root.roles["targets"];
        let valid = valid_signers(file, &envelope, &root.keys, role)?;
        if (valid.len() as u64) < role.threshold {
            return Err(rule(
                file,
                "targets-threshold",
                format!(
                    "{} of {} required targets signatures",
                    valid.len(),
                    role.threshold
                ),
            ));
        }
        check_expiry(file, "targets-expiry", &targets.expires, now)?;
        verified.targets_version = Some(targets.version);
        verified
            .rules
            .extend(["targets-threshold", "targets-expiry"]);
    }
    if let Some(bytes) = files.snapshot {
        let file = "snapshot.json";
        let envelope = parse_exact(file, bytes)?;
        if envelope.type_name() != "Snapshot" {
            return Err(rule(
                file,
                "structure",
                format!("_type is `{}`, not `Snapshot`", envelope.type_name()),
            ));
        }
        let snapshot: MetaRole = envelope.typed(file)?;
        let role = &root.roles["snapshot"];
        let valid = valid_signers(file, &envelope, &root.keys, role)?;
        if (valid.len() as u64) < role.threshold {
            return Err(rule(
                file,
                "snapshot-threshold",
                format!(
                    "{} of {} required snapshot signatures",
                    valid.len(),
                    role.threshold
                ),
            ));
        }
        check_expiry(file, "snapshot-expiry", &snapshot.expires, now)?;
        for (name, bytes) in [("root", Some(files.root)), ("targets", files.targets)] {
            let Some(bytes) = bytes else { continue };
            let want = notary::file_meta(bytes);
            let have = snapshot
                .meta
                .get(name)
                .ok_or_else(|| rule(file, "snapshot-meta", format!("no entry for {name}")))?;
            let sha256_ok = have.hashes.get("sha256") == want.hashes.get("sha256");
            let sha512_ok = have
                .hashes
                .get("sha512")
                .is_none_or(|h| Some(h) == want.hashes.get("sha512"));
            if !sha256_ok || !sha512_ok || have.length != want.length {
                return Err(rule(
                    file,
                    "snapshot-meta",
                    format!("its hash of {name}.json does not match the {name}.json beside it"),
                ));
            }
        }
        verified.snapshot_version = Some(snapshot.version);
        verified
            .rules
            .extend(["snapshot-threshold", "snapshot-expiry", "snapshot-meta"]);
    }
    Ok(verified)
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap_or_default()
}
