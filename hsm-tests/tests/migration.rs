//! Migration of a repository made with the notary client (keys in passphrase-protected files)
//! to hardware: its keys imported into a token, its root adopted by `server pull --adopt`,
//! then rotated to hardware root and repository keys, the tag and a signer kept, while the
//! notary client that made it (and trusted its v1) keeps listing the tag.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use hsm_tests::{NotaryServer, SoftHsm, strs};
use serde_json::Value;

const PASSPHRASE: &str = "throwaway-test-passphrase";

/// The notary client with the test passphrases, against `server`, in `client`.
fn notary(server: &NotaryServer, client: &Path, cwd: &Path, args: &[&str]) -> String {
    let out = Command::new("notary")
        .arg("--tlscacert")
        .arg(server.ca_file())
        .arg("-s")
        .arg(&server.url)
        .arg("-d")
        .arg(client)
        .args(args)
        .env("NOTARY_ROOT_PASSPHRASE", PASSPHRASE)
        .env("NOTARY_TARGETS_PASSPHRASE", PASSPHRASE)
        .env("NOTARY_SNAPSHOT_PASSPHRASE", PASSPHRASE)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .expect("notary (apt-get install notary)");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        out.status.success(),
        "notary {args:?} failed:\n{stdout}\n{stderr}\n{}",
        server.log()
    );
    stdout
}

/// The inventory's URI (with the test PIN source) of the key recorded for `role` on `token`.
fn inventory_uri(hsm: &SoftHsm, token: &str, role: &str) -> String {
    let inventory: Value =
        serde_json::from_slice(&std::fs::read(hsm.trust_dir().join("inventory.json")).unwrap())
            .unwrap();
    let entry = inventory["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["token_label"] == token && k["role"] == role)
        .unwrap_or_else(|| panic!("no {role} key on {token} in {inventory:#}"));
    let uri = entry["uri"].as_str().unwrap();
    let pin = hsm.pin_query();
    match uri.contains('?') {
        true => format!("{uri}&{}", pin.trim_start_matches('?')),
        false => format!("{uri}{pin}"),
    }
}

#[test]
fn a_notary_made_repository_moves_to_hardware_and_its_clients_follow() {
    let gun = "example.com/migrate/app";
    let hsm = SoftHsm::new();
    let server = NotaryServer::start_tls();
    let (url, ca) = (server.url.clone(), server.ca_file().display().to_string());
    let maker: PathBuf = hsm.path().join("notary-maker");
    let cwd = hsm.path();

    // The repository as the notary client makes it: root, targets and snapshot keys in files.
    notary(&server, &maker, cwd, &["init", gun, "-p"]);
    std::fs::write(cwd.join("payload.txt"), b"release 1\n").unwrap();
    notary(&server, &maker, cwd, &["add", gun, "v1", "payload.txt"]);
    notary(&server, &maker, cwd, &["publish", gun]);
    let trusted_v1 = maker.join("tuf").join(gun).join("metadata/root.json");

    // Its keys into a token.
    hsm.token("migrated");
    std::fs::write(cwd.join("pass"), PASSPHRASE).unwrap();
    let token = format!("pkcs11:token=migrated{}", hsm.pin_query());
    let out = hsm.ok(&[
        "key",
        "import",
        maker.to_str().unwrap(),
        "--token",
        &token,
        "--passphrase-file",
        "pass",
    ]);
    assert!(
        out.contains("(role root)") && out.contains("(role targets)"),
        "{out}"
    );
    let old_root = inventory_uri(&hsm, "migrated", "root");
    let old_snapshot = inventory_uri(&hsm, "migrated", "snapshot");

    // Without --adopt, the trust directory has nothing to check the server against.
    let online = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--server", &url, "--ca", &ca]);
        hsm.run(&all)
    };
    let run = online(&["server", "pull", "--gun", gun]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("--adopt ROOT.json"), "{}", run.stderr);
    // A root that is not the server's: refused, nothing kept.
    let other = hsm.path().join("other.root.json");
    std::fs::write(
        &other,
        std::fs::read(hsm_tests::fixture("notary-0.7-samples/root.json")).unwrap(),
    )
    .unwrap();
    let adopt = |root: &Path| {
        online(&[
            "server",
            "pull",
            "--gun",
            gun,
            "--adopt",
            root.to_str().unwrap(),
        ])
    };
    let run = adopt(&other);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        !hsm.trust_dir()
            .join("repos")
            .join(gun)
            .join("root")
            .exists()
    );
    // The root the maker's client trusts: adopted.
    let run = adopt(&trusted_v1);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("adopted") && run.stdout.contains("as root v1"),
        "{}",
        run.stdout
    );
    assert_eq!(
        std::fs::read(
            hsm.trust_dir()
                .join(format!("repos/{gun}/root/1.root.json"))
        )
        .unwrap(),
        std::fs::read(&trusted_v1).unwrap()
    );

    // v2: the root moves to three hardware keys, 2-of-3; the imported key signs it away.
    let roots = hsm.standard_keys();
    let mut rotate: Vec<String> = [
        "root",
        "rotate",
        "--gun",
        gun,
        "--remove-root-key",
        &old_root,
        "--threshold",
        "2",
    ]
    .map(String::from)
    .to_vec();
    for r in &roots {
        rotate.extend(["--add-root-key".into(), r.clone()]);
    }
    hsm.ok(&strs(&rotate));
    hsm.ok(&[
        "root",
        "sign",
        "--gun",
        gun,
        "--key",
        &old_root,
        "--key",
        &roots[0],
        "--key",
        &roots[1],
        "--key",
        &old_snapshot,
    ]);
    let publish = |out: &str| {
        hsm.ok(&["root", "export", "--gun", gun, "--out", out]);
        let run = online(&["--yes", "server", "publish", out, "--gun", gun]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let run = online(&["server", "pull", "--gun", gun]);
        assert_eq!(run.code, 0, "{}", run.stderr);
    };
    publish("out-2");
    let listed = notary(&server, &maker, cwd, &["list", gun]);
    assert!(
        listed.contains("v1"),
        "the maker's client follows to v2:\n{listed}"
    );

    // A signer, then v3: a hardware repository key; the tag and the signer are kept.
    let made = Command::new(hsm_tests::tool("docker", "docker.io"))
        .args(["trust", "key", "generate", "ci", "--dir"])
        .arg(cwd)
        .env("DOCKER_CONFIG", cwd.join("ci-docker"))
        .env("DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE", PASSPHRASE)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    hsm.ok(&["signer", "add", "ci", "--gun", gun, "--key", "ci.pub"]);
    let old_targets = inventory_uri(&hsm, "migrated", "targets");
    hsm.ok(&[
        "root",
        "sign",
        "--gun",
        gun,
        "--key",
        &old_targets,
        "--key",
        &old_snapshot,
    ]);
    publish("out-signer");
    let targets = hsm.key_uri("repo", "targets");
    hsm.ok(&[
        "root",
        "rotate-key",
        "targets",
        "--gun",
        gun,
        "--key",
        &targets,
    ]);
    hsm.ok(&[
        "root",
        "sign",
        "--gun",
        gun,
        "--key",
        &roots[0],
        "--key",
        &roots[1],
        "--key",
        &targets,
        "--key",
        &old_snapshot,
    ]);
    publish("out-3");
    for client in [maker.clone(), hsm.path().join("fresh")] {
        let listed = notary(&server, &client, cwd, &["list", gun]);
        assert!(listed.contains("v1"), "{}: {listed}", client.display());
    }
    let signers = hsm.ok_json(&["signer", "list", "--gun", gun]);
    assert!(signers.to_string().contains("\"ci\""), "{signers:#}");
    let root: Value =
        serde_json::from_slice(&std::fs::read(cwd.join("out-3/root.json")).unwrap()).unwrap();
    assert_eq!(root["signed"]["version"], 3);
    assert_eq!(
        root["signed"]["roles"]["root"]["keyids"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // docker sees the hardware keys and the signer.
    let config = cwd.join("docker-reader");
    let host = url.trim_start_matches("https://");
    std::fs::create_dir_all(config.join("tls").join(host)).unwrap();
    std::fs::copy(
        server.ca_file(),
        config.join("tls").join(host).join("ca.crt"),
    )
    .unwrap();
    let inspect = Command::new(hsm_tests::tool("docker", "docker.io"))
        .args(["trust", "inspect", "--pretty", gun])
        .env("DOCKER_CONFIG", &config)
        .env("DOCKER_CONTENT_TRUST_SERVER", &url)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(inspect.status.success(), "{text}\n{inspect:?}");
    let targets_id = root["signed"]["roles"]["targets"]["keyids"][0]
        .as_str()
        .unwrap();
    assert!(
        text.lines()
            .any(|l| l.trim().strip_prefix("Repository Key:").map(str::trim) == Some(targets_id)),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.trim_start().starts_with("ci ")),
        "{text}"
    );
    // Every version verifies link by link; clients that trust v1 walk through v2.
    let chain = hsm.ok_json(&["root", "verify", "--gun", gun]);
    assert_eq!(chain["chains"][0]["newest"], 3);
}
