//! Fixtures for rootkeeper's integration tests: paths, a SoftHSM token factory, a notary-server
//! launcher, and a runner for the `rootkeeper` binary. Everything here talks to real parts.

use std::path::PathBuf;

/// A file or folder under `hsm-tests/fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}
