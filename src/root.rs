//! Root drafts: `init` makes root.json (k-of-n certificate root keys, one certificate per GUN
//! per key) and the initial targets.json; `sign` adds signatures one custodian at a time;
//! `status` says what is still missing; `export` verifies with the client rules and writes the
//! files the trust server takes.
//!
//! The snapshot covers the exact bytes of root.json and targets.json, signatures included, so
//! it is signed only once root and targets meet their thresholds, and it is dropped again if
//! root or targets gain a signature afterwards.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::backend::{KeyDescription, Keyring};
use crate::error::{Error, Result};
use crate::keyuri::KeyUri;
use crate::signer::Signer;
use crate::trustdir::{self, Batch, InventoryKey, RepoDir, TrustDir};
use crate::tuf::model::{self, Envelope, PublicKey, Role, Root, UtcTime};
use crate::tuf::notary::{self, DEFAULT_ROOT_DAYS, DEFAULT_TARGETS_DAYS};
use crate::tuf::verify::{self, RepoFiles, Verified};
use crate::x509;

/// Where the snapshot key of a new root comes from.
#[derive(Debug, Clone)]
pub enum SnapshotKey {
    /// A key on a token; the snapshot is signed offline.
    Token(Box<KeyUri>),
    /// The server holds the key (per GUN, from `GET …/snapshot.key`) and signs snapshots.
    Server(BTreeMap<String, PublicKey>),
}

/// What `root init` needs.
#[derive(Debug, Clone)]
pub struct InitRequest {
    /// The repositories; they share the root keys, each gets its own certificates.
    pub guns: Vec<String>,
    /// Root keys (k-of-n).
    pub root_keys: Vec<KeyUri>,
    /// How many root signatures a root needs.
    pub threshold: u64,
    /// The targets key.
    pub targets_key: KeyUri,
    /// The snapshot key.
    pub snapshot_key: SnapshotKey,
    /// The server's timestamp key for each GUN.
    pub timestamp_keys: BTreeMap<String, PublicKey>,
    /// Root expiry.
    pub expires: UtcTime,
    /// The time the command runs.
    pub now: UtcTime,
    /// Replace an existing draft.
    pub replace_draft: bool,
}

/// A key that must sign a draft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DraftSigner {
    /// `root`, `targets` or `snapshot`.
    pub role: String,
    /// The key ID that root.json lists (for root keys, the certificate's ID).
    pub keyid: String,
    /// The canonical (bare key) ID.
    pub key_id: String,
    /// The key's URI.
    pub uri: String,
}

/// `pending/draft.json`: what the draft files themselves do not say.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Draft {
    /// The GUN.
    pub gun: String,
    /// When `root init` made it.
    pub created: String,
    /// The server signs snapshots.
    pub server_snapshot: bool,
    /// Expiry for the snapshot when it is signed.
    pub snapshot_expires: String,
    /// The keys that sign, by role.
    pub signers: Vec<DraftSigner>,
    /// When it was last exported.
    #[serde(default)]
    pub exported: Option<String>,
}

/// The state of one role's signatures in a draft.
#[derive(Debug, Clone, Serialize)]
pub struct RoleStatus {
    /// Signatures needed.
    pub threshold: u64,
    /// Keys whose valid signatures are present.
    pub signed: Vec<DraftSigner>,
    /// Keys that have not signed.
    pub missing: Vec<DraftSigner>,
}

impl RoleStatus {
    /// True when the threshold is met.
    pub fn complete(&self) -> bool {
        self.signed.len() as u64 >= self.threshold
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
    /// Root signatures.
    pub root: RoleStatus,
    /// Targets signatures.
    pub targets: RoleStatus,
    /// `server-managed`, `signed`, or why it is not signed yet.
    pub snapshot: String,
    /// Ready for `root export`.
    pub ready: bool,
    /// When last exported.
    pub exported: Option<String>,
}

/// What `root sign` did for one GUN.
#[derive(Debug, Clone, Serialize)]
pub struct SignOutcome {
    /// The GUN.
    pub gun: String,
    /// What was signed: `root by <id>`, `targets`, `snapshot`.
    pub signed: Vec<String>,
    /// Notes, e.g. why the snapshot waits.
    pub notes: Vec<String>,
    /// The state afterwards.
    pub status: DraftStatus,
}

/// What `root export` wrote for one GUN.
#[derive(Debug, Clone, Serialize)]
pub struct ExportOutcome {
    /// The GUN.
    pub gun: String,
    /// The folder written.
    pub dir: PathBuf,
    /// The files written.
    pub files: Vec<String>,
    /// What was verified.
    pub verified: Verified,
}

fn inventory_entry(key: &KeyDescription, role: Option<&str>, now: UtcTime) -> Result<InventoryKey> {
    let public = notary::ecdsa_key(&key.public_key)?;
    Ok(InventoryKey {
        uri: key.uri.clone(),
        label: key.label.clone(),
        role: role.map(str::to_owned),
        algorithm: "ecdsa-p256".into(),
        key_id: notary::key_id(&public),
        public_key: public.keyval.public,
        token_label: key.token_label.clone(),
        token_serial: key.token_serial.clone(),
        created: now.to_go_string(),
    })
}

/// Records a key generated on a token (PKCS#11 or YubiKey) in the inventory.
pub fn record_key(
    dir: &TrustDir,
    key: &KeyDescription,
    role: Option<&str>,
    now: UtcTime,
) -> Result<InventoryKey> {
    let entry = inventory_entry(key, role, now)?;
    let mut inventory = dir.inventory()?;
    inventory.upsert(entry.clone());
    dir.save_inventory(&inventory)?;
    Ok(entry)
}

fn load_envelope(path: &Path) -> Result<Envelope> {
    Envelope::parse(&path.display().to_string(), &trustdir::read(path)?)
}

fn load_draft(repo: &RepoDir) -> Result<Draft> {
    if !repo.has_pending() {
        return Err(Error::NotFound(format!(
            "no draft for {}: run `rootkeeper root init --gun {}` first",
            repo.gun(),
            repo.gun()
        )));
    }
    let path = repo.pending("draft.json");
    serde_json::from_slice(&trustdir::read(&path)?).map_err(|e| Error::Metadata {
        file: path.display().to_string(),
        reason: e.to_string(),
    })
}

fn json_bytes<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::Invalid(e.to_string()))?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Makes the draft root (and initial targets) for every GUN in `req`. Root keys sign their
/// certificates here, so every root token is needed once; root.json's signatures can then be
/// collected one custodian at a time with [`sign`].
pub fn init(
    dir: &TrustDir,
    keyring: &mut Keyring<'_>,
    req: &InitRequest,
) -> Result<Vec<DraftStatus>> {
    if req.guns.is_empty() {
        return Err(Error::Invalid("give at least one --gun".into()));
    }
    let n = req.root_keys.len() as u64;
    if n == 0 {
        return Err(Error::Invalid("give at least one --root-key".into()));
    }
    if req.threshold < 1 || req.threshold > n {
        return Err(Error::Invalid(format!(
            "a threshold of {} cannot be met with {n} root key(s); choose 1 to {n}",
            req.threshold
        )));
    }
    if req.expires <= req.now {
        return Err(Error::Invalid(format!(
            "--expires {} is in the past; give a future time or a duration such as 10y",
            req.expires
        )));
    }
    let mut repos = Vec::new();
    let mut seen = BTreeSet::new();
    for gun in &req.guns {
        if !seen.insert(gun) {
            return Err(Error::Invalid(format!("--gun {gun} is given twice")));
        }
        let repo = dir.repo(gun)?;
        if let Some(v) = repo.latest_root_version()? {
            return Err(Error::Exists(format!(
                "{gun} already has a signed root (version {v}); a new root for it is a rotation, not an init"
            )));
        }
        if repo.has_pending() && !req.replace_draft {
            return Err(Error::Exists(format!(
                "{gun} already has a draft; `rootkeeper root status --gun {gun}` shows it, --force replaces it"
            )));
        }
        if !req.timestamp_keys.contains_key(gun) {
            return Err(Error::Invalid(format!("no timestamp key for {gun}")));
        }
        if let SnapshotKey::Server(keys) = &req.snapshot_key
            && !keys.contains_key(gun)
        {
            return Err(Error::Invalid(format!("no server snapshot key for {gun}")));
        }
        repos.push(repo);
    }

    // Public data first (no login), then log in to the root tokens for the certificates.
    let mut inventory = dir.inventory()?;
    let mut resolve =
        |uri: &KeyUri, role: &str, keyring: &mut Keyring<'_>| -> Result<(PublicKey, String)> {
            let key = keyring.public_key(uri)?;
            let entry = inventory_entry(&key, Some(role), req.now)?;
            let public = notary::ecdsa_key(&key.public_key)?;
            let uri = entry.uri.clone();
            if inventory.by_key_id(&entry.key_id).is_none() {
                inventory.upsert(entry);
            }
            Ok((public, uri))
        };
    let targets = resolve(&req.targets_key, "targets", keyring)?;
    let snapshot = match &req.snapshot_key {
        SnapshotKey::Token(uri) => Some(resolve(uri, "snapshot", keyring)?),
        SnapshotKey::Server(_) => None,
    };
    let mut root_uris = Vec::new();
    for uri in &req.root_keys {
        root_uris.push(resolve(uri, "root", keyring)?.1);
    }
    let mut root_signers: Vec<Box<dyn Signer>> = Vec::new();
    for uri in &req.root_keys {
        root_signers.push(keyring.signer(uri)?);
    }
    let mut used = BTreeMap::new();
    let mut claim = |key_id: String, what: String| -> Result<()> {
        match used.insert(key_id, what.clone()) {
            Some(other) => Err(Error::Invalid(format!(
                "the same key is given as {other} and as {what}; every role needs its own key"
            ))),
            None => Ok(()),
        }
    };
    for (i, signer) in root_signers.iter().enumerate() {
        claim(
            notary::key_id(&notary::ecdsa_key(signer.public_key())?),
            format!("root key {}", i + 1),
        )?;
    }
    claim(notary::key_id(&targets.0), "the targets key".into())?;
    if let Some(s) = &snapshot {
        claim(notary::key_id(&s.0), "the snapshot key".into())?;
    }

    let cert_not_after = {
        let ten_years = req.now.plus(model::days(DEFAULT_ROOT_DAYS));
        let latest = ten_years.max(req.expires);
        latest
            .whole_seconds()
            .plus(std::time::Duration::from_secs(1))
    };
    let role_expires = req
        .expires
        .min(req.now.plus(model::days(DEFAULT_TARGETS_DAYS)));
    let mut statuses = Vec::new();
    let mut drafts = Vec::new();
    for repo in &repos {
        let gun = repo.gun();
        let mut keys = BTreeMap::new();
        let mut signers = Vec::new();
        let mut root_ids = Vec::new();
        for (signer, uri) in root_signers.iter().zip(&root_uris) {
            let pem = x509::root_certificate(
                signer.as_ref(),
                gun,
                req.now.to_system(),
                cert_not_after.to_system(),
            )?;
            let key = notary::x509_key(&pem);
            let keyid = notary::key_id(&key);
            signers.push(DraftSigner {
                role: "root".into(),
                keyid: keyid.clone(),
                key_id: notary::canonical_key_id(&key)?,
                uri: uri.clone(),
            });
            root_ids.push(keyid.clone());
            keys.insert(keyid, key);
        }
        let mut add_key = |role: &str, key: &PublicKey, uri: Option<&String>| -> String {
            let keyid = notary::key_id(key);
            keys.insert(keyid.clone(), key.clone());
            if let Some(uri) = uri {
                signers.push(DraftSigner {
                    role: role.into(),
                    keyid: keyid.clone(),
                    key_id: keyid.clone(),
                    uri: uri.clone(),
                });
            }
            keyid
        };
        let targets_id = add_key("targets", &targets.0, Some(&targets.1));
        let snapshot_id = match (&snapshot, &req.snapshot_key) {
            (Some((key, uri)), _) => add_key("snapshot", key, Some(uri)),
            (None, SnapshotKey::Server(server)) => add_key("snapshot", &server[gun], None),
            (None, SnapshotKey::Token(_)) => unreachable!("token snapshot keys are resolved above"),
        };
        let timestamp_id = add_key("timestamp", &req.timestamp_keys[gun], None);
        let role = |ids: Vec<String>, threshold: u64| Role {
            keyids: ids,
            threshold,
        };
        let mut roles = BTreeMap::new();
        roles.insert("root".into(), role(root_ids, req.threshold));
        roles.insert("targets".into(), role(vec![targets_id], 1));
        roles.insert("snapshot".into(), role(vec![snapshot_id], 1));
        roles.insert("timestamp".into(), role(vec![timestamp_id], 1));
        let root = notary::new_root(keys, roles, req.expires, 1);
        let targets_doc = notary::new_targets(role_expires, 1);
        let draft = Draft {
            gun: gun.to_owned(),
            created: req.now.to_go_string(),
            server_snapshot: matches!(req.snapshot_key, SnapshotKey::Server(_)),
            snapshot_expires: role_expires.to_go_string(),
            signers,
            exported: None,
        };
        drafts.push((
            repo,
            Envelope::new(&root)?,
            Envelope::new(&targets_doc)?,
            draft,
        ));
    }
    let mut batch = Batch::new();
    for (repo, root, targets, draft) in &drafts {
        batch.write(repo.pending("root.json"), root.to_bytes()?);
        batch.write(repo.pending("targets.json"), targets.to_bytes()?);
        batch.write(repo.pending("draft.json"), json_bytes(draft)?);
        batch.remove(repo.pending("snapshot.json"));
    }
    batch.commit()?;
    dir.save_inventory(&inventory)?;
    for (repo, ..) in &drafts {
        statuses.push(draft_status(repo)?);
    }
    Ok(statuses)
}

fn role_status(
    file: &str,
    env: &Envelope,
    root: &Root,
    role: &str,
    draft: &Draft,
    checked: &BTreeSet<String>,
) -> Result<RoleStatus> {
    let spec = &root.roles[role];
    let valid = verify::valid_signers_trusting(file, env, &root.keys, spec, checked)?;
    let (signed, missing) = draft
        .signers
        .iter()
        .filter(|s| s.role == role)
        .cloned()
        .partition(|s| valid.contains(&s.keyid));
    Ok(RoleStatus {
        threshold: spec.threshold,
        signed,
        missing,
    })
}

/// The state of a GUN's draft.
pub fn draft_status(repo: &RepoDir) -> Result<DraftStatus> {
    let draft = load_draft(repo)?;
    let root_env = load_envelope(&repo.pending("root.json"))?;
    let root: Root = root_env.typed("root.json")?;
    let targets_env = load_envelope(&repo.pending("targets.json"))?;
    let snapshot_signed = repo.pending("snapshot.json").exists();
    status_of(
        &draft,
        &root,
        &root_env,
        &targets_env,
        snapshot_signed,
        &BTreeSet::new(),
    )
}

/// The state of a draft from its documents in memory (signatures are verified).
/// `checked` names signatures made and checked by this process, which are not checked again.
fn status_of(
    draft: &Draft,
    root: &Root,
    root_env: &Envelope,
    targets_env: &Envelope,
    snapshot_signed: bool,
    checked: &BTreeSet<String>,
) -> Result<DraftStatus> {
    let root_status = role_status("root.json", root_env, root, "root", draft, checked)?;
    let targets_status = role_status("targets.json", targets_env, root, "targets", draft, checked)?;
    let snapshot = if draft.server_snapshot {
        "server-managed".to_string()
    } else if snapshot_signed {
        "signed".to_string()
    } else if !root_status.complete() {
        "waits for the root threshold".to_string()
    } else if !targets_status.complete() {
        "waits for the targets signature".to_string()
    } else {
        "needs the snapshot key".to_string()
    };
    let ready = root_status.complete()
        && targets_status.complete()
        && (draft.server_snapshot || snapshot_signed);
    Ok(DraftStatus {
        gun: draft.gun.clone(),
        version: root.version,
        expires: root.expires.clone(),
        root: root_status,
        targets: targets_status,
        snapshot,
        ready,
        exported: draft.exported.clone(),
    })
}

/// Adds the signatures that `keys` can make to the drafts of `guns`: root first, then targets,
/// then the snapshot once root and targets meet their thresholds. Logs in to each token once.
pub fn sign(
    dir: &TrustDir,
    keyring: &mut Keyring<'_>,
    guns: &[String],
    keys: &[KeyUri],
) -> Result<Vec<SignOutcome>> {
    let mut drafts = Vec::new();
    for gun in guns {
        let repo = dir.repo(gun)?;
        let draft = load_draft(&repo)?;
        drafts.push((repo, draft));
    }
    let mut signers: Vec<(String, Box<dyn Signer>)> = Vec::new();
    for uri in keys {
        let signer = keyring.signer(uri)?;
        let key_id = notary::key_id(&notary::ecdsa_key(signer.public_key())?);
        let known = drafts
            .iter()
            .any(|(_, d)| d.signers.iter().any(|s| s.key_id == key_id));
        if !known {
            return Err(Error::Invalid(format!(
                "{} is not a key of the draft for {}; `rootkeeper root status` lists the keys that must sign",
                signer.describe(),
                guns.join(", ")
            )));
        }
        signers.push((key_id, signer));
    }
    let find = |key_id: &str| {
        signers
            .iter()
            .find(|(id, _)| id == key_id)
            .map(|(_, s)| s.as_ref())
    };

    let mut outcomes = Vec::new();
    let mut batch = Batch::new();
    for (repo, draft) in &drafts {
        let mut signed = Vec::new();
        let mut notes = Vec::new();
        let mut root_env = load_envelope(&repo.pending("root.json"))?;
        let root: Root = root_env.typed("root.json")?;
        let mut targets_env = load_envelope(&repo.pending("targets.json"))?;
        let mut changed = false;
        let mut checked = BTreeSet::new();
        for role in ["root", "targets"] {
            for s in draft.signers.iter().filter(|s| s.role == role) {
                let Some(signer) = find(&s.key_id) else {
                    continue;
                };
                let env = if role == "root" {
                    &mut root_env
                } else {
                    &mut targets_env
                };
                if env.signature_by(&s.keyid).is_some() {
                    notes.push(format!(
                        "{role} already carries the signature of {}",
                        verify::short(&s.keyid)
                    ));
                    continue;
                }
                notary::add_signature(env, signer, &s.keyid)?;
                checked.insert(s.keyid.clone());
                signed.push(format!("{role} by {}", verify::short(&s.keyid)));
                changed = true;
            }
        }
        let snapshot_path = repo.pending("snapshot.json");
        let mut snapshot_signed = snapshot_path.exists();
        if changed {
            batch.write(repo.pending("root.json"), root_env.to_bytes()?);
            batch.write(repo.pending("targets.json"), targets_env.to_bytes()?);
            if snapshot_signed {
                batch.remove(snapshot_path.clone());
                snapshot_signed = false;
                notes.push(
                    "the snapshot covered the old root/targets bytes and must be signed again"
                        .into(),
                );
            }
        }
        let mut status = status_of(
            draft,
            &root,
            &root_env,
            &targets_env,
            snapshot_signed,
            &checked,
        )?;
        if let Some(s) = draft.signers.iter().find(|s| s.role == "snapshot")
            && let Some(signer) = find(&s.key_id)
        {
            if snapshot_signed {
                notes.push("the snapshot is already signed".into());
            } else if !status.root.complete() || !status.targets.complete() {
                notes.push(format!(
                    "snapshot not signed yet: root has {} of {} signatures, targets {} of {}; sign the snapshot after them",
                    status.root.signed.len(),
                    status.root.threshold,
                    status.targets.signed.len(),
                    status.targets.threshold
                ));
            } else {
                let expires = UtcTime::parse(&draft.snapshot_expires)?;
                let doc = notary::new_snapshot(
                    &root_env.to_bytes()?,
                    &targets_env.to_bytes()?,
                    expires,
                    root.version,
                );
                let mut env = Envelope::new(&doc)?;
                notary::add_signature(&mut env, signer, &s.keyid)?;
                batch.write(snapshot_path, env.to_bytes()?);
                signed.push("snapshot".into());
                status.snapshot = "signed".into();
                status.ready = true;
            }
        }
        outcomes.push(SignOutcome {
            gun: repo.gun().to_owned(),
            signed,
            notes,
            status,
        });
    }
    batch.commit()?;
    Ok(outcomes)
}

fn previous_root(repo: &RepoDir, version: u64) -> Result<Option<Vec<u8>>> {
    if version <= 1 {
        return Ok(None);
    }
    let path = repo.root_version(version - 1);
    if !path.exists() {
        return Err(Error::NotFound(format!(
            "root version {} of {} is missing from the trust directory; it is needed to check version {version}",
            version - 1,
            repo.gun()
        )));
    }
    Ok(Some(trustdir::read(&path)?))
}

/// The draft files of a GUN.
struct PendingFiles {
    root: Vec<u8>,
    targets: Vec<u8>,
    snapshot: Option<Vec<u8>>,
}

fn pending_files(repo: &RepoDir) -> Result<PendingFiles> {
    let snapshot = repo.pending("snapshot.json");
    Ok(PendingFiles {
        root: trustdir::read(&repo.pending("root.json"))?,
        targets: trustdir::read(&repo.pending("targets.json"))?,
        snapshot: if snapshot.exists() {
            Some(trustdir::read(&snapshot)?)
        } else {
            None
        },
    })
}

/// Applies every client rule to a GUN's draft.
pub fn verify_draft(repo: &RepoDir, now: UtcTime) -> Result<Verified> {
    let draft = load_draft(repo)?;
    verify_pending(repo, &draft, &pending_files(repo)?, now)
}

fn verify_pending(
    repo: &RepoDir,
    draft: &Draft,
    files: &PendingFiles,
    now: UtcTime,
) -> Result<Verified> {
    let version = Envelope::parse("root.json", &files.root)?
        .typed::<Root>("root.json")?
        .version;
    let previous = previous_root(repo, version)?;
    let repo_files = RepoFiles {
        root: &files.root,
        targets: Some(&files.targets),
        snapshot: files.snapshot.as_deref(),
    };
    let verified = verify::verify_repo(repo_files, Some(repo.gun()), previous.as_deref(), now)?;
    if files.snapshot.is_none() && !draft.server_snapshot {
        return Err(Error::Rule {
            file: "snapshot.json".into(),
            rule: "snapshot-threshold",
            detail: "the snapshot is not signed yet".into(),
        });
    }
    Ok(verified)
}

/// Verifies every GUN's draft, then writes root.json, targets.json and (unless the server
/// manages it) snapshot.json into `out` (one GUN) or `out/<gun>/` (several). Nothing is written
/// unless every GUN verifies. Each root version is also kept in the trust directory.
pub fn export(
    dir: &TrustDir,
    guns: &[String],
    out: &Path,
    now: UtcTime,
) -> Result<Vec<ExportOutcome>> {
    let mut batch = Batch::new();
    let mut outcomes = Vec::new();
    for gun in guns {
        let repo = dir.repo(gun)?;
        let mut draft = load_draft(&repo)?;
        let files = pending_files(&repo)?;
        let verified = verify_pending(&repo, &draft, &files, now)?;
        let kept = repo.root_version(verified.root_version);
        if kept.exists() && trustdir::read(&kept)? != files.root {
            return Err(Error::Exists(format!(
                "{gun} already has a different root version {}; a new root needs a new version",
                verified.root_version
            )));
        }
        let target = if guns.len() == 1 {
            out.to_owned()
        } else {
            out.join(repo.gun())
        };
        batch.write(kept, files.root.clone());
        let mut names = Vec::new();
        for (name, bytes) in [
            ("root.json", Some(files.root)),
            ("targets.json", Some(files.targets)),
            ("snapshot.json", files.snapshot),
        ] {
            match bytes {
                Some(bytes) => {
                    batch.write(target.join(name), bytes.clone());
                    batch.write(repo.export_dir().join(name), bytes);
                    names.push(name.to_string());
                }
                None => {
                    batch.remove(target.join(name));
                    batch.remove(repo.export_dir().join(name));
                }
            }
        }
        draft.exported = Some(now.to_go_string());
        batch.write(repo.pending("draft.json"), json_bytes(&draft)?);
        outcomes.push(ExportOutcome {
            gun: repo.gun().to_owned(),
            dir: target,
            files: names,
            verified,
        });
    }
    batch.commit()?;
    Ok(outcomes)
}
