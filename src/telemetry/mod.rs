//! Logging: one JSON object per line (or human text) on stderr, each carrying
//! a stable `event` name that people alert on. stdout stays free for command
//! output (`--json`). `log.format = "auto"` (the default) is text on a
//! terminal and JSON on a pipe, a file or the journal. While a progress
//! display is shown ([`progress`]), log lines are printed above it.
//!
//! Convention: `tracing::info!(event = "snapshot.completed", id = %id, …)`.
//! Never log a secret, a password or a raw subject id at info level or above.

pub mod metrics;
pub mod panic;
pub mod progress;

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Text when stderr is a terminal, JSON otherwise (a pipe, a file, the
    /// journal): the default.
    Auto,
    Json,
    Text,
}

impl LogFormat {
    /// `Auto` resolved against whether stderr is a terminal.
    pub fn resolve(self, stderr_is_terminal: bool) -> LogFormat {
        match self {
            LogFormat::Auto if stderr_is_terminal => LogFormat::Text,
            LogFormat::Auto => LogFormat::Json,
            f => f,
        }
    }
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
            format: LogFormat::Auto,
            level: "info".into(),
        }
    }
}

/// Library messages that are not events, silenced below `error` so every
/// line at the configured level carries an `event`. The S3 SDK warns on each
/// GET of a multipart object that it cannot check the object's composite
/// (part-level) checksum; lethe checks every object itself (BLAKE3 in the
/// manifest, zstd's frame checksum, age's authenticated encryption). The
/// replication crate logs every standby status update (each 30 s) at
/// INFO; its warnings and errors still come through.
const QUIET: &str = "aws_sdk_s3::http_response_checksum=error,pg_walstream=warn";

/// The filter for `log.level`: the level plus [`QUIET`].
fn filter_spec(level: &str) -> String {
    format!("{level},{QUIET}")
}

/// The level names a bare word in `log.level` or `LETHE_LOG` may be.
pub const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];

/// What `log.level` and `LETHE_LOG` accept, for error messages.
pub const VALID_LEVELS: &str = "a level (error, warn, info, debug, trace) or tracing directives \
     such as `lethe=debug` or `info,lethe::snapshot=trace`";

fn is_level(word: &str) -> bool {
    LEVELS.iter().any(|l| l.eq_ignore_ascii_case(word.trim()))
}

/// Checks a log filter (`log.level`, `LETHE_LOG`) strictly: `EnvFilter`
/// takes a mistyped level (`warning`) as a target name and so silences
/// every line. Each comma-separated directive must be a level name, or
/// `target[span{field}]=level` with a level name after the `=`, and parse
/// as a tracing directive.
///
/// # Errors
/// The first directive that is not valid, with why.
pub fn check_level(spec: &str) -> Result<(), String> {
    if spec.trim().is_empty() {
        return Err(format!("is empty; use {VALID_LEVELS}"));
    }
    for d in spec.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let bad = |why: &str| Err(format!("`{d}` {why}; use {VALID_LEVELS}"));
        match d.rsplit_once('=') {
            // `target=level`, not an `=` inside a field filter `[{f=v}]`.
            Some((_, level)) if !level.contains(']') && !is_level(level) => {
                return bad("does not end in a level name");
            }
            Some((_, level)) if !level.contains(']') => {}
            _ if !d.contains('[') && !is_level(d) => {
                return bad("is not a level name");
            }
            _ => {}
        }
        if d.parse::<tracing_subscriber::filter::Directive>().is_err() {
            return bad("is not a valid tracing directive");
        }
    }
    Ok(())
}

/// `LETHE_LOG` is set but not a filter Lethe accepts.
#[derive(Debug, thiserror::Error)]
#[error("LETHE_LOG = {value:?}: {message}; fix or unset LETHE_LOG")]
pub struct LogEnvError {
    pub value: String,
    pub message: String,
}

/// Installs the global subscriber. `LETHE_LOG` (a tracing filter) overrides
/// `log.level` (which config validation has checked). Safe to call once;
/// later calls are ignored.
///
/// # Errors
/// `LETHE_LOG` is set and fails [`check_level`]; nothing is installed then.
pub fn init(cfg: &LogConfig) -> Result<(), LogEnvError> {
    let spec = match std::env::var("LETHE_LOG") {
        Ok(v) => {
            check_level(&v).map_err(|message| LogEnvError {
                value: v.clone(),
                message,
            })?;
            v
        }
        Err(_) => filter_spec(&cfg.level),
    };
    let filter = EnvFilter::try_new(spec).unwrap_or_else(|_| EnvFilter::new(filter_spec("info")));
    let format = cfg
        .format
        .resolve(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let lines = match format {
        LogFormat::Json | LogFormat::Auto => tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_writer(JsonLines(progress::LineWriter::default))
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_writer(progress::LineWriter::default)
            .with_ansi(false)
            .boxed(),
    };
    // The log lines (and their count) pass `log.level`; the metrics see
    // every lethe event down to DEBUG, whatever the level.
    let metrics_filter =
        tracing_subscriber::filter::Targets::new().with_target("lethe", tracing::Level::DEBUG);
    let _ = tracing_subscriber::registry()
        .with(lines.and_then(Counted).with_filter(filter))
        .with(metrics::MetricsLayer.with_filter(metrics_filter))
        .try_init();
    Ok(())
}

/// Lines logged so far, per level (ERROR, WARN, INFO, DEBUG, TRACE), counted
/// after the filter: what reached stderr.
static LOGGED: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];

fn level_index(level: tracing::Level) -> usize {
    match level {
        tracing::Level::ERROR => 0,
        tracing::Level::WARN => 1,
        tracing::Level::INFO => 2,
        tracing::Level::DEBUG => 3,
        tracing::Level::TRACE => 4,
    }
}

/// Counts each event the filter let through (it sees only those) in
/// [`LOGGED`].
struct Counted;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Counted {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        LOGGED[level_index(*event.metadata().level())].fetch_add(1, Ordering::Relaxed);
    }
}

/// Where the log stood at one moment: whether an event logged after it
/// (by this code or by the library it called) reached stderr. A command
/// uses it to print an error only when no logged event already showed it
/// (`log.level = "off"`, or a failure before logging was set up).
#[derive(Debug, Clone, Copy)]
pub struct LogMark([u64; 5]);

impl LogMark {
    pub fn now() -> LogMark {
        LogMark(LOGGED.each_ref().map(|c| c.load(Ordering::Relaxed)))
    }

    /// Whether a line at `level` was logged since the mark.
    pub fn logged_since(&self, level: tracing::Level) -> bool {
        let i = level_index(level);
        LOGGED[i].load(Ordering::Relaxed) > self.0[i]
    }
}

/// Fields logged as a JSON-encoded string (tracing records a map only as
/// text) that the JSON log line carries as an object.
pub const OBJECT_FIELDS: [&str; 5] = [
    "rows_dropped_by_table",
    "rows_nulled_by_table",
    "rows_redacted_by_table",
    "rows_kept_by_table",
    "policies",
];

/// The `event` of a line logged by another crate (the S3 SDK, hyper…)
/// without one; the line also carries that crate's `target`.
pub const SDK_EVENT: &str = "sdk.log";

/// Makes one [`ObjectFields`] per event, told whether the event comes from
/// another crate without an `event` field of its own; `O` opens where the
/// line goes (stderr; a buffer in tests).
struct JsonLines<O>(O);

impl<'a, O, W> tracing_subscriber::fmt::MakeWriter<'a> for JsonLines<O>
where
    O: Fn() -> W + 'a,
    W: std::io::Write,
{
    type Writer = ObjectFields<W>;

    fn make_writer(&'a self) -> ObjectFields<W> {
        ObjectFields {
            line: Vec::new(),
            foreign_target: None,
            out: (self.0)(),
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> ObjectFields<W> {
        ObjectFields {
            line: Vec::new(),
            foreign_target: foreign_target(meta.target(), meta.fields().field("event").is_some()),
            out: (self.0)(),
        }
    }
}

/// `Some(target)` for a line of another crate that has no `event`: it is
/// given [`SDK_EVENT`] and its target. Lethe's own lines are left alone.
fn foreign_target(target: &str, has_event: bool) -> Option<String> {
    let ours = target == "lethe" || target.starts_with("lethe::");
    (!has_event && !ours).then(|| target.to_string())
}

/// The JSON formatter writes each event whole into one writer; this one
/// turns the [`OBJECT_FIELDS`] it holds from strings into objects, adds
/// `event` and `target` to another crate's line, then writes the line to
/// stderr.
struct ObjectFields<W: std::io::Write> {
    line: Vec<u8>,
    foreign_target: Option<String>,
    out: W,
}

impl<W: std::io::Write> std::io::Write for ObjectFields<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<W: std::io::Write> Drop for ObjectFields<W> {
    fn drop(&mut self) {
        let mut line = std::mem::take(&mut self.line);
        if let Some(target) = &self.foreign_target {
            line = with_sdk_event(line, target);
        }
        let _ = self.out.write_all(&objects_in_line(line));
    }
}

/// `line` (a JSON object) with `"event":"sdk.log","target":…` first, so
/// every line has an `event`; anything that is not an object unchanged.
fn with_sdk_event(line: Vec<u8>, target: &str) -> Vec<u8> {
    if line.first() != Some(&b'{') {
        return line;
    }
    let target = serde_json::to_string(target).unwrap_or_else(|_| "\"\"".into());
    let mut out = format!("{{\"event\":\"{SDK_EVENT}\",\"target\":{target}").into_bytes();
    if line.get(1) != Some(&b'}') {
        out.push(b',');
    }
    out.extend_from_slice(&line[1..]);
    out
}

/// `line` with each of [`OBJECT_FIELDS`] that holds a JSON object encoded
/// as a string replaced by the object; anything else unchanged.
fn objects_in_line(line: Vec<u8>) -> Vec<u8> {
    let fields = OBJECT_FIELDS.map(|f| format!("\"{f}\":\"{{"));
    if !fields
        .iter()
        .any(|f| line.windows(f.len()).any(|w| w == f.as_bytes()))
    {
        return line;
    }
    let Ok(serde_json::Value::Object(mut v)) = serde_json::from_slice(&line) else {
        return line;
    };
    for f in OBJECT_FIELDS {
        if let Some(serde_json::Value::String(s)) = v.get(f)
            && let Ok(o @ serde_json::Value::Object(_)) = serde_json::from_str(s)
        {
            v.insert(f.to_string(), o);
        }
    }
    let mut out = serde_json::to_vec(&v).unwrap_or_default();
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests;
