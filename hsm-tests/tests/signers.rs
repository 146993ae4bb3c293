//! Signers on a repository whose repository key lives in SoftHSM, end to end against a real
//! notary-server over TLS, the real `docker` CLI (`docker trust key generate / inspect`, and
//! `docker pull` with content trust up to where it needs a daemon) and the real `notary`
//! client, which publishes the signers' tags as `docker trust sign` does.
//!
//! Every check of what the server serves is made by docker or notary, or by reading the served
//! JSON here, not by rootkeeper's own report. A missing tool fails, never skips.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use hsm_tests::{HttpFixture, NotaryServer, Run, SoftHsm, http_response, strs, tool};
use serde_json::Value;
use sha2::{Digest, Sha256};

const PASS: &str = "throwaway-signer-pass";

fn run(mut command: Command) -> Run {
    let output = command.stdin(Stdio::null()).output().expect("run a tool");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn ok(run: Run, what: &str) -> String {
    assert_eq!(
        run.code, 0,
        "{what} failed:\nstdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    run.stdout
}

/// One person's docker: a `DOCKER_CONFIG` of their own, trusting the test server's CA.
struct Docker {
    config: PathBuf,
    server: String,
}

impl Docker {
    fn new(dir: &Path, server: &NotaryServer) -> Docker {
        let config = dir.join("docker-config");
        let host = server
            .url
            .trim_start_matches("https://")
            .trim_end_matches('/');
        let tls = config.join("tls").join(host);
        std::fs::create_dir_all(&tls).unwrap();
        std::fs::copy(server.ca_file(), tls.join("ca.crt")).unwrap();
        Docker {
            config,
            server: server.url.clone(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(tool("docker", "docker.io"));
        c.args(args)
            .env("DOCKER_CONFIG", &self.config)
            .env("DOCKER_CONTENT_TRUST_SERVER", &self.server)
            .env("DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE", PASS)
            .env_remove("DOCKER_CONTENT_TRUST")
            // No daemon: docker pull must fail after the trust lookup, never reach one.
            .env(
                "DOCKER_HOST",
                "unix:///nonexistent/rootkeeper-test-docker.sock",
            );
        c
    }

    fn run(&self, args: &[&str]) -> Run {
        run(self.command(args))
    }

    fn ok(&self, args: &[&str]) -> String {
        ok(self.run(args), &format!("docker {args:?}"))
    }

    /// `docker trust key generate NAME`: the private key stays in this docker's trust
    /// directory, NAME.pub is written to `dir`.
    fn generate_key(&self, name: &str, dir: &Path) -> PathBuf {
        self.ok(&[
            "trust",
            "key",
            "generate",
            name,
            "--dir",
            dir.to_str().unwrap(),
        ]);
        dir.join(format!("{name}.pub"))
    }

    /// `DOCKER_CONTENT_TRUST=1 docker pull REF`.
    fn trusted_pull(&self, reference: &str) -> Run {
        let mut c = self.command(&["pull", reference]);
        c.env("DOCKER_CONTENT_TRUST", "1");
        run(c)
    }

    /// The notary client on this docker's trust directory (`~/.docker/trust`), as `docker
    /// trust sign` uses it.
    fn notary(&self, server: &NotaryServer, args: &[&str]) -> Run {
        let mut c = Command::new(tool("notary", "notary"));
        c.arg("--tlscacert")
            .arg(server.ca_file())
            .arg("-s")
            .arg(&server.url)
            .arg("-d")
            .arg(self.config.join("trust"))
            .args(args)
            .env("NOTARY_DELEGATION_PASSPHRASE", PASS)
            .env("NOTARY_TARGETS_PASSPHRASE", PASS);
        run(c)
    }

    /// What `docker trust sign GUN:TAG` does minus the image push: the tag (a file standing
    /// for the manifest) into `targets/releases` and the signer's own role, then publish.
    fn sign_tag(
        &self,
        server: &NotaryServer,
        gun: &str,
        tag: &str,
        signer: &str,
        manifest: &Path,
    ) -> Run {
        let role = format!("targets/{signer}");
        let add = self.notary(
            server,
            &[
                "add",
                gun,
                tag,
                manifest.to_str().unwrap(),
                "--roles",
                "targets/releases",
                "--roles",
                &role,
            ],
        );
        if add.code != 0 {
            return add;
        }
        self.notary(server, &["publish", gun])
    }
}

/// Uploads `role` (a delegation file holding `tag`, version `version`) straight to the
/// server, signed with the one private key docker keeps in `docker`'s trust directory: what a
/// signer's client would send, without the client's own checks in front of the server.
fn upload_as_signer(
    docker: &Docker,
    server: &NotaryServer,
    gun: &str,
    role: &str,
    tag: &str,
    version: u64,
) -> rootkeeper::Result<()> {
    use rootkeeper::tuf::model::{Signed, UtcTime, Version};
    use rootkeeper::tuf::notary;
    let private = docker.config.join("trust/private");
    let files: Vec<PathBuf> = std::fs::read_dir(&private)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let key = rootkeeper::backup::notary_key::read(
        "signer key",
        &std::fs::read(&files[0]).unwrap(),
        Some(&rootkeeper::secret::Pin::new(PASS.into())),
    )
    .unwrap();
    let signer = key.key();
    let public = notary::ecdsa_key(rootkeeper::signer::Signer::public_key(signer)).unwrap();
    let mut doc = notary::new_targets(
        UtcTime::now().plus(rootkeeper::tuf::model::days(30)),
        Version::new(version).unwrap(),
    );
    doc.targets.insert(
        tag.into(),
        notary::file_meta(format!("manifest {tag}").as_bytes()),
    );
    let mut signed = Signed::new(doc);
    let message = signed.signed_bytes().unwrap();
    signed
        .signatures
        .push(notary::signature(signer, &notary::key_id(&public), &message).unwrap());
    let client =
        rootkeeper::server::TrustServer::new(&server.url, Some(&server.ca_file())).unwrap();
    client.publish(gun, &[(role, &signed.to_bytes().unwrap())])
}

fn sha256_hex(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// The rootkeeper arguments for the server over TLS.
fn server_args(server: &NotaryServer) -> Vec<String> {
    vec![
        "--server".into(),
        server.url.clone(),
        "--ca".into(),
        server.ca_file().display().to_string(),
    ]
}

fn with(base: &[&str], extra: &[String]) -> Vec<String> {
    base.iter()
        .map(|s| s.to_string())
        .chain(extra.iter().cloned())
        .collect()
}

/// A 2-of-3 repository with a server-held snapshot (docker's own default), made, signed by
/// two custodians and the SoftHSM targets key, exported and published by rootkeeper.
fn published_2_of_3_server_snapshot(
    hsm: &SoftHsm,
    server: &NotaryServer,
    gun: &str,
) -> Vec<String> {
    let roots = hsm.standard_keys();
    let srv = server_args(server);
    hsm.ok(&strs(&with(
        &["server", "timestamp-key", "--gun", gun, "--out", "ts.json"],
        &srv,
    )));
    hsm.ok(&strs(&with(
        &["server", "snapshot-key", "--gun", gun, "--out", "snap.json"],
        &srv,
    )));
    let targets = hsm.key_uri("repo", "targets");
    let mut init = vec!["root", "init", "--gun", gun, "--threshold", "2"];
    for r in &roots {
        init.extend(["--root-key", r]);
    }
    init.extend([
        "--targets-key",
        &targets,
        "--server-snapshot",
        "--server-snapshot-key",
        "snap.json",
        "--timestamp-key",
        "ts.json",
    ]);
    hsm.ok(&init);
    hsm.ok(&[
        "root", "sign", "--gun", gun, "--key", &roots[0], "--key", &roots[2], "--key", &targets,
    ]);
    hsm.ok(&["root", "export", "--gun", gun, "--out", "out-init"]);
    hsm.ok(&strs(&with(
        &["--yes", "server", "publish", "out-init", "--gun", gun],
        &srv,
    )));
    roots
}

/// pull, then a signer command, sign with the targets key, export, publish; returns what
/// the signer command printed.
fn change_and_publish(
    hsm: &SoftHsm,
    server: &NotaryServer,
    gun: &str,
    change: &[&str],
    out: &str,
) -> String {
    let srv = server_args(server);
    hsm.ok(&strs(&with(&["server", "pull", "--gun", gun], &srv)));
    let said = hsm.ok(change);
    let status = hsm.ok(&["root", "status", "--gun", gun]);
    assert!(
        status.contains("draft targets v") && status.contains("targets:"),
        "{status}"
    );
    let signed = hsm.ok(&[
        "root",
        "sign",
        "--gun",
        gun,
        "--key",
        &hsm.key_uri("repo", "targets"),
    ]);
    assert!(signed.contains("ready to export: yes"), "{signed}");
    let exported = hsm.ok(&["root", "export", "--gun", gun, "--out", out]);
    assert!(exported.contains("exported"), "{exported}");
    let published = hsm.ok(&strs(&with(
        &["--yes", "server", "publish", out, "--gun", gun],
        &srv,
    )));
    assert!(published.contains("published targets"), "{published}");
    said
}

/// `signer add NAME --key PUB`, signed with the targets key, exported to `out` and published.
fn add_and_publish(
    hsm: &SoftHsm,
    server: &NotaryServer,
    gun: &str,
    name: &str,
    public: &Path,
    out: &str,
) -> String {
    let public = public.to_str().unwrap();
    change_and_publish(
        hsm,
        server,
        gun,
        &["signer", "add", name, "--gun", gun, "--key", public],
        out,
    )
}

/// A signer's own machine below the test folder: their docker, and the NAME.pub of the key
/// `docker trust key generate NAME` made there.
fn signer_home(hsm: &SoftHsm, server: &NotaryServer, name: &str) -> (Docker, PathBuf) {
    let home = hsm.path().join(format!("signer-{name}"));
    std::fs::create_dir_all(&home).unwrap();
    let docker = Docker::new(&home, server);
    let public = docker.generate_key(name, &home);
    (docker, public)
}

fn served(server: &NotaryServer, gun: &str, name: &str) -> Vec<u8> {
    let client =
        rootkeeper::server::TrustServer::new(&server.url, Some(&server.ca_file())).unwrap();
    client
        .get(gun, name)
        .unwrap()
        .unwrap_or_else(|| panic!("{name} is not served"))
}

fn served_json(server: &NotaryServer, gun: &str, name: &str) -> Value {
    serde_json::from_slice(&served(server, gun, name)).unwrap()
}

/// The `Root Key:` and `Repository Key:` lines of `docker trust inspect --pretty`.
fn admin_keys(pretty: &str) -> Vec<String> {
    pretty
        .lines()
        .filter(|l| {
            l.trim_start().starts_with("Root Key:") || l.trim_start().starts_with("Repository Key:")
        })
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// The row of the signer table of `docker trust inspect --pretty` for `signer`.
fn signer_row<'a>(pretty: &'a str, signer: &str) -> Option<&'a str> {
    pretty
        .lines()
        .find(|l| l.split_whitespace().next() == Some(signer))
}

#[test]
fn a_docker_signer_added_with_the_hardware_key_signs_tags_that_docker_pulls() {
    let hsm = SoftHsm::new();
    let server = NotaryServer::start_tls();
    let gun = "registry.example.com/admin/demo";
    published_2_of_3_server_snapshot(&hsm, &server, gun);
    let srv = server_args(&server);

    // A notary client that trusts version 1, before any signer exists.
    let early = hsm.path().join("early-client");
    ok(
        server.notary(&early, &["list", gun]),
        "notary list (first trust)",
    );

    let admin = Docker::new(&hsm.path().join("admin"), &server);
    let before = admin.ok(&["trust", "inspect", "--pretty", gun]);
    let admin_before = admin_keys(&before);
    assert_eq!(admin_before.len(), 2, "{before}");

    // The signer makes a key with docker; only ci.pub reaches the operator.
    let (ci, ci_pub) = signer_home(&hsm, &server, "ci");
    let ci_dir = ci_pub.parent().unwrap().to_owned();

    // docker itself cannot add the signer: the repository key is in the token.
    let refused = admin.run(&[
        "trust",
        "signer",
        "add",
        "--key",
        ci_pub.to_str().unwrap(),
        "ci",
        gun,
    ]);
    assert_ne!(refused.code, 0, "{}", refused.stdout);

    // Without a pull there is nothing to change.
    let err = hsm.fails(
        1,
        &[
            "signer",
            "add",
            "ci",
            "--gun",
            gun,
            "--key",
            ci_pub.to_str().unwrap(),
        ],
    );
    assert!(err.contains("server pull"), "{err}");

    let said = add_and_publish(&hsm, &server, gun, "ci", &ci_pub, "out-add");
    assert!(
        said.contains("targets/ci created") && said.contains("targets/releases created"),
        "{said}"
    );
    assert!(
        said.contains("signers publish their tags with their own key alone"),
        "{said}"
    );

    // What the server serves: the delegations as docker writes them.
    let targets = served_json(&server, gun, "targets.json");
    assert_eq!(targets["signed"]["version"], 2, "{targets}");
    let roles = targets["signed"]["delegations"]["roles"]
        .as_array()
        .unwrap();
    let names: Vec<&str> = roles.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["targets/ci", "targets/releases"]);
    let keyid = roles[0]["keyids"][0].as_str().unwrap().to_owned();
    for r in roles {
        assert_eq!(r["keyids"], serde_json::json!([keyid]));
        assert_eq!(r["paths"], serde_json::json!([""]));
        assert_eq!(r["threshold"], 1);
    }
    let key = &targets["signed"]["delegations"]["keys"][&keyid];
    assert_eq!(key["keytype"], "ecdsa");
    // The key docker wrote, and its ID computed here from the canonical key object.
    let pem = std::fs::read_to_string(&ci_pub).unwrap();
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----") && !l.contains(':') && !l.is_empty())
        .collect();
    assert_eq!(key["keyval"]["public"], body.as_str());
    let canonical =
        format!(r#"{{"keytype":"ecdsa","keyval":{{"private":null,"public":"{body}"}}}}"#);
    assert_eq!(keyid, hex::encode(Sha256::digest(canonical.as_bytes())));

    // docker trust inspect: signer ci with its key ID, the same Root and Repository keys.
    let pretty = admin.ok(&["trust", "inspect", "--pretty", gun]);
    let row = signer_row(&pretty, "ci").unwrap_or_else(|| panic!("no signer ci:\n{pretty}"));
    assert!(row.contains(&keyid[..12]), "{pretty}");
    assert_eq!(admin_keys(&pretty), admin_before, "{pretty}");
    // Until a pull shows the publish, the list says so.
    let listed = hsm.ok(&["signer", "list", "--gun", gun]);
    assert!(
        listed.contains("no signers") && listed.contains("came after the last pull"),
        "{listed}"
    );
    hsm.ok(&strs(&with(&["server", "pull", "--gun", gun], &srv)));
    let listed = hsm.ok(&["signer", "list", "--gun", gun]);
    assert!(
        listed.contains("signer ci") && listed.contains(&keyid[..12]),
        "{listed}"
    );

    // The signer signs tag 1 with their own key, as `docker trust sign` does.
    let manifest = ci_dir.join("manifest-1.json");
    std::fs::write(&manifest, br#"{"schemaVersion":2,"test":"tag 1"}"#).unwrap();
    let digest = sha256_hex(&manifest);
    ok(
        ci.sign_tag(&server, gun, "1", "ci", &manifest),
        "the signer's publish of tag 1",
    );

    let pretty = admin.ok(&["trust", "inspect", "--pretty", gun]);
    let tag = pretty
        .lines()
        .find(|l| l.split_whitespace().next() == Some("1"))
        .unwrap_or_else(|| panic!("no tag 1:\n{pretty}"));
    assert!(tag.contains(&digest) && tag.contains("ci"), "{pretty}");

    // The seed's client enforcement: the tag resolves to the signed digest; an unsigned tag
    // has no trust data.
    let pull = admin.trusted_pull(&format!("{gun}:1"));
    let wanted = format!("Pull (1 of 1): {gun}:1@sha256:{digest}");
    assert!(
        pull.stdout.contains(&wanted) || pull.stderr.contains(&wanted),
        "{}\n{}",
        pull.stdout,
        pull.stderr
    );
    let pull = admin.trusted_pull(&format!("{gun}:2"));
    assert_ne!(pull.code, 0);
    assert!(
        pull.stderr.contains("No valid trust data for 2"),
        "{}\n{}",
        pull.stdout,
        pull.stderr
    );

    // A notary client that trusted version 1 and a fresh one both list the tag.
    for client in [early.clone(), hsm.path().join("fresh-client")] {
        let list = ok(server.notary(&client, &["list", gun]), "notary list");
        assert!(
            list.lines()
                .any(|l| l.split_whitespace().next() == Some("1") && l.contains(&digest)),
            "{list}"
        );
    }

    // Renew targets: same content, a new version and expiry; tag and signer stay.
    let targets_before = served_json(&server, gun, "targets.json");
    let said = change_and_publish(
        &hsm,
        &server,
        gun,
        &["root", "renew-targets", "--gun", gun, "--expires", "60d"],
        "out-renew",
    );
    assert!(said.contains("targets renewed"), "{said}");
    let renewed = served_json(&server, gun, "targets.json");
    assert_eq!(renewed["signed"]["version"], 3);
    assert_ne!(
        renewed["signed"]["expires"],
        targets_before["signed"]["expires"]
    );
    assert_eq!(
        renewed["signed"]["delegations"],
        targets_before["signed"]["delegations"]
    );
    assert_eq!(
        renewed["signed"]["targets"],
        targets_before["signed"]["targets"]
    );
    let pretty = admin.ok(&["trust", "inspect", "--pretty", gun]);
    assert!(signer_row(&pretty, "ci").is_some(), "{pretty}");
    assert!(
        pretty
            .lines()
            .any(|l| l.split_whitespace().next() == Some("1") && l.contains(&digest)),
        "{pretty}"
    );
    // Expiring within 90 days: root status and key list warn (after a pull).
    hsm.ok(&strs(&with(&["server", "pull", "--gun", gun], &srv)));
    for cmd in [
        vec!["root", "status", "--gun", gun],
        vec!["root", "status"],
        vec!["key", "list"],
    ] {
        // With --gun and no draft, status shows the warning and then says there is no draft.
        let run = hsm.run(&cmd);
        let out = format!("{}{}", run.stdout, run.stderr);
        assert!(
            out.contains(&format!("warning: targets.json of {gun} expires at"))
                && out.contains("renew-targets"),
            "{cmd:?}: {out}"
        );
    }

    // Control for the refusal below: while ci is a signer, the server takes the same kind of
    // upload (tag 1b into targets/ci, version 5).
    upload_as_signer(&ci, &server, gun, "targets/ci", "1b", 5).unwrap();
    let ci_file = served_json(&server, gun, "targets/ci.json");
    assert!(ci_file["signed"]["targets"]["1b"].is_object(), "{ci_file}");

    // Remove ci: the only signer of the released tag, so it asks (docker asks too).
    let err = hsm.fails(1, &["signer", "remove", "ci", "--gun", gun]);
    assert!(
        err.contains("makes registry.example.com/admin/demo unpullable"),
        "{err}"
    );
    change_and_publish(
        &hsm,
        &server,
        gun,
        &["--yes", "signer", "remove", "ci", "--gun", gun],
        "out-remove",
    );
    let targets = served_json(&server, gun, "targets.json");
    assert_eq!(
        targets["signed"]["delegations"],
        serde_json::json!({"keys": {}, "roles": []})
    );
    let pretty = admin.ok(&["trust", "inspect", "--pretty", gun]);
    assert!(signer_row(&pretty, "ci").is_none(), "{pretty}");

    // ci's next publish is refused and changes nothing on the server.
    let manifest = ci_dir.join("manifest-2.json");
    std::fs::write(&manifest, br#"{"schemaVersion":2,"test":"tag 2"}"#).unwrap();
    let before = served(&server, gun, "targets.json");
    let refused = ci.sign_tag(&server, gun, "2", "ci", &manifest);
    assert_ne!(refused.code, 0, "{}\n{}", refused.stdout, refused.stderr);
    eprintln!("ci's publish after removal: {}", refused.stderr.trim());
    assert_eq!(served(&server, gun, "targets.json"), before);
    let list = server.notary(&hsm.path().join("after-client"), &["list", gun]);
    assert!(
        !list
            .stdout
            .lines()
            .any(|l| l.split_whitespace().next() == Some("2")),
        "{}",
        list.stdout
    );
    // The same files sent to the server without the client: the server refuses them (the
    // control, the same upload while ci was a signer, is above).
    for role in ["targets/ci", "targets/releases"] {
        let err = upload_as_signer(&ci, &server, gun, role, "2", 9).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("answered 400") && text.contains("delegation does not exist"),
            "{role}: {text}"
        );
        eprintln!("the server refuses ci's {role}: {text}");
    }
    assert_eq!(served(&server, gun, "targets.json"), before);
    hsm.ok(&strs(&with(&["server", "pull", "--gun", gun], &srv)));
}

#[test]
fn two_signers_remove_one_the_others_tags_and_power_remain() {
    let hsm = SoftHsm::new();
    let server = NotaryServer::start_tls();
    let gun = "registry.example.com/team/two";
    published_2_of_3_server_snapshot(&hsm, &server, gun);
    let people: Vec<(&str, Docker, PathBuf)> = ["alice", "bob"]
        .into_iter()
        .map(|name| {
            let (docker, public) = signer_home(&hsm, &server, name);
            (name, docker, public)
        })
        .collect();
    for (name, _, public) in &people {
        add_and_publish(&hsm, &server, gun, name, public, &format!("out-{name}"));
    }
    let targets = served_json(&server, gun, "targets.json");
    let names: Vec<&str> = targets["signed"]["delegations"]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    // notary's order: the existing releases role keeps its place, bob's role is appended.
    assert_eq!(names, ["targets/alice", "targets/releases", "targets/bob"]);
    assert_eq!(
        targets["signed"]["delegations"]["roles"][1]["keyids"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let tag = |who: usize, tag: &str| {
        let (name, docker, _) = &people[who];
        let manifest = hsm.path().join(format!("manifest-{tag}.json"));
        std::fs::write(&manifest, format!(r#"{{"tag":"{tag}"}}"#)).unwrap();
        (
            docker.sign_tag(&server, gun, tag, name, &manifest),
            sha256_hex(&manifest),
        )
    };
    let (r, digest_a) = tag(0, "a");
    ok(r, "alice signs a");
    let (r, digest_b) = tag(1, "b");
    ok(r, "bob signs b");

    let listed = hsm.ok(&strs(&with(
        &["server", "pull", "--gun", gun],
        &server_args(&server),
    )));
    assert!(
        listed.contains("targets/alice") && listed.contains("targets/bob"),
        "{listed}"
    );
    let listed = hsm.ok(&["signer", "list", "--gun", gun]);
    assert!(
        listed.contains("signer alice") && listed.contains("signer bob"),
        "{listed}"
    );
    assert!(
        listed.contains("released tags (targets/releases): a, b"),
        "{listed}"
    );

    // Bob signed targets/releases last, so removing alice leaves the released tags valid: no
    // question asked.
    let said = change_and_publish(
        &hsm,
        &server,
        gun,
        &["signer", "remove", "alice", "--gun", gun],
        "out-rm",
    );
    assert!(
        said.contains("targets/alice removed") && said.contains("removed from targets/releases"),
        "{said}"
    );
    let targets = served_json(&server, gun, "targets.json");
    let roles = targets["signed"]["delegations"]["roles"]
        .as_array()
        .unwrap();
    let names: Vec<&str> = roles.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["targets/releases", "targets/bob"]);
    assert_eq!(roles[0]["keyids"], roles[1]["keyids"]);
    assert_eq!(
        targets["signed"]["delegations"]["keys"]
            .as_object()
            .unwrap()
            .len(),
        1
    );

    // Both tags are still trusted; bob still signs; alice no longer can.
    let (r, digest_c) = tag(1, "c");
    ok(r, "bob signs c after alice left");
    let (r, _) = tag(0, "d");
    assert_ne!(r.code, 0, "alice's publish after removal: {}", r.stdout);
    // Sent straight to the server, alice's targets/releases is refused there too.
    let err = upload_as_signer(&people[0].1, &server, gun, "targets/releases", "d", 99)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("answered 400") && err.contains("targets/releases"),
        "{err}"
    );
    eprintln!("the server refuses alice's targets/releases: {err}");
    let list = ok(
        server.notary(&hsm.path().join("fresh-client"), &["list", gun]),
        "notary list",
    );
    for (tag, digest) in [("a", &digest_a), ("b", &digest_b), ("c", &digest_c)] {
        assert!(
            list.lines()
                .any(|l| l.split_whitespace().next() == Some(tag) && l.contains(digest.as_str())),
            "{tag}: {list}"
        );
    }
    assert!(
        !list
            .lines()
            .any(|l| l.split_whitespace().next() == Some("d")),
        "{list}"
    );
    let pretty = people[1].1.ok(&["trust", "inspect", "--pretty", gun]);
    assert!(
        signer_row(&pretty, "bob").is_some() && signer_row(&pretty, "alice").is_none(),
        "{pretty}"
    );
    let pull = people[1].1.trusted_pull(&format!("{gun}:a"));
    let wanted = format!("{gun}:a@sha256:{digest_a}");
    assert!(
        pull.stdout.contains(&wanted) || pull.stderr.contains(&wanted),
        "{}\n{}",
        pull.stdout,
        pull.stderr
    );

    // Then carol joins, and bob (the last to sign targets/releases) leaves: rootkeeper warns
    // as docker does; confirmed, the released file is left signed by a key no longer in the
    // role, which clients skip, and so does the next pull, with a note.
    let (_, carol) = signer_home(&hsm, &server, "carol");
    add_and_publish(&hsm, &server, gun, "carol", &carol, "out-carol");
    hsm.ok(&strs(&with(
        &["server", "pull", "--gun", gun],
        &server_args(&server),
    )));
    let err = hsm.fails(1, &["signer", "remove", "bob", "--gun", gun]);
    assert!(
        err.contains("signer bob signed the last released version")
            && err.contains("tags a, b, c")
            && err.contains("needs a confirmation"),
        "{err}"
    );
    change_and_publish(
        &hsm,
        &server,
        gun,
        &["--yes", "signer", "remove", "bob", "--gun", gun],
        "out-rm-bob",
    );
    let pulled = hsm.ok(&strs(&with(
        &["server", "pull", "--gun", gun],
        &server_args(&server),
    )));
    assert!(
        pulled.contains("note: targets/releases is not valid")
            && pulled.contains("clients skip it"),
        "{pulled}"
    );
    let list = server.notary(&hsm.path().join("late-client"), &["list", gun]);
    assert!(
        !list
            .stdout
            .lines()
            .any(|l| l.split_whitespace().next() == Some("a")),
        "{}\n{}",
        list.stdout,
        list.stderr
    );
}

/// A pull from a small HTTP server on loopback that serves `files` (name → bytes) for `gun`.
fn pull_from(hsm: &SoftHsm, gun: &str, files: Vec<(String, Vec<u8>)>) -> Run {
    let prefix = format!("GET /v2/{gun}/_trust/tuf/");
    let fixture = HttpFixture::routing(move |line| {
        let name = line
            .strip_prefix(prefix.as_str())
            .and_then(|rest| rest.strip_suffix(" HTTP/1.1"));
        match name.and_then(|n| files.iter().find(|(f, _)| f == n)) {
            Some((_, bytes)) => http_response("200 OK", &[], bytes),
            None => http_response("404 Not Found", &[], b"{}"),
        }
    });
    hsm.run(&["server", "pull", "--server", &fixture.url, "--gun", gun])
}

#[test]
fn server_pull_refuses_what_does_not_verify_and_stores_nothing() {
    let hsm = SoftHsm::new();
    let server = NotaryServer::start_tls();
    let gun = "registry.example.com/admin/pulled";
    published_2_of_3_server_snapshot(&hsm, &server, gun);
    let srv = server_args(&server);
    let names = [
        "root.json",
        "timestamp.json",
        "snapshot.json",
        "targets.json",
    ];
    let grab = || -> Vec<(String, Vec<u8>)> {
        names
            .iter()
            .map(|n| (n.to_string(), served(&server, gun, n)))
            .collect()
    };
    let v1 = grab();
    hsm.ok(&strs(&with(&["server", "pull", "--gun", gun], &srv)));
    // A signer makes the server's state move on: targets v2 (snapshot and timestamp v2).
    let (_, ci_pub) = signer_home(&hsm, &server, "ci");
    add_and_publish(&hsm, &server, gun, "ci", &ci_pub, "out");
    let v2 = grab();
    hsm.ok(&strs(&with(&["server", "pull", "--gun", gun], &srv)));
    let pulled = hsm.trust_dir().join("repos").join(gun).join("server");
    let stored = || {
        let mut all: Vec<(String, Vec<u8>)> = std::fs::read_dir(&pulled)
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| {
                (
                    e.file_name().into_string().unwrap(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        all.sort();
        all
    };
    let before = stored();
    // The real served state pulls (control).
    let r = pull_from(&hsm, gun, v2.clone());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let before_after_control = stored();
    assert_eq!(before.len(), before_after_control.len());

    let replace =
        |set: &[(String, Vec<u8>)], name: &str, bytes: Vec<u8>| -> Vec<(String, Vec<u8>)> {
            set.iter()
                .map(|(n, b)| (n.clone(), if n == name { bytes.clone() } else { b.clone() }))
                .collect()
        };
    let get = |set: &[(String, Vec<u8>)], name: &str| {
        set.iter().find(|(n, _)| n == name).unwrap().1.clone()
    };

    // 1. targets.json with one byte changed (inside its signed part).
    let mut targets = get(&v2, "targets.json");
    let at = targets.windows(8).position(|w| w == b"\"version").unwrap() + 10;
    targets[at] = if targets[at] == b'2' { b'3' } else { b'2' };
    let err = pull_from(&hsm, gun, replace(&v2, "targets.json", targets));
    assert_eq!(err.code, 1);
    assert!(
        err.stderr
            .contains("served targets.json: rule `targets-threshold` broken")
            || err
                .stderr
                .contains("served targets.json: rule `signatures` broken"),
        "{}",
        err.stderr
    );
    assert_eq!(stored(), before_after_control);

    // 2. A snapshot whose hash for targets does not match: the server's snapshot and
    // timestamp, with the (validly signed) targets.json of version 1.
    let err = pull_from(
        &hsm,
        gun,
        replace(&v2, "targets.json", get(&v1, "targets.json")),
    );
    assert_eq!(err.code, 1);
    assert!(err.stderr.contains("served snapshot.json: rule `snapshot-meta` broken: its hash of targets.json does not match"), "{}", err.stderr);
    assert_eq!(stored(), before_after_control);

    // 3. A timestamp older than the one stored: the whole, valid state of before.
    let err = pull_from(&hsm, gun, v1.clone());
    assert_eq!(err.code, 1);
    assert!(err.stderr.contains("the server serves timestamp version 1 of registry.example.com/admin/pulled, older than version 2 pulled before"), "{}", err.stderr);
    assert_eq!(stored(), before_after_control);

    // 4. A root that does not chain to ours: another trust directory's root for the GUN.
    let other = SoftHsm::new();
    other.draft_2_of_3(gun, None);
    let roots: Vec<String> = ["root-a", "root-b"]
        .iter()
        .map(|t| other.key_uri(t, "root"))
        .collect();
    other.ok(&[
        "root",
        "sign",
        "--gun",
        gun,
        "--key",
        &roots[0],
        "--key",
        &roots[1],
        "--key",
        &other.key_uri("repo", "targets"),
        "--key",
        &other.key_uri("repo", "snapshot"),
    ]);
    other.ok(&["root", "export", "--gun", gun, "--out", "x"]);
    let foreign = std::fs::read(other.path().join("x/root.json")).unwrap();
    let err = pull_from(&hsm, gun, replace(&v2, "root.json", foreign));
    assert_eq!(err.code, 1);
    assert!(err.stderr.contains("not pulling registry.example.com/admin/pulled: the server's root (version 1) is not the root version 1 this trust directory keeps; nothing was stored"), "{}", err.stderr);
    assert!(
        err.stderr
            .contains("hint: the server does not serve the repository this trust directory keeps"),
        "{}",
        err.stderr
    );
    assert_eq!(stored(), before_after_control);
}

#[test]
fn with_an_offline_snapshot_key_signer_add_says_so_and_a_signers_publish_is_refused() {
    let hsm = SoftHsm::new();
    let server = NotaryServer::start_tls();
    let gun = "registry.example.com/admin/offline";
    let srv = server_args(&server);
    let roots = hsm.standard_keys();
    hsm.ok(&strs(&with(
        &["server", "timestamp-key", "--gun", gun, "--out", "ts.json"],
        &srv,
    )));
    let mut init = hsm.init_2_of_3(&roots, "ts.json");
    init.extend(["--gun".into(), gun.into()]);
    hsm.ok(&strs(&init));
    let (targets, snapshot) = (
        hsm.key_uri("repo", "targets"),
        hsm.key_uri("repo", "snapshot"),
    );
    hsm.ok(&[
        "root", "sign", "--gun", gun, "--key", &roots[0], "--key", &roots[1], "--key", &targets,
        "--key", &snapshot,
    ]);
    hsm.ok(&["root", "export", "--gun", gun, "--out", "out-init"]);
    hsm.ok(&strs(&with(
        &["--yes", "server", "publish", "out-init", "--gun", gun],
        &srv,
    )));
    hsm.ok(&strs(&with(&["server", "pull", "--gun", gun], &srv)));

    let (ci, ci_pub) = signer_home(&hsm, &server, "ci");
    let said = hsm.ok(&[
        "signer",
        "add",
        "ci",
        "--gun",
        gun,
        "--key",
        ci_pub.to_str().unwrap(),
    ]);
    assert!(
        said.contains("snapshot v2 is drafted too")
            && said.contains("warning: this repository's snapshot key is offline")
            && said.contains("The signer cannot publish alone"),
        "{said}"
    );
    // A root key has nothing to sign in a targets draft: a note, not an error.
    let signed = hsm.ok(&[
        "root", "sign", "--gun", gun, "--key", &roots[2], "--key", &targets, "--key", &snapshot,
    ]);
    assert!(
        signed.contains("has nothing to sign in this draft (signer ci added)")
            && signed.contains("snapshot")
            && signed.contains("ready to export: yes"),
        "{signed}"
    );
    hsm.ok(&["root", "export", "--gun", gun, "--out", "out-add"]);
    let published = hsm.ok(&strs(&with(
        &["--yes", "server", "publish", "out-add", "--gun", gun],
        &srv,
    )));
    assert!(
        published.contains("published targets, snapshot"),
        "{published}"
    );
    let snapshot_json = served_json(&server, gun, "snapshot.json");
    assert_eq!(snapshot_json["signed"]["version"], 2, "{snapshot_json}");

    let admin = Docker::new(&hsm.path().join("admin"), &server);
    let pretty = admin.ok(&["trust", "inspect", "--pretty", gun]);
    assert!(signer_row(&pretty, "ci").is_some(), "{pretty}");

    // The signer's own publish needs a snapshot the server cannot make.
    let manifest = ci_pub.parent().unwrap().join("manifest.json");
    std::fs::write(&manifest, b"{}").unwrap();
    let before = served(&server, gun, "snapshot.json");
    let refused = ci.sign_tag(&server, gun, "1", "ci", &manifest);
    assert_ne!(refused.code, 0, "{}", refused.stdout);
    let said = format!("{}{}", refused.stdout, refused.stderr);
    eprintln!("ci's publish with an offline snapshot key: {}", said.trim());
    assert!(
        said.contains("server does not hold current snapshot key for repository"),
        "{said}"
    );
    assert_eq!(served(&server, gun, "snapshot.json"), before);
}
