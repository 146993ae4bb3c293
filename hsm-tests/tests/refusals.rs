//! Bad input gets one clear line, a hint, a non-zero exit, and nothing lost or half-written.

use hsm_tests::{SoftHsm, strs};

/// The failure is one `error:` line and one `hint:` line, last (what `root sign` shows before
/// a PIN prompt may come first).
fn one_error_line_and_a_hint(stderr: &str) {
    let lines: Vec<&str> = stderr.lines().collect();
    let errors = lines.iter().filter(|l| l.starts_with("error:")).count();
    let hints = lines.iter().filter(|l| l.starts_with("hint:")).count();
    assert!(
        errors == 1
            && hints == 1
            && lines.len() >= 2
            && lines[lines.len() - 2].starts_with("error: ")
            && lines[lines.len() - 1].starts_with("hint: "),
        "want one `error:` and one `hint:` line, last; got:\n{stderr}"
    );
}

#[test]
fn export_with_one_of_two_root_signatures_is_refused() {
    let gun = "example.com/refuse/threshold";
    let (hsm, roots) = SoftHsm::with_draft(gun);
    hsm.sign_with_repo_keys(gun, &roots[..1]);
    let err = hsm.fails(1, &["root", "export", "--gun", gun, "--out", "out"]);
    assert!(
        err.contains("rule `root-threshold` broken: 1 of 2 required root signatures"),
        "{err}"
    );
    assert!(
        err.contains("hint: collect the missing signatures"),
        "{err}"
    );
    one_error_line_and_a_hint(&err);
    assert!(!hsm.path().join("out").exists(), "nothing may be written");
    assert!(
        !hsm.trust_dir()
            .join("repos")
            .join(gun)
            .join("root")
            .exists()
    );
}

#[test]
fn a_root_with_one_changed_byte_is_refused() {
    let gun = "example.com/refuse/tamper";
    let (hsm, roots) = SoftHsm::with_draft(gun);
    hsm.sign_2_of_3(gun, &roots);
    hsm.ok(&["root", "export", "--gun", gun, "--out", "out"]);
    let path = hsm.path().join("out/root.json");
    hsm.ok(&["root", "verify", path.to_str().unwrap()]);

    // One byte of the signed expiry date: 2 -> 3 in the year's last digit... any digit works.
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes
        .windows(11)
        .position(|w| w == b"\"expires\":\"")
        .unwrap()
        + 14;
    bytes[at] = if bytes[at] == b'9' {
        b'8'
    } else {
        bytes[at] + 1
    };
    let tampered = hsm.path().join("tampered-root.json");
    std::fs::write(&tampered, &bytes).unwrap();
    let err = hsm.fails(1, &["root", "verify", tampered.to_str().unwrap()]);
    assert!(
        err.contains("rule `signatures` broken") && err.contains("does not verify"),
        "{err}"
    );
    one_error_line_and_a_hint(&err);
    let shown = hsm.run(&["inspect", tampered.to_str().unwrap()]);
    assert_eq!(shown.code, 1, "inspect of a broken signature fails");
    assert_eq!(
        shown.stdout.matches("INVALID").count(),
        2,
        "{}",
        shown.stdout
    );
    assert!(
        shown.stdout.contains("NOT safe to upload"),
        "{}",
        shown.stdout
    );

    // A byte outside the signed part (formatting) breaks the byte-exact rule.
    let mut spaced = std::fs::read(&path).unwrap();
    spaced.insert(1, b' ');
    std::fs::write(&tampered, &spaced).unwrap();
    let err = hsm.fails(1, &["root", "verify", tampered.to_str().unwrap()]);
    assert!(err.contains("canonical-round-trip"), "{err}");
}

#[test]
fn a_wrong_pin_says_so_with_the_retry_state_and_writes_nothing() {
    let gun = "example.com/refuse/pin";
    let (hsm, _) = SoftHsm::with_draft(gun);
    let before = std::fs::read(
        hsm.trust_dir()
            .join("repos")
            .join(gun)
            .join("pending/root.json"),
    )
    .unwrap();
    std::fs::write(hsm.path().join("wrong-pin"), "0000").unwrap();
    let uri = format!(
        "pkcs11:token=root-a;object=root?pin-source=file:{}",
        hsm.path().join("wrong-pin").display()
    );
    let err = hsm.fails(1, &["root", "sign", "--gun", gun, "--key", &uri]);
    assert!(err.contains("wrong PIN for token `root-a`"), "{err}");
    // SoftHSM keeps no retry counter but sets CKF_USER_PIN_COUNT_LOW after a failure: we show it.
    assert!(
        err.contains("the token now reports: retry count low"),
        "{err}"
    );
    one_error_line_and_a_hint(&err);
    assert!(!err.contains("0000"), "the PIN must never be echoed");
    let after = std::fs::read(
        hsm.trust_dir()
            .join("repos")
            .join(gun)
            .join("pending/root.json"),
    )
    .unwrap();
    assert_eq!(before, after);
    let listed = hsm.ok_json(&["token", "list"]);
    let root_a = listed["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["label"] == "root-a")
        .unwrap();
    assert_eq!(root_a["pin_state"], "count-low");
}

#[test]
fn an_unknown_token_lists_the_tokens_present() {
    let gun = "example.com/refuse/token";
    let (hsm, _) = SoftHsm::with_draft(gun);
    let err = hsm.fails(
        1,
        &[
            "root",
            "sign",
            "--gun",
            gun,
            "--key",
            &hsm.key_uri("root-x", "root"),
        ],
    );
    assert!(
        err.contains("no token matches pkcs11:token=root-x"),
        "{err}"
    );
    for t in ["token=root-a", "token=root-b", "token=root-c", "token=repo"] {
        assert!(err.contains(t), "{t} missing from: {err}");
    }
    assert!(!err.contains("pin-source"), "{err}");
    one_error_line_and_a_hint(&err);
}

#[test]
fn a_pin_inside_a_uri_is_refused() {
    let hsm = SoftHsm::new();
    hsm.token("root-a");
    let err = hsm.fails(
        2,
        &[
            "key",
            "generate",
            "--token",
            "pkcs11:token=root-a?pin-value=4711",
            "--label",
            "k",
        ],
    );
    assert!(
        err.contains("refusing a PIN inside the key URI (pin-value)"),
        "{err}"
    );
    assert!(
        err.contains("hint:") && err.contains("shell history"),
        "{err}"
    );
    assert!(!err.contains("4711"), "{err}");
    assert!(hsm.ok(&["token", "list"]).contains("no keys"));
}

#[test]
fn a_second_key_with_a_used_label_is_refused() {
    let hsm = SoftHsm::new();
    hsm.token("root-a");
    hsm.key("root-a", "root-2026", "root");
    let uri = hsm.token_uri("root-a");
    let err = hsm.fails(
        1,
        &[
            "key",
            "generate",
            "--token",
            &uri,
            "--label",
            "root-2026",
            "--role",
            "root",
        ],
    );
    assert!(
        err.contains("token `root-a` already holds an object labelled `root-2026`"),
        "{err}"
    );
    one_error_line_and_a_hint(&err);
    let listed = hsm.ok_json(&["token", "list"]);
    let keys = &listed["tokens"][0]["keys"];
    assert_eq!(keys.as_array().unwrap().len(), 1, "{listed}");
}

#[test]
fn an_expiry_in_the_past_or_an_unmeetable_threshold_is_refused() {
    let hsm = SoftHsm::new();
    let roots = hsm.standard_keys();
    hsm.timestamp_key(None, "", "ts.json");
    let targets = hsm.key_uri("repo", "targets");
    let snapshot = hsm.key_uri("repo", "snapshot");
    let base = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "root",
            "init",
            "--gun",
            "example.com/refuse/expiry",
            "--root-key",
            &roots[0],
            "--root-key",
            &roots[1],
            "--targets-key",
            &targets,
            "--snapshot-key",
            &snapshot,
            "--timestamp-key",
            "ts.json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |args: Vec<String>, code: i32| hsm.fails(code, &strs(&args));
    let err = run(
        base(&["--threshold", "2", "--expires", "2020-01-01T00:00:00Z"]),
        1,
    );
    assert!(
        err.contains("--expires 2020-01-01T00:00:00Z is in the past"),
        "{err}"
    );
    let err = run(base(&["--threshold", "3"]), 1);
    assert!(
        err.contains("a threshold of 3 cannot be met with 2 root key(s)"),
        "{err}"
    );
    let err = run(base(&[]), 2);
    assert!(err.contains("explicit --threshold"), "{err}");
    assert!(
        !hsm.trust_dir().join("repos").exists(),
        "no draft may be written"
    );
}

#[test]
fn no_pin_and_no_terminal_is_refused_with_a_hint() {
    let hsm = SoftHsm::new();
    hsm.token("root-a");
    let err = hsm.fails(
        1,
        &[
            "key",
            "generate",
            "--token",
            "pkcs11:token=root-a",
            "--label",
            "k",
        ],
    );
    assert!(err.contains("no PIN for token `root-a`"), "{err}");
    one_error_line_and_a_hint(&err);
}
