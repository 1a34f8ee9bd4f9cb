//! Post-data in parallel: pg_dump's plain post-data section split at its
//! `-- Name: …; Type: …` entry headers and applied on `jobs` connections,
//! in phases that respect what depends on what (as pg_restore does with
//! its table of contents):
//!
//! 1. `CONSTRAINT` and `INDEX` entries (primary keys, unique constraints,
//!    indexes) in parallel: each touches one table;
//! 2. `INDEX ATTACH`, in order (foreign keys into a partitioned table need
//!    its attached index);
//! 3. `FK CONSTRAINT` in parallel (validation scans each child), retried
//!    when two validations deadlock on a shared parent;
//! 4. everything else (triggers, materialized view data, comments, ACLs,
//!    policies …) in order on one connection.
//!
//! The section is run through the extended protocol, not `psql`: the only
//! psql meta-commands pg_dump writes here are `\restrict`/`\unrestrict`,
//! which are dropped; any other line starting with a backslash makes
//! [`split`] give up, and the caller falls back to `psql`.

use super::RestoreError;
use crate::source::postgres::{PgConn, connect, pg_message};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// One pg_dump archive entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `Name` from the header, for messages.
    pub name: String,
    /// `Type` from the header, e.g. `INDEX`, `FK CONSTRAINT`.
    pub kind: String,
    /// The SQL (with its comment header).
    pub sql: String,
}

/// The section's `SET …` preamble and its entries, or `None` when the text
/// does not look like pg_dump's plain post-data output.
pub fn split(text: &str) -> Option<(String, Vec<Entry>)> {
    let mut preamble = String::new();
    let mut entries: Vec<Entry> = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.starts_with("\\restrict ") || line.starts_with("\\unrestrict ") {
            i += 1;
            continue;
        }
        if line.starts_with('\\') {
            return None;
        }
        // A header: "--", "-- Name: …; Type: …; Schema: …; Owner: …", "--".
        if line == "--" {
            if let Some(h) = lines.get(i + 1).and_then(|l| l.strip_prefix("-- Name: ")) {
                let (name, rest) = h.split_once("; Type: ")?;
                let kind = rest.split("; Schema: ").next()?.to_string();
                entries.push(Entry {
                    name: name.to_string(),
                    kind,
                    sql: String::new(),
                });
            }
        }
        match entries.last_mut() {
            Some(e) => {
                e.sql.push_str(line);
                e.sql.push('\n');
            }
            None => {
                preamble.push_str(line);
                preamble.push('\n');
            }
        }
        i += 1;
    }
    Some((preamble, entries))
}

async fn session(url: &str, preamble: &str) -> Result<PgConn, RestoreError> {
    let err = |message: String| RestoreError::Schema {
        section: "post-data",
        message,
    };
    let conn = connect(url).await.map_err(|e| err(e.to_string()))?;
    conn.batch_execute(preamble)
        .await
        .map_err(|e| err(format!("session settings: {}", pg_message(&e))))?;
    Ok(conn)
}

async fn apply(conn: &PgConn, e: &Entry) -> Result<(), RestoreError> {
    let mut tries = 0;
    loop {
        match conn.batch_execute(&e.sql).await {
            Ok(()) => return Ok(()),
            // Two foreign-key validations locking the same tables in the
            // opposite order: the server aborts one; run it again.
            Err(err)
                if tries < 5
                    && err.code()
                        == Some(&tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED) =>
            {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100 * tries)).await;
            }
            Err(err) => {
                return Err(RestoreError::Schema {
                    section: "post-data",
                    message: format!("{} {}: {}", e.kind, e.name, pg_message(&err)),
                });
            }
        }
    }
}

/// Runs `entries` on up to `jobs` connections, each taking the next entry.
async fn parallel(
    url: &str,
    preamble: &str,
    entries: Vec<Entry>,
    jobs: usize,
) -> Result<(), RestoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    let entries = Arc::new(entries);
    let next = Arc::new(AtomicUsize::new(0));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..jobs.min(entries.len()) {
        let (url, preamble, entries, next) = (
            url.to_string(),
            preamble.to_string(),
            entries.clone(),
            next.clone(),
        );
        set.spawn(async move {
            let conn = session(&url, &preamble).await?;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(e) = entries.get(i) else {
                    return Ok(());
                };
                apply(&conn, e).await?;
            }
        });
    }
    let mut first: Option<RestoreError> = None;
    while let Some(r) = set.join_next().await {
        let r = r.unwrap_or_else(|e| Err(RestoreError::Internal(format!("post-data task: {e}"))));
        if let Err(e) = r {
            // Stop handing out entries; the others finish their current one.
            next.store(usize::MAX / 2, Ordering::Relaxed);
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

/// Applies the post-data section in the phases above.
///
/// # Errors
/// The first statement that fails, named by its entry.
pub async fn apply_parallel(
    url: &str,
    preamble: &str,
    entries: Vec<Entry>,
    jobs: usize,
) -> Result<(), RestoreError> {
    let (mut indexes, mut attach, mut fks, mut rest) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for e in entries {
        match e.kind.as_str() {
            "CONSTRAINT" | "INDEX" => indexes.push(e),
            "INDEX ATTACH" => attach.push(e),
            "FK CONSTRAINT" => fks.push(e),
            _ => rest.push(e),
        }
    }
    // Biggest first would be better; the archive order is a fair proxy.
    parallel(url, preamble, indexes, jobs).await?;
    parallel(url, preamble, attach, 1).await?;
    parallel(url, preamble, fks, jobs).await?;
    parallel(url, preamble, rest, 1).await
}

#[cfg(test)]
#[path = "postdata_tests.rs"]
mod tests;
