//! Keys held in memory only: for tests today, and later for ceremony generation and restore
//! drills. The private scalar is wiped when the key is dropped (`p256`'s `SigningKey` zeroizes).

use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use signature::hazmat::PrehashSigner;

use crate::error::{Error, Result};
use crate::signer::Signer;

/// A P-256 key in memory.
pub struct MemorySigner {
    key: SigningKey,
    public: VerifyingKey,
    name: String,
}

impl std::fmt::Debug for MemorySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemorySigner")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl MemorySigner {
    /// A fresh random key.
    pub fn generate(name: &str) -> Result<MemorySigner> {
        loop {
            let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
            getrandom::fill(bytes.as_mut_slice())
                .map_err(|e| Error::Invalid(format!("no randomness: {e}")))?;
            // A random 32-byte string is a valid scalar with overwhelming probability.
            if let Ok(key) = SigningKey::from_slice(bytes.as_slice()) {
                return Ok(Self::from_key(key, name));
            }
        }
    }

    /// Wraps an existing key.
    pub fn from_key(key: SigningKey, name: &str) -> MemorySigner {
        let public = *key.verifying_key();
        MemorySigner {
            key,
            public,
            name: name.into(),
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
}
