//! A notary-server client: fetch a GUN's timestamp (or snapshot) key, publish exported files in
//! one multipart POST, and read back what the server serves to confirm the publish took.
//!
//! notary-server answers 200 even when it cannot build a timestamp for what it stored (the
//! silent breakage of research/notary-format.md §1.3), so [`TrustServer::confirm`] reads
//! `timestamp.json` back and checks it covers our snapshot.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::tuf::model::{Envelope, MetaRole};
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
pub struct Confirmation {
    /// Version of the timestamp the server made.
    pub timestamp_version: u64,
    /// Version of the snapshot the timestamp covers.
    pub snapshot_version: u64,
    /// The server serves our root.json byte for byte.
    pub root_matches: bool,
}

impl TrustServer {
    /// A client for `url` (`http://…` or `https://…`); `ca` is a PEM file of the CA certificates
    /// to trust for https instead of the built-in web roots.
    pub fn new(url: &str, ca: Option<&Path>) -> Result<TrustServer> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Error::Invalid(format!(
                "--server {url}: give a URL such as https://notary.example.com:4443"
            )));
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
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .tls_config(tls.build())
            .build();
        Ok(TrustServer {
            base: url.trim_end_matches('/').to_owned(),
            agent: ureq::Agent::new_with_config(config),
        })
    }

    fn tuf_url(&self, gun: &str, name: &str) -> String {
        format!("{}/v2/{gun}/_trust/tuf/{name}", self.base)
    }

    fn answer(
        &self,
        url: &str,
        result: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<(u16, Vec<u8>)> {
        let mut response = result.map_err(|e| Error::Http {
            url: url.into(),
            reason: e.to_string(),
        })?;
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_vec().map_err(|e| Error::Http {
            url: url.into(),
            reason: e.to_string(),
        })?;
        Ok((status, body))
    }

    fn server_error(url: &str, status: u16, body: &[u8]) -> Error {
        let message = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| {
                let errors = v.get("errors")?.as_array()?;
                Some(
                    errors
                        .iter()
                        .map(|e| {
                            let code = e.get("code").and_then(Value::as_str).unwrap_or("");
                            let message = e.get("message").and_then(Value::as_str).unwrap_or("");
                            match e.get("detail").filter(|d| !d.is_null()) {
                                Some(detail) => format!("{code}: {message} ({detail})"),
                                None => format!("{code}: {message}"),
                            }
                        })
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            })
            .unwrap_or_else(|| {
                String::from_utf8_lossy(&body[..body.len().min(512)])
                    .trim()
                    .to_string()
            });
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
        notary::parse_server_key(&url, &body)?;
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
            .send(&body[..]);
        let (status, answer) = self.answer(&url, request)?;
        if status != 200 {
            return Err(Self::server_error(&url, status, &answer));
        }
        Ok(())
    }

    /// Reads back what the server serves for `gun` after a publish and checks that it is ours:
    /// root.json byte for byte, and a timestamp covering the snapshot (ours, or the one the
    /// server signed over our root and targets).
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
        let timestamp = self
            .get(gun, "timestamp.json")?
            .ok_or_else(|| broken("the server made no timestamp (its hash of the snapshot does not match the bytes sent)".into()))?;
        let timestamp: MetaRole =
            Envelope::parse("timestamp.json", &timestamp)?.typed("timestamp.json")?;
        let snapshot_bytes = match snapshot {
            Some(s) => s.to_vec(),
            None => self
                .get(gun, "snapshot.json")?
                .ok_or_else(|| broken("the server made no snapshot".into()))?,
        };
        let want = notary::file_meta(&snapshot_bytes);
        let have = timestamp
            .meta
            .get("snapshot")
            .ok_or_else(|| broken("the timestamp names no snapshot".into()))?;
        if have.hashes.get("sha256") != want.hashes.get("sha256") {
            return Err(broken(
                "the timestamp covers another snapshot than ours".into(),
            ));
        }
        let snap: MetaRole =
            Envelope::parse("snapshot.json", &snapshot_bytes)?.typed("snapshot.json")?;
        for (name, bytes) in [("root", root), ("targets", targets)] {
            let meta = snap
                .meta
                .get(name)
                .ok_or_else(|| broken(format!("the snapshot has no {name}")))?;
            if meta.hashes.get("sha256") != notary::file_meta(bytes).hashes.get("sha256") {
                return Err(broken(format!(
                    "the snapshot covers another {name}.json than ours"
                )));
            }
        }
        Ok(Confirmation {
            timestamp_version: timestamp.version,
            snapshot_version: snap.version,
            root_matches: served_root == root,
        })
    }
}
