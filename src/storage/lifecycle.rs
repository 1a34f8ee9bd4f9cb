//! Bucket lifecycle rules, the backstop for retention when the daemon is
//! down: expire `<prefix>/snapshots/` after `retention.days` and abort
//! multipart uploads left incomplete for a day.
//!
//! `PutBucketLifecycleConfiguration` replaces the whole configuration, so
//! Lethe reads the bucket's rules, merges its own in by rule ID and writes
//! the result back: the user's rules are kept as they were. The erasure
//! journal (`erasures/`) and the marker are never matched by a Lethe rule.
//! Stores evaluate expiration about once a day and round the due time up to
//! the next midnight UTC, so an object goes 35–36 days after it was written.

use super::StorageUrl;
use super::s3::{S3Options, S3Storage, classify};
use crate::storage::StorageConfig;
use crate::storage::{Storage, StorageError};
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketVersioningStatus,
    ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter,
    NoncurrentVersionExpiration,
};

/// Incomplete multipart uploads older than this many days are aborted.
pub const ABORT_INCOMPLETE_DAYS: i32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("cannot build the lifecycle configuration: {0}")]
    Build(String),
}

/// What the rules are for, given by the repository's owner (retention): keys
/// under `expire` (relative to the repository) expire after `days`; keys
/// under `protected` must never expire, and a user rule that would expire
/// them is reported. Storage knows no repository layout of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub days: u32,
    pub expire: &'static str,
    /// Further prefixes that expire after `days` (one rule each).
    pub also_expire: &'static [&'static str],
    pub protected: &'static [&'static str],
}

/// Rule ID for expiring a repository's snapshots; names the filter prefix so
/// several repositories can share one bucket.
pub fn expire_rule_id(repo_prefix: &str, policy: &Policy) -> String {
    expire_rule_id_for(repo_prefix, policy.expire)
}

/// Rule ID for expiring `prefix` of a repository.
pub fn expire_rule_id_for(repo_prefix: &str, prefix: &str) -> String {
    format!("lethe-expire-snapshots:{repo_prefix}{prefix}")
}

/// Rule ID for aborting a repository's incomplete uploads.
pub fn abort_rule_id(repo_prefix: &str) -> String {
    format!("lethe-abort-incomplete:{repo_prefix}")
}

/// The rules Lethe wants for a repository at `repo_prefix` (empty or ending
/// in `/`). In a versioned bucket expiration only adds a delete marker, so the
/// expire rule then also removes noncurrent versions after a day.
///
/// # Errors
/// Only if the SDK's builders reject the rule (a bug).
pub fn desired_rules(
    repo_prefix: &str,
    policy: &Policy,
    versioned: bool,
) -> Result<Vec<LifecycleRule>, LifecycleError> {
    let retention_days = policy.days;
    let days = i32::try_from(retention_days)
        .map_err(|_| LifecycleError::Build(format!("retention of {retention_days} days")))?;
    // One expiry rule per prefix (snapshots first); in a versioned bucket
    // expiration only adds a delete marker, so noncurrent versions go
    // after a day.
    let expire = |prefix: &str| {
        let mut rule = LifecycleRule::builder()
            .id(expire_rule_id_for(repo_prefix, prefix))
            .status(ExpirationStatus::Enabled)
            .filter(
                LifecycleRuleFilter::builder()
                    .prefix(format!("{repo_prefix}{prefix}"))
                    .build(),
            )
            .expiration(LifecycleExpiration::builder().days(days).build());
        if versioned {
            rule = rule.noncurrent_version_expiration(
                NoncurrentVersionExpiration::builder()
                    .noncurrent_days(1)
                    .build(),
            );
        }
        rule
    };
    let abort = LifecycleRule::builder()
        .id(abort_rule_id(repo_prefix))
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix(repo_prefix).build())
        .abort_incomplete_multipart_upload(
            AbortIncompleteMultipartUpload::builder()
                .days_after_initiation(ABORT_INCOMPLETE_DAYS)
                .build(),
        );
    let build = |b: aws_sdk_s3::types::builders::LifecycleRuleBuilder| {
        b.build().map_err(|e| LifecycleError::Build(e.to_string()))
    };
    let mut rules = vec![build(expire(policy.expire))?];
    for prefix in policy.also_expire {
        rules.push(build(expire(prefix))?);
    }
    rules.push(build(abort)?);
    Ok(rules)
}

/// The filter prefix a rule applies to (`""` = the whole bucket), or `None`
/// when it also filters on tags or sizes.
fn rule_prefix(r: &LifecycleRule) -> Option<String> {
    #[allow(deprecated)]
    let legacy = r.prefix();
    match r.filter() {
        None => Some(legacy.unwrap_or("").to_string()),
        Some(f)
            if f.tag().is_some()
                || f.object_size_greater_than().is_some()
                || f.object_size_less_than().is_some() =>
        {
            None
        }
        Some(f) => match f.and() {
            Some(and)
                if !and.tags().is_empty()
                    || and.object_size_greater_than().is_some()
                    || and.object_size_less_than().is_some() =>
            {
                None
            }
            Some(and) => Some(and.prefix().unwrap_or("").to_string()),
            None => Some(f.prefix().unwrap_or("").to_string()),
        },
    }
}

/// What a rule does, in a form that compares equal however a store echoes it
/// back (`<Filter><Prefix>` vs `<Filter><And><Prefix>`, absent vs empty).
#[derive(Debug, PartialEq, Eq)]
struct Effect {
    enabled: bool,
    prefix: Option<String>,
    expiration_days: Option<i32>,
    expiration_other: bool,
    abort_days: Option<i32>,
    noncurrent_days: Option<i32>,
    transitions: usize,
}

fn effect(r: &LifecycleRule) -> Effect {
    let exp = r.expiration();
    Effect {
        enabled: *r.status() == ExpirationStatus::Enabled,
        prefix: rule_prefix(r),
        expiration_days: exp.and_then(|e| e.days()),
        expiration_other: exp
            .is_some_and(|e| e.date().is_some() || e.expired_object_delete_marker() == Some(true)),
        abort_days: r
            .abort_incomplete_multipart_upload()
            .and_then(|a| a.days_after_initiation()),
        noncurrent_days: r
            .noncurrent_version_expiration()
            .and_then(|n| n.noncurrent_days()),
        transitions: r.transitions().len() + r.noncurrent_version_transitions().len(),
    }
}

/// True when two rules have the same effect.
pub fn same_effect(a: &LifecycleRule, b: &LifecycleRule) -> bool {
    effect(a) == effect(b)
}

/// The bucket's rules with Lethe's merged in.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    /// The full configuration to write back.
    pub rules: Vec<LifecycleRule>,
    /// IDs of Lethe rules that were absent.
    pub added: Vec<String>,
    /// IDs of Lethe rules that existed with a different effect.
    pub replaced: Vec<String>,
}

impl Merged {
    pub fn changed(&self) -> bool {
        !self.added.is_empty() || !self.replaced.is_empty()
    }
}

/// Merges `ours` into `existing` by rule ID: a rule with one of our IDs is
/// replaced in place (only if its effect differs), missing ones are appended,
/// every other rule is kept unchanged and in order.
pub fn merge(existing: &[LifecycleRule], ours: &[LifecycleRule]) -> Merged {
    let mut rules = existing.to_vec();
    let (mut added, mut replaced) = (Vec::new(), Vec::new());
    for rule in ours {
        let id = rule.id().unwrap_or_default();
        match rules.iter_mut().find(|r| r.id() == Some(id)) {
            Some(old) if same_effect(old, rule) => {}
            Some(old) => {
                *old = rule.clone();
                replaced.push(id.to_string());
            }
            None => {
                rules.push(rule.clone());
                added.push(id.to_string());
            }
        }
    }
    Merged {
        rules,
        added,
        replaced,
    }
}

/// The user's rules that would expire the erasure journal or the marker,
/// which must live as long as the repository. Described for a warning.
pub fn conflicts(
    existing: &[LifecycleRule],
    repo_prefix: &str,
    policy: &Policy,
    ours: &[LifecycleRule],
) -> Vec<String> {
    let protected: Vec<String> = policy
        .protected
        .iter()
        .map(|p| format!("{repo_prefix}{p}"))
        .collect();
    existing
        .iter()
        .filter(|r| !ours.iter().any(|o| o.id().is_some() && o.id() == r.id()))
        .filter(|r| *r.status() == ExpirationStatus::Enabled && r.expiration().is_some())
        .filter_map(|r| {
            let p = rule_prefix(r)?;
            let hit = protected
                .iter()
                .find(|k| k.starts_with(&p) || p.starts_with(k.as_str()))?;
            Some(format!(
                "rule {:?} expires objects under {p:?}, which covers {hit}",
                r.id().unwrap_or("(no id)")
            ))
        })
        .collect()
}

/// Whether a repository's lifecycle rules are in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LifecycleStatus {
    /// Both rules present with the expected effect.
    Present,
    /// These rule IDs are absent (run `lethe init`).
    Missing(Vec<String>),
    /// These rules exist but differ from what `lethe init` would write.
    Drifted(Vec<String>),
    /// `file://` repositories have no lifecycle: the daemon's prune is the only expiry.
    NotApplicable,
}

/// What `install` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installed {
    Unchanged,
    Updated {
        added: Vec<String>,
        replaced: Vec<String>,
    },
    NotApplicable,
}

/// The outcome of `install`, with warnings about the user's own rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallReport {
    pub installed: Installed,
    pub conflicts: Vec<String>,
}

struct Bucket {
    s3: S3Storage,
}

impl Bucket {
    async fn connect(
        cfg: &StorageConfig,
        opts: S3Options,
    ) -> Result<Option<Bucket>, LifecycleError> {
        let url = StorageUrl::parse(&cfg.url).map_err(|reason| StorageError::InvalidKey {
            key: cfg.url.clone(),
            reason,
        })?;
        match url {
            StorageUrl::File { .. } => Ok(None),
            StorageUrl::S3 { bucket, prefix } => Ok(Some(Bucket {
                s3: S3Storage::connect(cfg, bucket, prefix, opts).await?,
            })),
        }
    }

    async fn rules(&self) -> Result<Vec<LifecycleRule>, LifecycleError> {
        let (c, b) = (self.s3.client(), self.s3.bucket());
        let res = self
            .s3
            .backoff()
            .retry("get_bucket_lifecycle_configuration", || async {
                c.get_bucket_lifecycle_configuration()
                    .bucket(b)
                    .send()
                    .await
                    .map_err(|e| classify("get_lifecycle", b, e))
            })
            .await;
        match res {
            Ok(out) => Ok(out.rules().to_vec()),
            Err(StorageError::NotFound { .. }) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// Versioning enabled or suspended: noncurrent versions need a rule.
    /// Stores without versioning (Garage) answer "never enabled" or refuse.
    async fn versioned(&self) -> bool {
        let (c, b) = (self.s3.client(), self.s3.bucket());
        match c.get_bucket_versioning().bucket(b).send().await {
            Ok(out) => matches!(
                out.status(),
                Some(BucketVersioningStatus::Enabled | BucketVersioningStatus::Suspended)
            ),
            Err(_) => false,
        }
    }

    async fn desired(&self, policy: &Policy) -> Result<Vec<LifecycleRule>, LifecycleError> {
        desired_rules(self.s3.prefix(), policy, self.versioned().await)
    }

    async fn write(&self, rules: Vec<LifecycleRule>) -> Result<(), LifecycleError> {
        let conf = BucketLifecycleConfiguration::builder()
            .set_rules(Some(rules))
            .build()
            .map_err(|e| LifecycleError::Build(e.to_string()))?;
        let (c, b) = (self.s3.client(), self.s3.bucket());
        self.s3
            .backoff()
            .retry("put_bucket_lifecycle_configuration", || async {
                c.put_bucket_lifecycle_configuration()
                    .bucket(b)
                    .lifecycle_configuration(conf.clone())
                    .send()
                    .await
                    .map_err(|e| classify("put_lifecycle", b, e))
            })
            .await?;
        Ok(())
    }
}

fn status_of(existing: &[LifecycleRule], desired: &[LifecycleRule]) -> LifecycleStatus {
    let (mut missing, mut drifted) = (Vec::new(), Vec::new());
    for want in desired {
        let id = want.id().unwrap_or_default();
        match existing.iter().find(|r| r.id() == Some(id)) {
            None => missing.push(id.to_string()),
            Some(have) if !same_effect(have, want) => drifted.push(id.to_string()),
            Some(_) => {}
        }
    }
    if !drifted.is_empty() {
        LifecycleStatus::Drifted(drifted)
    } else if !missing.is_empty() {
        LifecycleStatus::Missing(missing)
    } else {
        LifecycleStatus::Present
    }
}

/// Checks the bucket's rules against what `lethe init` would install; the
/// daemon calls this to report drift.
///
/// # Errors
/// Storage errors (connect, read the configuration).
pub async fn lifecycle_status(
    cfg: &StorageConfig,
    policy: Policy,
) -> Result<LifecycleStatus, LifecycleError> {
    lifecycle_status_with(cfg, policy, S3Options::default()).await
}

/// [`lifecycle_status`] with explicit S3 options (tests).
///
/// # Errors
/// As [`lifecycle_status`].
pub async fn lifecycle_status_with(
    cfg: &StorageConfig,
    policy: Policy,
    opts: S3Options,
) -> Result<LifecycleStatus, LifecycleError> {
    let Some(bucket) = Bucket::connect(cfg, opts).await? else {
        return Ok(LifecycleStatus::NotApplicable);
    };
    let existing = bucket.rules().await?;
    Ok(status_of(&existing, &bucket.desired(&policy).await?))
}

/// Installs Lethe's rules, merged into the bucket's own; writes nothing when
/// they are already in place. After writing, reads back to confirm the store
/// kept them (some stores silently drop actions they do not support).
///
/// # Errors
/// Storage errors, or a store that did not keep the rules.
pub async fn install(cfg: &StorageConfig, policy: Policy) -> Result<InstallReport, LifecycleError> {
    install_with(cfg, policy, S3Options::default()).await
}

/// [`install`] with explicit S3 options (tests).
///
/// # Errors
/// As [`install`].
pub async fn install_with(
    cfg: &StorageConfig,
    policy: Policy,
    opts: S3Options,
) -> Result<InstallReport, LifecycleError> {
    let Some(bucket) = Bucket::connect(cfg, opts).await? else {
        return Ok(InstallReport {
            installed: Installed::NotApplicable,
            conflicts: Vec::new(),
        });
    };
    let existing = bucket.rules().await?;
    let desired = bucket.desired(&policy).await?;
    let conflicts = conflicts(&existing, bucket.s3.prefix(), &policy, &desired);
    let merged = merge(&existing, &desired);
    if !merged.changed() {
        return Ok(InstallReport {
            installed: Installed::Unchanged,
            conflicts,
        });
    }
    bucket.write(merged.rules.clone()).await?;
    let after = bucket.rules().await?;
    let status = status_of(&after, &desired);
    let kept_users = existing
        .iter()
        .filter(|r| !desired.iter().any(|d| d.id() == r.id()))
        .all(|r| after.iter().any(|a| a.id() == r.id() && same_effect(a, r)));
    if status != LifecycleStatus::Present || !kept_users {
        return Err(StorageError::Permanent {
            op: "put_lifecycle",
            key: bucket.s3.describe(),
            message: format!(
                "the store did not keep the lifecycle rules as written ({status:?}, other rules kept: {kept_users}); \
                 it may not support Expiration or AbortIncompleteMultipartUpload: the daemon's prune still expires snapshots"
            ),
        }
        .into());
    }
    Ok(InstallReport {
        installed: Installed::Updated {
            added: merged.added,
            replaced: merged.replaced,
        },
        conflicts,
    })
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;
