//! From the slot to the writer: the receiver hands the writer a
//! transaction's frames at once, reads a sparse stream a few transactions
//! at a time, and a ticker wakes the writer to close a segment when due.
//! Each wake-up of the writer's thread or of the runtime cost more CPU
//! than the frame it carried (BENCHMARKS, capture CPU).

use super::writer::Input;
use crate::pg::replication::{Change, Frame, ReplicationConn, ReplicationFailure};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The least time between two ticks (an overdue segment held open by a
/// long transaction must not make the ticker spin), and the shortest idle
/// interval.
const TICK: Duration = Duration::from_millis(100);
/// The longest idle interval. With nothing due the writer is woken every
/// fifth of `flush_every`, clamped to [`TICK`]..=this: idle, it only has
/// reads of the schema to run, every `flush_every`; a segment's first
/// commit is seen by the writer itself, and its segment is due almost
/// `flush_every` later, so the ticker sees the instant in time and sleeps
/// until it.
const IDLE_TICK: Duration = Duration::from_secs(1);
/// Frames handed to the writer at once, at most: a transaction's frames
/// arrive together (pgoutput sends a transaction after its commit), and
/// one hand-off per transaction instead of per frame cut the daemon's CPU
/// (BENCHMARKS, capture CPU): waking the writer's thread was most of it.
const BATCH: usize = 64;
/// After a transaction the receiver had to wait for, the next read waits
/// this long, so that a sparse stream's transactions are read a few at a
/// time rather than each waking the daemon twice (the socket, then the
/// writer): far inside `flush_every`, and a busy stream (frames already
/// buffered) never waits.
const COALESCE: Duration = Duration::from_millis(200);
/// A read that took this long waited for the server.
const SPARSE: Duration = Duration::from_millis(1);
/// Batches in flight between receiver and writer: at most `CHANNEL *
/// BATCH` (1,024) frames, as when frames went one by one.
pub const CHANNEL: usize = 16;

/// Reads frames until `stop` or an error and hands them to the writer in
/// [`Batch`]es; ends the stream.
///
/// # Errors
/// The stream failed (not a cancellation).
pub async fn frames(
    mut rconn: ReplicationConn,
    tx: mpsc::Sender<Input>,
    stop: CancellationToken,
) -> Result<(), ReplicationFailure> {
    let mut batch = Batch::default();
    // A frame of this batch was waited for: the stream is sparse.
    let mut waited = false;
    let r = loop {
        let asked = Instant::now();
        match rconn.next(&stop).await {
            Ok(f) => {
                waited |= asked.elapsed() >= SPARSE;
                let Some(frames) = batch.push(f) else {
                    continue;
                };
                if tx.send(Input::Frames(frames)).await.is_err() {
                    break Ok(());
                }
                if std::mem::take(&mut waited) {
                    tokio::select! {
                        () = stop.cancelled() => {}
                        () = tokio::time::sleep(COALESCE) => {}
                    }
                }
            }
            // Frames still batched are of a transaction not yet committed
            // in the stream: the writer would not store them, and the
            // server sends them again.
            Err(ReplicationFailure::Cancelled { .. }) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    rconn.close().await;
    r
}

/// The instant the writer's open segment is due, if it has one: written by
/// the writer, read by the ticker.
pub struct Due {
    since: Instant,
    /// Microseconds after `since`, plus one; 0 when nothing is due.
    micros: AtomicU64,
}

impl Default for Due {
    fn default() -> Self {
        Due {
            since: Instant::now(),
            micros: AtomicU64::new(0),
        }
    }
}

impl Due {
    pub fn set(&self, due: Option<Instant>) {
        let v = due.map_or(0, |d| {
            u64::try_from(d.saturating_duration_since(self.since).as_micros())
                .unwrap_or(u64::MAX - 1)
                + 1
        });
        self.micros.store(v, Ordering::Relaxed);
    }

    pub fn get(&self) -> Option<Instant> {
        match self.micros.load(Ordering::Relaxed) {
            0 => None,
            v => Some(self.since + Duration::from_micros(v - 1)),
        }
    }
}

/// When the ticker wakes next: at the due instant, but not sooner than
/// [`TICK`] after its last tick (a segment stays due while a long
/// transaction is open, and must not make the ticker spin); after `idle`
/// if that is sooner or nothing is due (a segment opened meanwhile is seen
/// then, still well before it is due). Never before `now`.
pub(super) fn next_tick(
    now: Instant,
    due: Option<Instant>,
    last: Option<Instant>,
    idle: Duration,
) -> Instant {
    let idle = now + idle;
    let Some(due) = due else { return idle };
    let due = last.map_or(due, |l| due.max(l + TICK));
    due.clamp(now, idle)
}

/// Wakes the writer when its open segment is due, and every fifth of
/// `flush_every` (at least [`TICK`], at most [`IDLE_TICK`]) otherwise.
pub async fn ticks(
    tx: mpsc::Sender<Input>,
    due: Arc<Due>,
    flush_every: Duration,
    stop: CancellationToken,
) {
    let idle = (flush_every / 5).clamp(TICK, IDLE_TICK);
    let mut last = None;
    loop {
        let wake = next_tick(Instant::now(), due.get(), last, idle);
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep_until(wake.into()) => {
                last = Some(Instant::now());
                if tx.send(Input::Tick).await.is_err() {
                    break;
                }
            }
        }
    }
}

/// Frames gathered for one hand-off to the writer: a transaction's (or
/// [`BATCH`] of a long one's), and every frame between transactions (a
/// heartbeat, a keepalive's message) on its own, so nothing that moves
/// the head or closes a segment waits.
#[derive(Default)]
struct Batch {
    frames: Vec<Frame>,
    in_txn: bool,
}

impl Batch {
    /// Adds `f`; the frames to hand over now, if any.
    fn push(&mut self, f: Frame) -> Option<Vec<Frame>> {
        match f.change {
            Change::Begin { .. } => self.in_txn = true,
            Change::Commit { .. } => self.in_txn = false,
            _ => {}
        }
        self.frames.push(f);
        (!self.in_txn || self.frames.len() >= BATCH)
            .then(|| std::mem::replace(&mut self.frames, Vec::with_capacity(BATCH)))
    }
}

#[cfg(test)]
#[path = "receive_tests.rs"]
mod tests;
