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

pub mod attest;
pub mod backend;
pub mod error;
pub mod keyuri;
pub mod notice;
pub mod secret;
pub mod signer;
pub mod tuf;
pub mod x509;

pub use error::{Error, Result};
pub mod root;
pub mod server;
pub mod trustdir;
