//! Fixtures for rootkeeper's integration tests. Everything here talks to real parts: a SoftHSM
//! token directory of its own per test, a notary-server on a free loopback port, the real
//! `notary` client, and the `rootkeeper` binary itself.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use p256::pkcs8::DecodePublicKey;
use serde_json::Value;
use signature::Verifier;

/// A file or folder under `hsm-tests/fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// The `rootkeeper` binary: `ROOTKEEPER_BIN`, else the one built next to the test executable
/// (`hsm-tests/run` builds it first).
pub fn rootkeeper_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("ROOTKEEPER_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("rootkeeper");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --bins` first (hsm-tests/run does)",
        bin.display()
    );
    bin
}

/// The path of the program `name` on PATH; a missing tool fails the test, naming the Debian
/// `package` that brings it (hsm-tests/run installs it).
pub fn tool(name: &str, package: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| {
            panic!("`{name}` is not installed: apt-get install {package} (hsm-tests/run does)")
        })
}

/// Writes `text` and a newline to `dir/name`; returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{text}\n")).unwrap();
    path
}

/// Borrows a list of owned arguments as `&str`s.
pub fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// The P-256 key inside a base64 PEM certificate (an `ecdsa-x509` key's `keyval.public`), found
/// without rootkeeper's code: by the 91-byte P-256 SubjectPublicKeyInfo it must contain.
pub fn p256_key_of_cert(public_b64: &str) -> p256::ecdsa::VerifyingKey {
    let pem = String::from_utf8(B64.decode(public_b64).unwrap()).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = B64.decode(body).unwrap();
    let prefix = [
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
    ];
    let at = der
        .windows(prefix.len())
        .position(|w| w == prefix)
        .expect("a P-256 key");
    p256::ecdsa::VerifyingKey::from_public_key_der(&der[at..at + 91]).unwrap()
}

/// The exact signed bytes of a metadata file, sliced out of the raw file (not rebuilt by
/// rootkeeper's encoder): everything between `{"signed":` and the last `,"signatures":`, with
/// Go's HTML escapes (`\u003c` `\u003e` `\u0026`) undone, as notary's verifier sees it.
pub fn raw_signed_bytes(file: &[u8]) -> Vec<u8> {
    let start = b"{\"signed\":".len();
    assert!(file.starts_with(b"{\"signed\":"), "not a notary envelope");
    let marker = b",\"signatures\":";
    let end = file
        .windows(marker.len())
        .rposition(|w| w == marker)
        .expect("a signatures array");
    let text = String::from_utf8(file[start..end].to_vec()).expect("UTF-8");
    text.replace("\\u003c", "<")
        .replace("\\u003e", ">")
        .replace("\\u0026", "&")
        .into_bytes()
}

/// How many signatures of a root.json by its own keys verify with `p256` directly: SHA-256
/// over the signed bytes sliced from the file, raw r‖s, each against the key inside its
/// certificate (found without rootkeeper's code). Signatures under key IDs the file does not
/// list (a rotated root's signatures by the previous root's certificates) are not counted.
pub fn root_signatures_valid(root_json: &[u8]) -> usize {
    let doc: Value = serde_json::from_slice(root_json).unwrap();
    let message = raw_signed_bytes(root_json);
    doc["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|sig| {
            let keyid = sig["keyid"].as_str().unwrap();
            let Some(public) = doc["signed"]["keys"][keyid]["keyval"]["public"].as_str() else {
                return false;
            };
            let vk = p256_key_of_cert(public);
            let raw = B64.decode(sig["sig"].as_str().unwrap()).unwrap();
            p256::ecdsa::Signature::from_slice(&raw).is_ok_and(|s| vk.verify(&message, &s).is_ok())
        })
        .count()
}

/// The user PIN every test token gets (a throwaway test PIN).
pub const TEST_PIN: &str = "4711-test-pin";
/// The SO PIN every test token gets (a throwaway test PIN).
pub const TEST_SO_PIN: &str = "8822-test-so-pin";

/// A private SoftHSM: its own `SOFTHSM2_CONF`, token directory and trust directory.
pub struct SoftHsm {
    dir: tempfile::TempDir,
}

/// What a command printed and how it ended.
#[derive(Debug)]
pub struct Run {
    /// Exit code.
    pub code: i32,
    /// stdout.
    pub stdout: String,
    /// stderr.
    pub stderr: String,
}

impl Run {
    /// Runs `command` to the end and keeps what it printed.
    pub fn of(command: &mut Command) -> Run {
        Run::from(command.output().expect("run the command"))
    }

    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Default for SoftHsm {
    fn default() -> Self {
        Self::new()
    }
}

impl SoftHsm {
    /// A fresh SoftHSM with no tokens.
    pub fn new() -> SoftHsm {
        let dir = tempfile::Builder::new()
            .prefix("rk-test-")
            .tempdir()
            .expect("tempdir");
        std::fs::create_dir(dir.path().join("tokens")).unwrap();
        std::fs::write(
            dir.path().join("softhsm2.conf"),
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                dir.path().join("tokens").display()
            ),
        )
        .unwrap();
        std::fs::write(dir.path().join("pin"), TEST_PIN).unwrap();
        std::fs::write(dir.path().join("so-pin"), TEST_SO_PIN).unwrap();
        SoftHsm { dir }
    }

    /// The test's scratch folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The trust directory the runner uses.
    pub fn trust_dir(&self) -> PathBuf {
        self.dir.path().join("trust")
    }

    /// The file holding [`TEST_PIN`].
    pub fn pin_file(&self) -> PathBuf {
        self.dir.path().join("pin")
    }

    /// The `?pin-source=file:…` query that points at the test PIN.
    pub fn pin_query(&self) -> String {
        format!("?pin-source=file:{}", self.pin_file().display())
    }

    /// A token URI with the test PIN source: `pkcs11:token=T?pin-source=…`.
    pub fn token_uri(&self, token: &str) -> String {
        format!("pkcs11:token={token}{}", self.pin_query())
    }

    /// A key URI with the test PIN source: `pkcs11:token=T;object=O?pin-source=…`.
    pub fn key_uri(&self, token: &str, object: &str) -> String {
        format!("pkcs11:token={token};object={object}{}", self.pin_query())
    }

    /// The `rootkeeper` command [`SoftHsm::run`] runs, for a test to change (another folder,
    /// another environment) before running it.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(rootkeeper_bin());
        command
            .args(args)
            .env("SOFTHSM2_CONF", self.dir.path().join("softhsm2.conf"))
            .env("ROOTKEEPER_DIR", self.trust_dir())
            .env_remove("ROOTKEEPER_PIN")
            .env_remove("ROOTKEEPER_PKCS11_MODULE")
            .current_dir(self.dir.path())
            .stdin(std::process::Stdio::null());
        command
    }

    /// Runs `rootkeeper` with this SoftHSM and trust directory; no terminal, no PIN in env.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::of(&mut self.command(args))
    }

    /// Runs `rootkeeper` and insists it succeeds; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert_eq!(
            run.code, 0,
            "rootkeeper {args:?} failed:\n{}\n{}",
            run.stdout, run.stderr
        );
        run.stdout
    }

    /// Runs `rootkeeper --json` and parses its output.
    pub fn ok_json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).expect("one JSON document")
    }

    /// Runs `rootkeeper`, insists it fails with exit code `code`, and returns stderr.
    pub fn fails(&self, code: i32, args: &[&str]) -> String {
        let run = self.run(args);
        assert_eq!(
            run.code, code,
            "rootkeeper {args:?} should exit {code}:\n{}\n{}",
            run.stdout, run.stderr
        );
        run.stderr
    }

    /// Creates a token labelled `label` with the test PINs, through `rootkeeper token init`.
    pub fn token(&self, label: &str) {
        let so = self.dir.path().join("so-pin");
        self.ok(&[
            "token",
            "init",
            "--label",
            label,
            "--so-pin-file",
            so.to_str().unwrap(),
            "--pin-file",
            self.pin_file().to_str().unwrap(),
        ]);
    }

    /// Generates key `label` with `role` on token `token`, through `rootkeeper key generate`.
    pub fn key(&self, token: &str, label: &str, role: &str) -> String {
        let uri = self.token_uri(token);
        self.ok(&[
            "key", "generate", "--token", &uri, "--label", label, "--role", role,
        ]);
        self.key_uri(token, label)
    }

    /// `root init` arguments (without `--gun`) for a 2-of-3 root over `roots`, with the `repo`
    /// token's targets and snapshot keys and the timestamp key file or folder `timestamp_key`.
    pub fn init_2_of_3(&self, roots: &[String], timestamp_key: &str) -> Vec<String> {
        let mut args: Vec<String> = vec!["root".into(), "init".into()];
        for root in roots {
            args.extend(["--root-key".into(), root.clone()]);
        }
        args.extend(
            [
                "--threshold",
                "2",
                "--targets-key",
                &self.key_uri("repo", "targets"),
                "--snapshot-key",
                &self.key_uri("repo", "snapshot"),
                "--timestamp-key",
                timestamp_key,
            ]
            .map(String::from),
        );
        args
    }

    /// Three root tokens (`root-a/b/c` with key `root`) and a `repo` token with `targets` and
    /// `snapshot` keys. Returns the root key URIs.
    pub fn standard_keys(&self) -> Vec<String> {
        for t in ["root-a", "root-b", "root-c", "repo"] {
            self.token(t);
        }
        let roots = ["root-a", "root-b", "root-c"]
            .iter()
            .map(|t| self.key(t, "root", "root"))
            .collect();
        self.key("repo", "targets", "targets");
        self.key("repo", "snapshot", "snapshot");
        roots
    }
}

impl SoftHsm {
    /// Makes `root-a` (key `root`) and `repo` (keys `targets`, `snapshot`) tokens, fetches
    /// `server`'s timestamp key for `gun`, and makes, signs and exports a 1-of-1 root to the
    /// folder `out`. Returns the exported root.json, targets.json and snapshot.json.
    pub fn export_1_of_1(&self, server: &NotaryServer, gun: &str, out: &str) -> [Vec<u8>; 3] {
        self.token("root-a");
        self.token("repo");
        let root = self.key("root-a", "root", "root");
        let targets = self.key("repo", "targets", "targets");
        let snapshot = self.key("repo", "snapshot", "snapshot");
        let ts = format!("{out}.timestamp.key.json");
        self.timestamp_key(Some(server), gun, &ts);
        self.sign_1_of_1(gun, [&root, &targets, &snapshot], &ts);
        self.ok(&["root", "export", "--gun", gun, "--out", out]);
        ["root.json", "targets.json", "snapshot.json"]
            .map(|name| std::fs::read(self.path().join(out).join(name)).unwrap())
    }
}

impl SoftHsm {
    /// `root init` of a 1-of-1 root for `gun` with the key URIs `[root, targets, snapshot]`
    /// and the timestamp key file `ts`, then `root sign` with all three: ready to export.
    pub fn sign_1_of_1(&self, gun: &str, [root, targets, snapshot]: [&str; 3], ts: &str) {
        self.init_1_of_1(
            gun,
            root,
            targets,
            &["--snapshot-key", snapshot, "--timestamp-key", ts],
        );
        self.ok(&[
            "root", "sign", "--gun", gun, "--key", root, "--key", targets, "--key", snapshot,
        ]);
    }

    /// A 1-of-1 draft for `gun` with root key `root` and targets key `targets` whose snapshot
    /// `server` manages: the server's timestamp and snapshot keys are fetched to `ts.json` and
    /// `snap.json`. Signed by no one yet.
    pub fn draft_server_snapshot(
        &self,
        server: &NotaryServer,
        gun: &str,
        root: &str,
        targets: &str,
    ) {
        self.timestamp_key(Some(server), gun, "ts.json");
        self.server_key(server, "snapshot-key", gun, "snap.json");
        self.init_1_of_1(
            gun,
            root,
            targets,
            &[
                "--server-snapshot",
                "--server-snapshot-key",
                "snap.json",
                "--timestamp-key",
                "ts.json",
            ],
        );
    }

    /// `root init` of a 1-of-1 root for `gun` with the key URIs `root` and `targets`, and
    /// `rest` (the snapshot and timestamp keys).
    fn init_1_of_1(&self, gun: &str, root: &str, targets: &str, rest: &[&str]) {
        let mut args = vec![
            "root",
            "init",
            "--gun",
            gun,
            "--root-key",
            root,
            "--targets-key",
            targets,
        ];
        args.extend_from_slice(rest);
        self.ok(&args);
    }

    /// Publishes the export folder `dir` of `gun` to `server` (`--yes server publish`, see
    /// [`NotaryServer::publish_args`]) and insists it succeeds; returns stdout.
    pub fn publish(&self, server: &NotaryServer, dir: &str, gun: &str) -> String {
        let mut args = vec!["--yes".to_owned()];
        args.extend(server.publish_args(dir, gun));
        self.ok(&strs(&args))
    }

    /// `rootkeeper server timestamp-key` or `snapshot-key` (`which`): `server`'s key for `gun`
    /// into the file `out`.
    fn server_key(&self, server: &NotaryServer, which: &str, gun: &str, out: &str) {
        let mut args = vec!["server".to_owned(), which.to_owned()];
        args.extend(server.server_args());
        args.extend(["--gun", gun, "--out", out].map(String::from));
        self.ok(&strs(&args));
    }

    /// Writes a timestamp key for `gun` to the file `out` (relative to [`SoftHsm::path`]):
    /// `server`'s, fetched with `rootkeeper server timestamp-key`, or without a server the
    /// notary 0.7 sample key (fine for drafts that are never published).
    pub fn timestamp_key(&self, server: Option<&NotaryServer>, gun: &str, out: &str) {
        match server {
            Some(server) => self.server_key(server, "timestamp-key", gun, out),
            None => {
                std::fs::copy(
                    fixture("notary-0.7-samples/timestamp.key.json"),
                    self.path().join(out),
                )
                .unwrap();
            }
        }
    }

    /// A fresh SoftHSM with a [`SoftHsm::draft_2_of_3`] for `gun` (the sample timestamp key).
    /// Returns it and the root key URIs.
    pub fn with_draft(gun: &str) -> (SoftHsm, Vec<String>) {
        let hsm = SoftHsm::new();
        let roots = hsm.draft_2_of_3(gun, None);
        (hsm, roots)
    }

    /// The [`SoftHsm::standard_keys`] and a 2-of-3 draft for `gun` (timestamp key as in
    /// [`SoftHsm::timestamp_key`]), signed by no one yet. Returns the root key URIs.
    pub fn draft_2_of_3(&self, gun: &str, server: Option<&NotaryServer>) -> Vec<String> {
        let roots = self.standard_keys();
        self.timestamp_key(server, gun, "ts.json");
        let mut init = self.init_2_of_3(&roots, "ts.json");
        init.extend(["--gun".into(), gun.into()]);
        self.ok(&strs(&init));
        roots
    }
}

impl SoftHsm {
    /// Signs `gun`'s 2-of-3 draft (from [`SoftHsm::draft_2_of_3`]) with the first two root
    /// keys, the targets key and the snapshot key: ready to export.
    pub fn sign_2_of_3(&self, gun: &str, roots: &[String]) {
        self.sign_with_repo_keys(gun, &roots[..2]);
    }

    /// `root sign` arguments for `gun` with the root keys `roots` and the `repo` token's
    /// targets and snapshot keys (those of [`SoftHsm::standard_keys`]).
    pub fn sign_args(&self, gun: &str, roots: &[impl AsRef<str>]) -> Vec<String> {
        let mut args: Vec<String> = ["root", "sign", "--gun", gun].map(String::from).into();
        for root in roots {
            args.extend(["--key".into(), root.as_ref().to_owned()]);
        }
        for role in ["targets", "snapshot"] {
            args.extend(["--key".into(), self.key_uri("repo", role)]);
        }
        args
    }

    /// Runs [`SoftHsm::sign_args`] and insists it succeeds; returns stdout.
    pub fn sign_with_repo_keys(&self, gun: &str, roots: &[impl AsRef<str>]) -> String {
        self.ok(&strs(&self.sign_args(gun, roots)))
    }
}

/// Every file below `dir` (none when it is absent), with its bytes: to show that a command
/// changed nothing.
pub fn tree(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// A notary-server (Debian's) on a free loopback port, with in-memory storage; stopped on drop.
pub struct NotaryServer {
    dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    pid: u32,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl NotaryServer {
    /// Starts a server with research/notary-samples/start-notary-server.sh, over plain HTTP.
    pub fn start() -> NotaryServer {
        Self::launch(false)
    }

    /// Starts a server over TLS with a fresh self-signed certificate ([`NotaryServer::ca_file`]).
    pub fn start_tls() -> NotaryServer {
        Self::launch(true)
    }

    /// The TLS certificate to trust (servers from [`NotaryServer::start_tls`]).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// `--server URL`, and `--ca FILE` for a server over TLS: how rootkeeper's `server`
    /// commands reach this one.
    pub fn server_args(&self) -> Vec<String> {
        let mut args = vec!["--server".to_owned(), self.url.clone()];
        if self.url.starts_with("https://") {
            args.extend(["--ca".to_owned(), self.ca_file().display().to_string()]);
        }
        args
    }

    /// `server publish DIR` of `gun` to this server (see [`NotaryServer::server_args`]),
    /// without `--yes`.
    pub fn publish_args(&self, dir: &str, gun: &str) -> Vec<String> {
        let mut args = vec!["server".to_owned(), "publish".into(), dir.into()];
        args.extend(self.server_args());
        args.extend(["--gun".to_owned(), gun.into()]);
        args
    }

    fn launch(tls: bool) -> NotaryServer {
        let script = fixture("notary-0.7-samples/start-notary-server.sh");
        for _ in 0..5 {
            let dir = tempfile::Builder::new()
                .prefix("rk-notary-")
                .tempdir()
                .unwrap();
            let port = free_port();
            let mut cmd = Command::new("bash");
            cmd.arg(&script).arg(port.to_string()).arg(dir.path());
            if tls {
                cmd.arg("--tls");
            }
            let out = cmd.output().expect("start notary-server");
            if out.status.success() {
                let text = String::from_utf8_lossy(&out.stdout);
                let url = text
                    .lines()
                    .find_map(|l| l.strip_prefix("URL="))
                    .unwrap()
                    .to_owned();
                let pid = text
                    .lines()
                    .find_map(|l| l.strip_prefix("PID="))
                    .unwrap()
                    .parse()
                    .unwrap();
                return NotaryServer { dir, url, pid };
            }
        }
        panic!(
            "notary-server did not start (is the Debian `notary` package installed? hsm-tests/run installs it)"
        );
    }

    /// Runs the real `notary` client with a fresh trust directory under `client_dir`.
    pub fn notary(&self, client_dir: &Path, args: &[&str]) -> Run {
        let ca = self.url.starts_with("https").then(|| self.ca_file());
        notary_client(&self.url, ca.as_deref(), client_dir, args)
    }

    /// Asserts that the real `notary` client, with a fresh trust directory, trusts `gun` (no
    /// targets yet) and cached exactly the root.json that `hsm`'s last export wrote.
    pub fn assert_trusts(&self, hsm: &SoftHsm, gun: &str) {
        let client = hsm
            .path()
            .join(format!("notary-client-{}", gun.replace('/', "_")));
        let run = self.notary(&client, &["list", gun]);
        assert_eq!(
            run.code,
            0,
            "notary list {gun} failed:\n{}\n{}\nserver log:\n{}",
            run.stdout,
            run.stderr,
            self.log()
        );
        assert!(run.stdout.contains("No targets"), "{}", run.stdout);
        let cached =
            std::fs::read(client.join("tuf").join(gun).join("metadata/root.json")).unwrap();
        let exported = std::fs::read(
            hsm.trust_dir()
                .join("repos")
                .join(gun)
                .join("export/root.json"),
        )
        .unwrap();
        assert_eq!(
            cached, exported,
            "the client must cache the exported root byte for byte"
        );
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("notary-server.log")).unwrap_or_default()
    }
}

/// Runs the real `notary` client against the trust server at `url` (trusting the TLS
/// certificate `ca`, if given) with the trust directory `client_dir`.
pub fn notary_client(url: &str, ca: Option<&Path>, client_dir: &Path, args: &[&str]) -> Run {
    let output = notary_command(url, ca, client_dir, args)
        .output()
        .expect("run notary (apt-get install notary)");
    Run::from(output)
}

/// The command [`notary_client`] runs, for a test to change (another folder, a passphrase in
/// the environment) before running it.
pub fn notary_command(url: &str, ca: Option<&Path>, client_dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new("notary");
    if let Some(ca) = ca {
        command.arg("--tlscacert").arg(ca);
    }
    command
        .arg("-s")
        .arg(url)
        .arg("-d")
        .arg(client_dir)
        .args(args)
        .stdin(std::process::Stdio::null());
    command
}

impl Drop for NotaryServer {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.pid.to_string()).status();
    }
}

/// A tiny HTTP/1.1 server on a free loopback port, for transport tests: it answers every
/// request with the same raw response and records each request's first line
/// (`POST /v2/... HTTP/1.1`). Stopped on drop.
pub struct HttpFixture {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A raw HTTP/1.1 response: `status` (e.g. `"200 OK"`), the extra `headers` and `body`, with
/// `Content-Length` and `Connection: close`.
pub fn http_response(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        response.push_str(&format!("{name}: {value}\r\n"));
    }
    response.push_str("\r\n");
    let mut response = response.into_bytes();
    response.extend_from_slice(body);
    response
}

impl HttpFixture {
    /// A server that answers every request with `status` (e.g. `"302 Found"`), the extra
    /// `headers` (`("Location", "...")`) and `body`, then closes the connection.
    pub fn answering(status: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpFixture {
        Self::raw(http_response(status, headers, body))
    }

    /// A server that answers every request with exactly `response`.
    pub fn raw(response: Vec<u8>) -> HttpFixture {
        Self::routing(move |_| response.clone())
    }

    /// A server that answers each request with the raw response `route` gives for the
    /// request's first line (`GET /v2/ HTTP/1.1`); see [`http_response`].
    pub fn routing(route: impl Fn(&str) -> Vec<u8> + Send + 'static) -> HttpFixture {
        use std::io::{BufRead, BufReader, Read, Write};
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (seen_in, stop_in) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop_in.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut first = String::new();
                if reader.read_line(&mut first).is_err() || first.is_empty() {
                    continue;
                }
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':')
                        && name.eq_ignore_ascii_case("content-length")
                    {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let first = first.trim_end().to_owned();
                let response = route(&first);
                seen_in.lock().unwrap().push(first);
                let _ = stream.write_all(&response);
                let _ = stream.flush();
            }
        });
        HttpFixture {
            url,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// The first line of every request answered so far.
    pub fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for HttpFixture {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = std::net::TcpStream::connect(self.url.trim_start_matches("http://"));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
