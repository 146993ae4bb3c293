//! The `rootkeeper` command: parse, run, print the result or the error chain with a hint.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args = match cli::parse() {
        Ok(args) => args,
        Err(code) => return code,
    };
    let json = args.json;
    match cli::run(args) {
        Ok(output) => {
            output.print(json);
            output.exit_code()
        }
        Err(err) => cli::report_error(&err, json),
    }
}
