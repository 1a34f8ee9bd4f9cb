//! Restore drills: prove the backups restore, on a schedule (`[drill]`) or
//! by hand (`lethe drill`). A drill creates a scratch database and marks it
//! (a `lethe-drill:` comment), restores the latest snapshot (or, with
//! continuous capture, the latest point) into it through the erasure
//! filter, checks that every table holds the manifest's rows minus what the
//! filter dropped, looks for erased subjects in the root tables (none may
//! be there), measures the time (the RTO), and drops what it created.
//!
//! **Safety.** A drill writes only into a database it created and marked,
//! and drops only such a database. A `target` naming an existing database
//! without the mark is refused and left untouched. A target on the
//! source's server is refused unless `drill.allow_same_server = true`; the
//! source database itself is always refused.

use super::{Destination, RestoreOptions};
use crate::config::Config;
use crate::drill_config::{Target, normal_host};
use crate::pg::{quote_ident, quote_literal, quote_qualified};
use crate::repo::evidence::{self, Entry, Kind};
use crate::storage::Storage;
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;

pub use crate::drill_config::{DrillConfig, MARK_PREFIX};

/// Where a drill failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Target,
    Create,
    Restore,
    CheckRows,
    LeakCheck,
    Drop,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Target => "target",
            Step::Create => "create",
            Step::Restore => "restore",
            Step::CheckRows => "check_rows",
            Step::LeakCheck => "leak_check",
            Step::Drop => "drop",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("drill failed at {}: {message}", step.as_str())]
pub struct DrillError {
    pub step: Step,
    pub message: String,
}

fn fail(step: Step, message: impl Into<String>) -> DrillError {
    DrillError {
        step,
        message: message.into(),
    }
}

/// What a drill did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrillReport {
    pub snapshot: String,
    pub point: Option<String>,
    pub database: String,
    /// The whole drill, create to drop: the recovery time objective.
    pub seconds: f64,
    pub restore_seconds: f64,
    pub tables: usize,
    pub rows: u64,
    pub dropped: u64,
    /// The erasure list the drill's restore applied.
    pub erasure_list: crate::repo::manifest::ListState,
}

/// The source's host, port and database, as the drill compares them.
fn source_place(cfg: &Config) -> Option<(String, u16, String)> {
    let c: tokio_postgres::Config = cfg.source.url.parse().ok()?;
    let host = match c.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => normal_host(h),
        _ => "localhost".into(),
    };
    let port = c.get_ports().first().copied().unwrap_or(5432);
    Some((host, port, c.get_dbname().unwrap_or("postgres").to_string()))
}

/// The server's own id (`pg_control_system()`), when the role may read it.
async fn system_id(conn: &crate::pg::PgConn) -> Option<String> {
    conn.client
        .query_one(
            "SELECT system_identifier::text FROM pg_control_system()",
            &[],
        )
        .await
        .ok()
        .map(|r| r.get(0))
}

/// Runs one drill and logs `drill.started`, then `drill.completed` or
/// `drill.failed` (the step and the error), and appends its evidence record.
///
/// # Errors
/// The step that failed and why; what the drill created is dropped first.
pub async fn run(cfg: &Config, storage: Arc<dyn Storage>) -> Result<DrillReport, DrillError> {
    let shown = cfg
        .drill
        .target
        .as_deref()
        .map(crate::secrets::redact_url)
        .unwrap_or_default();
    tracing::info!(event = "drill.started", target = %shown, "restore drill started");
    let out = drill(cfg, Arc::clone(&storage)).await;
    match &out {
        Ok(r) => {
            tracing::info!(
                event = "drill.completed",
                snapshot = %r.snapshot,
                point = r.point.as_deref(),
                database = %r.database,
                seconds = r.seconds,
                restore_seconds = r.restore_seconds,
                tables = r.tables,
                rows = r.rows,
                dropped = r.dropped,
                "restore drill passed in {:.1} s: {} tables, {} rows, {} dropped by the filter, no erased subject found",
                r.seconds,
                r.tables,
                r.rows,
                r.dropped
            );
            let mut e = Entry::new(Kind::Drill, "completed")
                .snapshot(&r.snapshot)
                .list(r.erasure_list.clone())
                .count("tables", r.tables as u64)
                .count("rows", r.rows)
                .count("rows_dropped", r.dropped)
                .count("milliseconds", (r.seconds * 1000.0) as u64);
            e.point = r.point.clone();
            evidence::record(storage, e).await;
        }
        Err(e) => {
            tracing::error!(event = "drill.failed", step = e.step.as_str(), error = %e.message, "restore drill failed");
            let entry = Entry::new(Kind::Drill, "failed").note("step", e.step.as_str());
            evidence::record(storage, entry).await;
        }
    }
    out
}

async fn drill(cfg: &Config, storage: Arc<dyn Storage>) -> Result<DrillReport, DrillError> {
    let started = Instant::now();
    let (target, admin) = open_target(cfg).await?;
    claim(&admin, &target).await?;
    let result = restore_and_check(cfg, storage, &target).await;
    // Drop what was created, whatever happened.
    let dropped = drop_marked(&admin, &target.database).await;
    let mut report = result?;
    dropped?;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// `drill.target` parsed, a session on its server's `postgres` database,
/// and the server judged: not the source's unless allowed, never the
/// source database. What a drill and `lethe check` both start with.
async fn open_target(cfg: &Config) -> Result<(Target, crate::pg::PgConn), DrillError> {
    let raw = cfg.drill.target.as_deref().ok_or_else(|| {
        fail(
            Step::Target,
            "drill.target is not set: name the scratch database a drill creates, e.g. \"postgres://lethe@scratch-db/lethe_drill\"",
        )
    })?;
    let target =
        Target::parse(raw).map_err(|e| fail(Step::Target, format!("drill.target: {e}")))?;
    let admin = crate::pg::connect(&target.maintenance())
        .await
        .map_err(|e| fail(Step::Target, e.to_string()))?;
    check_not_source(cfg, &target, &admin).await?;
    Ok((target, admin))
}

/// What `lethe check` asks of `drill.target` without touching it: a URL
/// it accepts, a server it may use (not the source's unless allowed, never
/// the source database), a role that may create databases, and a name that
/// is free or a marked leftover. Returns a line saying what it found.
///
/// # Errors
/// The first thing a drill would refuse, as the drill would say it.
pub async fn preflight(cfg: &Config) -> Result<String, DrillError> {
    let (target, admin) = open_target(cfg).await?;
    let may: bool = admin
        .client
        .query_one(
            "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .map_err(|e| fail(Step::Create, crate::pg::pg_message(&e)))?
        .get(0);
    if !may {
        return Err(fail(
            Step::Create,
            "the role of drill.target cannot create databases: ALTER ROLE … CREATEDB",
        ));
    }
    let state = match existing(&admin, &target.database).await? {
        Existing::Free => "free",
        Existing::Leftover => "a leftover of an earlier drill (dropped by the next)",
    };
    Ok(format!(
        "{}: the role may create it; the name is {state}",
        crate::secrets::redact_url(target.url.as_str())
    ))
}

/// Refuses the source database always, and its server unless allowed.
async fn check_not_source(
    cfg: &Config,
    target: &Target,
    admin: &crate::pg::PgConn,
) -> Result<(), DrillError> {
    let (host, port) = target.host_port();
    let source = source_place(cfg);
    let mut same_server = source
        .as_ref()
        .is_some_and(|(h, p, _)| *h == host && *p == port);
    let mut same_db = same_server
        && source
            .as_ref()
            .is_some_and(|(_, _, d)| *d == target.database);
    // The servers' own ids say it better than names, when readable.
    if let Ok(src) = crate::pg::connect(&cfg.source.url).await
        && let (Some(a), Some(b)) = (system_id(&src).await, system_id(admin).await)
    {
        same_server = a == b;
        let src_db: Option<String> = src
            .client
            .query_one("SELECT current_database()::text", &[])
            .await
            .ok()
            .map(|r| r.get(0));
        same_db = same_server && src_db.as_deref() == Some(target.database.as_str());
    }
    if same_db {
        return Err(fail(
            Step::Target,
            format!(
                "drill.target names the source database {} itself: a drill creates and drops its target; name a scratch database",
                target.database
            ),
        ));
    }
    if same_server && !cfg.drill.allow_same_server {
        return Err(fail(
            Step::Target,
            "drill.target is on the source's PostgreSQL server: a drill would load production with a full restore; \
             use another server, or set drill.allow_same_server = true",
        ));
    }
    Ok(())
}

/// What stands at the scratch database's name.
enum Existing {
    Free,
    /// A database an earlier drill created and marked.
    Leftover,
}

/// Judges the scratch database's name; a database there without the
/// drill's mark is refused (and never touched).
async fn existing(admin: &crate::pg::PgConn, db: &str) -> Result<Existing, DrillError> {
    match comment(admin, db)
        .await
        .map_err(|e| fail(Step::Create, e))?
    {
        None => Ok(Existing::Free),
        Some(c) if marked(&c) => Ok(Existing::Leftover),
        Some(_) => Err(fail(
            Step::Target,
            format!(
                "drill.target names database {db}, which exists and was not created by a lethe drill (it has no \
                 {MARK_PREFIX} comment): lethe never writes into or drops a database it did not create; name a \
                 database that does not exist"
            ),
        )),
    }
}

/// Runs `sql` on the maintenance session; a failure is `step`'s, saying `what`.
async fn exec(
    admin: &crate::pg::PgConn,
    step: Step,
    what: &str,
    sql: &str,
) -> Result<(), DrillError> {
    admin
        .client
        .batch_execute(sql)
        .await
        .map_err(|e| fail(step, format!("{what}: {}", crate::pg::pg_message(&e))))
}

/// The database's comment, `None` when it does not exist.
async fn comment(admin: &crate::pg::PgConn, db: &str) -> Result<Option<Option<String>>, String> {
    let rows = admin
        .client
        .query(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
            &[&db],
        )
        .await
        .map_err(|e| crate::pg::pg_message(&e))?;
    Ok(rows.first().map(|r| r.get::<_, Option<String>>(0)))
}

fn marked(c: &Option<String>) -> bool {
    c.as_deref().is_some_and(|c| c.starts_with(MARK_PREFIX))
}

/// Creates and marks the scratch database; a marked leftover of an earlier
/// drill is dropped first; an unmarked database is refused, untouched.
async fn claim(admin: &crate::pg::PgConn, target: &Target) -> Result<(), DrillError> {
    let db = &target.database;
    if let Existing::Leftover = existing(admin, db).await? {
        tracing::warn!(event = "drill.leftover_dropped", database = %db, "a scratch database left by an earlier drill is dropped");
        drop_marked(admin, db).await?;
    }
    let mark = format!(
        "{MARK_PREFIX} created by {} at {} for a restore drill; dropped when it ends",
        crate::repo::lease::holder_name(),
        crate::units::rfc3339(chrono::Utc::now())
    );
    let name = quote_ident(db);
    exec(
        admin,
        Step::Create,
        &format!("CREATE DATABASE {db}"),
        &format!("CREATE DATABASE {name}"),
    )
    .await?;
    exec(
        admin,
        Step::Create,
        &format!("marking {db}"),
        &format!("COMMENT ON DATABASE {name} IS {}", quote_literal(&mark)),
    )
    .await
}

/// Drops `db` if (and only if) it carries the drill's mark.
async fn drop_marked(admin: &crate::pg::PgConn, db: &str) -> Result<(), DrillError> {
    match comment(admin, db).await.map_err(|e| fail(Step::Drop, e))? {
        None => Ok(()),
        Some(c) if marked(&c) => {
            exec(
                admin,
                Step::Drop,
                &format!("DROP DATABASE {db}"),
                &format!("DROP DATABASE {} WITH (FORCE)", quote_ident(db)),
            )
            .await
        }
        Some(_) => Err(fail(
            Step::Drop,
            format!(
                "{db} lost its {MARK_PREFIX} comment during the drill; it is left alone: drop it by hand"
            ),
        )),
    }
}

async fn restore_and_check(
    cfg: &Config,
    storage: Arc<dyn Storage>,
    target: &Target,
) -> Result<DrillReport, DrillError> {
    let selector = if cfg.continuous.enabled {
        crate::repo::layout::Selector::At(crate::repo::changes::Point::Latest)
    } else {
        crate::repo::layout::Selector::Latest
    };
    let opts = RestoreOptions {
        selector,
        destination: Destination::Target(target.url.to_string()),
        dry_run: false,
        identity: None,
        jobs: cfg.source.jobs,
        allow_stale_erasure_list: false,
        announce: false,
        progress: false,
        target_claimed: Default::default(),
        finishing: Default::default(),
    };
    let report = super::restore(cfg, Arc::clone(&storage), &opts)
        .await
        .map_err(|e| fail(Step::Restore, e.to_string()))?;
    let conn = crate::pg::connect(target.url.as_str())
        .await
        .map_err(|e| fail(Step::CheckRows, e.to_string()))?;
    // Every table: the manifest's rows (or, for a point, what the replay
    // made of them) minus what the filter dropped.
    let manifest = crate::repo::layout::load_manifest(
        storage.as_ref(),
        &report.snapshot.parse().map_err(|e| {
            fail(
                Step::CheckRows,
                format!("snapshot id {}: {e}", report.snapshot),
            )
        })?,
    )
    .await
    .map_err(|e| fail(Step::CheckRows, e.to_string()))?;
    for t in &manifest.tables {
        let plain = format!("{}.{}", t.schema, t.name);
        let quoted = quote_qualified(&t.schema, &t.name);
        let Some(r) = report
            .tables
            .iter()
            .find(|r| r.table == plain || r.table == quoted)
        else {
            return Err(fail(
                Step::CheckRows,
                format!("{plain} is in the snapshot but the restore did not report it"),
            ));
        };
        let read = if report.point.is_some() {
            r.rows_read
        } else {
            t.rows
        };
        let want = read.saturating_sub(r.rows_dropped);
        let got: i64 = conn
            .client
            .query_one(&format!("SELECT count(*) FROM ONLY {quoted}"), &[])
            .await
            .map_err(|e| {
                fail(
                    Step::CheckRows,
                    format!("{plain}: {}", crate::pg::pg_message(&e)),
                )
            })?
            .get(0);
        if got as u64 != want {
            return Err(fail(
                Step::CheckRows,
                format!(
                    "{plain} holds {got} rows after the restore; expected {want} ({read} in the snapshot, {} dropped by the filter)",
                    r.rows_dropped
                ),
            ));
        }
    }
    leak_check(cfg, storage.as_ref(), &conn).await?;
    Ok(DrillReport {
        snapshot: report.snapshot.clone(),
        point: report.point.as_ref().map(|p| p.at.clone()),
        database: target.database.clone(),
        seconds: 0.0,
        restore_seconds: report.seconds,
        tables: report.tables.len(),
        rows: report.rows_read - report.rows_dropped,
        dropped: report.rows_dropped,
        erasure_list: crate::repo::manifest::ListState {
            count: report.erasure_list.count,
            digest: report.erasure_list.digest.clone(),
        },
    })
}

/// No root table of the restored database may hold an erased subject
/// (roots a policy redacts or keeps hold them on purpose and are skipped).
async fn leak_check(
    cfg: &Config,
    storage: &dyn Storage,
    conn: &crate::pg::PgConn,
) -> Result<(), DrillError> {
    let list = super::load_list(cfg, storage, false)
        .await
        .map_err(|e| fail(Step::LeakCheck, e.to_string()))?;
    let kept: Vec<String> = cfg
        .erasure
        .policy
        .iter()
        .filter(|p| p.action != crate::erasure::policy::PolicyAction::Drop)
        .map(|p| crate::pg::qualified(&p.table))
        .collect();
    for root in &cfg.erasure.subjects {
        let table = crate::pg::qualified(&root.table);
        // A reusable natural key may be back legitimately (a new account).
        if kept.contains(&table) || root.reusable {
            continue;
        }
        let rows = conn
            .client
            .query(
                &format!(
                    "SELECT {}::text FROM {table} WHERE {} IS NOT NULL",
                    quote_ident(&root.column),
                    quote_ident(&root.column)
                ),
                &[],
            )
            .await
            .map_err(|e| {
                fail(
                    Step::LeakCheck,
                    format!("{table}: {}", crate::pg::pg_message(&e)),
                )
            })?;
        let mut hits = 0u64;
        for r in rows {
            let v: String = r.get(0);
            let key = crate::erasure::key_of(cfg.erasure.subject_type, v.as_bytes());
            let key = match &root.subject {
                Some(name) => key.map(|k| crate::erasure::subject::subject_key(name, k)),
                None => key,
            };
            if key.is_some_and(|k| list.set.contains(k)) {
                hits += 1;
            }
        }
        if hits > 0 {
            return Err(fail(
                Step::LeakCheck,
                format!(
                    "{table}.{} holds {hits} row(s) of erased subjects after the restore: the filter let them through",
                    root.column
                ),
            ));
        }
    }
    Ok(())
}
