//! Test-only pause points, so crash tests can `kill -9` a snapshot at a
//! known instant instead of racing it.
//!
//! With `LETHE_TEST_PAUSE_AT=<stage>` the snapshot prints
//! `lethe-test-pause: <stage>` on stderr when it reaches that point and then
//! sleeps for an hour (the test kills it). Stages:
//! - `schema`: `pre.sql` is stored, `post.sql` not yet;
//! - `data`: mid-table: the first table's first object has received at
//!   least `LETHE_TEST_PAUSE_BYTES` raw bytes (default 1 MiB, or the whole
//!   table if smaller), is flushed into its upload and not finished;
//! - `manifest`: every object is stored, the manifest is not written;
//! - `restore`: a restore has committed its first table into the target;
//! - `restore_data`: a restore is mid-table: its first table read has
//!   returned its first bytes (the progress display shows that table).
//!
//! `LETHE_TEST_PAUSE_SECS` (default 3600) shortens the pause, for a test
//! that lets the process go on afterwards.
//!
//! Compiled in only with the `test-hooks` feature (test builds); in every
//! other build `armed` is a constant `false` and the points vanish. It
//! never changes what is written.

use crate::storage::Storage;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const VAR: &str = "LETHE_TEST_PAUSE_AT";
static FIRED: AtomicBool = AtomicBool::new(false);

/// True when the pause point `stage` is armed and has not fired yet.
pub(crate) fn armed(stage: &str) -> bool {
    cfg!(feature = "test-hooks")
        && !FIRED.load(Ordering::Relaxed)
        && std::env::var(VAR).is_ok_and(|v| v == stage)
}

/// A number a test sets to shorten a wait or slow a step
/// (`LETHE_TEST_POLL_MS`, `LETHE_TEST_BASE_EVERY_SECS`, …); `None` unless
/// built with the `test-hooks` feature and set to a number.
pub(crate) fn number(var: &str) -> Option<u64> {
    if !cfg!(feature = "test-hooks") {
        return None;
    }
    std::env::var(var).ok().and_then(|v| v.parse().ok())
}

/// Raw bytes after which the `data` pause fires.
pub(crate) fn data_bytes() -> u64 {
    std::env::var("LETHE_TEST_PAUSE_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 20)
}

/// Before the `data` pause: waits (up to a minute) until storage lists the
/// upload of `key` as unfinished, so a kill at the pause always finds one.
/// The upload runs in its own task and creates its temp file or multipart
/// upload a moment after the bytes were handed over; without this wait a
/// test on a loaded machine could kill the process before that moment.
pub(crate) fn wait_for_upload(storage: &dyn Storage, rt: &tokio::runtime::Handle, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match rt.block_on(storage.list_incomplete(key)) {
            Ok(uploads) if uploads.iter().any(|u| u.key == key) => return,
            Ok(_) => {}
            Err(e) => eprintln!("lethe-test-pause: listing unfinished uploads failed: {e}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("lethe-test-pause: the upload of {key} did not show up within 60 s");
}

/// How long a pause lasts (`LETHE_TEST_PAUSE_SECS`, default an hour).
fn pause_for() -> Duration {
    Duration::from_secs(
        std::env::var("LETHE_TEST_PAUSE_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3600),
    )
}

/// The line a test waits for, above a progress display if one is shown.
fn announce(stage: &str) {
    crate::telemetry::progress::write_stderr(format!("lethe-test-pause: {stage}\n").as_bytes());
}

/// Pauses a blocking thread at `stage` if armed (fires once per process).
pub(crate) fn blocking(stage: &str) {
    if armed(stage) && !FIRED.swap(true, Ordering::SeqCst) {
        announce(stage);
        std::thread::sleep(pause_for());
    }
}

/// Pauses an async task at `stage` if armed (fires once per process).
pub(crate) async fn at(stage: &str) {
    if armed(stage) && !FIRED.swap(true, Ordering::SeqCst) {
        announce(stage);
        tokio::time::sleep(pause_for()).await;
    }
}
