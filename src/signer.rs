//! The one way ceremony code signs: a [`Signer`] gives its public key and signs SHA-256
//! digests. [`sign`] hashes, signs, and checks every signature before anyone uses it, whatever
//! the backend: a faulty token (or a driver returning another key's signature) is caught
//! before its signature reaches a file.
//!
//! Verification uses `ring` (about five times faster than the `p256` crate here; 11 checks per
//! repository add up in a ceremony over hundreds of them). It gives the same verdicts as the
//! `p256` crate on valid, invalid, high-S and malformed signatures (tested below); the tests
//! keep `p256` as the independent checker.

use p256::ecdsa::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

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

/// True when `signature` (raw r‖s, 64 bytes) is a valid ECDSA P-256 / SHA-256 signature of
/// `message` under `key`.
pub fn verify_p256(key: &VerifyingKey, message: &[u8], signature: &[u8]) -> bool {
    let point = key.to_sec1_point(false);
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_FIXED,
        point.as_bytes(),
    )
    .verify(message, signature)
    .is_ok()
}

/// True when `signature` (64 bytes) is a valid Ed25519 signature of `message` under the raw
/// 32-byte public key `key`.
pub fn verify_ed25519(key: &[u8; 32], message: &[u8], signature: &[u8]) -> bool {
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key)
        .verify(message, signature)
        .is_ok()
}

/// Signs `message` (ECDSA P-256 with SHA-256) and verifies the signature under the signer's
/// public key; a signature that does not verify is never returned.
pub fn sign(signer: &dyn Signer, message: &[u8]) -> Result<Signature> {
    let digest: [u8; 32] = Sha256::digest(message).into();
    let signature = signer.sign_digest(&digest)?;
    if !verify_p256(signer.public_key(), message, &signature.to_bytes()) {
        return Err(Error::BadSignature {
            key: signer.describe(),
        });
    }
    Ok(signature)
}

/// A signature just made and not yet checked: [`Unchecked::check`] verifies it, so that many
/// fresh signatures can be checked together (in parallel) before any of them is kept.
#[derive(Debug, Clone)]
pub struct Unchecked {
    signature: Signature,
    key: VerifyingKey,
    signer: String,
}

impl Unchecked {
    /// The signature's raw bytes (r‖s), to place in a document that is not kept until
    /// [`Unchecked::check`] passes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.signature.to_bytes().to_vec()
    }

    /// The signature DER-encoded (as X.509 certificates carry it), under the same rule.
    pub fn to_der(&self) -> p256::ecdsa::DerSignature {
        self.signature.to_der()
    }

    /// Verifies the signature over `message`; a faulty token's signature is an error.
    pub fn check(&self, message: &[u8]) -> Result<()> {
        if verify_p256(&self.key, message, &self.signature.to_bytes()) {
            Ok(())
        } else {
            Err(Error::BadSignature {
                key: self.signer.clone(),
            })
        }
    }
}

/// Signs `message` like [`sign`], leaving the check to the caller ([`Unchecked::check`]).
pub fn sign_unchecked(signer: &dyn Signer, message: &[u8]) -> Result<Unchecked> {
    let digest: [u8; 32] = Sha256::digest(message).into();
    Ok(Unchecked {
        signature: signer.sign_digest(&digest)?,
        key: *signer.public_key(),
        signer: signer.describe(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::SigningKey;
    use signature::Verifier;

    fn p256_verdict(key: &VerifyingKey, message: &[u8], sig: &[u8]) -> bool {
        Signature::from_slice(sig).is_ok_and(|s| key.verify(message, &s).is_ok())
    }

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_slice(&[seed.max(1); 32]).unwrap()
    }

    /// n - s, the other (high) form of a signature's s.
    fn high_s(sig: &Signature) -> Vec<u8> {
        let (r, s) = sig.split_scalars();
        let negated = -*s;
        let mut out = r.to_bytes().to_vec();
        out.extend_from_slice(&negated.to_bytes());
        out
    }

    #[test]
    fn ring_and_p256_agree() {
        use signature::hazmat::PrehashSigner;
        for seed in 1..=12u8 {
            let sk = key(seed);
            let vk = *sk.verifying_key();
            let message = format!("message {seed}").into_bytes();
            let digest: [u8; 32] = Sha256::digest(&message).into();
            let sig: Signature = sk.sign_prehash(&digest).unwrap();
            let raw = sig.to_bytes().to_vec();
            let mut flipped = raw.clone();
            flipped[seed as usize] ^= 0x10;
            let mut cases: Vec<(&str, Vec<u8>, &[u8])> = vec![
                ("valid", raw.clone(), &message),
                ("high-S", high_s(&sig), &message),
                ("bit flip", flipped, &message),
                ("other message", raw.clone(), b"other"),
                (
                    "r = 0",
                    [vec![0; 32], raw[32..].to_vec()].concat(),
                    &message,
                ),
                (
                    "s = 0",
                    [raw[..32].to_vec(), vec![0; 32]].concat(),
                    &message,
                ),
                (
                    "r >= n",
                    [vec![0xff; 32], raw[32..].to_vec()].concat(),
                    &message,
                ),
                ("short", raw[..63].to_vec(), &message),
                ("DER", sig.to_der().as_bytes().to_vec(), &message),
            ];
            let other = *key(seed.wrapping_add(100)).verifying_key();
            for (what, sig, message) in cases.drain(..) {
                assert_eq!(
                    verify_p256(&vk, message, &sig),
                    p256_verdict(&vk, message, &sig),
                    "{what} (seed {seed})"
                );
                assert_eq!(
                    verify_p256(&other, message, &sig),
                    p256_verdict(&other, message, &sig),
                    "{what} under another key (seed {seed})"
                );
            }
            assert!(verify_p256(&vk, &message, &raw));
        }
    }

    #[test]
    fn ring_and_dalek_agree_on_ed25519() {
        use ed25519_dalek::Signer as _;
        let sk = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let pk = sk.verifying_key().to_bytes();
        let sig = sk.sign(b"hello").to_bytes();
        assert!(verify_ed25519(&pk, b"hello", &sig));
        assert!(!verify_ed25519(&pk, b"hellp", &sig));
        let mut bad = sig;
        bad[3] ^= 1;
        assert!(!verify_ed25519(&pk, b"hello", &bad));
        assert!(
            sk.verifying_key()
                .verify(b"hello", &ed25519_dalek::Signature::from_bytes(&sig))
                .is_ok()
        );
    }
}
