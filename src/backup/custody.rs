//! The backup workflows on tokens and the trust directory: `key generate --in-memory`,
//! `backup verify` (the drill), `backup restore`, `key import` (from notary / docker trust key
//! files) and `key export-notary`. Each is one call; the CLI only parses flags and prints.
//!
//! Order of work, so that a failure leaves nothing half done:
//! 1. every token is opened, logged in to and checked to have the label, CKA_ID or slot free,
//!    and every backup file is checked not to exist, before a key exists in memory;
//! 2. the backups are encrypted in memory, then written (new files, mode 0600);
//! 3. the key is imported into each token (each import is read back and test-signed);
//!    if one fails, the imports before it are taken back and the backup files removed;
//! 4. the inventory records it all in one batch.
//!
//! Nothing unencrypted is written anywhere: the key exists in zeroizing memory only, in a
//! process that cannot dump core, and error messages name files, never values.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use p256::ecdsa::VerifyingKey;

use super::{BackupMetadata, EncryptedFile, Identities, KeyBackup, Recipient, SharedPrompter};
use crate::backend::KeyDescription;
use crate::backend::Keyring;
use crate::backend::memory::MemorySigner;
use crate::backend::piv::{Device, PivPinPolicy, PivTouchPolicy};
use crate::backend::pkcs11::{KeyObject, TokenSession};
use crate::error::{Error, Result};
use crate::keyuri::{KeyUri, PivSlot};
use crate::notice::Notifier;
use crate::secret::{Pin, Prompter};
use crate::signer::Signer;
use crate::trustdir::{
    BackupRecord, DrillRecord, Inventory, InventoryKey, KeyCopy, KeyPolicy, TrustDir,
};
use crate::tuf::model::UtcTime;
use crate::tuf::notary;

/// A refused request, with what to do about it.
fn request(message: impl Into<String>, hint: &'static str) -> Error {
    Error::Request {
        message: message.into(),
        hint,
    }
}

/// A drill older than this many days is called stale by `key list`.
pub const DRILL_MAX_AGE_DAYS: i64 = 365;

/// `YYYY-MM-DDTHH:MM:SSZ`, the form every record and backup document uses.
pub fn timestamp(now: UtcTime) -> String {
    now.whole_seconds().to_go_string()
}

fn public_b64(key: &VerifyingKey) -> Result<String> {
    Ok(notary::ecdsa_key(key)?.keyval.public.encoded())
}

// ---------------------------------------------------------------------------------------
// Tokens to put a key into

/// A YubiKey slot's policies for a key imported into it (ignored for PKCS#11 tokens).
#[derive(Debug, Clone, Copy)]
pub struct PivPolicies {
    /// When the key needs the PIN.
    pub pin: PivPinPolicy,
    /// When the key needs a touch.
    pub touch: PivTouchPolicy,
}

impl Default for PivPolicies {
    fn default() -> Self {
        PivPolicies {
            pin: PivPinPolicy::Once,
            touch: PivTouchPolicy::Never,
        }
    }
}

/// A token opened, logged in to, and checked to have room for the key.
enum Target {
    Pkcs11(Rc<TokenSession>),
    Piv(Rc<Device>, PivSlot),
}

impl Target {
    fn open(keyring: &mut Keyring<'_>, uri: &KeyUri, label: &str, id: &[u8]) -> Result<Target> {
        match uri {
            KeyUri::Pkcs11(p) => {
                if p.names_key() {
                    return Err(request(
                        format!(
                            "{} names a key, not a token: leave out object= and id= (the key gets the label `{label}`)",
                            p.without_pin_source()
                        ),
                        "name the token only, e.g. pkcs11:token=custodian-b (`rootkeeper token list` prints it)",
                    ));
                }
                let session = keyring.session(p)?;
                session.check_free(label, id)?;
                Ok(Target::Pkcs11(session))
            }
            KeyUri::YubiKey(y) => {
                let Some(slot) = y.slot else {
                    return Err(request(
                        format!(
                            "{} names no slot for the key: add slot=9c (or 9a, 9d, 9e, 82..95)",
                            y.without_sources()
                        ),
                        "a YubiKey key goes into a slot: yubikey:serial=N;slot=9c",
                    ));
                };
                if label.is_empty() || label.len() > 64 {
                    return Err(request(
                        format!(
                            "the label `{label}` does not fit a YubiKey certificate: 1 to 64 characters"
                        ),
                        "choose a --label of at most 64 characters",
                    ));
                }
                let device = keyring.yubikey(y)?;
                device.check_slot_free(slot, false)?;
                keyring.yubikey_admin(y)?;
                keyring.yubikey_login(y)?;
                Ok(Target::Piv(device, slot))
            }
        }
    }

    /// Something that is the same for two targets on the same token (or slot).
    fn identity(&self) -> String {
        match self {
            Target::Pkcs11(s) => format!(
                "{}|{}|{}",
                s.token().module_path.display(),
                s.token().serial,
                s.token().label
            ),
            Target::Piv(d, slot) => format!("yubikey {} {slot}", d.serial()),
        }
    }

    fn describe(&self) -> String {
        match self {
            Target::Pkcs11(s) => s.token().describe(),
            Target::Piv(d, slot) => format!("slot {slot} of {}", d.describe()),
        }
    }

    fn description(&self, label: &str, id: &[u8], public_key: VerifyingKey) -> KeyDescription {
        match self {
            Target::Pkcs11(s) => KeyDescription::pkcs11(
                &KeyObject {
                    label: label.into(),
                    id: id.to_vec(),
                    public_key,
                },
                s.token(),
            ),
            Target::Piv(d, slot) => KeyDescription {
                uri: d.slot_uri(*slot).to_string(),
                label: label.into(),
                public_key,
                token_label: format!("YubiKey {}", d.firmware()),
                token_serial: d.serial().to_string(),
            },
        }
    }

    fn import(
        &self,
        label: &str,
        id: &[u8],
        key: &MemorySigner,
        piv: PivPolicies,
        notifier: &dyn Notifier,
    ) -> Result<()> {
        match self {
            Target::Pkcs11(s) => s.import_p256_key(label, id, key).map(|_| ()),
            Target::Piv(d, slot) => d
                .import(*slot, label, key, piv.pin, piv.touch, notifier)
                .map(|_| ()),
        }
    }

    /// Takes an import back; says what could not be taken back.
    fn take_back(&self, label: &str, id: &[u8]) -> Option<String> {
        match self {
            Target::Pkcs11(s) => match s.remove_imported(label, id) {
                Ok(_) => None,
                Err(e) => Some(format!("{} (removing it failed: {e})", self.describe())),
            },
            // PIV has no "delete key"; the slot keeps the key until it is overwritten.
            Target::Piv(..) => Some(format!(
                "{} (a PIV slot cannot be emptied: overwrite it with `key generate --force`)",
                self.describe()
            )),
        }
    }
}

/// Opens every token and checks that none is named twice.
fn open_targets(
    keyring: &mut Keyring<'_>,
    uris: &[KeyUri],
    label: &str,
    id: &[u8],
) -> Result<Vec<Target>> {
    if uris.is_empty() {
        return Err(request("no token to put the key into", "give --token URI"));
    }
    let mut targets: Vec<Target> = Vec::with_capacity(uris.len());
    for uri in uris {
        let target = Target::open(keyring, uri, label, id)?;
        if targets.iter().any(|t| t.identity() == target.identity()) {
            return Err(request(
                format!(
                    "{} is named twice; each copy of the key goes into another token",
                    target.describe()
                ),
                "give each token once: --token for the first, --import-to for each other",
            ));
        }
        targets.push(target);
    }
    Ok(targets)
}

/// Imports into every target in order; on a failure takes back the imports before it.
fn import_all(
    targets: &[Target],
    label: &str,
    id: &[u8],
    key: &MemorySigner,
    piv: PivPolicies,
    notifier: &dyn Notifier,
) -> Result<()> {
    for (done, target) in targets.iter().enumerate() {
        if let Err(e) = target.import(label, id, key, piv, notifier) {
            let left: Vec<String> = targets
                .iter()
                .take(done)
                .filter_map(|t| t.take_back(label, id))
                .collect();
            return Err(Error::ImportFailed {
                token: target.describe(),
                reason: e.to_string(),
                left: left.join("; "),
            });
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Backup files

/// What backups to write of a key made or read in memory.
#[derive(Debug)]
pub struct BackupPlan {
    /// One per custodian; with a split, recipient i gets share i.
    pub recipients: Vec<Recipient>,
    /// The backup file; shares go to `PATH.N.age`.
    pub out: PathBuf,
    /// M of an M-of-N split (N = the number of recipients).
    pub split: Option<u8>,
    /// ASCII armor.
    pub armor: bool,
}

struct Encrypted {
    files: Vec<(PathBuf, Vec<u8>)>,
    record: BackupRecord,
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

impl BackupPlan {
    /// Every file this plan writes, absolute. Refuses when one exists already.
    fn paths(&self) -> Result<Vec<PathBuf>> {
        let out = absolute(&self.out)?;
        let mut paths = vec![out.clone()];
        if self.split.is_some() {
            for i in 1..=self.recipients.len() {
                let i = u8::try_from(i).map_err(|_| {
                    request(
                        "a split has at most 255 shares (one per recipient)",
                        "split among at most 255 recipients",
                    )
                })?;
                paths.push(super::share_path(&out, i));
            }
        }
        for path in &paths {
            if path.symlink_metadata().is_ok() {
                return Err(Error::FileExists { path: path.clone() });
            }
        }
        Ok(paths)
    }

    /// Checks what can be checked before any key exists.
    fn check(&self) -> Result<()> {
        if self.recipients.is_empty() {
            return Err(request(
                "a key made or imported in memory needs backups: give --backup-to RECIPIENT (or --backup-passphrase-file F) and --backup-out PATH",
                "each custodian gives you the age1… line `age-keygen` printed; --backup-out names the file",
            ));
        }
        if let Some(m) = self.split {
            if self.recipients.iter().any(Recipient::is_passphrase) {
                return Err(request(
                    "a split goes to age recipients, one per share; a passphrase cannot take a share",
                    "split among age recipients, and make a passphrase backup with a separate command if you want one",
                ));
            }
            let n = self.recipients.len();
            if m < 2 || usize::from(m) > n {
                return Err(request(
                    format!(
                        "a {m}-of-{n} split is not possible: need 2 <= M <= N, one --backup-to recipient per share"
                    ),
                    "give one --backup-to per share: --split 2-of-3 needs three recipients",
                ));
            }
        }
        self.paths().map(|_| ())
    }

    fn encrypt(
        &self,
        backup: &KeyBackup,
        prompter: &SharedPrompter,
        now: UtcTime,
    ) -> Result<Encrypted> {
        let paths = self.paths()?;
        let recipients: Vec<String> = self.recipients.iter().map(Recipient::describe).collect();
        let created = timestamp(now);
        match self.split {
            None => {
                let bytes = super::encrypt_backup(backup, &self.recipients, self.armor, prompter)?;
                let file = paths.into_iter().next().unwrap_or_default();
                Ok(Encrypted {
                    record: BackupRecord {
                        created,
                        file: display(&file),
                        shares: Vec::new(),
                        recipients,
                        split: None,
                        armor: self.armor,
                    },
                    files: vec![(file, bytes)],
                })
            }
            Some(m) => {
                let split = super::split_backup(backup, m, &self.recipients, self.armor, prompter)?;
                let mut paths = paths.into_iter();
                let file = paths.next().unwrap_or_default();
                let share_paths: Vec<PathBuf> = paths.collect();
                let mut files = vec![(file.clone(), split.backup)];
                files.extend(share_paths.iter().cloned().zip(split.shares));
                Ok(Encrypted {
                    record: BackupRecord {
                        created,
                        file: display(&file),
                        shares: share_paths.iter().map(|p| display(p)).collect(),
                        recipients,
                        split: Some(split.split.to_string()),
                        armor: self.armor,
                    },
                    files,
                })
            }
        }
    }
}

/// Writes one new file, mode 0600, durably; never replaces anything.
pub fn write_new_file(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let result = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    let mut file = match result {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::FileExists {
                path: path.to_owned(),
            });
        }
        Err(source) => {
            return Err(Error::Write {
                path: path.to_owned(),
                source,
            });
        }
    };
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    if let Err(source) = written {
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(Error::Write {
            path: path.to_owned(),
            source,
        });
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}

/// Writes all files or none.
fn write_all(files: &[(PathBuf, Vec<u8>)]) -> Result<()> {
    for (done, (path, bytes)) in files.iter().enumerate() {
        if let Err(e) = write_new_file(path, bytes) {
            remove_all(files.iter().take(done).map(|(p, _)| p.as_path()));
            return Err(e);
        }
    }
    Ok(())
}

fn remove_all<'a>(paths: impl Iterator<Item = &'a Path>) {
    for path in paths {
        let _ = std::fs::remove_file(path);
    }
}

// ---------------------------------------------------------------------------------------
// key generate --in-memory

/// `key generate --in-memory`.
#[derive(Debug)]
pub struct GenerateRequest {
    /// The label (CKA_LABEL, and the CN of a YubiKey slot's certificate) on every token.
    pub label: String,
    /// The role.
    pub role: String,
    /// `--token` first, then every `--import-to`.
    pub tokens: Vec<KeyUri>,
    /// The backups.
    pub backup: BackupPlan,
    /// Policies for YubiKey slots.
    pub piv: PivPolicies,
    /// The time.
    pub now: UtcTime,
}

/// What a generation or import did.
#[derive(Debug)]
pub struct Placed {
    /// The inventory entry as recorded.
    pub entry: InventoryKey,
    /// The backup files written (backup file first, then shares).
    pub files: Vec<PathBuf>,
}

/// Makes a P-256 key in memory, writes its encrypted backups, imports it into every token
/// (same label and CKA_ID everywhere, sensitive and non-extractable) and records it with the
/// policy `in-memory-with-backups`. The key is wiped on every path.
pub fn generate_in_memory(
    dir: &TrustDir,
    keyring: &mut Keyring<'_>,
    req: &GenerateRequest,
    prompter: &SharedPrompter,
    notifier: &dyn Notifier,
) -> Result<Placed> {
    check_label(&req.label)?;
    req.backup.check()?;
    let mut inventory = dir.inventory()?;
    let id = TokenSession::fresh_key_id()?;
    let targets = open_targets(keyring, &req.tokens, &req.label, &id)?;
    let key = MemorySigner::generate(&req.label)?;
    let placed = place(
        &mut inventory,
        Placement {
            targets: &targets,
            label: &req.label,
            role: &req.role,
            id: &id,
            key: &key,
            backup: Some(&req.backup),
            policy: KeyPolicy::InMemoryWithBackups,
            imported_from: None,
            piv: req.piv,
            now: req.now,
        },
        prompter,
        notifier,
    )?;
    dir.save_inventory(&inventory)?;
    Ok(placed)
}

fn check_label(label: &str) -> Result<()> {
    if label.is_empty() || label.chars().count() > 128 || label.chars().any(char::is_control) {
        return Err(request(
            "--label must be 1 to 128 printable characters",
            "choose a --label of 1 to 128 printable characters",
        ));
    }
    if label.trim() != label {
        return Err(request(
            "--label must not start or end with a space",
            "remove the spaces around the --label",
        ));
    }
    Ok(())
}

struct Placement<'a> {
    targets: &'a [Target],
    label: &'a str,
    role: &'a str,
    id: &'a [u8],
    key: &'a MemorySigner,
    backup: Option<&'a BackupPlan>,
    policy: KeyPolicy,
    imported_from: Option<String>,
    piv: PivPolicies,
    now: UtcTime,
}

/// Backups, then imports, then the inventory entry (added to `inventory`, not saved).
fn place(
    inventory: &mut Inventory,
    p: Placement<'_>,
    prompter: &SharedPrompter,
    notifier: &dyn Notifier,
) -> Result<Placed> {
    let public_key = *p.key.public_key();
    let descriptions: Vec<KeyDescription> = p
        .targets
        .iter()
        .map(|t| t.description(p.label, p.id, public_key))
        .collect();
    let encrypted = match p.backup {
        Some(plan) => {
            let key = MemorySigner::from_scalar(&p.key.scalar(), p.label)?;
            let backup = KeyBackup::new(
                BackupMetadata {
                    label: p.label.into(),
                    role: p.role.into(),
                    created: timestamp(p.now),
                    tokens: descriptions.iter().map(|d| d.uri.clone()).collect(),
                    x509_key_ids: Vec::new(),
                },
                key,
            )?;
            Some(plan.encrypt(&backup, prompter, p.now)?)
        }
        None => None,
    };
    let files: Vec<PathBuf> = encrypted
        .as_ref()
        .map(|e| e.files.iter().map(|(p, _)| p.clone()).collect())
        .unwrap_or_default();
    if let Some(e) = &encrypted {
        write_all(&e.files)?;
    }
    if let Err(e) = import_all(p.targets, p.label, p.id, p.key, p.piv, notifier) {
        remove_all(files.iter().map(PathBuf::as_path));
        return Err(e);
    }
    let mut entry = match descriptions.first() {
        Some(first) => {
            crate::root::init::inventory_entry(first, Some(p.role), p.now, Some(p.policy))?
        }
        None => return Err(request("no token to put the key into", "give --token URI")),
    };
    let key_id = entry.key_id.clone();
    let copies: Vec<KeyCopy> = descriptions
        .iter()
        .skip(1)
        .map(|d| KeyCopy {
            uri: d.uri.clone(),
            token_label: d.token_label.clone(),
            token_serial: d.token_serial.clone(),
            added: timestamp(p.now),
        })
        .collect();
    // A key already known (the same notary key imported into a second token): keep its
    // record and add the copies.
    if let Some(existing) = inventory.by_key_id(&key_id).cloned() {
        let mut merged = existing;
        let all = std::iter::once(KeyCopy {
            uri: entry.uri.clone(),
            token_label: entry.token_label.clone(),
            token_serial: entry.token_serial.clone(),
            added: timestamp(p.now),
        })
        .chain(copies);
        for copy in all {
            if !merged.uris().any(|u| u == copy.uri) {
                merged.copies.push(copy);
            }
        }
        if merged.policy.is_none() {
            merged.policy = Some(p.policy);
        }
        if merged.imported_from.is_none() {
            merged.imported_from = p.imported_from;
        }
        entry = merged;
    } else {
        entry.copies = copies;
        entry.imported_from = p.imported_from;
    }
    if let Some(e) = encrypted {
        entry.backups.push(e.record);
    }
    inventory.upsert(entry.clone());
    Ok(Placed { entry, files })
}

// ---------------------------------------------------------------------------------------
// Opening backups: drill and restore

/// Reads the files given to `backup verify` / `backup restore` (absolute names).
fn read_files(paths: &[PathBuf]) -> Result<Vec<(String, Vec<u8>)>> {
    if paths.is_empty() {
        return Err(request(
            "give at least one backup FILE",
            "give the backup file (and, for a split backup, M of its share files PATH.N.age)",
        ));
    }
    let mut out = Vec::with_capacity(paths.len());
    for path in paths {
        let abs = absolute(path)?;
        let bytes = crate::trustdir::read(&abs)?;
        out.push((display(&abs), bytes));
    }
    Ok(out)
}

fn open(
    files: &[(String, Vec<u8>)],
    identities: &Identities,
    prompter: &SharedPrompter,
) -> Result<super::Opened> {
    let given: Vec<EncryptedFile<'_>> = files
        .iter()
        .map(|(name, bytes)| EncryptedFile { name, bytes })
        .collect();
    super::open_backup(&given, identities, prompter)
}

/// Reads the backup files `paths` and opens the backup they hold; returns it with the files'
/// names joined by `, ` (for messages about them).
fn read_and_open(
    paths: &[PathBuf],
    identities: &Identities,
    prompter: &SharedPrompter,
) -> Result<(super::Opened, String)> {
    let files = read_files(paths)?;
    let joined = files
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let opened = open(&files, identities, prompter)?;
    Ok((opened, joined))
}

/// The inventory entry of the key a backup holds, checked against the backup.
fn entry_for<'a>(
    inventory: &'a Inventory,
    backup: &KeyBackup,
    files: &str,
) -> Result<&'a InventoryKey> {
    let key_id = backup.key_id();
    let entry = inventory
        .by_key_id(&key_id)
        .ok_or_else(|| Error::NotInInventory {
            what: files.into(),
            key_id: key_id.clone(),
            label: backup.meta.label.clone(),
        })?;
    if entry.public_key != public_b64(backup.public_key())? {
        return Err(Error::Backup {
            file: files.into(),
            problem: super::BackupProblem::Inconsistent(format!(
                "its key has the key ID {key_id} of the inventory's entry but another public key"
            )),
        });
    }
    Ok(entry)
}

/// What a drill found on one token of the key.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenCheck {
    /// The key's URI on the token.
    pub uri: String,
    /// `same` (the token holds this key), `not present` (token absent) or `missing` (the
    /// token is there but the key is not).
    pub state: String,
    /// Why it could not be looked at, for `not present`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What `backup verify` found (a passed drill).
#[derive(Debug)]
pub struct DrillReport {
    /// The key's entry, with the drill recorded.
    pub entry: InventoryKey,
    /// The drill.
    pub drill: DrillRecord,
    /// The split (`M-of-N ID`), if the backup was split.
    pub split: Option<String>,
    /// The tokens of the key, looked at without logging in.
    pub tokens: Vec<TokenCheck>,
}

/// `backup verify`: decrypts in memory, recombines shares, checks the key against the
/// inventory and every token of it that is present (without logging in), wipes, and records
/// the drill (passed, or failed with the reason when the files are known backups of a key).
pub fn verify(
    dir: &TrustDir,
    keyring: &mut Keyring<'_>,
    paths: &[PathBuf],
    identities: &Identities,
    prompter: &SharedPrompter,
    now: UtcTime,
) -> Result<DrillReport> {
    let mut inventory = dir.inventory()?;
    let files = read_files(paths)?;
    let names: Vec<String> = files.iter().map(|(n, _)| n.clone()).collect();
    let joined = names.join(", ");
    let mut record = DrillRecord {
        date: timestamp(now),
        files: names.clone(),
        result: "failed".into(),
        detail: None,
        shares_used: Vec::new(),
    };
    let opened = match open(&files, identities, prompter) {
        Ok(o) => o,
        Err(e) => {
            record.detail = Some(e.to_string());
            let known: Vec<String> = inventory
                .keys
                .iter()
                .filter(|k| names.iter().any(|n| k.has_backup_file(n)))
                .map(|k| k.key_id.clone())
                .collect();
            for key_id in known {
                record_drill(&mut inventory, &key_id, record.clone());
            }
            return save_then(dir, &inventory, e);
        }
    };
    record.shares_used = opened.shares_used.clone();
    let split = opened.backup.split().map(ToString::to_string);
    let entry = match entry_for(&inventory, &opened.backup, &joined) {
        Ok(entry) => entry.clone(),
        Err(e) => {
            if let Error::Backup { .. } = e {
                record.detail = Some(e.to_string());
                record_drill(&mut inventory, &opened.backup.key_id(), record);
            }
            return save_then(dir, &inventory, e);
        }
    };
    let mut tokens = Vec::new();
    for uri in entry.uris() {
        let check = check_token(keyring, uri, opened.backup.public_key());
        match check {
            Ok(c) => tokens.push(c),
            Err(e) => {
                record.detail = Some(e.to_string());
                record_drill(&mut inventory, &entry.key_id, record);
                return save_then(dir, &inventory, e);
            }
        }
    }
    drop(opened);
    record.result = "passed".into();
    record_drill(&mut inventory, &entry.key_id, record.clone());
    dir.save_inventory(&inventory)?;
    let entry = inventory.by_key_id(&entry.key_id).cloned().unwrap_or(entry);
    Ok(DrillReport {
        entry,
        drill: record,
        split,
        tokens,
    })
}

/// Saves the inventory (with a failed drill recorded), then gives `error` back.
fn save_then<T>(dir: &TrustDir, inventory: &Inventory, error: Error) -> Result<T> {
    dir.save_inventory(inventory)?;
    Err(error)
}

fn record_drill(inventory: &mut Inventory, key_id: &str, drill: DrillRecord) {
    if let Some(mut entry) = inventory.by_key_id(key_id).cloned() {
        entry.drills.push(drill);
        inventory.upsert(entry);
    }
}

/// Looks at one token of a key without logging in.
fn check_token(
    keyring: &mut Keyring<'_>,
    uri: &str,
    expected: &VerifyingKey,
) -> Result<TokenCheck> {
    let parsed: KeyUri = uri.parse()?;
    match keyring.public_key(&parsed) {
        Ok(found) if found.public_key == *expected => Ok(TokenCheck {
            uri: uri.into(),
            state: "same".into(),
            detail: None,
        }),
        Ok(found) => Err(Error::TokenKeyDiffers {
            uri: uri.into(),
            found: notary::key_id(&notary::ecdsa_key(&found.public_key)?).to_string(),
            expected: notary::key_id(&notary::ecdsa_key(expected)?).to_string(),
        }),
        Err(Error::KeyNotFound { .. }) => Ok(TokenCheck {
            uri: uri.into(),
            state: "missing".into(),
            detail: Some("the token is present but does not hold the key".into()),
        }),
        Err(e) => Ok(TokenCheck {
            uri: uri.into(),
            state: "not present".into(),
            detail: Some(e.to_string()),
        }),
    }
}

/// `backup restore`.
#[derive(Debug)]
pub struct RestoreRequest {
    /// The backup file, or a split backup file and M shares.
    pub files: Vec<PathBuf>,
    /// The new token (a PKCS#11 token, or a YubiKey slot).
    pub token: KeyUri,
    /// Policies for a YubiKey slot.
    pub piv: PivPolicies,
    /// The time.
    pub now: UtcTime,
}

/// `backup restore`: opens the backup, checks the key is the inventory's, and imports it
/// into a new token with the inventory's label (and CKA_ID, where the key had one), refusing
/// a token that holds that label or ID already. Records the token as a copy.
pub fn restore(
    dir: &TrustDir,
    keyring: &mut Keyring<'_>,
    req: &RestoreRequest,
    identities: &Identities,
    prompter: &SharedPrompter,
    notifier: &dyn Notifier,
) -> Result<Placed> {
    let mut inventory = dir.inventory()?;
    let (opened, joined) = read_and_open(&req.files, identities, prompter)?;
    let entry = entry_for(&inventory, &opened.backup, &joined)?.clone();
    let id = entry
        .uris()
        .filter_map(|u| match u.parse::<KeyUri>() {
            Ok(KeyUri::Pkcs11(p)) => p.id,
            _ => None,
        })
        .next()
        .map_or_else(TokenSession::fresh_key_id, Ok)?;
    let targets = open_targets(keyring, std::slice::from_ref(&req.token), &entry.label, &id)?;
    let role = entry.role.clone().unwrap_or_else(|| "none".into());
    let key = opened.backup.into_key();
    let placed = place(
        &mut inventory,
        Placement {
            targets: &targets,
            label: &entry.label,
            role: &role,
            id: &id,
            key: &key,
            backup: None,
            policy: entry.policy.unwrap_or(KeyPolicy::InMemoryWithBackups),
            imported_from: None,
            piv: req.piv,
            now: req.now,
        },
        prompter,
        notifier,
    )?;
    dir.save_inventory(&inventory)?;
    Ok(placed)
}

// ---------------------------------------------------------------------------------------
// Migration from docker trust / notary

/// The key files of a docker or notary trust directory: `DIR/private/*.key` (or `DIR/*.key`
/// when DIR is the `private` folder itself). Refuses notary's pre-0.4 layout.
pub fn notary_key_files(trust: &Path) -> Result<Vec<PathBuf>> {
    let private = trust.join("private");
    let folder = if private.is_dir() {
        private
    } else {
        trust.to_owned()
    };
    for legacy in ["root_keys", "tuf_keys"] {
        if folder.join(legacy).exists() {
            return Err(Error::NotaryKey {
                file: display(&folder.join(legacy)),
                problem: super::notary_key::NotaryKeyProblem::LegacyEncryption,
            });
        }
    }
    let entries = std::fs::read_dir(&folder).map_err(|source| Error::Read {
        path: folder.clone(),
        source,
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| Error::Read {
            path: folder.clone(),
            source,
        })?;
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "key") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(request(
            format!("{} holds no key files (*.key)", folder.display()),
            "give the folder that holds private/ (e.g. ~/.docker/trust or ~/.notary), or the key files themselves",
        ));
    }
    Ok(files)
}

/// The `role:` header of a PEM key file, read without decrypting.
fn role_header(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    text.lines()
        .skip_while(|l| !l.starts_with("-----BEGIN "))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix("role: "))
        .map(|r| r.trim().to_owned())
}

/// `key import`.
#[derive(Debug)]
pub struct NotaryImportRequest {
    /// The key files.
    pub files: Vec<PathBuf>,
    /// The token.
    pub token: KeyUri,
    /// Passphrases to try on each encrypted file, in order (then the prompter is asked).
    pub passphrases: Vec<Pin>,
    /// The label for a single key (default `ROLE-KEYID8`).
    pub label: Option<String>,
    /// Backups to write of a single key, if any.
    pub backup: Option<BackupPlan>,
    /// Policies for a YubiKey slot.
    pub piv: PivPolicies,
    /// The time.
    pub now: UtcTime,
}

/// One key `key import` read.
#[derive(Debug)]
pub struct Imported {
    /// The file.
    pub file: PathBuf,
    /// Its role header.
    pub role: Option<String>,
    /// What was done.
    pub placed: Placed,
}

/// `key import`: reads notary / docker trust key files (asking for passphrases), imports each
/// key into the token as sensitive and non-extractable, and records it as `imported`. All
/// files are decrypted and the token checked before the first import; a failed import takes
/// back the ones before it.
pub fn import_notary(
    dir: &TrustDir,
    keyring: &mut Keyring<'_>,
    req: &NotaryImportRequest,
    ask: &dyn Prompter,
    prompter: &SharedPrompter,
    notifier: &dyn Notifier,
) -> Result<Vec<Imported>> {
    if req.files.is_empty() {
        return Err(request(
            "no key file to import",
            "give a key file (~/.docker/trust/private/*.key) or a trust folder",
        ));
    }
    if req.files.len() > 1 && (req.label.is_some() || req.backup.is_some()) {
        return Err(request(
            "--label and backups apply to one key file at a time",
            "import one file when you give --label or backup options",
        ));
    }
    if req.files.len() > 1 && matches!(req.token, KeyUri::YubiKey(_)) {
        return Err(request(
            "a YubiKey slot takes one key: import one file per slot",
            "import one key file per command into a YubiKey slot, or import into a PKCS#11 token",
        ));
    }
    if let Some(plan) = &req.backup {
        plan.check()?;
    }
    let mut keys = Vec::with_capacity(req.files.len());
    for path in &req.files {
        let abs = absolute(path)?;
        let name = display(&abs);
        let bytes = crate::trustdir::read(&abs)?;
        let role = role_header(&bytes);
        let key = read_notary_key(&name, &bytes, role.as_deref(), &req.passphrases, ask)?;
        keys.push((abs, role, key));
    }
    let mut inventory = dir.inventory()?;
    let mut plans = Vec::with_capacity(keys.len());
    for (abs, role, key) in &keys {
        let key_id = key.key_id();
        let label = match &req.label {
            Some(l) => l.clone(),
            None => format!(
                "{}-{}",
                role.as_deref().unwrap_or("key").replace('/', "-"),
                key_id.get(..8).unwrap_or(&key_id)
            ),
        };
        check_label(&label)?;
        let id = TokenSession::fresh_key_id()?;
        let targets = open_targets(keyring, std::slice::from_ref(&req.token), &label, &id)?;
        plans.push((abs, role, key, label, id, targets));
    }
    let mut done: Vec<Imported> = Vec::with_capacity(plans.len());
    for (abs, role, key, label, id, targets) in &plans {
        let result = place(
            &mut inventory,
            Placement {
                targets,
                label,
                role: role.as_deref().unwrap_or("none"),
                id,
                key: key.key(),
                backup: req.backup.as_ref(),
                policy: KeyPolicy::Imported,
                imported_from: Some(display(abs)),
                piv: req.piv,
                now: req.now,
            },
            prompter,
            notifier,
        );
        match result {
            Ok(placed) => done.push(Imported {
                file: (*abs).clone(),
                role: (*role).clone(),
                placed,
            }),
            Err(e) => {
                // Take back what this command imported before, so that it did nothing.
                for ((_, _, _, label, id, targets), _) in plans.iter().zip(&done) {
                    for t in targets.iter() {
                        let _ = t.take_back(label, id);
                    }
                }
                for d in &done {
                    remove_all(d.placed.files.iter().map(PathBuf::as_path));
                }
                return Err(e);
            }
        }
    }
    dir.save_inventory(&inventory)?;
    Ok(done)
}

fn read_notary_key(
    name: &str,
    bytes: &[u8],
    role: Option<&str>,
    passphrases: &[Pin],
    ask: &dyn Prompter,
) -> Result<super::notary_key::NotaryKey> {
    use super::notary_key::{self, NotaryKeyProblem};
    if !notary_key::is_encrypted(name, bytes)? {
        return notary_key::read(name, bytes, None);
    }
    let wrong = |e: &Error| {
        matches!(
            e,
            Error::NotaryKey {
                problem: NotaryKeyProblem::WrongPassphrase,
                ..
            }
        )
    };
    let mut last = None;
    for passphrase in passphrases {
        match notary_key::read(name, bytes, Some(passphrase)) {
            Ok(key) => return Ok(key),
            Err(e) if wrong(&e) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    if let Some(e) = last {
        return Err(e);
    }
    let prompt = format!(
        "Passphrase of {name} (role {})",
        role.unwrap_or("not named")
    );
    match ask.secret(&prompt)? {
        Some(passphrase) => notary_key::read(name, bytes, Some(&passphrase)),
        None => Err(Error::NotaryKey {
            file: name.into(),
            problem: NotaryKeyProblem::NeedsPassphrase,
        }),
    }
}

// ---------------------------------------------------------------------------------------
// key export-notary

/// `key export-notary`.
#[derive(Debug)]
pub struct ExportRequest {
    /// The key: its key ID, label or URI in the inventory.
    pub key: String,
    /// The backup files to take it from (default: the one unsplit backup recorded).
    pub files: Vec<PathBuf>,
    /// The role written (default: the inventory's).
    pub role: Option<String>,
    /// The GUN, for targets and snapshot keys.
    pub gun: Option<String>,
    /// `--allow-root`.
    pub allow_root: bool,
    /// The passphrase of the new file (at least 8 characters).
    pub passphrase: Pin,
    /// The new file.
    pub out: PathBuf,
}

/// What `key export-notary` wrote.
#[derive(Debug)]
pub struct Exported {
    /// The key's entry.
    pub entry: InventoryKey,
    /// The role written.
    pub role: String,
    /// The file written.
    pub out: PathBuf,
}

/// Finds an inventory entry by key ID, URI or label.
pub fn find_key<'a>(inventory: &'a Inventory, key: &str) -> Result<&'a InventoryKey> {
    if let Some(entry) = inventory.by_key_id(key) {
        return Ok(entry);
    }
    let bare = |u: &str| match u.parse::<KeyUri>() {
        Ok(KeyUri::Pkcs11(p)) => p.without_pin_source().to_string(),
        Ok(KeyUri::YubiKey(y)) => y.without_sources().to_string(),
        Err(_) => u.to_owned(),
    };
    let wanted = bare(key);
    let by_uri: Vec<&InventoryKey> = inventory
        .keys
        .iter()
        .filter(|k| k.uris().any(|u| bare(u) == wanted))
        .collect();
    if let [one] = by_uri.as_slice() {
        return Ok(one);
    }
    let by_label: Vec<&InventoryKey> = inventory.keys.iter().filter(|k| k.label == key).collect();
    match by_label.as_slice() {
        [one] => Ok(one),
        [] => Err(request(
            format!(
                "no key `{}` in the inventory (give its key ID, URI or label; `rootkeeper key list` shows them)",
                crate::text::escape_untrusted(key)
            ),
            "`rootkeeper key list` shows every key ID, URI and label",
        )),
        _ => Err(request(
            format!(
                "several keys are labelled `{}`: give the key ID",
                crate::text::escape_untrusted(key)
            ),
            "`rootkeeper key list` shows each key ID",
        )),
    }
}

/// `key export-notary`: writes a key whose backup rootkeeper holds as notary's own encrypted
/// key file (mode 0600), for a CI machine that signs with docker or notary. Only for keys
/// that existed outside hardware (policies `in-memory-with-backups` and `imported`), taken
/// from their backup; root keys only with `allow_root`; never timestamp keys.
pub fn export_notary(
    dir: &TrustDir,
    req: &ExportRequest,
    identities: &Identities,
    prompter: &SharedPrompter,
) -> Result<Exported> {
    let inventory = dir.inventory()?;
    let entry = find_key(&inventory, &req.key)?.clone();
    let refuse = |reason: String| Error::ExportRefused {
        key: format!("{} (`{}`)", entry.key_id, entry.label),
        reason,
    };
    match entry.policy {
        Some(p) if p.has_existed_outside() => {}
        Some(p) => {
            return Err(refuse(format!(
                "its policy is {}: it was made inside its token and never leaves it",
                p.as_str()
            )));
        }
        None => {
            return Err(refuse(
                "the inventory records no backup policy for it (made inside a token before policies were recorded)".into(),
            ));
        }
    }
    let role = req
        .role
        .clone()
        .or_else(|| entry.role.clone())
        .ok_or_else(|| {
            request(
                "the inventory names no role for this key: give --role (e.g. a docker signer name)",
                "give --role NAME (e.g. targets, or a docker signer name)",
            )
        })?;
    if role == "root" && !req.allow_root {
        return Err(refuse(
            "it is a root key; a root key in a file on a CI machine is a root anyone there can sign with".into(),
        ));
    }
    let files = if req.files.is_empty() {
        let plain: Vec<&BackupRecord> =
            entry.backups.iter().filter(|b| b.split.is_none()).collect();
        match plain.as_slice() {
            [one] => vec![PathBuf::from(&one.file)],
            _ => {
                return Err(request(
                    "say which backup to take the key from: --from FILE (a split backup: the backup file and M shares)",
                    "give --from FILE (the backup file, and for a split backup M share files) and --identity FILE",
                ));
            }
        }
    } else {
        req.files.clone()
    };
    let out = absolute(&req.out)?;
    if out.symlink_metadata().is_ok() {
        return Err(Error::FileExists { path: out });
    }
    let (opened, joined) = read_and_open(&files, identities, prompter)?;
    if opened.backup.key_id() != entry.key_id {
        return Err(Error::Backup {
            file: joined,
            problem: super::BackupProblem::WrongKey {
                expected: entry.key_id.clone(),
                found: opened.backup.key_id(),
            },
        });
    }
    entry_for(&inventory, &opened.backup, &joined)?;
    let gun = match role.as_str() {
        "targets" | "snapshot" => Some(req.gun.clone().ok_or_else(|| {
            request(
                format!("a {role} key file names its repository: give --gun GUN"),
                "give --gun GUN, the repository the key signs for",
            )
        })?),
        _ => None,
    };
    let pem = super::notary_key::write_key_file(
        opened.backup.key(),
        &role,
        gun.as_deref(),
        &req.passphrase,
        req.allow_root,
    )?;
    write_new_file(&out, pem.as_bytes())?;
    Ok(Exported { entry, role, out })
}
