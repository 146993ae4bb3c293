//! Talking to the operator on the terminal: secrets without echo, notices and confirmations
//! on stderr. Without a terminal nothing is asked and callers get a clear refusal.

use std::io::IsTerminal;
use std::rc::Rc;

use rootkeeper::notice::{Notice, Notifier};
use rootkeeper::secret::{Pin, Prompter};

/// Asks on the terminal when there is one.
pub struct TerminalPrompter {
    /// `--yes`: confirmations are answered yes.
    pub assume_yes: bool,
    /// Where the library's notices go: stderr.
    pub notifier: Rc<StderrNotifier>,
}

/// Shows notices on stderr, one line each, so that stdout keeps only the command's output
/// (one JSON document with `--json`). Progress over several repositories is a bar, drawn only
/// on a terminal and never with `--json`; other notices print above it.
#[derive(Debug, Default)]
pub struct StderrNotifier {
    bars: bool,
    bar: std::cell::RefCell<Option<indicatif::ProgressBar>>,
}

impl StderrNotifier {
    /// A notifier; `bars` allows progress bars (not with `--json`), which are drawn only
    /// when stderr is a terminal.
    pub fn new(bars: bool) -> StderrNotifier {
        StderrNotifier {
            bars: bars && std::io::stderr().is_terminal(),
            bar: std::cell::RefCell::new(None),
        }
    }

    fn progress(&self, task: &'static str, done: u64, total: u64) {
        if !self.bars || total < 2 {
            return;
        }
        let mut slot = self.bar.borrow_mut();
        let bar = slot.get_or_insert_with(|| {
            let bar = indicatif::ProgressBar::with_draw_target(
                Some(total),
                indicatif::ProgressDrawTarget::stderr(),
            );
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{msg} [{bar:40}] {pos}/{len} GUNs, {elapsed}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(task);
            bar
        });
        bar.set_position(done);
        if done >= total {
            bar.finish_and_clear();
            *slot = None;
        }
    }
}

impl Drop for StderrNotifier {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.get_mut().take() {
            bar.finish_and_clear();
        }
    }
}

/// The text the operator reads for a notice.
pub fn notice_text(notice: &Notice) -> String {
    match notice {
        Notice::Touch {
            serial,
            cached: false,
        } => format!("touch the YubiKey (serial {serial}) when it blinks"),
        Notice::Touch {
            serial,
            cached: true,
        } => format!(
            "touch the YubiKey (serial {serial}) if it blinks (touch policy cached: one touch lasts 15 seconds)"
        ),
        Notice::PinRetriesLow {
            token,
            remaining: Some(n),
        } => format!(
            "warning: {token} has {n} PIN {} left; a wrong PIN now costs one",
            if *n == 1 { "retry" } else { "retries" }
        ),
        Notice::PinRetriesLow {
            token,
            remaining: None,
        } => format!(
            "warning: {token} reports a wrong PIN since its last good login; be sure of the PIN"
        ),
        Notice::Progress { task, done, total } => format!("{task}: {done} of {total}"),
        Notice::Plugin { message } => {
            format!(
                "age plugin: {}",
                rootkeeper::text::escape_untrusted(message)
            )
        }
        other => format!("{other:?}"),
    }
}

impl Notifier for StderrNotifier {
    fn notice(&self, notice: &Notice) {
        if let Notice::Progress { task, done, total } = notice {
            self.progress(task, *done, *total);
            return;
        }
        let text = notice_text(notice);
        match self.bar.borrow().as_ref() {
            Some(bar) => bar.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }
}

fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Asks for a secret on the terminal without echo; `None` without a terminal. `nothing` says
/// what the refusal reports when nothing could be read (`no PIN entered`).
pub fn ask_secret(prompt: &str, nothing: &str) -> rootkeeper::Result<Option<Pin>> {
    if !interactive() {
        return Ok(None);
    }
    dialoguer::Password::new()
        .with_prompt(prompt)
        .allow_empty_password(true)
        .interact()
        .map(|p| Some(Pin::new(p)))
        .map_err(|e| rootkeeper::Error::Cancelled(format!("{nothing}: {e}")))
}

impl Prompter for TerminalPrompter {
    fn secret(&self, prompt: &str) -> rootkeeper::Result<Option<Pin>> {
        ask_secret(prompt, "no PIN entered")
    }

    fn notifier(&self) -> Rc<dyn Notifier> {
        self.notifier.clone()
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
