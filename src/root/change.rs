//! What every change after `root init` builds on, and how it becomes a draft.
//!
//! [`base`] is the repository as it is now: the newest root of the chain this trust directory
//! keeps, and the targets, snapshot and delegations the trust server serves over it, as
//! `server pull` verified and kept them (a change must come after what the server holds:
//! notary-server refuses a role whose version is not above the stored one). [`Change`] says
//! what a command changes (a new root, new targets, or both); [`write_draft`] turns it into
//! `pending/` with its `draft.json`, ready for `root sign`, `root status` and `root export`.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::root::draft::{
    self, Draft, DraftSigner, DraftStatus, PendingDoc, PendingDraft, ServerKey, SnapshotPlan,
};
use crate::root::pull;
use crate::trustdir::{Batch, Inventory, RepoDir};
use crate::tuf::model::{
    FileMeta, KeyId, RoleName, Root, Signed, Snapshot, Targets, UtcTime, Version,
};
use crate::tuf::notary::DEFAULT_TARGETS_DAYS;
use crate::tuf::verify::{self, CheckedRoot, KeyFacts};

/// The repository as it is now.
#[derive(Debug, Clone)]
pub struct Base {
    /// The newest root of the chain (checked).
    pub root: CheckedRoot,
    /// The targets the server serves over it.
    pub targets: Signed<Targets>,
    /// Its file bytes.
    pub targets_bytes: Vec<u8>,
    /// The snapshot the server serves.
    pub snapshot: Signed<Snapshot>,
    /// The delegation files the snapshot lists, as the snapshot lists them.
    pub delegations: BTreeMap<String, FileMeta>,
    /// The delegation files themselves (role name → bytes).
    pub delegation_files: BTreeMap<String, Vec<u8>>,
    /// When and where it was pulled.
    pub pulled: pull::PullRecord,
}

impl Base {
    /// The next targets version (above the server's).
    pub fn next_targets_version(&self) -> Result<Version> {
        self.targets.signed.version.next()
    }

    /// The next snapshot version (above the server's).
    pub fn next_snapshot_version(&self) -> Result<Version> {
        self.snapshot.signed.version.next()
    }
}

fn needs_pull(repo: &RepoDir<'_>, detail: String) -> Error {
    Error::NeedsPull {
        gun: repo.gun().to_owned(),
        detail,
    }
}

/// The repository as it is now (see the module documentation): needs a `server pull` whose
/// root is the newest root this trust directory keeps, and no export made since that pull
/// that the pull does not show yet.
pub fn base(repo: &RepoDir<'_>, now: UtcTime) -> Result<Base> {
    let base = pulled(repo, now)?;
    if let Some(exported) = exported_after_pull(repo, &base.pulled)? {
        return Err(needs_pull(repo, exported));
    }
    Ok(base)
}

/// The repository as the last `server pull` verified it, over the newest root this trust
/// directory keeps (for showing it; a change builds on [`base`]).
pub fn pulled(repo: &RepoDir<'_>, now: UtcTime) -> Result<Base> {
    let head = repo.latest_root_version()?.ok_or_else(|| {
        needs_pull(
            repo,
            "this trust directory keeps no root of it yet (make one with `rootkeeper root init`)"
                .into(),
        )
    })?;
    let state = pull::state(repo)?.ok_or_else(|| {
        needs_pull(
            repo,
            "it was never pulled into this trust directory, so its current targets and versions on the server are not known".into(),
        )
    })?;
    let head_bytes = repo.read(&repo.root_version(head))?;
    if state.root != head_bytes {
        return Err(needs_pull(
            repo,
            format!(
                "the last pull ({}) found root v{} on the server, but the newest root here is v{head}: publish it and pull again",
                state.record.at, state.record.root
            ),
        ));
    }
    let chain = crate::root::export::chain(repo, head, now)?;
    let root = verify::check_chain_root(
        &repo.root_version(head).display().to_string(),
        &head_bytes,
        repo.gun(),
        chain.last(),
        now,
    )?;
    let targets = Signed::<Targets>::parse("pulled targets.json", &state.targets)?;
    let snapshot = Signed::<Snapshot>::parse("pulled snapshot.json", &state.snapshot)?;
    let delegations = snapshot
        .signed
        .meta
        .iter()
        .filter(|(name, _)| name.starts_with("targets/"))
        .map(|(name, meta)| (name.clone(), meta.clone()))
        .collect();
    Ok(Base {
        root,
        targets,
        targets_bytes: state.targets,
        snapshot,
        delegations,
        delegation_files: state.delegations,
        pulled: state.record,
    })
}

/// Why the last export, when it was made after the last pull and changes targets beyond what
/// that pull saw, must be published and pulled before another change: a change over the old
/// pull would reuse its version and drop what the export changed.
pub fn exported_after_pull(
    repo: &RepoDir<'_>,
    pulled: &pull::PullRecord,
) -> Result<Option<String>> {
    let Some(bytes) = repo.read_optional(&repo.exported(draft::DRAFT_FILE))? else {
        return Ok(None);
    };
    let Ok(record) = serde_json::from_slice::<Draft>(&bytes) else {
        return Ok(None);
    };
    let Some(exported) = &record.exported else {
        return Ok(None);
    };
    let (Ok(exported_at), Ok(pulled_at)) =
        (UtcTime::parse(&exported.at), UtcTime::parse(&pulled.at))
    else {
        return Ok(None);
    };
    if exported_at > pulled_at && record.targets.sign && record.targets.version > pulled.targets {
        return Ok(Some(format!(
            "the last export ({}, targets v{}, at {}) came after the last pull ({}, targets v{}): publish it with `rootkeeper server publish`, then pull again",
            crate::tuf::model::escape_untrusted(&record.purpose),
            record.targets.version,
            exported_at,
            pulled_at,
            pulled.targets
        )));
    }
    Ok(None)
}

/// The inventory entry (by the key's one identity) of a key a root names, as a draft signer.
pub fn signer_for(
    inventory: &Inventory,
    role: RoleName,
    keyid: &KeyId,
    facts: &KeyFacts,
    previous: bool,
) -> Option<DraftSigner> {
    inventory
        .by_key_id(facts.canonical.as_str())
        .map(|entry| DraftSigner {
            role,
            keyid: keyid.clone(),
            key_id: facts.canonical.clone(),
            uri: entry.uri.clone(),
            previous,
            legacy: None,
        })
}

/// The draft signers of one role of a root: every key of the role the inventory holds.
pub fn role_signers(
    inventory: &Inventory,
    root: &Root,
    keys: &BTreeMap<KeyId, KeyFacts>,
    role: RoleName,
    previous: bool,
) -> Vec<DraftSigner> {
    root.roles
        .get(role)
        .keyids
        .iter()
        .filter_map(|id| {
            keys.get(id)
                .and_then(|f| signer_for(inventory, role, id, f, previous))
        })
        .collect()
}

/// How a root's snapshot is signed: offline when the inventory holds its snapshot key,
/// else by the server.
pub fn snapshot_plan(
    inventory: &Inventory,
    root: &Root,
    keys: &BTreeMap<KeyId, KeyFacts>,
    version: Version,
    expires: UtcTime,
) -> SnapshotPlan {
    let ours = !role_signers(inventory, root, keys, RoleName::Snapshot, false).is_empty();
    if ours {
        SnapshotPlan::Offline {
            version: version.get(),
            expires: expires.to_go_string(),
        }
    } else {
        SnapshotPlan::ServerManaged
    }
}

/// The default expiry of re-signed targets and snapshots: 3 years, never after the root.
pub fn role_expiry(root: &Root, now: UtcTime) -> UtcTime {
    now.plus(crate::tuf::model::days(DEFAULT_TARGETS_DAYS))
        .min(root.expires.instant())
}

/// What a command changes.
#[derive(Debug, Clone)]
pub struct Change {
    /// What it does, for people (`root status` shows it).
    pub purpose: String,
    /// A new root (unsigned), or `None` to keep the base's.
    pub root: Option<Root>,
    /// New targets (unsigned), or `None` to keep the base's.
    pub targets: Option<Targets>,
    /// Signers of the new root's roles (root, targets, snapshot) and of the previous root,
    /// as the command computed them; for a kept root, the targets (and snapshot) signers.
    pub signers: Vec<DraftSigner>,
    /// The server's keys the new root names.
    pub server_keys: Vec<ServerKey>,
    /// How the snapshot is signed.
    pub snapshot: SnapshotPlan,
}

/// Writes `change` over `base` as the GUN's draft; refuses when a draft is pending unless
/// `replace`. Returns its status.
pub fn write_draft(
    repo: &RepoDir<'_>,
    base: &Base,
    change: Change,
    now: UtcTime,
    replace: bool,
    batch: &mut Batch,
) -> Result<DraftStatus> {
    if change.root.is_none() && change.targets.is_none() {
        return Err(Error::Invalid(format!(
            "nothing would change in {}",
            repo.gun()
        )));
    }
    if repo.has_pending() && !replace {
        return Err(Error::Exists(format!(
            "{} already has a draft; `rootkeeper root status --gun {}` shows it (`rootkeeper root unsign` or --force to replace it)",
            repo.gun(),
            repo.gun()
        )));
    }
    let (root, root_sign) = match change.root {
        Some(root) => (Signed::new(root), true),
        None => (base.root.doc.clone(), false),
    };
    let (targets, targets_sign) = match change.targets {
        Some(targets) => (Signed::new(targets), true),
        None => (base.targets.clone(), false),
    };
    let root_signed = root.signed_bytes()?;
    let targets_signed = targets.signed_bytes()?;
    let record = Draft {
        format: 1,
        gun: repo.gun().to_owned(),
        created: now.to_go_string(),
        purpose: change.purpose,
        root: if root_sign {
            PendingDoc::of(root.signed.version.get(), &root_signed)
        } else {
            PendingDoc::current(root.signed.version.get(), &root_signed)
        },
        targets: if targets_sign {
            PendingDoc::of(targets.signed.version.get(), &targets_signed)
        } else {
            PendingDoc::current(targets.signed.version.get(), &targets_signed)
        },
        snapshot: change.snapshot,
        delegations: kept_delegations(&base.delegations, &targets.signed),
        signers: change.signers,
        server_keys: change.server_keys,
        exported: None,
    };
    batch.write(repo.pending("root.json"), root.to_bytes()?);
    batch.write(repo.pending("targets.json"), targets.to_bytes()?);
    batch.write(repo.pending(draft::DRAFT_FILE), record.to_bytes()?);
    batch.remove(repo.pending("snapshot.json"));
    let keys = verify::key_table("root.json", &root.signed.keys)?;
    let previous = if root_sign {
        Some(draft::PreviousRoot {
            doc: base.root.doc.clone(),
            keys: base.root.keys.clone(),
        })
    } else {
        None
    };
    Ok(draft::status(&PendingDraft {
        draft: record,
        root,
        root_signed,
        keys,
        previous,
        legacy: BTreeMap::new(),
        targets,
        targets_signed,
        snapshot: None,
        fresh: Vec::new(),
    }))
}

/// The delegation files a new snapshot lists: those of `delegations` (the base snapshot's)
/// whose top-level role `targets/X` the new targets still delegates to. A role the change
/// removed leaves the snapshot with its file, as notary's `DeleteDelegation` drops its
/// snapshot entry.
pub fn kept_delegations(
    delegations: &BTreeMap<String, FileMeta>,
    targets: &Targets,
) -> BTreeMap<String, FileMeta> {
    delegations
        .iter()
        .filter(|(name, _)| {
            let top = name
                .strip_prefix("targets/")
                .map(|rest| rest.split('/').next().unwrap_or(rest));
            top.is_some_and(|top| {
                targets
                    .delegations
                    .roles
                    .iter()
                    .any(|r| r.name.strip_prefix("targets/") == Some(top))
            })
        })
        .map(|(name, meta)| (name.clone(), meta.clone()))
        .collect()
}

/// The base's targets again, unchanged but for a new version and expiry: what a new
/// repository key signs, or what `root renew-targets` re-signs.
pub fn resigned_targets(base: &Base, expires: UtcTime) -> Result<Targets> {
    let mut targets = base.targets.signed.clone();
    targets.version = base.next_targets_version()?;
    targets.expires = crate::tuf::model::GoTime::utc(expires);
    Ok(targets)
}
