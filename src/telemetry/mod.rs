//! Logging: one JSON object per line (or human text) on stderr, each carrying
//! a stable `event` name that people alert on. stdout stays free for command
//! output (`--json`).
//!
//! Convention: `tracing::info!(event = "snapshot.completed", id = %id, …)`.
//! Never log a secret, a password or a raw subject id at info level or above.

pub mod panic;

use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// tracing filter directive, e.g. `info` or `lethe=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Json,
            level: "info".into(),
        }
    }
}

/// Library messages that are not events, silenced below `error` so every
/// line at the configured level carries an `event`. The S3 SDK warns on each
/// GET of a multipart object that it cannot check the object's composite
/// (part-level) checksum; lethe checks every object itself (BLAKE3 in the
/// manifest, zstd's frame checksum, age's authenticated encryption).
const QUIET: &str = "aws_sdk_s3::http_response_checksum=error";

/// The filter for `log.level`: the level plus [`QUIET`].
fn filter_spec(level: &str) -> String {
    format!("{level},{QUIET}")
}

/// Installs the global subscriber. `LETHE_LOG` (a tracing filter) overrides
/// `log.level`. Safe to call once; later calls are ignored.
pub fn init(cfg: &LogConfig) {
    let filter = std::env::var("LETHE_LOG")
        .ok()
        .and_then(|s| EnvFilter::try_new(s).ok())
        .or_else(|| EnvFilter::try_new(filter_spec(&cfg.level)).ok())
        .unwrap_or_else(|| EnvFilter::new(filter_spec("info")));
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

#[cfg(test)]
mod tests;
