//! One capture session: find where the stored stream ends (or start a new
//! epoch with a base), open the slot there, and run the receiver, the
//! writer, the heartbeat and the lag poll until a stop or an error.

use super::CaptureError;
use super::segment::StreamCtx;
use super::writer::{self, Input, SchemaChange, SequenceSampler, Stored, WriterOptions};
use crate::config::Config;
use crate::crypto::Sealer;
use crate::pg::replication::{Options, ReplicationConn};
use crate::pg::{self, PgConn};
use crate::repo::changes::manifest::{GAP_FORMAT, GapReason, GapRecord, Head, SegmentManifest};
use crate::repo::changes::{self, Lsn};
use crate::repo::manifest::SequenceValue;
use crate::storage::{Storage, StorageExt};
use chrono::Utc;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The stored stream's head, if any.
pub async fn read_head(storage: &dyn Storage, source: &str) -> Result<Option<Head>, CaptureError> {
    let key = changes::head_key(source);
    match storage
        .head(&key)
        .await
        .map_err(CaptureError::storage(&key))?
    {
        None => Ok(None),
        Some(_) => {
            let data = storage
                .get_bytes(&key)
                .await
                .map_err(CaptureError::storage(&key))?;
            Ok(Some(
                Head::from_json(&key, &data).map_err(CaptureError::Format)?,
            ))
        }
    }
}

/// Where the stored stream of `head`'s epoch really ends: `head.json` is
/// written after each segment manifest, so a crash between the two leaves
/// a listed segment past the head.
pub async fn stored_end(
    storage: &dyn Storage,
    head: &Head,
    base_lsn: Lsn,
) -> Result<Stored, CaptureError> {
    let prefix = changes::stream_prefix(&head.source, &head.epoch);
    let listed = storage
        .list(&prefix)
        .await
        .map_err(CaptureError::storage(&prefix))?;
    let mut out = Stored {
        head: head.clone(),
        chain_end: base_lsn,
        shapes: std::collections::BTreeMap::new(),
    };
    // The chain's end is the segment with the highest last commit (keys
    // sort by the first commit's hour, and commit times are not strictly
    // in LSN order across an hour's edge).
    if let Some(o) = listed
        .iter()
        .filter_map(|o| changes::parse_manifest_key(&o.key).map(|k| (k.last, o)))
        .max_by_key(|(last, _)| *last)
        .map(|(_, o)| o)
    {
        let data = storage
            .get_bytes(&o.key)
            .await
            .map_err(CaptureError::storage(&o.key))?;
        let m = SegmentManifest::from_json(&o.key, &data).map_err(CaptureError::Format)?;
        out.chain_end = m.end_lsn;
        out.shapes = m.relations.iter().map(|r| (r.relid, r.clone())).collect();
        if m.end_lsn > out.head.end_lsn {
            out.head.end_lsn = m.end_lsn;
            out.head.last_commit_lsn = Some(m.last_commit_lsn);
            out.head.last_commit_at = Some(m.last_commit_at);
        }
    }
    Ok(out)
}

/// Reads the sequences the base listed, on a connection of its own.
struct PgSampler {
    conn: PgConn,
    seqs: Vec<(String, String)>,
    rt: tokio::runtime::Handle,
}

impl SequenceSampler for PgSampler {
    /// A sequence created or dropped since the list was read makes the
    /// read fail or miss it: the list is read again and the read retried.
    fn sample(&mut self) -> Result<Vec<SequenceValue>, String> {
        if let Ok(v) = self
            .rt
            .block_on(pg::catalog::sequence_values(&self.conn, &self.seqs))
        {
            return Ok(v);
        }
        let cat = self
            .rt
            .block_on(pg::catalog::read(&self.conn))
            .map_err(|e| e.to_string())?;
        self.seqs = cat.sequences;
        self.rt
            .block_on(pg::catalog::sequence_values(&self.conn, &self.seqs))
            .map_err(|e| e.to_string())
    }

    fn schema(&mut self) -> Result<pg::digest::DigestRead, String> {
        self.rt
            .block_on(pg::digest::schema_digest_within(&self.conn, digest_limit()))
            .map_err(|e| e.to_string())
    }
}

/// How long a schema read may take (tests shorten it).
fn digest_limit() -> Duration {
    crate::snapshot::pause::number("LETHE_TEST_DIGEST_LIMIT_MS")
        .map_or(pg::digest::READ_LIMIT, Duration::from_millis)
}

/// What the capture compares the source's schema with: the newest base's
/// digest, or the one columns appended since moved it to. A schema gap left open by an earlier session (stopped before its
/// base) is a change to take a base for now.
async fn schema_reference(
    s: &SessionCfg,
    head: &Head,
) -> Result<(super::schema::SchemaWatch, Option<SchemaChange>), CaptureError> {
    let mut digest = None;
    if let Some(id) = head.base_ids.last()
        && let Ok(id) = id.parse::<crate::repo::manifest::SnapshotId>()
    {
        let key = crate::repo::layout::manifest_key(&id);
        let present = s
            .storage
            .head(&key)
            .await
            .map_err(CaptureError::storage(&key))?
            .is_some();
        if !present {
            // Deleted by hand, say: nothing vouches for the stream's
            // shape, so a base now, and a gap until it.
            tracing::warn!(event = "continuous.schema_check_failed", error = %format!("the newest base's manifest {key} is gone"), "a base is taken now");
            let change = SchemaChange {
                since: head.schema_checked_at,
                what: format!("the newest base {id} is gone"),
            };
            return Ok((super::schema::SchemaWatch::new(None), Some(change)));
        }
        let m = crate::repo::layout::load_manifest(s.storage.as_ref(), &id)
            .await
            .map_err(|e| {
                CaptureError::Base(format!("reading the newest base's manifest {id}: {e}"))
            })?;
        digest = m.continuous.and_then(|c| c.schema_digest);
    }
    let open = open_gap(s, &head.epoch)
        .await?
        .filter(|g| g.reason == GapReason::SchemaUndetected)
        .map(|g| SchemaChange {
            since: g.last_commit_at,
            what: "a schema change seen before a restart, whose base was not taken".to_string(),
        });
    // Columns appended by captured DDL since that base moved it on.
    let digest = head.schema_digest.clone().or(digest);
    Ok((super::schema::SchemaWatch::new(digest), open))
}

/// Everything a session needs from the config.
pub struct SessionCfg {
    pub cfg: Arc<Config>,
    pub storage: Arc<dyn Storage>,
    pub store: Option<Arc<crate::erasure::ErasureStore>>,
    pub source: String,
}

/// Runs one session. `Ok` when `cancel` stopped it.
///
/// # Errors
/// Anything that ended the session; the caller decides whether to retry.
pub async fn run(s: &SessionCfg, cancel: &CancellationToken) -> Result<(), CaptureError> {
    let cfg = &s.cfg;
    let cont = &cfg.continuous;
    let url = cfg.source.url.as_str();
    crate::continuous::preflight(url, cont)
        .await
        .map_err(CaptureError::Preflight)?;
    let conn = pg::connect(url).await?;
    crate::continuous::slot::ensure_publication(&conn, cont)
        .await
        .map_err(CaptureError::Slot)?;
    // Schema changes into the stream where the role may install the
    // triggers; the digest judges the rest (and everything otherwise).
    let ddl_capture = match pg::ddl_capture::install(&conn).await {
        Ok(d) => d,
        Err(e) => pg::ddl_capture::DdlCapture::Digest(e.to_string()),
    };
    // Tables created while lethe was stopped join the publication now.
    let crate::continuous::slot::Synced { added, .. } =
        crate::continuous::slot::sync_publication(&conn, cont)
            .await
            .map_err(CaptureError::Slot)?;
    let (schema_tx, schema_rx) = mpsc::channel::<SchemaChange>(16);

    let stored = match read_head(s.storage.as_ref(), &s.source).await? {
        Some(h) => Some(stored_end(s.storage.as_ref(), &h, h.base_lsn).await?),
        None => None,
    };
    let slot = super::watch::slot_state(&conn, &cont.slot).await?;
    let (mut rconn, stored) = match (stored, slot) {
        (Some(stored), Some(slot))
            if slot.confirmed.is_some_and(|c| c <= stored.head.end_lsn.0)
                && slot.wal_status.as_deref() != Some("lost") =>
        {
            if let Some(pid) = slot.active_pid {
                return Err(CaptureError::SlotBusy {
                    slot: cont.slot.clone(),
                    pid,
                });
            }
            let rconn = ReplicationConn::open(url, &options(cont, false)).await?;
            (rconn, stored)
        }
        (stored, slot) => {
            let mut gap = None;
            if let Some(Stored { head, .. }) = &stored {
                let reason = match &slot {
                    None => GapReason::SlotMissing,
                    Some(st) if st.wal_status.as_deref() == Some("lost") => GapReason::WalRemoved,
                    Some(_) => GapReason::SlotMissing,
                };
                gap = Some(record_gap(s, head, reason).await?);
            }
            if let Some(st) = &slot {
                if let Some(pid) = st.active_pid {
                    return Err(CaptureError::SlotBusy {
                        slot: cont.slot.clone(),
                        pid,
                    });
                }
                drop_slot(&conn, &cont.slot).await?;
            }
            let (rconn, stored) = super::base::new_epoch(s, cancel).await?;
            // The gap closes where the new epoch's base begins.
            if let (Some(g), Some(base_id)) = (gap, stored.head.base_ids.first()) {
                close_gap(s, g, &stored.head.epoch, base_id, stored.head.base_lsn).await?;
            }
            (rconn, stored)
        }
    };

    let (system_id, timeline) = super::watch::system_identity(&conn).await;
    let catalog = pg::catalog::read(&conn).await?;
    let sampler = PgSampler {
        conn: pg::connect(url).await?,
        seqs: catalog.sequences.clone(),
        rt: tokio::runtime::Handle::current(),
    };
    let head = stored.head.clone();
    let start = head.end_lsn;
    let (schema, reopened) = schema_reference(s, &head).await?;
    if let Some(c) = reopened {
        let _ = schema_tx.try_send(c);
    }
    // Bases of older lethe have no digest to compare: tables created while
    // stopped are the change then.
    if !added.is_empty() && head.last_commit_at.is_some() && !schema.has_reference() {
        let what = format!(
            "table(s) created while the capture was stopped: {}",
            added.join(", ")
        );
        tracing::warn!(event = "continuous.schema_changed", change = %what, "a base is taken now; restores between the last stored commit and that base are refused");
        let _ = schema_tx.try_send(SchemaChange {
            since: head.last_commit_at,
            what,
        });
    }
    rconn.start(start.0).await?;
    // The slot the server streams from must be the one the stored stream
    // continues: a slot dropped and created again in between starts later.
    if let Some(st) = super::watch::slot_state(&conn, &cont.slot).await?
        && st.confirmed.is_some_and(|c| c > start.0)
    {
        return Err(CaptureError::SlotMoved {
            slot: cont.slot.clone(),
            stored: start,
            confirmed: Lsn(st.confirmed.unwrap_or_default()),
        });
    }
    tracing::info!(
        event = "continuous.started",
        slot = %cont.slot,
        epoch = %head.epoch,
        from_lsn = %start,
        last_commit_at = head.last_commit_at.map(|t| t.to_rfc3339()),
        ddl_capture = ddl_capture.as_str(),
        ddl_capture_note = match &ddl_capture {
            pg::ddl_capture::DdlCapture::Digest(why) => Some(why.as_str()),
            pg::ddl_capture::DdlCapture::EventTriggers => None,
        },
    );

    let vouched = Arc::new(std::sync::atomic::AtomicI64::new(
        head.verified_at.timestamp(),
    ));
    let sealer =
        Sealer::from_config(&cfg.encryption).map_err(|e| CaptureError::Crypto(e.to_string()))?;
    let segment_due = Arc::new(super::receive::Due::default());
    let ctx = StreamCtx {
        storage: s.storage.clone(),
        sealer,
        zstd_level: cfg.snapshot.zstd_level,
        part_bytes: cfg.snapshot.object_bytes,
        source: s.source.clone(),
        system_id,
        timeline,
        epoch: head.epoch.clone(),
        base_lsn: head.base_lsn,
        rt: tokio::runtime::Handle::current(),
        vouched: vouched.clone(),
        segment_due: segment_due.clone(),
    };
    let opts = WriterOptions {
        flush_every: cont.flush_every,
        segment_bytes: cfg.snapshot.object_bytes,
        head_every: Duration::from_secs(60),
    };
    let confirmer = rconn.confirmer();
    let (tx, rx) = mpsc::channel::<Input>(super::receive::CHANNEL);
    let stop = cancel.child_token();

    let writer = {
        let confirmer = confirmer.clone();
        let changed = schema_tx.clone();
        tokio::task::spawn_blocking(move || {
            let mut sampler = sampler;
            writer::run(
                rx,
                &ctx,
                stored,
                &confirmer,
                &mut sampler,
                &opts,
                &changed,
                schema,
            )
        })
    };
    let receiver = tokio::spawn(super::receive::frames(rconn, tx.clone(), stop.clone()));
    let ticker = tokio::spawn(super::receive::ticks(
        tx.clone(),
        segment_due,
        cont.flush_every,
        stop.clone(),
    ));
    let bases = super::base::later_bases(s, &head, tx.clone(), schema_rx, &stop);
    drop(tx);
    drop(schema_tx);
    let watch = super::watch::watch_source(url, cont, &confirmer, &vouched, &stop);

    let mut receiver = receiver;
    let mut writer = writer;
    let result = tokio::select! {
        r = &mut receiver => {
            stop.cancel();
            let w = (&mut writer).await;
            match (r, w) {
                (Ok(Err(e)), _) => Err(CaptureError::Replication(e)),
                (_, Ok(Err(e))) => Err(CaptureError::Writer(e)),
                (Err(e), _) | (_, Err(e)) => Err(CaptureError::Task(e.to_string())),
                (Ok(Ok(())), Ok(Ok(_))) => Ok(()),
            }
        }
        w = &mut writer => {
            stop.cancel();
            let _ = (&mut receiver).await;
            match w {
                Ok(Err(e)) => Err(CaptureError::Writer(e)),
                Err(e) => Err(CaptureError::Task(e.to_string())),
                Ok(Ok(_)) => Ok(()),
            }
        }
        r = watch => {
            stop.cancel();
            let _ = (&mut receiver).await;
            let _ = (&mut writer).await;
            r
        }
        r = bases => {
            stop.cancel();
            let _ = (&mut receiver).await;
            let _ = (&mut writer).await;
            r
        }
    };
    stop.cancel();
    let _ = ticker.await;
    result
}

pub(super) fn options(cont: &crate::continuous::ContinuousConfig, temporary: bool) -> Options {
    Options {
        slot: cont.slot.clone(),
        publication: cont.publication.clone(),
        temporary,
    }
}

pub(super) async fn drop_slot(conn: &PgConn, slot: &str) -> Result<(), CaptureError> {
    conn.execute("SELECT pg_drop_replication_slot($1)", &[&slot])
        .await
        .map_err(|e| {
            CaptureError::Source(pg::query_err("dropping the stale replication slot", &e))
        })?;
    Ok(())
}

/// The open gap record of `head`'s epoch (written by an earlier session
/// whose new base did not complete), or a new one; logs `continuous.gap`.
async fn record_gap(
    s: &SessionCfg,
    head: &Head,
    reason: GapReason,
) -> Result<GapRecord, CaptureError> {
    if let Some(g) = open_gap(s, &head.epoch).await? {
        tracing::error!(
            event = "continuous.gap",
            reason = %g.reason,
            last_commit_at = head.last_commit_at.map(|t| t.to_rfc3339()),
            last_commit_lsn = head.last_commit_lsn.map(|l| l.to_string()),
            epoch = %head.epoch,
            "still open: no new base yet"
        );
        return Ok(g);
    }
    tracing::error!(
        event = "continuous.gap",
        reason = %reason,
        last_commit_at = head.last_commit_at.map(|t| t.to_rfc3339()),
        last_commit_lsn = head.last_commit_lsn.map(|l| l.to_string()),
        epoch = %head.epoch,
        "the replication slot cannot continue the stored stream: changes after the last stored commit are lost until a new base; restores into the gap are refused"
    );
    let gap = new_gap(s, head, head.last_commit_lsn, head.last_commit_at, reason);
    put_gap(s, &gap).await?;
    Ok(gap)
}

/// The gap record of `epoch` not yet closed by a base, if any.
async fn open_gap(
    s: &SessionCfg,
    epoch: &crate::repo::changes::Epoch,
) -> Result<Option<GapRecord>, CaptureError> {
    Ok(super::window::gap_records(s.storage.as_ref(), &s.source)
        .await?
        .into_iter()
        .find(|g| g.epoch_before.as_ref() == Some(epoch) && g.epoch_after.is_none()))
}

/// A gap record opened now: `head`'s epoch was complete up to the given
/// commit; what follows it cannot be restored until a base closes it.
fn new_gap(
    s: &SessionCfg,
    head: &Head,
    last_commit_lsn: Option<Lsn>,
    last_commit_at: Option<chrono::DateTime<Utc>>,
    reason: GapReason,
) -> GapRecord {
    GapRecord {
        format: GAP_FORMAT,
        id: changes::new_gap_id(),
        source: s.source.clone(),
        epoch_before: Some(head.epoch.clone()),
        last_commit_lsn,
        last_commit_at,
        epoch_after: None,
        resumed_lsn: None,
        resumed_at: None,
        base_id: None,
        reason,
        detected_at: Utc::now(),
    }
}

/// Closes `gap` at a base (`epoch`, its snapshot id and consistent point)
/// and stores it: restores can reach the stream again from that base.
pub(super) async fn close_gap(
    s: &SessionCfg,
    mut gap: GapRecord,
    epoch: &crate::repo::changes::Epoch,
    base_id: &str,
    consistent: Lsn,
) -> Result<(), CaptureError> {
    gap.epoch_after = Some(epoch.clone());
    gap.resumed_lsn = Some(consistent);
    gap.resumed_at = base_id
        .parse::<crate::repo::manifest::SnapshotId>()
        .ok()
        .map(|id| id.started_at());
    gap.base_id = Some(base_id.to_string());
    put_gap(s, &gap).await
}

/// A gap inside the running epoch: a schema change no DDL was captured
/// for. Closed by the base taken for it.
pub(super) async fn open_schema_gap(
    s: &SessionCfg,
    head: &Head,
    change: &SchemaChange,
) -> Result<GapRecord, CaptureError> {
    // One left open by a session stopped before its base is this one.
    let gap = match open_gap(s, &head.epoch).await? {
        Some(mut g) if g.reason == GapReason::SchemaUndetected => {
            g.last_commit_at = match (g.last_commit_at, change.since) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            g
        }
        _ => new_gap(s, head, None, change.since, GapReason::SchemaUndetected),
    };
    tracing::error!(
        event = "continuous.gap",
        reason = %gap.reason,
        last_commit_at = gap.last_commit_at.map(|t| t.to_rfc3339()),
        epoch = %head.epoch,
        change = %change.what,
        "a schema change no restore can replay: restores between the last commit before it and the base taken now are refused"
    );
    put_gap(s, &gap).await?;
    Ok(gap)
}

async fn put_gap(s: &SessionCfg, gap: &GapRecord) -> Result<(), CaptureError> {
    let key = changes::gap_key(&s.source, &gap.id);
    s.storage
        .put_bytes(&key, bytes::Bytes::from(gap.to_json()))
        .await
        .map_err(CaptureError::storage(&key))?;
    Ok(())
}
