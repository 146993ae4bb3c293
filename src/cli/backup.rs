//! `rootkeeper backup verify` (the drill) and `rootkeeper backup restore`, and the backup
//! options `key generate --in-memory` and `key import` share.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use clap::Subcommand;
use rootkeeper::backend::Keyring;
use rootkeeper::backup::custody::{self, BackupPlan, RestoreRequest};
use rootkeeper::backup::{Identities, Recipient, SharedPrompter};
use rootkeeper::notice::Notifier;
use rootkeeper::secret::{Pin, Prompter};
use rootkeeper::trustdir::InventoryKey;
use rootkeeper::tuf::model::UtcTime;
use serde_json::json;

use super::key::{PinPolicyArg, TouchPolicyArg, piv_policies};
use super::terminal::{StderrNotifier, ask_secret};
use super::{Ctx, Output, json, usage};

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// The drill: decrypt a backup in memory, recombine its shares, check the key against the
    /// inventory and its tokens, wipe it, and record the drill.
    Verify {
        /// The backup file, or a split backup file and at least M of its share files.
        #[arg(value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        identities: IdentityArgs,
    },
    /// Put a backed-up key into a (new) token, as a sensitive, non-extractable key.
    Restore {
        /// The backup file, or a split backup file and at least M of its share files.
        #[arg(value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        identities: IdentityArgs,
        /// The token to restore into, e.g. pkcs11:token=replacement, or a YubiKey slot
        /// yubikey:serial=N;slot=9c.
        #[arg(long, value_name = "URI")]
        token: String,
        /// YubiKey only: when the key needs the PIN (default once).
        #[arg(long, value_enum)]
        pin_policy: Option<PinPolicyArg>,
        /// YubiKey only: when the key needs a touch (default never).
        #[arg(long, value_enum)]
        touch_policy: Option<TouchPolicyArg>,
    },
}

/// Who decrypts: age identity files and a passphrase.
#[derive(Debug, clap::Args)]
pub struct IdentityArgs {
    /// An age identity file (age-keygen, or age-plugin-yubikey --identity). Repeat for
    /// each custodian whose share is given.
    #[arg(long = "identity", value_name = "FILE")]
    identity: Vec<PathBuf>,
    /// The passphrase of a passphrase backup, on the file's first line (else asked for on
    /// the terminal when no identity is given).
    #[arg(long = "passphrase-file", value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
}

impl IdentityArgs {
    pub fn load(&self, ctx: &Ctx) -> anyhow::Result<Identities> {
        let mut ids = Identities::new();
        for path in &self.identity {
            let bytes = rootkeeper::trustdir::read(path)?;
            let text =
                zeroize::Zeroizing::new(String::from_utf8(bytes).map_err(|_| {
                    usage(format!("--identity {} is not a text file", path.display()))
                })?);
            ids.add_identity_file(&path.display().to_string(), &text)?;
        }
        match &self.passphrase_file {
            Some(path) => ids.add_passphrase(Pin::from_file(path)?),
            None if self.identity.is_empty() => {
                if let Some(p) = ctx.prompter.secret("Backup passphrase")? {
                    ids.add_passphrase(p);
                }
            }
            None => {}
        }
        if ids.is_empty() {
            return Err(usage(
                "give --identity FILE (or --passphrase-file F for a passphrase backup)",
            ));
        }
        Ok(ids)
    }
}

/// Where backups of a key made or read in memory go.
#[derive(Debug, clap::Args)]
pub struct BackupOutArgs {
    /// An age recipient to encrypt the backup to: age1… (age-keygen) or a plugin recipient
    /// such as age1yubikey1…. Repeat for each custodian; with --split, recipient i gets
    /// share i.
    #[arg(long = "backup-to", value_name = "RECIPIENT")]
    backup_to: Vec<String>,
    /// Encrypt the backup to the passphrase on this file's first line (scrypt; age allows a
    /// passphrase only as the only recipient).
    #[arg(long, value_name = "FILE")]
    backup_passphrase_file: Option<PathBuf>,
    /// The backup file (never overwritten); with --split the shares go to PATH.1.age … PATH.N.age.
    #[arg(long, value_name = "PATH")]
    backup_out: Option<PathBuf>,
    /// Split M-of-N among the N --backup-to recipients: any M custodians recover the key.
    #[arg(long, value_name = "M-of-N")]
    split: Option<String>,
    /// ASCII-armored backups (for paper and QR codes).
    #[arg(long)]
    armor: bool,
}

impl BackupOutArgs {
    pub fn given(&self) -> bool {
        !self.backup_to.is_empty()
            || self.backup_passphrase_file.is_some()
            || self.backup_out.is_some()
            || self.split.is_some()
            || self.armor
    }

    /// The plan; `None` when no backup option was given.
    pub fn plan(&self) -> anyhow::Result<Option<BackupPlan>> {
        if !self.given() {
            return Ok(None);
        }
        let Some(out) = self.backup_out.clone() else {
            return Err(usage("give --backup-out PATH for the backup file"));
        };
        let mut recipients = Vec::new();
        for r in &self.backup_to {
            recipients.push(Recipient::parse(r)?);
        }
        if let Some(path) = &self.backup_passphrase_file {
            if !recipients.is_empty() {
                return Err(usage(
                    "age allows a passphrase only as the only recipient: make the passphrase backup with a separate command, or leave out --backup-to",
                ));
            }
            recipients.push(Recipient::passphrase(Pin::from_file(path)?)?);
        }
        if recipients.is_empty() {
            return Err(usage(
                "give --backup-to RECIPIENT (one per custodian) or --backup-passphrase-file F",
            ));
        }
        let split = match &self.split {
            None => None,
            Some(text) => {
                let (m, n) = text
                    .split_once("-of-")
                    .and_then(|(m, n)| Some((m.parse::<u8>().ok()?, n.parse::<usize>().ok()?)))
                    .ok_or_else(|| {
                        usage(format!("--split {text}: write it as M-of-N, e.g. 2-of-3"))
                    })?;
                if n != recipients.len() {
                    return Err(usage(format!(
                        "--split {text} needs {n} --backup-to recipients, one per share; {} given",
                        recipients.len()
                    )));
                }
                if m < 2 || usize::from(m) > n {
                    return Err(usage(format!(
                        "--split {text}: M must be at least 2 and at most N"
                    )));
                }
                Some(m)
            }
        };
        Ok(Some(BackupPlan {
            recipients,
            out,
            split,
            armor: self.armor,
        }))
    }
}

/// A prompter that age plugins may use from their threads: asks on the terminal.
pub struct PluginPrompter;

impl Prompter for PluginPrompter {
    fn secret(&self, prompt: &str) -> rootkeeper::Result<Option<Pin>> {
        ask_secret(prompt, "nothing entered")
    }

    fn notifier(&self) -> Rc<dyn Notifier> {
        Rc::new(StderrNotifier::new(false))
    }
}

pub fn shared_prompter() -> SharedPrompter {
    Arc::new(PluginPrompter)
}

pub fn run(ctx: &Ctx, cmd: BackupCommand) -> anyhow::Result<Output> {
    match cmd {
        BackupCommand::Verify { files, identities } => verify(ctx, &files, &identities),
        BackupCommand::Restore {
            files,
            identities,
            token,
            pin_policy,
            touch_policy,
        } => {
            let token = super::key_uri(&token)?;
            let piv = piv_policies(&token, pin_policy, touch_policy)?;
            let ids = identities.load(ctx)?;
            let dir = ctx.trust_dir()?;
            let pins = ctx.pins();
            let mut keyring = Keyring::new(&pins);
            let placed = custody::restore(
                &dir,
                &mut keyring,
                &RestoreRequest {
                    files,
                    token,
                    piv,
                    now: UtcTime::now(),
                },
                &ids,
                &shared_prompter(),
                &*ctx.prompter.notifier,
            )?;
            ctx.note_logins(&keyring);
            let copy = placed.entry.copies.last();
            let uri = copy.map_or(placed.entry.uri.as_str(), |c| c.uri.as_str());
            let text = format!(
                "restored key `{}` (key ID {}) as a sensitive, non-extractable key\n  uri: {uri}\n  the token reports it as imported; the inventory lists it as a copy of the key\n",
                placed.entry.label, placed.entry.key_id
            );
            let mut doc = json(&placed.entry);
            doc["restored_to"] = json!(uri);
            Ok(Output::new(text, doc))
        }
    }
}

fn verify(ctx: &Ctx, files: &[PathBuf], identities: &IdentityArgs) -> anyhow::Result<Output> {
    let ids = identities.load(ctx)?;
    let dir = ctx.trust_dir()?;
    let pins = ctx.pins();
    let mut keyring = Keyring::new(&pins);
    let report = custody::verify(
        &dir,
        &mut keyring,
        files,
        &ids,
        &shared_prompter(),
        UtcTime::now(),
    )?;
    let mut text = format!(
        "drill passed: the backup holds key `{}` (key ID {}), the inventory's key\n",
        report.entry.label, report.entry.key_id
    );
    if let Some(split) = &report.split {
        let _ = writeln!(
            text,
            "  split {split}: shares {} recombined",
            report
                .drill
                .shares_used
                .iter()
                .map(u8::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for t in &report.tokens {
        let _ = writeln!(
            text,
            "  token: {} {}",
            t.uri,
            match t.state.as_str() {
                "same" => "holds the same key".to_owned(),
                "missing" => "is present but does NOT hold the key".to_owned(),
                _ => "not present (not compared)".to_owned(),
            }
        );
    }
    let _ = writeln!(
        text,
        "  decrypted in memory only and wiped; drill recorded {}",
        report.drill.date
    );
    Ok(Output::new(
        text,
        json!({
            "result": "passed",
            "key": json(&report.entry),
            "drill": json(&report.drill),
            "split": report.split,
            "tokens": report.tokens,
        }),
    ))
}

/// `key list`'s lines about a key's policy, backups and drills.
pub fn custody_lines(key: &InventoryKey, now: UtcTime, text: &mut String) -> Vec<String> {
    let mut warnings = Vec::new();
    let policy = match key.policy {
        Some(p) => p.as_str(),
        None => "not recorded",
    };
    let _ = write!(text, "  policy: {policy}");
    if !key.copies.is_empty() {
        let _ = write!(text, "; also on {} more token(s)", key.copies.len());
    }
    text.push('\n');
    for copy in &key.copies {
        let _ = writeln!(text, "  copy: {}", copy.uri);
    }
    if let Some(from) = &key.imported_from {
        let _ = writeln!(text, "  imported from: {from}");
    }
    for b in &key.backups {
        match &b.split {
            Some(split) => {
                let _ = writeln!(
                    text,
                    "  backup {}: {} (split {split}; shares {} … to {})",
                    b.created,
                    b.file,
                    b.shares.first().map(String::as_str).unwrap_or("-"),
                    b.recipients.join(", ")
                );
            }
            None => {
                let _ = writeln!(
                    text,
                    "  backup {}: {} (to {})",
                    b.created,
                    b.file,
                    b.recipients.join(", ")
                );
            }
        }
    }
    let needs_backup = key.policy.is_some_and(|p| p.has_existed_outside());
    if needs_backup && key.backups.is_empty() {
        warnings.push("no rootkeeper backup is recorded for a key that existed outside hardware: make one, or keep the original key file safe".to_owned());
    }
    if !key.backups.is_empty() {
        match key.last_good_drill() {
            Some(d) => {
                let _ = writeln!(text, "  last good drill: {}", d.date);
                let old = UtcTime::parse(&d.date)
                    .map(|t| t.days_until(now) > custody::DRILL_MAX_AGE_DAYS)
                    .unwrap_or(true);
                if old {
                    warnings.push(format!(
                        "the last good drill ({}) is more than a year old: run `rootkeeper backup verify`",
                        d.date
                    ));
                }
            }
            None => {
                let _ = writeln!(text, "  last good drill: never");
                warnings.push(
                    "no drill has passed yet: run `rootkeeper backup verify` with the backup"
                        .to_owned(),
                );
            }
        }
        if let Some(last) = key.drills.last().filter(|d| !d.passed()) {
            warnings.push(format!(
                "the last drill ({}) failed: {}",
                last.date,
                last.detail.as_deref().unwrap_or("no detail")
            ));
        }
    }
    for w in &warnings {
        let _ = writeln!(text, "  warning: {w}");
    }
    warnings
}

/// Text lines for the backup files written.
pub fn written_lines(placed: &custody::Placed, text: &mut String) {
    let Some(record) = placed.entry.backups.last() else {
        return;
    };
    if placed.files.is_empty() {
        return;
    }
    text.push_str("backups (age-encrypted; nothing unencrypted was written):\n");
    match &record.split {
        None => {
            let _ = writeln!(
                text,
                "  {}  to {}",
                record.file,
                record.recipients.join(", ")
            );
        }
        Some(split) => {
            let _ = writeln!(
                text,
                "  {}  the key, encrypted to the identity of split {split}: give every custodian a copy",
                record.file
            );
            for (i, (share, recipient)) in record.shares.iter().zip(&record.recipients).enumerate()
            {
                let _ = writeln!(text, "  {share}  share {}, to {recipient}", i + 1);
            }
        }
    }
    let _ = writeln!(
        text,
        "next: the first drill, now: rootkeeper backup verify {} --identity FILE",
        if record.split.is_some() {
            format!("{} SHARE.age…", record.file)
        } else {
            record.file.clone()
        }
    );
}
