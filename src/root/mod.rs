//! The root workflow, one file per operation on a shared draft model ([`draft`]): `init` makes
//! a draft, `sign` collects signatures one custodian at a time, `status` says what is still
//! missing, `export` verifies with every client rule and writes the files the trust server
//! takes.

pub mod change;
pub mod draft;
pub mod export;
pub mod init;
pub mod publish;
pub mod pull;
pub mod sign;
pub mod signers;

pub use draft::{DraftStatus, RoleStatus, SignerState};
pub use export::{ExportOutcome, export};
pub use init::{InitRequest, SnapshotKey, init, record_key};
pub use sign::{SignOutcome, SignPlan};

use crate::error::Result;
use crate::trustdir::{RepoDir, TrustDir};
use crate::tuf::model::{Signed, UtcTime};
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
            draft::load(&repo, &inventory).map(|p| draft::status(&p))
        })
        .collect()
}

/// Applies every client rule to a GUN's draft, as `root export` will.
pub fn verify_draft(repo: &RepoDir<'_>, now: UtcTime) -> Result<Verified> {
    let inventory = repo.trust_dir().inventory()?;
    let pending = draft::load(repo, &inventory)?;
    let root = pending.root_file()?;
    let targets = pending.targets_file()?;
    let snapshot = pending
        .snapshot
        .as_ref()
        .map(Signed::to_bytes)
        .transpose()?;
    let needs_snapshot = matches!(pending.draft.snapshot, draft::SnapshotPlan::Offline { .. });
    let (_, verified) = export::verify_files(
        repo,
        (&root, &targets, snapshot.as_deref()),
        needs_snapshot,
        now,
    )?;
    Ok(verified)
}
