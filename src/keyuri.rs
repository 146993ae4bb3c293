//! Key URIs: the one way users name a token or a key.
//!
//! Two schemes: `pkcs11:` (RFC 7512, below) and `yubikey:` (a YubiKey's PIV applet, see
//! [`YubiKeyUri`]).
//!
//! Grammar (RFC 7512, `pkcs11:`):
//!
//! ```text
//! pkcs11:token=root-a;serial=2c1f...;object=root-2026;id=%01?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin-a
//! ```
//!
//! Path attributes (separated by `;`): `token`, `serial`, `manufacturer`, `model`, `slot-id`,
//! `object`, `id`, `type`; `module-path` is also accepted here (smallstep writes it there).
//! Query attributes (separated by `&`): `module-path`, `module-name`, `pin-source`
//! (`file:PATH` or an absolute path). `pin-value` is refused: a PIN on the command line leaks
//! into shell history and `ps`. Values are percent-encoded; printing a parsed URI and parsing it
//! again gives the same URI.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::{Error, Result};

/// A key or token, as named by the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyUri {
    /// A PKCS#11 token or key (RFC 7512).
    Pkcs11(Pkcs11Uri),
    /// A YubiKey, or a PIV slot on one.
    YubiKey(YubiKeyUri),
}

impl FromStr for KeyUri {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        if s.starts_with("pkcs11:") {
            return Ok(KeyUri::Pkcs11(s.parse()?));
        }
        if s.starts_with("yubikey:") {
            return Ok(KeyUri::YubiKey(s.parse()?));
        }
        Err(Error::KeyUri {
            uri: s.into(),
            reason: "the scheme must be pkcs11: or yubikey:".into(),
        })
    }
}

impl fmt::Display for KeyUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyUri::Pkcs11(uri) => uri.fmt(f),
            KeyUri::YubiKey(uri) => uri.fmt(f),
        }
    }
}

/// The PKCS#11 object class named by `type=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectType {
    /// `type=private`
    Private,
    /// `type=public`
    Public,
    /// `type=cert`
    Cert,
}

impl ObjectType {
    fn as_str(self) -> &'static str {
        match self {
            ObjectType::Private => "private",
            ObjectType::Public => "public",
            ObjectType::Cert => "cert",
        }
    }
}

/// An RFC 7512 PKCS#11 URI.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pkcs11Uri {
    /// Token label.
    pub token: Option<String>,
    /// Token manufacturer.
    pub manufacturer: Option<String>,
    /// Token model.
    pub model: Option<String>,
    /// Token serial number.
    pub serial: Option<String>,
    /// Slot ID (discouraged: SoftHSM slot IDs change between loads).
    pub slot_id: Option<u64>,
    /// Object label (CKA_LABEL).
    pub object: Option<String>,
    /// Object ID (CKA_ID), raw bytes.
    pub id: Option<Vec<u8>>,
    /// Object class.
    pub object_type: Option<ObjectType>,
    /// Path of the PKCS#11 module.
    pub module_path: Option<PathBuf>,
    /// Name of the PKCS#11 module (informational).
    pub module_name: Option<String>,
    /// File holding the PIN.
    pub pin_source: Option<PathBuf>,
}

impl Pkcs11Uri {
    /// True when the URI names a key (an object label or ID), not just a token.
    pub fn names_key(&self) -> bool {
        self.object.is_some() || self.id.is_some()
    }

    /// The same URI without object attributes: it names the token only.
    pub fn token_only(&self) -> Pkcs11Uri {
        Pkcs11Uri {
            object: None,
            id: None,
            object_type: None,
            ..self.clone()
        }
    }

    /// The URI without `pin-source`, for storing in the inventory.
    pub fn without_pin_source(&self) -> Pkcs11Uri {
        Pkcs11Uri {
            pin_source: None,
            ..self.clone()
        }
    }
}

fn bad(uri: &str, reason: impl Into<String>) -> Error {
    Error::KeyUri {
        uri: uri.into(),
        reason: reason.into(),
    }
}

fn pct_decode(uri: &str, value: &str) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(value.len());
    let mut rest = value.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b != b'%' {
            out.push(b);
            rest = tail;
            continue;
        }
        let (hex, tail) = tail
            .split_first_chunk::<2>()
            .ok_or_else(|| bad(uri, format!("truncated percent escape in `{value}`")))?;
        let hex = std::str::from_utf8(hex)
            .ok()
            .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
            .unwrap_or("??");
        let byte = u8::from_str_radix(hex, 16)
            .map_err(|_| bad(uri, format!("bad percent escape `%{hex}`")))?;
        out.push(byte);
        rest = tail;
    }
    Ok(out)
}

fn pct_decode_str(uri: &str, value: &str) -> Result<String> {
    String::from_utf8(pct_decode(uri, value)?).map_err(|_| bad(uri, "a value is not UTF-8"))
}

/// Percent-encodes everything outside RFC 7512's allowed characters. `extra` lists characters
/// allowed in this part beyond the unreserved set (the query also allows `/`).
fn pct_encode(value: &[u8], extra: &[u8]) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value {
        let allowed =
            b.is_ascii_alphanumeric() || b"-._~:[]@!$'()*+,".contains(&b) || extra.contains(&b);
        if allowed {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn pin_source_path(uri: &str, value: &str) -> Result<PathBuf> {
    let path = value.strip_prefix("file:").unwrap_or(value);
    // `file:///run/pin` (empty host) is `/run/pin`; `file://host/...` names another machine.
    let path = match path.strip_prefix("//") {
        Some(rest) if rest.starts_with('/') => rest,
        Some(_) => {
            return Err(bad(
                uri,
                "pin-source names a host (file://host/...); give file:/absolute/path",
            ));
        }
        None => path,
    };
    if !path.starts_with('/') {
        return Err(bad(
            uri,
            "pin-source must be file:/absolute/path (a relative path depends on where the command runs)",
        ));
    }
    Ok(PathBuf::from(path))
}

/// A file path as the `file:` value of a URI query: `file:/run/pin`, or `file:////x` for a
/// path that itself starts with `//` (so that it parses back to the same path).
fn file_value(path: &std::path::Path) -> String {
    let encoded = pct_encode(path.to_string_lossy().as_bytes(), b"/");
    if encoded.starts_with("//") {
        format!("file://{encoded}")
    } else {
        format!("file:{encoded}")
    }
}

/// A decimal number: digits only (no sign, no spaces).
fn decimal<T: FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// One `name=value` attribute of a URI, still percent-encoded; `in_path` tells the path part
/// (`;`-separated) from the query (`&`-separated).
struct Attribute<'a> {
    name: &'a str,
    value: &'a str,
    in_path: bool,
}

/// Splits a URI of `scheme` into its attributes, refusing the shapes no key URI may have:
/// a missing `=`, an attribute given twice, and secrets (`pin-value`, management keys).
fn attributes<'a>(s: &'a str, scheme: &str) -> Result<Vec<Attribute<'a>>> {
    let rest = s
        .strip_prefix(scheme)
        .ok_or_else(|| bad(s, format!("must start with {scheme}")))?;
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let parts = path
        .split(';')
        .filter(|a| !a.is_empty())
        .map(|a| (a, true))
        .chain(
            query
                .into_iter()
                .flat_map(|q| q.split('&'))
                .filter(|a| !a.is_empty())
                .map(|a| (a, false)),
        );
    let mut out: Vec<Attribute<'a>> = Vec::new();
    for (attribute, in_path) in parts {
        let (name, value) = attribute
            .split_once('=')
            .ok_or_else(|| bad(s, format!("`{attribute}` is not name=value")))?;
        if name == "pin-value" {
            return Err(Error::PinValueInUri);
        }
        if matches!(name, "management-key" | "management-key-value") {
            return Err(bad(
                s,
                "a management key inside the URI leaks into shell history and `ps`; use management-key-source=file:PATH",
            ));
        }
        if out.iter().any(|a| a.name == name) {
            return Err(bad(s, format!("`{name}` appears twice")));
        }
        out.push(Attribute {
            name,
            value,
            in_path,
        });
    }
    Ok(out)
}

impl FromStr for Pkcs11Uri {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let mut uri = Pkcs11Uri::default();
        for Attribute {
            name,
            value,
            in_path,
        } in attributes(s, "pkcs11:")?
        {
            match (name, in_path) {
                ("token", true) => uri.token = Some(pct_decode_str(s, value)?),
                ("manufacturer", true) => uri.manufacturer = Some(pct_decode_str(s, value)?),
                ("model", true) => uri.model = Some(pct_decode_str(s, value)?),
                ("serial", true) => uri.serial = Some(pct_decode_str(s, value)?),
                ("slot-id", true) => {
                    uri.slot_id = Some(
                        decimal(&pct_decode_str(s, value)?)
                            .ok_or_else(|| bad(s, "slot-id must be a decimal number"))?,
                    )
                }
                ("object", true) => uri.object = Some(pct_decode_str(s, value)?),
                ("id", true) => uri.id = Some(pct_decode(s, value)?),
                ("type", true) => {
                    uri.object_type = Some(match pct_decode_str(s, value)?.as_str() {
                        "private" => ObjectType::Private,
                        "public" => ObjectType::Public,
                        "cert" => ObjectType::Cert,
                        other => {
                            return Err(bad(
                                s,
                                format!("type={other} is not one of private, public, cert"),
                            ));
                        }
                    })
                }
                ("module-path", _) => {
                    uri.module_path = Some(PathBuf::from(pct_decode_str(s, value)?))
                }
                ("module-name", false) => uri.module_name = Some(pct_decode_str(s, value)?),
                ("pin-source", false) => {
                    uri.pin_source = Some(pin_source_path(s, &pct_decode_str(s, value)?)?)
                }
                (name, true) => {
                    return Err(bad(
                        s,
                        format!(
                            "unknown path attribute `{name}` (known: token, serial, manufacturer, model, slot-id, object, id, type, module-path)"
                        ),
                    ));
                }
                (name, false) => {
                    return Err(bad(
                        s,
                        format!(
                            "unknown query attribute `{name}` (known: module-path, module-name, pin-source)"
                        ),
                    ));
                }
            }
        }
        Ok(uri)
    }
}

impl fmt::Display for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut path = Vec::new();
        let text = |name: &str, value: &Option<String>, path: &mut Vec<String>| {
            if let Some(v) = value {
                path.push(format!("{name}={}", pct_encode(v.as_bytes(), b"&")));
            }
        };
        text("token", &self.token, &mut path);
        text("manufacturer", &self.manufacturer, &mut path);
        text("model", &self.model, &mut path);
        text("serial", &self.serial, &mut path);
        if let Some(slot) = self.slot_id {
            path.push(format!("slot-id={slot}"));
        }
        text("object", &self.object, &mut path);
        if let Some(id) = &self.id {
            let hex: String = id.iter().map(|b| format!("%{b:02X}")).collect();
            path.push(format!("id={hex}"));
        }
        if let Some(t) = self.object_type {
            path.push(format!("type={}", t.as_str()));
        }
        let mut query = Vec::new();
        if let Some(p) = &self.module_path {
            query.push(format!(
                "module-path={}",
                pct_encode(p.to_string_lossy().as_bytes(), b"/")
            ));
        }
        if let Some(n) = &self.module_name {
            query.push(format!("module-name={}", pct_encode(n.as_bytes(), b"/")));
        }
        if let Some(p) = &self.pin_source {
            query.push(format!("pin-source={}", file_value(p)));
        }
        write!(f, "pkcs11:{}", path.join(";"))?;
        if !query.is_empty() {
            write!(f, "?{}", query.join("&"))?;
        }
        Ok(())
    }
}

/// A PIV key slot that can hold a signing key: `9a`, `9c`, `9d`, `9e` or a retired slot
/// `82`..`95`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PivSlot(u8);

impl PivSlot {
    /// Every key slot, in the order `token list` shows them.
    pub fn all() -> impl Iterator<Item = PivSlot> {
        [0x9a, 0x9c, 0x9d, 0x9e]
            .into_iter()
            .chain(0x82..=0x95)
            .map(PivSlot)
    }

    /// The slot with this number, if it is a key slot.
    pub fn new(id: u8) -> Option<PivSlot> {
        matches!(id, 0x9a | 0x9c | 0x9d | 0x9e | 0x82..=0x95).then_some(PivSlot(id))
    }

    /// The slot number (e.g. `0x9c`).
    pub fn id(self) -> u8 {
        self.0
    }
}

impl fmt::Display for PivSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}", self.0)
    }
}

impl FromStr for PivSlot {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad_slot = || Error::KeyUri {
            uri: s.into(),
            reason: format!("`{s}` is not a PIV key slot (9a, 9c, 9d, 9e, 82 to 95)"),
        };
        let hex = s.strip_prefix("0x").unwrap_or(s);
        if hex.len() != 2 {
            return Err(bad_slot());
        }
        let id = u8::from_str_radix(hex, 16).map_err(|_| bad_slot())?;
        PivSlot::new(id).ok_or_else(bad_slot)
    }
}

/// A YubiKey (PIV applet), or a key slot on one:
///
/// ```text
/// yubikey:serial=12345678;slot=9c?pin-source=file:/run/pin&management-key-source=file:/run/mgm
/// ```
///
/// Path attributes: `serial` (decimal; without it, exactly one YubiKey must be present) and
/// `slot`. Query attributes: `pin-source` and `management-key-source` (`file:PATH`, absolute;
/// the management key file holds hex). `pin-value` and a management key value are refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct YubiKeyUri {
    /// The YubiKey's serial number.
    pub serial: Option<u32>,
    /// The PIV slot.
    pub slot: Option<PivSlot>,
    /// File holding the PIN.
    pub pin_source: Option<PathBuf>,
    /// File holding the management key (hex).
    pub management_key_source: Option<PathBuf>,
}

impl YubiKeyUri {
    /// True when the URI names a key (a slot), not just a YubiKey.
    pub fn names_key(&self) -> bool {
        self.slot.is_some()
    }

    /// The same URI without the slot: it names the YubiKey only.
    pub fn token_only(&self) -> YubiKeyUri {
        YubiKeyUri {
            slot: None,
            ..self.clone()
        }
    }

    /// The URI without `pin-source` and `management-key-source`, for the inventory.
    pub fn without_sources(&self) -> YubiKeyUri {
        YubiKeyUri {
            serial: self.serial,
            slot: self.slot,
            pin_source: None,
            management_key_source: None,
        }
    }
}

impl FromStr for YubiKeyUri {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let mut uri = YubiKeyUri::default();
        for Attribute {
            name,
            value,
            in_path,
        } in attributes(s, "yubikey:")?
        {
            let value = pct_decode_str(s, value)?;
            match (name, in_path) {
                ("serial", true) => {
                    uri.serial = Some(decimal(&value).ok_or_else(|| {
                        bad(s, "serial must be the YubiKey's decimal serial number")
                    })?)
                }
                ("slot", true) => {
                    uri.slot = Some(value.parse().map_err(|_| {
                        bad(
                            s,
                            format!(
                                "slot={value} is not a PIV key slot (9a, 9c, 9d, 9e, 82 to 95)"
                            ),
                        )
                    })?)
                }
                ("pin-source", false) => uri.pin_source = Some(pin_source_path(s, &value)?),
                ("management-key-source", false) => {
                    uri.management_key_source =
                        Some(pin_source_path(s, &value).map_err(|_| {
                            bad(s, "management-key-source must be file:/absolute/path")
                        })?)
                }
                (name, true) => {
                    return Err(bad(
                        s,
                        format!("unknown path attribute `{name}` (known: serial, slot)"),
                    ));
                }
                (name, false) => {
                    return Err(bad(
                        s,
                        format!(
                            "unknown query attribute `{name}` (known: pin-source, management-key-source)"
                        ),
                    ));
                }
            }
        }
        Ok(uri)
    }
}

impl fmt::Display for YubiKeyUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut path = Vec::new();
        if let Some(serial) = self.serial {
            path.push(format!("serial={serial}"));
        }
        if let Some(slot) = self.slot {
            path.push(format!("slot={slot}"));
        }
        let mut query = Vec::new();
        for (name, value) in [
            ("pin-source", &self.pin_source),
            ("management-key-source", &self.management_key_source),
        ] {
            if let Some(p) = value {
                query.push(format!("{name}={}", file_value(p)));
            }
        }
        write!(f, "yubikey:{}", path.join(";"))?;
        if !query.is_empty() {
            write!(f, "?{}", query.join("&"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_attribute() {
        let uri: Pkcs11Uri = "pkcs11:token=root-a;manufacturer=SoftHSM%20project;model=SoftHSM%20v2;serial=2c1f;slot-id=7;object=root-2026;id=%01%ab;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so&module-name=softhsm2&pin-source=file:/run/pin-a".parse().unwrap();
        assert_eq!(uri.token.as_deref(), Some("root-a"));
        assert_eq!(uri.manufacturer.as_deref(), Some("SoftHSM project"));
        assert_eq!(uri.model.as_deref(), Some("SoftHSM v2"));
        assert_eq!(uri.serial.as_deref(), Some("2c1f"));
        assert_eq!(uri.slot_id, Some(7));
        assert_eq!(uri.object.as_deref(), Some("root-2026"));
        assert_eq!(uri.id.as_deref(), Some(&[0x01, 0xab][..]));
        assert_eq!(uri.object_type, Some(ObjectType::Private));
        assert_eq!(
            uri.module_path.as_deref(),
            Some(std::path::Path::new("/usr/lib/softhsm/libsofthsm2.so"))
        );
        assert_eq!(uri.module_name.as_deref(), Some("softhsm2"));
        assert_eq!(
            uri.pin_source.as_deref(),
            Some(std::path::Path::new("/run/pin-a"))
        );
    }

    #[test]
    fn print_then_parse_is_identity() {
        for text in [
            "pkcs11:token=root-a;object=root-2026;id=%01?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin-a",
            "pkcs11:token=a%20b%3Bc;serial=00ff",
            "pkcs11:token=t;object=%C3%A9t%C3%A9;type=public",
            "pkcs11:",
        ] {
            let uri: Pkcs11Uri = text.parse().unwrap();
            let printed = uri.to_string();
            assert_eq!(printed, text);
            assert_eq!(printed.parse::<Pkcs11Uri>().unwrap(), uri);
        }
    }

    #[test]
    fn module_path_in_the_path_part_is_accepted() {
        let uri: Pkcs11Uri = "pkcs11:module-path=%2Fusr%2Flib%2Fx.so;token=t"
            .parse()
            .unwrap();
        assert_eq!(
            uri.module_path.as_deref(),
            Some(std::path::Path::new("/usr/lib/x.so"))
        );
        assert_eq!(uri.to_string(), "pkcs11:token=t?module-path=/usr/lib/x.so");
    }

    #[test]
    fn pin_value_is_refused() {
        let err = "pkcs11:token=t?pin-value=1234"
            .parse::<Pkcs11Uri>()
            .unwrap_err();
        assert!(matches!(err, Error::PinValueInUri));
        assert!(err.hint().unwrap().contains("shell history"));
        assert!(!err.to_string().contains("1234"));
    }

    #[test]
    fn mistakes_are_named() {
        for (text, needle) in [
            ("pkcs11:tokn=t", "unknown path attribute `tokn`"),
            ("pkcs11:token=t;token=u", "appears twice"),
            ("pkcs11:id=%0", "truncated percent escape"),
            ("pkcs11:slot-id=x", "slot-id"),
            ("pkcs11:token=t?pin-source=relative", "absolute"),
            ("pkcs11:token", "not name=value"),
            ("yubi:serial=1", "scheme"),
        ] {
            let err = text.parse::<KeyUri>().unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn yubikey_uri_parses_and_prints() {
        let text = "yubikey:serial=12345678;slot=9c?pin-source=file:/run/pin&management-key-source=file:/run/mgm";
        let uri: KeyUri = text.parse().unwrap();
        let KeyUri::YubiKey(yk) = &uri else {
            panic!("not a yubikey URI")
        };
        assert_eq!(yk.serial, Some(12345678));
        assert_eq!(yk.slot.map(PivSlot::id), Some(0x9c));
        assert_eq!(
            yk.pin_source.as_deref(),
            Some(std::path::Path::new("/run/pin"))
        );
        assert_eq!(
            yk.management_key_source.as_deref(),
            Some(std::path::Path::new("/run/mgm"))
        );
        assert!(yk.names_key());
        assert_eq!(uri.to_string(), text);
        assert_eq!(
            yk.without_sources().to_string(),
            "yubikey:serial=12345678;slot=9c"
        );
        assert_eq!(
            yk.token_only().without_sources().to_string(),
            "yubikey:serial=12345678"
        );
    }

    #[test]
    fn yubikey_print_then_parse_is_identity() {
        for text in [
            "yubikey:",
            "yubikey:serial=1",
            "yubikey:slot=9a",
            "yubikey:serial=4294967295;slot=95",
            "yubikey:slot=82?pin-source=file:/a%20b/pin",
            "yubikey:serial=7?management-key-source=file:/run/mgm",
        ] {
            let uri: YubiKeyUri = text.parse().unwrap();
            let printed = uri.to_string();
            assert_eq!(printed, text);
            assert_eq!(printed.parse::<YubiKeyUri>().unwrap(), uri);
        }
        // Upper-case slots are accepted and printed in lower case.
        let uri: YubiKeyUri = "yubikey:slot=9C".parse().unwrap();
        assert_eq!(uri.to_string(), "yubikey:slot=9c");
    }

    #[test]
    fn yubikey_slots() {
        let slots: Vec<String> = PivSlot::all().map(|s| s.to_string()).collect();
        assert_eq!(slots.len(), 24);
        assert_eq!(&slots[..5], ["9a", "9c", "9d", "9e", "82"]);
        assert_eq!(slots.last().unwrap(), "95");
        for bad_slot in ["9b", "f9", "80", "81", "96", "7f", "9", "09c", "zz"] {
            assert!(
                format!("yubikey:slot={bad_slot}")
                    .parse::<YubiKeyUri>()
                    .is_err(),
                "{bad_slot}"
            );
        }
    }

    #[test]
    fn yubikey_secrets_are_refused() {
        let err = "yubikey:serial=1?pin-value=123456"
            .parse::<KeyUri>()
            .unwrap_err();
        assert!(matches!(err, Error::PinValueInUri));
        assert!(!err.to_string().contains("123456"));
        let err = "yubikey:serial=1?management-key=010203"
            .parse::<KeyUri>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("management-key-source"), "{err}");
    }

    #[test]
    fn yubikey_mistakes_are_named() {
        for (text, needle) in [
            ("yubikey:serial=abc", "decimal serial"),
            ("yubikey:serial=1;serial=2", "appears twice"),
            ("yubikey:slot=9b", "not a PIV key slot"),
            ("yubikey:reader=x", "unknown path attribute `reader`"),
            ("yubikey:serial=1?module-path=/x", "unknown query attribute"),
            ("yubikey:serial=1?pin-source=pin", "absolute"),
            ("yubikey:serial=1?management-key-source=mgm", "absolute"),
            ("yubikey:serial", "not name=value"),
        ] {
            let err = text.parse::<KeyUri>().unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
