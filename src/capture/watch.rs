//! What the capture watches on the source besides the stream: a heartbeat
//! message every 10 s (it moves an idle stream along), and every 30 s the
//! slot (its lag, or that it is gone) and the publication's tables (new
//! ones join it). Schema changes are judged by the writer
//! (`capture::schema`).

use super::{CaptureError, SlotState};
use crate::pg::replication::Confirmer;
use crate::pg::{self, PgConn};
use crate::repo::changes::Lsn;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The prefix of the heartbeat message; its content is the server's time
/// of emission in microseconds since the epoch (the writer vouches for the
/// stream up to it).
pub const HEARTBEAT_PREFIX: &str = "lethe.heartbeat";

/// How often a heartbeat message is emitted on the source.
const HEARTBEAT: Duration = Duration::from_secs(10);
/// How often the slot's lag and the publication's tables are read.
const LAG_POLL: Duration = Duration::from_secs(30);

fn poll_every() -> Duration {
    // Tests shorten it.
    if let Some(ms) = crate::snapshot::pause::number("LETHE_TEST_POLL_MS") {
        return Duration::from_millis(ms);
    }
    LAG_POLL
}
/// How often `continuous.lag` is logged while under `max_lag`.
const LAG_LOG: Duration = Duration::from_secs(300);
/// The slot as `pg_replication_slots` shows it.
pub async fn slot_state(conn: &PgConn, slot: &str) -> Result<Option<SlotState>, CaptureError> {
    let row = conn
        .query_opt(
            "SELECT (confirmed_flush_lsn - '0/0'::pg_lsn)::bigint, wal_status, active_pid, \
                    (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint \
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(|e| CaptureError::Source(pg::query_err("reading the replication slot", &e)))?;
    Ok(row.map(|r| SlotState {
        confirmed: r
            .get::<_, Option<i64>>(0)
            .and_then(|v| u64::try_from(v).ok()),
        wal_status: r.get(1),
        active_pid: r.get(2),
        lag_bytes: r
            .get::<_, Option<i64>>(3)
            .and_then(|v| u64::try_from(v).ok()),
    }))
}

/// `(system identifier, timeline)` of the source, `("", 0)` where the role
/// may not read them.
pub(super) async fn system_identity(conn: &PgConn) -> (String, u32) {
    let row = conn
        .query_opt(
            "SELECT s.system_identifier::text, c.timeline_id FROM pg_control_system() s, pg_control_checkpoint() c",
            &[],
        )
        .await
        .ok()
        .flatten();
    row.map_or((String::new(), 0), |r| {
        (r.get(0), u32::try_from(r.get::<_, i32>(1)).unwrap_or(0))
    })
}

/// Heartbeats and the lag poll, until `stop`: returns only on a stop
/// (`Ok`) or when the source cannot be reached for the poll. Schema changes
/// are the writer's to see (`capture::schema`); the poll adds new tables to
/// the publication and names those it cannot carry.
pub(super) async fn watch_source(
    url: &str,
    cont: &crate::continuous::ContinuousConfig,
    confirmer: &Confirmer,
    vouched: &std::sync::atomic::AtomicI64,
    stop: &CancellationToken,
) -> Result<(), CaptureError> {
    let conn = pg::connect(url).await?;
    let mut beat = tokio::time::interval(HEARTBEAT);
    let mut poll = tokio::time::interval(poll_every());
    let mut last_log: Option<std::time::Instant> = None;
    let mut unpublished = std::collections::BTreeSet::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            _ = beat.tick() => {
                if let Err(e) = conn.execute(
                    "SELECT pg_logical_emit_message(false, $1, \
                            (extract(epoch FROM clock_timestamp()) * 1000000)::bigint::text)",
                    &[&HEARTBEAT_PREFIX],
                ).await {
                    tracing::warn!(event = "continuous.heartbeat_failed", error = %pg::pg_message(&e));
                }
            }
            _ = poll.tick() => {
                let Some(st) = slot_state(&conn, &cont.slot).await? else {
                    return Err(CaptureError::SlotVanished { slot: cont.slot.clone() });
                };
                if st.wal_status.as_deref() == Some("lost") {
                    return Err(CaptureError::SlotVanished { slot: cont.slot.clone() });
                }
                let synced = crate::continuous::slot::sync_publication(&conn, cont)
                    .await
                    .map_err(CaptureError::Slot)?;
                for t in synced.no_identity {
                    if unpublished.insert(t.clone()) {
                        tracing::warn!(event = "continuous.unpublished_table", table = %t, "a table without a replica identity is not captured (publishing it would make the application's UPDATE and DELETE fail): add a primary key, or ALTER TABLE … REPLICA IDENTITY FULL; until then only base snapshots carry it");
                    }
                }
                let lag = st.lag_bytes.unwrap_or(0);
                let lag_s = (chrono::Utc::now().timestamp() - vouched.load(std::sync::atomic::Ordering::Relaxed)).max(0);
                let over = lag > cont.max_lag;
                if over || last_log.is_none_or(|t| t.elapsed() >= LAG_LOG) {
                    last_log = Some(std::time::Instant::now());
                    if over {
                        tracing::warn!(event = "continuous.lag", slot = %cont.slot, lag_bytes = lag, lag_s, confirmed_lsn = %Lsn(confirmer.confirmed()), max_lag = cont.max_lag, "the slot holds more WAL than continuous.max_lag: storage slow or down?");
                    } else {
                        tracing::info!(event = "continuous.lag", slot = %cont.slot, lag_bytes = lag, lag_s, confirmed_lsn = %Lsn(confirmer.confirmed()));
                    }
                }
            }
        }
    }
}
