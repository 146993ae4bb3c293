//! Fixtures for rootkeeper's integration tests. Everything here talks to real parts: a SoftHSM
//! token directory of its own per test, a notary-server on a free loopback port, the real
//! `notary` client, and the `rootkeeper` binary itself.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

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

    /// A key URI with the test PIN source: `pkcs11:token=T;object=O?pin-source=…`.
    pub fn key_uri(&self, token: &str, object: &str) -> String {
        format!("pkcs11:token={token};object={object}{}", self.pin_query())
    }

    /// Runs `rootkeeper` with this SoftHSM and trust directory; no terminal, no PIN in env.
    pub fn run(&self, args: &[&str]) -> Run {
        let output = Command::new(rootkeeper_bin())
            .args(args)
            .env("SOFTHSM2_CONF", self.dir.path().join("softhsm2.conf"))
            .env("ROOTKEEPER_DIR", self.trust_dir())
            .env_remove("ROOTKEEPER_PIN")
            .env_remove("ROOTKEEPER_PKCS11_MODULE")
            .current_dir(self.dir.path())
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run rootkeeper");
        Run::from(output)
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
        let uri = format!("pkcs11:token={token}{}", self.pin_query());
        self.ok(&[
            "key", "generate", "--token", &uri, "--label", label, "--role", role,
        ]);
        self.key_uri(token, label)
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
    /// Starts a server with research/notary-samples/start-notary-server.sh.
    pub fn start() -> NotaryServer {
        let script = fixture("notary-0.7-samples/start-notary-server.sh");
        for _ in 0..5 {
            let dir = tempfile::Builder::new()
                .prefix("rk-notary-")
                .tempdir()
                .unwrap();
            let port = free_port();
            let out = Command::new("bash")
                .arg(&script)
                .arg(port.to_string())
                .arg(dir.path())
                .output()
                .expect("start notary-server");
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
        let output = Command::new("notary")
            .arg("-s")
            .arg(&self.url)
            .arg("-d")
            .arg(client_dir)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run notary (apt-get install notary)");
        Run::from(output)
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("notary-server.log")).unwrap_or_default()
    }
}

impl Drop for NotaryServer {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.pid.to_string()).status();
    }
}
