//! Secrets: PINs and passphrases live in zeroize-on-drop types with a redacted `Debug`, and come
//! from a file, an environment variable or a prompt, never from the command line.

use std::path::{Path, PathBuf};

use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};

/// A PIN (or SO PIN, or passphrase). Wiped from memory on drop; `Debug` never shows it.
#[derive(Clone)]
pub struct Pin(Zeroizing<String>);

impl Pin {
    /// Wraps a PIN taken from a prompt or a file.
    pub fn new(pin: String) -> Self {
        Pin(Zeroizing::new(pin))
    }

    /// The PIN text, for handing to a token.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Reads a PIN from the first line of a file (trailing CR/LF removed).
    pub fn from_file(path: &Path) -> Result<Pin> {
        let mut raw = Zeroizing::new(std::fs::read(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?);
        let end = raw
            .iter()
            .position(|&b| b == b'\n' || b == b'\r')
            .unwrap_or(raw.len());
        let line = std::str::from_utf8(&raw[..end]).map_err(|_| Error::PinFile {
            path: path.to_owned(),
            reason: "not UTF-8 text".into(),
        })?;
        if line.is_empty() {
            return Err(Error::PinFile {
                path: path.to_owned(),
                reason: "the first line is empty".into(),
            });
        }
        let pin = Pin::new(line.to_owned());
        raw.zeroize();
        Ok(pin)
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
    /// Tells the operator something that needs doing now (e.g. "insert token X").
    fn notice(&self, message: &str);
}

/// A prompter that can never ask: for scripts and tests.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoPrompter;

impl Prompter for NoPrompter {
    fn secret(&self, _prompt: &str) -> Result<Option<Pin>> {
        Ok(None)
    }
    fn notice(&self, _message: &str) {}
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
        assert_eq!(Pin::from_file(&path).unwrap().expose(), "8844");
        std::fs::write(&path, "\n").unwrap();
        assert!(Pin::from_file(&path).is_err());
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
