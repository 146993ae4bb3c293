//! What the operator sees when the setup around rootkeeper is wrong, against real parts:
//! SoftHSM with a missing configuration file, a PKCS#11 module path that names nothing, no
//! pcscd (the real libpcsclite pointed at a socket that does not exist), PIN files with stray
//! whitespace, and the key identity every command shows.

use std::path::Path;
use std::process::Command;

use hsm_tests::{Run, SoftHsm, TEST_PIN};
use serde_json::Value;

/// Runs rootkeeper as [`SoftHsm::run`] does, with extra environment variables.
fn run_with(hsm: &SoftHsm, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut command = Command::new(hsm_tests::rootkeeper_bin());
    command
        .args(args)
        .env("SOFTHSM2_CONF", hsm.path().join("softhsm2.conf"))
        .env("ROOTKEEPER_DIR", hsm.trust_dir())
        .env_remove("ROOTKEEPER_PIN")
        .env_remove("ROOTKEEPER_PKCS11_MODULE")
        // No pcscd: libpcsclite finds no resource manager at this socket.
        .env("PCSCLITE_CSOCK_NAME", hsm.path().join("no-pcscd.comm"))
        .current_dir(hsm.path())
        .stdin(std::process::Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    let out = command.output().expect("run rootkeeper");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Exactly one `error:` line and one `hint:` line; returns them.
fn error_and_hint(run: &Run) -> (String, String) {
    let lines: Vec<&str> = run.stderr.lines().collect();
    let errors: Vec<&&str> = lines.iter().filter(|l| l.starts_with("error: ")).collect();
    let hints: Vec<&&str> = lines.iter().filter(|l| l.starts_with("hint: ")).collect();
    assert_eq!((errors.len(), hints.len()), (1, 1), "{}", run.stderr);
    (errors[0].to_string(), hints[0].to_string())
}

fn json(run: &Run) -> Value {
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", run.stdout))
}

#[test]
fn softhsm_without_its_config_fails_with_a_hint_naming_softhsm2_conf() {
    let hsm = SoftHsm::new();
    let missing = hsm.path().join("missing.conf");
    let env = [("SOFTHSM2_CONF", missing.to_str().unwrap())];
    for command in [&["token", "list"][..], &["key", "list"][..]] {
        let run = run_with(&hsm, &env, command);
        assert_eq!(run.code, 1, "{command:?}: {}\n{}", run.stdout, run.stderr);
        let (error, hint) = error_and_hint(&run);
        assert!(
            error.contains("libsofthsm2.so did not start: C_Initialize returned CKR_GENERAL_ERROR")
                && error.contains(&format!(
                    "SOFTHSM2_CONF={}, which does not exist",
                    missing.display()
                )),
            "{error}"
        );
        assert!(
            hint.contains("SOFTHSM2_CONF") && hint.contains("ROOTKEEPER_PKCS11_MODULE"),
            "{hint}"
        );
        assert!(!run.stderr.contains("horrible"), "{}", run.stderr);

        // --json: one document, with the failure as a field, and the exit code still 1.
        let mut args = vec!["--json"];
        args.extend_from_slice(command);
        let run = run_with(&hsm, &env, &args);
        assert_eq!(run.code, 1, "{}", run.stderr);
        let doc = json(&run);
        let message = doc["module_error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("CKR_GENERAL_ERROR"), "{doc:#}");
        assert!(
            doc["module_error"]["hint"]
                .as_str()
                .unwrap_or_default()
                .contains("SOFTHSM2_CONF"),
            "{doc:#}"
        );
        assert_eq!(doc["error"], message, "{doc:#}");
        assert!(doc["pcsc_error"]["message"].is_string(), "{doc:#}");
    }
}

#[test]
fn a_module_path_that_names_nothing_fails_with_a_hint() {
    let hsm = SoftHsm::new();
    let missing = hsm.path().join("no-such-module.so");
    let run = run_with(
        &hsm,
        &[("ROOTKEEPER_PKCS11_MODULE", missing.to_str().unwrap())],
        &["token", "list"],
    );
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let (error, hint) = error_and_hint(&run);
    assert!(
        error.contains(&format!("cannot load PKCS#11 module {}", missing.display())),
        "{error}"
    );
    assert!(hint.contains("ROOTKEEPER_PKCS11_MODULE"), "{hint}");
}

#[test]
fn token_list_without_pcscd_still_lists_the_pkcs11_tokens() {
    let hsm = SoftHsm::new();
    hsm.token("custodian-a");
    let run = run_with(&hsm, &[], &["--json", "token", "list"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let doc = json(&run);
    assert_eq!(doc["tokens"][0]["label"], "custodian-a", "{doc:#}");
    assert_eq!(doc["module_error"], Value::Null, "{doc:#}");
    let pcsc = &doc["pcsc_error"];
    assert!(
        pcsc["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("PC/SC: "),
        "{doc:#}"
    );
    assert!(
        pcsc["hint"].as_str().unwrap_or_default().contains("pcscd"),
        "{doc:#}"
    );
    let run = run_with(&hsm, &[], &["token", "list"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("token `custodian-a`"), "{}", run.stdout);
    assert!(
        run.stdout.contains("YubiKeys not listed: PC/SC: "),
        "{}",
        run.stdout
    );
}

fn write_pin(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn pin_file_whitespace_is_kept_and_named_when_the_pin_is_wrong() {
    let hsm = SoftHsm::new();
    hsm.token("custodian-a");
    for (name, text) in [
        ("trailing", format!("{TEST_PIN} \n")),
        ("leading", format!("\t{TEST_PIN}")),
    ] {
        let file = write_pin(hsm.path(), name, &text);
        let run = hsm.run(&[
            "key",
            "generate",
            "--label",
            name,
            "--token",
            &format!("pkcs11:token=custodian-a?pin-source=file:{file}"),
        ]);
        assert_eq!(run.code, 1, "{}", run.stderr);
        let (error, hint) = error_and_hint(&run);
        assert!(
            error.contains("wrong PIN for token `custodian-a`")
                && error.contains(&format!(
                    "the PIN came from {file}, whose first line has leading or trailing whitespace, which was kept as part of the PIN"
                )),
            "{error}"
        );
        assert!(hint.contains(&format!("remove them from {file}")), "{hint}");
        assert!(!run.stderr.contains(TEST_PIN), "the PIN is never printed");
    }
    // Without whitespace, a wrong PIN is just wrong.
    let file = write_pin(hsm.path(), "wrong", "not-the-pin\n");
    let err = hsm.fails(
        1,
        &[
            "key",
            "generate",
            "--label",
            "w",
            "--token",
            &format!("pkcs11:token=custodian-a?pin-source=file:{file}"),
        ],
    );
    assert!(
        err.contains("wrong PIN") && !err.contains("whitespace"),
        "{err}"
    );
    // ROOTKEEPER_PIN loses a trailing CR/LF, as a file's line ending does.
    let pin = format!("{TEST_PIN}\r\n");
    let run = run_with(
        &hsm,
        &[("ROOTKEEPER_PIN", pin.as_str())],
        &[
            "key",
            "generate",
            "--label",
            "from-env",
            "--token",
            "pkcs11:token=custodian-a",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn every_command_shows_the_full_canonical_key_id() {
    let hsm = SoftHsm::new();
    hsm.token("custodian-a");
    let uri = format!("pkcs11:token=custodian-a{}", hsm.pin_query());
    let generated = hsm.ok_json(&[
        "key",
        "generate",
        "--token",
        &uri,
        "--label",
        "root-2026",
        "--role",
        "root",
    ]);
    let key_id = generated["key_id"].as_str().unwrap().to_owned();
    assert_eq!(key_id.len(), 64, "{generated:#}");
    assert!(key_id.chars().all(|c| c.is_ascii_hexdigit()), "{key_id}");
    let text = hsm.ok(&[
        "key",
        "generate",
        "--token",
        &uri,
        "--label",
        "root-2027",
        "--role",
        "root",
    ]);
    assert!(
        text.contains("key ID: ") && !text.contains("key ID: \n"),
        "{text}"
    );

    let list = hsm.ok(&["token", "list"]);
    assert!(
        list.contains(&format!("key `root-2026`  key ID {key_id}\n")),
        "{list}"
    );
    let list = hsm.ok_json(&["token", "list"]);
    let keys = list["tokens"][0]["keys"].as_array().unwrap();
    assert!(
        keys.iter().any(|k| k["key_id"] == key_id.as_str()),
        "{list:#}"
    );

    let keys = hsm.ok(&["key", "list"]);
    assert!(
        keys.contains(&format!("key ID {key_id}  role root")),
        "{keys}"
    );
    let keys = hsm.ok_json(&["key", "list"]);
    assert!(
        keys["inventory"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["key_id"] == key_id.as_str()),
        "{keys:#}"
    );
}
