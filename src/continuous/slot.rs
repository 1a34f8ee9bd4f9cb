//! The objects continuous capture keeps on the source: the publication
//! (`FOR TABLE` over the tables a snapshot copies) and the logical slot
//! (`pgoutput`). [`ensure`] creates what is missing after the preflight
//! passes; [`disable`] drops both, and refuses rather than terminate a
//! session that is reading the slot. Nothing else on the source changes.

use super::preflight::Publishable;
use super::{ContinuousConfig, PreflightError, preflight};
use crate::pg::{self, SourceError, catalog};

/// What [`ensure`] created (false: it was there already).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ensured {
    pub slot: bool,
    pub publication: bool,
}

/// What [`disable`] dropped (false: it was not there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    pub slot: bool,
    pub publication: bool,
    /// The DDL capture's event triggers and schema (`pg::ddl_capture`).
    pub ddl: pg::ddl_capture::RemovedDdl,
}

#[derive(Debug, thiserror::Error)]
pub enum SlotError {
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("creating publication {publication} failed: {message}")]
    CreatePublication {
        publication: String,
        message: String,
    },
    #[error("creating logical replication slot {slot} (pgoutput) failed: {message}")]
    CreateSlot { slot: String, message: String },
    #[error(
        "replication slot {slot} is in use by the process with pid {pid}: lethe terminates nothing; \
         stop what reads the slot (the lethe daemon, or another consumer), then run lethe continuous disable again \
         (or, if that session must go: SELECT pg_terminate_backend({pid}))"
    )]
    SlotActive { slot: String, pid: i32 },
    #[error(
        "replication slot {slot} is not lethe's: it is {kind}; lethe leaves it alone \
         (drop it by hand if nothing uses it: SELECT pg_drop_replication_slot('{slot}'))"
    )]
    SlotNotOurs { slot: String, kind: String },
    #[error("dropping replication slot {slot} failed: {message}")]
    DropSlot { slot: String, message: String },
    #[error("dropping publication {publication} failed: {message}")]
    DropPublication {
        publication: String,
        message: String,
    },
}

fn query_err(what: &'static str) -> impl Fn(tokio_postgres::Error) -> SlotError {
    move |e| SlotError::Source(pg::query_err(what, &e))
}

/// Whether the source has a publication of this name.
async fn publication_exists(conn: &pg::PgConn, name: &str) -> Result<bool, SlotError> {
    Ok(conn
        .query_opt("SELECT 1 FROM pg_publication WHERE pubname = $1", &[&name])
        .await
        .map_err(query_err("reading publications"))?
        .is_some())
}

/// Creates the publication and the slot when absent, after the preflight
/// passes; an existing publication is left as it is, and an existing slot
/// is reused when it is lethe's kind (the preflight refuses any other).
///
/// # Errors
/// `Preflight` when the source is refused or unreadable; `CreatePublication`
/// or `CreateSlot` naming the object; `Source` for other queries.
pub async fn ensure(url: &str, cfg: &ContinuousConfig) -> Result<Ensured, SlotError> {
    preflight(url, cfg).await?;
    let conn = pg::connect(url).await?;
    let publication = ensure_publication(&conn, cfg).await?;
    let slot = ensure_slot(&conn, cfg).await?;
    Ok(Ensured { slot, publication })
}

/// Creates the publication (`FOR TABLE` every table a snapshot copies)
/// when absent; true when it was created. Run the preflight first.
///
/// # Errors
/// `CreatePublication` naming it; `Source` for other queries.
pub async fn ensure_publication(
    conn: &pg::PgConn,
    cfg: &ContinuousConfig,
) -> Result<bool, SlotError> {
    let publication = if publication_exists(conn, &cfg.publication).await? {
        false
    } else {
        let mut tables: Vec<String> = publishable(conn).await?.published.into_values().collect();
        tables.sort();
        let mut sql = format!("CREATE PUBLICATION {}", pg::quote_ident(&cfg.publication));
        if !tables.is_empty() {
            sql.push_str(" FOR TABLE ");
            sql.push_str(&tables.join(", "));
        }
        match conn.batch_execute(&sql).await {
            Ok(()) => true,
            // Created concurrently: it exists now, which is what was asked.
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_OBJECT) => false,
            Err(e) => {
                return Err(SlotError::CreatePublication {
                    publication: cfg.publication.clone(),
                    message: pg::pg_message(&e),
                });
            }
        }
    };

    Ok(publication)
}

/// Reads [`Publishable`] from the source's catalog.
///
/// # Errors
/// `Source` when the catalog cannot be read.
pub async fn publishable(conn: &pg::PgConn) -> Result<Publishable, SlotError> {
    let cat = catalog::read(conn).await?;
    Ok(super::preflight::publishable(conn, &cat).await?)
}

/// The relations the publication carries now (oid → quoted name).
///
/// # Errors
/// `Source` when it cannot be read.
pub async fn published(
    conn: &pg::PgConn,
    publication: &str,
) -> Result<std::collections::BTreeMap<u32, String>, SlotError> {
    let rows = conn
        .query(
            "SELECT c.oid, format('%I.%I', n.nspname, c.relname) FROM pg_publication p \
             JOIN pg_publication_rel pr ON pr.prpubid = p.oid \
             JOIN pg_class c ON c.oid = pr.prrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE p.pubname = $1",
            &[&publication],
        )
        .await
        .map_err(query_err("reading the publication's tables"))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Ordinary tables (`schema.name`, unquoted) outside the system schemas
/// that the publication does not carry (unlogged, no replica identity): a
/// base records them, so a point restore can say they are as of the base.
///
/// # Errors
/// `Source` when the catalog cannot be read.
pub async fn not_published(conn: &pg::PgConn, publication: &str) -> Result<Vec<String>, SlotError> {
    let rows = conn
        .query(
            "SELECT n.nspname || '.' || c.relname FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind = 'r' AND c.relpersistence IN ('p', 'u') \
               AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
               AND n.nspname NOT LIKE 'pg\\_%' \
               AND NOT EXISTS (SELECT 1 FROM pg_publication_tables t \
                               WHERE t.pubname = $1 AND t.schemaname = n.nspname AND t.tablename = c.relname) \
             ORDER BY 1",
            &[&publication],
        )
        .await
        .map_err(query_err("reading which tables the publication leaves out"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// What [`sync_publication`] found and did.
#[derive(Debug, Clone, Default)]
pub struct Synced {
    /// Tables it added (created since the last sync).
    pub added: Vec<String>,
    /// What the publication carries now (oid → quoted name).
    pub published: std::collections::BTreeMap<u32, String>,
    /// Tables left out: they have no replica identity.
    pub no_identity: Vec<String>,
}

/// Adds the tables the publication should carry but does not (tables
/// created since). Tables without a replica identity are left out (see
/// [`Publishable`]).
///
/// # Errors
/// `Source` for the catalog; `CreatePublication` when a table cannot be
/// added.
pub async fn sync_publication(
    conn: &pg::PgConn,
    cfg: &ContinuousConfig,
) -> Result<Synced, SlotError> {
    let want = publishable(conn).await?;
    let mut published = published(conn, &cfg.publication).await?;
    let mut added = Vec::new();
    for (oid, name) in &want.published {
        if published.contains_key(oid) {
            continue;
        }
        let sql = format!(
            "ALTER PUBLICATION {} ADD TABLE {name}",
            pg::quote_ident(&cfg.publication)
        );
        match conn.batch_execute(&sql).await {
            Ok(()) => {
                added.push(name.clone());
                published.insert(*oid, name.clone());
            }
            // Added meanwhile: it is published.
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_OBJECT) => {
                published.insert(*oid, name.clone());
            }
            // Dropped meanwhile: the next check sees it gone.
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {}
            Err(e) => {
                return Err(SlotError::CreatePublication {
                    publication: cfg.publication.clone(),
                    message: format!("adding {name}: {}", pg::pg_message(&e)),
                });
            }
        }
    }
    Ok(Synced {
        added,
        published,
        no_identity: want.no_identity,
    })
}

async fn ensure_slot(conn: &pg::PgConn, cfg: &ContinuousConfig) -> Result<bool, SlotError> {
    let slot = if conn
        .query_opt(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
            &[&cfg.slot],
        )
        .await
        .map_err(query_err("reading replication slots"))?
        .is_some()
    {
        false
    } else {
        match conn
            .execute(
                "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
                &[&cfg.slot],
            )
            .await
        {
            Ok(_) => true,
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_OBJECT) => false,
            Err(e) => {
                return Err(SlotError::CreateSlot {
                    slot: cfg.slot.clone(),
                    message: pg::pg_message(&e),
                });
            }
        }
    };
    Ok(slot)
}

/// Drops the slot, the publication and the DDL capture when present. A slot some session
/// is reading is not touched (nor is the publication): `SlotActive` names
/// the session's pid. A slot of another kind or database is not lethe's
/// and is left alone (`SlotNotOurs`).
///
/// # Errors
/// `SlotActive`, `SlotNotOurs`, `DropSlot`, `DropPublication` naming the
/// object; `Source` when the source cannot be reached or read.
pub async fn disable(url: &str, cfg: &ContinuousConfig) -> Result<Removed, SlotError> {
    let conn = pg::connect(url).await?;
    let slot_row = conn
        .query_opt(
            "SELECT s.slot_type, s.plugin, d.datname::text, d.datname = current_database(), s.active_pid \
             FROM pg_replication_slots s LEFT JOIN pg_database d ON d.oid = s.datoid \
             WHERE s.slot_name = $1",
            &[&cfg.slot],
        )
        .await
        .map_err(query_err("reading replication slots"))?;
    if let Some(r) = &slot_row {
        let (kind, plugin, db, here, pid): (
            String,
            Option<String>,
            Option<String>,
            Option<bool>,
            Option<i32>,
        ) = (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        if kind != "logical" || plugin.as_deref() != Some("pgoutput") || here != Some(true) {
            return Err(SlotError::SlotNotOurs {
                slot: cfg.slot.clone(),
                kind: format!(
                    "a {kind} slot{}{}",
                    plugin.map_or(String::new(), |p| format!(" with plugin {p}")),
                    db.map_or(String::new(), |d| format!(" on database {d}"))
                ),
            });
        }
        if let Some(pid) = pid {
            return Err(SlotError::SlotActive {
                slot: cfg.slot.clone(),
                pid,
            });
        }
    }
    let slot = match slot_row {
        None => false,
        Some(_) => match conn
            .execute("SELECT pg_drop_replication_slot($1)", &[&cfg.slot])
            .await
        {
            Ok(_) => true,
            // Dropped concurrently: gone, which is what was asked.
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_OBJECT) => false,
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::OBJECT_IN_USE) => {
                let pid: Option<i32> = conn
                    .query_opt(
                        "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1",
                        &[&cfg.slot],
                    )
                    .await
                    .map_err(query_err("reading replication slots"))?
                    .and_then(|r| r.get(0));
                return Err(match pid {
                    Some(pid) => SlotError::SlotActive {
                        slot: cfg.slot.clone(),
                        pid,
                    },
                    None => SlotError::DropSlot {
                        slot: cfg.slot.clone(),
                        message: pg::pg_message(&e),
                    },
                });
            }
            Err(e) => {
                return Err(SlotError::DropSlot {
                    slot: cfg.slot.clone(),
                    message: pg::pg_message(&e),
                });
            }
        },
    };
    let publication = if publication_exists(&conn, &cfg.publication).await? {
        conn.batch_execute(&format!(
            "DROP PUBLICATION IF EXISTS {}",
            pg::quote_ident(&cfg.publication)
        ))
        .await
        .map_err(|e| SlotError::DropPublication {
            publication: cfg.publication.clone(),
            message: pg::pg_message(&e),
        })?;
        true
    } else {
        false
    };
    let ddl = pg::ddl_capture::remove(&conn).await?;
    Ok(Removed {
        slot,
        publication,
        ddl,
    })
}
