//! Taking a snapshot: one exported PostgreSQL snapshot, the schema through
//! `pg_dump`, every table through parallel COPY workers, each object
//! compressed, sealed and uploaded as it streams, and the manifest last.
//!
//! # What a snapshot's objects contain (the contract with restore)
//!
//! Every object is `zstd` (with its frame checksum) inside age (recipients
//! from `encryption.recipients`; keys end `.zst` instead of `.zst.age` when
//! `encryption.disabled`), and is read back with
//! [`crate::repo::object::open_object`], which also checks the manifest's size
//! and BLAKE3.
//!
//! - `schema/pre.sql…` and `schema/post.sql…`: plain-format `pg_dump
//!   --section=pre-data|post-data --snapshot=<id>` output, owners and
//!   privileges included, to be run with `psql` (it may contain `\restrict`
//!   meta-commands). pre-data creates types, functions, tables (partitioned
//!   parents too) and sequences; post-data adds indexes, constraints,
//!   triggers and `REFRESH MATERIALIZED VIEW`.
//! - `data/<n>.<schema>.<table>.<part>.copy…`: the table's rows exactly as
//!   `COPY "schema"."table" (c1, c2, …) TO STDOUT` wrote them in **text
//!   format**: one row per line ending with a raw `\n`, fields separated by
//!   raw `\t`, `\N` for NULL, and backslash escapes (`\\`, `\t`, `\n`, `\r`,
//!   …) inside values. The columns are the manifest's `TableEntry::columns`,
//!   in that order, generated columns excluded (load with `COPY "schema".
//!   "table" (c1, c2, …) FROM STDIN`). A table with no copyable column has
//!   an empty `columns` list and one empty line per row. The session wrote
//!   it with `client_encoding = UTF8`, `DateStyle = ISO`, `IntervalStyle =
//!   postgres` and `extra_float_digits = 3`; load it with the same client
//!   encoding. Objects are cut only at row boundaries: the parts of a table,
//!   in `objects` order, concatenate to its whole COPY stream, and each
//!   part's `rows` counts its lines. Every table has at least one object (an
//!   empty table has one empty object). The names in keys are escaped
//!   (`repo::key_safe`); use the manifest's `schema`/`name`, never the key.
//!   Tables are leaf partitions and ordinary/unlogged tables; the manifest's
//!   foreign keys are between those tables (see `pg::catalog`).
//! - `manifest.json`: written last, only after every object above is stored
//!   and checked; its presence is what makes the snapshot exist.
//!
//! Sequence values in the manifest are read after the data, so they are at
//! least as high as any value a copied row uses.

use super::stage::{Progress, SnapshotError, Stage, guard};
use super::tables::{self, Job, LeakProbe, Shared};
use super::{cleanup, pause, schema};
use crate::config::Config;
use crate::crypto::Sealer;
use crate::erasure::ErasureSet;
use crate::erasure::config::SubjectRoot;
use crate::erasure::config::SubjectType;
use crate::pg::dump::Section;
use crate::pg::{self, Coordinator};
use crate::repo::layout as repo;
use crate::repo::manifest::{FORMAT_VERSION, ListState, Manifest, SchemaObjects, SnapshotId};
use crate::storage::{Storage, StorageExt};
use chrono::Utc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Incomplete snapshots younger than this are left alone by the cleanup at
/// the start of a snapshot: another process may be writing them right now.
pub const DEFAULT_CLEANUP_GRACE: Duration = Duration::from_secs(3600);

/// The erasure-leak check: count rows of the root tables whose subject is
/// already on the erasure list (the application should have deleted them).
#[derive(Clone)]
pub struct LeakCheck {
    pub set: Arc<dyn ErasureSet>,
    pub subject_type: SubjectType,
    pub roots: Vec<SubjectRoot>,
}

/// Rows of erased subjects found in one root table.
pub use crate::leak_state::Leak;

/// How to take one snapshot.
pub struct SnapshotOptions {
    /// Cancelling aborts every upload; no manifest is written.
    pub cancel: CancellationToken,
    /// The erasure list's state, recorded in the manifest.
    pub erasure_list: ListState,
    pub leak_check: Option<LeakCheck>,
    /// See [`DEFAULT_CLEANUP_GRACE`].
    pub cleanup_grace: Duration,
    pub progress: Arc<Progress>,
    /// Take the snapshot from this exported snapshot (a base of continuous
    /// capture) instead of exporting one.
    pub base: Option<BaseSource>,
}

/// An exported snapshot to take a base from, and where it stands.
#[derive(Debug, Clone)]
pub struct BaseSource {
    /// The name `CREATE_REPLICATION_SLOT … EXPORT_SNAPSHOT` returned; the
    /// exporting connection must stay idle until the base is taken.
    pub snapshot: String,
    pub info: crate::repo::manifest::BaseInfo,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        SnapshotOptions {
            cancel: CancellationToken::new(),
            erasure_list: ListState::default(),
            leak_check: None,
            cleanup_grace: DEFAULT_CLEANUP_GRACE,
            progress: Arc::new(Progress::default()),
            base: None,
        }
    }
}

/// A committed snapshot.
#[derive(Debug, Clone)]
pub struct SnapshotOutcome {
    pub manifest: Manifest,
    /// Root tables holding rows of listed subjects (only with a leak
    /// check, only tables with at least one such row). The caller logs
    /// `erasure.leak_detected`.
    pub leaks: Vec<Leak>,
    /// Whether the leak check ran (`opts.leak_check` was given).
    pub leak_checked: bool,
    pub cleanup: cleanup::CleanupReport,
}

/// Takes one snapshot and commits it. Logs `snapshot.started`, then
/// `snapshot.completed` (and an `erasure.leak_detected` per root table that
/// still holds rows of erased subjects), `snapshot.cancelled` (stopped
/// through `opts.cancel`) or `snapshot.failed`, each with the stage.
/// Leftovers of
/// earlier interrupted snapshots older than `opts.cleanup_grace` are
/// deleted first (failures there are logged, not fatal).
///
/// # Errors
/// Any failure or a cancellation; nothing is listed then, and what was
/// uploaded is left for the next run's cleanup.
pub async fn take_snapshot(
    cfg: &Config,
    storage: Arc<dyn Storage>,
    opts: SnapshotOptions,
) -> Result<SnapshotOutcome, SnapshotError> {
    let started = Utc::now();
    let id = SnapshotId::new(started);
    let clock = Instant::now();
    tracing::info!(event = "snapshot.started", id = %id, storage = %storage.describe());
    let result = run(cfg, Arc::clone(&storage), &opts, &id, started).await;
    match &result {
        Ok(o) => {
            let m = &o.manifest;
            tracing::info!(
                event = "snapshot.completed",
                id = %id,
                tables = m.tables.len(),
                rows = m.total_rows(),
                bytes_raw = m.raw_bytes(),
                bytes_stored = m.stored_bytes(),
                seconds = clock.elapsed().as_secs_f64(),
            );
            for leak in &o.leaks {
                tracing::warn!(
                    event = "erasure.leak_detected",
                    id = %id,
                    table = %leak.table,
                    column = %leak.column,
                    rows = leak.rows,
                    "the snapshot holds rows of erased subjects: the application did not delete them (restores still drop them)"
                );
            }
            if !o.leaks.is_empty() {
                let rows = o.leaks.iter().map(|l| l.rows).sum::<u64>();
                let entry = crate::repo::evidence::Entry::new(
                    crate::repo::evidence::Kind::Leak,
                    "detected",
                )
                .snapshot(&id)
                .count("tables", o.leaks.len() as u64)
                .count("rows", rows);
                crate::repo::evidence::record(Arc::clone(&storage), entry).await;
            }
        }
        // A stop (SIGTERM, SIGINT, the daemon stopping, the lock lost) is
        // not a failure: no alert, just where it stopped.
        Err(e) if matches!(e, SnapshotError::Cancelled { .. }) || opts.cancel.is_cancelled() => {
            tracing::info!(event = "snapshot.cancelled", id = %id, stage = e.stage().as_str(), "stopped on request; nothing was committed");
        }
        // DDL overtook a base: the capture takes it again at once.
        Err(e @ SnapshotError::Superseded { .. }) => {
            tracing::warn!(event = "continuous.base_superseded", id = %id, stage = e.stage().as_str(), reason = %e, "DDL overtook this base; it is taken again from a new slot");
        }
        Err(e) => {
            tracing::error!(event = "snapshot.failed", id = %id, stage = e.stage().as_str(), error = %e);
        }
    }
    result
}

async fn run(
    cfg: &Config,
    storage: Arc<dyn Storage>,
    opts: &SnapshotOptions,
    id: &SnapshotId,
    started: chrono::DateTime<Utc>,
) -> Result<SnapshotOutcome, SnapshotError> {
    let cancel = &opts.cancel;
    let progress = &opts.progress;
    progress.set_stage(Stage::Cleanup);
    let cleanup = match guard(cancel, Stage::Cleanup, async {
        Ok(cleanup::cleanup_incomplete(storage.as_ref(), Some(id), opts.cleanup_grace).await)
    })
    .await?
    {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(event = "snapshot.cleanup_failed", error = %e, "leftovers of interrupted snapshots were not removed; the next run retries");
            cleanup::CleanupReport::default()
        }
    };

    progress.set_stage(Stage::Connect);
    let sealer = Sealer::from_config(&cfg.encryption).map_err(SnapshotError::Crypto)?;
    let url = cfg.source.url.as_str();
    let mut pg_dump = guard(cancel, Stage::Connect, async {
        crate::pg::dump::locate(cfg.source.bin_dir.as_deref())
            .await
            .map_err(|e| SnapshotError::source(Stage::Connect, e))
    })
    .await?;
    let coord = guard(cancel, Stage::Connect, async {
        match &opts.base {
            None => Coordinator::open(url).await,
            Some(b) => Coordinator::import(url, &b.snapshot).await,
        }
        .map_err(|e| SnapshotError::source(Stage::Connect, e))
    })
    .await?;

    progress.set_stage(Stage::Catalog);
    let catalog = guard(cancel, Stage::Catalog, async {
        coord
            .catalog()
            .await
            .map_err(|e| SnapshotError::source(Stage::Catalog, e))
    })
    .await?;
    pg_dump
        .check_server(catalog.server_version_num)
        .map_err(|e| SnapshotError::source(Stage::Catalog, e))?;
    // lethe's DDL capture (`pg::ddl_capture`) is not the source's schema.
    pg_dump.skip_lethe = guard(cancel, Stage::Catalog, async {
        coord
            .lethe_schema_is_ours()
            .await
            .map_err(|e| SnapshotError::source(Stage::Catalog, e))
    })
    .await?;
    progress
        .tables_total
        .store(catalog.tables.len() as u64, Ordering::Relaxed);

    progress.set_stage(Stage::Lock);
    if opts.base.is_some() {
        guard(cancel, Stage::Lock, async {
            pause::at("base.before_lock").await;
            Ok(())
        })
        .await?;
    }
    guard(cancel, Stage::Lock, async {
        coord
            .lock_tables(&catalog.tables)
            .await
            .map_err(|e| match e {
                // A base's snapshot lists a table a migration dropped since.
                pg::SourceError::Dropped { .. } if opts.base.is_some() => {
                    SnapshotError::Superseded {
                        stage: Stage::Lock,
                        message: format!("{e}: the base is taken again from a new slot"),
                    }
                }
                e => SnapshotError::source(Stage::Lock, e),
            })
    })
    .await?;
    // A base records the schema it was taken in (`pg::digest`).
    let mut base_info = opts.base.as_ref().map(|b| b.info.clone());
    if let Some(info) = base_info.as_mut() {
        info.schema_digest = Some(
            guard(cancel, Stage::Lock, async {
                coord
                    .schema_digest()
                    .await
                    .map_err(|e| SnapshotError::source(Stage::Lock, e))
            })
            .await?,
        );
    }
    if opts.base.is_some() {
        let rewritten = guard(cancel, Stage::Lock, async {
            coord
                .rewritten_since_snapshot(&catalog.tables)
                .await
                .map_err(|e| SnapshotError::source(Stage::Lock, e))
        })
        .await?;
        if !rewritten.is_empty() {
            return Err(SnapshotError::Superseded {
                stage: Stage::Lock,
                message: format!(
                    "table(s) {} were rewritten (TRUNCATE, VACUUM FULL, CLUSTER, ALTER … TYPE) after the slot's consistent point: \
                     their files no longer hold the rows this base must read; the base is taken again from a new slot",
                    rewritten.join(", ")
                ),
            });
        }
    }

    progress.set_stage(Stage::Schema);
    let sealed = !matches!(sealer, Sealer::Disabled);
    let shared = Arc::new(Shared {
        storage: storage.clone(),
        sealer,
        zstd_level: cfg.snapshot.zstd_level,
        object_bytes: cfg.snapshot.object_bytes,
        id: id.clone(),
        progress: progress.clone(),
    });
    let pre = schema::dump_schema(
        &pg_dump,
        url,
        &coord.snapshot_id,
        Section::PreData,
        repo::schema_key(id, "pre", sealed),
        &shared,
        cancel,
    )
    .await?;
    guard(cancel, Stage::Schema, async {
        pause::at("schema").await;
        Ok(())
    })
    .await?;
    let post = schema::dump_schema(
        &pg_dump,
        url,
        &coord.snapshot_id,
        Section::PostData,
        repo::schema_key(id, "post", sealed),
        &shared,
        cancel,
    )
    .await?;

    progress.set_stage(Stage::Data);
    let jobs = plan_jobs(&catalog, opts.leak_check.as_ref());
    let mut copied = tables::copy_all(
        url,
        &coord.snapshot_id,
        jobs,
        cfg.source.jobs,
        shared.clone(),
        cancel,
    )
    .await?;
    copied.sort_by_key(|c| c.n);

    progress.set_stage(Stage::Sequences);
    let sequences = guard(cancel, Stage::Sequences, async {
        coord
            .sequence_values(&catalog.sequences)
            .await
            .map_err(|e| SnapshotError::source(Stage::Sequences, e))
    })
    .await?;
    coord.close().await;

    progress.set_stage(Stage::Commit);
    let leaks = copied
        .iter()
        .filter_map(|c| match &c.leak {
            Some((column, rows)) if *rows > 0 => Some(Leak {
                table: c.entry.qualified(),
                column: column.clone(),
                rows: *rows,
            }),
            _ => None,
        })
        .collect();
    let finished = Utc::now();
    let manifest = Manifest {
        format: FORMAT_VERSION,
        id: id.clone(),
        server_version: catalog.server_version.clone(),
        database: catalog.database.clone(),
        started_at: started,
        finished_at: finished,
        expires_at: started + chrono::Duration::days(i64::from(cfg.retention.days)),
        compression: "zstd".into(),
        recipients: shared.sealer.fingerprints(),
        schema: SchemaObjects { pre, post },
        tables: copied.into_iter().map(|c| c.entry).collect(),
        foreign_keys: catalog.foreign_keys.clone(),
        sequences,
        erasure_list: opts.erasure_list.clone(),
        partitioned: catalog.partitioned.clone(),
        ctype: Some(catalog.ctype.clone()),
        continuous: base_info,
        source: crate::pg::source_identity(&cfg.source.url)
            .ok()
            .map(|(identity, _)| identity),
    };
    guard(cancel, Stage::Commit, async {
        confirm_objects(&storage, &manifest).await?;
        pause::at("manifest").await;
        Ok(())
    })
    .await?;
    // Not cancellable: an interrupted PUT may still land on the server, and
    // then "cancelled, nothing committed" would be a lie. It is one small object.
    storage
        .put_bytes(&repo::manifest_key(id), manifest.to_json().into())
        .await
        .map_err(|error| SnapshotError::Storage {
            stage: Stage::Commit,
            error,
        })?;
    Ok(SnapshotOutcome {
        manifest,
        leaks,
        leak_checked: opts.leak_check.is_some(),
        cleanup,
    })
}

fn plan_jobs(catalog: &pg::Catalog, leak: Option<&LeakCheck>) -> Vec<Job> {
    let tables = &catalog.tables;
    let mut jobs: Vec<Job> = tables
        .iter()
        .enumerate()
        .map(|(i, t)| Job {
            n: i + 1,
            table: t.clone(),
            leak: None,
        })
        .collect();
    let Some(check) = leak else { return jobs };
    // Who each table or partitioned table is a partition or child of.
    let parents: std::collections::HashMap<String, &Vec<String>> = tables
        .iter()
        .map(|t| (t.qualified(), &t.parents))
        .chain(
            catalog
                .partitioned
                .iter()
                .map(|r| (r.qualified(), &r.parents)),
        )
        .collect();
    let under = |table: &str, root: &str| {
        let mut stack = vec![table.to_string()];
        let mut seen = std::collections::HashSet::new();
        while let Some(n) = stack.pop() {
            if n == root {
                return true;
            }
            if seen.insert(n.clone()) {
                stack.extend(parents.get(&n).into_iter().flat_map(|v| v.iter().cloned()));
            }
        }
        false
    };
    for root in &check.roots {
        let name = crate::pg::qualified(&root.table);
        let mut found = false;
        for job in jobs
            .iter_mut()
            .filter(|j| under(&j.table.qualified(), &name))
        {
            let Some(col) = job.table.columns.iter().position(|c| c.name == root.column) else {
                continue;
            };
            found = true;
            job.leak = Some(LeakProbe {
                column: root.column.clone(),
                col,
                set: check.set.clone(),
                subject_type: check.subject_type,
                subject: root.subject.clone(),
            });
        }
        if !found {
            tracing::warn!(
                event = "snapshot.leak_check_skipped",
                table = %root.table,
                column = %root.column,
                "erasure.subjects names a table or column this database does not have; fix erasure.subjects"
            );
        }
    }
    jobs
}

/// Checks with storage that every object is there with the size written,
/// right before the manifest makes them a snapshot.
async fn confirm_objects(storage: &Arc<dyn Storage>, m: &Manifest) -> Result<(), SnapshotError> {
    let objects: Vec<(String, u64)> = m.objects().map(|o| (o.key.clone(), o.size)).collect();
    for batch in objects.chunks(16) {
        // Owned futures (an Arc and a String each) keep this future `Send`
        // for the daemon, which a borrowing closure would not.
        let heads = batch.iter().map(|(key, _)| {
            let (storage, key) = (storage.clone(), key.clone());
            async move { storage.head(&key).await }
        });
        let found = futures::future::join_all(heads.collect::<Vec<_>>()).await;
        for ((key, size), found) in batch.iter().zip(found) {
            match found.map_err(|error| SnapshotError::Storage {
                stage: Stage::Commit,
                error,
            })? {
                Some(meta) if meta.size == *size => {}
                other => {
                    return Err(SnapshotError::Object {
                        stage: Stage::Commit,
                        key: key.clone(),
                        message: format!(
                            "storage reports {} after the upload of {size} bytes succeeded",
                            other.map_or("no object".to_string(), |m| format!("{} bytes", m.size)),
                        ),
                    });
                }
            }
        }
    }
    Ok(())
}
