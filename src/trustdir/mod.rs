//! The trust directory (design §5): the key inventory (public data only), every root version
//! ever signed, the draft being signed, and the last verified export.
//!
//! ```text
//! trust/
//!   inventory.json
//!   repos/<gun>/root/<N>.root.json
//!   repos/<gun>/pending/{root,targets,snapshot}.json + draft.json
//!   repos/<gun>/export/
//!   .lock            held by the one command that may write
//!   .journal         only while a batch of writes is being applied (or after a crash)
//! ```
//!
//! **A command's writes land as a whole** ([`TrustDir::commit`], a redo journal: see
//! [`journal`]). Killed at any instant, the directory is as before the command or, once the
//! journal is durable, as after it: the next command finishes the batch before anything reads.
//!
//! **Readers never wait for people.** A command that only reads ([`TrustDir::open_read`])
//! takes no `.lock` and creates nothing; it holds a shared lock on the directory itself, which
//! a writer takes exclusively only for the milliseconds it applies a batch, so a witness's
//! `root status` works while a custodian sits at a PIN prompt.
//!
//! Everything read back is parsed as strictly as a file from a stranger: drafts travel
//! between custodians.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::tuf::model::{Version, escape_untrusted};

fn read_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Read {
        path: path.to_owned(),
        source,
    }
}

fn write_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Write {
        path: path.to_owned(),
        source,
    }
}

/// Creates a folder (and its parents) readable by the owner only.
pub fn create_private_dir(path: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(write_error(path))
}

/// Writes one file outside the trust directory atomically: a temp file in the same folder,
/// fsync, rename, fsync of the folder. A reader sees the old file or the new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent_dir(path);
    create_private_dir(dir)?;
    let tmp = dir.join(format!(".{}.{}.tmp", file_name(path), nonce()?));
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(write_error(path))
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn file_name(path: &Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).unwrap_or("file")
}

fn nonce() -> Result<String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| Error::Invalid(format!("no randomness: {e}")))?;
    Ok(hex::encode(bytes))
}

/// Reads a file outside the trust directory, naming it in the error.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(read_error(path))
}

/// Where a server key file of `gun` lives under a folder of several: `DIR/<gun>/<role>.key.json`
/// (`server timestamp-key|snapshot-key` write them, `root init` reads them).
pub fn server_key_file(dir: &Path, gun: &str, role: &str) -> PathBuf {
    dir.join(gun).join(format!("{role}.key.json"))
}

/// Checks that a GUN is safe to use as a path below `repos/`.
pub fn check_gun(gun: &str) -> Result<()> {
    let ok = !gun.is_empty()
        && gun.len() < 256
        && !gun.starts_with('/')
        && !gun.ends_with('/')
        && gun
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
        && gun
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-:/".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "`{}` is not a repository name (GUN) such as registry.example.com/admin/demo",
            escape_untrusted(gun)
        )))
    }
}

pub mod journal;

pub use journal::Batch;

const LOCK: &str = ".lock";

// ---------------------------------------------------------------------------------------
// The directory

/// One key known to the trust directory: public data only.
///
/// The fields after `created` came with backups (format 1 still: each is optional, and left
/// out of the file when empty, so inventories written before them parse and are rewritten
/// byte for byte).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryKey {
    /// The key's URI (without pin-source).
    pub uri: String,
    /// Its label on the token.
    pub label: String,
    /// The role it was made for (`root`, `targets`, `snapshot`, `timestamp`), if any.
    #[serde(default)]
    pub role: Option<String>,
    /// `ecdsa-p256`.
    pub algorithm: String,
    /// Base64 DER SubjectPublicKeyInfo.
    pub public_key: String,
    /// The canonical key ID (notary's ID of the bare `ecdsa` key): the key's one identity.
    pub key_id: String,
    /// The token's label.
    pub token_label: String,
    /// The token's serial.
    pub token_serial: String,
    /// When it was generated (RFC 3339).
    pub created: String,
    /// How the key is protected against loss, chosen when it was made. `None` for keys
    /// recorded before policies were (all generated inside their tokens) and for keys
    /// `root init` found on a token without knowing where they came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<KeyPolicy>,
    /// Other tokens that hold the same key (same label and CKA_ID), besides `uri`'s.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<KeyCopy>,
    /// The encrypted backups written of the key (paths and public recipient strings only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backups: Vec<BackupRecord>,
    /// The restore drills (`backup verify`), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drills: Vec<DrillRecord>,
    /// For an imported key: the notary / docker key file it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported_from: Option<String>,
}

/// How a key is protected against loss (docs/backup.md §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyPolicy {
    /// Generated inside its token, never outside: protected by redundancy (a threshold).
    HardwareOnly,
    /// Generated in memory, imported into tokens, and backed up encrypted.
    InMemoryWithBackups,
    /// Imported from a key file (notary / docker trust): it existed outside, so a backup is
    /// required.
    Imported,
}

impl KeyPolicy {
    /// The name in the inventory and in `key list`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyPolicy::HardwareOnly => "hardware-only",
            KeyPolicy::InMemoryWithBackups => "in-memory-with-backups",
            KeyPolicy::Imported => "imported",
        }
    }

    /// Whether the key existed outside hardware (so backups of it can exist).
    pub fn has_existed_outside(self) -> bool {
        !matches!(self, KeyPolicy::HardwareOnly)
    }
}

/// Another token holding the same key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyCopy {
    /// The key's URI on that token (without pin-source).
    pub uri: String,
    /// The token's label.
    pub token_label: String,
    /// The token's serial.
    pub token_serial: String,
    /// When the key was put there (RFC 3339).
    pub added: String,
}

/// One backup of a key: one file, or a split backup file and its N share files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupRecord {
    /// When it was written (RFC 3339).
    pub created: String,
    /// The backup file (absolute path as written).
    pub file: String,
    /// The share files, share i at index i-1 (empty without a split).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shares: Vec<String>,
    /// The recipients, as their public strings (`age1…`, `age1yubikey1…`, `passphrase`);
    /// with a split, recipient i got share i.
    pub recipients: Vec<String>,
    /// `M-of-N ID` of the split, if split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<String>,
    /// ASCII-armored.
    #[serde(default)]
    pub armor: bool,
}

/// One restore drill.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillRecord {
    /// When (RFC 3339).
    pub date: String,
    /// The files given (absolute paths).
    pub files: Vec<String>,
    /// `passed` or `failed`.
    pub result: String,
    /// For a failed drill, the one-line reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The share numbers that recombined (empty without a split).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shares_used: Vec<u8>,
}

impl DrillRecord {
    /// Whether the drill passed.
    pub fn passed(&self) -> bool {
        self.result == "passed"
    }
}

impl InventoryKey {
    /// The last drill that passed.
    pub fn last_good_drill(&self) -> Option<&DrillRecord> {
        self.drills.iter().rev().find(|d| d.passed())
    }

    /// Every URI of the key: its first token's, then its copies'.
    pub fn uris(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.uri.as_str()).chain(self.copies.iter().map(|c| c.uri.as_str()))
    }

    /// Whether any of its backups is (or has as a share) the file `path`.
    pub fn has_backup_file(&self, path: &str) -> bool {
        self.backups
            .iter()
            .any(|b| b.file == path || b.shares.iter().any(|s| s == path))
    }
}

/// inventory.json.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    /// Format version (1).
    pub version: u32,
    /// The keys.
    pub keys: Vec<InventoryKey>,
}

impl Inventory {
    /// The entry whose canonical key ID is `key_id`.
    pub fn by_key_id(&self, key_id: &str) -> Option<&InventoryKey> {
        self.keys.iter().find(|k| k.key_id == key_id)
    }

    /// Adds or replaces the entry for a key ID.
    pub fn upsert(&mut self, key: InventoryKey) {
        self.keys.retain(|k| k.key_id != key.key_id);
        self.keys.push(key);
        self.keys.sort_by(|a, b| a.uri.cmp(&b.uri));
    }

    /// The file bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        json_bytes(self)
    }
}

/// Pretty JSON with a final newline, for the trust directory's own records.
pub fn json_bytes<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::Invalid(e.to_string()))?;
    bytes.push(b'\n');
    Ok(bytes)
}

#[derive(Debug)]
enum Access {
    /// Holds `.lock`: the only command that may write.
    Writer { _lock: File },
    /// Holds a shared lock on the directory for the command's life.
    Reader { _shared: File },
}

/// An open trust directory.
#[derive(Debug)]
pub struct TrustDir {
    path: PathBuf,
    access: Access,
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(read_error(path))
}

fn missing_dir(path: &Path) -> Error {
    Error::NoTrustDir {
        path: path.to_owned(),
    }
}

impl TrustDir {
    /// Opens the trust directory for a command that writes: creates it if needed, takes
    /// `.lock` (failing at once if another command holds it), and finishes or undoes what an
    /// interrupted command left.
    pub fn open(path: &Path) -> Result<TrustDir> {
        let path = absolute(path)?;
        create_private_dir(&path)?;
        let lock_path = path.join(LOCK);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(write_error(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(Error::Busy { path }),
            Err(fs::TryLockError::Error(source)) => {
                return Err(Error::Write {
                    path: lock_path,
                    source,
                });
            }
        }
        if journal::pending(&path) {
            let exclusive = File::open(&path).map_err(read_error(&path))?;
            exclusive.lock().map_err(write_error(&path))?;
            journal::recover(&path)?;
        }
        Ok(TrustDir {
            path,
            access: Access::Writer { _lock: lock },
        })
    }

    /// Opens the trust directory for a command that only reads: creates nothing, takes no
    /// `.lock`, and works while a writer waits for a PIN. Fails when there is no directory.
    pub fn open_read(path: &Path) -> Result<TrustDir> {
        let path = absolute(path)?;
        if !path.is_dir() {
            return Err(missing_dir(&path));
        }
        loop {
            let shared = File::open(&path).map_err(read_error(&path))?;
            shared.lock_shared().map_err(read_error(&path))?;
            if !journal::pending(&path) {
                return Ok(TrustDir {
                    path,
                    access: Access::Reader { _shared: shared },
                });
            }
            // A command was killed after its commit point: finish its batch first, as the
            // next writer would, unless a writer is alive (it finishes it itself).
            drop(shared);
            let lock_path = path.join(LOCK);
            let lock = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&lock_path)
                .map_err(write_error(&lock_path))?;
            match lock.try_lock() {
                Ok(()) => {
                    let exclusive = File::open(&path).map_err(read_error(&path))?;
                    exclusive.lock().map_err(write_error(&path))?;
                    journal::recover(&path)?;
                }
                Err(fs::TryLockError::WouldBlock) => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(fs::TryLockError::Error(source)) => {
                    return Err(Error::Write {
                        path: lock_path,
                        source,
                    });
                }
            }
        }
    }

    /// The directory (absolute).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when this handle may write.
    pub fn writable(&self) -> bool {
        matches!(self.access, Access::Writer { .. })
    }

    /// Reads a file of the trust directory, naming it in the error.
    pub fn read(&self, path: &Path) -> Result<Vec<u8>> {
        fs::read(path).map_err(read_error(path))
    }

    /// Reads a file if it exists.
    pub fn read_optional(&self, path: &Path) -> Result<Option<Vec<u8>>> {
        match self.read(path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(Error::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// True when a file of the trust directory exists.
    pub fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    /// The names of the entries of a folder of the trust directory (empty when it is absent).
    pub fn list(&self, dir: &Path) -> Result<BTreeSet<String>> {
        let mut names = BTreeSet::new();
        match fs::read_dir(dir) {
            Ok(entries) => {
                for entry in entries {
                    let entry = entry.map_err(read_error(dir))?;
                    if let Some(name) = entry.file_name().to_str() {
                        names.insert(name.to_owned());
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(read_error(dir)(e)),
        }
        Ok(names)
    }

    fn inventory_path(&self) -> PathBuf {
        self.path.join("inventory.json")
    }

    /// The inventory (empty when none was written yet), parsed strictly.
    pub fn inventory(&self) -> Result<Inventory> {
        let path = self.inventory_path();
        match self.read_optional(&path)? {
            None => Ok(Inventory {
                version: 1,
                keys: Vec::new(),
            }),
            Some(bytes) => {
                let inventory: Inventory =
                    serde_json::from_slice(&bytes).map_err(|e| Error::Metadata {
                        file: path.display().to_string(),
                        reason: escape_untrusted(&e.to_string()),
                    })?;
                if inventory.version != 1 {
                    return Err(Error::Metadata {
                        file: path.display().to_string(),
                        reason: format!(
                            "inventory format {} is not one this version reads (1)",
                            inventory.version
                        ),
                    });
                }
                Ok(inventory)
            }
        }
    }

    /// Adds the inventory to a batch.
    pub fn stage_inventory(&self, batch: &mut Batch, inventory: &Inventory) -> Result<()> {
        batch.write(self.inventory_path(), inventory.to_bytes()?);
        Ok(())
    }

    /// Saves the inventory alone.
    pub fn save_inventory(&self, inventory: &Inventory) -> Result<()> {
        let mut batch = Batch::new();
        self.stage_inventory(&mut batch, inventory)?;
        self.commit(batch)
    }

    /// The folder of one repository.
    pub fn repo(&self, gun: &str) -> Result<RepoDir<'_>> {
        check_gun(gun)?;
        Ok(RepoDir {
            dir: self,
            gun: gun.to_owned(),
            path: self.path.join("repos").join(gun),
        })
    }

    /// Every GUN with a folder in the trust directory.
    pub fn guns(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let repos = self.path.join("repos");
        let mut stack = vec![repos.clone()];
        while let Some(dir) = stack.pop() {
            let names = self.list(&dir)?;
            if names.contains("pending") || names.contains("root") {
                if let Some(gun) = dir.strip_prefix(&repos).ok().and_then(Path::to_str)
                    && check_gun(gun).is_ok()
                {
                    out.push(gun.to_owned());
                }
                continue;
            }
            for name in names {
                if !name.starts_with('.') {
                    stack.push(dir.join(name));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Writes, moves, links and removes every file of `batch`, as a whole (see the module
    /// documentation). Files outside the trust directory (an export folder) take part too.
    pub fn commit(&self, batch: Batch) -> Result<()> {
        if !self.writable() {
            return Err(Error::Invalid(
                "this trust directory was opened read-only".into(),
            ));
        }
        journal::commit(&self.path, batch)
    }
}

/// The folder of one repository in the trust directory.
#[derive(Debug, Clone)]
pub struct RepoDir<'a> {
    dir: &'a TrustDir,
    gun: String,
    path: PathBuf,
}

impl RepoDir<'_> {
    /// The GUN.
    pub fn gun(&self) -> &str {
        &self.gun
    }

    /// The trust directory.
    pub fn trust_dir(&self) -> &TrustDir {
        self.dir
    }

    /// `pending/`: the draft being signed.
    pub fn pending_dir(&self) -> PathBuf {
        self.path.join("pending")
    }

    /// `pending/<name>`.
    pub fn pending(&self, name: &str) -> PathBuf {
        self.pending_dir().join(name)
    }

    /// `export/`: the last verified export.
    pub fn export_dir(&self) -> PathBuf {
        self.path.join("export")
    }

    /// `export/<name>`.
    pub fn exported(&self, name: &str) -> PathBuf {
        self.export_dir().join(name)
    }

    /// `server/`: the repository as `server pull` last found it on the trust server.
    pub fn server_dir(&self) -> PathBuf {
        self.path.join("server")
    }

    /// `root/<version>.root.json`.
    pub fn root_version(&self, version: Version) -> PathBuf {
        self.path.join("root").join(format!("{version}.root.json"))
    }

    /// Reads a file of this repository's folder.
    pub fn read(&self, path: &Path) -> Result<Vec<u8>> {
        self.dir.read(path)
    }

    /// Reads a file of this repository's folder if it exists.
    pub fn read_optional(&self, path: &Path) -> Result<Option<Vec<u8>>> {
        self.dir.read_optional(path)
    }

    /// The root versions kept, in order.
    pub fn root_versions(&self) -> Result<Vec<Version>> {
        let mut versions: Vec<Version> = self
            .dir
            .list(&self.path.join("root"))?
            .iter()
            .filter_map(|n| n.strip_suffix(".root.json"))
            .filter(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()))
            .filter_map(|n| n.parse::<u64>().ok())
            .filter_map(|v| Version::new(v).ok())
            .collect();
        versions.sort();
        Ok(versions)
    }

    /// The highest root version kept, if any.
    pub fn latest_root_version(&self) -> Result<Option<Version>> {
        Ok(self.root_versions()?.last().copied())
    }

    /// True when a draft is pending.
    pub fn has_pending(&self) -> bool {
        self.dir.exists(&self.pending("draft.json"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/file.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }

    fn entries(dir: &Path) -> BTreeSet<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect()
    }

    #[test]
    fn a_batch_lands_whole_and_leaves_nothing_behind() {
        let tmp = tempfile::tempdir().unwrap();
        let trust = TrustDir::open(&tmp.path().join("trust")).unwrap();
        let stale = trust.path().join("x/stale.json");
        let mut batch = Batch::new();
        batch.write(stale.clone(), b"old".to_vec());
        trust.commit(batch).unwrap();
        let mut batch = Batch::new();
        batch.write(trust.path().join("x/a.json"), b"a".to_vec());
        batch.write(trust.path().join("y/b.json"), b"b1".to_vec());
        batch.write(trust.path().join("y/b.json"), b"b2".to_vec());
        batch.write(tmp.path().join("out/c.json"), b"c".to_vec());
        batch.remove(stale.clone());
        trust.commit(batch).unwrap();
        assert_eq!(fs::read(trust.path().join("x/a.json")).unwrap(), b"a");
        assert_eq!(fs::read(trust.path().join("y/b.json")).unwrap(), b"b2");
        assert_eq!(fs::read(tmp.path().join("out/c.json")).unwrap(), b"c");
        assert!(!stale.exists());
        assert_eq!(
            entries(&tmp.path().join("out")),
            BTreeSet::from(["c.json".into()])
        );
        assert_eq!(
            entries(trust.path()),
            BTreeSet::from([".lock".into(), "x".into(), "y".into()])
        );
    }

    #[test]
    fn a_failed_batch_changes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let trust = TrustDir::open(&tmp.path().join("trust")).unwrap();
        fs::write(
            trust.path().join("blocker"),
            b"a file where a folder should be",
        )
        .unwrap();
        let mut batch = Batch::new();
        batch.write(trust.path().join("ok/a.json"), b"a".to_vec());
        batch.write(trust.path().join("blocker/b.json"), b"b".to_vec());
        assert!(trust.commit(batch).is_err());
        assert!(!trust.path().join("ok/a.json").exists());
        assert!(!journal::pending(trust.path()));
    }

    /// A batch interrupted after its commit point (its journal left as a killed process
    /// leaves it) is finished by the next reader or writer; one interrupted before it (only
    /// `.journal.tmp`) is dropped.
    #[test]
    fn interrupted_batches_are_finished_or_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("trust");
        drop(TrustDir::open(&root).unwrap());
        fs::create_dir_all(root.join("repos")).unwrap();
        fs::write(root.join("repos/old.json"), b"old").unwrap();
        fs::write(root.join("repos/gone.json"), b"gone").unwrap();
        let journal = b"rootkeeper-journal 1\n{\"ops\":[{\"write\":{\"target\":\"repos/old.json\",\"len\":3}},{\"remove\":{\"target\":\"repos/gone.json\"}}]}\nnew";
        fs::write(root.join(".journal"), journal).unwrap();
        let reader = TrustDir::open_read(&root).unwrap();
        assert_eq!(reader.read(&root.join("repos/old.json")).unwrap(), b"new");
        assert!(!reader.exists(&root.join("repos/gone.json")));
        drop(reader);
        assert!(!root.join(".journal").exists());

        fs::write(root.join("repos/gone.json"), b"back").unwrap();
        fs::write(root.join(".journal.tmp"), &journal[..30]).unwrap();
        drop(TrustDir::open(&root).unwrap());
        assert_eq!(fs::read(root.join("repos/old.json")).unwrap(), b"new");
        assert!(root.join("repos/gone.json").exists());
        assert!(!root.join(".journal.tmp").exists());
    }

    #[test]
    fn moves_and_links_land_with_the_writes() {
        let tmp = tempfile::tempdir().unwrap();
        let trust = TrustDir::open(&tmp.path().join("trust")).unwrap();
        let repo = trust.path().join("repos/g");
        let mut batch = Batch::new();
        batch.write(repo.join("pending/root.json"), b"v1".to_vec());
        trust.commit(batch).unwrap();
        let mut batch = Batch::new();
        batch.move_dir(repo.join("pending"), repo.join("export"));
        batch.write(repo.join("export/note"), b"exported".to_vec());
        batch.link(repo.join("export/root.json"), repo.join("root/1.root.json"));
        trust.commit(batch).unwrap();
        assert!(!repo.join("pending").exists());
        assert_eq!(fs::read(repo.join("export/root.json")).unwrap(), b"v1");
        assert_eq!(fs::read(repo.join("root/1.root.json")).unwrap(), b"v1");
        assert_eq!(fs::read(repo.join("export/note")).unwrap(), b"exported");
    }

    /// Found by tests/parsers.rs: serde names an unknown variant raw, so a journal whose state
    /// was `"comm\nitted"` put a newline (or any control) into the error.
    #[test]
    fn an_unreadable_journal_is_named_escaped() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(".journal"),
            "rootkeeper-journal 1\n{\"ops\":[{\"comm\\nitted\\u001b[2J\":{}}]}\n",
        )
        .unwrap();
        let err = TrustDir::open_read(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("cannot be read") && err.contains("comm\\nitted"),
            "{err}"
        );
        assert!(!err.chars().any(char::is_control), "{err:?}");
    }

    #[test]
    fn a_second_writer_is_refused_and_readers_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let first = TrustDir::open(dir.path()).unwrap();
        assert!(matches!(
            TrustDir::open(dir.path()),
            Err(Error::Busy { .. })
        ));
        let reader = TrustDir::open_read(dir.path()).unwrap();
        drop(reader);
        drop(first);
        TrustDir::open(dir.path()).unwrap();
    }

    #[test]
    fn readers_create_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("trust");
        assert!(matches!(
            TrustDir::open_read(&missing),
            Err(Error::NoTrustDir { .. })
        ));
        assert!(!missing.exists());
    }

    #[test]
    fn guns_cannot_escape_the_directory() {
        for bad in [
            "", "../x", "a/../b", "/abs", "a//b", "a/", "a b", "a*b", "a\u{1b}b",
        ] {
            assert!(check_gun(bad).is_err(), "{bad}");
        }
        for good in [
            "registry.example.com/admin/demo",
            "localhost:5000/app",
            "docker.io/library/alpine",
        ] {
            check_gun(good).unwrap();
        }
    }
}
