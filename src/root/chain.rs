//! The chain of root versions a GUN has had, as a notary client that trusted an older version
//! sees it. Such a client first tries the newest root against the one it trusts; when that
//! root carries enough signatures by the trusted version's keys (`--legacy`), it takes it at
//! once. Otherwise it walks `<v>.root.json` for every version in between, and checks each
//! against the one before with that version's own certificates' expiry ON
//! (`trustpinning.ValidateRoot`): an intermediate root whose certificates have expired strands
//! every client behind it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::Result;
use crate::tuf::model::{KeyId, RoleName, UtcTime};
use crate::tuf::verify::{self, CheckedRoot};

/// One root version of the chain.
#[derive(Debug, Clone, Serialize)]
pub struct ChainLink {
    /// The version.
    pub version: u64,
    /// Its expiry (not checked for intermediate versions: clients walk through expired ones).
    pub expires: String,
    /// Its root threshold.
    pub threshold: u64,
    /// Until when a client walking through this version can still check it: after this, fewer
    /// than its threshold of the keys that signed it have an unexpired certificate.
    pub walkable_until: String,
}

/// The chain of one GUN and what it means for clients that trusted an older version.
#[derive(Debug, Clone, Serialize)]
pub struct ChainReport {
    /// The GUN.
    pub gun: String,
    /// The newest root version (the draft's, when one is pending).
    pub newest: u64,
    /// When it expires.
    pub newest_expires: String,
    /// Every version, oldest first.
    pub links: Vec<ChainLink>,
    /// Older versions whose clients take the newest root at once: it carries their
    /// threshold of signatures (the previous version always; older ones with `--legacy`).
    pub direct_from: Vec<u64>,
    /// Older versions whose clients cannot reach the newest root now: an intermediate
    /// root they must walk through has certificates that expired.
    pub stranded: Vec<u64>,
    /// What the operator should know, one sentence each.
    pub warnings: Vec<String>,
}

/// The date until which a checked root can be checked by a client walking through it: the
/// threshold-th latest NotAfter among the distinct keys that signed it (a key renewed under
/// two certificates counts once, with its later one).
fn walkable_until(root: &CheckedRoot) -> UtcTime {
    let mut by_key: BTreeMap<&KeyId, UtcTime> = BTreeMap::new();
    for (id, facts) in root.role_keys(RoleName::Root) {
        if !root.signatures.valid.contains(id) {
            continue;
        }
        let Some(leaf) = facts.certs.first() else {
            continue;
        };
        let not_after = UtcTime::from_system(leaf.not_after);
        let entry = by_key.entry(&facts.canonical).or_insert(not_after);
        *entry = (*entry).max(not_after);
    }
    let mut dates: Vec<UtcTime> = by_key.into_values().collect();
    dates.sort_by(|a, b| b.cmp(a));
    let threshold = usize::try_from(root.doc.signed.roles.root.threshold.get()).unwrap_or(1);
    dates
        .get(threshold.saturating_sub(1))
        .copied()
        .unwrap_or(UtcTime::from_system(std::time::UNIX_EPOCH))
}

/// The chain from version 1 to the newest (the last of `roots`), which must already be
/// checked link by link (as [`crate::root::export::chain`] does). `drafted`: the newest is a
/// draft not exported yet (the advice is then to redraft it).
pub fn report(
    gun: &str,
    roots: &[CheckedRoot],
    drafted: bool,
    now: UtcTime,
) -> Result<ChainReport> {
    let Some((newest, older)) = roots.split_last() else {
        return Ok(ChainReport {
            gun: gun.to_owned(),
            newest: 0,
            newest_expires: String::new(),
            links: Vec::new(),
            direct_from: Vec::new(),
            stranded: Vec::new(),
            warnings: Vec::new(),
        });
    };
    let newest_version = newest.doc.signed.version.get();
    let newest_expires = newest.doc.signed.expires.instant();
    let message = newest.doc.signed_bytes()?;
    let walkable: Vec<UtcTime> = roots.iter().map(walkable_until).collect();
    let links = roots
        .iter()
        .zip(&walkable)
        .map(|(root, until)| ChainLink {
            version: root.doc.signed.version.get(),
            expires: root.doc.signed.expires.to_string(),
            threshold: root.doc.signed.roles.root.threshold.get(),
            walkable_until: until.to_go_string(),
        })
        .collect();
    let mut direct_from = Vec::new();
    let mut stranded = Vec::new();
    // For each intermediate version that limits someone: the first client version it limits
    // and the last.
    let mut limits: BTreeMap<usize, (u64, u64)> = BTreeMap::new();
    for (j, trusted) in older.iter().enumerate() {
        let trusted_version = trusted.doc.signed.version.get();
        let by_trusted = verify::rotation_signatures(&newest.doc, &message, trusted, gun);
        if by_trusted.count() >= trusted.doc.signed.roles.root.threshold.get() {
            direct_from.push(trusted_version);
            continue;
        }
        // The client walks through every version after j and before the newest.
        let first_walked = j.saturating_add(1);
        let Some(limiting) = (first_walked..older.len()).min_by_key(|k| walkable.get(*k).copied())
        else {
            continue;
        };
        let until = walkable.get(limiting).copied().unwrap_or(now);
        if until < now {
            stranded.push(trusted_version);
        }
        if until < newest_expires {
            let range = limits
                .entry(limiting)
                .or_insert((trusted_version, trusted_version));
            range.1 = trusted_version;
        }
    }
    let mut warnings = Vec::new();
    for (k, (first, last)) in limits {
        let (Some(root), Some(until)) = (roots.get(k), walkable.get(k)) else {
            continue;
        };
        let who = if first == last {
            format!("v{first}")
        } else {
            format!("v{first} to v{last}")
        };
        let advice = if drafted {
            format!(
                "redraft v{newest_version} with `--force --legacy {}`",
                newest_version.saturating_sub(first).saturating_sub(1)
            )
        } else {
            format!(
                "draft the next root with `--legacy {}`",
                newest_version.saturating_sub(first)
            )
        };
        let when = if *until < now { "expired" } else { "expire" };
        warnings.push(format!(
            "root v{}'s certificates {when} {} (before root v{newest_version} does): clients that still trust {who} {} walk through it to v{newest_version}; {advice} so that they take it directly",
            root.doc.signed.version,
            until.to_go_string(),
            if *until < now { "can no longer" } else { "then cannot" },
        ));
    }
    Ok(ChainReport {
        gun: gun.to_owned(),
        newest: newest_version,
        newest_expires: newest.doc.signed.expires.to_string(),
        links,
        direct_from,
        stranded,
        warnings,
    })
}
