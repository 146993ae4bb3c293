//! Our Notary v1 code against real files made by Debian's notary 0.7 client and server: the
//! envelope bytes, key IDs, canonical bytes and signatures must all agree with theirs.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hsm_tests::fixture;
use rootkeeper::tuf::model::{Envelope, MetaRole, Root, Targets, UtcTime};
use rootkeeper::tuf::{notary, verify};

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(fixture("notary-0.7-samples").join(name)).unwrap()
}

/// A time when every sample is valid (they were made on 2026-11-28 with 14-day timestamps).
fn sample_now() -> UtcTime {
    UtcTime::parse("2026-11-29T00:00:00Z").unwrap()
}

#[test]
fn every_sample_is_its_own_go_reserialisation() {
    for name in [
        "root.json",
        "root.v1.json",
        "targets.json",
        "targets-releases.json",
        "snapshot.json",
        "timestamp.json",
        "rust-prototype/root.json",
        "rust-prototype/targets.json",
        "rust-prototype/snapshot.json",
    ] {
        let bytes = sample(name);
        let env = verify::parse_exact(name, &bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(env.to_bytes().unwrap(), bytes, "{name}");
    }
}

#[test]
fn a_changed_byte_breaks_the_round_trip() {
    let mut bytes = sample("root.json");
    let at = bytes.windows(7).position(|w| w == b"\"Root\",").unwrap();
    bytes.insert(at + 7, b' ');
    let err = verify::parse_exact("root.json", &bytes)
        .unwrap_err()
        .to_string();
    assert!(err.contains("canonical-round-trip"), "{err}");
}

#[test]
fn key_ids_are_hashes_of_the_keys() {
    let root: Root = Envelope::parse("root", &sample("root.json"))
        .unwrap()
        .typed("root")
        .unwrap();
    assert_eq!(root.keys.len(), 5);
    for (id, key) in &root.keys {
        assert_eq!(&notary::key_id(key), id);
    }
    // The test vector of research/notary-format.md §3.
    let key = rootkeeper::tuf::model::PublicKey::new("ecdsa", "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEyidUV961UjagjWLmulPmQ6BX+EpJeoBFqHpfsM1L7tHF4fjdNRGPBmEktT9H3nh5YQpI4nxQ+K3Q2NZT0Cke8w==".into());
    assert_eq!(
        notary::key_id(&key),
        "85559599cf3cf681ff193f432a7ca6d128182bd1cfa8ede2c70761deac8bc2dc"
    );
}

#[test]
fn the_canonical_id_of_a_root_cert_is_its_private_key_file_name() {
    let root: Root = Envelope::parse("root", &sample("root.json"))
        .unwrap()
        .typed("root")
        .unwrap();
    let (id, key) = root
        .keys
        .iter()
        .find(|(id, _)| id.starts_with("2237ea2d"))
        .unwrap();
    assert_eq!(notary::key_id(key), *id);
    assert!(
        notary::canonical_key_id(key)
            .unwrap()
            .starts_with("d0b08f4a")
    );
    // The PEM inside the key is byte for byte the certificate file.
    assert_eq!(
        B64.decode(&key.keyval.public).unwrap(),
        sample("root-cert.2237ea2d.pem")
    );
    assert_eq!(
        notary::rebuilt_pem(key).unwrap().as_bytes(),
        &sample("root-cert.2237ea2d.pem")[..]
    );
}

#[test]
fn rotated_root_verifies_against_the_first_root() {
    let v = verify::verify_root(
        &sample("root.json"),
        Some("example.com/demo/app"),
        Some(&sample("root.v1.json")),
        sample_now(),
    )
    .unwrap()
    .2;
    assert_eq!(v.root_version, 2);
    assert!(v.rules.contains(&"root-rotation"));
    let err = verify::verify_root(
        &sample("root.json"),
        Some("example.com/other"),
        None,
        sample_now(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("root-cn"), "{err}");
    let err = verify::verify_root(
        &sample("root.v1.json"),
        None,
        None,
        UtcTime::parse("2040-01-01T00:00:00Z").unwrap(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("root-cert-validity") || err.contains("root-expiry"),
        "{err}"
    );
}

#[test]
fn root_signatures_verify_with_p256_directly() {
    // Independent of our signature code: canonical bytes + p256 over the cert's key.
    assert_eq!(hsm_tests::root_signatures_valid(&sample("root.v1.json")), 1);
    assert_eq!(hsm_tests::root_signatures_valid(&sample("root.json")), 2);
}

#[test]
fn targets_snapshot_and_timestamp_verify_against_root() {
    let root_bytes = sample("root.json");
    let targets_bytes = sample("targets.json");
    let snapshot_bytes = sample("snapshot.json");
    let v = verify::verify_repo(
        verify::RepoFiles {
            root: &root_bytes,
            targets: Some(&targets_bytes),
            snapshot: Some(&snapshot_bytes),
        },
        Some("example.com/demo/app"),
        None,
        sample_now(),
    )
    .unwrap();
    assert_eq!(v.targets_version, Some(4));
    assert!(v.rules.contains(&"snapshot-meta"));

    // The server's eddsa timestamp signs over the exact snapshot bytes.
    let root: Root = Envelope::parse("root", &root_bytes)
        .unwrap()
        .typed("root")
        .unwrap();
    let ts = Envelope::parse("timestamp", &sample("timestamp.json")).unwrap();
    let valid =
        verify::valid_signers("timestamp.json", &ts, &root.keys, &root.roles["timestamp"]).unwrap();
    assert_eq!(valid.len(), 1);
    let meta: MetaRole = ts.typed("timestamp").unwrap();
    assert_eq!(
        meta.meta["snapshot"].hashes["sha256"],
        notary::file_meta(&snapshot_bytes).hashes["sha256"]
    );

    // The delegation is signed by the ecdsa-x509 key listed in targets.json.
    let targets_env = Envelope::parse("targets", &targets_bytes).unwrap();
    let targets: Targets = targets_env.typed("targets").unwrap();
    let role = &targets.delegations.roles[0];
    let deleg = Envelope::parse("targets/releases", &sample("targets-releases.json")).unwrap();
    let role = rootkeeper::tuf::model::Role {
        keyids: role.keyids.clone(),
        threshold: role.threshold,
    };
    assert_eq!(
        verify::valid_signers("releases", &deleg, &targets.delegations.keys, &role)
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn a_tampered_signature_is_refused() {
    let mut env = Envelope::parse("root", &sample("root.v1.json")).unwrap();
    let mut raw = B64.decode(&env.signatures[0].sig).unwrap();
    raw[10] ^= 1;
    env.signatures[0].sig = B64.encode(raw);
    let err = verify::verify_root(&env.to_bytes().unwrap(), None, None, sample_now())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("signatures") || err.contains("root-threshold"),
        "{err}"
    );
}

#[test]
fn the_server_timestamp_key_file_parses() {
    let key =
        notary::parse_server_key("timestamp.key.json", &sample("timestamp.key.json")).unwrap();
    assert_eq!(key.keytype, "ed25519");
    assert!(notary::key_id(&key).starts_with("efe8953b"));
}
