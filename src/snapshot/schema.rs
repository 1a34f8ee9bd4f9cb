//! The schema objects of a snapshot: `pg_dump --section=pre-data` and
//! `post-data` on the exported snapshot, streamed through the object codec
//! into `schema/pre.sql…` and `schema/post.sql…`. An async pump reads
//! pg_dump's output in batches; a blocking writer seals them into one
//! object (the framed channel's `End` rule: no `End`, no object).

use super::stage::{SnapshotError, Stage, guard};
use super::tables::{BATCH, Shared};
use crate::framed::{DEPTH, Frame};
use crate::pg::SourceError;
use crate::pg::dump::{PgDump, Section};
use crate::repo::manifest::ObjectEntry;
use crate::repo::object::ObjectSink;
use std::io::Write;
use std::sync::Arc;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Streams one `pg_dump` section into an object. pg_dump's exit status is
/// checked before the object is finished, so a failed dump never commits.
pub(super) async fn dump_schema(
    pg_dump: &PgDump,
    url: &str,
    snapshot_id: &str,
    section: Section,
    key: String,
    shared: &Arc<Shared>,
    cancel: &CancellationToken,
) -> Result<ObjectEntry, SnapshotError> {
    let src = |e| SnapshotError::source(Stage::Schema, e);
    let mut proc = pg_dump.spawn(url, snapshot_id, section).map_err(src)?;
    let (tx, rx) = mpsc::channel::<Frame>(DEPTH);
    let (sh, k) = (shared.clone(), key.clone());
    let rt = tokio::runtime::Handle::current();
    let writer = tokio::task::spawn_blocking(move || write_stream(rx, &sh, k, &rt));
    let pump = async {
        let Some(out) = proc.stdout() else {
            return Err(src(SourceError::PgDump("pg_dump has no stdout".into())));
        };
        let mut buf = bytes::BytesMut::with_capacity(BATCH);
        loop {
            let n = out.read_buf(&mut buf).await.map_err(|e| {
                src(SourceError::PgDump(format!(
                    "reading pg_dump's output: {e}"
                )))
            })?;
            if n == 0 {
                break;
            }
            if buf.len() >= BATCH {
                if tx.send(Frame::Data(buf.split().freeze())).await.is_err() {
                    return Ok(());
                }
                buf.reserve(BATCH);
            }
        }
        if !buf.is_empty() && tx.send(Frame::Data(buf.freeze())).await.is_err() {
            return Ok(());
        }
        proc.finish().await.map_err(src)?;
        let _ = tx.send(Frame::End).await;
        Ok(())
    };
    let pumped = guard(cancel, Stage::Schema, pump).await;
    drop(tx);
    let written = writer.await.unwrap_or_else(|e| {
        Err(SnapshotError::Internal {
            stage: Stage::Schema,
            message: format!("schema writer panicked: {e}"),
        })
    });
    pumped?;
    written
}

/// The blocking half of a schema object: bytes into an `ObjectSink`.
fn write_stream(
    mut rx: mpsc::Receiver<Frame>,
    shared: &Shared,
    key: String,
    rt: &tokio::runtime::Handle,
) -> Result<ObjectEntry, SnapshotError> {
    let fail = |message: String| SnapshotError::Object {
        stage: Stage::Schema,
        key: key.clone(),
        message,
    };
    let (mut sink, upload) = ObjectSink::create(
        shared.storage.clone(),
        key.clone(),
        &shared.sealer,
        shared.zstd_level,
    )
    .map_err(|e| fail(e.to_string()))?;
    loop {
        match rx.blocking_recv() {
            Some(Frame::Data(b)) => {
                if let Err(e) = sink.write_all(&b) {
                    drop(sink);
                    let why = match rt.block_on(upload) {
                        Ok(Err(se)) => se.to_string(),
                        _ => e.to_string(),
                    };
                    return Err(fail(why));
                }
            }
            Some(Frame::End) => break,
            None => {
                drop(sink);
                let _ = rt.block_on(upload);
                return Err(SnapshotError::Cancelled {
                    stage: Stage::Schema,
                });
            }
        }
    }
    sink.finish(upload, rt).map_err(|e| fail(e.to_string()))
}
