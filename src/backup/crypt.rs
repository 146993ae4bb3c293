//! age encryption and decryption, in memory, with a typed error for each way a file can fail.
//! No age type leaves this module.
//!
//! Only what Debian's `age` 1.1 decrypts is written: X25519 (`age1…`), scrypt passphrases
//! (alone, as age requires) and plugin recipients (`age1yubikey1…`, through the plugin binary
//! on `PATH`). Plaintexts are padded with newlines to a multiple of [`PAD`] bytes (both
//! document formats allow trailing newlines), which hides the exact length and lets a failed
//! file be called truncated (its length is off the grid) rather than altered (same length,
//! authentication fails).

use std::io::{Read, Write};
use std::sync::Arc;

use age::secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::BackupProblem;
use super::document::MAX_DOCUMENT;
use crate::secret::{Pin, Prompter};

/// Plaintexts are padded to a multiple of this many bytes.
pub const PAD: usize = 1024;
/// The scrypt work factor written (log2 N; 18 is what the age CLI writes).
pub const SCRYPT_LOG_N: u8 = 18;
/// The largest scrypt work factor accepted when decrypting.
pub const SCRYPT_MAX_LOG_N: u8 = 22;
/// The shortest passphrase accepted for a new backup.
pub const MIN_PASSPHRASE: usize = 8;

const BINARY_MAGIC: &[u8] = b"age-encryption.org/v1\n";
const ANY_VERSION: &[u8] = b"age-encryption.org/";
const ARMOR_BEGIN: &str = "-----BEGIN AGE ENCRYPTED FILE-----";
const ARMOR_END: &str = "-----END AGE ENCRYPTED FILE-----";
const TAG: usize = 16;
const NONCE: usize = 16;

/// A prompter that age plugins may use from their own threads.
pub type SharedPrompter = Arc<dyn Prompter + Send + Sync>;

#[derive(Clone)]
struct PluginCallbacks(SharedPrompter);

impl age::Callbacks for PluginCallbacks {
    fn display_message(&self, message: &str) {
        self.0.notifier().notice(&crate::notice::Notice::Plugin {
            message: message.to_owned(),
        });
    }
    fn confirm(&self, _message: &str, _yes: &str, _no: Option<&str>) -> Option<bool> {
        None
    }
    fn request_public_string(&self, _description: &str) -> Option<String> {
        None
    }
    fn request_passphrase(&self, description: &str) -> Option<SecretString> {
        match self.0.secret(description) {
            Ok(Some(pin)) => Some(SecretString::from(pin.expose().to_owned())),
            _ => None,
        }
    }
}

enum RecipientKind {
    X25519(age::x25519::Recipient, String),
    Plugin(age::plugin::Recipient),
    Passphrase(Pin),
}

/// Whom a backup or share is encrypted to.
pub struct Recipient(RecipientKind);

impl std::fmt::Debug for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Recipient({})", self.describe())
    }
}

impl Recipient {
    /// An age recipient string: X25519 `age1…` or a plugin's `age1NAME1…`. SSH keys and
    /// age 1.3's tag and post-quantum types are refused: Debian's age cannot decrypt them.
    pub fn parse(s: &str) -> crate::Result<Recipient> {
        let s = s.trim();
        let bad = |reason: &str| crate::Error::Backup {
            file: format!("recipient `{s}`"),
            problem: BackupProblem::Recipient(reason.into()),
        };
        if let Ok(r) = s.parse::<age::x25519::Recipient>() {
            return Ok(Recipient(RecipientKind::X25519(r, s.to_owned())));
        }
        if s.starts_with("ssh-") || s.starts_with("ecdsa-") {
            return Err(bad("SSH recipients are not accepted for key backups"));
        }
        match s.parse::<age::plugin::Recipient>() {
            Ok(r) if matches!(r.plugin(), "tag" | "tagpq" | "pq") => Err(bad(
                "age 1.3 tag and post-quantum recipients cannot be decrypted by Debian's age",
            )),
            Ok(r) => Ok(Recipient(RecipientKind::Plugin(r))),
            Err(_) => Err(bad("not an age recipient (age1…)")),
        }
    }

    /// A passphrase (scrypt). It must be the only recipient of a file.
    pub fn passphrase(passphrase: Pin) -> crate::Result<Recipient> {
        if passphrase.expose().chars().count() < MIN_PASSPHRASE {
            return Err(crate::Error::Backup {
                file: "the backup passphrase".into(),
                problem: BackupProblem::Recipient(format!(
                    "shorter than {MIN_PASSPHRASE} characters"
                )),
            });
        }
        Ok(Recipient(RecipientKind::Passphrase(passphrase)))
    }

    /// The X25519 recipient of an identity made here (for splits).
    pub(crate) fn from_x25519(r: age::x25519::Recipient) -> Recipient {
        let s = r.to_string();
        Recipient(RecipientKind::X25519(r, s))
    }

    /// Whether this is a passphrase.
    pub fn is_passphrase(&self) -> bool {
        matches!(self.0, RecipientKind::Passphrase(_))
    }

    /// The recipient string, or `passphrase`.
    pub fn describe(&self) -> String {
        match &self.0 {
            RecipientKind::X25519(_, s) => s.clone(),
            RecipientKind::Plugin(r) => r.to_string(),
            RecipientKind::Passphrase(_) => "passphrase".into(),
        }
    }
}

/// The identities that may decrypt: age identity files and a passphrase.
#[derive(Default)]
pub struct Identities {
    x25519: Vec<age::x25519::Identity>,
    plugins: Vec<age::plugin::Identity>,
    passphrase: Option<Pin>,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identities")
            .field("x25519", &self.x25519.len())
            .field("plugins", &self.plugins.len())
            .field("passphrase", &self.passphrase.is_some())
            .finish()
    }
}

impl Identities {
    /// No identities yet.
    pub fn new() -> Identities {
        Identities::default()
    }

    /// Adds the identities of an age identity file (`AGE-SECRET-KEY-1…` and
    /// `AGE-PLUGIN-…` lines; `#` comments and blank lines are skipped). `origin` names the
    /// file in errors; no line of it is ever quoted.
    pub fn add_identity_file(&mut self, origin: &str, text: &str) -> crate::Result<()> {
        let bad = |reason: String| crate::Error::Backup {
            file: origin.into(),
            problem: BackupProblem::Identity(reason),
        };
        let before = self.x25519.len().saturating_add(self.plugins.len());
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            let n = i.saturating_add(1);
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.starts_with("AGE-SECRET-KEY-1") {
                let id = line
                    .parse::<age::x25519::Identity>()
                    .map_err(|_| bad(format!("line {n} is not a valid X25519 identity")))?;
                self.x25519.push(id);
            } else if line.starts_with("AGE-PLUGIN-") {
                let id = line
                    .parse::<age::plugin::Identity>()
                    .map_err(|_| bad(format!("line {n} is not a valid plugin identity")))?;
                self.plugins.push(id);
            } else {
                return Err(bad(format!(
                    "line {n} is not an age identity (passphrase-protected and SSH identities are not supported)"
                )));
            }
        }
        if self.x25519.len().saturating_add(self.plugins.len()) == before {
            return Err(bad("holds no identity".into()));
        }
        Ok(())
    }

    /// Adds a passphrase, tried on passphrase-encrypted files.
    pub fn add_passphrase(&mut self, passphrase: Pin) {
        self.passphrase = Some(passphrase);
    }

    pub(crate) fn add_x25519(&mut self, identity: age::x25519::Identity) {
        self.x25519.push(identity);
    }

    /// Whether any identity or passphrase was given.
    pub fn is_empty(&self) -> bool {
        self.x25519.is_empty() && self.plugins.is_empty() && self.passphrase.is_none()
    }
}

/// Pads `text` with newlines to a multiple of [`PAD`] bytes (at least one block).
pub(crate) fn pad(text: &str) -> Zeroizing<Vec<u8>> {
    let len = text.len().max(1);
    let blocks = len.div_ceil(PAD);
    let total = blocks.saturating_mul(PAD);
    let mut out = Zeroizing::new(Vec::with_capacity(total));
    out.extend_from_slice(text.as_bytes());
    out.resize(total, b'\n');
    out
}

fn plugin_failed<E: std::fmt::Display>(errors: &[E]) -> BackupProblem {
    BackupProblem::Plugin(
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "),
    )
}

fn encrypt_error(e: age::EncryptError) -> BackupProblem {
    match e {
        age::EncryptError::MixedRecipientAndPassphrase => BackupProblem::MixedPassphrase,
        age::EncryptError::MissingRecipients => BackupProblem::NoRecipients,
        age::EncryptError::Plugin(errors) => plugin_failed(&errors),
        other => BackupProblem::Encrypt(other.to_string()),
    }
}

/// Encrypts `plaintext` (padded here) to `recipients`; ASCII-armored when `armor`.
pub(crate) fn encrypt(
    plaintext: &str,
    recipients: &[Recipient],
    armor: bool,
    prompter: &SharedPrompter,
) -> Result<Vec<u8>, BackupProblem> {
    if recipients.is_empty() {
        return Err(BackupProblem::NoRecipients);
    }
    if recipients.len() > 1 && recipients.iter().any(Recipient::is_passphrase) {
        return Err(BackupProblem::MixedPassphrase);
    }
    let callbacks = PluginCallbacks(Arc::clone(prompter));
    let mut boxed: Vec<Box<dyn age::Recipient + Send>> = Vec::new();
    let mut plugin_names: Vec<&str> = Vec::new();
    let mut plugins: Vec<age::plugin::Recipient> = Vec::new();
    for r in recipients {
        match &r.0 {
            RecipientKind::X25519(x, _) => boxed.push(Box::new(x.clone())),
            RecipientKind::Passphrase(p) => {
                let mut s = age::scrypt::Recipient::new(SecretString::from(p.expose().to_owned()));
                s.set_work_factor(SCRYPT_LOG_N);
                boxed.push(Box::new(s));
            }
            RecipientKind::Plugin(p) => {
                if !plugin_names.contains(&p.plugin()) {
                    plugin_names.push(p.plugin());
                }
                plugins.push(p.clone());
            }
        }
    }
    for name in plugin_names {
        let plugin = age::plugin::RecipientPluginV1::new(name, &plugins, &[], callbacks.clone())
            .map_err(|e| BackupProblem::PluginMissing(e.to_string()))?;
        boxed.push(Box::new(plugin));
    }
    let encryptor = age::Encryptor::with_recipients(boxed.iter().map(|b| b.as_ref() as _))
        .map_err(encrypt_error)?;
    let padded = pad(plaintext);
    let io = |e: std::io::Error| BackupProblem::Encrypt(e.to_string());
    let format = if armor {
        age::armor::Format::AsciiArmor
    } else {
        age::armor::Format::Binary
    };
    let armored = age::armor::ArmoredWriter::wrap_output(Vec::new(), format).map_err(io)?;
    let mut writer = encryptor.wrap_output(armored).map_err(io)?;
    writer.write_all(&padded).map_err(io)?;
    let armored = writer.finish().map_err(io)?;
    armored.finish().map_err(io)
}

/// Where the binary header ends (after the `--- MAC` line), if it is complete.
fn header_end(bin: &[u8]) -> Option<usize> {
    let mac = bin.windows(5).position(|w| w == b"\n--- ")?;
    let after = mac.checked_add(5)?;
    let eol = bin.get(after..)?.iter().position(|&b| b == b'\n')?;
    after.checked_add(eol)?.checked_add(1)
}

/// Whether an encrypted payload of `len` bytes (after the header) can hold a padded plaintext
/// as rootkeeper writes one (one STREAM chunk of a multiple of [`PAD`] bytes).
fn plausible_payload(len: usize) -> bool {
    len.checked_sub(NONCE.saturating_add(TAG))
        .is_some_and(|pt| pt >= PAD && pt % PAD == 0 && pt <= 64 * 1024)
}

/// The binary age file inside `bytes` (de-armored when armored).
fn binary(bytes: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, BackupProblem> {
    if bytes.starts_with(BINARY_MAGIC) {
        return Ok(std::borrow::Cow::Borrowed(bytes));
    }
    if bytes.starts_with(ANY_VERSION) {
        return Err(BackupProblem::UnknownAgeVersion);
    }
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let text = bytes.get(start..).unwrap_or_default();
    // A file cut inside its first line (or empty) is a truncated age file, not another file.
    if ARMOR_BEGIN.as_bytes().starts_with(text) || BINARY_MAGIC.starts_with(bytes) {
        return Err(BackupProblem::Truncated);
    }
    if !text.starts_with(ARMOR_BEGIN.as_bytes()) {
        return Err(BackupProblem::NotAge);
    }
    if !text
        .windows(ARMOR_END.len())
        .any(|w| w == ARMOR_END.as_bytes())
    {
        return Err(BackupProblem::Truncated);
    }
    let mut reader = age::armor::ArmoredReader::new(text);
    let mut out = Vec::with_capacity(text.len());
    reader
        .read_to_end(&mut out)
        .map_err(|_| BackupProblem::Tampered("its ASCII armor is damaged".into()))?;
    Ok(std::borrow::Cow::Owned(out))
}

/// Decrypts an age file (binary or armored) in memory. The plaintext is at most
/// [`MAX_DOCUMENT`] bytes and only ever in a zeroizing buffer.
pub(crate) fn decrypt(
    bytes: &[u8],
    identities: &Identities,
    prompter: &SharedPrompter,
) -> Result<Zeroizing<Vec<u8>>, BackupProblem> {
    let bin = binary(bytes)?;
    let payload = header_end(&bin).map(|end| bin.len().saturating_sub(end));
    let off_grid = payload.is_some_and(|len| !plausible_payload(len));
    let broken = |what: &str| {
        if off_grid {
            BackupProblem::Truncated
        } else {
            BackupProblem::Tampered(what.into())
        }
    };
    let decryptor = match age::Decryptor::new_buffered(bin.as_ref()) {
        Ok(d) => d,
        Err(age::DecryptError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(BackupProblem::Truncated);
        }
        Err(age::DecryptError::UnknownFormat) => return Err(BackupProblem::UnknownAgeVersion),
        Err(_) if payload.is_none() => return Err(BackupProblem::Truncated),
        Err(_) => return Err(BackupProblem::Tampered("its header is damaged".into())),
    };
    let scrypt_file = decryptor.is_scrypt();
    let callbacks = PluginCallbacks(Arc::clone(prompter));
    let mut boxed: Vec<Box<dyn age::Identity>> = Vec::new();
    if scrypt_file {
        let Some(passphrase) = &identities.passphrase else {
            return Err(BackupProblem::NeedsPassphrase);
        };
        let mut id = age::scrypt::Identity::new(SecretString::from(passphrase.expose().to_owned()));
        id.set_max_work_factor(SCRYPT_MAX_LOG_N);
        boxed.push(Box::new(id));
    } else {
        for id in &identities.x25519 {
            boxed.push(Box::new(id.clone()));
        }
        let mut names: Vec<&str> = identities.plugins.iter().map(|p| p.plugin()).collect();
        names.sort_unstable();
        names.dedup();
        for name in names {
            let plugin =
                age::plugin::IdentityPluginV1::new(name, &identities.plugins, callbacks.clone())
                    .map_err(|e| BackupProblem::PluginMissing(e.to_string()))?;
            boxed.push(Box::new(plugin));
        }
        if boxed.is_empty() {
            return Err(BackupProblem::WrongIdentity);
        }
    }
    let reader = decryptor
        .decrypt(boxed.iter().map(|b| b.as_ref() as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => BackupProblem::WrongIdentity,
            age::DecryptError::DecryptionFailed if scrypt_file => BackupProblem::WrongPassphrase,
            age::DecryptError::InvalidMac => broken("its header does not authenticate"),
            age::DecryptError::ExcessiveWork { required, .. } => {
                BackupProblem::ExcessiveWork(required)
            }
            age::DecryptError::Plugin(errors) => plugin_failed(&errors),
            age::DecryptError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                BackupProblem::Truncated
            }
            _ => broken("its header does not authenticate"),
        })?;
    // One allocation, never grown: no stray copies of the plaintext in freed memory.
    let limit = MAX_DOCUMENT.saturating_add(PAD);
    let mut plaintext = Zeroizing::new(Vec::with_capacity(limit.saturating_add(64)));
    let limit_u64 = u64::try_from(limit.saturating_add(1)).unwrap_or(u64::MAX);
    match reader.take(limit_u64).read_to_end(&mut plaintext) {
        Ok(_) if plaintext.len() > limit => {
            Err(BackupProblem::Document("larger than any backup".into()))
        }
        Ok(_) => Ok(plaintext),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(BackupProblem::Truncated),
        Err(_) => Err(broken("its contents do not authenticate")),
    }
}

/// The secret string of a fresh X25519 identity and the identity itself.
pub(crate) fn fresh_identity() -> (age::x25519::Identity, Zeroizing<String>) {
    let identity = age::x25519::Identity::generate();
    let secret = Zeroizing::new(identity.to_string().expose_secret().to_owned());
    (identity, secret)
}
