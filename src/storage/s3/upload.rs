//! Streaming uploads to S3: bodies shorter than one part go up as a single
//! PutObject; longer ones as a multipart upload whose parts grow with the
//! part number, at most `parts_in_flight` parts in memory and on the wire.
//!
//! Any failure, including the body stream's own, aborts the multipart upload
//! before `put` returns; a dropped `put` future aborts it from a drop guard.
//! What survives a killed process is listed by `list_incomplete` and removed
//! by the bucket's abort-incomplete lifecycle rule after a day.

use super::{S3Storage, classify};
use crate::storage::ChecksumMode;
use crate::storage::{ByteStream, ObjectMeta, StorageError};
use aws_sdk_s3::primitives::ByteStream as SdkBody;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};
use chrono::Utc;
use futures::stream::FuturesUnordered;
use futures::{StreamExt, TryStreamExt};
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;
use tokio::task::JoinHandle;

const MIB: u64 = 1 << 20;
/// S3's limits: parts of 5 MiB to 5 GiB, at most 10,000 of them.
pub const MIN_PART: u64 = 5 * MIB;
pub const MAX_PART: u64 = 5 * 1024 * MIB;
pub const MAX_PARTS: u32 = 10_000;

/// Part sizes: `first` bytes for the first `parts_per_step` parts, then
/// doubling every `parts_per_step` parts (capped at 5 GiB). The default
/// (8 MiB, doubling every 1,000 parts) keeps objects up to 8 GiB on 8 MiB
/// parts and lets 10,000 parts hold ~7.8 TiB, above S3's 5 TiB object limit,
/// so a stream of unknown length never runs out of parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartSizing {
    pub first: u64,
    pub parts_per_step: u32,
}

impl Default for PartSizing {
    fn default() -> Self {
        Self {
            first: 8 * MIB,
            parts_per_step: 1000,
        }
    }
}

impl PartSizing {
    /// Size of part `n` (1-based).
    pub fn size_of(&self, n: u32) -> u64 {
        let step = n.saturating_sub(1) / self.parts_per_step.max(1);
        let size = self
            .first
            .max(MIN_PART)
            .saturating_mul(1u64.checked_shl(step).unwrap_or(u64::MAX));
        size.min(MAX_PART)
    }

    /// The largest object 10,000 parts can hold.
    pub fn capacity(&self) -> u64 {
        (1..=MAX_PARTS).map(|n| self.size_of(n)).sum()
    }
}

/// Reads a body stream in parts of a requested size, splitting chunks at
/// part boundaries.
struct PartReader {
    body: ByteStream,
    key: String,
    leftover: Option<Bytes>,
    eof: bool,
}

impl PartReader {
    /// Up to `size` bytes; fewer only at the end; `None` once the body is done.
    async fn next_part(&mut self, size: u64) -> Result<Option<Bytes>, StorageError> {
        let size = size as usize;
        let mut buf = BytesMut::new();
        while buf.len() < size {
            let chunk = match self.leftover.take() {
                Some(c) => c,
                None if self.eof => break,
                None => match self.body.try_next().await {
                    Ok(Some(c)) => c,
                    Ok(None) => {
                        self.eof = true;
                        break;
                    }
                    Err(e @ StorageError::Body { .. }) => return Err(e),
                    Err(e) => {
                        return Err(StorageError::Body {
                            key: self.key.clone(),
                            message: e.to_string(),
                        });
                    }
                },
            };
            if buf.is_empty() && chunk.len() == size {
                return Ok(Some(chunk));
            }
            if buf.capacity() == 0 {
                buf.reserve(size);
            }
            let take = (size - buf.len()).min(chunk.len());
            buf.extend_from_slice(&chunk[..take]);
            if take < chunk.len() {
                self.leftover = Some(chunk.slice(take..));
            }
        }
        if buf.is_empty() && self.eof {
            Ok(None)
        } else {
            Ok(Some(buf.freeze()))
        }
    }
}

/// Aborts spawned by dropped uploads, so the process can wait for them
/// before its runtime shuts down (nothing is left detached).
static PENDING_ABORTS: Mutex<Vec<JoinHandle<()>>> = Mutex::new(Vec::new());

fn track(task: JoinHandle<()>) {
    if let Ok(mut pending) = PENDING_ABORTS.lock() {
        pending.retain(|t| !t.is_finished());
        pending.push(task);
    }
}

/// Waits up to `deadline` for the aborts of cancelled uploads to finish.
/// Call it before the runtime shuts down (end of `main`, daemon stop);
/// returns false if some were still running (the next cleanup and the
/// lifecycle rule remove what they leave).
pub async fn finish_aborts(deadline: Duration) -> bool {
    let pending = PENDING_ABORTS
        .lock()
        .map(|mut p| std::mem::take(&mut *p))
        .unwrap_or_default();
    tokio::time::timeout(deadline, futures::future::join_all(pending))
        .await
        .is_ok()
}

/// Aborts the multipart upload of a `put` that was dropped (cancelled),
/// logging `storage.abort_failed` if that fails.
async fn abort_cancelled(s3: &S3Storage, full_key: &str, upload_id: &str) {
    if let Err(e) = s3.abort_confirmed(full_key, upload_id).await {
        tracing::warn!(
            event = "storage.abort_failed",
            key = %full_key,
            error = %e,
            "cancelled upload left incomplete; the next cleanup or the lifecycle rule removes it"
        );
    }
}

/// Starts the multipart upload in a task of its own and waits for its id.
/// A `put` dropped while the request is in flight (the server may already
/// have made the upload, but no [`AbortGuard`] holds its id yet) still gets
/// its upload aborted: by the task, if the id arrives after the drop, or by
/// [`PendingCreate`], if it arrived before. Either abort is tracked like
/// the guard's (`finish_aborts`).
async fn create_guarded(s3: &S3Storage, full: &str) -> Result<String, StorageError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (task_s3, key) = (s3.clone(), full.to_string());
    track(tokio::spawn(async move {
        let created = create(&task_s3, &key).await;
        if let Err(Ok(upload_id)) = tx.send(created) {
            abort_cancelled(&task_s3, &key, &upload_id).await;
        }
    }));
    let mut pending = PendingCreate {
        rx: Some(rx),
        s3: s3.clone(),
        full_key: full.to_string(),
    };
    let received = pending.rx.as_mut().expect("set above").await;
    pending.rx = None;
    received.unwrap_or_else(|_| {
        Err(StorageError::Cancelled {
            op: "create_multipart_upload",
            key: full.to_string(),
        })
    })
}

/// The receiving end of [`create_guarded`] while it waits. Dropped before
/// the id was taken, it closes the channel (so a later id is aborted by the
/// task) and aborts an id that had already arrived.
struct PendingCreate {
    rx: Option<tokio::sync::oneshot::Receiver<Result<String, StorageError>>>,
    s3: S3Storage,
    full_key: String,
}

impl Drop for PendingCreate {
    fn drop(&mut self) {
        let Some(mut rx) = self.rx.take() else {
            return;
        };
        rx.close();
        if let Ok(Ok(upload_id)) = rx.try_recv() {
            drop(AbortGuard {
                armed: Some((self.s3.clone(), self.full_key.clone(), upload_id)),
            });
        }
    }
}

/// Aborts the multipart upload if the `put` future is dropped before it
/// finished; the abort runs as a task on the current runtime.
struct AbortGuard {
    armed: Option<(S3Storage, String, String)>,
}

impl AbortGuard {
    fn disarm(&mut self) {
        self.armed = None;
    }
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        let Some((s3, full_key, upload_id)) = self.armed.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                track(handle.spawn(async move {
                    abort_cancelled(&s3, &full_key, &upload_id).await;
                }));
            }
            Err(_) => tracing::warn!(
                event = "storage.abort_failed",
                key = %full_key,
                "cancelled upload left incomplete (no runtime to abort it); the next cleanup removes it"
            ),
        }
    }
}

pub(super) async fn put(
    s3: &S3Storage,
    key: &str,
    body: ByteStream,
) -> Result<ObjectMeta, StorageError> {
    let full = s3.full_key(key);
    let mut reader = PartReader {
        body,
        key: key.to_string(),
        leftover: None,
        eof: false,
    };
    let sizing = s3.part_sizing;
    let first = reader
        .next_part(sizing.size_of(1))
        .await?
        .unwrap_or_default();
    let second = if reader.eof {
        None
    } else {
        reader.next_part(sizing.size_of(2)).await?
    };
    let Some(second) = second else {
        let size = first.len() as u64;
        put_single(s3, &full, first).await?;
        return Ok(ObjectMeta {
            key: key.to_string(),
            size,
            last_modified: Utc::now(),
        });
    };

    let upload_id = create_guarded(s3, &full).await?;
    let mut guard = AbortGuard {
        armed: Some((s3.clone(), full.clone(), upload_id.clone())),
    };
    let result = async {
        let (parts, size) =
            upload_parts(s3, &full, &upload_id, &mut reader, [first, second]).await?;
        complete(s3, &full, &upload_id, parts, size).await?;
        Ok::<u64, StorageError>(size)
    }
    .await;
    guard.disarm();
    match result {
        Ok(size) => Ok(ObjectMeta {
            key: key.to_string(),
            size,
            last_modified: Utc::now(),
        }),
        Err(e) => {
            if let Err(abort_err) = s3.abort_confirmed(&full, &upload_id).await {
                tracing::warn!(
                    event = "storage.abort_failed",
                    key = %full,
                    error = %abort_err,
                    "failed upload left incomplete; the next cleanup or the lifecycle rule removes it"
                );
            }
            Err(e)
        }
    }
}

fn algorithm(s3: &S3Storage) -> Option<ChecksumAlgorithm> {
    match s3.checksum {
        ChecksumMode::Always => Some(ChecksumAlgorithm::Crc32),
        ChecksumMode::WhenRequired => None,
    }
}

async fn put_single(s3: &S3Storage, full: &str, data: Bytes) -> Result<(), StorageError> {
    s3.backoff()
        .retry("put_object", || async {
            s3.client
                .put_object()
                .bucket(&s3.bucket)
                .key(full)
                .set_checksum_algorithm(algorithm(s3))
                .body(SdkBody::from(data.clone()))
                .send()
                .await
                .map_err(|e| classify("put", full, e))
        })
        .await?;
    Ok(())
}

async fn create(s3: &S3Storage, full: &str) -> Result<String, StorageError> {
    let out = s3
        .backoff()
        .retry("create_multipart_upload", || async {
            s3.client
                .create_multipart_upload()
                .bucket(&s3.bucket)
                .key(full)
                .set_checksum_algorithm(algorithm(s3))
                .send()
                .await
                .map_err(|e| classify("put", full, e))
        })
        .await?;
    out.upload_id()
        .map(str::to_string)
        .ok_or_else(|| StorageError::Permanent {
            op: "put",
            key: full.to_string(),
            message: "the store started a multipart upload without an upload id".into(),
        })
}

async fn upload_part(
    s3: &S3Storage,
    full: &str,
    upload_id: &str,
    n: u32,
    data: Bytes,
) -> Result<CompletedPart, StorageError> {
    let out = s3
        .backoff()
        .retry("upload_part", || async {
            s3.client
                .upload_part()
                .bucket(&s3.bucket)
                .key(full)
                .upload_id(upload_id)
                .part_number(n as i32)
                .set_checksum_algorithm(algorithm(s3))
                .body(SdkBody::from(data.clone()))
                .send()
                .await
                .map_err(|e| classify("put", full, e))
        })
        .await?;
    Ok(CompletedPart::builder()
        .part_number(n as i32)
        .set_e_tag(out.e_tag().map(str::to_string))
        .set_checksum_crc32(out.checksum_crc32().map(str::to_string))
        .build())
}

/// Uploads every part, reading the next one while up to `parts_in_flight`
/// are on the wire. Returns the parts in order and the total size.
async fn upload_parts(
    s3: &S3Storage,
    full: &str,
    upload_id: &str,
    reader: &mut PartReader,
    first_two: [Bytes; 2],
) -> Result<(Vec<CompletedPart>, u64), StorageError> {
    let max = s3.parts_in_flight;
    let mut queue: VecDeque<Bytes> = first_two.into_iter().collect();
    let mut in_flight = FuturesUnordered::new();
    let mut done = Vec::new();
    let mut next_no: u32 = 1;
    let mut total = 0u64;
    loop {
        while in_flight.len() < max {
            let Some(part) = queue.pop_front() else { break };
            if next_no > MAX_PARTS {
                return Err(StorageError::Permanent {
                    op: "put",
                    key: full.to_string(),
                    message: format!(
                        "object exceeds {MAX_PARTS} parts ({total} bytes); lower snapshot.object_bytes"
                    ),
                });
            }
            total += part.len() as u64;
            in_flight.push(upload_part(s3, full, upload_id, next_no, part));
            next_no += 1;
        }
        if reader.eof && queue.is_empty() {
            break;
        }
        if in_flight.len() >= max {
            if let Some(r) = in_flight.next().await {
                done.push(r?);
            }
            continue;
        }
        // Read the next part while the uploads in flight make progress.
        let size = s3.part_sizing.size_of(next_no + queue.len() as u32);
        let read = reader.next_part(size);
        tokio::pin!(read);
        loop {
            tokio::select! {
                r = &mut read => {
                    if let Some(part) = r? {
                        queue.push_back(part);
                    }
                    break;
                }
                Some(r) = in_flight.next(), if !in_flight.is_empty() => done.push(r?),
            }
        }
    }
    while let Some(r) = in_flight.next().await {
        done.push(r?);
    }
    done.sort_by_key(|p| p.part_number());
    Ok((done, total))
}

async fn complete(
    s3: &S3Storage,
    full: &str,
    upload_id: &str,
    parts: Vec<CompletedPart>,
    size: u64,
) -> Result<(), StorageError> {
    let body = CompletedMultipartUpload::builder()
        .set_parts(Some(parts))
        .build();
    let res = s3
        .backoff()
        .retry("complete_multipart_upload", || async {
            s3.client
                .complete_multipart_upload()
                .bucket(&s3.bucket)
                .key(full)
                .upload_id(upload_id)
                .multipart_upload(body.clone())
                .send()
                .await
                .map_err(|e| classify("put", full, e))
        })
        .await;
    match res {
        Ok(_) => Ok(()),
        // A retried completion whose first attempt did land: the upload is
        // gone and the object is there, whole.
        Err(StorageError::NotFound { .. }) => {
            let head = s3
                .client
                .head_object()
                .bucket(&s3.bucket)
                .key(full)
                .send()
                .await
                .map_err(|e| classify("put", full, e))?;
            if head.content_length() == Some(size as i64) {
                Ok(())
            } else {
                Err(StorageError::Permanent {
                    op: "put",
                    key: full.to_string(),
                    message: format!(
                        "multipart upload {upload_id} vanished before it was completed"
                    ),
                })
            }
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
#[path = "upload_tests.rs"]
mod tests;
