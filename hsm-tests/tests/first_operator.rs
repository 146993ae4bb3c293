//! What a first-time operator gets wrong, made on purpose against real parts (SoftHSM, the
//! real binary, notary-server): each test makes the mistake, asserts the exact `error:` and
//! `hint:` lines (or the warning), and that nothing changed and no token was logged in to
//! when the refusal must come before any PIN.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use hsm_tests::{NotaryServer, Run, SoftHsm, TEST_PIN, strs, tree};
use serde_json::Value;

/// The last two lines of stderr are one `error:` line and one `hint:` line (what `root sign`
/// shows before a PIN prompt may come first); returns them without their prefixes.
fn refusal(run: &Run) -> (String, String) {
    let lines: Vec<&str> = run.stderr.lines().collect();
    let errors = lines.iter().filter(|l| l.starts_with("error: ")).count();
    let hints = lines.iter().filter(|l| l.starts_with("hint: ")).count();
    assert!(
        errors == 1 && hints == 1 && lines.len() >= 2,
        "want one `error:` and one `hint:` line; got:\n{}",
        run.stderr
    );
    let error = lines[lines.len() - 2].strip_prefix("error: ");
    let hint = lines[lines.len() - 1].strip_prefix("hint: ");
    match (error, hint) {
        (Some(e), Some(h)) => (e.to_owned(), h.to_owned()),
        _ => panic!("the error and hint must come last:\n{}", run.stderr),
    }
}

/// Runs and insists on exit 1 with one error and one hint.
fn refused(hsm: &SoftHsm, args: &[&str]) -> (String, String, Run) {
    let run = hsm.run(args);
    assert_eq!(run.code, 1, "{args:?}:\n{}\n{}", run.stdout, run.stderr);
    let (e, h) = refusal(&run);
    (e, h, run)
}

fn no_login(run: &Run) {
    assert!(
        !run.stderr.contains("logged in to"),
        "no token may be logged in to:\n{}",
        run.stderr
    );
}

fn pending(hsm: &SoftHsm, gun: &str, name: &str) -> PathBuf {
    hsm.trust_dir()
        .join("repos")
        .join(gun)
        .join("pending")
        .join(name)
}

/// A second 2-of-3 draft with the keys of [`SoftHsm::draft_2_of_3`].
fn another_draft(hsm: &SoftHsm, roots: &[String], gun: &str) {
    let mut init = hsm.init_2_of_3(roots, "ts.json");
    init.extend(["--gun".into(), gun.into()]);
    hsm.ok(&strs(&init));
}

fn targets(hsm: &SoftHsm) -> String {
    hsm.key_uri("repo", "targets")
}

/// The signers of a role in `root status --json`, by token label.
fn signer(hsm: &SoftHsm, gun: &str, role: &str, token: &str) -> Value {
    let status = hsm.ok_json(&["root", "status", "--gun", gun]);
    status["drafts"][0][role]["signers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            s["uri"]
                .as_str()
                .unwrap()
                .contains(&format!("token={token};"))
        })
        .unwrap_or_else(|| panic!("no {role} signer on {token}: {status:#}"))
        .clone()
}

fn write_file(hsm: &SoftHsm, name: &str, text: &str) -> String {
    let path = hsm.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

// --- 1. A signature after export; taking one back ------------------------------------------

#[test]
fn signing_an_exported_root_is_refused_saying_what_was_exported_and_what_to_do() {
    let gun = "registry.example.com/first/exported";
    let (hsm, roots) = SoftHsm::with_draft(gun);
    hsm.sign_2_of_3(gun, &roots);
    hsm.ok(&["root", "export", "--gun", gun, "--out", "export"]);
    let record: Value = serde_json::from_slice(
        &std::fs::read(
            hsm.trust_dir()
                .join("repos")
                .join(gun)
                .join("export/draft.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let at = record["exported"]["at"].as_str().unwrap().to_owned();
    let before = tree(&hsm.trust_dir());
    let exported = std::fs::read(hsm.path().join("export/root.json")).unwrap();

    // The third custodian arrives on day two and signs: refused before any PIN.
    let (error, hint, run) = refused(
        &hsm,
        &["-v", "root", "sign", "--gun", gun, "--key", &roots[2]],
    );
    assert_eq!(
        error,
        format!(
            "no draft for {gun} in the trust directory {} (root v1 was exported at {at} to {})",
            hsm.trust_dir().display(),
            hsm.path().join("export").display()
        )
    );
    assert_eq!(
        hint,
        "that root was exported and needs nothing more: publish that export with `rootkeeper server publish DIR --server URL --gun GUN` (`rootkeeper root export` writes it again if the folder is lost); an exported root is never signed or changed again, a change is a new root version"
    );
    no_login(&run);
    // Taking a signature back from it is refused the same way.
    let (error2, _, _) = refused(
        &hsm,
        &["--yes", "root", "unsign", "--gun", gun, "--key", &roots[0]],
    );
    assert_eq!(error2, error);
    assert_eq!(tree(&hsm.trust_dir()), before, "nothing may change");
    assert_eq!(
        std::fs::read(hsm.path().join("export/root.json")).unwrap(),
        exported
    );
    // And the export can still be written again (no "3 of 2" dead end).
    let out = hsm.ok(&["root", "export", "--gun", gun, "--out", "again"]);
    assert!(out.contains("the last export written again"), "{out}");
    assert_eq!(
        std::fs::read(hsm.path().join("again/root.json")).unwrap(),
        exported
    );
}

#[test]
fn a_signature_is_taken_back_from_a_draft_without_any_login() {
    let gun = "registry.example.com/first/unsign";
    let (hsm, roots) = SoftHsm::with_draft(gun);
    hsm.sign_2_of_3(gun, &roots);
    assert!(pending(&hsm, gun, "snapshot.json").exists());
    let b = signer(&hsm, gun, "root", "root-b");
    let b_key_id = b["key_id"].as_str().unwrap().to_owned();
    let b_cert = b["keyid"].as_str().unwrap().to_owned();
    let before = tree(&hsm.trust_dir());

    // Without a terminal and without --yes: refused, nothing changed.
    let (error, hint, _) = refused(&hsm, &["root", "unsign", "--gun", gun, "--key", &b_key_id]);
    assert_eq!(
        error,
        "Take these signatures back (the custodians must sign again)? needs a confirmation and there is no terminal to ask on"
    );
    assert_eq!(hint, "pass --yes to confirm from a script");
    assert_eq!(tree(&hsm.trust_dir()), before);

    // --dry-run says what would go, and changes nothing.
    let dry = hsm.ok(&[
        "root",
        "unsign",
        "--gun",
        gun,
        "--key",
        &b_key_id,
        "--dry-run",
    ]);
    assert!(
        dry.contains(&format!(
            "will take back the root signature of key ID {b_key_id}"
        )) && dry.contains("will drop the snapshot, which covered them"),
        "{dry}"
    );
    assert_eq!(tree(&hsm.trust_dir()), before);

    // A key ID that signs nothing here, and one too short to name a key.
    let (error, hint, _) = refused(
        &hsm,
        &[
            "--yes",
            "root",
            "unsign",
            "--gun",
            gun,
            "--key",
            "0123456789abcdef",
        ],
    );
    assert_eq!(
        error,
        format!(
            "key ID 0123456789abcdef is not a signer of the draft for {gun}; nothing was changed"
        )
    );
    assert!(hint.contains("root status --gun GUN"), "{hint}");
    let run = hsm.run(&["--yes", "root", "unsign", "--gun", gun, "--key", "abc"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("too short for a key ID"),
        "{}",
        run.stderr
    );
    assert_eq!(tree(&hsm.trust_dir()), before);

    // By the first 8 hex digits of b's certificate key ID, as `root status` shows it.
    let run = hsm.run(&[
        "-v",
        "--yes",
        "root",
        "unsign",
        "--gun",
        gun,
        "--key",
        &b_cert[..8],
    ]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    no_login(&run);
    assert!(
        run.stdout
            .contains(&format!("{gun}: took back root by {b_key_id}")),
        "{}",
        run.stdout
    );
    let status = hsm.ok_json(&["root", "status", "--gun", gun]);
    let draft = &status["drafts"][0];
    assert_eq!(draft["root"]["signed"], 1, "{draft:#}");
    assert_eq!(
        draft["snapshot"], "waits for the root thresholds",
        "{draft:#}"
    );
    assert_eq!(draft["ready"], false);
    assert!(!pending(&hsm, gun, "snapshot.json").exists());
    let root = std::fs::read(pending(&hsm, gun, "root.json")).unwrap();
    assert_eq!(hsm_tests::root_signatures_valid(&root), 1);
    assert_eq!(signer(&hsm, gun, "root", "root-b")["state"], "missing");

    // Again: nothing to take back, exit 0.
    let out = hsm.ok(&["--yes", "root", "unsign", "--gun", gun, "--key", &b_key_id]);
    assert!(
        out.contains(&format!(
            "key {b_key_id} has no signature on the draft of {gun}; nothing to take back there"
        )) && out.contains("nothing to take back; nothing was changed"),
        "{out}"
    );

    // By URI: the token is read, never logged in to (its PIN source holds a wrong PIN).
    let wrong = write_file(&hsm, "wrong-pin", "000000\n");
    let uri = format!("pkcs11:token=repo;object=targets?pin-source=file:{wrong}");
    let run = hsm.run(&["-v", "--yes", "root", "unsign", "--gun", gun, "--key", &uri]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    no_login(&run);
    assert!(
        run.stdout.contains("took back targets by"),
        "{}",
        run.stdout
    );
    let listed = hsm.ok_json(&["token", "list"]);
    for t in listed["tokens"].as_array().unwrap() {
        assert_eq!(t["pin_state"], "ok", "no PIN was tried: {t:#}");
    }

    // The ceremony goes on: sign again and export.
    hsm.sign_with_repo_keys(gun, &[&roots[2]]);
    hsm.ok(&["root", "export", "--gun", gun, "--out", "export"]);
}

// --- 2. Nothing logs in before every key is checked -------------------------------------------

#[test]
fn root_sign_checks_every_key_before_any_login() {
    let gun = "registry.example.com/first/before-login";
    let (hsm, roots) = SoftHsm::with_draft(gun);
    let spare = hsm.key("root-c", "spare", "root");
    let spare_id = hsm.ok_json(&["key", "list"])["inventory"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["label"] == "spare")
        .unwrap()["key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = tree(&hsm.trust_dir());
    let wrong = write_file(&hsm, "wrong-pin", "000000\n");

    // A mistyped object, after a good key: nothing is logged in to, not even the good one.
    let typo = format!("pkcs11:token=root-b;object=rot?pin-source=file:{wrong}");
    let (error, hint, run) = refused(
        &hsm,
        &[
            "-v", "root", "sign", "--gun", gun, "--key", &roots[0], "--key", &typo,
        ],
    );
    assert_eq!(
        error,
        "no P-256 key matches pkcs11:token=root-b;object=rot on token `root-b`"
    );
    assert_eq!(
        hint,
        "`rootkeeper token list` shows the keys on each token; check object= and id="
    );
    no_login(&run);

    // A key that is no signer of this draft.
    let (error, hint, run) = refused(&hsm, &["-v", "root", "sign", "--gun", gun, "--key", &spare]);
    assert!(
        error.starts_with("pkcs11:token=root-c;")
            && error.contains(";object=spare")
            && error.ends_with(&format!(
                " (key ID {spare_id}) is not a key of the draft for {gun}; nothing was signed and no PIN was asked for"
            )),
        "{error}"
    );
    assert_eq!(
        hint,
        "`rootkeeper root status --gun GUN` lists the keys that must sign and the key IDs written down at `key generate`; check object= and id= in the URI"
    );
    no_login(&run);

    // One --pin-file for two tokens: never tried on both.
    let (error, hint, run) = refused(
        &hsm,
        &[
            "-v",
            "--pin-file",
            &wrong,
            "root",
            "sign",
            "--gun",
            gun,
            "--key",
            "pkcs11:token=root-a;object=root",
            "--key",
            "pkcs11:token=root-b;object=root",
        ],
    );
    assert!(
        error.starts_with(
            "one PIN (from --pin-file or ROOTKEEPER_PIN) would be tried on token `root-a` (serial "
        ) && error.contains(", token `root-b` (serial ")
            && error.ends_with("; no PIN was tried"),
        "{error}"
    );
    assert!(hint.contains("its own pin-source=file:PATH"), "{hint}");
    no_login(&run);

    assert_eq!(tree(&hsm.trust_dir()), before, "nothing may change");
    for t in hsm.ok_json(&["token", "list"])["tokens"]
        .as_array()
        .unwrap()
    {
        assert_eq!(t["pin_state"], "ok", "no PIN was tried: {t:#}");
    }

    // A key that already signed: nothing to sign, and no login for it.
    hsm.ok(&["root", "sign", "--gun", gun, "--key", &roots[0]]);
    let run = hsm.run(&["-v", "root", "sign", "--gun", gun, "--key", &roots[0]]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    no_login(&run);
    assert!(
        run.stdout
            .contains("root already carries the signature of key"),
        "{}",
        run.stdout
    );
}

// --- 3. What is about to be signed, before the PIN --------------------------------------------

#[test]
fn the_plan_with_root_keys_and_fingerprint_comes_before_the_pin_and_dry_run_signs_nothing() {
    let gun = "registry.example.com/first/plan";
    let (hsm, roots) = SoftHsm::with_draft(gun);
    let status = hsm.ok_json(&["root", "status", "--gun", gun]);
    let draft = &status["drafts"][0];
    let fp = &draft["fingerprint"];
    let hex: Vec<&str> = fp["hex_groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let words: Vec<&str> = fp["words"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let before = tree(&hsm.trust_dir());

    let run = hsm.run(&[
        "-v",
        "root",
        "sign",
        "--gun",
        gun,
        "--key",
        &roots[0],
        "--dry-run",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    no_login(&run);
    let plan = &run.stdout;
    assert!(
        plan.starts_with(&format!(
            "{gun}: root v1, 2-of-3 root keys (0 signed so far), expires {}\n  root keys (2 of 3 must sign; key IDs as written down at `key generate`):\n",
            draft["expires"].as_str().unwrap()
        )),
        "{plan}"
    );
    for s in draft["root"]["signers"].as_array().unwrap() {
        assert!(
            plan.contains(&format!(
                "    missing  key ID {}  cert {}  {}",
                s["key_id"].as_str().unwrap(),
                &s["keyid"].as_str().unwrap()[..8],
                s["uri"].as_str().unwrap()
            )),
            "{plan}"
        );
    }
    assert!(plan.contains(&format!("    {}\n", hex.join(" "))), "{plan}");
    assert!(
        plan.contains(&format!(
            "    1. {}   2. {}\n",
            words[..4].join(" "),
            words[4..8].join(" ")
        )),
        "{plan}"
    );
    let a = signer(&hsm, gun, "root", "root-a");
    assert!(
        plan.contains(&format!(
            "  will sign root     with key ID {}",
            a["key_id"].as_str().unwrap()
        )),
        "{plan}"
    );
    assert_eq!(tree(&hsm.trust_dir()), before, "--dry-run signs nothing");

    // The real run shows the same plan on stderr before it logs in.
    let run = hsm.run(&["-v", "root", "sign", "--gun", gun, "--key", &roots[0]]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let shown = run
        .stderr
        .find(hex.join(" ").as_str())
        .expect("the fingerprint");
    let login = run.stderr.find("logged in to").expect("a login");
    assert!(shown < login, "{}", run.stderr);
    assert!(
        !run.stdout.contains(&hex.join(" ")),
        "the plan stays off stdout"
    );
}

#[test]
fn many_drafts_are_summed_up_before_the_pin_each_with_its_fingerprint() {
    let hsm = SoftHsm::new();
    let roots = hsm.standard_keys();
    hsm.timestamp_key(None, "", "ts.json");
    let guns: Vec<String> = (0..5)
        .map(|i| format!("registry.example.com/first/many-{i}"))
        .collect();
    let mut init = hsm.init_2_of_3(&roots, "ts.json");
    for g in &guns {
        init.extend(["--gun".into(), g.clone()]);
    }
    hsm.ok(&strs(&init));
    let mut args = vec!["root", "sign", "--key", &roots[0], "--dry-run"];
    for g in &guns {
        args.extend(["--gun", g]);
    }
    let plan = hsm.ok(&args);
    assert!(plan.starts_with("5 drafts; each GUN's fingerprint in full (words too): `rootkeeper root status --gun GUN`\n"), "{plan}");
    assert!(
        plan.contains("  root keys, the same in every draft (2 of 3 must sign; key IDs as written down at `key generate`):\n"),
        "{plan}"
    );
    for g in &guns {
        let status = hsm.ok_json(&["root", "status", "--gun", g]);
        let hex: Vec<&str> = status["drafts"][0]["fingerprint"]["hex_groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(
            plan.contains(&format!("  {g}  v1  0 of 2  expires ")) && plan.contains(&hex.join(" ")),
            "{plan}"
        );
    }
    assert!(
        plan.contains("  will sign: root in 5 drafts, targets in 0, snapshot in 0"),
        "{plan}"
    );
    // No progress bar without a terminal, nothing extra on stderr.
    let mut args = vec!["root", "sign", "--key", &roots[0]];
    for g in &guns {
        args.extend(["--gun", g]);
    }
    let run = hsm.run(&args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains("GUNs,"), "{}", run.stderr);

    // On a terminal (script(1) gives it one): a progress bar, and none with --json.
    let on_terminal = |extra: &str, key: &str| -> String {
        let mut line = format!(
            "{} {extra} root sign --key '{}'",
            hsm_tests::rootkeeper_bin().display(),
            key
        );
        for g in &guns {
            line.push_str(&format!(" --gun {g}"));
        }
        let command = hsm.command(&[]);
        let run = Run::of(
            std::process::Command::new("script")
                .args(["-qec", &line, "/dev/null"])
                .envs(command.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
                .current_dir(command.get_current_dir().unwrap())
                .env_remove("ROOTKEEPER_PIN")
                .stdin(Stdio::null()),
        );
        assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
        run.stdout
    };
    let drawn = on_terminal("", &roots[1]);
    assert!(
        drawn.contains("root sign [") && drawn.contains("/5 GUNs"),
        "{drawn}"
    );
    let json = on_terminal("--json", &targets(&hsm));
    assert!(json.contains("\"signed\""), "{json}");
    assert!(!json.contains("GUNs,"), "{json}");
}

// --- 4. The wrong directory ------------------------------------------------------------------

#[test]
fn a_wrong_trust_directory_is_named_and_never_created() {
    let gun = "registry.example.com/first/where";
    let other = "registry.example.com/first/where-else";
    let (hsm, roots) = SoftHsm::with_draft(gun);
    another_draft(&hsm, &roots, other);

    // Another, existing trust directory (the custodian's own, say): no draft there.
    let empty = hsm.path().join("custodian-b-trust");
    std::fs::create_dir(&empty).unwrap();
    let run = Run::of(
        hsm.command(&["root", "sign", "--gun", gun, "--key", &roots[1]])
            .env("ROOTKEEPER_DIR", &empty),
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let (error, hint) = refusal(&run);
    assert_eq!(
        error,
        format!(
            "no draft for {gun} in the trust directory {}",
            empty.display()
        )
    );
    assert_eq!(
        hint,
        "the draft may be in another trust directory: check --dir or ROOTKEEPER_DIR (an absolute path avoids surprises); `rootkeeper root status` lists the drafts in this one"
    );
    assert!(!hint.contains("root init"));
    // `root sign` writes, so it took that directory's lock; it made nothing else there.
    let made: Vec<String> = std::fs::read_dir(&empty)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(made.iter().all(|n| n == ".lock"), "{made:?}");

    // A folder without any trust directory, ROOTKEEPER_DIR unset: ./trust is never made.
    let elsewhere = hsm.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let root_file = pending(&hsm, gun, "root.json").display().to_string();
    let commands: Vec<Vec<&str>> = vec![
        vec!["root", "status"],
        vec!["root", "status", "--gun", gun],
        vec!["root", "verify", "--gun", gun],
        vec!["root", "sign", "--gun", gun, "--key", &roots[1]],
        vec!["--yes", "root", "unsign", "--gun", gun, "--key", &roots[1]],
        vec!["root", "export", "--gun", gun, "--out", "out"],
    ];
    for args in &commands {
        let run = Run::of(
            hsm.command(args)
                .env_remove("ROOTKEEPER_DIR")
                .current_dir(&elsewhere),
        );
        assert_eq!(run.code, 1, "{args:?}: {}", run.stderr);
        let (error, hint) = refusal(&run);
        assert_eq!(
            error,
            format!(
                "there is no trust directory at {}",
                elsewhere.join("trust").display()
            ),
            "{args:?}"
        );
        assert_eq!(
            hint,
            "give --dir or set ROOTKEEPER_DIR to the trust directory, as an absolute path (the default is ./trust, relative to where the command runs)"
        );
        no_login(&run);
    }
    for args in [
        vec!["key", "list"],
        vec!["token", "list"],
        vec!["inspect", &root_file],
        vec!["root", "verify", &root_file],
    ] {
        let run = Run::of(
            hsm.command(&args)
                .env_remove("ROOTKEEPER_DIR")
                .current_dir(&elsewhere),
        );
        assert!(run.code == 0 || run.code == 1, "{args:?}: {}", run.stderr);
    }
    assert_eq!(
        std::fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "no ./trust and no lock appear where the commands ran"
    );

    // `root status` without --gun lists every draft; -v names the trust directory.
    let run = hsm.run(&["-v", "root", "status"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains(&format!("{gun}: draft root v1"))
            && run.stdout.contains(&format!("{other}: draft root v1")),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr
            .contains(&format!("trust directory: {}", hsm.trust_dir().display())),
        "{}",
        run.stderr
    );
}

// --- 5. An export folder that holds another GUN -----------------------------------------------

#[test]
fn export_into_another_repositorys_folder_is_refused() {
    let first = "registry.example.com/first/one";
    let second = "registry.example.com/first/two";
    let (hsm, roots) = SoftHsm::with_draft(first);
    another_draft(&hsm, &roots, second);
    for gun in [first, second] {
        hsm.sign_2_of_3(gun, &roots);
    }
    hsm.ok(&["root", "export", "--gun", first, "--out", "usb"]);
    let there = tree(&hsm.path().join("usb"));
    let before = tree(&hsm.trust_dir());
    let (error, hint, _) = refused(&hsm, &["root", "export", "--gun", second, "--out", "usb"]);
    assert_eq!(
        error,
        format!("usb holds the export of {first}, not of {second}; nothing was written")
    );
    assert_eq!(
        hint,
        "export each repository into its own folder (with several --gun, rootkeeper writes DIR/<gun>/)"
    );
    assert_eq!(tree(&hsm.path().join("usb")), there);
    assert_eq!(tree(&hsm.trust_dir()), before);
}

// --- 7. Readers work while a writer waits for a person ----------------------------------------

#[test]
fn the_witness_reads_the_status_while_a_custodian_sits_at_the_pin() {
    use std::os::unix::fs::OpenOptionsExt as _;
    let gun = "registry.example.com/first/witness";
    let (hsm, roots) = SoftHsm::with_draft(gun);
    let fifo = hsm.path().join("pin-fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let uri = format!(
        "pkcs11:token=root-a;object=root?pin-source=file:{}",
        fifo.display()
    );
    let mut child = hsm
        .command(&["root", "sign", "--gun", gun, "--key", &uri])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });

    // Wait until the signer opens the FIFO to read its PIN: it now waits for a person.
    let deadline = Instant::now() + Duration::from_secs(60);
    let writer = loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(0o4000) // O_NONBLOCK: fails with ENXIO until a reader has it open
            .open(&fifo)
        {
            Ok(w) => break w,
            Err(_) if Instant::now() < deadline => {
                assert!(child.try_wait().unwrap().is_none(), "root sign ended early");
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("root sign never asked for its PIN: {e}"),
        }
    };
    std::thread::sleep(Duration::from_millis(200));
    assert!(child.try_wait().unwrap().is_none(), "it waits for the PIN");

    // Meanwhile the witness reads, and a second writer is told at once.
    let status = hsm.ok(&["root", "status", "--gun", gun]);
    assert!(status.contains("root:     0 of 2 signatures"), "{status}");
    let verify = hsm.run(&["root", "verify", "--gun", gun]);
    assert!(
        verify.stderr.contains("rule `root-threshold` broken"),
        "{}",
        verify.stderr
    );
    let (error, hint, _) = refused(&hsm, &["root", "sign", "--gun", gun, "--key", &roots[1]]);
    assert_eq!(
        error,
        format!(
            "the trust directory {} is in use by another rootkeeper command",
            hsm.trust_dir().display()
        )
    );
    assert!(hint.starts_with("wait for the other command"), "{hint}");

    // The custodian types the PIN: the signature lands.
    {
        use std::io::Write as _;
        let mut writer = writer;
        writer.write_all(TEST_PIN.as_bytes()).unwrap();
    }
    let status = child.wait().unwrap();
    let lines = reader.join().unwrap();
    assert!(status.success(), "{lines:#?}");
    assert_eq!(
        hsm.ok_json(&["root", "status", "--gun", gun])["drafts"][0]["root"]["signed"],
        1
    );
}

// --- 8. Legal but almost surely wrong ---------------------------------------------------------

#[test]
fn values_that_are_almost_surely_wrong_are_refused_unless_insisted_on() {
    let hsm = SoftHsm::new();
    let roots = hsm.standard_keys();
    hsm.timestamp_key(None, "", "ts.json");
    let init = |gun: &str, extra: &[&str]| -> Vec<String> {
        let mut args = hsm.init_2_of_3(&roots, "ts.json");
        args.extend(["--gun".into(), gun.into()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let before = tree(&hsm.trust_dir());

    // --expires 1h: a typo for 1y.
    let gun = "registry.example.com/first/soon";
    let (error, hint, run) = refused(&hsm, &strs(&init(gun, &["-v", "--expires", "1h"])));
    assert!(
        error.starts_with("the root would expire in less than a day, at ")
            && error.ends_with("; clients refuse it after that; nothing was done"),
        "{error}"
    );
    assert_eq!(
        hint,
        "a root is meant to last years (the default --expires is 10y: ten calendar years); check the --expires value; if it is really meant, run again with --allow-short-expiry"
    );
    no_login(&run);

    // The targets key given as a root key.
    let mut swapped = hsm.init_2_of_3(&roots, "ts.json");
    let at = swapped.iter().position(|a| a == &roots[2]).unwrap();
    swapped[at] = targets(&hsm);
    swapped.extend(["--gun".into(), gun.into(), "-v".into()]);
    // The targets key is then also given as --targets-key: the role check comes first.
    let (error, hint, run) = refused(&hsm, &strs(&swapped));
    assert!(
        error.starts_with("pkcs11:token=repo;")
            && error.contains(";object=targets")
            && error.ends_with(
                "was generated as a targets key and is given as the root key; nothing was done"
            ),
        "{error}"
    );
    assert_eq!(
        hint,
        "check the URI (`rootkeeper key list` shows each key's role); a key serves one role; if it is really meant, run again with --allow-role-mismatch"
    );
    no_login(&run);

    // A GUN with a tag, and one with capitals.
    for (odd, detail) in [
        (
            "registry.example.com/first/app:latest",
            "the GUN `registry.example.com/first/app:latest` ends in a tag or digest; a GUN names the repository without it (`…/app`), and one root serves every tag; nothing was done",
        ),
        (
            "registry.example.com/First/App",
            "the GUN `registry.example.com/First/App` has capitals; docker names repositories in lower case, so no image would find this root (`registry.example.com/first/app`); nothing was done",
        ),
    ] {
        let (error, hint, run) = refused(&hsm, &strs(&init(odd, &["-v"])));
        assert_eq!(error, detail);
        assert_eq!(
            hint,
            "give the repository name exactly as `docker trust inspect` and `notary list` will use it; if it is really meant, run again with --allow-unusual-gun"
        );
        no_login(&run);
    }
    assert_eq!(tree(&hsm.trust_dir()), before, "nothing may be written");

    // Insisted on: made, with a warning that says what was insisted on.
    let run = hsm.run(&strs(&init(
        gun,
        &["--expires", "2h", "--allow-short-expiry"],
    )));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("warning: the root would expire in less than a day")
            && run.stderr.contains("(--allow-short-expiry given)"),
        "{}",
        run.stderr
    );
    hsm.sign_2_of_3(gun, &roots);
    let run = hsm.run(&["--json", "root", "export", "--gun", gun, "--out", "soon"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "warning: {gun}: the root expires in 0 day(s), at "
        )),
        "{}",
        run.stderr
    );
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["warnings"].as_array().unwrap().len(), 1, "{doc:#}");

    // 10y is ten calendar years; a plain date is midnight UTC of that day.
    let gun = "registry.example.com/first/decade";
    let made = hsm.ok_json(&strs(&init(gun, &["--expires", "10y"])));
    let expires = made["drafts"][0]["expires"].as_str().unwrap().to_owned();
    let created = made["drafts"][0]["created"].as_str().unwrap().to_owned();
    let year: i32 = created[..4].parse().unwrap();
    assert_eq!(
        &expires[..10],
        format!("{}{}", year + 10, &created[4..10]),
        "{expires} vs {created}"
    );
    let gun = "registry.example.com/first/dated";
    let made = hsm.ok_json(&strs(&init(gun, &["--expires", "2036-01-31"])));
    assert_eq!(made["drafts"][0]["expires"], "2036-01-31T00:00:00Z");
}

// --- 9. Publishing twice ----------------------------------------------------------------------

#[test]
fn publishing_what_is_already_published_says_so_and_succeeds() {
    let hsm = SoftHsm::new();
    let server = NotaryServer::start();
    let gun = "registry.example.com/first/published";
    hsm.export_1_of_1(&server, gun, "export");
    let mut publish = vec!["--yes".to_owned()];
    publish.extend(server.publish_args("export", gun));
    let first = hsm.ok(&strs(&publish));
    assert!(
        first.contains(&format!(
            "{gun}: published root, targets, snapshot; the server serves root v1 byte for byte"
        )),
        "{first}"
    );
    let run = hsm.run(&strs(&publish));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains(&format!(
            "{gun}: already published, nothing to do; the server serves root v1"
        )),
        "{}",
        run.stdout
    );
    // Without --yes and without a terminal it still needs no confirmation: nothing is sent.
    let run = hsm.run(&strs(&publish[1..]));
    assert_eq!(run.code, 0, "{}", run.stderr);
    server.assert_trusts(&hsm, gun);
}

// --- 10. verify checks every file; inspect fails on a bad signature --------------------------

/// The rule names of docs/formats.md's table of client rules.
fn documented_rules() -> Vec<String> {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/formats.md"))
            .unwrap();
    let section = doc.split("## Client rules").nth(1).unwrap();
    let table = section.split("\n## ").next().unwrap();
    let mut rules = Vec::new();
    for line in table.lines().filter(|l| l.starts_with("| `")) {
        let first = line.split('|').nth(1).unwrap();
        for name in first.split('`').skip(1).step_by(2) {
            rules.push(name.to_owned());
        }
    }
    rules
}

#[test]
fn root_verify_checks_every_file_given_and_lists_the_documented_rules() {
    let gun = "registry.example.com/first/verify";
    let (hsm, roots) = SoftHsm::with_draft(gun);
    hsm.sign_2_of_3(gun, &roots);
    let out = hsm.ok(&["root", "export", "--gun", gun, "--out", "export"]);
    let documented = documented_rules();
    assert_eq!(documented.len(), 25, "{documented:?}");

    let run = hsm.ok_json(&[
        "root",
        "verify",
        "export/root.json",
        "export/targets.json",
        "export/snapshot.json",
    ]);
    let rules: Vec<String> = run["verified"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    for r in &rules {
        assert!(documented.contains(r), "{r} is not in docs/formats.md");
    }
    // Every documented rule that compares something here ran: all but the rotation rules
    // (no previous root) and the timestamp rules (no timestamp given).
    let expected: Vec<&String> = documented
        .iter()
        .filter(|r| {
            !r.starts_with("timestamp-") && !r.starts_with("root-version") && *r != "root-rotation"
        })
        .collect();
    assert_eq!(rules.len(), expected.len(), "{rules:?}");
    assert!(
        out.contains(&format!("verified ({} rules)", rules.len())),
        "{out}"
    );
    let text = hsm.ok(&[
        "root",
        "verify",
        "export/root.json",
        "export/targets.json",
        "export/snapshot.json",
    ]);
    assert!(
        text.contains(&format!(
            "  {} rules passed: {}",
            rules.len(),
            rules.join(", ")
        )),
        "{text}"
    );

    // A snapshot that does not cover the targets.json beside it is not skipped.
    let other = "registry.example.com/first/verify-other";
    another_draft(&hsm, &roots, other);
    let foreign = pending(&hsm, other, "targets.json");
    let (error, _, _) = refused(
        &hsm,
        &[
            "root",
            "verify",
            "export/root.json",
            foreign.to_str().unwrap(),
            "export/snapshot.json",
        ],
    );
    assert!(
        error.contains("rule `targets-threshold` broken")
            || error.contains("rule `snapshot-meta` broken"),
        "{error}"
    );

    // inspect: exit 1 when a signature does not verify.
    // (The bytes are changed in place: Go's encoding stays, only the signature breaks.)
    let raw = std::fs::read_to_string(hsm.path().join("export/root.json")).unwrap();
    let doc: Value = serde_json::from_str(&raw).unwrap();
    let sig = doc["signatures"][0]["sig"].as_str().unwrap().to_owned();
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    let bad = hsm.path().join("bad-root.json");
    std::fs::write(
        &bad,
        raw.replacen(&sig, &format!("{flipped}{}", &sig[1..]), 1),
    )
    .unwrap();
    let run = hsm.run(&["inspect", bad.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("NOT safe to upload"), "{}", run.stdout);
    let run = hsm.run(&["inspect", "export/root.json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

// --- What users of docker trust and notary expect ---------------------------------------------

#[test]
fn completions_and_manual_pages_come_from_the_command_definitions() {
    let hsm = SoftHsm::new();
    for shell in ["bash", "zsh", "fish"] {
        let script = hsm.ok(&["completions", shell]);
        assert!(
            script.contains("unsign") && script.contains("allow-short-expiry"),
            "{shell}: {script:.200}"
        );
    }
    let page = hsm.ok(&["man"]);
    assert!(page.contains(".TH rootkeeper 1"), "{page:.300}");
    let out = hsm.ok(&["man", "--out", "man"]);
    assert!(out.contains("manual pages into man"), "{out}");
    let sign = std::fs::read_to_string(hsm.path().join("man/rootkeeper-root-sign.1")).unwrap();
    assert!(sign.contains("dry\\-run"), "{sign:.400}");
    assert!(!hsm.trust_dir().exists(), "no trust directory for that");
}

#[test]
fn help_separates_global_flags_and_offers_no_choice_that_fails() {
    let hsm = SoftHsm::new();
    let help = hsm.ok(&["root", "sign", "--help"]);
    let (own, global) = help
        .split_once("Global options:")
        .expect("a global section");
    assert!(
        own.contains("--key <URI>") && own.contains("--dry-run"),
        "{help}"
    );
    assert!(
        !own.contains("--pin-file") && global.contains("--pin-file"),
        "{help}"
    );
    assert!(
        global.contains("--dir <DIR>") && global.contains("--json"),
        "{help}"
    );
    let init = hsm.ok(&["root", "init", "--help"]);
    assert!(
        !init.contains("tuf") && !init.contains("--profile"),
        "{init}"
    );
    assert!(init.contains("--allow-short-expiry"), "{init}");
}

/// Every field name of a JSON document (recursively), skipping the values of maps keyed by
/// data (key IDs, role names inside metadata).
fn field_names(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if !(k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit())) {
                    out.push(k.clone());
                }
                field_names(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| field_names(v, out)),
        _ => {}
    }
}

#[test]
fn every_json_document_names_its_fields_in_snake_case_and_usage_errors_are_json() {
    let gun = "registry.example.com/first/json";
    let (hsm, roots) = SoftHsm::with_draft(gun);
    let mut docs = vec![
        hsm.ok_json(&["token", "list"]),
        hsm.ok_json(&["key", "list"]),
        hsm.ok_json(&["root", "status"]),
        hsm.ok_json(&[
            "root",
            "sign",
            "--gun",
            gun,
            "--key",
            &roots[0],
            "--dry-run",
        ]),
        hsm.ok_json(&["root", "sign", "--gun", gun, "--key", &roots[0]]),
        hsm.ok_json(&[
            "root",
            "unsign",
            "--gun",
            gun,
            "--key",
            &roots[0],
            "--dry-run",
        ]),
        hsm.ok_json(&strs(&hsm.sign_args(gun, &[&roots[1]]))),
        hsm.ok_json(&["root", "verify", "--gun", gun]),
        hsm.ok_json(&["root", "export", "--gun", gun, "--out", "export"]),
        hsm.ok_json(&["inspect", "export/root.json"]),
        hsm.ok_json(&["root", "verify", "export/root.json", "export/targets.json"]),
    ];
    let run = hsm.run(&["--json", "root", "status", "--gun", "example.com/none"]);
    assert_eq!(run.code, 1);
    docs.push(serde_json::from_str(&run.stdout).unwrap());
    let mut names = Vec::new();
    for d in &docs {
        field_names(d, &mut names);
    }
    names.sort();
    names.dedup();
    for n in &names {
        assert!(
            n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                && !n.starts_with('_')
                || n == "_type",
            "field `{n}` breaks the naming scheme of docs/formats.md"
        );
    }

    // A usage error with --json: one JSON document, exit 2, and one error and one hint line.
    for args in [
        &["--json", "root", "sign", "--gun", gun][..],
        &["--json", "root", "bogus"][..],
        &["--json", "root"][..],
    ] {
        let run = hsm.run(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        let doc: Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", run.stdout));
        assert!(
            doc["error"].is_string() && doc["hint"].is_string(),
            "{doc:#}"
        );
        let (error, hint) = refusal(&run);
        assert_eq!(doc["error"], error);
        assert_eq!(doc["hint"], hint);
    }
    let doc: Value =
        serde_json::from_str(&hsm.run(&["--json", "root", "sign", "--gun", gun]).stdout).unwrap();
    assert_eq!(
        doc["error"],
        "the following required arguments were not provided: --key <URI>"
    );
}

// --- docs/ceremony.md §7: the check a docker user makes -------------------------------------

/// The published root as `docker trust inspect` sees it: over https with the CA where docker
/// looks for it (`$DOCKER_CONFIG/tls/HOST:PORT/`), the server from
/// `DOCKER_CONTENT_TRUST_SERVER`, and the root key IDs it names are the certificate key IDs
/// `root status` shows as `cert …`.
#[test]
fn docker_trust_inspect_sees_the_published_root() {
    if std::process::Command::new("docker")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("the docker CLI is missing (hsm-tests/run installs docker.io)");
    }
    let hsm = SoftHsm::new();
    let server = NotaryServer::start_tls();
    let gun = "registry.example.com/first/docker";
    let roots = hsm.draft_2_of_3(gun, Some(&server));
    let status = hsm.ok_json(&["root", "status", "--gun", gun]);
    let certs: Vec<String> = status["drafts"][0]["root"]["signers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["keyid"].as_str().unwrap().to_owned())
        .collect();
    hsm.sign_2_of_3(gun, &roots);
    hsm.ok(&["root", "export", "--gun", gun, "--out", "export"]);
    hsm.publish(&server, "export", gun);

    let config = hsm.path().join("docker-config");
    let host = server.url.trim_start_matches("https://");
    let tls = config.join("tls").join(host);
    std::fs::create_dir_all(&tls).unwrap();
    std::fs::copy(server.ca_file(), tls.join("ca.crt")).unwrap();
    let run = Run::of(
        std::process::Command::new("docker")
            .args(["trust", "inspect", gun])
            .env("DOCKER_CONFIG", &config)
            .env("DOCKER_CONTENT_TRUST_SERVER", &server.url)
            .stdin(Stdio::null()),
    );
    assert_eq!(
        run.code,
        0,
        "{}\n{}\n{}",
        run.stdout,
        run.stderr,
        server.log()
    );
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    let admin = &doc[0]["AdministrativeKeys"];
    let root_keys: Vec<&str> = admin
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["Name"] == "Root")
        .unwrap()["Keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["ID"].as_str().unwrap())
        .collect();
    for id in &root_keys {
        assert!(
            certs.iter().any(|c| c == id),
            "{id} not in {certs:?}: {doc:#}"
        );
    }
    assert_eq!(root_keys.len(), 3, "{doc:#}");
}
