//! Bases of continuous capture: the first of an epoch from the stream's own
//! slot (created with an exported snapshot), later ones every
//! `continuous.base_every` from a temporary slot beside the running stream.
//! The snapshot engine takes each from the exported snapshot, so the base
//! holds exactly the transactions that committed before the slot's
//! consistent point and the stream carries every one after it.

use super::CaptureError;
use super::session::{SessionCfg, drop_slot, options};
use super::watch::slot_state;
use super::writer::{Input, SchemaChange, Stored};
use crate::pg::replication::{Options, ReplicationConn};
use crate::pg::{self, PgConn};
use crate::repo::changes::manifest::{HEAD_FORMAT, Head};
use crate::repo::changes::{self, Epoch, Lsn};
use crate::repo::manifest::BaseInfo;
use crate::storage::StorageExt;
use chrono::Utc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How long a new base waits for a running snapshot to release the lock.
const BASE_LOCK_WAIT: Duration = Duration::from_secs(3 * 3600);

/// Takes a base of the running epoch every `continuous.base_every`: a
/// temporary slot on a second replication connection exports a snapshot
/// (its consistent point lies in the stream the main slot carries), the
/// snapshot engine takes the base from it, and closing the connection drops
/// the slot. Returns only on a stop (`Ok`) or a failed base.
pub(super) async fn later_bases(
    s: &SessionCfg,
    head: &Head,
    tx: mpsc::Sender<Input>,
    mut changed: mpsc::Receiver<SchemaChange>,
    stop: &CancellationToken,
) -> Result<(), CaptureError> {
    let mut every = s.cfg.continuous.base_every;
    // Tests shorten it below the one-minute floor of the config.
    if let Some(secs) = crate::snapshot::pause::number("LETHE_TEST_BASE_EVERY_SECS") {
        every = Duration::from_secs(secs);
    }
    let mut last = head
        .base_ids
        .last()
        .and_then(|id| id.parse::<crate::repo::manifest::SnapshotId>().ok())
        .map_or_else(Utc::now, |id| id.started_at());
    loop {
        let due = last + chrono::Duration::from_std(every).unwrap_or(chrono::Duration::days(1));
        let wait = (due - Utc::now()).to_std().unwrap_or_default();
        let mut change = None;
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            () = tokio::time::sleep(wait.min(Duration::from_secs(60))) => {}
            c = changed.recv() => change = c,
        }
        if change.is_none() && Utc::now() < due {
            continue;
        }
        // Several changes at once make one gap and one base.
        while let Ok(more) = changed.try_recv() {
            let first = change.take();
            change = Some(match first {
                Some(c) => SchemaChange {
                    since: match (c.since, more.since) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    },
                    what: format!("{}; {}", c.what, more.what),
                },
                None => more,
            });
        }
        let gap = match &change {
            Some(c) => Some(super::session::open_schema_gap(s, head, c).await?),
            None => None,
        };
        let (id, consistent, digest) = later_base(s, &head.epoch, stop).await?;
        if let Some(g) = gap {
            super::session::close_gap(s, g, &head.epoch, &id, consistent).await?;
        }
        last = Utc::now();
        if tx.send(Input::BaseStored { id, digest }).await.is_err() {
            return Ok(());
        }
    }
}

/// One later base, from a temporary slot: its id, consistent point and
/// schema digest; taken again from a new slot when DDL overtakes it (a
/// table dropped or rewritten after the slot's consistent point).
async fn later_base(
    s: &SessionCfg,
    epoch: &Epoch,
    stop: &CancellationToken,
) -> Result<(String, Lsn, Option<String>), CaptureError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match later_base_once(s, epoch, stop).await {
            Err(CaptureError::BaseSuperseded(_)) if attempt < BASE_ATTEMPTS => {}
            other => return other,
        }
    }
}

/// How often a base overtaken by DDL is taken again before the session
/// fails (and starts over).
const BASE_ATTEMPTS: u32 = 5;

/// One attempt. Tables created since the last poll join the publication
/// first, so the stream carries every change after the base.
async fn later_base_once(
    s: &SessionCfg,
    epoch: &Epoch,
    stop: &CancellationToken,
) -> Result<(String, Lsn, Option<String>), CaptureError> {
    let cont = &s.cfg.continuous;
    let url = s.cfg.source.url.as_str();
    crate::continuous::slot::sync_publication(&pg::connect(url).await?, cont)
        .await
        .map_err(CaptureError::Slot)?;
    let mut name = format!("{}_base", cont.slot);
    name.truncate(63);
    let opts = Options {
        slot: name.clone(),
        publication: cont.publication.clone(),
        temporary: true,
    };
    let mut rconn = ReplicationConn::open(url, &opts).await?;
    let created = rconn.create_slot(url).await?;
    let info = BaseInfo {
        epoch: epoch.clone(),
        consistent_lsn: Lsn(created.consistent_lsn),
        slot: name,
        temporary: true,
        not_captured: not_captured(url, &cont.publication).await?,
        schema_digest: None,
    };
    let consistent = info.consistent_lsn;
    let outcome = take_base(s, created.snapshot, info, stop).await;
    // Closing the connection drops the temporary slot.
    drop(rconn);
    let m = outcome?;
    Ok((
        m.id.as_str().to_string(),
        consistent,
        m.continuous.and_then(|c| c.schema_digest),
    ))
}

/// A new epoch: the slot created with an exported snapshot, a base taken
/// from it, and the head written. The slot's connection stays idle until
/// the base is stored (the snapshot lives until its next command).
pub(super) async fn new_epoch(
    s: &SessionCfg,
    cancel: &CancellationToken,
) -> Result<(ReplicationConn, Stored), CaptureError> {
    let cfg = &s.cfg;
    let cont = &cfg.continuous;
    let url = cfg.source.url.as_str();
    let mut rconn = ReplicationConn::open(url, &options(cont, false)).await?;
    let created = rconn.create_slot(url).await?;
    let epoch = Epoch::new();
    let consistent = Lsn(created.consistent_lsn);
    let info = BaseInfo {
        epoch: epoch.clone(),
        consistent_lsn: consistent,
        slot: cont.slot.clone(),
        temporary: false,
        not_captured: not_captured(url, &cont.publication).await?,
        schema_digest: None,
    };
    let manifest = match take_base(s, created.snapshot.clone(), info, cancel).await {
        Ok(m) => m,
        Err(e) => {
            // No base: the slot is of no use (nothing continues from it).
            let conn = pg::connect(url).await?;
            drop(rconn);
            let _ = drop_slot_when_idle(&conn, &cont.slot).await;
            return Err(e);
        }
    };
    let id = manifest.id.as_str().to_string();
    let head = Head {
        format: HEAD_FORMAT,
        source: s.source.clone(),
        epoch: epoch.clone(),
        base_lsn: consistent,
        end_lsn: consistent,
        last_commit_lsn: None,
        last_commit_at: None,
        // The base holds everything before its consistent point.
        verified_at: manifest.started_at,
        // The window starts at the base: the first read of the schema
        // moves this on, or finds it changed since.
        schema_checked_at: Some(manifest.started_at),
        schema_digest: None,
        base_ids: vec![id.clone()],
    };
    let key = changes::head_key(&s.source);
    s.storage
        .put_bytes(&key, bytes::Bytes::from(head.to_json()))
        .await
        .map_err(CaptureError::storage(&key))?;
    Ok((
        rconn,
        Stored {
            head,
            chain_end: consistent,
            shapes: std::collections::BTreeMap::new(),
        },
    ))
}

/// The tables the publication leaves out as the base is taken.
async fn not_captured(url: &str, publication: &str) -> Result<Vec<String>, CaptureError> {
    let conn = pg::connect(url).await?;
    crate::continuous::slot::not_published(&conn, publication)
        .await
        .map_err(CaptureError::Slot)
}

/// Takes a base from an exported snapshot under the snapshot lock,
/// waiting while a scheduled snapshot holds it (the exported snapshot stays
/// valid while its connection is idle).
async fn take_base(
    s: &SessionCfg,
    snapshot: String,
    info: BaseInfo,
    cancel: &CancellationToken,
) -> Result<crate::repo::manifest::Manifest, CaptureError> {
    use crate::snapshot::locked::LockedError;
    let base = crate::snapshot::run::BaseSource { snapshot, info };
    let waited = std::time::Instant::now();
    let taken = loop {
        let base = base.clone();
        let r = crate::snapshot::locked::under_lock(
            s.storage.clone(),
            crate::snapshot::locked::LockOptions::default(),
            &Utc::now,
            cancel,
            |cancel| {
                let opts = crate::snapshot::run::SnapshotOptions {
                    cancel,
                    base: Some(base),
                    ..Default::default()
                };
                crate::snapshot::locked::take(&s.cfg, s.storage.clone(), s.store.clone(), opts)
            },
        )
        .await;
        match r {
            Err(LockedError::Held { holder, .. }) if waited.elapsed() < BASE_LOCK_WAIT => {
                tracing::debug!(event = "continuous.base_waiting", holder = %holder, "a snapshot holds the lock; the base waits");
                tokio::select! {
                    () = cancel.cancelled() => break Err(LockedError::Cancelled),
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
            other => break other,
        }
    };
    if let Ok(o) = &taken {
        tracing::info!(
            event = "continuous.base_completed",
            id = %o.manifest.id,
            epoch = %base.info.epoch,
            consistent_lsn = %base.info.consistent_lsn,
            rows = o.manifest.total_rows(),
        );
    }
    taken.map(|o| o.manifest).map_err(|e| {
        if let LockedError::Work(e @ crate::snapshot::stage::SnapshotError::Superseded { .. }) = &e
        {
            return CaptureError::BaseSuperseded(e.to_string());
        }
        CaptureError::Base(match e {
            LockedError::Cancelled => "stopped".to_string(),
            LockedError::Held { holder, .. } => {
                format!("the snapshot lock stayed held by {holder}")
            }
            LockedError::Lock(e) => e.to_string(),
            LockedError::Lost { lease, .. } => format!("the snapshot lock was lost: {lease}"),
            LockedError::Work(e) => e.to_string(),
        })
    })
}

async fn drop_slot_when_idle(conn: &PgConn, slot: &str) -> Result<(), CaptureError> {
    for _ in 0..50 {
        match slot_state(conn, slot).await? {
            None => return Ok(()),
            Some(st) if st.active_pid.is_none() => return drop_slot(conn, slot).await,
            Some(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    Ok(())
}
