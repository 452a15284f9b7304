//! `kubectl-apiroutes`: the `apiroutes` command under the name kubectl looks for on $PATH,
//! so that `kubectl apiroutes import|check|routes ...` works.

use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    apiroutes_cli::Cli::from_env().run().await
}
