//! Canonical JSON as Notary (docker/go `MarshalCanonical`) writes it, and the file envelope as
//! Go's `encoding/json` writes it.
//!
//! Canonical: no whitespace, object keys sorted by bytes, integers only, and in strings only `"`
//! and `\` escaped (everything else raw UTF-8). Control characters are refused: Go would write
//! them raw and produce invalid JSON.
//!
//! Envelope: `{"signed":<canonical>,"signatures":[{"keyid":…,"method":…,"sig":…}]}` with `signed`
//! first and Go's HTML escaping (`<` `>` `&` U+2028 U+2029 as `\u…`). notary-server re-serialises
//! every upload this way and hashes the result, so our bytes must be exactly these.

use serde_json::Value;

use crate::error::{Error, Result};

/// Serialises `value` as canonical JSON.
pub fn to_canonical(value: &Value) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(1024);
    write_value(&mut out, value)?;
    Ok(out)
}

fn write_value(out: &mut Vec<u8>, value: &Value) -> Result<()> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            // Go's verifier decodes numbers as float64: only integers up to 2^53 survive.
            let limit = crate::tuf::model::MAX_SAFE_INTEGER;
            let text = match (n.as_u64(), n.as_i64()) {
                (Some(u), _) if u <= limit => u.to_string(),
                (None, Some(i)) if i.unsigned_abs() <= limit => i.to_string(),
                _ => {
                    return Err(Error::Metadata {
                        file: "canonical JSON".into(),
                        reason: format!("the number {n} is not an integer between -2^53 and 2^53"),
                    });
                }
            };
            out.extend_from_slice(text.as_bytes());
        }
        Value::String(s) => write_string(out, s)?,
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(out, key)?;
                out.push(b':');
                write_value(out, item)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_string(out: &mut Vec<u8>, s: &str) -> Result<()> {
    out.push(b'"');
    for &b in s.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x00..=0x1f => {
                return Err(Error::Metadata {
                    file: "canonical JSON".into(),
                    reason: format!("a string contains the control character {b:#04x}"),
                });
            }
            _ => out.push(b),
        }
    }
    out.push(b'"');
    Ok(())
}

/// Go's `encoding/json` HTML escaping, applied to JSON text: `<` `>` `&` and U+2028/U+2029
/// can only occur inside strings, so escaping them byte-wise is exact.
pub fn html_escape(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len());
    let mut rest = json;
    while let Some((&b, tail)) = rest.split_first() {
        match (b, tail) {
            (b'<', _) => out.extend_from_slice(b"\\u003c"),
            (b'>', _) => out.extend_from_slice(b"\\u003e"),
            (b'&', _) => out.extend_from_slice(b"\\u0026"),
            (0xE2, [0x80, 0xA8, more @ ..]) => {
                out.extend_from_slice(b"\\u2028");
                rest = more;
                continue;
            }
            (0xE2, [0x80, 0xA9, more @ ..]) => {
                out.extend_from_slice(b"\\u2029");
                rest = more;
                continue;
            }
            (b, _) => out.push(b),
        }
        rest = tail;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_and_escapes_only_quote_and_backslash() {
        let v = json!({"b": 1, "_type": "Root", "a": ["x\"y\\z", "<é>&"], "n": null, "t": true});
        assert_eq!(
            String::from_utf8(to_canonical(&v).unwrap()).unwrap(),
            r#"{"_type":"Root","a":["x\"y\\z","<é>&"],"b":1,"n":null,"t":true}"#
        );
    }

    #[test]
    fn refuses_fractions_and_control_characters() {
        assert!(to_canonical(&json!({"a": 1.5})).is_err());
        assert!(to_canonical(&json!(2.0)).is_err());
        assert_eq!(
            to_canonical(&json!(9007199254740992u64)).unwrap(),
            b"9007199254740992"
        );
        assert!(to_canonical(&json!(9007199254740993u64)).is_err());
        assert_eq!(to_canonical(&json!(-3)).unwrap(), b"-3");
        assert!(to_canonical(&json!("a\nb")).is_err());
    }

    #[test]
    fn html_escape_matches_go() {
        assert_eq!(
            html_escape("{\"a\":\"<b>&\u{2028}\u{2029}é\"}".as_bytes()),
            br#"{"a":"\u003cb\u003e\u0026\u2028\u2029"#
                .iter()
                .copied()
                .chain("é\"}".bytes())
                .collect::<Vec<u8>>()
        );
    }
}
