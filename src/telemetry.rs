//! Logging: one JSON object per line (or human text) on stderr, each carrying
//! a stable `event` name that people alert on. stdout stays free for command
//! output (`--json`).
//!
//! Convention: `tracing::info!(event = "snapshot.completed", id = %id, …)`.
//! Never log a secret, a password or a raw subject id at info level or above.

pub mod panic;

use crate::config::{LogConfig, LogFormat};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `LETHE_LOG` (a tracing filter) overrides
/// `log.level`. Safe to call once; later calls are ignored.
pub fn init(cfg: &LogConfig) {
    let filter = std::env::var("LETHE_LOG")
        .ok()
        .and_then(|s| EnvFilter::try_new(s).ok())
        .or_else(|| EnvFilter::try_new(&cfg.level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match cfg.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
}
