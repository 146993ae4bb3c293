//! Rotation and renewal against a real notary-server and the real notary client: after each
//! published step, a client directory that trusted version 1 and a fresh one both list the
//! repository; each new root's signatures verify with p256 against the previous version's
//! certificates, over bytes sliced from the raw file.

use std::path::PathBuf;
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hsm_tests::{NotaryServer, SoftHsm, p256_key_of_cert, raw_signed_bytes, strs};
use serde_json::Value;
use signature::Verifier;

/// A 2-of-3 repository (offline snapshot) published, pulled, with a client that trusted v1.
struct Repo {
    hsm: SoftHsm,
    server: NotaryServer,
    gun: &'static str,
    roots: Vec<String>,
    old_client: PathBuf,
    published: u32,
}

impl Repo {
    fn new(gun: &'static str) -> Repo {
        let hsm = SoftHsm::new();
        let server = NotaryServer::start_tls();
        let roots = hsm.draft_2_of_3(gun, Some(&server));
        let mut sign = vec![
            "root".to_string(),
            "sign".into(),
            "--gun".into(),
            gun.into(),
        ];
        for key in [
            roots[0].clone(),
            roots[1].clone(),
            hsm.key_uri("repo", "targets"),
            hsm.key_uri("repo", "snapshot"),
        ] {
            sign.extend(["--key".into(), key]);
        }
        hsm.ok(&strs(&sign));
        let old_client = hsm.path().join("client-v1");
        let mut repo = Repo {
            hsm,
            server,
            gun,
            roots,
            old_client,
            published: 0,
        };
        repo.export_and_publish();
        repo
    }

    fn url(&self) -> String {
        self.server.url.clone()
    }

    fn ca(&self) -> String {
        self.server.ca_file().display().to_string()
    }

    /// A server command with `--server URL --ca FILE` appended.
    fn online(&self, args: &[&str]) -> String {
        let (url, ca) = (self.url(), self.ca());
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--server", &url, "--ca", &ca]);
        self.hsm.ok(&all)
    }

    fn pull(&self) {
        self.online(&["server", "pull", "--gun", self.gun]);
    }

    /// `docker trust inspect --pretty` against the server (https, the test CA in
    /// `$DOCKER_CONFIG/tls/HOST:PORT/`): the Root and Repository key lines.
    fn docker_admin_keys(&self) -> (String, String) {
        let config = self.hsm.path().join("docker");
        let host = self.url().trim_start_matches("https://").to_owned();
        let tls = config.join("tls").join(&host);
        std::fs::create_dir_all(&tls).unwrap();
        std::fs::copy(self.server.ca_file(), tls.join("ca.crt")).unwrap();
        let out = Command::new("docker")
            .args(["trust", "inspect", "--pretty", self.gun])
            .env("DOCKER_CONFIG", &config)
            .env("DOCKER_CONTENT_TRUST_SERVER", self.url())
            .output()
            .expect("docker CLI (apt-get install docker.io)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "docker trust inspect failed:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = |name: &str| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(name))
                .map(|rest| rest.trim().to_owned())
                .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
        };
        (line("Root Key:"), line("Repository Key:"))
    }

    /// Exports and publishes the pending draft, then checks both clients.
    fn export_and_publish(&mut self) {
        self.published += 1;
        let out = format!("out-{}", self.published);
        self.hsm
            .ok(&["root", "export", "--gun", self.gun, "--out", &out]);
        self.online(&["--yes", "server", "publish", &out, "--gun", self.gun]);
        self.both_clients_trust();
        self.pull();
        // docker sees the root and repository keys of the root just published.
        let root: Value = serde_json::from_slice(&self.exported("root.json")).unwrap();
        let ids = |role: &str| {
            let mut ids: Vec<String> = root["signed"]["roles"][role]["keyids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect();
            ids.sort();
            ids.join(", ")
        };
        let (docker_root, docker_repo) = self.docker_admin_keys();
        assert_eq!(docker_root, ids("root"), "docker's Root Key");
        assert_eq!(docker_repo, ids("targets"), "docker's Repository Key");
    }

    fn both_clients_trust(&self) {
        for client in [
            self.old_client.clone(),
            self.hsm.path().join(format!("fresh-{}", self.published)),
        ] {
            let run = self.server.notary(&client, &["list", self.gun]);
            assert_eq!(
                run.code,
                0,
                "notary list with {} failed:\n{}\n{}\n{}",
                client.display(),
                run.stdout,
                run.stderr,
                self.server.log()
            );
        }
    }

    fn sign(&self, keys: &[String]) -> String {
        let mut args = vec![
            "root".to_string(),
            "sign".into(),
            "--gun".into(),
            self.gun.into(),
        ];
        for key in keys {
            args.extend(["--key".into(), key.clone()]);
        }
        self.hsm.ok(&strs(&args))
    }

    fn exported(&self, name: &str) -> Vec<u8> {
        std::fs::read(
            self.hsm
                .path()
                .join(format!("out-{}", self.published))
                .join(name),
        )
        .unwrap()
    }
}

/// How many signatures of `new` verify with p256 under the root-role certificates of `old`,
/// over the signed bytes sliced from the raw file: the rotation check, done without rootkeeper.
fn signatures_by_old_root(new: &[u8], old: &[u8]) -> usize {
    let new_doc: Value = serde_json::from_slice(new).unwrap();
    let old_doc: Value = serde_json::from_slice(old).unwrap();
    let message = raw_signed_bytes(new);
    let old_root_ids: Vec<&str> = old_doc["signed"]["roles"]["root"]["keyids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    new_doc["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|sig| {
            let id = sig["keyid"].as_str().unwrap();
            if !old_root_ids.contains(&id) {
                return false;
            }
            let vk = p256_key_of_cert(
                old_doc["signed"]["keys"][id]["keyval"]["public"]
                    .as_str()
                    .unwrap(),
            );
            let raw = B64.decode(sig["sig"].as_str().unwrap()).unwrap();
            p256::ecdsa::Signature::from_slice(&raw).is_ok_and(|s| vk.verify(&message, &s).is_ok())
        })
        .count()
}

fn status(hsm: &SoftHsm, gun: &str) -> Value {
    hsm.ok_json(&["root", "status", "--gun", gun])["drafts"][0].clone()
}

fn root_keys_of(file: &[u8]) -> Vec<String> {
    let doc: Value = serde_json::from_slice(file).unwrap();
    doc["signed"]["roles"]["root"]["keyids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn swapping_one_of_three_root_keys_is_accepted_by_old_and_new_clients() {
    let gun = "example.com/rotate/swap";
    let mut repo = Repo::new(gun);
    let v1 = repo.exported("root.json");
    repo.hsm.token("root-d");
    let root_d = repo.hsm.key("root-d", "root", "root");
    let out = repo.hsm.ok(&[
        "root",
        "rotate",
        "--gun",
        gun,
        "--add-root-key",
        &root_d,
        "--remove-root-key",
        &repo.roots[2],
    ]);
    assert!(out.contains("drafted root v2"), "{out}");
    let st = status(&repo.hsm, gun);
    assert_eq!(st["version"], 2);
    assert_eq!(st["root"]["threshold"], 2);
    assert_eq!(st["previous_root"]["threshold"], 2);
    assert_eq!(st["ready"], false);

    // Only the new key: not enough for either threshold.
    repo.sign(std::slice::from_ref(&root_d));
    let err = repo
        .hsm
        .fails(1, &["root", "export", "--gun", gun, "--out", "early"]);
    assert!(
        err.contains("rule `root-threshold`") || err.contains("rule `root-rotation`"),
        "{err}"
    );

    // root-a and root-b sign for both roots; then the snapshot.
    let (a, b) = (repo.roots[0].clone(), repo.roots[1].clone());
    repo.sign(&[a, b, repo.hsm.key_uri("repo", "snapshot")]);
    let st = status(&repo.hsm, gun);
    assert_eq!(st["ready"], true, "{st:#}");
    repo.export_and_publish();
    let v2 = repo.exported("root.json");
    assert_eq!(signatures_by_old_root(&v2, &v1), 2);
    assert_eq!(hsm_tests::root_signatures_valid(&v2), 3);
    assert_eq!(repo.exported("1.root.json"), v1);
    assert_ne!(root_keys_of(&v2), root_keys_of(&v1));
}

#[test]
fn threshold_change_renewal_and_key_rotations_keep_every_client() {
    let gun = "example.com/rotate/life";
    let mut repo = Repo::new(gun);
    let (a, b, c) = (
        repo.roots[0].clone(),
        repo.roots[1].clone(),
        repo.roots[2].clone(),
    );
    let snapshot = repo.hsm.key_uri("repo", "snapshot");

    // 2 -> 3: every key signs the new root; two of them suffice for the previous one.
    repo.hsm
        .ok(&["root", "rotate", "--gun", gun, "--threshold", "3"]);
    repo.sign(&[a.clone(), b.clone()]);
    let err = repo
        .hsm
        .fails(1, &["root", "export", "--gun", gun, "--out", "early"]);
    assert!(err.contains("2 of 3 required root signatures"), "{err}");
    repo.sign(&[c.clone(), snapshot.clone()]);
    let v1 = repo.exported("root.json");
    repo.export_and_publish();
    let v2 = repo.exported("root.json");
    assert_eq!(signatures_by_old_root(&v2, &v1), 3);

    // Renewal with new certificates: same keys, new certificate IDs; each key signs twice.
    let out = repo.hsm.ok(&[
        "root",
        "renew",
        "--gun",
        gun,
        "--new-certificates",
        "--cert-key",
        &a,
        "--cert-key",
        &b,
        "--cert-key",
        &c,
    ]);
    assert!(out.contains("new certificates for"), "{out}");
    repo.sign(&[a.clone(), b.clone(), c.clone(), snapshot.clone()]);
    repo.export_and_publish();
    let v3 = repo.exported("root.json");
    assert!(
        root_keys_of(&v3)
            .iter()
            .all(|id| !root_keys_of(&v2).contains(id))
    );
    assert_eq!(signatures_by_old_root(&v3, &v2), 3);
    assert_eq!(hsm_tests::root_signatures_valid(&v3), 3);
    assert_eq!(
        serde_json::from_slice::<Value>(&v3).unwrap()["signatures"]
            .as_array()
            .unwrap()
            .len(),
        6
    );

    // A new repository key: targets.json re-signed with it, above the server's version.
    repo.hsm.key("repo", "targets-2027", "targets");
    let targets2 = repo.hsm.key_uri("repo", "targets-2027");
    repo.hsm.ok(&[
        "root",
        "rotate-key",
        "targets",
        "--gun",
        gun,
        "--key",
        &targets2,
    ]);
    let st = status(&repo.hsm, gun);
    assert_eq!(st["targets"]["pending"], true, "{st:#}");
    repo.sign(&[
        a.clone(),
        b.clone(),
        c.clone(),
        targets2.clone(),
        snapshot.clone(),
    ]);
    repo.export_and_publish();
    let targets: Value = serde_json::from_slice(&repo.exported("targets.json")).unwrap();
    assert!(targets["signed"]["version"].as_u64().unwrap() >= 2);

    // The snapshot key handed to the server.
    repo.online(&["server", "snapshot-key", "--gun", gun, "--out", "snap.json"]);
    repo.hsm.ok(&[
        "root",
        "rotate-key",
        "snapshot",
        "--gun",
        gun,
        "--server-snapshot",
        "--server-key",
        "snap.json",
    ]);
    repo.sign(&[a.clone(), b.clone(), c.clone()]);
    repo.export_and_publish();
    assert!(
        !repo
            .hsm
            .path()
            .join(format!("out-{}", repo.published))
            .join("snapshot.json")
            .exists()
    );

    // The server's timestamp key rotated.
    repo.online(&[
        "server",
        "timestamp-key",
        "--rotate",
        "--gun",
        gun,
        "--out",
        "ts2.json",
    ]);
    repo.hsm.ok(&[
        "root",
        "rotate-key",
        "timestamp",
        "--gun",
        gun,
        "--server-key",
        "ts2.json",
    ]);
    repo.sign(&[a, b, c]);
    repo.export_and_publish();
}

#[test]
fn refusals_name_what_is_wrong() {
    let gun = "example.com/rotate/refuse";
    let repo = Repo::new(gun);
    // Threshold above the number of keys.
    let err = repo
        .hsm
        .fails(1, &["root", "rotate", "--gun", gun, "--threshold", "4"]);
    assert!(
        err.contains("a threshold of 4 cannot be met with 3 root key(s)"),
        "{err}"
    );
    // Two of three keys lost: the previous root's threshold cannot be met; said before any
    // signing (no login at all).
    let args = [
        "-v",
        "root",
        "rotate",
        "--gun",
        gun,
        "--remove-root-key",
        &repo.roots[1],
        "--remove-root-key",
        &repo.roots[2],
        "--lost",
        &repo.roots[1],
        "--lost",
        &repo.roots[2],
        "--threshold",
        "1",
    ];
    let run = repo.hsm.run(&args);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("could never be completed")
            && run
                .stderr
                .contains("must sign it with 2 of its keys, and only 1 can still sign"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("logged in"), "{}", run.stderr);
    assert!(
        !repo
            .hsm
            .trust_dir()
            .join("repos")
            .join(gun)
            .join("pending")
            .exists()
    );
    // A lost key that stays a root key.
    let err = repo.hsm.fails(
        1,
        &[
            "root",
            "rotate",
            "--gun",
            gun,
            "--threshold",
            "2",
            "--lost",
            &repo.roots[2],
        ],
    );
    assert!(err.contains("remove it too"), "{err}");
    // Nothing to change.
    let err = repo.hsm.fails(2, &["root", "rotate", "--gun", gun]);
    assert!(err.contains("say what changes"), "{err}");
}

#[test]
fn a_rotation_without_a_pull_or_over_a_stale_server_is_refused() {
    let gun = "example.com/rotate/stale";
    let mut repo = Repo::new(gun);
    let (a, b) = (repo.roots[0].clone(), repo.roots[1].clone());
    let snapshot = repo.hsm.key_uri("repo", "snapshot");
    // v2, exported but not published.
    repo.hsm
        .ok(&["root", "rotate", "--gun", gun, "--threshold", "3"]);
    repo.sign(&[
        a.clone(),
        b.clone(),
        repo.roots[2].clone(),
        snapshot.clone(),
    ]);
    repo.hsm
        .ok(&["root", "export", "--gun", gun, "--out", "v2"]);
    // A v3 needs the server to hold v2 first.
    let err = repo
        .hsm
        .fails(1, &["root", "rotate", "--gun", gun, "--threshold", "2"]);
    assert!(err.contains("publish it and pull again"), "{err}");
    let _ = &mut repo;
}
