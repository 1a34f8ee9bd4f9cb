//! The byte pipeline between blocking CPU stages (COPY parsing, zstd, age,
//! the filter) and async storage, joined by small bounded channels so memory
//! stays constant whatever the database size.
//!
//! Write side: `ObjectSink` (raw bytes) → zstd → age → `ChunkWriter` →
//! bounded channel → `Storage::put`. Read side: `Storage::get` → bounded
//! channel → `ChunkReader` (size + BLAKE3 checked at EOF) → age → zstd.
//! Both `ChunkWriter` and `ChunkReader` block: use them from
//! `spawn_blocking` or a dedicated thread, never on an async worker.

use crate::crypto::{Opener, SealWriter, Sealer};
use crate::framed::{DEPTH, Frame};
use crate::repo::manifest::ObjectEntry;
use crate::storage::{ByteStream, ObjectMeta, Storage, StorageError};
use bytes::{Bytes, BytesMut};
use std::io::{Read, Write};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Bytes handed to storage per channel message.
pub const CHUNK: usize = 1 << 20;

/// A blocking `Write` that ships fixed-size chunks to an async consumer and
/// hashes what it ships.
pub struct ChunkWriter {
    tx: mpsc::Sender<Result<Frame, StorageError>>,
    buf: BytesMut,
    hasher: blake3::Hasher,
    written: u64,
}

impl ChunkWriter {
    fn ship(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.buf.split().freeze();
        self.hasher.update(&chunk);
        self.written += chunk.len() as u64;
        self.tx.blocking_send(Ok(Frame::Data(chunk))).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "storage upload stopped")
        })
    }

    /// Flushes the tail; returns (stored size, BLAKE3 hex).
    ///
    /// # Errors
    /// The upload side went away.
    pub fn finish(mut self) -> std::io::Result<(u64, String)> {
        self.ship()?;
        self.tx.blocking_send(Ok(Frame::End)).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "storage upload stopped")
        })?;
        Ok((self.written, self.hasher.finalize().to_hex().to_string()))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.ship()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Turns the producer channel into an upload body, enforcing the `End` rule.
pub fn body_from_channel(
    mut rx: mpsc::Receiver<Result<Frame, StorageError>>,
    key: String,
) -> ByteStream {
    let mut ended = false;
    Box::pin(futures::stream::poll_fn(move |cx| {
        if ended {
            return std::task::Poll::Ready(None);
        }
        match rx.poll_recv(cx) {
            std::task::Poll::Pending => std::task::Poll::Pending,
            std::task::Poll::Ready(Some(Ok(Frame::Data(b)))) => std::task::Poll::Ready(Some(Ok(b))),
            std::task::Poll::Ready(Some(Ok(Frame::End))) => {
                ended = true;
                std::task::Poll::Ready(None)
            }
            std::task::Poll::Ready(Some(Err(e))) => {
                ended = true;
                std::task::Poll::Ready(Some(Err(e)))
            }
            std::task::Poll::Ready(None) => {
                ended = true;
                std::task::Poll::Ready(Some(Err(StorageError::Body {
                    key: key.clone(),
                    message: "the producer stopped before the end of the object".into(),
                })))
            }
        }
    }))
}

/// Starts `storage.put(key)` fed by the returned writer. The upload completes
/// only after `ChunkWriter::finish`; `fail`, a panic or a drop in the
/// producer makes it fail, so no partial object is committed.
pub fn upload_pipe(
    storage: Arc<dyn Storage>,
    key: String,
) -> (ChunkWriter, JoinHandle<Result<ObjectMeta, StorageError>>) {
    let (tx, rx) = mpsc::channel::<Result<Frame, StorageError>>(DEPTH);
    let body = body_from_channel(rx, key.clone());
    let handle = tokio::spawn(async move { storage.put(&key, body).await });
    let w = ChunkWriter {
        tx,
        buf: BytesMut::with_capacity(CHUNK),
        hasher: blake3::Hasher::new(),
        written: 0,
    };
    (w, handle)
}

/// A sink for one object's raw payload: zstd → age → storage.
pub struct ObjectSink {
    key: String,
    inner: zstd::stream::write::Encoder<'static, SealWriter<Counting<ChunkWriter>>>,
    raw: u64,
    rows: u64,
}

/// Counts bytes passing through (for `raw_size` before compression).
pub struct Counting<W> {
    inner: W,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.inner.write(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl ObjectSink {
    /// Opens an object for writing. Call from a blocking context.
    ///
    /// # Errors
    /// zstd or age set-up failures.
    pub fn create(
        storage: Arc<dyn Storage>,
        key: String,
        sealer: &Sealer,
        zstd_level: i32,
    ) -> Result<(ObjectSink, JoinHandle<Result<ObjectMeta, StorageError>>), std::io::Error> {
        let (w, handle) = upload_pipe(storage, key.clone());
        let sealed = sealer
            .seal(Counting { inner: w })
            .map_err(std::io::Error::other)?;
        let mut enc = zstd::stream::write::Encoder::new(sealed, zstd_level)?;
        enc.include_checksum(true)?;
        Ok((
            ObjectSink {
                key,
                inner: enc,
                raw: 0,
                rows: 0,
            },
            handle,
        ))
    }

    /// Adds `n` to the object's row count (the caller knows row boundaries).
    pub fn add_rows(&mut self, n: u64) {
        self.rows += n;
    }

    pub fn raw_bytes(&self) -> u64 {
        self.raw
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// Seals the stream and returns the manifest entry once storage has
    /// confirmed the object. Call from a blocking context.
    ///
    /// # Errors
    /// Compression, sealing or upload errors.
    pub fn finish(
        self,
        handle: JoinHandle<Result<ObjectMeta, StorageError>>,
        rt: &tokio::runtime::Handle,
    ) -> Result<ObjectEntry, std::io::Error> {
        let sealed = self.inner.finish()?;
        let counting = sealed.finish()?;
        let (size, blake3) = counting.inner.finish()?;
        let meta = rt
            .block_on(handle)
            .map_err(|e| std::io::Error::other(format!("upload task of {} failed: {e}", self.key)))?
            .map_err(std::io::Error::other)?;
        if meta.size != size {
            return Err(std::io::Error::other(format!(
                "storage reports {} bytes for {} but {} were sent",
                meta.size, self.key, size
            )));
        }
        Ok(ObjectEntry {
            key: self.key,
            size,
            blake3,
            raw_size: self.raw,
            rows: self.rows,
        })
    }

    /// Abandons the object: the channel closes without `End`, so the upload
    /// fails and nothing becomes visible. Dropping the sink does the same.
    pub fn abort(self) {
        drop(self);
    }
}

impl Write for ObjectSink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(b)?;
        self.raw += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A blocking `Read` over a storage download that checks the stored size and
/// BLAKE3 against the manifest when the stream ends.
pub struct ChunkReader {
    rx: mpsc::Receiver<Result<Bytes, StorageError>>,
    cur: Bytes,
    hasher: blake3::Hasher,
    read: u64,
    expect: Option<(u64, String)>,
    key: String,
    done: bool,
}

/// A size or checksum mismatch; `msg` names the object `key`.
fn invalid(key: &str, msg: String) -> std::io::Error {
    ObjectError::named(std::io::ErrorKind::InvalidData, key, msg)
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            if self.done {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Ok(b)) => {
                    self.hasher.update(&b);
                    self.read += b.len() as u64;
                    self.cur = b;
                }
                // Every `StorageError` names the key it was called with.
                Some(Err(e)) => {
                    return Err(ObjectError::named(std::io::ErrorKind::Other, &self.key, e));
                }
                None => {
                    self.done = true;
                    if let Some((size, sum)) = &self.expect {
                        if self.read != *size {
                            return Err(invalid(
                                &self.key,
                                format!(
                                    "object {} is {} bytes, the manifest says {size}: truncated or replaced",
                                    self.key, self.read
                                ),
                            ));
                        }
                        let got = self.hasher.finalize().to_hex().to_string();
                        if &got != sum {
                            return Err(invalid(
                                &self.key,
                                format!(
                                    "object {} fails its checksum (BLAKE3 {got}, manifest {sum}): it is damaged",
                                    self.key
                                ),
                            ));
                        }
                    }
                    return Ok(0);
                }
            }
        }
        let n = out.len().min(self.cur.len());
        out[..n].copy_from_slice(&self.cur[..n]);
        bytes::Buf::advance(&mut self.cur, n);
        Ok(n)
    }
}

/// Downloads `key` into a blocking reader; with `expect`, size and checksum
/// are verified at EOF. Must be called inside a tokio runtime.
pub fn download_pipe(
    storage: Arc<dyn Storage>,
    key: String,
    expect: Option<(u64, String)>,
) -> ChunkReader {
    use futures::TryStreamExt;
    let (tx, rx) = mpsc::channel(DEPTH);
    let k = key.clone();
    tokio::spawn(async move {
        let mut s = match storage.get(&k).await {
            Ok(s) => s,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        loop {
            match s.try_next().await {
                Ok(Some(b)) => {
                    if tx.send(Ok(b)).await.is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
        }
    });
    ChunkReader {
        rx,
        cur: Bytes::new(),
        hasher: blake3::Hasher::new(),
        read: 0,
        expect,
        key,
        done: false,
    }
}

/// Opens a manifest object for reading its plaintext payload: download with
/// checksum → age → zstd. Call it from a blocking thread that has a runtime
/// context (`spawn_blocking`): it starts the download task and then reads
/// the age header, which blocks.
///
/// # Errors
/// Wrong identity or a damaged header, named by object key.
pub fn open_object(
    storage: Arc<dyn Storage>,
    entry: &ObjectEntry,
    opener: &Opener,
) -> Result<Box<dyn Read + Send>, std::io::Error> {
    let r = download_pipe(
        storage,
        entry.key.clone(),
        Some((entry.size, entry.blake3.clone())),
    );
    let plain = opener.open(&entry.key, r).map_err(|e| match e {
        // Its text starts with `what`, the key.
        e @ crate::crypto::CryptoError::Decrypt { .. } => {
            ObjectError::named(std::io::ErrorKind::Other, &entry.key, e)
        }
        e => std::io::Error::other(e),
    })?;
    let dec = zstd::stream::read::Decoder::new(plain)?;
    Ok(Box::new(NamedReader {
        inner: dec,
        key: entry.key.clone(),
    }))
}

/// Prefixes read errors with the object key so failures name the object.
struct NamedReader<R> {
    inner: R,
    key: String,
}

impl<R: Read> Read for NamedReader<R> {
    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(b).map_err(|e| {
            if ObjectError::of(&e).is_some_and(|o| o.key() == self.key) {
                e
            } else {
                ObjectError::prefixed(&self.key, e)
            }
        })
    }
}

/// A read error of the object layer that names its object, carried inside
/// the `std::io::Error` the read returns (find it with [`ObjectError::of`]):
/// its text says which object, so a caller adds no prefix of its own. Its
/// text is the wrapped error's (which names the key: storage errors, size
/// and checksum mismatches, a failed decrypt), or `object KEY: ERROR` for a
/// later stage's error (age, zstd) that did not.
#[derive(Debug)]
pub struct ObjectError {
    key: String,
    cause: Cause,
}

#[derive(Debug)]
enum Cause {
    /// Its text names the key; shown as is.
    Named(Box<dyn std::error::Error + Send + Sync>),
    /// Its text does not; shown after `object KEY: `.
    Prefixed(std::io::Error),
}

impl ObjectError {
    /// The storage key of the object the error is about.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The `ObjectError` inside `e`, if the object layer made it.
    pub fn of(e: &std::io::Error) -> Option<&ObjectError> {
        e.get_ref()?.downcast_ref::<ObjectError>()
    }

    /// `e`, whose text already names `key`, marked as naming it.
    fn named(
        kind: std::io::ErrorKind,
        key: &str,
        e: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> std::io::Error {
        let cause = Cause::Named(e.into());
        std::io::Error::new(
            kind,
            ObjectError {
                key: key.to_string(),
                cause,
            },
        )
    }

    /// `e`, which does not name `key`, shown after `object KEY: `.
    fn prefixed(key: &str, e: std::io::Error) -> std::io::Error {
        std::io::Error::new(
            e.kind(),
            ObjectError {
                key: key.to_string(),
                cause: Cause::Prefixed(e),
            },
        )
    }
}

impl std::fmt::Display for ObjectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.cause {
            Cause::Named(e) => e.fmt(f),
            Cause::Prefixed(e) => write!(f, "object {}: {e}", self.key),
        }
    }
}

impl std::error::Error for ObjectError {
    /// The chain the plain `io::Error` it replaces had: the named error's
    /// own source (an `io::Error` reports its payload's source, not the
    /// payload), and none under a prefixed one (that was a bare message).
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.cause {
            Cause::Named(e) => e.source(),
            Cause::Prefixed(_) => None,
        }
    }
}

#[cfg(test)]
#[path = "object_tests.rs"]
mod tests;
