//! Self-signed root certificates as Notary makes them, signed through a [`Signer`] so the
//! private key never leaves its token; and the certificate facts the client rules check.
//!
//! Notary's root certificate: subject = issuer = CN=<GUN> only; a random 128-bit serial;
//! KeyUsage critical {digitalSignature, keyEncipherment}; ExtendedKeyUsage {codeSigning};
//! BasicConstraints critical CA:FALSE; ecdsa-with-SHA256. The PEM must be byte-exact Go
//! `pem.EncodeToMemory` output, because clients rebuild it to compute the key ID.

use std::str::FromStr;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use p256::ecdsa::VerifyingKey;
use p256::pkcs8::DecodePublicKey;
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder, CertificateBuilder};
use x509_cert::certificate::{Certificate, TbsCertificate};
use x509_cert::der::asn1::{BitString, OctetString};
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::der::oid::db::rfc5280::ID_KP_CODE_SIGNING;
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{
    AlgorithmIdentifier, SignatureAlgorithmIdentifier, SubjectPublicKeyInfoOwned,
    SubjectPublicKeyInfoRef,
};
use x509_cert::time::{Time, Validity};

use crate::error::{Error, Result};
use crate::signer::{self, Signer};

const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const SHA1_SIGNATURE_OIDS: [ObjectIdentifier; 3] = [
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.5"),
    ObjectIdentifier::new_unwrap("1.2.840.10045.4.1"),
    ObjectIdentifier::new_unwrap("1.2.840.10040.4.3"),
];

/// Escapes a value for an RFC 4514 distinguished name string.
fn dn_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        if matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
            || (i == 0 && matches!(c, '#' | ' '))
        {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

struct NotaryRootProfile {
    subject: Name,
}

fn extension<T: Encode>(
    oid: ObjectIdentifier,
    critical: bool,
    value: &T,
) -> x509_cert::builder::Result<Extension> {
    Ok(Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(value.to_der()?)?,
    })
}

impl BuilderProfile for NotaryRootProfile {
    fn get_issuer(&self, subject: &Name) -> Name {
        subject.clone()
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
        use x509_cert::der::oid::AssociatedOid;
        Ok(vec![
            extension(
                KeyUsage::OID,
                true,
                &KeyUsage(KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment),
            )?,
            extension(
                ExtendedKeyUsage::OID,
                false,
                &ExtendedKeyUsage(vec![ID_KP_CODE_SIGNING]),
            )?,
            extension(
                BasicConstraints::OID,
                true,
                &BasicConstraints {
                    ca: false,
                    path_len_constraint: None,
                },
            )?,
        ])
    }
}

/// The public half handed to the certificate builder; the signature is made separately by
/// the token.
struct CertKey(VerifyingKey);

impl signature::Keypair for CertKey {
    type VerifyingKey = VerifyingKey;
    fn verifying_key(&self) -> VerifyingKey {
        self.0
    }
}

impl SignatureAlgorithmIdentifier for CertKey {
    type Params = x509_cert::der::AnyRef<'static>;
    const SIGNATURE_ALGORITHM_IDENTIFIER: AlgorithmIdentifier<Self::Params> = AlgorithmIdentifier {
        oid: ECDSA_WITH_SHA256,
        parameters: None,
    };
}

/// PEM exactly as Go's `pem.EncodeToMemory` writes a certificate.
pub fn go_pem(der: &[u8]) -> String {
    let body = B64.encode(der);
    let mut pem = String::with_capacity(
        body.len()
            .saturating_add(body.len() / 64)
            .saturating_add(60),
    );
    pem.push_str("-----BEGIN CERTIFICATE-----\n");
    for chunk in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

fn cert_error(what: &str) -> impl Fn(String) -> Error + '_ {
    move |reason| Error::Key {
        what: what.into(),
        reason,
    }
}

/// Makes Notary's self-signed root certificate for `gun`, signed by `signer` on its token,
/// its signature checked. Returns the PEM.
pub fn root_certificate(
    signer: &dyn Signer,
    gun: &str,
    not_before: SystemTime,
    not_after: SystemTime,
) -> Result<String> {
    let (pem, check) = root_certificate_unchecked(signer, gun, not_before, not_after)?;
    check.run()?;
    Ok(pem)
}

/// The check still owed on a certificate made by [`root_certificate_unchecked`].
#[derive(Debug, Clone)]
pub struct CertificateCheck {
    signature: signer::Unchecked,
    tbs: Vec<u8>,
}

impl CertificateCheck {
    /// Verifies the certificate's signature under the signer's key.
    pub fn run(&self) -> Result<()> {
        self.signature.check(&self.tbs)
    }
}

/// Like [`root_certificate`], with the signature check left to the caller (to check many
/// certificates together, in parallel): the PEM must not be kept before the check passes.
pub fn root_certificate_unchecked(
    signer: &dyn Signer,
    gun: &str,
    not_before: SystemTime,
    not_after: SystemTime,
) -> Result<(String, CertificateCheck)> {
    let what = format!("root certificate for {gun}");
    let err = cert_error(&what);
    let subject =
        Name::from_str(&format!("CN={}", dn_escape(gun))).map_err(|e| err(e.to_string()))?;
    let mut serial = [0u8; 16];
    getrandom::fill(&mut serial).map_err(|e| err(e.to_string()))?;
    serial[0] = (serial[0] & 0x7f) | 0x40;
    let validity = Validity::new(
        Time::try_from(not_before).map_err(|e| err(e.to_string()))?,
        Time::try_from(not_after).map_err(|e| err(e.to_string()))?,
    );
    let key = CertKey(*signer.public_key());
    let spki = SubjectPublicKeyInfoOwned::from_key(&key.0).map_err(|e| err(e.to_string()))?;
    let mut builder = CertificateBuilder::new(
        NotaryRootProfile { subject },
        SerialNumber::new(&serial).map_err(|e| err(e.to_string()))?,
        validity,
        spki,
    )
    .map_err(|e| err(e.to_string()))?;
    let tbs = builder.finalize(&key).map_err(|e| err(e.to_string()))?;
    let signature = signer::sign_unchecked(signer, &tbs)?;
    let der_sig = signature.to_der();
    let bits = BitString::from_bytes(der_sig.as_bytes()).map_err(|e| err(e.to_string()))?;
    let cert = builder
        .assemble(bits, &key)
        .map_err(|e| err(e.to_string()))?;
    let der = cert.to_der().map_err(|e| err(e.to_string()))?;
    Ok((go_pem(&der), CertificateCheck { signature, tbs }))
}

/// What the client rules need to know about a certificate.
#[derive(Debug, Clone)]
pub struct CertFacts {
    /// Subject CN, when the subject has exactly one.
    pub common_name: Option<String>,
    /// Every CN attribute of the subject (Go's x509 keeps only the last of several).
    pub common_names: Vec<String>,
    /// NotBefore.
    pub not_before: SystemTime,
    /// NotAfter.
    pub not_after: SystemTime,
    /// BasicConstraints CA.
    pub is_ca: bool,
    /// Signed with a SHA-1 algorithm.
    pub sha1_signature: bool,
    /// DER SubjectPublicKeyInfo.
    pub spki_der: Vec<u8>,
    /// The P-256 key, when it is one.
    pub p256_key: Option<VerifyingKey>,
}

/// Reads the facts of one DER certificate.
pub fn cert_facts(der: &[u8]) -> Result<CertFacts> {
    let err = cert_error("certificate");
    let cert = Certificate::from_der(der).map_err(|e| err(e.to_string()))?;
    let tbs = cert.tbs_certificate();
    let common_names = tbs
        .subject()
        .iter()
        .filter(|atv| atv.oid == x509_cert::der::oid::db::rfc4519::COMMON_NAME)
        .map(|atv| {
            x509_cert::ext::pkix::name::DirectoryString::try_from(&atv.value)
                .map(|d| d.value().into_owned())
                .map_err(|e| err(e.to_string()))
        })
        .collect::<Result<Vec<String>>>()?;
    let common_name = match common_names.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    };
    let is_ca = tbs
        .get_extension::<BasicConstraints>()
        .map_err(|e| err(e.to_string()))?
        .is_some_and(|(_, bc)| bc.ca);
    let spki_der = tbs
        .subject_public_key_info()
        .to_der()
        .map_err(|e| err(e.to_string()))?;
    Ok(CertFacts {
        common_name,
        common_names,
        not_before: tbs.validity().not_before.to_system_time(),
        not_after: tbs.validity().not_after.to_system_time(),
        is_ca,
        sha1_signature: SHA1_SIGNATURE_OIDS.contains(&cert.signature_algorithm().oid),
        p256_key: VerifyingKey::from_public_key_der(&spki_der).ok(),
        spki_der,
    })
}

/// Splits a PEM bundle into DER certificates. Any block that is not a CERTIFICATE is an error,
/// as in Notary's `ValidateRoot`, and so is a bundle with no certificate.
pub fn pem_certificates(pem: &str) -> Result<Vec<Vec<u8>>> {
    let certs = split_pem(pem, true)?;
    if certs.is_empty() {
        return Err(cert_error("PEM certificate bundle")(
            "no certificate".into(),
        ));
    }
    Ok(certs)
}

/// The DER certificates in PEM text, ignoring any text outside the certificate blocks (as in
/// files of trust roots with comments).
pub fn pem_certificates_in_text(pem: &str) -> Result<Vec<Vec<u8>>> {
    split_pem(pem, false)
}

fn split_pem(pem: &str, strict: bool) -> Result<Vec<Vec<u8>>> {
    let err = cert_error("PEM certificate bundle");
    let mut out = Vec::new();
    let mut body: Option<String> = None;
    for line in pem.lines().map(str::trim) {
        match (&mut body, line) {
            (None, "-----BEGIN CERTIFICATE-----") => body = Some(String::new()),
            (Some(b), "-----END CERTIFICATE-----") => {
                out.push(B64.decode(b.as_bytes()).map_err(|e| err(e.to_string()))?);
                body = None;
            }
            (Some(b), l) => b.push_str(l),
            (None, "") => {}
            (None, l) if strict => {
                return Err(err(format!(
                    "unexpected PEM line `{}`",
                    crate::text::escape_untrusted(l)
                )));
            }
            (None, _) => {}
        }
    }
    if body.is_some() {
        return Err(err("unterminated PEM block".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n";

    #[test]
    fn notary_bundles_are_strict_root_files_may_carry_comments() {
        assert_eq!(
            pem_certificates(CERT).unwrap(),
            vec![vec![0x30, 0x03, 0x02, 0x01, 0x01]]
        );
        let commented = format!("Yubico PIV Root CA\n{CERT}");
        assert!(
            pem_certificates(&commented)
                .unwrap_err()
                .to_string()
                .contains("unexpected PEM line")
        );
        assert_eq!(pem_certificates_in_text(&commented).unwrap().len(), 1);
        assert!(pem_certificates("").is_err());
        assert!(pem_certificates_in_text("").unwrap().is_empty());
        let cut = "-----BEGIN CERTIFICATE-----\nMAMCAQE=\n";
        assert!(pem_certificates(cut).is_err() && pem_certificates_in_text(cut).is_err());
    }

    /// Found by tests/parsers.rs: a bundle whose stray line is U+FEFF (or ESC, or a bidi
    /// control) put that character raw into the error shown to the operator.
    #[test]
    fn a_stray_line_is_shown_escaped() {
        for line in ["\u{feff}", "\u{1b}[2J", "a\u{202e}b"] {
            let err = pem_certificates(&format!("{line}\n{CERT}"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("unexpected PEM line"), "{err}");
            assert!(
                !err.chars()
                    .any(|c| c.is_control() || matches!(c, '\u{feff}' | '\u{202e}')),
                "{err:?}"
            );
        }
    }
}
