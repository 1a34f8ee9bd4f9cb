//! Object storage: one narrow async trait with an S3 backend and a local
//! directory backend sharing the same layout and the same conformance tests.
//!
//! Keys are relative to the repository (the URL's prefix) and validated:
//! `[A-Za-z0-9._=-]` segments joined by `/`, no `..`, no empty segment, so a
//! key read back from storage can never escape a `file://` repository.

#[cfg(any(test, feature = "test-hooks"))]
pub mod faulty;
pub mod fs;
pub mod lifecycle;
pub mod retry;
pub mod s3;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::Stream;
use serde::{Deserialize, Serialize};
use std::pin::Pin;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChecksumMode {
    /// Send a CRC checksum with every upload (the SDK default; Garage, AWS).
    Always,
    /// Only where the API requires one: for stores that reject the SDK's
    /// checksum headers (older OVHcloud, Linode). The manifest's BLAKE3
    /// checksums still guard every object.
    WhenRequired,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `s3://bucket/prefix` or `file:///path`.
    pub url: String,
    /// S3 endpoint; omitted means AWS.
    pub endpoint: Option<String>,
    pub region: String,
    pub path_style: bool,
    /// Regions accepted in addition to the built-in EU allow-list.
    pub allowed_regions: Vec<String>,
    pub checksum: ChecksumMode,
    /// Multipart parts uploaded concurrently per object.
    pub parts_in_flight: usize,
    /// An environment-style file with `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY` (and optionally `AWS_SESSION_TOKEN`), read
    /// instead of the AWS chain; mode 0600 (`s3::envfile`).
    pub credentials_file: Option<std::path::PathBuf>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            url: "file:///var/lib/lethe/repo".into(),
            endpoint: None,
            region: "eu-central-1".into(),
            path_style: false,
            allowed_regions: Vec::new(),
            checksum: ChecksumMode::Always,
            parts_in_flight: 4,
            credentials_file: None,
        }
    }
}

/// A stream of object bytes.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, StorageError>> + Send>>;

/// What a listing or head returns about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    pub last_modified: DateTime<Utc>,
}

/// A multipart upload that was started and never completed or aborted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncompleteUpload {
    pub key: String,
    pub upload_id: String,
    pub initiated: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("object {key} not found")]
    NotFound { key: String },
    #[error("invalid object key {key:?}: {reason}")]
    InvalidKey { key: String, reason: String },
    /// Worth retrying: timeouts, 5xx, SlowDown, connection resets.
    #[error("{op} {key}: {message} (transient)")]
    Transient {
        op: &'static str,
        key: String,
        message: String,
    },
    /// Retrying will not help: permissions, bad credentials, bad request.
    #[error("{op} {key}: {message}")]
    Permanent {
        op: &'static str,
        key: String,
        message: String,
    },
    #[error("{op} {key} was cancelled")]
    Cancelled { op: &'static str, key: String },
    /// The body stream handed to `put` failed (the producer's error).
    #[error("upload of {key} failed while reading its body: {message}")]
    Body { key: String, message: String },
}

impl StorageError {
    /// True when the same call may succeed if tried again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StorageError::Transient { .. })
    }
}

/// The storage seam. Every call is cancellable by dropping its future: an
/// interrupted `put` leaves no visible object (S3 aborts the multipart upload,
/// the directory backend removes its temp file).
#[async_trait]
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// Stores the stream under `key`, atomically: readers see the old object,
    /// the whole new one, or nothing.
    async fn put(&self, key: &str, body: ByteStream) -> Result<ObjectMeta, StorageError>;
    /// Reads an object as a stream.
    async fn get(&self, key: &str) -> Result<ByteStream, StorageError>;
    /// Object metadata, `None` when absent.
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StorageError>;
    /// Every object whose key starts with `prefix`, sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StorageError>;
    /// Deletes an object; deleting an absent object succeeds.
    async fn delete(&self, key: &str) -> Result<(), StorageError>;
    /// Unfinished uploads under `prefix` (always empty for directories that
    /// clean their temp files).
    async fn list_incomplete(&self, prefix: &str) -> Result<Vec<IncompleteUpload>, StorageError>;
    /// Aborts an unfinished upload, or removes a stale temp file.
    async fn abort_incomplete(&self, upload: &IncompleteUpload) -> Result<(), StorageError>;
    /// A short description for messages: `s3://bucket/prefix`, `file:///dir`.
    fn describe(&self) -> String;
}

/// Convenience calls on any storage.
#[async_trait]
pub trait StorageExt: Storage {
    async fn put_bytes(&self, key: &str, data: Bytes) -> Result<ObjectMeta, StorageError> {
        let body: ByteStream = Box::pin(futures::stream::once(async move { Ok(data) }));
        self.put(key, body).await
    }

    async fn get_bytes(&self, key: &str) -> Result<Bytes, StorageError> {
        use futures::TryStreamExt;
        let mut s = self.get(key).await?;
        let mut buf = bytes::BytesMut::new();
        while let Some(chunk) = s.try_next().await? {
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }
}

impl<T: Storage + ?Sized> StorageExt for T {}

/// A parsed `storage.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageUrl {
    S3 { bucket: String, prefix: String },
    File { path: std::path::PathBuf },
}

impl StorageUrl {
    /// # Errors
    /// A message saying which forms are accepted.
    pub fn parse(url: &str) -> Result<StorageUrl, String> {
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err("missing bucket name; use s3://bucket/prefix".into());
            }
            let prefix = prefix.trim_matches('/').to_string();
            if !prefix.is_empty() {
                validate_key(&prefix).map_err(|e| e.to_string())?;
            }
            Ok(StorageUrl::S3 {
                bucket: bucket.to_string(),
                prefix,
            })
        } else if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(
                    "file:// URLs need an absolute path, e.g. file:///var/lib/lethe/repo".into(),
                );
            }
            Ok(StorageUrl::File { path: path.into() })
        } else {
            Err("must start with s3:// or file://".into())
        }
    }
}

/// Checks a key is a safe relative path.
///
/// # Errors
/// `StorageError::InvalidKey` naming the key and the reason.
pub fn validate_key(key: &str) -> Result<(), StorageError> {
    let bad = |reason: &str| {
        Err(StorageError::InvalidKey {
            key: key.to_string(),
            reason: reason.to_string(),
        })
    };
    if key.is_empty() || key.len() > 900 {
        return bad("must be 1 to 900 bytes");
    }
    for seg in key.split('/') {
        if seg.is_empty() {
            return bad("empty path segment");
        }
        if seg == "." || seg == ".." {
            return bad("relative path segment");
        }
        if !seg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'='))
        {
            return bad("only A-Z a-z 0-9 . _ - = are allowed in segments");
        }
    }
    Ok(())
}

/// Same rule for prefixes used in `list`: may be empty or end with `/`.
pub(crate) fn validate_prefix(prefix: &str) -> Result<(), StorageError> {
    let trimmed = prefix.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(());
    }
    validate_key(trimmed)
}

/// Opens the configured storage. Residency and TLS rules are enforced by
/// config validation before this is called; S3 also checks the bucket's
/// location with the store.
///
/// # Errors
/// Bad URL, unreachable or refusing store.
pub async fn open(cfg: &crate::storage::StorageConfig) -> Result<Arc<dyn Storage>, StorageError> {
    match StorageUrl::parse(&cfg.url).map_err(|reason| StorageError::InvalidKey {
        key: cfg.url.clone(),
        reason,
    })? {
        StorageUrl::File { path } => with_test_faults(Arc::new(fs::FsStorage::open(path)?)),
        StorageUrl::S3 { bucket, prefix } => {
            with_test_faults(s3::connect(cfg, bucket, prefix).await?)
        }
    }
}

/// Lets background work of every backend finish before the process ends
/// (today: the S3 backend's aborts of cancelled multipart uploads), for up
/// to `deadline`. Returns false if some was still running; what it leaves,
/// the next cleanup and the bucket's lifecycle rule remove.
pub async fn finish_background(deadline: std::time::Duration) -> bool {
    s3::finish_aborts(deadline).await
}

/// In test builds, `LETHE_FAULTS` wraps the store in fault injection
/// ([`faulty::from_env`]); in every other build the store is returned as is.
#[cfg(any(test, feature = "test-hooks"))]
fn with_test_faults(inner: Arc<dyn Storage>) -> Result<Arc<dyn Storage>, StorageError> {
    faulty::from_env(inner)
}

#[cfg(not(any(test, feature = "test-hooks")))]
#[allow(clippy::unnecessary_wraps)]
fn with_test_faults(inner: Arc<dyn Storage>) -> Result<Arc<dyn Storage>, StorageError> {
    Ok(inner)
}
