//! `rootkeeper completions SHELL` and `rootkeeper man`: generated from the clap definitions,
//! so they list exactly the commands and flags this binary takes.

use std::path::PathBuf;

use clap::CommandFactory;

use super::{Cli, Output};

/// `rootkeeper completions SHELL`.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// `rootkeeper man`.
#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Write rootkeeper.1 and one page per command (rootkeeper-root-sign.1, …) into this
    /// folder instead of printing rootkeeper.1.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

pub fn completions(args: &CompletionsArgs) -> anyhow::Result<Output> {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "rootkeeper", &mut script);
    Ok(Output::raw(String::from_utf8(script)?))
}

pub fn man(args: &ManArgs) -> anyhow::Result<Output> {
    let cmd = Cli::command();
    match &args.out {
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut page)?;
            Ok(Output::raw(String::from_utf8(page)?))
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir).map_err(|e| {
                anyhow::anyhow!("cannot write the pages into {}: {e}", dir.display())
            })?;
            let mut names: Vec<String> = std::fs::read_dir(dir)?
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with("rootkeeper") && n.ends_with(".1"))
                .collect();
            names.sort();
            let text = format!(
                "wrote {} manual pages into {}; read one with `man -l {}/rootkeeper.1`\n",
                names.len(),
                dir.display(),
                dir.display()
            );
            Ok(Output::new(
                text,
                serde_json::json!({"dir": dir, "pages": names}),
            ))
        }
    }
}
