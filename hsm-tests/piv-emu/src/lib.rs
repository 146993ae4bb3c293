//! `piv-emu`: a **test-only** emulator of a YubiKey 5 PIV applet.
//!
//! * [`card::Card`] is the pure applet: bytes in, bytes out, no I/O
//!   ([`Card::handle`](card::Card::handle)). It implements PIN/PUK, management-key mutual auth
//!   (3DES and AES), P-256 generate/import/sign with PIN and touch policies, data objects with
//!   command chaining and `61xx` response chaining, Yubico metadata, attestation and reset.
//! * [`attestation::EmulatorCa`] is the stand-in for Yubico's attestation root.
//! * [`vpcd`] connects a card to pcscd's vsmartcard `vpcd` driver over TCP.
//! * [`harness`] starts the `piv-emu` binary for other test crates and waits for pcscd.
//!
//! Nothing here is secure: keys live in process memory and in the optional state file.
//! Never depend on this crate from release binaries.

#![warn(missing_docs)]

pub mod attestation;
pub mod card;
pub mod harness;
mod tlv;
pub mod vpcd;

pub use attestation::EmulatorCa;
pub use card::{Card, CardState};
