//! Talking to the operator on the terminal: secrets without echo, notices and confirmations
//! on stderr. Without a terminal nothing is asked and callers get a clear refusal.

use std::io::IsTerminal;

use rootkeeper::secret::{Pin, Prompter};

/// Asks on the terminal when there is one.
pub struct TerminalPrompter {
    /// `--yes`: confirmations are answered yes.
    pub assume_yes: bool,
}

fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

impl Prompter for TerminalPrompter {
    fn secret(&self, prompt: &str) -> rootkeeper::Result<Option<Pin>> {
        if !interactive() {
            return Ok(None);
        }
        dialoguer::Password::new()
            .with_prompt(prompt)
            .allow_empty_password(true)
            .interact()
            .map(|p| Some(Pin::new(p)))
            .map_err(|e| rootkeeper::Error::Cancelled(format!("no PIN entered: {e}")))
    }

    fn notice(&self, message: &str) {
        eprintln!("{message}");
    }
}

impl TerminalPrompter {
    /// Asks a yes/no question; `--yes` answers yes. Without a terminal, refuses with a hint.
    pub fn confirm(&self, question: &str) -> anyhow::Result<()> {
        if self.assume_yes {
            return Ok(());
        }
        if !interactive() {
            anyhow::bail!(super::Hinted::new(
                format!("{question} needs a confirmation and there is no terminal to ask on"),
                "pass --yes to confirm from a script",
            ));
        }
        let yes = dialoguer::Confirm::new()
            .with_prompt(question)
            .default(false)
            .interact()?;
        if !yes {
            anyhow::bail!(rootkeeper::Error::Cancelled(
                "cancelled; nothing was changed".into()
            ));
        }
        Ok(())
    }

    /// Asks for a new secret twice, for `token init`.
    pub fn new_secret(&self, prompt: &str) -> anyhow::Result<Option<Pin>> {
        if !interactive() {
            return Ok(None);
        }
        let pin = dialoguer::Password::new()
            .with_prompt(prompt)
            .with_confirmation("Repeat it", "the two entries differ")
            .interact()?;
        Ok(Some(Pin::new(pin)))
    }
}
