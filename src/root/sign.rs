//! `root sign`: plan first, then sign. [`plan`] resolves every key without logging in, checks
//! it belongs to a draft and has something to sign there, and says what will be signed (so the
//! operator sees the fingerprint before any PIN prompt); [`execute`] logs in to each token
//! once, signs root first, then targets, then the snapshot once root and targets meet their
//! thresholds, and writes every draft in one batch.
//!
//! The snapshot covers the exact bytes of root.json and targets.json, signatures included, so
//! it is dropped again (and re-signed when the snapshot key is there) whenever root or targets
//! gain a signature.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::backend::Keyring;
use crate::error::{Error, Result};
use crate::keyuri::KeyUri;
use crate::root::draft::{self, DraftStatus, PendingDraft, SnapshotPlan};
use crate::secret::PinSources;
use crate::signer::Signer;
use crate::trustdir::{Batch, TrustDir};
use crate::tuf::model::{KeyId, RoleName, Signed, Version, envelope_bytes};
use crate::tuf::notary;

/// A key given to `root sign`, resolved without logging in.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedKey {
    /// The URI as given (without PIN source).
    pub uri: String,
    /// The key's one identity.
    pub key_id: KeyId,
    /// The token it is on, for messages.
    pub token: String,
    /// What it will sign, e.g. `root of example.com/app`.
    pub signs: Vec<String>,
    #[serde(skip)]
    given: KeyUri,
}

/// One signature the plan will make.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedSignature {
    /// The role.
    pub role: RoleName,
    /// The key ID the document lists.
    pub keyid: KeyId,
    /// The key's one identity.
    pub key_id: KeyId,
    /// True when it replaces a signature by this key that does not verify.
    pub replaces_invalid: bool,
}

/// What `root sign` will do to one GUN's draft.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedDraft {
    /// The draft's state before signing (with its fingerprint).
    pub before: DraftStatus,
    /// The root and targets signatures to make.
    pub signatures: Vec<PlannedSignature>,
    /// The snapshot will be signed (root and targets meet their thresholds afterwards).
    pub snapshot: bool,
    /// Notes (already signed, snapshot waits...).
    pub notes: Vec<String>,
    #[serde(skip)]
    pending: PendingDraft,
}

impl PlannedDraft {
    /// True when nothing will change.
    pub fn is_empty(&self) -> bool {
        self.signatures.is_empty() && !self.snapshot
    }
}

/// Everything `root sign` will do, known before any login.
#[derive(Debug, Clone, Serialize)]
pub struct SignPlan {
    /// Per GUN.
    pub drafts: Vec<PlannedDraft>,
    /// The keys given, with what each signs.
    pub keys: Vec<PlannedKey>,
}

impl SignPlan {
    /// True when no key has anything to sign.
    pub fn is_empty(&self) -> bool {
        self.drafts.iter().all(PlannedDraft::is_empty)
    }
}

fn pin_source_of(uri: &KeyUri) -> bool {
    match uri {
        KeyUri::Pkcs11(u) => u.pin_source.is_some(),
        KeyUri::YubiKey(u) => u.pin_source.is_some(),
    }
}

/// Resolves the keys and works out what each will sign, without logging in anywhere.
pub fn plan(
    dir: &TrustDir,
    keyring: &mut Keyring<'_>,
    pins: &PinSources<'_>,
    guns: &[String],
    keys: &[KeyUri],
) -> Result<SignPlan> {
    let inventory = dir.inventory()?;
    let loaded = crate::root::in_parallel(guns, |gun| {
        let pending = draft::load(&dir.repo(gun)?, &inventory)?;
        let status = draft::status(&pending);
        Ok((pending, status))
    })?;

    let mut planned_keys = Vec::new();
    let mut seen = BTreeSet::new();
    for uri in keys {
        let described = keyring.public_key(uri)?;
        let key_id = notary::p256_key_id(&described.public_key)?;
        if !seen.insert(key_id.clone()) {
            return Err(Error::Invalid(format!(
                "{} is given twice (key ID {key_id})",
                described.uri
            )));
        }
        // A key of the repository (of a draft's root, or the root it replaces) that has
        // nothing to sign in this draft is a note; a key the repository does not know is an
        // error (a wrong URI), before any PIN is asked for.
        let known = loaded.iter().map(|(p, _)| p).any(|p| {
            p.draft.signers.iter().any(|s| s.key_id == key_id)
                || p.keys.values().any(|f| f.canonical == key_id)
                || p.previous
                    .as_ref()
                    .is_some_and(|prev| prev.keys.values().any(|f| f.canonical == key_id))
        });
        if !known {
            return Err(Error::KeyNotInDraft {
                uri: described.uri.clone(),
                key_id: key_id.to_string(),
                guns: guns.join(", "),
            });
        }
        planned_keys.push(PlannedKey {
            uri: described.uri.clone(),
            key_id,
            token: format!(
                "token `{}` (serial {})",
                described.token_label, described.token_serial
            ),
            signs: Vec::new(),
            given: uri.clone(),
        });
    }

    let mut drafts = Vec::new();
    for (pending, before) in loaded {
        let gun = pending.draft.gun.clone();
        let mut signatures = Vec::new();
        let mut notes = Vec::new();
        for key in &planned_keys {
            if !pending.draft.signers.iter().any(|s| s.key_id == key.key_id) {
                notes.push(format!(
                    "key {} has nothing to sign in this draft ({}); it was not used",
                    key.key_id,
                    if pending.draft.purpose.is_empty() {
                        "it does not change what that key signs"
                    } else {
                        pending.draft.purpose.as_str()
                    }
                ));
            }
        }
        // The groups of signatures the draft collects: the new root under its threshold, the
        // previous root's keys (a new root above version 1), older versions' keys (optional,
        // `--legacy`), the targets.
        struct Group<'a> {
            label: String,
            role: RoleName,
            threshold: u64,
            signed: u64,
            required: bool,
            signers: Vec<&'a crate::root::draft::DraftSigner>,
            report: crate::tuf::verify::SignatureReport,
        }
        let draft = &pending.draft;
        let mut groups: Vec<Group<'_>> = Vec::new();
        if draft.root.sign {
            groups.push(Group {
                label: "root".into(),
                role: RoleName::Root,
                threshold: before.root.threshold,
                signed: before.root.signed,
                required: true,
                signers: draft.signers(RoleName::Root).collect(),
                report: pending.root_signatures(),
            });
        }
        if let Some(previous) = &before.previous_root {
            groups.push(Group {
                label: "root (the previous root's keys)".into(),
                role: RoleName::Root,
                threshold: previous.threshold,
                signed: previous.signed,
                required: true,
                signers: draft.previous_signers().collect(),
                report: pending.previous_signatures(),
            });
        }
        for legacy in &before.legacy {
            groups.push(Group {
                label: format!("root (root v{}'s keys, optional)", legacy.version),
                role: RoleName::Root,
                threshold: legacy.signatures.threshold,
                signed: legacy.signatures.signed,
                required: false,
                signers: draft
                    .legacy_signers()
                    .filter(|s| s.legacy == Some(legacy.version))
                    .collect(),
                report: pending.legacy_signatures(legacy.version),
            });
        }
        if draft.targets.sign {
            groups.push(Group {
                label: "targets".into(),
                role: RoleName::Targets,
                threshold: before.targets.threshold,
                signed: before.targets.signed,
                required: true,
                signers: draft.signers(RoleName::Targets).collect(),
                report: pending.targets_signatures(),
            });
        }
        let mut completes = true;
        for group in &groups {
            let mut added: BTreeSet<&KeyId> = BTreeSet::new();
            for signer in &group.signers {
                let Some(key) = planned_keys.iter_mut().find(|k| k.key_id == signer.key_id) else {
                    continue;
                };
                if group.report.valid.contains(&signer.keyid) {
                    notes.push(format!(
                        "{} already carries the signature of key {}",
                        group.label, signer.key_id
                    ));
                    continue;
                }
                added.insert(&signer.key_id);
                // One signature per key ID and document, even when a key signs for the new
                // and an older root under the same certificate.
                if signatures
                    .iter()
                    .any(|p: &PlannedSignature| p.role == group.role && p.keyid == signer.keyid)
                {
                    continue;
                }
                key.signs.push(format!("{} of {gun}", group.label));
                signatures.push(PlannedSignature {
                    role: group.role,
                    keyid: signer.keyid.clone(),
                    key_id: signer.key_id.clone(),
                    replaces_invalid: group.report.invalid.contains(&signer.keyid),
                });
            }
            let after = group
                .signed
                .saturating_add(u64::try_from(added.len()).unwrap_or(u64::MAX));
            if after < group.threshold && group.required {
                completes = false;
                notes.push(format!(
                    "{} will have {after} of {} signatures",
                    group.label, group.threshold
                ));
            }
        }
        let mut snapshot = false;
        if let SnapshotPlan::Offline { .. } = pending.draft.snapshot
            && let Some(signer) = pending.draft.signers(RoleName::Snapshot).next()
            && let Some(key) = planned_keys.iter_mut().find(|k| k.key_id == signer.key_id)
        {
            if pending.snapshot.is_some() && signatures.is_empty() {
                notes.push("the snapshot is already signed".into());
            } else if !completes {
                notes.push(
                    "snapshot not signed yet: sign the snapshot once every threshold is met".into(),
                );
            } else {
                key.signs.push(format!("snapshot of {gun}"));
                snapshot = true;
            }
        }
        if pending.snapshot.is_some() && !signatures.is_empty() && !snapshot {
            notes.push(
                "the snapshot covered the old root/targets bytes and must be signed again".into(),
            );
        }
        drafts.push(PlannedDraft {
            before,
            signatures,
            snapshot,
            notes,
            pending,
        });
    }

    // One PIN file (or ROOTKEEPER_PIN) is never tried on several tokens.
    let shared_source = pins.pin_file.is_some() || pins.env_pin.is_some();
    let needing: BTreeSet<&str> = planned_keys
        .iter()
        .filter(|k| !k.signs.is_empty() && !pin_source_of(&k.given))
        .map(|k| k.token.as_str())
        .collect();
    if shared_source && needing.len() > 1 {
        return Err(Error::SharedPin {
            tokens: needing.into_iter().collect::<Vec<_>>().join(", "),
        });
    }
    Ok(SignPlan {
        drafts,
        keys: planned_keys,
    })
}

/// What `root sign` did for one GUN.
#[derive(Debug, Clone, Serialize)]
pub struct SignOutcome {
    /// The GUN.
    pub gun: String,
    /// What was signed: `root by <key ID>`, `targets by <key ID>`, `snapshot`.
    pub signed: Vec<String>,
    /// Notes, e.g. why the snapshot waits.
    pub notes: Vec<String>,
    /// The state afterwards.
    pub status: DraftStatus,
}

/// Logs in to the tokens that have something to sign and makes the planned signatures; one
/// batch writes every draft.
pub fn execute(
    dir: &TrustDir,
    keyring: &mut Keyring<'_>,
    plan: SignPlan,
) -> Result<Vec<SignOutcome>> {
    let mut signers: BTreeMap<KeyId, Box<dyn Signer>> = BTreeMap::new();
    for key in plan.keys.iter().filter(|k| !k.signs.is_empty()) {
        let signer = keyring.signer(&key.given)?;
        let key_id = notary::p256_key_id(signer.public_key())?;
        if key_id != key.key_id {
            return Err(Error::Invalid(format!(
                "{} now holds key {key_id}, not the key {} it held a moment ago",
                key.uri, key.key_id
            )));
        }
        signers.insert(key_id, signer);
    }
    let signer_for = |key_id: &KeyId| {
        signers
            .get(key_id)
            .map(Box::as_ref)
            .ok_or_else(|| Error::Invalid(format!("no signer for key {key_id}")))
    };

    let mut batch = Batch::new();
    let mut outcomes = Vec::new();
    let mut checks: Vec<(crate::signer::Unchecked, Vec<u8>)> = Vec::new();
    let notifier = keyring.notifier();
    let total = plan.drafts.len();
    for (index, planned) in plan.drafts.into_iter().enumerate() {
        let mut pending = planned.pending;
        let repo = dir.repo(&pending.draft.gun)?;
        let mut signed = Vec::new();
        for s in &planned.signatures {
            let signer = signer_for(&s.key_id)?;
            let (message, signatures) = match s.role {
                RoleName::Root => (&pending.root_signed, &mut pending.root.signatures),
                _ => (&pending.targets_signed, &mut pending.targets.signatures),
            };
            // Checked below, all at once, before anything is kept.
            let unchecked = crate::signer::sign_unchecked(signer, message)?;
            let signature = crate::tuf::model::Signature {
                keyid: s.keyid.clone(),
                method: crate::tuf::model::Method::Ecdsa,
                sig: crate::tuf::model::Base64(unchecked.to_bytes()),
            };
            checks.push((unchecked, message.clone()));
            pending.fresh.push(signature.clone());
            notary::put_signature(signatures, signature);
            signed.push(format!("{} by {}", s.role, s.key_id));
        }
        let root_file = pending.root_file()?;
        let targets_file = pending.targets_file()?;
        if !planned.signatures.is_empty() {
            batch.write(repo.pending("root.json"), root_file.clone());
            batch.write(repo.pending("targets.json"), targets_file.clone());
            batch.remove(repo.pending("snapshot.json"));
            pending.snapshot = None;
        }
        if planned.snapshot {
            let (version, expires) = draft::snapshot_expiry(&pending.draft.snapshot)?
                .ok_or_else(|| Error::Invalid("the server manages this snapshot".into()))?;
            let signer_id = pending
                .draft
                .signers(RoleName::Snapshot)
                .next()
                .map(|s| (s.keyid.clone(), s.key_id.clone()))
                .ok_or_else(|| Error::Invalid("the draft names no snapshot key".into()))?;
            let mut doc =
                notary::new_snapshot(&root_file, &targets_file, expires, Version::new(version)?);
            doc.meta.extend(pending.draft.delegations.clone());
            let mut snapshot = Signed::new(doc);
            let message = snapshot.signed_bytes()?;
            let unchecked = crate::signer::sign_unchecked(signer_for(&signer_id.1)?, &message)?;
            snapshot.signatures.push(crate::tuf::model::Signature {
                keyid: signer_id.0.clone(),
                method: crate::tuf::model::Method::Ecdsa,
                sig: crate::tuf::model::Base64(unchecked.to_bytes()),
            });
            checks.push((unchecked, message.clone()));
            batch.write(
                repo.pending("snapshot.json"),
                envelope_bytes(&message, &snapshot.signatures)?,
            );
            pending.snapshot = Some(snapshot);
            signed.push("snapshot".into());
        }
        let status = draft::status(&pending);
        outcomes.push(SignOutcome {
            gun: pending.draft.gun.clone(),
            signed,
            notes: planned.notes,
            status,
        });
        crate::notice::progress(notifier.as_ref(), "root sign", index, total);
    }
    // Every fresh signature verifies under its key (a faulty token is caught here, before
    // anything is written).
    crate::root::in_parallel(&checks, |(unchecked, message)| unchecked.check(message))?;
    dir.commit(batch)?;
    Ok(outcomes)
}
