//! apiroutes-node-agent: a kubelet for one local Node (see `agent.rs`).

mod agent;
mod command;
mod env;
mod error;
mod imagemap;
mod ipam;
mod netns;
mod node;
mod pods;
mod probe;
mod relay;
mod status;
mod token;

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match agent::Args::parse().run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("apiroutes-node-agent: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
