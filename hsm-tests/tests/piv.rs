//! YubiKey PIV end to end, against emulated YubiKeys (hsm-tests/piv-emu) behind a private
//! pcscd with the vpcd driver. Run as
//!
//! ```sh
//! cargo build --bins -p rootkeeper -p piv-emu
//! hsm-tests/piv/pcscd-ns cargo test -p hsm-tests --test piv -- --test-threads=1
//! ```
//!
//! Outside `pcscd-ns` (PIV_EMU_PCSCD != 1) every test prints a skip line and passes.

use std::path::{Path, PathBuf};
use std::process::Command;

use hsm_tests::{NotaryServer, SoftHsm, root_signatures_valid};
use piv_emu::EmulatorCa;
use piv_emu::harness::{VirtualCard, in_private_pcscd};
use serde_json::Value;

const SERIAL: u32 = 12345678;
const NEW_PIN: &str = "471193";
const NEW_PUK: &str = "87654321";

fn skip(test: &str) -> bool {
    if in_private_pcscd() {
        return false;
    }
    println!("skipped {test}: not inside hsm-tests/piv/pcscd-ns (PIV_EMU_PCSCD != 1)");
    true
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{text}\n")).unwrap();
    path
}

fn yk_uri(serial: u32, slot: &str, pin: &Path) -> String {
    format!(
        "yubikey:serial={serial};slot={slot}?pin-source=file:{}",
        pin.display()
    )
}

/// `token setup` with new PIN and PUK files; returns the PIN file.
fn setup(hsm: &SoftHsm, serial: u32) -> PathBuf {
    let pin = write(hsm.path(), &format!("pin-{serial}"), NEW_PIN);
    let puk = write(hsm.path(), &format!("puk-{serial}"), NEW_PUK);
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

fn yubikey(list: &Value, serial: u32) -> &Value {
    list["yubikeys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|y| y["serial"] == serial)
        .unwrap_or_else(|| panic!("YubiKey {serial} not listed: {list:#}"))
}

fn tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{program} {args:?} failed:\n{text}");
    text
}

#[test]
fn two_of_two_root_on_a_yubikey_and_softhsm_published_and_trusted() {
    if skip("two_of_two_root_on_a_yubikey_and_softhsm_published_and_trusted") {
        return;
    }
    let card = VirtualCard::attach(0, SERIAL, (5, 4, 3)).unwrap();
    let hsm = SoftHsm::new();
    let server = NotaryServer::start();
    let pin = setup(&hsm, SERIAL);

    // The YubiKey root key: generated on the card, touch for every signature.
    let run = hsm.run(&[
        "key",
        "generate",
        "--token",
        &yk_uri(SERIAL, "9c", &pin),
        "--label",
        "root-yk",
        "--role",
        "root",
        "--touch-policy",
        "always",
    ]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains(&format!("touch the YubiKey (serial {SERIAL})")),
        "{}",
        run.stderr
    );
    let yk_root = yk_uri(SERIAL, "9c", &pin);

    // The SoftHSM root key and the repository keys.
    hsm.token("root-b");
    hsm.token("repo");
    let hsm_root = hsm.key("root-b", "root", "root");
    hsm.key("repo", "targets", "targets");
    hsm.key("repo", "snapshot", "snapshot");

    let gun = "registry.example.com/admin/yubikey";
    hsm.ok(&[
        "server",
        "timestamp-key",
        "--server",
        &server.url,
        "--gun",
        gun,
        "--out",
        "ts.json",
    ]);
    hsm.ok(&[
        "root",
        "init",
        "--gun",
        gun,
        "--root-key",
        &yk_root,
        "--root-key",
        &hsm_root,
        "--threshold",
        "2",
        "--targets-key",
        &hsm.key_uri("repo", "targets"),
        "--snapshot-key",
        &hsm.key_uri("repo", "snapshot"),
        "--timestamp-key",
        "ts.json",
    ]);
    // The custodian of the YubiKey signs in a run of their own.
    let run = hsm.run(&["root", "sign", "--gun", gun, "--key", &yk_root]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains(&format!("touch the YubiKey (serial {SERIAL})")),
        "the touch notice must come before the signature:\n{}",
        run.stderr
    );
    hsm.ok(&[
        "root",
        "sign",
        "--gun",
        gun,
        "--key",
        &hsm_root,
        "--key",
        &hsm.key_uri("repo", "targets"),
        "--key",
        &hsm.key_uri("repo", "snapshot"),
    ]);
    hsm.ok(&["root", "verify", "--gun", gun]);
    hsm.ok(&["root", "export", "--gun", gun, "--out", "out"]);
    let root = std::fs::read(hsm.path().join("out/root.json")).unwrap();
    assert_eq!(root_signatures_valid(&root), 2);
    let out = hsm.ok(&[
        "--yes",
        "server",
        "publish",
        "out",
        "--server",
        &server.url,
        "--gun",
        gun,
    ]);
    assert!(out.contains("byte for byte"), "{out}");

    server.assert_trusts(&hsm, gun);

    // The inventory records the YubiKey key with its device.
    let keys = hsm.ok_json(&["key", "list"]);
    let entry = keys["inventory"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["uri"] == format!("yubikey:serial={SERIAL};slot=9c"))
        .unwrap_or_else(|| panic!("{keys:#}"));
    assert_eq!(entry["token_serial"], SERIAL.to_string());
    assert_eq!(entry["present"], true);
    assert_eq!(entry["ysa_2024_03"], true, "5.4.3 is before 5.7.0");
    drop(card);
}

#[test]
fn yubico_tools_see_the_key_and_certificate_rootkeeper_made() {
    if skip("yubico_tools_see_the_key_and_certificate_rootkeeper_made") {
        return;
    }
    let _card = VirtualCard::attach(0, SERIAL, (5, 4, 3)).unwrap();
    let hsm = SoftHsm::new();
    let pin = setup(&hsm, SERIAL);
    hsm.ok(&[
        "key",
        "generate",
        "--token",
        &yk_uri(SERIAL, "9a", &pin),
        "--label",
        "targets-yk",
        "--role",
        "targets",
        "--pin-policy",
        "always",
    ]);
    let status = tool(
        "yubico-piv-tool",
        &["-r", "Virtual PCD 00 00", "-a", "status"],
    );
    assert!(status.contains("Serial Number:\t12345678"), "{status}");
    assert!(status.contains("Slot 9a:"), "{status}");
    assert!(status.contains("ECCP256"), "{status}");
    assert!(status.contains("CN=targets-yk"), "{status}");
    let info = tool("ykman", &["--reader", "Virtual PCD 00 00", "piv", "info"]);
    assert!(info.contains("Slot 9a"), "{info}");
    assert!(info.contains("CN=targets-yk"), "{info}");
    assert!(info.contains("protected by PIN"), "{info}");
    // Both tools report the same certificate.
    let fingerprint = |text: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with("Fingerprint"))
            .and_then(|l| l.split_whitespace().last())
            .map(str::to_lowercase)
            .unwrap_or_default()
    };
    assert_eq!(fingerprint(&status), fingerprint(&info));
    assert_eq!(fingerprint(&status).len(), 64);

    // rootkeeper lists the slot, with its policies.
    let list = hsm.ok_json(&["token", "list"]);
    let yk = yubikey(&list, SERIAL);
    let slot = &yk["slots"][0];
    assert_eq!(slot["slot"], "9a");
    assert_eq!(slot["label"], "targets-yk");
    assert_eq!(slot["pin_policy"], "always");
    assert_eq!(slot["touch_policy"], "never");
    assert_eq!(slot["origin"], "generated");
    assert_eq!(slot["uri"], format!("yubikey:serial={SERIAL};slot=9a"));
}

#[test]
fn two_yubikeys_without_serial_refused_with_serial_the_right_one_used() {
    if skip("two_yubikeys_without_serial_refused_with_serial_the_right_one_used") {
        return;
    }
    let _a = VirtualCard::attach(0, 11111111, (5, 4, 3)).unwrap();
    let _b = VirtualCard::attach(1, 22222222, (5, 7, 1)).unwrap();
    let hsm = SoftHsm::new();
    let list = hsm.ok_json(&["token", "list"]);
    assert_eq!(list["yubikeys"].as_array().unwrap().len(), 2, "{list:#}");
    assert_eq!(yubikey(&list, 22222222)["firmware"], "5.7.1");

    let pin = write(hsm.path(), "pin", NEW_PIN);
    let err = hsm.fails(
        1,
        &[
            "key",
            "generate",
            "--token",
            &format!("yubikey:slot=9c?pin-source=file:{}", pin.display()),
            "--label",
            "k",
        ],
    );
    assert!(err.contains("more than one YubiKey"), "{err}");
    assert!(
        err.contains("serial=11111111") && err.contains("serial=22222222"),
        "{err}"
    );
    assert!(err.contains("hint: add serial=N"), "{err}");
    // Nothing was tried on either card.
    let list = hsm.ok_json(&["token", "list"]);
    for serial in [11111111, 22222222] {
        assert_eq!(yubikey(&list, serial)["pin"]["remaining"], 3);
    }

    let pin = setup(&hsm, 22222222);
    hsm.ok(&[
        "key",
        "generate",
        "--token",
        &yk_uri(22222222, "9c", &pin),
        "--label",
        "second",
    ]);
    let list = hsm.ok_json(&["token", "list"]);
    let b = yubikey(&list, 22222222);
    assert_eq!(b["slots"].as_array().unwrap().len(), 1);
    assert_eq!(b["management_key_algorithm"], "aes192", "5.7 uses AES-192");
    assert_eq!(b["management_key_protected"], true);
    let a = yubikey(&list, 11111111);
    assert!(a["slots"].as_array().unwrap().is_empty(), "{a:#}");
    assert_eq!(a["pin"]["factory_default"], true);
}

#[test]
fn attestation_verified_against_the_emulator_ca_and_refused_against_another() {
    if skip("attestation_verified_against_the_emulator_ca_and_refused_against_another") {
        return;
    }
    let card = VirtualCard::attach(0, SERIAL, (5, 7, 1)).unwrap();
    let hsm = SoftHsm::new();
    let pin = setup(&hsm, SERIAL);
    let generated = hsm.ok_json(&[
        "key",
        "generate",
        "--token",
        &yk_uri(SERIAL, "9d", &pin),
        "--label",
        "attested",
        "--role",
        "root",
        "--pin-policy",
        "always",
        "--touch-policy",
        "cached",
    ]);
    let key_id = generated["key_id"].as_str().unwrap().to_owned();
    assert_eq!(generated["ysa_2024_03"], false, "5.7.1 is not affected");

    let ca = hsm.path().join("emulator-ca.pem");
    card.ca().write_pem(&ca).unwrap();
    let uri = format!("yubikey:serial={SERIAL};slot=9d");
    let report = hsm.ok_json(&[
        "key",
        "attest",
        &uri,
        "--attestation-roots",
        ca.to_str().unwrap(),
    ]);
    assert_eq!(report["serial"], SERIAL);
    assert_eq!(report["firmware"], "5.7.1");
    assert_eq!(report["pin_policy"], "always");
    assert_eq!(report["touch_policy"], "cached");
    assert_eq!(report["generated_on_device"], true);
    assert_eq!(report["key_id"], key_id);
    assert_eq!(report["in_inventory"], true);
    let stored = hsm
        .trust_dir()
        .join("attestations")
        .join(format!("{key_id}.pem"));
    let pem = std::fs::read_to_string(&stored).unwrap();
    assert_eq!(pem.matches("BEGIN CERTIFICATE").count(), 2);
    let list = hsm.ok(&["key", "list"]);
    assert!(list.contains("attested"), "{list}");

    // Another CA: refused.
    let other = hsm.path().join("other-ca.pem");
    EmulatorCa::from_seed(b"some other attestation CA")
        .write_pem(&other)
        .unwrap();
    let err = hsm.fails(
        1,
        &[
            "key",
            "attest",
            &uri,
            "--attestation-roots",
            other.to_str().unwrap(),
        ],
    );
    assert!(err.contains("does not chain"), "{err}");
    // Yubico's built-in roots: the emulator is not Yubico.
    let err = hsm.fails(1, &["key", "attest", &uri]);
    assert!(err.contains("does not chain to Yubico"), "{err}");
}

#[test]
fn wrong_pin_twice_then_a_refusal_that_keeps_the_last_retry() {
    if skip("wrong_pin_twice_then_a_refusal_that_keeps_the_last_retry") {
        return;
    }
    let _card = VirtualCard::attach(0, SERIAL, (5, 4, 3)).unwrap();
    let hsm = SoftHsm::new();
    let pin = setup(&hsm, SERIAL);
    hsm.ok(&[
        "key",
        "generate",
        "--token",
        &yk_uri(SERIAL, "9c", &pin),
        "--label",
        "root-yk",
    ]);
    let wrong = write(hsm.path(), "wrong-pin", "999999");
    let wrong_uri = yk_uri(SERIAL, "82", &wrong);
    // `key generate` logs in before it changes anything, as `root sign` does.
    let attempt = || {
        hsm.run(&[
            "key", "generate", "--label", "second", "--token", &wrong_uri,
        ])
    };
    let first = attempt();
    assert_eq!(first.code, 1, "{}", first.stderr);
    assert!(
        first.stderr.contains("2 PIN retries left"),
        "{}",
        first.stderr
    );
    let second = attempt();
    assert_eq!(second.code, 1, "{}", second.stderr);
    assert!(
        second.stderr.contains("1 PIN retry left"),
        "{}",
        second.stderr
    );
    let third = attempt();
    assert_eq!(third.code, 1, "{}", third.stderr);
    assert!(
        third.stderr.contains("no PIN was tried"),
        "{}",
        third.stderr
    );
    assert!(
        third.stderr.contains("--last-pin-attempt"),
        "{}",
        third.stderr
    );
    // The card still has its last retry, by rootkeeper's count and by Yubico's tool.
    let list = hsm.ok_json(&["token", "list"]);
    assert_eq!(yubikey(&list, SERIAL)["pin"]["remaining"], 1);
    let status = tool(
        "yubico-piv-tool",
        &["-r", "Virtual PCD 00 00", "-a", "status"],
    );
    assert!(status.contains("PIN tries left:\t1"), "{status}");
    // With the right PIN and --last-pin-attempt the operator gets through, and the counter
    // is back to full.
    let good = yk_uri(SERIAL, "82", &pin);
    hsm.ok(&[
        "--last-pin-attempt",
        "key",
        "generate",
        "--token",
        &good,
        "--label",
        "second",
    ]);
    let list = hsm.ok_json(&["token", "list"]);
    assert_eq!(yubikey(&list, SERIAL)["pin"]["remaining"], 3);
}

#[test]
fn token_setup_detects_factory_values_without_trying_them() {
    if skip("token_setup_detects_factory_values_without_trying_them") {
        return;
    }
    let _card = VirtualCard::attach(0, SERIAL, (5, 7, 1)).unwrap();
    let hsm = SoftHsm::new();
    let check = hsm.ok_json(&[
        "token",
        "setup",
        "--token",
        &format!("yubikey:serial={SERIAL}"),
        "--check",
    ]);
    assert_eq!(
        check["factory_values"],
        serde_json::json!(["PIN", "PUK", "management key"])
    );
    let list = hsm.ok(&["token", "list"]);
    assert!(
        list.contains("factory PIN, PUK, management key still set"),
        "{list}"
    );
    // Checking used no try.
    let json = hsm.ok_json(&["token", "list"]);
    assert_eq!(yubikey(&json, SERIAL)["pin"]["remaining"], 3);

    // Without a management key source, a factory card refuses key generation and says why,
    // before any PIN is asked for or tried.
    let pin_file = write(hsm.path(), "factory-pin", "123456");
    let err = hsm.fails(
        1,
        &[
            "key",
            "generate",
            "--token",
            &yk_uri(SERIAL, "9c", &pin_file),
            "--label",
            "k",
        ],
    );
    assert!(err.contains("token setup"), "{err}");
    let err = hsm.fails(
        1,
        &[
            "key",
            "generate",
            "--token",
            &format!("yubikey:serial={SERIAL};slot=9c"),
            "--label",
            "k",
        ],
    );
    assert!(
        err.contains("factory management key") && !err.contains("no PIN"),
        "{err}"
    );

    // Setup without a terminal and without new-PIN files refuses before changing anything.
    let err = hsm.fails(
        1,
        &[
            "--yes",
            "token",
            "setup",
            "--token",
            &format!("yubikey:serial={SERIAL}"),
        ],
    );
    assert!(err.contains("--new-pin-file"), "{err}");

    setup(&hsm, SERIAL);
    let check = hsm.ok_json(&[
        "token",
        "setup",
        "--token",
        &format!("yubikey:serial={SERIAL}"),
        "--check",
    ]);
    assert_eq!(check["factory_values"], serde_json::json!([]));
    let json = hsm.ok_json(&["token", "list"]);
    let yk = yubikey(&json, SERIAL);
    assert_eq!(yk["management_key_algorithm"], "aes192");
    assert_eq!(yk["management_key_protected"], true);
    assert_eq!(yk["management_key_default"], false);
}

#[test]
fn virtual_readers_are_ignored_unless_allowed() {
    if skip("virtual_readers_are_ignored_unless_allowed") {
        return;
    }
    let _card = VirtualCard::attach(0, SERIAL, (5, 4, 3)).unwrap();
    let out = Command::new(hsm_tests::rootkeeper_bin())
        .args(["--json", "token", "list"])
        .env_remove("ROOTKEEPER_ALLOW_VIRTUAL_READERS")
        .env(
            "ROOTKEEPER_DIR",
            std::env::temp_dir().join("rk-piv-virtual"),
        )
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let json: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert!(json["yubikeys"].as_array().unwrap().is_empty(), "{json:#}");
}

#[test]
fn management_key_from_a_file_and_a_wrong_one_refused() {
    if skip("management_key_from_a_file_and_a_wrong_one_refused") {
        return;
    }
    let _card = VirtualCard::attach(0, SERIAL, (5, 7, 1)).unwrap();
    let hsm = SoftHsm::new();
    let pin = write(hsm.path(), "pin", NEW_PIN);
    let puk = write(hsm.path(), "puk", NEW_PUK);
    let mgm = hsm.path().join("mgm.hex");
    hsm.ok(&[
        "--yes",
        "token",
        "setup",
        "--token",
        &format!("yubikey:serial={SERIAL}"),
        "--new-pin-file",
        pin.to_str().unwrap(),
        "--new-puk-file",
        puk.to_str().unwrap(),
        "--management-key-out",
        mgm.to_str().unwrap(),
    ]);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&mgm).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let key_hex = std::fs::read_to_string(&mgm).unwrap();
    assert_eq!(key_hex.trim().len(), 48, "AES-192 in hex: {key_hex}");

    // The key from the file (AES-192, firmware 5.7) authenticates a key generation.
    let with_mgm = |slot: &str, file: &Path| {
        format!(
            "{}&management-key-source=file:{}",
            yk_uri(SERIAL, slot, &pin),
            file.display()
        )
    };
    hsm.ok(&[
        "key",
        "generate",
        "--token",
        &with_mgm("82", &mgm),
        "--label",
        "from-file",
    ]);

    // A wrong management key is refused with a hint, and nothing is generated in the slot.
    let wrong = write(hsm.path(), "wrong.hex", &"11".repeat(24));
    let err = hsm.fails(
        1,
        &[
            "key",
            "generate",
            "--token",
            &with_mgm("83", &wrong),
            "--label",
            "wrong",
        ],
    );
    assert!(err.contains("management key"), "{err}");
    assert!(err.contains("hint:"), "{err}");
    assert!(
        !err.contains(&"11".repeat(24)) && !err.contains(key_hex.trim()),
        "no key material in errors: {err}"
    );
    let listed = hsm.ok(&["token", "list"]);
    assert!(
        listed.contains("slot=82") && !listed.contains("slot=83"),
        "{listed}"
    );
}
