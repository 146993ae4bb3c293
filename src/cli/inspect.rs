//! `rootkeeper inspect FILE`: roles, keys and IDs, thresholds, expiry, whether each signature
//! is valid, and whether the file is safe to upload (every client rule holds). A file that
//! does not parse strictly is not shown at all: showing it would show what rootkeeper reads,
//! not what notary reads.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rootkeeper::fingerprint::Fingerprint;
use rootkeeper::text::escape_untrusted;
use rootkeeper::trustdir;
use rootkeeper::tuf::model::{Document, RoleName, UtcTime};
use rootkeeper::tuf::verify::{self, CheckedRoot, KeyFacts};
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

fn key_line(id: &str, facts: &KeyFacts) -> (String, Value) {
    let mut line = format!("  {id}  {}", facts.key.keytype);
    let mut doc =
        json!({"keyid": id, "keytype": facts.key.keytype.as_str(), "key_id": facts.canonical});
    if facts.canonical.as_str() != id {
        let _ = write!(line, "\n      key ID {}", facts.canonical);
    }
    if let Some(leaf) = facts.certs.first() {
        let from = UtcTime::from_system(leaf.not_before);
        let to = UtcTime::from_system(leaf.not_after);
        let cns: Vec<String> = leaf
            .common_names
            .iter()
            .map(|c| escape_untrusted(c))
            .collect();
        let _ = write!(
            line,
            "  CN={}  valid {from} to {to}{}",
            cns.join(" CN="),
            if facts.certs.len() > 1 {
                format!("  ({} certificates)", facts.certs.len())
            } else {
                String::new()
            }
        );
        doc["cn"] = json!(cns);
        doc["not_after"] = json!(to.to_go_string());
    }
    (line, doc)
}

fn sibling(file: &Path, name: &str) -> PathBuf {
    file.with_file_name(name)
}

fn read_sibling(file: &Path, name: &str) -> Option<Vec<u8>> {
    let path = sibling(file, name);
    path.exists().then(|| trustdir::read(&path).ok()).flatten()
}

pub fn run(_ctx: &Ctx, args: InspectArgs) -> anyhow::Result<Output> {
    let name = args.file.display().to_string();
    let bytes = trustdir::read(&args.file)?;
    let doc = Document::parse(&name, &bytes)?;
    let now = UtcTime::now();
    let expires = doc.expires();
    let expired = expires.instant() <= now;
    let mut text = format!(
        "{name}: {} v{}, expires {expires}{}\n",
        doc.type_name(),
        doc.version(),
        if expired { " (EXPIRED)" } else { "" }
    );
    let signed = doc.signed_bytes()?;
    let fp = Fingerprint::of(&signed);
    let _ = writeln!(text, "  signed part SHA-256: {}", fp.hex_groups().join(" "));
    let mut out = json!({
        "file": name, "type": doc.type_name(), "version": doc.version(),
        "expires": expires.to_string(), "expired": expired, "fingerprint": fp,
    });

    // The root that checks this file: itself, or the one beside it (or --root).
    let root_path = args
        .root
        .clone()
        .unwrap_or_else(|| sibling(&args.file, "root.json"));
    let root_check: Result<CheckedRoot, rootkeeper::Error> = match &doc {
        Document::Root(_) => verify::check_root(&name, &bytes, None, None, now),
        _ => match trustdir::read(&root_path) {
            Ok(root) => {
                verify::check_root(&root_path.display().to_string(), &root, None, None, now)
            }
            Err(e) => Err(e),
        },
    };
    if let Document::Root(root) = &doc {
        text.push_str("keys:\n");
        let table = verify::key_table(&name, &root.signed.keys);
        let mut keys = Vec::new();
        for (id, key) in &root.signed.keys {
            match table.as_ref().ok().and_then(|t| t.get(id)) {
                Some(facts) => {
                    let (line, d) = key_line(id.as_str(), facts);
                    let _ = writeln!(text, "{line}");
                    keys.push(d);
                }
                None => {
                    let _ = writeln!(text, "  {id}  {}  (not a usable key)", key.keytype);
                    keys.push(
                        json!({"keyid": id, "keytype": key.keytype.as_str(), "usable": false}),
                    );
                }
            }
        }
        text.push_str("roles:\n");
        for role in RoleName::ALL {
            let spec = root.signed.roles.get(role);
            let ids: Vec<&str> = spec.keyids.iter().map(|k| k.short()).collect();
            let _ = writeln!(
                text,
                "  {:<10} threshold {}  keys {}",
                role.as_str(),
                spec.threshold,
                ids.join(" ")
            );
        }
        out["keys"] = json!(keys);
        out["roles"] = serde_json::to_value(&root.signed.roles).unwrap_or_default();
    }

    // Signature verdicts, by the role this file is for.
    let role_keys = |root: &CheckedRoot| match &doc {
        Document::Root(_) => Some(root.doc.signed.roles.root.clone()),
        Document::Targets(_) if args.file.file_name().is_some_and(|n| n == "targets.json") => {
            Some(root.doc.signed.roles.targets.clone())
        }
        Document::Targets(_) => None,
        Document::Snapshot(_) => Some(root.doc.signed.roles.snapshot.clone()),
        Document::Timestamp(_) => Some(root.doc.signed.roles.timestamp.clone()),
    };
    text.push_str("signatures:\n");
    let mut sigs = Vec::new();
    let keys_for_checks = match (&doc, &root_check) {
        (Document::Root(root), _) => verify::key_table(&name, &root.signed.keys).ok(),
        (_, Ok(root)) => Some(root.keys.clone()),
        _ => None,
    };
    let role = root_check.as_ref().ok().and_then(role_keys).or(match &doc {
        Document::Root(root) => Some(root.signed.roles.root.clone()),
        _ => None,
    });
    let mut any_invalid = false;
    for sig in doc.signatures() {
        let verdict = match (&keys_for_checks, &role) {
            (Some(keys), Some(role)) => match keys.get(&sig.keyid) {
                Some(facts) if role.keyids.contains(&sig.keyid) => {
                    if rootkeeper::tuf::notary::check_signature(&facts.verifying, sig, &signed) {
                        "valid".to_string()
                    } else {
                        any_invalid = true;
                        "INVALID".to_string()
                    }
                }
                Some(_) => "not a key of this role (ignored by clients)".into(),
                None => "unknown key (ignored by clients)".into(),
            },
            _ => "not checked (no root.json to check against; use --root)".into(),
        };
        let _ = writeln!(
            text,
            "  {}  {:<6} {verdict}",
            sig.keyid,
            sig.method.as_str()
        );
        sigs.push(json!({"keyid": sig.keyid, "method": sig.method.as_str(), "verdict": verdict}));
    }
    if doc.signatures().is_empty() {
        text.push_str("  none\n");
    }
    out["signatures"] = json!(sigs);

    // Every client rule: "safe to upload" only when all hold.
    let verdict: Result<(), String> = match (&doc, &root_check) {
        (Document::Root(_), Ok(_)) => Ok(()),
        (_, Err(e)) => Err(e.to_string()),
        (Document::Targets(_), Ok(root)) => {
            if args.file.file_name().is_some_and(|n| n == "targets.json") {
                verify::check_targets(&name, &bytes, root, now)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            } else {
                Err("a delegation is checked against its parent targets.json; `rootkeeper root verify` does that".into())
            }
        }
        (Document::Snapshot(_), Ok(root)) => match read_sibling(&args.file, "targets.json") {
            Some(targets) => {
                let covers: [(&str, &[u8]); 2] = [("root", &root.bytes), ("targets", &targets)];
                verify::check_snapshot(&name, &bytes, root, &covers, now)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            None => Err("no targets.json beside it to check its hash against".into()),
        },
        (Document::Timestamp(_), Ok(root)) => match read_sibling(&args.file, "snapshot.json") {
            Some(snapshot) => verify::check_timestamp(&name, &bytes, root, &snapshot, now)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            None => Err("no snapshot.json beside it to check its hash against".into()),
        },
    };
    let safe = verdict.is_ok() && !any_invalid;
    match &verdict {
        Ok(()) if safe => {
            // Safe for the GUN its root names; and a new root version is safe only if the root
            // it replaces signed it, which this file alone cannot show.
            let gun = root_check
                .as_ref()
                .map(|r| escape_untrusted(&r.gun))
                .unwrap_or_default();
            out["gun"] = json!(gun);
            match &doc {
                Document::Root(root) if root.signed.version.get() > 1 => {
                    let _ = writeln!(
                        text,
                        "safe to upload to {gun} as far as this file shows: exactly Go's encoding, and every client rule holds\n\
                         not checked: root-version and root-rotation, which need the root it replaces (`rootkeeper root verify --trusted PREVIOUS.json {name}`)"
                    );
                }
                _ => {
                    let _ = writeln!(
                        text,
                        "safe to upload to {gun}: exactly Go's encoding, and every client rule holds"
                    );
                }
            }
        }
        Ok(()) => {
            let _ = writeln!(text, "NOT safe to upload: a signature does not verify");
        }
        Err(why) => {
            let _ = writeln!(text, "NOT safe to upload: {why}");
        }
    }
    out["safe_to_upload"] = json!(safe);
    out["problem"] = json!(verdict.err());
    if args.pretty {
        let value: Value = serde_json::from_slice(&signed).unwrap_or_default();
        let _ = writeln!(
            text,
            "signed:\n{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    }
    let output = Output::new(text, out);
    Ok(if safe { output } else { output.failing() })
}
