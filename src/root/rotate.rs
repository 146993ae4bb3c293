//! New root versions: `root rotate` (add, remove or replace root keys, change the threshold),
//! `root renew` (a later expiry, re-issued certificates), `root rotate-key` (a new repository,
//! snapshot or timestamp key). Each is a draft of root version N+1 over the repository as the
//! server holds it (see [`super::change::base`]), to be signed by the new root's threshold of
//! its keys AND the previous root's threshold of its keys (notary's `SignRoot`; the server
//! checks both), collected with `root sign`, checked by `root export`, published by `server
//! publish`.
//!
//! Before anything is signed, even the new certificates, the rotation is checked to be
//! completable with the keys that can still sign: a lost key (`lost`) cannot.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use serde::Serialize;

use crate::backend::Keyring;
use crate::error::{Error, Result};
use crate::keyuri::KeyUri;
use crate::root::change::{self, Base, Change};
use crate::root::draft::{DraftSigner, DraftStatus, ServerKey};
use crate::root::init::SnapshotKey;
use crate::trustdir::{Batch, Inventory, TrustDir};
use crate::tuf::model::{
    self, GoTime, KeyId, PublicKey, RoleKeys, RoleName, Root, RootRoles, Signed, Threshold,
    UtcTime, Version,
};
use crate::tuf::notary::{self, DEFAULT_ROOT_DAYS};
use crate::tuf::verify::{self, KeyFacts};
use crate::x509;

/// A key named on the command line: its URI, or its key ID (the canonical key ID, or the
/// certificate key ID a root lists).
#[derive(Debug, Clone)]
pub enum KeySelector {
    /// A key URI (resolved without logging in).
    Uri(Box<KeyUri>),
    /// A key ID (64 hex).
    Id(KeyId),
}

impl FromStr for KeySelector {
    type Err = Error;
    fn from_str(text: &str) -> Result<KeySelector> {
        if text.starts_with("pkcs11:") || text.starts_with("yubikey:") {
            return Ok(KeySelector::Uri(Box::new(text.parse()?)));
        }
        KeyId::parse(text).map(KeySelector::Id).map_err(|_| {
            Error::Invalid(format!(
                "`{}` is neither a key URI nor a key ID (64 hex characters, as `rootkeeper root status` shows)",
                crate::text::escape_untrusted(text)
            ))
        })
    }
}

/// What a new root version changes.
#[derive(Debug, Clone)]
pub struct RotateRequest {
    /// The repositories (they share root keys; one login per token for all).
    pub guns: Vec<String>,
    /// Root keys to add.
    pub add_root_keys: Vec<KeyUri>,
    /// Root keys to remove.
    pub remove_root_keys: Vec<KeySelector>,
    /// Keys that cannot sign any more (lost, destroyed): never asked to sign the rotation.
    pub lost: Vec<KeySelector>,
    /// The new root threshold (default: the current one).
    pub threshold: Option<u64>,
    /// Also let the root keys of this many older versions sign (optional signatures), so that
    /// clients that trusted them accept the new root without walking the chain.
    pub legacy: u64,
    /// Root expiry (default: the current root's).
    pub expires: Option<UtcTime>,
    /// Re-issue every root certificate (same keys, new certificates).
    pub renew_certificates: bool,
    /// URIs (e.g. with their `pin-source`) to use for root keys that must make a new
    /// certificate; other keys are opened by their inventory URI.
    pub certificate_keys: Vec<KeyUri>,
    /// A new repository (targets) key; targets.json is re-signed with it.
    pub targets_key: Option<KeyUri>,
    /// A new snapshot key: on a token (signed offline) or the server's.
    pub snapshot_key: Option<SnapshotKey>,
    /// New timestamp keys by GUN (from `server timestamp-key --rotate`).
    pub timestamp_keys: Option<BTreeMap<String, PublicKey>>,
    /// What it is for, in words (shown by `root status`).
    pub purpose: String,
    /// Now.
    pub now: UtcTime,
    /// Replace a pending draft.
    pub replace_draft: bool,
}

impl RotateRequest {
    /// A request that changes nothing yet (the keys stay, the threshold and the expiry
    /// stay).
    pub fn new(guns: Vec<String>, now: UtcTime) -> RotateRequest {
        RotateRequest {
            guns,
            add_root_keys: Vec::new(),
            remove_root_keys: Vec::new(),
            lost: Vec::new(),
            threshold: None,
            legacy: 0,
            expires: None,
            renew_certificates: false,
            certificate_keys: Vec::new(),
            targets_key: None,
            snapshot_key: None,
            timestamp_keys: None,
            purpose: String::new(),
            now,
            replace_draft: false,
        }
    }
}

/// What `root rotate` (and friends) made.
#[derive(Debug, Clone, Serialize)]
pub struct RotateOutcome {
    /// Each GUN's new draft.
    pub drafts: Vec<DraftStatus>,
    /// Warnings (few spare keys, certificates re-issued…).
    pub warnings: Vec<String>,
}

/// A root key of the new root: its identity, public key, URI, and the certificate it keeps
/// (per GUN) or needs.
struct NewRootKey {
    key_id: KeyId,
    uri: String,
    given: Option<KeyUri>,
}

/// Resolves a key URI without logging in and records the key in the inventory if new.
fn remember(
    keyring: &mut Keyring<'_>,
    inventory: &mut Inventory,
    uri: &KeyUri,
    role: &str,
    now: UtcTime,
) -> Result<(crate::backend::KeyDescription, PublicKey, KeyId)> {
    let key = keyring.public_key(uri)?;
    let public = notary::ecdsa_key(&key.public_key)?;
    let key_id = notary::key_id(&public);
    if inventory.by_key_id(key_id.as_str()).is_none() {
        inventory.upsert(crate::root::init::inventory_entry(
            &key,
            Some(role),
            now,
            None,
        )?);
    }
    Ok((key, public, key_id))
}

fn inventory_uri(inventory: &Inventory, key_id: &KeyId) -> Option<String> {
    inventory.by_key_id(key_id.as_str()).map(|e| e.uri.clone())
}

fn given_uri(inventory: &Inventory, key: &NewRootKey) -> Result<KeyUri> {
    match &key.given {
        Some(uri) => Ok(uri.clone()),
        None => inventory
            .by_key_id(key.key_id.as_str())
            .ok_or_else(|| {
                Error::Invalid(format!("root key {} is not in the inventory", key.key_id))
            })?
            .uri
            .parse(),
    }
}

/// Resolves selectors to canonical key IDs: a URI by its public key (no login), a key ID as
/// a canonical ID or as a certificate key ID of `root`.
fn select(
    keyring: &mut Keyring<'_>,
    selectors: &[KeySelector],
    root_keys: &BTreeMap<KeyId, KeyFacts>,
) -> Result<BTreeSet<KeyId>> {
    let mut out = BTreeSet::new();
    for s in selectors {
        let id = match s {
            KeySelector::Uri(uri) => notary::p256_key_id(&keyring.public_key(uri)?.public_key)?,
            KeySelector::Id(id) => root_keys
                .get(id)
                .map(|f| f.canonical.clone())
                .unwrap_or_else(|| id.clone()),
        };
        out.insert(id);
    }
    Ok(out)
}

/// The canonical IDs of a root's root-role keys, with their certificate key IDs.
fn root_role_keys(root: &Root, keys: &BTreeMap<KeyId, KeyFacts>) -> BTreeMap<KeyId, KeyId> {
    root.roles
        .root
        .keyids
        .iter()
        .filter_map(|id| keys.get(id).map(|f| (f.canonical.clone(), id.clone())))
        .collect()
}

fn describe_keys(ids: &BTreeSet<KeyId>) -> String {
    if ids.is_empty() {
        "none".into()
    } else {
        ids.iter()
            .map(KeyId::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A role of the previous root whose keys the new root keeps.
struct Kept<'a> {
    role: RoleName,
    previous: &'a verify::CheckedRoot,
    inventory: &'a Inventory,
    gun: &'a str,
}

/// What a kept key that is not in the inventory (or not ours to sign with) is.
#[derive(Clone, Copy)]
enum Unknown {
    /// An error: the key must be on one of our tokens (targets).
    Refuse,
    /// The server's (a snapshot key it holds), unless the inventory has it.
    ServerHeld,
    /// Always the server's (timestamp), whatever the inventory says.
    Always,
}

/// The keys a new root names, with who signs for each role: a signer on a token, or the
/// server.
struct NamedKeys<'a> {
    keys: &'a mut BTreeMap<KeyId, PublicKey>,
    signers: &'a mut Vec<DraftSigner>,
    server_keys: Vec<ServerKey>,
}

impl NamedKeys<'_> {
    /// A new key on a token for `role`.
    fn token(
        &mut self,
        role: RoleName,
        public: &PublicKey,
        key_id: &KeyId,
        uri: &str,
    ) -> Vec<KeyId> {
        self.keys.insert(key_id.clone(), public.clone());
        self.signers.push(DraftSigner {
            role,
            keyid: key_id.clone(),
            key_id: key_id.clone(),
            uri: uri.to_owned(),
            previous: false,
            legacy: None,
        });
        vec![key_id.clone()]
    }

    /// A new key the server holds for `role`.
    fn server(&mut self, role: RoleName, key: &PublicKey) -> Vec<KeyId> {
        let id = notary::key_id(key);
        self.keys.insert(id.clone(), key.clone());
        self.server_keys.push(ServerKey {
            role,
            keyid: id.clone(),
        });
        vec![id]
    }

    /// The previous root's keys of a role, kept.
    fn kept(&mut self, kept: &Kept<'_>, unknown: Unknown) -> Result<Vec<KeyId>> {
        let role = kept.role;
        let ids = kept.previous.doc.signed.roles.get(role).keyids.clone();
        for id in &ids {
            let facts = kept
                .previous
                .keys
                .get(id)
                .ok_or_else(|| Error::Invalid(format!("{role} key {id} has no key")))?;
            self.keys.insert(id.clone(), facts.key.clone());
            let signer = match unknown {
                Unknown::Always => None,
                _ => change::signer_for(kept.inventory, role, id, facts, false),
            };
            match (signer, unknown) {
                (Some(s), _) => self.signers.push(s),
                (None, Unknown::Refuse) => {
                    return Err(Error::Invalid(format!(
                        "the repository key {} of {} is not in this trust directory's inventory",
                        facts.canonical, kept.gun
                    )));
                }
                (None, _) => self.server_keys.push(ServerKey {
                    role,
                    keyid: id.clone(),
                }),
            }
        }
        Ok(ids)
    }
}

/// Makes the draft of root version N+1 for every GUN in `req` (see the module documentation).
pub fn rotate(
    dir: &TrustDir,
    keyring: &mut Keyring<'_>,
    req: &RotateRequest,
) -> Result<RotateOutcome> {
    if req.guns.is_empty() {
        return Err(Error::Invalid("give at least one --gun".into()));
    }
    let mut inventory = dir.inventory()?;
    let mut warnings = Vec::new();
    let mut bases = Vec::new();
    for gun in &req.guns {
        let repo = dir.repo(gun)?;
        if repo.has_pending() && !req.replace_draft {
            return Err(Error::Exists(format!(
                "{gun} already has a draft; `rootkeeper root status --gun {gun}` shows it, --force replaces it"
            )));
        }
        bases.push((gun.clone(), change::base(&repo, req.now)?));
    }

    // Keys named on the command line, resolved without logging in.
    let mut added = Vec::new();
    for uri in &req.add_root_keys {
        let (key, _, key_id) = remember(keyring, &mut inventory, uri, "root", req.now)?;
        added.push(NewRootKey {
            key_id,
            uri: key.uri,
            given: Some(uri.clone()),
        });
    }
    let new_targets = match &req.targets_key {
        Some(uri) => {
            let (key, public, key_id) = remember(keyring, &mut inventory, uri, "targets", req.now)?;
            Some((public, key_id, key.uri))
        }
        None => None,
    };
    let new_snapshot_token = match &req.snapshot_key {
        Some(SnapshotKey::Token(uri)) => {
            let (key, public, key_id) =
                remember(keyring, &mut inventory, uri, "snapshot", req.now)?;
            Some((public, key_id, key.uri))
        }
        _ => None,
    };

    // Plan every GUN before any login: keys, threshold, which certificates must be made, and
    // whether the keys that can still sign complete both thresholds.
    struct Planned {
        gun: String,
        base: Base,
        keys: Vec<NewRootKey>,
        keep_cert: BTreeMap<KeyId, KeyId>,
        threshold: Threshold,
        expires: UtcTime,
    }
    let mut planned = Vec::new();
    for (gun, base) in bases {
        let prev = &base.root;
        let expires = req
            .expires
            .unwrap_or_else(|| prev.doc.signed.expires.instant());
        if expires <= req.now {
            return Err(Error::Invalid(format!(
                "the new root of {gun} would expire at {expires}, which is past; give --expires (e.g. `root renew --expires 10y`)"
            )));
        }
        if expires.days_since(req.now) < 30 {
            warnings.push(format!(
                "{gun}: the new root expires in under 30 days ({expires}); `rootkeeper root renew` gives it a later expiry"
            ));
        }
        let prev_keys = root_role_keys(&prev.doc.signed, &prev.keys);
        let removed = select(keyring, &req.remove_root_keys, &prev.keys)?;
        let lost = select(keyring, &req.lost, &prev.keys)?;
        for id in &removed {
            if !prev_keys.contains_key(id) {
                return Err(Error::Invalid(format!(
                    "{id} is not a root key of {gun} (root v{}); `rootkeeper root status` and `inspect` show its keys",
                    prev.doc.signed.version
                )));
            }
        }
        if let Some(id) = lost
            .iter()
            .find(|id| prev_keys.contains_key(*id) && !removed.contains(*id))
        {
            return Err(Error::Invalid(format!(
                "the lost key {id} is still a root key of {gun}: remove it too (--remove-root-key {id})"
            )));
        }
        let mut keys: Vec<NewRootKey> = Vec::new();
        let mut keep_cert = BTreeMap::new();
        for (canonical, cert_id) in &prev_keys {
            if removed.contains(canonical) {
                continue;
            }
            let facts = prev
                .keys
                .get(cert_id)
                .ok_or_else(|| Error::Invalid(format!("root key {cert_id} of {gun} has no key")))?;
            let uri = inventory_uri(&inventory, canonical).ok_or_else(|| {
                Error::Invalid(format!(
                    "root key {canonical} of {gun} is not in this trust directory's inventory, so it can neither sign nor keep its place; remove it (--remove-root-key {canonical}) or use the trust directory that made it"
                ))
            })?;
            let not_after = facts
                .certs
                .first()
                .map(|c| UtcTime::from_system(c.not_after))
                .unwrap_or(req.now);
            if !req.renew_certificates && not_after >= expires {
                keep_cert.insert(canonical.clone(), cert_id.clone());
            }
            keys.push(NewRootKey {
                key_id: canonical.clone(),
                uri,
                given: None,
            });
        }
        for add in &added {
            if prev_keys.contains_key(&add.key_id) && !removed.contains(&add.key_id) {
                return Err(Error::Invalid(format!(
                    "{} (key ID {}) is already a root key of {gun}",
                    add.uri, add.key_id
                )));
            }
            if keys.iter().any(|k| k.key_id == add.key_id) {
                continue;
            }
            keys.push(NewRootKey {
                key_id: add.key_id.clone(),
                uri: add.uri.clone(),
                given: add.given.clone(),
            });
        }
        let n = u64::try_from(keys.len()).unwrap_or(u64::MAX);
        let k = req
            .threshold
            .unwrap_or(prev.doc.signed.roles.root.threshold.get());
        if n == 0 {
            return Err(Error::Invalid(format!("{gun} would have no root key left")));
        }
        if k < 1 || k > n {
            return Err(Error::Invalid(format!(
                "a threshold of {k} cannot be met with {n} root key(s); choose 1 to {n}"
            )));
        }
        let spare = n.saturating_sub(k);
        if spare < 2 {
            warnings.push(format!(
                "{gun}: {k}-of-{n} leaves {spare} spare root key(s): losing {} token(s) makes this root impossible to change",
                spare.saturating_add(1)
            ));
        }
        // Completable? The previous root's keys that can still sign, and the new root's.
        let usable_prev: BTreeSet<KeyId> = prev_keys
            .keys()
            .filter(|id| !lost.contains(*id) && inventory.by_key_id(id.as_str()).is_some())
            .cloned()
            .collect();
        let prev_k = prev.doc.signed.roles.root.threshold.get();
        if u64::try_from(usable_prev.len()).unwrap_or(0) < prev_k {
            let unusable: BTreeSet<KeyId> = prev_keys
                .keys()
                .filter(|id| !usable_prev.contains(*id))
                .cloned()
                .collect();
            return Err(Error::RotationImpossible {
                gun,
                detail: format!(
                    "the previous root (v{}) must sign it with {prev_k} of its keys, and only {} can still sign ({}); lost or not in this trust directory: {}",
                    prev.doc.signed.version,
                    usable_prev.len(),
                    describe_keys(&usable_prev),
                    describe_keys(&unusable)
                ),
            });
        }
        let usable_new = keys.iter().filter(|k| !lost.contains(&k.key_id)).count();
        if u64::try_from(usable_new).unwrap_or(0) < k {
            return Err(Error::RotationImpossible {
                gun,
                detail: format!(
                    "the new root needs {k} signatures and only {usable_new} of its keys can sign"
                ),
            });
        }
        planned.push(Planned {
            gun,
            base,
            keys,
            keep_cert,
            threshold: Threshold::new(k)?,
            expires,
        });
    }

    // Certificates for new and renewed keys: one login per token.
    let mut by_id: BTreeMap<KeyId, KeyUri> = BTreeMap::new();
    for uri in &req.certificate_keys {
        let id = notary::p256_key_id(&keyring.public_key(uri)?.public_key)?;
        by_id.insert(id, uri.clone());
    }
    let mut signers: BTreeMap<KeyId, Box<dyn crate::signer::Signer>> = BTreeMap::new();
    for p in &planned {
        for key in &p.keys {
            if p.keep_cert.contains_key(&key.key_id) || signers.contains_key(&key.key_id) {
                continue;
            }
            let uri = match by_id.get(&key.key_id) {
                Some(uri) => uri.clone(),
                None => given_uri(&inventory, key)?,
            };
            let signer = keyring.signer(&uri)?;
            if notary::p256_key_id(signer.public_key())? != key.key_id {
                return Err(Error::Invalid(format!(
                    "{} holds another key than {}",
                    key.uri, key.key_id
                )));
            }
            signers.insert(key.key_id.clone(), signer);
        }
    }

    let mut batch = Batch::new();
    let mut drafts = Vec::new();
    for p in planned {
        let repo = dir.repo(&p.gun)?;
        let prev = &p.base.root;
        let prev_root = &prev.doc.signed;
        let cert_not_after = req
            .now
            .plus(model::days(DEFAULT_ROOT_DAYS))
            .max(p.expires)
            .whole_seconds()
            .plus(std::time::Duration::from_secs(1));
        let mut keys: BTreeMap<KeyId, PublicKey> = BTreeMap::new();
        let mut signer_list: Vec<DraftSigner> = Vec::new();
        let mut root_ids = Vec::new();
        let mut reissued = Vec::new();
        for key in &p.keys {
            let (keyid, public) = match p.keep_cert.get(&key.key_id) {
                Some(cert_id) => {
                    let public =
                        prev_root.keys.get(cert_id).cloned().ok_or_else(|| {
                            Error::Invalid(format!("root key {cert_id} has no key"))
                        })?;
                    (cert_id.clone(), public)
                }
                None => {
                    let signer = signers
                        .get(&key.key_id)
                        .ok_or_else(|| Error::Invalid(format!("no signer for {}", key.key_id)))?;
                    let pem = x509::root_certificate(
                        signer.as_ref(),
                        &p.gun,
                        req.now.to_system(),
                        cert_not_after.to_system(),
                    )?;
                    let public = notary::x509_key(&pem);
                    if key.given.is_none() {
                        reissued.push(key.key_id.clone());
                    }
                    (notary::key_id(&public), public)
                }
            };
            signer_list.push(DraftSigner {
                role: RoleName::Root,
                keyid: keyid.clone(),
                key_id: key.key_id.clone(),
                uri: key.uri.clone(),
                previous: false,
                legacy: None,
            });
            root_ids.push(keyid.clone());
            keys.insert(keyid, public);
        }
        if !reissued.is_empty() {
            warnings.push(format!(
                "{}: new certificates for {} (their old ones would expire before the new root); each of these keys signs twice, once under each certificate",
                p.gun,
                reissued.iter().map(KeyId::to_string).collect::<Vec<_>>().join(", ")
            ));
        }
        let mut named = NamedKeys {
            keys: &mut keys,
            signers: &mut signer_list,
            server_keys: Vec::new(),
        };
        let kept = |role| Kept {
            role,
            previous: prev,
            inventory: &inventory,
            gun: &p.gun,
        };
        let (targets_ids, targets_changed) = match &new_targets {
            Some((public, key_id, uri)) => {
                (named.token(RoleName::Targets, public, key_id, uri), true)
            }
            None => (
                named.kept(&kept(RoleName::Targets), Unknown::Refuse)?,
                false,
            ),
        };
        let snapshot_ids = match (&req.snapshot_key, &new_snapshot_token) {
            (Some(SnapshotKey::Token(_)), Some((public, key_id, uri))) => {
                named.token(RoleName::Snapshot, public, key_id, uri)
            }
            (Some(SnapshotKey::Server(server)), _) => {
                let key = server.get(&p.gun).ok_or_else(|| {
                    Error::Invalid(format!("no server snapshot key for {}", p.gun))
                })?;
                named.server(RoleName::Snapshot, key)
            }
            _ => named.kept(&kept(RoleName::Snapshot), Unknown::ServerHeld)?,
        };
        let timestamp_ids = match &req.timestamp_keys {
            Some(map) => {
                let key = map
                    .get(&p.gun)
                    .ok_or_else(|| Error::Invalid(format!("no timestamp key for {}", p.gun)))?;
                named.server(RoleName::Timestamp, key)
            }
            None => named.kept(&kept(RoleName::Timestamp), Unknown::Always)?,
        };
        let server_keys = named.server_keys;
        let one = |keyids: Vec<KeyId>| RoleKeys {
            keyids,
            threshold: Threshold::ONE,
        };
        let version = prev_root.version.next()?;
        let root = Root {
            type_: model::RootType,
            consistent_snapshot: false,
            expires: GoTime::utc(p.expires),
            keys,
            roles: RootRoles {
                root: RoleKeys {
                    keyids: root_ids,
                    threshold: p.threshold,
                },
                snapshot: one(snapshot_ids),
                targets: one(targets_ids),
                timestamp: one(timestamp_ids),
            },
            version,
        };
        // The previous root's keys sign too (each that can), and with --legacy the keys of
        // older versions (optional).
        let lost = select(keyring, &req.lost, &prev.keys)?;
        for (canonical, cert_id) in root_role_keys(prev_root, &prev.keys) {
            if lost.contains(&canonical) {
                continue;
            }
            if let Some(uri) = inventory_uri(&inventory, &canonical) {
                signer_list.push(DraftSigner {
                    role: RoleName::Root,
                    keyid: cert_id,
                    key_id: canonical,
                    uri,
                    previous: true,
                    legacy: None,
                });
            }
        }
        let mut older = prev_root.version.get();
        for _ in 0..req.legacy {
            older = older.saturating_sub(1);
            if older < 1 {
                break;
            }
            let path = repo.root_version(Version::new(older)?);
            let doc = Signed::<Root>::parse(&path.display().to_string(), &repo.read(&path)?)?;
            let old_keys = verify::key_table(&path.display().to_string(), &doc.signed.keys)?;
            for (canonical, cert_id) in root_role_keys(&doc.signed, &old_keys) {
                if lost.contains(&canonical) {
                    continue;
                }
                if let Some(uri) = inventory_uri(&inventory, &canonical) {
                    signer_list.push(DraftSigner {
                        role: RoleName::Root,
                        keyid: cert_id,
                        key_id: canonical,
                        uri,
                        previous: false,
                        legacy: Some(older),
                    });
                }
            }
        }
        let targets_expires = change::role_expiry(&root, req.now);
        let targets = if targets_changed {
            Some(change::resigned_targets(&p.base, targets_expires)?)
        } else {
            None
        };
        let new_keys = verify::key_table("root.json", &root.keys)?;
        let snapshot = change::snapshot_plan(
            &inventory,
            &root,
            &new_keys,
            p.base.next_snapshot_version()?,
            targets_expires,
        );
        let status = change::write_draft(
            &repo,
            &p.base,
            Change {
                purpose: format!("root v{version}: {}", req.purpose),
                root: Some(root),
                targets,
                signers: signer_list,
                server_keys,
                snapshot,
            },
            req.now,
            req.replace_draft,
            &mut batch,
        )?;
        drafts.push(status);
    }
    dir.stage_inventory(&mut batch, &inventory)?;
    dir.commit(batch)?;
    Ok(RotateOutcome { drafts, warnings })
}
