//! `root unsign`: takes a key's signatures back out of a draft that is not exported yet, e.g.
//! a custodian who signed the wrong draft, or one signature too many before the snapshot.
//! No token is logged in to: a key is named by its URI (read without a login) or by its key
//! ID as `root status` shows it.
//!
//! The snapshot covers the exact bytes of root.json and targets.json, so taking back a root
//! or targets signature drops the snapshot too (it is signed again after the thresholds are
//! met). An exported draft is never changed: the export is what the trust server gets.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::backend::Keyring;
use crate::error::{Error, Result};
use crate::keyuri::KeyUri;
use crate::root::draft::{self, DraftStatus, PendingDraft};
use crate::trustdir::{Batch, TrustDir};
use crate::tuf::model::{KeyId, RoleName};
use crate::tuf::notary;

/// A key named to `root unsign`.
#[derive(Debug, Clone)]
pub enum KeyRef {
    /// A key URI (the token must be present; nobody logs in).
    Uri(Box<KeyUri>),
    /// A key ID as `root status` shows it: the key ID, or the certificate key ID of a root
    /// key; all 64 hex digits, or a prefix of at least 8 that names one signer.
    Id(String),
}

/// The shortest key ID prefix `root unsign` takes.
pub const MIN_PREFIX: usize = 8;

impl KeyRef {
    /// Parses what was given: a key ID when it is hex only, else a URI.
    pub fn parse(text: &str) -> Result<KeyRef> {
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            if text.len() < MIN_PREFIX || text.len() > 64 {
                return Err(Error::Invalid(format!(
                    "`{text}` is too {} for a key ID: give all 64 hex digits, or at least the first {MIN_PREFIX}",
                    if text.len() > 64 { "long" } else { "short" }
                )));
            }
            return Ok(KeyRef::Id(text.to_ascii_lowercase()));
        }
        text.parse::<KeyUri>().map(|u| KeyRef::Uri(Box::new(u)))
    }
}

/// One signature that will be taken back.
#[derive(Debug, Clone, Serialize)]
pub struct Removal {
    /// The role whose document carries it.
    pub role: RoleName,
    /// The key's one identity.
    pub key_id: KeyId,
    /// The key ID the document lists (the certificate's, for a root key).
    pub keyid: KeyId,
    /// The key's URI, as the draft records it.
    pub uri: String,
}

/// What `root unsign` will do to one GUN's draft.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedUnsign {
    /// The draft's state before (with its fingerprint).
    pub before: DraftStatus,
    /// The signatures to take back.
    pub removals: Vec<Removal>,
    /// True when the snapshot will be dropped (it covered a signature taken back, or it is
    /// itself taken back).
    pub drops_snapshot: bool,
    /// Notes: a key given that has not signed this draft, and so on.
    pub notes: Vec<String>,
    #[serde(skip)]
    pending: PendingDraft,
}

/// Everything `root unsign` will do, known before anything is written.
#[derive(Debug, Clone, Serialize)]
pub struct UnsignPlan {
    /// Per GUN.
    pub drafts: Vec<PlannedUnsign>,
}

impl UnsignPlan {
    /// True when there is nothing to take back.
    pub fn is_empty(&self) -> bool {
        self.drafts
            .iter()
            .all(|d| d.removals.is_empty() && !d.drops_snapshot)
    }
}

/// What `root unsign` did for one GUN.
#[derive(Debug, Clone, Serialize)]
pub struct UnsignOutcome {
    /// The GUN.
    pub gun: String,
    /// What was taken back: `root by <key ID>`, `targets by <key ID>`, `snapshot`.
    pub removed: Vec<String>,
    /// Notes.
    pub notes: Vec<String>,
    /// The state afterwards.
    pub status: DraftStatus,
}

/// The canonical key IDs a reference names among the drafts' signers.
fn resolve(
    keyring: &mut Keyring<'_>,
    pendings: &[PendingDraft],
    key: &KeyRef,
    guns: &[String],
) -> Result<KeyId> {
    let signers = || pendings.iter().flat_map(|p| p.draft.signers.iter());
    match key {
        KeyRef::Uri(uri) => {
            let described = keyring.public_key(uri)?;
            let key_id = notary::p256_key_id(&described.public_key)?;
            if signers().any(|s| s.key_id == key_id) {
                Ok(key_id)
            } else {
                Err(Error::KeyNotInDraft {
                    uri: described.uri,
                    key_id: key_id.to_string(),
                    guns: guns.join(", "),
                })
            }
        }
        KeyRef::Id(prefix) => {
            let matches: BTreeSet<&KeyId> = signers()
                .filter(|s| {
                    s.key_id.as_str().starts_with(prefix.as_str())
                        || s.keyid.as_str().starts_with(prefix.as_str())
                })
                .map(|s| &s.key_id)
                .collect();
            let mut found = matches.into_iter();
            match (found.next(), found.next()) {
                (Some(one), None) => Ok(one.clone()),
                (Some(_), Some(_)) => Err(Error::Invalid(format!(
                    "key ID `{prefix}` names more than one signer of the draft for {}; give more of its hex digits",
                    guns.join(", ")
                ))),
                (None, _) => Err(Error::NotASigner {
                    key: format!("key ID {prefix}"),
                    guns: guns.join(", "),
                }),
            }
        }
    }
}

/// Works out which signatures the keys take back from each GUN's draft; writes nothing and
/// logs in nowhere.
pub fn plan(
    dir: &TrustDir,
    keyring: &mut Keyring<'_>,
    guns: &[String],
    keys: &[KeyRef],
) -> Result<UnsignPlan> {
    let inventory = dir.inventory()?;
    let mut pendings = Vec::new();
    for gun in guns {
        let repo = dir.repo(gun)?;
        pendings.push(draft::load(&repo, &inventory)?);
    }
    let mut key_ids = Vec::new();
    for key in keys {
        let key_id = resolve(keyring, &pendings, key, guns)?;
        if key_ids.contains(&key_id) {
            return Err(Error::Invalid(format!(
                "key {key_id} is named twice; name each key once"
            )));
        }
        key_ids.push(key_id);
    }

    let mut drafts = Vec::new();
    for pending in pendings {
        let gun = pending.draft.gun.clone();
        let mut removals = Vec::new();
        let mut notes = Vec::new();
        let mut drops_snapshot = false;
        for key_id in &key_ids {
            let mut any = false;
            for signer in pending.draft.signers.iter().filter(|s| &s.key_id == key_id) {
                let carries = |sigs: &[crate::tuf::model::Signature]| {
                    sigs.iter().any(|s| s.keyid == signer.keyid)
                };
                let signed = match signer.role {
                    RoleName::Root => carries(&pending.root.signatures),
                    RoleName::Targets => carries(&pending.targets.signatures),
                    RoleName::Snapshot => pending
                        .snapshot
                        .as_ref()
                        .is_some_and(|s| carries(&s.signatures)),
                    RoleName::Timestamp => false,
                };
                if !signed {
                    continue;
                }
                any = true;
                drops_snapshot = drops_snapshot || pending.snapshot.is_some();
                removals.push(Removal {
                    role: signer.role,
                    key_id: signer.key_id.clone(),
                    keyid: signer.keyid.clone(),
                    uri: signer.uri.clone(),
                });
            }
            if !any {
                notes.push(format!(
                    "key {key_id} has no signature on the draft of {gun}; nothing to take back there"
                ));
            }
        }
        if drops_snapshot && removals.iter().all(|r| r.role != RoleName::Snapshot) {
            notes.push(
                "the snapshot covered the signatures taken back and is dropped; sign it again once root and targets meet their thresholds".into(),
            );
        }
        drafts.push(PlannedUnsign {
            before: draft::status(&pending),
            removals,
            drops_snapshot,
            notes,
            pending,
        });
    }
    Ok(UnsignPlan { drafts })
}

/// Takes the planned signatures back; one batch writes every draft.
pub fn execute(dir: &TrustDir, plan: UnsignPlan) -> Result<Vec<UnsignOutcome>> {
    let mut batch = Batch::new();
    let mut outcomes = Vec::new();
    for planned in plan.drafts {
        let mut pending = planned.pending;
        let repo = dir.repo(&pending.draft.gun)?;
        let mut removed = Vec::new();
        for r in &planned.removals {
            match r.role {
                RoleName::Root => pending.root.signatures.retain(|s| s.keyid != r.keyid),
                RoleName::Targets => pending.targets.signatures.retain(|s| s.keyid != r.keyid),
                RoleName::Snapshot | RoleName::Timestamp => {}
            }
            removed.push(if r.role == RoleName::Snapshot {
                "snapshot".to_string()
            } else {
                format!("{} by {}", r.role, r.key_id)
            });
        }
        if !planned.removals.is_empty() {
            batch.write(repo.pending("root.json"), pending.root_file()?);
            batch.write(repo.pending("targets.json"), pending.targets_file()?);
        }
        if planned.drops_snapshot {
            batch.remove(repo.pending("snapshot.json"));
            pending.snapshot = None;
        }
        outcomes.push(UnsignOutcome {
            gun: pending.draft.gun.clone(),
            removed,
            notes: planned.notes,
            status: draft::status(&pending),
        });
    }
    dir.commit(batch)?;
    Ok(outcomes)
}
