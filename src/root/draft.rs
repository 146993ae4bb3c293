//! The draft model shared by every root operation: `pending/draft.json` records what the
//! command that made the draft (`root init`, `root rotate`, `signer add`…) meant the pending
//! documents to say, and every command that reads a draft checks the documents against it
//! before showing or signing anything.
//!
//! A draft changes the root, the targets, or both (each [`PendingDoc`] says whether it is to
//! be signed or is the current one, carried along so the draft is complete); a new root above
//! version 1 must also be signed by the previous root's threshold of its keys, which the draft
//! lists as signers `previous: true` under the previous root's key IDs.
//!
//! Drafts are unsigned and travel between custodians, so they are read as strictly as files
//! from a stranger: the documents must parse strictly, their signed bytes must hash to what
//! draft.json recorded, their keys and roles must be exactly the draft's signers and server
//! keys, and each signer must be in the inventory with the same public key.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::fingerprint::Fingerprint;
use crate::trustdir::{Inventory, RepoDir, json_bytes};
use crate::tuf::model::{
    FileMeta, KeyId, RoleName, Root, Signed, Snapshot, Targets, UtcTime, Version, escape_untrusted,
};
use crate::tuf::notary;
use crate::tuf::verify::{self, KeyFacts, SignatureReport};

/// The draft record's file name in `pending/` (and, after export, in `export/`).
pub const DRAFT_FILE: &str = "draft.json";

/// A document the draft will have signed: its version and the SHA-256 of its signed bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingDoc {
    /// Version.
    pub version: u64,
    /// Hex SHA-256 of the canonical signed bytes.
    pub signed_sha256: String,
    /// True when this draft collects signatures for the document; false when it is the
    /// current (complete) document, carried so the draft's files are a whole repository.
    #[serde(default = "yes")]
    pub sign: bool,
}

fn yes() -> bool {
    true
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl PendingDoc {
    /// The record of a document to sign.
    pub fn of(version: u64, signed: &[u8]) -> PendingDoc {
        PendingDoc {
            version,
            signed_sha256: hex::encode(Sha256::digest(signed)),
            sign: true,
        }
    }

    /// The record of a current document the draft does not change.
    pub fn current(version: u64, signed: &[u8]) -> PendingDoc {
        PendingDoc {
            sign: false,
            ..PendingDoc::of(version, signed)
        }
    }
}

/// How the draft's snapshot gets signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SnapshotPlan {
    /// The server holds the snapshot key and signs snapshots.
    ServerManaged,
    /// An offline snapshot key signs it once root and targets meet their thresholds.
    Offline {
        /// Snapshot version.
        version: u64,
        /// Snapshot expiry (Go form).
        expires: String,
    },
}

/// A key that must (or may) sign a draft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DraftSigner {
    /// The role it signs.
    pub role: RoleName,
    /// The key ID the document lists (for root keys, the certificate's ID for this GUN).
    pub keyid: KeyId,
    /// The canonical key ID: the key's one identity, as `key generate` showed it.
    pub key_id: KeyId,
    /// The key's URI.
    pub uri: String,
    /// True for a signature the new root needs from a key of the previous root, under the
    /// previous root's key ID for it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub previous: bool,
    /// For an optional signature by a key of an older root version (`root rotate --legacy`),
    /// under that version's key ID for it: the version. Clients that trusted that version
    /// then accept the new root at once, without walking the versions between.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy: Option<u64>,
}

/// A key the server holds, named in the draft's root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerKey {
    /// `timestamp` or `snapshot`.
    pub role: RoleName,
    /// Its key ID.
    pub keyid: KeyId,
}

/// `pending/draft.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Draft {
    /// Format version (1).
    pub format: u32,
    /// The GUN.
    pub gun: String,
    /// When the draft was made.
    pub created: String,
    /// What the draft does, for people (e.g. `a new repository`, `signer ci added`).
    #[serde(default)]
    pub purpose: String,
    /// The root.
    pub root: PendingDoc,
    /// The targets.
    pub targets: PendingDoc,
    /// How the snapshot is signed.
    pub snapshot: SnapshotPlan,
    /// The delegation files the repository has (from the server, as `server pull` verified
    /// them), which a new snapshot must list as they are.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub delegations: BTreeMap<String, FileMeta>,
    /// The keys that sign, by role.
    pub signers: Vec<DraftSigner>,
    /// The keys the server holds.
    pub server_keys: Vec<ServerKey>,
    /// Set when the draft was exported (it then lives in `export/` and is never signed again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exported: Option<Exported>,
}

/// When and where a draft was exported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exported {
    /// When.
    pub at: String,
    /// The folder written.
    pub out: String,
    /// The files written there.
    pub files: Vec<String>,
}

impl Draft {
    /// The draft's signers for a role (for root: under the new root).
    pub fn signers(&self, role: RoleName) -> impl Iterator<Item = &DraftSigner> {
        self.signers
            .iter()
            .filter(move |s| s.role == role && !s.previous && s.legacy.is_none())
    }

    /// The signers the new root needs from the previous root.
    pub fn previous_signers(&self) -> impl Iterator<Item = &DraftSigner> {
        self.signers
            .iter()
            .filter(|s| s.previous && s.legacy.is_none())
    }

    /// The optional signers from older root versions (`--legacy`).
    pub fn legacy_signers(&self) -> impl Iterator<Item = &DraftSigner> {
        self.signers.iter().filter(|s| s.legacy.is_some())
    }

    /// The file bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        json_bytes(self)
    }
}

fn mismatch(repo: &RepoDir<'_>, file: &str, detail: impl Into<String>) -> Error {
    Error::DraftMismatch {
        file: repo.pending(file).display().to_string(),
        detail: detail.into(),
    }
}

/// The error for a GUN without a draft: names the directory looked in and never suggests
/// making a new root, which another trust directory may already hold.
pub fn no_draft(repo: &RepoDir<'_>) -> Error {
    let exported = repo
        .read_optional(&repo.exported(DRAFT_FILE))
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice::<Draft>(&b).ok())
        .and_then(|d| d.exported.map(|e| (d.root.version, e)));
    Error::NoDraft {
        gun: repo.gun().to_owned(),
        dir: repo.trust_dir().path().display().to_string(),
        exported: exported.map(|(version, e)| {
            format!(
                "root v{version} was exported at {} to {}",
                escape_untrusted(&e.at),
                escape_untrusted(&e.out)
            )
        }),
    }
}

/// The root a new root version replaces, with its key facts (for the rotation signatures).
#[derive(Debug, Clone)]
pub struct PreviousRoot {
    /// The previous root.
    pub doc: Signed<Root>,
    /// Facts of its keys.
    pub keys: BTreeMap<KeyId, KeyFacts>,
}

/// A draft read back and checked against its record.
#[derive(Debug, Clone)]
pub struct PendingDraft {
    /// The record.
    pub draft: Draft,
    /// The root (the new one to sign, or the current one).
    pub root: Signed<Root>,
    /// Its canonical signed bytes.
    pub root_signed: Vec<u8>,
    /// Facts of the root's keys.
    pub keys: BTreeMap<KeyId, KeyFacts>,
    /// The root it replaces, when the draft signs a new root above version 1.
    pub previous: Option<PreviousRoot>,
    /// Older root versions whose keys may also sign (`--legacy`), by version.
    pub legacy: BTreeMap<u64, PreviousRoot>,
    /// The targets (new or current).
    pub targets: Signed<Targets>,
    /// Its canonical signed bytes.
    pub targets_signed: Vec<u8>,
    /// The signed snapshot, when there is one.
    pub snapshot: Option<Signed<Snapshot>>,
    /// Signatures this process made and checked as it made them (not checked again).
    pub fresh: Vec<crate::tuf::model::Signature>,
}

impl PendingDraft {
    /// The fingerprint of the exact bytes custodians sign: the new root's signed bytes, or
    /// the new targets' when the root does not change.
    pub fn fingerprint(&self) -> Fingerprint {
        if self.draft.root.sign || !self.draft.targets.sign {
            Fingerprint::of(&self.root_signed)
        } else {
            Fingerprint::of(&self.targets_signed)
        }
    }

    /// The root file bytes as they are now (with the signatures collected so far).
    pub fn root_file(&self) -> Result<Vec<u8>> {
        crate::tuf::model::envelope_bytes(&self.root_signed, &self.root.signatures)
    }

    /// The targets file bytes as they are now.
    pub fn targets_file(&self) -> Result<Vec<u8>> {
        crate::tuf::model::envelope_bytes(&self.targets_signed, &self.targets.signatures)
    }

    /// Who has signed the root.
    pub fn root_signatures(&self) -> SignatureReport {
        verify::signature_report_trusting(
            &self.root,
            &self.root_signed,
            &self.keys,
            &self.root.signed.roles.root,
            &self.fresh,
        )
    }

    /// Who of the previous root's keys has signed the new root (empty without a previous).
    pub fn previous_signatures(&self) -> SignatureReport {
        match &self.previous {
            Some(previous) => verify::signature_report_trusting(
                &self.root,
                &self.root_signed,
                &previous.keys,
                &previous.doc.signed.roles.root,
                &self.fresh,
            ),
            None => SignatureReport::default(),
        }
    }

    /// Who of an older root version's keys has signed the new root (`--legacy`).
    pub fn legacy_signatures(&self, version: u64) -> SignatureReport {
        match self.legacy.get(&version) {
            Some(old) => verify::signature_report_trusting(
                &self.root,
                &self.root_signed,
                &old.keys,
                &old.doc.signed.roles.root,
                &self.fresh,
            ),
            None => SignatureReport::default(),
        }
    }

    /// Who has signed the targets.
    pub fn targets_signatures(&self) -> SignatureReport {
        verify::signature_report_trusting(
            &self.targets,
            &self.targets_signed,
            &self.keys,
            &self.root.signed.roles.targets,
            &self.fresh,
        )
    }
}

fn check_digest(
    repo: &RepoDir<'_>,
    file: &str,
    what: &str,
    version: Version,
    signed: &[u8],
    recorded: &PendingDoc,
) -> Result<()> {
    if recorded.version == version.get()
        && recorded.signed_sha256 == hex::encode(Sha256::digest(signed))
    {
        return Ok(());
    }
    Err(mismatch(
        repo,
        file,
        format!(
            "is not the {what} this draft was made with: its signed part (version {version}) hashes to {}, draft.json recorded {} (version {})",
            hex::encode(Sha256::digest(signed)),
            escape_untrusted(&recorded.signed_sha256),
            recorded.version
        ),
    ))
}

/// Reads and checks a GUN's draft (see the module documentation).
pub fn load(repo: &RepoDir<'_>, inventory: &Inventory) -> Result<PendingDraft> {
    let draft_path = repo.pending(DRAFT_FILE);
    let Some(draft_bytes) = repo.read_optional(&draft_path)? else {
        return Err(no_draft(repo));
    };
    let draft: Draft = serde_json::from_slice(&draft_bytes).map_err(|e| {
        mismatch(
            repo,
            DRAFT_FILE,
            format!("cannot be read: {}", escape_untrusted(&e.to_string())),
        )
    })?;
    if draft.format != 1 {
        return Err(mismatch(
            repo,
            DRAFT_FILE,
            format!("format {} is not one this version reads (1)", draft.format),
        ));
    }
    if draft.exported.is_some() {
        return Err(mismatch(
            repo,
            DRAFT_FILE,
            "records an export: an exported draft is never signed again",
        ));
    }
    if draft.gun != repo.gun() {
        return Err(mismatch(
            repo,
            DRAFT_FILE,
            format!(
                "names the GUN `{}`, not `{}`",
                escape_untrusted(&draft.gun),
                repo.gun()
            ),
        ));
    }
    if !draft.root.sign && !draft.targets.sign {
        return Err(mismatch(
            repo,
            DRAFT_FILE,
            "changes neither root nor targets",
        ));
    }
    let root_path = repo.pending("root.json");
    let root_bytes = repo.read(&root_path)?;
    let root = Signed::<Root>::parse(&root_path.display().to_string(), &root_bytes)?;
    let root_signed = root.signed_bytes()?;
    check_digest(
        repo,
        "root.json",
        "root",
        root.signed.version,
        &root_signed,
        &draft.root,
    )?;
    let version = root.signed.version;
    if !draft.root.sign {
        // The current root, carried as it is: it must be the one the chain holds.
        let kept = repo.read_optional(&repo.root_version(version))?;
        if kept.as_deref() != Some(root_bytes.as_slice()) {
            return Err(mismatch(
                repo,
                "root.json",
                format!(
                    "is not the root version {version} this trust directory keeps in {}",
                    repo.root_version(version).display()
                ),
            ));
        }
    }
    let previous = if draft.root.sign && version > Version::FIRST {
        let earlier = Version::new(version.get().saturating_sub(1))?;
        let path = repo.root_version(earlier);
        let bytes = repo.read_optional(&path)?.ok_or_else(|| {
            mismatch(
                repo,
                "root.json",
                format!(
                    "is root version {version}, but version {earlier}, whose keys must sign it, is not in {}",
                    path.display()
                ),
            )
        })?;
        let doc = Signed::<Root>::parse(&path.display().to_string(), &bytes)?;
        let keys = verify::key_table(&path.display().to_string(), &doc.signed.keys)?;
        Some(PreviousRoot { doc, keys })
    } else {
        None
    };
    let mut legacy = BTreeMap::new();
    for v in draft.legacy_signers().filter_map(|s| s.legacy) {
        if legacy.contains_key(&v) {
            continue;
        }
        let older = Version::new(v)?;
        if !draft.root.sign || older.get().saturating_add(1) >= version.get() {
            return Err(mismatch(
                repo,
                DRAFT_FILE,
                format!(
                    "names a legacy signer of root version {v}, which is not older than the previous root"
                ),
            ));
        }
        let path = repo.root_version(older);
        let bytes = repo.read(&path)?;
        let doc = Signed::<Root>::parse(&path.display().to_string(), &bytes)?;
        let keys = verify::key_table(&path.display().to_string(), &doc.signed.keys)?;
        legacy.insert(v, PreviousRoot { doc, keys });
    }
    let targets_path = repo.pending("targets.json");
    let targets = Signed::<Targets>::parse(
        &targets_path.display().to_string(),
        &repo.read(&targets_path)?,
    )?;
    let targets_signed = targets.signed_bytes()?;
    check_digest(
        repo,
        "targets.json",
        "targets",
        targets.signed.version,
        &targets_signed,
        &draft.targets,
    )?;
    let snapshot_path = repo.pending("snapshot.json");
    let snapshot =
        match repo.read_optional(&snapshot_path)? {
            Some(bytes) if matches!(draft.snapshot, SnapshotPlan::Offline { .. }) => Some(
                Signed::<Snapshot>::parse(&snapshot_path.display().to_string(), &bytes)?,
            ),
            Some(_) => {
                return Err(mismatch(
                    repo,
                    "snapshot.json",
                    "exists although the server manages this repository's snapshot",
                ));
            }
            None => None,
        };
    let keys = verify::key_table(&root_path.display().to_string(), &root.signed.keys)?;
    check_accounting(
        repo,
        &draft,
        &root.signed,
        &keys,
        previous.as_ref(),
        &legacy,
        inventory,
    )?;
    let root_signers: Vec<&KeyId> = draft
        .signers(RoleName::Root)
        .chain(draft.previous_signers())
        .chain(draft.legacy_signers())
        .map(|s| &s.keyid)
        .collect();
    if draft.root.sign {
        check_signed_by(repo, "root.json", "root", &root_signers, &root.signatures)?;
    }
    if draft.targets.sign {
        let targets_signers: Vec<&KeyId> =
            draft.signers(RoleName::Targets).map(|s| &s.keyid).collect();
        check_signed_by(
            repo,
            "targets.json",
            "targets",
            &targets_signers,
            &targets.signatures,
        )?;
    }
    if let Some(snapshot) = &snapshot {
        let snapshot_signers: Vec<&KeyId> = draft
            .signers(RoleName::Snapshot)
            .map(|s| &s.keyid)
            .collect();
        check_signed_by(
            repo,
            "snapshot.json",
            "snapshot",
            &snapshot_signers,
            &snapshot.signatures,
        )?;
    }
    Ok(PendingDraft {
        draft,
        root,
        root_signed,
        keys,
        previous,
        legacy,
        targets,
        targets_signed,
        snapshot,
        fresh: Vec::new(),
    })
}

/// Every signature of a document the draft signs is under the key ID of one of the draft's
/// signers for it. A signature by any other key could not have been made by `root sign`; it
/// would be exported as it is (clients ignore it), so it is refused like any other change.
fn check_signed_by(
    repo: &RepoDir<'_>,
    file: &str,
    role: &str,
    signers: &[&KeyId],
    signatures: &[crate::tuf::model::Signature],
) -> Result<()> {
    match signatures.iter().find(|sig| !signers.contains(&&sig.keyid)) {
        Some(sig) => Err(mismatch(
            repo,
            file,
            format!(
                "carries a signature by key {}, which is not a {role} signer of this draft",
                sig.keyid
            ),
        )),
        None => Ok(()),
    }
}

fn key_list(keys: impl Iterator<Item = String>) -> String {
    let keys: Vec<String> = keys.collect();
    if keys.is_empty() {
        "none".into()
    } else {
        keys.join(", ")
    }
}

/// A new root's keys and roles are exactly the draft's signers and server keys; the previous
/// root's signers are keys of the previous root; every signer is in the inventory with the
/// same public key. A draft that keeps the current root only needs its targets signers to be
/// the root's targets keys.
fn check_accounting(
    repo: &RepoDir<'_>,
    draft: &Draft,
    root: &Root,
    keys: &BTreeMap<KeyId, KeyFacts>,
    previous: Option<&PreviousRoot>,
    legacy: &BTreeMap<u64, PreviousRoot>,
    inventory: &Inventory,
) -> Result<()> {
    if draft.root.sign {
        let mut named = BTreeSet::new();
        for role in RoleName::ALL {
            let listed: BTreeSet<&KeyId> = root.roles.get(role).keyids.iter().collect();
            let expected: BTreeSet<&KeyId> = draft
                .signers(role)
                .map(|s| &s.keyid)
                .chain(
                    draft
                        .server_keys
                        .iter()
                        .filter(|k| k.role == role)
                        .map(|k| &k.keyid),
                )
                .collect();
            if listed != expected {
                return Err(mismatch(
                    repo,
                    "root.json",
                    format!(
                        "the {role} role lists other keys than draft.json: not in the draft {}; missing {}",
                        key_list(listed.difference(&expected).map(|k| k.to_string())),
                        key_list(expected.difference(&listed).map(|k| k.to_string())),
                    ),
                ));
            }
            named.extend(expected);
        }
        if let Some(extra) = root.keys.keys().find(|k| !named.contains(k)) {
            return Err(mismatch(
                repo,
                "root.json",
                format!("lists key {extra}, which no role of the draft names"),
            ));
        }
    } else if draft.targets.sign {
        let listed: BTreeSet<&KeyId> = root.roles.targets.keyids.iter().collect();
        if let Some(signer) = draft
            .signers(RoleName::Targets)
            .find(|s| !listed.contains(&s.keyid))
        {
            return Err(mismatch(
                repo,
                DRAFT_FILE,
                format!(
                    "names the targets key {}, which the current root does not list for targets",
                    signer.keyid
                ),
            ));
        }
    }
    for signer in &draft.signers {
        let table = if let Some(v) = signer.legacy {
            match legacy.get(&v) {
                Some(old) if old.doc.signed.roles.root.keyids.contains(&signer.keyid) => &old.keys,
                _ => {
                    return Err(mismatch(
                        repo,
                        DRAFT_FILE,
                        format!(
                            "names {} as a key of root version {v}, which it is not",
                            signer.keyid
                        ),
                    ));
                }
            }
        } else if signer.previous {
            match previous {
                Some(p) if p.doc.signed.roles.root.keyids.contains(&signer.keyid) => &p.keys,
                _ => {
                    return Err(mismatch(
                        repo,
                        DRAFT_FILE,
                        format!(
                            "names {} as a key of the previous root, which it is not",
                            signer.keyid
                        ),
                    ));
                }
            }
        } else {
            keys
        };
        let canonical = table.get(&signer.keyid).map(|f| &f.canonical);
        if canonical != Some(&signer.key_id) {
            return Err(mismatch(
                repo,
                "root.json",
                format!(
                    "key {} is not the key {} that draft.json names for it",
                    signer.keyid, signer.key_id
                ),
            ));
        }
        let known = inventory
            .by_key_id(signer.key_id.as_str())
            .is_some_and(|entry| {
                crate::tuf::model::Base64::parse(&entry.public_key)
                    .map(|b| {
                        notary::key_id(&crate::tuf::model::PublicKey::new(
                            crate::tuf::model::KeyType::Ecdsa,
                            b.0,
                        )) == signer.key_id
                    })
                    .unwrap_or(false)
            });
        if !known {
            return Err(mismatch(
                repo,
                DRAFT_FILE,
                format!(
                    "names the {} key {}, which the inventory of this trust directory does not hold",
                    signer.role, signer.key_id
                ),
            ));
        }
    }
    Ok(())
}

/// One signer's state in a draft.
#[derive(Debug, Clone, Serialize)]
pub struct SignerState {
    /// The key's one identity (canonical key ID).
    pub key_id: KeyId,
    /// The key ID the document lists (the certificate's, for root keys).
    pub keyid: KeyId,
    /// The key's URI.
    pub uri: String,
    /// `signed`, `missing`, or `invalid` (a signature is there but does not verify; the
    /// key's next `root sign` replaces it).
    pub state: &'static str,
}

/// The state of one role's signatures in a draft.
#[derive(Debug, Clone, Serialize)]
pub struct RoleStatus {
    /// True when this draft collects these signatures (false: the document is the current,
    /// complete one).
    pub pending: bool,
    /// Signatures needed (distinct keys).
    pub threshold: u64,
    /// Distinct keys whose valid signatures are present.
    pub signed: u64,
    /// Every signer with its state.
    pub signers: Vec<SignerState>,
}

impl RoleStatus {
    /// True when the threshold is met (always, for a document the draft does not change).
    pub fn complete(&self) -> bool {
        !self.pending || self.signed >= self.threshold
    }

    /// The signers in one state.
    pub fn in_state(&self, state: &str) -> impl Iterator<Item = &SignerState> {
        self.signers.iter().filter(move |s| s.state == state)
    }
}

fn role_status<'a>(
    pending: bool,
    signers: impl Iterator<Item = &'a DraftSigner>,
    threshold: u64,
    report: &SignatureReport,
) -> RoleStatus {
    let signers = signers
        .map(|s| SignerState {
            key_id: s.key_id.clone(),
            keyid: s.keyid.clone(),
            uri: s.uri.clone(),
            state: if report.valid.contains(&s.keyid) {
                "signed"
            } else if report.invalid.contains(&s.keyid) {
                "invalid"
            } else {
                "missing"
            },
        })
        .collect();
    RoleStatus {
        pending,
        threshold,
        signed: report.count(),
        signers: if pending { signers } else { Vec::new() },
    }
}

/// The optional signatures of one older root version.
#[derive(Debug, Clone, Serialize)]
pub struct LegacyStatus {
    /// The version.
    pub version: u64,
    /// Its keys' signatures on the new root.
    pub signatures: RoleStatus,
}

/// A token still needed, in the smallest set that completes every threshold.
#[derive(Debug, Clone, Serialize)]
pub struct NeededKey {
    /// The key's one identity.
    pub key_id: KeyId,
    /// Its URI.
    pub uri: String,
    /// What its signatures complete, e.g. `root`, `previous root`, `targets`.
    #[serde(rename = "for")]
    pub for_: Vec<String>,
    /// The key's label on its token (from the inventory; empty if it has no entry).
    pub label: String,
    /// The token's label.
    pub token_label: String,
    /// The token's serial.
    pub token_serial: String,
}

/// One date after which something of the draft's version stops working.
#[derive(Debug, Clone, Serialize)]
pub struct Expiry {
    /// What expires: `root`, `targets`, `snapshot`, or `root certificate <key ID>`.
    pub what: String,
    /// When (RFC 3339).
    pub at: String,
    /// Whole days from now (negative once passed).
    pub days_left: i64,
    /// Fewer than [`EXPIRY_WARNING_DAYS`] days left.
    pub soon: bool,
}

/// Expiries closer than this many days are warned about.
pub const EXPIRY_WARNING_DAYS: i64 = 90;

/// The state of a draft.
#[derive(Debug, Clone, Serialize)]
pub struct DraftStatus {
    /// The GUN.
    pub gun: String,
    /// What the draft does.
    pub purpose: String,
    /// Root version of the draft.
    pub version: u64,
    /// Targets version of the draft.
    pub targets_version: u64,
    /// Root expiry.
    pub expires: String,
    /// The fingerprint of the bytes custodians sign (the new root's signed bytes, or the new
    /// targets' when the root does not change): what they compare with the log.
    pub fingerprint: Fingerprint,
    /// What the fingerprint is of: `root` or `targets`.
    pub fingerprint_of: &'static str,
    /// Root signatures (under the new root's threshold).
    pub root: RoleStatus,
    /// Signatures by the previous root's keys, which a new root above version 1 needs too.
    pub previous_root: Option<RoleStatus>,
    /// Optional signatures by older root versions' keys (`--legacy`), by version: with a
    /// version's threshold met, clients that trusted it take the new root at once.
    pub legacy: Vec<LegacyStatus>,
    /// Targets signatures.
    pub targets: RoleStatus,
    /// `server-managed`, `signed`, or why it is not signed yet.
    pub snapshot: String,
    /// The smallest set of keys still to sign so that every threshold is met.
    pub needed: Vec<NeededKey>,
    /// Ready for `root export`.
    pub ready: bool,
    /// When the draft was made.
    pub created: String,
    /// Every expiry of the version drafted (roles, root certificates), soonest first.
    pub expiries: Vec<Expiry>,
    /// Values that are almost surely wrong and were insisted on (see
    /// [`crate::root::checks`]); only the command that made or changed the draft reports them.
    pub warnings: Vec<String>,
}

impl DraftStatus {
    /// Fills in each needed key's label and token from the inventory.
    pub fn describe_tokens(&mut self, inventory: &crate::trustdir::Inventory) {
        for needed in &mut self.needed {
            if let Some(entry) = inventory.by_key_id(needed.key_id.as_str()) {
                needed.label.clone_from(&entry.label);
                needed.token_label.clone_from(&entry.token_label);
                needed.token_serial.clone_from(&entry.token_serial);
            }
        }
    }
}

/// The expiries of a draft's version: root, each root certificate, targets, and an offline
/// snapshot (the timestamp is the server's, which re-signs it).
fn expiries(pending: &PendingDraft, now: UtcTime) -> Vec<Expiry> {
    let mut out = Vec::new();
    let mut push = |what: String, at: UtcTime| {
        let days_left = now.days_until(at);
        out.push(Expiry {
            what,
            at: at.to_go_string(),
            days_left,
            soon: days_left < EXPIRY_WARNING_DAYS,
        });
    };
    push("root".into(), pending.root.signed.expires.instant());
    for id in &pending.root.signed.roles.root.keyids {
        if let Some(leaf) = pending.keys.get(id).and_then(|f| f.certs.first()) {
            push(
                format!("root certificate {id}"),
                UtcTime::from_system(leaf.not_after),
            );
        }
    }
    push("targets".into(), pending.targets.signed.expires.instant());
    match &pending.snapshot {
        Some(snapshot) => push("snapshot".into(), snapshot.signed.expires.instant()),
        None => {
            if let Ok(Some((_, at))) = snapshot_expiry(&pending.draft.snapshot) {
                push("snapshot".into(), at);
            }
        }
    }
    out.sort_by_key(|e| e.days_left);
    out
}

/// The smallest set of the draft's keys not yet signed whose signatures complete every
/// pending threshold (new root, previous root, targets), by key; `None` when no set does.
fn smallest_completion(
    statuses: &[(&str, &RoleStatus, Vec<&DraftSigner>)],
) -> Option<Vec<NeededKey>> {
    // Candidates: keys (by identity) with a missing or invalid signature somewhere.
    let mut candidates: Vec<(&KeyId, &str)> = Vec::new();
    for (_, status, signers) in statuses {
        for (state, signer) in status.signers.iter().zip(signers) {
            if state.state != "signed" && !candidates.iter().any(|(k, _)| *k == &signer.key_id) {
                candidates.push((&signer.key_id, &signer.uri));
            }
        }
    }
    let shortfall = |chosen: &[&KeyId]| -> bool {
        statuses.iter().any(|(_, status, signers)| {
            if !status.pending {
                return false;
            }
            let added: BTreeSet<&KeyId> = status
                .signers
                .iter()
                .zip(signers)
                .filter(|(st, s)| st.state != "signed" && chosen.contains(&&s.key_id))
                .map(|(_, s)| &s.key_id)
                .collect();
            let have = status
                .signed
                .saturating_add(u64::try_from(added.len()).unwrap_or(u64::MAX));
            have < status.threshold
        })
    };
    let n = candidates.len().min(16);
    let all: u32 = 1u32
        .checked_shl(u32::try_from(n).unwrap_or(16))
        .unwrap_or(u32::MAX);
    let mut best: Option<Vec<&KeyId>> = None;
    for mask in 0..all {
        let chosen: Vec<&KeyId> = candidates
            .iter()
            .take(n)
            .enumerate()
            .filter(|(i, _)| {
                mask.checked_shr(u32::try_from(*i).unwrap_or(31))
                    .unwrap_or(0)
                    & 1
                    == 1
            })
            .map(|(_, (k, _))| *k)
            .collect();
        if best.as_ref().is_some_and(|b| b.len() <= chosen.len()) || shortfall(&chosen) {
            continue;
        }
        best = Some(chosen);
    }
    best.map(|keys| {
        keys.into_iter()
            .map(|key_id| NeededKey {
                key_id: key_id.clone(),
                uri: candidates
                    .iter()
                    .find(|(k, _)| *k == key_id)
                    .map(|(_, u)| (*u).to_owned())
                    .unwrap_or_default(),
                for_: statuses
                    .iter()
                    .filter(|(_, st, signers)| {
                        st.pending
                            && st
                                .signers
                                .iter()
                                .zip(signers)
                                .any(|(state, s)| state.state != "signed" && &s.key_id == key_id)
                    })
                    .map(|(name, _, _)| (*name).to_owned())
                    .collect(),
                label: String::new(),
                token_label: String::new(),
                token_serial: String::new(),
            })
            .collect()
    })
}

/// The state of a checked draft, now.
pub fn status(pending: &PendingDraft) -> DraftStatus {
    status_at(pending, UtcTime::now())
}

/// The state of a checked draft at `now` (for the days left before each expiry).
pub fn status_at(pending: &PendingDraft, now: UtcTime) -> DraftStatus {
    let draft = &pending.draft;
    let root = role_status(
        draft.root.sign,
        draft.signers(RoleName::Root),
        pending.root.signed.roles.root.threshold.get(),
        &pending.root_signatures(),
    );
    let previous_root = pending.previous.as_ref().map(|previous| {
        role_status(
            true,
            draft.previous_signers(),
            previous.doc.signed.roles.root.threshold.get(),
            &pending.previous_signatures(),
        )
    });
    let targets = role_status(
        draft.targets.sign,
        draft.signers(RoleName::Targets),
        pending.root.signed.roles.targets.threshold.get(),
        &pending.targets_signatures(),
    );
    let legacy = pending
        .legacy
        .iter()
        .map(|(version, old)| LegacyStatus {
            version: *version,
            signatures: role_status(
                true,
                draft
                    .legacy_signers()
                    .filter(|s| s.legacy == Some(*version)),
                old.doc.signed.roles.root.threshold.get(),
                &pending.legacy_signatures(*version),
            ),
        })
        .collect();
    let mut lists: Vec<(&str, &RoleStatus, Vec<&DraftSigner>)> = vec![
        ("root", &root, draft.signers(RoleName::Root).collect()),
        (
            "targets",
            &targets,
            draft.signers(RoleName::Targets).collect(),
        ),
    ];
    if let Some(prev) = &previous_root {
        lists.push(("previous root", prev, draft.previous_signers().collect()));
    }
    let needed = smallest_completion(&lists).unwrap_or_default();
    let server = matches!(draft.snapshot, SnapshotPlan::ServerManaged);
    let previous_complete = previous_root.as_ref().is_none_or(RoleStatus::complete);
    let snapshot = if server {
        "server-managed".to_string()
    } else if pending.snapshot.is_some() {
        "signed".to_string()
    } else if !root.complete() || !previous_complete {
        "waits for the root thresholds".to_string()
    } else if !targets.complete() {
        "waits for the targets signature".to_string()
    } else {
        "needs the snapshot key".to_string()
    };
    let ready = root.complete()
        && previous_complete
        && targets.complete()
        && (server || pending.snapshot.is_some());
    DraftStatus {
        gun: draft.gun.clone(),
        purpose: draft.purpose.clone(),
        version: pending.root.signed.version.get(),
        targets_version: pending.targets.signed.version.get(),
        expires: pending.root.signed.expires.to_string(),
        fingerprint: pending.fingerprint(),
        fingerprint_of: if draft.root.sign || !draft.targets.sign {
            "root"
        } else {
            "targets"
        },
        root,
        previous_root,
        legacy,
        targets,
        snapshot,
        needed,
        ready,
        created: draft.created.clone(),
        expiries: expiries(pending, now),
        warnings: Vec::new(),
    }
}

/// The snapshot expiry of an offline plan.
pub fn snapshot_expiry(plan: &SnapshotPlan) -> Result<Option<(u64, UtcTime)>> {
    match plan {
        SnapshotPlan::ServerManaged => Ok(None),
        SnapshotPlan::Offline { version, expires } => {
            Ok(Some((*version, UtcTime::parse(expires)?)))
        }
    }
}

/// The error for an export whose offline snapshot is not signed yet.
pub fn snapshot_missing() -> Error {
    Error::Rule {
        file: "snapshot.json".into(),
        rule: "snapshot-threshold",
        detail:
            "the snapshot is not signed yet: sign it with the snapshot key after root and targets"
                .into(),
    }
}
