//! Secrets: PINs and passphrases live in zeroize-on-drop types with a redacted `Debug`, and come
//! from a file, an environment variable or a prompt, never from the command line.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};
use crate::notice::Notifier;

/// A PIN (or SO PIN, or passphrase). Wiped from memory on drop; `Debug` never shows it.
#[derive(Clone)]
pub struct Pin {
    secret: Zeroizing<String>,
    /// The file it came from, when that file's first line starts or ends with whitespace
    /// (kept as part of the PIN, and named when the PIN turns out wrong).
    whitespace_in: Option<PathBuf>,
}

impl Pin {
    /// Wraps a PIN taken from a prompt or a file.
    pub fn new(pin: String) -> Self {
        Pin {
            secret: Zeroizing::new(pin),
            whitespace_in: None,
        }
    }

    /// The PIN text, for handing to a token.
    pub fn expose(&self) -> &str {
        &self.secret
    }

    /// Reads a PIN from the first line of a file, exactly as written: only the line ending
    /// (LF or CR LF) is removed; spaces and tabs stay part of the PIN (see
    /// [`whitespace_in`](Self::whitespace_in)).
    pub fn from_file(path: &Path) -> Result<Pin> {
        let mut raw = Zeroizing::new(std::fs::read(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?);
        let first = raw
            .split(|&b| b == b'\n' || b == b'\r')
            .next()
            .unwrap_or_default();
        let line = std::str::from_utf8(first).map_err(|_| Error::PinFile {
            path: path.to_owned(),
            reason: "not UTF-8 text".into(),
        })?;
        if line.is_empty() {
            return Err(Error::PinFile {
                path: path.to_owned(),
                reason: "the first line is empty".into(),
            });
        }
        let padded = line.trim() != line;
        let mut pin = Pin::new(line.to_owned());
        if padded {
            pin.whitespace_in = Some(path.to_owned());
        }
        raw.zeroize();
        Ok(pin)
    }

    /// A PIN from an environment variable's value: a trailing line ending (CR/LF, as from
    /// `$(cat pinfile)` or a here-string) is removed, like from a file.
    pub fn from_env_value(value: String) -> Option<Pin> {
        let value = Zeroizing::new(value);
        let pin = value.trim_end_matches(['\r', '\n']);
        (!pin.is_empty()).then(|| Pin::new(pin.to_owned()))
    }

    /// The PIN file, when its first line starts or ends with whitespace that is now part of
    /// this PIN; a wrong-PIN error names it.
    pub fn whitespace_in(&self) -> Option<&Path> {
        self.whitespace_in.as_deref()
    }

    /// The error for this PIN being refused by `token`, which now reports `state`: it says
    /// when the PIN file's whitespace was kept.
    pub fn wrong(&self, token: String, state: String) -> Error {
        match &self.whitespace_in {
            Some(path) => Error::WrongPinWhitespace {
                token,
                state,
                path: path.clone(),
            },
            None => Error::WrongPin { token, state },
        }
    }
}

impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pin(<redacted>)")
    }
}

/// Asks the operator things. The CLI implements it on the terminal; tests script it.
/// The library never reads stdin or prints: it goes through this trait.
pub trait Prompter {
    /// Asks for a secret (no echo). `None` when there is no way to ask (no terminal).
    fn secret(&self, prompt: &str) -> Result<Option<Pin>>;
    /// Where notices go (touch the YubiKey, PIN retries low); signers keep a clone, so a
    /// notice can come while they work, after this prompter's borrow has ended.
    fn notifier(&self) -> Rc<dyn Notifier>;
}

/// A prompter that can never ask and shows nothing: for scripts and tests.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoPrompter;

impl Prompter for NoPrompter {
    fn secret(&self, _prompt: &str) -> Result<Option<Pin>> {
        Ok(None)
    }
    fn notifier(&self) -> Rc<dyn Notifier> {
        crate::notice::silent()
    }
}

/// Where PINs come from, in the order of design §3: the URI's `pin-source`, `--pin-file`,
/// `ROOTKEEPER_PIN`, then a prompt.
pub struct PinSources<'a> {
    /// `--pin-file`.
    pub pin_file: Option<PathBuf>,
    /// The value of `ROOTKEEPER_PIN`, if set.
    pub env_pin: Option<Pin>,
    /// Asks when nothing else gives a PIN.
    pub prompter: &'a dyn Prompter,
    /// `--last-pin-attempt`: the operator accepts that a wrong PIN may lock the token.
    pub last_pin_attempt: bool,
}

impl std::fmt::Debug for PinSources<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinSources")
            .field("pin_file", &self.pin_file)
            .field("env_pin", &self.env_pin.as_ref().map(|_| "<set>"))
            .field("last_pin_attempt", &self.last_pin_attempt)
            .finish_non_exhaustive()
    }
}

impl PinSources<'_> {
    /// The PIN for `what` (e.g. "token root-a (serial 1234)"), taking `uri_source` first.
    pub fn pin_for(&self, what: &str, uri_source: Option<&Path>) -> Result<Pin> {
        if let Some(path) = uri_source {
            return Pin::from_file(path);
        }
        if let Some(path) = &self.pin_file {
            return Pin::from_file(path);
        }
        if let Some(pin) = &self.env_pin {
            return Ok(pin.clone());
        }
        match self.prompter.secret(&format!("PIN for {what}"))? {
            Some(pin) if !pin.expose().is_empty() => Ok(pin),
            Some(_) => Err(Error::Cancelled(format!(
                "empty PIN for {what}; nothing was tried"
            ))),
            None => Err(Error::NoPin { what: what.into() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_pin() {
        let pin = Pin::new("471193".into());
        assert!(!format!("{pin:?}").contains("471193"));
    }

    #[test]
    fn pin_file_takes_the_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pin");
        std::fs::write(&path, "8844\r\nignored\n").unwrap();
        let pin = Pin::from_file(&path).unwrap();
        assert_eq!(pin.expose(), "8844");
        assert!(pin.whitespace_in().is_none());
        std::fs::write(&path, "\n").unwrap();
        assert!(Pin::from_file(&path).is_err());
    }

    #[test]
    fn pin_file_whitespace_is_kept_and_named_when_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pin");
        for text in ["8844 \n", " 8844", "8844\t\r\n"] {
            std::fs::write(&path, text).unwrap();
            let pin = Pin::from_file(&path).unwrap();
            assert_eq!(pin.expose(), text.trim_end_matches(['\r', '\n']));
            assert_eq!(pin.whitespace_in(), Some(path.as_path()));
            let err = pin.wrong("token t".into(), "2 retries left".into());
            assert!(err.to_string().contains("whitespace"), "{err}");
            assert!(!err.to_string().contains("8844"), "{err}");
            assert!(!err.hint().unwrap().contains("8844"));
        }
    }

    #[test]
    fn env_pin_loses_its_line_ending_only() {
        assert_eq!(
            Pin::from_env_value("8844\r\n".into()).unwrap().expose(),
            "8844"
        );
        assert_eq!(
            Pin::from_env_value(" 8844 \n".into()).unwrap().expose(),
            " 8844 "
        );
        assert!(Pin::from_env_value("\n".into()).is_none());
    }

    #[test]
    fn sources_in_design_order() {
        let dir = tempfile::tempdir().unwrap();
        let uri_file = dir.path().join("uri");
        let flag_file = dir.path().join("flag");
        std::fs::write(&uri_file, "1111").unwrap();
        std::fs::write(&flag_file, "2222").unwrap();
        let sources = PinSources {
            pin_file: Some(flag_file),
            env_pin: Some(Pin::new("3333".into())),
            prompter: &NoPrompter,
            last_pin_attempt: false,
        };
        assert_eq!(
            sources.pin_for("t", Some(&uri_file)).unwrap().expose(),
            "1111"
        );
        assert_eq!(sources.pin_for("t", None).unwrap().expose(), "2222");
        let env_only = PinSources {
            pin_file: None,
            env_pin: Some(Pin::new("3333".into())),
            prompter: &NoPrompter,
            last_pin_attempt: false,
        };
        assert_eq!(env_only.pin_for("t", None).unwrap().expose(), "3333");
        let nothing = PinSources {
            pin_file: None,
            env_pin: None,
            prompter: &NoPrompter,
            last_pin_attempt: false,
        };
        assert!(matches!(
            nothing.pin_for("t", None),
            Err(Error::NoPin { .. })
        ));
    }
}
