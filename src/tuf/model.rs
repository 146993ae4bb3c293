//! The metadata model: keys, roles, signatures, the four role files, the signed envelope, and
//! times in Go's own RFC 3339 form. Nothing here touches hardware.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::tuf::canonical;

/// A point in time, UTC, with nanoseconds: how metadata writes `expires`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UtcTime {
    secs: i64,
    nanos: u32,
}

const SECS_PER_DAY: i64 = 86_400;

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp as i64 + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

impl UtcTime {
    /// Now.
    pub fn now() -> UtcTime {
        Self::from_system(SystemTime::now())
    }

    /// From a `SystemTime`.
    pub fn from_system(t: SystemTime) -> UtcTime {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => UtcTime {
                secs: d.as_secs() as i64,
                nanos: d.subsec_nanos(),
            },
            Err(e) => {
                let d = e.duration();
                let mut secs = -(d.as_secs() as i64);
                let mut nanos = d.subsec_nanos();
                if nanos > 0 {
                    secs -= 1;
                    nanos = 1_000_000_000 - nanos;
                }
                UtcTime { secs, nanos }
            }
        }
    }

    /// As a `SystemTime`.
    pub fn to_system(self) -> SystemTime {
        if self.secs >= 0 {
            UNIX_EPOCH + Duration::new(self.secs as u64, self.nanos)
        } else {
            UNIX_EPOCH - Duration::from_secs((-self.secs) as u64)
                + Duration::from_nanos(self.nanos as u64)
        }
    }

    /// Seconds since the Unix epoch.
    pub fn unix_seconds(self) -> i64 {
        self.secs
    }

    /// The same time with the fraction of a second dropped.
    pub fn whole_seconds(self) -> UtcTime {
        UtcTime {
            secs: self.secs,
            nanos: 0,
        }
    }

    /// This time plus `d`.
    pub fn plus(self, d: Duration) -> UtcTime {
        let total = self.nanos as u64 + d.subsec_nanos() as u64;
        UtcTime {
            secs: self.secs + d.as_secs() as i64 + (total / 1_000_000_000) as i64,
            nanos: (total % 1_000_000_000) as u32,
        }
    }

    /// Go's `time.Time` JSON form in UTC: `2036-11-25T07:39:08.482378058Z`, fraction trimmed of
    /// trailing zeros and left out when zero. This is what survives notary-server's round trip.
    pub fn to_go_string(self) -> String {
        let days = self.secs.div_euclid(SECS_PER_DAY);
        let rem = self.secs.rem_euclid(SECS_PER_DAY);
        let (y, m, d) = civil_from_days(days);
        let mut s = format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        );
        if self.nanos > 0 {
            let frac = format!("{:09}", self.nanos);
            s.push('.');
            s.push_str(frac.trim_end_matches('0'));
        }
        s.push('Z');
        s
    }

    /// Parses any RFC 3339 time (`Z` or `±hh:mm`, up to 9 fractional digits).
    pub fn parse(text: &str) -> Result<UtcTime> {
        let bad = || {
            Error::Invalid(format!(
                "`{text}` is not an RFC 3339 time such as 2036-01-31T12:00:00Z"
            ))
        };
        let b = text.as_bytes();
        if b.len() < 20
            || b[4] != b'-'
            || b[7] != b'-'
            || !matches!(b[10], b'T' | b't')
            || b[13] != b':'
            || b[16] != b':'
        {
            return Err(bad());
        }
        let num = |r: std::ops::Range<usize>| -> Result<i64> {
            let s = text.get(r).ok_or_else(bad)?;
            if !s.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            s.parse().map_err(|_| bad())
        };
        let (y, mo, d, h, mi, s) = (
            num(0..4)?,
            num(5..7)?,
            num(8..10)?,
            num(11..13)?,
            num(14..16)?,
            num(17..19)?,
        );
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
            return Err(bad());
        }
        let mut i = 19;
        let mut nanos = 0u32;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let digits = &text[start..i];
            if digits.is_empty() || digits.len() > 9 {
                return Err(bad());
            }
            nanos = format!("{digits:0<9}").parse().map_err(|_| bad())?;
        }
        let offset = match &text[i..] {
            "Z" | "z" => 0,
            rest if rest.len() == 6
                && (rest.starts_with('+') || rest.starts_with('-'))
                && &rest[3..4] == ":" =>
            {
                let oh = num(i + 1..i + 3)?;
                let om = num(i + 4..i + 6)?;
                let sign = if rest.starts_with('-') { -1 } else { 1 };
                sign * (oh * 3600 + om * 60)
            }
            _ => return Err(bad()),
        };
        let secs = days_from_civil(y, mo as u32, d as u32) * SECS_PER_DAY + h * 3600 + mi * 60 + s
            - offset;
        Ok(UtcTime { secs, nanos })
    }
}

impl std::fmt::Display for UtcTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_go_string())
    }
}

/// Parses an expiry given on the command line: a duration from now (`10y`, `18m`... see below)
/// or an RFC 3339 time. Units: `y` (365 days, as Notary counts), `w`, `d`, `h`.
pub fn parse_expiry(text: &str, now: UtcTime) -> Result<UtcTime> {
    if text.contains('T') {
        return UtcTime::parse(text);
    }
    let bad = || {
        Error::Invalid(format!(
            "--expires `{text}`: give a duration such as 10y, 90d, 26w, 12h, or an RFC 3339 time"
        ))
    };
    let unit = text.chars().last().ok_or_else(bad)?;
    let count: u64 = text[..text.len() - unit.len_utf8()]
        .parse()
        .map_err(|_| bad())?;
    let secs = match unit {
        'y' => count * 365 * 86_400,
        'w' => count * 7 * 86_400,
        'd' => count * 86_400,
        'h' => count * 3_600,
        _ => return Err(bad()),
    };
    Ok(now.plus(Duration::from_secs(secs)))
}

/// A duration of `days` days.
pub fn days(days: u64) -> Duration {
    Duration::from_secs(days * 86_400)
}

/// A public key as metadata writes it: `{"keytype":…,"keyval":{"private":null,"public":…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKey {
    /// `ecdsa`, `ecdsa-x509`, `ed25519`, `rsa`, `rsa-x509`.
    pub keytype: String,
    /// The key value.
    pub keyval: KeyVal,
}

/// The `keyval` of a key. `private` is always null in metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyVal {
    /// Always `None`.
    pub private: Option<String>,
    /// The base64 public part.
    pub public: String,
}

impl PublicKey {
    /// A key of `keytype` with `public` (base64).
    pub fn new(keytype: &str, public: String) -> PublicKey {
        PublicKey {
            keytype: keytype.into(),
            keyval: KeyVal {
                private: None,
                public,
            },
        }
    }
}

/// A role in root: the keys that may sign it and how many must.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// Key IDs.
    pub keyids: Vec<String>,
    /// Signatures needed.
    pub threshold: u64,
}

/// One signature in an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// The signing key's ID.
    pub keyid: String,
    /// `ecdsa`, `eddsa`, `rsapss`...
    pub method: String,
    /// Base64 signature.
    pub sig: String,
}

/// root.json's `signed` part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Root {
    /// `Root`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// Always false in Notary.
    pub consistent_snapshot: bool,
    /// Expiry (Go RFC 3339).
    pub expires: String,
    /// Every key, by ID.
    pub keys: BTreeMap<String, PublicKey>,
    /// `root`, `targets`, `snapshot`, `timestamp`.
    pub roles: BTreeMap<String, Role>,
    /// Version, from 1.
    pub version: u64,
}

/// Hashes and length of a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMeta {
    /// `sha256` and `sha512`, base64.
    pub hashes: BTreeMap<String, String>,
    /// Length in bytes.
    pub length: u64,
    /// Opaque custom data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<Value>,
}

/// A delegated role in targets.json.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelegationRole {
    /// Key IDs.
    pub keyids: Vec<String>,
    /// `targets/...`.
    pub name: String,
    /// Path prefixes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// Signatures needed.
    pub threshold: u64,
}

/// `delegations` of a targets file (always present, even when empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delegations {
    /// Delegation keys.
    pub keys: BTreeMap<String, PublicKey>,
    /// Delegated roles.
    pub roles: Vec<DelegationRole>,
}

/// targets.json's `signed` part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Targets {
    /// `Targets`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// Delegations.
    pub delegations: Delegations,
    /// Expiry.
    pub expires: String,
    /// Target files.
    pub targets: BTreeMap<String, FileMeta>,
    /// Version.
    pub version: u64,
}

/// snapshot.json's or timestamp.json's `signed` part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaRole {
    /// `Snapshot` or `Timestamp`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// Expiry.
    pub expires: String,
    /// File metadata by role name.
    pub meta: BTreeMap<String, FileMeta>,
    /// Version.
    pub version: u64,
}

/// A signed metadata file: the `signed` value and its signatures.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// The `signed` part, as parsed (signatures are checked over its canonical form).
    pub signed: Value,
    /// The signatures.
    pub signatures: Vec<Signature>,
}

impl Envelope {
    /// Wraps a typed `signed` part with no signatures yet.
    pub fn new<T: Serialize>(signed: &T) -> Result<Envelope> {
        Ok(Envelope {
            signed: serde_json::to_value(signed).map_err(|e| Error::Metadata {
                file: "metadata".into(),
                reason: e.to_string(),
            })?,
            signatures: Vec::new(),
        })
    }

    /// Parses file bytes.
    pub fn parse(file: &str, bytes: &[u8]) -> Result<Envelope> {
        #[derive(Deserialize)]
        struct Raw {
            signed: Value,
            signatures: Option<Vec<Signature>>,
        }
        let raw: Raw = serde_json::from_slice(bytes).map_err(|e| Error::Rule {
            file: file.into(),
            rule: "parse",
            detail: format!("not a signed metadata file: {e}"),
        })?;
        Ok(Envelope {
            signed: raw.signed,
            signatures: raw.signatures.unwrap_or_default(),
        })
    }

    /// The `_type` of the signed part.
    pub fn type_name(&self) -> &str {
        self.signed
            .get("_type")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// The signed part as a typed role.
    pub fn typed<T: for<'de> Deserialize<'de>>(&self, file: &str) -> Result<T> {
        serde_json::from_value(self.signed.clone()).map_err(|e| Error::Rule {
            file: file.into(),
            rule: "structure",
            detail: e.to_string(),
        })
    }

    /// The bytes that are signed: canonical JSON of `signed`.
    pub fn signed_bytes(&self) -> Result<Vec<u8>> {
        canonical::to_canonical(&self.signed)
    }

    /// The file bytes, exactly as Go's `json.Marshal` of notary's `data.Signed` writes them.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(2048);
        out.extend_from_slice(b"{\"signed\":");
        out.extend_from_slice(&self.signed_bytes()?);
        out.extend_from_slice(b",\"signatures\":[");
        for (i, s) in self.signatures.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let sig = serde_json::json!({"keyid": s.keyid, "method": s.method, "sig": s.sig});
            // Go writes struct fields in declaration order, which is keyid, method, sig: sorted.
            out.extend_from_slice(&canonical::to_canonical(&sig)?);
        }
        out.extend_from_slice(b"]}");
        Ok(canonical::html_escape(&out))
    }

    /// The signature by `keyid`, if any.
    pub fn signature_by(&self, keyid: &str) -> Option<&Signature> {
        self.signatures.iter().find(|s| s.keyid == keyid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_time_format_round_trips() {
        for text in [
            "2036-11-25T07:39:08.482378058Z",
            "2036-11-25T07:39:08Z",
            "2029-11-27T07:39:44.4745478Z",
            "1970-01-01T00:00:00Z",
            "2000-02-29T23:59:59.5Z",
        ] {
            assert_eq!(UtcTime::parse(text).unwrap().to_go_string(), text);
        }
        assert_eq!(
            UtcTime::parse("2116-07-03T17:56:36.027379879-05:00")
                .unwrap()
                .to_go_string(),
            "2116-07-03T22:56:36.027379879Z"
        );
        assert!(UtcTime::parse("2036-13-01T00:00:00Z").is_err());
        assert!(UtcTime::parse("2036-01-01 00:00:00Z").is_err());
    }

    #[test]
    fn matches_system_time() {
        let now = SystemTime::now();
        let t = UtcTime::from_system(now);
        assert_eq!(t.to_system(), now);
        assert_eq!(UtcTime::parse(&t.to_go_string()).unwrap(), t);
    }

    #[test]
    fn expiry_durations() {
        let now = UtcTime::parse("2026-01-01T00:00:00Z").unwrap();
        assert_eq!(
            parse_expiry("10y", now).unwrap().to_go_string(),
            "2035-12-30T00:00:00Z"
        );
        assert_eq!(
            parse_expiry("2d", now).unwrap().to_go_string(),
            "2026-01-03T00:00:00Z"
        );
        assert!(parse_expiry("10", now).is_err());
        assert!(parse_expiry("x", now).is_err());
    }
}
