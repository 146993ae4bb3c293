//! PKCS#11 through OpenSC over emulated PIV cards: PIN safety against a token with a real retry
//! counter, and two tokens that share a label and serial. SoftHSM keeps no retry counter
//! and makes no such twins, so this uses OpenSC's PKCS#11 module (Debian's opensc) over an emulated PIV card
//! behind a private pcscd: a real PKCS#11 module reporting CKF_USER_PIN_FINAL_TRY and
//! CKF_USER_PIN_LOCKED from the card's counter. `#[ignore]`d: hsm-tests/run runs it inside
//! hsm-tests/piv/pcscd-ns with `--ignored`; run anywhere else it fails.

use std::path::{Path, PathBuf};

use hsm_tests::SoftHsm;
use piv_emu::harness::VirtualCard;

mod piv_common;
use piv_common::{require_pcscd_ns, setup_with, yubikey};

fn opensc_module() -> PathBuf {
    [
        "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so",
        "/usr/lib/aarch64-linux-gnu/opensc-pkcs11.so",
        "/usr/lib/opensc-pkcs11.so",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .expect("OpenSC's PKCS#11 module (apt-get install opensc)")
}

/// The card's PIN retries, read through the PIV backend (without using a try).
fn card_retries(hsm: &SoftHsm, serial: u32) -> u64 {
    let listed = hsm.ok_json(&[
        "token",
        "list",
        "--module",
        opensc_module().to_str().unwrap(),
    ]);
    let card = yubikey(&listed, serial);
    card["pin"]["remaining"]
        .as_u64()
        .unwrap_or_else(|| panic!("no PIN retries in {card}"))
}

fn uri(module: &Path, pin_file: &Path) -> String {
    format!(
        "pkcs11:model=PKCS%2315%20emulated?module-path={}&pin-source=file:{}",
        module.display(),
        pin_file.display()
    )
}

#[test]
#[ignore = "needs hsm-tests/piv/pcscd-ns (emulated cards behind a private pcscd); hsm-tests/run runs it"]
fn final_try_is_refused_without_trying_and_a_locked_pin_is_named() {
    require_pcscd_ns();
    let serial = 27_182_818;
    let _card = VirtualCard::attach(0, serial, (5, 4, 3)).expect("attach an emulated card");
    let hsm = SoftHsm::new();
    let module = opensc_module();
    let wrong = hsm.path().join("wrong-pin");
    std::fs::write(&wrong, "000000").unwrap();
    let generate = |extra: &[&str]| {
        let mut args = vec!["key", "generate", "--label", "k"];
        args.extend_from_slice(extra);
        let token = uri(&module, &wrong);
        args.extend(["--token", token.as_str()]);
        hsm.run(&args)
    };
    assert_eq!(card_retries(&hsm, serial), 3);

    let first = generate(&[]);
    assert_eq!(first.code, 1, "{}", first.stderr);
    assert!(
        first.stderr.contains("wrong PIN for token `PIV_II`"),
        "{}",
        first.stderr
    );
    let second = generate(&[]);
    assert!(
        second
            .stderr
            .contains("the token now reports: final try (the next wrong PIN locks the token)"),
        "{}",
        second.stderr
    );
    assert_eq!(card_retries(&hsm, serial), 1);

    // The token says final try: refused before any PIN is sent, the last retry kept.
    let third = generate(&[]);
    assert_eq!(third.code, 1);
    assert!(
        third
            .stderr
            .contains("reports that the next wrong PIN locks it; no PIN was tried"),
        "{}",
        third.stderr
    );
    assert!(
        third
            .stderr
            .contains("hint: one wrong PIN now locks the token")
            && third.stderr.contains("--last-pin-attempt"),
        "{}",
        third.stderr
    );
    assert_eq!(
        card_retries(&hsm, serial),
        1,
        "the refusal must not use the last retry"
    );

    // The operator insists (with the wrong PIN): the token locks, and says so.
    let fourth = generate(&["--last-pin-attempt"]);
    assert_eq!(fourth.code, 1);
    assert!(
        fourth.stderr.contains("token `PIV_II`") && fourth.stderr.contains("locked"),
        "{}",
        fourth.stderr
    );
    assert_eq!(card_retries(&hsm, serial), 0);
    let fifth = generate(&["--last-pin-attempt"]);
    assert!(
        fifth.stderr.contains("the user PIN of token `PIV_II`")
            && fifth.stderr.contains("is locked"),
        "{}",
        fifth.stderr
    );
    assert!(
        fifth
            .stderr
            .contains("hint: the security officer must unblock"),
        "{}",
        fifth.stderr
    );
}

/// Two PIV cards through OpenSC are two tokens with the same label (`PIV_II`) and serial
/// (`00000000`): each keeps its own login (sessions are per module slot, not per serial).
#[test]
#[ignore = "needs hsm-tests/piv/pcscd-ns (emulated cards behind a private pcscd); hsm-tests/run runs it"]
fn two_tokens_with_one_serial_keep_their_own_logins() {
    require_pcscd_ns();
    let cards = [
        (31_415_926, "471193", "87654321"),
        (16_180_339, "582204", "76543210"),
    ];
    let _a = VirtualCard::attach(0, cards[0].0, (5, 4, 3)).expect("attach card A");
    let _b = VirtualCard::attach(1, cards[1].0, (5, 4, 3)).expect("attach card B");
    let hsm = SoftHsm::new();
    let module = opensc_module();
    let mut keys = Vec::new();
    for (serial, pin, puk) in cards {
        let pin_file = setup_with(&hsm, serial, pin, puk);
        let generated = hsm.ok_json(&[
            "key",
            "generate",
            "--token",
            &format!(
                "yubikey:serial={serial};slot=9a?pin-source=file:{}",
                pin_file.display()
            ),
            "--label",
            &format!("root-{serial}"),
        ]);
        keys.push((generated["key_id"].as_str().unwrap().to_owned(), pin_file));
    }

    // OpenSC shows two tokens with one serial, and a URI for each.
    let list = hsm.ok_json(&["token", "list", "--module", module.to_str().unwrap()]);
    let tokens = list["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 2, "{list:#}");
    assert_eq!(tokens[0]["serial"], "00000000", "{list:#}");
    assert_eq!(tokens[0]["serial"], tokens[1]["serial"], "{list:#}");
    assert_ne!(tokens[0]["uri"], tokens[1]["uri"], "{list:#}");
    // The key's URI, and how a login to its token is reported (with the slot when the
    // labels are equal too).
    let twins = tokens[0]["label"] == tokens[1]["label"];
    let key_uri = |key_id: &str| -> (String, String) {
        tokens
            .iter()
            .find_map(|t| {
                let keys = t["keys"].as_array()?;
                let key = keys.iter().find(|k| k["key_id"] == key_id)?;
                let label = t["label"].as_str()?;
                let token = if twins {
                    format!("token `{label}` (serial 00000000, slot {})", t["slot_id"])
                } else {
                    format!("token `{label}` (serial 00000000)")
                };
                Some((key["uri"].as_str()?.to_owned(), token))
            })
            .unwrap_or_else(|| panic!("key {key_id} not listed through OpenSC: {list:#}"))
    };

    // One command signs with a key on each token: root init makes each root certificate.
    hsm.token("repo");
    let targets = hsm.key("repo", "targets", "targets");
    let snapshot = hsm.key("repo", "snapshot", "snapshot");
    let ts = hsm_tests::fixture("notary-0.7-samples/timestamp.key.json");
    let gun = "registry.example.com/admin/two-piv";
    let mut args = vec![
        "-v".to_owned(),
        "root".into(),
        "init".into(),
        "--gun".into(),
        gun.into(),
    ];
    let mut logins = Vec::new();
    for (key_id, pin_file) in &keys {
        let (uri, token) = key_uri(key_id);
        args.push("--root-key".into());
        args.push(format!("{uri}&pin-source=file:{}", pin_file.display()));
        logins.push(format!("logged in to {token}"));
    }
    args.extend(
        [
            "--threshold",
            "2",
            "--targets-key",
            &targets,
            "--snapshot-key",
            &snapshot,
            "--timestamp-key",
            ts.to_str().unwrap(),
        ]
        .map(String::from),
    );
    let run = hsm.run(&hsm_tests::strs(&args));
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    for line in &logins {
        assert_eq!(
            run.stderr.matches(line.as_str()).count(),
            1,
            "{line}:\n{}",
            run.stderr
        );
    }
    let status = hsm.ok_json(&["root", "status", "--gun", gun]);
    let root = &status["drafts"][0]["root"];
    let mut named: Vec<&str> = root["signers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key_id"].as_str().unwrap())
        .collect();
    named.sort_unstable();
    let mut expected: Vec<&str> = keys.iter().map(|(id, _)| id.as_str()).collect();
    expected.sort_unstable();
    assert_eq!(
        named, expected,
        "the draft names one key of each card: {status:#}"
    );
}
