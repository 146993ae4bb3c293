//! `rootkeeper key generate` and `rootkeeper key list`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Subcommand, ValueEnum};
use rootkeeper::backend::Keyring;
use rootkeeper::backend::pkcs11::{self, Module};
use rootkeeper::keyuri::KeyUri;
use rootkeeper::tuf::model::UtcTime;
use rootkeeper::tuf::notary;
use serde_json::json;

use super::{Ctx, Output, json};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleName {
    Root,
    Targets,
    Snapshot,
    Timestamp,
}

impl RoleName {
    fn as_str(self) -> &'static str {
        match self {
            RoleName::Root => "root",
            RoleName::Targets => "targets",
            RoleName::Snapshot => "snapshot",
            RoleName::Timestamp => "timestamp",
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Algorithm {
    /// ECDSA on NIST P-256 (the only algorithm Notary roots use).
    EcdsaP256,
}

// clap builds these once per run; boxing the large variants would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Generate a P-256 key inside a token; the private key never leaves it.
    Generate {
        /// The token, e.g. pkcs11:token=root-a (from `rootkeeper token list`).
        #[arg(long, value_name = "URI")]
        token: String,
        /// Label of the new key on the token (must be unused there).
        #[arg(long)]
        label: String,
        /// The role the key is for (recorded in the inventory).
        #[arg(long, value_enum)]
        role: Option<RoleName>,
        /// Key algorithm.
        #[arg(long, value_enum, default_value = "ecdsa-p256")]
        algorithm: Algorithm,
    },
    /// Keys in the trust directory's inventory and on present tokens.
    List {
        /// PKCS#11 module to look for tokens (default: ROOTKEEPER_PKCS11_MODULE, then SoftHSM).
        #[arg(long, value_name = "PATH")]
        module: Option<PathBuf>,
    },
}

pub fn run(ctx: &Ctx, cmd: KeyCommand) -> anyhow::Result<Output> {
    match cmd {
        KeyCommand::Generate {
            token,
            label,
            role,
            algorithm: Algorithm::EcdsaP256,
        } => generate(ctx, &super::key_uri(&token)?, &label, role),
        KeyCommand::List { module } => list(ctx, module),
    }
}

fn generate(
    ctx: &Ctx,
    token: &KeyUri,
    label: &str,
    role: Option<RoleName>,
) -> anyhow::Result<Output> {
    if label.is_empty() {
        return Err(super::usage("--label must not be empty"));
    }
    let dir = ctx.trust_dir()?;
    let pins = ctx.pins();
    let mut keyring = Keyring::new(&pins);
    let KeyUri::Pkcs11(uri) = token;
    if uri.names_key() {
        return Err(super::usage(
            "--token names a token, not a key: leave out object= and id= (the key's label is --label)",
        ));
    }
    let session = keyring.session(uri)?;
    let key = session
        .generate_key(label)
        .with_context(|| format!("generating `{label}` on {}", session.token().describe()))?;
    let entry = rootkeeper::root::record_key(
        &dir,
        &key,
        session.token(),
        role.map(RoleName::as_str),
        UtcTime::now(),
    )?;
    Ok(Output::new(
        format!(
            "generated P-256 key `{label}` inside {}\n  uri:    {}\n  key ID: {}\n  role:   {}\n",
            session.token().describe(),
            entry.uri,
            entry.key_id,
            entry.role.as_deref().unwrap_or("(none)")
        ),
        json(&entry),
    ))
}

fn list(ctx: &Ctx, module: Option<PathBuf>) -> anyhow::Result<Output> {
    let dir = ctx.trust_dir()?;
    let inventory = dir.inventory()?;
    let mut present = BTreeSet::new();
    let mut on_tokens = Vec::new();
    let mut text = String::new();
    let module = pkcs11::module_path(module.as_deref()).and_then(|p| Module::load(&p));
    match &module {
        Ok(module) => {
            for token in module.tokens()? {
                for key in module.public_keys(&token)? {
                    let key_id = notary::key_id(&notary::ecdsa_key(&key.public_key)?);
                    present.insert(key_id.clone());
                    on_tokens.push((key_id, key.uri(&token).to_string()));
                }
            }
        }
        Err(e) => ctx.note(&format!("not looking at tokens: {e}")),
    }
    let mut docs = Vec::new();
    for key in &inventory.keys {
        let here = present.contains(&key.key_id);
        let _ = writeln!(
            text,
            "{}  role {}  token `{}` (serial {})  {}\n  uri: {}",
            &key.key_id[..16],
            key.role.as_deref().unwrap_or("-"),
            key.token_label,
            key.token_serial,
            if here { "present" } else { "token not present" },
            key.uri
        );
        let mut doc = json(key);
        doc["present"] = json!(here);
        docs.push(doc);
    }
    let known: BTreeSet<&str> = inventory.keys.iter().map(|k| k.key_id.as_str()).collect();
    let others: Vec<_> = on_tokens
        .iter()
        .filter(|(id, _)| !known.contains(id.as_str()))
        .collect();
    for (id, uri) in &others {
        let _ = writeln!(text, "{}  not in the inventory\n  uri: {uri}", &id[..16]);
    }
    if inventory.keys.is_empty() && others.is_empty() {
        text.push_str("no keys\n");
    }
    Ok(Output::new(
        text,
        json!({"inventory": docs, "not_in_inventory": others.iter().map(|(id, uri)| json!({"key_id": id, "uri": uri})).collect::<Vec<_>>()}),
    ))
}
