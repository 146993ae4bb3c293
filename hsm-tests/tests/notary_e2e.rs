//! End to end: keys made in SoftHSM, a k-of-n root signed by custodians in separate runs,
//! exported, published to a real notary-server, and trusted by the real `notary` client.

use hsm_tests::{NotaryServer, SoftHsm, root_signatures_valid, strs};
use rootkeeper::tuf::model::{Root, Signed};

#[test]
fn two_of_three_root_signed_on_two_days_published_and_trusted() {
    let hsm = SoftHsm::new();
    let server = NotaryServer::start();
    let gun = "registry.example.com/admin/demo";
    let roots = hsm.draft_2_of_3(gun, Some(&server));

    // Day one: the first custodian signs.
    let out = hsm.ok(&["root", "sign", "--gun", gun, "--key", &roots[0]]);
    assert!(out.contains("1 of 2 signatures"), "{out}");
    let status = hsm.ok_json(&["root", "status", "--gun", gun]);
    let draft = &status["drafts"][0];
    assert_eq!(draft["root"]["signed"], 1);
    let missing: Vec<&str> = draft["root"]["signers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["state"] == "missing")
        .map(|m| m["uri"].as_str().unwrap())
        .collect();
    assert!(
        missing.iter().any(|u| u.contains("token=root-b"))
            && missing.iter().any(|u| u.contains("token=root-c")),
        "{missing:?}"
    );
    assert_eq!(draft["ready"], false);

    // Day two: the second custodian, and the release engineer with targets and snapshot keys.
    let out = hsm.sign_with_repo_keys(gun, &[&roots[2]]);
    assert!(
        out.contains("snapshot") && out.contains("ready to export: yes"),
        "{out}"
    );

    hsm.ok(&["root", "verify", "--gun", gun]);
    hsm.ok(&["root", "export", "--gun", gun, "--out", "out"]);
    let root = std::fs::read(hsm.path().join("out/root.json")).unwrap();
    assert_eq!(root_signatures_valid(&root), 2);
    assert!(hsm.path().join("out/snapshot.json").exists());
    assert!(
        hsm.trust_dir()
            .join("repos")
            .join(gun)
            .join("root/1.root.json")
            .exists()
    );

    let out = hsm.publish(&server, "out", gun);
    assert!(out.contains("byte for byte"), "{out}");
    server.assert_trusts(&hsm, gun);

    // The server serves a timestamp for the GUN, signed by the key root.json names, over the
    // snapshot it serves.
    let client = rootkeeper::server::TrustServer::new(&server.url, None).unwrap();
    let ts = client
        .get(gun, "timestamp.json")
        .unwrap()
        .expect("timestamp.json");
    let snapshot = client
        .get(gun, "snapshot.json")
        .unwrap()
        .expect("snapshot.json");
    let now = rootkeeper::tuf::model::UtcTime::now();
    let checked =
        rootkeeper::tuf::verify::check_root("root.json", &root, Some(gun), None, now).unwrap();
    rootkeeper::tuf::verify::check_timestamp("timestamp.json", &ts, &checked, &snapshot, now)
        .unwrap();
}

#[test]
fn server_managed_snapshot() {
    let hsm = SoftHsm::new();
    let server = NotaryServer::start();
    hsm.token("root-a");
    hsm.token("repo");
    let root = hsm.key("root-a", "root", "root");
    let targets = hsm.key("repo", "targets", "targets");
    let gun = "example.com/team/server-snap";
    hsm.draft_server_snapshot(&server, gun, &root, &targets);
    let out = hsm.ok(&[
        "root", "sign", "--gun", gun, "--key", &root, "--key", &targets,
    ]);
    assert!(
        out.contains("snapshot: server-managed") && out.contains("ready to export: yes"),
        "{out}"
    );
    hsm.ok(&["root", "export", "--gun", gun, "--out", "out"]);
    assert!(!hsm.path().join("out/snapshot.json").exists());
    hsm.publish(&server, "out", gun);
    server.assert_trusts(&hsm, gun);
}

#[test]
fn three_guns_in_one_command_with_one_login_per_token() {
    let hsm = SoftHsm::new();
    let server = NotaryServer::start();
    let roots = hsm.standard_keys();
    let guns = [
        "example.com/fleet/api",
        "example.com/fleet/web",
        "example.com/fleet/worker",
    ];
    std::fs::write(
        hsm.path().join("guns.txt"),
        format!("# the fleet\n{}\n\n{}\n", guns[1], guns[2]),
    )
    .unwrap();
    let gun_args = ["--gun", guns[0], "--gun-file", "guns.txt"];
    let with = |cmd: &[&str], extra: &[&str]| -> Vec<String> {
        cmd.iter()
            .chain(gun_args.iter())
            .chain(extra.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let run = |args: Vec<String>| hsm.run(&args.iter().map(String::as_str).collect::<Vec<_>>());

    let r = run(with(
        &["server", "timestamp-key", "--server", &server.url],
        &["--out", "ts"],
    ));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        hsm.path()
            .join("ts")
            .join(guns[2])
            .join("timestamp.key.json")
            .exists()
    );
    let mut init = vec!["-v".to_string()];
    init.extend(hsm.init_2_of_3(&roots, "ts"));
    init.extend(gun_args.iter().map(|s| s.to_string()));
    let r = run(init);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for token in ["root-a", "root-b", "root-c"] {
        assert_eq!(
            r.stderr
                .matches(&format!("logged in to token `{token}`"))
                .count(),
            1,
            "{}",
            r.stderr
        );
    }
    let r = run(with(
        &["-v", "root", "sign"],
        &[
            "--key",
            &roots[0],
            "--key",
            &roots[1],
            "--key",
            &hsm.key_uri("repo", "targets"),
            "--key",
            &hsm.key_uri("repo", "snapshot"),
        ],
    ));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stderr.matches("logged in to token `repo`").count(),
        1,
        "{}",
        r.stderr
    );
    assert_eq!(
        r.stdout.matches("ready to export: yes").count(),
        3,
        "{}",
        r.stdout
    );
    let r = run(with(&["root", "export"], &["--out", "out"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    // One certificate per GUN per key: the three roots share keys but not certificates.
    let mut cert_ids = std::collections::BTreeSet::new();
    for gun in guns {
        let root = Signed::<Root>::parse(
            "root",
            &std::fs::read(hsm.path().join("out").join(gun).join("root.json")).unwrap(),
        )
        .unwrap()
        .signed;
        cert_ids.extend(root.roles.root.keyids.clone());
    }
    assert_eq!(cert_ids.len(), 9);
    let r = run(with(
        &["--yes", "server", "publish", "out", "--server", &server.url],
        &[],
    ));
    assert_eq!(r.code, 0, "{}\n{}", r.stderr, server.log());
    for gun in guns {
        server.assert_trusts(&hsm, gun);
    }
}

#[test]
fn publish_over_tls_needs_the_ca_and_shows_the_servers_refusal() {
    let hsm = SoftHsm::new();
    let server = NotaryServer::start_tls();
    assert!(server.url.starts_with("https://"));
    hsm.token("root-a");
    hsm.token("repo");
    let root = hsm.key("root-a", "root", "root");
    let targets = hsm.key("repo", "targets", "targets");
    let snapshot = hsm.key("repo", "snapshot", "snapshot");

    // Without the CA the server's certificate is unknown: a clear refusal, not "offline".
    let err = hsm.fails(
        1,
        &[
            "server",
            "timestamp-key",
            "--server",
            &server.url,
            "--gun",
            "example.com/tls/app",
            "--out",
            "ts.json",
        ],
    );
    assert!(
        err.contains("cannot reach trust server")
            && err.contains("hint: check --server and, for https with a private CA, --ca FILE"),
        "{err}"
    );

    let init = |gun: &str, ts: &str| {
        hsm.sign_1_of_1(gun, [&root, &targets, &snapshot], ts);
        hsm.ok(&["root", "export", "--gun", gun, "--out", gun]);
    };
    let gun = "example.com/tls/app";
    hsm.timestamp_key(Some(&server), gun, "ts.json");
    init(gun, "ts.json");
    hsm.publish(&server, gun, gun);
    server.assert_trusts(&hsm, gun);

    // A root naming a timestamp key the server does not hold: the server refuses, and says why.
    let foreign = "example.com/tls/foreign";
    hsm.timestamp_key(None, foreign, "foreign-ts.json");
    init(foreign, "foreign-ts.json");
    let mut publish_foreign = vec!["--yes".to_owned()];
    publish_foreign.extend(server.publish_args(foreign, foreign));
    let err = hsm.fails(1, &strs(&publish_foreign));
    assert!(
        err.contains("answered 400") && err.contains("INVALID_UPDATE"),
        "{err}"
    );
    assert!(
        err.lines().count() == 2 && err.contains("hint: the server's message says what it refused"),
        "{err}"
    );
    // Publishing what the server already serves is not an error: nothing to do, exit 0,
    // without a confirmation.
    let out = hsm.ok(&strs(&server.publish_args(gun, gun)));
    assert!(out.contains("already published, nothing to do"), "{out}");
    // Without confirmation and without a terminal, nothing is published.
    let err = hsm.fails(1, &strs(&publish_foreign[1..]));
    assert!(
        err.contains("needs a confirmation") && err.contains("--yes"),
        "{err}"
    );
}
