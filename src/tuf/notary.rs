//! The Notary v1 dialect (research/notary-format.md): key objects and their IDs, root
//! certificates as `ecdsa-x509` keys, base64 raw r‖s signatures, file hashes, and the initial
//! root, targets and snapshot documents.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use p256::ecdsa::VerifyingKey;
use p256::pkcs8::{DecodePublicKey, EncodePublicKey};
use sha2::{Digest, Sha256, Sha512};

use crate::error::{Error, Result};
use crate::signer::{self, Signer};
use crate::tuf::model::{
    Base64, Delegations, FileMeta, GoTime, Hashes, KeyId, KeyType, Length, Method, PublicKey, Root,
    RootRoles, RootType, Signature, Signed, Snapshot, SnapshotType, Targets, TargetsType, UtcTime,
    Version,
};
use crate::x509::{self, CertFacts};

/// Default lifetime of targets and snapshot metadata: 3 years of 365 days (notary's own).
pub const DEFAULT_TARGETS_DAYS: u64 = 3 * 365;
/// Default lifetime of root metadata and root certificates: 10 years of 365 days.
pub const DEFAULT_ROOT_DAYS: u64 = 10 * 365;

/// An `ecdsa` key: the DER SubjectPublicKeyInfo.
pub fn ecdsa_key(key: &VerifyingKey) -> Result<PublicKey> {
    let der = key.to_public_key_der().map_err(|e| Error::Key {
        what: "public key".into(),
        reason: e.to_string(),
    })?;
    Ok(PublicKey::new(KeyType::Ecdsa, der.as_bytes().to_vec()))
}

/// An `ecdsa-x509` key: the certificate's PEM text.
pub fn x509_key(cert_pem: &str) -> PublicKey {
    PublicKey::new(KeyType::EcdsaX509, cert_pem.as_bytes().to_vec())
}

/// The key ID: hex SHA-256 of the canonical key object with `"private":null`.
pub fn key_id(key: &PublicKey) -> KeyId {
    let mut hasher = Sha256::new();
    hasher.update(b"{\"keytype\":\"");
    hasher.update(key.keytype.as_str().as_bytes());
    hasher.update(b"\",\"keyval\":{\"private\":null,\"public\":\"");
    hasher.update(B64.encode(key.public()).as_bytes());
    hasher.update(b"\"}}");
    KeyId::from_digest(&hasher.finalize())
}

/// The canonical key ID of a bare P-256 key: what names notary's private key files, what
/// `notary key list` shows, and the one identity rootkeeper shows for a key everywhere.
pub fn p256_key_id(key: &VerifyingKey) -> Result<KeyId> {
    Ok(key_id(&ecdsa_key(key)?))
}

/// The canonical key ID: for an x509 key, the ID of the bare key inside its first certificate;
/// for any other key, its ID.
pub fn canonical_key_id(key: &PublicKey) -> Result<KeyId> {
    match key.keytype {
        KeyType::EcdsaX509 => {
            let leaf = leaf_certificate(key)?;
            Ok(key_id(&PublicKey::new(KeyType::Ecdsa, leaf.spki_der)))
        }
        KeyType::Ecdsa | KeyType::Ed25519 => Ok(key_id(key)),
    }
}

fn key_error(key: &PublicKey, reason: impl Into<String>) -> Error {
    Error::Key {
        what: format!("{} key {}", key.keytype, key_id(key)),
        reason: reason.into(),
    }
}

/// The PEM text of an x509 key.
pub fn key_pem(key: &PublicKey) -> Result<&str> {
    std::str::from_utf8(key.public()).map_err(|_| key_error(key, "public is not PEM text"))
}

/// The certificates of an x509 key, in order, as DER.
pub fn key_certificates_der(key: &PublicKey) -> Result<Vec<Vec<u8>>> {
    x509::pem_certificates(key_pem(key)?)
}

/// The facts of every certificate of an x509 key, leaf first.
pub fn key_certificates(key: &PublicKey) -> Result<Vec<CertFacts>> {
    key_certificates_der(key)?
        .iter()
        .map(|der| x509::cert_facts(der))
        .collect()
}

/// The first certificate of an x509 key.
pub fn leaf_certificate(key: &PublicKey) -> Result<CertFacts> {
    key_certificates(key)?
        .into_iter()
        .next()
        .ok_or_else(|| key_error(key, "holds no certificate"))
}

/// The PEM of an x509 key, rebuilt from its certificates the way Go re-encodes it.
pub fn rebuilt_pem(key: &PublicKey) -> Result<String> {
    Ok(key_certificates_der(key)?
        .iter()
        .map(|d| x509::go_pem(d))
        .collect())
}

/// A public key that can check signatures.
#[derive(Debug, Clone)]
pub enum Verifying {
    /// P-256 (`ecdsa`, `ecdsa-x509`).
    P256(VerifyingKey),
    /// Ed25519 (`ed25519`).
    Ed25519(ed25519_dalek::VerifyingKey),
}

/// The key that checks signatures made by `key`; an error when the key material is not a
/// usable key of its type.
pub fn verifying_key(key: &PublicKey) -> Result<Verifying> {
    match key.keytype {
        KeyType::Ecdsa => VerifyingKey::from_public_key_der(key.public())
            .map(Verifying::P256)
            .map_err(|_| key_error(key, "public is not a P-256 SubjectPublicKeyInfo")),
        KeyType::EcdsaX509 => leaf_certificate(key)?
            .p256_key
            .map(Verifying::P256)
            .ok_or_else(|| key_error(key, "the certificate's key is not P-256")),
        KeyType::Ed25519 => {
            let raw: [u8; 32] = key
                .public()
                .try_into()
                .map_err(|_| key_error(key, "an Ed25519 key is 32 bytes"))?;
            ed25519_dalek::VerifyingKey::from_bytes(&raw)
                .map(Verifying::Ed25519)
                .map_err(|e| key_error(key, e.to_string()))
        }
    }
}

/// Checks one signature over `message` as notary's verifier does: `false` for an invalid
/// signature, or a method that does not fit the key.
pub fn check_signature(key: &Verifying, sig: &Signature, message: &[u8]) -> bool {
    let raw = &sig.sig.0;
    match (sig.method, key) {
        (Method::Ecdsa, Verifying::P256(vk)) => {
            raw.len() == 64 && signer::verify_p256(vk, message, raw)
        }
        (Method::Eddsa, Verifying::Ed25519(vk)) => {
            raw.len() == 64 && signer::verify_ed25519(vk.as_bytes(), message, raw)
        }
        _ => false,
    }
}

/// Signs `message` with `signer` as key `keyid` (the signature is checked before it is
/// returned; see [`signer::sign`]).
pub fn signature(signer: &dyn Signer, keyid: &KeyId, message: &[u8]) -> Result<Signature> {
    let signature = signer::sign(signer, message)?;
    Ok(Signature {
        keyid: keyid.clone(),
        method: Method::Ecdsa,
        sig: Base64(signature.to_bytes().to_vec()),
    })
}

/// Puts `signature` into `signatures`, replacing any earlier one by the same key ID (valid or
/// not), in key ID order.
pub fn put_signature(signatures: &mut Vec<Signature>, signature: Signature) {
    signatures.retain(|s| s.keyid != signature.keyid);
    signatures.push(signature);
    signatures.sort_by(|a, b| a.keyid.cmp(&b.keyid));
}

/// Hashes (SHA-256, SHA-512) and length of exact file bytes.
pub fn file_meta(bytes: &[u8]) -> FileMeta {
    FileMeta {
        hashes: Hashes {
            sha256: Some(Base64(Sha256::digest(bytes).to_vec())),
            sha512: Some(Base64(Sha512::digest(bytes).to_vec())),
        },
        length: Length::of(bytes),
        custom: None,
    }
}

/// True when `meta` (from a snapshot or timestamp) names exactly `bytes`: SHA-256 present and
/// equal, SHA-512 equal when present, and the length equal.
pub fn meta_matches(meta: &FileMeta, bytes: &[u8]) -> bool {
    let want = file_meta(bytes);
    meta.hashes.sha256.is_some()
        && meta.hashes.sha256 == want.hashes.sha256
        && meta
            .hashes
            .sha512
            .as_ref()
            .is_none_or(|h| Some(h) == want.hashes.sha512.as_ref())
        && meta.length == want.length
}

/// A new root document.
pub fn new_root(
    keys: BTreeMap<KeyId, PublicKey>,
    roles: RootRoles,
    expires: UtcTime,
    version: Version,
) -> Root {
    Root {
        type_: RootType,
        consistent_snapshot: false,
        expires: GoTime::utc(expires),
        keys,
        roles,
        version,
    }
}

/// A new, empty targets document.
pub fn new_targets(expires: UtcTime, version: Version) -> Targets {
    Targets {
        type_: TargetsType,
        delegations: Delegations::default(),
        expires: GoTime::utc(expires),
        targets: BTreeMap::new(),
        version,
    }
}

/// A snapshot of exact root and targets file bytes.
pub fn new_snapshot(
    root_file: &[u8],
    targets_file: &[u8],
    expires: UtcTime,
    version: Version,
) -> Snapshot {
    let mut meta = BTreeMap::new();
    meta.insert("root".into(), file_meta(root_file));
    meta.insert("targets".into(), file_meta(targets_file));
    Snapshot {
        type_: SnapshotType,
        expires: GoTime::utc(expires),
        meta,
        version,
    }
}

/// An unsigned envelope.
pub fn unsigned<T: crate::tuf::model::RoleFile>(doc: T) -> Signed<T> {
    Signed::new(doc)
}

/// Reads a key file as notary-server hands it out (`GET …/timestamp.key`), strictly, and
/// checks that the key is one notary can use for that role.
pub fn parse_server_key(file: &str, bytes: &[u8]) -> Result<PublicKey> {
    let key = crate::tuf::model::parse_key_document(file, bytes).map_err(|e| Error::Metadata {
        file: file.into(),
        reason: format!(
            "not a notary key document ({e}); fetch it with `rootkeeper server timestamp-key`"
        ),
    })?;
    if key.keytype == KeyType::EcdsaX509 {
        return Err(Error::Metadata {
            file: file.into(),
            reason: "a server key is a bare ecdsa or ed25519 key, not a certificate".into(),
        });
    }
    verifying_key(&key).map_err(|e| Error::Metadata {
        file: file.into(),
        reason: e.to_string(),
    })?;
    Ok(key)
}
