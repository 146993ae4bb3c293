//! The trust directory (design §5): the key inventory (public data only), every root version
//! ever signed, the draft being signed, and the last verified export. Writes are atomic (temp
//! file, fsync, rename, fsync of the folder) and the directory is locked while a command runs.
//!
//! ```text
//! trust/
//!   inventory.json
//!   repos/<gun>/root/<N>.root.json
//!   repos/<gun>/pending/{root,targets,snapshot}.json + draft.json
//!   repos/<gun>/export/
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

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

/// Writes `bytes` to `path` atomically: a temp file in the same folder, fsync, rename, fsync
/// of the folder. A reader sees the old file or the new one, never a half-written one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent_dir(path);
    create_private_dir(dir)?;
    let tmp = temp_name(dir, path)?;
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

/// Files to write together: each lands atomically (temp file, rename), and the whole batch
/// costs two `syncfs` per file system instead of an fsync per file. Until [`Batch::commit`]
/// nothing is visible; a crash leaves each file old or new, never half-written.
#[derive(Debug, Default)]
pub struct Batch {
    files: Vec<(PathBuf, Vec<u8>)>,
    removals: Vec<PathBuf>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Adds a file to write (a later write of the same path wins).
    pub fn write(&mut self, path: PathBuf, bytes: Vec<u8>) {
        self.removals.retain(|p| *p != path);
        self.files.retain(|(p, _)| *p != path);
        self.files.push((path, bytes));
    }

    /// Adds a file to remove after the writes land (if it exists).
    pub fn remove(&mut self, path: PathBuf) {
        self.files.retain(|(p, _)| *p != path);
        self.removals.push(path);
    }

    /// Writes every file: temp files first, one syncfs, the renames, one more syncfs.
    pub fn commit(self) -> Result<()> {
        let mut staged = Vec::with_capacity(self.files.len());
        let mut dirs: Vec<PathBuf> = Vec::new();
        let result = (|| -> Result<()> {
            for (path, bytes) in &self.files {
                let dir = parent_dir(path).to_owned();
                create_private_dir(&dir)?;
                let tmp = temp_name(&dir, path)?;
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&tmp)
                    .map_err(write_error(path))?;
                staged.push((tmp, path.clone()));
                file.write_all(bytes).map_err(write_error(path))?;
                if !dirs.contains(&dir) {
                    dirs.push(dir);
                }
            }
            sync_filesystems(&dirs)?;
            for (tmp, path) in &staged {
                fs::rename(tmp, path).map_err(write_error(path))?;
            }
            staged.clear();
            for path in &self.removals {
                match fs::remove_file(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(write_error(path)(e)),
                }
            }
            sync_filesystems(&dirs)
        })();
        for (tmp, _) in staged {
            let _ = fs::remove_file(tmp);
        }
        result
    }
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn temp_name(dir: &Path, path: &Path) -> Result<PathBuf> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let mut nonce = [0u8; 6];
    getrandom::fill(&mut nonce).map_err(|e| Error::Invalid(format!("no randomness: {e}")))?;
    Ok(dir.join(format!(".{name}.{}.tmp", hex::encode(nonce))))
}

/// Flushes the file systems holding `dirs` (one `syncfs` each; cheap when nothing is dirty).
fn sync_filesystems(dirs: &[PathBuf]) -> Result<()> {
    for dir in dirs {
        let handle = File::open(dir).map_err(write_error(dir))?;
        rustix::fs::syncfs(&handle).map_err(|e| write_error(dir)(e.into()))?;
    }
    Ok(())
}

/// Where a server key file of `gun` lives under a folder of several: `DIR/<gun>/<role>.key.json`
/// (`server timestamp-key|snapshot-key` write them, `root init` reads them).
pub fn server_key_file(dir: &Path, gun: &str, role: &str) -> PathBuf {
    dir.join(gun).join(format!("{role}.key.json"))
}

/// Reads a file, naming it in the error.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(read_error(path))
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
            "`{gun}` is not a repository name (GUN) such as registry.example.com/admin/demo"
        )))
    }
}

/// One key known to the trust directory: public data only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// The Notary key ID of the bare `ecdsa` key (the canonical ID).
    pub key_id: String,
    /// The token's label.
    pub token_label: String,
    /// The token's serial.
    pub token_serial: String,
    /// When it was generated (RFC 3339).
    pub created: String,
}

/// inventory.json.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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
}

/// An open, locked trust directory.
#[derive(Debug)]
pub struct TrustDir {
    path: PathBuf,
    _lock: File,
}

impl TrustDir {
    /// Opens (creating it if needed) and locks the trust directory. Fails at once if another
    /// rootkeeper command holds it.
    pub fn open(path: &Path) -> Result<TrustDir> {
        create_private_dir(path)?;
        let lock_path = path.join(".lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(write_error(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(Error::Busy {
                    path: path.to_owned(),
                });
            }
            Err(fs::TryLockError::Error(source)) => {
                return Err(Error::Write {
                    path: lock_path,
                    source,
                });
            }
        }
        Ok(TrustDir {
            path: path.to_owned(),
            _lock: lock,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn inventory_path(&self) -> PathBuf {
        self.path.join("inventory.json")
    }

    /// The inventory (empty when none was written yet).
    pub fn inventory(&self) -> Result<Inventory> {
        let path = self.inventory_path();
        if !path.exists() {
            return Ok(Inventory {
                version: 1,
                keys: Vec::new(),
            });
        }
        serde_json::from_slice(&read(&path)?).map_err(|e| Error::Metadata {
            file: path.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// Saves the inventory.
    pub fn save_inventory(&self, inventory: &Inventory) -> Result<()> {
        let mut bytes =
            serde_json::to_vec_pretty(inventory).map_err(|e| Error::Invalid(e.to_string()))?;
        bytes.push(b'\n');
        write_atomic(&self.inventory_path(), &bytes)
    }

    /// The folder of one repository.
    pub fn repo(&self, gun: &str) -> Result<RepoDir> {
        check_gun(gun)?;
        Ok(RepoDir {
            gun: gun.to_owned(),
            path: self.path.join("repos").join(gun),
        })
    }
}

/// The folder of one repository in the trust directory.
#[derive(Debug, Clone)]
pub struct RepoDir {
    gun: String,
    path: PathBuf,
}

impl RepoDir {
    /// The GUN.
    pub fn gun(&self) -> &str {
        &self.gun
    }

    /// `pending/<name>`.
    pub fn pending(&self, name: &str) -> PathBuf {
        self.path.join("pending").join(name)
    }

    /// `export/`.
    pub fn export_dir(&self) -> PathBuf {
        self.path.join("export")
    }

    /// `root/<version>.root.json`.
    pub fn root_version(&self, version: u64) -> PathBuf {
        self.path.join("root").join(format!("{version}.root.json"))
    }

    /// The highest root version kept, if any.
    pub fn latest_root_version(&self) -> Result<Option<u64>> {
        let dir = self.path.join("root");
        if !dir.exists() {
            return Ok(None);
        }
        let mut latest = None;
        for entry in fs::read_dir(&dir).map_err(read_error(&dir))? {
            let entry = entry.map_err(read_error(&dir))?;
            let name = entry.file_name();
            if let Some(v) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".root.json"))
                .and_then(|n| n.parse::<u64>().ok())
            {
                latest = latest.max(Some(v));
            }
        }
        Ok(latest)
    }

    /// True when a draft is pending.
    pub fn has_pending(&self) -> bool {
        self.pending("root.json").exists()
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

    #[test]
    fn a_batch_lands_whole_and_removes_after_writing() {
        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join("x/stale.json");
        write_atomic(&stale, b"old").unwrap();
        let mut batch = Batch::new();
        batch.write(dir.path().join("x/a.json"), b"a".to_vec());
        batch.write(dir.path().join("y/b.json"), b"b1".to_vec());
        batch.write(dir.path().join("y/b.json"), b"b2".to_vec());
        batch.remove(stale.clone());
        batch.commit().unwrap();
        assert_eq!(fs::read(dir.path().join("x/a.json")).unwrap(), b"a");
        assert_eq!(fs::read(dir.path().join("y/b.json")).unwrap(), b"b2");
        assert!(!stale.exists());
        assert_eq!(fs::read_dir(dir.path().join("y")).unwrap().count(), 1);
    }

    #[test]
    fn a_failed_batch_leaves_no_temp_files_and_no_partial_targets() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("blocker"),
            b"a file where a folder should be",
        )
        .unwrap();
        let mut batch = Batch::new();
        batch.write(dir.path().join("ok/a.json"), b"a".to_vec());
        batch.write(dir.path().join("blocker/b.json"), b"b".to_vec());
        assert!(batch.commit().is_err());
        assert!(!dir.path().join("ok/a.json").exists());
        assert_eq!(fs::read_dir(dir.path().join("ok")).unwrap().count(), 0);
    }

    #[test]
    fn second_open_is_refused_while_locked() {
        let dir = tempfile::tempdir().unwrap();
        let first = TrustDir::open(dir.path()).unwrap();
        assert!(matches!(
            TrustDir::open(dir.path()),
            Err(Error::Busy { .. })
        ));
        drop(first);
        TrustDir::open(dir.path()).unwrap();
    }

    #[test]
    fn guns_cannot_escape_the_directory() {
        for bad in ["", "../x", "a/../b", "/abs", "a//b", "a/", "a b", "a*b"] {
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
