//! `key generate --in-memory` and `backup restore` into YubiKey PIV slots, against an emulated
//! YubiKey 5 (hsm-tests/piv-emu) behind the private pcscd. `#[ignore]`d like tests/piv.rs;
//! `hsm-tests/run` runs them inside `hsm-tests/piv/pcscd-ns` with `--ignored`. Run outside
//! it, a test fails (never skips).

use std::path::Path;
use std::process::Command;

use hsm_tests::{SoftHsm, strs};
use piv_emu::harness::{CardOptions, VirtualCard};

mod backup_common;
mod piv_common;
use backup_common::*;
use piv_common::{require_pcscd_ns, setup_with, yubikey};

const SERIAL: u32 = 23456789;

fn piv_tool(args: &[&str]) -> String {
    tool("yubico-piv-tool", "yubico-piv-tool");
    let out = Command::new("yubico-piv-tool")
        .args(["-r", "Virtual PCD 00 00"])
        .args(args)
        .output()
        .unwrap();
    let out = check(out, &format!("yubico-piv-tool {args:?}"));
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn yk_uri(slot: &str, pin: &Path) -> String {
    format!(
        "yubikey:serial={SERIAL};slot={slot}?pin-source=file:{}",
        pin.display()
    )
}

#[test]
#[ignore = "needs hsm-tests/piv/pcscd-ns (emulated cards behind a private pcscd); hsm-tests/run runs it"]
fn an_in_memory_key_goes_into_a_yubikey_slot_and_a_softhsm_token() {
    require_pcscd_ns();
    let hsm = SoftHsm::new();
    let _card = VirtualCard::spawn(CardOptions::new(0, SERIAL, (5, 4, 3))).unwrap();
    let pin = setup_with(&hsm, SERIAL, "471193", "87654321");
    hsm.token("custodian-b");
    let (alice, a) = age_keygen(hsm.path(), "alice");
    let tokens = [yk_uri("9c", &pin), hsm.token_uri("custodian-b")];
    let generated = hsm.ok_json(&strs(&generate_args(
        &strs(&tokens),
        "root-2026",
        "root",
        &["--backup-to", &a, "--backup-out", "root.backup"],
    )));
    assert_eq!(
        generated["policy"], "in-memory-with-backups",
        "{generated:#}"
    );
    let expected = spki_pem(generated["public_key"].as_str().unwrap());
    let backup = hsm.path().join("root.backup");
    assert_eq!(stock_public_key(&alice, &backup), expected);

    // The slot: the same key, reported imported, with a certificate other PIV tools read.
    let list = hsm.ok_json(&["token", "list"]);
    let slot = &yubikey(&list, SERIAL)["slots"][0];
    assert_eq!(slot["slot"], "9c", "{list:#}");
    assert_eq!(slot["origin"], "imported", "{list:#}");
    assert_eq!(slot["label"], "root-2026", "{list:#}");
    assert_eq!(slot["key_id"], generated["key_id"], "{list:#}");
    let status = piv_tool(&["-a", "status"]);
    assert!(
        status.contains("Slot 9c:") && status.contains("CN=root-2026"),
        "{status}"
    );
    let cert = piv_tool(&["-a", "read-certificate", "-s", "9c"]);
    let begin = cert.find("-----BEGIN CERTIFICATE-----").expect(&cert);
    std::fs::write(hsm.path().join("slot.crt"), &cert[begin..]).unwrap();
    assert_eq!(
        shell(hsm.path(), "openssl x509 -in slot.crt -noout -pubkey"),
        expected
    );
    // SoftHSM holds the same key, sensitive and not extractable.
    assert_imported_private_key(&hsm, "custodian-b", "root-2026");
    assert_eq!(
        token_public_key(&hsm, "custodian-b", "root-2026", hsm.path()),
        expected
    );
    // An imported key cannot be attested.
    let err = hsm.fails(1, &["key", "attest", &yk_uri("9c", &pin)]);
    assert!(err.contains("imported"), "{err}");
    // The drill compares both tokens.
    let out = drill(&hsm, "root.backup", &alice);
    assert_eq!(out.matches("holds the same key").count(), 2, "{out}");
    // Restore into another slot is refused for a filled slot, and works into an empty one.
    let restore = |slot: &str| restore_args("root.backup", &alice, &yk_uri(slot, &pin));
    let err = hsm.fails(1, &strs(&restore("9c")));
    assert!(one_error(&err).contains("slot 9c"), "{err}");
    hsm.ok(&strs(&restore("9d")));
    let list = hsm.ok_json(&["token", "list"]);
    let slots = yubikey(&list, SERIAL)["slots"].as_array().unwrap().clone();
    assert!(
        slots
            .iter()
            .any(|s| s["slot"] == "9d" && s["key_id"] == generated["key_id"]),
        "{list:#}"
    );
    let key = key_in_backup(&[&backup], &[&alice]);
    assert_no_plaintext_keys(&[hsm.path()], &[&key]);
}
