//! The backup document: what an age-encrypted backup decrypts to. A text file, format 1:
//!
//! ```text
//! # rootkeeper key backup (format 1). UNENCRYPTED KEY: keep it only inside age encryption.
//! # Public key: openssl pkey -in THIS-FILE -pubout
//! rootkeeper-key-backup: 1
//! label: root-2026
//! role: root
//! algorithm: ecdsa-p256
//! public-key: MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE…   (base64 DER SubjectPublicKeyInfo)
//! key-id: 5f0c…                                       (notary's canonical key ID, hex)
//! created: 2026-12-01T07:31:00Z
//! token: pkcs11:token=custodian-a;serial=…;object=root-2026;id=%A1…   (0 or more)
//! x509-key-id: registry.example.com/app 2237ea2d…    (0 or more: root certificate key IDs)
//! split: 2-of-3 9f3c…                                 (0 or 1: the split that encrypts it)
//!
//! -----BEGIN PRIVATE KEY-----
//! …standard unencrypted PKCS#8 (RFC 5208), readable by `openssl pkey`…
//! -----END PRIVATE KEY-----
//! ```
//!
//! Parsing is strict and never panics: LF line ends only; `# ` comments only before the first
//! field; the version line first; every field known, singular fields exactly once; one blank
//! line; exactly one PEM block; after it nothing but newlines (the padding that hides the
//! length, see `crypt`). `public-key` and `key-id` must be those of the private key.
//! Error messages name line numbers and field names, never a value (a damaged file could put
//! key material where a value should be).

use std::fmt::Write as _;

use zeroize::Zeroizing;

use super::BackupProblem;
use crate::backend::memory::MemorySigner;
use crate::signer::Signer;
use crate::tuf::notary;

/// The format version this code writes and reads.
pub const FORMAT: u32 = 1;
const MAGIC: &str = "rootkeeper-key-backup";
/// Largest document accepted (a backup is well under 4 KiB).
pub(crate) const MAX_DOCUMENT: usize = 64 * 1024;
const PEM_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PEM_END: &str = "-----END PRIVATE KEY-----";
const ALGORITHM: &str = "ecdsa-p256";

/// The split that encrypts a backup: its ID and M-of-N.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitInfo {
    /// 32 lowercase hex digits, random per split.
    pub id: String,
    /// M: how many shares recombine.
    pub threshold: u8,
    /// N: how many shares were made.
    pub count: u8,
}

impl std::fmt::Display for SplitInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-of-{} {}", self.threshold, self.count, self.id)
    }
}

impl SplitInfo {
    pub(crate) fn parse(value: &str) -> Option<SplitInfo> {
        let (mn, id) = value.split_once(' ')?;
        let (m, n) = mn.split_once("-of-")?;
        let threshold: u8 = parse_small(m)?;
        let count: u8 = parse_small(n)?;
        if threshold < 2 || count < threshold || !is_hex(id, 32) {
            return None;
        }
        Some(SplitInfo {
            id: id.into(),
            threshold,
            count,
        })
    }
}

/// A decimal without sign or leading zeros.
pub(crate) fn parse_small<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || s.len() > 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if s.len() > 1 && s.starts_with('0') {
        return None;
    }
    s.parse().ok()
}

pub(crate) fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// What a backup says about its key, besides the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupMetadata {
    /// The key's label on every token (CKA_LABEL).
    pub label: String,
    /// The key's role: `root`, `targets`, `snapshot`, `timestamp`, or a delegation name.
    pub role: String,
    /// When the key was made, `YYYY-MM-DDTHH:MM:SSZ`.
    pub created: String,
    /// URIs of the tokens that hold the key (without PIN sources).
    pub tokens: Vec<String>,
    /// Root certificate key IDs, as (GUN, hex key ID).
    pub x509_key_ids: Vec<(String, String)>,
}

impl BackupMetadata {
    fn check(&self) -> Result<(), String> {
        if !valid_label(&self.label) {
            return Err("label: 1 to 128 printable characters".into());
        }
        if !valid_role(&self.role) {
            return Err("role: letters, digits and . _ - / only".into());
        }
        if !valid_time(&self.created) {
            return Err("created: must look like 2026-12-01T07:31:00Z".into());
        }
        if self.tokens.iter().any(|t| !valid_word(t, 2048)) {
            return Err("token: a URI without spaces".into());
        }
        if self
            .x509_key_ids
            .iter()
            .any(|(gun, id)| !valid_word(gun, 255) || !is_hex(id, 64))
        {
            return Err("x509-key-id: a GUN and a 64-digit hex key ID".into());
        }
        Ok(())
    }
}

fn valid_label(s: &str) -> bool {
    !s.is_empty() && s.chars().count() <= 128 && !s.chars().any(char::is_control) && s.trim() == s
}

fn valid_role(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'))
}

fn valid_word(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_graphic())
}

fn valid_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// A decrypted backup: metadata and the key, in memory only.
pub struct KeyBackup {
    /// What the backup says about the key.
    pub meta: BackupMetadata,
    split: Option<SplitInfo>,
    key: MemorySigner,
}

impl std::fmt::Debug for KeyBackup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyBackup")
            .field("meta", &self.meta)
            .field("split", &self.split)
            .field("key_id", &self.key_id())
            .finish_non_exhaustive()
    }
}

/// The base64 SubjectPublicKeyInfo and the canonical notary key ID of a public key.
pub(crate) fn public_forms(key: &p256::ecdsa::VerifyingKey) -> (String, String) {
    match notary::ecdsa_key(key) {
        Ok(public) => {
            let id = notary::key_id(&public);
            (public.keyval.public.encoded(), id.to_string())
        }
        // Encoding a valid P-256 point cannot fail; an empty form never matches a file.
        Err(_) => (String::new(), String::new()),
    }
}

impl KeyBackup {
    /// A backup of `key` described by `meta` (checked).
    pub fn new(meta: BackupMetadata, key: MemorySigner) -> crate::Result<KeyBackup> {
        meta.check().map_err(|reason| {
            crate::Error::Invalid(format!("backup metadata for `{}`: {reason}", meta.label))
        })?;
        Ok(KeyBackup {
            meta,
            split: None,
            key,
        })
    }

    /// The key.
    pub fn key(&self) -> &MemorySigner {
        &self.key
    }

    /// The key, taking it out of the backup.
    pub fn into_key(self) -> MemorySigner {
        self.key
    }

    /// The public key.
    pub fn public_key(&self) -> &p256::ecdsa::VerifyingKey {
        self.key.public_key()
    }

    /// Notary's canonical key ID of the key (hex SHA-256 of its `ecdsa` key object).
    pub fn key_id(&self) -> String {
        public_forms(self.key.public_key()).1
    }

    /// The split whose identity encrypts this backup, if it was split.
    pub fn split(&self) -> Option<&SplitInfo> {
        self.split.as_ref()
    }

    /// Refuses unless the backup holds `expected` (the inventory's or the token's key).
    pub fn check_public_key(
        &self,
        file: &str,
        expected: &p256::ecdsa::VerifyingKey,
    ) -> crate::Result<()> {
        if self.key.public_key() == expected {
            return Ok(());
        }
        Err(crate::Error::Backup {
            file: file.into(),
            problem: BackupProblem::WrongKey {
                expected: public_forms(expected).1,
                found: self.key_id(),
            },
        })
    }

    /// The document text (unpadded), only ever in a zeroizing buffer.
    pub fn to_text(&self) -> crate::Result<Zeroizing<String>> {
        self.to_text_with(self.split.as_ref())
    }

    pub(crate) fn to_text_with(
        &self,
        split: Option<&SplitInfo>,
    ) -> crate::Result<Zeroizing<String>> {
        let (spki, key_id) = public_forms(self.key.public_key());
        let m = &self.meta;
        let mut text = Zeroizing::new(String::with_capacity(2048));
        // Writing to a String cannot fail.
        let _ = write!(
            text,
            "# rootkeeper key backup (format {FORMAT}). UNENCRYPTED KEY: keep it only inside age encryption.\n\
             # Public key: openssl pkey -in THIS-FILE -pubout\n\
             {MAGIC}: {FORMAT}\nlabel: {}\nrole: {}\nalgorithm: {ALGORITHM}\npublic-key: {spki}\n\
             key-id: {key_id}\ncreated: {}\n",
            m.label, m.role, m.created
        );
        for token in &m.tokens {
            let _ = writeln!(text, "token: {token}");
        }
        for (gun, id) in &m.x509_key_ids {
            let _ = writeln!(text, "x509-key-id: {gun} {id}");
        }
        if let Some(split) = split {
            let _ = writeln!(text, "split: {split}");
        }
        text.push('\n');
        text.push_str(&self.key.to_pkcs8_pem()?);
        Ok(text)
    }

    /// Parses a document strictly (see the module docs).
    pub fn parse(bytes: &[u8]) -> Result<KeyBackup, BackupProblem> {
        let bad = |reason: String| BackupProblem::Document(reason);
        if bytes.len() > MAX_DOCUMENT {
            return Err(bad("larger than any backup".into()));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8 text".into()))?;
        if text.contains('\r') {
            return Err(bad("has CR characters (line ends must be LF)".into()));
        }
        let fields = Fields::parse(text, MAGIC, FORMAT)?;
        let mut label = None;
        let mut role = None;
        let mut algorithm = None;
        let mut public = None;
        let mut key_id = None;
        let mut created = None;
        let mut split = None;
        let mut tokens = Vec::new();
        let mut x509_key_ids = Vec::new();
        for (line, name, value) in &fields.fields {
            let slot = match *name {
                "label" => &mut label,
                "role" => &mut role,
                "algorithm" => &mut algorithm,
                "public-key" => &mut public,
                "key-id" => &mut key_id,
                "created" => &mut created,
                "split" => &mut split,
                "token" => {
                    tokens.push((*value).to_owned());
                    continue;
                }
                "x509-key-id" => {
                    let (gun, id) = value
                        .split_once(' ')
                        .ok_or_else(|| bad(format!("line {line}: x509-key-id needs GUN and ID")))?;
                    x509_key_ids.push((gun.to_owned(), id.to_owned()));
                    continue;
                }
                other => {
                    return Err(bad(format!(
                        "line {line}: unknown field `{}`",
                        printable(other)
                    )));
                }
            };
            if slot.replace(*value).is_some() {
                return Err(bad(format!("line {line}: field `{name}` appears twice")));
            }
        }
        fn need<'a>(v: Option<&'a str>, name: &str) -> Result<&'a str, BackupProblem> {
            v.ok_or_else(|| BackupProblem::Document(format!("no `{name}` field")))
        }
        let label = need(label, "label")?;
        let role = need(role, "role")?;
        let algorithm = need(algorithm, "algorithm")?;
        let public = need(public, "public-key")?;
        let key_id = need(key_id, "key-id")?;
        let created = need(created, "created")?;
        if algorithm != ALGORITHM {
            return Err(bad(format!("algorithm must be {ALGORITHM}")));
        }
        let split = match split {
            None => None,
            Some(v) => Some(
                SplitInfo::parse(v)
                    .ok_or_else(|| bad("split: must be M-of-N and a 32-digit hex ID".into()))?,
            ),
        };
        let meta = BackupMetadata {
            label: label.into(),
            role: role.into(),
            created: created.into(),
            tokens,
            x509_key_ids,
        };
        meta.check().map_err(bad)?;
        let pem = pem_block(fields.rest).map_err(bad)?;
        let key = MemorySigner::from_pkcs8_pem(&pem, label)
            .map_err(|_| bad("the PEM block is not a P-256 PKCS#8 private key".into()))?;
        let (spki, computed_id) = public_forms(key.public_key());
        if public != spki {
            return Err(BackupProblem::Inconsistent(
                "public-key is not the public key of the private key in the file".into(),
            ));
        }
        if key_id != computed_id {
            return Err(BackupProblem::Inconsistent(
                "key-id is not the ID of the private key in the file".into(),
            ));
        }
        Ok(KeyBackup { meta, split, key })
    }
}

/// A name for a field in an error message: only if it looks like one.
fn printable(name: &str) -> String {
    if name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'-' || b.is_ascii_digit())
    {
        name.into()
    } else {
        "(unprintable)".into()
    }
}

/// The `name: value` header of both documents (backup and share).
pub(crate) struct Fields<'a> {
    /// (line number, name, value) in file order, the version line excluded.
    pub fields: Vec<(usize, &'a str, &'a str)>,
    /// Everything after the blank line.
    pub rest: &'a str,
}

impl<'a> Fields<'a> {
    /// Comments (`# …`) first, then `MAGIC: VERSION`, then fields up to one blank line.
    pub fn parse(text: &'a str, magic: &str, version: u32) -> Result<Fields<'a>, BackupProblem> {
        let bad = |reason: String| BackupProblem::Document(reason);
        let mut rest = text;
        let mut line_no = 0usize;
        let mut fields = Vec::new();
        let mut seen_magic = false;
        loop {
            let Some((line, after)) = rest.split_once('\n') else {
                return Err(bad("ends before the blank line that ends the fields".into()));
            };
            rest = after;
            line_no = line_no.saturating_add(1);
            if line.is_empty() {
                if !seen_magic {
                    return Err(bad(format!("line {line_no}: blank line before `{magic}`")));
                }
                break;
            }
            if !seen_magic {
                if line.starts_with("# ") || line == "#" {
                    continue;
                }
                let Some(v) = line.strip_prefix(magic).and_then(|l| l.strip_prefix(": ")) else {
                    return Err(BackupProblem::NotOurs(format!(
                        "does not start with `{magic}:`"
                    )));
                };
                if parse_small::<u32>(v) != Some(version) {
                    return Err(BackupProblem::Document(format!(
                        "format `{}` is not {version}, the one this rootkeeper reads",
                        printable(v)
                    )));
                }
                seen_magic = true;
                continue;
            }
            let Some((name, value)) = line.split_once(": ") else {
                return Err(bad(format!("line {line_no} is not `name: value`")));
            };
            if value.is_empty() || value.trim() != value || value.chars().any(char::is_control) {
                return Err(bad(format!(
                    "line {line_no}: bad value for `{}`",
                    printable(name)
                )));
            }
            fields.push((line_no, name, value));
        }
        Ok(Fields { fields, rest })
    }
}

/// The one PEM block after the header: BEGIN line, base64 lines of at most 64 characters, END
/// line, then nothing but newlines.
fn pem_block(rest: &str) -> Result<Zeroizing<String>, String> {
    let mut lines = rest.split('\n');
    if lines.next() != Some(PEM_BEGIN) {
        return Err(format!("the line after the blank line must be {PEM_BEGIN}"));
    }
    let mut pem = Zeroizing::new(String::with_capacity(rest.len()));
    pem.push_str(PEM_BEGIN);
    pem.push('\n');
    let mut ended = false;
    for line in lines.by_ref() {
        if line == PEM_END {
            ended = true;
            break;
        }
        if line.is_empty()
            || line.len() > 64
            || !line
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        {
            return Err("the PEM block has a line that is not base64".into());
        }
        pem.push_str(line);
        pem.push('\n');
    }
    if !ended {
        return Err(format!("no {PEM_END} line"));
    }
    pem.push_str(PEM_END);
    pem.push('\n');
    if lines.any(|l| !l.is_empty()) {
        return Err("text after the PEM block".into());
    }
    Ok(pem)
}
