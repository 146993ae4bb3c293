//! The `rootkeeper` command: parse, run, print the result or the error chain with a hint.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let json = args.json;
    match cli::run(args) {
        Ok(output) => {
            output.print(json);
            output.exit_code()
        }
        Err(err) => cli::report_error(&err, json),
    }
}
