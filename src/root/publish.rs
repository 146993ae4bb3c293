//! `server publish`: an export folder, checked with every client rule again (the chain of
//! earlier roots included), compared with what the server serves now, and the files the
//! server does not already serve byte for byte uploaded in one request; then what the server
//! serves is read back.
//!
//! The server must hold nothing (a first root), exactly this folder's root (a change of
//! targets or snapshot), or exactly the root version before it (a new root). Anything else
//! means someone else published, or the folder belongs to another chain.

use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::fingerprint::Fingerprint;
use crate::server::{Confirmation, TrustServer};
use crate::trustdir;
use crate::tuf::model::{Root, Signed, UtcTime, Version};
use crate::tuf::verify::{self, RepoFiles, Verified};

/// One GUN's export folder, checked.
#[derive(Debug, Clone)]
pub struct CheckedExport {
    /// The GUN.
    pub gun: String,
    /// root.json bytes.
    pub root: Vec<u8>,
    /// targets.json bytes.
    pub targets: Vec<u8>,
    /// snapshot.json bytes (absent when the server makes snapshots).
    pub snapshot: Option<Vec<u8>>,
    /// The root version before this one, when there is one.
    pub previous_root: Option<Vec<u8>>,
    /// Root version.
    pub version: Version,
    /// What was verified.
    pub verified: Verified,
}

/// Reads and checks a GUN's export folder: root.json, targets.json, snapshot.json (if any),
/// and `1.root.json` … `(N-1).root.json` for root version N.
pub fn check_export(folder: &Path, gun: &str, now: UtcTime) -> Result<CheckedExport> {
    let read = |name: &str| trustdir::read(&folder.join(name));
    let root = read("root.json")?;
    let targets = read("targets.json")?;
    let snapshot_path = folder.join("snapshot.json");
    let snapshot = if snapshot_path.exists() {
        Some(trustdir::read(&snapshot_path)?)
    } else {
        None
    };
    let version = Signed::<Root>::parse("root.json", &root)?.signed.version;
    let mut chain: Vec<verify::CheckedRoot> = Vec::new();
    let mut v = Version::FIRST;
    while v < version {
        let name = format!("{v}.root.json");
        let bytes = read(&name).map_err(|_| Error::NotFound(format!(
            "root v{version} needs every earlier version beside it in {}, and {name} is not there (`rootkeeper root export` writes them)",
            folder.display()
        )))?;
        chain.push(verify::check_chain_root(
            &folder.join(&name).display().to_string(),
            &bytes,
            gun,
            chain.last(),
            now,
        )?);
        v = v.next()?;
    }
    let (_, verified) = verify::verify_repo(
        RepoFiles {
            root: &root,
            targets: Some(&targets),
            snapshot: snapshot.as_deref(),
            timestamp: None,
        },
        Some(gun),
        chain.last(),
        now,
    )?;
    Ok(CheckedExport {
        gun: gun.to_owned(),
        previous_root: chain.last().map(|c| c.bytes.clone()),
        root,
        targets,
        snapshot,
        version,
        verified,
    })
}

/// What a publish will upload.
#[derive(Debug, Clone, Serialize)]
pub struct PublishPlan {
    /// The GUN.
    pub gun: String,
    /// Root version of the export.
    pub version: u64,
    /// The roles to upload (`root`, `targets`, `snapshot`), in that order; empty when the
    /// server already serves all of it.
    pub upload: Vec<&'static str>,
    /// `first publish`, `new root`, `same root` (what the server holds now).
    pub server_holds: &'static str,
}

fn not_ours(gun: &str, served: &[u8], ours: &CheckedExport) -> Error {
    let what = match Signed::<Root>::parse("served root.json", served) {
        Ok(doc) => format!("version {}", doc.signed.version),
        Err(_) => "a root.json rootkeeper cannot read".into(),
    };
    Error::ServerNotOurs {
        gun: gun.to_owned(),
        detail: format!(
            "its current root is {what} (SHA-256 {}), neither this export's root v{} nor {}",
            Fingerprint::of(served).hex(),
            ours.version,
            if ours.version > Version::FIRST {
                format!(
                    "the root v{} it replaces",
                    ours.version.get().saturating_sub(1)
                )
            } else {
                "empty".into()
            }
        ),
    }
}

/// Compares an export with what the server serves, and says what to upload.
pub fn plan(server: &TrustServer, export: &CheckedExport) -> Result<PublishPlan> {
    let gun = export.gun.as_str();
    let served_root = server.get(gun, "root.json")?;
    let server_holds = match &served_root {
        None if export.version > Version::FIRST => {
            return Err(Error::ServerNotOurs {
                gun: gun.to_owned(),
                detail: format!(
                    "the server holds no root, but this export is root v{}; publish the versions before it first, in order",
                    export.version
                ),
            });
        }
        None => "first publish",
        Some(served) if *served == export.root => "same root",
        Some(served) if export.previous_root.as_deref() == Some(served.as_slice()) => "new root",
        Some(served) => return Err(not_ours(gun, served, export)),
    };
    let mut upload = Vec::new();
    if server_holds != "same root" {
        upload.push("root");
    }
    let differs = |name: &str, ours: &[u8]| -> Result<bool> {
        Ok(served_root.is_none() || server.get(gun, name)?.as_deref() != Some(ours))
    };
    if differs("targets.json", &export.targets)? {
        upload.push("targets");
    }
    if let Some(snapshot) = &export.snapshot
        && differs("snapshot.json", snapshot)?
    {
        upload.push("snapshot");
    }
    Ok(PublishPlan {
        gun: gun.to_owned(),
        version: export.version.get(),
        upload,
        server_holds,
    })
}

/// Uploads what the plan names (nothing when it names nothing) and reads back what the
/// server serves: root.json byte for byte, and a timestamp over our snapshot (or over the
/// server's, which must cover our root and targets).
pub fn publish(
    server: &TrustServer,
    export: &CheckedExport,
    plan: &PublishPlan,
) -> Result<Confirmation> {
    if !plan.upload.is_empty() {
        let files: Vec<(&str, &[u8])> = plan
            .upload
            .iter()
            .map(|role| {
                let bytes: &[u8] = match *role {
                    "root" => &export.root,
                    "targets" => &export.targets,
                    _ => export.snapshot.as_deref().unwrap_or_default(),
                };
                (*role, bytes)
            })
            .collect();
        server.publish(&export.gun, &files)?;
    }
    server.confirm(
        &export.gun,
        &export.root,
        &export.targets,
        export.snapshot.as_deref(),
    )
}
