//! The trust-server transport against real parts: a real notary-server on loopback for the
//! success path and the served-root check, and tiny loopback fixture servers that redirect or
//! answer with hostile error text.

use std::process::Command;

use hsm_tests::{HttpFixture, NotaryServer, SoftHsm, rootkeeper_bin};
use rootkeeper::Error;
use rootkeeper::server::TrustServer;
use sha2::{Digest, Sha256};

const GUN: &str = "example.com/transport/app";

#[test]
fn publish_and_confirm_on_a_real_notary_server_then_refuse_another_root() {
    let hsm = SoftHsm::new();
    let server = NotaryServer::start();
    let [root, targets, snapshot] = hsm.export_1_of_1(&server, GUN, "out");

    let client = TrustServer::new(&server.url, None).unwrap();
    client
        .publish(
            GUN,
            &[
                ("root", &root),
                ("targets", &targets),
                ("snapshot", &snapshot),
            ],
        )
        .unwrap();
    let confirmed = client
        .confirm(GUN, &root, &targets, Some(&snapshot))
        .unwrap();
    assert_eq!(confirmed.timestamp_version, 1);
    assert_eq!(confirmed.snapshot_version, 1);
    let sha = hex_sha256(&root);
    assert_eq!(confirmed.root_fingerprint.hex(), sha);
    assert_eq!(confirmed.root_fingerprint.words().len(), 32);
    let json = serde_json::to_value(&confirmed).unwrap();
    assert_eq!(json["root_fingerprint"]["sha256"], sha);

    // The same server by name: `localhost` is loopback too.
    let port = server.url.rsplit(':').next().unwrap();
    let by_name = TrustServer::new(&format!("http://localhost:{port}/"), None).unwrap();
    assert_eq!(by_name.get(GUN, "root.json").unwrap().unwrap(), root);

    // The server now serves `root`; claiming another upload is the served-root error.
    let mut other = root.clone();
    other.push(b'\n');
    match client.confirm(GUN, &other, &targets, Some(&snapshot)) {
        Err(e @ Error::RootMismatch { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("serves another root.json than the one uploaded"),
                "{text}"
            );
            assert!(text.contains(&hex_sha256(&other)), "{text}");
            assert!(text.contains(&sha), "{text}");
            assert!(e.hint().unwrap().contains("do not announce"));
        }
        other => panic!("expected RootMismatch, got {other:?}"),
    }
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn redirects_are_errors_and_nothing_reaches_the_other_host() {
    let elsewhere = HttpFixture::answering("200 OK", &[], b"{}");
    let location = format!("{}/v2/{GUN}/_trust/tuf/", elsewhere.url);
    for status in [
        "301 Moved Permanently",
        "302 Found",
        "303 See Other",
        "307 Temporary Redirect",
        "308 Permanent Redirect",
    ] {
        let code: u16 = status[..3].parse().unwrap();
        let redirector = HttpFixture::answering(status, &[("Location", &location)], b"moved");
        let client = TrustServer::new(&redirector.url, None).unwrap();
        let post = client.publish(GUN, &[("root", b"{}"), ("targets", b"{}")]);
        let get = client.get(GUN, "root.json");
        let key = client.role_key(GUN, "timestamp");
        for (what, result) in [
            ("POST", post.map(|_| ())),
            ("GET", get.map(|_| ())),
            ("GET key", key.map(|_| ())),
        ] {
            match result {
                Err(e @ Error::Redirect { .. }) => {
                    let Error::Redirect {
                        status,
                        location: l,
                        ..
                    } = &e
                    else {
                        unreachable!()
                    };
                    assert_eq!(*status, code);
                    assert_eq!(l, &location);
                    assert!(e.to_string().contains(&location), "{e}");
                    assert!(e.hint().unwrap().contains("follows no redirects"));
                }
                other => panic!("{status} to {what}: expected Redirect, got {other:?}"),
            }
        }
        let seen = redirector.requests();
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert!(seen[0].starts_with(&format!("POST /v2/{GUN}/_trust/tuf/ ")));
        assert!(seen[1].starts_with("GET "));
    }
    assert!(
        elsewhere.requests().is_empty(),
        "a redirect was followed: {:?}",
        elsewhere.requests()
    );
}

#[test]
fn a_hostile_location_is_shown_escaped() {
    // U+202E (RIGHT-TO-LEFT OVERRIDE) in raw UTF-8: valid obs-text in a header value.
    let redirector = HttpFixture::raw(
        b"HTTP/1.1 302 Found\r\nLocation: http://evil.example/\xe2\x80\xaegpj.exe\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
    );
    let client = TrustServer::new(&redirector.url, None).unwrap();
    let e = client.get(GUN, "root.json").unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, Error::Redirect { status: 302, .. }), "{e:?}");
    assert!(
        text.contains("http://evil.example/\\u{202e}gpj.exe"),
        "{text}"
    );
    assert_clean(&text);

    // ESC in a header value: whatever ureq makes of it, nothing raw reaches the operator.
    let redirector = HttpFixture::raw(
        b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://evil.example/\x1b[2J\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
    );
    let client = TrustServer::new(&redirector.url, None).unwrap();
    let e = client.publish(GUN, &[("root", b"{}")]).unwrap_err();
    assert!(
        matches!(e, Error::Redirect { .. } | Error::Http { .. }),
        "{e:?}"
    );
    assert_clean(&e.to_string());
}

/// No control character (C0, DEL, C1) and no bidi control in `text`.
fn assert_clean(text: &str) {
    for c in text.chars() {
        assert!(
            !c.is_control()
                && !('\u{202a}'..='\u{202e}').contains(&c)
                && !('\u{2066}'..='\u{2069}').contains(&c),
            "raw U+{:04X} in {text:?}",
            u32::from(c)
        );
    }
}

#[test]
fn error_bodies_are_escaped_and_cut() {
    // The distribution errcode form, as notary-server writes it.
    let json = br#"{"errors":[{"code":"INVALID_UPDATE","message":"\u001b[2J\u001b[1;1Hpublished, all good\u0007\u0008\r","detail":"\u202egro.elpmaxe\u2066 \u009b31m"}]}"#;
    let server = HttpFixture::answering(
        "400 Bad Request",
        &[("Content-Type", "application/json")],
        json,
    );
    let client = TrustServer::new(&server.url, None).unwrap();
    for e in [
        client.publish(GUN, &[("root", b"{}")]).unwrap_err(),
        client.get(GUN, "root.json").unwrap_err(),
    ] {
        let Error::Server {
            status, message, ..
        } = &e
        else {
            panic!("{e:?}")
        };
        assert_eq!(*status, 400);
        assert_eq!(
            message,
            "INVALID_UPDATE: \\x1b[2J\\x1b[1;1Hpublished, all good\\x07\\x08\\r (\\u{202e}gro.elpmaxe\\u{2066} \\u{9b}31m)"
        );
        assert_clean(&e.to_string());
    }

    // A body that is not JSON: raw controls, a raw bidi override, bytes that are not UTF-8,
    // and far too much of it.
    let mut body =
        b"\x1b]0;owned\x07\x1b[31mroot accepted\x1b[0m\r\x08\x7f \xe2\x80\xae\xc2\x9b \xff\xfe "
            .to_vec();
    body.extend(std::iter::repeat_n(b'A', 100_000));
    let total = body.len();
    let server = HttpFixture::answering("400 Bad Request", &[], &body);
    let client = TrustServer::new(&server.url, None).unwrap();
    let e = client.get(GUN, "root.json").unwrap_err();
    let Error::Server { message, .. } = &e else {
        panic!("{e:?}")
    };
    assert!(
        message.starts_with(
            "\\x1b]0;owned\\x07\\x1b[31mroot accepted\\x1b[0m\\r\\x08\\x7f \\u{202e}\\u{9b} \\xff\\xfe A"
        ),
        "{message}"
    );
    assert!(
        message.ends_with(&format!("\u{2026} (cut; {total} bytes in all)")),
        "{}",
        &message[message.len() - 60..]
    );
    assert!(message.chars().count() < 600, "{}", message.len());
    assert_clean(&e.to_string());
}

#[test]
fn plain_http_elsewhere_is_refused_before_any_network_access() {
    for url in [
        "http://notary.example.com",
        "http://notary.example.com:4443/",
        "http://10.0.0.5:4443",
        "http://127.0.0.1@notary.example.com/",
    ] {
        let e = TrustServer::new(url, None).unwrap_err();
        assert!(
            matches!(e, Error::PlainHttp { .. } | Error::Invalid(_)),
            "{url}: {e:?}"
        );
    }

    // The command, in a network namespace of its own (no interface up, no DNS): the refusal is
    // the same, so it needs nothing from the network. Without user namespaces, run as is.
    let hsm = SoftHsm::new();
    let isolated = Command::new("unshare")
        .args(["-rn", "true"])
        .status()
        .is_ok_and(|s| s.success());
    let mut command = if isolated {
        let mut c = Command::new("unshare");
        c.arg("-rn").arg(rootkeeper_bin());
        c
    } else {
        Command::new(rootkeeper_bin())
    };
    let out = command
        .args([
            "server",
            "timestamp-key",
            "--server",
            "http://notary.example.com",
            "--gun",
            GUN,
            "--out",
            "ts.json",
        ])
        .env("ROOTKEEPER_DIR", hsm.trust_dir())
        .current_dir(hsm.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("refusing plain http to http://notary.example.com"),
        "{stderr}"
    );
    assert!(stderr.contains("swapped by anyone on the path"), "{stderr}");
    assert!(!hsm.path().join("ts.json").exists());
}
