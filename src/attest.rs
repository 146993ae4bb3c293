//! PIV attestation: proof from a YubiKey that a slot's key was generated on the device.
//!
//! The card signs an attestation certificate for the slot (INS F9) with its device key, whose
//! certificate sits in slot f9 and chains to Yubico: before firmware 5.7.4 directly to the
//! "Yubico PIV Root CA Serial 263751"; from 5.7.4 through "Yubico PIV Attestation B 1" and
//! "Yubico Attestation Intermediate B 1" (which the card does not carry) to "Yubico
//! Attestation Root 1". These certificates ship inside the binary (`src/attestation-roots/`).
//! Tests and private PKIs pass their own roots instead (`--attestation-roots FILE`), which then
//! replace Yubico's.
//!
//! [`verify`] checks every signature on the path (RSA PKCS#1 v1.5 with SHA-256/384/512, ECDSA
//! P-256/P-384), names that link, validity at the given time, and reads Yubico's extensions
//! (firmware, serial, PIN and touch policy, form factor).

use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;
use sha2::{Digest, Sha256, Sha384, Sha512};
use x509_cert::Certificate;
use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::der::{Decode, Encode};

use crate::backend::piv::{Firmware, PivPinPolicy, PivTouchPolicy};
use crate::error::{Error, Result};

const YUBICO_PIV_ROOT: &str = include_str!("attestation-roots/yubico-piv-root-ca-263751.pem");
const YUBICO_ATTESTATION_ROOT_1: &str =
    include_str!("attestation-roots/yubico-attestation-root-1.pem");
const YUBICO_INTERMEDIATES_B: &str = include_str!("attestation-roots/yubico-intermediates-b.pem");

/// SHA-256 fingerprints of the shipped Yubico certificates (from two public sources).
pub const YUBICO_FINGERPRINTS: [(&str, &str); 4] = [
    (
        "Yubico PIV Root CA Serial 263751",
        "63ece914e54dd87915f34033c85af4c0696ba1512f8add66ced738331207b546",
    ),
    (
        "Yubico Attestation Root 1",
        "62760c6a6ef91679f454c8902b80fd009825b3f25da90f1fbace2ec6586cd5a8",
    ),
    (
        "Yubico Attestation Intermediate B 1",
        "d4cc3f456fdaf4e7812a21aab1dfe9d8e27d24e2fd2d6f21c9940109f0daa754",
    ),
    (
        "Yubico PIV Attestation B 1",
        "2d55b7998f4e42569d6d8fa382b6dc77d1dacf07358b19701163892922b17052",
    ),
];

const OID_FIRMWARE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.3");
const OID_SERIAL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.7");
const OID_POLICY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.8");
const OID_FORM_FACTOR: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.9");

const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const ECDSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");
const RSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const RSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const RSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");

/// Certificates an attestation may chain to: anchors (trusted) and intermediates (used to
/// build the path, trusted only through an anchor).
#[derive(Debug, Clone)]
pub struct TrustRoots {
    anchors: Vec<Certificate>,
    intermediates: Vec<Certificate>,
    /// Where they came from, for reports.
    pub source: String,
    /// True for Yubico's roots shipped in the binary (no `--attestation-roots`).
    pub built_in: bool,
}

const BUILT_IN_SOURCE: &str = "Yubico's PIV attestation roots (built in)";

fn parse(der: &[u8], what: &str) -> Result<Certificate> {
    Certificate::from_der(der).map_err(|e| Error::Key {
        what: what.into(),
        reason: e.to_string(),
    })
}

fn self_signed(cert: &Certificate) -> bool {
    cert.tbs_certificate().issuer() == cert.tbs_certificate().subject()
        && check_signature(cert, cert).is_ok()
}

impl TrustRoots {
    /// Yubico's roots and intermediates, shipped in the binary.
    pub fn yubico() -> Result<TrustRoots> {
        let load = |pem: &str| -> Result<Vec<Certificate>> {
            crate::x509::pem_certificates_in_text(pem)?
                .iter()
                .map(|der| parse(der, "shipped Yubico certificate"))
                .collect()
        };
        let mut anchors = load(YUBICO_PIV_ROOT)?;
        anchors.extend(load(YUBICO_ATTESTATION_ROOT_1)?);
        Ok(TrustRoots {
            anchors,
            intermediates: load(YUBICO_INTERMEDIATES_B)?,
            source: BUILT_IN_SOURCE.into(),
            built_in: true,
        })
    }

    /// Roots from a PEM file: self-signed certificates become anchors, the others
    /// intermediates. Yubico's built-in roots are not added.
    pub fn from_pem(pem: &str, source: &str) -> Result<TrustRoots> {
        let mut anchors = Vec::new();
        let mut intermediates = Vec::new();
        for der in crate::x509::pem_certificates_in_text(pem)? {
            let cert = parse(&der, source)?;
            if self_signed(&cert) {
                anchors.push(cert);
            } else {
                intermediates.push(cert);
            }
        }
        if anchors.is_empty() {
            return Err(Error::Key {
                what: source.into(),
                reason: "holds no self-signed (root) certificate".into(),
            });
        }
        Ok(TrustRoots {
            anchors,
            intermediates,
            source: source.into(),
            built_in: false,
        })
    }

    /// SHA-256 fingerprints (hex) of the anchors.
    pub fn anchor_fingerprints(&self) -> Vec<String> {
        self.anchors.iter().map(fingerprint).collect()
    }
}

/// SHA-256 of a certificate's DER, lower-case hex.
pub fn fingerprint(cert: &Certificate) -> String {
    hex::encode(Sha256::digest(cert.to_der().unwrap_or_default()))
}

fn subject(cert: &Certificate) -> String {
    cert.tbs_certificate().subject().to_string()
}

/// Checks that `issuer`'s key signed `cert`.
fn check_signature(cert: &Certificate, issuer: &Certificate) -> std::result::Result<(), String> {
    use p256::pkcs8::DecodePublicKey;
    use signature::hazmat::PrehashVerifier;

    let tbs = cert.tbs_certificate().to_der().map_err(|e| e.to_string())?;
    let sig = cert.signature().raw_bytes();
    let spki = issuer
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| e.to_string())?;
    let oid = cert.signature_algorithm().oid;
    let digest: Vec<u8> = match oid {
        o if o == ECDSA_SHA256 || o == RSA_SHA256 => Sha256::digest(&tbs).to_vec(),
        o if o == ECDSA_SHA384 || o == RSA_SHA384 => Sha384::digest(&tbs).to_vec(),
        o if o == ECDSA_SHA512 || o == RSA_SHA512 => Sha512::digest(&tbs).to_vec(),
        other => return Err(format!("unsupported signature algorithm {other}")),
    };
    let bad = |_| "the signature does not verify".to_string();
    if [ECDSA_SHA256, ECDSA_SHA384, ECDSA_SHA512].contains(&oid) {
        if let Ok(key) = p256::ecdsa::VerifyingKey::from_public_key_der(&spki) {
            let sig = p256::ecdsa::Signature::from_der(sig).map_err(|e| e.to_string())?;
            return key.verify_prehash(&digest, &sig).map_err(bad);
        }
        if let Ok(key) = p384::ecdsa::VerifyingKey::from_public_key_der(&spki) {
            let sig = p384::ecdsa::Signature::from_der(sig).map_err(|e| e.to_string())?;
            return key.verify_prehash(&digest, &sig).map_err(bad);
        }
        return Err("the issuer's key is not P-256 or P-384".into());
    }
    let key = rsa::RsaPublicKey::from_public_key_der(&spki)
        .map_err(|_| "the issuer's key is not an RSA key".to_string())?;
    let sig = rsa::pkcs1v15::Signature::try_from(sig).map_err(|e| e.to_string())?;
    match oid {
        o if o == RSA_SHA256 => {
            rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key).verify_prehash(&digest, &sig)
        }
        o if o == RSA_SHA384 => {
            rsa::pkcs1v15::VerifyingKey::<Sha384>::new(key).verify_prehash(&digest, &sig)
        }
        _ => rsa::pkcs1v15::VerifyingKey::<Sha512>::new(key).verify_prehash(&digest, &sig),
    }
    .map_err(bad)
}

fn check_time(cert: &Certificate, now: SystemTime) -> std::result::Result<(), String> {
    let validity = cert.tbs_certificate().validity();
    if now < validity.not_before.to_system_time() {
        return Err(format!("`{}` is not valid yet", subject(cert)));
    }
    if now > validity.not_after.to_system_time() {
        return Err(format!("`{}` has expired", subject(cert)));
    }
    Ok(())
}

/// What a verified attestation says.
#[derive(Debug, Clone, Serialize)]
pub struct Attestation {
    /// Serial number in the attestation.
    pub serial: Option<u32>,
    /// Firmware in the attestation.
    pub firmware: Option<Firmware>,
    /// PIN policy in the attestation.
    pub pin_policy: Option<PivPinPolicy>,
    /// Touch policy in the attestation.
    pub touch_policy: Option<PivTouchPolicy>,
    /// Form factor byte (1 USB-A keychain, 2 USB-A nano, 3 USB-C keychain, 4 USB-C nano,
    /// 5 USB-C Lightning, 6 Bio, ...).
    pub form_factor: Option<u8>,
    /// The attested public key (DER SubjectPublicKeyInfo, base64).
    pub public_key: String,
    /// Subjects from the slot certificate up to the anchor.
    pub chain: Vec<String>,
    /// SHA-256 fingerprint of the anchor.
    pub anchor_fingerprint: String,
    /// Where the anchor came from.
    pub roots: String,
    /// A YubiKey attests only keys generated on it: a verified attestation means the key was
    /// generated on the device.
    pub generated_on_device: bool,
}

fn extension(cert: &Certificate, oid: ObjectIdentifier) -> Option<&[u8]> {
    cert.tbs_certificate()
        .extensions()?
        .iter()
        .find(|e| e.extn_id == oid)
        .map(|e| e.extn_value.as_bytes())
}

/// Verifies a slot attestation (`slot_der`, from INS F9) issued by the device certificate
/// (`device_der`, slot f9) up to one of `roots`' anchors, valid at `now`.
pub fn verify(
    what: &str,
    slot_der: &[u8],
    device_der: &[u8],
    roots: &TrustRoots,
    now: SystemTime,
) -> Result<Attestation> {
    let fail = |reason: String| Error::Attestation {
        what: what.into(),
        reason,
    };
    let slot = parse(slot_der, "slot attestation certificate")?;
    let device = parse(device_der, "device attestation certificate (f9)")?;
    if slot.tbs_certificate().issuer() != device.tbs_certificate().subject() {
        return Err(fail(format!(
            "the slot attestation names issuer `{}`, but the device certificate is `{}`",
            slot.tbs_certificate().issuer(),
            subject(&device)
        )));
    }
    check_signature(&slot, &device)
        .map_err(|e| fail(format!("slot attestation against the device key: {e}")))?;
    let mut chain = vec![subject(&slot), subject(&device)];
    check_time(&slot, now).map_err(&fail)?;
    check_time(&device, now).map_err(&fail)?;
    // Walk up from the device certificate: an anchor ends the path, an intermediate extends it.
    let mut current = device.clone();
    let mut anchor = None;
    for _ in 0..4 {
        let issuer = current.tbs_certificate().issuer();
        if let Some(a) = roots.anchors.iter().find(|a| {
            a.tbs_certificate().subject() == issuer && check_signature(&current, a).is_ok()
        }) {
            check_time(a, now).map_err(&fail)?;
            chain.push(subject(a));
            anchor = Some(a.clone());
            break;
        }
        let Some(next) = roots.intermediates.iter().find(|i| {
            i.tbs_certificate().subject() == issuer && check_signature(&current, i).is_ok()
        }) else {
            break;
        };
        check_time(next, now).map_err(&fail)?;
        chain.push(subject(next));
        current = next.clone();
    }
    let Some(anchor) = anchor else {
        // Not a verification failure: the chain ends at a CA rootkeeper was not given.
        return Err(Error::AttestationUnrecognised {
            what: what.into(),
            device_certificate: subject(&device),
            issuer: device.tbs_certificate().issuer().to_string(),
            roots: roots.source.clone(),
            built_in: roots.built_in,
        });
    };

    let firmware = match extension(&slot, OID_FIRMWARE) {
        Some(&[major, minor, patch]) => Some(Firmware {
            major,
            minor,
            patch,
        }),
        _ => None,
    };
    let serial = extension(&slot, OID_SERIAL).and_then(|v| {
        let uint = x509_cert::der::asn1::Uint::from_der(v).ok()?;
        let bytes = uint.as_bytes();
        let mut be = [0u8; 4];
        let start = be.len().checked_sub(bytes.len())?;
        be.get_mut(start..)?.copy_from_slice(bytes);
        Some(u32::from_be_bytes(be))
    });
    let (pin_policy, touch_policy) = match extension(&slot, OID_POLICY) {
        Some(&[pin, touch]) => (
            PivPinPolicy::from_byte(pin),
            PivTouchPolicy::from_byte(touch),
        ),
        _ => (None, None),
    };
    let form_factor = extension(&slot, OID_FORM_FACTOR).and_then(|v| v.first().copied());
    let public_key = B64.encode(
        slot.tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .map_err(|e| fail(e.to_string()))?,
    );
    Ok(Attestation {
        serial,
        firmware,
        pin_policy,
        touch_policy,
        form_factor,
        public_key,
        chain,
        anchor_fingerprint: fingerprint(&anchor),
        roots: roots.source.clone(),
        generated_on_device: true,
    })
}

/// PEM for one DER certificate.
pub fn pem(der: &[u8]) -> String {
    crate::x509::go_pem(der)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_roots_match_published_fingerprints() {
        let mut all = Vec::new();
        for pem in [
            YUBICO_PIV_ROOT,
            YUBICO_ATTESTATION_ROOT_1,
            YUBICO_INTERMEDIATES_B,
        ] {
            for der in crate::x509::pem_certificates_in_text(pem).unwrap() {
                all.push(parse(&der, "shipped").unwrap());
            }
        }
        assert_eq!(all.len(), 4);
        for (name, expected) in YUBICO_FINGERPRINTS {
            let cert = all
                .iter()
                .find(|c| subject(c) == format!("CN={name}"))
                .unwrap_or_else(|| panic!("{name} is not shipped"));
            assert_eq!(fingerprint(cert), expected, "{name}");
        }
    }

    #[test]
    fn yubico_chain_verifies_offline() {
        let roots = TrustRoots::yubico().unwrap();
        assert_eq!(roots.anchors.len(), 2);
        assert_eq!(roots.intermediates.len(), 2);
        // PIV Attestation B 1 -> Intermediate B 1 -> Attestation Root 1 (all RSA).
        let find = |name: &str| {
            roots
                .anchors
                .iter()
                .chain(&roots.intermediates)
                .find(|c| subject(c) == format!("CN={name}"))
                .unwrap()
                .clone()
        };
        let piv_b = find("Yubico PIV Attestation B 1");
        let inter_b = find("Yubico Attestation Intermediate B 1");
        let root = find("Yubico Attestation Root 1");
        check_signature(&piv_b, &inter_b).unwrap();
        check_signature(&inter_b, &root).unwrap();
        check_signature(&root, &root).unwrap();
        assert!(check_signature(&piv_b, &root).is_err());
        let legacy = find("Yubico PIV Root CA Serial 263751");
        check_signature(&legacy, &legacy).unwrap();
    }

    #[test]
    fn user_roots_need_a_self_signed_certificate() {
        let err = TrustRoots::from_pem(YUBICO_INTERMEDIATES_B, "x.pem").unwrap_err();
        assert!(err.to_string().contains("self-signed"), "{err}");
        let roots = TrustRoots::from_pem(
            &format!("some text\n{YUBICO_ATTESTATION_ROOT_1}"),
            "root.pem",
        )
        .unwrap();
        assert_eq!(roots.anchors.len(), 1);
    }
}
