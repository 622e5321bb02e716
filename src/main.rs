//! alignscope's command line: parse, then dispatch (the commands live in `cli`).

use std::process::ExitCode;

use clap::Parser as _;

mod cli;

fn main() -> ExitCode {
    cli::run(cli::Cli::parse())
}
