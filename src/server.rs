//! A notary-server client: fetch a GUN's timestamp (or snapshot) key, publish exported files in
//! one multipart POST, and read back what the server serves to confirm the publish took.
//!
//! notary-server answers 200 even when it cannot build a timestamp for what it stored (the
//! silent breakage of research/notary-format.md §1.3), so [`TrustServer::confirm`] reads
//! `timestamp.json` back and checks it covers our snapshot.
//!
//! What the server sends ends up signed into a root (its timestamp key) or trusted by every
//! client, so the transport is strict:
//! - `https://` (the certificate checked against the web roots, or `--ca`); `http://` only to a
//!   loopback address (127.0.0.0/8, `::1`, `localhost`), refused before any network access
//!   otherwise ([`Error::PlainHttp`]). Plain-http requests never go through a proxy named in
//!   the environment (`HTTP_PROXY`, `ALL_PROXY`), which would carry them off the machine.
//! - No redirect is followed: a 3xx answer is an error naming its `Location`
//!   ([`Error::Redirect`]), so a POST never becomes a GET elsewhere and a GET never silently
//!   goes to another host.
//! - Server text that can reach the operator (error bodies, `errors[].message/detail`,
//!   `Location`, parse errors quoting served bytes) is escaped and bounded with
//!   [`crate::text::escape_untrusted`].

use std::net::{IpAddr, ToSocketAddrs as _};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::fingerprint::Fingerprint;
use crate::text::{escape_untrusted, escape_untrusted_bytes};
use crate::tuf::model::{Signed, Snapshot, Timestamp};
use crate::tuf::notary;

/// A trust server at a base URL.
pub struct TrustServer {
    base: String,
    agent: ureq::Agent,
}

impl std::fmt::Debug for TrustServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustServer")
            .field("base", &self.base)
            .finish()
    }
}

/// What the server served after a publish.
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct Confirmation {
    /// Version of the timestamp the server made.
    pub timestamp_version: u64,
    /// Version of the snapshot the timestamp covers.
    pub snapshot_version: u64,
    /// The fingerprint of the root.json the server serves (the one uploaded), to read aloud.
    pub root_fingerprint: Fingerprint,
}

/// How a checked `--server` URL is reached.
#[derive(Debug, PartialEq, Eq)]
enum Transport {
    /// `https://`.
    Https,
    /// `http://` to a loopback IP address.
    LoopbackIp,
    /// `http://localhost[:port]`: loopback by name, checked against what it resolves to.
    Localhost(u16),
}

/// Checks `url` as a trust server base URL, without any I/O.
fn check_url(url: &str) -> Result<Transport> {
    let bad = |why: &str| {
        Error::Invalid(format!(
            "--server {}: {why}; give a URL such as https://notary.example.com:4443",
            escape_untrusted(url)
        ))
    };
    let uri: ureq::http::Uri = url.parse().map_err(|_| bad("not a URL"))?;
    let authority = uri.authority().ok_or_else(|| bad("no host"))?;
    if authority.as_str().contains('@') {
        return Err(bad("a user@ part hides which host is meant"));
    }
    if uri.query().is_some() || url.contains('#') {
        return Err(bad("a base URL takes no ?query or #fragment"));
    }
    let host = authority.host();
    match uri.scheme_str() {
        Some("https") => Ok(Transport::Https),
        Some("http") => {
            if host.eq_ignore_ascii_case("localhost") {
                return Ok(Transport::Localhost(authority.port_u16().unwrap_or(80)));
            }
            let ip = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            match ip.parse::<IpAddr>() {
                Ok(ip) if ip.is_loopback() => Ok(Transport::LoopbackIp),
                _ => Err(Error::PlainHttp {
                    url: url.into(),
                    detail: format!(
                        "{} is not a loopback address (127.0.0.0/8, ::1, localhost); use https",
                        escape_untrusted(host)
                    ),
                }),
            }
        }
        _ => Err(bad("only https:// (or http:// to loopback) is spoken")),
    }
}

/// Errors made from bytes the server sent may quote them (serde names unknown fields and bad
/// values): escape what they say.
fn quoting_server(e: Error) -> Error {
    match e {
        Error::Metadata { file, reason } => Error::Metadata {
            file,
            reason: escape_untrusted(&reason),
        },
        Error::Rule { file, rule, detail } => Error::Rule {
            file,
            rule,
            detail: escape_untrusted(&detail),
        },
        Error::Key { what, reason } => Error::Key {
            what,
            reason: escape_untrusted(&reason),
        },
        Error::Invalid(reason) => Error::Invalid(escape_untrusted(&reason)),
        other => other,
    }
}

impl TrustServer {
    /// A client for `url`: `https://…`, or `http://…` to a loopback address only (see the
    /// module documentation); `ca` is a PEM file of the CA certificates to trust for https
    /// instead of the built-in web roots. Any other `http://` URL is refused here, before any
    /// network access, with [`Error::PlainHttp`].
    pub fn new(url: &str, ca: Option<&Path>) -> Result<TrustServer> {
        let transport = check_url(url)?;
        if let Transport::Localhost(port) = transport {
            // `localhost` should resolve to loopback only (RFC 6761); refuse if it does not here.
            if let Ok(addrs) = ("localhost", port).to_socket_addrs()
                && let Some(away) = addrs.map(|a| a.ip()).find(|ip| !ip.is_loopback())
            {
                return Err(Error::PlainHttp {
                    url: url.into(),
                    detail: format!("localhost resolves to {away} on this machine"),
                });
            }
        }
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(ca) = ca {
            let pem = crate::trustdir::read(ca)?;
            let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(Error::Key {
                    what: ca.display().to_string(),
                    reason: "holds no PEM certificate".into(),
                });
            }
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
        }
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(60)))
            .tls_config(tls.build());
        if transport != Transport::Https {
            config = config.proxy(None);
        }
        let config = config.build();
        Ok(TrustServer {
            base: url.trim_end_matches('/').to_owned(),
            agent: ureq::Agent::new_with_config(config),
        })
    }

    fn tuf_url(&self, gun: &str, name: &str) -> String {
        format!("{}/v2/{gun}/_trust/tuf/{name}", self.base)
    }

    /// The status and body of an answer; a redirect is an error.
    fn answer(
        &self,
        url: &str,
        result: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<(u16, Vec<u8>)> {
        let unreachable = |e: ureq::Error| Error::Http {
            url: url.into(),
            reason: escape_untrusted(&e.to_string()),
        };
        let mut response = result.map_err(unreachable)?;
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(ureq::http::header::LOCATION)
                .map_or_else(
                    || "nowhere (no Location header)".to_owned(),
                    |l| escape_untrusted_bytes(l.as_bytes()),
                );
            return Err(Error::Redirect {
                url: url.into(),
                status: status.as_u16(),
                location,
            });
        }
        let body = response.body_mut().read_to_vec().map_err(unreachable)?;
        Ok((status.as_u16(), body))
    }

    /// The error for a non-200 answer: the distribution errcode messages
    /// (`{"errors":[{"code","message","detail"}]}`) or the start of the body, escaped.
    fn server_error(url: &str, status: u16, body: &[u8]) -> Error {
        let text = |v: Option<&Value>| match v {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        };
        let message = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| {
                let errors = v.get("errors")?.as_array()?;
                let each: Vec<String> = errors
                    .iter()
                    .map(|e| {
                        let code = text(e.get("code"));
                        let message = text(e.get("message"));
                        match text(e.get("detail")) {
                            d if d.is_empty() => format!("{code}: {message}"),
                            detail => format!("{code}: {message} ({detail})"),
                        }
                    })
                    .collect();
                Some(escape_untrusted(&each.join("; ")))
            })
            .unwrap_or_else(|| escape_untrusted_bytes(body.trim_ascii()));
        Error::Server {
            url: url.into(),
            status,
            message: if message.is_empty() {
                "(no message)".into()
            } else {
                message
            },
        }
    }

    /// `GET <gun>/_trust/tuf/<name>`: the bytes, or `None` on 404.
    pub fn get(&self, gun: &str, name: &str) -> Result<Option<Vec<u8>>> {
        let url = self.tuf_url(gun, name);
        let (status, body) = self.answer(&url, self.agent.get(&url).call())?;
        match status {
            200 => Ok(Some(body)),
            404 => Ok(None),
            _ => Err(Self::server_error(&url, status, &body)),
        }
    }

    /// The server's public key for `role` (`timestamp` or `snapshot`) of `gun`, as the server
    /// writes it; the server creates the key on first request.
    pub fn role_key(&self, gun: &str, role: &str) -> Result<Vec<u8>> {
        let name = format!("{role}.key");
        let url = self.tuf_url(gun, &name);
        let body = self.get(gun, &name)?.ok_or_else(|| Error::Server {
            url: url.clone(),
            status: 404,
            message: "no key".into(),
        })?;
        notary::parse_server_key(&url, &body).map_err(quoting_server)?;
        Ok(body)
    }

    /// Asks the server for a new key for `role` (`timestamp` or `snapshot`) of `gun`
    /// (`POST …/<role>.key`); the repository keeps using the old one until a root naming the
    /// new one is published.
    pub fn rotate_role_key(&self, gun: &str, role: &str) -> Result<Vec<u8>> {
        let url = self.tuf_url(gun, &format!("{role}.key"));
        let (status, body) = self.answer(&url, self.agent.post(&url).send_empty())?;
        if status != 200 {
            return Err(Self::server_error(&url, status, &body));
        }
        notary::parse_server_key(&url, &body).map_err(quoting_server)?;
        Ok(body)
    }

    /// Publishes `files` (role name, exact bytes) for `gun` in one multipart POST, as the
    /// notary client does: one part per role, field `files`, filename = the role.
    pub fn publish(&self, gun: &str, files: &[(&str, &[u8])]) -> Result<()> {
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).map_err(|e| Error::Invalid(format!("no randomness: {e}")))?;
        let boundary = hex::encode(nonce);
        let mut body = Vec::new();
        for (role, bytes) in files {
            body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{role}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes());
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        let url = self.tuf_url(gun, "");
        let request = self
            .agent
            .post(&url)
            .header(
                "Content-Type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .send(body.as_slice());
        let (status, answer) = self.answer(&url, request)?;
        if status != 200 {
            return Err(Self::server_error(&url, status, &answer));
        }
        Ok(())
    }

    /// Reads back what the server serves for `gun` after a publish and checks that it is ours:
    /// root.json byte for byte, and a timestamp covering the snapshot (ours, or the one the
    /// server signed over our root and targets).
    ///
    /// A served root.json that differs from `root` is the error [`Error::RootMismatch`], with
    /// both SHA-256s.
    pub fn confirm(
        &self,
        gun: &str,
        root: &[u8],
        targets: &[u8],
        snapshot: Option<&[u8]>,
    ) -> Result<Confirmation> {
        let broken = |what: String| Error::Server {
            url: self.tuf_url(gun, ""),
            status: 200,
            message: format!("the publish was accepted but {what}; the repository is not usable"),
        };
        let served_root = self
            .get(gun, "root.json")?
            .ok_or_else(|| broken("root.json is not served".into()))?;
        let root_fingerprint = Fingerprint::of(root);
        if served_root != root {
            return Err(Error::RootMismatch {
                url: self.tuf_url(gun, "root.json"),
                uploaded: root_fingerprint.hex(),
                served: Fingerprint::of(&served_root).hex(),
            });
        }
        let timestamp = self
            .get(gun, "timestamp.json")?
            .ok_or_else(|| broken("the server made no timestamp (its hash of the snapshot does not match the bytes sent)".into()))?;
        let timestamp =
            Signed::<Timestamp>::parse("timestamp.json", &timestamp).map_err(quoting_server)?;
        let snapshot_bytes = match snapshot {
            Some(s) => s.to_vec(),
            None => self
                .get(gun, "snapshot.json")?
                .ok_or_else(|| broken("the server made no snapshot".into()))?,
        };
        let have = timestamp
            .signed
            .meta
            .get("snapshot")
            .ok_or_else(|| broken("the timestamp names no snapshot".into()))?;
        if !notary::meta_matches(have, &snapshot_bytes) {
            return Err(broken(
                "the timestamp covers another snapshot than ours".into(),
            ));
        }
        let snap =
            Signed::<Snapshot>::parse("snapshot.json", &snapshot_bytes).map_err(quoting_server)?;
        for (name, bytes) in [("root", root), ("targets", targets)] {
            let meta = snap
                .signed
                .meta
                .get(name)
                .ok_or_else(|| broken(format!("the snapshot has no {name}")))?;
            if !notary::meta_matches(meta, bytes) {
                return Err(broken(format!(
                    "the snapshot covers another {name}.json than ours"
                )));
            }
        }
        Ok(Confirmation {
            timestamp_version: timestamp.signed.version.get(),
            snapshot_version: snap.signed.version.get(),
            root_fingerprint,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_is_spoken_anywhere() {
        for url in [
            "https://notary.example.com",
            "https://notary.example.com:4443/",
            "HTTPS://10.0.0.5/prefix",
        ] {
            assert_eq!(check_url(url).unwrap(), Transport::Https, "{url}");
        }
    }

    #[test]
    fn plain_http_only_to_loopback() {
        for url in [
            "http://127.0.0.1:4443",
            "http://127.8.9.10/",
            "http://[::1]:8080/v",
            "HTTP://127.0.0.1",
        ] {
            assert_eq!(check_url(url).unwrap(), Transport::LoopbackIp, "{url}");
        }
        assert_eq!(
            check_url("http://LocalHost:4443").unwrap(),
            Transport::Localhost(4443)
        );
        assert_eq!(
            check_url("http://localhost").unwrap(),
            Transport::Localhost(80)
        );
        for url in [
            "http://notary.example.com",
            "http://notary.example.com:80/",
            "http://10.0.0.5:4443",
            "http://[::ffff:10.0.0.5]",
            "http://[fe80::1]",
            "http://0.0.0.0:4443",
            "http://127.1",
            "http://localhost.example.com",
            "http://127.0.0.1.nip.io",
        ] {
            match check_url(url) {
                Err(Error::PlainHttp { url: u, detail }) => {
                    assert_eq!(u, url);
                    assert!(detail.contains("not a loopback address"), "{detail}");
                }
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    #[test]
    fn refused_before_any_network_access() {
        // check_url does no I/O, and TrustServer::new calls it first: a refused URL never
        // reaches a resolver or a socket (the fixture tests check the wire side).
        let e = TrustServer::new("http://notary.example.com", None).unwrap_err();
        assert!(matches!(e, Error::PlainHttp { .. }), "{e}");
        assert!(e.hint().unwrap().contains("swapped by anyone on the path"));
    }

    #[test]
    fn urls_that_hide_their_host_are_refused() {
        for url in [
            "http://127.0.0.1@notary.example.com/",
            "https://user:pw@notary.example.com/",
            "https://notary.example.com/?x=1",
            "https://notary.example.com/#x",
            "ftp://notary.example.com",
            "notary.example.com",
            "https://",
            "http://\u{1b}[2J",
        ] {
            match check_url(url) {
                Err(Error::Invalid(m)) => assert!(!m.contains('\u{1b}'), "{m}"),
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    #[test]
    fn server_text_is_escaped() {
        let body = br#"{"errors":[{"code":"INVALID_UPDATE","message":"\u001b[2Jok\u0007","detail":{"Name":"\u202egro"}}]}"#;
        let e = TrustServer::server_error("u", 400, body);
        let text = e.to_string();
        assert!(
            text.contains("INVALID_UPDATE: \\x1b[2Jok\\x07 ({\"Name\":\"\\u{202e}gro\"})"),
            "{text}"
        );
        let e = TrustServer::server_error("u", 500, b"  \x1b]0;title\x07\xe2\x80\xae\xff  ");
        assert!(
            e.to_string()
                .ends_with(": \\x1b]0;title\\x07\\u{202e}\\xff"),
            "{e}"
        );
        let e = TrustServer::server_error("u", 500, b"");
        assert!(e.to_string().ends_with("(no message)"), "{e}");
    }
}
