//! The Notary v1 dialect (research/notary-format.md): key objects and their IDs, root
//! certificates as `ecdsa-x509` keys, base64 raw r‖s signatures, file hashes, and the initial
//! root, targets and snapshot documents.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use p256::ecdsa::VerifyingKey;
use p256::pkcs8::EncodePublicKey;
use serde_json::json;
use sha2::{Digest, Sha256, Sha512};
use signature::Verifier;

use crate::error::{Error, Result};
use crate::signer::{self, Signer};
use crate::tuf::canonical;
use crate::tuf::model::{
    Delegations, Envelope, FileMeta, MetaRole, PublicKey, Role, Root, Signature, Targets, UtcTime,
};
use crate::x509::{self, CertFacts};

/// Key type of a bare P-256 key.
pub const ECDSA: &str = "ecdsa";
/// Key type of a root key: a certificate chain.
pub const ECDSA_X509: &str = "ecdsa-x509";
/// Key type of notary-server's local timestamp keys.
pub const ED25519: &str = "ed25519";
/// The four top-level roles.
pub const ROLES: [&str; 4] = ["root", "targets", "snapshot", "timestamp"];

/// Default lifetime of targets and snapshot metadata: 3 years of 365 days.
pub const DEFAULT_TARGETS_DAYS: u64 = 3 * 365;
/// Default lifetime of root metadata and root certificates: 10 years of 365 days.
pub const DEFAULT_ROOT_DAYS: u64 = 10 * 365;

/// An `ecdsa` key: base64 of the DER SubjectPublicKeyInfo.
pub fn ecdsa_key(key: &VerifyingKey) -> Result<PublicKey> {
    let der = key.to_public_key_der().map_err(|e| Error::Key {
        what: "public key".into(),
        reason: e.to_string(),
    })?;
    Ok(PublicKey::new(ECDSA, B64.encode(der.as_bytes())))
}

/// An `ecdsa-x509` key: base64 of the certificate's PEM text.
pub fn x509_key(cert_pem: &str) -> PublicKey {
    PublicKey::new(ECDSA_X509, B64.encode(cert_pem.as_bytes()))
}

/// The key ID: hex SHA-256 of the canonical key object with `"private":null`.
pub fn key_id(key: &PublicKey) -> String {
    let value =
        json!({"keytype": key.keytype, "keyval": {"private": null, "public": key.keyval.public}});
    // A key object holds only ASCII strings, so canonical encoding cannot fail.
    let bytes = canonical::to_canonical(&value).unwrap_or_default();
    hex::encode(Sha256::digest(bytes))
}

/// The canonical key ID: for an x509 key, the ID of the bare key inside its first certificate
/// (what names notary's private key files); for any other key, its ID.
pub fn canonical_key_id(key: &PublicKey) -> Result<String> {
    match key.keytype.as_str() {
        ECDSA_X509 => {
            let leaf = key_certificates(key)?.remove(0);
            let bare = PublicKey::new(ECDSA, B64.encode(&leaf.spki_der));
            Ok(key_id(&bare))
        }
        "rsa-x509" => {
            let leaf = key_certificates(key)?.remove(0);
            Ok(key_id(&PublicKey::new("rsa", B64.encode(&leaf.spki_der))))
        }
        _ => Ok(key_id(key)),
    }
}

/// The certificates of an x509 key, leaf first.
pub fn key_certificates(key: &PublicKey) -> Result<Vec<CertFacts>> {
    let pem = B64.decode(&key.keyval.public).map_err(|e| Error::Key {
        what: "x509 key".into(),
        reason: format!("public is not base64: {e}"),
    })?;
    let pem = String::from_utf8(pem).map_err(|_| Error::Key {
        what: "x509 key".into(),
        reason: "public is not PEM text".into(),
    })?;
    x509::pem_certificates(&pem)?
        .iter()
        .map(|der| x509::cert_facts(der))
        .collect()
}

/// The PEM of an x509 key, rebuilt from its certificates the way Go re-encodes it.
pub fn rebuilt_pem(key: &PublicKey) -> Result<String> {
    let pem =
        String::from_utf8(B64.decode(&key.keyval.public).unwrap_or_default()).unwrap_or_default();
    Ok(x509::pem_certificates(&pem)?
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

/// The key that checks signatures made by `key`.
pub fn verifying_key(key: &PublicKey) -> Result<Verifying> {
    let bad = |reason: String| Error::Key {
        what: format!("{} key {}", key.keytype, &key_id(key)[..8]),
        reason,
    };
    match key.keytype.as_str() {
        ECDSA => {
            let der = B64
                .decode(&key.keyval.public)
                .map_err(|e| bad(e.to_string()))?;
            use p256::pkcs8::DecodePublicKey;
            VerifyingKey::from_public_key_der(&der)
                .map(Verifying::P256)
                .map_err(|_| bad("not a P-256 public key".into()))
        }
        ECDSA_X509 => key_certificates(key)?
            .remove(0)
            .p256_key
            .map(Verifying::P256)
            .ok_or_else(|| bad("the certificate's key is not P-256".into())),
        ED25519 => {
            let raw = B64
                .decode(&key.keyval.public)
                .map_err(|e| bad(e.to_string()))?;
            let raw: [u8; 32] = raw.try_into().map_err(|_| bad("not 32 bytes".into()))?;
            ed25519_dalek::VerifyingKey::from_bytes(&raw)
                .map(Verifying::Ed25519)
                .map_err(|e| bad(e.to_string()))
        }
        other => Err(bad(format!("key type `{other}` is not supported"))),
    }
}

/// Checks one signature over `message` as Notary's verifier does; `Ok(false)` for an invalid
/// signature or an unknown method.
pub fn check_signature(key: &PublicKey, sig: &Signature, message: &[u8]) -> Result<bool> {
    let Ok(raw) = B64.decode(&sig.sig) else {
        return Ok(false);
    };
    Ok(
        match (
            sig.method.to_ascii_lowercase().as_str(),
            verifying_key(key)?,
        ) {
            ("ecdsa", Verifying::P256(vk)) => {
                raw.len() == 64
                    && p256::ecdsa::Signature::from_slice(&raw)
                        .is_ok_and(|s| vk.verify(message, &s).is_ok())
            }
            ("eddsa", Verifying::Ed25519(vk)) => {
                raw.len() == 64
                    && ed25519_dalek::Signature::from_slice(&raw)
                        .is_ok_and(|s| vk.verify(message, &s).is_ok())
            }
            _ => false,
        },
    )
}

/// Signs an envelope's `signed` part with `signer` as key `keyid` and adds the signature
/// (replacing an earlier one by the same key). The signature is checked before it is added.
pub fn add_signature(envelope: &mut Envelope, signer: &dyn Signer, keyid: &str) -> Result<()> {
    let message = envelope.signed_bytes()?;
    let signature = signer::sign(signer, &message)?;
    envelope.signatures.retain(|s| s.keyid != keyid);
    envelope.signatures.push(Signature {
        keyid: keyid.into(),
        method: "ecdsa".into(),
        sig: B64.encode(signature.to_bytes()),
    });
    envelope.signatures.sort_by(|a, b| a.keyid.cmp(&b.keyid));
    Ok(())
}

/// Hashes (sha256, sha512, base64) and length of exact file bytes.
pub fn file_meta(bytes: &[u8]) -> FileMeta {
    let mut hashes = BTreeMap::new();
    hashes.insert("sha256".into(), B64.encode(Sha256::digest(bytes)));
    hashes.insert("sha512".into(), B64.encode(Sha512::digest(bytes)));
    FileMeta {
        hashes,
        length: bytes.len() as u64,
        custom: None,
    }
}

/// A new root document.
pub fn new_root(
    keys: BTreeMap<String, PublicKey>,
    roles: BTreeMap<String, Role>,
    expires: UtcTime,
    version: u64,
) -> Root {
    Root {
        type_: "Root".into(),
        consistent_snapshot: false,
        expires: expires.to_go_string(),
        keys,
        roles,
        version,
    }
}

/// A new, empty targets document.
pub fn new_targets(expires: UtcTime, version: u64) -> Targets {
    Targets {
        type_: "Targets".into(),
        delegations: Delegations::default(),
        expires: expires.to_go_string(),
        targets: BTreeMap::new(),
        version,
    }
}

/// A snapshot of exact root and targets file bytes.
pub fn new_snapshot(
    root_file: &[u8],
    targets_file: &[u8],
    expires: UtcTime,
    version: u64,
) -> MetaRole {
    let mut meta = BTreeMap::new();
    meta.insert("root".into(), file_meta(root_file));
    meta.insert("targets".into(), file_meta(targets_file));
    MetaRole {
        type_: "Snapshot".into(),
        expires: expires.to_go_string(),
        meta,
        version,
    }
}

/// Reads a key file as notary-server hands it out (`GET …/timestamp.key`).
pub fn parse_server_key(file: &str, bytes: &[u8]) -> Result<PublicKey> {
    let key: PublicKey = serde_json::from_slice(bytes).map_err(|e| Error::Metadata {
        file: file.into(),
        reason: format!(
            "not a notary key document ({e}); fetch it with `rootkeeper server timestamp-key`"
        ),
    })?;
    verifying_key(&key).map_err(|e| Error::Metadata {
        file: file.into(),
        reason: e.to_string(),
    })?;
    Ok(PublicKey::new(&key.keytype, key.keyval.public))
}
