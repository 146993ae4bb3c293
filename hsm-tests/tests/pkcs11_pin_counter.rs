//! PIN safety on the PKCS#11 path against a token with a real retry counter. SoftHSM keeps
//! none, so this uses OpenSC's PKCS#11 module (Debian's opensc) over an emulated PIV card
//! behind a private pcscd: a real PKCS#11 module reporting CKF_USER_PIN_FINAL_TRY and
//! CKF_USER_PIN_LOCKED from the card's counter. Run inside hsm-tests/piv/pcscd-ns; elsewhere
//! the test prints a skip line and passes.

use std::path::{Path, PathBuf};

use hsm_tests::SoftHsm;
use piv_emu::harness::{VirtualCard, in_private_pcscd};

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
    let card = listed["yubikeys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|y| y["serial"] == serial)
        .unwrap_or_else(|| panic!("card {serial} not listed: {listed}"));
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
fn final_try_is_refused_without_trying_and_a_locked_pin_is_named() {
    if !in_private_pcscd() {
        println!("skipped: not inside hsm-tests/piv/pcscd-ns (PIV_EMU_PCSCD != 1)");
        return;
    }
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
