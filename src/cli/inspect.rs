//! `rootkeeper inspect FILE`: roles, keys and IDs, thresholds, expiry, and whether each
//! signature is valid.

use std::fmt::Write as _;
use std::path::PathBuf;

use rootkeeper::trustdir;
use rootkeeper::tuf::model::{Envelope, PublicKey, Role, Root, UtcTime};
use rootkeeper::tuf::notary;
use rootkeeper::tuf::verify;
use serde_json::{Value, json};

use super::{Ctx, Output};

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// A metadata file (root.json, targets.json, snapshot.json, timestamp.json).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Also print the signed part, indented.
    #[arg(long)]
    pretty: bool,
    /// The root.json to check a non-root file's signatures with (default: root.json beside FILE).
    #[arg(long, value_name = "ROOT.json")]
    root: Option<PathBuf>,
}

fn key_line(id: &str, key: &PublicKey) -> (String, Value) {
    let mut line = format!("  {}  {}", verify::short(id), key.keytype);
    let mut doc = json!({"id": id, "keytype": key.keytype});
    if key.keytype.ends_with("-x509") {
        if let Ok(canonical) = notary::canonical_key_id(key) {
            let _ = write!(line, "  canonical ID {}", verify::short(&canonical));
            doc["canonical_id"] = json!(canonical);
        }
        if let Ok(certs) = notary::key_certificates(key) {
            let leaf = &certs[0];
            let from = UtcTime::from_system(leaf.not_before);
            let to = UtcTime::from_system(leaf.not_after);
            let cn = leaf.common_name.clone().unwrap_or_default();
            let _ = write!(line, "  CN={cn}  valid {from} to {to}");
            doc["cn"] = json!(cn);
            doc["not_after"] = json!(to.to_go_string());
        }
    }
    (line, doc)
}

pub fn run(_ctx: &Ctx, args: InspectArgs) -> anyhow::Result<Output> {
    let name = args.file.display().to_string();
    let bytes = trustdir::read(&args.file)?;
    let env = Envelope::parse(&name, &bytes)?;
    let exact = verify::parse_exact(&name, &bytes).is_ok();
    let kind = env.type_name().to_owned();
    let version = env
        .signed
        .get("version")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let expires = env
        .signed
        .get("expires")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_owned();
    let expired = UtcTime::parse(&expires)
        .map(|t| t <= UtcTime::now())
        .unwrap_or(true);
    let mut text = format!(
        "{name}: {kind} v{version}, expires {expires}{}\n",
        if expired { " (EXPIRED)" } else { "" }
    );
    let _ = writeln!(
        text,
        "  bytes are {}",
        if exact {
            "exactly Go's encoding (safe to upload)"
        } else {
            "NOT Go's encoding: notary-server would hash other bytes"
        }
    );
    let mut doc = json!({"file": name, "type": kind, "version": version, "expires": expires, "expired": expired, "go_encoding": exact});

    // The keys that check this file's signatures: its own for root, else the root's.
    let root_for_checks: Option<Root> = if kind == "Root" {
        env.typed(&name).ok()
    } else {
        let path = args
            .root
            .clone()
            .unwrap_or_else(|| args.file.with_file_name("root.json"));
        path.exists()
            .then(|| trustdir::read(&path).ok())
            .flatten()
            .and_then(|b| Envelope::parse("root.json", &b).ok())
            .and_then(|e| e.typed::<Root>("root.json").ok())
    };
    if let Some(root) = root_for_checks.as_ref().filter(|_| kind == "Root") {
        text.push_str("keys:\n");
        let mut keys = Vec::new();
        for (id, key) in &root.keys {
            let (line, d) = key_line(id, key);
            let _ = writeln!(text, "{line}");
            keys.push(d);
        }
        text.push_str("roles:\n");
        for (role, spec) in &root.roles {
            let ids: Vec<&str> = spec.keyids.iter().map(|k| verify::short(k)).collect();
            let _ = writeln!(
                text,
                "  {role:<10} threshold {}  keys {}",
                spec.threshold,
                ids.join(" ")
            );
        }
        doc["keys"] = json!(keys);
        doc["roles"] = serde_json::to_value(&root.roles).unwrap_or_default();
    }
    let role_name = kind.to_lowercase();
    let message = env.signed_bytes().ok();
    text.push_str("signatures:\n");
    let mut sigs = Vec::new();
    for sig in &env.signatures {
        let verdict = match (&root_for_checks, &message) {
            (Some(root), Some(message)) => match root.keys.get(&sig.keyid) {
                Some(key) if notary::key_id(key) != sig.keyid => {
                    "key ID does not match its key".to_string()
                }
                Some(key) => match notary::check_signature(key, sig, message) {
                    Ok(true) => {
                        let listed = root
                            .roles
                            .get(&role_name)
                            .is_some_and(|r: &Role| r.keyids.contains(&sig.keyid));
                        if listed {
                            "valid".into()
                        } else {
                            format!("valid, but the key is not a {role_name} key")
                        }
                    }
                    Ok(false) => "INVALID".into(),
                    Err(e) => format!("cannot check: {e}"),
                },
                None => "unknown key".into(),
            },
            _ => "not checked (no root.json to check against; use --root)".into(),
        };
        let _ = writeln!(
            text,
            "  {}  {:<6} {verdict}",
            verify::short(&sig.keyid),
            sig.method
        );
        sigs.push(json!({"keyid": sig.keyid, "method": sig.method, "verdict": verdict}));
    }
    if env.signatures.is_empty() {
        text.push_str("  none\n");
    }
    doc["signatures"] = json!(sigs);
    if args.pretty {
        let _ = writeln!(
            text,
            "signed:\n{}",
            serde_json::to_string_pretty(&env.signed).unwrap_or_default()
        );
    }
    Ok(Output::new(text, doc))
}
