//! Every client rule, applied before anything is exported or published, and to every file
//! read back. Each rule has a name (listed with its error in docs/formats.md); rules run in
//! the order listed there and the first broken one is reported as [`Error::Rule`], so a
//! tampered file names its broken signature before any certificate or date rule.
//!
//! The rules follow notary's client and server (`ValidateRoot`, `VerifySignatures`,
//! `validateUpdate`) and are stricter where notary would silently read something else than
//! rootkeeper shows: thresholds count distinct keys (canonical key IDs), not certificates; a
//! root key is one certificate, never a chain; a subject has exactly one CN.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::tuf::model::{
    DelegationRole, FileMeta, KeyId, KeyType, PublicKey, RoleKeys, RoleName, Root, Signed,
    Snapshot, Targets, Timestamp, UtcTime, escape_untrusted,
};
use crate::tuf::notary::{self, Verifying};
use crate::x509::CertFacts;

/// Every rule, in the order it is checked (docs/formats.md lists each with its error).
pub const RULES: &[&str] = &[
    "parse",
    "fields",
    "canonical-round-trip",
    "key-ids",
    "structure",
    "signatures",
    "root-threshold",
    "root-certs",
    "root-cn",
    "root-cert-validity",
    "root-expiry",
    "role-key-types",
    "distinct-role-keys",
    "root-version",
    "root-rotation",
    "targets-threshold",
    "targets-expiry",
    "delegations",
    "target-hashes",
    "snapshot-threshold",
    "snapshot-expiry",
    "snapshot-meta",
    "timestamp-threshold",
    "timestamp-expiry",
    "timestamp-meta",
];

fn rule(file: &str, rule: &'static str, detail: impl Into<String>) -> Error {
    Error::Rule {
        file: file.into(),
        rule,
        detail: detail.into(),
    }
}

/// What is known about one key of a file, computed once: its canonical ID, the key that
/// checks its signatures, and for a certificate key the certificate facts.
#[derive(Debug, Clone)]
pub struct KeyFacts {
    /// The key as the file lists it.
    pub key: PublicKey,
    /// The canonical key ID (of the bare key; the key's one identity).
    pub canonical: KeyId,
    /// Checks signatures.
    pub verifying: Verifying,
    /// Every certificate of an x509 key, leaf first.
    pub certs: Vec<CertFacts>,
    /// The PEM of an x509 key is byte for byte what Go re-encodes.
    pub go_pem: bool,
}

/// Checks that a key's ID is the hash of the key and that its material is a usable key of its
/// type (also for keys that no rule uses to check a signature, such as the timestamp key).
pub fn key_facts(file: &str, id: &KeyId, key: &PublicKey) -> Result<KeyFacts> {
    let computed = notary::key_id(key);
    if &computed != id {
        return Err(rule(
            file,
            "key-ids",
            format!("the key listed as {id} hashes to {computed}"),
        ));
    }
    let unusable = |e: Error| rule(file, "key-ids", format!("key {id}: {e}"));
    let verifying = notary::verifying_key(key).map_err(unusable)?;
    let (certs, go_pem) = match key.keytype {
        KeyType::EcdsaX509 => {
            let certs = notary::key_certificates(key).map_err(unusable)?;
            let go_pem = notary::rebuilt_pem(key)
                .map(|pem| pem.as_bytes() == key.public())
                .unwrap_or(false);
            (certs, go_pem)
        }
        KeyType::Ecdsa | KeyType::Ed25519 => (Vec::new(), false),
    };
    let canonical = notary::canonical_key_id(key).map_err(unusable)?;
    Ok(KeyFacts {
        key: key.clone(),
        canonical,
        verifying,
        certs,
        go_pem,
    })
}

/// The facts of every key of a key map, by key ID.
pub fn key_table(
    file: &str,
    keys: &BTreeMap<KeyId, PublicKey>,
) -> Result<BTreeMap<KeyId, KeyFacts>> {
    keys.iter()
        .map(|(id, key)| Ok((id.clone(), key_facts(file, id, key)?)))
        .collect()
}

fn check_role_keys(
    file: &str,
    name: &str,
    role: &RoleKeys,
    keys: &BTreeMap<KeyId, KeyFacts>,
    rule_name: &'static str,
) -> Result<()> {
    let mut seen = BTreeSet::new();
    let mut distinct = BTreeSet::new();
    for id in &role.keyids {
        if !seen.insert(id) {
            return Err(rule(
                file,
                rule_name,
                format!("role `{name}` lists key {id} twice"),
            ));
        }
        let facts = keys.get(id).ok_or_else(|| {
            rule(
                file,
                rule_name,
                format!("role `{name}` lists key {id}, which is not among the keys"),
            )
        })?;
        distinct.insert(&facts.canonical);
    }
    let distinct = u64::try_from(distinct.len()).unwrap_or(u64::MAX);
    if role.threshold.get() > distinct {
        return Err(rule(
            file,
            rule_name,
            format!(
                "role `{name}` needs {} signatures but has {distinct} distinct key(s)",
                role.threshold
            ),
        ));
    }
    Ok(())
}

/// Who signed a file for one role: distinct keys with valid signatures, and what else was
/// found among the signatures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SignatureReport {
    /// Key IDs (as the role lists them) whose signature is valid.
    pub valid: BTreeSet<KeyId>,
    /// Canonical IDs of the distinct keys with a valid signature: what thresholds count.
    pub valid_keys: BTreeSet<KeyId>,
    /// Key IDs of the role whose signature does not verify.
    pub invalid: BTreeSet<KeyId>,
    /// Signatures by keys that are not in the role (ignored, as notary ignores them).
    pub not_in_role: BTreeSet<KeyId>,
    /// Key IDs that sign more than once.
    pub duplicated: BTreeSet<KeyId>,
}

impl SignatureReport {
    /// Distinct keys with valid signatures.
    pub fn count(&self) -> u64 {
        u64::try_from(self.valid_keys.len()).unwrap_or(u64::MAX)
    }
}

/// Checks the signatures of `doc` against `role` (keys in `keys`) without deciding anything:
/// see [`require_signatures`] for the rule.
pub fn signature_report<T: crate::tuf::model::RoleFile>(
    doc: &Signed<T>,
    message: &[u8],
    keys: &BTreeMap<KeyId, KeyFacts>,
    role: &RoleKeys,
) -> SignatureReport {
    signature_report_trusting(doc, message, keys, role, &[])
}

/// Like [`signature_report`], but counts the signatures in `checked` (made by this process and
/// already checked as they were made, byte for byte these) as valid without checking them
/// again.
pub fn signature_report_trusting<T: crate::tuf::model::RoleFile>(
    doc: &Signed<T>,
    message: &[u8],
    keys: &BTreeMap<KeyId, KeyFacts>,
    role: &RoleKeys,
    checked: &[crate::tuf::model::Signature],
) -> SignatureReport {
    let mut report = SignatureReport::default();
    let mut seen = BTreeSet::new();
    for sig in &doc.signatures {
        if !seen.insert(&sig.keyid) {
            report.duplicated.insert(sig.keyid.clone());
            continue;
        }
        let Some(facts) = role
            .keyids
            .contains(&sig.keyid)
            .then(|| keys.get(&sig.keyid))
            .flatten()
        else {
            report.not_in_role.insert(sig.keyid.clone());
            continue;
        };
        if checked.contains(sig) || notary::check_signature(&facts.verifying, sig, message) {
            report.valid.insert(sig.keyid.clone());
            report.valid_keys.insert(facts.canonical.clone());
        } else {
            report.invalid.insert(sig.keyid.clone());
        }
    }
    report
}

/// The signature rules for one role: no key signs twice, every signature by a key of the role
/// verifies, and the distinct keys with valid signatures meet the threshold.
pub fn require_signatures(
    file: &str,
    report: &SignatureReport,
    role_name: &str,
    role: &RoleKeys,
    threshold_rule: &'static str,
) -> Result<()> {
    if let Some(id) = report.duplicated.iter().next() {
        return Err(rule(
            file,
            "signatures",
            format!("key {id} signs more than once"),
        ));
    }
    if let Some(id) = report.invalid.iter().next() {
        return Err(rule(
            file,
            "signatures",
            format!("the signature by key {id} does not verify"),
        ));
    }
    if report.count() < role.threshold.get() {
        return Err(rule(
            file,
            threshold_rule,
            format!(
                "{} of {} required {role_name} signatures (counted by distinct key)",
                report.count(),
                role.threshold
            ),
        ));
    }
    Ok(())
}

fn check_expiry(
    file: &str,
    name: &'static str,
    expires: crate::tuf::model::GoTime,
    now: UtcTime,
) -> Result<UtcTime> {
    let at = expires.instant();
    if at <= now {
        return Err(rule(file, name, format!("expired at {expires}")));
    }
    Ok(at)
}

/// A root file that passed every root rule.
#[derive(Debug, Clone)]
pub struct CheckedRoot {
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// The typed document.
    pub doc: Signed<Root>,
    /// The GUN its certificates name.
    pub gun: String,
    /// Facts of every key, by key ID.
    pub keys: BTreeMap<KeyId, KeyFacts>,
    /// Root signatures.
    pub signatures: SignatureReport,
    /// The earliest NotAfter among the root certificates.
    pub certs_not_after: UtcTime,
    /// The rules that compared something and passed, in order.
    pub rules: Vec<&'static str>,
}

impl CheckedRoot {
    /// The keys (with their facts) of a role.
    pub fn role_keys(&self, role: RoleName) -> impl Iterator<Item = (&KeyId, &KeyFacts)> {
        self.doc
            .signed
            .roles
            .get(role)
            .keyids
            .iter()
            .filter_map(|id| self.keys.get(id).map(|f| (id, f)))
    }
}

/// Parses and checks a root file: every root rule, and with `previous` (the root it replaces,
/// itself checked) the rotation rules. `gun` may be `None` to take it from the certificates.
pub fn check_root(
    file: &str,
    bytes: &[u8],
    gun: Option<&str>,
    previous: Option<&CheckedRoot>,
    now: UtcTime,
) -> Result<CheckedRoot> {
    parse_and_check_root(
        file,
        bytes,
        &RootCheck {
            gun,
            previous,
            now,
            dates: true,
        },
    )
}

fn parse_and_check_root(file: &str, bytes: &[u8], check: &RootCheck<'_>) -> Result<CheckedRoot> {
    let doc = Signed::<Root>::parse(file, bytes)?;
    check_root_doc(file, bytes.to_vec(), doc, check)
}

/// How a root is checked.
#[derive(Debug, Clone, Copy)]
pub struct RootCheck<'a> {
    /// The GUN the certificates must name (`None`: take it from them).
    pub gun: Option<&'a str>,
    /// The root this one replaces, itself checked.
    pub previous: Option<&'a CheckedRoot>,
    /// Now.
    pub now: UtcTime,
    /// Check expiry and certificate validity. Off only for an older root of a chain, which
    /// notary's client walks through even when it has expired.
    pub dates: bool,
}

/// Checks an older root of a chain (its dates are not checked; see [`RootCheck::dates`]).
pub fn check_chain_root(
    file: &str,
    bytes: &[u8],
    gun: &str,
    previous: Option<&CheckedRoot>,
    now: UtcTime,
) -> Result<CheckedRoot> {
    parse_and_check_root(
        file,
        bytes,
        &RootCheck {
            gun: Some(gun),
            previous,
            now,
            dates: false,
        },
    )
}

/// The root rules on a parsed document.
pub fn check_root_doc(
    file: &str,
    bytes: Vec<u8>,
    doc: Signed<Root>,
    check: &RootCheck<'_>,
) -> Result<CheckedRoot> {
    let RootCheck {
        gun,
        previous,
        now,
        dates,
    } = *check;
    let mut passed = vec!["parse", "fields", "canonical-round-trip"];
    let root = &doc.signed;
    let keys = key_table(file, &root.keys)?;
    passed.push("key-ids");
    for role in RoleName::ALL {
        check_role_keys(
            file,
            role.as_str(),
            root.roles.get(role),
            &keys,
            "structure",
        )?;
    }
    passed.push("structure");

    let message = doc.signed_bytes()?;
    let root_role = &root.roles.root;
    let signatures = signature_report(&doc, &message, &keys, root_role);
    require_signatures(file, &signatures, "root", root_role, "root-threshold")?;
    passed.extend(["signatures", "root-threshold"]);

    let mut names = BTreeSet::new();
    let mut certs_not_after: Option<UtcTime> = None;
    for id in &root_role.keyids {
        let facts = keys
            .get(id)
            .ok_or_else(|| rule(file, "structure", format!("no key {id}")))?;
        if facts.key.keytype != KeyType::EcdsaX509 {
            return Err(rule(
                file,
                "root-certs",
                format!(
                    "root key {id} is `{}`; notary clients only accept certificate (ecdsa-x509) root keys",
                    facts.key.keytype
                ),
            ));
        }
        let [leaf] = facts.certs.as_slice() else {
            return Err(rule(
                file,
                "root-certs",
                format!(
                    "root key {id} holds {} certificates; a root key is one self-signed certificate, never a chain",
                    facts.certs.len()
                ),
            ));
        };
        if leaf.is_ca {
            return Err(rule(
                file,
                "root-certs",
                format!(
                    "root key {id}'s certificate is a CA certificate; notary reads it as an intermediate, not a root key"
                ),
            ));
        }
        if !facts.go_pem {
            return Err(rule(
                file,
                "root-certs",
                format!(
                    "root key {id}'s PEM is not in Go's encoding; clients would compute another key ID"
                ),
            ));
        }
        if leaf.sha1_signature {
            return Err(rule(
                file,
                "root-certs",
                format!("root certificate {id} is signed with SHA-1"),
            ));
        }
        let cn = match leaf.common_names.as_slice() {
            [one] => one.clone(),
            many => {
                return Err(rule(
                    file,
                    "root-cn",
                    format!(
                        "root certificate {id} has {} CNs; notary would read only the last, rootkeeper requires exactly one",
                        many.len()
                    ),
                ));
            }
        };
        if let Some(gun) = gun
            && cn != gun
        {
            return Err(rule(
                file,
                "root-cn",
                format!(
                    "root certificate {id} has CN `{}`, not the GUN `{}`",
                    escape_untrusted(&cn),
                    escape_untrusted(gun)
                ),
            ));
        }
        names.insert(cn);
        let not_before = UtcTime::from_system(leaf.not_before);
        let not_after = UtcTime::from_system(leaf.not_after);
        if not_before > not_after
            || (dates && (not_before > now.plus(Duration::from_secs(86_400)) || now > not_after))
        {
            return Err(rule(
                file,
                "root-cert-validity",
                format!("root certificate {id} is valid from {not_before} to {not_after}, not now"),
            ));
        }
        certs_not_after = Some(certs_not_after.map_or(not_after, |t| t.min(not_after)));
    }
    let gun = match (gun, names.len()) {
        (Some(g), _) => g.to_owned(),
        (None, 1) => names.into_iter().next().unwrap_or_default(),
        (None, _) => {
            return Err(rule(
                file,
                "root-cn",
                format!(
                    "root certificates name different GUNs: {}",
                    names
                        .iter()
                        .map(|n| escape_untrusted(n))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    };
    passed.extend(["root-certs", "root-cn", "root-cert-validity"]);
    let certs_not_after = certs_not_after.unwrap_or(now);

    let expires = if dates {
        check_expiry(file, "root-expiry", root.expires, now)?
    } else {
        root.expires.instant()
    };
    if expires.whole_seconds() > certs_not_after {
        return Err(rule(
            file,
            "root-expiry",
            format!(
                "root expires {} after its certificates ({certs_not_after}); clients would reject it then",
                root.expires
            ),
        ));
    }
    passed.push("root-expiry");

    for (role, allowed) in [
        (RoleName::Targets, &[KeyType::Ecdsa, KeyType::EcdsaX509][..]),
        (RoleName::Snapshot, &[KeyType::Ecdsa, KeyType::Ed25519][..]),
        (RoleName::Timestamp, &[KeyType::Ecdsa, KeyType::Ed25519][..]),
    ] {
        for id in &root.roles.get(role).keyids {
            let facts = keys
                .get(id)
                .ok_or_else(|| rule(file, "structure", format!("no key {id}")))?;
            if !allowed.contains(&facts.key.keytype) {
                return Err(rule(
                    file,
                    "role-key-types",
                    format!(
                        "the {role} key {id} is `{}`; a {role} key is {}",
                        facts.key.keytype,
                        allowed
                            .iter()
                            .map(|t| t.as_str())
                            .collect::<Vec<_>>()
                            .join(" or ")
                    ),
                ));
            }
        }
    }
    passed.push("role-key-types");

    let mut owners: BTreeMap<&KeyId, RoleName> = BTreeMap::new();
    for role in RoleName::ALL {
        for id in &root.roles.get(role).keyids {
            let Some(facts) = keys.get(id) else { continue };
            if let Some(other) = owners.insert(&facts.canonical, role)
                && other != role
            {
                return Err(rule(
                    file,
                    "distinct-role-keys",
                    format!("key {} serves both `{other}` and `{role}`", facts.canonical),
                ));
            }
        }
    }
    passed.push("distinct-role-keys");

    if let Some(prev) = previous {
        let want = prev.doc.signed.version.next()?;
        if root.version != want {
            return Err(rule(
                file,
                "root-version",
                format!(
                    "version {} does not follow the previous root's {}",
                    root.version, prev.doc.signed.version
                ),
            ));
        }
        let by_old = rotation_signatures(&doc, &message, prev, &gun);
        if by_old.count() < prev.doc.signed.roles.root.threshold.get() {
            return Err(rule(
                file,
                "root-rotation",
                format!(
                    "signed by {} of the {} keys the previous root (version {}) requires",
                    by_old.count(),
                    prev.doc.signed.roles.root.threshold,
                    prev.doc.signed.version
                ),
            ));
        }
        passed.extend(["root-version", "root-rotation"]);
    }

    Ok(CheckedRoot {
        bytes,
        gun,
        keys,
        signatures,
        certs_not_after,
        rules: passed,
        doc,
    })
}

/// The signatures on a new root by the previous root's keys, as notary counts them: the
/// previous root-role keys that are a single non-CA certificate with CN = GUN (expiry
/// ignored), by the key IDs the previous root lists (its PEM is Go's own, so notary rebuilds
/// the same IDs). Distinct keys are counted.
pub fn rotation_signatures(
    doc: &Signed<Root>,
    message: &[u8],
    previous: &CheckedRoot,
    gun: &str,
) -> SignatureReport {
    let eligible: BTreeMap<KeyId, KeyFacts> = previous
        .role_keys(RoleName::Root)
        .filter(|(_, f)| {
            f.go_pem
                && matches!(f.certs.as_slice(), [leaf] if !leaf.is_ca && leaf.common_names.last().map(String::as_str) == Some(gun))
        })
        .map(|(id, f)| (id.clone(), f.clone()))
        .collect();
    let role = RoleKeys {
        keyids: eligible.keys().cloned().collect(),
        threshold: previous.doc.signed.roles.root.threshold,
    };
    signature_report(doc, message, &eligible, &role)
}

/// A targets file that passed the targets rules.
#[derive(Debug, Clone)]
pub struct CheckedTargets {
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// The typed document.
    pub doc: Signed<Targets>,
    /// Signatures.
    pub signatures: SignatureReport,
}

/// Checks that a delegation name is one notary accepts as a direct child of `parent`.
pub fn check_delegation_name(name: &str, parent: &str) -> std::result::Result<(), String> {
    let valid_chars = name
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"-_/".contains(&c));
    let clean = !name.ends_with('/')
        && !name.contains("//")
        && name.split('/').all(|p| p != "." && p != "..");
    if !name.starts_with("targets/") || !valid_chars || name.len() >= 256 || !clean {
        return Err(format!(
            "`{}` is not a delegation name notary accepts (targets/ followed by a-z 0-9 - _ /, in clean form, under 256 characters)",
            escape_untrusted(name)
        ));
    }
    let parent_of = name.rsplit_once('/').map(|(p, _)| p);
    if parent_of != Some(parent) {
        return Err(format!(
            "`{}` is not a direct child of `{parent}`; notary refuses it there",
            escape_untrusted(name)
        ));
    }
    Ok(())
}

fn check_delegations(file: &str, role_name: &str, targets: &Targets) -> Result<()> {
    let keys = key_table(file, &targets.delegations.keys)
        .map_err(|e| rule(file, "delegations", e.to_string()))?;
    let mut names = BTreeSet::new();
    for role in &targets.delegations.roles {
        check_delegation_name(&role.name, role_name)
            .map_err(|why| rule(file, "delegations", why))?;
        if !names.insert(role.name.as_str()) {
            return Err(rule(
                file,
                "delegations",
                format!(
                    "the delegation `{}` is listed twice",
                    escape_untrusted(&role.name)
                ),
            ));
        }
        let as_role = RoleKeys {
            keyids: role.keyids.clone(),
            threshold: role.threshold,
        };
        check_role_keys(file, &role.name, &as_role, &keys, "delegations")?;
    }
    Ok(())
}

fn check_file_meta(file: &str, rule_name: &'static str, name: &str, meta: &FileMeta) -> Result<()> {
    let bad_len = |algo: &str, want: usize, have: usize| {
        rule(
            file,
            rule_name,
            format!(
                "the {algo} hash of `{}` is {have} bytes, not {want}",
                escape_untrusted(name)
            ),
        )
    };
    if meta.hashes.sha256.is_none() && meta.hashes.sha512.is_none() {
        return Err(rule(
            file,
            rule_name,
            format!("`{}` has no sha256 or sha512 hash", escape_untrusted(name)),
        ));
    }
    if let Some(h) = &meta.hashes.sha256
        && h.0.len() != 32
    {
        return Err(bad_len("sha256", 32, h.0.len()));
    }
    if let Some(h) = &meta.hashes.sha512
        && h.0.len() != 64
    {
        return Err(bad_len("sha512", 64, h.0.len()));
    }
    Ok(())
}

/// Parses and checks targets.json against a checked root.
pub fn check_targets(
    file: &str,
    bytes: &[u8],
    root: &CheckedRoot,
    now: UtcTime,
) -> Result<CheckedTargets> {
    let doc = Signed::<Targets>::parse(file, bytes)?;
    let role = &root.doc.signed.roles.targets;
    let signatures = signature_report(&doc, &doc.signed_bytes()?, &root.keys, role);
    require_signatures(file, &signatures, "targets", role, "targets-threshold")?;
    check_expiry(file, "targets-expiry", doc.signed.expires, now)?;
    check_delegations(file, "targets", &doc.signed)?;
    for (name, meta) in &doc.signed.targets {
        check_file_meta(file, "target-hashes", name, meta)?;
    }
    Ok(CheckedTargets {
        bytes: bytes.to_vec(),
        doc,
        signatures,
    })
}

/// Checks a delegation file (`targets/NAME`) against its role in the parent targets file.
pub fn check_delegation(
    file: &str,
    bytes: &[u8],
    parent: &Targets,
    role: &DelegationRole,
    now: UtcTime,
) -> Result<Signed<Targets>> {
    let doc = Signed::<Targets>::parse(file, bytes)?;
    let keys = key_table(file, &parent.delegations.keys)?;
    let as_role = RoleKeys {
        keyids: role.keyids.clone(),
        threshold: role.threshold,
    };
    let report = signature_report(&doc, &doc.signed_bytes()?, &keys, &as_role);
    require_signatures(file, &report, &role.name, &as_role, "targets-threshold")?;
    check_expiry(file, "targets-expiry", doc.signed.expires, now)?;
    check_delegations(file, &role.name, &doc.signed)?;
    for (name, meta) in &doc.signed.targets {
        check_file_meta(file, "target-hashes", name, meta)?;
    }
    Ok(doc)
}

/// Parses and checks snapshot.json against a checked root and the exact bytes of the files it
/// must cover (`root`, `targets`, and any delegations).
pub fn check_snapshot(
    file: &str,
    bytes: &[u8],
    root: &CheckedRoot,
    covers: &[(&str, &[u8])],
    now: UtcTime,
) -> Result<Signed<Snapshot>> {
    let doc = Signed::<Snapshot>::parse(file, bytes)?;
    let role = &root.doc.signed.roles.snapshot;
    let report = signature_report(&doc, &doc.signed_bytes()?, &root.keys, role);
    require_signatures(file, &report, "snapshot", role, "snapshot-threshold")?;
    check_expiry(file, "snapshot-expiry", doc.signed.expires, now)?;
    for (name, meta) in &doc.signed.meta {
        check_file_meta(file, "snapshot-meta", name, meta)?;
    }
    for required in ["root", "targets"] {
        if !doc.signed.meta.contains_key(required) {
            return Err(rule(
                file,
                "snapshot-meta",
                format!("no entry for {required}"),
            ));
        }
    }
    for (name, file_bytes) in covers {
        let meta = doc
            .signed
            .meta
            .get(*name)
            .ok_or_else(|| rule(file, "snapshot-meta", format!("no entry for {name}")))?;
        if meta.hashes.sha256.is_none() || !notary::meta_matches(meta, file_bytes) {
            return Err(rule(
                file,
                "snapshot-meta",
                format!("its hash of {name}.json does not match the {name}.json beside it"),
            ));
        }
    }
    Ok(doc)
}

/// Parses and checks timestamp.json against a checked root and the exact snapshot bytes.
pub fn check_timestamp(
    file: &str,
    bytes: &[u8],
    root: &CheckedRoot,
    snapshot: &[u8],
    now: UtcTime,
) -> Result<Signed<Timestamp>> {
    let doc = Signed::<Timestamp>::parse(file, bytes)?;
    let role = &root.doc.signed.roles.timestamp;
    let report = signature_report(&doc, &doc.signed_bytes()?, &root.keys, role);
    require_signatures(file, &report, "timestamp", role, "timestamp-threshold")?;
    check_expiry(file, "timestamp-expiry", doc.signed.expires, now)?;
    let names: Vec<&String> = doc.signed.meta.keys().collect();
    let meta = match (names.as_slice(), doc.signed.meta.get("snapshot")) {
        ([_], Some(meta)) => meta,
        _ => {
            return Err(rule(
                file,
                "timestamp-meta",
                "a timestamp names exactly one file, snapshot",
            ));
        }
    };
    check_file_meta(file, "timestamp-meta", "snapshot", meta)?;
    if meta.hashes.sha256.is_none() || !notary::meta_matches(meta, snapshot) {
        return Err(rule(
            file,
            "timestamp-meta",
            "its hash of snapshot.json does not match the snapshot served with it",
        ));
    }
    Ok(doc)
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
    /// Distinct root keys with valid signatures, and the threshold.
    pub root_signatures: (u64, u64),
    /// Targets version, if checked.
    pub targets_version: Option<u64>,
    /// Snapshot version, if checked (absent when the server manages it).
    pub snapshot_version: Option<u64>,
    /// The rules that compared something and passed, in order.
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
    /// timestamp.json bytes (checked against the snapshot, which must then be given).
    pub timestamp: Option<&'a [u8]>,
}

/// Checks a repository: the root (see [`check_root`]), then targets, snapshot and timestamp
/// against it, each file that is given.
pub fn verify_repo(
    files: RepoFiles<'_>,
    gun: Option<&str>,
    previous: Option<&CheckedRoot>,
    now: UtcTime,
) -> Result<(CheckedRoot, Verified)> {
    let root = check_root("root.json", files.root, gun, previous, now)?;
    let mut rules = root.rules.clone();
    let mut targets_version = None;
    if let Some(bytes) = files.targets {
        let targets = check_targets("targets.json", bytes, &root, now)?;
        targets_version = Some(targets.doc.signed.version.get());
        rules.extend([
            "targets-threshold",
            "targets-expiry",
            "delegations",
            "target-hashes",
        ]);
    }
    let mut snapshot_version = None;
    if let Some(bytes) = files.snapshot {
        let mut covers: Vec<(&str, &[u8])> = vec![("root", files.root)];
        if let Some(t) = files.targets {
            covers.push(("targets", t));
        }
        let snapshot = check_snapshot("snapshot.json", bytes, &root, &covers, now)?;
        snapshot_version = Some(snapshot.signed.version.get());
        rules.extend(["snapshot-threshold", "snapshot-expiry", "snapshot-meta"]);
    }
    if let Some(bytes) = files.timestamp {
        let snapshot = files.snapshot.ok_or_else(|| {
            rule(
                "timestamp.json",
                "timestamp-meta",
                "a timestamp is checked against the snapshot.json it names: give that too",
            )
        })?;
        check_timestamp("timestamp.json", bytes, &root, snapshot, now)?;
        rules.extend(["timestamp-threshold", "timestamp-expiry", "timestamp-meta"]);
    }
    let verified = Verified {
        gun: root.gun.clone(),
        root_version: root.doc.signed.version.get(),
        root_expires: root.doc.signed.expires.to_string(),
        root_signatures: (
            root.signatures.count(),
            root.doc.signed.roles.root.threshold.get(),
        ),
        targets_version,
        snapshot_version,
        rules,
    };
    Ok((root, verified))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delegation_names() {
        assert!(check_delegation_name("targets/releases", "targets").is_ok());
        assert!(check_delegation_name("targets/ci-bot_2", "targets").is_ok());
        for bad in [
            "targets",
            "targets/",
            "targets/Releases",
            "targets/a/b",
            "targets//a",
            "targets/./a",
            "releases",
            "targets/é",
        ] {
            assert!(check_delegation_name(bad, "targets").is_err(), "{bad}");
        }
        assert!(check_delegation_name("targets/a/b", "targets/a").is_ok());
        assert!(check_delegation_name(&format!("targets/{}", "a".repeat(250)), "targets").is_err());
    }
}
