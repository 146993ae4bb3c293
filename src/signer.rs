//! The one way ceremony code signs: a [`Signer`] gives its public key and signs SHA-256
//! digests. [`sign`] hashes, signs, and checks every signature with the `p256` crate before
//! anyone uses it, whatever the backend.

use p256::ecdsa::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};
use signature::Verifier;

use crate::error::{Error, Result};

/// A P-256 signing key held somewhere: a PKCS#11 token, a YubiKey, or memory.
pub trait Signer {
    /// The public key.
    fn public_key(&self) -> &VerifyingKey;
    /// Signs a SHA-256 digest, returning the raw signature (r‖s).
    fn sign_digest(&self, digest: &[u8; 32]) -> Result<Signature>;
    /// A name for messages, e.g. the key's URI.
    fn describe(&self) -> String;
}

/// Signs `message` (ECDSA P-256 with SHA-256) and verifies the signature under the signer's
/// public key with the `p256` crate; a signature that does not verify is never returned.
pub fn sign(signer: &dyn Signer, message: &[u8]) -> Result<Signature> {
    let digest: [u8; 32] = Sha256::digest(message).into();
    let signature = signer.sign_digest(&digest)?;
    signer
        .public_key()
        .verify(message, &signature)
        .map_err(|_| Error::BadSignature {
            key: signer.describe(),
        })?;
    Ok(signature)
}
