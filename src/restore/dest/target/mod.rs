//! The target database: refuse a non-empty one, run the schema halves with
//! `psql` ([`psql`]), load each table in its own transaction with
//! `COPY FROM STDIN` ([`copy`]), evaluate SET DEFAULT defaults, apply
//! post-data in parallel where it can ([`postdata`]), set the sequences,
//! and after a failure empty it of every row the restore put in it.

mod copy;
pub mod postdata;
mod psql;

pub use copy::{LO_FINISH, LO_STAGE, copy_in_sql, load_table};
pub use psql::{psql_path, run_psql, split_password};

use super::{Destination, Source, TableDest};
use crate::framed::Frame;
use crate::pg::{connect, pg_message, quote_qualified};
use crate::repo::manifest::{SequenceValue, TableEntry};
use crate::restore::RestoreError;
use crate::restore::filter::{Replacement, encode_copy_text};
use crate::restore::plan::{PendingDefault, RestorePlan};
use crate::restore::report::RestoreReport;
use async_trait::async_trait;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::mpsc;

/// An empty PostgreSQL database: the schema halves through `psql`, the
/// rows over `COPY`, one connection per table loading at once.
pub struct TargetDb {
    url: String,
    psql: PathBuf,
    jobs: usize,
    /// Set once the target was found empty (`RestoreOptions::target_claimed`).
    claimed: Arc<AtomicBool>,
    /// Post-data applied while the tables load (`jobs > 1`): started by
    /// `start_data`, finished by `post_data`, stopped by a failure.
    early: Mutex<Option<Early>>,
}

/// The early post-data task and what is left for after the data.
struct Early {
    /// Told each table committed; dropped when the data phase is over.
    loaded: mpsc::UnboundedSender<usize>,
    task: AbortOnDrop<Result<usize, RestoreError>>,
    preamble: String,
    later: Vec<postdata::Entry>,
}

/// Aborts a task when dropped (an early return must not leave it running).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl TargetDb {
    /// `url` is the target; `psql` runs the schema halves; `jobs` tables
    /// (and post-data statements) at once; `claimed` is set once the
    /// target was found empty and is about to be written.
    pub fn new(url: &str, psql: PathBuf, jobs: usize, claimed: Arc<AtomicBool>) -> TargetDb {
        TargetDb {
            url: url.to_string(),
            psql,
            jobs,
            claimed,
            early: Mutex::new(None),
        }
    }

    fn take_early(&self) -> Option<Early> {
        self.early
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

#[async_trait]
impl Destination for TargetDb {
    fn mode(&self) -> &'static str {
        "target"
    }

    async fn check(&self, _plan: &RestorePlan) -> Result<(), RestoreError> {
        check_empty(&self.url).await?;
        self.claimed.store(true, Ordering::SeqCst);
        Ok(())
    }

    async fn pre_data(&self, source: &Source, plan: &mut RestorePlan) -> Result<(), RestoreError> {
        run_psql(&self.psql, &self.url, source.pre()).await?;
        replay_ddl(&self.url, &source.pre_ddl).await?;
        evaluate_defaults(&self.url, plan).await
    }

    /// With `jobs > 1`, post-data is applied over the extended protocol:
    /// each table's indexes and keys start once its data is in.
    async fn start_data(
        &self,
        source: &Source,
    ) -> Result<Option<mpsc::UnboundedSender<usize>>, RestoreError> {
        if self.jobs <= 1 {
            return Ok(None);
        }
        let text = source.post().read_to_string().await?;
        let Some((preamble, entries)) = postdata::split(&text) else {
            return Ok(None);
        };
        let sched = postdata::schedule(entries, &source.manifest.tables);
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(postdata::run_early(
            self.url.clone(),
            preamble.clone(),
            sched.per_table,
            sched.fks,
            rx,
            self.jobs,
        ));
        *self.early.lock().unwrap_or_else(PoisonError::into_inner) = Some(Early {
            loaded: tx.clone(),
            task: AbortOnDrop(task),
            preamble,
            later: sched.later,
        });
        Ok(Some(tx))
    }

    fn tables(self: Arc<Self>) -> Option<Arc<dyn TableDest>> {
        Some(self)
    }

    fn jobs(&self, jobs: usize) -> usize {
        jobs
    }

    async fn post_data(&self, source: &Source) -> Result<(), RestoreError> {
        match self.take_early() {
            Some(Early {
                loaded,
                mut task,
                preamble,
                later,
            }) => {
                drop(loaded); // the data phase is over; the task drains what is left
                (&mut task.0)
                    .await
                    .map_err(|e| RestoreError::Internal(format!("post-data task: {e}")))??;
                postdata::apply_parallel(&self.url, &preamble, later, self.jobs).await
            }
            None => run_psql(&self.psql, &self.url, source.post()).await,
        }
    }

    async fn replay_ddl(&self, source: &Source) -> Result<(), RestoreError> {
        replay_ddl(&self.url, &source.ddl).await
    }

    async fn sequences(&self, source: &Source) -> Result<(), RestoreError> {
        set_sequences(&self.url, &source.manifest.sequences).await
    }

    /// Nothing erased may reach a database, even a broken one: a failure
    /// after the target was written leaves no row in it (the filter's plan
    /// can be incomplete only in ways the checks missed).
    async fn finish(
        &self,
        outcome: Result<RestoreReport, RestoreError>,
    ) -> Result<RestoreReport, RestoreError> {
        let e = match outcome {
            Ok(report) => return Ok(report),
            Err(e) => e,
        };
        // A failed data phase stops the early post-data task here.
        drop(self.take_early());
        if check_empty(&self.url).await.is_ok() {
            return Err(e);
        }
        let purged = purge_rows(&self.url).await;
        Err(RestoreError::TargetIncomplete {
            target: crate::secrets::redact_url(&self.url),
            rows: match purged {
                Ok(()) => {
                    "every row it loaded was removed again (TRUNCATE), but its schema is partial"
                        .into()
                }
                Err(p) => {
                    format!("removing the rows it loaded ALSO FAILED ({p}): it may hold rows")
                }
            },
            error: Box::new(e),
        })
    }
}

#[async_trait]
impl TableDest for TargetDb {
    async fn load(&self, t: &TableEntry, rx: mpsc::Receiver<Frame>) -> Result<(), RestoreError> {
        load_table(&self.url, t, rx).await
    }
}

fn query_err(target: &str, what: &str, e: &tokio_postgres::Error) -> RestoreError {
    RestoreError::Target {
        target: target.to_string(),
        message: format!("{what}: {}", pg_message(e)),
    }
}

/// A session on the target, and its URL without secrets for messages.
async fn connect_target(url: &str) -> Result<(crate::pg::PgConn, String), RestoreError> {
    let redacted = crate::secrets::redact_url(url);
    let conn = connect(url).await.map_err(|e| RestoreError::Target {
        target: redacted.clone(),
        message: e.to_string(),
    })?;
    Ok((conn, redacted))
}

/// Refuses a target that holds any table, view, sequence or other relation
/// outside the system schemas.
///
/// # Errors
/// `TargetNotEmpty` naming a few of them; connection failures.
pub async fn check_empty(url: &str) -> Result<(), RestoreError> {
    let (conn, redacted) = connect_target(url).await?;
    let rows = conn
        .query(
            "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r','p','v','m','S','f') AND n.nspname NOT IN ('pg_catalog','information_schema') \
             AND n.nspname !~ '^pg_(toast|temp)' ORDER BY 1",
            &[],
        )
        .await
        .map_err(|e| query_err(&redacted, "checking that the target is empty", &e))?;
    let objects: i64 = conn
        .query_one("SELECT count(*) FROM pg_largeobject_metadata", &[])
        .await
        .map_err(|e| query_err(&redacted, "checking that the target is empty", &e))?
        .get(0);
    if rows.is_empty() && objects == 0 {
        return Ok(());
    }
    let mut names: Vec<String> = rows.iter().take(5).map(|r| r.get(0)).collect();
    if objects > 0 {
        names.push(format!("{objects} large object(s)"));
    }
    Err(RestoreError::TargetNotEmpty {
        target: redacted,
        count: rows.len() + usize::from(objects > 0),
        examples: names.join(", "),
    })
}

/// Removes every row a failed restore left in the target: `TRUNCATE` of
/// every table in the user schemas, in one statement, and every large
/// object. Only ever called on a target that `check_empty` found without
/// user tables before the restore began, so everything here is the
/// restore's own. The schema stays (the operator drops the database).
///
/// # Errors
/// The target cannot be reached or the statement fails.
pub async fn purge_rows(url: &str) -> Result<(), RestoreError> {
    let (conn, redacted) = connect_target(url).await?;
    let rows = conn
        .query(
            "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r','p') AND n.nspname NOT IN ('pg_catalog','information_schema') \
             AND n.nspname !~ '^pg_(toast|temp)' ORDER BY 1",
            &[],
        )
        .await
        .map_err(|e| query_err(&redacted, "listing the tables to empty", &e))?;
    let names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    let mut sql = String::from("BEGIN; ");
    if !names.is_empty() {
        sql.push_str(&format!("TRUNCATE {} CASCADE; ", names.join(", ")));
    }
    sql.push_str("SELECT lo_unlink(oid) FROM pg_largeobject_metadata; COMMIT;");
    conn.batch_execute(&sql)
        .await
        .map_err(|e| query_err(&redacted, "emptying the target after the failure", &e))
}

/// Evaluates SET DEFAULT defaults that are not plain constants, in the
/// target after its schema is loaded. A default that is not immutable
/// (`nextval`, `now()`, `random()`) is refused: each nulled row would need
/// its own value, which only the database's own cascade could give.
///
/// # Errors
/// `Default` naming the foreign key, column and expression.
pub async fn evaluate_defaults(url: &str, plan: &mut RestorePlan) -> Result<(), RestoreError> {
    if plan.pending_defaults.is_empty() {
        return Ok(());
    }
    let (conn, _) = connect_target(url).await?;
    for d in plan.pending_defaults.clone() {
        let value = evaluate_one(&conn, &d)
            .await
            .map_err(|reason| RestoreError::Default {
                fk: d.fk_name.clone(),
                column: d.column.clone(),
                expr: d.expr.clone(),
                reason,
            })?;
        plan.resolve_default(&d, value);
    }
    Ok(())
}

async fn evaluate_one(
    conn: &tokio_postgres::Client,
    d: &PendingDefault,
) -> Result<Replacement, String> {
    // A stored generated column accepts only immutable expressions: let the
    // server judge, in a transaction that is rolled back.
    let probe = format!(
        "BEGIN; CREATE TEMP TABLE lethe_default_probe (v {} GENERATED ALWAYS AS ({}) STORED)",
        d.type_name, d.expr
    );
    let judged = conn.batch_execute(&probe).await;
    let _ = conn.batch_execute("ROLLBACK").await;
    if let Err(e) = judged {
        let m = pg_message(&e);
        return Err(if m.contains("immutable") {
            "it is not immutable (e.g. nextval or now()), so every nulled row would need its own value; \
             lethe refuses rather than guess: change the foreign key to SET NULL, or the default to a constant"
                .into()
        } else {
            format!("it cannot be evaluated in the target: {m}")
        });
    }
    let row = conn
        .query_one(&format!("SELECT ({})::text", d.expr), &[])
        .await
        .map_err(|e| format!("it cannot be evaluated in the target: {}", pg_message(&e)))?;
    let v: Option<String> = row.get(0);
    Ok(v.map_or(Replacement::Null, |s| {
        Replacement::Value(encode_copy_text(s.as_bytes()))
    }))
}

/// `SELECT pg_catalog.setval('"s"."n"', v, called)` for each sequence.
pub fn setval_sql(s: &SequenceValue) -> String {
    format!(
        "SELECT pg_catalog.setval({}, {}, {});",
        crate::pg::quote_literal(&quote_qualified(&s.schema, &s.name)),
        s.last_value,
        s.is_called
    )
}

/// Sets every sequence to its value at snapshot time.
///
/// # Errors
/// Connection or query failure naming the sequence.
pub async fn set_sequences(url: &str, seqs: &[SequenceValue]) -> Result<(), RestoreError> {
    if seqs.is_empty() {
        return Ok(());
    }
    let (conn, redacted) = connect_target(url).await?;
    let sql: String = seqs.iter().map(setval_sql).collect::<Vec<_>>().join("\n");
    conn.batch_execute(&format!("BEGIN;\n{sql}\nCOMMIT;"))
        .await
        .map_err(|e| query_err(&redacted, "setting sequence values", &e))
}

/// Runs a point's captured DDL in one transaction, in order; a failure
/// names the statement and the commit it came in.
async fn replay_ddl(
    url: &str,
    ddl: &[(crate::repo::changes::Lsn, String)],
) -> Result<(), RestoreError> {
    if ddl.is_empty() {
        return Ok(());
    }
    let (conn, redacted) = connect_target(url).await?;
    conn.batch_execute("BEGIN")
        .await
        .map_err(|e| query_err(&redacted, "replaying captured DDL", &e))?;
    for (lsn, sql) in ddl {
        conn.batch_execute(sql).await.map_err(|e| {
            let head: String = sql.chars().take(120).collect();
            query_err(
                &redacted,
                &format!(
                    "replaying the DDL captured in the transaction committed at {lsn} ({head})"
                ),
                &e,
            )
        })?;
    }
    conn.batch_execute("COMMIT")
        .await
        .map_err(|e| query_err(&redacted, "replaying captured DDL", &e))
}

#[cfg(test)]
mod tests;
