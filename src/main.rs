//! The `sidebus` binary: parse flags, wire the runtime, run.
#![forbid(unsafe_code)]

use clap::Parser;

fn main() {
    let _cli = sidebus::config::Cli::parse();
}
