//! `apiroutes-gateway`: see the library docs and `--help`.

use std::process::ExitCode;

use apiroutes_gateway::Args;
use clap::Parser;

fn main() -> ExitCode {
    Args::parse().run()
}
