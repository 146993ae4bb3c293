//! `root init`: the draft root.json (k-of-n certificate root keys, one certificate per GUN per
//! key) and the initial targets.json of one or more GUNs.

use std::collections::{BTreeMap, BTreeSet};

use crate::backend::{KeyDescription, Keyring};
use crate::error::{Error, Result};
use crate::keyuri::KeyUri;
use crate::root::checks::{self, Insist};
use crate::root::draft::{self, Draft, DraftSigner, PendingDoc, ServerKey, SnapshotPlan};
use crate::signer::Signer;
use crate::trustdir::{Batch, Inventory, InventoryKey, KeyPolicy, TrustDir};
use crate::tuf::model::{
    self, KeyId, PublicKey, RoleKeys, RoleName, RootRoles, Threshold, UtcTime, Version,
};
use crate::tuf::notary::{self, DEFAULT_ROOT_DAYS, DEFAULT_TARGETS_DAYS};
use crate::tuf::verify;
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
    /// The almost-surely-wrong values insisted on ([`checks`]).
    pub insist: Insist,
}

/// The inventory entry of a key read from a token, with how it is protected against loss
/// (`None`: a key `root init` found on a token without knowing where it came from).
pub fn inventory_entry(
    key: &KeyDescription,
    role: Option<&str>,
    now: UtcTime,
    policy: Option<KeyPolicy>,
) -> Result<InventoryKey> {
    let public = notary::ecdsa_key(&key.public_key)?;
    Ok(InventoryKey {
        uri: key.uri.clone(),
        label: key.label.clone(),
        role: role.map(str::to_owned),
        algorithm: "ecdsa-p256".into(),
        key_id: notary::key_id(&public).to_string(),
        public_key: public.keyval.public.encoded(),
        token_label: key.token_label.clone(),
        token_serial: key.token_serial.clone(),
        created: now.whole_seconds().to_go_string(),
        policy,
        ..InventoryKey::default()
    })
}

/// Records a key on a token (PKCS#11 or YubiKey) in the inventory.
pub fn record_key(
    dir: &TrustDir,
    key: &KeyDescription,
    role: Option<&str>,
    now: UtcTime,
    policy: Option<KeyPolicy>,
) -> Result<InventoryKey> {
    let entry = inventory_entry(key, role, now, policy)?;
    let mut inventory = dir.inventory()?;
    inventory.upsert(entry.clone());
    dir.save_inventory(&inventory)?;
    Ok(entry)
}

/// A key named on the command line, resolved without logging in.
struct Resolved {
    public: PublicKey,
    key_id: KeyId,
    uri: String,
}

/// Resolves a key given for `role`; a key the inventory records for another role is refused
/// unless insisted on (then `warnings` says so).
fn resolve(
    keyring: &mut Keyring<'_>,
    inventory: &mut Inventory,
    (uri, role): (&KeyUri, &str),
    req: &InitRequest,
    warnings: &mut Vec<String>,
) -> Result<Resolved> {
    let key = keyring.public_key(uri)?;
    let entry = inventory_entry(&key, Some(role), req.now, None)?;
    let public = notary::ecdsa_key(&key.public_key)?;
    let resolved = Resolved {
        key_id: notary::key_id(&public),
        public,
        uri: entry.uri.clone(),
    };
    match inventory.by_key_id(&entry.key_id) {
        None => inventory.upsert(entry),
        Some(known) => warnings.extend(checks::key_role(
            &entry.uri,
            &entry.key_id,
            role,
            known.role.as_deref(),
            req.insist.role_mismatch,
        )?),
    }
    Ok(resolved)
}

/// Makes the draft root (and initial targets) for every GUN in `req`. Root keys sign their
/// certificates here, so every root token is needed once; root.json's signatures can then be
/// collected one custodian at a time.
pub fn init(
    dir: &TrustDir,
    keyring: &mut Keyring<'_>,
    req: &InitRequest,
) -> Result<Vec<draft::DraftStatus>> {
    if req.guns.is_empty() {
        return Err(Error::Invalid("give at least one --gun".into()));
    }
    let n = u64::try_from(req.root_keys.len()).unwrap_or(u64::MAX);
    if n == 0 {
        return Err(Error::Invalid("give at least one --root-key".into()));
    }
    if req.threshold < 1 || req.threshold > n {
        return Err(Error::Invalid(format!(
            "a threshold of {} cannot be met with {n} root key(s); choose 1 to {n}",
            req.threshold
        )));
    }
    let threshold = Threshold::new(req.threshold)?;
    if req.expires <= req.now {
        return Err(Error::Invalid(format!(
            "--expires {} is in the past; give a future time or a duration such as 10y",
            req.expires
        )));
    }
    let mut warnings: Vec<String> = Vec::new();
    warnings.extend(checks::root_expiry(
        req.expires,
        req.now,
        req.insist.short_expiry,
    )?);
    let mut repos = Vec::new();
    let mut seen = BTreeSet::new();
    for gun in &req.guns {
        if !seen.insert(gun) {
            return Err(Error::Invalid(format!("--gun {gun} is given twice")));
        }
        warnings.extend(checks::new_gun(gun, req.insist.unusual_gun)?);
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
    let targets = resolve(
        keyring,
        &mut inventory,
        (&req.targets_key, "targets"),
        req,
        &mut warnings,
    )?;
    let snapshot = match &req.snapshot_key {
        SnapshotKey::Token(uri) => Some(resolve(
            keyring,
            &mut inventory,
            (uri, "snapshot"),
            req,
            &mut warnings,
        )?),
        SnapshotKey::Server(_) => None,
    };
    let mut roots = Vec::new();
    for uri in &req.root_keys {
        roots.push(resolve(
            keyring,
            &mut inventory,
            (uri, "root"),
            req,
            &mut warnings,
        )?);
    }
    let mut used: BTreeMap<KeyId, String> = BTreeMap::new();
    let mut claim = |key_id: &KeyId, what: String| -> Result<()> {
        match used.insert(key_id.clone(), what.clone()) {
            Some(other) => Err(Error::Invalid(format!(
                "the same key is given as {other} and as {what}; every role needs its own key"
            ))),
            None => Ok(()),
        }
    };
    for (i, r) in roots.iter().enumerate() {
        claim(&r.key_id, format!("root key {}", i.saturating_add(1)))?;
    }
    claim(&targets.key_id, "the targets key".into())?;
    if let Some(s) = &snapshot {
        claim(&s.key_id, "the snapshot key".into())?;
    }
    let mut root_signers: Vec<Box<dyn Signer>> = Vec::new();
    for uri in &req.root_keys {
        root_signers.push(keyring.signer(uri)?);
    }

    let cert_not_after = req
        .now
        .plus(model::days(DEFAULT_ROOT_DAYS))
        .max(req.expires)
        .whole_seconds()
        .plus(std::time::Duration::from_secs(1));
    let role_expires = req
        .expires
        .min(req.now.plus(model::days(DEFAULT_TARGETS_DAYS)));
    // The certificates, made on the tokens one GUN after another; then everything else (their
    // checks, the documents, the draft status) for every GUN in parallel; then the batch.
    let notifier = keyring.notifier();
    let mut certified = Vec::with_capacity(repos.len());
    for (index, repo) in repos.iter().enumerate() {
        let mut certs = Vec::with_capacity(root_signers.len());
        for signer in &root_signers {
            certs.push(x509::root_certificate_unchecked(
                signer.as_ref(),
                repo.gun(),
                req.now.to_system(),
                cert_not_after.to_system(),
            )?);
        }
        certified.push((repo, certs));
        crate::notice::progress(notifier.as_ref(), "root init", index, repos.len());
    }
    let drafted = crate::root::in_parallel(&certified, |(repo, certs)| {
        let gun = repo.gun();
        let mut keys = BTreeMap::new();
        let mut signers = Vec::new();
        let mut server_keys = Vec::new();
        let mut root_ids = Vec::new();
        for ((pem, check), resolved) in certs.iter().zip(&roots) {
            check.run()?;
            let key = notary::x509_key(pem);
            let keyid = notary::key_id(&key);
            signers.push(DraftSigner {
                role: RoleName::Root,
                keyid: keyid.clone(),
                key_id: resolved.key_id.clone(),
                uri: resolved.uri.clone(),
                previous: false,
                legacy: None,
            });
            root_ids.push(keyid.clone());
            keys.insert(keyid, key);
        }
        let mut add = |role: RoleName, key: &PublicKey, signer: Option<&Resolved>| -> KeyId {
            let keyid = notary::key_id(key);
            keys.insert(keyid.clone(), key.clone());
            match signer {
                Some(r) => signers.push(DraftSigner {
                    role,
                    keyid: keyid.clone(),
                    key_id: r.key_id.clone(),
                    uri: r.uri.clone(),
                    previous: false,
                    legacy: None,
                }),
                None => server_keys.push(ServerKey {
                    role,
                    keyid: keyid.clone(),
                }),
            }
            keyid
        };
        let targets_id = add(RoleName::Targets, &targets.public, Some(&targets));
        let snapshot_id = match (&snapshot, &req.snapshot_key) {
            (Some(s), _) => add(RoleName::Snapshot, &s.public, Some(s)),
            (None, SnapshotKey::Server(server)) => {
                let key = server
                    .get(gun)
                    .ok_or_else(|| Error::Invalid(format!("no server snapshot key for {gun}")))?;
                add(RoleName::Snapshot, key, None)
            }
            (None, SnapshotKey::Token(_)) => {
                return Err(Error::Invalid("the snapshot key was not resolved".into()));
            }
        };
        let timestamp = req
            .timestamp_keys
            .get(gun)
            .ok_or_else(|| Error::Invalid(format!("no timestamp key for {gun}")))?;
        let timestamp_id = add(RoleName::Timestamp, timestamp, None);
        let one = |id: KeyId| RoleKeys {
            keyids: vec![id],
            threshold: Threshold::ONE,
        };
        let roles = RootRoles {
            root: RoleKeys {
                keyids: root_ids,
                threshold,
            },
            snapshot: one(snapshot_id),
            targets: one(targets_id),
            timestamp: one(timestamp_id),
        };
        let root = notary::unsigned(notary::new_root(keys, roles, req.expires, Version::FIRST));
        let targets_doc = notary::unsigned(notary::new_targets(role_expires, Version::FIRST));
        let root_signed = root.signed_bytes()?;
        let targets_signed = targets_doc.signed_bytes()?;
        let record = Draft {
            format: 1,
            gun: gun.to_owned(),
            created: req.now.to_go_string(),
            purpose: "a new repository".into(),
            root: PendingDoc::of(1, &root_signed),
            targets: PendingDoc::of(1, &targets_signed),
            snapshot: match req.snapshot_key {
                SnapshotKey::Token(_) => SnapshotPlan::Offline {
                    version: 1,
                    expires: role_expires.to_go_string(),
                },
                SnapshotKey::Server(_) => SnapshotPlan::ServerManaged,
            },
            signers,
            server_keys,
            delegations: BTreeMap::new(),
            exported: None,
        };
        let files = [
            (repo.pending("root.json"), root.to_bytes()?),
            (repo.pending("targets.json"), targets_doc.to_bytes()?),
            (repo.pending(draft::DRAFT_FILE), record.to_bytes()?),
        ];
        let keys = verify::key_table("root.json", &root.signed.keys)?;
        let mut status = draft::status(&draft::PendingDraft {
            draft: record,
            root,
            root_signed,
            keys,
            previous: None,
            legacy: BTreeMap::new(),
            targets: targets_doc,
            targets_signed,
            snapshot: None,
            fresh: Vec::new(),
        });
        status.warnings.clone_from(&warnings);
        Ok((repo.pending("snapshot.json"), files, status))
    })?;
    let mut batch = Batch::new();
    let mut statuses = Vec::with_capacity(repos.len());
    for (stale_snapshot, files, status) in drafted {
        for (path, bytes) in files {
            batch.write(path, bytes);
        }
        batch.remove(stale_snapshot);
        statuses.push(status);
    }
    dir.stage_inventory(&mut batch, &inventory)?;
    dir.commit(batch)?;
    Ok(statuses)
}
