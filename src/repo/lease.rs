//! Leases: small JSON objects in the repository saying "in use until T".
//! `locks/snapshot.json` keeps two snapshot writers off one repository;
//! `restores/<ULID>.lease` tells retention that a restore is reading a
//! snapshot, so it is not deleted under the restore's feet.
//!
//! Best effort, by design: S3 has no lock primitive that every store honours
//! (Garage ignores `If-None-Match`), so a taker writes its record, waits a
//! moment, reads it back and compares tokens; the holder re-checks the token
//! at every refresh and gives up (cancels its work) the moment it sees
//! another's. Two processes can only both believe they hold the lock if one
//! of them stalls between reading and writing for longer than the settle
//! delay, and then the loser notices at its next refresh. Expiry is judged
//! on the reader's clock plus [`SKEW_ALLOWANCE_SECS`], so a holder whose
//! clock is a little ahead is not robbed.

use super::holder::{self, ProcessIdentity, Verdict};
use crate::repo::manifest::SnapshotId;
use crate::storage::{Storage, StorageError, StorageExt};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The snapshot writer's lock.
pub const SNAPSHOT_LOCK_KEY: &str = "locks/snapshot.json";
/// Restore leases live here, one object per running restore.
pub const RESTORES_PREFIX: &str = "restores/";
/// An expired lease is only taken over this long after its expiry.
pub const SKEW_ALLOWANCE_SECS: i64 = 60;
/// Default lease lifetime; holders refresh at a third of it.
pub const DEFAULT_TTL_SECS: i64 = 120;

/// What a lease object holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// `host:pid`, for people reading a refusal.
    pub holder: String,
    /// Unique per acquisition: how a holder recognises its own record.
    pub token: String,
    /// The snapshot a restore reads (restore leases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotId>,
    pub acquired_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The writer's host, pid, process start time, boot id and pid
    /// namespace: lets a taker on the same host see that the holder is gone
    /// (absent in records of older versions: those wait for the expiry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessIdentity>,
}

impl LeaseRecord {
    /// True while nobody else may take it over.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        now < self.expires_at + Duration::seconds(SKEW_ALLOWANCE_SECS)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error(
        "{key} is held by {holder} until {expires_at}: another lethe is working on this repository; \
         wait for it (a holder on this host whose process is gone is taken over at once; one on another \
         host {SKEW_ALLOWANCE_SECS}s after it expires)"
    )]
    Held {
        key: String,
        holder: String,
        expires_at: DateTime<Utc>,
    },
    #[error(
        "lost {key} to {holder}: another process took it over (this one stalled past its lease, or clocks disagree)"
    )]
    Lost { key: String, holder: String },
    #[error("{key} is damaged ({message}); if no lethe is running on this repository, delete it")]
    Damaged { key: String, message: String },
    #[error("lease {key}: {source}")]
    Storage { key: String, source: StorageError },
}

/// `host:pid` of this process.
pub fn holder_name() -> String {
    format!("{}:{}", super::holder::host_name(), std::process::id())
}

pub async fn read(storage: &dyn Storage, key: &str) -> Result<Option<LeaseRecord>, LeaseError> {
    match storage.get_bytes(key).await {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| LeaseError::Damaged {
                key: key.to_string(),
                message: e.to_string(),
            }),
        Err(StorageError::NotFound { .. }) => Ok(None),
        Err(source) => Err(LeaseError::Storage {
            key: key.to_string(),
            source,
        }),
    }
}

async fn write(storage: &dyn Storage, key: &str, rec: &LeaseRecord) -> Result<(), LeaseError> {
    let body = serde_json::to_vec_pretty(rec).map_err(|e| LeaseError::Damaged {
        key: key.into(),
        message: e.to_string(),
    })?;
    storage
        .put_bytes(key, body.into())
        .await
        .map(|_| ())
        .map_err(|source| LeaseError::Storage {
            key: key.to_string(),
            source,
        })
}

/// A lease this process holds. Dropping it does not release it (release is
/// async): call [`Lease::release`]; an unreleased lease simply expires.
#[derive(Debug)]
pub struct Lease {
    storage: Arc<dyn Storage>,
    key: String,
    record: LeaseRecord,
    ttl: Duration,
}

impl Lease {
    /// Takes the lease at `key` if it is absent, expired, or damaged
    /// (a damaged one only once it is older than the TTL, by its mtime).
    /// Writes, waits `settle`, reads back and compares.
    ///
    /// # Errors
    /// `Held` when another live holder has it, `Lost` when a racing taker
    /// won, storage errors.
    pub async fn acquire(
        storage: Arc<dyn Storage>,
        key: &str,
        ttl: Duration,
        settle: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<Lease, LeaseError> {
        match read(storage.as_ref(), key).await {
            Ok(Some(cur)) if cur.is_live(now) => {
                match holder::judge(cur.process.as_ref(), holder::current(), &holder::probe) {
                    Verdict::Respect(_) => {
                        return Err(LeaseError::Held {
                            key: key.into(),
                            holder: cur.holder,
                            expires_at: cur.expires_at,
                        });
                    }
                    Verdict::Gone(reason) => {
                        let (host, pid) = cur
                            .process
                            .as_ref()
                            .map(|p| (p.host.as_str(), p.pid))
                            .unwrap_or_default();
                        tracing::warn!(
                            event = "lease.taken_over",
                            key,
                            reason,
                            previous_holder = %cur.holder,
                            previous_host = host,
                            previous_pid = pid,
                            "taking over a lease whose holder on this host is gone"
                        );
                    }
                }
            }
            Ok(Some(cur)) => tracing::warn!(
                event = "lease.taken_over",
                key,
                reason = "expired",
                previous_holder = %cur.holder,
                expired_at = %cur.expires_at,
                "taking over an expired lease"
            ),
            Ok(None) => {}
            Err(LeaseError::Damaged { message, .. }) => {
                let old = storage
                    .head(key)
                    .await
                    .map_err(|source| LeaseError::Storage {
                        key: key.into(),
                        source,
                    })?
                    .is_some_and(|m| now - m.last_modified > ttl);
                if !old {
                    return Err(LeaseError::Damaged {
                        key: key.into(),
                        message,
                    });
                }
                tracing::warn!(
                    event = "lease.taken_over",
                    key,
                    reason = "damaged",
                    previous_holder = "(damaged record)",
                    "replacing a damaged lease"
                );
            }
            Err(e) => return Err(e),
        }
        let record = LeaseRecord {
            holder: holder_name(),
            token: ulid::Ulid::generate().to_string(),
            snapshot: None,
            acquired_at: now,
            expires_at: now + ttl,
            process: holder::current().cloned(),
        };
        write(storage.as_ref(), key, &record).await?;
        if !settle.is_zero() {
            tokio::time::sleep(settle).await;
        }
        match read(storage.as_ref(), key).await? {
            Some(back) if back.token == record.token => Ok(Lease {
                storage,
                key: key.into(),
                record,
                ttl,
            }),
            Some(back) => Err(LeaseError::Lost {
                key: key.into(),
                holder: back.holder,
            }),
            None => Err(LeaseError::Lost {
                key: key.into(),
                holder: "(deleted by someone)".into(),
            }),
        }
    }

    /// A restore lease on `snapshot`: a fresh key, so it never contends.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn for_restore(
        storage: Arc<dyn Storage>,
        snapshot: &SnapshotId,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Lease, LeaseError> {
        let key = format!("{RESTORES_PREFIX}{}.lease", ulid::Ulid::generate());
        let record = LeaseRecord {
            holder: holder_name(),
            token: ulid::Ulid::generate().to_string(),
            snapshot: Some(snapshot.clone()),
            acquired_at: now,
            expires_at: now + ttl,
            process: holder::current().cloned(),
        };
        write(storage.as_ref(), &key, &record).await?;
        Ok(Lease {
            storage,
            key,
            record,
            ttl,
        })
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn record(&self) -> &LeaseRecord {
        &self.record
    }

    /// How often [`Lease::hold`] should refresh: a third of the TTL.
    pub fn refresh_every(&self) -> std::time::Duration {
        (self.ttl / 3)
            .to_std()
            .unwrap_or(std::time::Duration::from_secs(1))
    }

    /// Checks the record is still ours and pushes its expiry to `now + ttl`.
    ///
    /// # Errors
    /// `Lost` when someone else's record (or none) is there.
    pub async fn refresh(&mut self, now: DateTime<Utc>) -> Result<(), LeaseError> {
        match read(self.storage.as_ref(), &self.key).await? {
            Some(cur) if cur.token == self.record.token => {}
            Some(cur) => {
                return Err(LeaseError::Lost {
                    key: self.key.clone(),
                    holder: cur.holder,
                });
            }
            None => {
                return Err(LeaseError::Lost {
                    key: self.key.clone(),
                    holder: "(deleted by someone)".into(),
                });
            }
        }
        let mut next = self.record.clone();
        next.expires_at = now + self.ttl;
        write(self.storage.as_ref(), &self.key, &next).await?;
        self.record = next;
        Ok(())
    }

    /// Refreshes every [`Lease::refresh_every`] until `stop` fires. A
    /// transient storage error is retried at the next tick while the lease
    /// has time left; a lost lease ends the loop with `Lost`.
    ///
    /// # Errors
    /// `Lost`, or a storage error that outlived the lease.
    pub async fn hold(
        &mut self,
        stop: &CancellationToken,
        now: &(dyn Fn() -> DateTime<Utc> + Send + Sync),
    ) -> Result<(), LeaseError> {
        let every = self.refresh_every();
        loop {
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                () = tokio::time::sleep(every) => {}
            }
            match self.refresh(now()).await {
                Ok(()) => {}
                Err(e @ LeaseError::Lost { .. }) => return Err(e),
                Err(e) if now() >= self.record.expires_at => return Err(e),
                Err(e) => {
                    tracing::warn!(event = "lease.refresh_failed", key = %self.key, error = %e, "will retry")
                }
            }
        }
    }

    /// Deletes the lease if it is still ours.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn release(self) -> Result<(), LeaseError> {
        match read(self.storage.as_ref(), &self.key).await {
            Ok(Some(cur)) if cur.token != self.record.token => return Ok(()),
            Ok(None) => return Ok(()),
            _ => {}
        }
        self.storage
            .delete(&self.key)
            .await
            .map_err(|source| LeaseError::Storage {
                key: self.key.clone(),
                source,
            })
    }

    /// Releases the lease within 3 s, logging `lease.release_failed` on an
    /// error or a timeout. Releasing is a courtesy (the lease expires by
    /// itself), so a slow store never holds up the end of a snapshot or a
    /// shutdown.
    pub async fn release_bounded(self) {
        match tokio::time::timeout(std::time::Duration::from_secs(3), self.release()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(event = "lease.release_failed", error = %e, "the lock expires by itself")
            }
            Err(_) => tracing::warn!(
                event = "lease.release_failed",
                error = "timed out",
                "the lock expires by itself"
            ),
        }
    }
}

/// Deletes the lease at `key` if this process (same `host:pid`) wrote it:
/// for a shutdown that had to abandon the task holding the [`Lease`].
///
/// # Errors
/// Storage errors.
pub async fn release_own(storage: &dyn Storage, key: &str) -> Result<bool, LeaseError> {
    match read(storage, key).await {
        Ok(Some(r)) if r.holder == holder_name() => {
            storage
                .delete(key)
                .await
                .map_err(|source| LeaseError::Storage {
                    key: key.to_string(),
                    source,
                })?;
            Ok(true)
        }
        Ok(_) | Err(LeaseError::Damaged { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}
