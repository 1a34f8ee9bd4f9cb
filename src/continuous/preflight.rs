//! The checks before continuous capture may start: each refusal names what
//! is wrong on the source and how to fix it; nothing on the source is
//! changed. `lethe continuous check` runs them; the capture will too.

use super::ContinuousConfig;
use crate::pg::{self, SourceError, catalog};

/// The first major version where `wal_level = replica` suffices: creating
/// the first logical slot raises `effective_wal_level` to `logical`.
pub const DYNAMIC_LOGICAL_VERSION_NUM: i32 = 190000;

/// What the checks saw on a source that passed them.
#[derive(Debug, Clone)]
pub struct Preflight {
    pub server_version: String,
    pub database: String,
    pub role: String,
    /// Tables whose changes would be published.
    pub tables: usize,
    pub warnings: Vec<PreflightWarning>,
}

/// Something that does not stop capture but that the operator should fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreflightWarning {
    #[error(
        "max_slot_wal_keep_size = -1: a slot nobody consumes (lethe stopped, storage down) keeps WAL until the server's disk is full; \
         set a limit, e.g. ALTER SYSTEM SET max_slot_wal_keep_size = '64GB'; SELECT pg_reload_conf(); \
         (a slot past the limit is invalidated instead, and lethe takes a new base)"
    )]
    UnlimitedSlotWal,
    #[error(
        "unlogged table(s) {}: their changes are not in the WAL, so only base snapshots carry them; \
         ALTER TABLE … SET LOGGED to capture them continuously",
        tables.join(", ")
    )]
    UnloggedTables { tables: Vec<String> },
}

/// One failed check: what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "wal_level is {found} on the source (PostgreSQL {server_version}): continuous capture reads a logical replication slot, \
         which needs wal_level = logical; run ALTER SYSTEM SET wal_level = logical as a superuser and restart PostgreSQL \
         (PostgreSQL 19 and later need no restart: with wal_level = replica, the first logical slot turns logical decoding on)"
    )]
    WalLevel {
        found: String,
        server_version: String,
    },
    #[error(
        "role {role} has neither REPLICATION nor superuser: it cannot open a logical replication slot; \
         run ALTER ROLE {role} REPLICATION as a superuser (or connect as a role that has it)"
    )]
    NoReplication { role: String },
    #[error(
        "{} table(s) have no replica identity: {}. Once in a publication, UPDATE and DELETE on them fail in the application, \
         so lethe refuses to publish them (it never changes a table itself). Fix each one: add a primary key \
         (ALTER TABLE {example} ADD PRIMARY KEY (…)), or, where no key fits, ALTER TABLE {example} REPLICA IDENTITY FULL \
         (updates and deletes then log every column)",
        tables.len(),
        tables.join(", ")
    )]
    NoReplicaIdentity {
        tables: Vec<String>,
        example: String,
    },
    #[error(
        "the replication connection writes values with the role's default output settings, which must render them as \
         snapshots do, or a point-in-time restore would read dates, intervals or floats differently: {}; \
         run ALTER ROLE {role} SET … for each (e.g. ALTER ROLE {role} SET DateStyle = 'ISO, MDY'), \
         or set them server-wide in postgresql.conf",
        settings.join(", ")
    )]
    OutputSettings { role: String, settings: Vec<String> },
    #[error(
        "source.url sets {} for Lethe's own connections (its `options`), but the replication connection does not \
         carry `options`: bases would render those values one way and the change stream another, and a \
         point-in-time restore would not match a changed row to its base row (a deleted row would come back); \
         drop them from source.url and set them for the role instead (ALTER ROLE {role} SET …), which both connections read",
        settings.join(", ")
    )]
    ClientSettings { role: String, settings: Vec<String> },
    #[error(
        "replication slot {slot} exists but is not lethe's: it is {kind}; \
         set continuous.slot to another name, or drop that slot if nothing uses it (SELECT pg_drop_replication_slot('{slot}'))"
    )]
    SlotTaken { slot: String, kind: String },
}

/// The tables a snapshot copies, split by whether the publication can
/// carry them: logged tables with a replica identity (oid → quoted name),
/// and the rest by name (unlogged tables have no changes in the WAL; a
/// table without a replica identity would make the application's UPDATE
/// and DELETE fail once published).
#[derive(Debug, Clone, Default)]
pub struct Publishable {
    pub published: std::collections::BTreeMap<u32, String>,
    pub unlogged: Vec<String>,
    pub no_identity: Vec<String>,
}

/// Reads [`Publishable`] for the tables of `cat`.
///
/// # Errors
/// `Query` when the catalog cannot be read.
pub async fn publishable(
    conn: &pg::PgConn,
    cat: &catalog::Catalog,
) -> Result<Publishable, SourceError> {
    let oids: Vec<u32> = cat
        .tables
        .iter()
        .filter(|t| !t.large_objects)
        .map(|t| t.oid)
        .collect();
    let rows = conn
        .query(
            "SELECT c.oid, c.relpersistence = 'u', \
                    c.relreplident = 'n' \
                    OR (c.relreplident = 'd' AND NOT EXISTS \
                        (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)) \
                    OR (c.relreplident = 'i' AND NOT EXISTS \
                        (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident)) \
             FROM pg_class c WHERE c.oid = ANY($1::oid[])",
            &[&oids],
        )
        .await
        .map_err(|e| pg::query_err("reading the tables' replica identities", &e))?;
    let mut out = Publishable::default();
    for r in &rows {
        let oid: u32 = r.get(0);
        let Some(t) = cat.tables.iter().find(|t| t.oid == oid) else {
            continue;
        };
        let name = pg::quote_qualified(&t.schema, &t.name);
        if r.get::<_, bool>(1) {
            out.unlogged.push(name);
        } else if r.get::<_, bool>(2) {
            out.no_identity.push(name);
        } else {
            out.published.insert(oid, name);
        }
    }
    Ok(out)
}

#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("the source is not ready for continuous capture:\n  {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    Refused(Vec<Refusal>),
}

/// Runs every check against the source at `url` and reports all failures
/// at once.
///
/// # Errors
/// `Source` when the source cannot be reached or read; `Refused` with every
/// failed check.
pub async fn preflight(url: &str, cfg: &ContinuousConfig) -> Result<Preflight, PreflightError> {
    let conn = pg::connect(url).await?;
    let cat = catalog::read(&conn).await?;
    let q = |what: &'static str| move |e: tokio_postgres::Error| pg::query_err(what, &e);
    let row = conn
        .query_one(
            "SELECT current_setting('wal_level'), current_setting('max_slot_wal_keep_size', true), \
                    r.rolreplication OR r.rolsuper \
             FROM pg_roles r WHERE r.rolname = current_user",
            &[],
        )
        .await
        .map_err(q("reading wal_level and the role's attributes"))?;
    let wal_level: String = row.get(0);
    let keep_size: Option<String> = row.get(1);
    let replication: bool = row.get(2);

    let mut refusals = Vec::new();
    let dynamic = cat.server_version_num >= DYNAMIC_LOGICAL_VERSION_NUM && wal_level == "replica";
    if wal_level != "logical" && !dynamic {
        refusals.push(Refusal::WalLevel {
            found: wal_level,
            server_version: cat.server_version.clone(),
        });
    }
    if !replication {
        refusals.push(Refusal::NoReplication {
            role: pg::quote_ident(&cat.role),
        });
    }

    // Tables the snapshot copies, as a publication would carry them: each
    // leaf (a partitioned table publishes through its partitions).
    let Publishable {
        published,
        mut unlogged,
        mut no_identity,
    } = publishable(&conn, &cat).await?;
    let copied = published.len() + unlogged.len() + no_identity.len();
    unlogged.sort();
    no_identity.sort();
    if let Some(example) = no_identity.first().cloned() {
        refusals.push(Refusal::NoReplicaIdentity {
            tables: no_identity,
            example,
        });
    }

    // pgoutput renders values in the walsender, with the role's defaults
    // (`reset_val`), where snapshots set ISO dates, `postgres` intervals
    // and exact floats for their own session.
    let mut wrong = Vec::new();
    for r in conn
        .query(
            "SELECT name, reset_val FROM pg_settings \
             WHERE name IN ('DateStyle', 'IntervalStyle', 'extra_float_digits') ORDER BY name",
            &[],
        )
        .await
        .map_err(q("reading the output settings"))?
    {
        let (name, value): (String, String) = (r.get(0), r.get(1));
        let ok = match name.as_str() {
            "DateStyle" => value.starts_with("ISO"),
            "IntervalStyle" => value == "postgres",
            _ => value.parse::<i32>().is_ok_and(|v| v >= 1),
        };
        if !ok {
            let want = match name.as_str() {
                "DateStyle" => "ISO, …",
                "IntervalStyle" => "postgres",
                _ => "1 or more",
            };
            wrong.push(format!("{name} is '{value}' (needs {want})"));
        }
    }
    if !wrong.is_empty() {
        refusals.push(Refusal::OutputSettings {
            role: pg::quote_ident(&cat.role),
            settings: wrong,
        });
    }

    // What the URL's `options` set (source `client`) reaches this session
    // only. `pg::connect` sets the three above itself (source `session`
    // then), so these are the rest that change how a value is written.
    let client: Vec<String> = conn
        .query(
            "SELECT name, setting FROM pg_settings WHERE source = 'client' \
             AND name IN ('TimeZone', 'bytea_output', 'lc_monetary', 'lc_numeric') ORDER BY name",
            &[],
        )
        .await
        .map_err(q("reading the connection's settings"))?
        .iter()
        .map(|r| format!("{} = '{}'", r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect();
    if !client.is_empty() {
        refusals.push(Refusal::ClientSettings {
            role: pg::quote_ident(&cat.role),
            settings: client,
        });
    }

    if let Some(r) = conn
        .query_opt(
            "SELECT s.slot_type, s.plugin, d.datname::text FROM pg_replication_slots s \
             LEFT JOIN pg_database d ON d.oid = s.datoid WHERE s.slot_name = $1",
            &[&cfg.slot],
        )
        .await
        .map_err(q("reading replication slots"))?
    {
        let (kind, plugin, db): (String, Option<String>, Option<String>) =
            (r.get(0), r.get(1), r.get(2));
        let ours = kind == "logical"
            && plugin.as_deref() == Some("pgoutput")
            && db.as_deref() == Some(cat.database.as_str());
        if !ours {
            refusals.push(Refusal::SlotTaken {
                slot: cfg.slot.clone(),
                kind: format!(
                    "a {kind} slot{}{}",
                    plugin.map_or(String::new(), |p| format!(" with plugin {p}")),
                    db.map_or(String::new(), |d| format!(" on database {d}"))
                ),
            });
        }
    }

    if !refusals.is_empty() {
        return Err(PreflightError::Refused(refusals));
    }
    let mut warnings = Vec::new();
    // Absent before PostgreSQL 13: no limit at all.
    if keep_size.as_deref().is_none_or(|v| v == "-1") {
        warnings.push(PreflightWarning::UnlimitedSlotWal);
    }
    if !unlogged.is_empty() {
        warnings.push(PreflightWarning::UnloggedTables { tables: unlogged });
    }
    Ok(Preflight {
        server_version: cat.server_version,
        database: cat.database,
        role: cat.role,
        tables: copied,
        warnings,
    })
}
