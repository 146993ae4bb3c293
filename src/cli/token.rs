//! `rootkeeper token list` and `rootkeeper token init`.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use rootkeeper::backend::pkcs11::{self, Module};
use rootkeeper::secret::Pin;
use rootkeeper::tuf::notary;
use serde_json::json;

use super::{Ctx, Hinted, Output};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// List every token with its URI, serial, label and PIN state, and the keys on it.
    List {
        /// PKCS#11 module (default: ROOTKEEPER_PKCS11_MODULE, then SoftHSM).
        #[arg(long, value_name = "PATH")]
        module: Option<PathBuf>,
    },
    /// Initialise a soft token (SoftHSM and similar). PINs come from files or prompts.
    Init {
        /// PKCS#11 module.
        #[arg(long, value_name = "PATH")]
        module: Option<PathBuf>,
        /// Label of the new token.
        #[arg(long)]
        label: String,
        /// File holding the new security-officer PIN (else ROOTKEEPER_SO_PIN, else a prompt).
        #[arg(long, value_name = "FILE")]
        so_pin_file: Option<PathBuf>,
    },
}

pub fn run(ctx: &Ctx, cmd: TokenCommand) -> anyhow::Result<Output> {
    match cmd {
        TokenCommand::List { module } => list(module),
        TokenCommand::Init {
            module,
            label,
            so_pin_file,
        } => init(ctx, module, &label, so_pin_file),
    }
}

fn load(module: Option<PathBuf>) -> anyhow::Result<Module> {
    let path = pkcs11::module_path(module.as_deref())?;
    Ok(Module::load(&path)?)
}

fn list(module: Option<PathBuf>) -> anyhow::Result<Output> {
    let module = load(module)?;
    let mut text = String::new();
    let mut tokens = Vec::new();
    for token in module.tokens()? {
        let keys = module.public_keys(&token)?;
        let _ = writeln!(
            text,
            "token `{}`  serial {}  {} / {}",
            token.label, token.serial, token.manufacturer, token.model
        );
        let _ = writeln!(text, "  uri: {}", token.uri());
        let _ = writeln!(text, "  PIN: {}", token.pin_state);
        let mut key_docs = Vec::new();
        for key in &keys {
            let key_id = notary::key_id(&notary::ecdsa_key(&key.public_key)?);
            let _ = writeln!(text, "  key `{}`  key ID {}", key.label, &key_id[..16]);
            let _ = writeln!(text, "    uri: {}", key.uri(&token));
            key_docs.push(
                json!({"label": key.label, "uri": key.uri(&token).to_string(), "key_id": key_id}),
            );
        }
        if keys.is_empty() {
            text.push_str("  no keys\n");
        }
        tokens.push(json!({
            "label": token.label, "serial": token.serial, "manufacturer": token.manufacturer,
            "model": token.model, "pin_state": token.pin_state, "uri": token.uri().to_string(), "keys": key_docs,
        }));
    }
    if tokens.is_empty() {
        let _ = writeln!(text, "no initialised tokens in {}", module.path().display());
    }
    Ok(Output::new(
        text,
        json!({"module": module.path(), "tokens": tokens}),
    ))
}

fn secret_from(
    ctx: &Ctx,
    file: Option<&std::path::Path>,
    env: &str,
    prompt: &str,
) -> anyhow::Result<Pin> {
    if let Some(path) = file {
        return Ok(Pin::from_file(path)?);
    }
    if let Some(pin) = std::env::var(env).ok().filter(|p| !p.is_empty()) {
        return Ok(Pin::new(pin));
    }
    ctx.prompter.new_secret(prompt)?.ok_or_else(|| {
        Hinted::new(
            format!("no {prompt}: no file, no {env}, and no terminal to ask on"),
            "give it in a file (--so-pin-file / --pin-file) or the environment variable",
        )
        .into()
    })
}

fn init(
    ctx: &Ctx,
    module: Option<PathBuf>,
    label: &str,
    so_pin_file: Option<PathBuf>,
) -> anyhow::Result<Output> {
    if label.is_empty() || label.len() > 32 {
        return Err(super::usage(
            "--label must be 1 to 32 characters (the PKCS#11 limit)",
        ));
    }
    let module = load(module)?;
    let so_pin = secret_from(
        ctx,
        so_pin_file.as_deref(),
        "ROOTKEEPER_SO_PIN",
        "new security-officer PIN",
    )?;
    let user_pin = match (&ctx.pin_file, &ctx.env_pin) {
        (Some(path), _) => Pin::from_file(path)?,
        (None, Some(pin)) => pin.clone(),
        (None, None) => secret_from(ctx, None, "ROOTKEEPER_PIN", "new user PIN")?,
    };
    if so_pin.expose() == user_pin.expose() {
        anyhow::bail!(Hinted::new(
            "the SO PIN and the user PIN are the same",
            "give the security officer and the key custodians different PINs"
        ));
    }
    let token = module
        .init_token(label, &so_pin, &user_pin)
        .with_context(|| format!("initialising token `{label}`"))?;
    Ok(Output::new(
        format!(
            "initialised token `{}` (serial {})\n  uri: {}\n",
            token.label,
            token.serial,
            token.uri()
        ),
        json!({"label": token.label, "serial": token.serial, "uri": token.uri().to_string()}),
    ))
}
