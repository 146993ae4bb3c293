//! `rootkeeper key generate` (inside a token, or `--in-memory` with backups), `key list`,
//! `key attest`, `key import` (from notary / docker trust) and `key export-notary`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Subcommand, ValueEnum};
use rootkeeper::attest::{self, TrustRoots};
use rootkeeper::backend::piv::{self, Firmware, PivPinPolicy, PivTouchPolicy};
use rootkeeper::backend::pkcs11::Module;
use rootkeeper::backend::{KeyDescription, Keyring};
use rootkeeper::backup::custody::{
    self, ExportRequest, GenerateRequest, NotaryImportRequest, PivPolicies,
};
use rootkeeper::keyuri::{KeyUri, YubiKeyUri};
use rootkeeper::secret::Pin;
use rootkeeper::trustdir::KeyPolicy;
use rootkeeper::tuf::model::UtcTime;
use serde_json::json;

use super::backup::{BackupOutArgs, IdentityArgs, custody_lines, shared_prompter, written_lines};
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
        /// Generate the key in memory instead, import it into --token and every --import-to
        /// (sensitive, not extractable, same label and ID everywhere) and write encrypted
        /// backups (--backup-to, --backup-out). Policy: in-memory-with-backups.
        #[arg(long)]
        in_memory: bool,
        /// With --in-memory: another token (or YubiKey slot) to import the key into. Repeat.
        #[arg(long = "import-to", value_name = "URI")]
        import_to: Vec<String>,
        #[command(flatten)]
        backup: BackupOutArgs,
    },
    /// Import notary / docker trust private key files (~/.docker/trust/private/*.key,
    /// ~/.notary/private/*.key) into a token as non-extractable keys. Give a folder (e.g.
    /// ~/.docker/trust) to import every key in it, with their roles.
    Import {
        /// Key files, or a docker / notary trust folder.
        #[arg(value_name = "FILE|DIR", required = true)]
        paths: Vec<PathBuf>,
        /// The token, e.g. pkcs11:token=release (or a YubiKey slot for one key).
        #[arg(long, value_name = "URI")]
        token: String,
        /// A file whose first line is a passphrase to try on the key files. Repeat (e.g. the
        /// root and the repository passphrase); a key none opens is asked for.
        #[arg(long = "passphrase-file", value_name = "FILE")]
        passphrase_files: Vec<PathBuf>,
        /// The key's label on the token (one file only; default ROLE-KEYID8).
        #[arg(long)]
        label: Option<String>,
        /// YubiKey only: when the key needs the PIN (default once).
        #[arg(long, value_enum)]
        pin_policy: Option<PinPolicyArg>,
        /// YubiKey only: when the key needs a touch (default never).
        #[arg(long, value_enum)]
        touch_policy: Option<TouchPolicyArg>,
        #[command(flatten)]
        backup: BackupOutArgs,
    },
    /// Write a key whose backup rootkeeper holds as a notary key file (notary's own
    /// encryption), for a CI machine that signs with docker or notary.
    ExportNotary(ExportArgs),
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
            in_memory,
            import_to,
            backup,
        } => {
            let token = super::key_uri(&token)?;
            if in_memory {
                if force {
                    return Err(super::usage(
                        "--force does not go with --in-memory: an imported key never overwrites a slot",
                    ));
                }
                return generate_in_memory(
                    ctx,
                    token,
                    &import_to,
                    &label,
                    role,
                    &backup,
                    (pin_policy, touch_policy),
                );
            }
            if !import_to.is_empty() || backup.given() {
                return Err(super::usage(
                    "--import-to and the --backup-* options go with --in-memory; a key generated inside a token cannot be copied or backed up",
                ));
            }
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
        KeyCommand::Import {
            paths,
            token,
            passphrase_files,
            label,
            pin_policy,
            touch_policy,
            backup,
        } => import(
            ctx,
            &paths,
            &token,
            &passphrase_files,
            label,
            (pin_policy, touch_policy),
            &backup,
        ),
        KeyCommand::ExportNotary(args) => export_notary(ctx, args),
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
        Some(KeyPolicy::HardwareOnly),
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

/// The YubiKey slot policies for a token; refused for a PKCS#11 token.
pub fn piv_policies(
    token: &KeyUri,
    pin_policy: Option<PinPolicyArg>,
    touch_policy: Option<TouchPolicyArg>,
) -> anyhow::Result<PivPolicies> {
    if matches!(token, KeyUri::Pkcs11(_)) && (pin_policy.is_some() || touch_policy.is_some()) {
        return Err(super::usage(
            "--pin-policy and --touch-policy apply to YubiKeys only",
        ));
    }
    Ok(PivPolicies {
        pin: match pin_policy.unwrap_or(PinPolicyArg::Once) {
            PinPolicyArg::Once => PivPinPolicy::Once,
            PinPolicyArg::Always => PivPinPolicy::Always,
        },
        touch: match touch_policy.unwrap_or(TouchPolicyArg::Never) {
            TouchPolicyArg::Never => PivTouchPolicy::Never,
            TouchPolicyArg::Always => PivTouchPolicy::Always,
            TouchPolicyArg::Cached => PivTouchPolicy::Cached,
        },
    })
}

fn generate_in_memory(
    ctx: &Ctx,
    token: KeyUri,
    import_to: &[String],
    label: &str,
    role: Option<RoleName>,
    backup: &BackupOutArgs,
    (pin_policy, touch_policy): (Option<PinPolicyArg>, Option<TouchPolicyArg>),
) -> anyhow::Result<Output> {
    let Some(role) = role else {
        return Err(super::usage(
            "--in-memory needs --role: the backups record what the key is for",
        ));
    };
    let Some(plan) = backup.plan()? else {
        return Err(super::usage(
            "--in-memory needs backups: --backup-to RECIPIENT... (or --backup-passphrase-file F) and --backup-out PATH; a key made outside hardware without a backup is the worst of both policies",
        ));
    };
    let mut tokens = vec![token];
    tokens.extend(super::key_uris(import_to)?);
    let yubikey = tokens.iter().any(|t| matches!(t, KeyUri::YubiKey(_)));
    let piv = match tokens.iter().find(|t| matches!(t, KeyUri::YubiKey(_))) {
        Some(t) => piv_policies(t, pin_policy, touch_policy)?,
        None => piv_policies(&tokens[0], pin_policy, touch_policy)?,
    };
    let dir = ctx.trust_dir()?;
    let pins = ctx.pins();
    let mut keyring = Keyring::new(&pins);
    let placed = custody::generate_in_memory(
        &dir,
        &mut keyring,
        &GenerateRequest {
            label: label.to_owned(),
            role: role.as_str().to_owned(),
            tokens,
            backup: plan,
            piv,
            now: UtcTime::now(),
        },
        &shared_prompter(),
        &*ctx.prompter.notifier,
    )?;
    ctx.note_logins(&keyring);
    let entry = &placed.entry;
    let mut text = format!(
        "generated P-256 key `{label}` in memory and imported it into {} token(s) as a sensitive, non-extractable key; the key in memory was wiped\n  key ID: {}\n  role:   {}\n  policy: {}\n",
        1 + entry.copies.len(),
        entry.key_id,
        role.as_str(),
        KeyPolicy::InMemoryWithBackups.as_str(),
    );
    for uri in entry.uris() {
        let _ = writeln!(text, "  uri:    {uri}");
    }
    if yubikey {
        text.push_str("  YubiKey slots report the key as imported (not attestable) and hold a self-signed certificate\n");
    }
    written_lines(&placed, &mut text);
    let mut doc = json(entry);
    doc["files"] = json!(placed.files);
    Ok(Output::new(text, doc))
}

fn import(
    ctx: &Ctx,
    paths: &[PathBuf],
    token: &str,
    passphrase_files: &[PathBuf],
    label: Option<String>,
    (pin_policy, touch_policy): (Option<PinPolicyArg>, Option<TouchPolicyArg>),
    backup: &BackupOutArgs,
) -> anyhow::Result<Output> {
    let token = super::key_uri(token)?;
    let piv = piv_policies(&token, pin_policy, touch_policy)?;
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            files.extend(custody::notary_key_files(path)?);
        } else {
            files.push(path.clone());
        }
    }
    let mut passphrases = Vec::new();
    for path in passphrase_files {
        passphrases.push(Pin::from_file(path)?);
    }
    let plan = backup.plan()?;
    let dir = ctx.trust_dir()?;
    let pins = ctx.pins();
    let mut keyring = Keyring::new(&pins);
    let done = custody::import_notary(
        &dir,
        &mut keyring,
        &NotaryImportRequest {
            files,
            token,
            passphrases,
            label,
            backup: plan,
            piv,
            now: UtcTime::now(),
        },
        &ctx.prompter,
        &shared_prompter(),
        &*ctx.prompter.notifier,
    )?;
    ctx.note_logins(&keyring);
    let mut text = String::new();
    let mut docs = Vec::new();
    for d in &done {
        let entry = &d.placed.entry;
        let uri = entry
            .copies
            .last()
            .map_or(entry.uri.as_str(), |c| c.uri.as_str());
        let _ = writeln!(
            text,
            "imported {} (role {}) as a sensitive, non-extractable key\n  uri:    {uri}\n  key ID: {}\n  policy: imported (it existed outside hardware: keep a backup)",
            d.file.display(),
            d.role.as_deref().unwrap_or("not named"),
            entry.key_id,
        );
        written_lines(&d.placed, &mut text);
        let mut doc = json(entry);
        doc["file"] = json!(d.file);
        docs.push(doc);
    }
    text.push_str(
        "retire the old files: each still holds its key, encrypted only with its passphrase.\n  Once the token (and a backup, if you want one: --backup-to) holds the key, delete every copy:\n",
    );
    for d in &done {
        let _ = writeln!(text, "    shred -u {}", d.file.display());
    }
    text.push_str("  and the copies of them in other trust folders, backups and CI machines; on an SSD, deleting does not erase: treat the passphrase as known to whoever may have a copy.\n");
    Ok(Output::new(text, json!({ "imported": docs })))
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The key: its key ID, URI or label in the inventory.
    key: String,
    /// The key file to write (mode 0600; never overwritten).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// The backup to take the key from (default: the key's one unsplit backup); a split
    /// backup: the backup file and M share files.
    #[arg(long = "from", value_name = "FILE")]
    from: Vec<PathBuf>,
    #[command(flatten)]
    identities: IdentityArgs,
    /// The new key file's passphrase, on this file's first line (else asked for twice).
    #[arg(long, value_name = "FILE")]
    new_passphrase_file: Option<PathBuf>,
    /// The repository, for a targets or snapshot key.
    #[arg(long)]
    gun: Option<String>,
    /// The role to write (default the inventory's), e.g. a docker signer name.
    #[arg(long)]
    role: Option<String>,
    /// Allow writing a root key to a file.
    #[arg(long)]
    allow_root: bool,
}

fn export_notary(ctx: &Ctx, args: ExportArgs) -> anyhow::Result<Output> {
    let ids = args.identities.load(ctx)?;
    let passphrase = match &args.new_passphrase_file {
        Some(path) => Pin::from_file(path)?,
        None => ctx
            .prompter
            .new_secret("Passphrase for the notary key file")?
            .ok_or_else(|| {
                super::usage(
                    "give --new-passphrase-file FILE, or run in a terminal to be asked for the new file's passphrase",
                )
            })?,
    };
    if let Some(gun) = &args.gun {
        rootkeeper::trustdir::check_gun(gun)?;
    }
    let dir = ctx.trust_dir()?;
    let exported = custody::export_notary(
        &dir,
        &ExportRequest {
            key: args.key,
            files: args.from,
            role: args.role,
            gun: args.gun,
            allow_root: args.allow_root,
            passphrase,
            out: args.out,
        },
        &ids,
        &shared_prompter(),
    )?;
    let text = format!(
        "wrote key `{}` (key ID {}, role {}) to {} in notary's own format (mode 0600)\n  load it: notary key import {}   or   docker trust key load {} --name NAME\n  this file is a copy of the key outside hardware: delete it from the CI machine when it is no longer needed\n",
        exported.entry.label,
        exported.entry.key_id,
        exported.role,
        exported.out.display(),
        exported.out.display(),
        exported.out.display(),
    );
    let mut doc = json(&exported.entry);
    doc["out"] = json!(exported.out);
    doc["role_written"] = json!(exported.role);
    Ok(Output::new(text, doc))
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
        Some(KeyPolicy::HardwareOnly),
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
    // Reads only: takes no lock and creates no trust directory where there is none.
    let dir = ctx.trust_dir_read_if_any()?;
    let inventory = dir
        .as_ref()
        .map(|d| d.inventory())
        .transpose()?
        .unwrap_or_default();
    let now = UtcTime::now();
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
        let attested = dir.as_ref().is_some_and(|d| {
            d.path()
                .join("attestations")
                .join(format!("{}.pem", key.key_id))
                .exists()
        });
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
        let warnings = custody_lines(key, now, &mut text);
        let mut doc = json(key);
        doc["present"] = json!(here);
        doc["policy"] = json!(key.policy.map_or("not recorded", KeyPolicy::as_str));
        doc["last_good_drill"] = json!(key.last_good_drill().map(|d| d.date.clone()));
        doc["warnings"] = json!(warnings);
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
    let warnings = match &dir {
        Some(dir) => super::signer::expiry_warnings(dir, &[], &mut text),
        None => Vec::new(),
    };
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
