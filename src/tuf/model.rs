//! The metadata model: typed keys, roles, signatures and the four role files, parsed as
//! strictly as files from a stranger.
//!
//! Go's JSON decoder matches object keys to struct fields case-insensitively with Unicode
//! folding (`roleſ` fills `roles`) and lets the later key win (research/notary-format.md
//! §1.4). So a file is read here only if every object holds exactly the known field names,
//! once each, at every depth; every base64 value is canonical and padded; every integer is at
//! most 2^53 (Go's verifier goes through float64); every time is in Go's own form; and the
//! file's bytes equal the bytes rebuilt from the typed value ([`Signed::parse`]). Signatures
//! are only ever made over bytes rebuilt from the typed document ([`Signed::signed_bytes`]).

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::de::{self, DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::tuf::canonical;

pub use crate::tuf::time::{GoTime, UtcTime, days, parse_expiry};

/// The largest integer that survives Go's verifier, which decodes numbers as float64.
pub const MAX_SAFE_INTEGER: u64 = 1 << 53;

pub use crate::text::escape_untrusted;

// ---------------------------------------------------------------------------------------
// Scalars

/// A key ID: the lower-case hex SHA-256 of a canonical key object (64 characters).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(String);

impl KeyId {
    /// Checks the form of a key ID.
    pub fn parse(text: &str) -> Result<KeyId> {
        if text.len() == 64
            && text
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        {
            Ok(KeyId(text.to_owned()))
        } else {
            Err(Error::Invalid(format!(
                "`{}` is not a key ID (64 lower-case hex characters)",
                escape_untrusted(text)
            )))
        }
    }

    /// The key ID of a SHA-256 digest.
    pub fn from_digest(digest: &[u8]) -> KeyId {
        KeyId(hex::encode(digest))
    }

    /// The hex text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 8 characters, for tables that also show the full ID elsewhere.
    pub fn short(&self) -> &str {
        self.0.get(..8).unwrap_or(&self.0)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.0)
    }
}

impl Serialize for KeyId {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for KeyId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<KeyId, D::Error> {
        let text = String::deserialize(d)?;
        KeyId::parse(&text).map_err(de::Error::custom)
    }
}

impl std::borrow::Borrow<str> for KeyId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// Bytes written as canonical, padded standard base64 (Go's `[]byte` in JSON).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Base64(pub Vec<u8>);

impl fmt::Debug for Base64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Base64({})", B64.encode(&self.0))
    }
}

impl Base64 {
    /// Decodes canonical padded base64; anything Go would re-encode differently is refused.
    pub fn parse(text: &str) -> Result<Base64> {
        let bytes = B64.decode(text).ok().filter(|b| B64.encode(b) == text);
        bytes.map(Base64).ok_or_else(|| {
            Error::Invalid(format!(
                "`{}` is not canonical padded base64",
                escape_untrusted(text.get(..40).unwrap_or(text))
            ))
        })
    }

    /// The base64 text.
    pub fn encoded(&self) -> String {
        B64.encode(&self.0)
    }
}

impl Serialize for Base64 {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.encoded())
    }
}

impl<'de> Deserialize<'de> for Base64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Base64, D::Error> {
        let text = String::deserialize(d)?;
        Base64::parse(&text).map_err(de::Error::custom)
    }
}

macro_rules! bounded_integer {
    ($(#[$doc:meta])* $name:ident, $min:expr, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(u64);

        impl $name {
            /// Checks the bounds.
            pub fn new(value: u64) -> Result<$name> {
                if ($min..=MAX_SAFE_INTEGER).contains(&value) {
                    Ok($name(value))
                } else {
                    Err(Error::Invalid(format!(
                        "{} {value} is out of range ({} to 2^53)",
                        $what, $min
                    )))
                }
            }

            /// The value.
            pub fn get(self) -> u64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<$name, D::Error> {
                $name::new(u64::deserialize(d)?).map_err(de::Error::custom)
            }
        }
    };
}

bounded_integer!(
    /// A role file's version: 1 to 2^53.
    Version,
    1,
    "version"
);
bounded_integer!(
    /// Signatures a role needs: 1 to 2^53.
    Threshold,
    1,
    "threshold"
);
bounded_integer!(
    /// A file length: 0 to 2^53.
    Length,
    0,
    "length"
);

impl Version {
    /// The first version.
    pub const FIRST: Version = Version(1);

    /// The next version (saturating at 2^53, which `new` then refuses).
    pub fn next(self) -> Result<Version> {
        Version::new(self.0.saturating_add(1))
    }
}

impl Length {
    /// The length of `bytes` (no file in memory comes near 2^53 bytes).
    pub fn of(bytes: &[u8]) -> Length {
        Length(
            u64::try_from(bytes.len())
                .unwrap_or(u64::MAX)
                .min(MAX_SAFE_INTEGER),
        )
    }
}

impl Threshold {
    /// One signature.
    pub const ONE: Threshold = Threshold(1);
}

/// A `null` that must be there: `keyval.private` in every metadata key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NoPrivateKey;

impl Serialize for NoPrivateKey {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_none()
    }
}

impl<'de> Deserialize<'de> for NoPrivateKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<NoPrivateKey, D::Error> {
        match Option::<de::IgnoredAny>::deserialize(d)? {
            None => Ok(NoPrivateKey),
            Some(_) => Err(de::Error::custom(
                "keyval.private is not null: the file carries private key material",
            )),
        }
    }
}

/// A JSON object read into a map that refuses a key given twice (serde's maps let the later
/// one win, as Go does, which would hide the earlier value).
pub fn strict_map<'de, D, K, V>(d: D) -> std::result::Result<BTreeMap<K, V>, D::Error>
where
    D: Deserializer<'de>,
    K: Deserialize<'de> + Ord + fmt::Display,
    V: Deserialize<'de>,
{
    struct StrictMap<K, V>(PhantomData<(K, V)>);
    impl<'de, K, V> Visitor<'de> for StrictMap<K, V>
    where
        K: Deserialize<'de> + Ord + fmt::Display,
        V: Deserialize<'de>,
    {
        type Value = BTreeMap<K, V>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(
            self,
            mut access: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            let mut map = BTreeMap::new();
            while let Some(key) = access.next_key::<K>()? {
                if map.contains_key(&key) {
                    return Err(de::Error::custom(format!(
                        "the key `{}` appears twice",
                        escape_untrusted(&key.to_string())
                    )));
                }
                let value = access.next_value()?;
                map.insert(key, value);
            }
            Ok(map)
        }
    }
    d.deserialize_map(StrictMap(PhantomData))
}

// ---------------------------------------------------------------------------------------
// Keys and signatures

/// The key types rootkeeper reads. notary also knows `rsa` and `rsa-x509`; rootkeeper
/// neither makes nor checks RSA keys, so a file naming one is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum KeyType {
    /// A bare P-256 key: `keyval.public` is the DER SubjectPublicKeyInfo.
    #[serde(rename = "ecdsa")]
    Ecdsa,
    /// A P-256 key in a certificate: `keyval.public` is the PEM text.
    #[serde(rename = "ecdsa-x509")]
    EcdsaX509,
    /// An Ed25519 key (notary-server's local signer): the raw 32 bytes.
    #[serde(rename = "ed25519")]
    Ed25519,
}

impl KeyType {
    /// The `keytype` string.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Ecdsa => "ecdsa",
            KeyType::EcdsaX509 => "ecdsa-x509",
            KeyType::Ed25519 => "ed25519",
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A public key as metadata writes it: `{"keytype":…,"keyval":{"private":null,"public":…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKey {
    /// The key type.
    pub keytype: KeyType,
    /// The key value.
    pub keyval: KeyVal,
}

/// The `keyval` of a key: `private` is always null.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyVal {
    /// Always null.
    pub private: NoPrivateKey,
    /// The public part.
    pub public: Base64,
}

impl PublicKey {
    /// A key of `keytype` with the public bytes `public`.
    pub fn new(keytype: KeyType, public: Vec<u8>) -> PublicKey {
        PublicKey {
            keytype,
            keyval: KeyVal {
                private: NoPrivateKey,
                public: Base64(public),
            },
        }
    }

    /// The public bytes.
    pub fn public(&self) -> &[u8] {
        &self.keyval.public.0
    }
}

/// A signature method notary verifies. The method must be written in lower case: notary
/// lower-cases it when it reads a file, so any other spelling changes the bytes it hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Method {
    /// ECDSA with SHA-256, raw r‖s.
    #[serde(rename = "ecdsa")]
    Ecdsa,
    /// Ed25519.
    #[serde(rename = "eddsa")]
    Eddsa,
    /// RSASSA-PSS (verified by notary, not by rootkeeper).
    #[serde(rename = "rsapss")]
    RsaPss,
    /// RSA PKCS#1 v1.5 (verified by notary, not by rootkeeper).
    #[serde(rename = "rsapkcs1v15")]
    RsaPkcs1v15,
}

impl Method {
    /// The `method` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Ecdsa => "ecdsa",
            Method::Eddsa => "eddsa",
            Method::RsaPss => "rsapss",
            Method::RsaPkcs1v15 => "rsapkcs1v15",
        }
    }
}

/// One signature in an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// The signing key's ID.
    pub keyid: KeyId,
    /// The method.
    pub method: Method,
    /// The signature bytes.
    pub sig: Base64,
}

/// The keys of a role and how many must sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleKeys {
    /// Key IDs.
    pub keyids: Vec<KeyId>,
    /// Signatures needed.
    pub threshold: Threshold,
}

// ---------------------------------------------------------------------------------------
// Role files

macro_rules! type_tag {
    ($(#[$doc:meta])* $name:ident, $text:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct $name;

        impl $name {
            /// The `_type` string.
            pub const NAME: &'static str = $text;
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str($text)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<$name, D::Error> {
                let text = String::deserialize(d)?;
                if text == $text {
                    Ok($name)
                } else {
                    Err(de::Error::custom(format!(
                        "_type is `{}`, not `{}`",
                        escape_untrusted(&text),
                        $text
                    )))
                }
            }
        }
    };
}

type_tag!(
    /// `"_type":"Root"`.
    RootType,
    "Root"
);
type_tag!(
    /// `"_type":"Targets"`.
    TargetsType,
    "Targets"
);
type_tag!(
    /// `"_type":"Snapshot"`.
    SnapshotType,
    "Snapshot"
);
type_tag!(
    /// `"_type":"Timestamp"`.
    TimestampType,
    "Timestamp"
);

/// The four roles of root.json, each exactly once; no other role may appear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootRoles {
    /// Root keys.
    pub root: RoleKeys,
    /// Snapshot keys.
    pub snapshot: RoleKeys,
    /// Targets keys.
    pub targets: RoleKeys,
    /// Timestamp keys.
    pub timestamp: RoleKeys,
}

/// One of the four top-level roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoleName {
    /// root
    Root,
    /// targets
    Targets,
    /// snapshot
    Snapshot,
    /// timestamp
    Timestamp,
}

impl RoleName {
    /// All four, in the order notary lists them.
    pub const ALL: [RoleName; 4] = [
        RoleName::Root,
        RoleName::Targets,
        RoleName::Snapshot,
        RoleName::Timestamp,
    ];

    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            RoleName::Root => "root",
            RoleName::Targets => "targets",
            RoleName::Snapshot => "snapshot",
            RoleName::Timestamp => "timestamp",
        }
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl RootRoles {
    /// A role's keys.
    pub fn get(&self, role: RoleName) -> &RoleKeys {
        match role {
            RoleName::Root => &self.root,
            RoleName::Targets => &self.targets,
            RoleName::Snapshot => &self.snapshot,
            RoleName::Timestamp => &self.timestamp,
        }
    }
}

/// root.json's `signed` part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Root {
    /// `Root`.
    #[serde(rename = "_type")]
    pub type_: RootType,
    /// Always false in Notary.
    pub consistent_snapshot: bool,
    /// Expiry.
    pub expires: GoTime,
    /// Every key, by ID.
    #[serde(deserialize_with = "strict_map")]
    pub keys: BTreeMap<KeyId, PublicKey>,
    /// The four roles.
    pub roles: RootRoles,
    /// Version.
    pub version: Version,
}

/// The hashes of a file: SHA-256 and SHA-512 (notary writes both; base64 in JSON).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hashes {
    /// SHA-256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Base64>,
    /// SHA-512.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha512: Option<Base64>,
}

/// Hashes and length of a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileMeta {
    /// Hashes.
    pub hashes: Hashes,
    /// Length in bytes.
    pub length: Length,
    /// Opaque custom data (must already be canonical JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<Value>,
}

/// A delegated role in a targets file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelegationRole {
    /// Key IDs.
    pub keyids: Vec<KeyId>,
    /// `targets/...`.
    pub name: String,
    /// Path prefixes (`""` is everything).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// Signatures needed.
    pub threshold: Threshold,
}

/// `delegations` of a targets file (always present, even when empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delegations {
    /// Delegation keys.
    #[serde(deserialize_with = "strict_map")]
    pub keys: BTreeMap<KeyId, PublicKey>,
    /// Delegated roles.
    pub roles: Vec<DelegationRole>,
}

/// targets.json's (or a delegation's) `signed` part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Targets {
    /// `Targets`.
    #[serde(rename = "_type")]
    pub type_: TargetsType,
    /// Delegations.
    pub delegations: Delegations,
    /// Expiry.
    pub expires: GoTime,
    /// Target files by name.
    #[serde(deserialize_with = "strict_map")]
    pub targets: BTreeMap<String, FileMeta>,
    /// Version.
    pub version: Version,
}

/// snapshot.json's `signed` part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// `Snapshot`.
    #[serde(rename = "_type")]
    pub type_: SnapshotType,
    /// Expiry.
    pub expires: GoTime,
    /// File metadata by role name (`root`, `targets`, `targets/releases`…).
    #[serde(deserialize_with = "strict_map")]
    pub meta: BTreeMap<String, FileMeta>,
    /// Version.
    pub version: Version,
}

/// timestamp.json's `signed` part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timestamp {
    /// `Timestamp`.
    #[serde(rename = "_type")]
    pub type_: TimestampType,
    /// Expiry.
    pub expires: GoTime,
    /// Exactly `snapshot`.
    #[serde(deserialize_with = "strict_map")]
    pub meta: BTreeMap<String, FileMeta>,
    /// Version.
    pub version: Version,
}

/// What every role file's `signed` part has.
pub trait RoleFile: Serialize + DeserializeOwned + Clone {
    /// The `_type` string.
    const TYPE: &'static str;
    /// Version.
    fn version(&self) -> Version;
    /// Expiry.
    fn expires(&self) -> GoTime;
}

macro_rules! role_file {
    ($name:ident, $tag:ident) => {
        impl RoleFile for $name {
            const TYPE: &'static str = $tag::NAME;
            fn version(&self) -> Version {
                self.version
            }
            fn expires(&self) -> GoTime {
                self.expires
            }
        }
    };
}
role_file!(Root, RootType);
role_file!(Targets, TargetsType);
role_file!(Snapshot, SnapshotType);
role_file!(Timestamp, TimestampType);

// ---------------------------------------------------------------------------------------
// The envelope

/// A signed metadata file: the typed `signed` part and its signatures.
#[derive(Debug, Clone, PartialEq)]
pub struct Signed<T> {
    /// The signed part.
    pub signed: T,
    /// The signatures.
    pub signatures: Vec<Signature>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnvelope<'a> {
    #[serde(borrow)]
    signed: &'a serde_json::value::RawValue,
    signatures: Vec<Signature>,
}

#[derive(Deserialize)]
struct TypeOnly {
    #[serde(rename = "_type")]
    type_: Option<String>,
}

fn parse_error(file: &str, rule: &'static str, detail: String) -> Error {
    Error::Rule {
        file: file.into(),
        rule,
        detail,
    }
}

fn field_error(
    file: &str,
    prefix: &str,
    err: serde_path_to_error::Error<serde_json::Error>,
) -> Error {
    let path = err.path().to_string();
    let path = if path == "." || path.is_empty() {
        prefix.trim_end_matches('.').to_string()
    } else {
        format!("{prefix}{path}")
    };
    let inner = err.into_inner();
    // Broken JSON (cut short, not JSON at all) is `parse`; JSON with the wrong fields or
    // values is `fields`.
    let rule = match inner.classify() {
        serde_json::error::Category::Data => "fields",
        _ => "parse",
    };
    let message = escape_untrusted(&inner.to_string());
    let detail = if path.is_empty() {
        message
    } else {
        format!("{}: {message}", escape_untrusted(&path))
    };
    parse_error(file, rule, detail)
}

/// The envelope of a file, before its `signed` part is typed.
fn envelope<'a>(file: &str, bytes: &'a [u8]) -> Result<RawEnvelope<'a>> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let raw: RawEnvelope<'a> = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        // Bytes that are not JSON at all (cut short, garbage) break `parse`, not `fields`.
        if e.inner().is_syntax() || e.inner().is_eof() {
            parse_error(
                file,
                "parse",
                format!("not JSON: {}", escape_untrusted(&e.inner().to_string())),
            )
        } else {
            field_error(file, "", e)
        }
    })?;
    de.end()
        .map_err(|e| parse_error(file, "parse", format!("not one JSON document: {e}")))?;
    Ok(raw)
}

/// The `_type` a metadata file declares (read loosely, only to pick the strict parser).
pub fn declared_type(file: &str, bytes: &[u8]) -> Result<String> {
    let raw = envelope(file, bytes)?;
    let t: TypeOnly = serde_json::from_str(raw.signed.get())
        .map_err(|e| parse_error(file, "parse", format!("signed is not an object: {e}")))?;
    t.type_
        .ok_or_else(|| parse_error(file, "fields", "signed has no `_type`".into()))
}

impl<T: RoleFile> Signed<T> {
    /// An unsigned envelope around `signed`.
    pub fn new(signed: T) -> Signed<T> {
        Signed {
            signed,
            signatures: Vec::new(),
        }
    }

    /// Parses file bytes strictly (see the module documentation): exact field names at every
    /// depth, each once; then the bytes must equal Go's re-serialisation of the typed value.
    pub fn parse(file: &str, bytes: &[u8]) -> Result<Signed<T>> {
        let raw = envelope(file, bytes)?;
        let mut de = serde_json::Deserializer::from_str(raw.signed.get());
        let signed: T = serde_path_to_error::deserialize(&mut de)
            .map_err(|e| field_error(file, "signed.", e))?;
        let doc = Signed {
            signed,
            signatures: raw.signatures,
        };
        let again = doc
            .to_bytes()
            .map_err(|e| parse_error(file, "canonical-round-trip", e.to_string()))?;
        if again != bytes {
            let at = again
                .iter()
                .zip(bytes)
                .position(|(a, b)| a != b)
                .unwrap_or(again.len().min(bytes.len()));
            let context = |b: &[u8]| {
                let from = at.saturating_sub(12);
                escape_untrusted(&String::from_utf8_lossy(
                    b.get(from..at.saturating_add(12).min(b.len()))
                        .unwrap_or_default(),
                ))
            };
            return Err(parse_error(
                file,
                "canonical-round-trip",
                format!(
                    "the bytes differ from Go's re-serialisation at offset {at} (`{}` where Go writes `{}`); notary-server would hash other bytes than these",
                    context(bytes),
                    context(&again)
                ),
            ));
        }
        Ok(doc)
    }

    /// The bytes that are signed: canonical JSON of the typed `signed` part.
    pub fn signed_bytes(&self) -> Result<Vec<u8>> {
        to_canonical(&self.signed)
    }

    /// The file bytes, exactly as Go's `json.Marshal` of notary's `data.Signed` writes them.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        envelope_bytes(&self.signed_bytes()?, &self.signatures)
    }

    /// The signatures by `keyid`.
    pub fn signatures_by<'a>(&'a self, keyid: &'a KeyId) -> impl Iterator<Item = &'a Signature> {
        self.signatures.iter().filter(move |s| &s.keyid == keyid)
    }
}

/// Canonical JSON of a typed value.
pub fn to_canonical<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    let value = serde_json::to_value(value).map_err(|e| Error::Metadata {
        file: "metadata".into(),
        reason: e.to_string(),
    })?;
    canonical::to_canonical(&value)
}

/// The file bytes of an envelope over already canonical `signed` bytes.
pub fn envelope_bytes(signed: &[u8], signatures: &[Signature]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(signed.len().saturating_add(160));
    out.extend_from_slice(b"{\"signed\":");
    out.extend_from_slice(signed);
    out.extend_from_slice(b",\"signatures\":[");
    for (i, s) in signatures.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // Go writes struct fields in declaration order: keyid, method, sig (sorted anyway).
        out.extend_from_slice(b"{\"keyid\":\"");
        out.extend_from_slice(s.keyid.as_str().as_bytes());
        out.extend_from_slice(b"\",\"method\":\"");
        out.extend_from_slice(s.method.as_str().as_bytes());
        out.extend_from_slice(b"\",\"sig\":\"");
        out.extend_from_slice(s.sig.encoded().as_bytes());
        out.extend_from_slice(b"\"}");
    }
    out.extend_from_slice(b"]}");
    Ok(canonical::html_escape(&out))
}

/// Any of the four role files.
#[derive(Debug, Clone, PartialEq)]
pub enum Document {
    /// root.json
    Root(Signed<Root>),
    /// targets.json or a delegation
    Targets(Signed<Targets>),
    /// snapshot.json
    Snapshot(Signed<Snapshot>),
    /// timestamp.json
    Timestamp(Signed<Timestamp>),
}

impl Document {
    /// Parses any role file strictly; a `_type` other than the four is refused (case
    /// matters: `TARGETS` is not `Targets`).
    pub fn parse(file: &str, bytes: &[u8]) -> Result<Document> {
        let declared = declared_type(file, bytes)?;
        Ok(match declared.as_str() {
            RootType::NAME => Document::Root(Signed::parse(file, bytes)?),
            TargetsType::NAME => Document::Targets(Signed::parse(file, bytes)?),
            SnapshotType::NAME => Document::Snapshot(Signed::parse(file, bytes)?),
            TimestampType::NAME => Document::Timestamp(Signed::parse(file, bytes)?),
            other => {
                return Err(parse_error(
                    file,
                    "fields",
                    format!(
                        "signed._type is `{}`; a metadata file is Root, Targets, Snapshot or Timestamp (case matters)",
                        escape_untrusted(other)
                    ),
                ));
            }
        })
    }

    /// The `_type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Document::Root(_) => RootType::NAME,
            Document::Targets(_) => TargetsType::NAME,
            Document::Snapshot(_) => SnapshotType::NAME,
            Document::Timestamp(_) => TimestampType::NAME,
        }
    }

    /// Version.
    pub fn version(&self) -> Version {
        match self {
            Document::Root(d) => d.signed.version,
            Document::Targets(d) => d.signed.version,
            Document::Snapshot(d) => d.signed.version,
            Document::Timestamp(d) => d.signed.version,
        }
    }

    /// Expiry.
    pub fn expires(&self) -> GoTime {
        match self {
            Document::Root(d) => d.signed.expires,
            Document::Targets(d) => d.signed.expires,
            Document::Snapshot(d) => d.signed.expires,
            Document::Timestamp(d) => d.signed.expires,
        }
    }

    /// The signatures.
    pub fn signatures(&self) -> &[Signature] {
        match self {
            Document::Root(d) => &d.signatures,
            Document::Targets(d) => &d.signatures,
            Document::Snapshot(d) => &d.signatures,
            Document::Timestamp(d) => &d.signatures,
        }
    }

    /// The signed bytes.
    pub fn signed_bytes(&self) -> Result<Vec<u8>> {
        match self {
            Document::Root(d) => d.signed_bytes(),
            Document::Targets(d) => d.signed_bytes(),
            Document::Snapshot(d) => d.signed_bytes(),
            Document::Timestamp(d) => d.signed_bytes(),
        }
    }
}

/// Reads a key document as notary-server hands it out (`GET …/timestamp.key`):
/// `{"keytype":…,"keyval":{"public":…,"private":null}}`, strictly.
pub fn parse_key_document(file: &str, bytes: &[u8]) -> Result<PublicKey> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let key: PublicKey =
        serde_path_to_error::deserialize(&mut de).map_err(|e| field_error(file, "", e))?;
    de.end()
        .map_err(|e| parse_error(file, "parse", format!("not one JSON document: {e}")))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEyidUV961UjagjWLmulPmQ6BX+EpJeoBFqHpfsM1L7tHF4fjdNRGPBmEktT9H3nh5YQpI4nxQ+K3Q2NZT0Cke8w==";

    fn targets_file(extra: &str) -> String {
        format!(
            r#"{{"signed":{{"_type":"Targets","delegations":{{"keys":{{}},"roles":[]}},"expires":"2030-01-01T00:00:00Z"{extra},"targets":{{}},"version":1}},"signatures":[]}}"#
        )
    }

    #[test]
    fn a_canonical_file_round_trips() {
        let text = targets_file("");
        let doc = Signed::<Targets>::parse("t", text.as_bytes()).unwrap();
        assert_eq!(doc.to_bytes().unwrap(), text.as_bytes());
    }

    #[test]
    fn folded_and_unknown_field_names_are_refused() {
        for alias in [
            "role\u{17f}",
            "Targets",
            "TARGETS",
            "targetſ",
            "\u{212a}eys",
            "extra",
        ] {
            let text = targets_file(&format!(r#","{alias}":{{}}"#));
            let err = Signed::<Targets>::parse("t", text.as_bytes()).unwrap_err();
            assert!(err.to_string().contains("rule `fields`"), "{alias}: {err}");
        }
    }

    #[test]
    fn bytes_that_are_not_json_break_parse() {
        let text = targets_file("");
        for bad in [&text[..text.len() - 3], "", "{\"signed\":{,"] {
            let err = Signed::<Targets>::parse("t", bad.as_bytes()).unwrap_err();
            assert!(err.to_string().contains("rule `parse`"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_key_given_twice_is_refused() {
        let text = r#"{"signed":{"_type":"Targets","delegations":{"keys":{},"roles":[]},"expires":"2030-01-01T00:00:00Z","targets":{"a":{"hashes":{},"length":1},"a":{"hashes":{},"length":2}},"version":1},"signatures":[]}"#;
        let err = Signed::<Targets>::parse("t", text.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("appears twice"), "{err}");
    }

    #[test]
    fn scalars_are_strict() {
        assert!(Base64::parse(KEY).is_ok());
        for bad in ["AB==", "QUI", "QUI=\n", "Q UI=", "QUI=="] {
            assert!(Base64::parse(bad).is_err(), "{bad}");
        }
        assert!(KeyId::parse(&"a".repeat(64)).is_ok());
        for bad in [
            "A".repeat(64),
            "a".repeat(63),
            "g".repeat(64),
            "é".repeat(32),
        ] {
            assert!(KeyId::parse(&bad).is_err(), "{bad}");
        }
        assert!(Version::new(0).is_err());
        assert!(Version::new(MAX_SAFE_INTEGER).is_ok());
        assert!(Version::new(MAX_SAFE_INTEGER + 1).is_err());
        let text = targets_file("").replace("\"version\":1", "\"version\":9007199254740993");
        assert!(Signed::<Targets>::parse("t", text.as_bytes()).is_err());
        let text = targets_file("").replace("\"version\":1", "\"version\":0");
        assert!(Signed::<Targets>::parse("t", text.as_bytes()).is_err());
        let text = targets_file("").replace("\"version\":1", "\"version\":1.0");
        assert!(Signed::<Targets>::parse("t", text.as_bytes()).is_err());
    }

    #[test]
    fn methods_must_be_lower_case_and_sigs_base64() {
        let sig = |method: &str, sig: &str| {
            targets_file("").replace(
                "\"signatures\":[]",
                &format!(
                    r#""signatures":[{{"keyid":"{}","method":"{method}","sig":"{sig}"}}]"#,
                    "a".repeat(64)
                ),
            )
        };
        assert!(Signed::<Targets>::parse("t", sig("ecdsa", "QUJD").as_bytes()).is_ok());
        assert!(Signed::<Targets>::parse("t", sig("ECDSA", "QUJD").as_bytes()).is_err());
        assert!(Signed::<Targets>::parse("t", sig("ecdsa", "not base64!").as_bytes()).is_err());
        assert!(Signed::<Targets>::parse("t", sig("md5", "QUJD").as_bytes()).is_err());
    }

    #[test]
    fn private_key_material_is_refused() {
        let key = format!(r#"{{"keytype":"ecdsa","keyval":{{"private":null,"public":"{KEY}"}}}}"#);
        assert!(parse_key_document("k", key.as_bytes()).is_ok());
        let with = key.replace("null", "\"QUJD\"");
        assert!(parse_key_document("k", with.as_bytes()).is_err());
        let rsa = key.replace("\"ecdsa\"", "\"rsa\"");
        assert!(parse_key_document("k", rsa.as_bytes()).is_err());
        // A key document may leave `private` out (it is never uploaded); in a metadata file
        // the byte-exact rule refuses that, since Go writes `"private":null`.
        let missing = key.replace("\"private\":null,", "");
        assert!(parse_key_document("k", missing.as_bytes()).is_ok());
    }

    #[test]
    fn unknown_types_are_named() {
        let text = targets_file("").replace("\"Targets\"", "\"TARGETS\"");
        let err = Document::parse("t", text.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("`TARGETS`"), "{err}");
    }
}
