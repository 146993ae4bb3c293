//! `rootkeeper token list`, `rootkeeper token init` (soft tokens) and `rootkeeper token setup`
//! (YubiKeys).

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use rootkeeper::backend::Keyring;
use rootkeeper::backend::piv::{self, DeviceInfo};
use rootkeeper::backend::pkcs11::{self, Module};
use rootkeeper::keyuri::KeyUri;
use rootkeeper::secret::Pin;
use serde_json::json;

use super::{Ctx, Hinted, Output};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// List every token and YubiKey with its URI, serial, PIN state, and the keys on it.
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
    /// Replace a YubiKey's factory PIN, PUK and management key in one step (the new
    /// management key is random and stored PIN-protected on the card). Tells which factory
    /// values are still set without trying any of them.
    Setup {
        /// The YubiKey, e.g. yubikey:serial=12345678.
        #[arg(long, value_name = "URI")]
        token: String,
        /// Only report which factory values are still set; change nothing.
        #[arg(long)]
        check: bool,
        /// File holding the new PIN (6 to 8 characters; else a prompt).
        #[arg(long, value_name = "FILE")]
        new_pin_file: Option<PathBuf>,
        /// File holding the new PUK (6 to 8 characters; else a prompt).
        #[arg(long, value_name = "FILE")]
        new_puk_file: Option<PathBuf>,
        /// File holding the current PUK, when it is no longer the factory one and should
        /// change too.
        #[arg(long, value_name = "FILE")]
        current_puk_file: Option<PathBuf>,
        /// Also write the new management key (hex) to this new file, mode 0600, e.g. on a
        /// backup medium. Without it the key exists only PIN-protected on the card.
        #[arg(long, value_name = "FILE")]
        management_key_out: Option<PathBuf>,
    },
}

pub fn run(ctx: &Ctx, cmd: TokenCommand) -> anyhow::Result<Output> {
    match cmd {
        TokenCommand::List { module } => list(ctx, module),
        TokenCommand::Setup {
            token,
            check,
            new_pin_file,
            new_puk_file,
            current_puk_file,
            management_key_out,
        } => setup(
            ctx,
            &super::key_uri(&token)?,
            check,
            SetupFiles {
                new_pin: new_pin_file,
                new_puk: new_puk_file,
                current_puk: current_puk_file,
                management_key_out,
            },
        ),
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

/// What `token list` and `key list` found of the PKCS#11 module and of PC/SC: the module (if
/// one is configured and starts) and the failures, which the commands report in their text
/// and as fields of their JSON document.
pub(super) struct Present {
    /// The module, loaded and initialised.
    pub module: Option<Module>,
    /// The module that was looked for.
    pub module_path: Option<PathBuf>,
    /// Why no module is used: none configured (a note) or a broken one (`module_broken`).
    pub module_error: Option<anyhow::Error>,
    /// True when a module is configured but does not load or start: the command fails.
    pub module_broken: bool,
    /// The YubiKeys present.
    pub yubikeys: Vec<DeviceInfo>,
    /// Virtual readers that were skipped.
    pub ignored_virtual: Vec<String>,
    /// Why YubiKeys were not looked at (e.g. no pcscd).
    pub pcsc_error: Option<anyhow::Error>,
}

impl Present {
    /// Looks for the module (`explicit`, else ROOTKEEPER_PKCS11_MODULE, else SoftHSM) and the
    /// YubiKeys. Without a configured module and without SoftHSM, PKCS#11 is only noted.
    pub fn look(explicit: Option<PathBuf>) -> Present {
        let mut present = Present {
            module: None,
            module_path: None,
            module_error: None,
            module_broken: false,
            yubikeys: Vec::new(),
            ignored_virtual: Vec::new(),
            pcsc_error: None,
        };
        match pkcs11::module_path(explicit.as_deref()) {
            Ok(path) => {
                match Module::load(&path) {
                    Ok(module) => present.module = Some(module),
                    Err(e) => {
                        present.module_error = Some(e.into());
                        present.module_broken = true;
                    }
                }
                present.module_path = Some(path);
            }
            Err(e) => present.module_error = Some(e.into()),
        }
        match piv::list() {
            Ok((devices, ignored)) => {
                present.yubikeys = devices;
                present.ignored_virtual = ignored;
            }
            Err(e) => present.pcsc_error = Some(e.into()),
        }
        present
    }

    /// The failures as JSON fields: `module_error` and `pcsc_error`, each null or
    /// `{"message", "hint"}`.
    pub fn error_fields(&self, doc: &mut serde_json::Value) {
        let field = |e: &Option<anyhow::Error>| e.as_ref().map_or(json!(null), super::error_json);
        doc["module_error"] = field(&self.module_error);
        doc["pcsc_error"] = field(&self.pcsc_error);
    }

    /// Fails the command with `output` shown when the module is broken (or listing its
    /// tokens failed: `listing`).
    pub fn finish(
        mut self,
        output: Output,
        listing: Option<anyhow::Error>,
    ) -> anyhow::Result<Output> {
        if let Some(e) = listing {
            return Err(super::Partial::error(output, e));
        }
        match self.module_error.take() {
            Some(e) if self.module_broken => Err(super::Partial::error(output, e)),
            _ => Ok(output),
        }
    }
}

fn list(ctx: &Ctx, module: Option<PathBuf>) -> anyhow::Result<Output> {
    let present = Present::look(module);
    let mut text = String::new();
    let mut tokens = Vec::new();
    let mut listing = None;
    if let Some(module) = &present.module
        && let Err(e) = list_pkcs11(module, &mut text, &mut tokens)
    {
        listing = Some(e);
    }
    if let Some(e) = &present.module_error {
        let what = if present.module_broken {
            "PKCS#11 tokens not listed"
        } else {
            "no PKCS#11 module"
        };
        let _ = writeln!(text, "{what}: {e:#}");
    }
    let mut yubikeys = Vec::new();
    for device in &present.yubikeys {
        yubikey_text(&mut text, device);
        yubikeys.push(super::json(device));
    }
    match &present.pcsc_error {
        Some(e) => {
            ctx.note(&format!("not looking at YubiKeys: {e:#}"));
            let _ = writeln!(text, "YubiKeys not listed: {e:#}");
        }
        None if present.yubikeys.is_empty() => text.push_str("no YubiKeys\n"),
        None => {}
    }
    if !present.ignored_virtual.is_empty() {
        let _ = writeln!(
            text,
            "ignored virtual readers (set {}=1 only in tests): {}",
            piv::ALLOW_VIRTUAL_ENV,
            present.ignored_virtual.join(", ")
        );
    }
    let mut doc = json!({"module": present.module_path, "tokens": tokens, "yubikeys": yubikeys});
    present.error_fields(&mut doc);
    present.finish(Output::new(text, doc), listing)
}

fn list_pkcs11(
    module: &Module,
    text: &mut String,
    tokens: &mut Vec<serde_json::Value>,
) -> anyhow::Result<()> {
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
            let key_id = piv::key_id(&key.public_key)?;
            let _ = writeln!(text, "  key `{}`  key ID {key_id}", key.label);
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
            "model": token.model, "pin_state": token.pin_state, "slot_id": token.slot_id,
            "uri": token.uri().to_string(), "keys": key_docs,
        }));
    }
    if tokens.is_empty() {
        let _ = writeln!(text, "no initialised tokens in {}", module.path().display());
    }
    Ok(())
}

fn retries(state: Option<piv::RetryState>) -> String {
    match state {
        Some(s) => {
            let total = s.total.map(|t| format!(" of {t}")).unwrap_or_default();
            let factory = match s.factory_default {
                Some(true) => ", FACTORY DEFAULT",
                _ => "",
            };
            format!("{}{total} retries left{factory}", s.remaining)
        }
        None => "unknown".into(),
    }
}

fn yubikey_text(text: &mut String, d: &DeviceInfo) {
    let _ = writeln!(
        text,
        "YubiKey  serial {}  firmware {}  reader \"{}\"",
        d.serial, d.firmware, d.reader
    );
    let _ = writeln!(text, "  uri: {}", d.uri);
    let _ = writeln!(text, "  PIN: {}", retries(d.pin));
    if d.puk.is_some() {
        let _ = writeln!(text, "  PUK: {}", retries(d.puk));
    }
    let mgm = match (&d.management_key_algorithm, d.management_key_default) {
        (Some(alg), Some(true)) => format!("{alg}, FACTORY DEFAULT"),
        (Some(alg), _) if d.management_key_protected => format!("{alg}, PIN-protected"),
        (Some(alg), _) => alg.clone(),
        (None, _) if d.management_key_protected => "PIN-protected".into(),
        (None, _) => "unknown (firmware before 5.3)".into(),
    };
    let _ = writeln!(text, "  management key: {mgm}");
    let factory = d.factory_values();
    if !factory.is_empty() {
        let _ = writeln!(
            text,
            "  warning: factory {} still set; run `rootkeeper token setup --token {}`",
            factory.join(", "),
            d.uri
        );
    }
    if let Some(note) = d.firmware.advisory() {
        let _ = writeln!(text, "  warning: {note}");
    }
    for slot in &d.slots {
        let policy = match (slot.pin_policy, slot.touch_policy) {
            (Some(p), Some(t)) => format!("  PIN {}  touch {}", p.as_str(), t.as_str()),
            _ => String::new(),
        };
        let key_id = slot
            .key_id
            .as_ref()
            .map(|id| format!("  key ID {id}"))
            .unwrap_or_default();
        let _ = writeln!(
            text,
            "  slot {} `{}`  {}{policy}{key_id}",
            slot.slot,
            slot.display_label(),
            slot.algorithm
        );
        let _ = writeln!(text, "    uri: {}", slot.uri);
    }
    for slot in &d.unreadable_slots {
        let _ = writeln!(text, "  slot {}: not readable: {}", slot.slot, slot.error);
    }
    if d.slots.is_empty() && d.unreadable_slots.is_empty() {
        text.push_str("  no keys\n");
    }
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
    if let Some(pin) = std::env::var(env).ok().and_then(Pin::from_env_value) {
        return Ok(pin);
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

struct SetupFiles {
    new_pin: Option<PathBuf>,
    new_puk: Option<PathBuf>,
    current_puk: Option<PathBuf>,
    management_key_out: Option<PathBuf>,
}

fn new_secret(
    ctx: &Ctx,
    file: Option<&std::path::Path>,
    what: &str,
    flag: &str,
) -> anyhow::Result<Pin> {
    if let Some(path) = file {
        return Ok(Pin::from_file(path)?);
    }
    ctx.prompter.new_secret(what)?.ok_or_else(|| {
        Hinted::new(
            format!("no {what}: no {flag} and no terminal to ask on"),
            format!("give it in a file with {flag} (never on the command line)"),
        )
        .into()
    })
}

fn setup(ctx: &Ctx, token: &KeyUri, check: bool, files: SetupFiles) -> anyhow::Result<Output> {
    let KeyUri::YubiKey(uri) = token else {
        return Err(super::usage(
            "token setup is for YubiKeys: --token yubikey:serial=N (`rootkeeper token list` shows them)",
        ));
    };
    if uri.names_key() {
        return Err(super::usage(
            "--token names a slot; token setup takes the YubiKey only (yubikey:serial=N)",
        ));
    }
    let pins = ctx.pins();
    let mut keyring = Keyring::new(&pins);
    let device = keyring.yubikey(uri)?;
    let info = device.info()?;
    let factory = info.factory_values();
    let mut text = String::new();
    let name = device.describe();
    let unknown = info.management_key_default.is_none();
    if unknown {
        let _ = writeln!(
            text,
            "{name} (firmware {}) cannot say whether it still has factory values (GET METADATA needs firmware 5.3)",
            info.firmware
        );
    } else if factory.is_empty() {
        let _ = writeln!(
            text,
            "{name}: PIN, PUK and management key are not the factory values"
        );
    } else {
        let _ = writeln!(text, "{name} still has the factory {}", factory.join(", "));
    }
    let report = |text: String, changed: Vec<&str>, factory: &[&str]| {
        Output::new(
            text,
            json!({
                "serial": info.serial, "firmware": info.firmware, "uri": info.uri,
                "factory_values": factory, "changed": changed,
            }),
        )
    };
    if check || (factory.is_empty() && !unknown && files.current_puk.is_none()) {
        return Ok(report(text, Vec::new(), &factory));
    }
    if unknown {
        anyhow::bail!(Hinted::new(
            format!(
                "{name} has firmware {} without metadata; token setup cannot tell what to replace",
                info.firmware
            ),
            "use `ykman piv access change-pin`, `change-puk` and `change-management-key --protect` on this device",
        ));
    }
    let pin_factory = factory.contains(&"PIN");
    let puk_factory = factory.contains(&"PUK");
    let mgm_factory = factory.contains(&"management key");
    let change_puk = puk_factory || files.current_puk.is_some();
    // Collect the new secrets before touching the card.
    let new_pin = if pin_factory {
        Some(new_secret(
            ctx,
            files.new_pin.as_deref(),
            "new YubiKey PIN",
            "--new-pin-file",
        )?)
    } else {
        None
    };
    let current_puk = match &files.current_puk {
        Some(path) => Some(Pin::from_file(path)?),
        None => None,
    };
    let new_puk = if change_puk {
        Some(new_secret(
            ctx,
            files.new_puk.as_deref(),
            "new YubiKey PUK",
            "--new-puk-file",
        )?)
    } else {
        None
    };
    if let (Some(pin), Some(puk)) = (&new_pin, &new_puk)
        && pin.expose() == puk.expose()
    {
        anyhow::bail!(Hinted::new(
            "the new PIN and the new PUK are the same",
            "the PUK unblocks a forgotten PIN; keep them different and store the PUK apart",
        ));
    }
    if let Some(path) = &files.management_key_out
        && path.exists()
    {
        return Err(super::usage(format!(
            "--management-key-out {} exists; give a new file",
            path.display()
        )));
    }
    ctx.prompter.confirm(&format!(
        "Replace the factory {} of {name}?",
        factory.join(", ")
    ))?;
    let mut changed = Vec::new();
    if pin_factory {
        device.login_factory(&pins)?;
    } else if mgm_factory {
        // The new management key is stored PIN-protected: that needs the (changed) PIN.
        keyring.yubikey_login(uri)?;
    }
    if mgm_factory {
        device.authenticate_factory()?;
        let key = device.set_random_protected_management_key()?;
        if let Some(path) = &files.management_key_out {
            write_secret_file(path, key.as_bytes())?;
            let _ = writeln!(text, "wrote the new management key to {}", path.display());
        }
        changed.push("management key");
        let _ = writeln!(
            text,
            "management key: replaced by a random {} key, stored PIN-protected on the card",
            if (info.firmware.major, info.firmware.minor) >= (5, 7) {
                "AES-192"
            } else {
                "3DES"
            }
        );
    }
    if let Some(new_puk) = &new_puk {
        device.change_puk(current_puk.as_ref(), new_puk, &pins)?;
        changed.push("PUK");
        text.push_str("PUK: changed\n");
    }
    if let Some(new_pin) = &new_pin {
        device.change_pin(new_pin)?;
        changed.push("PIN");
        text.push_str("PIN: changed\n");
    }
    let after = device.info()?.factory_values();
    if after.is_empty() {
        let _ = writeln!(text, "{name} has no factory values left");
    } else {
        let _ = writeln!(text, "{name} still has the factory {}", after.join(", "));
    }
    Ok(report(text, changed, &factory))
}

fn write_secret_file(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    Ok(())
}
