//! The one pump of a snapshot: an async byte source, cut into frames of
//! [`BATCH`] bytes, through the framed channel to a writer on a blocking
//! thread (zstd, age and hashing are CPU work and stay off the runtime).
//! The schema objects and every table go through it.
//!
//! The `End` rule: the writer commits only after `End`, and `End` is sent
//! only after the source is exhausted and `before_end` has succeeded (for
//! `pg_dump`: its exit status). A source error, a cancellation or a failed
//! `before_end` closes the channel without `End`, and nothing is committed.

use super::stage::{SnapshotError, Stage, guard};
use crate::framed::{DEPTH, Frame};
use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Bytes per frame from a pump to its writer.
pub(crate) const BATCH: usize = 256 * 1024;

/// Pumps `source` into `writer`, run on the blocking pool, and returns what
/// the writer returns. `what` names the writer in the message of a panic.
///
/// # Errors
/// The source's, `before_end`'s or the writer's error; `Cancelled` at
/// `stage` when `cancel` fires first.
pub(super) async fn pump_to_blocking<T, S, E, W>(
    stage: Stage,
    cancel: &CancellationToken,
    source: S,
    before_end: E,
    writer: W,
    what: &str,
) -> Result<T, SnapshotError>
where
    T: Send + 'static,
    S: Stream<Item = Result<Bytes, SnapshotError>>,
    E: Future<Output = Result<(), SnapshotError>>,
    W: FnOnce(mpsc::Receiver<Frame>) -> Result<T, SnapshotError> + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<Frame>(DEPTH);
    let writer = tokio::task::spawn_blocking(move || writer(rx));
    let pump = async {
        futures::pin_mut!(source);
        let mut batch = BytesMut::with_capacity(BATCH);
        while let Some(item) = source.next().await {
            batch.extend_from_slice(&item?);
            if batch.len() >= BATCH && tx.send(Frame::Data(batch.split().freeze())).await.is_err() {
                return Ok(()); // the writer failed; its error is reported below
            }
        }
        if !batch.is_empty() && tx.send(Frame::Data(batch.freeze())).await.is_err() {
            return Ok(());
        }
        before_end.await?;
        let _ = tx.send(Frame::End).await;
        Ok(())
    };
    let pumped = guard(cancel, stage, pump).await;
    drop(tx);
    let written = writer.await.unwrap_or_else(|e| {
        Err(SnapshotError::Internal {
            stage,
            message: format!("{what} panicked: {e}"),
        })
    });
    pumped?;
    written
}
