//! The flags that insist on a value that is legal but almost surely wrong (see
//! `rootkeeper::root::checks`): one flag per mistake, so that insisting on one never lets
//! another through.

use rootkeeper::root::checks::Insist;

/// Flags that insist.
#[derive(Debug, Clone, Copy, clap::Args)]
#[command(next_help_heading = "Insisting on unusual values")]
pub struct InsistArgs {
    /// Accept a root that expires within 30 days (e.g. for a rehearsal).
    #[arg(long)]
    allow_short_expiry: bool,
    /// Accept a key that `key generate --role` made for another role than the one given here.
    #[arg(long)]
    allow_role_mismatch: bool,
    /// Accept a GUN with a tag or digest (`…/app:latest`) or capitals.
    #[arg(long)]
    allow_unusual_gun: bool,
}

impl InsistArgs {
    /// As the library takes them.
    pub fn insist(self) -> Insist {
        Insist {
            short_expiry: self.allow_short_expiry,
            role_mismatch: self.allow_role_mismatch,
            unusual_gun: self.allow_unusual_gun,
        }
    }
}
