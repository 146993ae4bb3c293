//! End-to-end tests through a real pcscd + vpcd, with the `yubikey` crate and Yubico's tools.
//!
//! They are `#[ignore]`d and run only inside `hsm-tests/piv/pcscd-ns` (which sets
//! `PIV_EMU_PCSCD=1`), where a missing prerequisite fails them:
//! `hsm-tests/piv/pcscd-ns cargo test -p piv-emu --test pcsc -- --ignored --test-threads=1`

use std::{process::Command, str::FromStr, sync::Mutex, thread, time::Duration};

use p256::ecdsa::{Signature, VerifyingKey, signature::hazmat::PrehashVerifier};
use piv_emu::harness::{CardOptions, VirtualCard, in_private_pcscd};
use sha2::{Digest, Sha256};
use x509_cert::{
    Certificate as X509, der::Decode, der::Encode, name::Name, serial_number::SerialNumber,
    spki::SubjectPublicKeyInfoOwned, time::Validity,
};
use yubikey::{
    Certificate, MgmAlgorithmId, MgmKey, PinPolicy, Serial, TouchPolicy, YubiKey,
    piv::{self, AlgorithmId, Origin, SlotAlgorithmId, SlotId},
};

/// pcscd resets the card between clients; keep one test on the card at a time.
static SERIAL_LOCK: Mutex<()> = Mutex::new(());

/// Fails (never skips) outside the private pcscd.
fn require_pcscd_ns() {
    assert!(
        in_private_pcscd(),
        "needs the private pcscd: hsm-tests/piv/pcscd-ns cargo test -p piv-emu --test pcsc -- --ignored --test-threads=1"
    );
}

/// Opens a card by serial, retrying the PC/SC reset race (SCARD_E_PROTO_MISMATCH) a few times.
fn open(serial: u32) -> YubiKey {
    let mut last = None;
    for _ in 0..20 {
        match YubiKey::open_by_serial(Serial::from(serial)) {
            Ok(yk) => return yk,
            Err(e) => last = Some(e),
        }
        thread::sleep(Duration::from_millis(100));
    }
    panic!("cannot open card {serial}: {last:?}");
}

fn verifying_key(spki: &SubjectPublicKeyInfoOwned) -> VerifyingKey {
    VerifyingKey::from_sec1_bytes(spki.subject_public_key.raw_bytes()).unwrap()
}

fn verify_issued(cert: &X509, issuer: &X509) {
    assert_eq!(
        cert.tbs_certificate().issuer(),
        issuer.tbs_certificate().subject()
    );
    let key = verifying_key(issuer.tbs_certificate().subject_public_key_info());
    let sig = Signature::from_der(cert.signature().raw_bytes()).unwrap();
    use p256::ecdsa::signature::Verifier;
    key.verify(&cert.tbs_certificate().to_der().unwrap(), &sig)
        .expect("issuer signature");
}

fn sign_and_check(yk: &mut YubiKey, key: &VerifyingKey, msg: &[u8]) -> yubikey::Result<()> {
    let digest = Sha256::digest(msg);
    let der = piv::sign_data(yk, &digest, AlgorithmId::EccP256, SlotId::Signature)?;
    let sig = Signature::from_der(&der).expect("DER signature");
    key.verify_prehash(&digest, &sig)
        .expect("signature verifies with p256");
    Ok(())
}

/// The flow rootkeeper needs, on a pre-5.7 card (3DES management key).
#[test]
#[ignore = "needs hsm-tests/piv/pcscd-ns (emulated cards behind a private pcscd); hsm-tests/run runs it"]
fn yubikey_crate_flow_fw_5_4_3_and_yubico_tools() {
    require_pcscd_ns();
    let _guard = SERIAL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let card = VirtualCard::attach(0, 12345678, (5, 4, 3)).unwrap();
    let mut yk = open(12345678);
    assert_eq!(u32::from(yk.serial()), 12345678);
    assert_eq!(
        (yk.version().major, yk.version().minor, yk.version().patch),
        (5, 4, 3)
    );
    assert_eq!(yk.name(), "Virtual PCD 00 00");

    assert_eq!(yk.get_pin_retries().unwrap(), 3);
    assert!(yk.verify_pin(b"654321").is_err());
    assert_eq!(yk.get_pin_retries().unwrap(), 2);
    yk.verify_pin(b"123456").unwrap();
    assert_eq!(yk.get_pin_retries().unwrap(), 3);

    let mgm = MgmKey::get_default(&yk).unwrap();
    assert_eq!(mgm.algorithm_id(), MgmAlgorithmId::ThreeDes);
    let wrong = MgmKey::from_bytes([9u8; 24], Some(MgmAlgorithmId::ThreeDes)).unwrap();
    assert!(yk.authenticate(&wrong).is_err());
    yk.authenticate(&mgm).unwrap();

    let spki = piv::generate(
        &mut yk,
        SlotId::Signature,
        AlgorithmId::EccP256,
        PinPolicy::Default,
        TouchPolicy::Default,
    )
    .unwrap();
    let key = verifying_key(&spki);
    yk.verify_pin(b"123456").unwrap();
    sign_and_check(&mut yk, &key, b"root metadata").unwrap();

    let meta = piv::metadata(&mut yk, SlotId::Signature).unwrap();
    assert_eq!(
        meta.algorithm,
        SlotAlgorithmId::Asymmetric(AlgorithmId::EccP256)
    );
    assert_eq!(meta.policy, Some((PinPolicy::Always, TouchPolicy::Never)));
    assert_eq!(meta.origin, Some(Origin::Generated));
    assert_eq!(meta.public.as_ref().map(verifying_key), Some(key));

    // Attestation: slot cert <- F9 cert (object 5FFF01) <- emulator CA.
    let slot_cert = X509::from_der(&piv::attest(&mut yk, SlotId::Signature).unwrap()).unwrap();
    let f9 = Certificate::read(&mut yk, SlotId::Attestation)
        .unwrap()
        .cert;
    verify_issued(&slot_cert, &f9);
    verify_issued(&f9, card.ca().certificate());
    assert_eq!(
        verifying_key(slot_cert.tbs_certificate().subject_public_key_info()),
        key
    );

    // A self-signed certificate in 9c, signed on the card (PIN policy ALWAYS: verify first).
    yk.verify_pin(b"123456").unwrap();
    let subject = Name::from_str("CN=rootkeeper emulator test").unwrap();
    let validity = Validity::from_now(Duration::from_secs(3600)).unwrap();
    let cert = Certificate::generate_self_signed::<_, p256::NistP256>(
        &mut yk,
        SlotId::Signature,
        SerialNumber::from(7u32),
        validity,
        subject,
        spki.clone(),
        |_| Ok(()),
    )
    .unwrap();
    verify_issued(&cert.cert, &cert.cert);
    assert_eq!(
        Certificate::read(&mut yk, SlotId::Signature).unwrap().cert,
        cert.cert
    );
    drop(yk);

    // The real Yubico tools see the same card, key and certificate.
    let out = Command::new("yubico-piv-tool")
        .args(["-r", "Virtual PCD 00 00", "-a", "status"])
        .output()
        .expect("yubico-piv-tool installed");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "yubico-piv-tool: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Serial Number:\t12345678"), "{text}");
    assert!(text.contains("Slot 9c:"), "{text}");
    assert!(text.contains("rootkeeper emulator test"), "{text}");

    let out = Command::new("ykman")
        .args(["--reader", "Virtual PCD 00 00", "piv", "info"])
        .output()
        .expect("ykman installed");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ykman: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("PIV version: 5.4.3"), "{text}");
    assert!(
        text.contains("Slot 9C") || text.contains("Slot 9c"),
        "{text}"
    );
    assert!(text.contains("rootkeeper emulator test"), "{text}");
    assert!(text.contains("ECCP256"), "{text}");
}

/// Firmware 5.7: AES-192 default management key, PIN policy ALWAYS, changing the key.
#[test]
#[ignore = "needs hsm-tests/piv/pcscd-ns (emulated cards behind a private pcscd); hsm-tests/run runs it"]
fn yubikey_crate_flow_fw_5_7_1() {
    require_pcscd_ns();
    let _guard = SERIAL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let _card = VirtualCard::attach(0, 20000001, (5, 7, 1)).unwrap();
    let mut yk = open(20000001);
    let meta = piv::metadata(
        &mut yk,
        SlotId::Management(piv::ManagementSlotId::Management),
    )
    .unwrap();
    assert_eq!(
        meta.algorithm,
        SlotAlgorithmId::Management(MgmAlgorithmId::Aes192)
    );
    assert_eq!(meta.default, Some(true));
    let mgm = MgmKey::get_default(&yk).unwrap();
    assert_eq!(mgm.algorithm_id(), MgmAlgorithmId::Aes192);
    yk.authenticate(&mgm).unwrap();

    let spki = piv::generate(
        &mut yk,
        SlotId::Signature,
        AlgorithmId::EccP256,
        PinPolicy::Always,
        TouchPolicy::Never,
    )
    .unwrap();
    let key = verifying_key(&spki);
    assert!(
        sign_and_check(&mut yk, &key, b"no pin").is_err(),
        "PIN required"
    );
    yk.verify_pin(b"123456").unwrap();
    sign_and_check(&mut yk, &key, b"first").unwrap();
    assert!(
        sign_and_check(&mut yk, &key, b"second").is_err(),
        "ALWAYS: PIN used up"
    );
    yk.verify_pin(b"123456").unwrap();
    sign_and_check(&mut yk, &key, b"third").unwrap();

    let new_key = MgmKey::from_bytes([0x24u8; 32], Some(MgmAlgorithmId::Aes256)).unwrap();
    yk.authenticate(&mgm).unwrap();
    new_key.set_manual(&mut yk, false).unwrap();
    assert!(yk.authenticate(&mgm).is_err());
    yk.authenticate(&new_key).unwrap();
    let meta = piv::metadata(
        &mut yk,
        SlotId::Management(piv::ManagementSlotId::Management),
    )
    .unwrap();
    assert_eq!(
        meta.algorithm,
        SlotAlgorithmId::Management(MgmAlgorithmId::Aes256)
    );
    assert_eq!(meta.default, Some(false));
}

/// Two emulated cards in the two vpcd readers, told apart by serial.
#[test]
#[ignore = "needs hsm-tests/piv/pcscd-ns (emulated cards behind a private pcscd); hsm-tests/run runs it"]
fn two_cards_at_once() {
    require_pcscd_ns();
    let _guard = SERIAL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let a = VirtualCard::attach(0, 30000001, (5, 4, 3)).unwrap();
    let b = VirtualCard::attach(1, 30000002, (5, 7, 1)).unwrap();
    assert_eq!(
        (a.reader_name(), b.reader_name()),
        ("Virtual PCD 00 00", "Virtual PCD 00 01")
    );
    assert!(
        YubiKey::open().is_err(),
        "open() refuses to pick one of several cards"
    );
    let yk_a = open(30000001);
    assert_eq!(yk_a.name(), "Virtual PCD 00 00");
    assert_eq!(yk_a.version().minor, 4);
    drop(yk_a);
    let yk_b = open(30000002);
    assert_eq!(yk_b.name(), "Virtual PCD 00 01");
    assert_eq!(yk_b.version().minor, 7);
    drop(yk_b);
    a.detach().unwrap();
    // With one card left, plain open() finds it.
    assert_eq!(u32::from(YubiKey::open().unwrap().serial()), 30000002);
}

/// The in-process backend exposes the card, e.g. the touch counter.
#[test]
#[ignore = "needs hsm-tests/piv/pcscd-ns (emulated cards behind a private pcscd); hsm-tests/run runs it"]
fn in_process_card_counts_touches() {
    require_pcscd_ns();
    let _guard = SERIAL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let card = VirtualCard::attach_in_process(CardOptions::new(0, 40000001, (5, 4, 3))).unwrap();
    let mut yk = open(40000001);
    yk.authenticate(&MgmKey::get_default(&yk).unwrap()).unwrap();
    let spki = piv::generate(
        &mut yk,
        SlotId::Signature,
        AlgorithmId::EccP256,
        PinPolicy::Never,
        TouchPolicy::Always,
    )
    .unwrap();
    assert_eq!(card.card().unwrap().touch_count(), 0);
    sign_and_check(&mut yk, &verifying_key(&spki), b"touch me").unwrap();
    assert_eq!(card.card().unwrap().touch_count(), 1);
}

/// `--state FILE` keeps keys across emulator restarts (unplug and replug).
#[test]
#[ignore = "needs hsm-tests/piv/pcscd-ns (emulated cards behind a private pcscd); hsm-tests/run runs it"]
fn state_file_survives_restart() {
    require_pcscd_ns();
    let _guard = SERIAL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let path = std::env::temp_dir().join(format!("piv-emu-state-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let mut options = CardOptions::new(0, 50000001, (5, 4, 3));
    options.state_file = Some(path.clone());

    let card = VirtualCard::spawn(options.clone()).unwrap();
    let mut yk = open(50000001);
    yk.authenticate(&MgmKey::get_default(&yk).unwrap()).unwrap();
    let spki = piv::generate(
        &mut yk,
        SlotId::Signature,
        AlgorithmId::EccP256,
        PinPolicy::Once,
        TouchPolicy::Never,
    )
    .unwrap();
    yk.change_pin(b"123456", b"24682468").unwrap();
    drop(yk);
    card.detach().unwrap();

    let _card = VirtualCard::spawn(options).unwrap();
    let mut yk = open(50000001);
    assert!(yk.verify_pin(b"123456").is_err());
    yk.verify_pin(b"24682468").unwrap();
    sign_and_check(&mut yk, &verifying_key(&spki), b"after replug").unwrap();
    drop(yk);
    let _ = std::fs::remove_file(&path);
}
