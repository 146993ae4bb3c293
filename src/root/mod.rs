//! The root workflow, one file per operation on a shared draft model ([`draft`]): `init` makes
//! a draft, `sign` collects signatures one custodian at a time, `status` says what is still
//! missing, `export` verifies with every client rule and writes the files the trust server
//! takes.

pub mod chain;
pub mod change;
pub mod checks;
pub mod draft;
pub mod export;
pub mod init;
pub mod publish;
pub mod pull;
pub mod rotate;
pub mod sign;
pub mod signers;
pub mod unsign;

pub use draft::{DraftStatus, RoleStatus, SignerState};
pub use export::{ExportOutcome, export};
pub use init::{InitRequest, SnapshotKey, init, record_key};
pub use sign::{SignOutcome, SignPlan};

use crate::error::Result;
use crate::trustdir::{RepoDir, TrustDir};
use crate::tuf::model::UtcTime;
use crate::tuf::verify::Verified;

/// The state of each GUN's draft; with no GUNs, of every draft in the trust directory.
pub fn status(dir: &TrustDir, guns: &[String]) -> Result<Vec<DraftStatus>> {
    let inventory = dir.inventory()?;
    let guns = if guns.is_empty() {
        dir.guns()?
            .into_iter()
            .filter(|g| dir.repo(g).is_ok_and(|r| r.has_pending()))
            .collect()
    } else {
        guns.to_vec()
    };
    guns.iter()
        .map(|gun| {
            let repo = dir.repo(gun)?;
            let mut status = draft::status(&draft::load(&repo, &inventory)?);
            status.describe_tokens(&inventory);
            Ok(status)
        })
        .collect()
}

/// What `root verify --gun` found for one GUN.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GunVerified {
    /// The files checked: the draft's (`draft`) or the last export's (`last export`).
    pub checked: &'static str,
    /// What was verified.
    pub verified: Verified,
    /// The chain of root versions, as clients that trusted an older one see it.
    pub chain: chain::ChainReport,
}

/// Applies every client rule to a GUN's draft (or, with none pending, to its last export),
/// and checks the whole chain of root versions link by link.
pub fn verify_gun(repo: &RepoDir<'_>, now: UtcTime) -> Result<GunVerified> {
    let (checked, (roots, verified)) = if repo.has_pending() {
        let inventory = repo.trust_dir().inventory()?;
        let pending = draft::load(repo, &inventory)?;
        ("draft", verify_pending(repo, &pending, now)?)
    } else {
        let Some((root, targets, snapshot)) = export::last_export_files(repo)? else {
            return Err(draft::no_draft(repo));
        };
        (
            "last export",
            export::verify_files(repo, (&root, &targets, snapshot.as_deref()), false, now)?,
        )
    };
    Ok(GunVerified {
        checked,
        verified,
        chain: chain::report(repo.gun(), &roots, checked == "draft", now)?,
    })
}

/// Applies every client rule to a GUN's draft, as `root export` will.
pub fn verify_draft(repo: &RepoDir<'_>, now: UtcTime) -> Result<Verified> {
    let inventory = repo.trust_dir().inventory()?;
    let pending = draft::load(repo, &inventory)?;
    Ok(verify_pending(repo, &pending, now)?.1)
}

/// Every client rule on a draft's files: the chain (the draft's root last) and the verdict.
fn verify_pending(
    repo: &RepoDir<'_>,
    pending: &draft::PendingDraft,
    now: UtcTime,
) -> Result<(Vec<crate::tuf::verify::CheckedRoot>, Verified)> {
    let ((root, targets, snapshot), needs_snapshot) = export::pending_files(pending)?;
    export::verify_files(
        repo,
        (&root, &targets, snapshot.as_deref()),
        needs_snapshot,
        now,
    )
}

/// `work` on every item, spread over the machine's cores in contiguous chunks; the results in
/// the items' order, or the error of the first item (in that order) that failed.
pub fn in_parallel<T: Sync, R: Send>(
    items: &[T],
    work: impl Fn(&T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(items.len())
        .max(1);
    if threads == 1 {
        return items.iter().map(&work).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let work = &work;
    let results: Vec<Result<Vec<R>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(work).collect::<Result<Vec<R>>>()))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(crate::error::Error::Invalid(
                        "a verification thread stopped unexpectedly".into(),
                    ))
                })
            })
            .collect()
    });
    let mut out = Vec::with_capacity(items.len());
    for part in results {
        out.extend(part?);
    }
    Ok(out)
}
