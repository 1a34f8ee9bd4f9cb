//! The schema objects of a snapshot: `pg_dump --section=pre-data` and
//! `post-data` on the exported snapshot, streamed through the object codec
//! into `schema/pre.sql…` and `schema/post.sql…`, through the snapshot's
//! one pump (`stream`): pg_dump's exit status is checked before `End`.

use super::stage::{SnapshotError, Stage};
use super::stream::{BATCH, pump_to_blocking};
use super::tables::Shared;
use crate::framed::Frame;
use crate::pg::SourceError;
use crate::pg::ddl_capture::PostDataCut;
use crate::pg::dump::{PgDump, Section};
use crate::repo::manifest::ObjectEntry;
use crate::repo::object::ObjectSink;
use futures::StreamExt;
use std::io::Write;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::io::ReaderStream;
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
    let Some(out) = proc.take_stdout() else {
        return Err(src(SourceError::PgDump("pg_dump has no stdout".into())));
    };
    let source = ReaderStream::with_capacity(out, BATCH).map(move |r| {
        r.map_err(|e| {
            SnapshotError::source(
                Stage::Schema,
                SourceError::PgDump(format!("reading pg_dump's output: {e}")),
            )
        })
    });
    let (sh, k) = (shared.clone(), key.clone());
    let rt = tokio::runtime::Handle::current();
    // lethe's event triggers are post-data entries pg_dump cannot leave out.
    let cut = matches!(section, Section::PostData).then(PostDataCut::default);
    pump_to_blocking(
        Stage::Schema,
        cancel,
        source,
        async move { proc.finish().await.map_err(src) },
        move |rx| write_stream(rx, &sh, k, &rt, cut),
        "schema writer",
    )
    .await
}

/// The blocking half of a schema object: bytes into an `ObjectSink`.
fn write_stream(
    mut rx: mpsc::Receiver<Frame>,
    shared: &Shared,
    key: String,
    rt: &tokio::runtime::Handle,
    mut cut: Option<PostDataCut>,
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
                let kept = cut.as_mut().map(|c| c.push(&b));
                if let Err(e) = sink.write_all(kept.as_deref().unwrap_or(&b)) {
                    drop(sink);
                    let why = match rt.block_on(upload) {
                        Ok(Err(se)) => se.to_string(),
                        _ => e.to_string(),
                    };
                    return Err(fail(why));
                }
            }
            Some(Frame::End) => {
                let last = cut.as_mut().map(PostDataCut::finish).unwrap_or_default();
                if let Err(e) = sink.write_all(&last) {
                    drop(sink);
                    let _ = rt.block_on(upload);
                    return Err(fail(e.to_string()));
                }
                break;
            }
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
