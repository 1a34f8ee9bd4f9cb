//! The `lethe` binary: parse the command line, run, map errors to exit codes.
//!
//! The command line (`cli`) and one module per verb (`commands`) live in the
//! binary; everything they call is the `lethe` library. `anyhow` is used
//! here and nowhere in the library, whose errors are typed.

mod cli;
mod commands;

// The library's modules, under the names the commands use (`crate::config`).
use lethe::{
    capture, config, continuous, crypto, daemon, erasure, exit, pg, repo, restore, retention,
    shutdown, snapshot, storage, telemetry, units,
};

use clap::Parser;

fn main() {
    // Panics become one redacted `process.panicked` event, never raw text.
    lethe::telemetry::panic::install();
    let cli = cli::Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lethe: cannot start the async runtime: {e}");
            std::process::exit(lethe::exit::FAILURE);
        }
    };
    let code = match rt.block_on(async {
        let result = commands::run(cli).await;
        // Let aborts of cancelled multipart uploads finish before the runtime
        // goes; what they miss, the next cleanup and the lifecycle rule remove.
        lethe::storage::finish_background(std::time::Duration::from_secs(10)).await;
        result
    }) {
        Ok(code) => code,
        Err(e) => {
            // An error its logged event already showed is not printed again.
            let (e, shown) = match e.downcast::<commands::Reported>() {
                Ok(commands::Reported(inner)) => (inner, true),
                Err(e) => (e, false),
            };
            let usage = e.downcast_ref::<commands::UsageError>().is_some();
            // A panicked task's message travels in its JoinError: redact it.
            // Typed where the JoinError is still in the chain; by its text
            // too, as many joins keep only `format!("…: {join_error}")`.
            let text = format!("{e:#}");
            let panicked = e.chain().any(|c| {
                c.downcast_ref::<tokio::task::JoinError>()
                    .is_some_and(tokio::task::JoinError::is_panic)
            });
            if shown {
                // Said once, in the event.
            } else if panicked || text.contains("panicked") {
                eprintln!("lethe: error: {}", lethe::telemetry::panic::redact(&text));
            } else {
                eprintln!("lethe: error: {text}");
            }
            if usage {
                lethe::exit::USAGE
            } else {
                lethe::exit::FAILURE
            }
        }
    };
    std::process::exit(code);
}
