//! Encrypted offline key backups that a custodian can recover with stock Debian tools.
//!
//! - [`document`]: what a backup decrypts to: metadata lines and a standard unencrypted
//!   PKCS#8 PEM block (`age -d … | openssl pkey` reads it).
//! - [`crypt`]: age encryption to X25519, scrypt-passphrase and plugin recipients, binary or
//!   ASCII-armored; decryption in memory with one error per way a file fails.
//! - [`split`]: M-of-N: the backup is encrypted to a fresh X25519 identity and only that
//!   identity is split, GF(256) Shamir as Debian's `gfsplit`/`gfcombine`; share i is
//!   encrypted to recipient i alone.
//! - [`notary_key`]: notary / docker trust private key files, read and written.
//!
//! Nothing here writes a file: callers get ciphertext bytes and write them; plaintexts exist
//! only in zeroizing buffers in a process that cannot dump core.

pub mod crypt;
pub mod custody;
pub mod document;
pub mod notary_key;
mod shamir;
pub mod split;

use std::path::{Path, PathBuf};

pub use crypt::{Identities, Recipient, SharedPrompter};
pub use document::{BackupMetadata, KeyBackup, SplitInfo};

use crate::backend::memory::CoreDumpGuard;
use crate::error::{Error, Result};

/// Why a backup, a share or a set of shares failed. Each has its own one-line message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BackupProblem {
    /// Not an age file at all.
    #[error("is not an age-encrypted file")]
    NotAge,
    /// An age file of a version this age library does not know.
    #[error("is an age file of an unknown version")]
    UnknownAgeVersion,
    /// The file ends early.
    #[error("is truncated: it is shorter than rootkeeper wrote it")]
    Truncated,
    /// Authentication failed: the file was altered or damaged.
    #[error("has been altered or damaged ({0}); it was not decrypted")]
    Tampered(String),
    /// None of the identities decrypts it.
    #[error("none of the given identities can decrypt it")]
    WrongIdentity,
    /// Passphrase-encrypted and the passphrase is wrong.
    #[error("the passphrase is wrong")]
    WrongPassphrase,
    /// Passphrase-encrypted and no passphrase given.
    #[error("is encrypted to a passphrase, and no passphrase was given")]
    NeedsPassphrase,
    /// The scrypt work factor is beyond the limit.
    #[error("asks for scrypt work factor 2^{0}, beyond the limit of 2^22")]
    ExcessiveWork(u8),
    /// An age plugin failed.
    #[error("the age plugin failed: {0}")]
    Plugin(String),
    /// An age plugin binary is missing.
    #[error("{0}")]
    PluginMissing(String),
    /// Decrypts, but to a document that does not parse.
    #[error("decrypts, but is not a valid rootkeeper backup document: {0}")]
    Document(String),
    /// Decrypts, but to something that is not a rootkeeper document.
    #[error("decrypts, but is not a rootkeeper backup: it {0}")]
    NotOurs(String),
    /// The document's fields contradict each other or its key.
    #[error("is inconsistent: {0}")]
    Inconsistent(String),
    /// The backup holds another key than expected.
    #[error("holds key {found}, not the expected key {expected}")]
    WrongKey {
        /// The expected key ID.
        expected: String,
        /// The key ID in the backup.
        found: String,
    },
    /// Fewer shares than the threshold.
    #[error("{have} share(s) given{detail}; {need} are needed")]
    TooFewShares {
        /// Shares given (decrypted).
        have: usize,
        /// The threshold M.
        need: usize,
        /// Which split, and files that could not be decrypted.
        detail: String,
    },
    /// The same share twice.
    #[error("share {0} is given twice")]
    DuplicateShare(u8),
    /// Shares of two different keys.
    #[error("are shares of two different keys: {a} and {b}")]
    MixedKeys {
        /// One key (ID and label).
        a: String,
        /// The other.
        b: String,
    },
    /// Shares of two different splits of the same key.
    #[error("are shares of two different splits of key `{key}`: {a} and {b}")]
    MixedSplits {
        /// The key's label.
        key: String,
        /// One split ID.
        a: String,
        /// The other.
        b: String,
    },
    /// The backup does not belong to the shares' split.
    #[error("is not the backup of split {split}: {reason}")]
    NotThisSplit {
        /// The shares' split ID.
        split: String,
        /// What does not match.
        reason: String,
    },
    /// Shares but no backup file, or a backup and shares that do not go together.
    #[error("{0}")]
    FileSet(String),
    /// A recipient string is not usable.
    #[error("{0}")]
    Recipient(String),
    /// An identity file is not usable.
    #[error("{0}")]
    Identity(String),
    /// A passphrase was mixed with other recipients.
    #[error("a passphrase must be the only recipient of a backup (age allows no other)")]
    MixedPassphrase,
    /// No recipients.
    #[error("no recipients to encrypt to")]
    NoRecipients,
    /// Encryption failed.
    #[error("encryption failed: {0}")]
    Encrypt(String),
}

impl BackupProblem {
    /// What the operator should do next.
    pub fn hint(&self) -> &'static str {
        match self {
            BackupProblem::NotAge
            | BackupProblem::UnknownAgeVersion
            | BackupProblem::NotOurs(_) => {
                "check that this is the backup file (or a share of it) and not another file"
            }
            BackupProblem::Truncated => {
                "the copy is incomplete; take another copy of the file (every custodian's copy is the same)"
            }
            BackupProblem::Tampered(_) => {
                "do not trust this copy: take another copy, and find out who or what changed this one"
            }
            BackupProblem::WrongIdentity => {
                "give the identity (--identity FILE) of a recipient this file was encrypted to; `age-keygen -y FILE` prints an identity's recipient"
            }
            BackupProblem::WrongPassphrase => {
                "nothing was decrypted; check the passphrase (it is case-sensitive) and try again"
            }
            BackupProblem::NeedsPassphrase => "give the backup passphrase (--passphrase-file F)",
            BackupProblem::ExcessiveWork(_) => {
                "rootkeeper writes work factor 2^18; a file that asks for more was not written by rootkeeper"
            }
            BackupProblem::Plugin(_) => {
                "check that the plugin's token (e.g. the YubiKey) is plugged in and that its PIN and touch were given"
            }
            BackupProblem::PluginMissing(_) => {
                "install the age plugin named in the recipient (e.g. age-plugin-yubikey) on PATH"
            }
            BackupProblem::Document(_) | BackupProblem::Inconsistent(_) => {
                "the file decrypted but its contents are wrong; do not use it, and try another copy"
            }
            BackupProblem::WrongKey { .. } => {
                "this backup is of another key; find the backup whose key ID matches the inventory"
            }
            BackupProblem::TooFewShares { .. } => {
                "bring more custodians: each decrypts their own share with their identity"
            }
            BackupProblem::DuplicateShare(_) => "give each share file once",
            BackupProblem::MixedKeys { .. } => {
                "these shares belong to backups of different keys; give only the shares of one key"
            }
            BackupProblem::MixedSplits { .. } => {
                "the key was split more than once; give shares (and the backup) of one split only"
            }
            BackupProblem::NotThisSplit { .. } | BackupProblem::FileSet(_) => {
                "give the backup file PATH together with share files PATH.N.age of the same split"
            }
            BackupProblem::Recipient(_) => {
                "a recipient looks like age1… (age-keygen) or age1yubikey1… (age-plugin-yubikey)"
            }
            BackupProblem::Identity(_) => {
                "an identity file holds AGE-SECRET-KEY-1… lines (age-keygen) or AGE-PLUGIN-… lines"
            }
            BackupProblem::MixedPassphrase => {
                "make the passphrase backup a separate file, or split among recipients instead"
            }
            BackupProblem::NoRecipients => "give at least one --backup-to recipient",
            BackupProblem::Encrypt(_) => "nothing was written; check the recipients",
        }
    }
}

fn problem(file: &str, problem: BackupProblem) -> Error {
    Error::Backup {
        file: file.into(),
        problem,
    }
}

/// Encrypts `backup` as one file to all `recipients` (a passphrase only alone).
pub fn encrypt_backup(
    backup: &KeyBackup,
    recipients: &[Recipient],
    armor: bool,
    prompter: &SharedPrompter,
) -> Result<Vec<u8>> {
    let text = backup.to_text()?;
    crypt::encrypt(&text, recipients, armor, prompter)
        .map_err(|p| problem(&format!("backup of `{}`", backup.meta.label), p))
}

/// An M-of-N split backup: the backup encrypted to the split identity, and N shares.
#[derive(Debug, Clone)]
pub struct SplitBackup {
    /// The split's ID and M-of-N.
    pub split: SplitInfo,
    /// The split identity's recipient (public).
    pub identity_recipient: String,
    /// The backup file, encrypted to the split identity.
    pub backup: Vec<u8>,
    /// Share files: `shares[i]` is share i+1, encrypted to recipient i+1 only.
    pub shares: Vec<Vec<u8>>,
}

/// Splits `backup` M-of-N over `recipients` (N = their number, share i to recipient i).
/// Every M-subset is checked to recombine, and the backup to decrypt with the identity,
/// before anything is returned.
pub fn split_backup(
    backup: &KeyBackup,
    threshold: u8,
    recipients: &[Recipient],
    armor: bool,
    prompter: &SharedPrompter,
) -> Result<SplitBackup> {
    let _no_core_dumps = CoreDumpGuard::acquire()?;
    let what = format!("split backup of `{}`", backup.meta.label);
    let count = u8::try_from(recipients.len())
        .ok()
        .filter(|&n| n >= threshold && threshold >= 2)
        .ok_or_else(|| {
            Error::Invalid(format!(
                "a {threshold}-of-{} split is not possible: need 2 <= M <= N <= 255, one recipient per share",
                recipients.len()
            ))
        })?;
    let mut id = [0u8; 16];
    getrandom::fill(&mut id)
        .map_err(|e| Error::Invalid(format!("no randomness from the operating system: {e}")))?;
    let split = SplitInfo {
        id: hex::encode(id),
        threshold,
        count,
    };
    let (identity, secret) = crypt::fresh_identity();
    let identity_recipient = identity.to_public().to_string();
    let text = backup.to_text_with(Some(&split))?;
    let backup_file = crypt::encrypt(
        &text,
        &[Recipient::from_x25519(identity.to_public())],
        armor,
        prompter,
    )
    .map_err(|p| problem(&what, p))?;
    // Round trip before anything leaves: the identity opens the backup to the same text.
    let mut ids = Identities::new();
    ids.add_x25519(identity);
    let back = crypt::decrypt(&backup_file, &ids, prompter).map_err(|p| problem(&what, p))?;
    if back.get(..text.len()) != Some(text.as_bytes()) {
        return Err(Error::Invalid(format!(
            "{what}: the backup does not decrypt to itself (a bug): nothing was written"
        )));
    }
    let docs = split::make_shares(backup, &split, &secret, &identity_recipient)?;
    let mut shares = Vec::with_capacity(docs.len());
    for (doc, recipient) in docs.iter().zip(recipients) {
        let file = crypt::encrypt(
            &doc.to_text(),
            std::slice::from_ref(recipient),
            armor,
            prompter,
        )
        .map_err(|p| problem(&format!("share {} of {what}", doc.index), p))?;
        shares.push(file);
    }
    Ok(SplitBackup {
        split,
        identity_recipient,
        backup: backup_file,
        shares,
    })
}

/// Where share `index` of a backup written to `path` goes: `PATH.N.age`.
pub fn share_path(path: &Path, index: u8) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{index}.age"));
    PathBuf::from(name)
}

/// An encrypted file given to [`open_backup`].
#[derive(Debug, Clone, Copy)]
pub struct EncryptedFile<'a> {
    /// Its name, for messages.
    pub name: &'a str,
    /// Its bytes.
    pub bytes: &'a [u8],
}

/// What [`open_backup`] found.
#[derive(Debug)]
pub struct Opened {
    /// The backup, with its key, in memory.
    pub backup: KeyBackup,
    /// The share numbers that recombined the split identity (empty without a split).
    pub shares_used: Vec<u8>,
}

/// Decrypts a backup in memory: one backup file, or a split backup file with at least M of
/// its shares (in any order). Every failure names its file and has its own message.
pub fn open_backup(
    files: &[EncryptedFile<'_>],
    identities: &Identities,
    prompter: &SharedPrompter,
) -> Result<Opened> {
    // Before any plaintext exists in this process.
    let _no_core_dumps = CoreDumpGuard::acquire()?;
    if files.is_empty() {
        return Err(Error::Invalid("no backup file given".into()));
    }
    let mut backups: Vec<(&str, KeyBackup)> = Vec::new();
    let mut shares: Vec<(String, split::ShareDoc)> = Vec::new();
    let mut locked: Vec<&EncryptedFile<'_>> = Vec::new();
    for file in files {
        match crypt::decrypt(file.bytes, identities, prompter) {
            Ok(plain) if split::is_share(&plain) => {
                let doc = split::ShareDoc::parse(&plain).map_err(|p| problem(file.name, p))?;
                shares.push((file.name.to_owned(), doc));
            }
            Ok(plain) => {
                let backup = KeyBackup::parse(&plain).map_err(|p| problem(file.name, p))?;
                backups.push((file.name, backup));
            }
            Err(BackupProblem::WrongIdentity) => locked.push(file),
            Err(p) => return Err(problem(file.name, p)),
        }
    }
    let names =
        |fs: &[&EncryptedFile<'_>]| fs.iter().map(|f| f.name).collect::<Vec<_>>().join(", ");
    if shares.is_empty() {
        return match (backups.len(), locked.first()) {
            (0, Some(first)) => Err(problem(first.name, BackupProblem::WrongIdentity)),
            (1, None) => match backups.pop() {
                Some((_, backup)) => Ok(Opened {
                    backup,
                    shares_used: Vec::new(),
                }),
                None => Err(Error::Invalid("no backup file given".into())),
            },
            (1, Some(first)) => Err(problem(first.name, BackupProblem::WrongIdentity)),
            _ => Err(problem(
                &backups
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", "),
                BackupProblem::FileSet(
                    "are several backups; give one backup (and its shares) at a time".into(),
                ),
            )),
        };
    }
    let share_names = shares
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let (split, identity) = split::recombine(&shares).map_err(|p| {
        let p = match p {
            BackupProblem::TooFewShares { have, need, detail } if !locked.is_empty() => {
                BackupProblem::TooFewShares {
                    have,
                    need,
                    detail: format!(
                        "{detail} (not decrypted with the given identities: {})",
                        names(&locked)
                    ),
                }
            }
            other => other,
        };
        problem(&share_names, p)
    })?;
    let shares_used: Vec<u8> = shares.iter().map(|(_, s)| s.index).collect();
    let first_share = shares.first().map(|(_, s)| s);
    let backup = match (backups.pop(), locked.as_slice()) {
        (Some((name, backup)), []) => (name, backup),
        (None, [one]) => {
            let mut ids = Identities::new();
            ids.add_x25519(identity);
            let plain = crypt::decrypt(one.bytes, &ids, prompter).map_err(|p| match p {
                BackupProblem::WrongIdentity => problem(
                    one.name,
                    BackupProblem::NotThisSplit {
                        split: split.id.clone(),
                        reason: "the split identity does not decrypt it".into(),
                    },
                ),
                other => problem(one.name, other),
            })?;
            if split::is_share(&plain) {
                return Err(problem(
                    one.name,
                    BackupProblem::FileSet("is a share, not the backup file".into()),
                ));
            }
            (
                one.name,
                KeyBackup::parse(&plain).map_err(|p| problem(one.name, p))?,
            )
        }
        (None, []) => {
            return Err(problem(
                &share_names,
                BackupProblem::FileSet(format!(
                    "recombine split {}, but no backup file was given: add PATH (the file without .N.age)",
                    split.id
                )),
            ));
        }
        (_, more) => {
            return Err(problem(
                &names(more),
                BackupProblem::FileSet(
                    "could not be decrypted with the given identities (only one backup file may be locked by the split)".into(),
                ),
            ));
        }
    };
    let (name, backup) = backup;
    if backup.split().map(|s| &s.id) != Some(&split.id) {
        return Err(problem(
            name,
            BackupProblem::NotThisSplit {
                split: split.id.clone(),
                reason: "its document names another split".into(),
            },
        ));
    }
    if first_share.map(|s| s.key_id.as_str()) != Some(backup.key_id().as_str()) {
        return Err(problem(
            name,
            BackupProblem::NotThisSplit {
                split: split.id.clone(),
                reason: "it holds another key than the shares name".into(),
            },
        ));
    }
    Ok(Opened {
        backup,
        shares_used,
    })
}

#[cfg(test)]
mod tests;
