//! Hostile inputs, and what notary does with them.
//!
//! Go's JSON decoder folds field names (`roleſ` fills `roles`, `\u{212a}eys` with a Kelvin
//! sign fills `keys`) and lets the later key win, so a file can mean one thing to an exact-name
//! parser and another to notary (research/notary-format.md §1.4). These tests show it with the
//! real notary-server and the real `notary` client, and show that every rootkeeper command
//! refuses such files, and every file that breaks a client rule, naming the rule.
//!
//! Found on the way (see `root-kelvin-keys`): a later alias of `keys` does not merge into
//! root.json's `keys` as §1.4 says of map fields; notary's `Keys` type has its own decoder,
//! which replaces the whole map. `roles` maps are merged.
//!
//! Every fixture is made here at test time, from keys that exist only in this process (random
//! P-256 keys; RSA and certificate variants through the `openssl` CLI in a temporary folder).
//! Nothing private is committed. The fixture table in [`cases`] is the manifest: name, the rule
//! rootkeeper must name, and what notary does (checked live).

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, STANDARD_NO_PAD as B64_NO_PAD};
use hsm_tests::{
    HttpFixture, NotaryServer, Run, SoftHsm, http_response, notary_client, root_signatures_valid,
    strs,
};
use p256::ecdsa::SigningKey;
use p256::pkcs8::{EncodePrivateKey, EncodePublicKey};
use rootkeeper::Error;
use rootkeeper::server::TrustServer;
use rootkeeper::tuf::model::{Document, UtcTime};
use rootkeeper::tuf::verify::{self, RULES, RepoFiles};
use serde_json::{Value, json};
use sha2::{Digest, Sha256, Sha512};

// ---------------------------------------------------------------------------------------
// Metadata written here, independently of rootkeeper's encoder

/// Canonical JSON as docker/go's `MarshalCanonical` writes it: keys sorted by bytes, no
/// whitespace, only `"` and `\` escaped.
fn canonical(value: &Value) -> Vec<u8> {
    fn string(out: &mut Vec<u8>, s: &str) {
        out.push(b'"');
        for b in s.bytes() {
            match b {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b => out.push(b),
            }
        }
        out.push(b'"');
    }
    fn write(out: &mut Vec<u8>, value: &Value) {
        match value {
            Value::Null | Value::Bool(_) | Value::Number(_) => {
                out.extend_from_slice(value.to_string().as_bytes())
            }
            Value::String(s) => string(out, s),
            Value::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write(out, item);
                }
                out.push(b']');
            }
            Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                out.push(b'{');
                for (i, (key, item)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    string(out, key);
                    out.push(b':');
                    write(out, item);
                }
                out.push(b'}');
            }
        }
    }
    let mut out = Vec::new();
    write(&mut out, value);
    out
}

/// `{"signed":<signed>,"signatures":[…]}`, as Go's `json.Marshal` of notary's `data.Signed`.
fn envelope(signed: &[u8], signatures: &[Value]) -> Vec<u8> {
    let mut out = b"{\"signed\":".to_vec();
    out.extend_from_slice(signed);
    out.extend_from_slice(b",\"signatures\":[");
    for (i, sig) in signatures.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&canonical(sig));
    }
    out.extend_from_slice(b"]}");
    out
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Snapshot/timestamp `meta` of exact file bytes.
fn meta(bytes: &[u8]) -> Value {
    json!({"hashes": {"sha256": B64.encode(Sha256::digest(bytes)),
                      "sha512": B64.encode(Sha512::digest(bytes))},
           "length": bytes.len()})
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut bytes)
        .unwrap();
    bytes
}

/// A P-256 key that lives only in this process.
fn p256_key() -> SigningKey {
    loop {
        if let Ok(key) = SigningKey::from_slice(&random::<32>()) {
            return key;
        }
    }
}

/// `at(n)`: now (whole seconds) plus `n` days.
fn at(days: i64) -> UtcTime {
    let now = UtcTime::now().whole_seconds();
    let d = Duration::from_secs(days.unsigned_abs() * 86_400);
    if days >= 0 { now.plus(d) } else { now.minus(d) }
}

fn key_doc(keytype: &str, public: &str) -> Value {
    json!({"keytype": keytype, "keyval": {"private": null, "public": public}})
}

#[derive(Clone)]
enum Secret {
    P256(SigningKey),
    /// An RSA key's PEM file, signed with through `openssl`.
    Rsa(PathBuf),
    /// Only the public half is known (the server's key).
    None,
}

/// A key as root.json lists it, its ID, and (when the test holds it) its private half.
#[derive(Clone)]
struct Key {
    doc: Value,
    id: String,
    secret: Secret,
}

impl Key {
    fn from_doc(doc: Value, secret: Secret) -> Key {
        let id = hex_sha256(&canonical(&doc));
        Key { doc, id, secret }
    }

    fn ecdsa() -> Key {
        let sk = p256_key();
        let der = sk.verifying_key().to_public_key_der().unwrap();
        Key::from_doc(
            key_doc("ecdsa", &B64.encode(der.as_bytes())),
            Secret::P256(sk),
        )
    }

    fn x509(sk: &SigningKey, pem: &str) -> Key {
        Key::from_doc(
            key_doc("ecdsa-x509", &B64.encode(pem)),
            Secret::P256(sk.clone()),
        )
    }

    /// A root key: a certificate for `gun` valid between the two days, made by rootkeeper's
    /// own certificate code with an in-memory key.
    fn root(gun: &str, from: i64, to: i64) -> Key {
        let sk = p256_key();
        Key::x509(&sk, &cert(&sk, gun, from, to))
    }

    /// The server's key document (`{"keytype":…,"keyval":{"public":…,"private":null}}`).
    fn server(bytes: &[u8]) -> Key {
        let doc: Value = serde_json::from_slice(bytes).unwrap();
        Key::from_doc(
            key_doc(
                doc["keytype"].as_str().unwrap(),
                doc["keyval"]["public"].as_str().unwrap(),
            ),
            Secret::None,
        )
    }

    fn rsa(dir: &Path) -> Key {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let pem = dir.join(format!("rsa-{n}.pem"));
        openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            pem.to_str().unwrap(),
        ]);
        let spki = openssl(&[
            "pkey",
            "-in",
            pem.to_str().unwrap(),
            "-pubout",
            "-outform",
            "DER",
        ]);
        Key::from_doc(key_doc("rsa", &B64.encode(spki)), Secret::Rsa(pem))
    }

    fn sign(&self, message: &[u8]) -> Value {
        let (method, sig) = match &self.secret {
            Secret::P256(sk) => {
                let sig: p256::ecdsa::Signature = signature::Signer::sign(sk, message);
                ("ecdsa", sig.to_bytes().to_vec())
            }
            Secret::Rsa(pem) => {
                let n = COUNTER.fetch_add(1, Ordering::SeqCst);
                let file = pem.with_file_name(format!("message-{n}"));
                std::fs::write(&file, message).unwrap();
                let sig = openssl(&[
                    "dgst",
                    "-sha256",
                    "-sign",
                    pem.to_str().unwrap(),
                    "-sigopt",
                    "rsa_padding_mode:pss",
                    "-sigopt",
                    "rsa_pss_saltlen:32",
                    file.to_str().unwrap(),
                ]);
                ("rsapss", sig)
            }
            Secret::None => panic!("the test does not hold key {}", self.id),
        };
        json!({"keyid": self.id, "method": method, "sig": B64.encode(sig)})
    }

    /// A P-256 signature with the high S (n - s): Go's verifier takes either.
    fn sign_high_s(&self, message: &[u8]) -> Value {
        let Secret::P256(sk) = &self.secret else {
            panic!("not a P-256 key")
        };
        let sig: p256::ecdsa::Signature = signature::Signer::sign(sk, message);
        let low = sig.normalize_s();
        let (r, s) = low.split_scalars();
        let high = p256::ecdsa::Signature::from_scalars(r, -s).unwrap();
        assert_ne!(high, low);
        json!({"keyid": self.id, "method": "ecdsa", "sig": B64.encode(high.to_bytes())})
    }

    /// A signature under this key's ID that is 64 random bytes.
    fn garbage(&self) -> Value {
        json!({"keyid": self.id, "method": "ecdsa", "sig": B64.encode(random::<64>())})
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Notary's root certificate for `gun`, made by rootkeeper's code with an in-memory key.
fn cert(sk: &SigningKey, gun: &str, from: i64, to: i64) -> String {
    let signer =
        rootkeeper::backend::memory::MemorySigner::from_key(sk.clone(), "test root key").unwrap();
    rootkeeper::x509::root_certificate(&signer, gun, at(from).to_system(), at(to).to_system())
        .unwrap()
}

/// A self-signed certificate made by `openssl req` (for what rootkeeper never makes): the
/// subject's CNs in order, the digest (`sha256`, `sha1`), a CA or a leaf. Ten years.
fn openssl_cert(dir: &Path, sk: &SigningKey, cns: &[&str], digest: &str, ca: bool) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let key = dir.join(format!("cert-key-{n}.der"));
    std::fs::write(&key, sk.to_pkcs8_der().unwrap().as_bytes()).unwrap();
    let config = dir.join(format!("cert-{n}.cnf"));
    let ext = if ca {
        "basicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n"
    } else {
        "basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature,keyEncipherment\nextendedKeyUsage = codeSigning\n"
    };
    std::fs::write(
        &config,
        format!("[req]\ndistinguished_name = dn\n[dn]\n[ext]\n{ext}"),
    )
    .unwrap();
    let subject: String = cns
        .iter()
        .map(|cn| format!("/CN={}", cn.replace('/', "\\/")))
        .collect();
    let pem = openssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        key.to_str().unwrap(),
        "-keyform",
        "DER",
        "-config",
        config.to_str().unwrap(),
        "-extensions",
        "ext",
        "-subj",
        &subject,
        "-days",
        "3650",
        &format!("-{digest}"),
    ]);
    std::fs::remove_file(&key).unwrap();
    String::from_utf8(pem).unwrap()
}

/// `signed` bytes `text` (possibly not canonical) in an envelope, signed by `by` over
/// `message` (what notary's verifier rebuilds from `text`).
fn raw_file(text: &[u8], message: &[u8], by: &[&Key]) -> Vec<u8> {
    let sigs: Vec<Value> = by.iter().map(|k| k.sign(message)).collect();
    envelope(text, &sigs)
}

fn signed_file(doc: &Value, by: &[&Key]) -> Vec<u8> {
    let message = canonical(doc);
    raw_file(&message, &message, by)
}

/// Replaces the first `from` in `bytes` by `to`.
fn replace_once(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    let from = from.as_bytes();
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .unwrap_or_else(|| panic!("`{}` not found", String::from_utf8_lossy(from)));
    let mut out = bytes[..at].to_vec();
    out.extend_from_slice(to.as_bytes());
    out.extend_from_slice(&bytes[at + from.len()..]);
    out
}

/// The files of one repository as uploaded or served.
#[derive(Clone)]
struct Files {
    root: Vec<u8>,
    targets: Vec<u8>,
    snapshot: Vec<u8>,
    /// Only when the test holds the timestamp key (the client-only cases).
    timestamp: Option<Vec<u8>>,
    /// What was published before (and is the trusted previous root).
    earlier: Option<Box<Files>>,
}

/// A repository made of in-memory keys: a 1-of-1 root by default, offline targets and
/// snapshot keys, and the given timestamp key (the server's, or one the test holds).
#[derive(Clone)]
struct Repo {
    gun: String,
    dir: PathBuf,
    root_keys: Vec<Key>,
    root_threshold: u64,
    root_signers: Vec<Key>,
    targets: Key,
    snapshot: Key,
    timestamp: Key,
    root_version: u64,
    snapshot_version: u64,
}

impl Repo {
    fn new(gun: &str, dir: &Path, timestamp: Key) -> Repo {
        std::fs::create_dir_all(dir).unwrap();
        let root = Key::root(gun, -1, 3650);
        Repo {
            gun: gun.into(),
            dir: dir.into(),
            root_keys: vec![root.clone()],
            root_threshold: 1,
            root_signers: vec![root],
            targets: Key::ecdsa(),
            snapshot: Key::ecdsa(),
            timestamp,
            root_version: 1,
            snapshot_version: 1,
        }
    }

    fn role(keys: &[&Key], threshold: u64) -> Value {
        json!({"keyids": keys.iter().map(|k| k.id.clone()).collect::<Vec<_>>(), "threshold": threshold})
    }

    fn root_doc(&self) -> Value {
        let mut keys = serde_json::Map::new();
        for k in self
            .root_keys
            .iter()
            .chain([&self.targets, &self.snapshot, &self.timestamp])
        {
            keys.insert(k.id.clone(), k.doc.clone());
        }
        json!({
            "_type": "Root", "consistent_snapshot": false,
            "expires": at(3 * 365).to_go_string(),
            "keys": keys,
            "roles": {
                "root": Self::role(&self.root_keys.iter().collect::<Vec<_>>(), self.root_threshold),
                "snapshot": Self::role(&[&self.snapshot], 1),
                "targets": Self::role(&[&self.targets], 1),
                "timestamp": Self::role(&[&self.timestamp], 1),
            },
            "version": self.root_version,
        })
    }

    fn targets_doc(&self, target: &str) -> Value {
        json!({
            "_type": "Targets", "delegations": {"keys": {}, "roles": []},
            "expires": at(2 * 365).to_go_string(),
            "targets": {target: meta(format!("the image called {target}").as_bytes())},
            "version": 1,
        })
    }

    fn snapshot_doc(&self, root: &[u8], targets: &[u8]) -> Value {
        json!({"_type": "Snapshot", "expires": at(2 * 365).to_go_string(),
               "meta": {"root": meta(root), "targets": meta(targets)},
               "version": self.snapshot_version})
    }

    fn timestamp_doc(&self, snapshot: &[u8]) -> Value {
        json!({"_type": "Timestamp", "expires": at(30).to_go_string(),
               "meta": {"snapshot": meta(snapshot)}, "version": 1})
    }

    fn root_file(&self, doc: &Value) -> Vec<u8> {
        signed_file(doc, &self.root_signers.iter().collect::<Vec<_>>())
    }

    fn targets_file(&self) -> Vec<u8> {
        signed_file(&self.targets_doc("v1"), &[&self.targets])
    }

    /// Snapshot (and timestamp, when the test holds its key) over exact root and targets bytes.
    fn finish(&self, root: Vec<u8>, targets: Vec<u8>) -> Files {
        let snapshot = signed_file(&self.snapshot_doc(&root, &targets), &[&self.snapshot]);
        self.finish_snapshot(root, targets, snapshot)
    }

    fn finish_snapshot(&self, root: Vec<u8>, targets: Vec<u8>, snapshot: Vec<u8>) -> Files {
        let timestamp = match self.timestamp.secret {
            Secret::None => None,
            _ => Some(signed_file(
                &self.timestamp_doc(&snapshot),
                &[&self.timestamp],
            )),
        };
        Files {
            root,
            targets,
            snapshot,
            timestamp,
            earlier: None,
        }
    }

    fn files(&self) -> Files {
        self.finish(self.root_file(&self.root_doc()), self.targets_file())
    }

    /// The files with `key` as the only root key (and root signer).
    fn with_root_key(&self, key: Key) -> Files {
        let mut r = self.clone();
        r.root_keys = vec![key.clone()];
        r.root_signers = vec![key];
        r.files()
    }

    /// The files with a root key whose certificate `openssl req` made (see [`openssl_cert`]).
    fn with_openssl_root(&self, cns: &[&str], digest: &str, ca: bool) -> Files {
        let sk = p256_key();
        self.with_root_key(Key::x509(
            &sk,
            &openssl_cert(&self.dir, &sk, cns, digest, ca),
        ))
    }

    /// The files with root.json's signed part changed by `change` (and signed again).
    fn with_root(&self, change: impl FnOnce(&mut Value)) -> Files {
        let mut doc = self.root_doc();
        change(&mut doc);
        self.finish(self.root_file(&doc), self.targets_file())
    }

    /// The files with root.json's bytes changed by `change` after signing.
    fn with_root_bytes(&self, change: impl FnOnce(Vec<u8>) -> Vec<u8>) -> Files {
        let root = change(self.root_file(&self.root_doc()));
        self.finish(root, self.targets_file())
    }

    fn with_targets(&self, change: impl FnOnce(&mut Value)) -> Files {
        let mut doc = self.targets_doc("v1");
        change(&mut doc);
        let targets = signed_file(&doc, &[&self.targets]);
        self.finish(self.root_file(&self.root_doc()), targets)
    }

    fn with_snapshot(&self, change: impl FnOnce(&mut Value)) -> Files {
        let (root, targets) = (self.root_file(&self.root_doc()), self.targets_file());
        let mut doc = self.snapshot_doc(&root, &targets);
        change(&mut doc);
        let snapshot = signed_file(&doc, &[&self.snapshot]);
        self.finish_snapshot(root, targets, snapshot)
    }

    fn with_timestamp(&self, change: impl FnOnce(&mut Value), by: &Key) -> Files {
        let mut files = self.files();
        let mut doc = self.timestamp_doc(&files.snapshot);
        change(&mut doc);
        files.timestamp = Some(signed_file(&doc, &[by]));
        files
    }

    /// A smuggled key and a targets.json signed by it alone, naming the target `evil`.
    fn smuggled(&self) -> (Key, Vec<u8>) {
        let evil = Key::ecdsa();
        let targets = signed_file(&self.targets_doc("evil"), &[&evil]);
        (evil, targets)
    }

    /// Version 2 (or `version`) of this root, made by `change`, with a snapshot over it and
    /// the old targets; the files of this version are published first.
    fn next(&self, version: u64, change: impl FnOnce(&mut Repo)) -> Files {
        let first = self.files();
        let mut next = self.clone();
        next.root_version = version;
        next.snapshot_version = 2;
        change(&mut next);
        let mut files = next.finish(next.root_file(&next.root_doc()), first.targets.clone());
        files.earlier = Some(Box::new(first));
        files
    }
}

// ---------------------------------------------------------------------------------------
// The fixture table

/// How notary is asked.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Via {
    /// Uploaded to the real notary-server (root, targets, snapshot; the server makes the
    /// timestamp); when it accepts, the real `notary` client lists the repository from it.
    Server,
    /// Served as static files (with a timestamp the test signs) to the real `notary` client:
    /// for what notary-server never takes from a client (timestamps) or decides for itself.
    Client,
}

/// What notary does with a fixture.
#[derive(Clone, Copy, Debug)]
enum Notary {
    /// notary refuses it too; its message contains this.
    Refuses(&'static str),
    /// notary accepts it; why rootkeeper refuses anyway.
    Accepts(&'static str),
}

struct Case {
    name: &'static str,
    /// The rule rootkeeper must name.
    rule: &'static str,
    /// The file rootkeeper must name.
    file: &'static str,
    via: Via,
    notary: Notary,
    make: fn(&Repo) -> Files,
}

/// The rules that [`Document::parse`] itself enforces.
const PARSE_RULES: [&str; 3] = ["parse", "fields", "canonical-round-trip"];

const FOLDED: &str = "notary would read it differently: ";
const POLICY: &str = "stricter by policy: ";

fn cases() -> Vec<Case> {
    use Notary::{Accepts, Refuses};
    use Via::{Client, Server};
    let case = |name, rule, file, via, notary, make| Case {
        name,
        rule,
        file,
        via,
        notary,
        make,
    };
    vec![
        // --- what the audit found: field names Go folds ---------------------------------
        case(
            "root-folded-field",
            "fields",
            "root.json",
            Server,
            Accepts(
                "notary would read it differently: `roleſ` folds into `roles`, so notary's targets role is the smuggled key",
            ),
            |r| {
                let (evil, targets) = r.smuggled();
                let mut doc = r.root_doc();
                doc["keys"][&evil.id] = evil.doc.clone();
                doc["role\u{17f}"] = json!({"targets": Repo::role(&[&evil], 1)});
                r.finish(r.root_file(&doc), targets)
            },
        ),
        case(
            "root-kelvin-keys",
            "fields",
            "root.json",
            Server,
            Accepts(
                "notary would read it differently: `\u{212a}eys` replaces `keys` (with the smuggled key added) and `\u{212a}eyids` replaces the targets role's `keyids`",
            ),
            |r| {
                let (evil, targets) = r.smuggled();
                let mut doc = r.root_doc();
                // notary's `Keys` type has its own decoder, which replaces the map rather than
                // merging into it: the alias carries every key, and the smuggled one.
                let mut all = doc["keys"].clone();
                all[&evil.id] = evil.doc.clone();
                doc["\u{212a}eys"] = all;
                doc["roles"]["targets"]["\u{212a}eyids"] = json!([evil.id]);
                r.finish(r.root_file(&doc), targets)
            },
        ),
        case(
            "root-upper-case-roles",
            "fields",
            "root.json",
            Server,
            Accepts(
                "notary would read it differently: `Roles` (written after `roles`) is merged into `roles` and wins, so notary's targets role is the smuggled key",
            ),
            |r| {
                let (evil, targets) = r.smuggled();
                let mut doc = r.root_doc();
                doc["keys"][&evil.id] = evil.doc.clone();
                let hidden = json!({"targets": Repo::role(&[&evil], 1)});
                let mut text = canonical(&doc);
                text.pop();
                text.extend_from_slice(b",\"Roles\":");
                text.extend_from_slice(&canonical(&hidden));
                text.push(b'}');
                doc["Roles"] = hidden;
                let signers: Vec<&Key> = r.root_signers.iter().collect();
                r.finish(raw_file(&text, &canonical(&doc), &signers), targets)
            },
        ),
        case(
            "root-unknown-field",
            "fields",
            "root.json",
            Server,
            Accepts(
                "stricter by policy: notary ignores a field it does not know (and drops it when it re-serialises the file)",
            ),
            |r| r.with_root(|d| d["comment"] = json!("hello")),
        ),
        case(
            "root-unknown-key-field",
            "fields",
            "root.json",
            Server,
            Accepts(
                "stricter by policy: notary drops an unknown field inside a key and computes the key ID without it",
            ),
            |r| {
                r.with_root(|d| {
                    d["keys"][&r.targets.id]["keyval"]["comment"] = json!("hello");
                })
            },
        ),
        case(
            "root-duplicate-key",
            "fields",
            "root.json",
            Server,
            Accepts(
                "notary would read it differently: the later of two entries under one key ID wins (here both are the same key)",
            ),
            |r| {
                r.with_root_bytes(|b| {
                    let entry = format!(
                        "\"{}\":{}",
                        r.targets.id,
                        String::from_utf8(canonical(&r.targets.doc)).unwrap()
                    );
                    replace_once(&b, "\"keys\":{", &format!("\"keys\":{{{entry},"))
                })
            },
        ),
        case(
            "envelope-extra-field",
            "fields",
            "root.json",
            Server,
            Accepts("stricter by policy: notary ignores an unknown envelope field"),
            |r| {
                r.with_root_bytes(|mut b| {
                    b.truncate(b.len() - 1);
                    b.extend_from_slice(b",\"comment\":\"hello\"}");
                    b
                })
            },
        ),
        case(
            "type-TARGETS",
            "fields",
            "targets.json",
            Server,
            Refuses("expected type Targets, not TARGETS"),
            |r| r.with_targets(|d| d["_type"] = json!("TARGETS")),
        ),
        case(
            "root-missing-role",
            "fields",
            "root.json",
            Server,
            Refuses("missing timestamp role"),
            |r| {
                r.with_root(|d| {
                    d["roles"].as_object_mut().unwrap().remove("timestamp");
                })
            },
        ),
        case(
            "envelope-duplicate-signed",
            "fields",
            "root.json",
            Server,
            Accepts(
                "notary would read it differently: the later of two `signed` parts wins, and there the targets role is the smuggled key",
            ),
            |r| {
                let (evil, targets) = r.smuggled();
                let mut hostile = r.root_doc();
                hostile["keys"][&evil.id] = evil.doc.clone();
                hostile["roles"]["targets"] = Repo::role(&[&evil], 1);
                let mut text = canonical(&r.root_doc());
                text.extend_from_slice(b",\"signed\":");
                text.extend_from_slice(&canonical(&hostile));
                let signers: Vec<&Key> = r.root_signers.iter().collect();
                r.finish(raw_file(&text, &canonical(&hostile), &signers), targets)
            },
        ),
        case(
            "envelope-upper-case-signed",
            "fields",
            "root.json",
            Server,
            Accepts(
                "notary would read it differently: `Signed` (after `signed`) is read as `signed` and wins, and there the targets role is the smuggled key",
            ),
            |r| {
                let (evil, targets) = r.smuggled();
                let mut hostile = r.root_doc();
                hostile["keys"][&evil.id] = evil.doc.clone();
                hostile["roles"]["targets"] = Repo::role(&[&evil], 1);
                let message = canonical(&hostile);
                let mut file = raw_file(&canonical(&r.root_doc()), &message, &[&r.root_signers[0]]);
                file.pop();
                file.extend_from_slice(b",\"Signed\":");
                file.extend_from_slice(&message);
                file.push(b'}');
                r.finish(file, targets)
            },
        ),
        case(
            "root-signature-extra-field",
            "fields",
            "root.json",
            Server,
            Accepts("stricter by policy: notary ignores an unknown field in a signature"),
            |r| {
                let doc = r.root_doc();
                let mut sig = r.root_keys[0].sign(&canonical(&doc));
                sig["comment"] = json!("hello");
                r.finish(envelope(&canonical(&doc), &[sig]), r.targets_file())
            },
        ),
        // --- encodings Go reads otherwise -------------------------------------------------
        case(
            "root-method-upper-case",
            "fields",
            "root.json",
            Server,
            Accepts(
                "notary would read it differently: it lower-cases the method, so its re-serialisation is not the file",
            ),
            |r| {
                r.with_root_bytes(|b| {
                    replace_once(&b, "\"method\":\"ecdsa\"", "\"method\":\"ECDSA\"")
                })
            },
        ),
        case(
            "root-sig-not-base64",
            "fields",
            "root.json",
            Server,
            Refuses("MALFORMED_JSON"),
            |r| {
                let doc = r.root_doc();
                let mut sig = r.root_keys[0].sign(&canonical(&doc));
                sig["sig"] = json!("not base64!");
                r.finish(envelope(&canonical(&doc), &[sig]), r.targets_file())
            },
        ),
        case(
            "root-public-unpadded-base64",
            "fields",
            "root.json",
            Server,
            Refuses("illegal base64"),
            |r| {
                // A certificate whose base64 needs padding (two in three do).
                let (key, pem) = loop {
                    let sk = p256_key();
                    let pem = cert(&sk, &r.gun, -1, 3650);
                    if !pem.len().is_multiple_of(3) {
                        break (sk, pem);
                    }
                };
                let unpadded = B64_NO_PAD.encode(&pem);
                assert_ne!(unpadded, B64.encode(&pem));
                r.with_root_key(Key::from_doc(
                    key_doc("ecdsa-x509", &unpadded),
                    Secret::P256(key),
                ))
            },
        ),
        case(
            "root-timestamp-key-unpadded-base64",
            "fields",
            "root.json",
            Server,
            Refuses("illegal base64"),
            |r| {
                let mut r = r.clone();
                let public = r.timestamp.doc["keyval"]["public"].as_str().unwrap();
                let unpadded = B64_NO_PAD.encode(B64.decode(public).unwrap());
                assert_ne!(unpadded, public, "an ed25519 key's base64 is padded");
                r.timestamp = Key::from_doc(key_doc("ed25519", &unpadded), Secret::None);
                r.files()
            },
        ),
        case(
            "root-public-noncanonical-base64",
            "fields",
            "root.json",
            Server,
            Accepts(
                "notary would read it differently: Go decodes it to the same key but writes other text when it re-serialises the file",
            ),
            |r| {
                // A P-256 SubjectPublicKeyInfo is 91 bytes: the last base64 group is `X==`,
                // and X carries four unused bits that Go's decoder ignores.
                let public = r.targets.doc["keyval"]["public"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
                let x = public.as_bytes()[public.len() - 3] as char;
                let i = alphabet.find(x).unwrap();
                assert!(
                    i.is_multiple_of(16),
                    "a canonical encoding leaves the low bits clear"
                );
                let other = alphabet.as_bytes()[i + 1] as char;
                let odd = format!("{}{other}==", &public[..public.len() - 3]);
                // Go's decoder (like this lenient one) ignores the unused bits.
                let lenient = base64::engine::GeneralPurpose::new(
                    &base64::alphabet::STANDARD,
                    base64::engine::GeneralPurposeConfig::new()
                        .with_decode_allow_trailing_bits(true),
                );
                assert_eq!(lenient.decode(&odd).unwrap(), B64.decode(&public).unwrap());
                assert!(B64.decode(&odd).is_err());
                r.with_root(|d| d["keys"][&r.targets.id]["keyval"]["public"] = json!(odd))
            },
        ),
        case(
            "root-expires-plus-0000",
            "fields",
            "root.json",
            Server,
            Accepts(
                "notary would read it differently: Go writes the time back with `Z`, so its re-serialisation is not the file",
            ),
            |r| {
                r.with_root(|d| {
                    d["expires"] = json!(at(1000).to_go_string().replace('Z', "+00:00"));
                })
            },
        ),
        case(
            "root-expires-lowercase-t",
            "fields",
            "root.json",
            Server,
            Refuses("MALFORMED_JSON"),
            |r| r.with_root(|d| d["expires"] = json!(at(1000).to_go_string().replace('T', "t"))),
        ),
        case(
            "root-expires-second-60",
            "fields",
            "root.json",
            Server,
            Refuses("MALFORMED_JSON"),
            |r| {
                let year = &at(1000).to_go_string()[..4];
                r.with_root(|d| d["expires"] = json!(format!("{year}-06-30T23:59:60Z")))
            },
        ),
        case(
            "root-expires-feb-30",
            "fields",
            "root.json",
            Server,
            Refuses("MALFORMED_JSON"),
            |r| {
                let year = &at(1000).to_go_string()[..4];
                r.with_root(|d| d["expires"] = json!(format!("{year}-02-30T00:00:00Z")))
            },
        ),
        case(
            "root-expires-trailing-zero",
            "fields",
            "root.json",
            Server,
            Accepts(
                "notary would read it differently: Go writes the fraction back without the trailing zero",
            ),
            |r| {
                r.with_root(|d| {
                    d["expires"] = json!(at(1000).to_go_string().replace('Z', ".50Z"));
                })
            },
        ),
        case(
            "root-version-above-2-53",
            "fields",
            "root.json",
            Client,
            Refuses("failed to validate integrity of roots"),
            |r| r.with_root(|d| d["version"] = json!(9_007_199_254_740_993u64)),
        ),
        case(
            "targets-version-above-2-53",
            "fields",
            "targets.json",
            Server,
            Refuses("valid signatures did not meet threshold for targets"),
            |r| r.with_targets(|d| d["version"] = json!(9_007_199_254_740_993u64)),
        ),
        case(
            "root-version-0",
            "fields",
            "root.json",
            Client,
            Refuses("version cannot be less than 1"),
            |r| r.with_root(|d| d["version"] = json!(0)),
        ),
        case(
            "root-private-key-material",
            "fields",
            "root.json",
            Server,
            Accepts(
                "stricter by policy: a published file never carries private key material; notary drops it when it reads the key",
            ),
            |r| {
                r.with_root(|d| {
                    d["keys"][&r.targets.id]["keyval"]["private"] =
                        json!(B64.encode("not really a private key"));
                })
            },
        ),
        case(
            "root-timestamp-key-unknown-type",
            "fields",
            "root.json",
            Client,
            Refuses("valid signatures did not meet threshold for timestamp"),
            |r| {
                let mut r = r.clone();
                let mut doc = r.timestamp.doc.clone();
                doc["keytype"] = json!("ecdsa-p256-sha3");
                r.timestamp = Key::from_doc(doc, r.timestamp.secret.clone());
                r.files()
            },
        ),
        case(
            "root-timestamp-key-rsa",
            "fields",
            "root.json",
            Client,
            Accepts(
                "stricter by policy: rootkeeper neither makes nor checks RSA keys; notary verifies the RSA-PSS timestamp",
            ),
            |r| {
                let mut r = r.clone();
                r.timestamp = Key::rsa(&r.dir);
                r.files()
            },
        ),
        case(
            "snapshot-version-0",
            "fields",
            "snapshot.json",
            Server,
            Refuses("version cannot be less than one"),
            |r| r.with_snapshot(|d| d["version"] = json!(0)),
        ),
        case(
            "snapshot-unknown-hash-algorithm",
            "fields",
            "snapshot.json",
            Server,
            Accepts("stricter by policy: notary ignores hash algorithms it does not know"),
            |r| {
                r.with_snapshot(|d| {
                    d["meta"]["root"]["hashes"]["md5"] = json!(B64.encode([0u8; 16]));
                })
            },
        ),
        case(
            "targets-path-hash-prefixes",
            "fields",
            "targets.json",
            Server,
            Accepts(
                "notary would read it differently: it ignores `path_hash_prefixes`, so the delegation covers every path `paths` allows",
            ),
            |r| {
                let delegate = Key::ecdsa();
                r.with_targets(|d| {
                    d["delegations"] = json!({
                        "keys": {delegate.id.clone(): delegate.doc.clone()},
                        "roles": [{"keyids": [delegate.id], "name": "targets/releases",
                                   "path_hash_prefixes": ["ab"], "paths": [""], "threshold": 1}],
                    });
                })
            },
        ),
        case(
            "timestamp-version-0",
            "fields",
            "timestamp.json",
            Client,
            Refuses("version cannot be less than one"),
            |r| r.with_timestamp(|d| d["version"] = json!(0), &r.timestamp),
        ),
        // --- bytes that are not Go's own --------------------------------------------------
        case(
            "envelope-trailing-data",
            "parse",
            "root.json",
            Server,
            Refuses("after top-level value"),
            |r| {
                r.with_root_bytes(|mut b| {
                    b.extend_from_slice(b"{}");
                    b
                })
            },
        ),
        case(
            "envelope-not-json",
            "parse",
            "root.json",
            Server,
            Refuses("MALFORMED_JSON"),
            |r| {
                r.with_root_bytes(|mut b| {
                    b.truncate(b.len() - 3);
                    b
                })
            },
        ),
        case(
            "not-go-encoding",
            "canonical-round-trip",
            "root.json",
            Server,
            Accepts(
                "notary would read it differently: notary-server re-serialises the file and hashes other bytes when it makes a snapshot or timestamp",
            ),
            |r| {
                r.with_root_bytes(|b| replace_once(&b, "\"_type\":\"Root\"", "\"_type\": \"Root\""))
            },
        ),
        case(
            "not-go-encoding-trailing-newline",
            "canonical-round-trip",
            "root.json",
            Server,
            Accepts(
                "notary would read it differently: its re-serialisation has no newline, so the hashes it makes are of other bytes",
            ),
            |r| {
                r.with_root_bytes(|mut b| {
                    b.push(b'\n');
                    b
                })
            },
        ),
        case(
            "not-go-encoding-key-order",
            "canonical-round-trip",
            "root.json",
            Server,
            Accepts(
                "notary would read it differently: its re-serialisation sorts the fields, so the hashes it makes are of other bytes",
            ),
            |r| {
                r.with_root_bytes(|b| {
                    let b = replace_once(&b, ",\"version\":1}", "}");
                    replace_once(
                        &b,
                        "{\"_type\":\"Root\"",
                        "{\"version\":1,\"_type\":\"Root\"",
                    )
                })
            },
        ),
        case(
            "not-go-encoding-escaped-name",
            "canonical-round-trip",
            "root.json",
            Server,
            Accepts(
                "notary would read it differently: it reads `\\u0072oles` as `roles` and re-serialises other bytes",
            ),
            |r| r.with_root_bytes(|b| replace_once(&b, "\"roles\":", "\"\\u0072oles\":")),
        ),
        case(
            "targets-not-html-escaped",
            "canonical-round-trip",
            "targets.json",
            Server,
            Accepts(
                "notary would read it differently: Go's envelope writes `<` as `\\u003c`, so its re-serialisation is not the file",
            ),
            |r| {
                let doc = r.targets_doc("v1<b>");
                let targets = signed_file(&doc, &[&r.targets]);
                r.finish(r.root_file(&r.root_doc()), targets)
            },
        ),
        case(
            "targets-invalid-utf8",
            "parse",
            "targets.json",
            Server,
            Accepts(
                "notary would read it differently: Go reads the byte that is not UTF-8 as U+FFFD (and verifies the signature over that)",
            ),
            |r| {
                let message = canonical(&r.targets_doc("v1\u{fffd}"));
                let text = replace_once(&message, "v1\u{fffd}", "v1PLACEHOLDER");
                let text = [
                    &text[..text.windows(11).position(|w| w == b"PLACEHOLDER").unwrap()],
                    &[0xffu8][..],
                    &text[text.windows(11).position(|w| w == b"PLACEHOLDER").unwrap() + 11..],
                ]
                .concat();
                let targets = raw_file(&text, &message, &[&r.targets]);
                r.finish(r.root_file(&r.root_doc()), targets)
            },
        ),
        case(
            "targets-control-character",
            "canonical-round-trip",
            "targets.json",
            Server,
            Accepts(
                "stricter by policy: a control character (here a newline, which fakes a line in `notary list`) that Go's canonical writer would put raw, which is not JSON",
            ),
            |r| {
                let message = canonical(&r.targets_doc("v1\nfake-line"));
                let text = replace_once(&message, "v1\nfake-line", "v1\\nfake-line");
                let targets = raw_file(&text, &message, &[&r.targets]);
                r.finish(r.root_file(&r.root_doc()), targets)
            },
        ),
        // --- keys and structure ---------------------------------------------------------
        case(
            "root-key-id-mismatch",
            "key-ids",
            "root.json",
            Server,
            Refuses("key ID is not valid for key content"),
            |r| {
                let mut r = r.clone();
                let wrong = hex_sha256(b"some other key");
                r.targets.id = wrong;
                r.files()
            },
        ),
        case(
            "root-key-not-a-key",
            "key-ids",
            "root.json",
            Server,
            Refuses("valid signatures did not meet threshold for snapshot"),
            |r| {
                let mut r = r.clone();
                let junk =
                    Key::from_doc(key_doc("ecdsa", &B64.encode(random::<91>())), Secret::None);
                r.snapshot.doc = junk.doc;
                r.snapshot.id = junk.id;
                r.files()
            },
        ),
        case(
            "root-threshold-above-keys",
            "structure",
            "root.json",
            Server,
            Refuses("failed to validate integrity of roots"),
            |r| {
                let mut r = r.clone();
                r.root_threshold = 2;
                r.files()
            },
        ),
        case(
            "root-role-unknown-keyid",
            "structure",
            "root.json",
            Server,
            Refuses("specified in snapshot without corresponding key"),
            |r| r.with_root(|d| d["roles"]["snapshot"]["keyids"] = json!([hex_sha256(b"nobody")])),
        ),
        case(
            "root-role-lists-key-twice",
            "structure",
            "root.json",
            Server,
            Accepts("stricter by policy: notary counts the key once"),
            |r| {
                let id = r.root_keys[0].id.clone();
                r.with_root(|d| d["roles"]["root"]["keyids"] = json!([id, id]))
            },
        ),
        case(
            "root-one-key-two-certs",
            "structure",
            "root.json",
            Server,
            Accepts(
                "stricter by policy: notary counts key IDs, so one private key under two certificates meets a threshold of 2",
            ),
            one_key_two_certs,
        ),
        // --- signatures -----------------------------------------------------------------
        case(
            "root-bad-signature",
            "signatures",
            "root.json",
            Server,
            Refuses("failed to validate integrity of roots"),
            |r| {
                let doc = r.root_doc();
                r.finish(
                    envelope(&canonical(&doc), &[r.root_keys[0].garbage()]),
                    r.targets_file(),
                )
            },
        ),
        case(
            "root-extra-invalid-signature",
            "signatures",
            "root.json",
            Server,
            Accepts(
                "stricter by policy: notary skips a signature that does not verify when the others meet the threshold",
            ),
            |r| {
                let mut r = r.clone();
                r.root_keys.push(Key::root(&r.gun, -1, 3650));
                let doc = r.root_doc();
                let message = canonical(&doc);
                let sigs = [r.root_keys[0].sign(&message), r.root_keys[1].garbage()];
                r.finish(envelope(&message, &sigs), r.targets_file())
            },
        ),
        case(
            "root-signs-twice",
            "signatures",
            "root.json",
            Server,
            Accepts("stricter by policy: notary counts each key once"),
            |r| {
                let mut r = r.clone();
                r.root_signers = vec![r.root_keys[0].clone(), r.root_keys[0].clone()];
                r.files()
            },
        ),
        case(
            "targets-bad-signature",
            "signatures",
            "targets.json",
            Server,
            Refuses("valid signatures did not meet threshold for targets"),
            |r| {
                let targets = envelope(&canonical(&r.targets_doc("v1")), &[r.targets.garbage()]);
                r.finish(r.root_file(&r.root_doc()), targets)
            },
        ),
        case(
            "root-threshold-unmet",
            "root-threshold",
            "root.json",
            Server,
            Refuses("failed to validate integrity of roots"),
            |r| {
                let mut r = r.clone();
                r.root_keys.push(Key::root(&r.gun, -1, 3650));
                r.root_threshold = 2;
                r.files()
            },
        ),
        // --- root certificates ----------------------------------------------------------
        case(
            "root-cert-chain",
            "root-certs",
            "root.json",
            Server,
            Accepts(
                "stricter by policy: notary takes the second certificate as an intermediate; rootkeeper keeps a root key to one certificate",
            ),
            |r| {
                let sk = p256_key();
                let leaf = cert(&sk, &r.gun, -1, 3650);
                let ca = openssl_cert(&r.dir, &p256_key(), &["Some CA"], "sha256", true);
                r.with_root_key(Key::x509(&sk, &format!("{leaf}{ca}")))
            },
        ),
        case(
            "root-ca-cert",
            "root-certs",
            "root.json",
            Server,
            Refuses("unable to retrieve valid leaf certificates"),
            |r| r.with_openssl_root(&[&r.gun], "sha256", true),
        ),
        case(
            "root-sha1-cert",
            "root-certs",
            "root.json",
            Server,
            Refuses("unable to retrieve valid leaf certificates"),
            |r| r.with_openssl_root(&[&r.gun], "sha1", false),
        ),
        case(
            "root-cert-pem-not-go",
            "root-certs",
            "root.json",
            Server,
            Refuses("failed to validate integrity of roots"),
            |r| {
                let sk = p256_key();
                let pem = cert(&sk, &r.gun, -1, 3650).replace('\n', "\r\n");
                r.with_root_key(Key::x509(&sk, &pem))
            },
        ),
        case(
            "root-cn-mismatch",
            "root-cn",
            "root.json",
            Server,
            Refuses("unable to retrieve valid leaf certificates"),
            |r| r.with_root_key(Key::root("example.com/somebody-else", -1, 3650)),
        ),
        case(
            "root-two-cns",
            "root-cn",
            "root.json",
            Server,
            Accepts(
                "notary would read it differently: Go keeps only the last CN (the GUN); a reader of the first sees another repository",
            ),
            |r| r.with_openssl_root(&["example.com/somebody-else", &r.gun], "sha256", false),
        ),
        case(
            "root-cert-expired",
            "root-cert-validity",
            "root.json",
            Server,
            Refuses("unable to retrieve valid leaf certificates"),
            |r| r.with_root_key(Key::root(&r.gun, -730, -1)),
        ),
        case(
            "root-cert-not-yet-valid",
            "root-cert-validity",
            "root.json",
            Server,
            Refuses("unable to retrieve valid leaf certificates"),
            |r| r.with_root_key(Key::root(&r.gun, 3, 3650)),
        ),
        case(
            "root-expired",
            "root-expiry",
            "root.json",
            Server,
            Refuses("root expired at"),
            |r| r.with_root(|d| d["expires"] = json!(at(-1).to_go_string())),
        ),
        case(
            "root-expires-after-cert",
            "root-expiry",
            "root.json",
            Server,
            Accepts(
                "stricter by policy: clients refuse the root once its only certificate expires",
            ),
            |r| r.with_root_key(Key::root(&r.gun, -1, 2 * 365)),
        ),
        // --- the other roles' keys ------------------------------------------------------
        case(
            "root-timestamp-key-x509",
            "role-key-types",
            "root.json",
            Client,
            Accepts(
                "stricter by policy: a timestamp key is a bare key (notary-server's own), never a certificate",
            ),
            |r| {
                let mut r = r.clone();
                r.timestamp = Key::root(&r.gun, -1, 3650);
                r.files()
            },
        ),
        case(
            "distinct-role-keys",
            "distinct-role-keys",
            "root.json",
            Server,
            Accepts("stricter by policy: one key serving two roles is one key to lose for both"),
            |r| {
                let mut r = r.clone();
                r.snapshot = r.targets.clone();
                r.files()
            },
        ),
        // --- rotation -------------------------------------------------------------------
        case(
            "root-version-skips",
            "root-version",
            "root.json",
            Server,
            Refuses("must increment the version"),
            |r| r.next(3, |_| {}),
        ),
        case(
            "root-rotation-old-keys-missing",
            "root-rotation",
            "root.json",
            Server,
            Refuses("could not rotate trust to a new trusted root"),
            |r| {
                r.next(2, |n| {
                    n.root_keys = vec![Key::root(&n.gun, -1, 3650)];
                    n.root_signers = n.root_keys.clone();
                })
            },
        ),
        // --- targets --------------------------------------------------------------------
        case(
            "targets-threshold-unmet",
            "targets-threshold",
            "targets.json",
            Server,
            Refuses("valid signatures did not meet threshold for targets"),
            |r| {
                let targets = signed_file(&r.targets_doc("v1"), &[&r.snapshot]);
                r.finish(r.root_file(&r.root_doc()), targets)
            },
        ),
        case(
            "targets-expired",
            "targets-expiry",
            "targets.json",
            Server,
            Refuses("targets expired at"),
            |r| r.with_targets(|d| d["expires"] = json!(at(-1).to_go_string())),
        ),
        case(
            "targets-delegation-name",
            "delegations",
            "targets.json",
            Server,
            Refuses("delegation role targets/Releases invalid"),
            |r| delegation(r, "targets/Releases", true),
        ),
        case(
            "targets-delegation-not-direct-child",
            "delegations",
            "targets.json",
            Server,
            Refuses("delegation role targets/releases/nightly invalid"),
            |r| delegation(r, "targets/releases/nightly", true),
        ),
        case(
            "targets-delegation-unknown-keyid",
            "delegations",
            "targets.json",
            Server,
            Refuses("specified in targets/releases without corresponding key"),
            |r| delegation(r, "targets/releases", false),
        ),
        case(
            "target-hashes",
            "target-hashes",
            "targets.json",
            Server,
            Accepts(
                "stricter by policy: notary takes a digest of any length, so the digest it lists (and docker pulls by) is no SHA-256",
            ),
            |r| {
                r.with_targets(|d| {
                    d["targets"]["v1"]["hashes"]["sha256"] = json!(B64.encode([7u8; 31]));
                })
            },
        ),
        // --- snapshot and timestamp -----------------------------------------------------
        case(
            "snapshot-threshold-unmet",
            "snapshot-threshold",
            "snapshot.json",
            Server,
            Refuses("valid signatures did not meet threshold for snapshot"),
            |r| {
                let (root, targets) = (r.root_file(&r.root_doc()), r.targets_file());
                let snapshot = signed_file(&r.snapshot_doc(&root, &targets), &[&r.targets]);
                r.finish_snapshot(root, targets, snapshot)
            },
        ),
        case(
            "snapshot-expired",
            "snapshot-expiry",
            "snapshot.json",
            Server,
            Refuses("snapshot expired at"),
            |r| r.with_snapshot(|d| d["expires"] = json!(at(-1).to_go_string())),
        ),
        case(
            "snapshot-wrong-root-hash",
            "snapshot-meta",
            "snapshot.json",
            Server,
            Refuses("sha256 checksum for root did not match"),
            |r| {
                r.with_snapshot(|d| {
                    d["meta"]["root"]["hashes"]["sha256"] =
                        json!(B64.encode(Sha256::digest(b"another root")));
                })
            },
        ),
        case(
            "snapshot-no-targets-entry",
            "snapshot-meta",
            "snapshot.json",
            Server,
            Refuses("missing targets sha256 checksum"),
            |r| {
                r.with_snapshot(|d| {
                    d["meta"].as_object_mut().unwrap().remove("targets");
                })
            },
        ),
        case(
            "snapshot-length-wrong",
            "snapshot-meta",
            "snapshot.json",
            Server,
            Accepts(
                "stricter by policy: notary uses the length only as a download limit; rootkeeper wants the true length",
            ),
            |r| {
                r.with_snapshot(|d| {
                    let n = d["meta"]["root"]["length"].as_u64().unwrap();
                    d["meta"]["root"]["length"] = json!(n + 1);
                })
            },
        ),
        case(
            "timestamp-threshold-unmet",
            "timestamp-threshold",
            "timestamp.json",
            Client,
            Refuses("valid signatures did not meet threshold for timestamp"),
            |r| r.with_timestamp(|_| {}, &r.snapshot),
        ),
        case(
            "timestamp-expired",
            "timestamp-expiry",
            "timestamp.json",
            Client,
            Refuses("timestamp expired at"),
            |r| {
                r.with_timestamp(
                    |d| d["expires"] = json!(at(-1).to_go_string()),
                    &r.timestamp,
                )
            },
        ),
        case(
            "timestamp-wrong-snapshot-hash",
            "timestamp-meta",
            "timestamp.json",
            Client,
            Refuses("trust data unavailable"),
            |r| {
                r.with_timestamp(
                    |d| {
                        d["meta"]["snapshot"]["hashes"]["sha256"] =
                            json!(B64.encode(Sha256::digest(b"another snapshot")));
                    },
                    &r.timestamp,
                )
            },
        ),
        case(
            "timestamp-extra-meta",
            "timestamp-meta",
            "timestamp.json",
            Client,
            Accepts("stricter by policy: a timestamp names exactly one file, the snapshot"),
            |r| {
                let root = r.files().root;
                r.with_timestamp(|d| d["meta"]["root"] = meta(&root), &r.timestamp)
            },
        ),
    ]
}

/// Thresholds count distinct keys: one private key under two certificates, threshold 2,
/// a signature under each certificate's key ID.
fn one_key_two_certs(r: &Repo) -> Files {
    let mut r = r.clone();
    let sk = p256_key();
    r.root_keys = vec![
        Key::x509(&sk, &cert(&sk, &r.gun, -1, 3650)),
        Key::x509(&sk, &cert(&sk, &r.gun, -1, 3650)),
    ];
    r.root_threshold = 2;
    r.root_signers = r.root_keys.clone();
    r.files()
}

/// targets.json with one delegation `name` (its key listed, or not).
fn delegation(r: &Repo, name: &str, key_listed: bool) -> Files {
    let delegate = Key::ecdsa();
    let keys = if key_listed {
        json!({delegate.id.clone(): delegate.doc.clone()})
    } else {
        json!({})
    };
    r.with_targets(|d| {
        d["delegations"] = json!({
            "keys": keys,
            "roles": [{"keyids": [delegate.id], "name": name, "paths": [""], "threshold": 1}],
        });
    })
}

// ---------------------------------------------------------------------------------------
// Asking rootkeeper and notary

/// The failure is one `error:` line and one `hint:` line, last.
fn one_error_line_and_a_hint(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr.lines().collect();
    let errors = lines.iter().filter(|l| l.starts_with("error:")).count();
    let hints = lines.iter().filter(|l| l.starts_with("hint:")).count();
    assert!(
        errors == 1
            && hints == 1
            && lines.len() >= 2
            && lines[lines.len() - 2].starts_with("error: ")
            && lines[lines.len() - 1].starts_with("hint: "),
        "want one `error:` and one `hint:` line, last; got:\n{stderr}"
    );
    lines[lines.len() - 2]
}

/// Writes a case's files as root.json, targets.json, snapshot.json, timestamp.json (and the
/// previous root as trusted.root.json) into `dir`.
fn write_files(dir: &Path, files: &Files) -> Vec<(&'static str, PathBuf)> {
    std::fs::create_dir_all(dir).unwrap();
    let mut written = Vec::new();
    for (name, bytes) in [
        ("root.json", Some(&files.root)),
        ("targets.json", Some(&files.targets)),
        ("snapshot.json", Some(&files.snapshot)),
        ("timestamp.json", files.timestamp.as_ref()),
    ] {
        if let Some(bytes) = bytes {
            let path = dir.join(name);
            std::fs::write(&path, bytes).unwrap();
            written.push((name, path));
        }
    }
    if let Some(earlier) = &files.earlier {
        std::fs::write(dir.join("trusted.root.json"), &earlier.root).unwrap();
    }
    written
}

/// `rootkeeper root verify --gun GUN [--trusted …] FILE…`.
fn rootkeeper_verify(hsm: &SoftHsm, gun: &str, dir: &Path, files: &Files) -> Run {
    let written = write_files(dir, files);
    let mut args: Vec<String> = vec!["root".into(), "verify".into(), "--gun".into(), gun.into()];
    if files.earlier.is_some() {
        args.push("--trusted".into());
        args.push(dir.join("trusted.root.json").display().to_string());
    }
    args.extend(written.iter().map(|(_, p)| p.display().to_string()));
    hsm.run(&strs(&args))
}

/// The library's verdict: `Document::parse` of every file, then `verify_repo`.
fn library_verdict(gun: &str, files: &Files) -> std::result::Result<(), (String, &'static str)> {
    let now = UtcTime::now();
    let named = [
        ("root.json", Some(&files.root)),
        ("targets.json", Some(&files.targets)),
        ("snapshot.json", Some(&files.snapshot)),
        ("timestamp.json", files.timestamp.as_ref()),
    ];
    for (name, bytes) in named {
        if let Some(bytes) = bytes {
            match Document::parse(name, bytes) {
                Ok(_) => {}
                Err(Error::Rule { file, rule, .. }) => return Err((file, rule)),
                Err(other) => panic!("{name}: not a rule error: {other:?}"),
            }
        }
    }
    let previous = files.earlier.as_ref().map(|e| {
        verify::check_chain_root("trusted.root.json", &e.root, gun, None, now)
            .expect("the earlier root is valid")
    });
    match verify::verify_repo(
        RepoFiles {
            root: &files.root,
            targets: Some(&files.targets),
            snapshot: Some(&files.snapshot),
            timestamp: files.timestamp.as_deref(),
        },
        Some(gun),
        previous.as_ref(),
        now,
    ) {
        Ok(_) => Ok(()),
        Err(Error::Rule { file, rule, .. }) => Err((file, rule)),
        Err(other) => panic!("not a rule error: {other:?}"),
    }
}

/// What notary said.
#[derive(Debug)]
struct Said {
    accepted: bool,
    /// Who decided, and their words.
    message: String,
}

/// `text` on one line (lines joined with ` / `, runs of spaces as one), at most 400
/// characters.
fn one_line(text: &str) -> String {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" / ")
        .chars()
        .take(400)
        .collect()
}

/// Lists the repository with the real notary client at `url`; accepted when it exits 0 and
/// names `target`.
fn client_lists(url: &str, dir: &Path, gun: &str, target: &str) -> Said {
    let run = notary_client(url, None, dir, &["list", gun]);
    let listed = run.code == 0 && run.stdout.contains(target);
    Said {
        accepted: listed,
        message: if run.code == 0 {
            format!("notary list: {}", one_line(&run.stdout))
        } else {
            format!(
                "notary list (exit {}): {}",
                run.code,
                one_line(&format!("{}\n{}", run.stderr, run.stdout))
            )
        },
    }
}

/// The target a case's targets.json names.
fn target_of(files: &Files) -> String {
    let doc: Value = serde_json::from_slice(&files.targets).unwrap_or_default();
    doc["signed"]["targets"]
        .as_object()
        .and_then(|t| t.keys().next().cloned())
        .unwrap_or_else(|| "v1".into())
}

/// Uploads to the real notary-server; when it accepts, lists with the real client.
fn ask_server(server: &NotaryServer, gun: &str, files: &Files, client_dir: &Path) -> Said {
    let client = TrustServer::new(&server.url, None).unwrap();
    if let Some(earlier) = &files.earlier {
        client
            .publish(
                gun,
                &[
                    ("root", &earlier.root),
                    ("targets", &earlier.targets),
                    ("snapshot", &earlier.snapshot),
                ],
            )
            .expect("the earlier version is accepted");
    }
    let mut upload: Vec<(&str, &[u8])> = vec![("root", &files.root)];
    if files
        .earlier
        .as_ref()
        .is_none_or(|e| e.targets != files.targets)
    {
        upload.push(("targets", &files.targets));
    }
    upload.push(("snapshot", &files.snapshot));
    match client.publish(gun, &upload) {
        Err(e) => Said {
            accepted: false,
            message: format!(
                "notary-server: {}",
                one_line(
                    e.to_string()
                        .split_once(" answered ")
                        .map_or(&e.to_string(), |(_, a)| a)
                )
            ),
        },
        Ok(()) => {
            let listed = client_lists(&server.url, client_dir, gun, &target_of(files));
            Said {
                accepted: listed.accepted,
                message: format!("notary-server accepted; {}", listed.message),
            }
        }
    }
}

/// Serves the files statically (as notary-server would serve them, by name and by hash) to
/// the real notary client.
fn ask_client(gun: &str, files: &Files, client_dir: &Path) -> Said {
    let server = static_server(gun, files);
    client_lists(&server.url, client_dir, gun, &target_of(files))
}

fn static_server(gun: &str, files: &Files) -> HttpFixture {
    let base = format!("/v2/{gun}/_trust/tuf/");
    let mut served: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (role, bytes) in [
        ("root", Some(&files.root)),
        ("targets", Some(&files.targets)),
        ("snapshot", Some(&files.snapshot)),
        ("timestamp", files.timestamp.as_ref()),
    ] {
        if let Some(bytes) = bytes {
            served.insert(format!("{base}{role}.json"), bytes.clone());
            served.insert(
                format!("{base}{role}.{}.json", hex_sha256(bytes)),
                bytes.clone(),
            );
        }
    }
    served.insert("/v2/".into(), b"{}".to_vec());
    HttpFixture::routing(move |first| {
        let path = first.split(' ').nth(1).unwrap_or_default();
        match served.get(path) {
            Some(bytes) => http_response("200 OK", &[("Content-Type", "application/json")], bytes),
            None => http_response(
                "404 Not Found",
                &[],
                br#"{"errors":[{"code":"METADATA_NOT_FOUND","message":"not found"}]}"#,
            ),
        }
    })
}

/// The GUN of a case.
fn gun_of(name: &str, via: Via) -> String {
    format!(
        "example.com/hostile/{}-{}",
        name.to_lowercase(),
        if via == Via::Server { "s" } else { "c" }
    )
}

/// A repository for `gun`: on the server, with the server's timestamp key for it.
fn repo_for(server: &NotaryServer, gun: &str, via: Via, dir: &Path) -> Repo {
    let timestamp = match via {
        Via::Server => {
            let client = TrustServer::new(&server.url, None).unwrap();
            Key::server(&client.role_key(gun, "timestamp").unwrap())
        }
        Via::Client => Key::ecdsa(),
    };
    Repo::new(gun, dir, timestamp)
}

fn ask_notary(server: &NotaryServer, gun: &str, via: Via, files: &Files, dir: &Path) -> Said {
    match via {
        Via::Server => ask_server(server, gun, files, &dir.join("notary-client")),
        Via::Client => ask_client(gun, files, &dir.join("notary-client")),
    }
}

/// `rootkeeper inspect FILE`: (exit code, stdout, stderr).
fn inspect(hsm: &SoftHsm, path: &Path) -> Run {
    hsm.run(&["inspect", path.to_str().unwrap()])
}

// ---------------------------------------------------------------------------------------
// 2 and 5: one negative fixture per client rule, against rootkeeper and notary

#[test]
fn every_client_rule_has_a_negative_fixture() {
    let cases = cases();
    for rule in RULES {
        assert!(
            cases.iter().any(|c| c.rule == *rule),
            "no fixture breaks the rule `{rule}`"
        );
    }
    for c in &cases {
        assert!(
            RULES.contains(&c.rule),
            "{}: unknown rule {}",
            c.name,
            c.rule
        );
    }
    let mut names: Vec<&str> = cases.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "fixture names are unique");
}

#[test]
fn well_formed_repositories_are_accepted_by_rootkeeper_and_by_notary() {
    // The control: without these, a refusal below could be of anything.
    let hsm = SoftHsm::new();
    let server = NotaryServer::start();
    for (name, via) in [("valid", Via::Server), ("valid", Via::Client)] {
        let gun = gun_of(name, via);
        let dir = hsm.path().join(format!("{name}-{via:?}"));
        let r = repo_for(&server, &gun, via, &dir);
        let files = r.files();
        let run = rootkeeper_verify(&hsm, &gun, &dir, &files);
        assert_eq!(run.code, 0, "{via:?}: {}{}", run.stdout, run.stderr);
        assert_eq!(library_verdict(&gun, &files), Ok(()));
        for name in [
            "root.json",
            "targets.json",
            "snapshot.json",
            "timestamp.json",
        ] {
            let path = dir.join(name);
            if path.exists() {
                let shown = inspect(&hsm, &path);
                assert_eq!(shown.code, 0, "{name}: {}{}", shown.stdout, shown.stderr);
                assert!(
                    shown.stdout.contains(&format!("safe to upload to {gun}: "))
                        && !shown.stdout.contains("NOT safe"),
                    "{}",
                    shown.stdout
                );
            }
        }
        // A snapshot is safe only with the targets.json it covers beside it.
        let alone = dir.join("alone");
        std::fs::create_dir_all(&alone).unwrap();
        std::fs::write(alone.join("root.json"), &files.root).unwrap();
        std::fs::write(alone.join("snapshot.json"), &files.snapshot).unwrap();
        let shown = inspect(&hsm, &alone.join("snapshot.json"));
        assert_eq!(shown.code, 1, "{}", shown.stdout);
        assert!(
            shown
                .stdout
                .contains("NOT safe to upload: no targets.json beside it"),
            "{}",
            shown.stdout
        );
        let said = ask_notary(&server, &gun, via, &files, &dir);
        assert!(said.accepted, "{via:?}: {said:?}\n{}", server.log());
    }
    // A root signature with the high S, which Go's verifier takes.
    let gun = gun_of("valid-high-s", Via::Server);
    let dir = hsm.path().join("valid-high-s");
    let r = repo_for(&server, &gun, Via::Server, &dir);
    let doc = r.root_doc();
    let message = canonical(&doc);
    let files = r.finish(
        envelope(&message, &[r.root_keys[0].sign_high_s(&message)]),
        r.targets_file(),
    );
    let run = rootkeeper_verify(&hsm, &gun, &dir, &files);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let said = ask_notary(&server, &gun, Via::Server, &files, &dir);
    assert!(said.accepted, "{said:?}");

    // A rotation to a new key, signed by the old and the new.
    let gun = gun_of("valid-rotation", Via::Server);
    let dir = hsm.path().join("valid-rotation");
    let r = repo_for(&server, &gun, Via::Server, &dir);
    let files = r.next(2, |n| {
        let new = Key::root(&n.gun, -1, 3650);
        n.root_signers = vec![n.root_keys[0].clone(), new.clone()];
        n.root_keys = vec![new];
    });
    let run = rootkeeper_verify(&hsm, &gun, &dir, &files);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(library_verdict(&gun, &files), Ok(()));
    let said = ask_notary(&server, &gun, Via::Server, &files, &dir);
    assert!(said.accepted, "{said:?}");
}

#[test]
fn hostile_fixtures_are_refused_naming_the_rule_and_notary_says_what_it_does() {
    let hsm = SoftHsm::new();
    let server = NotaryServer::start();
    let mut table = Vec::new();
    let mut wrong = Vec::new();
    for case in cases() {
        let gun = gun_of(case.name, case.via);
        let dir = hsm.path().join(case.name);
        let r = repo_for(&server, &gun, case.via, &dir);
        let files = (case.make)(&r);
        let name = case.name;

        // rootkeeper's CLI: one error line naming the file and the rule, and a hint.
        let run = rootkeeper_verify(&hsm, &gun, &dir, &files);
        if run.code != 1 {
            wrong.push(format!(
                "{name}: root verify exited {}: {}{}",
                run.code, run.stdout, run.stderr
            ));
            continue;
        }
        let error = one_error_line_and_a_hint(&run.stderr).to_owned();
        if !error.contains(&format!("rule `{}` broken", case.rule)) || !error.contains(case.file) {
            wrong.push(format!(
                "{name}: want rule `{}` in {}: {error}",
                case.rule, case.file
            ));
        }

        // The library: Document::parse refuses exactly the parse rules; the check_* the rest.
        let by_library = library_verdict(&gun, &files);
        let parse = files_parse(&files);
        match &by_library {
            Err((file, rule)) if *rule == case.rule && file.ends_with(case.file) => {}
            other => wrong.push(format!("{name}: library said {other:?}")),
        }
        if PARSE_RULES.contains(&case.rule) == parse.is_ok() {
            wrong.push(format!(
                "{name}: Document::parse said {parse:?} for rule {}",
                case.rule
            ));
        }

        // inspect: "NOT safe to upload" naming the rule, exit 1 (or, for a file it cannot
        // read strictly, the error itself).
        let shown = inspect(&hsm, &dir.join(case.file));
        let inspect_ok = match (case.name, PARSE_RULES.contains(&case.rule)) {
            // inspect knows no GUN and no previous root: it says for which GUN the file is
            // safe, and that the rotation rules are not checked.
            ("root-cn-mismatch", _) => {
                shown.code == 0
                    && shown
                        .stdout
                        .contains("safe to upload to example.com/somebody-else: ")
            }
            ("root-version-skips" | "root-rotation-old-keys-missing", _) => {
                shown.code == 0
                    && shown.stdout.contains(&format!(
                        "safe to upload to {gun} as far as this file shows"
                    ))
                    && shown
                        .stdout
                        .contains("not checked: root-version and root-rotation")
            }
            (_, true) => {
                shown.code == 1
                    && one_error_line_and_a_hint(&shown.stderr)
                        .contains(&format!("rule `{}` broken", case.rule))
            }
            (_, false) => {
                shown.code == 1
                    && shown.stdout.lines().any(|l| {
                        l.starts_with("NOT safe to upload: ")
                            && l.contains(&format!("rule `{}` broken", case.rule))
                    })
            }
        };
        if !inspect_ok {
            wrong.push(format!(
                "{name}: inspect {} exited {}:\n{}{}",
                case.file, shown.code, shown.stdout, shown.stderr
            ));
        }

        // notary, live.
        let said = ask_notary(&server, &gun, case.via, &files, &dir);
        let verdict = match case.notary {
            Notary::Refuses(words) => {
                if said.accepted || !said.message.contains(words) {
                    wrong.push(format!(
                        "{name}: expected notary to refuse ({words}); {said:?}"
                    ));
                }
                "both".to_string()
            }
            Notary::Accepts(why) => {
                if !said.accepted {
                    wrong.push(format!("{name}: expected notary to accept; {said:?}"));
                }
                assert!(why.starts_with(FOLDED) || why.starts_with(POLICY), "{name}");
                format!("rootkeeper only ({why})")
            }
        };
        table.push(format!(
            "| `{name}` | {} | `{}` | {verdict} | {} |",
            case.file,
            case.rule,
            said.message.replace('|', "\\|")
        ));
    }
    println!("| fixture | file | rule | who refuses | what notary said (live) |");
    println!("|---|---|---|---|---|");
    for line in &table {
        println!("{line}");
    }
    assert!(
        wrong.is_empty(),
        "{} case(s) wrong:\n{}",
        wrong.len(),
        wrong.join("\n\n")
    );
}

/// `Document::parse` of every file: the first error.
fn files_parse(files: &Files) -> std::result::Result<(), String> {
    for (name, bytes) in [
        ("root.json", Some(&files.root)),
        ("targets.json", Some(&files.targets)),
        ("snapshot.json", Some(&files.snapshot)),
        ("timestamp.json", files.timestamp.as_ref()),
    ] {
        if let Some(bytes) = bytes {
            Document::parse(name, bytes).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 1: the audit, live

use hsm_tests::tree;

/// A draft's `pending/root.json` rewritten: its signed part changed by `change`, written in
/// Go's encoding, the signatures kept.
fn rewrite(file: &[u8], change: impl FnOnce(&mut Value)) -> Vec<u8> {
    let doc: Value = serde_json::from_slice(file).unwrap();
    let mut signed = doc["signed"].clone();
    assert_eq!(
        canonical(&signed),
        hsm_tests::raw_signed_bytes(file),
        "the test's encoder writes the draft's own bytes"
    );
    change(&mut signed);
    envelope(&canonical(&signed), doc["signatures"].as_array().unwrap())
}

#[test]
fn audit_a_hostile_draft_is_refused_by_every_command_and_nothing_is_written() {
    let hsm = SoftHsm::new();
    let gun = "example.com/hostile/draft";
    let roots = hsm.draft_2_of_3(gun, None);
    // One custodian signed already: the ceremony is under way when the draft is tampered with.
    hsm.ok(&["root", "sign", "--gun", gun, "--key", &roots[0]]);
    let pending = hsm
        .trust_dir()
        .join("repos")
        .join(gun)
        .join("pending/root.json");
    let original = std::fs::read(&pending).unwrap();
    let doc: Value = serde_json::from_slice(&original).unwrap();
    let targets_id = doc["signed"]["roles"]["targets"]["keyids"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let evil = Key::ecdsa();
    let evil_targets = json!({"keyids": [evil.id.clone()], "threshold": 1});

    let variants: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "an extra key and a hidden `roleſ` targets role",
            "signed.role\u{17f}",
            rewrite(&original, |s| {
                s["keys"][&evil.id] = evil.doc.clone();
                s["role\u{17f}"] = json!({"targets": evil_targets.clone()});
            }),
        ),
        (
            "a Kelvin-sign `Keys` alias",
            "signed.\u{212a}eys",
            rewrite(&original, |s| {
                let mut all = s["keys"].clone();
                all[&evil.id] = evil.doc.clone();
                s["\u{212a}eys"] = all;
            }),
        ),
        (
            "an upper-case `Roles`",
            "signed.Roles",
            rewrite(&original, |s| {
                s["keys"][&evil.id] = evil.doc.clone();
                s["Roles"] = json!({"targets": evil_targets.clone()});
            }),
        ),
        (
            "an unknown field deep inside a key",
            "keyval.comment",
            rewrite(&original, |s| {
                s["keys"][&targets_id]["keyval"]["comment"] = json!("hello");
            }),
        ),
        ("a key listed twice in `keys`", "appears twice", {
            let entry = format!(
                "\"{targets_id}\":{}",
                String::from_utf8(canonical(&doc["signed"]["keys"][&targets_id])).unwrap()
            );
            replace_once(&original, "\"keys\":{", &format!("\"keys\":{{{entry},"))
        }),
    ];

    let out = hsm.path().join("out");
    let path = pending.display().to_string();
    for (what, field, hostile) in &variants {
        std::fs::write(&pending, hostile).unwrap();
        let before = tree(&hsm.trust_dir());
        for args in [
            vec!["root", "status", "--gun", gun],
            vec!["root", "status"],
            vec!["root", "sign", "--gun", gun, "--key", &roots[1]],
            vec![
                "root",
                "export",
                "--gun",
                gun,
                "--out",
                out.to_str().unwrap(),
            ],
            vec!["root", "verify", "--gun", gun],
            vec!["root", "verify", &path],
            vec!["inspect", &path],
        ] {
            let err = hsm.fails(1, &args);
            let line = one_error_line_and_a_hint(&err);
            assert!(
                line.contains(&path) && line.contains(field) && line.contains("rule `fields`"),
                "{what}: `rootkeeper {}` must name {path} and `{field}`:\n{err}",
                args.join(" ")
            );
        }
        assert_eq!(
            tree(&hsm.trust_dir()),
            before,
            "{what}: nothing may be written"
        );
        assert!(!out.exists(), "{what}: nothing may be exported");
    }

    // The draft as it was is still good: the refusals were about the bytes, not the draft.
    std::fs::write(&pending, &original).unwrap();
    let status = hsm.ok_json(&["root", "status", "--gun", gun]);
    assert_eq!(status["drafts"][0]["root"]["signed"], 1, "{status}");
}

#[test]
fn audit_the_divergence_is_real_notary_trusts_a_key_rootkeeper_never_shows() {
    let hsm = SoftHsm::new();
    let server = NotaryServer::start();
    let gun = "example.com/hostile/audit";
    let dir = hsm.path().join("audit");
    let repo = repo_for(&server, gun, Via::Server, &dir);
    let (evil, evil_targets) = repo.smuggled();
    let mut doc = repo.root_doc();
    doc["keys"][&evil.id] = evil.doc.clone();
    doc["role\u{17f}"] = json!({"targets": Repo::role(&[&evil], 1)});
    let files = repo.finish(repo.root_file(&doc), evil_targets);

    // What an exact-name reader sees: the legitimate targets key and nothing else, and one
    // root signature that verifies (checked with p256 over the bytes sliced from the file,
    // which are the canonical bytes with the alias).
    let shown: Value = serde_json::from_slice(&files.root).unwrap();
    assert_eq!(
        shown["signed"]["roles"]["targets"]["keyids"],
        json!([repo.targets.id])
    );
    assert_eq!(root_signatures_valid(&files.root), 1);

    // notary-server takes it, and the notary client lists the attacker's target, which only
    // the smuggled key signed.
    let client = TrustServer::new(&server.url, None).unwrap();
    client
        .publish(
            gun,
            &[
                ("root", &files.root),
                ("targets", &files.targets),
                ("snapshot", &files.snapshot),
            ],
        )
        .unwrap_or_else(|e| panic!("notary-server refused the audit's root: {e}"));
    let notary_dir = dir.join("notary-client");
    let said = client_lists(&server.url, &notary_dir, gun, "evil");
    assert!(said.accepted, "{said:?}\n{}", server.log());
    let cached =
        std::fs::read(notary_dir.join("tuf").join(gun).join("metadata/root.json")).unwrap();
    assert_eq!(
        cached, files.root,
        "the client trusts exactly this root.json"
    );
    let targets: Value = serde_json::from_slice(&files.targets).unwrap();
    assert_eq!(targets["signatures"].as_array().unwrap().len(), 1);
    assert_eq!(targets["signatures"][0]["keyid"], evil.id.as_str());

    // rootkeeper refuses those very files, naming the field.
    let run = rootkeeper_verify(&hsm, gun, &dir, &files);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let line = one_error_line_and_a_hint(&run.stderr);
    assert!(
        line.contains("root.json") && line.contains("rule `fields` broken: signed.role\u{17f}"),
        "{line}"
    );
    let shown = inspect(&hsm, &dir.join("root.json"));
    assert_eq!(shown.code, 1, "{}", shown.stdout);
    assert!(
        one_error_line_and_a_hint(&shown.stderr).contains("signed.role\u{17f}"),
        "{}",
        shown.stderr
    );
    assert!(!shown.stdout.contains("safe to upload"), "{}", shown.stdout);

    // And `server publish` refuses such an export before it sends anything.
    let other = "example.com/hostile/audit-publish";
    let repo = repo_for(&server, other, Via::Server, &dir.join("publish"));
    let (evil, evil_targets) = repo.smuggled();
    let mut doc = repo.root_doc();
    doc["keys"][&evil.id] = evil.doc.clone();
    doc["role\u{17f}"] = json!({"targets": Repo::role(&[&evil], 1)});
    let files = repo.finish(repo.root_file(&doc), evil_targets);
    let export = dir.join("export");
    write_files(&export, &files);
    let err = hsm.fails(
        1,
        &[
            "--yes",
            "server",
            "publish",
            export.to_str().unwrap(),
            "--server",
            &server.url,
            "--gun",
            other,
        ],
    );
    assert!(
        one_error_line_and_a_hint(&err).contains("signed.role\u{17f}"),
        "{err}"
    );
    assert_eq!(
        client.get(other, "root.json").unwrap(),
        None,
        "nothing was uploaded"
    );
}

// ---------------------------------------------------------------------------------------
// 3: thresholds count distinct keys

#[test]
fn thresholds_count_distinct_keys_not_certificates() {
    let hsm = SoftHsm::new();
    let server = NotaryServer::start();
    let gun = "example.com/hostile/one-key-two-certs";
    let dir = hsm.path().join("two-certs");
    let repo = repo_for(&server, gun, Via::Server, &dir);
    let files = one_key_two_certs(&repo);

    // Two certificates, one key inside both (read without rootkeeper), two signatures that
    // verify: a 2-of-2 root made by one private key.
    let doc: Value = serde_json::from_slice(&files.root).unwrap();
    let ids = doc["signed"]["roles"]["root"]["keyids"].as_array().unwrap();
    assert_eq!(ids.len(), 2);
    assert_eq!(doc["signed"]["roles"]["root"]["threshold"], 2);
    let inside: Vec<_> = ids
        .iter()
        .map(|id| {
            hsm_tests::p256_key_of_cert(
                doc["signed"]["keys"][id.as_str().unwrap()]["keyval"]["public"]
                    .as_str()
                    .unwrap(),
            )
        })
        .collect();
    assert_ne!(ids[0], ids[1]);
    assert_eq!(inside[0], inside[1]);
    assert_eq!(root_signatures_valid(&files.root), 2);

    let run = rootkeeper_verify(&hsm, gun, &dir, &files);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        one_error_line_and_a_hint(&run.stderr).contains(
            "rule `structure` broken: role `root` needs 2 signatures but has 1 distinct key(s)"
        ),
        "{}",
        run.stderr
    );

    // notary counts key IDs: the server takes it and the client trusts it.
    let said = ask_server(&server, gun, &files, &dir.join("notary-client"));
    assert!(said.accepted, "{said:?}");
}

// ---------------------------------------------------------------------------------------
// 4: a planted bogus signature does not block a custodian

#[test]
fn a_planted_bogus_signature_does_not_block_a_custodian() {
    let hsm = SoftHsm::new();
    let server = NotaryServer::start();
    let gun = "example.com/hostile/planted";
    let roots = hsm.draft_2_of_3(gun, Some(&server));
    let status = hsm.ok_json(&["root", "status", "--gun", gun]);
    let signer_a = status["drafts"][0]["root"]["signers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["uri"].as_str().unwrap().contains("token=root-a"))
        .unwrap()
        .clone();
    let keyid = signer_a["keyid"].as_str().unwrap();

    // Plant 64 random bytes as root-a's signature.
    let pending = hsm
        .trust_dir()
        .join("repos")
        .join(gun)
        .join("pending/root.json");
    let original = std::fs::read(&pending).unwrap();
    let doc: Value = serde_json::from_slice(&original).unwrap();
    assert_eq!(doc["signatures"], json!([]));
    let garbage = json!({"keyid": keyid, "method": "ecdsa", "sig": B64.encode(random::<64>())});

    // A signature under a key ID no signer of the draft holds could only have been planted:
    // refused (it would otherwise be exported as it is), naming the key.
    let stranger = Key::ecdsa();
    std::fs::write(
        &pending,
        envelope(
            &hsm_tests::raw_signed_bytes(&original),
            &[garbage.clone(), stranger.garbage()],
        ),
    )
    .unwrap();
    for args in [
        vec!["root", "status", "--gun", gun],
        vec!["root", "sign", "--gun", gun, "--key", &roots[0]],
    ] {
        let err = hsm.fails(1, &args);
        let line = one_error_line_and_a_hint(&err);
        assert!(
            line.contains("pending/root.json")
                && line.contains(&format!("a signature by key {}", stranger.id))
                && line.contains("not a root signer"),
            "{err}"
        );
    }

    std::fs::write(
        &pending,
        envelope(&hsm_tests::raw_signed_bytes(&original), &[garbage]),
    )
    .unwrap();

    let state = |hsm: &SoftHsm| -> String {
        let status = hsm.ok_json(&["root", "status", "--gun", gun]);
        status["drafts"][0]["root"]["signers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["keyid"] == keyid)
            .unwrap()["state"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(state(&hsm), "invalid");
    let text = hsm.ok(&["root", "status", "--gun", gun]);
    assert!(text.contains("INVALID"), "{text}");

    // root-a signs: its signature replaces the planted one.
    let run = hsm.run(&["root", "sign", "--gun", gun, "--key", &roots[0]]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("replacing its invalid signature"),
        "{}",
        run.stderr
    );
    assert_eq!(state(&hsm), "signed");
    let signed = std::fs::read(&pending).unwrap();
    assert_eq!(root_signatures_valid(&signed), 1);

    hsm.sign_with_repo_keys(gun, &[&roots[1]]);
    hsm.ok(&["root", "export", "--gun", gun, "--out", "out"]);
    let exported = std::fs::read(hsm.path().join("out/root.json")).unwrap();
    let doc: Value = serde_json::from_slice(&exported).unwrap();
    assert_eq!(doc["signatures"].as_array().unwrap().len(), 2, "{doc}");
    assert_eq!(root_signatures_valid(&exported), 2);
    hsm.publish(&server, "out", gun);
    server.assert_trusts(&hsm, gun);
}
