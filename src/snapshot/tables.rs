//! The data half of a snapshot: `source.jobs` workers copy tables (largest
//! first) out of the shared snapshot. Per table, an async pump reads the
//! COPY stream and hands ~256 KiB batches over a bounded channel to a
//! blocking writer that counts rows, cuts objects at row boundaries and
//! feeds `ObjectSink` (zstd → age → upload). Memory per worker is a few
//! batches plus the sink's buffers, whatever the table size.

use super::pause;
use super::stage::{Progress, SnapshotError, Stage};
use super::stream::pump_to_blocking;
use crate::copytext::escape::decoded;
use crate::copytext::rows::{self, Rows};
use crate::crypto::Sealer;
use crate::erasure::config::SubjectType;
use crate::erasure::{ErasureSet, key_of};
use crate::framed::Frame;
use crate::pg::{CopyWorker, SourceTable};
use crate::repo::layout as repo;
use crate::repo::manifest::{ObjectEntry, SnapshotId, TableEntry};
use crate::repo::object::ObjectSink;
use crate::storage::{ObjectMeta, Storage, StorageError};
use futures::StreamExt;
use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

/// Everything the writers share.
pub(crate) struct Shared {
    pub storage: Arc<dyn Storage>,
    pub sealer: Sealer,
    pub zstd_level: i32,
    pub object_bytes: u64,
    pub id: SnapshotId,
    pub progress: Arc<Progress>,
}

/// A root table's subject column, scanned for rows of erased subjects.
#[derive(Clone)]
pub(crate) struct LeakProbe {
    pub column: String,
    pub col: usize,
    pub set: Arc<dyn ErasureSet>,
    pub subject_type: SubjectType,
    /// The root's named subject (`erasure::subject::subject_key`).
    pub subject: Option<String>,
}

/// One table to copy; `n` numbers it in the manifest's order (from 1).
pub(crate) struct Job {
    pub n: usize,
    pub table: SourceTable,
    pub leak: Option<LeakProbe>,
}

/// A copied table.
pub(crate) struct Copied {
    pub n: usize,
    pub entry: TableEntry,
    /// `(column, rows of listed subjects)` for root tables.
    pub leak: Option<(String, u64)>,
}

/// Copies every job with `workers` connections; the first failure cancels
/// the others, and every task is awaited before returning.
///
/// # Errors
/// The first failure (a cancellation by the caller wins over the errors it
/// causes in the workers).
pub(crate) async fn copy_all(
    url: &str,
    snapshot_id: &str,
    mut jobs: Vec<Job>,
    workers: usize,
    shared: Arc<Shared>,
    cancel: &CancellationToken,
) -> Result<Vec<Copied>, SnapshotError> {
    jobs.sort_by(|a, b| b.table.size.cmp(&a.table.size).then(a.n.cmp(&b.n)));
    let n_workers = workers.clamp(1, jobs.len().max(1));
    let queue = Arc::new(Mutex::new(VecDeque::from(jobs)));
    let stop = cancel.child_token();
    let mut set = JoinSet::new();
    for _ in 0..n_workers {
        let (url, snap, queue, shared, stop) = (
            url.to_string(),
            snapshot_id.to_string(),
            queue.clone(),
            shared.clone(),
            stop.clone(),
        );
        set.spawn(async move { worker_loop(&url, &snap, &queue, &shared, &stop).await });
    }
    let mut done = Vec::new();
    let mut first_err: Option<SnapshotError> = None;
    while let Some(joined) = set.join_next().await {
        let result = joined.unwrap_or_else(|e| {
            Err(SnapshotError::Internal {
                stage: Stage::Data,
                message: format!("a COPY worker panicked: {e}"),
            })
        });
        match result {
            Ok(mut v) => done.append(&mut v),
            Err(e) => {
                stop.cancel();
                let replace = match &first_err {
                    None => true,
                    Some(prev) => prev.is_cancelled() && !e.is_cancelled(),
                };
                if replace {
                    first_err = Some(e);
                }
            }
        }
    }
    if cancel.is_cancelled() {
        return Err(SnapshotError::Cancelled { stage: Stage::Data });
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(done),
    }
}

async fn worker_loop(
    url: &str,
    snapshot_id: &str,
    queue: &Mutex<VecDeque<Job>>,
    shared: &Arc<Shared>,
    cancel: &CancellationToken,
) -> Result<Vec<Copied>, SnapshotError> {
    let worker = tokio::select! {
        biased;
        _ = cancel.cancelled() => return Err(SnapshotError::Cancelled { stage: Stage::Data }),
        w = CopyWorker::open(url, snapshot_id) => w.map_err(|e| SnapshotError::source(Stage::Data, e))?,
    };
    let mut done = Vec::new();
    loop {
        let job = match queue.lock() {
            Ok(mut q) => q.pop_front(),
            Err(_) => None,
        };
        let Some(job) = job else { break };
        // On error the worker is dropped, not closed: that aborts its
        // connection (and any COPY still streaming) instead of draining it.
        done.push(copy_table(&worker, job, shared, cancel).await?);
    }
    worker.close().await;
    Ok(done)
}

async fn copy_table(
    worker: &CopyWorker,
    job: Job,
    shared: &Arc<Shared>,
    cancel: &CancellationToken,
) -> Result<Copied, SnapshotError> {
    let qualified = job.table.qualified();
    let stream = tokio::select! {
        biased;
        _ = cancel.cancelled() => return Err(SnapshotError::Cancelled { stage: Stage::Data }),
        s = worker.copy_out(&job.table) => s.map_err(|e| SnapshotError::source(Stage::Data, e))?,
    };
    let writer = TableWriter::new(job, shared.clone(), Handle::current());
    let source = stream.map(|item| {
        item.map_err(|e| SnapshotError::source(Stage::Data, copy_error(&qualified, &e)))
    });
    pump_to_blocking(
        Stage::Data,
        cancel,
        source,
        async { Ok(()) },
        move |rx| writer.run(rx),
        &format!("the writer of {qualified}"),
    )
    .await
}

fn copy_error(table: &str, e: &tokio_postgres::Error) -> crate::pg::SourceError {
    crate::pg::SourceError::Copy {
        table: table.to_string(),
        message: crate::pg::pg_message(e),
    }
}

type Upload = JoinHandle<Result<ObjectMeta, StorageError>>;

/// The blocking half of one table's copy.
struct TableWriter {
    job: Job,
    shared: Arc<Shared>,
    rt: Handle,
    cur: Option<(ObjectSink, Upload)>,
    objects: Vec<ObjectEntry>,
    /// The last byte written ended a row (or nothing was written yet).
    at_row_start: bool,
    leak: Option<LeakCounter>,
}

impl TableWriter {
    fn new(job: Job, shared: Arc<Shared>, rt: Handle) -> TableWriter {
        let leak = job.leak.clone().map(LeakCounter::new);
        TableWriter {
            job,
            shared,
            rt,
            cur: None,
            objects: Vec::new(),
            at_row_start: true,
            leak,
        }
    }

    fn run(mut self, mut rx: mpsc::Receiver<Frame>) -> Result<Copied, SnapshotError> {
        loop {
            match rx.blocking_recv() {
                Some(Frame::Data(b)) => {
                    if let Err(e) = self.write(&b) {
                        self.abandon();
                        return Err(e);
                    }
                }
                Some(Frame::End) => break,
                None => {
                    self.abandon();
                    return Err(SnapshotError::Cancelled { stage: Stage::Data });
                }
            }
        }
        if !self.at_row_start {
            let key = self
                .cur
                .as_ref()
                .map(|(s, _)| s.key().to_string())
                .unwrap_or_default();
            self.abandon();
            return Err(SnapshotError::Object {
                stage: Stage::Data,
                key,
                message: format!(
                    "the COPY stream of {} ended inside a row",
                    self.job.table.qualified()
                ),
            });
        }
        if self.cur.is_none() && self.objects.is_empty() {
            self.open()?; // an empty table still gets one (empty) object
        }
        self.maybe_pause(true);
        self.finish_current()?;
        let t = &self.job.table;
        let rows = self.objects.iter().map(|o| o.rows).sum();
        let raw_bytes = self.objects.iter().map(|o| o.raw_size).sum();
        self.shared
            .progress
            .tables_done
            .fetch_add(1, Ordering::Relaxed);
        Ok(Copied {
            n: self.job.n,
            leak: self.leak.as_ref().map(|l| (l.probe.column.clone(), l.hits)),
            entry: TableEntry {
                schema: t.schema.clone(),
                name: t.name.clone(),
                columns: t.columns.clone(),
                rows,
                raw_bytes,
                objects: std::mem::take(&mut self.objects),
                parents: t.parents.clone(),
                extension_config: t.extension_rows.is_some(),
                large_objects: t.large_objects,
            },
        })
    }

    fn write(&mut self, mut data: &[u8]) -> Result<(), SnapshotError> {
        if let Some(l) = &mut self.leak {
            l.feed(data);
        }
        while !data.is_empty() {
            let full = self
                .cur
                .as_ref()
                .is_some_and(|(s, _)| s.raw_bytes() >= self.shared.object_bytes);
            if !full {
                self.put(data)?;
                break;
            }
            if self.at_row_start {
                self.finish_current()?;
                continue;
            }
            match rows::first_end(data) {
                Some(i) => {
                    self.put(&data[..=i])?;
                    data = &data[i + 1..];
                }
                None => {
                    self.put(data)?;
                    break;
                }
            }
        }
        Ok(())
    }

    fn open(&mut self) -> Result<(), SnapshotError> {
        let t = &self.job.table;
        let key = repo::data_key(
            &self.shared.id,
            self.job.n,
            &t.schema,
            &t.name,
            self.objects.len(),
            !matches!(self.shared.sealer, Sealer::Disabled),
        );
        let sink = ObjectSink::create(
            self.shared.storage.clone(),
            key.clone(),
            &self.shared.sealer,
            self.shared.zstd_level,
        )
        .map_err(|e| SnapshotError::Object {
            stage: Stage::Data,
            key,
            message: e.to_string(),
        })?;
        self.cur = Some(sink);
        Ok(())
    }

    fn put(&mut self, data: &[u8]) -> Result<(), SnapshotError> {
        if self.cur.is_none() {
            self.open()?;
        }
        let Some((sink, _)) = self.cur.as_mut() else {
            return Ok(());
        };
        if let Err(e) = sink.write_all(data) {
            let key = sink.key().to_string();
            let message = self.upload_error().unwrap_or_else(|| e.to_string());
            return Err(SnapshotError::Object {
                stage: Stage::Data,
                key,
                message,
            });
        }
        let rows = rows::count(data);
        sink.add_rows(rows);
        self.at_row_start = rows::ends_row(data);
        let p = &self.shared.progress;
        p.rows.fetch_add(rows, Ordering::Relaxed);
        p.raw_bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        self.maybe_pause(false);
        Ok(())
    }

    /// The `data` test pause point (see `pause`).
    fn maybe_pause(&mut self, at_end: bool) {
        if !pause::armed("data") {
            return;
        }
        if let Some((sink, _)) = self.cur.as_mut()
            && (at_end || sink.raw_bytes() >= pause::data_bytes())
        {
            let _ = sink.flush();
            let key = sink.key().to_string();
            pause::wait_for_upload(self.shared.storage.as_ref(), &self.rt, &key);
            pause::blocking("data");
        }
    }

    fn finish_current(&mut self) -> Result<(), SnapshotError> {
        let Some((sink, upload)) = self.cur.take() else {
            return Ok(());
        };
        let key = sink.key().to_string();
        let entry = sink
            .finish(upload, &self.rt)
            .map_err(|e| SnapshotError::Object {
                stage: Stage::Data,
                key,
                message: e.to_string(),
            })?;
        self.objects.push(entry);
        Ok(())
    }

    /// Drops the current object (its upload fails, nothing becomes visible)
    /// and waits for the upload to wind down; returns the upload's own
    /// error, which explains a failed write better than "broken pipe".
    fn upload_error(&mut self) -> Option<String> {
        let (sink, upload) = self.cur.take()?;
        drop(sink);
        match self.rt.block_on(upload) {
            Ok(Err(e)) => Some(e.to_string()),
            _ => None,
        }
    }

    fn abandon(&mut self) {
        let _ = self.upload_error();
    }
}

/// Counts the rows of a root table whose subject column holds an id on the
/// erasure list. Rows and fields come from `copytext::rows` and values are
/// decoded by `copytext::escape`, as in the restore filter; NULL, a missing
/// field and a value that is not an id of the subject type count nothing.
struct LeakCounter {
    probe: LeakProbe,
    rows: Rows,
    scratch: Vec<u8>,
    hits: u64,
}

impl LeakCounter {
    fn new(probe: LeakProbe) -> LeakCounter {
        LeakCounter {
            probe,
            rows: Rows::new(),
            scratch: Vec::new(),
            hits: 0,
        }
    }

    fn feed(&mut self, data: &[u8]) {
        let LeakCounter {
            probe,
            rows,
            scratch,
            hits,
        } = self;
        rows.feed(data, |row| {
            let key = row
                .field(probe.col)
                .and_then(|field| decoded(field, scratch))
                .and_then(|value| key_of(probe.subject_type, value));
            let key = match &probe.subject {
                Some(name) => key.map(|k| crate::erasure::subject::subject_key(name, k)),
                None => key,
            };
            if key.is_some_and(|k| probe.set.contains(k)) {
                *hits += 1;
            }
        });
    }
}

#[cfg(test)]
#[path = "tables_tests.rs"]
mod tests;
