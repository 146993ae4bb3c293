//! The command line (design §4). Each command group has its module; this one holds the global
//! options, the output and error conventions, and dispatch.
//!
//! Exit codes: 0 success, 1 a failure the operator can fix (one line saying what, one `hint:`
//! line saying what to do), 2 bad usage.

mod backup;
mod completions;
mod insist;
mod inspect;
mod key;
mod root;
mod rotate;
mod server;
mod signer;
mod terminal;
mod token;
mod unsign;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rootkeeper::secret::{Pin, PinSources};
use serde_json::Value;

pub use terminal::TerminalPrompter;

/// The help heading of the options every command takes.
const GLOBAL: &str = "Global options";

/// Guards the offline root of trust for container-image signing.
#[derive(Debug, Parser)]
#[command(name = "rootkeeper", version, about, max_term_width = 100)]
pub struct Cli {
    /// The trust directory (an absolute path avoids surprises: the default is relative to
    /// where the command runs).
    #[arg(
        long,
        global = true,
        env = "ROOTKEEPER_DIR",
        default_value = "./trust",
        help_heading = GLOBAL
    )]
    pub dir: PathBuf,
    /// Print one JSON document on stdout instead of text (usage errors too).
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub json: bool,
    /// Answer yes to confirmations (for scripts).
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub yes: bool,
    /// More detail on stderr (the trust directory used, each token logged in to).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = GLOBAL)]
    pub verbose: u8,
    /// File holding the token PIN (used when the key URI has no pin-source; never tried on
    /// more than one token).
    #[arg(long, global = true, value_name = "FILE", help_heading = GLOBAL)]
    pub pin_file: Option<PathBuf>,
    /// Allow a PIN attempt when the token says the next wrong PIN locks it.
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub last_pin_attempt: bool,
    #[command(subcommand)]
    command: Command,
}

// clap builds these once per run; boxing the large variants would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Tokens: list them, initialise soft tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Keys: generate them inside tokens, list them.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Root metadata: init, sign, unsign, status, verify, export.
    #[command(subcommand)]
    Root(root::RootCommand),
    /// The trust server: fetch its keys, publish.
    #[command(subcommand)]
    Server(server::ServerCommand),
    /// Show what a metadata file holds and whether its signatures are valid.
    Inspect(inspect::InspectArgs),
    /// Print a shell completion script (bash, zsh, fish, ...).
    Completions(completions::CompletionsArgs),
    /// Print the manual page (or write one page per command with --out DIR).
    Man(completions::ManArgs),
    /// Key backups: the drill (verify) and restore.
    #[command(subcommand)]
    Backup(backup::BackupCommand),
    /// Docker Content Trust signers (targets/NAME + targets/releases): add, remove, list.
    #[command(subcommand)]
    Signer(signer::SignerCommand),
}

/// What a command produced: text for people, JSON for scripts.
#[derive(Debug)]
pub struct Output {
    text: String,
    json: Value,
    failed: bool,
    /// Printed as they are, with or without --json (a completion script, a manual page).
    raw: bool,
    /// `warning: …` lines for stderr (and a `warnings` field with --json).
    warnings: Vec<String>,
}

impl Output {
    fn new(text: String, json: Value) -> Output {
        Output {
            text,
            json,
            failed: false,
            raw: false,
            warnings: Vec::new(),
        }
    }

    /// Text printed as it is, also with --json.
    fn raw(text: String) -> Output {
        Output {
            raw: true,
            ..Output::new(text, Value::Null)
        }
    }

    /// The same output with warnings: values that are almost surely wrong and were insisted
    /// on, or facts the operator should know before going on.
    fn warning(mut self, warnings: Vec<String>) -> Output {
        self.warnings.extend(warnings);
        self
    }

    /// The same output, but the command exits 1: it reports a problem it found (e.g.
    /// `inspect` of a file that is not safe to upload) rather than failing to run.
    fn failing(self) -> Output {
        Output {
            failed: true,
            ..self
        }
    }

    /// The exit code.
    pub fn exit_code(&self) -> ExitCode {
        if self.failed {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        }
    }

    /// Prints the result on stdout (warnings on stderr).
    pub fn print(&self, json: bool) {
        for w in &self.warnings {
            eprintln!("warning: {w}");
        }
        if self.raw {
            print!("{}", self.text);
        } else if json {
            let mut doc = self.json.clone();
            if !self.warnings.is_empty()
                && let Some(map) = doc.as_object_mut()
            {
                map.insert("warnings".into(), serde_json::json!(self.warnings));
            }
            println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        } else if !self.text.is_empty() {
            print!("{}", self.text);
            if !self.text.ends_with('\n') {
                println!();
            }
        }
    }
}

/// A CLI-level error with a hint.
#[derive(Debug)]
pub struct Hinted {
    message: String,
    hint: String,
}

impl Hinted {
    fn new(message: impl Into<String>, hint: impl Into<String>) -> Hinted {
        Hinted {
            message: message.into(),
            hint: hint.into(),
        }
    }
}

impl std::fmt::Display for Hinted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Hinted {}

/// Bad usage that clap cannot see (exit 2).
#[derive(Debug)]
struct Usage(String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Usage(message.into()))
}

/// A command that has output to show and failed all the same (e.g. `token list` with a broken
/// PKCS#11 module still lists the YubiKeys): the output is printed, then the error; with
/// `--json` the one document carries both.
#[derive(Debug)]
pub struct Partial {
    output: Output,
    error: anyhow::Error,
}

impl Partial {
    fn error(output: Output, error: anyhow::Error) -> anyhow::Error {
        anyhow::Error::new(Partial { output, error })
    }
}

impl std::fmt::Display for Partial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

impl std::error::Error for Partial {}

/// The hint for an error: the first one found along its chain.
fn hint_of(err: &anyhow::Error) -> Option<String> {
    err.chain().find_map(|e| {
        if let Some(e) = e.downcast_ref::<rootkeeper::Error>() {
            e.hint()
        } else {
            e.downcast_ref::<Hinted>().map(|h| h.hint.clone())
        }
    })
}

/// An error as a JSON value: `{"message": ..., "hint": ...}`, for fields of a document.
fn error_json(err: &anyhow::Error) -> Value {
    serde_json::json!({"message": format!("{err:#}"), "hint": hint_of(err)})
}

/// Prints an error (and its hint) and picks the exit code.
pub fn report_error(err: &anyhow::Error, json: bool) -> ExitCode {
    let (err, output) = match err.downcast_ref::<Partial>() {
        Some(partial) => (&partial.error, Some(&partial.output)),
        None => (err, None),
    };
    let hint = hint_of(err);
    let is_usage = err.downcast_ref::<Usage>().is_some()
        || err.chain().any(|e| e.downcast_ref::<Usage>().is_some());
    let message = format!("{err:#}");
    if let (false, Some(output)) = (json, output) {
        output.print(false);
    }
    eprintln!("error: {message}");
    if let Some(hint) = &hint {
        eprintln!("hint: {hint}");
    }
    if json {
        let mut doc = match output {
            Some(output) if output.json.is_object() => output.json.clone(),
            _ => serde_json::json!({}),
        };
        doc["error"] = Value::String(message);
        doc["hint"] = hint.map_or(Value::Null, Value::String);
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    }
    ExitCode::from(if is_usage { 2 } else { 1 })
}

/// Parses the command line. Help and version go to stdout (exit 0); a usage error exits 2,
/// as clap shows it, or with `--json` as one JSON document on stdout (`error`, `hint`) and
/// one `error:` and one `hint:` line on stderr, like every other error.
pub fn parse() -> Result<Cli, ExitCode> {
    use clap::error::ErrorKind;
    let err = match Cli::try_parse() {
        Ok(cli) => return Ok(cli),
        Err(err) => err,
    };
    let json = std::env::args_os()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json");
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = err.print();
            return Err(ExitCode::SUCCESS);
        }
        _ if !json => {
            let _ = err.print();
            return Err(ExitCode::from(2));
        }
        _ => {}
    }
    // clap's text: `error: …` (continued on indented lines up to a blank one), `tip: …`
    // lines, and `Usage: …`. One line each for the message and the hint.
    let rendered = err.render().to_string();
    let mut message: Option<String> = None;
    let mut in_message = false;
    let mut tips = Vec::new();
    let mut usage_line = None;
    for line in rendered.lines() {
        let trimmed = line.trim();
        if let Some(m) = trimmed.strip_prefix("error: ") {
            message.get_or_insert_with(|| m.to_owned());
            in_message = true;
        } else if let Some(t) = trimmed.strip_prefix("tip: ") {
            tips.push(t.to_owned());
            in_message = false;
        } else if trimmed.starts_with("Usage: ") {
            usage_line.get_or_insert_with(|| trimmed.to_owned());
            in_message = false;
        } else if trimmed.is_empty() {
            in_message = false;
        } else if in_message && let Some(m) = message.as_mut() {
            m.push(' ');
            m.push_str(trimmed);
        }
    }
    let message = match (err.kind(), message) {
        (ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand, _) | (_, None) => {
            "a command or argument is missing".to_owned()
        }
        (_, Some(m)) => m,
    };
    let mut hint = tips.join("; ");
    if let Some(u) = usage_line {
        if !hint.is_empty() {
            hint.push_str("; ");
        }
        hint.push_str(&u);
        hint.push_str(" (`--help` lists every option)");
    } else if hint.is_empty() {
        hint.push_str("`rootkeeper --help` lists the commands and options");
    }
    eprintln!("error: {message}");
    eprintln!("hint: {hint}");
    let doc = serde_json::json!({"error": message, "hint": hint});
    println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    Err(ExitCode::from(2))
}

/// What every command may need: options, the prompter, PIN sources.
pub struct Ctx {
    dir: PathBuf,
    verbose: u8,
    prompter: TerminalPrompter,
    pin_file: Option<PathBuf>,
    last_pin_attempt: bool,
    env_pin: Option<Pin>,
}

impl Ctx {
    fn pins(&self) -> PinSources<'_> {
        PinSources {
            pin_file: self.pin_file.clone(),
            env_pin: self.env_pin.clone(),
            prompter: &self.prompter,
            last_pin_attempt: self.last_pin_attempt,
        }
    }

    /// The trust directory, for a command that writes (created if needed, locked).
    fn trust_dir(&self) -> anyhow::Result<rootkeeper::trustdir::TrustDir> {
        let dir = rootkeeper::trustdir::TrustDir::open(&self.dir)?;
        self.note(&format!("trust directory: {}", dir.path().display()));
        Ok(dir)
    }

    /// The trust directory, for a command that writes into one that must exist already
    /// (`root sign`, `unsign`, `export`): run in the wrong folder, it says so and creates no
    /// `./trust` there.
    fn trust_dir_existing(&self) -> anyhow::Result<rootkeeper::trustdir::TrustDir> {
        if !self.dir.is_dir() {
            self.note(&format!(
                "trust directory: {} (not there)",
                self.dir.display()
            ));
            return Err(rootkeeper::Error::NoTrustDir {
                path: std::path::absolute(&self.dir).unwrap_or_else(|_| self.dir.clone()),
            }
            .into());
        }
        self.trust_dir()
    }

    /// The trust directory, for a command that only reads (never created, never locked
    /// against a writer waiting for a PIN).
    fn trust_dir_read(&self) -> anyhow::Result<rootkeeper::trustdir::TrustDir> {
        let dir = rootkeeper::trustdir::TrustDir::open_read(&self.dir)?;
        self.note(&format!("trust directory: {}", dir.path().display()));
        Ok(dir)
    }

    /// The trust directory if there is one, for a command that reads it when it is there
    /// (`key list` lists the tokens' keys all the same).
    fn trust_dir_read_if_any(&self) -> anyhow::Result<Option<rootkeeper::trustdir::TrustDir>> {
        if self.dir.is_dir() {
            self.trust_dir_read().map(Some)
        } else {
            self.note(&format!(
                "trust directory: {} (not there; nothing is created)",
                self.dir.display()
            ));
            Ok(None)
        }
    }

    /// Shows text to the operator on stderr, e.g. what is about to be signed, before any
    /// prompt; stdout stays for the command's result.
    fn show(&self, text: &str) {
        eprint!("{text}");
    }

    fn note_logins(&self, keyring: &rootkeeper::backend::Keyring<'_>) {
        for token in keyring.logins() {
            self.note(&format!("logged in to {token}"));
        }
    }

    fn note(&self, message: &str) {
        if self.verbose > 0 {
            eprintln!("{message}");
        }
    }
}

/// Reads `ROOTKEEPER_PIN` into a zeroizing PIN, without a trailing CR/LF (as a PIN file's
/// first line is read). rootkeeper starts no child processes that could inherit it.
fn take_env_pin() -> Option<Pin> {
    Pin::from_env_value(std::env::var("ROOTKEEPER_PIN").ok()?)
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<Output> {
    let ctx = Ctx {
        dir: cli.dir,
        verbose: cli.verbose,
        // Notices (touch the YubiKey, PIN retries low) go to stderr through the prompter's
        // notifier, which YubiKey signers keep for the whole command.
        prompter: TerminalPrompter {
            assume_yes: cli.yes,
            notifier: std::rc::Rc::new(terminal::StderrNotifier::new(!cli.json)),
        },
        pin_file: cli.pin_file,
        last_pin_attempt: cli.last_pin_attempt,
        env_pin: take_env_pin(),
    };
    match cli.command {
        Command::Token(cmd) => token::run(&ctx, cmd),
        Command::Key(cmd) => key::run(&ctx, cmd),
        Command::Root(cmd) => root::run(&ctx, cmd),
        Command::Server(cmd) => server::run(&ctx, cmd),
        Command::Inspect(args) => inspect::run(&ctx, args),
        Command::Completions(args) => completions::completions(&args),
        Command::Man(args) => completions::man(&args),
        Command::Backup(cmd) => backup::run(&ctx, cmd),
        Command::Signer(cmd) => signer::run(&ctx, cmd),
    }
}

/// The GUNs named by `--gun` (repeatable) and `--gun-file` (one per line, `#` comments).
fn guns(given: &[String], file: Option<&Path>) -> anyhow::Result<Vec<String>> {
    let mut all: Vec<String> = given.to_vec();
    if let Some(path) = file {
        let text = String::from_utf8(rootkeeper::trustdir::read(path)?)
            .map_err(|_| usage(format!("--gun-file {} is not text", path.display())))?;
        all.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        );
    }
    if all.is_empty() {
        return Err(usage("give --gun GUN (repeatable) or --gun-file FILE"));
    }
    for gun in &all {
        rootkeeper::trustdir::check_gun(gun)?;
    }
    Ok(all)
}

/// Shared `--gun` / `--gun-file` options.
#[derive(Debug, clap::Args)]
struct GunArgs {
    /// Repository name (GUN), e.g. registry.example.com/admin/demo. Repeat for several.
    #[arg(long = "gun", value_name = "GUN")]
    gun: Vec<String>,
    /// File listing GUNs, one per line.
    #[arg(long, value_name = "FILE")]
    gun_file: Option<PathBuf>,
}

impl GunArgs {
    fn resolve(&self) -> anyhow::Result<Vec<String>> {
        guns(&self.gun, self.gun_file.as_deref())
    }
}

/// Parses a key URI given on the command line; a bad one is bad usage (exit 2), with the
/// library's hint.
fn key_uri(text: &str) -> anyhow::Result<rootkeeper::keyuri::KeyUri> {
    text.parse::<rootkeeper::keyuri::KeyUri>()
        .map_err(|e| anyhow::Error::new(e).context(Usage("invalid argument".into())))
}

/// Parses several key URIs.
fn key_uris(texts: &[String]) -> anyhow::Result<Vec<rootkeeper::keyuri::KeyUri>> {
    texts.iter().map(|t| key_uri(t)).collect()
}

fn json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}
