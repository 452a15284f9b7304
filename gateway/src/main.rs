//! `apiroutes-gateway`: see the library docs and `--help`.

use std::process::ExitCode;

use apiroutes_gateway::Args;
use clap::Parser;

/// mimalloc instead of glibc's malloc: hyper frees and re-allocates its 8 KiB read buffers
/// on every request, about 5 % of the gateway's CPU under glibc (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    Args::parse().run()
}
