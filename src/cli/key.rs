//! `rootkeeper key generate`, `rootkeeper key list` and `rootkeeper key attest`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Subcommand, ValueEnum};
use rootkeeper::attest::{self, TrustRoots};
use rootkeeper::backend::piv::{self, Firmware, PivPinPolicy, PivTouchPolicy};
use rootkeeper::backend::pkcs11::Module;
use rootkeeper::backend::{KeyDescription, Keyring};
use rootkeeper::keyuri::{KeyUri, YubiKeyUri};
use rootkeeper::tuf::model::UtcTime;
use serde_json::json;

use super::token::Present;
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

/// When a YubiKey key needs the PIN.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PinPolicyArg {
    /// Once per command (rootkeeper sends the PIN once).
    Once,
    /// Before every signature (rootkeeper re-sends the PIN it was given).
    Always,
}

/// When a YubiKey key needs a touch.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TouchPolicyArg {
    /// No touch.
    Never,
    /// A touch for every signature.
    Always,
    /// A touch, remembered for 15 seconds.
    Cached,
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
        /// YubiKey only: when the key needs the PIN (default once).
        #[arg(long, value_enum)]
        pin_policy: Option<PinPolicyArg>,
        /// YubiKey only: when the key needs a touch (default never).
        #[arg(long, value_enum)]
        touch_policy: Option<TouchPolicyArg>,
        /// YubiKey only: replace a key already in the slot (it is destroyed).
        #[arg(long)]
        force: bool,
    },
    /// Verify a YubiKey key's attestation (generated on the device, which device, which
    /// policies) and store it in the trust directory.
    Attest {
        /// The key, e.g. yubikey:serial=12345678;slot=9c.
        uri: String,
        /// PEM file of trusted attestation roots (and intermediates) instead of Yubico's.
        #[arg(long, value_name = "FILE")]
        attestation_roots: Option<PathBuf>,
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
            pin_policy,
            touch_policy,
            force,
        } => {
            let token = super::key_uri(&token)?;
            match &token {
                KeyUri::YubiKey(uri) => generate_yubikey(
                    ctx,
                    uri,
                    &label,
                    role,
                    YubiKeyOptions {
                        pin_policy,
                        touch_policy,
                        force,
                    },
                ),
                KeyUri::Pkcs11(_) => {
                    if pin_policy.is_some() || touch_policy.is_some() || force {
                        return Err(super::usage(
                            "--pin-policy, --touch-policy and --force apply to YubiKeys only; a PKCS#11 key is never overwritten",
                        ));
                    }
                    generate(ctx, &token, &label, role)
                }
            }
        }
        KeyCommand::List { module } => list(ctx, module),
        KeyCommand::Attest {
            uri,
            attestation_roots,
        } => attest_key(ctx, &super::key_uri(&uri)?, attestation_roots),
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
    let KeyUri::Pkcs11(uri) = token else {
        return Err(super::usage("not a PKCS#11 token URI"));
    };
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
        &KeyDescription::pkcs11(&key, session.token()),
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

struct YubiKeyOptions {
    pin_policy: Option<PinPolicyArg>,
    touch_policy: Option<TouchPolicyArg>,
    force: bool,
}

fn generate_yubikey(
    ctx: &Ctx,
    uri: &YubiKeyUri,
    label: &str,
    role: Option<RoleName>,
    options: YubiKeyOptions,
) -> anyhow::Result<Output> {
    if label.is_empty() || label.len() > 64 {
        return Err(super::usage("--label must be 1 to 64 characters"));
    }
    let Some(slot) = uri.slot else {
        return Err(super::usage(
            "--token must name the slot for the new key: yubikey:serial=N;slot=9c (9a, 9c, 9d, 9e, 82..95)",
        ));
    };
    let pin_policy = match options.pin_policy.unwrap_or(PinPolicyArg::Once) {
        PinPolicyArg::Once => PivPinPolicy::Once,
        PinPolicyArg::Always => PivPinPolicy::Always,
    };
    let touch_policy = match options.touch_policy.unwrap_or(TouchPolicyArg::Never) {
        TouchPolicyArg::Never => PivTouchPolicy::Never,
        TouchPolicyArg::Always => PivTouchPolicy::Always,
        TouchPolicyArg::Cached => PivTouchPolicy::Cached,
    };
    let dir = ctx.trust_dir()?;
    let pins = ctx.pins();
    let mut keyring = Keyring::new(&pins);
    let device = keyring.yubikey(uri)?;
    // Refuse a slot that holds (or, on firmware without metadata, may hold) a key before
    // asking for any secret; with --force, confirm what will be destroyed.
    if let Some(existing) = device.check_slot_free(slot, options.force)? {
        ctx.prompter.confirm(&format!(
            "Destroy {existing} in slot {slot} of {}?",
            device.describe(),
        ))?;
    }
    // The management key first: a card that still has the factory one is refused before
    // anyone is asked for a PIN (a PIN-protected key logs in on the way).
    keyring.yubikey_admin(uri)?;
    keyring.yubikey_login(uri)?;
    let info = device
        .generate(
            slot,
            label,
            pin_policy,
            touch_policy,
            options.force,
            &*ctx.prompter.notifier,
        )
        .with_context(|| {
            format!(
                "generating `{label}` in slot {slot} of {}",
                device.describe()
            )
        })?;
    let description = KeyDescription::yubikey(&device, &info).ok_or_else(|| {
        anyhow::anyhow!(
            "slot {slot} of {} holds no P-256 key after generating",
            device.describe()
        )
    })?;
    let entry = rootkeeper::root::record_key(
        &dir,
        &description,
        role.map(RoleName::as_str),
        UtcTime::now(),
    )?;
    let mut text = format!(
        "generated P-256 key `{label}` on {} (firmware {}), slot {slot}\n  uri:    {}\n  key ID: {}\n  role:   {}\n  PIN policy {}, touch policy {}; self-signed certificate stored in the slot\n",
        device.describe(),
        device.firmware(),
        entry.uri,
        entry.key_id,
        entry.role.as_deref().unwrap_or("(none)"),
        pin_policy.as_str(),
        touch_policy.as_str(),
    );
    if let Some(note) = device.firmware().advisory() {
        let _ = writeln!(text, "  warning: {note}");
    }
    let mut doc = json(&entry);
    doc["pin_policy"] = json!(pin_policy.as_str());
    doc["touch_policy"] = json!(touch_policy.as_str());
    doc["firmware"] = json!(device.firmware().to_string());
    doc["ysa_2024_03"] = json!(device.firmware().ysa_2024_03());
    Ok(Output::new(text, doc))
}

fn attest_key(ctx: &Ctx, key: &KeyUri, roots_file: Option<PathBuf>) -> anyhow::Result<Output> {
    let KeyUri::YubiKey(uri) = key else {
        return Err(super::usage(
            "key attest takes a YubiKey key URI (yubikey:serial=N;slot=9c); PKCS#11 tokens have no PIV attestation",
        ));
    };
    let Some(slot) = uri.slot else {
        return Err(super::usage(
            "the URI must name a slot: yubikey:serial=N;slot=9c",
        ));
    };
    let roots = match &roots_file {
        Some(path) => {
            let pem = String::from_utf8(rootkeeper::trustdir::read(path)?)
                .map_err(|_| super::usage(format!("{} is not PEM text", path.display())))?;
            TrustRoots::from_pem(&pem, &format!("the roots in {}", path.display()))?
        }
        None => TrustRoots::yubico()?,
    };
    let dir = ctx.trust_dir()?;
    let pins = ctx.pins();
    let mut keyring = Keyring::new(&pins);
    let device = keyring.yubikey(uri)?;
    let what = device.slot_uri(slot).to_string();
    let info = device
        .slot(slot)?
        .ok_or_else(|| rootkeeper::Error::KeyNotFound {
            uri: what.clone(),
            token: device.describe(),
        })?;
    if info.origin == Some(piv::KeyOrigin::Imported) {
        anyhow::bail!(rootkeeper::Error::Attestation {
            what,
            reason: "the card reports the key as imported: it existed outside the device, and a YubiKey cannot attest it".into(),
        });
    }
    let (slot_der, device_der) = device.attest(slot)?;
    let report = attest::verify(
        &what,
        &slot_der,
        &device_der,
        &roots,
        std::time::SystemTime::now(),
    )?;
    // The attestation must speak about this key on this device.
    let fail = |reason: String| rootkeeper::Error::Attestation {
        what: what.clone(),
        reason,
    };
    let public = info
        .public_key
        .ok_or_else(|| fail(format!("slot {slot} holds a {} key", info.algorithm)))?;
    let attested = {
        use base64::Engine as _;
        use p256::pkcs8::DecodePublicKey;
        base64::engine::general_purpose::STANDARD
            .decode(&report.public_key)
            .ok()
            .and_then(|der| p256::ecdsa::VerifyingKey::from_public_key_der(&der).ok())
    };
    if attested != Some(public) {
        anyhow::bail!(fail(
            "the attested public key is not the key in the slot".into()
        ));
    }
    if report.serial != Some(device.serial()) {
        anyhow::bail!(fail(format!(
            "the attestation names serial {:?}, the device reports {}",
            report.serial,
            device.serial()
        )));
    }
    if report.firmware != Some(device.firmware()) {
        anyhow::bail!(fail(format!(
            "the attestation names firmware {:?}, the device reports {}",
            report.firmware.map(|f| f.to_string()),
            device.firmware()
        )));
    }
    let key_id = piv::key_id(&public)?;
    let inventory = dir.inventory()?;
    let in_inventory = inventory.by_key_id(key_id.as_str()).is_some();
    let path = dir
        .path()
        .join("attestations")
        .join(format!("{key_id}.pem"));
    let bundle = format!("{}{}", attest::pem(&slot_der), attest::pem(&device_der));
    rootkeeper::trustdir::write_atomic(&path, bundle.as_bytes())?;
    let firmware = report.firmware.unwrap_or(device.firmware());
    let policy = |p: Option<&'static str>| p.unwrap_or("unknown");
    let mut text = format!(
        "attestation verified for {what}\n  key ID:      {key_id}{}\n  serial:      {}\n  firmware:    {firmware}\n  PIN policy:  {}\n  touch policy: {}\n  origin:      generated on the device (a YubiKey attests only keys it generated)\n  chain:       {}\n  anchor:      {} (SHA-256 {})\n  stored:      {}\n",
        if in_inventory {
            ""
        } else {
            " (not in the inventory)"
        },
        device.serial(),
        policy(report.pin_policy.map(PivPinPolicy::as_str)),
        policy(report.touch_policy.map(PivTouchPolicy::as_str)),
        report.chain.join(" <- "),
        report.roots,
        report.anchor_fingerprint,
        path.display(),
    );
    if let Some(note) = firmware.advisory() {
        let _ = writeln!(text, "  warning: {note}");
    }
    let mut doc = json(&report);
    doc["uri"] = json!(what);
    doc["key_id"] = json!(key_id);
    doc["in_inventory"] = json!(in_inventory);
    doc["stored"] = json!(path);
    doc["ysa_2024_03"] = json!(firmware.ysa_2024_03());
    Ok(Output::new(text, doc))
}

/// The firmware of the YubiKey an inventory entry lives on: from a present device, else from
/// the token label recorded at generation ("YubiKey 5.4.3").
fn recorded_firmware(label: &str) -> Option<Firmware> {
    label.strip_prefix("YubiKey ").and_then(Firmware::parse)
}

fn list(ctx: &Ctx, module: Option<PathBuf>) -> anyhow::Result<Output> {
    let dir = ctx.trust_dir()?;
    let inventory = dir.inventory()?;
    let mut present = BTreeSet::new();
    let mut on_tokens = Vec::new();
    let mut text = String::new();
    let found = Present::look(module);
    let mut listing = None;
    if let Some(module) = &found.module
        && let Err(e) = pkcs11_keys(module, &mut on_tokens)
    {
        listing = Some(e);
    }
    // YubiKeys present: their keys, and their firmware for the YSA-2024-03 flag.
    let mut firmware_by_serial = std::collections::BTreeMap::new();
    for device in &found.yubikeys {
        firmware_by_serial.insert(device.serial.to_string(), device.firmware);
        for slot in &device.slots {
            if let Some(key_id) = &slot.key_id {
                on_tokens.push((key_id.clone(), slot.uri.clone()));
            }
        }
    }
    present.extend(on_tokens.iter().map(|(id, _)| id.clone()));
    if let Some(e) = &found.module_error {
        ctx.note(&format!("not looking at PKCS#11 tokens: {e:#}"));
    }
    if let Some(e) = &found.pcsc_error {
        let _ = writeln!(text, "warning: YubiKeys not looked at: {e:#}");
    }
    let mut docs = Vec::new();
    for key in &inventory.keys {
        let here = present.contains(key.key_id.as_str());
        let firmware = if key.uri.starts_with("yubikey:") {
            firmware_by_serial
                .get(&key.token_serial)
                .copied()
                .or_else(|| recorded_firmware(&key.token_label))
        } else {
            None
        };
        let attested = dir
            .path()
            .join("attestations")
            .join(format!("{}.pem", key.key_id))
            .exists();
        let _ = writeln!(
            text,
            "key ID {}  role {}  token `{}` (serial {})  {}{}\n  uri: {}",
            key.key_id,
            key.role.as_deref().unwrap_or("-"),
            key.token_label,
            key.token_serial,
            if here { "present" } else { "token not present" },
            if attested { "  attested" } else { "" },
            key.uri
        );
        let advisory = firmware.and_then(Firmware::advisory);
        if let Some(note) = advisory {
            let _ = writeln!(text, "  warning: {note}");
        }
        let mut doc = json(key);
        doc["present"] = json!(here);
        if key.uri.starts_with("yubikey:") {
            doc["firmware"] = json!(firmware.map(|f| f.to_string()));
            doc["ysa_2024_03"] = json!(advisory.is_some());
            doc["attested"] = json!(attested);
        }
        docs.push(doc);
    }
    let known: BTreeSet<&str> = inventory.keys.iter().map(|k| k.key_id.as_str()).collect();
    let others: Vec<_> = on_tokens
        .iter()
        .filter(|(id, _)| !known.contains(id.as_str()))
        .collect();
    for (id, uri) in &others {
        let _ = writeln!(text, "key ID {id}  not in the inventory\n  uri: {uri}");
    }
    if inventory.keys.is_empty() && others.is_empty() {
        text.push_str("no keys\n");
    }
    let warnings = super::signer::expiry_warnings(&dir, &[], &mut text);
    super::signer::expiry_text(&mut text, &warnings);
    let mut doc = json!({"inventory": docs, "not_in_inventory": others.iter().map(|(id, uri)| json!({"key_id": id, "uri": uri})).collect::<Vec<_>>(), "expiry_warnings": json(&warnings)});
    found.error_fields(&mut doc);
    found.finish(Output::new(text, doc), listing)
}

/// The key ID and URI of every P-256 key on the module's tokens.
fn pkcs11_keys(module: &Module, out: &mut Vec<(String, String)>) -> anyhow::Result<()> {
    for token in module.tokens()? {
        for key in module.public_keys(&token)? {
            out.push((piv::key_id(&key.public_key)?, key.uri(&token).to_string()));
        }
    }
    Ok(())
}
