//! Restore: a snapshot read back through the erasure filter into an empty
//! database (or one plain SQL file), so erased subjects never come back.
//!
//! `plan` turns the manifest and the configured roots into per-table filter
//! plans and a load order; `filter` is the streaming COPY row filter;
//! `runner` drives it over the objects; `dest` holds the destinations (the
//! target database, the SQL file, the dry run); `report` says what was
//! dropped.
//!
//! Order: snapshot and manifest → erasure list (fail closed: missing,
//! unreadable or behind the journal refuses) → plan → identity → target
//! checks → pre-data → SET DEFAULT evaluation → data → post-data →
//! sequences. Nothing touches the target before every check has passed.

pub mod dest;
pub mod drill;
pub mod filter;
pub mod keys;
mod list;
mod pass;
mod pick;
pub mod pitr;
pub mod progress;
pub use pick::human_ago;
pub mod map;
pub mod plan;
pub mod policy_check;
pub mod report;
mod rowkeys;
pub mod runner;

use crate::config::Config;
use crate::crypto::Opener;
use crate::erasure::pseudonym::PseudonymKey;
use crate::repo::layout;
use crate::repo::manifest::Manifest;
use crate::storage::Storage;
pub use list::{LoadedList, load_list};
use report::{ListReport, RestoreReport, TableReport};
use runner::{Progress, Shared};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Repo(#[from] layout::RepoError),
    #[error("{0}")]
    ErasureList(String),
    #[error(transparent)]
    Plan(#[from] plan::PlanError),
    #[error("{0}")]
    Identity(String),
    #[error("erasure.pseudonym_key_file: {0}")]
    PseudonymKey(String),
    #[error("target {target}: {message}")]
    Target { target: String, message: String },
    #[error(
        "refusing to restore into {target}: it is not empty ({count} relation(s), e.g. {examples}); restore into a new database (createdb NAME) so nothing is mixed or overwritten"
    )]
    TargetNotEmpty {
        target: String,
        count: usize,
        examples: String,
    },
    #[error("restoring the {section} schema failed: {message}")]
    Schema {
        section: &'static str,
        message: String,
    },
    #[error("table {table}: {message}; the table was rolled back and the restore stopped")]
    Object {
        table: String,
        /// Names the object(s) it concerns.
        message: String,
    },
    #[error("loading table {table} failed: {message}")]
    Load { table: String, message: String },
    #[error(
        "foreign key {fk} is ON DELETE SET DEFAULT on column {column}, whose default `{expr}` lethe cannot use: {reason}"
    )]
    Default {
        fk: String,
        column: String,
        expr: String,
        reason: String,
    },
    #[error("--to-file {path}: {message}")]
    File { path: String, message: String },
    #[error(
        "{error}\nThe target {target} was left incomplete: {rows}. Drop it (dropdb) and restore into a new, empty database."
    )]
    TargetIncomplete {
        target: String,
        rows: String,
        error: Box<RestoreError>,
    },
    #[error("cancelled because another table failed")]
    Cancelled,
    /// `--at` names a point that cannot be restored (or its stream is
    /// damaged); says which points can.
    #[error("{0}")]
    Point(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Where the restored data goes (`dest::Destination` is what writes there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// An empty PostgreSQL database.
    Target(String),
    /// One plain SQL file.
    File(PathBuf),
    /// Nothing: `--dry-run` without a destination.
    Nowhere,
}

#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Snapshot id, `latest`, or the newest finished before a time.
    pub selector: layout::Selector,
    pub destination: Destination,
    /// Computes the report and writes nothing (and connects to nothing).
    pub dry_run: bool,
    pub identity: Option<PathBuf>,
    pub jobs: usize,
    /// Emergency override: restore with a list not proven current.
    pub allow_stale_erasure_list: bool,
    /// A progress display on stderr (shown only when it is a terminal).
    pub progress: bool,
    /// Print which snapshot `latest`/`--before` picked on stderr (a person
    /// runs the restore); off for a drill in the daemon, whose stderr
    /// carries only log events.
    pub announce: bool,
    /// Set once the target was found empty and is about to be written: from
    /// then on every row in it is this restore's, so a caller that cancels
    /// the restore (a signal) can empty it (`dest::target::purge_rows`).
    pub target_claimed: Arc<std::sync::atomic::AtomicBool>,
    /// Notified (once) when every table's rows are in and only post-data
    /// and sequences remain: a caller may take its evidence turn then.
    pub finishing: Arc<tokio::sync::Notify>,
}

/// The configured source, which snapshots a restore may pick from.
///
/// # Errors
/// `source.url` cannot be parsed.
pub fn source_scope(cfg: &Config) -> Result<layout::SourceScope, RestoreError> {
    let (identity, database) = crate::pg::source_identity(&cfg.source.url)
        .map_err(|e| RestoreError::Internal(format!("source.url: {e}")))?;
    Ok(layout::SourceScope { identity, database })
}

/// The opener for a snapshot: plaintext when it has no recipients, else the
/// identity from `--identity` or `encryption.identity_file`.
///
/// # Errors
/// No identity configured, or it cannot be read.
pub fn opener_for(
    m: &Manifest,
    identity: Option<&std::path::Path>,
    cfg: &Config,
) -> Result<Opener, RestoreError> {
    if m.recipients.is_empty() {
        return Ok(Opener::Plain);
    }
    identity_opener(
        identity,
        cfg,
        &format!(
            "snapshot {} is encrypted (recipients {})",
            m.id,
            m.recipients.join(", ")
        ),
    )
}

/// The opener of the age identity from `--identity` or
/// `encryption.identity_file`, for what `encrypted` describes.
///
/// # Errors
/// No identity configured (naming `encrypted` and both ways to give one),
/// or it cannot be read.
pub fn identity_opener(
    identity: Option<&std::path::Path>,
    cfg: &Config,
    encrypted: &str,
) -> Result<Opener, RestoreError> {
    let path = identity
        .map(PathBuf::from)
        .or_else(|| cfg.encryption.identity_file.clone())
        .ok_or_else(|| {
            RestoreError::Identity(format!(
                "{encrypted}; pass --identity FILE or set encryption.identity_file to the age identity from `lethe keygen`"
            ))
        })?;
    Opener::from_identity_file(&path).map_err(|e| RestoreError::Identity(e.to_string()))
}

/// Runs a restore and returns its report. The caller logs `restore.failed`
/// on error (see `commands::restore`).
///
/// # Errors
/// Any refusal or failure, naming what and what to do. Once the target has
/// been written to, errors are wrapped in `TargetIncomplete`.
pub async fn restore(
    cfg: &Config,
    storage: Arc<dyn Storage>,
    opts: &RestoreOptions,
) -> Result<RestoreReport, RestoreError> {
    let started_at = chrono::Utc::now();
    let clock = Instant::now();
    let scope = source_scope(cfg)?;
    let chosen = match &opts.selector {
        layout::Selector::At(point) => Some(pitr::choose(storage.as_ref(), &scope, point).await?),
        _ => None,
    };
    let manifest = Arc::new(match &chosen {
        Some(c) => c.base.clone(),
        None => layout::resolve_selected(storage.as_ref(), &opts.selector, &scope).await?,
    });
    let id = manifest.id.clone();
    pick::announce(
        &manifest,
        &opts.selector,
        opts.dry_run,
        opts.announce,
        started_at,
    );
    // A restore lease keeps retention from deleting the snapshot (for a
    // point, its base and the change stream after it) while it is read,
    // from the replay on (best effort: a host without write access still
    // restores).
    let lease = RestoreLease::take(storage.clone(), &id).await;
    let out = leased(cfg, storage, opts, chosen, manifest).await;
    lease.release().await;
    let mut report = out?;
    report.started_at = started_at;
    report.finished_at = chrono::Utc::now();
    report.seconds = clock.elapsed().as_secs_f64();
    Ok(report)
}

/// The restore once its lease is held: every check, pass A of a point,
/// then the write.
async fn leased(
    cfg: &Config,
    storage: Arc<dyn Storage>,
    opts: &RestoreOptions,
    chosen: Option<pitr::Chosen>,
    manifest: Arc<Manifest>,
) -> Result<RestoreReport, RestoreError> {
    let id = manifest.id.clone();
    // Every check that can refuse runs before anything is written.
    let mut list = load_list(cfg, storage.as_ref(), opts.allow_stale_erasure_list).await?;
    // The list only grows, but for `lethe erase remove`: one smaller than it
    // was when the snapshot was taken, by more than the removals recorded
    // since, is missing entries, whatever the journal says.
    let then = &manifest.erasure_list;
    let removed = list.removed_since(manifest.started_at).await?;
    if list.state.count + removed < then.count {
        let why = format!(
            "the erasure list at {} holds {} entries, fewer than the {} it held when snapshot {id} was taken \
             ({removed} removed since); it is missing entries (run `lethe erase sync`)",
            cfg.erasure.path.display(),
            list.state.count,
            then.count
        );
        if !opts.allow_stale_erasure_list {
            return Err(RestoreError::ErasureList(format!(
                "refusing to restore: {why} (in an emergency, --allow-stale-erasure-list restores anyway and logs it)"
            )));
        }
        tracing::warn!(event = "restore.stale_erasure_list", error = %why, "RESTORING WITH AN ERASURE LIST NOT PROVEN CURRENT (--allow-stale-erasure-list): {why}");
        list.fresh = false;
    }
    let plan = plan::RestorePlan::build_rules(&manifest, &plan::Rules::of(&cfg.erasure))?;
    let pseudonym_key = pseudonym_key(cfg, &plan)?;
    // Reusable natural keys: an erasure applies to snapshots begun before
    // it plus the grace (the application may delete the row after calling
    // `lethe erase`); a later snapshot's row with that key is a new account.
    let grace =
        chrono::Duration::from_std(cfg.erasure.reuse_grace).unwrap_or(chrono::Duration::MAX);
    // A point's rows are as of the point, so an erasure applies to them as
    // to a snapshot begun then.
    let taken_at = chosen.as_ref().map_or(manifest.started_at, |c| c.at);
    let reuse = plan.has_reusable().then(|| {
        taken_at
            .checked_sub_signed(grace)
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC)
    });
    list.prepare(plan.list_folds(cfg.erasure.subject_type), reuse)
        .await?;
    plan.check_defaults(list.set.as_ref(), cfg.erasure.subject_type)?;
    let opener = opener_for(&manifest, opts.identity.as_deref(), cfg)?;
    // Pass A of a point: the changes after the base, replayed before
    // anything is written (a damaged segment refuses here).
    let (manifest, replayed, ddl) = match &chosen {
        None => (manifest, None, pitr::PointDdl::default()),
        Some(c) => {
            let seg_opener = pitr::segments_opener(c, opts.identity.as_deref(), cfg)?;
            let mut r = pitr::replay(storage.clone(), c, seg_opener, opts.progress).await?;
            r.log(c);
            let mut m = (*manifest).clone();
            if let Some(seqs) = r.sequences.take() {
                m.sequences = seqs;
            }
            let report = r.report(c);
            let deltas = std::mem::take(&mut r.deltas);
            let ddl = pitr::PointDdl {
                pre: std::mem::take(&mut r.pre_ddl),
                post: std::mem::take(&mut r.ddl),
                fills: std::mem::take(&mut r.fills),
            };
            m.tables = std::mem::take(&mut r.tables);
            (Arc::new(m), Some((deltas, report)), ddl)
        }
    };
    // Columns captured DDL added: the filter reads the tables as of the
    // point (a policy or declared reference may name a new column).
    let plan = if ddl.fills.is_empty() {
        plan
    } else {
        let plan = plan::RestorePlan::build_rules(&manifest, &plan::Rules::of(&cfg.erasure))?;
        plan.check_defaults(list.set.as_ref(), cfg.erasure.subject_type)?;
        plan
    };
    let dest = destination(cfg, opts)?;
    dest.check(&plan).await?;
    let prepared = Prepared {
        id,
        point: replayed,
        ddl,
        manifest,
        list,
        plan,
        opener,
        pseudonym_key,
    };
    let result = write(cfg, storage, opts, prepared, dest.clone()).await;
    dest.finish(result).await
}

/// The restore lease, refreshed in the background until released.
struct RestoreLease {
    stop: tokio_util::sync::CancellationToken,
    holder: Option<tokio::task::JoinHandle<()>>,
}

impl RestoreLease {
    async fn take(
        storage: Arc<dyn Storage>,
        id: &crate::repo::manifest::SnapshotId,
    ) -> RestoreLease {
        use crate::repo::lease::{DEFAULT_TTL_SECS, Lease};
        let stop = tokio_util::sync::CancellationToken::new();
        let ttl = chrono::Duration::seconds(DEFAULT_TTL_SECS);
        let holder = match Lease::for_restore(storage, id, ttl, chrono::Utc::now()).await {
            Ok(mut lease) => {
                let stop = stop.clone();
                Some(tokio::spawn(async move {
                    if let Err(e) = lease.hold(&stop, &chrono::Utc::now).await {
                        tracing::warn!(event = "restore.lease_lost", error = %e, "the restore lease was lost; retention may delete this snapshot before the restore ends");
                    }
                    if let Err(e) = lease.release().await {
                        tracing::warn!(event = "restore.lease_failed", error = %e, "the restore lease could not be removed; it expires by itself");
                    }
                }))
            }
            Err(e) => {
                tracing::warn!(event = "restore.lease_failed", error = %e, "no restore lease: retention is not told that this snapshot is being read");
                None
            }
        };
        RestoreLease { stop, holder }
    }

    /// Stops refreshing and deletes the lease. If the restore is dropped
    /// instead (a signal), the lease expires by itself.
    async fn release(mut self) {
        self.stop.cancel();
        if let Some(h) = self.holder.take() {
            let _ = h.await;
        }
    }
}

impl Drop for RestoreLease {
    /// A dropped restore stops refreshing (and the holder deletes the lease).
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// What the checks produced.
struct Prepared {
    id: crate::repo::manifest::SnapshotId,
    /// A point-in-time restore's replay (pass A) and what the report says
    /// of the point.
    point: Option<(pitr::Deltas, report::PointReport)>,
    /// The point's captured DDL.
    ddl: pitr::PointDdl,
    manifest: Arc<Manifest>,
    list: LoadedList,
    plan: plan::RestorePlan,
    opener: Opener,
    pseudonym_key: Option<Arc<PseudonymKey>>,
}

/// The pseudonym key, when the plan redacts with pseudonyms.
///
/// # Errors
/// Pseudonyms needed and no key configured, or a key file Lethe refuses.
fn pseudonym_key(
    cfg: &Config,
    plan: &plan::RestorePlan,
) -> Result<Option<Arc<PseudonymKey>>, RestoreError> {
    if !plan.uses_pseudonyms() {
        return Ok(None);
    }
    let Some(path) = &cfg.erasure.pseudonym_key_file else {
        return Err(RestoreError::PseudonymKey(
            "a redaction writes pseudonyms but erasure.pseudonym_key_file is not set; set it to the key file the earlier restores used (`lethe keygen --pseudonym-key FILE` makes a new one, whose pseudonyms differ)".into(),
        ));
    };
    PseudonymKey::load(path)
        .map(|k| Some(Arc::new(k)))
        .map_err(|e| RestoreError::PseudonymKey(e.to_string()))
}

/// The destination `opts` name: the target, the SQL file, or nothing for
/// a dry run.
///
/// # Errors
/// No destination and not a dry run.
fn destination(
    cfg: &Config,
    opts: &RestoreOptions,
) -> Result<Arc<dyn dest::Destination>, RestoreError> {
    Ok(match (&opts.destination, opts.dry_run) {
        (_, true) => Arc::new(dest::dry_run::DryRun),
        (Destination::Target(url), false) => Arc::new(dest::target::TargetDb::new(
            url,
            dest::target::psql_path(cfg.source.bin_dir.as_deref()),
            opts.jobs,
            opts.target_claimed.clone(),
        )),
        (Destination::File(path), false) => Arc::new(dest::sqlfile::SqlFile::new(path)),
        (Destination::Nowhere, false) => {
            return Err(RestoreError::Internal(
                "no destination and not a dry run".into(),
            ));
        }
    })
}

/// Schema, data, schema, sequences into the destination (for a dry run,
/// only the data through the filter). `dest.finish` is the caller's.
async fn write(
    cfg: &Config,
    storage: Arc<dyn Storage>,
    opts: &RestoreOptions,
    p: Prepared,
    dest: Arc<dyn dest::Destination>,
) -> Result<RestoreReport, RestoreError> {
    let Prepared {
        id,
        point,
        ddl,
        manifest,
        list,
        mut plan,
        opener,
        pseudonym_key,
    } = p;
    let pitr::PointDdl { pre, post, fills } = ddl;
    let source = dest::Source {
        storage: storage.clone(),
        opener: opener.clone(),
        manifest: manifest.clone(),
        list: list.state.clone(),
        pre_ddl: pre,
        ddl: post,
    };
    dest.pre_data(&source, &mut plan).await?;

    let progress = Arc::new(Progress::default());
    let total = progress::bytes_to_read(&manifest, &plan);
    let display = opts
        .progress
        .then(|| progress::spawn_display(progress.clone(), manifest.clone(), total))
        .flatten();
    let notes = plan.notes.clone();
    let policies: Vec<Option<plan::PolicyNote>> =
        plan.tables.iter().map(|t| t.policy.clone()).collect();
    let loaded = dest.start_data(&source).await?;
    let (deltas, mut point) = match point {
        Some((d, p)) => (d, Some(p)),
        None => (Default::default(), None),
    };
    // The report's per-table replay counts, read after the run (holding
    // `shared` itself would keep its `loaded` sender, and post-data, open).
    let merged: Arc<pitr::Merged> = Default::default();
    let replayed_tables: Vec<(usize, Arc<pitr::delta::SealedDelta>)> = plan
        .load_order()
        .filter_map(|t| Some((t, deltas.get(&t)?.clone())))
        .collect();
    let shared = Arc::new(Shared {
        deltas,
        fills,
        merged: merged.clone(),
        storage,
        opener,
        manifest: manifest.clone(),
        plan: Arc::new(plan),
        erasure: list.set.clone(),
        subject_type: cfg.erasure.subject_type,
        progress: progress.clone(),
        loaded,
        pseudonym_key,
    });
    let jobs = dest.jobs(opts.jobs).max(1);
    let outcomes = runner::run_all(shared, dest.clone().tables(), jobs).await;
    if let Some((task, display)) = display {
        task.abort();
        let _ = task.await;
        progress::update(&display, &progress, &manifest, total);
        // Dropping the display leaves its last state on screen.
    }
    let outcomes = outcomes?;
    if let Some(p) = point.as_mut() {
        let stats = outcomes.iter().map(|o| (o.table, o.stats)).collect();
        p.tables = pitr::table_reports(&manifest, &replayed_tables, &merged, &stats);
    }

    opts.finishing.notify_one();
    dest.post_data(&source).await?;
    dest.replay_ddl(&source).await?;
    dest.sequences(&source).await?;

    let mut report = RestoreReport {
        snapshot: id.to_string(),
        database: manifest.database.clone(),
        mode: dest.mode().into(),
        destination: match &opts.destination {
            Destination::Target(u) => Some(crate::secrets::redact_url(u)),
            Destination::File(p) => Some(p.display().to_string()),
            Destination::Nowhere => None,
        },
        dry_run: opts.dry_run,
        erasure_list: ListReport {
            count: list.state.count,
            digest: list.state.digest.clone(),
            fresh: list.fresh,
        },
        started_at: chrono::Utc::now(),
        finished_at: chrono::Utc::now(),
        seconds: 0.0,
        tables: outcomes
            .iter()
            .map(|o| {
                TableReport::new(
                    manifest.tables[o.table].qualified(),
                    o.stats,
                    o.passes,
                    policies[o.table].as_ref(),
                )
            })
            .collect(),
        rows_read: 0,
        rows_dropped: 0,
        rows_nulled: 0,
        rows_redacted: 0,
        rows_kept: 0,
        sequences: manifest.sequences.len(),
        notes,
        point,
    };
    report.total();
    Ok(report)
}
