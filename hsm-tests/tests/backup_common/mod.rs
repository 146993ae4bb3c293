//! Helpers for the backup tests (`backup_cli.rs`, `backup_piv.rs`, `backup_lib.rs`): stock
//! tools, scratch folders, and the scan for unencrypted keys every test ends with.

// Each test binary uses only some of these.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hsm_tests::SoftHsm;
use rootkeeper::backend::memory::MemorySigner;
use rootkeeper::backup::{self, EncryptedFile, Identities, SharedPrompter};
use rootkeeper::secret::NoPrompter;

pub use hsm_tests::tool;

/// Insists that `output` (of `what`) is a success, showing what it printed if not.
pub fn check(output: Output, what: &str) -> Output {
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs `bash -euo pipefail -c script` in `dir` with `env` and `stdin`; returns stdout.
pub fn shell_env(dir: &Path, script: &str, env: &[(&str, &Path)], stdin: &[u8]) -> String {
    let mut child = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (*k, *v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = check(child.wait_with_output().unwrap(), script);
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `bash -euo pipefail -c script` in `dir`; returns stdout.
pub fn shell(dir: &Path, script: &str) -> String {
    shell_env(dir, script, &[], b"")
}

/// A prompter that never asks (no terminal in these tests).
pub fn prompter() -> SharedPrompter {
    Arc::new(NoPrompter)
}

/// A scratch folder under the temporary directory.
pub fn scratch(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(prefix).tempdir().unwrap()
}

/// A RAM-backed scratch folder, as docs/backup.md tells custodians to use.
pub fn ram_scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("rk-backup-ram-")
        .tempdir_in("/dev/shm")
        .expect("/dev/shm (tmpfs) for recovered identities")
}

/// A custodian's identity made by the stock `age-keygen`: (identity file, recipient).
pub fn age_keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    tool("age-keygen", "age");
    let path = dir.join(format!("{name}.identity.txt"));
    let out = check(
        Command::new("age-keygen")
            .arg("-o")
            .arg(&path)
            .output()
            .unwrap(),
        "age-keygen",
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    let recipient = stderr
        .trim()
        .strip_prefix("Public key: ")
        .unwrap_or_else(|| panic!("age-keygen said {stderr:?}"))
        .to_owned();
    (path, recipient)
}

/// `age -d -i IDENTITY FILE | openssl pkey -pubout`, piped, never through a file.
pub fn stock_public_key(identity: &Path, file: &Path) -> String {
    tool("age", "age");
    tool("openssl", "openssl");
    shell(
        Path::new("/"),
        &format!(
            "age -d -i '{}' '{}' | openssl pkey -pubout",
            identity.display(),
            file.display()
        ),
    )
}

/// `age -d FILE | openssl pkey -pubout` for a passphrase backup: age reads a passphrase only
/// from a terminal, and `script` gives it one.
pub fn stock_public_key_with_passphrase(file: &Path, passphrase: &str) -> String {
    tool("script", "bsdutils");
    tool("age", "age");
    tool("openssl", "openssl");
    let out = shell_env(
        Path::new("/"),
        &format!(
            "script -qec \"age -d '{}' | openssl pkey -pubout\" /dev/null",
            file.display()
        ),
        &[],
        format!("{passphrase}\n").as_bytes(),
    )
    .replace('\r', "");
    let begin = out
        .find("-----BEGIN PUBLIC KEY-----")
        .unwrap_or_else(|| panic!("{out}"));
    out[begin..].to_owned()
}

/// A base64 DER SubjectPublicKeyInfo (the inventory's form) as PEM.
pub fn spki_pem(b64: &str) -> String {
    let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END PUBLIC KEY-----\n");
    pem
}

/// The stock recovery of docs/backup.md ("Twenty-year recovery"), in the RAM-backed folder
/// `ram`: each custodian's (identity, share file) decrypted with age, the shares recombined
/// with gfcombine, and the backup decrypted with the recombined identity. Returns the public
/// key (PEM) of the key inside.
pub fn stock_recovery(ram: &Path, custodians: &[(&Path, &Path)], backup_file: &Path) -> String {
    tool("gfcombine", "libgfshare-bin");
    let mut script = String::new();
    for (i, (identity, share)) in custodians.iter().enumerate() {
        script.push_str(&format!(
            "age -d -i {} {} > share-{i}.txt\n",
            identity.display(),
            share.display()
        ));
    }
    script.push_str(
        "for s in share-*.txt; do\n\
           sed -n 's/^gfshare-data: //p' \"$s\" | base64 -d > \"$(sed -n 's/^gfshare-file: //p' \"$s\")\"\n\
         done\n\
         gfcombine -o identity.txt identity-*.0*\n",
    );
    script.push_str(&format!(
        "age -d -i identity.txt {} | openssl pkey -pubout\n",
        backup_file.display()
    ));
    shell(ram, &script)
}

/// The age identity files `paths`, loaded for rootkeeper's library.
pub fn identities(paths: &[&Path]) -> Identities {
    let mut ids = Identities::new();
    for path in paths {
        let text = std::fs::read_to_string(path).unwrap();
        ids.add_identity_file(&path.display().to_string(), &text)
            .unwrap();
    }
    ids
}

/// The key inside a backup (opened with rootkeeper's library in this process, which cannot
/// dump core): only to learn what to search the disk for.
pub fn key_in_backup(files: &[&Path], identity_files: &[&Path]) -> MemorySigner {
    let ids = identities(identity_files);
    let bytes: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|f| (f.display().to_string(), std::fs::read(f).unwrap()))
        .collect();
    let given: Vec<EncryptedFile<'_>> = bytes
        .iter()
        .map(|(name, bytes)| EncryptedFile { name, bytes })
        .collect();
    backup::open_backup(&given, &ids, &prompter())
        .unwrap()
        .backup
        .into_key()
}

/// Forms in which a key's secret could sit in a file.
pub fn secret_forms(key: &MemorySigner) -> Vec<Vec<u8>> {
    let scalar = key.scalar();
    let der = key.to_pkcs8_der().unwrap();
    let sec1 = key.to_sec1_der().unwrap();
    let b64 = B64.encode(der.as_slice());
    vec![
        scalar.to_vec(),
        hex::encode(scalar.as_slice()).into_bytes(),
        hex::encode_upper(scalar.as_slice()).into_bytes(),
        b64.as_bytes()[..48].to_vec(),
        sec1.to_vec(),
    ]
}

/// Unencrypted PEM private keys and backup documents: found nowhere, not even in the RAM
/// scratch folder of a stock recovery.
pub const KEY_MARKERS: [&[u8]; 3] = [
    b"-----BEGIN PRIVATE KEY-----",
    b"-----BEGIN EC PRIVATE KEY-----",
    b"rootkeeper-key-backup:",
];

/// [`KEY_MARKERS`], share documents and age identities: all a folder outside RAM must not hold.
pub const ALL_MARKERS: [&[u8]; 5] = [
    KEY_MARKERS[0],
    KEY_MARKERS[1],
    KEY_MARKERS[2],
    b"rootkeeper-backup-share:",
    b"AGE-SECRET-KEY-1",
];

/// Fails if any file under `dirs` holds an unencrypted PEM private key, a backup or share
/// document, or a secret form of `keys`.
pub fn assert_no_plaintext_keys(dirs: &[&Path], keys: &[&MemorySigner]) {
    let forms: Vec<Vec<u8>> = keys.iter().flat_map(|k| secret_forms(k)).collect();
    assert_none_found(dirs, &ALL_MARKERS, &forms);
}

/// Fails if any file under `dirs` holds one of `markers` or one of `forms` (the secret forms
/// of keys, [`secret_forms`]). Custodians' own `*.identity.txt` files may hold an age identity.
pub fn assert_none_found(dirs: &[&Path], markers: &[&[u8]], forms: &[Vec<u8>]) {
    let mut stack: Vec<PathBuf> = dirs.iter().map(|d| d.to_path_buf()).collect();
    let mut files = 0;
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
            continue;
        }
        files += 1;
        let bytes = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy();
        for marker in markers.iter().copied() {
            // Custodians' own age identity files are allowed to be identities.
            if marker == b"AGE-SECRET-KEY-1" && name.ends_with(".identity.txt") {
                continue;
            }
            assert!(
                !bytes.windows(marker.len()).any(|w| w == marker),
                "{} holds unencrypted key material ({})",
                path.display(),
                String::from_utf8_lossy(marker)
            );
        }
        for form in forms {
            assert!(
                !bytes.windows(form.len()).any(|w| w == form.as_slice()),
                "{} holds a secret form of a key the test made",
                path.display()
            );
        }
    }
    assert!(files > 0, "the scan found no files at all");
}

/// SoftHSM's PKCS#11 module.
pub fn softhsm_module() -> PathBuf {
    rootkeeper::backend::pkcs11::SOFTHSM_MODULE_PATHS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("SoftHSM: apt-get install softhsm2")
}

/// OpenSC's `pkcs11-tool` on a token of `hsm`'s SoftHSM, logged in.
pub fn p11(hsm: &SoftHsm, token: &str, args: &[&str]) -> String {
    let output = Command::new(tool("pkcs11-tool", "opensc"))
        .arg("--module")
        .arg(softhsm_module())
        .args([
            "--token-label",
            token,
            "--login",
            "--pin",
            hsm_tests::TEST_PIN,
        ])
        .args(args)
        .env("SOFTHSM2_CONF", hsm.path().join("softhsm2.conf"))
        .output()
        .unwrap();
    String::from_utf8(check(output, &format!("pkcs11-tool {args:?}")).stdout).unwrap()
}

/// The private key object `label` on a token is sensitive, never extractable, and honestly
/// not local (imported); returns its CKA_ID in hex.
pub fn assert_imported_private_key(hsm: &SoftHsm, token: &str, label: &str) -> String {
    let objects = p11(hsm, token, &["--list-objects", "--type", "privkey"]);
    let block: Vec<&str> = objects
        .split("Private Key Object")
        .find(|b| b.contains(&format!("label:      {label}")))
        .unwrap_or_else(|| panic!("no private key `{label}` on {token}:\n{objects}"))
        .lines()
        .collect();
    let access = block
        .iter()
        .find(|l| l.trim_start().starts_with("Access:"))
        .unwrap_or_else(|| panic!("{objects}"));
    assert!(access.contains("sensitive"), "{objects}");
    assert!(
        !access
            .replace("never extractable", "")
            .contains("extractable"),
        "{objects}"
    );
    assert!(!access.contains("local"), "imported, not local: {objects}");
    block
        .iter()
        .find_map(|l| l.trim_start().strip_prefix("ID:"))
        .unwrap_or_else(|| panic!("{objects}"))
        .trim()
        .to_owned()
}

/// Signs with pkcs11-tool the key `select` (`["--label", LABEL]` or `["--id", HEX]`) of
/// `token` (CKM_ECDSA over the SHA-256 of a message, in openssl's signature format) and
/// verifies the signature with openssl against the public key in `work/public.pem`.
pub fn assert_token_signs(hsm: &SoftHsm, token: &str, select: [&str; 2], work: &Path) {
    std::fs::write(work.join("message"), b"rootkeeper test signature").unwrap();
    shell(work, "openssl dgst -sha256 -binary message > digest");
    let (digest, signature) = (work.join("digest"), work.join("signature"));
    p11(
        hsm,
        token,
        &[
            "--sign",
            "--mechanism",
            "ECDSA",
            select[0],
            select[1],
            "--signature-format",
            "openssl",
            "--input-file",
            digest.to_str().unwrap(),
            "--output-file",
            signature.to_str().unwrap(),
        ],
    );
    let verified = shell(
        work,
        "openssl pkeyutl -verify -pubin -inkey public.pem -in digest -sigfile signature",
    );
    assert!(
        verified.contains("Signature Verified Successfully"),
        "{verified}"
    );
}

/// The public key object `label` on a token, read with pkcs11-tool, as PEM (openssl).
pub fn token_public_key(hsm: &SoftHsm, token: &str, label: &str, work: &Path) -> String {
    let der = work.join(format!("{token}-{label}.pub.der"));
    p11(
        hsm,
        token,
        &[
            "--read-object",
            "--type",
            "pubkey",
            "--label",
            label,
            "--output-file",
            der.to_str().unwrap(),
        ],
    );
    shell(
        work,
        &format!("openssl pkey -pubin -inform DER -in '{}'", der.display()),
    )
}

/// The error line of a failed command's stderr, insisting on exactly one `error:` line and
/// one `hint:` line.
pub fn one_error(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines.len() == 2 && lines[0].starts_with("error: ") && lines[1].starts_with("hint: "),
        "one error line and one hint line:\n{stderr}"
    );
    lines[0].to_owned()
}

/// The `docker` CLI (`DOCKER`, else the one on PATH) with `DOCKER_CONFIG=config` and
/// `passphrase` for the keys it writes; client side only (no daemon).
pub fn docker(config: &Path, args: &[&str], passphrase: &str) -> Output {
    let docker = std::env::var_os("DOCKER")
        .map(PathBuf::from)
        .unwrap_or_else(|| tool("docker", "docker.io"));
    Command::new(docker)
        .args(args)
        .env("DOCKER_CONFIG", config)
        .env("DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE", passphrase)
        .env_remove("DOCKER_HOST")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `docker trust key generate NAME --dir DIR` (the public key into `dir`, the private key
/// into `config`), insisting it succeeds; returns what docker said.
pub fn docker_key_generate(config: &Path, name: &str, dir: &Path, passphrase: &str) -> String {
    let args = [
        "trust",
        "key",
        "generate",
        name,
        "--dir",
        dir.to_str().unwrap(),
    ];
    let out = check(
        docker(config, &args, passphrase),
        "docker trust key generate",
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `docker trust key load FILE --name NAME`, insisting it succeeds and that docker says it
/// imported the key.
pub fn docker_key_load(config: &Path, file: &Path, name: &str, passphrase: &str) {
    let args = [
        "trust",
        "key",
        "load",
        file.to_str().unwrap(),
        "--name",
        name,
    ];
    let out = check(docker(config, &args, passphrase), "docker trust key load");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("Successfully imported key"), "{said}");
}

/// `backup verify FILE --identity IDENTITY` (the drill), insisting it succeeds; returns stdout.
pub fn drill(hsm: &SoftHsm, file: &str, identity: &Path) -> String {
    hsm.ok(&[
        "backup",
        "verify",
        file,
        "--identity",
        identity.to_str().unwrap(),
    ])
}

/// `backup restore FILE --identity IDENTITY --token URI` arguments.
pub fn restore_args(file: &str, identity: &Path, token: &str) -> Vec<String> {
    [
        "backup",
        "restore",
        file,
        "--identity",
        identity.to_str().unwrap(),
        "--token",
        token,
    ]
    .map(String::from)
    .into()
}

/// `key generate --in-memory` arguments: key `label` with `role` into the token URIs
/// `tokens` (the first as `--token`, the others as `--import-to`), then `extra` (backups).
pub fn generate_args(tokens: &[&str], label: &str, role: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["key", "generate", "--token", tokens[0]]
        .map(String::from)
        .into();
    for t in &tokens[1..] {
        args.extend(["--import-to".into(), t.to_string()]);
    }
    args.extend(["--label", label, "--role", role, "--in-memory"].map(String::from));
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}
