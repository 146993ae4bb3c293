//! Keys held in memory only: ceremony generation (`key generate --in-memory`), restore drills,
//! migration from notary key files, and tests.
//!
//! The private scalar lives only in zeroize-on-drop types: `p256`'s `SigningKey`, and
//! `Zeroizing` buffers for every exported form (PKCS#8 DER and PEM, SEC1, the raw scalar).
//! Every constructor first takes a [`CoreDumpGuard`], so no key reaches memory in a process
//! that could still write a core dump.

use std::sync::OnceLock;

use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use signature::hazmat::PrehashSigner;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};
use crate::signer::Signer;

static CORE_DUMPS: OnceLock<std::result::Result<(), String>> = OnceLock::new();

/// Proof that this process can no longer write a core dump: `RLIMIT_CORE` is 0 (soft and
/// hard) and, on Linux, the process is not dumpable (`PR_SET_DUMPABLE` 0, which also covers a
/// `core_pattern` pipe such as systemd-coredump, where `RLIMIT_CORE` alone does not count).
///
/// Taken once per process and never given back: copies of secrets inside other crates' buffers
/// may outlive our zeroizing types, so the process stays undumpable until it exits.
#[derive(Debug, Clone)]
pub struct CoreDumpGuard(());

impl CoreDumpGuard {
    /// Disables core dumps for the rest of the process (once), or says why it cannot.
    pub fn acquire() -> Result<CoreDumpGuard> {
        match CORE_DUMPS.get_or_init(disable_core_dumps) {
            Ok(()) => Ok(CoreDumpGuard(())),
            Err(reason) => Err(Error::CoreDumps {
                reason: reason.clone(),
            }),
        }
    }
}

fn disable_core_dumps() -> std::result::Result<(), String> {
    use rustix::process::{Resource, Rlimit, setrlimit};
    setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )
    .map_err(|e| format!("setrlimit(RLIMIT_CORE, 0): {e}"))?;
    #[cfg(target_os = "linux")]
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(|e| format!("prctl(PR_SET_DUMPABLE, 0): {e}"))?;
    Ok(())
}

/// Whether this process can write a core dump now (read back from the kernel, for tests and
/// for `--json` reports).
pub fn core_dumps_possible() -> bool {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Core);
    let limited = limit.current == Some(0);
    #[cfg(target_os = "linux")]
    let undumpable = matches!(
        rustix::process::dumpable_behavior(),
        Ok(rustix::process::DumpableBehavior::NotDumpable)
    );
    #[cfg(not(target_os = "linux"))]
    let undumpable = false;
    !(limited && undumpable)
}

fn no_randomness(e: getrandom::Error) -> Error {
    Error::Invalid(format!("no randomness from the operating system: {e}"))
}

/// A P-256 key in memory. Wiped when dropped; `Debug` shows only its name.
pub struct MemorySigner {
    key: SigningKey,
    public: VerifyingKey,
    name: String,
    _no_core_dumps: CoreDumpGuard,
}

impl std::fmt::Debug for MemorySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemorySigner")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl MemorySigner {
    /// A fresh random key, from the operating system's generator.
    pub fn generate(name: &str) -> Result<MemorySigner> {
        let guard = CoreDumpGuard::acquire()?;
        loop {
            let mut bytes = Zeroizing::new([0u8; 32]);
            getrandom::fill(bytes.as_mut_slice()).map_err(no_randomness)?;
            // A random 32-byte string is a valid scalar with overwhelming probability.
            if let Ok(key) = SigningKey::from_slice(bytes.as_slice()) {
                return Ok(Self::build(key, name, guard));
            }
        }
    }

    /// Wraps an existing key.
    pub fn from_key(key: SigningKey, name: &str) -> Result<MemorySigner> {
        let guard = CoreDumpGuard::acquire()?;
        Ok(Self::build(key, name, guard))
    }

    fn build(key: SigningKey, name: &str, guard: CoreDumpGuard) -> MemorySigner {
        let public = *key.verifying_key();
        MemorySigner {
            key,
            public,
            name: name.into(),
            _no_core_dumps: guard,
        }
    }

    /// The key from its 32-byte big-endian scalar.
    pub fn from_scalar(scalar: &[u8; 32], name: &str) -> Result<MemorySigner> {
        let guard = CoreDumpGuard::acquire()?;
        let key = SigningKey::from_slice(scalar).map_err(|_| Error::Key {
            what: name.into(),
            reason: "not a valid P-256 private scalar".into(),
        })?;
        Ok(Self::build(key, name, guard))
    }

    /// The key from an unencrypted PKCS#8 `PRIVATE KEY` (DER).
    pub fn from_pkcs8_der(der: &[u8], name: &str) -> Result<MemorySigner> {
        let guard = CoreDumpGuard::acquire()?;
        let key = SigningKey::from_pkcs8_der(der).map_err(|e| Error::Key {
            what: name.into(),
            reason: format!("not a P-256 PKCS#8 private key: {e}"),
        })?;
        Ok(Self::build(key, name, guard))
    }

    /// The key from an unencrypted PKCS#8 PEM block (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pkcs8_pem(pem: &str, name: &str) -> Result<MemorySigner> {
        let guard = CoreDumpGuard::acquire()?;
        let key = SigningKey::from_pkcs8_pem(pem).map_err(|e| Error::Key {
            what: name.into(),
            reason: format!("not a P-256 PKCS#8 PEM private key: {e}"),
        })?;
        Ok(Self::build(key, name, guard))
    }

    /// The key from a SEC1 `ECPrivateKey` (DER), as inside notary's key files.
    pub fn from_sec1_der(der: &[u8], name: &str) -> Result<MemorySigner> {
        let guard = CoreDumpGuard::acquire()?;
        let secret = p256::SecretKey::from_sec1_der(der).map_err(|e| Error::Key {
            what: name.into(),
            reason: format!("not a P-256 EC private key: {e}"),
        })?;
        Ok(Self::build(SigningKey::from(secret), name, guard))
    }

    /// The name given at creation, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key as an unencrypted PKCS#8 PEM block, only ever in a zeroizing buffer.
    /// It must not be written to disk unencrypted.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>> {
        self.key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| self.export_error(e.to_string()))
    }

    /// The key as unencrypted PKCS#8 DER, only ever in a zeroizing buffer.
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>> {
        let doc = self
            .key
            .to_pkcs8_der()
            .map_err(|e| self.export_error(e.to_string()))?;
        Ok(Zeroizing::new(doc.as_bytes().to_vec()))
    }

    /// The key as a SEC1 `ECPrivateKey` (DER, with the curve and the public key).
    pub fn to_sec1_der(&self) -> Result<Zeroizing<Vec<u8>>> {
        let secret = p256::SecretKey::from(&self.key);
        secret
            .to_sec1_der()
            .map_err(|e| self.export_error(e.to_string()))
    }

    /// The 32-byte big-endian private scalar, for importing into a token.
    pub fn scalar(&self) -> Zeroizing<[u8; 32]> {
        let mut bytes = self.key.to_bytes();
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&bytes);
        bytes.zeroize();
        out
    }

    fn export_error(&self, reason: String) -> Error {
        Error::Key {
            what: self.name.clone(),
            reason: format!("cannot encode the private key: {reason}"),
        }
    }
}

impl Signer for MemorySigner {
    fn public_key(&self) -> &VerifyingKey {
        &self.public
    }

    fn sign_digest(&self, digest: &[u8; 32]) -> Result<Signature> {
        self.key
            .sign_prehash(digest)
            .map_err(|_| Error::BadSignature {
                key: self.name.clone(),
            })
    }

    fn describe(&self) -> String {
        format!("in-memory key `{}`", self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify() {
        let key = MemorySigner::generate("t").unwrap();
        let sig = crate::signer::sign(&key, b"hello").unwrap();
        use signature::Verifier;
        key.public_key().verify(b"hello", &sig).unwrap();
        assert!(key.public_key().verify(b"hellp", &sig).is_err());
    }

    #[test]
    fn a_generated_key_leaves_the_process_undumpable() {
        let _key = MemorySigner::generate("t").unwrap();
        assert!(!core_dumps_possible());
        let limit = rustix::process::getrlimit(rustix::process::Resource::Core);
        assert_eq!((limit.current, limit.maximum), (Some(0), Some(0)));
    }

    #[test]
    fn every_export_form_round_trips() {
        let key = MemorySigner::generate("t").unwrap();
        let pem = key.to_pkcs8_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let again = MemorySigner::from_pkcs8_pem(&pem, "again").unwrap();
        assert_eq!(again.public_key(), key.public_key());
        let der = key.to_pkcs8_der().unwrap();
        assert_eq!(
            MemorySigner::from_pkcs8_der(&der, "d")
                .unwrap()
                .public_key(),
            key.public_key()
        );
        let sec1 = key.to_sec1_der().unwrap();
        assert_eq!(
            MemorySigner::from_sec1_der(&sec1, "s")
                .unwrap()
                .public_key(),
            key.public_key()
        );
        let scalar = key.scalar();
        assert_eq!(
            MemorySigner::from_scalar(&scalar, "k")
                .unwrap()
                .public_key(),
            key.public_key()
        );
        assert!(MemorySigner::from_scalar(&[0u8; 32], "zero").is_err());
        assert!(!format!("{key:?}").contains(&hex::encode(scalar.as_slice())));
    }
}
