//! Unit tests of the pure card core (`Card::handle`), no PC/SC involved.

use aes::cipher::{BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use p256::ecdsa::{
    Signature, SigningKey, VerifyingKey,
    signature::{Verifier, hazmat::PrehashVerifier},
};
use piv_emu::{Card, EmulatorCa, card::*};
use sha2::{Digest, Sha256};
use x509_cert::{Certificate, der::Decode, der::Encode};

const FW_OLD: (u8, u8, u8) = (5, 4, 3);
const FW_NEW: (u8, u8, u8) = (5, 7, 1);
const SERIAL: u32 = 12345678;

/// Sends an APDU (hex with spaces allowed); returns (data, SW) after following 61xx.
fn tx(card: &mut Card, apdu: &[u8]) -> (Vec<u8>, u16) {
    let mut out = Vec::new();
    let mut rsp = card.handle(apdu);
    loop {
        let sw = u16::from_be_bytes([rsp[rsp.len() - 2], rsp[rsp.len() - 1]]);
        out.extend_from_slice(&rsp[..rsp.len() - 2]);
        if sw >> 8 != 0x61 {
            return (out, sw);
        }
        rsp = card.handle(&[0x00, 0xC0, 0x00, 0x00, 0x00]);
    }
}

fn sw(card: &mut Card, apdu: &[u8]) -> u16 {
    tx(card, apdu).1
}

fn apdu(ins: u8, p1: u8, p2: u8, data: &[u8]) -> Vec<u8> {
    let mut v = vec![0x00, ins, p1, p2, data.len() as u8];
    v.extend_from_slice(data);
    v
}

fn new_card(fw: (u8, u8, u8)) -> (Card, EmulatorCa) {
    let ca = EmulatorCa::test_default();
    let mut card = Card::new(SERIAL, fw, &ca);
    assert_eq!(
        sw(&mut card, &apdu(0xA4, 0x04, 0x00, &[0xA0, 0, 0, 3, 8])),
        0x9000
    );
    (card, ca)
}

fn padded(pin: &[u8]) -> Vec<u8> {
    let mut v = pin.to_vec();
    v.resize(8, 0xFF);
    v
}

fn verify_pin(card: &mut Card, pin: &[u8]) -> u16 {
    sw(card, &apdu(0x20, 0x00, 0x80, &padded(pin)))
}

fn crypt(alg: u8, key: &[u8], block: &[u8], enc: bool) -> Vec<u8> {
    fn run<C: KeyInit + BlockCipherEncrypt + BlockCipherDecrypt>(
        key: &[u8],
        block: &[u8],
        enc: bool,
    ) -> Vec<u8> {
        let c = C::new_from_slice(key).unwrap();
        let mut b = aes::cipher::Block::<C>::try_from(block).unwrap();
        if enc {
            c.encrypt_block(&mut b)
        } else {
            c.decrypt_block(&mut b)
        }
        b.to_vec()
    }
    match alg {
        MGM_3DES => run::<des::TdesEde3>(key, block, enc),
        MGM_AES128 => run::<aes::Aes128>(key, block, enc),
        MGM_AES192 => run::<aes::Aes192>(key, block, enc),
        MGM_AES256 => run::<aes::Aes256>(key, block, enc),
        _ => unreachable!(),
    }
}

/// Host side of mutual authentication, with the crate's fixed offsets.
fn mgm_auth(card: &mut Card, alg: u8, key: &[u8]) -> u16 {
    let (data, code) = tx(card, &apdu(0x87, alg, 0x9B, &[0x7C, 0x02, 0x80, 0x00]));
    if code != 0x9000 {
        return code;
    }
    let bs = if alg == MGM_3DES { 8 } else { 16 };
    assert_eq!(data[..4], [0x7C, bs as u8 + 2, 0x80, bs as u8]);
    let witness = crypt(alg, key, &data[4..], false);
    let challenge = vec![0x5A; bs];
    let mut body = vec![0x7C, (4 + 2 * bs) as u8, 0x80, bs as u8];
    body.extend(&witness);
    body.extend([0x81, bs as u8]);
    body.extend(&challenge);
    let (data, code) = tx(card, &apdu(0x87, alg, 0x9B, &body));
    if code == 0x9000 {
        assert_eq!(data[..4], [0x7C, bs as u8 + 2, 0x82, bs as u8]);
        assert_eq!(
            data[4..],
            crypt(alg, key, &challenge, true),
            "card proved the key"
        );
    }
    code
}

fn default_auth(card: &mut Card, fw: (u8, u8, u8)) {
    assert_eq!(
        mgm_auth(card, default_mgm_alg(fw), &DEFAULT_MGM_KEY),
        0x9000
    );
}

fn generate(card: &mut Card, slot: u8, pin: Option<u8>, touch: Option<u8>) -> (Vec<u8>, u16) {
    let mut inner = vec![0x80, 0x01, ALG_P256];
    if let Some(p) = pin {
        inner.extend([0xAA, 0x01, p]);
    }
    if let Some(t) = touch {
        inner.extend([0xAB, 0x01, t]);
    }
    let mut body = vec![0xAC, inner.len() as u8];
    body.extend(inner);
    tx(card, &apdu(0x47, 0x00, slot, &body))
}

fn generate_key(card: &mut Card, slot: u8, pin: Option<u8>, touch: Option<u8>) -> VerifyingKey {
    let (data, code) = generate(card, slot, pin, touch);
    assert_eq!(code, 0x9000);
    assert_eq!(data[..5], [0x7F, 0x49, 0x43, 0x86, 0x41]);
    VerifyingKey::from_sec1_bytes(&data[5..]).unwrap()
}

fn sign(card: &mut Card, slot: u8, digest: &[u8]) -> (Vec<u8>, u16) {
    let mut body = vec![
        0x7C,
        (digest.len() + 4) as u8,
        0x82,
        0x00,
        0x81,
        digest.len() as u8,
    ];
    body.extend_from_slice(digest);
    tx(card, &apdu(0x87, ALG_P256, slot, &body))
}

fn signature_of(rsp: &[u8]) -> Signature {
    assert_eq!(rsp[0], 0x7C);
    assert_eq!(rsp[2], 0x82);
    assert_eq!(rsp[1] as usize, rsp.len() - 2);
    Signature::from_der(&rsp[4..]).unwrap()
}

#[test]
fn select_version_serial_and_unknown_applets() {
    let (mut card, _) = new_card(FW_OLD);
    assert_eq!(tx(&mut card, &[0, 0xFD, 0, 0, 0]), (vec![5, 4, 3], 0x9000));
    assert_eq!(
        tx(&mut card, &[0, 0xF8, 0, 0, 0]),
        (SERIAL.to_be_bytes().to_vec(), 0x9000)
    );
    // Long AID (OpenSC style) matches by prefix.
    let long = [0xA0, 0, 0, 3, 8, 0, 0, 0x10, 0];
    assert_eq!(sw(&mut card, &apdu(0xA4, 4, 0, &long)), 0x9000);
    assert_eq!(
        sw(
            &mut card,
            &apdu(0xA4, 4, 0, &[0xA0, 0, 0, 5, 0x27, 0x20, 1])
        ),
        0x6A82
    );
    assert_eq!(sw(&mut card, &[0, 0x99, 0, 0, 0]), 0x6D00);
    assert_eq!(sw(&mut card, &[0, 0xFD]), 0x6700);
}

#[test]
fn pin_retries_count_down_and_block() {
    let (mut card, _) = new_card(FW_OLD);
    assert_eq!(sw(&mut card, &[0, 0x20, 0, 0x80, 0]), 0x63C3);
    assert_eq!(verify_pin(&mut card, b"000000"), 0x63C2);
    assert_eq!(verify_pin(&mut card, b"123456"), 0x9000);
    assert_eq!(sw(&mut card, &[0, 0x20, 0, 0x80, 0]), 0x9000, "verified");
    assert_eq!(
        verify_pin(&mut card, b"000000"),
        0x63C2,
        "counter was reset by success"
    );
    assert!(!card.pin_verified());
    assert_eq!(verify_pin(&mut card, b"000000"), 0x63C1);
    assert_eq!(verify_pin(&mut card, b"000000"), 0x6983);
    assert_eq!(sw(&mut card, &[0, 0x20, 0, 0x80, 0]), 0x6983);
    assert_eq!(
        verify_pin(&mut card, b"123456"),
        0x6983,
        "blocked even with the right PIN"
    );
    assert_eq!(verify_pin(&mut card, b"12"), 0x6983);
}

#[test]
fn puk_unblocks_pin_and_blocks_itself() {
    let (mut card, _) = new_card(FW_OLD);
    for _ in 0..3 {
        verify_pin(&mut card, b"999999");
    }
    assert_eq!(verify_pin(&mut card, b"123456"), 0x6983);
    let mut body = padded(b"00000000");
    body.extend(padded(b"654321"));
    assert_eq!(sw(&mut card, &apdu(0x2C, 0, 0x80, &body)), 0x63C2);
    let mut body = padded(DEFAULT_PUK);
    body.extend(padded(b"654321"));
    assert_eq!(sw(&mut card, &apdu(0x2C, 0, 0x80, &body)), 0x9000);
    assert_eq!(verify_pin(&mut card, b"654321"), 0x9000);
    assert_eq!(card.state().puk_left, 3);
    // Change PIN and PUK; a wrong old value costs a try; too-short new values are refused.
    let mut change = padded(b"654321");
    change.extend(padded(b"12345"));
    assert_eq!(sw(&mut card, &apdu(0x24, 0, 0x80, &change)), 0x6A80);
    let mut change = padded(b"654321");
    change.extend(padded(b"11112222"));
    assert_eq!(sw(&mut card, &apdu(0x24, 0, 0x80, &change)), 0x9000);
    assert_eq!(verify_pin(&mut card, b"11112222"), 0x9000);
    let mut wrong = padded(b"00000000");
    wrong.extend(padded(b"87654321"));
    assert_eq!(sw(&mut card, &apdu(0x24, 0, 0x81, &wrong)), 0x63C2);
    assert_eq!(sw(&mut card, &apdu(0x24, 0, 0x81, &wrong)), 0x63C1);
    assert_eq!(sw(&mut card, &apdu(0x24, 0, 0x81, &wrong)), 0x6983);
    assert_eq!(
        sw(&mut card, &apdu(0x2C, 0, 0x80, &body)),
        0x6983,
        "PUK blocked"
    );
}

#[test]
fn management_key_3des_right_and_wrong() {
    let (mut card, _) = new_card(FW_OLD);
    assert_eq!(mgm_auth(&mut card, MGM_3DES, &[9; 24]), 0x6982);
    assert!(!card.mgm_authenticated());
    assert_eq!(
        mgm_auth(&mut card, MGM_AES192, &DEFAULT_MGM_KEY),
        0x6A80,
        "wrong algorithm"
    );
    assert_eq!(mgm_auth(&mut card, MGM_3DES, &DEFAULT_MGM_KEY), 0x9000);
    assert!(card.mgm_authenticated());
    // SELECT drops it, as does a card reset.
    assert_eq!(
        sw(&mut card, &apdu(0xA4, 4, 0, &[0xA0, 0, 0, 3, 8])),
        0x9000
    );
    assert!(!card.mgm_authenticated());
    assert_eq!(mgm_auth(&mut card, MGM_3DES, &DEFAULT_MGM_KEY), 0x9000);
    assert_eq!(verify_pin(&mut card, b"123456"), 0x9000);
    card.power_cycle();
    assert!(!card.mgm_authenticated() && !card.pin_verified());
    // Step 2 without step 1 is refused.
    let mut body = vec![0x7C, 0x14, 0x80, 0x08];
    body.extend([0; 8]);
    body.extend([0x81, 0x08]);
    body.extend([0; 8]);
    assert_eq!(sw(&mut card, &apdu(0x87, MGM_3DES, 0x9B, &body)), 0x6A80);
}

#[test]
fn management_key_aes192_default_on_5_7_and_change_to_aes256() {
    let (mut card, _) = new_card(FW_NEW);
    assert_eq!(mgm_auth(&mut card, MGM_3DES, &DEFAULT_MGM_KEY), 0x6A80);
    assert_eq!(mgm_auth(&mut card, MGM_AES192, &[7; 24]), 0x6982);
    assert_eq!(mgm_auth(&mut card, MGM_AES192, &DEFAULT_MGM_KEY), 0x9000);
    let new_key = [0x42; 32];
    let mut body = vec![MGM_AES256, 0x9B, 32];
    body.extend(new_key);
    assert_eq!(sw(&mut card, &apdu(0xFF, 0xFF, 0xFF, &body)), 0x9000);
    assert_eq!(mgm_auth(&mut card, MGM_AES192, &DEFAULT_MGM_KEY), 0x6A80);
    assert_eq!(mgm_auth(&mut card, MGM_AES256, &[0x41; 32]), 0x6982);
    assert_eq!(mgm_auth(&mut card, MGM_AES256, &new_key), 0x9000);
    // Metadata reports the new algorithm and that it is no longer the default.
    let (meta, code) = tx(&mut card, &[0, 0xF7, 0, 0x9B, 0]);
    assert_eq!(code, 0x9000);
    assert_eq!(
        meta,
        [
            0x01, 0x01, MGM_AES256, 0x02, 0x02, 0x00, 0x01, 0x05, 0x01, 0x00
        ]
    );
    // Touch-required management key counts touches.
    let mut body = vec![MGM_AES128, 0x9B, 16];
    body.extend([0x11; 16]);
    assert_eq!(sw(&mut card, &apdu(0xFF, 0xFF, 0xFE, &body)), 0x9000);
    assert_eq!(card.touch_count(), 0);
    assert_eq!(mgm_auth(&mut card, MGM_AES128, &[0x11; 16]), 0x9000);
    assert_eq!(card.touch_count(), 1);
}

#[test]
fn single_auth_challenge_response() {
    let (mut card, _) = new_card(FW_OLD);
    let (data, code) = tx(
        &mut card,
        &apdu(0x87, MGM_3DES, 0x9B, &[0x7C, 0x02, 0x81, 0x00]),
    );
    assert_eq!(code, 0x9000);
    let mut body = vec![0x7C, 0x0A, 0x82, 0x08];
    body.extend(crypt(MGM_3DES, &DEFAULT_MGM_KEY, &data[4..], true));
    assert_eq!(sw(&mut card, &apdu(0x87, MGM_3DES, 0x9B, &body)), 0x9000);
    assert!(card.mgm_authenticated());
}

#[test]
fn generate_requires_management_key_and_valid_input() {
    let (mut card, _) = new_card(FW_OLD);
    assert_eq!(generate(&mut card, 0x9A, None, None).1, 0x6982);
    default_auth(&mut card, FW_OLD);
    assert_eq!(
        generate(&mut card, 0x9B, None, None).1,
        0x6B00,
        "not a key slot"
    );
    assert_eq!(
        generate(&mut card, 0x9A, Some(9), None).1,
        0x6A80,
        "bad PIN policy"
    );
    let body = [0xAC, 0x03, 0x80, 0x01, 0x07]; // RSA-2048: not emulated
    assert_eq!(sw(&mut card, &apdu(0x47, 0, 0x9A, &body)), 0x6A80);
}

#[test]
fn generate_sign_verifies_and_pin_policies_apply() {
    let (mut card, _) = new_card(FW_OLD);
    default_auth(&mut card, FW_OLD);
    let k9a = generate_key(&mut card, 0x9A, None, None); // default ONCE
    let k9c = generate_key(&mut card, 0x9C, None, None); // default ALWAYS
    let k9e = generate_key(&mut card, 0x9E, None, None); // default NEVER
    let digest = Sha256::digest(b"hello rootkeeper");

    assert_eq!(sign(&mut card, 0x9A, &digest).1, 0x6982, "PIN required");
    let (rsp, code) = sign(&mut card, 0x9E, &digest);
    assert_eq!(code, 0x9000, "9E needs no PIN");
    k9e.verify_prehash(&digest, &signature_of(&rsp)).unwrap();

    assert_eq!(verify_pin(&mut card, b"123456"), 0x9000);
    let (rsp, code) = sign(&mut card, 0x9A, &digest);
    assert_eq!(code, 0x9000);
    let sig = signature_of(&rsp);
    k9a.verify_prehash(&digest, &sig).unwrap();
    k9a.verify(b"hello rootkeeper", &sig).unwrap();
    assert!(
        k9c.verify_prehash(&digest, &sig).is_err(),
        "signature is slot-specific"
    );
    assert_eq!(
        sign(&mut card, 0x9A, &digest).1,
        0x9000,
        "ONCE: PIN stays verified"
    );

    // ALWAYS: one operation per VERIFY.
    let (rsp, code) = sign(&mut card, 0x9C, &digest);
    assert_eq!(code, 0x9000);
    k9c.verify_prehash(&digest, &signature_of(&rsp)).unwrap();
    assert_eq!(sign(&mut card, 0x9C, &digest).1, 0x6982);
    assert_eq!(verify_pin(&mut card, b"123456"), 0x9000);
    assert_eq!(sign(&mut card, 0x9C, &digest).1, 0x9000);

    // Short digests are left-padded; long ones and wrong algorithms are refused.
    assert_eq!(verify_pin(&mut card, b"123456"), 0x9000);
    let (rsp, code) = sign(&mut card, 0x9A, &digest[..20]);
    assert_eq!(code, 0x9000);
    let mut full = [0u8; 32];
    full[12..].copy_from_slice(&digest[..20]);
    k9a.verify_prehash(&full, &signature_of(&rsp)).unwrap();
    assert_eq!(sign(&mut card, 0x9A, &[1; 33]).1, 0x6A80);
    assert_eq!(sign(&mut card, 0x9D, &digest).1, 0x6A88, "empty slot");
    assert_eq!(card.touch_count(), 0);
}

#[test]
fn touch_policy_is_recorded() {
    let (mut card, _) = new_card(FW_OLD);
    default_auth(&mut card, FW_OLD);
    generate_key(
        &mut card,
        0x9D,
        Some(PIN_POLICY_NEVER),
        Some(TOUCH_POLICY_ALWAYS),
    );
    generate_key(
        &mut card,
        0x9E,
        Some(PIN_POLICY_NEVER),
        Some(TOUCH_POLICY_NEVER),
    );
    let digest = [7u8; 32];
    assert_eq!(sign(&mut card, 0x9E, &digest).1, 0x9000);
    assert_eq!(card.touch_count(), 0);
    assert_eq!(sign(&mut card, 0x9D, &digest).1, 0x9000);
    assert_eq!(sign(&mut card, 0x9D, &digest).1, 0x9000);
    assert_eq!(card.touch_count(), 2);
}

#[test]
fn data_objects_with_chaining_in_and_out() {
    let (mut card, _) = new_card(FW_OLD);
    let value: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
    let mut body = vec![0x5C, 0x03, 0x5F, 0xC1, 0x05, 0x53, 0x82, 0x03, 0xE8];
    body.extend(&value);
    // Chained PUT DATA, 255-byte pieces, CLA 10 for all but the last.
    let put = |card: &mut Card| {
        let pieces: Vec<&[u8]> = body.chunks(255).collect();
        let mut last = 0;
        for (i, piece) in pieces.iter().enumerate() {
            let mut a = apdu(0xDB, 0x3F, 0xFF, piece);
            if i + 1 < pieces.len() {
                a[0] = 0x10;
            }
            last = sw(card, &a);
        }
        last
    };
    assert_eq!(put(&mut card), 0x6982, "PUT DATA needs the management key");
    default_auth(&mut card, FW_OLD);
    assert_eq!(put(&mut card), 0x9000);

    let get = apdu(0xCB, 0x3F, 0xFF, &[0x5C, 0x03, 0x5F, 0xC1, 0x05]);
    let first = card.handle(&get);
    assert_eq!(first.len(), 258, "short responses carry at most 256 bytes");
    assert_eq!(first[256], 0x61);
    let (data, code) = tx(&mut card, &get);
    assert_eq!(code, 0x9000);
    assert_eq!(data[..4], [0x53, 0x82, 0x03, 0xE8]);
    assert_eq!(data[4..], value[..]);

    // Extended APDU (ykman style) gets everything at once.
    let mut ext = vec![
        0x00, 0xCB, 0x3F, 0xFF, 0x00, 0x00, 0x05, 0x5C, 0x03, 0x5F, 0xC1, 0x05,
    ];
    let rsp = card.handle(&ext);
    assert_eq!(rsp.len(), 1004 + 2);
    assert_eq!(rsp[rsp.len() - 2..], [0x90, 0x00]);
    ext[9..12].copy_from_slice(&[0x5F, 0xC1, 0x0A]);
    assert_eq!(
        u16::from_be_bytes(card.handle(&ext)[..2].try_into().unwrap()),
        0x6A82
    );

    // Discovery object; deletion with an empty value; PIN-protected printed object.
    let (disco, _) = tx(&mut card, &apdu(0xCB, 0x3F, 0xFF, &[0x5C, 0x01, 0x7E]));
    assert_eq!(disco[..2], [0x7E, 0x12]);
    assert_eq!(
        sw(
            &mut card,
            &apdu(
                0xDB,
                0x3F,
                0xFF,
                &[0x5C, 0x03, 0x5F, 0xC1, 0x05, 0x53, 0x00]
            )
        ),
        0x9000
    );
    assert_eq!(tx(&mut card, &get).1, 0x6A82);
    let printed = [0x5C, 0x03, 0x5F, 0xC1, 0x09, 0x53, 0x03, 0x88, 0x01, 0x00];
    assert_eq!(sw(&mut card, &apdu(0xDB, 0x3F, 0xFF, &printed)), 0x9000);
    let get_printed = apdu(0xCB, 0x3F, 0xFF, &[0x5C, 0x03, 0x5F, 0xC1, 0x09]);
    assert_eq!(tx(&mut card, &get_printed).1, 0x6982);
    assert_eq!(verify_pin(&mut card, b"123456"), 0x9000);
    assert_eq!(
        tx(&mut card, &get_printed),
        (vec![0x53, 0x03, 0x88, 0x01, 0x00], 0x9000)
    );
}

#[test]
fn metadata_for_pin_puk_and_slots() {
    let (mut card, _) = new_card(FW_OLD);
    assert_eq!(
        tx(&mut card, &[0, 0xF7, 0, 0x80, 0]),
        (vec![1, 1, 0xFF, 5, 1, 1, 6, 2, 3, 3], 0x9000)
    );
    verify_pin(&mut card, b"000000");
    assert_eq!(tx(&mut card, &[0, 0xF7, 0, 0x80, 0]).0[6..], [6, 2, 3, 2]);
    assert_eq!(
        tx(&mut card, &[0, 0xF7, 0, 0x81, 0]).0,
        [1, 1, 0xFF, 5, 1, 1, 6, 2, 3, 3]
    );
    assert_eq!(
        tx(&mut card, &[0, 0xF7, 0, 0x9B, 0]).0,
        [1, 1, MGM_3DES, 2, 2, 0, 1, 5, 1, 1]
    );
    assert_eq!(sw(&mut card, &[0, 0xF7, 0, 0x9A, 0]), 0x6A88);
    default_auth(&mut card, FW_OLD);
    let key = generate_key(&mut card, 0x9C, None, Some(TOUCH_POLICY_CACHED));
    let (meta, code) = tx(&mut card, &[0, 0xF7, 0, 0x9C, 0]);
    assert_eq!(code, 0x9000);
    assert_eq!(
        meta[..11],
        [
            1,
            1,
            ALG_P256,
            2,
            2,
            PIN_POLICY_ALWAYS,
            TOUCH_POLICY_CACHED,
            3,
            1,
            ORIGIN_GENERATED,
            4
        ]
    );
    assert_eq!(meta[11..14], [0x43, 0x86, 0x41]);
    assert_eq!(meta[14..], key.to_sec1_point(false).as_bytes()[..]);
    // Before 5.3, GET METADATA does not exist.
    let mut old = Card::new(1, (5, 2, 7), &EmulatorCa::test_default());
    assert_eq!(sw(&mut old, &[0, 0xF7, 0, 0x80, 0]), 0x6D00);
}

fn verify_issued(cert: &Certificate, issuer: &Certificate) {
    assert_eq!(
        cert.tbs_certificate().issuer(),
        issuer.tbs_certificate().subject()
    );
    let spki = issuer.tbs_certificate().subject_public_key_info();
    let key = VerifyingKey::from_sec1_bytes(spki.subject_public_key.raw_bytes()).unwrap();
    let sig = Signature::from_der(cert.signature().raw_bytes()).unwrap();
    key.verify(&cert.tbs_certificate().to_der().unwrap(), &sig)
        .expect("signature by issuer");
}

fn extension(cert: &Certificate, oid: &str) -> Vec<u8> {
    let oid = x509_cert::der::asn1::ObjectIdentifier::new_unwrap(oid);
    let exts = cert.tbs_certificate().extensions().unwrap();
    exts.iter()
        .find(|e| e.extn_id == oid)
        .unwrap()
        .extn_value
        .as_bytes()
        .to_vec()
}

fn stored_f9_cert(card: &mut Card) -> Certificate {
    let (obj, code) = tx(
        card,
        &apdu(0xCB, 0x3F, 0xFF, &[0x5C, 0x03, 0x5F, 0xFF, 0x01]),
    );
    assert_eq!(code, 0x9000);
    // 53 82 LL LL 70 82 LL LL <cert> 71 01 00 FE 00
    assert_eq!((obj[0], obj[4]), (0x53, 0x70));
    let len = u16::from_be_bytes([obj[6], obj[7]]) as usize;
    Certificate::from_der(&obj[8..8 + len]).unwrap()
}

#[test]
fn attestation_chains_to_the_emulator_ca() {
    let (mut card, ca) = new_card(FW_OLD);
    default_auth(&mut card, FW_OLD);
    let key = generate_key(
        &mut card,
        0x9C,
        Some(PIN_POLICY_ONCE),
        Some(TOUCH_POLICY_ALWAYS),
    );
    let (der, code) = tx(&mut card, &[0, 0xF9, 0x9C, 0, 0]);
    assert_eq!(code, 0x9000);
    let slot_cert = Certificate::from_der(&der).unwrap();
    let f9_cert = stored_f9_cert(&mut card);
    verify_issued(&slot_cert, &f9_cert);
    verify_issued(&f9_cert, ca.certificate());
    verify_issued(ca.certificate(), ca.certificate());
    let spki = slot_cert.tbs_certificate().subject_public_key_info();
    assert_eq!(
        spki.subject_public_key.raw_bytes(),
        key.to_sec1_point(false).as_bytes()
    );
    assert_eq!(extension(&slot_cert, "1.3.6.1.4.1.41482.3.3"), [5, 4, 3]);
    assert_eq!(
        extension(&slot_cert, "1.3.6.1.4.1.41482.3.7"),
        [0x02, 0x04, 0x00, 0xBC, 0x61, 0x4E]
    );
    assert_eq!(
        extension(&slot_cert, "1.3.6.1.4.1.41482.3.8"),
        [PIN_POLICY_ONCE, TOUCH_POLICY_ALWAYS]
    );
    assert_eq!(extension(&slot_cert, "1.3.6.1.4.1.41482.3.9"), [1]);
    assert!(
        slot_cert
            .tbs_certificate()
            .subject()
            .to_string()
            .contains("YubiKey PIV Attestation 9c")
    );
    // A second card from another CA does not chain to this one.
    let other = EmulatorCa::from_seed(b"another CA");
    assert_ne!(other.certificate_der(), ca.certificate_der());
    assert_eq!(
        EmulatorCa::test_default().certificate_der(),
        ca.certificate_der(),
        "deterministic"
    );
    assert_eq!(sw(&mut card, &[0, 0xF9, 0x9A, 0, 0]), 0x6A88, "empty slot");
}

#[test]
fn imported_keys_sign_but_cannot_be_attested() {
    let (mut card, _) = new_card(FW_OLD);
    let sk = SigningKey::from_slice(&[0x11; 32]).unwrap();
    let mut body = vec![0x06, 0x20];
    body.extend(sk.to_bytes());
    body.extend([0xAA, 0x01, PIN_POLICY_NEVER, 0xAB, 0x01, TOUCH_POLICY_NEVER]);
    assert_eq!(sw(&mut card, &apdu(0xFE, ALG_P256, 0x82, &body)), 0x6982);
    default_auth(&mut card, FW_OLD);
    assert_eq!(sw(&mut card, &apdu(0xFE, ALG_P256, 0x82, &body)), 0x9000);
    assert_eq!(
        tx(&mut card, &[0, 0xF7, 0, 0x82, 0]).0[7..10],
        [3, 1, ORIGIN_IMPORTED]
    );
    let digest = [3u8; 32];
    let (rsp, code) = sign(&mut card, 0x82, &digest);
    assert_eq!(code, 0x9000);
    sk.verifying_key()
        .verify_prehash(&digest, &signature_of(&rsp))
        .unwrap();
    assert_eq!(sw(&mut card, &[0, 0xF9, 0x82, 0, 0]), 0x6A80);
    assert_eq!(
        sw(&mut card, &apdu(0xFE, ALG_P256, 0x83, &[0x06, 0x20, 0, 0])),
        0x6A80
    );
}

#[test]
fn set_pin_retries_needs_pin_and_management_key() {
    let (mut card, _) = new_card(FW_OLD);
    assert_eq!(sw(&mut card, &[0, 0xFA, 5, 6, 0]), 0x6982);
    default_auth(&mut card, FW_OLD);
    assert_eq!(sw(&mut card, &[0, 0xFA, 5, 6, 0]), 0x6982);
    assert_eq!(verify_pin(&mut card, b"123456"), 0x9000);
    assert_eq!(sw(&mut card, &[0, 0xFA, 5, 6, 0]), 0x9000);
    assert_eq!(tx(&mut card, &[0, 0xF7, 0, 0x80, 0]).0[6..], [6, 2, 5, 5]);
    assert_eq!(tx(&mut card, &[0, 0xF7, 0, 0x81, 0]).0[6..], [6, 2, 6, 6]);
    assert_eq!(verify_pin(&mut card, b"000000"), 0x63C4);
}

#[test]
fn reset_only_when_pin_and_puk_blocked_and_keeps_f9() {
    let (mut card, ca) = new_card(FW_OLD);
    default_auth(&mut card, FW_OLD);
    generate_key(&mut card, 0x9A, None, None);
    let mut new_mk = vec![MGM_3DES, 0x9B, 24];
    new_mk.extend([0x33; 24]);
    assert_eq!(sw(&mut card, &apdu(0xFF, 0xFF, 0xFF, &new_mk)), 0x9000);
    assert_eq!(sw(&mut card, &[0, 0xFB, 0, 0, 0]), 0x6985);
    for _ in 0..3 {
        verify_pin(&mut card, b"000000");
    }
    assert_eq!(
        sw(&mut card, &[0, 0xFB, 0, 0, 0]),
        0x6985,
        "PUK not blocked yet"
    );
    let mut wrong = padded(b"00000000");
    wrong.extend(padded(b"999999"));
    for _ in 0..3 {
        sw(&mut card, &apdu(0x2C, 0, 0x80, &wrong));
    }
    assert_eq!(sw(&mut card, &[0, 0xFB, 0, 0, 0]), 0x9000);
    assert_eq!(verify_pin(&mut card, DEFAULT_PIN), 0x9000);
    assert_eq!(sw(&mut card, &[0, 0xF7, 0, 0x9A, 0]), 0x6A88, "keys wiped");
    assert_eq!(
        mgm_auth(&mut card, MGM_3DES, &DEFAULT_MGM_KEY),
        0x9000,
        "MK back to default"
    );
    let f9 = stored_f9_cert(&mut card);
    verify_issued(&f9, ca.certificate());
    generate_key(&mut card, 0x9A, None, None);
    let (der, code) = tx(&mut card, &[0, 0xF9, 0x9A, 0, 0]);
    assert_eq!(code, 0x9000);
    verify_issued(&Certificate::from_der(&der).unwrap(), &f9);
}

#[test]
fn state_round_trips_through_json() {
    let (mut card, ca) = new_card(FW_NEW);
    default_auth(&mut card, FW_NEW);
    let key = generate_key(&mut card, 0x9D, None, None);
    let json = serde_json::to_string(card.state()).unwrap();
    let mut restored = Card::from_state(serde_json::from_str(&json).unwrap(), &ca);
    assert_eq!(
        sw(&mut restored, &apdu(0xA4, 4, 0, &[0xA0, 0, 0, 3, 8])),
        0x9000
    );
    assert!(!restored.mgm_authenticated());
    assert_eq!(verify_pin(&mut restored, b"123456"), 0x9000);
    let (rsp, code) = sign(&mut restored, 0x9D, &[9; 32]);
    assert_eq!(code, 0x9000);
    key.verify_prehash(&[9; 32], &signature_of(&rsp)).unwrap();
}
