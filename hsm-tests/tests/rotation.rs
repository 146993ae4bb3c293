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

    /// The three root keys of v1 and the snapshot key.
    fn keys(&self) -> (String, String, String, String) {
        (
            self.roots[0].clone(),
            self.roots[1].clone(),
            self.roots[2].clone(),
            self.hsm.key_uri("repo", "snapshot"),
        )
    }

    /// Drafts the next root with a new repository key `label` on the `repo` token (made
    /// here); returns its URI.
    fn rotate_targets_key(&self, label: &str) -> String {
        self.hsm.key("repo", label, "targets");
        let uri = self.hsm.key_uri("repo", label);
        self.hsm.ok(&[
            "root",
            "rotate-key",
            "targets",
            "--gun",
            self.gun,
            "--key",
            &uri,
        ]);
        uri
    }

    /// A new root key on each of the new `tokens`.
    fn new_root_keys(&self, tokens: &[&str]) -> Vec<String> {
        tokens
            .iter()
            .map(|t| {
                self.hsm.token(t);
                self.hsm.key(t, "root", "root")
            })
            .collect()
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
    let (a, b, c, snapshot) = repo.keys();

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
    let targets2 = repo.rotate_targets_key("targets-2027");
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

/// `root rotate` for `guns` swapping `remove` for `add`.
fn rotate_args(guns: &[&str], add: &str, remove: &str, legacy: Option<&str>) -> Vec<String> {
    let mut args: Vec<String> = vec!["root".into(), "rotate".into()];
    for gun in guns {
        args.extend(["--gun".into(), (*gun).into()]);
    }
    args.extend([
        "--add-root-key".into(),
        add.into(),
        "--remove-root-key".into(),
        remove.into(),
    ]);
    if let Some(n) = legacy {
        args.extend(["--legacy".into(), n.into()]);
    }
    args
}

#[test]
fn five_rotations_across_two_guns_old_clients_walk_or_take_the_newest_directly() {
    let (walk, jump) = ("example.com/chain/walk", "example.com/chain/jump");
    let guns = [walk, jump];
    let hsm = SoftHsm::new();
    let server = NotaryServer::start_tls();
    let (url, ca) = (server.url.clone(), server.ca_file().display().to_string());
    let online = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--server", &url, "--ca", &ca]);
        hsm.ok(&all)
    };
    let both = ["--gun", walk, "--gun", jump];
    let with_guns = |head: &[&str], tail: &[&str]| -> Vec<String> {
        let mut v: Vec<&str> = head.to_vec();
        v.extend(both);
        v.extend(tail);
        v.iter().map(|s| (*s).to_owned()).collect()
    };
    let roots = hsm.standard_keys();
    let snapshot = hsm.key_uri("repo", "snapshot");
    let targets = hsm.key_uri("repo", "targets");
    online(&strs(&with_guns(
        &["server", "timestamp-key"],
        &["--out", "ts"],
    )));
    let mut init = hsm.init_2_of_3(&roots, "ts");
    init.extend(both.map(String::from));
    hsm.ok(&strs(&init));

    // One sign command for both GUNs: one login per token (root-a, root-b, repo).
    let run = hsm.run(&strs(&with_guns(
        &["-v", "root", "sign"],
        &[
            "--key", &roots[0], "--key", &roots[1], "--key", &targets, "--key", &snapshot,
        ],
    )));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stderr.matches("logged in to").count(),
        3,
        "one login per token:\n{}",
        run.stderr
    );
    let publish = |n: usize| -> Vec<Vec<u8>> {
        let out = format!("out-{n}");
        hsm.ok(&strs(&with_guns(&["root", "export"], &["--out", &out])));
        online(&strs(&with_guns(
            &["--yes", "server", "publish", &out],
            &[],
        )));
        online(&strs(&with_guns(&["server", "pull"], &[])));
        guns.iter()
            .map(|g| std::fs::read(hsm.path().join(&out).join(g).join("root.json")).unwrap())
            .collect()
    };
    let mut history = vec![publish(0)];

    // Clients that trust v1 of each GUN, then stay offline through five rotations.
    let frozen = |gun: &str| hsm.path().join(format!("frozen-{}", gun.replace('/', "_")));
    for gun in guns {
        let run = server.notary(&frozen(gun), &["list", gun]);
        assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    }

    // Each rotation swaps the oldest root key for a new token's: after three, no key of v1 is
    // left; after five, v6 holds f, g, h.
    let mut current: Vec<String> = roots.clone();
    for i in 0..5 {
        let token = format!("root-{}", ["d", "e", "f", "g", "h"][i]);
        hsm.token(&token);
        let new_key = hsm.key(&token, "root", "root");
        let removed = current.remove(0);
        if i < 4 {
            hsm.ok(&strs(&rotate_args(&guns, &new_key, &removed, None)));
        } else {
            hsm.ok(&strs(&rotate_args(&[walk], &new_key, &removed, None)));
            hsm.ok(&strs(&rotate_args(&[jump], &new_key, &removed, Some("5"))));
        }
        if i == 4 {
            // v1..v4's keys may sign the jump GUN's v6 too (optional legacy signatures);
            // v1's a and b do, before the snapshot is signed over the root.
            let st = status(&hsm, jump);
            let legacy = st["legacy"].as_array().unwrap();
            assert_eq!(
                legacy
                    .iter()
                    .map(|l| l["version"].as_u64().unwrap())
                    .collect::<Vec<_>>(),
                vec![1, 2, 3, 4],
                "{st:#}"
            );
            hsm.ok(&[
                "root", "sign", "--gun", jump, "--key", &roots[0], "--key", &roots[1],
            ]);
        }
        // The two keys kept sign for the previous root and the new one.
        let (k1, k2) = (current[0].clone(), current[1].clone());
        current.push(new_key);
        let run = hsm.run(&strs(&with_guns(
            &["-v", "root", "sign"],
            &["--key", &k1, "--key", &k2, "--key", &snapshot],
        )));
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(
            run.stderr.matches("logged in to").count(),
            3,
            "{}",
            run.stderr
        );
        history.push(publish(i + 1));
    }

    // Every link verifies with p256 against the version before it, from the raw files.
    for (g, _) in guns.iter().enumerate() {
        for pair in history.windows(2) {
            assert!(signatures_by_old_root(&pair[1][g], &pair[0][g]) >= 2);
        }
    }
    assert_eq!(signatures_by_old_root(&history[5][1], &history[0][1]), 2);
    assert_eq!(signatures_by_old_root(&history[5][0], &history[0][0]), 0);
    // Six versions: <v>.root.json for 1..5 beside root.json.
    for v in 1..=5 {
        assert!(
            hsm.path()
                .join(format!("out-5/{walk}/{v}.root.json"))
                .exists()
        );
    }

    // root verify: the chain, and who jumps.
    let verified = hsm.ok_json(&["root", "verify", "--gun", walk, "--gun", jump]);
    let chains = verified["chains"].as_array().unwrap();
    assert_eq!(chains[0]["newest"], 6);
    assert_eq!(chains[0]["direct_from"], serde_json::json!([5]));
    assert_eq!(chains[1]["direct_from"], serde_json::json!([1, 5]));
    assert_eq!(chains[0]["links"].as_array().unwrap().len(), 6);

    // The old clients update: one walks v2..v5, the other takes v6 at once.
    let walked = server.notary(&frozen(walk), &["-D", "list", walk]);
    assert_eq!(walked.code, 0, "{}\n{}", walked.stdout, walked.stderr);
    assert!(
        walked.stderr.contains("currently fetching 5"),
        "the client walks the chain:\n{}",
        walked.stderr
    );
    let jumped = server.notary(&frozen(jump), &["-D", "list", jump]);
    assert_eq!(jumped.code, 0, "{}\n{}", jumped.stdout, jumped.stderr);
    assert!(
        !jumped.stderr.contains("currently fetching"),
        "with --legacy 5 the client takes v6 directly:\n{}",
        jumped.stderr
    );
    for gun in guns {
        let cached =
            std::fs::read(frozen(gun).join("tuf").join(gun).join("metadata/root.json")).unwrap();
        let newest = std::fs::read(hsm.path().join(format!("out-5/{gun}/root.json"))).unwrap();
        assert_eq!(cached, newest, "{gun}: the old client now trusts v6");
        let fresh = server.notary(&hsm.path().join("fresh"), &["list", gun]);
        assert_eq!(fresh.code, 0, "{}", fresh.stderr);
    }
}

#[test]
fn a_new_root_needs_both_thresholds_the_next_version_and_re_signed_targets() {
    let gun = "example.com/rotate/rules";
    let mut repo = Repo::new(gun);
    let (a, b, c, snapshot) = repo.keys();
    let new = repo.new_root_keys(&["root-d", "root-e", "root-f"]);
    // Every root key replaced.
    repo.hsm.ok(&[
        "root",
        "rotate",
        "--gun",
        gun,
        "--add-root-key",
        &new[0],
        "--add-root-key",
        &new[1],
        "--add-root-key",
        &new[2],
        "--remove-root-key",
        &a,
        "--remove-root-key",
        &b,
        "--remove-root-key",
        &c,
    ]);
    // Signed only by new keys: clients that trust v1 would refuse it.
    repo.sign(&[new[0].clone(), new[1].clone()]);
    let err = repo
        .hsm
        .fails(1, &["root", "export", "--gun", gun, "--out", "only-new"]);
    assert!(
        err.contains("rule `root-rotation` broken")
            && err.contains("signed by 0 of the 2 keys the previous root (version 1) requires")
            && err.contains("lists its keys under `previous root keys`"),
        "{err}"
    );
    // Signed only by old keys: the new root's own threshold is not met.
    for key in [&new[0], &new[1]] {
        repo.hsm
            .ok(&["--yes", "root", "unsign", "--gun", gun, "--key", key]);
    }
    repo.sign(&[a.clone(), b.clone()]);
    let err = repo
        .hsm
        .fails(1, &["root", "export", "--gun", gun, "--out", "only-old"]);
    assert!(
        err.contains("rule `root-threshold` broken")
            && err.contains("0 of 2 required root signatures"),
        "{err}"
    );
    // Both: exported and published, v1 -> v2.
    repo.sign(&[new[0].clone(), new[1].clone(), snapshot.clone()]);
    let v1 = repo.exported("root.json");
    repo.export_and_publish();
    let v2 = repo.exported("root.json");
    assert_eq!(signatures_by_old_root(&v2, &v1), 2);
    assert_eq!(hsm_tests::root_signatures_valid(&v2), 2);

    // v3, then: v3 checked against v1 skips a version.
    repo.hsm
        .ok(&["root", "rotate", "--gun", gun, "--threshold", "3"]);
    repo.sign(&[
        new[0].clone(),
        new[1].clone(),
        new[2].clone(),
        snapshot.clone(),
    ]);
    repo.export_and_publish();
    let err = repo.hsm.fails(
        1,
        &[
            "root",
            "verify",
            "out-3/root.json",
            "--trusted",
            "out-1/root.json",
        ],
    );
    assert!(
        err.contains("rule `root-version` broken")
            && err.contains("version 3 does not follow the previous root's 1"),
        "{err}"
    );
    repo.hsm.ok(&[
        "root",
        "verify",
        "out-3/root.json",
        "--trusted",
        "out-2/root.json",
    ]);

    // A new repository key whose draft does not re-sign targets (made through the library,
    // as a bug or a future command could): export refuses it.
    repo.rotate_targets_key("targets-2");
    drop_targets_from_draft(&repo.hsm, gun);
    repo.sign(&[
        new[0].clone(),
        new[1].clone(),
        new[2].clone(),
        snapshot.clone(),
    ]);
    let err = repo
        .hsm
        .fails(1, &["root", "export", "--gun", gun, "--out", "no-targets"]);
    assert!(
        err.contains("names a new repository (targets) key, but its draft does not re-sign targets.json with it")
            && err.contains("root rotate-key targets --key URI"),
        "{err}"
    );
}

/// Rewrites a GUN's pending draft as one that keeps the new root but not the re-signed
/// targets: the draft a careless change would make.
fn drop_targets_from_draft(hsm: &SoftHsm, gun: &str) {
    use rootkeeper::root::{change, draft};
    let now = rootkeeper::tuf::model::UtcTime::now();
    let dir = rootkeeper::trustdir::TrustDir::open(&hsm.trust_dir()).unwrap();
    let repo = dir.repo(gun).unwrap();
    let pending = draft::load(&repo, &dir.inventory().unwrap()).unwrap();
    let base = change::base(&repo, now).unwrap();
    let mut batch = rootkeeper::trustdir::Batch::new();
    change::write_draft(
        &repo,
        &base,
        change::Change {
            purpose: "a careless change".into(),
            root: Some(pending.root.signed.clone()),
            targets: None,
            signers: pending.draft.signers.clone(),
            server_keys: pending.draft.server_keys.clone(),
            snapshot: pending.draft.snapshot.clone(),
        },
        now,
        true,
        &mut batch,
    )
    .unwrap();
    dir.commit(batch).unwrap();
}

#[test]
fn publishing_over_a_root_the_server_got_from_elsewhere_is_refused() {
    let gun = "example.com/rotate/diverged";
    let repo = Repo::new(gun);
    let (a, b, c, snapshot) = repo.keys();
    // A copy of the trust directory on another machine drafts and publishes its own v2.
    let other = repo.hsm.path().join("other-trust");
    let copied = Command::new("cp")
        .arg("-a")
        .arg(repo.hsm.trust_dir())
        .arg(&other)
        .status()
        .unwrap();
    assert!(copied.success());
    let elsewhere = |args: &[&str]| {
        let mut all = vec!["--dir", other.to_str().unwrap()];
        all.extend_from_slice(args);
        let (url, ca) = (repo.url(), repo.ca());
        if args.contains(&"server") {
            all.extend(["--server", &url, "--ca", &ca]);
        }
        repo.hsm.ok(&all)
    };
    elsewhere(&["root", "rotate", "--gun", gun, "--threshold", "3"]);
    elsewhere(&[
        "root", "sign", "--gun", gun, "--key", &a, "--key", &b, "--key", &c, "--key", &snapshot,
    ]);
    elsewhere(&["root", "export", "--gun", gun, "--out", "other-out"]);
    elsewhere(&["--yes", "server", "publish", "other-out", "--gun", gun]);

    // Here, a different v2 over the same v1 (this machine never pulled the other's).
    repo.hsm
        .ok(&["root", "rotate", "--gun", gun, "--remove-root-key", &c]);
    repo.sign(&[a.clone(), b.clone(), snapshot.clone()]);
    repo.hsm
        .ok(&["root", "export", "--gun", gun, "--out", "ours"]);
    let (url, ca) = (repo.url(), repo.ca());
    let err = repo.hsm.fails(
        1,
        &[
            "--yes", "server", "publish", "ours", "--gun", gun, "--server", &url, "--ca", &ca,
        ],
    );
    assert!(
        err.contains(&format!(
            "not publishing {gun}: its current root is version 2"
        )) && err.contains("neither this export's root v2 nor the root v1 it replaces")
            && err.contains("nothing was sent"),
        "{err}"
    );
    // The server still serves the other v2.
    let served = repo
        .server
        .notary(&repo.hsm.path().join("check"), &["list", gun]);
    assert_eq!(served.code, 0, "{}", served.stderr);
}

#[test]
fn root_verify_warns_when_an_intermediate_roots_certificates_expire_before_the_newest() {
    let gun = "example.com/rotate/walk";
    let mut repo = Repo::new(gun);
    let (a, b) = (repo.roots[0].clone(), repo.roots[1].clone());
    let snapshot = repo.hsm.key_uri("repo", "snapshot");
    let new = repo.new_root_keys(&["root-d", "root-e"]);
    let (d, e) = (new[0].clone(), new[1].clone());
    // v2 drops a and b for d and e.
    repo.hsm.ok(&[
        "root",
        "rotate",
        "--gun",
        gun,
        "--add-root-key",
        &d,
        "--add-root-key",
        &e,
        "--remove-root-key",
        &a,
        "--remove-root-key",
        &b,
    ]);
    repo.sign(&[a.clone(), b.clone(), d.clone(), e.clone(), snapshot.clone()]);
    repo.export_and_publish();
    // v3 lasts 20 years: its certificates are re-issued, v2's end after 10.
    let c = repo.roots[2].clone();
    let mut renew = vec!["root", "renew", "--gun", gun, "--expires", "20y"];
    renew.extend(["--cert-key", &c, "--cert-key", &d, "--cert-key", &e]);
    let out = repo.hsm.ok(&renew);
    assert!(out.contains("new certificates for"), "{out}");
    repo.sign(&[d.clone(), e.clone(), snapshot.clone()]);
    let run = repo.hsm.run(&["root", "verify", "--gun", gun]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("root v2's certificates expire")
            && run.stdout.contains(
                "(before root v3 does): clients that still trust v1 then cannot walk through it to v3; redraft v3 with `--force --legacy 1`"
            ),
        "{}",
        run.stdout
    );
    let json = repo.hsm.ok_json(&["root", "verify", "--gun", gun]);
    assert_eq!(json["chains"][0]["direct_from"], serde_json::json!([2]));
    assert_eq!(json["chains"][0]["links"].as_array().unwrap().len(), 3);

    // Redrafted with --legacy 1: v1's keys sign too, and v1's clients take v3 directly.
    renew.extend(["--force", "--legacy", "1"]);
    renew.insert(0, "--yes");
    repo.hsm.ok(&renew);
    repo.sign(&[a, b, d, e, snapshot]);
    let json = repo.hsm.ok_json(&["root", "verify", "--gun", gun]);
    assert_eq!(json["chains"][0]["direct_from"], serde_json::json!([1, 2]));
    assert_eq!(json["chains"][0]["warnings"], serde_json::json!([]));
    let v1 = std::fs::read(repo.hsm.path().join("out-1/root.json")).unwrap();
    repo.export_and_publish();
    let v3 = repo.exported("root.json");
    assert_eq!(signatures_by_old_root(&v3, &v1), 2);
    // Without a draft, root verify checks the last export and the chain kept.
    let run = repo.hsm.ok(&["root", "verify", "--gun", gun]);
    assert!(run.contains(&format!("{gun} (last export): OK")), "{run}");
    assert!(
        run.contains("clients that trust v1, v2 take v3 directly"),
        "{run}"
    );
}

#[test]
fn root_status_counts_the_days_to_each_expiry_and_warns_under_90() {
    let gun = "example.com/rotate/expiry";
    let hsm = SoftHsm::new();
    let roots = hsm.standard_keys();
    hsm.timestamp_key(None, gun, "ts.json");
    let mut init = hsm.init_2_of_3(&roots, "ts.json");
    init.extend(["--gun", gun, "--expires", "60d"].map(String::from));
    hsm.ok(&strs(&init));
    let st = status(&hsm, gun);
    let expiries = st["expiries"].as_array().unwrap();
    let root = expiries.iter().find(|e| e["what"] == "root").unwrap();
    assert!(
        matches!(root["days_left"].as_i64(), Some(59 | 60)),
        "{root}"
    );
    assert_eq!(root["soon"], true);
    let certs: Vec<&Value> = expiries
        .iter()
        .filter(|e| e["what"].as_str().unwrap().starts_with("root certificate "))
        .collect();
    assert_eq!(certs.len(), 3);
    assert!(
        certs
            .iter()
            .all(|c| c["soon"] == false && c["days_left"].as_i64().unwrap() > 3600)
    );
    let targets = expiries.iter().find(|e| e["what"] == "targets").unwrap();
    assert!(targets["days_left"].as_i64().unwrap() <= 60, "{targets}");
    // The planner names the tokens still needed, by label and serial.
    let needed = st["needed"].as_array().unwrap();
    assert_eq!(needed.len(), 3, "{st:#}");
    assert!(
        needed
            .iter()
            .any(|n| n["token_label"] == "root-a" && n["label"] == "root")
    );
    assert!(
        needed
            .iter()
            .all(|n| !n["token_serial"].as_str().unwrap().is_empty())
    );
    let text = hsm.ok(&["root", "status", "--gun", gun]);
    assert!(
        text.contains("warning: root expires in 59 days")
            || text.contains("warning: root expires in 60 days"),
        "{text}"
    );
    assert!(text.contains("(key root on token root-a serial "), "{text}");
}
