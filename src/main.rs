//! The `lethe` binary: parse the command line, run, map errors to exit codes.

use clap::Parser;

fn main() {
    // Panics become one redacted `process.panicked` event, never raw text.
    lethe::telemetry::panic::install();
    let cli = lethe::cli::Cli::parse();
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
        let result = lethe::commands::run(cli).await;
        // Let aborts of cancelled multipart uploads finish before the runtime
        // goes; what they miss, the next cleanup and the lifecycle rule remove.
        lethe::storage::s3::finish_aborts(std::time::Duration::from_secs(10)).await;
        result
    }) {
        Ok(code) => code,
        Err(e) => {
            let usage = e.downcast_ref::<lethe::commands::UsageError>().is_some();
            // A panicked task's message travels in its JoinError: redact it.
            let text = format!("{e:#}");
            if text.contains("panicked") {
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
