//! lethe's DDL capture on the source: schema `lethe` with its functions
//! and the event triggers `lethe_ddl_end`, `lethe_sql_drop` and
//! `lethe_ddl_start` (`ddl_capture.sql`), which put each DDL command into
//! the logical stream as a transactional `lethe.ddl` message at its place
//! in its transaction. Indexes, triggers, views and functions created or
//! dropped come with the statement that rebuilds them (PostgreSQL's
//! `pg_get_*def`), which a point restore runs after post-data; the schema
//! digest then leaves those objects to the stream (`schema_digest.sql`).
//! An `ALTER TABLE` that only appended columns (compared with the table's
//! shape `lethe_ddl_start` kept) comes with the columns, the value old
//! rows read in them and what they add to the schema digest, so the capture needs
//! no base for it and a point restore adds the columns after pre-data.
//! Everything else is still the digest's to judge.
//!
//! Creating event triggers takes a superuser in PostgreSQL 15, so the
//! capture installs them only when its role is one; otherwise the digest
//! judges every change, as before. They never reach a base: pg_dump leaves
//! out schema `lethe` (when it is lethe's, [`lethe_schema`]) and
//! [`PostDataCut`] removes the event triggers from post-data, which pg_dump
//! cannot exclude.

use super::{PgConn, SourceError, query_err, quote_literal};

/// lethe's schema on the source.
pub const SCHEMA: &str = "lethe";
/// The schema's comment, which marks it as lethe's.
const MARK: &str = "lethe continuous capture: DDL capture (removed by lethe continuous disable)";
/// The event triggers.
pub const TRIGGERS: [&str; 3] = ["lethe_ddl_end", "lethe_sql_drop", "lethe_ddl_start"];
/// lethe's functions in its schema, with their argument types.
const FUNCTIONS: [&str; 8] = [
    "capture_ddl()",
    "capture_drop()",
    "capture_start()",
    "table_shape(oid, int)",
    "table_name(oid)",
    "added_columns(oid, int)",
    "added_sql(oid, int, text)",
    "added_digest(oid, int)",
];
const INSTALL_SQL: &str = include_str!("ddl_capture.sql");

/// How schema changes are seen on this source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DdlCapture {
    /// By lethe's event triggers (and the digest for what they leave to it).
    EventTriggers,
    /// By the schema digest alone; why not by event triggers.
    Digest(String),
}

impl DdlCapture {
    /// For logs and `lethe continuous check`.
    pub fn as_str(&self) -> &'static str {
        match self {
            DdlCapture::EventTriggers => "event_triggers",
            DdlCapture::Digest(_) => "schema_digest",
        }
    }
}

/// The names of lethe's functions, for the catalog.
fn function_names() -> Vec<String> {
    FUNCTIONS
        .iter()
        .map(|f| f.split('(').next().unwrap_or(f).to_string())
        .collect()
}

/// Whether the session's role is a superuser.
async fn superuser(conn: &PgConn) -> Result<bool, SourceError> {
    let row = conn
        .query_one(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .map_err(|e| query_err("reading the role's attributes", &e))?;
    Ok(row.get(0))
}

/// `Some(true)` when schema `lethe` exists and is lethe's: marked by its
/// comment and holding lethe's functions and nothing else.
/// `Some(false)` when it exists and is not, or holds anything more (lethe
/// then leaves it alone, and backs it up like any other schema: a table
/// someone put there is never left out of a base). `None` when there is
/// none.
///
/// # Errors
/// The catalog cannot be read.
pub async fn lethe_schema(conn: &PgConn) -> Result<Option<bool>, SourceError> {
    let row = conn
        .query_opt(
            "SELECT obj_description(n.oid, 'pg_namespace') IS NOT DISTINCT FROM $2 \
                AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.relnamespace = n.oid) \
                AND NOT EXISTS (SELECT 1 FROM pg_type t WHERE t.typnamespace = n.oid) \
                AND NOT EXISTS (SELECT 1 FROM pg_proc p WHERE p.pronamespace = n.oid \
                                AND NOT p.proname = ANY($3)) \
             FROM pg_namespace n WHERE n.nspname = $1",
            &[&SCHEMA, &MARK, &function_names()],
        )
        .await
        .map_err(|e| query_err("reading schema lethe", &e))?;
    Ok(row.map(|r| r.get(0)))
}

/// Installs (or brings up to date) the DDL capture when the role may: a
/// superuser, and no schema `lethe` of someone else's. What is not
/// possible is said in [`DdlCapture::Digest`], not an error: the digest
/// still sees every change.
///
/// # Errors
/// The catalog cannot be read, or installing fails.
pub async fn install(conn: &PgConn) -> Result<DdlCapture, SourceError> {
    let possible = possible(conn).await?;
    if possible != DdlCapture::EventTriggers {
        return Ok(possible);
    }
    conn.batch_execute(&format!(
        "BEGIN; {INSTALL_SQL}; COMMENT ON SCHEMA {SCHEMA} IS {}; COMMIT",
        quote_literal(MARK)
    ))
    .await
    .map_err(|e| {
        query_err(
            "installing the DDL capture (schema lethe, event triggers)",
            &e,
        )
    })?;
    Ok(DdlCapture::EventTriggers)
}

/// How schema changes would be seen if capture started now: whether the
/// role may install the event triggers ([`install`] does).
///
/// # Errors
/// The catalog cannot be read.
pub async fn possible(conn: &PgConn) -> Result<DdlCapture, SourceError> {
    if !superuser(conn).await? {
        return Ok(DdlCapture::Digest(
            "creating event triggers takes a superuser (PostgreSQL 15); schema changes are seen by the schema digest, \
             and each one costs a base"
                .into(),
        ));
    }
    if lethe_schema(conn).await? == Some(false) {
        return Ok(DdlCapture::Digest(format!(
            "the source has a schema named {SCHEMA} that lethe did not create, or that holds objects lethe did not put there; \
             lethe leaves it alone (and backs it up) and installs no event trigger"
        )));
    }
    Ok(DdlCapture::EventTriggers)
}

/// What [`remove`] dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RemovedDdl {
    pub triggers: bool,
    pub schema: bool,
}

/// Drops the event triggers and lethe's schema, when there. A schema
/// `lethe` lethe did not create is left alone.
///
/// # Errors
/// The catalog cannot be read, or dropping fails (a role that is not a
/// superuser cannot drop event triggers).
pub async fn remove(conn: &PgConn) -> Result<RemovedDdl, SourceError> {
    let present: i64 = conn
        .query_one(
            "SELECT count(*) FROM pg_event_trigger WHERE evtname = ANY($1)",
            &[&TRIGGERS.to_vec()],
        )
        .await
        .map_err(|e| query_err("reading event triggers", &e))?
        .get(0);
    let ours = lethe_schema(conn).await? == Some(true);
    if present > 0 {
        let drops: String = TRIGGERS
            .iter()
            .map(|t| format!("DROP EVENT TRIGGER IF EXISTS {t};"))
            .collect();
        conn.batch_execute(&drops).await.map_err(|e| {
            query_err(
                &format!("dropping event triggers {}", TRIGGERS.join(", ")),
                &e,
            )
        })?;
    }
    if ours {
        let drops: String = FUNCTIONS
            .iter()
            .map(|f| format!("DROP FUNCTION IF EXISTS {SCHEMA}.{f}; "))
            .collect();
        conn.batch_execute(&format!("{drops}DROP SCHEMA {SCHEMA}"))
            .await
            .map_err(|e| {
                query_err(
                    "dropping schema lethe (it must hold only lethe's functions)",
                    &e,
                )
            })?;
    }
    Ok(RemovedDdl {
        triggers: present > 0,
        schema: ours,
    })
}

/// Cuts lethe's event triggers out of pg_dump's plain post-data output as
/// it streams: each is a table-of-contents entry headed `-- Name:
/// lethe_ddl_end; Type: EVENT TRIGGER; …`, which runs to the next `-- `
/// header line. Lines are split across chunks; [`PostDataCut::finish`]
/// returns what is left.
#[derive(Debug, Default)]
pub struct PostDataCut {
    /// The start of a line not ended yet.
    partial: Vec<u8>,
    /// Inside one of lethe's entries.
    cutting: bool,
}

impl PostDataCut {
    /// The part of `chunk` to keep, whole lines only.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(chunk.len() + self.partial.len());
        let mut rest = chunk;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            let (line, tail) = rest.split_at(nl + 1);
            rest = tail;
            if self.partial.is_empty() {
                self.line(line, &mut out);
            } else {
                let mut whole = std::mem::take(&mut self.partial);
                whole.extend_from_slice(line);
                self.line(&whole, &mut out);
            }
        }
        self.partial.extend_from_slice(rest);
        out
    }

    /// The last line, if the output did not end with one.
    pub fn finish(&mut self) -> Vec<u8> {
        let last = std::mem::take(&mut self.partial);
        let mut out = Vec::new();
        if !last.is_empty() {
            self.line(&last, &mut out);
        }
        out
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<u8>) {
        let header = line.strip_prefix(b"-- Name: ").is_some_and(|rest| {
            TRIGGERS.iter().any(|t| {
                rest.strip_prefix(t.as_bytes())
                    .is_some_and(|r| r.starts_with(b"; Type: EVENT TRIGGER;"))
            })
        });
        if header {
            self.cutting = true;
            return;
        }
        if self.cutting {
            if !line.starts_with(b"-- ") {
                return;
            }
            self.cutting = false;
        }
        out.extend_from_slice(line);
    }
}

#[cfg(test)]
#[path = "ddl_capture_tests.rs"]
mod tests;
