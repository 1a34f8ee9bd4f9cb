//! A digest of the source's schema: every user relation (kind,
//! persistence, replica identity, partition bounds and keys, options),
//! column (type, nullability, identity, generation, collation, default),
//! constraint, index, trigger, view, inheritance link, row-security policy,
//! sequence definition, user type, function and extension, each rendered by
//! PostgreSQL's own `pg_get_*def` functions. Statistics, sizes and
//! relfilenodes are left out, so VACUUM, ANALYZE, TRUNCATE and plain writes
//! leave it unchanged; any DDL changes it.
//!
//! Continuous capture compares it with its base's (`capture::watch`): a
//! change the stream does not show — a foreign key added, say, which the
//! erasure filter must follow — makes a gap and a new base instead of a
//! restore in the old shape. Connections run with `search_path =
//! pg_catalog` (`pg::connect`), so the rendered names are always qualified
//! and the digest does not depend on the session.

use super::{PgConn, SourceError, query_err};
use chrono::{DateTime, Utc};

/// One line per object; the digest is the sum, mod 2^64, of each line's
/// hash (the first 64 bits of its `md5`: a fingerprint, not for security),
/// in decimal, so what lines add to it can be added to it
/// (`capture::schema`: columns appended by captured DDL). With the
/// statement's start time in microseconds since the epoch and whether any
/// transaction was in progress in the statement's snapshot.
const DIGEST_SQL: &str = include_str!("schema_digest.sql");

/// A transaction stamps its commit time before it becomes visible (the
/// WAL flush, a synchronous standby's answer come in between); one in
/// progress at the read may have committed a second before it unseen.
const UNSEEN_COMMIT: chrono::Duration = chrono::Duration::seconds(1);

/// A read of the source's schema digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestRead {
    pub digest: String,
    /// The time up to which it holds (the server's clock, as commit times
    /// are): the read's start when no transaction was in progress in its
    /// snapshot (every earlier commit is in it), a second earlier otherwise.
    pub at: DateTime<Utc>,
    /// The WAL insert position at the read: every commit the read saw ends
    /// at or before it, so a stream that reached it has shown them all.
    /// `None` on a standby.
    pub lsn: Option<crate::repo::changes::Lsn>,
}

/// The schema's digest, when it holds, and where the WAL was.
///
/// # Errors
/// The query fails (the error names what was being read).
pub async fn schema_digest(conn: &PgConn) -> Result<DigestRead, SourceError> {
    let row = conn
        .query_one(DIGEST_SQL, &[])
        .await
        .map_err(|e| query_err("reading the schema's digest", &e))?;
    let at = DateTime::from_timestamp_micros(row.get(1)).unwrap_or_default();
    let busy: bool = row.get(2);
    let lsn: Option<String> = row.get(3);
    let lsn = lsn
        .map(|l| {
            l.parse().map_err(|e| SourceError::Query {
                what: "reading the schema's digest".into(),
                message: format!("the WAL position {l:?}: {e}"),
            })
        })
        .transpose()?;
    Ok(DigestRead {
        digest: row.get(0),
        at: if busy { at - UNSEEN_COMMIT } else { at },
        lsn,
    })
}

/// How long the capture's read may take: a catalog locked by a
/// `VACUUM FULL pg_class`, say, must not hold the writer (and with it every
/// flush) until it ends. A read that times out is a failed read.
pub const READ_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// [`schema_digest`] in a read-only transaction of its own, cancelled by
/// the server past `limit`, without JIT (compiling the catalog query took
/// a fifth of its time on 2,000 tables: `BENCHMARKS.md`).
///
/// # Errors
/// The query fails or takes longer than `limit`.
pub async fn schema_digest_within(
    conn: &PgConn,
    limit: std::time::Duration,
) -> Result<DigestRead, SourceError> {
    conn.batch_execute(&format!(
        "BEGIN READ ONLY; SET LOCAL statement_timeout = {}; SET LOCAL jit = off",
        limit.as_millis().max(1)
    ))
    .await
    .map_err(|e| query_err("starting the schema's digest read", &e))?;
    let read = async {
        // Tests make the read slow.
        if let Some(ms) = crate::snapshot::pause::number("LETHE_TEST_DIGEST_SLEEP_MS") {
            conn.batch_execute(&format!("SELECT pg_sleep({})", ms as f64 / 1000.0))
                .await
                .map_err(|e| query_err("reading the schema's digest", &e))?;
        }
        schema_digest(conn).await
    }
    .await;
    let end = if read.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let _ = conn.batch_execute(end).await;
    read
}
