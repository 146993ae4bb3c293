//! The library's error type: one enum, each variant naming what failed and where, plus a hint
//! that tells the operator what to do next.

use std::path::PathBuf;

/// Result with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in rootkeeper's library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A key URI could not be parsed.
    #[error(
        "bad key URI `{}`: {}",
        crate::text::escape_untrusted(uri),
        crate::text::escape_untrusted(reason)
    )]
    KeyUri {
        /// The URI as given (never contains a PIN: `pin-value` is refused before).
        uri: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A URI carried `pin-value`.
    #[error("refusing a PIN inside the key URI (pin-value)")]
    PinValueInUri,
    /// A file could not be read.
    #[error("cannot read {}", crate::text::escape_untrusted(&path.display().to_string()))]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {}", crate::text::escape_untrusted(&path.display().to_string()))]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The trust directory is locked by another rootkeeper process.
    #[error("the trust directory {path} is in use by another rootkeeper command")]
    Busy {
        /// The trust directory.
        path: PathBuf,
    },
    /// A PKCS#11 module could not be loaded or initialised.
    #[error("cannot load PKCS#11 module {path}: {reason}")]
    Module {
        /// The module path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A PKCS#11 call failed.
    #[error("PKCS#11 {function} failed on {target}: {rv}")]
    Pkcs11 {
        /// The C_ function.
        function: String,
        /// The token or key it was called for.
        target: String,
        /// The return value name, e.g. CKR_DEVICE_ERROR.
        rv: String,
    },
    /// No token matches a URI.
    #[error("no token matches {uri}; tokens present: {available}")]
    TokenNotFound {
        /// The URI that matched nothing.
        uri: String,
        /// The tokens that are present, with their URIs.
        available: String,
    },
    /// More than one token matches a URI.
    #[error("{uri} matches more than one token: {matches}")]
    TokenAmbiguous {
        /// The URI.
        uri: String,
        /// The tokens it matches.
        matches: String,
    },
    /// No key matches a URI on its token.
    #[error("no P-256 key matches {uri} on token `{token}`")]
    KeyNotFound {
        /// The key URI.
        uri: String,
        /// The token label.
        token: String,
    },
    /// A key label is already used on the token.
    #[error("token `{token}` already holds an object labelled `{label}`")]
    LabelTaken {
        /// The token label.
        token: String,
        /// The label.
        label: String,
    },
    /// A token label is already used in the module.
    #[error("a token labelled `{label}` already exists")]
    TokenLabelTaken {
        /// The label.
        label: String,
    },
    /// The PIN was wrong.
    #[error("wrong PIN for {token}; the token now reports: {state}")]
    WrongPin {
        /// The token.
        token: String,
        /// The PIN state read back from the token after the attempt.
        state: String,
    },
    /// The PIN is locked.
    #[error("the user PIN of {token} is locked")]
    PinLocked {
        /// The token.
        token: String,
    },
    /// The token says the next wrong PIN locks it.
    #[error("{token} reports that the next wrong PIN locks it; no PIN was tried")]
    PinFinalTry {
        /// The token.
        token: String,
    },
    /// No PIN source was available.
    #[error(
        "no PIN for {what}: no pin-source, no --pin-file, no ROOTKEEPER_PIN and no terminal to ask on"
    )]
    NoPin {
        /// What the PIN was for.
        what: String,
    },
    /// A PIN or passphrase file was unusable.
    #[error("PIN file {path}: {reason}")]
    PinFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The operator cancelled or declined.
    #[error("{0}")]
    Cancelled(String),
    /// A token produced a signature that does not verify under its public key.
    #[error("the signature made by {key} does not verify under its public key; it was not used")]
    BadSignature {
        /// The key.
        key: String,
    },
    /// Something about the key material or a certificate is wrong.
    #[error("{what}: {reason}")]
    Key {
        /// The key or certificate.
        what: String,
        /// Why.
        reason: String,
    },
    /// A metadata file is malformed.
    #[error("{file}: {reason}")]
    Metadata {
        /// The file or role.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// A client rule failed during verification.
    #[error("{file}: rule `{rule}` broken: {detail}")]
    Rule {
        /// The file or role.
        file: String,
        /// The rule's name, as listed in docs/formats.md.
        rule: &'static str,
        /// What exactly is broken.
        detail: String,
    },
    /// A request is inconsistent (e.g. threshold larger than the number of keys).
    #[error("{0}")]
    Invalid(String),
    /// The trust directory has no such repository or draft.
    #[error("{0}")]
    NotFound(String),
    /// A draft already exists.
    #[error("{0}")]
    Exists(String),
    /// The trust server answered with an error.
    #[error("trust server {url} answered {status}: {message}")]
    Server {
        /// The request URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// The server's own message.
        message: String,
    },
    /// The trust server could not be reached.
    #[error("cannot reach trust server {url}: {reason}")]
    Http {
        /// The request URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// No YubiKey matches a URI.
    #[error("no YubiKey matches {uri}; YubiKeys present: {present}")]
    YubiKeyNotFound {
        /// The URI (without sources).
        uri: String,
        /// The YubiKeys present, with their URIs (and ignored virtual readers).
        present: String,
    },
    /// A URI without a serial, and more than one YubiKey present.
    #[error("{uri} names no serial and more than one YubiKey is present: {present}")]
    YubiKeyAmbiguous {
        /// The URI (without sources).
        uri: String,
        /// The YubiKeys present, with their URIs.
        present: String,
    },
    /// A PIV operation on a YubiKey failed.
    #[error("{device}: {operation} failed: {reason}")]
    Piv {
        /// The YubiKey, e.g. "YubiKey serial 12345678".
        device: String,
        /// What was attempted.
        operation: String,
        /// Why it failed.
        reason: String,
    },
    /// A PIV PIN or PUK is blocked.
    #[error("the {what} of {device} is blocked (no retries left); nothing was tried")]
    PivBlocked {
        /// `PIN` or `PUK`.
        what: String,
        /// The YubiKey.
        device: String,
    },
    /// A PIV slot already holds a key.
    #[error("slot {slot} of {device} already holds a key ({detail})")]
    SlotInUse {
        /// The slot, e.g. `9c`.
        slot: String,
        /// The YubiKey.
        device: String,
        /// What is there.
        detail: String,
    },
    /// The management key is unavailable or wrong.
    #[error("management key of {device}: {reason}")]
    ManagementKey {
        /// The YubiKey.
        device: String,
        /// Why.
        reason: String,
    },
    /// A PIV attestation could not be read or does not verify.
    #[error("attestation of {what}: {reason}")]
    Attestation {
        /// The key (URI).
        what: String,
        /// Why.
        reason: String,
    },
    /// A plain-http trust server URL that is not on this machine's loopback.
    #[error("refusing plain http to {url}: {detail}")]
    PlainHttp {
        /// The URL as given.
        url: String,
        /// Why it is not loopback (e.g. `notary.example.com is not a loopback address`).
        detail: String,
    },
    /// The trust server answered with a redirect; rootkeeper follows none.
    #[error(
        "trust server {url} answered {status} redirecting to {location}; redirects are not followed"
    )]
    Redirect {
        /// The request URL.
        url: String,
        /// HTTP status (3xx).
        status: u16,
        /// The `Location` header, escaped ([`crate::text::escape_untrusted`]), or a note that
        /// there was none.
        location: String,
    },
    /// After a publish, the server serves a root.json other than the one uploaded.
    #[error(
        "trust server {url} serves another root.json than the one uploaded (uploaded SHA-256 {uploaded}, served SHA-256 {served})"
    )]
    RootMismatch {
        /// The URL of the served root.json.
        url: String,
        /// SHA-256 (hex) of the root.json uploaded.
        uploaded: String,
        /// SHA-256 (hex) of the root.json served.
        served: String,
    },
    /// A draft's documents are not what its record says they should be.
    #[error("{file} {detail}")]
    DraftMismatch {
        /// The file.
        file: String,
        /// What differs.
        detail: String,
    },
    /// A GUN has no draft in this trust directory.
    #[error("no draft for {gun} in the trust directory {dir}{}", exported.as_ref().map(|e| format!(" ({e})")).unwrap_or_default())]
    NoDraft {
        /// The GUN.
        gun: String,
        /// The trust directory looked in.
        dir: String,
        /// What was last exported, if anything.
        exported: Option<String>,
    },
    /// A key given to sign is not a key of the drafts.
    #[error(
        "{uri} (key ID {key_id}) is not a key of the draft for {guns}; nothing was signed and no PIN was asked for"
    )]
    KeyNotInDraft {
        /// The key's URI.
        uri: String,
        /// Its canonical key ID.
        key_id: String,
        /// The GUNs.
        guns: String,
    },
    /// One PIN file or ROOTKEEPER_PIN would be tried on several tokens.
    #[error(
        "one PIN (from --pin-file or ROOTKEEPER_PIN) would be tried on {tokens}; no PIN was tried"
    )]
    SharedPin {
        /// The tokens.
        tokens: String,
    },
    /// An export folder holds another repository's files.
    #[error("{dir} holds the export of {other}, not of {gun}; nothing was written")]
    ExportFolderTaken {
        /// The folder.
        dir: String,
        /// The GUN whose files are there.
        other: String,
        /// The GUN being exported.
        gun: String,
    },
    /// A value that is legal but almost surely wrong; a flag insists on it.
    #[error("{detail}; nothing was done")]
    AlmostSurelyWrong {
        /// What is odd, with the value.
        detail: String,
        /// What to check.
        advice: String,
        /// The flag that insists.
        flag: &'static str,
    },
    /// A key (named by key ID) that signs no draft of the GUNs given.
    #[error("{key} is not a signer of the draft for {guns}; nothing was changed")]
    NotASigner {
        /// The key as given.
        key: String,
        /// The GUNs.
        guns: String,
    },
    /// A command that only reads found no trust directory (it never makes one).
    #[error("there is no trust directory at {path}")]
    NoTrustDir {
        /// Where it looked.
        path: PathBuf,
    },
    /// Core dumps could not be disabled, so no key material is put in memory.
    #[error("cannot disable core dumps, so no key is put in memory: {reason}")]
    CoreDumps {
        /// The failing call and its error.
        reason: String,
    },
    /// A key backup or backup share could not be made, opened or checked.
    #[error("{file}: {problem}")]
    Backup {
        /// The file (or files) concerned.
        file: String,
        /// What is wrong, one kind per failure.
        problem: crate::backup::BackupProblem,
    },
    /// A notary / docker trust private key file could not be read or written.
    #[error("{file}: {problem}")]
    NotaryKey {
        /// The key file.
        file: String,
        /// What is wrong.
        problem: crate::backup::notary_key::NotaryKeyProblem,
    },
    /// A CKA_ID is already used on the token.
    #[error("token `{token}` already holds an object with CKA_ID {id}")]
    KeyIdTaken {
        /// The token label.
        token: String,
        /// The ID, hex.
        id: String,
    },
    /// A PIV attestation whose chain ends at a CA rootkeeper was not given: not a failed
    /// signature, but an issuer it does not know.
    #[error(
        "attestation of {what} not recognised: the device certificate `{device_certificate}` (issuer `{issuer}`) does not chain to {roots}"
    )]
    AttestationUnrecognised {
        /// The key (URI).
        what: String,
        /// The subject of the device certificate (slot f9).
        device_certificate: String,
        /// Its issuer.
        issuer: String,
        /// The roots tried.
        roots: String,
        /// True when the roots were Yubico's built-in ones.
        built_in: bool,
    },
    /// A PIV slot may hold a key, and the card cannot say (firmware without metadata).
    #[error("slot {slot} of {device} may hold a key: {reason}")]
    SlotMayBeInUse {
        /// The slot, e.g. `9c`.
        slot: String,
        /// The YubiKey.
        device: String,
        /// Why emptiness cannot be shown.
        reason: String,
    },
    /// A wrong PIN that came from a file whose first line starts or ends with whitespace
    /// (kept as part of the PIN).
    #[error(
        "wrong PIN for {token}; the token now reports: {state}; the PIN came from {}, whose first line has leading or trailing whitespace, which was kept as part of the PIN", path.display()
    )]
    WrongPinWhitespace {
        /// The token.
        token: String,
        /// The PIN state read back from the token after the attempt.
        state: String,
        /// The PIN file.
        path: PathBuf,
    },
    /// A PKCS#11 module loaded but did not start (C_Initialize or the first call failed).
    #[error("PKCS#11 module {} did not start: {reason}{}", path.display(), config.as_ref().map(|c| format!(" ({c})")).unwrap_or_default())]
    ModuleInit {
        /// The module path.
        path: PathBuf,
        /// What failed, e.g. `C_Initialize returned CKR_GENERAL_ERROR`.
        reason: String,
        /// The module's own configuration as rootkeeper sees it, e.g.
        /// `SOFTHSM2_CONF=/etc/x.conf, which does not exist`.
        config: Option<String>,
        /// True for SoftHSM (its configuration comes from SOFTHSM2_CONF).
        softhsm: bool,
    },
    /// PC/SC (pcscd) could not be reached, so no YubiKey can be looked at.
    #[error("PC/SC: {reason}")]
    PcscUnavailable {
        /// Why.
        reason: String,
    },
    /// `server pull` refused what the server serves.
    #[error("not pulling {gun}: {detail}; nothing was stored")]
    PullRefused {
        /// The GUN.
        gun: String,
        /// Why.
        detail: String,
    },
    /// The server serves an older version than the last pull saw.
    #[error(
        "the server serves {role} version {served} of {gun}, older than version {was} pulled before; nothing was stored"
    )]
    Rollback {
        /// The GUN.
        gun: String,
        /// The role.
        role: String,
        /// The version pulled before.
        was: u64,
        /// The version served now.
        served: u64,
    },
    /// The trust server holds a repository that is not this export's chain.
    #[error("not publishing {gun}: {detail}; nothing was sent")]
    ServerNotOurs {
        /// The GUN.
        gun: String,
        /// What the server holds.
        detail: String,
    },
    /// A change needs the repository's current state from the server first.
    #[error("cannot change {gun} yet: {detail}")]
    NeedsPull {
        /// The GUN.
        gun: String,
        /// Why.
        detail: String,
    },
    /// A rotation that the keys that can still sign cannot complete.
    #[error("the new root of {gun} could never be completed: {detail}; nothing was signed")]
    RotationImpossible {
        /// The GUN.
        gun: String,
        /// What is missing.
        detail: String,
    },
    /// A new root names a new repository key, and targets.json is not re-signed with it.
    #[error(
        "root v{version} of {gun} names a new repository (targets) key, but its draft does not re-sign targets.json with it; exported alone it would break every client"
    )]
    TargetsNotResigned {
        /// The GUN.
        gun: String,
        /// The new root's version.
        version: u64,
    },
    /// A file rootkeeper would write exists already (backups and key files are never
    /// overwritten).
    #[error("{} exists already; nothing was written", crate::text::escape_untrusted(&path.display().to_string()))]
    FileExists {
        /// The file.
        path: PathBuf,
    },
    /// Importing a key into a token failed; what was done before was taken back.
    #[error("importing the key into {token} failed: {reason}{}", if left.is_empty() { String::new() } else { format!("; still holding the key: {left}") })]
    ImportFailed {
        /// The token.
        token: String,
        /// Why (the token's error).
        reason: String,
        /// Tokens whose import could not be taken back, empty when all were.
        left: String,
    },
    /// A backup holds a key the inventory does not know.
    #[error(
        "{what}: holds key {key_id} (`{}`), which is not in this trust directory's inventory",
        crate::text::escape_untrusted(label)
    )]
    NotInInventory {
        /// The files.
        what: String,
        /// The key's canonical ID.
        key_id: String,
        /// The label the backup gives.
        label: String,
    },
    /// A token holds another key under the URI the inventory records.
    #[error("{uri} holds key {found}, not the backed-up key {expected}")]
    TokenKeyDiffers {
        /// The URI.
        uri: String,
        /// The key ID found there.
        found: String,
        /// The key ID expected.
        expected: String,
    },
    /// A request the backup commands refuse, with what to do instead.
    #[error("{message}")]
    Request {
        /// What is wrong.
        message: String,
        /// What to do.
        hint: &'static str,
    },
    /// `key export-notary` refuses this key.
    #[error("refusing to export key {key}: {reason}")]
    ExportRefused {
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
    /// A signer's public key file is not one rootkeeper takes.
    #[error("signer key file {file} {reason}")]
    SignerKey {
        /// The file (escaped).
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// A signer name docker would refuse.
    #[error("signer name `{name}`: {reason}")]
    SignerName {
        /// The name (escaped).
        name: String,
        /// Why.
        reason: String,
    },
    /// `signer remove` of a signer the repository does not have.
    #[error("no signer {name}{}", if signers.is_empty() { " (the repository has no signers)".to_string() } else { format!(" (its signers: {signers})") })]
    NoSuchSigner {
        /// The name (escaped), with the GUN.
        name: String,
        /// The signers there are.
        signers: String,
    },
    /// Removing the signer would leave the released tags without a valid signature.
    #[error(
        "signer {name} signed the last released version of {gun} (targets/releases, tags {tags}): removing it makes {gun} unpullable; nothing was drafted"
    )]
    SignerHoldsReleases {
        /// The GUN.
        gun: String,
        /// The signer (escaped).
        name: String,
        /// The released tags (escaped).
        tags: String,
    },
}

impl Error {
    /// What the operator should do next, when there is something specific to say.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Error::KeyUri { .. } => "a key URI looks like pkcs11:token=root-a;object=root-2026; `rootkeeper token list` prints the exact URI of every token and key".into(),
            Error::PinValueInUri => "a PIN on the command line leaks into shell history and `ps`; use pin-source=file:PATH in the URI, --pin-file, ROOTKEEPER_PIN or the prompt".into(),
            Error::Busy { .. } => "wait for the other command to finish; if none is running, check for a stuck process".into(),
            Error::Module { .. } => "set module-path in the URI, --module, or ROOTKEEPER_PKCS11_MODULE to the vendor's PKCS#11 library (SoftHSM: apt-get install softhsm2)".into(),
            Error::TokenNotFound { .. } => "check that the token is plugged in and copy its URI from `rootkeeper token list`".into(),
            Error::TokenAmbiguous { .. } => "add serial=... to the URI to say which token".into(),
            Error::KeyNotFound { .. } => "`rootkeeper token list` shows the keys on each token; check object= and id=".into(),
            Error::LabelTaken { .. } => "choose another --label; a key is never overwritten".into(),
            Error::TokenLabelTaken { .. } => "choose another --label".into(),
            Error::WrongPin { .. } => "nothing was signed or written; check which PIN belongs to this token before trying again".into(),
            Error::PinLocked { .. } => "the security officer must unblock the user PIN (C_InitPIN with the SO PIN) before this token can be used".into(),
            Error::PinFinalTry { .. } => "one wrong PIN now locks the token; be certain of the PIN, then run again with --last-pin-attempt".into(),
            Error::NoPin { .. } => "use pin-source=file:PATH in the URI, --pin-file PATH, or ROOTKEEPER_PIN, or run in a terminal".into(),
            Error::PinFile { .. } => "the file must hold the PIN on its first line".into(),
            Error::BadSignature { .. } => "the token may be faulty; do not use it for this ceremony".into(),
            Error::Rule { rule, .. } => rule_hint(rule).into(),
            Error::Server { status, .. } if *status == 401 => "the server wants a token; this version speaks to servers without auth or behind a proxy that authenticates".into(),
            Error::Server { .. } => "the server's message says what it refused; nothing on the server changed unless it answered 200".into(),
            Error::Http { .. } => "check --server and, for https with a private CA, --ca FILE".into(),
            Error::YubiKeyNotFound { .. } => "plug the YubiKey in and copy its URI from `rootkeeper token list`; virtual readers (\"Virtual PCD\") are ignored unless ROOTKEEPER_ALLOW_VIRTUAL_READERS=1".into(),
            Error::YubiKeyAmbiguous { .. } => "add serial=N to the URI (`rootkeeper token list` prints each YubiKey's URI), or unplug the others".into(),
            Error::Piv { .. } => "`rootkeeper token list` shows the YubiKey's state; `ykman piv info` gives a second opinion".into(),
            Error::PivBlocked { what, .. } if what == "PIN" => "unblock the PIN with the PUK (`ykman piv access unblock-pin`); with the PUK blocked too, only a PIV reset (which destroys the keys) helps".into(),
            Error::PivBlocked { .. } => "a blocked PUK cannot be unblocked; the PIN still works while it has retries, a PIV reset destroys the keys".into(),
            Error::SlotInUse { .. } => "choose another slot, or pass --force to destroy the key that is there (it cannot be recovered)".into(),
            Error::ManagementKey { .. } => "give management-key-source=file:PATH (hex) in the URI, store it PIN-protected with `rootkeeper token setup`, or run in a terminal to be asked".into(),
            Error::Attestation { .. } => "a key that fails attestation may have been imported or the device may not be genuine; do not use it as a hardware root key until this is understood".into(),
            Error::PlainHttp { .. } => "metadata and keys fetched over plain HTTP can be swapped by anyone on the path (a swapped timestamp key ends up in the signed root); use https:// (with --ca FILE for a private CA), or http only to a server or TLS proxy on this machine's loopback (127.0.0.1, ::1, localhost)".into(),
            Error::Redirect { .. } => "nothing was sent to the other address: rootkeeper follows no redirects, so an upload never goes elsewhere and metadata never comes from a host you did not name; check that address, and if it is the server you mean, give it as --server".into(),
            Error::RootMismatch { .. } => "the server took the publish but serves other bytes, and clients trust what it serves: do not announce the repository; fetch the served root.json, compare it with the export and find out who changed it (another publisher, a proxy, or the server)".into(),
            Error::DraftMismatch { .. } => "the draft was changed after it was made: do not sign it; take pending/ again from the machine that made it, and compare the fingerprint `rootkeeper root status` shows with the ceremony log".into(),
            Error::NoDraft { exported: Some(_), .. } => "that root was exported and needs nothing more: publish that export with `rootkeeper server publish DIR --server URL --gun GUN` (`rootkeeper root export` writes it again if the folder is lost); an exported root is never signed or changed again, a change is a new root version".into(),
            Error::NoDraft { .. } => "the draft may be in another trust directory: check --dir or ROOTKEEPER_DIR (an absolute path avoids surprises); `rootkeeper root status` lists the drafts in this one".into(),
            Error::KeyNotInDraft { .. } => "`rootkeeper root status --gun GUN` lists the keys that must sign and the key IDs written down at `key generate`; check object= and id= in the URI".into(),
            Error::SharedPin { .. } => "give each key its own pin-source=file:PATH in its URI (or sign with one token per command), so that no token is offered another token's PIN".into(),
            Error::ExportFolderTaken { .. } => "export each repository into its own folder (with several --gun, rootkeeper writes DIR/<gun>/)".into(),
            Error::AlmostSurelyWrong { advice, flag, .. } => format!("{advice}; if it is really meant, run again with {flag}"),
            Error::NotASigner { .. } => "`rootkeeper root status --gun GUN` lists each signer's key ID (give all 64 hex digits, or the first 8 or more) and URI".into(),
            Error::NoTrustDir { .. } => "give --dir or set ROOTKEEPER_DIR to the trust directory, as an absolute path (the default is ./trust, relative to where the command runs)".into(),
            Error::CoreDumps { .. } => "run rootkeeper where it may lower its own core-dump limit (not under a hard RLIMIT_CORE it cannot change, nor a seccomp filter that forbids prctl)".into(),
            Error::Backup { problem, .. } => problem.hint().into(),
            Error::NotaryKey { problem, .. } => problem.hint().into(),
            Error::KeyIdTaken { .. } => "every copy of an imported key gets the same CKA_ID; use a token that does not hold this ID yet, or remove the old object first".into(),
            Error::AttestationUnrecognised { built_in: true, .. } => "rootkeeper knows Yubico's roots only; for a device attested by another CA (a test card, a private PKI) pass that CA with --attestation-roots FILE".into(),
            Error::AttestationUnrecognised { .. } => "the file given with --attestation-roots does not hold the CA that issued this device certificate; pass the right CA, or leave the option out to check against Yubico's built-in roots".into(),
            Error::SlotMayBeInUse { .. } => "if you are certain the slot holds no key you need, run again with --force (after a confirmation, whatever is there is destroyed); `ykman piv info` may show more".into(),
            Error::WrongPinWhitespace { path, .. } => format!("rootkeeper keeps a PIN file's first line exactly as written (only the line ending is removed); if the PIN has no spaces, remove them from {}", path.display()),
            Error::ModuleInit { softhsm: true, .. } => "SoftHSM reads its configuration from the file SOFTHSM2_CONF names: point SOFTHSM2_CONF at a softhsm2.conf whose directories.tokendir exists, or name another module with module-path= in the URI, --module or ROOTKEEPER_PKCS11_MODULE".into(),
            Error::ModuleInit { .. } => "check the module's own configuration and its device; or name another module with module-path= in the URI, --module or ROOTKEEPER_PKCS11_MODULE".into(),
            Error::FileExists { .. } => "rootkeeper never overwrites a backup or key file: choose another path, or move the old file away first if you are sure it is not needed".into(),
            Error::ImportFailed { left, .. } if left.is_empty() => "no token holds the key and no backup file was kept; fix the token named and run the command again".into(),
            Error::ImportFailed { .. } => "the key could not be taken back from the tokens named; overwrite or remove it there before you use them, then run the command again".into(),
            Error::NotInInventory { .. } => "check --dir (ROOTKEEPER_DIR): a drill or restore compares the key with the inventory that recorded it; `rootkeeper key list` shows the keys here".into(),
            Error::TokenKeyDiffers { .. } => "the token and the backup disagree: do not use either for this key until you know why (was the token replaced, or the backup mixed up?)".into(),
            Error::Request { hint, .. } => (*hint).into(),
            Error::ExportRefused { .. } => "export-notary writes only keys that existed outside hardware (in-memory with backups, or imported), from their backup; a root key needs --allow-root".into(),
            Error::PcscUnavailable { .. } => "YubiKeys are reached through pcscd: install and start it (apt-get install pcscd; systemctl start pcscd.socket, or run pcscd)".into(),
            Error::PullRefused { .. } => "the server does not serve the repository this trust directory keeps; do not sign anything on top of it until you know why (another publisher, a wrong --server or --gun, or an attack)".into(),
            Error::Rollback { .. } => "a server (or someone between it and you) is serving old metadata, which would undo revocations; do not sign on top of it, and ask the server's operator".into(),
            Error::ServerNotOurs { .. } => "someone else published to this repository, or this export belongs to another chain (or another --gun); compare the server's root with the trust directory (`rootkeeper server pull`) before doing anything".into(),
            Error::NeedsPull { .. } => "on the online machine: `rootkeeper server pull --server URL --gun GUN` (with this trust directory), then carry it back here".into(),
            Error::RotationImpossible { .. } => "find the missing tokens (`rootkeeper key list` shows where each key lives) or, if they are gone for good, see docs/recovery.md: without the previous root's threshold no client will accept a new root".into(),
            Error::TargetsNotResigned { .. } => "make the draft with `rootkeeper root rotate-key targets --key URI`, which re-signs targets.json with the new key (above the server's version)".into(),
            Error::SignerKey { .. } => "give the signer's public key as docker takes it: the NAME.pub that `docker trust key generate NAME` writes (a PEM PUBLIC KEY), or a P-256 certificate; one key per file, one --key per file".into(),
            Error::SignerName { .. } => "docker's signer names start with a-z or 0-9 and hold only a-z, 0-9, `-` and `_`; `releases` is reserved".into(),
            Error::NoSuchSigner { .. } => "`rootkeeper signer list --gun GUN` shows the signers of the last pull; pull again if a signer was added since".into(),
            Error::SignerHoldsReleases { .. } => "let another signer sign a tag first (their `docker trust sign` re-signs targets/releases with their key), or confirm the removal (on a terminal, or with --yes): the released tags then fail until a signer signs again".into(),
            _ => return None,
        })
    }
}

fn rule_hint(rule: &str) -> &'static str {
    match rule {
        "root-threshold" | "targets-threshold" | "snapshot-threshold" => {
            "collect the missing signatures with `rootkeeper root sign --gun GUN --key URI`; `rootkeeper root status` lists which tokens must still sign"
        }
        "timestamp-threshold" | "timestamp-expiry" | "timestamp-meta" => {
            "the trust server's timestamp does not fit this repository; fetch again, and if it persists, the server or the path to it is not to be trusted"
        }
        "snapshot-meta" => {
            "the snapshot no longer matches root.json or targets.json; sign it again with the snapshot key"
        }
        "fields" | "canonical-round-trip" => {
            "notary would read these bytes differently from what rootkeeper shows (see docs/formats.md): do not sign or upload the file; take it again from where it was made"
        }
        "signatures" | "parse" | "key-ids" => {
            "the file was changed or damaged after signing; take it again from the trust directory or the signer"
        }
        "root-expiry" | "targets-expiry" | "snapshot-expiry" => {
            "renew the metadata with a later --expires"
        }
        "root-cn" => {
            "every root certificate's CN must be the GUN; the file belongs to another repository"
        }
        "root-rotation" => {
            "the root this one replaces must sign it too: `rootkeeper root status --gun GUN` lists its keys under `previous root keys`; sign with enough of them (`root sign --key URI`)"
        }
        "root-version" => {
            "a new root must be the previous version + 1: check it against the version just before it (`root verify ROOT --trusted PREVIOUS`), and clients walk every version in between"
        }
        _ => "docs/formats.md says what the rule checks and why",
    }
}
