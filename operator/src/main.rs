use std::process::ExitCode;

use apiroutes_operator::run::Args;
use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    match Args::parse().run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("apiroutes-operator: {e}");
            ExitCode::FAILURE
        }
    }
}
