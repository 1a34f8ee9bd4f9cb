//! The target database: refuse a non-empty one, run the schema halves with
//! `psql`, load each table in its own transaction with `COPY FROM STDIN`,
//! evaluate SET DEFAULT defaults, and set the sequences.

use super::RestoreError;
use super::filter::{Replacement, encode_copy_text};
use super::plan::{PendingDefault, RestorePlan};
use super::runner::{Frame, TableDest};
use crate::crypto::Opener;
use crate::pg::{connect, pg_message, quote_ident, quote_qualified};
use crate::repo::manifest::{ObjectEntry, SequenceValue, TableEntry};
use crate::storage::Storage;
use async_trait::async_trait;
use futures::SinkExt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use tokio::sync::mpsc;

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

/// Where `psql` is: `source.bin_dir` or `$PATH`.
pub fn psql_path(bin_dir: Option<&Path>) -> PathBuf {
    bin_dir.map_or_else(|| PathBuf::from("psql"), |d| d.join("psql"))
}

/// Streams a schema object into `psql -v ON_ERROR_STOP=1 --single-transaction`
/// (pg_dump's plain output holds psql meta-commands such as `\restrict`).
/// If the object cannot be read to its end, psql is killed before its input
/// closes, so a truncated script is never committed.
///
/// # Errors
/// psql cannot start or fails (its last lines are quoted), or the object is damaged.
pub async fn run_psql(
    psql: &Path,
    url: &str,
    storage: Arc<dyn Storage>,
    entry: &ObjectEntry,
    opener: &Opener,
    section: &'static str,
) -> Result<(), RestoreError> {
    let (psql, url, entry, opener) = (
        psql.to_path_buf(),
        url.to_string(),
        entry.clone(),
        opener.clone(),
    );
    tokio::task::spawn_blocking(move || {
        // Opening reads the age header: blocking, like the rest.
        let reader = crate::repo::object::open_object(storage, &entry, &opener).map_err(|e| {
            RestoreError::Schema {
                section,
                message: e.to_string(),
            }
        })?;
        psql_blocking(&psql, &url, reader, section, &entry.key)
    })
    .await
    .map_err(|e| RestoreError::Internal(format!("psql task: {e}")))?
}

fn psql_blocking(
    psql: &Path,
    url: &str,
    mut reader: Box<dyn Read + Send>,
    section: &'static str,
    key: &str,
) -> Result<(), RestoreError> {
    let err = |message: String| RestoreError::Schema { section, message };
    // The password goes through the environment, not the command line
    // (which other users of the host can read in the process list).
    let (url, password) = split_password(url);
    let mut cmd = Command::new(psql);
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    let mut child = cmd
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "--single-transaction",
            "--no-password",
            "-f",
            "-",
            "-d",
            &url,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            err(format!(
                "cannot run {}: {e}; install the PostgreSQL client or set source.bin_dir",
                psql.display()
            ))
        })?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| err("psql started without stdin".into()))?;
    let stderr = child.stderr.take();
    let stderr_thread = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut e) = stderr {
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    let mut buf = vec![0u8; 1 << 16];
    let copied: Result<(), String> = loop {
        match reader.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                if let Err(e) = stdin.write_all(&buf[..n]) {
                    // psql stopped reading: it failed; its stderr says why.
                    break Err(format!("psql stopped reading its input ({e})"));
                }
            }
            Err(e) => {
                let _ = child.kill();
                break Err(format!("cannot read {key}: {e}"));
            }
        }
    };
    drop(stdin);
    let status = child
        .wait()
        .map_err(|e| err(format!("waiting for psql: {e}")))?;
    let stderr = stderr_thread.join().unwrap_or_default();
    let tail: String = {
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(8)..].join("\n  ")
    };
    match copied {
        Err(m) if !m.starts_with("psql stopped") => {
            Err(err(format!("{m}; the {section} schema was rolled back")))
        }
        _ if !status.success() => Err(err(format!("psql failed ({status}):\n  {tail}"))),
        Err(m) => Err(err(m)),
        Ok(()) => {
            if !tail.is_empty() {
                tracing::warn!(event = "restore.psql_stderr", section, "psql said: {tail}");
            }
            Ok(())
        }
    }
}

/// The URL without its password, and the (percent-decoded) password.
pub fn split_password(url: &str) -> (String, Option<String>) {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let p = u
                .password()
                .map(|p| String::from_utf8_lossy(&crate::secrets::percent_decode(p)).into_owned());
            let _ = u.set_password(None);
            (u.to_string(), p)
        }
        _ => (url.to_string(), None),
    }
}

/// Loads tables into the target: one connection and one transaction per
/// table (`TRUNCATE ONLY` then `COPY … FROM STDIN WITH (FREEZE)`, so rows
/// are written frozen and a failed table leaves nothing behind).
pub struct TargetDest {
    pub url: String,
}

/// Opens the transaction that loads the large objects: their chunks go to
/// a staging table first.
pub const LO_STAGE: &str = "BEGIN; CREATE TEMP TABLE lethe_large_objects \
    (oid oid, off bigint, data bytea) ON COMMIT DROP";

/// Writes the staged chunks into the large objects pre-data created, and
/// unlinks those no chunk arrived for: the filter dropped them with the row
/// that owned them (every object in a snapshot has at least one chunk).
pub const LO_FINISH: &str = "SELECT count(lo_put(oid, off, data)) FROM lethe_large_objects; \
    SELECT count(lo_unlink(m.oid)) FROM pg_largeobject_metadata m \
    WHERE NOT EXISTS (SELECT 1 FROM lethe_large_objects l WHERE l.oid = m.oid)";

/// `COPY "s"."t" ("a", "b") FROM STDIN`
pub fn copy_in_sql(t: &TableEntry, freeze: bool) -> String {
    if t.large_objects {
        return "COPY lethe_large_objects (oid, off, data) FROM STDIN".into();
    }
    let cols = if t.columns.is_empty() {
        String::new()
    } else {
        format!(
            " ({})",
            t.columns
                .iter()
                .filter(|c| !c.generated)
                .map(|c| quote_ident(&c.name))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    format!(
        "COPY {}{cols} FROM STDIN{}",
        quote_qualified(&t.schema, &t.name),
        if freeze { " WITH (FREEZE)" } else { "" }
    )
}

#[async_trait]
impl TableDest for TargetDest {
    async fn load(
        &self,
        t: &TableEntry,
        mut rx: mpsc::Receiver<Frame>,
    ) -> Result<(), RestoreError> {
        let table = t.qualified();
        let fail = |message: String| RestoreError::Load {
            table: table.clone(),
            message,
        };
        let conn = connect(&self.url).await.map_err(|e| fail(e.to_string()))?;
        // An extension's configuration table already holds the extension's
        // own rows (from CREATE EXTENSION): added to, never emptied, and
        // not frozen (FREEZE needs the table emptied in this transaction).
        // The large objects are staged, then written with lo_put into the
        // (empty) objects pre-data created; see `LO_FINISH`.
        let freeze = !t.extension_config && !t.large_objects;
        let begin = if t.large_objects {
            LO_STAGE.to_string()
        } else if freeze {
            format!(
                "BEGIN; TRUNCATE ONLY {}",
                quote_qualified(&t.schema, &t.name)
            )
        } else {
            "BEGIN".to_string()
        };
        conn.batch_execute(&begin)
            .await
            .map_err(|e| fail(pg_message(&e)))?;
        // Boxed, not pinned on the stack: dropping it must really drop it,
        // which sends CopyFail and ends the COPY (a COPY left open blocks
        // the connection, and the server's DROP DATABASE barriers, forever).
        let mut sink = Box::pin(
            conn.copy_in::<_, bytes::Bytes>(&copy_in_sql(t, freeze))
                .await
                .map_err(|e| fail(pg_message(&e)))?,
        );
        loop {
            match rx.recv().await {
                Some(Frame::Data(b)) => {
                    if let Err(e) = sink.send(b).await {
                        return Err(fail(format!(
                            "COPY failed, the table was rolled back: {}",
                            pg_message(&e)
                        )));
                    }
                }
                Some(Frame::End) => {
                    sink.as_mut().finish().await.map_err(|e| {
                        fail(format!(
                            "COPY failed, the table was rolled back: {}",
                            pg_message(&e)
                        ))
                    })?;
                    if t.large_objects {
                        conn.batch_execute(LO_FINISH).await.map_err(|e| {
                            fail(format!("writing large objects: {}", pg_message(&e)))
                        })?;
                    }
                    conn.batch_execute("COMMIT")
                        .await
                        .map_err(|e| fail(format!("COMMIT failed: {}", pg_message(&e))))?;
                    return Ok(());
                }
                None => {
                    // The filter failed: abandon the COPY and the transaction.
                    drop(sink);
                    let rollback = conn.batch_execute("ROLLBACK");
                    // Closing the connection rolls back too, if this hangs.
                    let _ =
                        tokio::time::timeout(std::time::Duration::from_secs(30), rollback).await;
                    return Err(fail(
                        "the data stream stopped; the table was rolled back".into(),
                    ));
                }
            }
        }
    }
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

#[cfg(test)]
#[path = "loader_tests.rs"]
mod tests;
