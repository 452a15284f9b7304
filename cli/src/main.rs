//! `apiroutes`: see the crate docs.

use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    apiroutes_cli::Cli::from_env().run().await
}
