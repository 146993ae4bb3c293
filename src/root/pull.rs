//! `server pull`: the repository as the trust server serves it now, verified with every client
//! rule against the root chain this trust directory keeps, and kept in `repos/<gun>/server/`
//! for the offline machine (new targets versions, delegations, snapshot contents).
//!
//! The served root must be one this trust directory keeps (byte for byte), or a newer version
//! that chains to it (each `<v>.root.json` checked against the one before it, as notary's
//! client walks). Then the timestamp (its key from that root, its hash of the snapshot), the
//! snapshot (its hashes of root, targets and every delegation file), targets and each
//! delegation. A version older than the last pull is a rollback. Nothing is stored unless
//! everything holds; as in notary's client, a delegation below its threshold or expired (say,
//! signed only by a signer since removed) is skipped with a note, not a refusal.
//!
//! A repository made elsewhere (docker, notary) is taken in with [`Adopt`]: the root its
//! clients trust, given by the operator, starts the chain.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::server::TrustServer;
use crate::trustdir::{Batch, RepoDir, TrustDir, json_bytes};
use crate::tuf::model::{Signed, Snapshot, Targets, UtcTime, Version};
use crate::tuf::verify::{self, CheckedRoot};

/// The record of the last pull, `server/pull.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullRecord {
    /// Format version (1).
    pub format: u32,
    /// The server pulled from.
    pub server: String,
    /// When.
    pub at: String,
    /// Root version served.
    pub root: u64,
    /// Targets version served.
    pub targets: u64,
    /// Snapshot version served.
    pub snapshot: u64,
    /// Timestamp version served.
    pub timestamp: u64,
    /// Delegation files served (role name → version).
    #[serde(default)]
    pub delegations: BTreeMap<String, u64>,
}

/// The repository as last pulled, read back from the trust directory.
#[derive(Debug, Clone)]
pub struct ServerState {
    /// The record.
    pub record: PullRecord,
    /// root.json bytes.
    pub root: Vec<u8>,
    /// targets.json bytes.
    pub targets: Vec<u8>,
    /// snapshot.json bytes.
    pub snapshot: Vec<u8>,
    /// Delegation files by role name.
    pub delegations: BTreeMap<String, Vec<u8>>,
}

/// What `server pull` found.
#[derive(Debug, Clone, Serialize)]
pub struct PullOutcome {
    /// The GUN.
    pub gun: String,
    /// The record stored.
    pub record: PullRecord,
    /// Root versions newer than this trust directory's that the server's chain brought.
    pub new_root_versions: Vec<u64>,
    /// With `--adopt`: the root versions taken into this trust directory (the adopted one and
    /// the server's versions before it).
    pub adopted_root_versions: Vec<u64>,
    /// Notes (e.g. the server is behind the last export).
    pub notes: Vec<String>,
}

fn refused(gun: &str, detail: impl Into<String>) -> Error {
    Error::PullRefused {
        gun: gun.to_owned(),
        detail: detail.into(),
    }
}

fn server_file(repo: &RepoDir<'_>, name: &str) -> std::path::PathBuf {
    repo.server_dir().join(name)
}

/// The delegation file name of a role below `server/`: `targets/releases` → `targets/releases.json`.
fn delegation_file(name: &str) -> String {
    format!("{name}.json")
}

/// Reads the last pulled state of a GUN, if there is one (parsed when used).
pub fn state(repo: &RepoDir<'_>) -> Result<Option<ServerState>> {
    let Some(record) = repo.read_optional(&server_file(repo, "pull.json"))? else {
        return Ok(None);
    };
    let record: PullRecord = serde_json::from_slice(&record).map_err(|e| Error::Metadata {
        file: server_file(repo, "pull.json").display().to_string(),
        reason: crate::text::escape_untrusted(&e.to_string()),
    })?;
    let mut delegations = BTreeMap::new();
    for name in record.delegations.keys() {
        verify::check_delegation_name(name, name.rsplit_once('/').map_or("", |(p, _)| p)).map_err(
            |why| Error::Metadata {
                file: server_file(repo, "pull.json").display().to_string(),
                reason: why,
            },
        )?;
        delegations.insert(
            name.clone(),
            repo.read(&server_file(repo, &delegation_file(name)))?,
        );
    }
    Ok(Some(ServerState {
        root: repo.read(&server_file(repo, "root.json"))?,
        targets: repo.read(&server_file(repo, "targets.json"))?,
        snapshot: repo.read(&server_file(repo, "snapshot.json"))?,
        record,
        delegations,
    }))
}

fn fetch(server: &TrustServer, gun: &str, name: &str) -> Result<Vec<u8>> {
    server
        .get(gun, name)?
        .ok_or_else(|| refused(gun, format!("the server does not serve {name}")))
}

/// A root version and its file bytes.
type RootVersion = (Version, Vec<u8>);

/// Root versions by number, with their file bytes.
type KeptRoots = BTreeMap<Version, Vec<u8>>;

/// The chain before `version` from `kept`.
fn kept_chain(
    gun: &str,
    kept: &KeptRoots,
    version: Version,
    now: UtcTime,
) -> Result<Vec<CheckedRoot>> {
    crate::root::export::chain_from(gun, version, now, |v| {
        Ok((format!("root v{v} kept here"), kept.get(&v).cloned()))
    })
}

/// Checks the served root against the chain `kept` here; returns it checked, with the newer
/// versions the server's chain brought (bytes by version).
fn check_served_root(
    repo: &RepoDir<'_>,
    kept: &KeptRoots,
    server: &TrustServer,
    served: &[u8],
    now: UtcTime,
    notes: &mut Vec<String>,
) -> Result<(CheckedRoot, Vec<RootVersion>)> {
    let gun = repo.gun();
    let Some((&latest, latest_bytes)) = kept.last_key_value() else {
        return Err(refused(
            gun,
            format!(
                "this trust directory ({}) keeps no root of it to check the server against (a repository made elsewhere: `--adopt ROOT.json` with the root its clients trust)",
                repo.trust_dir().path().display()
            ),
        ));
    };
    let version = Signed::<crate::tuf::model::Root>::parse("served root.json", served)?
        .signed
        .version;
    let chain = kept_chain(gun, kept, version.min(latest), now)?;
    if version <= latest {
        if kept.get(&version).map(Vec::as_slice) != Some(served) {
            return Err(refused(
                gun,
                format!(
                    "the server's root (version {version}) is not the root version {version} this trust directory keeps"
                ),
            ));
        }
        if version < latest {
            notes.push(format!(
                "the server still serves root v{version}; v{latest} was made here and is not published yet"
            ));
        }
        let root = verify::check_root("served root.json", served, Some(gun), chain.last(), now)?;
        return Ok((root, Vec::new()));
    }
    // Newer: walk from our latest to the served version, each checked against the one before.
    let mut previous = verify::check_chain_root(
        &format!("root v{latest} kept here"),
        latest_bytes,
        gun,
        chain.last(),
        now,
    )?;
    let mut brought = Vec::new();
    let mut v = latest.next()?;
    while v < version {
        let name = format!("{v}.root.json");
        let bytes = fetch(server, gun, &name)?;
        previous =
            verify::check_chain_root(&format!("served {name}"), &bytes, gun, Some(&previous), now)
                .map_err(|e| {
                    refused(
                        gun,
                        format!("the server's root chain is broken at {name}: {e}"),
                    )
                })?;
        brought.push((v, bytes));
        v = v.next()?;
    }
    let root = verify::check_root("served root.json", served, Some(gun), Some(&previous), now)
        .map_err(|e| {
            refused(
                gun,
                format!(
                    "the server's root does not chain to the one this trust directory keeps: {e}"
                ),
            )
        })?;
    brought.push((version, served.to_vec()));
    Ok((root, brought))
}

/// A root this trust directory did not make (a repository made with docker or notary), trusted
/// out of band: the file its clients already trust (`~/.docker/trust/tuf/GUN/metadata/root.json`),
/// or one whose fingerprint the operator has compared. The chain starts from it.
#[derive(Debug, Clone, Copy)]
pub struct Adopt<'a> {
    /// The file's name, for messages.
    pub file: &'a str,
    /// Its bytes.
    pub bytes: &'a [u8],
}

/// The adopted root with the versions before it, which the server must serve as
/// `<v>.root.json`, each checked against the one before it and the adopted one last.
fn adopted_chain(
    repo: &RepoDir<'_>,
    server: &TrustServer,
    adopt: Adopt<'_>,
    now: UtcTime,
) -> Result<KeptRoots> {
    let gun = repo.gun();
    if repo.latest_root_version()?.is_some() {
        return Err(refused(
            gun,
            "this trust directory already keeps its root chain; --adopt is only for a repository made elsewhere",
        ));
    }
    let version = Signed::<crate::tuf::model::Root>::parse(adopt.file, adopt.bytes)?
        .signed
        .version;
    let mut kept = KeptRoots::new();
    let mut v = Version::FIRST;
    while v < version {
        let name = format!("{v}.root.json");
        kept.insert(v, fetch(server, gun, &name)?);
        v = v.next()?;
    }
    kept.insert(version, adopt.bytes.to_vec());
    let chain = kept_chain(gun, &kept, version, now).map_err(|e| {
        refused(
            gun,
            format!("the server's root versions before the adopted one do not chain: {e}"),
        )
    })?;
    verify::check_chain_root(adopt.file, adopt.bytes, gun, chain.last(), now)?;
    Ok(kept)
}

/// Downloads, verifies and keeps the repository as the server serves it (see the module
/// documentation). Nothing is stored unless everything holds.
pub fn pull(
    dir: &TrustDir,
    server: &TrustServer,
    server_url: &str,
    gun: &str,
    now: UtcTime,
    adopt: Option<Adopt<'_>>,
) -> Result<PullOutcome> {
    let repo = dir.repo(gun)?;
    let mut notes = Vec::new();
    let adopted = match adopt {
        Some(adopt) => adopted_chain(&repo, server, adopt, now)?,
        None => KeptRoots::new(),
    };
    let mut kept = adopted.clone();
    for v in repo.root_versions()? {
        kept.insert(v, repo.read(&repo.root_version(v))?);
    }
    let root_bytes = fetch(server, gun, "root.json")?;
    let (root, brought) = check_served_root(&repo, &kept, server, &root_bytes, now, &mut notes)?;

    let timestamp_bytes = fetch(server, gun, "timestamp.json")?;
    let snapshot_bytes = fetch(server, gun, "snapshot.json")?;
    let timestamp = verify::check_timestamp(
        "served timestamp.json",
        &timestamp_bytes,
        &root,
        &snapshot_bytes,
        now,
    )?;
    let targets_bytes = fetch(server, gun, "targets.json")?;
    let targets = verify::check_targets("served targets.json", &targets_bytes, &root, now)?;

    // Delegations the snapshot lists, walked from targets down (a child only when its parent
    // delegates to it), each checked against its role in the parent.
    let snapshot_doc = Signed::<Snapshot>::parse("served snapshot.json", &snapshot_bytes)?;
    let mut delegations: BTreeMap<String, (Vec<u8>, Signed<Targets>)> = BTreeMap::new();
    let mut skipped: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut queue: Vec<Targets> = vec![targets.doc.signed.clone()];
    while let Some(parent) = queue.pop() {
        for role in &parent.delegations.roles {
            if !snapshot_doc.signed.meta.contains_key(&role.name)
                || delegations.contains_key(&role.name)
                || skipped.contains_key(&role.name)
            {
                continue;
            }
            let bytes = fetch(server, gun, &delegation_file(&role.name))?;
            match verify::check_delegation(
                &format!("served {}", delegation_file(&role.name)),
                &bytes,
                &parent,
                role,
                now,
            ) {
                Ok(doc) => {
                    queue.push(doc.signed.clone());
                    delegations.insert(role.name.clone(), (bytes, doc));
                }
                // As notary's client does (`downloadTargets`): a delegation below its
                // threshold or expired is skipped with a warning, its children with it; its
                // bytes must still be the ones the snapshot names.
                Err(Error::Rule {
                    rule: "targets-threshold" | "targets-expiry",
                    detail,
                    ..
                }) => {
                    notes.push(format!(
                        "{} is not valid ({detail}); clients skip it and the tags in it, and so does this pull",
                        role.name
                    ));
                    skipped.insert(role.name.clone(), bytes);
                }
                Err(e) => return Err(e),
            }
        }
    }
    let mut covers: Vec<(&str, &[u8])> = vec![("root", &root_bytes), ("targets", &targets_bytes)];
    for (name, (bytes, _)) in &delegations {
        covers.push((name.as_str(), bytes.as_slice()));
    }
    for (name, bytes) in &skipped {
        covers.push((name.as_str(), bytes.as_slice()));
    }
    let snapshot =
        verify::check_snapshot("served snapshot.json", &snapshot_bytes, &root, &covers, now)?;

    // No rollback against the last pull.
    let record = PullRecord {
        format: 1,
        server: server_url.to_owned(),
        at: now.to_go_string(),
        root: root.doc.signed.version.get(),
        targets: targets.doc.signed.version.get(),
        snapshot: snapshot.signed.version.get(),
        timestamp: timestamp.signed.version.get(),
        delegations: delegations
            .iter()
            .map(|(name, (_, doc))| (name.clone(), doc.signed.version.get()))
            .collect(),
    };
    if let Some(last) = state(&repo)? {
        let old = &last.record;
        // In the order notary's client loads them, so the role named is the first one a
        // client would refuse: the timestamp, then what it covers.
        for (what, was, now_is) in [
            ("timestamp", old.timestamp, record.timestamp),
            ("snapshot", old.snapshot, record.snapshot),
            ("targets", old.targets, record.targets),
            ("root", old.root, record.root),
        ] {
            if now_is < was {
                return Err(Error::Rollback {
                    gun: gun.to_owned(),
                    role: what.to_owned(),
                    was,
                    served: now_is,
                });
            }
        }
        for (name, was) in &old.delegations {
            if let Some(now_is) = record.delegations.get(name)
                && now_is < was
            {
                return Err(Error::Rollback {
                    gun: gun.to_owned(),
                    role: name.clone(),
                    was: *was,
                    served: *now_is,
                });
            }
        }
    }

    let mut batch = Batch::new();
    for (v, bytes) in adopted.iter().chain(brought.iter().map(|(v, b)| (v, b))) {
        batch.write(repo.root_version(*v), bytes.clone());
    }
    let server_dir = repo.server_dir();
    if server_dir.exists() {
        // Delegation files that are no longer served go with the old state.
        for (name, _) in state(&repo)?.map(|s| s.delegations).unwrap_or_default() {
            if !delegations.contains_key(&name) {
                batch.remove(server_file(&repo, &delegation_file(&name)));
            }
        }
    }
    batch.write(server_file(&repo, "root.json"), root_bytes.clone());
    batch.write(server_file(&repo, "targets.json"), targets_bytes.clone());
    batch.write(server_file(&repo, "snapshot.json"), snapshot_bytes.clone());
    batch.write(
        server_file(&repo, "timestamp.json"),
        timestamp_bytes.clone(),
    );
    for (name, (bytes, _)) in &delegations {
        batch.write(server_file(&repo, &delegation_file(name)), bytes.clone());
    }
    batch.write(server_file(&repo, "pull.json"), json_bytes(&record)?);
    dir.commit(batch)?;
    Ok(PullOutcome {
        gun: gun.to_owned(),
        new_root_versions: brought.iter().map(|(v, _)| v.get()).collect(),
        adopted_root_versions: adopted.keys().map(|v| v.get()).collect(),
        record,
        notes,
    })
}
