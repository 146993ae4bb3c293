//! Notices: things the operator must know or do while a command runs (touch the YubiKey now,
//! a PIN counter is low). The library never prints them: it hands a typed [`Notice`] to the
//! [`Notifier`] it was given, and the front end (the CLI writes to stderr) decides how to show
//! it, so that `--json` output on stdout stays one clean document.
//!
//! Signers that outlive a command's prompter keep the notifier through an `Rc`, and announce
//! each touch just before the operation that waits for it.

use std::rc::Rc;

/// Something the operator must know or do now.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// Touch the YubiKey with this serial: the card is about to wait for a touch before it
    /// signs (sent just before the operation, once per operation that may need one).
    Touch {
        /// The YubiKey's serial number.
        serial: u32,
        /// True for touch policy `cached`: the card skips the wait when it was touched in
        /// the last 15 seconds.
        cached: bool,
    },
    /// A token's PIN retry counter shows failed attempts: the PIN about to be sent must be
    /// right (sent before the PIN is tried).
    PinRetriesLow {
        /// The token, e.g. "YubiKey serial 12345678" or "token `root-a` (serial 1a2b)".
        token: String,
        /// Tries left, when the token says (PKCS#11 tokens only report a flag).
        remaining: Option<u8>,
    },
    /// Long work over many repositories advanced: `done` of `total` steps of `task` are done
    /// (sent after each step; a front end may draw a progress bar, or show nothing).
    Progress {
        /// What is being done, e.g. `root init: certificates`.
        task: &'static str,
        /// Steps done.
        done: u64,
        /// Steps in all.
        total: u64,
    },
    /// A message from an age plugin (e.g. `age-plugin-yubikey` asking for its YubiKey), as
    /// the plugin wrote it (show it escaped).
    Plugin {
        /// The plugin's text.
        message: String,
    },
}

/// Receives notices. The CLI shows them on stderr; tests record them.
pub trait Notifier {
    /// Shows `notice` to the operator now.
    fn notice(&self, notice: &Notice);
}

/// A notifier that drops every notice (scripts that cannot show anything, tests).
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Notifier for Silent {
    fn notice(&self, _notice: &Notice) {}
}

/// Sends [`Notice::Progress`] for step `index` (counted from 0) of `total`.
pub fn progress(notifier: &dyn Notifier, task: &'static str, index: usize, total: usize) {
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    notifier.notice(&Notice::Progress {
        task,
        done: count(index).saturating_add(1),
        total: count(total),
    });
}

/// A shared silent notifier.
pub fn silent() -> Rc<dyn Notifier> {
    Rc::new(Silent)
}
