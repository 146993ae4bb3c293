//! Our Notary v1 code against real files made by Debian's notary 0.7 client and server: the
//! envelope bytes, key IDs, canonical bytes and signatures must all agree with theirs.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hsm_tests::fixture;
use rootkeeper::tuf::model::{
    Base64, Document, KeyType, PublicKey, RoleKeys, Root, Signed, Targets, Timestamp, UtcTime,
};
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
        // Strict parse: exact field names, canonical base64, Go's time form, byte-exact.
        let doc = Document::parse(name, &bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        // The signed bytes we rebuild equal the bytes sliced from notary's own file.
        assert_eq!(
            doc.signed_bytes().unwrap(),
            hsm_tests::raw_signed_bytes(&bytes),
            "{name}"
        );
    }
}

#[test]
fn a_changed_byte_breaks_the_round_trip() {
    let mut bytes = sample("root.json");
    let at = bytes.windows(7).position(|w| w == b"\"Root\",").unwrap();
    bytes.insert(at + 7, b' ');
    let err = Signed::<Root>::parse("root.json", &bytes)
        .unwrap_err()
        .to_string();
    assert!(err.contains("canonical-round-trip"), "{err}");
}

#[test]
fn key_ids_are_hashes_of_the_keys() {
    let root = Signed::<Root>::parse("root", &sample("root.json"))
        .unwrap()
        .signed;
    assert_eq!(root.keys.len(), 5);
    for (id, key) in &root.keys {
        assert_eq!(&notary::key_id(key), id);
    }
    // The test vector of research/notary-format.md §3.
    let key = PublicKey::new(KeyType::Ecdsa, Base64::parse("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEyidUV961UjagjWLmulPmQ6BX+EpJeoBFqHpfsM1L7tHF4fjdNRGPBmEktT9H3nh5YQpI4nxQ+K3Q2NZT0Cke8w==").unwrap().0);
    assert_eq!(
        notary::key_id(&key).as_str(),
        "85559599cf3cf681ff193f432a7ca6d128182bd1cfa8ede2c70761deac8bc2dc"
    );
}

#[test]
fn the_canonical_id_of_a_root_cert_is_its_private_key_file_name() {
    let root = Signed::<Root>::parse("root", &sample("root.json"))
        .unwrap()
        .signed;
    let (id, key) = root
        .keys
        .iter()
        .find(|(id, _)| id.as_str().starts_with("2237ea2d"))
        .unwrap();
    assert_eq!(notary::key_id(key), *id);
    assert!(
        notary::canonical_key_id(key)
            .unwrap()
            .as_str()
            .starts_with("d0b08f4a")
    );
    // The PEM inside the key is byte for byte the certificate file.
    assert_eq!(key.public(), &sample("root-cert.2237ea2d.pem")[..]);
    assert_eq!(
        notary::rebuilt_pem(key).unwrap().as_bytes(),
        &sample("root-cert.2237ea2d.pem")[..]
    );
}

#[test]
fn rotated_root_verifies_against_the_first_root() {
    let gun = "example.com/demo/app";
    let v1 = verify::check_chain_root(
        "root.v1.json",
        &sample("root.v1.json"),
        gun,
        None,
        sample_now(),
    )
    .unwrap();
    let v2 = verify::check_root(
        "root.json",
        &sample("root.json"),
        Some(gun),
        Some(&v1),
        sample_now(),
    )
    .unwrap();
    assert_eq!(v2.doc.signed.version.get(), 2);
    assert!(v2.rules.contains(&"root-rotation"));
    let err = verify::check_root(
        "root.json",
        &sample("root.json"),
        Some("example.com/other"),
        None,
        sample_now(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("root-cn"), "{err}");
    let err = verify::check_root(
        "root.v1.json",
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
    // v1 is not a valid successor of itself.
    let err = verify::check_root(
        "root.v1.json",
        &sample("root.v1.json"),
        Some(gun),
        Some(&v1),
        sample_now(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("root-version"), "{err}");
}

#[test]
fn root_signatures_verify_with_p256_directly() {
    // Independent of our signature code: raw signed bytes + p256 over the cert's key.
    assert_eq!(hsm_tests::root_signatures_valid(&sample("root.v1.json")), 1);
    assert_eq!(hsm_tests::root_signatures_valid(&sample("root.json")), 2);
}

#[test]
fn targets_snapshot_and_timestamp_verify_against_root() {
    let root_bytes = sample("root.json");
    let targets_bytes = sample("targets.json");
    let snapshot_bytes = sample("snapshot.json");
    let (root, v) = verify::verify_repo(
        verify::RepoFiles {
            root: &root_bytes,
            targets: Some(&targets_bytes),
            snapshot: Some(&snapshot_bytes),
            timestamp: None,
        },
        Some("example.com/demo/app"),
        None,
        sample_now(),
    )
    .unwrap();
    assert_eq!(v.targets_version, Some(4));
    assert!(v.rules.contains(&"snapshot-meta"));

    // The server's eddsa timestamp signs over the exact snapshot bytes.
    let ts = verify::check_timestamp(
        "timestamp.json",
        &sample("timestamp.json"),
        &root,
        &snapshot_bytes,
        sample_now(),
    )
    .unwrap();
    assert_eq!(ts.signatures[0].method.as_str(), "eddsa");
    let ts = Signed::<Timestamp>::parse("timestamp.json", &sample("timestamp.json")).unwrap();
    assert_eq!(
        ts.signed.meta["snapshot"].hashes.sha256,
        notary::file_meta(&snapshot_bytes).hashes.sha256
    );
    // The timestamp does not cover another snapshot.
    assert!(
        verify::check_timestamp(
            "t",
            &sample("timestamp.json"),
            &root,
            &targets_bytes,
            sample_now()
        )
        .unwrap_err()
        .to_string()
        .contains("timestamp-meta")
    );

    // The delegation is signed by the ecdsa-x509 key listed in targets.json.
    let targets = Signed::<Targets>::parse("targets", &targets_bytes)
        .unwrap()
        .signed;
    let role = &targets.delegations.roles[0];
    let deleg = verify::check_delegation(
        "targets/releases",
        &sample("targets-releases.json"),
        &targets,
        role,
        sample_now(),
    )
    .unwrap();
    assert_eq!(deleg.signatures.len(), 1);
    let _ = RoleKeys {
        keyids: role.keyids.clone(),
        threshold: role.threshold,
    };
}

#[test]
fn a_tampered_signature_is_refused() {
    let mut doc = Signed::<Root>::parse("root", &sample("root.v1.json")).unwrap();
    doc.signatures[0].sig.0[10] ^= 1;
    let err = verify::check_root("root", &doc.to_bytes().unwrap(), None, None, sample_now())
        .unwrap_err()
        .to_string();
    assert!(err.contains("rule `signatures`"), "{err}");
}

#[test]
fn the_server_timestamp_key_file_parses() {
    let key =
        notary::parse_server_key("timestamp.key.json", &sample("timestamp.key.json")).unwrap();
    assert_eq!(key.keytype, KeyType::Ed25519);
    assert!(notary::key_id(&key).as_str().starts_with("efe8953b"));
    let _ = B64.encode(key.public());
}
