//! A progress display on a terminal (`indicatif`), and the one way log
//! lines reach stderr while it is shown: each line is written with the bar
//! cleared and redrawn after it ([`write_stderr`]), so a log line never
//! lands in the middle of the bar.
//!
//! At most one display is active at a time (`lethe snapshot`, `lethe
//! restore`). When stderr is not a terminal, [`Display::new`] returns `None`
//! and nothing but log lines is written.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

/// `lethe restore`: bytes of the snapshot read of its total, tables done,
/// the tables being read (in the message).
pub const RESTORE_TEMPLATE: &str = "{spinner} restore {percent:>3}% [{bar:20}] {bytes}/{total_bytes} \
     · ETA {eta}\n  {bytes_per_sec} · {wide_msg}";

/// `lethe restore --at`, pass A: bytes of the change stream replayed of
/// its total; the commit time reached and transactions in the message.
pub const REPLAY_TEMPLATE: &str = "{spinner} replay {percent:>3}% [{bar:20}] {bytes}/{total_bytes} \
     · ETA {eta}\n  {wide_msg}";

/// `lethe snapshot`: tables done of the total, its stage (prefix); rows,
/// bytes and rate in the message (the bytes to come are not known).
pub const SNAPSHOT_TEMPLATE: &str =
    "{spinner} snapshot {prefix}: {pos}/{len} tables [{bar:20}] {elapsed}\n  {wide_msg}";

/// The bar on screen, if any: log writers suspend it around each line.
static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

fn active() -> Option<ProgressBar> {
    ACTIVE.lock().ok().and_then(|a| a.clone())
}

/// Writes `buf` (whole lines) to stderr, above the progress display when
/// one is shown.
pub fn write_stderr(buf: &[u8]) {
    let write = || {
        let mut e = std::io::stderr().lock();
        let _ = e.write_all(buf);
        let _ = e.flush();
    };
    match active() {
        Some(bar) => bar.suspend(write),
        None => write(),
    }
}

/// A progress display on stderr, registered so log lines print above it.
/// Dropping it leaves its last state on screen (where the work stopped)
/// and unregisters it.
pub struct Display {
    bar: ProgressBar,
}

impl Display {
    /// A display with `template` (indicatif's syntax) and `len` units of
    /// work, redrawn a few times a second; `None` when stderr is not a
    /// terminal (or the template is invalid, which a test rules out).
    pub fn new(template: &str, len: u64) -> Option<Display> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let style = ProgressStyle::with_template(template)
            .ok()?
            .progress_chars("=> ");
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr_with_hz(4))
            .with_style(style);
        bar.enable_steady_tick(Duration::from_millis(250));
        if let Ok(mut a) = ACTIVE.lock() {
            *a = Some(bar.clone());
        }
        Some(Display { bar })
    }

    /// The bar, to update its position, length, prefix and message.
    pub fn bar(&self) -> &ProgressBar {
        &self.bar
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        if let Ok(mut a) = ACTIVE.lock() {
            *a = None;
        }
        self.bar.abandon();
        // The cursor stays at the end of the bar's last line: later output
        // starts on a line of its own.
        let mut e = std::io::stderr().lock();
        let _ = e.write_all(b"\n");
        let _ = e.flush();
    }
}

/// A log line's bytes, buffered, written by [`write_stderr`] when dropped
/// (the formatter writes each event whole into one writer).
#[derive(Default)]
pub(crate) struct LineWriter(pub(crate) Vec<u8>);

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        write_stderr(&std::mem::take(&mut self.0));
    }
}

#[cfg(test)]
#[path = "progress_tests.rs"]
mod tests;
