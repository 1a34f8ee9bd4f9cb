//! PostgreSQL as a snapshot source.
//!
//! One *coordinator* connection opens `REPEATABLE READ, READ ONLY`, exports
//! its snapshot with `pg_export_snapshot()`, reads the catalog and takes
//! `ACCESS SHARE` locks on every table it will copy; it stays open (idle in
//! that transaction) until the snapshot is committed, because the exported
//! snapshot lives only as long as the exporting transaction. `pg_dump
//! --snapshot` and the COPY workers (`SET TRANSACTION SNAPSHOT`) then all see
//! exactly the same database state.

pub mod catalog;
pub mod copy;
pub mod ddl_capture;
pub mod digest;
pub mod dump;
mod pgpass;
pub mod replication;
pub mod tls;

pub use catalog::{Catalog, SourceTable};
pub use copy::CopyWorker;

use serde::{Deserialize, Serialize};
use std::str::FromStr;
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourceConfig {
    /// libpq-style URL; the password comes from PGPASSFILE or the environment.
    pub url: String,
    /// Parallel COPY workers sharing one exported snapshot.
    pub jobs: usize,
    /// Directory holding `pg_dump`/`psql`; empty means `$PATH`.
    pub bin_dir: Option<std::path::PathBuf>,
}

impl Default for SourceConfig {
    fn default() -> Self {
        Self {
            url: "postgres://postgres@127.0.0.1:5432/postgres".into(),
            jobs: 4,
            bin_dir: None,
        }
    }
}

/// A schema-qualified table name as `psql` spells it: `public.users`, or
/// with double quotes around a part that holds a dot, a quote or capitals
/// as created (`"app.v2".users`, `"Sales"."Order ""X"""`). Unquoted parts
/// are taken as written. Returns `(schema, table)`.
///
/// # Errors
/// Not two non-empty parts, or an unterminated quote: the message says what
/// is expected.
pub fn parse_table(s: &str) -> Result<(String, String), String> {
    let mut parts = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    Some('"') => break,
                    Some(c) => part.push(c),
                    None => {
                        return Err(
                            "has an unterminated double quote; spell it as psql does, e.g. \"app.v2\".users".into(),
                        );
                    }
                }
            }
            if !matches!(chars.peek(), None | Some('.')) {
                return Err("has text right after a closing double quote; separate schema and table with a dot, e.g. \"app.v2\".users".into());
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == '.' {
                    break;
                }
                if c == '"' {
                    return Err("has a double quote inside a name; quote the whole part, e.g. \"app.v2\".users".into());
                }
                part.push(c);
                chars.next();
            }
        }
        if part.is_empty() {
            return Err("must be schema-qualified, e.g. \"public.users\" (or \"\\\"app.v2\\\".users\" for a schema with a dot)".into());
        }
        parts.push(part);
        match chars.next() {
            Some('.') => continue,
            None => break,
            Some(_) => unreachable!("a part ends at a dot or the end"),
        }
    }
    match <[String; 2]>::try_from(parts) {
        Ok([schema, table]) => Ok((schema, table)),
        Err(_) => Err("must be schema-qualified, e.g. \"public.users\"; quote a part that holds a dot, e.g. \"\\\"app.v2\\\".users\"".into()),
    }
}

/// A table name from the config as manifests spell it, `schema.table`
/// (unquoted); a name [`parse_table`] refuses is returned as written (the
/// config check has named it already).
pub fn qualified(s: &str) -> String {
    parse_table(s)
        .map(|(schema, name)| format!("{schema}.{name}"))
        .unwrap_or_else(|_| s.to_string())
}

/// The oldest server this code's catalog queries were written for.
pub const MIN_SERVER_VERSION_NUM: i32 = 120000;

/// How long the coordinator waits for one table's `ACCESS SHARE` lock before
/// giving up with an error that names the table.
pub const LOCK_TIMEOUT: &str = "60s";

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("source.url is not a usable PostgreSQL URL ({url}): {message}")]
    BadUrl { url: String, message: String },
    #[error("cannot connect to PostgreSQL at {url}: {message}")]
    Connect { url: String, message: String },
    #[error("{what} failed: {message}")]
    Query { what: String, message: String },
    #[error(
        "PostgreSQL {found} is older than {MIN_SERVER_VERSION_NUM} (12.0), which lethe needs; upgrade the server or use pg_dump directly"
    )]
    ServerTooOld { found: String },
    #[error(
        "cannot lock table {table} (ACCESS SHARE, waited up to {LOCK_TIMEOUT}): {message}; \
         another session holds or awaits an exclusive lock (ALTER, DROP, VACUUM FULL, a migration?) \
         — retry when it is done; if it is a permission error, GRANT SELECT on the table to lethe's role \
         (or pg_read_all_data)"
    )]
    Lock { table: String, message: String },
    #[error("table {table} was dropped after the snapshot began")]
    Dropped { table: String },
    #[error(
        "row-level security applies to role {role} on {tables}: a COPY would silently miss rows; \
         run lethe as a role that bypasses it (ALTER ROLE {role} BYPASSRLS, or a superuser), \
         or as the tables' owner without FORCE ROW LEVEL SECURITY"
    )]
    RowSecurity { role: String, tables: String },
    #[error("{0}")]
    PgDump(String),
    #[error("COPY of {table} failed: {message}")]
    Copy { table: String, message: String },
}

/// The text of a PostgreSQL client error, with the server's message, detail
/// and hint when there are any (the driver's own `Display` says only
/// "db error").
pub fn pg_message(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        );
        if let Some(d) = db.detail() {
            s.push_str(&format!("; DETAIL: {d}"));
        }
        if let Some(h) = db.hint() {
            s.push_str(&format!("; HINT: {h}"));
        }
        return s;
    }
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(&format!(": {inner}"));
        src = inner.source();
    }
    s
}

/// `"name"` with embedded quotes doubled: safe in any SQL position.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `"schema"."name"`.
pub fn quote_qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

/// `'text'` as an SQL string literal.
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A client whose connection task is owned (and stopped on drop), so no
/// task outlives the snapshot that opened it.
pub struct PgConn {
    pub client: tokio_postgres::Client,
    task: JoinHandle<()>,
}

impl Drop for PgConn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::ops::Deref for PgConn {
    type Target = tokio_postgres::Client;
    fn deref(&self) -> &tokio_postgres::Client {
        &self.client
    }
}

/// Parses `source.url`, filling the password from `PGPASSWORD` or the
/// password file (`PGPASSFILE`, else `~/.pgpass`) the way libpq does, so the
/// same credentials serve this process and `pg_dump`.
///
/// # Errors
/// `BadUrl` naming the (redacted) URL.
pub fn parse_config(url: &str) -> Result<tokio_postgres::Config, SourceError> {
    let mut cfg = tokio_postgres::Config::from_str(url).map_err(|e| SourceError::BadUrl {
        url: crate::secrets::redact_url(url),
        message: e.to_string(),
    })?;
    if cfg.get_user().is_none()
        && let Some(u) = std::env::var("PGUSER")
            .ok()
            .or_else(|| std::env::var("USER").ok())
    {
        cfg.user(u);
    }
    if cfg.get_password().is_none() {
        if let Ok(p) = std::env::var("PGPASSWORD") {
            cfg.password(p);
        } else if let Some(p) = pgpass::lookup(&cfg) {
            cfg.password(p);
        }
    }
    cfg.application_name("lethe");
    Ok(cfg)
}

/// Which database `url` names, as `host:port/dbname` (libpq's defaults
/// filled in: port 5432, database = user): recorded in every manifest so
/// that snapshots of several databases in one repository are never
/// confused (`repo::layout::SourceScope`).
///
/// # Errors
/// `BadUrl` naming the (redacted) URL.
pub fn source_identity(url: &str) -> Result<(String, String), SourceError> {
    let cfg = tokio_postgres::Config::from_str(url).map_err(|e| SourceError::BadUrl {
        url: crate::secrets::redact_url(url),
        message: e.to_string(),
    })?;
    let hosts: Vec<String> = cfg
        .get_hosts()
        .iter()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(n) => n.to_ascii_lowercase(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .collect();
    let hosts = if hosts.is_empty() {
        "localhost".to_string()
    } else {
        hosts.join(",")
    };
    let ports: Vec<String> = cfg.get_ports().iter().map(u16::to_string).collect();
    let ports = if ports.is_empty() {
        "5432".to_string()
    } else {
        ports.join(",")
    };
    let user = cfg
        .get_user()
        .map(str::to_string)
        .or_else(|| std::env::var("PGUSER").ok())
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_default();
    let db = cfg.get_dbname().map_or(user, str::to_string);
    Ok((format!("{hosts}:{ports}/{db}"), db))
}

/// Opens a session with the settings every Lethe connection uses: no
/// statement/lock/idle timeouts from the server's defaults (a snapshot may
/// run for hours), exact float output, ISO dates, `row_security = off` (a
/// COPY that row-level security would filter fails instead of silently
/// returning fewer rows) and a `pg_catalog` search path.
///
/// # Errors
/// `Connect` with the server's message.
pub async fn connect(url: &str) -> Result<PgConn, SourceError> {
    let ep = tls::endpoint(url)?;
    let mut cfg = parse_config(&ep.driver_url)?;
    let redacted = crate::secrets::redact_url(url);
    let failed = |e: tokio_postgres::Error| SourceError::Connect {
        url: redacted.clone(),
        message: pg_message(&e),
    };
    let (client, task) = match tls::connector(&ep)? {
        None => {
            cfg.ssl_mode(tokio_postgres::config::SslMode::Disable);
            let (client, conn) = cfg.connect(tokio_postgres::NoTls).await.map_err(failed)?;
            (client, spawn_connection(conn))
        }
        Some(make) => {
            cfg.ssl_mode(tokio_postgres::config::SslMode::Require);
            let (client, conn) = cfg.connect(make).await.map_err(failed)?;
            (client, spawn_connection(conn))
        }
    };
    let pc = PgConn { client, task };
    pc.batch_execute(
        "SET statement_timeout = 0; SET lock_timeout = 0; SET idle_in_transaction_session_timeout = 0; \
         SET extra_float_digits = 3; SET DateStyle = ISO; SET IntervalStyle = postgres; \
         SET row_security = off; SET search_path = pg_catalog",
    )
    .await
    .map_err(|e| SourceError::Connect { url: redacted, message: pg_message(&e) })?;
    Ok(pc)
}

fn spawn_connection<F>(conn: F) -> JoinHandle<()>
where
    F: std::future::Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %pg_message(&e), "postgres connection ended with an error");
        }
    })
}

/// The coordinator: the transaction whose snapshot everyone shares.
pub struct Coordinator {
    conn: PgConn,
    /// The exported snapshot id, for `SET TRANSACTION SNAPSHOT` and
    /// `pg_dump --snapshot`.
    pub snapshot_id: String,
}

impl Coordinator {
    /// Connects, begins the snapshot transaction and exports its snapshot.
    ///
    /// # Errors
    /// Connection or query failures.
    pub async fn open(url: &str) -> Result<Coordinator, SourceError> {
        let conn = connect(url).await?;
        conn.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await
            .map_err(|e| query_err("BEGIN REPEATABLE READ", &e))?;
        let row = conn
            .query_one("SELECT pg_export_snapshot()", &[])
            .await
            .map_err(|e| query_err("pg_export_snapshot()", &e))?;
        let snapshot_id: String = row.get(0);
        Ok(Coordinator { conn, snapshot_id })
    }

    /// Connects and begins a transaction on a snapshot another session
    /// exported (a replication slot's, for a base of continuous capture):
    /// the workers and `pg_dump --snapshot` then use the same name.
    ///
    /// # Errors
    /// Connection failures; `Query` when the snapshot is gone.
    pub async fn import(url: &str, snapshot: &str) -> Result<Coordinator, SourceError> {
        let conn = connect(url).await?;
        conn.batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT {}",
            quote_literal(snapshot)
        ))
        .await
        .map_err(|e| query_err("SET TRANSACTION SNAPSHOT (the replication slot's)", &e))?;
        Ok(Coordinator {
            conn,
            snapshot_id: snapshot.to_string(),
        })
    }

    /// Reads the catalog inside the snapshot (see `catalog`).
    ///
    /// # Errors
    /// Query failures, an unsupported server, large objects, row security.
    pub async fn catalog(&self) -> Result<Catalog, SourceError> {
        catalog::read(&self.conn).await
    }

    /// Whether the source's schema `lethe` is lethe's own (its DDL
    /// capture, [`ddl_capture`]), which no dump carries.
    ///
    /// # Errors
    /// The query fails.
    pub async fn lethe_schema_is_ours(&self) -> Result<bool, SourceError> {
        Ok(ddl_capture::lethe_schema(&self.conn).await? == Some(true))
    }

    /// The schema's digest inside the snapshot (see `digest`).
    ///
    /// # Errors
    /// The query fails.
    pub async fn schema_digest(&self) -> Result<String, SourceError> {
        Ok(digest::schema_digest(&self.conn).await?.digest)
    }

    /// Takes `ACCESS SHARE` on each table, one statement per table so a
    /// failure names the table. Held until the coordinator closes.
    ///
    /// # Errors
    /// `Lock` naming the first table that could not be locked.
    pub async fn lock_tables(&self, tables: &[SourceTable]) -> Result<(), SourceError> {
        self.conn
            .batch_execute(&format!(
                "SET LOCAL lock_timeout = {}",
                quote_literal(LOCK_TIMEOUT)
            ))
            .await
            .map_err(|e| query_err("SET lock_timeout", &e))?;
        for t in tables.iter().filter(|t| !t.large_objects) {
            let sql = format!(
                "LOCK TABLE ONLY {} IN ACCESS SHARE MODE",
                quote_qualified(&t.schema, &t.name)
            );
            self.conn.batch_execute(&sql).await.map_err(|e| {
                if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) {
                    SourceError::Dropped {
                        table: t.qualified(),
                    }
                } else {
                    SourceError::Lock {
                        table: t.qualified(),
                        message: pg_message(&e),
                    }
                }
            })?;
        }
        Ok(())
    }

    /// Tables whose file changed since the snapshot (a TRUNCATE, VACUUM
    /// FULL, CLUSTER or table rewrite committed after it): a COPY reads the
    /// current file, so in an imported snapshot (a base of continuous
    /// capture) such a table would read as of the rewrite, not the
    /// snapshot. Call after `lock_tables`, which blocks further rewrites.
    ///
    /// # Errors
    /// Query failures.
    pub async fn rewritten_since_snapshot(
        &self,
        tables: &[SourceTable],
    ) -> Result<Vec<String>, SourceError> {
        let oids: Vec<u32> = tables
            .iter()
            .filter(|t| !t.large_objects)
            .map(|t| t.oid)
            .collect();
        let rows = self
            .conn
            .query(
                "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.oid = ANY($1::oid[]) AND c.relfilenode <> 0 \
                   AND c.relfilenode IS DISTINCT FROM pg_relation_filenode(c.oid)",
                &[&oids],
            )
            .await
            .map_err(|e| query_err("comparing the tables' files with the snapshot", &e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Sequence values, read while the snapshot is held. Sequences are not
    /// transactional: like pg_dump, this reads their current values.
    ///
    /// # Errors
    /// Query failures (e.g. no SELECT privilege on a sequence).
    pub async fn sequence_values(
        &self,
        seqs: &[(String, String)],
    ) -> Result<Vec<crate::repo::manifest::SequenceValue>, SourceError> {
        catalog::sequence_values(&self.conn, seqs).await
    }

    /// Ends the snapshot transaction.
    pub async fn close(self) {
        let _ = self.conn.batch_execute("ROLLBACK").await;
    }
}

pub(crate) fn query_err(what: &str, e: &tokio_postgres::Error) -> SourceError {
    SourceError::Query {
        what: what.to_string(),
        message: pg_message(e),
    }
}

#[cfg(test)]
mod tests;
