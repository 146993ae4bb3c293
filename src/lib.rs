//! rootkeeper guards the offline root of trust for container-image signing: root and
//! repository keys stay inside hardware (PKCS#11 tokens), roots are made and signed in
//! ceremonies with k-of-n thresholds, and the metadata is written in the Notary v1 dialect that
//! notary-server and the docker/notary clients accept byte for byte.
//!
//! The library never prints or reads the terminal; the `rootkeeper` binary does, through the
//! [`secret::Prompter`] trait.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]
// No input may crash the library: no string slicing at byte offsets, no unchecked indexing,
// no arithmetic that can wrap, no lossy casts, no unwrap/expect/panic outside tests.
#![deny(
    clippy::string_slice,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::todo,
    clippy::unimplemented,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::string_slice,
        clippy::cast_possible_truncation
    )
)]

pub mod attest;
pub mod backend;
pub mod backup;
pub mod error;
pub mod fingerprint;
pub mod keyuri;
pub mod notice;
pub mod secret;
pub mod signer;
pub mod text;
pub mod tuf;
pub mod x509;

pub use error::{Error, Result};
pub mod root;
pub mod server;
pub mod trustdir;
