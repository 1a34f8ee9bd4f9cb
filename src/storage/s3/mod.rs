//! S3 backend (aws-sdk-s3): any S3-compatible store through a custom
//! endpoint, path-style addressing, the standard AWS credential chain.
//!
//! Retrying lives in one place, [`Backoff`]: the SDK's own retries are off
//! and every SDK error is classified as transient, permanent or not-found.
//! Uploads stream through [`upload`] (single PutObject for small bodies,
//! multipart with growing parts otherwise).

pub mod envfile;
mod errors;
mod upload;

pub(crate) use errors::{classify, error_chain};

pub use upload::{PartSizing, finish_aborts};

use super::retry::Backoff;
use super::{
    ByteStream, IncompleteUpload, ObjectMeta, Storage, StorageError, validate_key, validate_prefix,
};
use crate::storage::ChecksumMode;
use crate::storage::StorageConfig;
use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, ProvideCredentials, Region, RequestChecksumCalculation,
    ResponseChecksumValidation,
};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;

/// Appended to every error that smells of credentials or permissions.
pub const CREDENTIALS_HINT: &str = "check the AWS credential chain (storage.credentials_file, \
    or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or web identity) and that \
    the key may read and write this bucket";

/// Knobs beyond the config file, for tests and tools. The defaults are what
/// `lethe` runs with.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    pub part_sizing: PartSizing,
    /// Static credentials instead of the AWS chain (tests).
    pub credentials: Option<Credentials>,
    pub backoff: Backoff,
}

/// A bucket and a key prefix on an S3-compatible store.
#[derive(Debug, Clone)]
pub struct S3Storage {
    client: Client,
    bucket: String,
    /// Empty, or the repository prefix with a trailing `/`.
    prefix: String,
    checksum: ChecksumMode,
    parts_in_flight: usize,
    part_sizing: PartSizing,
    backoff: Backoff,
}

/// Connects with the AWS credential chain and checks the bucket's location
/// against the EU allow-list. `storage::open` calls this.
///
/// # Errors
/// No credentials, unreachable store, missing bucket, refused region.
pub async fn connect(
    cfg: &StorageConfig,
    bucket: String,
    prefix: String,
) -> Result<Arc<dyn Storage>, StorageError> {
    Ok(Arc::new(
        S3Storage::connect(cfg, bucket, prefix, S3Options::default()).await?,
    ))
}

/// The configured endpoint, or AWS S3 in the configured region.
fn endpoint_name(cfg: &StorageConfig) -> String {
    match &cfg.endpoint {
        Some(ep) => ep.trim_end_matches('/').to_string(),
        None => format!("AWS S3 ({})", cfg.region),
    }
}

/// Builds an S3 client from the config: region, endpoint, path style, the
/// checksum switch, SDK retries off, and credentials that must resolve now
/// (so a missing key fails at start with a clear message, not mid-upload).
///
/// # Errors
/// No credentials found.
pub async fn client(cfg: &StorageConfig, opts: &S3Options) -> Result<Client, StorageError> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(cfg.region.clone()))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(10))
                .build(),
        );
    // Explicit credentials (tests) win, then `storage.credentials_file`,
    // then the AWS chain.
    let from_file = match (&opts.credentials, &cfg.credentials_file) {
        (None, Some(path)) => {
            Some(
                envfile::load(path).map_err(|message| StorageError::Permanent {
                    op: "connect",
                    key: path.display().to_string(),
                    message,
                })?,
            )
        }
        _ => None,
    };
    let fixed = opts.credentials.clone().or(from_file);
    if let Some(creds) = &fixed {
        loader = loader.credentials_provider(creds.clone());
    }
    let sdk = loader.load().await;
    if fixed.is_none() {
        let provider = sdk
            .credentials_provider()
            .ok_or_else(|| StorageError::Permanent {
                op: "connect",
                key: cfg.url.clone(),
                message: format!("no AWS credentials provider is configured; {CREDENTIALS_HINT}"),
            })?;
        provider
            .provide_credentials()
            .await
            .map_err(|e| StorageError::Permanent {
                op: "connect",
                key: cfg.url.clone(),
                message: format!(
                    "no usable AWS credentials ({}); {CREDENTIALS_HINT}",
                    error_chain(&e)
                ),
            })?;
    }
    let (req, resp) = match cfg.checksum {
        ChecksumMode::Always => (
            RequestChecksumCalculation::WhenSupported,
            ResponseChecksumValidation::WhenSupported,
        ),
        ChecksumMode::WhenRequired => (
            RequestChecksumCalculation::WhenRequired,
            ResponseChecksumValidation::WhenRequired,
        ),
    };
    let mut b = aws_sdk_s3::config::Builder::from(&sdk)
        .force_path_style(cfg.path_style)
        .request_checksum_calculation(req)
        .response_checksum_validation(resp);
    if let Some(ep) = &cfg.endpoint {
        b = b.endpoint_url(ep.trim_end_matches('/'));
    }
    Ok(Client::from_conf(b.build()))
}

impl S3Storage {
    /// Connects and checks the bucket's location (see [`connect`]).
    ///
    /// # Errors
    /// As [`connect`].
    pub async fn connect(
        cfg: &StorageConfig,
        bucket: String,
        prefix: String,
        opts: S3Options,
    ) -> Result<S3Storage, StorageError> {
        let client = client(cfg, &opts).await?;
        let prefix = match prefix.trim_matches('/') {
            "" => String::new(),
            p => format!("{p}/"),
        };
        let s = S3Storage {
            client,
            bucket,
            prefix,
            checksum: cfg.checksum,
            parts_in_flight: cfg.parts_in_flight.max(1),
            part_sizing: opts.part_sizing,
            backoff: opts.backoff,
        };
        // Name where: a refusal at start (credentials, region, bucket)
        // should say which store refused.
        s.check_location(cfg).await.map_err(|e| match e {
            StorageError::Permanent { op, key, message } => StorageError::Permanent {
                op,
                key: format!("{key} at {}", endpoint_name(cfg)),
                message,
            },
            other => other,
        })?;
        Ok(s)
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The repository prefix inside the bucket: empty or ending in `/`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub(crate) fn backoff(&self) -> &Backoff {
        &self.backoff
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Strips the repository prefix from a stored key; `None` for keys that
    /// are outside it or not valid repository keys (never trusted as paths).
    fn repo_key(&self, full: &str) -> Option<String> {
        let k = full.strip_prefix(&self.prefix)?;
        validate_key(k).ok()?;
        Some(k.to_string())
    }

    /// GetBucketLocation: the store's own answer must be on the allow-list
    /// too. Stores that do not answer (permission or not implemented) are
    /// judged by the configured region alone, which config validation checked.
    async fn check_location(&self, cfg: &StorageConfig) -> Result<(), StorageError> {
        let res = self
            .backoff
            .retry("get_bucket_location", || async {
                self.client
                    .get_bucket_location()
                    .bucket(&self.bucket)
                    .send()
                    .await
                    .map_err(|e| classify("connect", &self.describe(), e))
            })
            .await;
        let out = match res {
            Ok(out) => out,
            Err(StorageError::NotFound { .. }) => {
                return Err(StorageError::Permanent {
                    op: "connect",
                    key: self.describe(),
                    message: format!(
                        "bucket {} does not exist at this endpoint; create it first (lethe does not create buckets)",
                        self.bucket
                    ),
                });
            }
            Err(StorageError::Permanent { message, .. })
                if message.contains("NotImplemented") || message.contains("MethodNotAllowed") =>
            {
                tracing::warn!(
                    event = "storage.location_unknown",
                    bucket = %self.bucket,
                    "the store does not answer GetBucketLocation; relying on storage.region"
                );
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let answered = out
            .location_constraint()
            .map(|c| c.as_str().to_string())
            .unwrap_or_default();
        let region = match answered.as_str() {
            // AWS answers nothing for us-east-1 and the legacy "EU" for eu-west-1.
            "" if cfg.endpoint.is_none() => "us-east-1".to_string(),
            "" => return Ok(()),
            "EU" => "eu-west-1".to_string(),
            r => r.to_string(),
        };
        crate::residency::check_region(&region, &cfg.allowed_regions).map_err(|e| {
            StorageError::Permanent {
                op: "connect",
                key: self.describe(),
                message: format!("the store reports bucket {} is in {e}", self.bucket),
            }
        })?;
        if !region.eq_ignore_ascii_case(&cfg.region) {
            tracing::warn!(
                event = "storage.region_mismatch",
                bucket = %self.bucket,
                reported = %region,
                configured = %cfg.region,
                "the store reports a different region than storage.region; requests may be refused"
            );
        }
        Ok(())
    }

    /// Aborts an upload, then confirms with ListParts that it is gone: parts
    /// still in flight can race an abort, so it is repeated a few times.
    pub(crate) async fn abort_confirmed(
        &self,
        full_key: &str,
        upload_id: &str,
    ) -> Result<(), StorageError> {
        for round in 0..3u32 {
            let aborted = self
                .backoff
                .retry("abort_multipart_upload", || async {
                    self.client
                        .abort_multipart_upload()
                        .bucket(&self.bucket)
                        .key(full_key)
                        .upload_id(upload_id)
                        .send()
                        .await
                        .map_err(|e| classify("abort", full_key, e))
                })
                .await;
            match aborted {
                Ok(_) | Err(StorageError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
            let listed = self
                .client
                .list_parts()
                .bucket(&self.bucket)
                .key(full_key)
                .upload_id(upload_id)
                .send()
                .await
                .map_err(|e| classify("abort", full_key, e));
            match listed {
                Err(StorageError::NotFound { .. }) => return Ok(()),
                Ok(out) if out.parts().is_empty() && round > 0 => return Ok(()),
                _ => tokio::time::sleep(Duration::from_millis(500 << round)).await,
            }
        }
        Err(StorageError::Transient {
            op: "abort",
            key: full_key.to_string(),
            message: format!(
                "multipart upload {upload_id} still exists after three aborts; `lethe` lists it for cleanup"
            ),
        })
    }
}

fn to_chrono(t: Option<&aws_smithy_types::DateTime>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos()))
}

#[async_trait]
impl Storage for S3Storage {
    async fn put(&self, key: &str, body: ByteStream) -> Result<ObjectMeta, StorageError> {
        validate_key(key)?;
        upload::put(self, key, body).await
    }

    async fn get(&self, key: &str) -> Result<ByteStream, StorageError> {
        validate_key(key)?;
        let full = self.full_key(key);
        let out = self
            .backoff
            .retry("get_object", || async {
                self.client
                    .get_object()
                    .bucket(&self.bucket)
                    .key(&full)
                    .send()
                    .await
                    .map_err(|e| classify("get", &full, e))
            })
            .await
            .map_err(|e| match e {
                StorageError::NotFound { .. } => StorageError::NotFound {
                    key: key.to_string(),
                },
                e => e,
            })?;
        let key = key.to_string();
        let stream = futures::stream::try_unfold((out.body, key), |(mut body, key)| async move {
            match body.try_next().await {
                Ok(Some(chunk)) => Ok(Some((chunk, (body, key)))),
                Ok(None) => Ok(None),
                Err(e) => Err(StorageError::Transient {
                    op: "get",
                    key: key.clone(),
                    message: format!("download interrupted: {}", error_chain(&e)),
                }),
            }
        });
        Ok(Box::pin(stream))
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StorageError> {
        validate_key(key)?;
        let full = self.full_key(key);
        let res = self
            .backoff
            .retry("head_object", || async {
                self.client
                    .head_object()
                    .bucket(&self.bucket)
                    .key(&full)
                    .send()
                    .await
                    .map_err(|e| classify("head", &full, e))
            })
            .await;
        match res {
            Ok(out) => Ok(Some(ObjectMeta {
                key: key.to_string(),
                size: out.content_length().unwrap_or(0).max(0) as u64,
                last_modified: to_chrono(out.last_modified()).unwrap_or_else(Utc::now),
            })),
            Err(StorageError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StorageError> {
        validate_prefix(prefix)?;
        let full = self.full_key(prefix);
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .backoff
                .retry("list_objects_v2", || async {
                    self.client
                        .list_objects_v2()
                        .bucket(&self.bucket)
                        .prefix(&full)
                        .set_continuation_token(token.clone())
                        .send()
                        .await
                        .map_err(|e| classify("list", &full, e))
                })
                .await?;
            for o in page.contents() {
                let Some(key) = o.key().and_then(|k| self.repo_key(k)) else {
                    continue;
                };
                out.push(ObjectMeta {
                    key,
                    size: o.size().unwrap_or(0).max(0) as u64,
                    last_modified: to_chrono(o.last_modified()).unwrap_or_else(Utc::now),
                });
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        validate_key(key)?;
        let full = self.full_key(key);
        let res = self
            .backoff
            .retry("delete_object", || async {
                self.client
                    .delete_object()
                    .bucket(&self.bucket)
                    .key(&full)
                    .send()
                    .await
                    .map_err(|e| classify("delete", &full, e))
            })
            .await;
        match res {
            Ok(_) | Err(StorageError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn list_incomplete(&self, prefix: &str) -> Result<Vec<IncompleteUpload>, StorageError> {
        validate_prefix(prefix)?;
        let full = self.full_key(prefix);
        let mut out = Vec::new();
        let mut markers: (Option<String>, Option<String>) = (None, None);
        loop {
            let page = self
                .backoff
                .retry("list_multipart_uploads", || async {
                    self.client
                        .list_multipart_uploads()
                        .bucket(&self.bucket)
                        .prefix(&full)
                        .set_key_marker(markers.0.clone())
                        .set_upload_id_marker(markers.1.clone())
                        .send()
                        .await
                        .map_err(|e| classify("list_incomplete", &full, e))
                })
                .await?;
            for u in page.uploads() {
                let (Some(key), Some(id)) = (u.key().and_then(|k| self.repo_key(k)), u.upload_id())
                else {
                    continue;
                };
                out.push(IncompleteUpload {
                    key,
                    upload_id: id.to_string(),
                    initiated: to_chrono(u.initiated()),
                });
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            let next = (
                page.next_key_marker().map(str::to_string),
                page.next_upload_id_marker().map(str::to_string),
            );
            if next.0.is_none() || next == markers {
                break;
            }
            markers = next;
        }
        Ok(out)
    }

    async fn abort_incomplete(&self, upload: &IncompleteUpload) -> Result<(), StorageError> {
        validate_key(&upload.key)?;
        self.abort_confirmed(&self.full_key(&upload.key), &upload.upload_id)
            .await
    }

    fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix.trim_end_matches('/'))
    }
}
