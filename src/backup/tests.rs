//! Unit tests of backups, splits and notary key files (the stock-tool tests are in
//! hsm-tests/tests/backup_lib.rs).

use std::sync::Arc;

use super::*;
use crate::backend::memory::MemorySigner;
use crate::secret::{NoPrompter, Pin};
use crate::signer::Signer;

fn prompter() -> SharedPrompter {
    Arc::new(NoPrompter)
}

fn meta(label: &str) -> BackupMetadata {
    BackupMetadata {
        label: label.into(),
        role: "root".into(),
        created: "2026-12-01T07:31:00Z".into(),
        tokens: vec!["pkcs11:token=custodian-a;object=root-2026;id=%01".into()],
        x509_key_ids: vec![("registry.example.com/app".into(), "ab".repeat(32))],
    }
}

fn backup(label: &str) -> KeyBackup {
    KeyBackup::new(meta(label), MemorySigner::generate(label).unwrap()).unwrap()
}

fn identity() -> (Identities, Recipient, String) {
    let (id, secret) = crypt::fresh_identity();
    let recipient = Recipient::parse(&id.to_public().to_string()).unwrap();
    let mut ids = Identities::new();
    ids.add_identity_file("test identity", &format!("# test\n{}\n", secret.as_str()))
        .unwrap();
    (ids, recipient, secret.to_string())
}

fn problem_of(e: Error) -> BackupProblem {
    match e {
        Error::Backup { problem, .. } => problem,
        other => panic!("not a backup error: {other}"),
    }
}

fn open_one(bytes: &[u8], ids: &Identities) -> Result<Opened> {
    open_backup(&[EncryptedFile { name: "f", bytes }], ids, &prompter())
}

#[test]
fn the_document_round_trips_and_is_checked() {
    let b = backup("root-2026");
    let text = b.to_text().unwrap();
    assert!(text.contains("\n-----BEGIN PRIVATE KEY-----\n"));
    let back = KeyBackup::parse(text.as_bytes()).unwrap();
    assert_eq!(back.public_key(), b.public_key());
    assert_eq!(back.meta, b.meta);
    // Padding newlines are allowed after the PEM block, anything else is not.
    let padded = crypt::pad(&text);
    assert_eq!(padded.len() % crypt::PAD, 0);
    KeyBackup::parse(&padded).unwrap();
    let mut bad = text.to_string();
    bad.push_str("x\n");
    assert!(KeyBackup::parse(bad.as_bytes()).is_err());
}

#[test]
fn the_document_parser_refuses_unknown_duplicate_and_lying_fields() {
    let b = backup("root-2026");
    let text = b.to_text().unwrap().to_string();
    let cases = [
        text.replace("role: root\n", "role: root\ncolour: blue\n"),
        text.replace("role: root\n", "role: root\nrole: targets\n"),
        text.replace("role: root\n", ""),
        text.replace("rootkeeper-key-backup: 1", "rootkeeper-key-backup: 2"),
        text.replace("algorithm: ecdsa-p256", "algorithm: rsa"),
        text.replace("\n\n-----BEGIN", "\n-----BEGIN"),
        text.replace('\n', "\r\n"),
        text.replace("created: 2026-12-01T07:31:00Z", "created: yesterday"),
    ];
    for (i, case) in cases.iter().enumerate() {
        assert!(
            KeyBackup::parse(case.as_bytes()).is_err(),
            "case {i} parsed"
        );
    }
    // Another key's public key or ID in the header.
    let other = backup("other");
    let (other_spki, other_id) = document::public_forms(other.public_key());
    let (spki, id) = document::public_forms(b.public_key());
    let lying = text.replace(&spki, &other_spki);
    assert!(matches!(
        KeyBackup::parse(lying.as_bytes()),
        Err(BackupProblem::Inconsistent(_))
    ));
    let lying = text.replace(&id, &other_id);
    assert!(matches!(
        KeyBackup::parse(lying.as_bytes()),
        Err(BackupProblem::Inconsistent(_))
    ));
}

#[test]
fn parsing_never_panics_on_damaged_documents() {
    let b = backup("root-2026");
    let text = b.to_text().unwrap();
    let bytes = text.as_bytes();
    for cut in 0..bytes.len() {
        let _ = KeyBackup::parse(&bytes[..cut]);
        let _ = split::ShareDoc::parse(&bytes[..cut]);
    }
    for at in (0..bytes.len()).step_by(3) {
        for flip in [0x01u8, 0x20, 0x80, 0xff] {
            let mut copy = bytes.to_vec();
            copy[at] ^= flip;
            let _ = KeyBackup::parse(&copy);
        }
    }
}

#[test]
fn errors_never_quote_key_material() {
    let b = backup("root-2026");
    let text = b.to_text().unwrap().to_string();
    let pem = b.key().to_pkcs8_pem().unwrap();
    let body_line = pem.lines().nth(1).unwrap().to_owned();
    // Put a PEM line where a field should be, and as a field name.
    for case in [
        text.replace("role: root\n", &format!("role: root\n{body_line}\n")),
        text.replace("role: root\n", &format!("role: root\n{body_line}: x\n")),
        text.replace(
            "label: root-2026\n",
            &format!("label: {body_line}\nlabel: x\n"),
        ),
    ] {
        let err = KeyBackup::parse(case.as_bytes()).err().unwrap().to_string();
        assert!(!err.contains(&body_line), "{err}");
    }
}

#[test]
fn x25519_backups_decrypt_and_every_failure_has_its_own_error() {
    let b = backup("root-2026");
    let (ids, recipient, _) = identity();
    for armor in [false, true] {
        let file =
            encrypt_backup(&b, std::slice::from_ref(&recipient), armor, &prompter()).unwrap();
        if armor {
            assert!(file.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----"));
        }
        let opened = open_one(&file, &ids).unwrap();
        assert_eq!(opened.backup.public_key(), b.public_key());
        assert!(opened.shares_used.is_empty());

        // Truncated, at several places.
        for cut in [file.len() - 2, file.len() - 40, file.len() / 2, 30] {
            let p = problem_of(open_one(&file[..cut], &ids).unwrap_err());
            assert_eq!(p, BackupProblem::Truncated, "cut at {cut} (armor {armor})");
        }
        // One byte changed in the payload.
        let mut tampered = file.clone();
        let at = if armor {
            file.len() - 60
        } else {
            file.len() - 20
        };
        tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
        let p = problem_of(open_one(&tampered, &ids).unwrap_err());
        assert!(matches!(p, BackupProblem::Tampered(_)), "{p:?}");
    }
    let file = encrypt_backup(&b, &[recipient], false, &prompter()).unwrap();
    let (other_ids, _, _) = identity();
    assert_eq!(
        problem_of(open_one(&file, &other_ids).unwrap_err()),
        BackupProblem::WrongIdentity
    );
    assert_eq!(
        problem_of(open_one(b"hello, not age\n", &ids).unwrap_err()),
        BackupProblem::NotAge
    );
    // A header MAC changed.
    let text = String::from_utf8_lossy(&file).into_owned();
    let mac_at = text.find("\n--- ").unwrap() + 6;
    let mut tampered = file.clone();
    tampered[mac_at] = if tampered[mac_at] == b'A' { b'B' } else { b'A' };
    let p = problem_of(open_one(&tampered, &ids).unwrap_err());
    assert!(matches!(p, BackupProblem::Tampered(_)), "{p:?}");
    // The key check against the inventory.
    let opened = open_one(&file, &ids).unwrap();
    let other = MemorySigner::generate("o").unwrap();
    let p = problem_of(
        opened
            .backup
            .check_public_key("f", other.public_key())
            .unwrap_err(),
    );
    assert!(matches!(p, BackupProblem::WrongKey { .. }));
    opened.backup.check_public_key("f", b.public_key()).unwrap();
}

#[test]
fn passphrase_backups_stand_alone() {
    let b = backup("root-2026");
    let pass = Recipient::passphrase(Pin::new("correct horse battery".into())).unwrap();
    let (_, x, _) = identity();
    let p = problem_of(encrypt_backup(&b, &[pass, x], false, &prompter()).unwrap_err());
    assert_eq!(p, BackupProblem::MixedPassphrase);
    assert!(Recipient::passphrase(Pin::new("short".into())).is_err());

    let pass = Recipient::passphrase(Pin::new("correct horse battery".into())).unwrap();
    let file = encrypt_backup(&b, &[pass], true, &prompter()).unwrap();
    let mut ids = Identities::new();
    assert_eq!(
        problem_of(open_one(&file, &ids).unwrap_err()),
        BackupProblem::NeedsPassphrase
    );
    ids.add_passphrase(Pin::new("wrong horse battery".into()));
    assert_eq!(
        problem_of(open_one(&file, &ids).unwrap_err()),
        BackupProblem::WrongPassphrase
    );
    ids.add_passphrase(Pin::new("correct horse battery".into()));
    assert_eq!(
        open_one(&file, &ids).unwrap().backup.public_key(),
        b.public_key()
    );
}

struct Custodians {
    ids: Vec<Identities>,
    secrets: Vec<String>,
    recipients: Vec<Recipient>,
}

fn custodians(n: usize) -> Custodians {
    let mut ids = Vec::new();
    let mut secrets = Vec::new();
    let mut recipients = Vec::new();
    for _ in 0..n {
        let (i, r, s) = identity();
        ids.push(i);
        secrets.push(s);
        recipients.push(r);
    }
    Custodians {
        ids,
        secrets,
        recipients,
    }
}

fn all_ids(c: &Custodians, which: &[usize]) -> Identities {
    let mut ids = Identities::new();
    for &w in which {
        ids.add_identity_file("custodian", &c.secrets[w]).unwrap();
    }
    ids
}

#[test]
fn a_split_opens_with_any_two_shares_and_not_with_one() {
    let b = backup("root-2026");
    let c = custodians(3);
    let s = split_backup(&b, 2, &c.recipients, false, &prompter()).unwrap();
    assert_eq!(s.shares.len(), 3);
    assert_eq!((s.split.threshold, s.split.count), (2, 3));
    let file = |name: &'static str, bytes: &'static [u8]| EncryptedFile { name, bytes };
    let leak = |v: &Vec<u8>| -> &'static [u8] { Box::leak(v.clone().into_boxed_slice()) };
    let backup_file = file("b", leak(&s.backup));
    let shares: Vec<EncryptedFile<'static>> = s
        .shares
        .iter()
        .enumerate()
        .map(|(i, sh)| file(["b.1.age", "b.2.age", "b.3.age"][i], leak(sh)))
        .collect();
    for pair in [[0usize, 1], [0, 2], [1, 2]] {
        let ids = all_ids(&c, &pair);
        // Any order, the backup file anywhere.
        let files = [shares[pair[1]], backup_file, shares[pair[0]]];
        let opened = open_backup(&files, &ids, &prompter()).unwrap();
        assert_eq!(opened.backup.public_key(), b.public_key());
        assert_eq!(opened.backup.split(), Some(&s.split));
        let mut used = opened.shares_used.clone();
        used.sort_unstable();
        assert_eq!(used, vec![pair[0] as u8 + 1, pair[1] as u8 + 1]);
    }
    // One share: too few, and the message says which split.
    let ids = all_ids(&c, &[0]);
    let p = problem_of(open_backup(&[backup_file, shares[0]], &ids, &prompter()).unwrap_err());
    assert!(
        matches!(
            p,
            BackupProblem::TooFewShares {
                have: 1,
                need: 2,
                ..
            }
        ),
        "{p:?}"
    );
    assert!(p.to_string().contains(&s.split.id), "{p}");
    // Three shares given, one identity missing: still too few, naming the locked file.
    let p = problem_of(
        open_backup(&[backup_file, shares[0], shares[1]], &ids, &prompter()).unwrap_err(),
    );
    assert!(p.to_string().contains("b.2.age"), "{p}");
    // The same share twice.
    let p = problem_of(
        open_backup(&[backup_file, shares[0], shares[0]], &ids, &prompter()).unwrap_err(),
    );
    assert_eq!(p, BackupProblem::DuplicateShare(1));
    // Shares without the backup file.
    let ids = all_ids(&c, &[0, 1]);
    let p = problem_of(open_backup(&[shares[0], shares[1]], &ids, &prompter()).unwrap_err());
    assert!(matches!(p, BackupProblem::FileSet(_)), "{p:?}");

    // A second split of the same key, and a split of another key.
    let s2 = split_backup(&b, 2, &c.recipients, false, &prompter()).unwrap();
    let other = backup("targets-2026");
    let s3 = split_backup(&other, 2, &c.recipients, false, &prompter()).unwrap();
    let p = problem_of(
        open_backup(
            &[backup_file, shares[0], file("c.2.age", leak(&s2.shares[1]))],
            &ids,
            &prompter(),
        )
        .unwrap_err(),
    );
    assert!(matches!(p, BackupProblem::MixedSplits { .. }), "{p:?}");
    let p = problem_of(
        open_backup(
            &[backup_file, shares[0], file("d.2.age", leak(&s3.shares[1]))],
            &ids,
            &prompter(),
        )
        .unwrap_err(),
    );
    assert!(matches!(p, BackupProblem::MixedKeys { .. }), "{p:?}");
    // Shares of split 2 with the backup file of split 1.
    let p = problem_of(
        open_backup(
            &[
                backup_file,
                file("c.1.age", leak(&s2.shares[0])),
                file("c.2.age", leak(&s2.shares[1])),
            ],
            &ids,
            &prompter(),
        )
        .unwrap_err(),
    );
    assert!(matches!(p, BackupProblem::NotThisSplit { .. }), "{p:?}");
}

#[test]
fn a_forged_share_is_caught_when_recombining() {
    let b = backup("root-2026");
    let c = custodians(3);
    let s = split_backup(&b, 2, &c.recipients, false, &prompter()).unwrap();
    // Anyone can encrypt to a custodian: forge share 2 with different bytes.
    let plain = crypt::decrypt(&s.shares[1], &c.ids[1], &prompter()).unwrap();
    let mut doc = split::ShareDoc::parse(&plain).unwrap();
    doc.data.iter_mut().for_each(|b| *b ^= 0x5a);
    let forged = crypt::encrypt(&doc.to_text(), &c.recipients[1..2], false, &prompter()).unwrap();
    let ids = all_ids(&c, &[0, 1]);
    let files = [
        EncryptedFile {
            name: "b",
            bytes: &s.backup,
        },
        EncryptedFile {
            name: "b.1.age",
            bytes: &s.shares[0],
        },
        EncryptedFile {
            name: "b.2.age",
            bytes: &forged,
        },
    ];
    let p = problem_of(open_backup(&files, &ids, &prompter()).unwrap_err());
    assert!(matches!(p, BackupProblem::Inconsistent(_)), "{p:?}");
}

#[test]
fn split_arguments_are_checked() {
    let b = backup("root-2026");
    let c = custodians(2);
    assert!(split_backup(&b, 3, &c.recipients, false, &prompter()).is_err());
    assert!(split_backup(&b, 1, &c.recipients, false, &prompter()).is_err());
    assert_eq!(
        share_path(std::path::Path::new("/b/root.backup"), 2),
        std::path::PathBuf::from("/b/root.backup.2.age")
    );
}

#[test]
fn recipients_are_parsed_strictly() {
    let (_, r, _) = identity();
    assert!(Recipient::parse(&r.describe()).is_ok());
    for bad in [
        "",
        "age1notbech32",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        assert!(Recipient::parse(bad).is_err(), "{bad}");
    }
    let mut ids = Identities::new();
    assert!(ids.add_identity_file("f", "# only a comment\n").is_err());
    assert!(ids.add_identity_file("f", "AGE-SECRET-KEY-1XYZ\n").is_err());
}

mod notary {
    use super::*;
    use crate::backup::notary_key::{self, NotaryKeyProblem};

    fn problem(e: Error) -> NotaryKeyProblem {
        match e {
            Error::NotaryKey { problem, .. } => problem,
            other => panic!("not a notary key error: {other}"),
        }
    }

    fn back_id(key: &MemorySigner) -> String {
        notary_key::file_name(key.public_key()).replace(".key", "")
    }

    #[test]
    fn written_keys_read_back_with_notary_headers() {
        let key = MemorySigner::generate("t").unwrap();
        let pass = Pin::new("targetspass".into());
        let pem = notary_key::write(&key, "targets", Some("example.com/app"), &pass).unwrap();
        assert!(
            pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----\ngun: example.com/app\npath: ")
        );
        assert!(pem.contains(&format!("\npath: {}\nrole: targets\n\n", back_id(&key))));
        let back = notary_key::read("k", pem.as_bytes(), Some(&pass)).unwrap();
        assert_eq!(back.key().public_key(), key.public_key());
        assert_eq!(back.role.as_deref(), Some("targets"));
        assert_eq!(back.gun.as_deref(), Some("example.com/app"));
        assert!(notary_key::is_encrypted("k", pem.as_bytes()).unwrap());

        let wrong = notary_key::read(
            "k",
            pem.as_bytes(),
            Some(&Pin::new("nottherightone".into())),
        );
        assert_eq!(
            problem(wrong.unwrap_err()),
            NotaryKeyProblem::WrongPassphrase
        );
        assert_eq!(
            problem(notary_key::read("k", pem.as_bytes(), None).unwrap_err()),
            NotaryKeyProblem::NeedsPassphrase
        );
        let cut = &pem.as_bytes()[..pem.len() - 60];
        assert_eq!(
            problem(notary_key::read("k", cut, Some(&pass)).unwrap_err()),
            NotaryKeyProblem::Truncated
        );
        let delegation = notary_key::write(&key, "targets/releases", None, &pass).unwrap();
        assert!(delegation.starts_with(&format!(
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\npath: {}\nrole: targets/releases\n\n",
            back_id(&key)
        )));
    }

    #[test]
    fn root_timestamp_short_passphrases_and_missing_guns_are_refused() {
        let key = MemorySigner::generate("t").unwrap();
        let pass = Pin::new("longenough".into());
        for (role, gun) in [
            ("root", None),
            ("timestamp", Some("g")),
            ("targets", None),
            ("targets/releases", Some("g")),
            ("bad role", None),
        ] {
            assert!(
                matches!(
                    problem(notary_key::write(&key, role, gun, &pass).unwrap_err()),
                    NotaryKeyProblem::Role(_)
                ),
                "{role}"
            );
        }
        assert_eq!(
            problem(
                notary_key::write(&key, "targets", Some("g"), &Pin::new("short".into()))
                    .unwrap_err()
            ),
            NotaryKeyProblem::WeakPassphrase
        );
    }

    #[test]
    fn other_algorithms_and_legacy_files_have_their_own_errors() {
        let legacy = "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00112233445566778899AABBCCDDEEFF\nrole: root\n\nAAAA\n-----END EC PRIVATE KEY-----\n";
        assert_eq!(
            problem(notary_key::read("k", legacy.as_bytes(), None).unwrap_err()),
            NotaryKeyProblem::LegacyEncryption
        );
        let rsa =
            "-----BEGIN RSA PRIVATE KEY-----\nrole: root\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        assert!(matches!(
            problem(notary_key::read("k", rsa.as_bytes(), None).unwrap_err()),
            NotaryKeyProblem::Unsupported(_)
        ));
        // An unencrypted PKCS#8 Ed25519 key (RFC 8410 OID), as `openssl genpkey` writes.
        let ed = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n-----END PRIVATE KEY-----\n";
        let p = problem(notary_key::read("k", ed.as_bytes(), None).unwrap_err());
        assert_eq!(p, NotaryKeyProblem::Unsupported("an Ed25519 key".into()));
        assert_eq!(
            problem(notary_key::read("k", b"nothing here", None).unwrap_err()),
            NotaryKeyProblem::NotPem
        );
    }
}

#[test]
fn a_plugin_recipient_needs_its_plugin_on_path() {
    // age-plugin-yubikey's documented example recipient.
    let r =
        Recipient::parse("age1yubikey1qwt50d05nh5vutpdzmlg5wn80xq5negm4uj9ghv0snvdd3yysf5yw3rhl3t")
            .unwrap();
    assert!(r.describe().starts_with("age1yubikey1"));
    let b = backup("root-2026");
    let err = encrypt_backup(&b, &[r], false, &prompter()).unwrap_err();
    let p = problem_of(err);
    assert!(
        matches!(p, BackupProblem::PluginMissing(ref m) if m.contains("age-plugin-yubikey")),
        "{p:?}"
    );
}
