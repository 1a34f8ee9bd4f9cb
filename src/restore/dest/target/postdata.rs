//! Post-data in parallel: pg_dump's plain post-data section split at its
//! `-- Name: …; Type: …` entry headers and applied on `jobs` connections,
//! in phases that respect what depends on what (as pg_restore does with
//! its table of contents):
//!
//! 1. `CONSTRAINT` and `INDEX` entries (primary keys, unique constraints,
//!    indexes) in parallel: each touches one table. Those on a table the
//!    snapshot holds data for start as soon as that table is loaded, while
//!    the others still load ([`schedule`], [`run_early`]), as pg_restore
//!    does; the rest (e.g. on a partitioned parent) run after the data;
//! 2. `INDEX ATTACH`, in order (foreign keys into a partitioned table need
//!    its attached index);
//! 3. `FK CONSTRAINT` in parallel (validation scans each child), retried
//!    when two validations deadlock on a shared parent. A key between two
//!    tables the snapshot holds data for starts as soon as both are loaded
//!    and their own indexes and keys are built;
//! 4. everything else (triggers, materialized view data, comments, ACLs,
//!    policies …) in order on one connection.
//!
//! The section is run through the extended protocol, not `psql`: the only
//! psql meta-commands pg_dump writes here are `\restrict`/`\unrestrict`,
//! which are dropped; any other line starting with a backslash makes
//! [`split`] give up, and the caller falls back to `psql`.

use crate::pg::{PgConn, connect, pg_message};
use crate::repo::manifest::TableEntry;
use crate::restore::RestoreError;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::mpsc;

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
        if line == "--"
            && let Some(h) = lines.get(i + 1).and_then(|l| l.strip_prefix("-- Name: "))
        {
            let (name, rest) = h.split_once("; Type: ")?;
            let kind = rest.split("; Schema: ").next()?.to_string();
            entries.push(Entry {
                name: name.to_string(),
                kind,
                sql: String::new(),
            });
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

/// Post-data entries split by when they may run.
#[derive(Debug, Default)]
pub struct Schedule {
    /// Index and constraint entries by the manifest table they build on:
    /// each may run once that table's data is committed.
    pub per_table: HashMap<usize, Vec<Entry>>,
    /// Foreign keys between two manifest tables `(entry, child, parent)`:
    /// each may run once both tables are loaded and all their `per_table`
    /// entries (the parent's key among them) are built.
    pub fks: Vec<(Entry, usize, usize)>,
    /// Everything else, in archive order, for after the data.
    pub later: Vec<Entry>,
}

/// Splits `entries` into those that can start when their tables are loaded
/// and those that wait for all the data.
pub fn schedule(entries: Vec<Entry>, tables: &[TableEntry]) -> Schedule {
    let index: HashMap<(&str, &str), usize> = tables
        .iter()
        .enumerate()
        .map(|(i, t)| ((t.schema.as_str(), t.name.as_str()), i))
        .collect();
    let find =
        |(schema, name): (String, String)| index.get(&(schema.as_str(), name.as_str())).copied();
    let mut out = Schedule::default();
    for e in entries {
        if e.kind == "FK CONSTRAINT" {
            match fk_tables(&e).map(|(c, p)| (find(c), find(p))) {
                Some((Some(child), Some(parent))) => out.fks.push((e, child, parent)),
                _ => out.later.push(e),
            }
            continue;
        }
        match target_table(&e).and_then(find) {
            Some(t) => out.per_table.entry(t).or_default().push(e),
            None => out.later.push(e),
        }
    }
    out
}

/// The statement of an entry: its SQL without comment lines, on one line.
fn statement(e: &Entry) -> String {
    e.sql
        .lines()
        .filter(|l| !l.starts_with("--"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The table a `CONSTRAINT` or `INDEX` entry builds on, unquoted, read from
/// pg_dump's `ALTER TABLE [ONLY] s.t ADD CONSTRAINT …` or
/// `CREATE [UNIQUE] INDEX i ON [ONLY] s.t …`. `None` for other kinds, for
/// `ON ONLY` (an index on a partitioned parent, attached later), and for
/// anything that does not parse: those wait for all the data.
pub fn target_table(e: &Entry) -> Option<(String, String)> {
    let stmt = statement(e);
    let rest = match e.kind.as_str() {
        "CONSTRAINT" => {
            let (table, after) = altered_table(&stmt)?;
            after.starts_with(" ADD CONSTRAINT ").then_some(())?;
            return Some(table);
        }
        "INDEX" => stmt.strip_prefix("CREATE ")?,
        _ => return None,
    };
    let rest = rest.strip_prefix("UNIQUE ").unwrap_or(rest);
    let rest = rest.strip_prefix("INDEX ")?;
    let (_, rest) = ident(rest)?;
    let rest = rest.strip_prefix(" ON ")?;
    if rest.starts_with("ONLY ") {
        return None;
    }
    let (schema, name, _) = qualified(rest)?;
    Some((schema, name))
}

/// `(child, parent)` of an `FK CONSTRAINT` entry: pg_dump's
/// `ALTER TABLE [ONLY] child ADD CONSTRAINT c FOREIGN KEY (…) REFERENCES parent(…)…`.
pub fn fk_tables(e: &Entry) -> Option<((String, String), (String, String))> {
    let stmt = statement(e);
    let (child, rest) = altered_table(&stmt)?;
    let rest = rest.strip_prefix(" ADD CONSTRAINT ")?;
    let (_, rest) = ident(rest)?;
    let rest = rest.strip_prefix(" FOREIGN KEY (")?;
    // Skip the column list (identifiers, commas, spaces) to its ')'.
    let mut rest = rest;
    loop {
        let (_, r) = ident(rest)?;
        match r.strip_prefix(", ") {
            Some(r) => rest = r,
            None => {
                rest = r.strip_prefix(')')?;
                break;
            }
        }
    }
    let rest = rest.strip_prefix(" REFERENCES ")?;
    let (schema, name, after) = qualified(rest)?;
    after.starts_with('(').then_some(())?;
    Some((child, (schema, name)))
}

/// `ALTER TABLE [ONLY] s.t` at the start of `stmt`: the table and the rest.
fn altered_table(stmt: &str) -> Option<((String, String), &str)> {
    let r = stmt.strip_prefix("ALTER TABLE ")?;
    let r = r.strip_prefix("ONLY ").unwrap_or(r);
    let (schema, name, after) = qualified(r)?;
    Some(((schema, name), after))
}

/// `schema.name` at the start of `s`, and what follows.
fn qualified(s: &str) -> Option<(String, String, &str)> {
    let (schema, rest) = ident(s)?;
    let (name, rest) = ident(rest.strip_prefix('.')?)?;
    Some((schema, name, rest))
}

/// One SQL identifier at the start of `s` (`"…"` with `""` escapes, or a
/// bare word), unquoted, and what follows.
fn ident(s: &str) -> Option<(String, &str)> {
    if let Some(body) = s.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = body.char_indices();
        while let Some((i, c)) = chars.next() {
            if c != '"' {
                out.push(c);
                continue;
            }
            if body[i + 1..].starts_with('"') {
                out.push('"');
                chars.next();
                continue;
            }
            return Some((out, &body[i + 1..]));
        }
        return None;
    }
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
        .unwrap_or(s.len());
    (end > 0).then(|| (s[..end].to_string(), &s[end..]))
}

/// What the early post-data dispatcher knows about one table.
#[derive(Default, Clone, Copy)]
struct TableState {
    loaded: bool,
    /// Its `per_table` entries not finished yet.
    building: usize,
}

impl TableState {
    fn ready(self) -> bool {
        self.loaded && self.building == 0
    }
}

/// Runs `schedule`'s `per_table` entries as `loaded` reports their table
/// committed, and its `fks` once both of their tables are loaded and built,
/// on up to `jobs` connections (opened when the first entry is due), while
/// the data phase goes on. When `loaded` closes (the data phase is over)
/// every entry not yet run is run. Returns how many entries ran.
///
/// # Errors
/// The first statement that fails, named by its entry; entries not yet
/// started are then skipped.
pub async fn run_early(
    url: String,
    preamble: String,
    per_table: HashMap<usize, Vec<Entry>>,
    fks: Vec<(Entry, usize, usize)>,
    mut loaded: mpsc::UnboundedReceiver<usize>,
    jobs: usize,
) -> Result<usize, RestoreError> {
    let total = per_table.values().map(Vec::len).sum::<usize>() + fks.len();
    let mut state: HashMap<usize, TableState> = HashMap::new();
    for (t, es) in &per_table {
        state.entry(*t).or_default().building = es.len();
    }
    let mut per_table = per_table;
    let mut fks: Vec<Option<(Entry, usize, usize)>> = fks.into_iter().map(Some).collect();
    // Entries to the workers, with the table they build on (None for a
    // key); each one's table comes back on `done` when it has been handled.
    let (tx, rx) = mpsc::unbounded_channel::<(Entry, Option<usize>)>();
    let (done_tx, mut done) = mpsc::unbounded_channel::<Option<usize>>();
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..jobs.max(1).min(total) {
        let (url, preamble, rx, failed, done_tx) = (
            url.clone(),
            preamble.clone(),
            rx.clone(),
            failed.clone(),
            done_tx.clone(),
        );
        workers.spawn(async move {
            // After a failure (here or in another worker) entries are only
            // acknowledged, so the dispatcher's count still comes to zero.
            let mut conn: Option<PgConn> = None;
            let mut error = None;
            loop {
                let next = rx.lock().await.recv().await;
                let Some((e, table)) = next else {
                    return error.map_or(Ok(()), Err);
                };
                if !failed.load(Ordering::Relaxed) {
                    let result = async {
                        let c = match &conn {
                            Some(c) => c,
                            None => conn.insert(session(&url, &preamble).await?),
                        };
                        apply(c, &e).await
                    }
                    .await;
                    if let Err(err) = result {
                        failed.store(true, Ordering::Relaxed);
                        error = Some(err);
                    }
                }
                let _ = done_tx.send(table);
            }
        });
    }
    drop(done_tx);
    let mut in_flight = 0usize;
    let mut data_over = false;
    // Dispatch keys whose tables are both ready.
    let dispatch_fks = |state: &HashMap<usize, TableState>,
                        fks: &mut Vec<Option<(Entry, usize, usize)>>,
                        in_flight: &mut usize,
                        all: bool| {
        for slot in fks.iter_mut() {
            let due = slot.as_ref().is_some_and(|(_, c, p)| {
                let ready = |t| state.get(t).is_some_and(|s: &TableState| s.ready());
                all || (ready(c) && ready(p))
            });
            if due && let Some((e, _, _)) = slot.take() {
                *in_flight += 1;
                let _ = tx.send((e, None));
            }
        }
    };
    loop {
        if data_over && in_flight == 0 && per_table.is_empty() && fks.iter().all(Option::is_none) {
            break;
        }
        tokio::select! {
            t = loaded.recv(), if !data_over => match t {
                Some(t) => {
                    state.entry(t).or_default().loaded = true;
                    for e in per_table.remove(&t).unwrap_or_default() {
                        in_flight += 1;
                        let _ = tx.send((e, Some(t)));
                    }
                    dispatch_fks(&state, &mut fks, &mut in_flight, false);
                }
                None => {
                    // The data phase is over: whatever is left runs now,
                    // keys after the tables' own entries.
                    data_over = true;
                    let mut left: Vec<_> = std::mem::take(&mut per_table).into_iter().collect();
                    left.sort_by_key(|(t, _)| *t);
                    for (t, es) in left {
                        state.entry(t).or_default().loaded = true;
                        for e in es {
                            in_flight += 1;
                            let _ = tx.send((e, Some(t)));
                        }
                    }
                    dispatch_fks(&state, &mut fks, &mut in_flight, false);
                }
            },
            d = done.recv() => match d {
                Some(table) => {
                    in_flight -= 1;
                    if let Some(t) = table {
                        let s = state.entry(t).or_default();
                        s.building = s.building.saturating_sub(1);
                    }
                    dispatch_fks(&state, &mut fks, &mut in_flight, false);
                }
                // Every worker stopped (a failure): nothing more can run.
                None => break,
            },
        }
        // After the data, a key whose tables never became ready (a failed
        // entry) is not waited for forever.
        if data_over && in_flight == 0 && per_table.is_empty() {
            dispatch_fks(&state, &mut fks, &mut in_flight, true);
        }
    }
    drop(tx);
    let mut first: Option<RestoreError> = None;
    while let Some(r) = workers.join_next().await {
        let r = r.unwrap_or_else(|e| Err(RestoreError::Internal(format!("post-data task: {e}"))));
        if let Err(e) = r {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(total), Err)
}

/// Applies the post-data section in the phases above. `entries` are what
/// [`run_early`] did not run (all of the section if it was not used).
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
    parallel(url, preamble, indexes, jobs).await?;
    parallel(url, preamble, attach, 1).await?;
    parallel(url, preamble, fks, jobs).await?;
    parallel(url, preamble, rest, 1).await
}

#[cfg(test)]
#[path = "postdata_tests.rs"]
mod tests;
