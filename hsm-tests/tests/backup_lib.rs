//! The backup library (src/backup, src/backend/memory.rs, PKCS#11 import) against the stock
//! tools a custodian will have: Debian's `age` and `age-keygen`, `openssl`, `gfcombine`
//! (libgfshare-bin), `script` (a terminal for age's passphrase prompt), OpenSC's `pkcs11-tool`
//! with SoftHSM, the `notary` client and the `docker` CLI. A missing tool fails the test with
//! the package to install (hsm-tests/run installs them all); nothing is skipped.
//!
//! Every test ends by searching its scratch folders for an unencrypted private key: PEM
//! `PRIVATE KEY` blocks, and the raw, hex and PKCS#8 base64 forms of every key it made.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hsm_tests::{SoftHsm, TEST_PIN, TEST_SO_PIN, fixture};
use p256::pkcs8::{EncodePublicKey, LineEnding};
use rootkeeper::Error;
use rootkeeper::backend::memory::MemorySigner;
use rootkeeper::backup::notary_key::{self, NotaryKeyProblem};
use rootkeeper::backup::{
    self, BackupMetadata, BackupProblem, EncryptedFile, Identities, KeyBackup, Recipient,
};
use rootkeeper::secret::{NoPrompter, Pin};
use rootkeeper::signer::Signer;

mod backup_common;
use backup_common::*;

fn new_backup(label: &str) -> KeyBackup {
    let key = MemorySigner::generate(label).unwrap();
    KeyBackup::new(
        BackupMetadata {
            label: label.into(),
            role: "root".into(),
            created: "2026-12-01T07:31:00Z".into(),
            tokens: vec![format!("pkcs11:token=custodian-a;object={label};id=%01")],
            x509_key_ids: Vec::new(),
        },
        key,
    )
    .unwrap()
}

fn public_pem(key: &dyn Signer) -> String {
    key.public_key().to_public_key_pem(LineEnding::LF).unwrap()
}

/// [`assert_no_plaintext_keys`] over folders that include the RAM scratch folder of a stock
/// recovery, which holds the decrypted shares and the recombined age identity while it
/// lasts: only PEM private keys, backup documents and the secret forms of `keys` count.
fn assert_no_plaintext_keys_with_ram(dirs: &[&Path], keys: &[&MemorySigner]) {
    let forms: Vec<Vec<u8>> = keys.iter().flat_map(|k| secret_forms(k)).collect();
    assert_none_found(dirs, &KEY_MARKERS, &forms);
}

/// The secret forms a child process printed (never written to a file).
fn forms_from_child(said: &str) -> Vec<Vec<u8>> {
    let forms: Vec<Vec<u8>> = said
        .lines()
        .filter_map(|l| l.split_once("SECRET-FORM ").map(|(_, h)| h))
        .map(|h| hex::decode(h).unwrap())
        .collect();
    assert_eq!(forms.len(), 5, "one line per secret form: {said}");
    forms
}

#[test]
fn stock_age_and_openssl_read_a_backup_binary_and_armored() {
    let dir = scratch("rk-backup-test-");
    let (id_a, rcp_a) = age_keygen(dir.path(), "alice");
    let (id_b, rcp_b) = age_keygen(dir.path(), "bob");
    let backup = new_backup("root-2026");
    // The key is in memory: this process can no longer dump core (read from the kernel).
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    assert!(
        core.split_whitespace().skip(4).take(2).all(|v| v == "0"),
        "{core}"
    );
    assert!(!rootkeeper::backend::memory::core_dumps_possible());

    let recipients = [
        Recipient::parse(&rcp_a).unwrap(),
        Recipient::parse(&rcp_b).unwrap(),
    ];
    for armor in [false, true] {
        let bytes = backup::encrypt_backup(&backup, &recipients, armor, &prompter()).unwrap();
        let file = dir.path().join(format!(
            "root-2026.backup{}",
            if armor { ".asc" } else { "" }
        ));
        std::fs::write(&file, &bytes).unwrap();
        for id in [&id_a, &id_b] {
            assert_eq!(stock_public_key(id, &file), public_pem(backup.key()));
        }
        // The decrypted text carries the metadata, readable by a person.
        let meta = shell(
            dir.path(),
            &format!(
                "age -d -i {} {} | grep -E '^(label|role|key-id|token): '",
                id_a.display(),
                file.display()
            ),
        );
        assert!(meta.contains("label: root-2026\n"), "{meta}");
        assert!(
            meta.contains(&format!("key-id: {}\n", backup.key_id())),
            "{meta}"
        );
        // docs/backup.md: notary's key ID from the public key, with coreutils alone.
        let key_id = shell(
            dir.path(),
            &format!(
                "b64=$(age -d -i {} {} | openssl pkey -pubout -outform DER | base64 -w0)\n\
                 printf '{{\"keytype\":\"ecdsa\",\"keyval\":{{\"private\":null,\"public\":\"%s\"}}}}' \"$b64\" | sha256sum | cut -d' ' -f1",
                id_a.display(),
                file.display()
            ),
        );
        assert_eq!(key_id.trim(), backup.key_id());
        println!("backup size (armor {armor}): {} bytes", bytes.len());
        // And the library opens the same file.
        let opened = backup::open_backup(
            &[EncryptedFile {
                name: "root-2026.backup",
                bytes: &bytes,
            }],
            &identities(&[&id_b]),
            &prompter(),
        )
        .unwrap();
        assert_eq!(opened.backup.public_key(), backup.public_key());
    }
    assert_no_plaintext_keys(&[dir.path()], &[backup.key()]);
}

#[test]
fn stock_age_decrypts_a_passphrase_backup() {
    tool("script", "bsdutils");
    let dir = scratch("rk-backup-test-");
    let backup = new_backup("root-2026");
    let passphrase = "throwaway test passphrase";
    let recipient = Recipient::passphrase(Pin::new(passphrase.into())).unwrap();
    let bytes = backup::encrypt_backup(&backup, &[recipient], true, &prompter()).unwrap();
    let file = dir.path().join("root-2026.backup.asc");
    std::fs::write(&file, &bytes).unwrap();
    let out = stock_public_key_with_passphrase(&file, passphrase);
    assert_eq!(out, public_pem(backup.key()));
    assert_no_plaintext_keys(&[dir.path()], &[backup.key()]);
}

/// docs/backup.md's stock restore: the recovered key into a fresh SoftHSM token with
/// `pkcs11-tool`, piped (no file holds the key), then a signature that openssl verifies.
fn stock_restore_into_token(ram: &Path, backup_file: &Path, key: &MemorySigner) {
    tool("pkcs11-tool", "opensc");
    tool("softhsm2-util", "softhsm2");
    let hsm = SoftHsm::new();
    std::fs::write(ram.join("public.pem"), public_pem(key)).unwrap();
    let script = format!(
        "export SOFTHSM2_CONF={conf}\n\
         softhsm2-util --init-token --free --label restored --pin {pin} --so-pin {so} >/dev/null\n\
         p11() {{ pkcs11-tool --module {module} --token-label restored --login --pin {pin} \"$@\"; }}\n\
         age -d -i identity.txt {backup} | openssl pkey -outform DER |\n\
           p11 --write-object /dev/stdin --type privkey --id 01 --label root-2026 --usage-sign --sensitive\n\
         age -d -i identity.txt {backup} | openssl pkey -pubout -outform DER |\n\
           p11 --write-object /dev/stdin --type pubkey --id 01 --label root-2026\n\
         printf 'restored' | openssl dgst -sha256 -binary > digest\n\
         p11 --sign --mechanism ECDSA --id 01 --signature-format openssl --input-file digest --output-file signature\n\
         openssl pkeyutl -verify -pubin -inkey public.pem -in digest -sigfile signature\n\
         p11 --list-objects --type privkey\n",
        conf = hsm.path().join("softhsm2.conf").display(),
        module = softhsm_module().display(),
        pin = TEST_PIN,
        so = TEST_SO_PIN,
        backup = backup_file.display(),
    );
    let out = shell(ram, &script);
    assert!(out.contains("Signature Verified Successfully"), "{out}");
    assert!(out.contains("Access:     sensitive"), "{out}");
    assert_no_plaintext_keys_with_ram(&[hsm.path(), ram], &[key]);
}

#[test]
fn a_2_of_3_split_recombines_with_gfcombine_and_decrypts_with_stock_age() {
    let dir = scratch("rk-backup-test-");
    let people: Vec<(PathBuf, String)> = ["alice", "bob", "carol"]
        .iter()
        .map(|n| age_keygen(dir.path(), n))
        .collect();
    let backup = new_backup("root-2026");
    let recipients: Vec<Recipient> = people
        .iter()
        .map(|(_, r)| Recipient::parse(r).unwrap())
        .collect();
    let split = backup::split_backup(&backup, 2, &recipients, false, &prompter()).unwrap();
    let path = dir.path().join("root-2026.backup");
    std::fs::write(&path, &split.backup).unwrap();
    let share_paths: Vec<PathBuf> = (1..=3u8).map(|i| backup::share_path(&path, i)).collect();
    for (p, bytes) in share_paths.iter().zip(&split.shares) {
        std::fs::write(p, bytes).unwrap();
    }
    assert_eq!(
        share_paths[2].file_name().unwrap(),
        "root-2026.backup.3.age"
    );

    let mut rams = Vec::new();
    for pair in [[0usize, 2], [1, 2], [0, 1]] {
        let ram = ram_scratch();
        let custodians: Vec<(&Path, &Path)> = pair
            .iter()
            .map(|&i| (people[i].0.as_path(), share_paths[i].as_path()))
            .collect();
        assert_eq!(
            stock_recovery(ram.path(), &custodians, &path),
            public_pem(backup.key()),
            "shares {pair:?}"
        );
        if pair == [0, 2] {
            stock_restore_into_token(ram.path(), &path, backup.key());
        }
        // The library verifies the same pairs.
        let files: Vec<(String, Vec<u8>)> = std::iter::once(path.clone())
            .chain(pair.iter().map(|&i| share_paths[i].clone()))
            .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
            .collect();
        let refs: Vec<EncryptedFile<'_>> = files
            .iter()
            .map(|(n, b)| EncryptedFile { name: n, bytes: b })
            .collect();
        let ids = identities(&[&people[pair[0]].0, &people[pair[1]].0]);
        let opened = backup::open_backup(&refs, &ids, &prompter()).unwrap();
        assert_eq!(opened.backup.public_key(), backup.public_key());
        rams.push(ram);
    }
    // One share alone does not recombine with the stock tool either.
    let ram = ram_scratch();
    let one = shell(
        ram.path(),
        &format!(
            "age -d -i {} {} > s.txt\n\
             sed -n 's/^gfshare-data: //p' s.txt | base64 -d > \"$(sed -n 's/^gfshare-file: //p' s.txt)\"\n\
             gfcombine -o identity.txt identity-*.0* 2>&1 || echo refused",
            people[0].0.display(),
            share_paths[0].display()
        ),
    );
    assert!(one.contains("refused"), "{one}");
    let mut dirs: Vec<&Path> = vec![dir.path(), ram.path()];
    dirs.extend(rams.iter().map(|r| r.path()));
    assert_no_plaintext_keys_with_ram(&dirs, &[backup.key()]);
}

fn message(e: Error) -> (String, BackupProblem) {
    let text = e.to_string();
    assert!(!text.contains('\n'), "not one line: {text}");
    assert!(e.hint().is_some(), "no hint for {text}");
    match e {
        Error::Backup { problem, .. } => (text, problem),
        other => panic!("not a backup error: {other}"),
    }
}

#[test]
fn every_failure_has_its_own_one_line_message() {
    let dir = scratch("rk-backup-test-");
    let people: Vec<(PathBuf, String)> = ["alice", "bob", "carol", "mallory"]
        .iter()
        .map(|n| age_keygen(dir.path(), n))
        .collect();
    let recipients: Vec<Recipient> = people[..3]
        .iter()
        .map(|(_, r)| Recipient::parse(r).unwrap())
        .collect();
    let backup = new_backup("root-2026");
    let other = new_backup("root-2027");
    let single = backup::encrypt_backup(&backup, &recipients[..1], false, &prompter()).unwrap();
    let split_a = backup::split_backup(&backup, 2, &recipients, true, &prompter()).unwrap();
    let split_b = backup::split_backup(&backup, 2, &recipients, true, &prompter()).unwrap();
    let split_c = backup::split_backup(&other, 2, &recipients, true, &prompter()).unwrap();
    let alice = identities(&[&people[0].0]);
    let alice_bob = identities(&[&people[0].0, &people[1].0]);
    let mallory = identities(&[&people[3].0]);
    let f = |name: &'static str, bytes: &[u8]| -> EncryptedFile<'static> {
        EncryptedFile {
            name,
            bytes: Box::leak(bytes.to_vec().into_boxed_slice()),
        }
    };
    let open = |files: &[EncryptedFile<'_>], ids: &Identities| {
        backup::open_backup(files, ids, &prompter()).unwrap_err()
    };
    let mut tampered = single.clone();
    let at = tampered.len() - 10;
    tampered[at] ^= 0x01;
    let truncated = &single[..single.len() - 7];

    let cases = [
        ("tampered", open(&[f("root.backup", &tampered)], &alice)),
        ("truncated", open(&[f("root.backup", truncated)], &alice)),
        (
            "wrong identity",
            open(&[f("root.backup", &single)], &mallory),
        ),
        (
            "not age",
            open(&[f("notes.txt", b"shopping list\n")], &alice),
        ),
        (
            "1 of a 2-of-3",
            open(
                &[
                    f("a.backup", &split_a.backup),
                    f("a.backup.1.age", &split_a.shares[0]),
                ],
                &alice,
            ),
        ),
        (
            "two splits",
            open(
                &[
                    f("a.backup", &split_a.backup),
                    f("a.backup.1.age", &split_a.shares[0]),
                    f("b.backup.2.age", &split_b.shares[1]),
                ],
                &alice_bob,
            ),
        ),
        (
            "two keys",
            open(
                &[
                    f("a.backup", &split_a.backup),
                    f("a.backup.1.age", &split_a.shares[0]),
                    f("c.backup.2.age", &split_c.shares[1]),
                ],
                &alice_bob,
            ),
        ),
    ];
    let mut seen = BTreeSet::new();
    for (what, err) in cases {
        let (text, problem) = message(err);
        let expected = match what {
            "tampered" => matches!(problem, BackupProblem::Tampered(_)),
            "truncated" => problem == BackupProblem::Truncated,
            "wrong identity" => problem == BackupProblem::WrongIdentity,
            "not age" => problem == BackupProblem::NotAge,
            "1 of a 2-of-3" => matches!(
                problem,
                BackupProblem::TooFewShares {
                    have: 1,
                    need: 2,
                    ..
                }
            ),
            "two splits" => matches!(problem, BackupProblem::MixedSplits { .. }),
            "two keys" => matches!(problem, BackupProblem::MixedKeys { .. }),
            _ => false,
        };
        assert!(expected, "{what}: {text}");
        // The message without the file name differs from every other case's.
        let body = text
            .split_once(": ")
            .map(|(_, b)| b.to_owned())
            .unwrap_or(text.clone());
        let kind = body
            .split_whitespace()
            .take(6)
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            seen.insert(kind),
            "{what}: same message as another case: {text}"
        );
        println!("{what:>16}: {text}");
    }
    // Stock age agrees that the tampered and truncated files are bad.
    let bad = dir.path().join("tampered.age");
    std::fs::write(&bad, &tampered).unwrap();
    let out = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&people[0].0)
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_no_plaintext_keys(&[dir.path()], &[backup.key(), other.key()]);
}

fn notary_problem(e: Error) -> NotaryKeyProblem {
    match e {
        Error::NotaryKey { problem, .. } => problem,
        other => panic!("not a notary key error: {other}"),
    }
}

#[test]
fn notary_key_files_written_by_notary_are_read() {
    let root = std::fs::read(fixture("backup/throwaway-test-notary-root.d0b08f4a.key")).unwrap();
    let targets =
        std::fs::read(fixture("backup/throwaway-test-notary-targets.eac06441.key")).unwrap();
    let key = notary_key::read("root", &root, Some(&Pin::new("rootpass".into()))).unwrap();
    assert!(key.key_id().starts_with("d0b08f4a"), "{}", key.key_id());
    assert_eq!(key.role.as_deref(), Some("root"));
    assert_eq!(key.gun, None);
    let key = notary_key::read("targets", &targets, Some(&Pin::new("targetspass".into()))).unwrap();
    assert!(key.key_id().starts_with("eac06441"), "{}", key.key_id());
    assert_eq!(key.role.as_deref(), Some("targets"));
    assert_eq!(key.gun.as_deref(), Some("example.com/demo/app"));

    let wrong = notary_key::read("root", &root, Some(&Pin::new("targetspass".into())));
    assert_eq!(
        notary_problem(wrong.unwrap_err()),
        NotaryKeyProblem::WrongPassphrase
    );
    let cut = &root[..root.len() - 80];
    let truncated = notary_key::read("root", cut, Some(&Pin::new("rootpass".into())));
    assert_eq!(
        notary_problem(truncated.unwrap_err()),
        NotaryKeyProblem::Truncated
    );
    // An RSA key, as `openssl genrsa` writes one and old notary versions could hold.
    let dir = scratch("rk-backup-test-");
    let rsa = shell(
        dir.path(),
        "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -pass pass:throwaway -aes-256-cbc",
    );
    let err = notary_key::read("rsa", rsa.as_bytes(), Some(&Pin::new("throwaway".into())));
    let problem = notary_problem(err.unwrap_err());
    assert!(
        matches!(&problem, NotaryKeyProblem::Unsupported(what) if what.contains("RSA")),
        "{problem}"
    );
}

#[test]
fn a_key_made_by_docker_trust_key_generate_is_read() {
    let dir = scratch("rk-backup-test-");
    let config = dir.path().join("docker-config");
    let said = docker_key_generate(&config, "ci-signer", dir.path(), "throwaway-docker-pass");
    let private_dir = config.join("trust/private");
    let files: Vec<PathBuf> = std::fs::read_dir(&private_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{said}");
    let bytes = std::fs::read(&files[0]).unwrap();
    assert!(notary_key::is_encrypted("k", &bytes).unwrap());
    let key =
        notary_key::read("k", &bytes, Some(&Pin::new("throwaway-docker-pass".into()))).unwrap();
    assert_eq!(key.role.as_deref(), Some("ci-signer"));
    assert_eq!(
        files[0].file_name().unwrap().to_str().unwrap(),
        notary_key::file_name(key.key().public_key())
    );
    // The public key docker wrote next to it (PEM with a role header) is the same key.
    let public = std::fs::read_to_string(dir.path().join("ci-signer.pub")).unwrap();
    let body: String = public
        .lines()
        .filter(|l| !l.starts_with("-----") && !l.contains(':') && !l.is_empty())
        .collect();
    let spki = B64.decode(body).unwrap();
    assert_eq!(
        spki,
        key.key()
            .public_key()
            .to_public_key_der()
            .unwrap()
            .as_bytes()
    );
    assert_no_plaintext_keys(&[dir.path()], &[key.key()]);
}

#[test]
fn an_exported_key_is_loaded_by_notary_and_docker() {
    tool("notary", "notary");
    let dir = scratch("rk-backup-test-");
    let passphrase = Pin::new("throwaway-export-pass".into());
    let targets = MemorySigner::generate("targets").unwrap();
    let pem =
        notary_key::write(&targets, "targets", Some("example.com/ci/app"), &passphrase).unwrap();
    let file = dir.path().join(notary_key::file_name(targets.public_key()));
    std::fs::write(&file, &pem).unwrap();
    let trust = dir.path().join("notary-trust");
    let notary = |args: &[&str]| {
        Command::new("notary")
            .arg("-d")
            .arg(&trust)
            .args(args)
            .env("NOTARY_TARGETS_PASSPHRASE", passphrase.expose())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    check(
        notary(&["key", "import", file.to_str().unwrap()]),
        "notary key import",
    );
    let list =
        String::from_utf8(check(notary(&["key", "list"]), "notary key list").stdout).unwrap();
    let id = notary_key::file_name(targets.public_key()).replace(".key", "");
    let row = list
        .lines()
        .find(|l| l.contains(&id))
        .unwrap_or_else(|| panic!("{id} not in:\n{list}"));
    assert!(
        row.contains("targets") && row.contains("example.com/ci/app"),
        "{row}"
    );
    // notary stored a file it can decrypt again: read its copy with the same passphrase.
    let stored = std::fs::read(trust.join("private").join(format!("{id}.key"))).unwrap();
    let back = notary_key::read("stored", &stored, Some(&passphrase)).unwrap();
    assert_eq!(back.key().public_key(), targets.public_key());

    // A delegation (docker signer) key for `docker trust key load`.
    let signer = MemorySigner::generate("signer").unwrap();
    let pem = notary_key::write(&signer, "ci-signer", None, &passphrase).unwrap();
    let file = dir.path().join("ci-signer.key");
    std::fs::write(&file, &pem).unwrap();
    // docker refuses a key file others may read: the CLI must write these 0600.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = dir.path().join("docker-config");
    docker_key_load(&config, &file, "ci-signer", passphrase.expose());
    let loaded = config
        .join("trust/private")
        .join(notary_key::file_name(signer.public_key()));
    let back =
        notary_key::read("loaded", &std::fs::read(loaded).unwrap(), Some(&passphrase)).unwrap();
    assert_eq!(back.key().public_key(), signer.public_key());
    assert_eq!(back.role.as_deref(), Some("ci-signer"));
    assert_no_plaintext_keys(&[dir.path()], &[&targets, &signer]);
}

/// Runs in a process of its own (SoftHSM reads SOFTHSM2_CONF once per process): imports a key
/// into a fresh token and checks the refusals; the parent checks it with pkcs11-tool/openssl.
#[test]
#[ignore = "run by pkcs11_import_is_sensitive_non_extractable_and_signs in its own process"]
fn pkcs11_import_child() {
    use rootkeeper::backend::pkcs11::{Module, TokenSession};
    use rootkeeper::keyuri::Pkcs11Uri;
    use rootkeeper::secret::PinSources;
    let out = PathBuf::from(
        std::env::var_os("RK_IMPORT_OUT").expect("run through pkcs11_import_is_sensitive_..."),
    );
    let module = std::rc::Rc::new(Module::load(&softhsm_module()).unwrap());
    let token = module
        .init_token(
            "import-test",
            &Pin::new(TEST_SO_PIN.into()),
            &Pin::new(TEST_PIN.into()),
        )
        .unwrap();
    let pins = PinSources {
        pin_file: None,
        env_pin: Some(Pin::new(TEST_PIN.into())),
        prompter: &NoPrompter,
        last_pin_attempt: false,
    };
    let session = module.login(&token, &pins, None).unwrap();
    let key = MemorySigner::generate("root-2026").unwrap();
    let id = TokenSession::fresh_key_id().unwrap();
    let imported = session.import_p256_key("root-2026", &id, &key).unwrap();
    assert_eq!(&imported.public_key, key.public_key());
    // A second key with the same label, or another label and the same ID: refused.
    let second = MemorySigner::generate("second").unwrap();
    assert!(matches!(
        session.import_p256_key("root-2026", &[9, 9], &second),
        Err(Error::LabelTaken { .. })
    ));
    assert!(matches!(
        session.import_p256_key("other", &id, &second),
        Err(Error::KeyIdTaken { .. })
    ));
    // Found again through the ordinary lookup, and it signs.
    let uri = Pkcs11Uri {
        object: Some("root-2026".into()),
        ..Pkcs11Uri::default()
    };
    let (found, _) = session.find_key(&uri).unwrap();
    assert_eq!(found.id, id);
    std::fs::write(out.join("id.hex"), hex::encode(&id)).unwrap();
    std::fs::write(out.join("public.pem"), public_pem(&key)).unwrap();
    // The secrets the parent must not find on disk, handed over through the pipe.
    for form in secret_forms(&key) {
        println!("SECRET-FORM {}", hex::encode(form));
    }
}

#[test]
fn pkcs11_import_is_sensitive_non_extractable_and_signs() {
    tool("pkcs11-tool", "opensc");
    let hsm = SoftHsm::new();
    let out = scratch("rk-backup-test-");
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "pkcs11_import_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SOFTHSM2_CONF", hsm.path().join("softhsm2.conf"))
        .env("RK_IMPORT_OUT", out.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&child.stdout);
    assert!(
        child.status.success() && said.contains("1 passed"),
        "child:\n{said}\n{}",
        String::from_utf8_lossy(&child.stderr)
    );
    let id = std::fs::read_to_string(out.path().join("id.hex")).unwrap();
    // Sensitive, never extractable, not local (imported), under the child's CKA_ID.
    assert_eq!(
        assert_imported_private_key(&hsm, "import-test", "root-2026"),
        id
    );
    let publics = p11(&hsm, "import-test", &["--list-objects", "--type", "pubkey"]);
    assert!(
        publics.contains("root-2026") && publics.contains(&id),
        "{publics}"
    );

    // Sign a SHA-256 digest with pkcs11-tool (CKM_ECDSA), verify with openssl.
    let work = out.path();
    assert_token_signs(&hsm, "import-test", ["--id", &id], work);
    // Neither the token directory nor the scratch folders hold the key in the clear.
    assert_none_found(&[hsm.path(), work], &ALL_MARKERS, &forms_from_child(&said));
}

/// The test-only age plugin (hsm-tests/fixtures/backup/plugin, no security) on PATH.
fn plugin_path() -> std::ffi::OsString {
    tool("python3", "python3");
    let mut paths = vec![fixture("backup/plugin")];
    paths.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(paths).unwrap()
}

/// Runs with the test plugin on PATH (set by the parent for this process alone).
#[test]
#[ignore = "run by plugin_recipients_work_with_rootkeeper_and_stock_age in its own process"]
fn plugin_child() {
    let out = PathBuf::from(
        std::env::var_os("RK_PLUGIN_OUT").expect("run through plugin_recipients_..."),
    );
    let plugin_recipient = std::fs::read_to_string(out.join("plugin.recipient")).unwrap();
    let (x_id, x_rcp) = age_keygen(&out, "bob");
    let backup = new_backup("targets-2026");
    let recipients = [
        Recipient::parse(plugin_recipient.trim()).unwrap(),
        Recipient::parse(&x_rcp).unwrap(),
    ];
    let bytes = backup::encrypt_backup(&backup, &recipients, false, &prompter()).unwrap();
    std::fs::write(out.join("targets.backup"), &bytes).unwrap();
    let plugin_ids = identities(&[&out.join("plugin.identity")]);
    let opened = backup::open_backup(
        &[EncryptedFile {
            name: "targets.backup",
            bytes: &bytes,
        }],
        &plugin_ids,
        &prompter(),
    )
    .unwrap();
    assert_eq!(opened.backup.public_key(), backup.public_key());
    // A 2-of-2 split: share 1 to the plugin, share 2 to bob.
    let split = backup::split_backup(&backup, 2, &recipients, true, &prompter()).unwrap();
    let path = out.join("targets.split");
    std::fs::write(&path, &split.backup).unwrap();
    for (i, share) in split.shares.iter().enumerate() {
        std::fs::write(backup::share_path(&path, i as u8 + 1), share).unwrap();
    }
    let mut both = identities(&[&out.join("plugin.identity")]);
    both.add_identity_file("bob", &std::fs::read_to_string(&x_id).unwrap())
        .unwrap();
    let files: Vec<(String, Vec<u8>)> = [
        path.clone(),
        backup::share_path(&path, 1),
        backup::share_path(&path, 2),
    ]
    .iter()
    .map(|p| (p.display().to_string(), std::fs::read(p).unwrap()))
    .collect();
    let refs: Vec<EncryptedFile<'_>> = files
        .iter()
        .map(|(n, b)| EncryptedFile { name: n, bytes: b })
        .collect();
    let opened = backup::open_backup(&refs, &both, &prompter()).unwrap();
    assert_eq!(opened.backup.public_key(), backup.public_key());
    std::fs::write(out.join("public.pem"), public_pem(backup.key())).unwrap();
    for form in secret_forms(backup.key()) {
        println!("SECRET-FORM {}", hex::encode(form));
    }
}

#[test]
fn plugin_recipients_work_with_rootkeeper_and_stock_age() {
    let dir = scratch("rk-backup-test-");
    let path = plugin_path();
    let generated = Command::new(fixture("backup/plugin/age-plugin-rktest"))
        .arg("--generate")
        .output()
        .unwrap();
    let generated =
        String::from_utf8(check(generated, "age-plugin-rktest --generate").stdout).unwrap();
    let (identity, recipient) = generated.trim().split_once('\n').unwrap();
    std::fs::write(dir.path().join("plugin.identity"), format!("{identity}\n")).unwrap();
    std::fs::write(dir.path().join("plugin.recipient"), recipient).unwrap();
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "plugin_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("PATH", &path)
        .env("RK_PLUGIN_OUT", dir.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&child.stdout).into_owned();
    assert!(
        child.status.success() && said.contains("1 passed"),
        "child:\n{said}\n{}",
        String::from_utf8_lossy(&child.stderr)
    );
    let public = std::fs::read_to_string(dir.path().join("public.pem")).unwrap();
    // Debian's age, with the plugin, decrypts the backup and the plugin's share.
    let out = shell(
        dir.path(),
        &format!(
            "export PATH={}\nage -d -i plugin.identity targets.backup | openssl pkey -pubout",
            path.to_str().unwrap()
        ),
    );
    assert_eq!(out, public);
    let ram = ram_scratch();
    let recovered = shell(
        ram.path(),
        &format!(
            "export PATH={path}\n\
             age -d -i {dir}/plugin.identity {dir}/targets.split.1.age > share-1.txt\n\
             age -d -i {dir}/bob.identity.txt {dir}/targets.split.2.age > share-2.txt\n\
             for s in share-*.txt; do\n\
               sed -n 's/^gfshare-data: //p' \"$s\" | base64 -d > \"$(sed -n 's/^gfshare-file: //p' \"$s\")\"\n\
             done\n\
             gfcombine -o identity.txt identity-*.0*\n\
             age -d -i identity.txt {dir}/targets.split | openssl pkey -pubout",
            path = path.to_str().unwrap(),
            dir = dir.path().display()
        ),
    );
    assert_eq!(recovered, public);
    assert_none_found(
        &[dir.path(), ram.path()],
        &KEY_MARKERS,
        &forms_from_child(&said),
    );
}
