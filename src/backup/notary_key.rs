//! notary / docker trust private key files (`~/.notary/private/<key ID>.key`,
//! `~/.docker/trust/private/<key ID>.key`), read for migration and written so that a CI machine
//! running `notary` or `docker trust` can sign with a key whose backup rootkeeper holds.
//!
//! The format (research/notary-format.md §11): a PEM block `ENCRYPTED PRIVATE KEY` with
//! headers `gun:` (targets and snapshot keys only), `path:` (the key ID; only in exported
//! files, which `notary key import` needs) and `role:`, in Go's sorted order; an
//! `EncryptedPrivateKeyInfo` with PBES2, PBKDF2-HMAC-SHA1 (PRF field omitted, 8-byte salt,
//! 2048 iterations) and AES-256-CBC; inside, a PKCS#8 `PrivateKeyInfo` of **version 1 without
//! the `[1] publicKey`** (what notary writes for ECDSA keys, and what the `pkcs8` crate
//! refuses, hence the hand-written DER here) holding a SEC1 `ECPrivateKey`.
//!
//! Only ECDSA P-256 keys are supported: RSA and Ed25519 notary keys, and the legacy
//! `Proc-Type`/`DEK-Info` PEMs of notary before 0.4, are refused with their own error.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use der::asn1::{AnyRef, ObjectIdentifier, OctetStringRef};
use der::{Decode, Encode, Reader};
use pkcs5::pbes2;
use zeroize::Zeroizing;

use crate::backend::memory::MemorySigner;
use crate::error::{Error, Result};
use crate::secret::Pin;
use crate::signer::Signer;
use crate::tuf::notary;

/// PBKDF2 iterations notary writes.
pub const PBKDF2_ITERATIONS: u32 = 2048;
/// Shortest passphrase notary accepts for a new key.
pub const MIN_PASSPHRASE: usize = 8;

const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const PRIME256V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const NOTARY_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11591.15.1");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// Why a notary key file failed. Each has its own one-line message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotaryKeyProblem {
    /// No PEM block.
    #[error("is not a PEM private key file")]
    NotPem,
    /// The file ends early.
    #[error("is truncated")]
    Truncated,
    /// The structure is wrong.
    #[error("is malformed: {0}")]
    Malformed(String),
    /// Wrong passphrase (or a damaged ciphertext).
    #[error("the passphrase is wrong (or the encrypted key is damaged)")]
    WrongPassphrase,
    /// Encrypted, and no passphrase was given.
    #[error("is encrypted, and no passphrase was given")]
    NeedsPassphrase,
    /// A key or cipher rootkeeper does not handle.
    #[error("holds {0}; rootkeeper supports ECDSA P-256 keys only")]
    Unsupported(String),
    /// notary's pre-0.4 `Proc-Type`/`DEK-Info` encryption.
    #[error("uses the legacy Proc-Type/DEK-Info encryption of notary before 0.4")]
    LegacyEncryption,
    /// A new passphrase is too short.
    #[error("the new passphrase is shorter than {MIN_PASSPHRASE} characters (notary's minimum)")]
    WeakPassphrase,
    /// A role or GUN rootkeeper will not write.
    #[error("{0}")]
    Role(String),
}

impl NotaryKeyProblem {
    /// What the operator should do next.
    pub fn hint(&self) -> &'static str {
        match self {
            NotaryKeyProblem::NotPem | NotaryKeyProblem::Malformed(_) => {
                "give a file from ~/.docker/trust/private/ or ~/.notary/private/ (NAME.key)"
            }
            NotaryKeyProblem::Truncated => "the copy is incomplete; copy the key file again",
            NotaryKeyProblem::WrongPassphrase => {
                "nothing was imported; docker asks for the 'repository' (or 'root') passphrase of this key"
            }
            NotaryKeyProblem::NeedsPassphrase => "give the key's passphrase (--passphrase-file F)",
            NotaryKeyProblem::Unsupported(_) => {
                "generate a new P-256 key in hardware instead and rotate the role to it"
            }
            NotaryKeyProblem::LegacyEncryption => {
                "open the trust directory once with notary 0.4 or later (`notary key list`), export the key with `notary key export`, and import that file"
            }
            NotaryKeyProblem::WeakPassphrase => "choose a passphrase of at least 8 characters",
            NotaryKeyProblem::Role(_) => {
                "export-notary writes targets, snapshot and delegation keys; a root key never leaves its tokens and backups"
            }
        }
    }
}

fn fail(file: &str, problem: NotaryKeyProblem) -> Error {
    Error::NotaryKey {
        file: file.into(),
        problem,
    }
}

/// A key read from a notary key file.
pub struct NotaryKey {
    /// The `role:` header (`root`, `targets`, `snapshot`, a delegation or docker signer name).
    pub role: Option<String>,
    /// The `gun:` header.
    pub gun: Option<String>,
    key: MemorySigner,
}

impl std::fmt::Debug for NotaryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotaryKey")
            .field("role", &self.role)
            .field("gun", &self.gun)
            .field("key_id", &self.key_id())
            .finish_non_exhaustive()
    }
}

impl NotaryKey {
    /// The key.
    pub fn key(&self) -> &MemorySigner {
        &self.key
    }

    /// The key, taking it out.
    pub fn into_key(self) -> MemorySigner {
        self.key
    }

    /// notary's canonical key ID, which names the file (`<ID>.key`).
    pub fn key_id(&self) -> String {
        canonical_id(self.key.public_key())
    }
}

fn canonical_id(key: &p256::ecdsa::VerifyingKey) -> String {
    notary::ecdsa_key(key)
        .map(|k| notary::key_id(&k).to_string())
        .unwrap_or_default()
}

/// The file name notary gives a key: `<canonical key ID>.key`.
pub fn file_name(key: &p256::ecdsa::VerifyingKey) -> String {
    format!("{}.key", canonical_id(key))
}

struct Pem<'a> {
    kind: &'a str,
    headers: Vec<(&'a str, &'a str)>,
    body: Zeroizing<Vec<u8>>,
}

fn parse_pem<'a>(text: &'a str) -> std::result::Result<Pem<'a>, NotaryKeyProblem> {
    let text = text.trim_start();
    let Some(after) = text.strip_prefix("-----BEGIN ") else {
        return Err(NotaryKeyProblem::NotPem);
    };
    let mut lines = after.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let kind = lines
        .next()
        .and_then(|l| l.strip_suffix("-----"))
        .ok_or(NotaryKeyProblem::NotPem)?;
    let end = format!("-----END {kind}-----");
    let mut headers = Vec::new();
    let mut body = Zeroizing::new(String::with_capacity(text.len()));
    let mut in_headers = true;
    let mut ended = false;
    for line in lines.by_ref() {
        if line == end {
            ended = true;
            break;
        }
        if in_headers {
            if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim(), v.trim()));
                continue;
            }
            in_headers = false;
            if line.is_empty() && !headers.is_empty() {
                continue;
            }
        }
        body.push_str(line.trim());
    }
    if !ended {
        return Err(NotaryKeyProblem::Truncated);
    }
    if lines.any(|l| !l.trim().is_empty()) {
        return Err(NotaryKeyProblem::Malformed(
            "text after the PEM block".into(),
        ));
    }
    let body = Zeroizing::new(
        B64.decode(body.as_bytes())
            .map_err(|_| NotaryKeyProblem::Malformed("the PEM body is not base64".into()))?,
    );
    Ok(Pem {
        kind,
        headers,
        body,
    })
}

fn der_problem(e: der::Error) -> NotaryKeyProblem {
    match e.kind() {
        der::ErrorKind::Incomplete { .. } => NotaryKeyProblem::Truncated,
        _ => NotaryKeyProblem::Malformed("the DER structure is wrong".into()),
    }
}

/// Whether a notary key file is encrypted (so a passphrase is needed), without decrypting it.
pub fn is_encrypted(file: &str, bytes: &[u8]) -> Result<bool> {
    let text = std::str::from_utf8(bytes).map_err(|_| fail(file, NotaryKeyProblem::NotPem))?;
    let pem = parse_pem(text).map_err(|p| fail(file, p))?;
    Ok(pem.kind == "ENCRYPTED PRIVATE KEY" || pem.headers.iter().any(|(k, _)| *k == "Proc-Type"))
}

/// Reads a notary / docker trust private key file. `passphrase` is needed when it is
/// encrypted (see [`is_encrypted`]).
pub fn read(file: &str, bytes: &[u8], passphrase: Option<&Pin>) -> Result<NotaryKey> {
    // Before the decrypted key exists in this process.
    crate::backend::memory::CoreDumpGuard::acquire()?;
    read_inner(file, bytes, passphrase).map_err(|p| fail(file, p))
}

fn read_inner(
    file: &str,
    bytes: &[u8],
    passphrase: Option<&Pin>,
) -> std::result::Result<NotaryKey, NotaryKeyProblem> {
    let text = std::str::from_utf8(bytes).map_err(|_| NotaryKeyProblem::NotPem)?;
    let pem = parse_pem(text)?;
    let mut role = None;
    let mut gun = None;
    let mut path = None;
    for (k, v) in &pem.headers {
        let slot = match *k {
            "role" => &mut role,
            "gun" => &mut gun,
            // Written by `notary key export` (and by us) for `notary key import`; not needed here.
            "path" => &mut path,
            "Proc-Type" | "DEK-Info" => return Err(NotaryKeyProblem::LegacyEncryption),
            _ => return Err(NotaryKeyProblem::Malformed("an unknown PEM header".into())),
        };
        if slot.replace((*v).to_owned()).is_some() {
            return Err(NotaryKeyProblem::Malformed(format!(
                "the `{k}` header appears twice"
            )));
        }
    }
    let key = match pem.kind {
        "ENCRYPTED PRIVATE KEY" => {
            let passphrase = passphrase.ok_or(NotaryKeyProblem::NeedsPassphrase)?;
            let (scheme, ciphertext) = AnyRef::from_der(&pem.body)
                .map_err(der_problem)?
                .sequence(|r| {
                    let scheme: pkcs5::EncryptionScheme = r.decode()?;
                    let data: &OctetStringRef = r.decode()?;
                    Ok::<_, der::Error>((scheme, data.as_bytes()))
                })
                .map_err(|e| match e.kind() {
                    der::ErrorKind::Incomplete { .. } => NotaryKeyProblem::Truncated,
                    _ => NotaryKeyProblem::Unsupported(
                        "an encryption scheme other than PBES2 with PBKDF2 or scrypt and AES"
                            .into(),
                    ),
                })?;
            let mut buffer = Zeroizing::new(ciphertext.to_vec());
            let plain = scheme
                .decrypt_in_place(passphrase.expose(), &mut buffer)
                .map_err(|e| match e {
                    pkcs5::Error::UnsupportedAlgorithm { oid } => {
                        NotaryKeyProblem::Unsupported(format!("encryption algorithm {oid}"))
                    }
                    pkcs5::Error::AlgorithmParametersInvalid { .. } => {
                        NotaryKeyProblem::Malformed("bad encryption parameters".into())
                    }
                    _ => NotaryKeyProblem::WrongPassphrase,
                })?;
            // A wrong passphrase passes the padding check 1 time in 256; then the inner DER
            // is garbage, and that is a wrong passphrase too.
            match private_key_info(file, plain) {
                Err(NotaryKeyProblem::Malformed(_)) | Err(NotaryKeyProblem::Truncated) => {
                    return Err(NotaryKeyProblem::WrongPassphrase);
                }
                other => other?,
            }
        }
        "PRIVATE KEY" => private_key_info(file, &pem.body)?,
        "EC PRIVATE KEY" => MemorySigner::from_sec1_der(&pem.body, file).map_err(|_| {
            NotaryKeyProblem::Unsupported("an EC key on a curve other than P-256".into())
        })?,
        "RSA PRIVATE KEY" => return Err(NotaryKeyProblem::Unsupported("an RSA key".into())),
        "ED25519 PRIVATE KEY" => {
            return Err(NotaryKeyProblem::Unsupported("an Ed25519 key".into()));
        }
        _ => {
            return Err(NotaryKeyProblem::Malformed(
                "not a private key PEM block".into(),
            ));
        }
    };
    Ok(NotaryKey { role, gun, key })
}

/// PKCS#8 `PrivateKeyInfo`, version 0 or 1, with or without `[1] publicKey`.
fn private_key_info(file: &str, der: &[u8]) -> std::result::Result<MemorySigner, NotaryKeyProblem> {
    let (version, algorithm, curve, private) = AnyRef::from_der(der)
        .map_err(der_problem)?
        .sequence(|r| {
            let version: u8 = r.decode()?;
            let (algorithm, params) = r.decode::<AnyRef<'_>>()?.sequence(|a| {
                let oid: ObjectIdentifier = a.decode()?;
                let params: Option<AnyRef<'_>> = a.decode()?;
                Ok::<_, der::Error>((oid, params))
            })?;
            let private: &OctetStringRef = r.decode()?;
            while !r.is_finished() {
                let _optional: AnyRef<'_> = r.decode()?;
            }
            let curve = params.and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
            Ok::<_, der::Error>((version, algorithm, curve, private.as_bytes()))
        })
        .map_err(der_problem)?;
    if version > 1 {
        return Err(NotaryKeyProblem::Malformed(format!(
            "PrivateKeyInfo version {version}"
        )));
    }
    match algorithm {
        EC_PUBLIC_KEY if curve == Some(PRIME256V1) => MemorySigner::from_sec1_der(private, file)
            .map_err(|_| NotaryKeyProblem::Malformed("the EC private key does not parse".into())),
        EC_PUBLIC_KEY => Err(NotaryKeyProblem::Unsupported(
            "an EC key on a curve other than P-256".into(),
        )),
        RSA_ENCRYPTION => Err(NotaryKeyProblem::Unsupported("an RSA key".into())),
        NOTARY_ED25519 | ED25519 => Err(NotaryKeyProblem::Unsupported("an Ed25519 key".into())),
        other => Err(NotaryKeyProblem::Unsupported(format!(
            "a key of algorithm {other}"
        ))),
    }
}

/// DER tag-length-value, into a zeroizing buffer.
fn tlv(tag: u8, content: &[u8]) -> Zeroizing<Vec<u8>> {
    let len = content.len();
    let mut out = Zeroizing::new(Vec::with_capacity(len.saturating_add(4)));
    out.push(tag);
    let bytes = len.to_be_bytes();
    let significant: Vec<u8> = bytes.iter().copied().skip_while(|&b| b == 0).collect();
    match significant.as_slice() {
        [] => out.push(0),
        [b] if *b < 0x80 => out.push(*b),
        s => {
            out.push(0x80 | u8::try_from(s.len()).unwrap_or(0));
            out.extend_from_slice(s);
        }
    }
    out.extend_from_slice(content);
    out
}

fn role_allowed(
    role: &str,
    gun: Option<&str>,
    allow_root: bool,
) -> std::result::Result<(), NotaryKeyProblem> {
    let valid_name = !role.is_empty()
        && role.len() <= 255
        && role
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'));
    if !valid_name {
        return Err(NotaryKeyProblem::Role(format!(
            "`{}` is not a role name",
            role.escape_debug()
        )));
    }
    match (role, gun) {
        ("root", None) if allow_root => Ok(()),
        ("root", Some(_)) if allow_root => Err(NotaryKeyProblem::Role(
            "notary writes no GUN for a root key".into(),
        )),
        ("root" | "timestamp", _) => Err(NotaryKeyProblem::Role(format!(
            "refusing to write a {role} key into a notary key file"
        ))),
        ("targets" | "snapshot", None) => Err(NotaryKeyProblem::Role(format!(
            "a {role} key file names its repository: give the GUN"
        ))),
        ("targets" | "snapshot", Some(g)) if g.is_empty() || g.chars().any(char::is_control) => {
            Err(NotaryKeyProblem::Role(
                "the GUN is empty or has control characters".into(),
            ))
        }
        ("targets" | "snapshot", Some(_)) => Ok(()),
        (_, Some(_)) => Err(NotaryKeyProblem::Role(format!(
            "notary writes no GUN for delegation and signer keys such as `{role}`"
        ))),
        (_, None) => Ok(()),
    }
}

/// Writes `key` as notary writes a key file: PEM `ENCRYPTED PRIVATE KEY` with `gun:` (for
/// targets and snapshot keys) and `role:` headers, PBES2 + PBKDF2-HMAC-SHA1 (2048 iterations,
/// 8-byte salt) + AES-256-CBC, inner PKCS#8 version 1 without `publicKey`. The result is read
/// back before it is returned. Root and timestamp keys are refused.
pub fn write(
    key: &MemorySigner,
    role: &str,
    gun: Option<&str>,
    passphrase: &Pin,
) -> Result<String> {
    write_key_file(key, role, gun, passphrase, false)
}

/// [`write`], and with `allow_root` also a root key (no GUN), for an operator who said
/// `--allow-root`: a root key in a file is a copy outside hardware.
pub fn write_key_file(
    key: &MemorySigner,
    role: &str,
    gun: Option<&str>,
    passphrase: &Pin,
    allow_root: bool,
) -> Result<String> {
    let what = file_name(key.public_key());
    role_allowed(role, gun, allow_root).map_err(|p| fail(&what, p))?;
    if passphrase.expose().chars().count() < MIN_PASSPHRASE {
        return Err(fail(&what, NotaryKeyProblem::WeakPassphrase));
    }
    let sec1 = key.to_sec1_der()?;
    let mut algorithm = Zeroizing::new(Vec::new());
    let oid_der = |oid: ObjectIdentifier| {
        oid.to_der()
            .map_err(|e| Error::Invalid(format!("cannot encode an OID: {e}")))
    };
    algorithm.extend_from_slice(&oid_der(EC_PUBLIC_KEY)?);
    algorithm.extend_from_slice(&oid_der(PRIME256V1)?);
    let mut inner_content = Zeroizing::new(vec![0x02, 0x01, 0x01]);
    inner_content.extend_from_slice(&tlv(0x30, &algorithm));
    inner_content.extend_from_slice(&tlv(0x04, &sec1));
    let inner = tlv(0x30, &inner_content);

    let mut salt = [0u8; 8];
    let mut iv = [0u8; 16];
    getrandom::fill(&mut salt)
        .and_then(|()| getrandom::fill(&mut iv))
        .map_err(|e| Error::Invalid(format!("no randomness from the operating system: {e}")))?;
    let invalid = |e: pkcs5::Error| Error::Invalid(format!("cannot encrypt the key file: {e}"));
    let scheme = pkcs5::EncryptionScheme::Pbes2(pbes2::Parameters {
        kdf: pbes2::Kdf::Pbkdf2(pbes2::Pbkdf2Params {
            salt: pbes2::Salt::try_from(&salt[..]).map_err(|_| Error::Invalid("salt".into()))?,
            iteration_count: PBKDF2_ITERATIONS,
            key_length: None,
            prf: pbes2::Pbkdf2Prf::HmacWithSha1,
        }),
        encryption: pbes2::EncryptionScheme::Aes256Cbc { iv },
    });
    let mut buffer = Zeroizing::new(Vec::with_capacity(inner.len().saturating_add(16)));
    buffer.extend_from_slice(&inner);
    buffer.resize(inner.len().saturating_add(16), 0);
    let ciphertext = scheme
        .encrypt_in_place(passphrase.expose(), &mut buffer, inner.len())
        .map_err(invalid)?
        .to_vec();
    let mut outer_content = scheme
        .to_der()
        .map_err(|e| Error::Invalid(format!("cannot encode PBES2 parameters: {e}")))?;
    outer_content.extend_from_slice(&tlv(0x04, &ciphertext));
    let outer = tlv(0x30, &outer_content);

    // Go's pem.Encode sorts the headers: gun, path, role. `notary key import` needs `path`
    // (the key ID it files the key under) for an encrypted key, as `notary key export` writes.
    let mut pem = String::from("-----BEGIN ENCRYPTED PRIVATE KEY-----\n");
    if let Some(gun) = gun {
        pem.push_str(&format!("gun: {gun}\n"));
    }
    pem.push_str(&format!(
        "path: {}\nrole: {role}\n\n",
        canonical_id(key.public_key())
    ));
    let body = B64.encode(outer.as_slice());
    for chunk in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END ENCRYPTED PRIVATE KEY-----\n");

    let back = read(&what, pem.as_bytes(), Some(passphrase))?;
    if back.key.public_key() != key.public_key() {
        return Err(Error::Invalid(format!(
            "{what}: the written key file does not read back (a bug)"
        )));
    }
    Ok(pem)
}
