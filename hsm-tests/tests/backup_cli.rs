//! The backup commands end to end, with real parts only: the `rootkeeper` binary with SoftHSM,
//! Debian's `age`/`age-keygen`, `openssl`, `gfcombine`, `script`, OpenSC's `pkcs11-tool`, the
//! notary client and server, and `docker trust`. A missing tool fails the test with its
//! package (hsm-tests/run installs them all); nothing is skipped. Every test ends by scanning
//! its folders (SoftHSM tokens, trust directory, backups) for an unencrypted key.

use std::path::{Path, PathBuf};

use hsm_tests::{NotaryServer, Run, SoftHsm, fixture, notary_client, notary_command, strs, write};
use serde_json::Value;

mod backup_common;
use backup_common::*;

fn inventory_key<'a>(list: &'a Value, label: &str) -> &'a Value {
    list["inventory"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["label"] == label)
        .unwrap_or_else(|| panic!("no key `{label}` in {list:#}"))
}

/// [`generate_args`] for the tokens labelled `tokens`.
fn generate_into(
    hsm: &SoftHsm,
    tokens: &[&str],
    label: &str,
    role: &str,
    extra: &[&str],
) -> Vec<String> {
    let uris: Vec<String> = tokens.iter().map(|t| hsm.token_uri(t)).collect();
    generate_args(&strs(&uris), label, role, extra)
}

/// `key generate --in-memory` of `label` into the tokens labelled `tokens` (first = --token)
/// with backups, insisting it succeeds; returns the key's inventory entry.
fn generate(hsm: &SoftHsm, tokens: &[&str], label: &str, role: &str, extra: &[&str]) -> Value {
    hsm.ok_json(&strs(&generate_into(hsm, tokens, label, role, extra)))
}

/// `key import FILE --token URI` arguments (the token by its label), with a
/// `--passphrase-file` for each of `passphrase_files`.
fn import_args(hsm: &SoftHsm, file: &Path, token: &str, passphrase_files: &[&str]) -> Vec<String> {
    let mut args = vec![
        "key".to_owned(),
        "import".into(),
        file.display().to_string(),
        "--token".into(),
        hsm.token_uri(token),
    ];
    for f in passphrase_files {
        args.extend(["--passphrase-file".into(), f.to_string()]);
    }
    args
}

#[test]
fn an_in_memory_key_lands_in_two_tokens_and_its_backup_opens_with_stock_age() {
    let hsm = SoftHsm::new();
    hsm.token("custodian-a");
    hsm.token("custodian-b");
    let (alice, a) = age_keygen(hsm.path(), "alice");
    let (bob, b) = age_keygen(hsm.path(), "bob");
    let entry = generate(
        &hsm,
        &["custodian-a", "custodian-b"],
        "root-2026",
        "root",
        &[
            "--backup-to",
            &a,
            "--backup-to",
            &b,
            "--backup-out",
            "root-2026.backup",
        ],
    );
    assert_eq!(entry["policy"], "in-memory-with-backups", "{entry:#}");
    assert_eq!(entry["copies"].as_array().unwrap().len(), 1, "{entry:#}");
    let backup = hsm.path().join("root-2026.backup");
    assert_eq!(
        entry["backups"][0]["file"],
        backup.display().to_string(),
        "{entry:#}"
    );
    assert_eq!(entry["backups"][0]["recipients"], serde_json::json!([a, b]));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Both tokens: the same public key, read with pkcs11-tool; sensitive, never extractable,
    // not local (imported); the same label and CKA_ID.
    let expected = spki_pem(entry["public_key"].as_str().unwrap());
    let id_a = assert_imported_private_key(&hsm, "custodian-a", "root-2026");
    let id_b = assert_imported_private_key(&hsm, "custodian-b", "root-2026");
    assert_eq!(id_a, id_b);
    for token in ["custodian-a", "custodian-b"] {
        assert_eq!(
            token_public_key(&hsm, token, "root-2026", hsm.path()),
            expected
        );
    }
    // Stock age and openssl open the backup with either custodian's identity.
    for id in [&alice, &bob] {
        assert_eq!(stock_public_key(id, &backup), expected);
    }
    // The decrypted document names both tokens.
    let meta = shell(
        hsm.path(),
        &format!(
            "age -d -i {} {} | grep -E '^(label|role|token): '",
            alice.display(),
            backup.display()
        ),
    );
    assert!(
        meta.contains("label: root-2026\n")
            && meta.contains("role: root\n")
            && meta.contains("token: pkcs11:token=custodian-a;")
            && meta.contains("token: pkcs11:token=custodian-b;"),
        "{meta}"
    );

    // key list: the policy, the backup, and no drill yet (a warning).
    let text = hsm.ok(&["key", "list"]);
    assert!(
        text.contains("policy: in-memory-with-backups; also on 1 more token(s)")
            && text.contains("last good drill: never")
            && text.contains("warning: no drill has passed yet"),
        "{text}"
    );
    // A key generated inside its token is recorded as hardware-only.
    hsm.key("custodian-a", "root-hw", "root");
    let list = hsm.ok_json(&["key", "list"]);
    assert_eq!(inventory_key(&list, "root-hw")["policy"], "hardware-only");
    // Nothing is ever overwritten, and the refusal comes before any token is touched.
    let backup_to = |out: &'static str| ["--backup-to", &a, "--backup-out", out];
    let err = hsm.fails(
        1,
        &strs(&generate_into(
            &hsm,
            &["custodian-a"],
            "root-2027",
            "root",
            &backup_to("root-2026.backup"),
        )),
    );
    assert!(one_error(&err).contains("exists already"), "{err}");
    // A label taken on the second token: refused before anything is written.
    let err = hsm.fails(
        1,
        &strs(&generate_into(
            &hsm,
            &["custodian-b", "custodian-a"],
            "root-hw",
            "root",
            &backup_to("other.backup"),
        )),
    );
    assert!(one_error(&err).contains("labelled `root-hw`"), "{err}");
    assert!(!hsm.path().join("other.backup").exists());
    // Without backups, or a passphrase mixed with recipients: bad usage.
    for extra in [
        vec![],
        vec![
            "--backup-to",
            a.as_str(),
            "--backup-passphrase-file",
            "pin",
            "--backup-out",
            "x.backup",
        ],
    ] {
        let mut args = vec![
            "key",
            "generate",
            "--token",
            "pkcs11:token=custodian-a",
            "--label",
            "x",
            "--role",
            "targets",
            "--in-memory",
        ];
        args.extend(extra);
        hsm.fails(2, &args);
    }
    let key = key_in_backup(&[&backup], &[&alice]);
    assert_no_plaintext_keys(&[hsm.path()], &[&key]);
}

#[test]
fn a_passphrase_backup_and_a_2_of_3_split_open_with_stock_tools() {
    tool("script", "bsdutils");
    tool("gfcombine", "libgfshare-bin");
    let hsm = SoftHsm::new();
    hsm.token("release");
    let passphrase = "throwaway test passphrase";
    write(hsm.path(), "backup-passphrase", passphrase);
    generate(
        &hsm,
        &["release"],
        "targets-2026",
        "targets",
        &[
            "--backup-passphrase-file",
            "backup-passphrase",
            "--backup-out",
            "targets.backup.asc",
            "--armor",
        ],
    );
    let file = hsm.path().join("targets.backup.asc");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"),
        "{text}"
    );
    let out = stock_public_key_with_passphrase(&file, passphrase);
    let public = token_public_key(&hsm, "release", "targets-2026", hsm.path());
    assert_eq!(out, public);
    // The drill with the passphrase.
    let out = hsm.ok(&[
        "backup",
        "verify",
        "targets.backup.asc",
        "--passphrase-file",
        "backup-passphrase",
    ]);
    assert!(out.contains("drill passed"), "{out}");

    // 2-of-3: shares 1 and 3 recombine with gfcombine in RAM, and age opens the backup.
    let ids: Vec<(PathBuf, String)> = ["alice", "bob", "carol"]
        .iter()
        .map(|n| age_keygen(hsm.path(), n))
        .collect();
    let mut extra = vec!["--split", "2-of-3", "--backup-out", "snapshot.backup"];
    for (_, r) in &ids {
        extra.extend(["--backup-to", r.as_str()]);
    }
    let entry = generate(&hsm, &["release"], "snapshot-2026", "snapshot", &extra);
    let split = entry["backups"][0]["split"].as_str().unwrap().to_owned();
    assert!(split.starts_with("2-of-3 "), "{entry:#}");
    let backup = hsm.path().join("snapshot.backup");
    let share = |i: u8| hsm.path().join(format!("snapshot.backup.{i}.age"));
    let ram = ram_scratch();
    assert_eq!(
        stock_recovery(
            ram.path(),
            &[(&ids[0].0, &share(1)), (&ids[2].0, &share(3))],
            &backup
        ),
        token_public_key(&hsm, "release", "snapshot-2026", hsm.path())
    );
    drop(ram);
    let k1 = key_in_backup(&[&backup, &share(1), &share(2)], &[&ids[0].0, &ids[1].0]);
    assert_no_plaintext_keys(&[hsm.path()], &[&k1]);
}

#[test]
fn the_drill_passes_and_every_failure_has_its_own_message() {
    let hsm = SoftHsm::new();
    hsm.token("a");
    hsm.token("b");
    let ids: Vec<(PathBuf, String)> = ["alice", "bob", "carol"]
        .iter()
        .map(|n| age_keygen(hsm.path(), n))
        .collect();
    let id = |i: usize| ids[i].0.to_str().unwrap().to_owned();
    let split_args = |out: &'static str| {
        let mut v = vec![
            "--split".to_owned(),
            "2-of-3".into(),
            "--backup-out".into(),
            out.into(),
        ];
        for (_, r) in &ids {
            v.extend(["--backup-to".into(), r.clone()]);
        }
        v
    };
    generate(
        &hsm,
        &["a", "b"],
        "root-2026",
        "root",
        &["--backup-to", &ids[0].1, "--backup-out", "root.backup"],
    );
    let s1 = split_args("k1.backup");
    generate(&hsm, &["a"], "targets-2026", "targets", &strs(&s1));
    let s2 = split_args("k2.backup");
    generate(&hsm, &["b"], "snapshot-2026", "snapshot", &strs(&s2));

    // One key split twice: the same notary key imported into two tokens, each import with a
    // 2-of-3 split backup.
    write(hsm.path(), "rootpass", "rootpass");
    let sample = notary_sample("throwaway-test-notary-root.d0b08f4a.key");
    for (token, out) in [("a", "s1.backup"), ("b", "s2.backup")] {
        let mut args = import_args(&hsm, &sample, token, &["rootpass"]);
        args.extend(split_args(out));
        hsm.ok(&strs(&args));
    }
    let list = hsm.ok_json(&["key", "list"]);
    let imported = inventory_key(&list, "root-d0b08f4a");
    assert_eq!(
        imported["backups"].as_array().unwrap().len(),
        2,
        "{imported:#}"
    );
    assert_eq!(
        imported["copies"].as_array().unwrap().len(),
        1,
        "{imported:#}"
    );

    // Passes: the plain backup, and the split with shares 1+3 and 2+3.
    let out = hsm.ok(&["backup", "verify", "root.backup", "--identity", &id(0)]);
    assert!(
        out.contains("drill passed") && out.matches("holds the same key").count() == 2,
        "{out}"
    );
    for (x, y) in [(1, 3), (2, 3)] {
        let out = hsm.ok(&[
            "backup",
            "verify",
            "k1.backup",
            &format!("k1.backup.{x}.age"),
            &format!("k1.backup.{y}.age"),
            "--identity",
            &id(x - 1),
            "--identity",
            &id(y - 1),
        ]);
        assert!(
            out.contains("drill passed") && out.contains(&format!("shares {x}, {y} recombined")),
            "{out}"
        );
    }

    // Damaged copies.
    let bytes = std::fs::read(hsm.path().join("root.backup")).unwrap();
    let mut tampered = bytes.clone();
    let at = tampered.len() - 40;
    tampered[at] ^= 0x01;
    std::fs::write(hsm.path().join("tampered.backup"), tampered).unwrap();
    std::fs::write(
        hsm.path().join("truncated.backup"),
        &bytes[..bytes.len() - 300],
    )
    .unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["tampered.backup".into(), "--identity".into(), id(0)],
            "has been altered or damaged",
        ),
        (
            vec!["truncated.backup".into(), "--identity".into(), id(0)],
            "is truncated",
        ),
        (
            vec!["root.backup".into(), "--identity".into(), id(2)],
            "none of the given identities can decrypt it",
        ),
        (
            vec![
                "k1.backup".into(),
                "k1.backup.1.age".into(),
                "--identity".into(),
                id(0),
            ],
            "1 share(s) given of split 2-of-3",
        ),
        (
            vec![
                "k1.backup".into(),
                "k1.backup.1.age".into(),
                "k2.backup.2.age".into(),
                "--identity".into(),
                id(0),
                "--identity".into(),
                id(1),
            ],
            "are shares of two different keys",
        ),
        (
            vec![
                "s1.backup".into(),
                "s1.backup.1.age".into(),
                "s2.backup.2.age".into(),
                "--identity".into(),
                id(0),
                "--identity".into(),
                id(1),
            ],
            "are shares of two different splits of key `root-d0b08f4a`",
        ),
    ];
    let mut lines = Vec::new();
    for (args, expected) in &cases {
        let mut all = vec!["backup".to_owned(), "verify".into()];
        all.extend(args.iter().cloned());
        let err = hsm.fails(1, &strs(&all));
        let line = one_error(&err);
        assert!(line.contains(expected), "{expected}: {err}");
        lines.push(line);
    }
    let distinct: std::collections::BTreeSet<_> = lines
        .iter()
        .map(|l| l.split(": ").skip(2).collect::<Vec<_>>().join(": "))
        .collect();
    assert_eq!(distinct.len(), lines.len(), "{lines:#?}");

    // The drills are recorded: passes and the failures of files known as backups of a key.
    let list = hsm.ok_json(&["key", "list"]);
    let root = inventory_key(&list, "root-2026");
    let drills = root["drills"].as_array().unwrap();
    assert_eq!(drills[0]["result"], "passed", "{root:#}");
    assert!(
        drills.iter().any(|d| d["result"] == "failed"
            && d["detail"]
                .as_str()
                .unwrap()
                .contains("none of the given identities")),
        "{root:#}"
    );
    assert!(root["last_good_drill"].is_string(), "{root:#}");
    let targets = inventory_key(&list, "targets-2026");
    assert_eq!(
        targets["drills"][0]["shares_used"],
        serde_json::json!([1, 3])
    );
    let text = hsm.ok(&["key", "list"]);
    assert!(text.contains("warning: the last drill"), "{text}");

    // A drill older than a year is called stale.
    let inventory = hsm.trust_dir().join("inventory.json");
    let old = std::fs::read_to_string(&inventory)
        .unwrap()
        .replace("\"date\": \"20", "\"date\": \"19");
    std::fs::write(&inventory, old).unwrap();
    let text = hsm.ok(&["key", "list"]);
    assert!(
        text.contains("is more than a year old: run `rootkeeper backup verify`"),
        "{text}"
    );

    let k0 = key_in_backup(&[&hsm.path().join("root.backup")], &[&ids[0].0]);
    let k1 = key_in_backup(
        &[
            &hsm.path().join("k1.backup"),
            &hsm.path().join("k1.backup.1.age"),
            &hsm.path().join("k1.backup.2.age"),
        ],
        &[&ids[0].0, &ids[1].0],
    );
    assert_no_plaintext_keys(&[hsm.path()], &[&k0, &k1]);
}

#[test]
fn a_key_restored_into_a_fresh_token_signs_under_its_original_public_key() {
    let hsm = SoftHsm::new();
    hsm.token("custodian-a");
    hsm.token("replacement");
    let (alice, a) = age_keygen(hsm.path(), "alice");
    generate(
        &hsm,
        &["custodian-a"],
        "root-2026",
        "root",
        &["--backup-to", &a, "--backup-out", "root.backup"],
    );
    let backup = hsm.path().join("root.backup");
    let restore = restore_args("root.backup", &alice, &hsm.token_uri("replacement"));
    let out = hsm.ok(&strs(&restore));
    assert!(out.contains("restored key `root-2026`"), "{out}");
    let id = assert_imported_private_key(&hsm, "replacement", "root-2026");
    assert_eq!(
        id,
        assert_imported_private_key(&hsm, "custodian-a", "root-2026")
    );
    // A signature made in the new token with pkcs11-tool verifies under the original public
    // key (from the backup, with stock tools) with openssl.
    let work = hsm.path();
    std::fs::write(work.join("public.pem"), stock_public_key(&alice, &backup)).unwrap();
    assert_token_signs(&hsm, "replacement", ["--label", "root-2026"], work);
    // The inventory lists the new token as a copy; the drill now compares both tokens.
    let list = hsm.ok_json(&["key", "list"]);
    let entry = inventory_key(&list, "root-2026");
    assert!(
        entry["copies"][0]["uri"]
            .as_str()
            .unwrap()
            .contains("token=replacement"),
        "{entry:#}"
    );
    let out = drill(&hsm, "root.backup", &alice);
    assert_eq!(out.matches("holds the same key").count(), 2, "{out}");
    // A token that holds the label already is refused; so is a trust directory that does not
    // know the key.
    let err = hsm.fails(1, &strs(&restore));
    assert!(
        one_error(&err).contains("already holds an object labelled `root-2026`"),
        "{err}"
    );
    let elsewhere = [vec!["--dir".to_owned(), "other-trust".into()], restore].concat();
    let err = hsm.fails(1, &strs(&elsewhere));
    assert!(
        one_error(&err).contains("not in this trust directory's inventory"),
        "{err}"
    );
    let key = key_in_backup(&[&backup], &[&alice]);
    assert_no_plaintext_keys(&[hsm.path()], &[&key]);
}

fn notary_sample(name: &str) -> PathBuf {
    fixture(&format!("backup/{name}"))
}

#[test]
fn notary_and_docker_keys_are_imported_and_the_imported_root_signs_a_root_notary_trusts() {
    let hsm = SoftHsm::new();
    let server = NotaryServer::start();
    hsm.token("root-a");
    hsm.token("repo");
    write(hsm.path(), "rootpass", "rootpass");
    write(hsm.path(), "targetspass", "targetspass");
    let root_file = notary_sample("throwaway-test-notary-root.d0b08f4a.key");
    let targets_file = notary_sample("throwaway-test-notary-targets.eac06441.key");
    // Both passphrases offered: each file opens with its own.
    let out = hsm.ok(&strs(&import_args(
        &hsm,
        &root_file,
        "root-a",
        &["targetspass", "rootpass"],
    )));
    assert!(
        out.contains("(role root)")
            && out.contains("retire the old files")
            && out.contains("shred -u"),
        "{out}"
    );
    // A wrong passphrase, with no terminal to ask on: its own message, nothing imported.
    let err = hsm.fails(
        1,
        &strs(&import_args(&hsm, &targets_file, "repo", &["rootpass"])),
    );
    assert!(one_error(&err).contains("the passphrase is wrong"), "{err}");
    hsm.ok(&strs(&import_args(
        &hsm,
        &targets_file,
        "repo",
        &["targetspass"],
    )));
    assert_imported_private_key(&hsm, "root-a", "root-d0b08f4a");
    assert_imported_private_key(&hsm, "repo", "targets-eac06441");
    let list = hsm.ok_json(&["key", "list"]);
    let root = inventory_key(&list, "root-d0b08f4a");
    assert_eq!(root["policy"], "imported");
    assert_eq!(root["role"], "root");
    assert!(root["key_id"].as_str().unwrap().starts_with("d0b08f4a"));
    assert_eq!(root["imported_from"], root_file.display().to_string());
    let text = hsm.ok(&["key", "list"]);
    assert!(
        text.contains("warning: no rootkeeper backup is recorded"),
        "{text}"
    );

    // A key made by `docker trust key generate`, imported from docker's trust folder.
    let config = hsm.path().join("docker-config");
    docker_key_generate(&config, "ci-signer", hsm.path(), "throwaway-docker-pass");
    write(hsm.path(), "dockerpass", "throwaway-docker-pass");
    let out = hsm.ok(&strs(&import_args(
        &hsm,
        &config.join("trust"),
        "repo",
        &["dockerpass"],
    )));
    assert!(out.contains("(role ci-signer)"), "{out}");
    let list = hsm.ok_json(&["key", "list"]);
    assert_eq!(
        inventory_key(
            &list,
            &format!("ci-signer-{}", &docker_key_id(&config)[..8])
        )["role"],
        "ci-signer"
    );

    // The imported root key signs a root; rootkeeper verifies it and notary trusts it.
    let gun = "example.com/demo/app";
    hsm.key("repo", "snapshot", "snapshot");
    hsm.timestamp_key(Some(&server), gun, "ts.json");
    let root_key = hsm.key_uri("root-a", "root-d0b08f4a");
    let targets_key = hsm.key_uri("repo", "targets-eac06441");
    let snapshot_key = hsm.key_uri("repo", "snapshot");
    hsm.sign_1_of_1(gun, [&root_key, &targets_key, &snapshot_key], "ts.json");
    hsm.ok(&["root", "verify", "--gun", gun]);
    hsm.ok(&["root", "export", "--gun", gun, "--out", "out"]);
    hsm.ok(&["root", "verify", "out/root.json"]);
    hsm.publish(&server, "out", gun);
    server.assert_trusts(&hsm, gun);

    let keys: Vec<_> = [(&root_file, "rootpass"), (&targets_file, "targetspass")]
        .iter()
        .map(|(f, p)| {
            rootkeeper::backup::notary_key::read(
                "k",
                &std::fs::read(f).unwrap(),
                Some(&rootkeeper::secret::Pin::new((*p).into())),
            )
            .unwrap()
            .into_key()
        })
        .collect();
    assert_no_plaintext_keys(&[hsm.path()], &keys.iter().collect::<Vec<_>>());
}

fn docker_key_id(config: &Path) -> String {
    let files: Vec<PathBuf> = std::fs::read_dir(config.join("trust/private"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    files[0].file_stem().unwrap().to_str().unwrap().to_owned()
}

#[test]
fn an_exported_key_is_loaded_by_notary_and_docker_and_publishes_a_target() {
    let hsm = SoftHsm::new();
    let server = NotaryServer::start();
    hsm.token("root-a");
    hsm.token("release");
    let (alice, a) = age_keygen(hsm.path(), "alice");
    let root = hsm.key("root-a", "root", "root");
    generate(
        &hsm,
        &["release"],
        "targets-2026",
        "targets",
        &["--backup-to", &a, "--backup-out", "targets.backup"],
    );
    let targets = hsm.key_uri("release", "targets-2026");
    let gun = "example.com/ci/app";
    hsm.draft_server_snapshot(&server, gun, &root, &targets);
    hsm.ok(&[
        "root", "sign", "--gun", gun, "--key", &root, "--key", &targets,
    ]);
    hsm.ok(&["root", "export", "--gun", gun, "--out", "out"]);
    hsm.publish(&server, "out", gun);

    // The targets key, from its backup, in notary's format; refusals first.
    let passphrase = "throwaway-export-pass";
    write(hsm.path(), "export-pass", passphrase);
    let export = |key: &str, out: &str, extra: &[&str]| {
        let mut args = vec![
            "key",
            "export-notary",
            key,
            "--out",
            out,
            "--identity",
            alice.to_str().unwrap(),
            "--new-passphrase-file",
            "export-pass",
        ];
        args.extend_from_slice(extra);
        hsm.run(&args)
    };
    let run = export("root", "root.key", &["--allow-root"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        one_error(&run.stderr).contains("its policy is hardware-only"),
        "{run:?}"
    );
    let run = export("targets-2026", "ci.key", &[]);
    assert!(one_error(&run.stderr).contains("give --gun GUN"), "{run:?}");
    let run = export("targets-2026", "ci.key", &["--gun", gun]);
    assert_eq!(run.code, 0, "{run:?}");
    let file = hsm.path().join("ci.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // The notary client imports it and publishes a target with it.
    let client = hsm.path().join("notary-ci");
    let notary = |args: &[&str]| {
        let run = Run::of(
            notary_command(&server.url, None, &client, args)
                .env("NOTARY_TARGETS_PASSPHRASE", passphrase)
                .current_dir(hsm.path()),
        );
        assert_eq!(run.code, 0, "notary {args:?}: {run:?}");
    };
    notary(&["key", "import", file.to_str().unwrap()]);
    std::fs::write(hsm.path().join("payload.txt"), b"release 1\n").unwrap();
    notary(&["add", gun, "v1", "payload.txt"]);
    notary(&["publish", gun]);
    let fresh = hsm.path().join("notary-reader");
    let run = notary_client(&server.url, None, &fresh, &["list", gun]);
    assert!(
        run.code == 0 && run.stdout.contains("v1"),
        "{run:?}\n{}",
        server.log()
    );

    // As a docker signer key (another role, no GUN): `docker trust key load` takes it.
    let run = export("targets-2026", "ci-signer.key", &["--role", "ci-signer"]);
    assert_eq!(run.code, 0, "{run:?}");
    let config = hsm.path().join("docker-config");
    docker_key_load(
        &config,
        &hsm.path().join("ci-signer.key"),
        "ci-signer",
        passphrase,
    );
    let key = key_in_backup(&[&hsm.path().join("targets.backup")], &[&alice]);
    assert_no_plaintext_keys(&[hsm.path()], &[&key]);
}
