//! alignscope's command line: parse, then dispatch (the commands live in `cli`).

// No unwrap/expect outside tests: a path, a caption or a file's bytes must never reach a panic
// (an invariant that cannot fail is allowed where it is written, with its reason).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::process::ExitCode;

use clap::Parser as _;

mod cli;

fn main() -> ExitCode {
    cli::run(cli::Cli::parse())
}
