//! The emulator's attestation PKI: a test CA standing in for Yubico's PIV root, the per-card
//! F9 device certificate it issues, and the per-slot attestation certificates (INS F9).
//!
//! Everything is derived from a seed, so two processes using the same seed (the default, or
//! `piv-emu --ca-seed`) produce byte-identical CA certificates and the same F9 key per serial.

use std::{io, path::Path, str::FromStr};

use p256::ecdsa::{DerSignature, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use x509_cert::{
    Certificate,
    builder::{Builder, CertificateBuilder, profile::BuilderProfile},
    certificate::TbsCertificate,
    der::{
        DateTime, Decode, Encode, EncodePem,
        asn1::{GeneralizedTime, ObjectIdentifier, OctetString},
        oid::AssociatedOid,
        pem::LineEnding,
    },
    ext::{
        Extension,
        pkix::{BasicConstraints, KeyUsage, KeyUsages},
    },
    name::Name,
    serial_number::SerialNumber,
    spki::{SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef},
    time::{Time, Validity},
};

/// Seed used by [`EmulatorCa::test_default`] and by `piv-emu` when no `--ca-seed` is given.
pub const DEFAULT_CA_SEED: &[u8] = b"piv-emu default attestation CA";

/// Subject of the emulator CA; deliberately not a Yubico name.
pub const CA_SUBJECT: &str = "CN=piv-emu Test PIV Attestation CA,O=piv-emu (NOT Yubico)";

/// Yubico attestation extension: firmware version (3 raw bytes).
pub const OID_FIRMWARE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.3");
/// Yubico attestation extension: serial number (DER INTEGER).
pub const OID_SERIAL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.7");
/// Yubico attestation extension: PIN policy and touch policy (2 raw bytes).
pub const OID_POLICY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.8");
/// Yubico attestation extension: form factor (1 raw byte; 1 = USB-A keychain).
pub const OID_FORM_FACTOR: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.9");

/// A self-signed P-256 CA that issues the F9 device certificate of every emulated card.
#[derive(Clone, Debug)]
pub struct EmulatorCa {
    seed: Vec<u8>,
    key: SigningKey,
    cert: Certificate,
}

impl EmulatorCa {
    /// Derives the CA (key and certificate) deterministically from `seed`.
    pub fn from_seed(seed: &[u8]) -> Self {
        let key = derive_key(seed, b"ca");
        let name = Name::from_str(CA_SUBJECT).expect("static name");
        let cert = build(
            Profile {
                issuer: name.clone(),
                subject: name,
                ca: true,
            },
            SerialNumber::from(1u32),
            key.verifying_key(),
            &key,
            Vec::new(),
        );
        EmulatorCa {
            seed: seed.to_vec(),
            key,
            cert,
        }
    }

    /// A CA from the fixed [`DEFAULT_CA_SEED`]: what `piv-emu` uses unless told otherwise.
    pub fn test_default() -> Self {
        Self::from_seed(DEFAULT_CA_SEED)
    }

    /// A CA from a fresh random seed (only useful inside one process).
    pub fn random() -> Self {
        Self::from_seed(&random_bytes::<32>())
    }

    /// The seed this CA was derived from.
    pub fn seed(&self) -> &[u8] {
        &self.seed
    }

    /// The self-signed CA certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }

    /// The CA certificate, DER encoded.
    pub fn certificate_der(&self) -> Vec<u8> {
        self.cert.to_der().expect("encodable certificate")
    }

    /// The CA certificate, PEM encoded.
    pub fn certificate_pem(&self) -> String {
        self.cert
            .to_pem(LineEnding::LF)
            .expect("encodable certificate")
    }

    /// Writes the CA certificate as PEM to `path` (atomically, via a temporary file).
    pub fn write_pem(&self, path: &Path) -> io::Result<()> {
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        std::fs::write(&tmp, self.certificate_pem())?;
        std::fs::rename(&tmp, path)
    }

    /// The F9 certificate of the card with `serial` as a PIV data object (`70 cert 71 ..`),
    /// the bytes the card keeps under object `5FFF01`: tests put another card's there to
    /// play a device whose attestation does not verify.
    pub fn device_certificate_object(&self, serial: u32) -> Vec<u8> {
        let der = self
            .device_certificate(serial)
            .to_der()
            .expect("encodable certificate");
        crate::card::cert_object(&der)
    }

    /// The F9 attestation key of the card with `serial` (stable for a given seed and serial).
    pub fn device_key(&self, serial: u32) -> SigningKey {
        derive_key(
            &self.seed,
            &[b"f9".as_slice(), &serial.to_be_bytes()].concat(),
        )
    }

    /// Issues the F9 device certificate (a CA certificate, like Yubico's per-device
    /// "Yubico PIV Attestation" certificate) for `serial`'s [`device_key`](Self::device_key).
    pub fn device_certificate(&self, serial: u32) -> Certificate {
        let subject =
            Name::from_str(&format!("CN=piv-emu PIV Attestation {serial}")).expect("static name");
        build(
            Profile {
                issuer: self.cert.tbs_certificate().subject().clone(),
                subject,
                ca: true,
            },
            SerialNumber::from(serial),
            self.device_key(serial).verifying_key(),
            &self.key,
            Vec::new(),
        )
    }
}

/// What a slot attestation certificate states about the key.
pub(crate) struct SlotFacts {
    pub slot: u8,
    pub public: VerifyingKey,
    pub pin_policy: u8,
    pub touch_policy: u8,
    pub firmware: (u8, u8, u8),
    pub serial: u32,
}

/// Builds the attestation certificate for one slot, signed by the F9 key and issued by the
/// subject of `f9_cert` (the certificate currently stored at 5FFF01).
pub(crate) fn attest_slot(
    f9_key: &SigningKey,
    f9_cert: &Certificate,
    facts: &SlotFacts,
) -> Vec<u8> {
    let (major, minor, patch) = facts.firmware;
    let serial_der = (facts.serial as u64).to_der_integer();
    let exts = [
        (OID_FIRMWARE, vec![major, minor, patch]),
        (OID_SERIAL, serial_der),
        (OID_POLICY, vec![facts.pin_policy, facts.touch_policy]),
        (OID_FORM_FACTOR, vec![0x01]),
    ];
    let extensions = exts
        .into_iter()
        .map(|(oid, value)| raw_extension(oid, false, value))
        .collect();
    let subject = Name::from_str(&format!("CN=YubiKey PIV Attestation {:02x}", facts.slot))
        .expect("static name");
    let cert = build(
        Profile {
            issuer: f9_cert.tbs_certificate().subject().clone(),
            subject,
            ca: false,
        },
        SerialNumber::new(&random_serial()).expect("valid serial"),
        &facts.public,
        f9_key,
        extensions,
    );
    cert.to_der().expect("encodable certificate")
}

/// Parses a DER certificate (helper for callers holding raw bytes).
pub fn parse_certificate(der: &[u8]) -> Option<Certificate> {
    Certificate::from_der(der).ok()
}

trait ToDerInteger {
    fn to_der_integer(self) -> Vec<u8>;
}

impl ToDerInteger for u64 {
    fn to_der_integer(self) -> Vec<u8> {
        x509_cert::der::asn1::Uint::new(&self.to_be_bytes())
            .and_then(|u| u.to_der())
            .expect("encodable integer")
    }
}

fn raw_extension(oid: ObjectIdentifier, critical: bool, value: Vec<u8>) -> Extension {
    Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(value).expect("short extension"),
    }
}

struct Profile {
    issuer: Name,
    subject: Name,
    ca: bool,
}

impl BuilderProfile for Profile {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }

    fn get_subject(&self) -> Name {
        self.subject.clone()
    }

    fn build_extensions(
        &self,
        _spk: SubjectPublicKeyInfoRef<'_>,
        _issuer_spk: SubjectPublicKeyInfoRef<'_>,
        _tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        if !self.ca {
            return Ok(Vec::new());
        }
        let bc = BasicConstraints {
            ca: true,
            path_len_constraint: None,
        };
        let ku = KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign);
        Ok(vec![
            raw_extension(BasicConstraints::OID, true, bc.to_der()?),
            raw_extension(KeyUsage::OID, true, ku.to_der()?),
        ])
    }
}

/// Fixed validity (2024-01-01 .. 2099-12-31) so that certificates are reproducible.
fn validity() -> Validity {
    let at = |y, mo, d, h, mi, s| {
        Time::GeneralTime(GeneralizedTime::from_date_time(
            DateTime::new(y, mo, d, h, mi, s).expect("valid date"),
        ))
    };
    Validity::new(at(2024, 1, 1, 0, 0, 0), at(2099, 12, 31, 23, 59, 59))
}

fn build(
    profile: Profile,
    serial: SerialNumber,
    subject_key: &VerifyingKey,
    signer: &SigningKey,
    extensions: Vec<Extension>,
) -> Certificate {
    let spki = SubjectPublicKeyInfoOwned::from_key(subject_key).expect("encodable key");
    let mut builder =
        CertificateBuilder::new(profile, serial, validity(), spki).expect("valid template");
    for ext in extensions {
        builder.add_extension(ext).expect("encodable extension");
    }
    builder
        .build::<_, DerSignature>(signer)
        .expect("signing cannot fail")
}

/// Derives a valid P-256 scalar from `seed` and `label` (SHA-256, retrying on the rare
/// out-of-range value).
pub(crate) fn derive_key(seed: &[u8], label: &[u8]) -> SigningKey {
    (0u32..)
        .find_map(|counter| {
            let digest = Sha256::new()
                .chain_update(b"piv-emu key derivation")
                .chain_update(label)
                .chain_update(counter.to_be_bytes())
                .chain_update(seed)
                .finalize();
            SigningKey::from_slice(&digest).ok()
        })
        .expect("some counter yields a valid scalar")
}

/// A fresh random P-256 key.
pub(crate) fn random_key() -> SigningKey {
    derive_key(&random_bytes::<32>(), b"random")
}

/// `N` random bytes from the OS.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).expect("OS random number generator");
    buf
}

fn random_serial() -> [u8; 16] {
    let mut serial = random_bytes::<16>();
    serial[0] = (serial[0] & 0x7f) | 0x01;
    serial
}
