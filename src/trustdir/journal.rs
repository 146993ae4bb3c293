//! Batches of writes that land as a whole: a redo journal.
//!
//! [`commit`] writes the whole batch (every new file's bytes, every removal, directory move
//! and hard link) into `.journal.tmp`, makes it durable, and renames it to `.journal`: that
//! rename is the commit point. Then the batch is applied in place and flushed, and the journal
//! is removed. Killed before the commit point, nothing visible changed; killed after it, the
//! next command (writer or reader) finds the journal and applies it again, which is harmless
//! because every step is idempotent. Files are rewritten in place rather than replaced, so a
//! ceremony over hundreds of repositories does not allocate and free an inode per file and
//! per signature (expensive on ext4 without a journal, where fresh inodes skip recently freed
//! ones).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{create_private_dir, parent_dir, read_error, write_error};
use crate::error::{Error, Result};

/// The journal of a batch that passed its commit point.
pub(crate) const JOURNAL: &str = ".journal";
/// A journal being written (before the commit point).
const JOURNAL_TMP: &str = ".journal.tmp";
/// The first line of a journal.
const MAGIC: &[u8] = b"rootkeeper-journal 1\n";

/// Files to write, remove, move and link together ([`super::TrustDir::commit`]): all of it
/// lands, or none. Applied in this order: directory moves, writes, links, removals.
#[derive(Debug, Default)]
pub struct Batch {
    moves: Vec<(PathBuf, PathBuf)>,
    writes: BTreeMap<PathBuf, Vec<u8>>,
    links: Vec<(PathBuf, PathBuf)>,
    removals: BTreeSet<PathBuf>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Adds a file to write (a later write of the same path wins).
    pub fn write(&mut self, path: PathBuf, bytes: Vec<u8>) {
        self.removals.remove(&path);
        self.writes.insert(path, bytes);
    }

    /// Adds a file to remove (if it exists).
    pub fn remove(&mut self, path: PathBuf) {
        self.writes.remove(&path);
        self.removals.insert(path);
    }

    /// Moves a folder to `to`, replacing any folder there (applied before every write).
    pub fn move_dir(&mut self, from: PathBuf, to: PathBuf) {
        self.moves.push((from, to));
    }

    /// Makes `to` a hard link to `from` (after the moves and writes), unless `to` exists.
    pub fn link(&mut self, from: PathBuf, to: PathBuf) {
        self.links.push((from, to));
    }

    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.moves.is_empty()
            && self.writes.is_empty()
            && self.links.is_empty()
            && self.removals.is_empty()
    }
}

/// One step of a journal, with paths relative to the trust directory when they are inside it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Op {
    MoveDir { from: String, to: String },
    Write { target: String, len: u64 },
    Link { from: String, to: String },
    Remove { target: String },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    ops: Vec<Op>,
}

fn relative(root: &Path, path: &Path) -> Result<String> {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.to_str().map(str::to_owned).ok_or_else(|| {
        Error::Invalid(format!(
            "the path {} is not UTF-8; rootkeeper cannot journal it",
            path.display()
        ))
    })
}

/// Where a journal path points. A path inside the trust directory must be relative and may
/// not climb out of it (`..`). An absolute path (an export folder elsewhere) is honoured only
/// while this process commits its own batch: a journal found on disk is hostile input (the
/// trust directory travels between machines), so recovery never writes outside the trust
/// directory; an interrupted export is written again with `rootkeeper root export`.
fn resolve(root: &Path, text: &str, recovering: bool) -> Result<Option<PathBuf>> {
    use std::path::Component;
    let p = Path::new(text);
    if p.is_absolute() {
        return Ok((!recovering).then(|| p.to_owned()));
    }
    if p.as_os_str().is_empty() || !p.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(corrupt(root, "a path leaves the trust directory"));
    }
    Ok(Some(root.join(p)))
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(read_error(path))
}

fn corrupt(root: &Path, why: &str) -> Error {
    Error::Metadata {
        file: root.join(JOURNAL).display().to_string(),
        reason: format!(
            "an interrupted command left a journal that cannot be read: {}",
            crate::text::escape_untrusted(why)
        ),
    }
}

/// A journal read back: its steps and the bytes of each write.
struct Loaded {
    ops: Vec<Op>,
    payloads: Vec<Vec<u8>>,
}

fn parse(root: &Path, bytes: &[u8]) -> Result<Loaded> {
    let rest = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| corrupt(root, "it does not start with the journal header"))?;
    let end = rest
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| corrupt(root, "no header line"))?;
    let (line, mut body) = rest.split_at(end);
    body = body.get(1..).unwrap_or_default();
    let header: Header = serde_json::from_slice(line).map_err(|e| corrupt(root, &e.to_string()))?;
    let mut payloads = Vec::new();
    for op in &header.ops {
        if let Op::Write { len, .. } = op {
            let len = usize::try_from(*len).map_err(|_| corrupt(root, "a write is too long"))?;
            if body.len() < len {
                return Err(corrupt(root, "a write is cut short"));
            }
            let (payload, tail) = body.split_at(len);
            payloads.push(payload.to_vec());
            body = tail;
        }
    }
    if !body.is_empty() {
        return Err(corrupt(root, "bytes after the last write"));
    }
    Ok(Loaded {
        ops: header.ops,
        payloads,
    })
}

/// Flushes every file system that holds one of `dirs` (one `syncfs` each).
fn sync_filesystems<'a>(dirs: impl IntoIterator<Item = &'a Path>) -> Result<()> {
    let mut devices = BTreeSet::new();
    for dir in dirs {
        let handle = File::open(dir).map_err(write_error(dir))?;
        let dev = handle.metadata().map_err(write_error(dir))?.dev();
        if devices.insert(dev) {
            rustix::fs::syncfs(&handle).map_err(|e| write_error(dir)(e.into()))?;
        }
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(write_error(dir))
}

fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(write_error(path)(e)),
    }
}

/// Applies a journal's steps (again). Every step is idempotent. Returns the folders touched.
fn apply(root: &Path, loaded: &Loaded, recovering: bool) -> Result<BTreeSet<PathBuf>> {
    let mut touched = BTreeSet::new();
    let mut payloads = loaded.payloads.iter();
    let resolve = |text: &str| resolve(root, text, recovering);
    for op in &loaded.ops {
        match op {
            Op::MoveDir { from, to } => {
                let (Some(from), Some(to)) = (resolve(from)?, resolve(to)?) else {
                    continue;
                };
                if from.is_dir() {
                    if to.exists() {
                        fs::remove_dir_all(&to).map_err(write_error(&to))?;
                    }
                    fs::rename(&from, &to).map_err(write_error(&to))?;
                    touched.insert(parent_dir(&from).to_owned());
                    touched.insert(parent_dir(&to).to_owned());
                }
            }
            Op::Write { target, .. } => {
                let bytes = payloads
                    .next()
                    .ok_or_else(|| corrupt(root, "a write has no bytes"))?;
                let Some(target) = resolve(target)? else {
                    continue;
                };
                let mode = if target.starts_with(root) {
                    0o600
                } else {
                    0o644
                };
                let mut file = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(mode)
                    .open(&target)
                    .map_err(write_error(&target))?;
                file.write_all(bytes).map_err(write_error(&target))?;
                touched.insert(parent_dir(&target).to_owned());
            }
            Op::Link { from, to } => {
                let (Some(from), Some(to)) = (resolve(from)?, resolve(to)?) else {
                    continue;
                };
                if !to.exists() {
                    fs::hard_link(&from, &to).map_err(write_error(&to))?;
                    touched.insert(parent_dir(&to).to_owned());
                }
            }
            Op::Remove { target } => {
                let Some(target) = resolve(target)? else {
                    continue;
                };
                remove_if_present(&target)?;
                touched.insert(parent_dir(&target).to_owned());
            }
        }
    }
    Ok(touched)
}

/// True when an interrupted batch waits to be finished.
pub(crate) fn pending(root: &Path) -> bool {
    root.join(JOURNAL).exists() || root.join(JOURNAL_TMP).exists()
}

/// Finishes a batch that passed its commit point, and drops one that did not. The caller
/// holds the writer's lock and the exclusive directory lock.
pub(crate) fn recover(root: &Path) -> Result<()> {
    let journal = root.join(JOURNAL);
    match fs::read(&journal) {
        Ok(bytes) => {
            let loaded = parse(root, &bytes)?;
            let touched = apply(root, &loaded, true)?;
            sync_filesystems(touched.iter().map(PathBuf::as_path).chain([root]))?;
            remove_if_present(&journal)?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(read_error(&journal)(e)),
    }
    remove_if_present(&root.join(JOURNAL_TMP))?;
    sync_dir(root)
}

/// Writes a batch as a whole (see the module documentation). `root` is the trust directory
/// (absolute); the caller holds the writer's lock.
pub(crate) fn commit(root: &Path, batch: Batch) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let mut ops = Vec::new();
    let mut payload: Vec<&[u8]> = Vec::new();
    let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
    for (from, to) in &batch.moves {
        let (from, to) = (absolute(from)?, absolute(to)?);
        dirs.insert(parent_dir(&to).to_owned());
        ops.push(Op::MoveDir {
            from: relative(root, &from)?,
            to: relative(root, &to)?,
        });
    }
    for (target, bytes) in &batch.writes {
        let target = absolute(target)?;
        dirs.insert(parent_dir(&target).to_owned());
        ops.push(Op::Write {
            target: relative(root, &target)?,
            len: u64::try_from(bytes.len()).unwrap_or(u64::MAX),
        });
        payload.push(bytes);
    }
    for (from, to) in &batch.links {
        let (from, to) = (absolute(from)?, absolute(to)?);
        dirs.insert(parent_dir(&to).to_owned());
        ops.push(Op::Link {
            from: relative(root, &from)?,
            to: relative(root, &to)?,
        });
    }
    for target in &batch.removals {
        let target = absolute(target)?;
        ops.push(Op::Remove {
            target: relative(root, &target)?,
        });
    }
    // Folders a move or write needs are made before the commit point: an empty folder left
    // behind by an interrupted command changes nothing anyone reads. A move's target folder
    // itself must not exist yet as a parent of this batch's writes, so only its parent is made.
    for dir in &dirs {
        create_private_dir(dir)?;
    }
    let header = serde_json::to_vec(&Header { ops }).map_err(|e| Error::Invalid(e.to_string()))?;
    let tmp = root.join(JOURNAL_TMP);
    let written = (|| -> Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(write_error(&tmp))?;
        file.write_all(MAGIC).map_err(write_error(&tmp))?;
        file.write_all(&header).map_err(write_error(&tmp))?;
        file.write_all(b"\n").map_err(write_error(&tmp))?;
        for bytes in &payload {
            file.write_all(bytes).map_err(write_error(&tmp))?;
        }
        file.sync_all().map_err(write_error(&tmp))
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    let loaded = Loaded {
        ops: serde_json::from_slice::<Header>(&header)
            .map_err(|e| Error::Invalid(e.to_string()))?
            .ops,
        payloads: payload.iter().map(|b| b.to_vec()).collect(),
    };
    // The commit point, under the exclusive directory lock: readers wait these milliseconds.
    let exclusive = File::open(root).map_err(read_error(root))?;
    exclusive.lock().map_err(write_error(root))?;
    let journal = root.join(JOURNAL);
    if let Err(e) = fs::rename(&tmp, &journal)
        .map_err(write_error(&journal))
        .and_then(|()| sync_dir(root))
    {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    let touched = apply(root, &loaded, false)?;
    sync_filesystems(touched.iter().map(PathBuf::as_path).chain([root]))?;
    remove_if_present(&journal)?;
    sync_dir(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_refuses_to_be_misread() {
        let root = Path::new("/nonexistent");
        assert!(parse(root, b"").is_err());
        assert!(parse(root, b"rootkeeper-journal 1\n{\"ops\":[]}").is_err());
        let ok = b"rootkeeper-journal 1\n{\"ops\":[{\"write\":{\"target\":\"a\",\"len\":2}}]}\nxy";
        assert_eq!(parse(root, ok).unwrap().payloads, vec![b"xy".to_vec()]);
        let short =
            b"rootkeeper-journal 1\n{\"ops\":[{\"write\":{\"target\":\"a\",\"len\":3}}]}\nxy";
        assert!(parse(root, short).is_err());
        let long =
            b"rootkeeper-journal 1\n{\"ops\":[{\"write\":{\"target\":\"a\",\"len\":1}}]}\nxy";
        assert!(parse(root, long).is_err());
        let unknown = b"rootkeeper-journal 1\n{\"ops\":[{\"chmod\":{\"target\":\"a\"}}]}\n";
        assert!(parse(root, unknown).is_err());
    }

    /// A journal found on disk is hostile: it writes nothing outside the trust directory.
    #[test]
    fn recovery_stays_inside_the_trust_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("trust");
        fs::create_dir_all(&root).unwrap();
        let outside = tmp.path().join("outside");
        let escape = format!(
            "rootkeeper-journal 1\n{{\"ops\":[{{\"write\":{{\"target\":\"{}\",\"len\":1}}}}]}}\nx",
            outside.display()
        );
        fs::write(root.join(JOURNAL), &escape).unwrap();
        recover(&root).unwrap();
        assert!(!outside.exists());
        for climb in ["../outside", "a/../../outside", ""] {
            let text = format!(
                "rootkeeper-journal 1\n{{\"ops\":[{{\"write\":{{\"target\":\"{climb}\",\"len\":1}}}}]}}\nx"
            );
            fs::write(root.join(JOURNAL), &text).unwrap();
            assert!(recover(&root).is_err(), "{climb}");
            assert!(!outside.exists());
        }
    }
}
