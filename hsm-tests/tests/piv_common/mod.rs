//! Helpers shared by the test binaries that drive emulated YubiKeys behind the private pcscd
//! (`piv.rs`, `pkcs11_pin_counter.rs`).

// Each test binary uses only some of these.
#![allow(dead_code)]

use std::path::PathBuf;

use hsm_tests::{SoftHsm, write};
use piv_emu::harness::in_private_pcscd;
use serde_json::Value;

/// Fails (never skips) outside the private pcscd: these tests are `#[ignore]`d and run with
/// `--ignored` by hsm-tests/run inside hsm-tests/piv/pcscd-ns.
pub fn require_pcscd_ns() {
    assert!(
        in_private_pcscd(),
        "this test needs the private pcscd with emulated cards: run it as `hsm-tests/piv/pcscd-ns cargo test -p hsm-tests --test <file> -- --ignored --test-threads=1` (hsm-tests/run does)"
    );
}

/// `token setup` of YubiKey `serial` with new PIN and PUK files; returns the PIN file.
pub fn setup_with(hsm: &SoftHsm, serial: u32, pin: &str, puk: &str) -> PathBuf {
    let pin = write(hsm.path(), &format!("pin-{serial}"), pin);
    let puk = write(hsm.path(), &format!("puk-{serial}"), puk);
    let out = hsm.ok(&[
        "--yes",
        "token",
        "setup",
        "--token",
        &format!("yubikey:serial={serial}"),
        "--new-pin-file",
        pin.to_str().unwrap(),
        "--new-puk-file",
        puk.to_str().unwrap(),
    ]);
    assert!(out.contains("no factory values left"), "{out}");
    pin
}

/// The YubiKey with `serial` in `token list --json` output.
pub fn yubikey(list: &Value, serial: u32) -> &Value {
    list["yubikeys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|y| y["serial"] == serial)
        .unwrap_or_else(|| panic!("YubiKey {serial} not listed: {list:#}"))
}
