//! YubiKey PIV end to end, against emulated YubiKeys (hsm-tests/piv-emu) behind a private
//! pcscd with the vpcd driver. Every test is `#[ignore]`d so that a plain `cargo test` does
//! not pretend to have run them; `hsm-tests/run` runs them inside the namespace:
//!
//! ```sh
//! cargo build --bins -p rootkeeper -p piv-emu
//! hsm-tests/piv/pcscd-ns cargo test -p hsm-tests --test piv -- --ignored --test-threads=1
//! ```
//!
//! Run outside `pcscd-ns` (PIV_EMU_PCSCD != 1), or without a prerequisite, a test fails.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use hsm_tests::{NotaryServer, Run, SoftHsm, root_signatures_valid, write};
use piv_emu::EmulatorCa;
use piv_emu::card::Fault;
use piv_emu::harness::{CardOptions, TouchDir, VirtualCard};
use serde_json::Value;

mod piv_common;
use piv_common::{require_pcscd_ns, setup_with, yubikey};

const SERIAL: u32 = 12345678;
const NEW_PIN: &str = "471193";
const NEW_PUK: &str = "87654321";
/// The factory management key (3DES), in hex, as an operator would write it to a file.
const FACTORY_MGM_HEX: &str = "010203040506070801020304050607080102030405060708";

/// Runs rootkeeper as [`SoftHsm::run`] does, reading its stderr while it runs: every touch
/// notice is answered by pressing the emulated card's button for that touch, and the button
/// is never pressed before its notice. The card waits for the press, so an operation that
/// reached the card before its notice would hang and time out (`timeout N` in the card's
/// log, and rootkeeper fails). Returns the run and how many notices it gave.
fn run_pressing(hsm: &SoftHsm, touch: &TouchDir, args: &[&str]) -> (Run, u64) {
    let touched = |log: &[String]| log.iter().filter(|l| l.starts_with("touched ")).count();
    let before = u64::try_from(touched(&touch.log())).unwrap();
    let mut child = Command::new(hsm_tests::rootkeeper_bin())
        .args(args)
        .env("SOFTHSM2_CONF", hsm.path().join("softhsm2.conf"))
        .env("ROOTKEEPER_DIR", hsm.trust_dir())
        .env_remove("ROOTKEEPER_PIN")
        .env_remove("ROOTKEEPER_PKCS11_MODULE")
        .current_dir(hsm.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run rootkeeper");
    let mut stdout = child.stdout.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).unwrap();
        text
    });
    let mut stderr = String::new();
    let mut notices = 0;
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        if line.starts_with("touch the YubiKey (serial ") {
            notices += 1;
            let n = before + notices;
            let log = touch.log();
            assert!(
                !log.iter().any(|l| l.starts_with(&format!("touched {n} "))),
                "touch {n} was consumed before its notice: {log:?}"
            );
            touch.press(n).unwrap();
        }
        stderr.push_str(&line);
        stderr.push('\n');
    }
    let code = child.wait().unwrap().code().unwrap_or(-1);
    let run = Run {
        code,
        stdout: out.join().unwrap(),
        stderr,
    };
    let log = touch.log();
    assert!(
        !log.iter().any(|l| l.starts_with("timeout ")),
        "the card waited for a touch nobody announced: {log:?}\n{}",
        run.stderr
    );
    let after = u64::try_from(touched(&log)).unwrap();
    assert_eq!(
        after - before,
        notices,
        "one notice per touch the card consumed: {log:?}\n{}",
        run.stderr
    );
    (run, notices)
}

/// The emulated card's saved state (the `--state` file) as JSON.
fn card_state(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The private key the emulated card holds in `slot` (from its state file), to show that a
/// refused command left it alone.
fn card_key(state: &Path, slot: u8) -> Value {
    card_state(state)["keys"][slot.to_string()]["secret"].clone()
}

fn yk_uri(serial: u32, slot: &str, pin: &Path) -> String {
    format!(
        "yubikey:serial={serial};slot={slot}?pin-source=file:{}",
        pin.display()
    )
}

/// `token setup` with the test's new PIN and PUK; returns the PIN file.
fn setup(hsm: &SoftHsm, serial: u32) -> PathBuf {
    setup_with(hsm, serial, NEW_PIN, NEW_PUK)
}

/// An emulated card that keeps its state in a file of the test's folder, so that a test can
/// unplug it, look at or change what it holds, and plug it in again (with faults).
fn card_with_state(
    hsm: &SoftHsm,
    serial: u32,
    firmware: (u8, u8, u8),
) -> (PathBuf, CardOptions, VirtualCard) {
    let state = hsm.path().join("card.json");
    let options = CardOptions {
        state_file: Some(state.clone()),
        ..CardOptions::new(0, serial, firmware)
    };
    let card = VirtualCard::spawn(options.clone()).unwrap();
    (state, options, card)
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
#[ignore = "needs hsm-tests/piv/pcscd-ns (emulated cards behind a private pcscd); hsm-tests/run runs it"]
fn two_of_two_root_on_a_yubikey_and_softhsm_published_and_trusted() {
    require_pcscd_ns();
    let hsm = SoftHsm::new();
    // The card waits for each touch until the test presses its button, which the test does
    // only when it has read the touch notice on rootkeeper's stderr.
    let touch = TouchDir::new(&hsm.path().join("touch")).unwrap();
    let card = VirtualCard::spawn(CardOptions {
        touch_dir: Some(touch.path().to_owned()),
        ..CardOptions::new(0, SERIAL, (5, 4, 3))
    })
    .unwrap();
    let server = NotaryServer::start();
    let pin = setup(&hsm, SERIAL);

    // The YubiKey root key: generated on the card, touch for every signature (the
    // self-signed certificate is the first).
    let (run, notices) = run_pressing(
        &hsm,
        &touch,
        &[
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
        ],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(notices, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "touch the YubiKey (serial {SERIAL}) when it blinks"
        )),
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
    hsm.timestamp_key(Some(&server), gun, "ts.json");
    let (run, notices) = run_pressing(
        &hsm,
        &touch,
        &[
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
        ],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(notices, 1, "the root certificate: {}", run.stderr);
    // The custodian of the YubiKey signs in a run of their own; with --json, stdout is one
    // clean JSON document and the notice goes to stderr.
    let (run, notices) = run_pressing(
        &hsm,
        &touch,
        &["--json", "root", "sign", "--gun", gun, "--key", &yk_root],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(notices, 1, "one signature, one touch: {}", run.stderr);
    let doc: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {}", run.stdout));
    assert!(doc["signed"].is_array(), "{doc:#}");
    assert!(!run.stdout.contains("touch the YubiKey"), "{}", run.stdout);
    hsm.sign_with_repo_keys(gun, &[&hsm_root]);
    hsm.ok(&["root", "verify", "--gun", gun]);
    hsm.ok(&["root", "export", "--gun", gun, "--out", "out"]);
    let root = std::fs::read(hsm.path().join("out/root.json")).unwrap();
    assert_eq!(root_signatures_valid(&root), 2);
    let out = hsm.publish(&server, "out", gun);
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
#[ignore = "needs hsm-tests/piv/pcscd-ns (emulated cards behind a private pcscd); hsm-tests/run runs it"]
fn yubico_tools_see_the_key_and_certificate_rootkeeper_made() {
    require_pcscd_ns();
    let _card = VirtualCard::attach(0, SERIAL, (5, 4, 3)).unwrap();
    let hsm = SoftHsm::new();
    let pin = setup(&hsm, SERIAL);
    let generated = hsm.ok_json(&[
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
    let key_id = generated["key_id"].as_str().unwrap().to_owned();
    assert_eq!(key_id.len(), 64, "{generated:#}");
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
    // The key's identity is the same full canonical key ID everywhere.
    assert_eq!(slot["key_id"], key_id.as_str(), "{yk:#}");
    let text = hsm.ok(&["token", "list"]);
    assert!(text.contains(&format!("key ID {key_id}")), "{text}");
    let keys = hsm.ok(&["key", "list"]);
    assert!(keys.contains(&format!("key ID {key_id}")), "{keys}");
    let keys = hsm.ok_json(&["key", "list"]);
    assert_eq!(keys["inventory"][0]["key_id"], key_id.as_str(), "{keys:#}");
}

#[test]
#[ignore = "needs hsm-tests/piv/pcscd-ns (emulated cards behind a private pcscd); hsm-tests/run runs it"]
fn two_yubikeys_without_serial_refused_with_serial_the_right_one_used() {
    require_pcscd_ns();
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
#[ignore = "needs hsm-tests/piv/pcscd-ns (emulated cards behind a private pcscd); hsm-tests/run runs it"]
fn attestation_verified_against_the_emulator_ca_and_refused_against_another() {
    require_pcscd_ns();
    let hsm = SoftHsm::new();
    let (state, options, card) = card_with_state(&hsm, SERIAL, (5, 7, 1));
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
    assert_eq!(key_id.len(), 64, "the full canonical key ID: {generated:#}");
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
    assert!(
        err.contains("not recognised") && err.contains("does not chain"),
        "{err}"
    );
    assert!(
        err.contains("hint: the file given with --attestation-roots does not hold the CA"),
        "{err}"
    );
    assert!(
        !err.contains("genuine"),
        "an unknown CA is no proof of a fake: {err}"
    );
    // Yubico's built-in roots: the emulator is not Yubico. That is "not recognised", with
    // the way out, not "the device may not be genuine".
    let err = hsm.fails(1, &["key", "attest", &uri]);
    assert!(
        err.contains(&format!(
            "error: attestation of {uri} not recognised: the device certificate"
        )) && err.contains("does not chain to Yubico"),
        "{err}"
    );
    assert!(err.contains("--attestation-roots FILE"), "{err}");
    assert!(!err.contains("genuine"), "{err}");
    assert_eq!(err.matches("error:").count(), 1, "{err}");
    assert_eq!(err.matches("hint:").count(), 1, "{err}");

    // A real verification failure: the card keeps another card's device certificate, so
    // its slot attestation (signed with its own F9 key) does not verify. That is the
    // "may not be genuine" case.
    let ca = card.ca();
    drop(card);
    let mut saved = card_state(&state);
    saved["objects"][0x005f_ff01_u32.to_string()] =
        serde_json::json!(ca.device_certificate_object(SERIAL + 1));
    std::fs::write(&state, saved.to_string()).unwrap();
    let _card = VirtualCard::spawn(options).unwrap();
    let ca_file = hsm.path().join("emulator-ca.pem");
    let err = hsm.fails(
        1,
        &[
            "key",
            "attest",
            &uri,
            "--attestation-roots",
            ca_file.to_str().unwrap(),
        ],
    );
    assert!(err.contains("does not verify"), "{err}");
    assert!(err.contains("may not be genuine"), "{err}");
}

#[test]
#[ignore = "needs hsm-tests/piv/pcscd-ns (emulated cards behind a private pcscd); hsm-tests/run runs it"]
fn wrong_pin_twice_then_a_refusal_that_keeps_the_last_retry() {
    require_pcscd_ns();
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
#[ignore = "needs hsm-tests/piv/pcscd-ns (emulated cards behind a private pcscd); hsm-tests/run runs it"]
fn token_setup_detects_factory_values_without_trying_them() {
    require_pcscd_ns();
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
#[ignore = "needs hsm-tests/piv/pcscd-ns (emulated cards behind a private pcscd); hsm-tests/run runs it"]
fn virtual_readers_are_ignored_unless_allowed() {
    require_pcscd_ns();
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
#[ignore = "needs hsm-tests/piv/pcscd-ns (emulated cards behind a private pcscd); hsm-tests/run runs it"]
fn management_key_from_a_file_and_a_wrong_one_refused() {
    require_pcscd_ns();
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

#[test]
#[ignore = "needs hsm-tests/piv/pcscd-ns (emulated cards behind a private pcscd); hsm-tests/run runs it"]
fn pin_file_whitespace_is_kept_and_named_and_low_retries_announced() {
    require_pcscd_ns();
    let _card = VirtualCard::attach(0, SERIAL, (5, 4, 3)).unwrap();
    let hsm = SoftHsm::new();
    let pin = setup(&hsm, SERIAL);
    // The right PIN with a trailing space: the space is part of the PIN, which is wrong.
    let padded = hsm.path().join("padded-pin");
    std::fs::write(&padded, format!("{NEW_PIN} \n")).unwrap();
    let err = hsm.fails(
        1,
        &[
            "key",
            "generate",
            "--token",
            &yk_uri(SERIAL, "9c", &padded),
            "--label",
            "k",
        ],
    );
    assert!(
        err.contains("wrong PIN for YubiKey serial 12345678")
            && err.contains("2 PIN retries left")
            && err.contains(&format!(
                "the PIN came from {}, whose first line has leading or trailing whitespace, which was kept",
                padded.display()
            )),
        "{err}"
    );
    assert!(
        err.contains("hint: rootkeeper keeps a PIN file's first line exactly"),
        "{err}"
    );
    assert!(!err.contains(NEW_PIN), "the PIN is never printed: {err}");
    // The next login is announced with the retries left, before the PIN is sent.
    let run = hsm.run(&[
        "key",
        "generate",
        "--token",
        &yk_uri(SERIAL, "9c", &pin),
        "--label",
        "k",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("warning: YubiKey serial 12345678 has 2 PIN retries left"),
        "{}",
        run.stderr
    );
}

#[test]
#[ignore = "needs hsm-tests/piv/pcscd-ns (emulated cards behind a private pcscd); hsm-tests/run runs it"]
fn slot_read_errors_are_reported_never_taken_for_an_empty_slot() {
    require_pcscd_ns();
    let hsm = SoftHsm::new();
    let (state, options, card) = card_with_state(&hsm, SERIAL, (5, 4, 3));
    let pin = setup(&hsm, SERIAL);
    let root = hsm.ok_json(&[
        "key",
        "generate",
        "--token",
        &yk_uri(SERIAL, "9c", &pin),
        "--label",
        "root-yk",
        "--role",
        "root",
    ]);
    drop(card);
    let key = card_key(&state, 0x9c);
    assert!(key.is_array(), "{}", card_state(&state));

    // The card fails to read the slot's metadata, then its certificate (6F00): each time
    // the slot is reported unreadable, and nothing is generated, with or without --force.
    for (fault, what) in [
        (
            Fault::Metadata(0x9c),
            "reading the metadata of slot 9c failed",
        ),
        (
            Fault::GetData(0x005f_c10a),
            "reading the certificate of slot 9c failed",
        ),
    ] {
        let card = VirtualCard::spawn(CardOptions {
            faults: vec![fault],
            ..options.clone()
        })
        .unwrap();
        for extra in [&[][..], &["--force", "--yes"][..]] {
            let mut args = vec!["key", "generate", "--label", "other", "--token"];
            let token = yk_uri(SERIAL, "9c", &pin);
            args.push(&token);
            args.extend_from_slice(extra);
            let err = hsm.fails(1, &args);
            assert!(
                err.contains(&format!("YubiKey serial {SERIAL}: {what}")),
                "{err}"
            );
            assert!(err.contains("hint:"), "{err}");
        }
        let list = hsm.ok_json(&["token", "list"]);
        let yk = yubikey(&list, SERIAL);
        assert_eq!(yk["unreadable_slots"][0]["slot"], "9c", "{yk:#}");
        let text = hsm.ok(&["token", "list"]);
        assert!(text.contains("slot 9c: not readable"), "{text}");
        drop(card);
        assert_eq!(card_key(&state, 0x9c), key, "the key in 9c was not touched");
    }
    // Read normally again: the same key.
    let _card = VirtualCard::spawn(options).unwrap();
    let list = hsm.ok_json(&["token", "list"]);
    assert_eq!(
        yubikey(&list, SERIAL)["slots"][0]["key_id"],
        root["key_id"],
        "{list:#}"
    );
}

#[test]
#[ignore = "needs hsm-tests/piv/pcscd-ns (emulated cards behind a private pcscd); hsm-tests/run runs it"]
fn firmware_without_metadata_a_key_without_certificate_is_not_overwritten() {
    require_pcscd_ns();
    let serial = 4_343_434;
    let hsm = SoftHsm::new();
    let (state, options, card) = card_with_state(&hsm, serial, (4, 3, 5));
    // Another tool made a key in 9c and wrote no certificate (yubico-piv-tool's generate
    // does just that; its selfsign step is a separate action).
    let public = tool(
        "yubico-piv-tool",
        &[
            "-r",
            "Virtual PCD 00 00",
            &format!("--key={FACTORY_MGM_HEX}"),
            "-a",
            "generate",
            "-s",
            "9c",
            "-A",
            "ECCP256",
        ],
    );
    assert!(public.contains("BEGIN PUBLIC KEY"), "{public}");
    drop(card);
    let key = card_key(&state, 0x9c);
    assert!(key.is_array(), "{}", card_state(&state));
    let _card = VirtualCard::spawn(options).unwrap();

    let list = hsm.ok_json(&["token", "list"]);
    let yk = yubikey(&list, serial);
    assert_eq!(yk["firmware"], "4.3.5");
    assert!(
        yk["slots"].as_array().unwrap().is_empty(),
        "no certificate, no metadata: {yk:#}"
    );

    // The operator gives the factory PIN and management key explicitly, in files.
    let pin = write(hsm.path(), "pin", "123456");
    let mgm = write(hsm.path(), "mgm.hex", FACTORY_MGM_HEX);
    let token = |slot: &str| {
        format!(
            "{}&management-key-source=file:{}",
            yk_uri(serial, slot, &pin),
            mgm.display()
        )
    };
    let err = hsm.fails(
        1,
        &[
            "key",
            "generate",
            "--token",
            &token("9c"),
            "--label",
            "root-yk",
        ],
    );
    assert!(
        err.contains(&format!(
            "slot 9c of YubiKey serial {serial} may hold a key"
        )) && err.contains("firmware 4.3.5 cannot say whether it holds a key"),
        "{err}"
    );
    assert!(err.contains("hint:") && err.contains("--force"), "{err}");
    let list = hsm.ok_json(&["token", "list"]);
    assert_eq!(
        yubikey(&list, serial)["pin"]["remaining"],
        3,
        "no PIN was tried"
    );
    let probe = hsm.path().join("probe.json");
    std::fs::copy(&state, &probe).unwrap();
    assert_eq!(card_key(&probe, 0x9c), key, "the key in 9c is still there");

    // A slot with rootkeeper's certificate is provably filled, even without metadata.
    hsm.ok(&[
        "--yes",
        "key",
        "generate",
        "--token",
        &token("9a"),
        "--label",
        "first",
        "--force",
    ]);
    let err = hsm.fails(
        1,
        &[
            "key",
            "generate",
            "--token",
            &token("9a"),
            "--label",
            "second",
        ],
    );
    assert!(
        err.contains("slot 9a of YubiKey serial 4343434 already holds a key"),
        "{err}"
    );

    // With --force (and the confirmation) the operator may replace the key in 9c.
    hsm.ok(&[
        "--yes",
        "key",
        "generate",
        "--token",
        &token("9c"),
        "--label",
        "root-yk",
        "--force",
    ]);
    std::fs::copy(&state, &probe).unwrap();
    assert_ne!(card_key(&probe, 0x9c), key, "replaced on --force");
}
