//! The draft model shared by every root operation: `pending/draft.json` records what `root
//! init` (later: rotate, signer changes) meant the pending documents to say, and every command
//! that reads a draft checks the documents against it before showing or signing anything.
//!
//! Drafts are unsigned and travel between custodians, so they are read as strictly as files
//! from a stranger: the documents must parse strictly, their signed bytes must hash to what
//! draft.json recorded, their keys and roles must be exactly the draft's signers and server
//! keys, and each signer must be in the inventory with the same public key.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::fingerprint::Fingerprint;
use crate::trustdir::{Inventory, RepoDir, json_bytes};
use crate::tuf::model::{
    KeyId, RoleName, Root, Signed, Snapshot, Targets, UtcTime, escape_untrusted,
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
}

impl PendingDoc {
    /// The record of a document's signed bytes.
    pub fn of(version: u64, signed: &[u8]) -> PendingDoc {
        PendingDoc {
            version,
            signed_sha256: hex::encode(Sha256::digest(signed)),
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
    /// The pending root.
    pub root: PendingDoc,
    /// The pending targets.
    pub targets: PendingDoc,
    /// How the snapshot is signed.
    pub snapshot: SnapshotPlan,
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
    /// The draft's signers for a role.
    pub fn signers(&self, role: RoleName) -> impl Iterator<Item = &DraftSigner> {
        self.signers.iter().filter(move |s| s.role == role)
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

/// A draft read back and checked against its record.
#[derive(Debug, Clone)]
pub struct PendingDraft {
    /// The record.
    pub draft: Draft,
    /// The pending root.
    pub root: Signed<Root>,
    /// Its canonical signed bytes.
    pub root_signed: Vec<u8>,
    /// Facts of the root's keys.
    pub keys: std::collections::BTreeMap<KeyId, KeyFacts>,
    /// The pending targets.
    pub targets: Signed<Targets>,
    /// Its canonical signed bytes.
    pub targets_signed: Vec<u8>,
    /// The signed snapshot, when there is one.
    pub snapshot: Option<Signed<Snapshot>>,
    /// Signatures this process made and checked as it made them (not checked again).
    pub fresh: Vec<crate::tuf::model::Signature>,
}

impl PendingDraft {
    /// The fingerprint of the exact root bytes custodians sign.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.root_signed)
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
    let root_path = repo.pending("root.json");
    let root = Signed::<Root>::parse(&root_path.display().to_string(), &repo.read(&root_path)?)?;
    let root_signed = root.signed_bytes()?;
    if PendingDoc::of(root.signed.version.get(), &root_signed) != draft.root {
        return Err(mismatch(
            repo,
            "root.json",
            format!(
                "is not the root this draft was made with: its signed part hashes to {}, draft.json recorded {} (version {})",
                hex::encode(Sha256::digest(&root_signed)),
                escape_untrusted(&draft.root.signed_sha256),
                draft.root.version
            ),
        ));
    }
    let targets_path = repo.pending("targets.json");
    let targets = Signed::<Targets>::parse(
        &targets_path.display().to_string(),
        &repo.read(&targets_path)?,
    )?;
    let targets_signed = targets.signed_bytes()?;
    if PendingDoc::of(targets.signed.version.get(), &targets_signed) != draft.targets {
        return Err(mismatch(
            repo,
            "targets.json",
            format!(
                "is not the targets this draft was made with: its signed part hashes to {}, draft.json recorded {}",
                hex::encode(Sha256::digest(&targets_signed)),
                escape_untrusted(&draft.targets.signed_sha256)
            ),
        ));
    }
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
    check_accounting(repo, &draft, &root.signed, &keys, inventory)?;
    check_signed_by_signers(repo, &draft, "root.json", RoleName::Root, &root.signatures)?;
    check_signed_by_signers(
        repo,
        &draft,
        "targets.json",
        RoleName::Targets,
        &targets.signatures,
    )?;
    if let Some(snapshot) = &snapshot {
        check_signed_by_signers(
            repo,
            &draft,
            "snapshot.json",
            RoleName::Snapshot,
            &snapshot.signatures,
        )?;
    }
    Ok(PendingDraft {
        draft,
        root,
        root_signed,
        keys,
        targets,
        targets_signed,
        snapshot,
        fresh: Vec::new(),
    })
}

/// Every signature of a pending document is under the key ID of one of the draft's signers
/// for that role. A signature by any other key could not have been made by `root sign`; it
/// would be exported as it is (clients ignore it), so it is refused like any other change.
fn check_signed_by_signers(
    repo: &RepoDir<'_>,
    draft: &Draft,
    file: &str,
    role: RoleName,
    signatures: &[crate::tuf::model::Signature],
) -> Result<()> {
    match signatures
        .iter()
        .find(|sig| !draft.signers(role).any(|s| s.keyid == sig.keyid))
    {
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

/// Every key and role of the root is one the draft names, and every signer is in the
/// inventory with the same public key.
fn check_accounting(
    repo: &RepoDir<'_>,
    draft: &Draft,
    root: &Root,
    keys: &std::collections::BTreeMap<KeyId, KeyFacts>,
    inventory: &Inventory,
) -> Result<()> {
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
            let extra: Vec<String> = listed
                .difference(&expected)
                .map(|k| k.to_string())
                .collect();
            let gone: Vec<String> = expected
                .difference(&listed)
                .map(|k| k.to_string())
                .collect();
            return Err(mismatch(
                repo,
                "root.json",
                format!(
                    "the {role} role lists other keys than draft.json: not in the draft {}; missing {}",
                    if extra.is_empty() {
                        "none".into()
                    } else {
                        extra.join(", ")
                    },
                    if gone.is_empty() {
                        "none".into()
                    } else {
                        gone.join(", ")
                    },
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
    for signer in &draft.signers {
        let canonical = keys.get(&signer.keyid).map(|f| &f.canonical);
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
    /// Signatures needed (distinct keys).
    pub threshold: u64,
    /// Distinct keys whose valid signatures are present.
    pub signed: u64,
    /// Every signer with its state.
    pub signers: Vec<SignerState>,
}

impl RoleStatus {
    /// True when the threshold is met.
    pub fn complete(&self) -> bool {
        self.signed >= self.threshold
    }

    /// The signers in one state.
    pub fn in_state(&self, state: &str) -> impl Iterator<Item = &SignerState> {
        self.signers.iter().filter(move |s| s.state == state)
    }
}

fn role_status(
    draft: &Draft,
    role: RoleName,
    threshold: u64,
    report: &SignatureReport,
) -> RoleStatus {
    let signers = draft
        .signers(role)
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
        threshold,
        signed: report.count(),
        signers,
    }
}

/// The state of a draft.
#[derive(Debug, Clone, Serialize)]
pub struct DraftStatus {
    /// The GUN.
    pub gun: String,
    /// Root version of the draft.
    pub version: u64,
    /// Root expiry.
    pub expires: String,
    /// The fingerprint of the root's signed bytes: what custodians compare with the log.
    pub fingerprint: Fingerprint,
    /// Root signatures.
    pub root: RoleStatus,
    /// Targets signatures.
    pub targets: RoleStatus,
    /// `server-managed`, `signed`, or why it is not signed yet.
    pub snapshot: String,
    /// Ready for `root export`.
    pub ready: bool,
    /// When the draft was made.
    pub created: String,
    /// Values that are almost surely wrong and were insisted on (see
    /// [`crate::root::checks`]); only the command that made or changed the draft reports them.
    pub warnings: Vec<String>,
}

/// The state of a checked draft.
pub fn status(pending: &PendingDraft) -> DraftStatus {
    let root = role_status(
        &pending.draft,
        RoleName::Root,
        pending.root.signed.roles.root.threshold.get(),
        &pending.root_signatures(),
    );
    let targets = role_status(
        &pending.draft,
        RoleName::Targets,
        pending.root.signed.roles.targets.threshold.get(),
        &pending.targets_signatures(),
    );
    let server = matches!(pending.draft.snapshot, SnapshotPlan::ServerManaged);
    let snapshot = if server {
        "server-managed".to_string()
    } else if pending.snapshot.is_some() {
        "signed".to_string()
    } else if !root.complete() {
        "waits for the root threshold".to_string()
    } else if !targets.complete() {
        "waits for the targets signature".to_string()
    } else {
        "needs the snapshot key".to_string()
    };
    let ready = root.complete() && targets.complete() && (server || pending.snapshot.is_some());
    DraftStatus {
        gun: pending.draft.gun.clone(),
        version: pending.root.signed.version.get(),
        expires: pending.root.signed.expires.to_string(),
        fingerprint: pending.fingerprint(),
        root,
        targets,
        snapshot,
        ready,
        created: pending.draft.created.clone(),
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
