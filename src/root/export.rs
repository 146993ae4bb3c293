//! `root export`: every client rule on each GUN's draft, then the files the trust server takes
//! written into the export folder, in one batch with the trust directory's own record (the root
//! version kept for rotations, the last export, and the draft closed: an exported root is
//! never signed again).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::notice::Notifier;
use crate::root::checks;
use crate::root::draft::{self, Exported};
use crate::trustdir::{Batch, Inventory, RepoDir, TrustDir};
use crate::tuf::model::{KeyId, Root, Signed, UtcTime, Version};
use crate::tuf::notary;
use crate::tuf::verify::{self, CheckedRoot, KeyFacts, RepoFiles, Verified};

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
    /// True when this wrote the last export again (there was no draft).
    pub again: bool,
    /// What the operator should know, e.g. that the root expires within days.
    pub warnings: Vec<String>,
}

/// The root versions before `version` kept in the trust directory, each checked against the
/// one before it: the chain a client that trusted an older version walks.
pub fn chain(repo: &RepoDir<'_>, version: Version, now: UtcTime) -> Result<Vec<CheckedRoot>> {
    chain_from(repo.gun(), version, now, |v| {
        let path = repo.root_version(v);
        Ok((path.display().to_string(), repo.read_optional(&path)?))
    })
}

/// The chain before `version` from any store of root versions: `read(v)` names version `v`'s
/// file and gives its bytes, if there are any.
pub fn chain_from(
    gun: &str,
    version: Version,
    now: UtcTime,
    read: impl Fn(Version) -> Result<(String, Option<Vec<u8>>)>,
) -> Result<Vec<CheckedRoot>> {
    let mut out: Vec<CheckedRoot> = Vec::new();
    let mut v = Version::FIRST;
    while v < version {
        let (name, bytes) = read(v)?;
        let bytes = bytes.ok_or_else(|| {
            Error::NotFound(format!(
                "root version {v} of {gun} is missing from {name}; it is needed to check version {version}"
            ))
        })?;
        let checked = verify::check_chain_root(&name, &bytes, gun, out.last(), now)?;
        out.push(checked);
        v = v.next()?;
    }
    Ok(out)
}

/// Every client rule on a GUN's files, with the chain of earlier roots kept in the trust
/// directory; `needs_snapshot` when the snapshot is signed offline and must be there. Returns
/// the whole chain, checked link by link (the new root last), and what was verified.
pub fn verify_files(
    repo: &RepoDir<'_>,
    (root, targets, snapshot): (&[u8], &[u8], Option<&[u8]>),
    needs_snapshot: bool,
    now: UtcTime,
) -> Result<(Vec<CheckedRoot>, Verified)> {
    let version = Signed::<Root>::parse("root.json", root)?.signed.version;
    let mut chain = chain(repo, version, now)?;
    let (newest, verified) = verify::verify_repo(
        RepoFiles {
            root,
            targets: Some(targets),
            snapshot,
            timestamp: None,
        },
        Some(repo.gun()),
        chain.last(),
        now,
    )?;
    if needs_snapshot && snapshot.is_none() {
        return Err(draft::snapshot_missing());
    }
    chain.push(newest);
    Ok((chain, verified))
}

/// A new root that names another repository key than the root it replaces must come with
/// targets.json re-signed by that key: the server would take the root alone, and then every
/// client would refuse the repository (its targets no longer verify).
fn forgets_targets(pending: &draft::PendingDraft) -> Result<()> {
    let Some(previous) = &pending.previous else {
        return Ok(());
    };
    let canonical = |keys: &BTreeMap<KeyId, KeyFacts>, ids: &[KeyId]| {
        ids.iter()
            .filter_map(|id| keys.get(id).map(|f| f.canonical.clone()))
            .collect::<BTreeSet<_>>()
    };
    let now_keys = canonical(&pending.keys, &pending.root.signed.roles.targets.keyids);
    let before = canonical(&previous.keys, &previous.doc.signed.roles.targets.keyids);
    if now_keys != before && !pending.draft.targets.sign {
        return Err(Error::TargetsNotResigned {
            gun: pending.draft.gun.clone(),
            version: pending.root.signed.version.get(),
        });
    }
    Ok(())
}

/// The files of a GUN's last export (root, targets, snapshot if signed offline), if any.
pub fn last_export_files(repo: &RepoDir<'_>) -> Result<Option<ExportFiles>> {
    let Some(root) = repo.read_optional(&repo.exported("root.json"))? else {
        return Ok(None);
    };
    let targets = repo.read(&repo.exported("targets.json"))?;
    let snapshot = repo.read_optional(&repo.exported("snapshot.json"))?;
    Ok(Some((root, targets, snapshot)))
}

/// The bytes of root.json, targets.json and (when signed offline) snapshot.json.
pub type ExportFiles = (Vec<u8>, Vec<u8>, Option<Vec<u8>>);

/// One GUN's files, read and verified, before anything is written.
struct Prepared {
    /// root.json, targets.json, and snapshot.json when signed offline.
    files: ExportFiles,
    /// The draft's record (`None`: the last export written again).
    record: Option<draft::Draft>,
    /// The earlier root versions, checked.
    chain: Vec<CheckedRoot>,
    /// What was verified.
    verified: Verified,
}

/// A draft's files as they are now, and whether its snapshot is signed offline (and so must
/// be there).
pub fn pending_files(pending: &draft::PendingDraft) -> Result<(ExportFiles, bool)> {
    let snapshot = pending
        .snapshot
        .as_ref()
        .map(Signed::to_bytes)
        .transpose()?;
    let needs_snapshot = matches!(pending.draft.snapshot, draft::SnapshotPlan::Offline { .. });
    Ok((
        (pending.root_file()?, pending.targets_file()?, snapshot),
        needs_snapshot,
    ))
}

/// Reads one GUN's draft (or last export) and applies every client rule to it.
fn prepare(dir: &TrustDir, inventory: &Inventory, gun: &str, now: UtcTime) -> Result<Prepared> {
    let repo = dir.repo(gun)?;
    let (files, needs_snapshot, record) = if repo.has_pending() {
        let pending = draft::load(&repo, inventory)?;
        forgets_targets(&pending)?;
        let (files, needs_snapshot) = pending_files(&pending)?;
        (files, needs_snapshot, Some(pending.draft))
    } else {
        let Some(files) = last_export_files(&repo)? else {
            return Err(draft::no_draft(&repo));
        };
        (files, false, None)
    };
    let (mut chain, verified) = verify_files(
        &repo,
        (&files.0, &files.1, files.2.as_deref()),
        needs_snapshot,
        now,
    )?;
    chain.pop();
    Ok(Prepared {
        files,
        record,
        chain,
        verified,
    })
}

/// The GUN of the root.json an export folder already holds, if any.
fn gun_in_folder(folder: &Path) -> Result<Option<String>> {
    let path = folder.join("root.json");
    let Ok(bytes) = std::fs::read(&path) else {
        return Ok(None);
    };
    let name = path.display().to_string();
    let doc = Signed::<Root>::parse(&name, &bytes)?;
    let gun = doc
        .signed
        .roles
        .root
        .keyids
        .iter()
        .filter_map(|id| doc.signed.keys.get(id))
        .filter_map(|k| notary::leaf_certificate(k).ok())
        .find_map(|c| c.common_name);
    Ok(Some(gun.unwrap_or_else(|| "an unknown repository".into())))
}

/// Verifies every GUN's draft, then writes root.json, targets.json and (unless the server
/// manages it) snapshot.json, plus `<v>.root.json` for every earlier version, into `out` (one
/// GUN) or `out/<gun>/` (several). Nothing is written unless every GUN verifies. A GUN with
/// no draft but an earlier export gets that export written again, verified again.
pub fn export(
    dir: &TrustDir,
    guns: &[String],
    out: &Path,
    now: UtcTime,
    notifier: &dyn Notifier,
) -> Result<Vec<ExportOutcome>> {
    let inventory = dir.inventory()?;
    // Every GUN is read and verified first, on as many threads as there are cores (the rules
    // are pure computation over files; nothing is written), then the batch is built in order.
    let prepared = crate::root::in_parallel(guns, |gun| prepare(dir, &inventory, gun, now))?;
    let mut batch = Batch::new();
    let mut outcomes = Vec::new();
    for (index, (gun, prepared)) in guns.iter().zip(prepared).enumerate() {
        let repo = dir.repo(gun)?;
        let target = if guns.len() == 1 {
            out.to_owned()
        } else {
            out.join(repo.gun())
        };
        if let Some(other) = gun_in_folder(&target)?
            && &other != gun
        {
            return Err(Error::ExportFolderTaken {
                dir: target.display().to_string(),
                other,
                gun: gun.clone(),
            });
        }
        let Prepared {
            files: (root_bytes, targets_bytes, snapshot_bytes),
            record,
            chain,
            verified,
        } = prepared;
        let again = record.is_none();
        let version = Version::new(verified.root_version)?;
        let kept = repo.root_version(version);
        match repo.read_optional(&kept)? {
            Some(existing) if existing != root_bytes => {
                return Err(Error::Exists(format!(
                    "{gun} already has a different root version {version} in {}; a new root needs a new version",
                    kept.display()
                )));
            }
            _ => {}
        }
        let mut names = Vec::new();
        for earlier in &chain {
            let name = format!("{}.root.json", earlier.doc.signed.version);
            batch.write(target.join(&name), earlier.bytes.clone());
            names.push(name);
        }
        for (name, bytes) in [
            ("root.json", Some(&root_bytes)),
            ("targets.json", Some(&targets_bytes)),
            ("snapshot.json", snapshot_bytes.as_ref()),
        ] {
            match bytes {
                Some(bytes) => {
                    batch.write(target.join(name), bytes.clone());
                    names.push(name.to_string());
                }
                None => batch.remove(target.join(name)),
            }
        }
        if let Some(mut record) = record {
            // The draft folder becomes the last export as it is (a rename, no copies); its
            // record says when and where; the root version joins the chain as a hard link.
            batch.move_dir(repo.pending_dir(), repo.export_dir());
            record.exported = Some(Exported {
                at: now.to_go_string(),
                out: std::path::absolute(&target)
                    .unwrap_or_else(|_| target.clone())
                    .display()
                    .to_string(),
                files: names.clone(),
            });
            batch.write(repo.exported(draft::DRAFT_FILE), record.to_bytes()?);
            if !repo.trust_dir().exists(&kept) {
                batch.link(repo.exported("root.json"), kept);
            }
        }
        let warnings = UtcTime::parse(&verified.root_expires)
            .ok()
            .and_then(|expires| checks::root_expiry_warning(expires, now))
            .into_iter()
            .collect();
        outcomes.push(ExportOutcome {
            gun: repo.gun().to_owned(),
            dir: target,
            files: names,
            verified,
            again,
            warnings,
        });
        crate::notice::progress(notifier, "root export", index, guns.len());
    }
    dir.commit(batch)?;
    Ok(outcomes)
}
