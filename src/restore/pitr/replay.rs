//! Pass A: the chosen segments read in commit order and every transaction
//! from the base's consistent point up to the point applied, each once,
//! into the per-table [`super::delta`], with a progress display.

use super::delta::{Shape, TableDelta};
use super::{Chosen, Deltas, refuse, store};
use crate::crypto::Opener;
use crate::repo::changes::codec::{Record, RecordReader, TxnChecker};
use crate::repo::changes::{self, Lsn, ddl};
use crate::repo::manifest::SequenceValue;
use crate::restore::RestoreError;
use crate::storage::Storage;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::io::BufReader;
use std::sync::Arc;

/// What pass A produced.
pub struct Replayed {
    /// Per manifest table index.
    pub deltas: Deltas,
    pub xacts: u64,
    pub changes: u64,
    /// The first and last commit applied.
    pub first_lsn: Option<Lsn>,
    pub last_lsn: Option<Lsn>,
    pub last_commit_at: Option<DateTime<Utc>>,
    /// Transactions stored twice (a resend after a crash), applied once.
    pub duplicates: u64,
    /// The sample of the segment holding the last applied commit.
    pub sequences: Option<Vec<SequenceValue>>,
    /// Captured DDL to run after post-data, in commit order, with the
    /// commit it came in (`repo::changes::ddl`).
    pub ddl: Vec<(Lsn, String)>,
    /// Captured `ALTER TABLE … ADD COLUMN`s to run after pre-data, before
    /// any row loads, in commit order, with their commits.
    pub pre_ddl: Vec<(Lsn, String)>,
    /// The tables as of the point: the base's, with the columns captured
    /// DDL appended.
    pub tables: Vec<crate::repo::manifest::TableEntry>,
    /// Per manifest table index, the COPY fields of the appended columns
    /// for rows stored before each was added (a row with fewer fields
    /// takes the rest from here).
    pub fills: HashMap<usize, Vec<Vec<u8>>>,
}

/// Pass A: replays the chosen segments into the delta (on a blocking
/// thread: objects are read as they stream).
///
/// # Errors
/// A damaged segment (naming it), a change the base's shape cannot take.
pub async fn replay(
    storage: Arc<dyn Storage>,
    chosen: &Chosen,
    opener: Opener,
    show_progress: bool,
) -> Result<Replayed, RestoreError> {
    let progress = Arc::new(ReplayProgress::default());
    let total: u64 = chosen
        .segments
        .iter()
        .flat_map(|s| &s.parts)
        .map(|p| p.raw_size)
        .sum();
    let display = show_progress
        .then(|| ReplayProgress::spawn_display(progress.clone(), total))
        .flatten();
    let (p, c) = (progress.clone(), chosen.clone());
    let out = tokio::task::spawn_blocking(move || replay_blocking(storage, &c, &opener, &p))
        .await
        .map_err(|e| RestoreError::Internal(format!("replay task: {e}")));
    if let Some((task, d)) = display {
        task.abort();
        let _ = task.await;
        progress.update(&d, total);
    }
    out?
}

/// Pass A's counters, for the progress display: change-stream bytes read,
/// the commit time reached (µs since 2000, 0 before the first), and the
/// transactions applied.
#[derive(Debug, Default)]
struct ReplayProgress {
    bytes: std::sync::atomic::AtomicU64,
    commit_time: std::sync::atomic::AtomicI64,
    xacts: std::sync::atomic::AtomicU64,
}

type Shown = (
    tokio::task::JoinHandle<()>,
    Arc<crate::telemetry::progress::Display>,
);

impl ReplayProgress {
    /// Shows the display on a terminal (`None` when stderr is not one),
    /// refreshed four times a second until the task is aborted.
    fn spawn_display(p: Arc<ReplayProgress>, total: u64) -> Option<Shown> {
        let d = Arc::new(crate::telemetry::progress::Display::new(
            crate::telemetry::progress::REPLAY_TEMPLATE,
            total,
        )?);
        let weak = Arc::downgrade(&d);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
            loop {
                tick.tick().await;
                let Some(d) = weak.upgrade() else { return };
                p.update(&d, total);
            }
        });
        Some((task, d))
    }

    fn update(&self, d: &crate::telemetry::progress::Display, total: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let bytes = self.bytes.load(Relaxed);
        d.bar().set_length(total.max(bytes));
        d.bar().set_position(bytes);
        let t = self.commit_time.load(Relaxed);
        let reached = changes::codec::commit_time_to_utc(t)
            .filter(|_| t != 0)
            .map_or("the base".to_string(), |t| {
                t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
            });
        d.bar().set_message(format!(
            "reached {reached} · {} transaction(s) replayed",
            self.xacts.load(Relaxed)
        ));
    }
}

/// A change-stream object read through, counted for the display.
struct Counted<'a, R> {
    inner: R,
    bytes: &'a std::sync::atomic::AtomicU64,
}

impl<R: std::io::Read> std::io::Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

fn replay_blocking(
    storage: Arc<dyn Storage>,
    chosen: &Chosen,
    opener: &Opener,
    progress: &ReplayProgress,
) -> Result<Replayed, RestoreError> {
    let Chosen {
        base,
        segments,
        consistent,
        stop,
        must_reach,
        ..
    } = chosen;
    let (consistent, stop, must_reach) = (*consistent, *stop, *must_reach);
    let tables: HashMap<(&str, &str), usize> = base
        .tables
        .iter()
        .enumerate()
        .map(|(i, t)| ((t.schema.as_str(), t.name.as_str()), i))
        .collect();
    let mut shapes: HashMap<u32, Result<(usize, Shape), String>> = HashMap::new();
    // Rows at the point live here, sealed, not in memory (see `store`).
    let db = Arc::new(store::DeltaDb::create(None).map_err(|e| refuse(e.to_string()))?);
    let mut deltas: HashMap<usize, TableDelta> = HashMap::new();
    let mut out = Replayed {
        deltas: HashMap::new(),
        xacts: 0,
        changes: 0,
        first_lsn: None,
        last_lsn: None,
        last_commit_at: None,
        duplicates: 0,
        sequences: None,
        ddl: Vec::new(),
        pre_ddl: Vec::new(),
        tables: base.tables.clone(),
        fills: HashMap::new(),
    };
    let mut stopped = false;
    let mut last_seen: Option<Lsn> = None;
    let mut txn_lsn = Lsn(0);
    'segments: for seg in segments {
        let key = seg.stem().manifest_key(seg.last_commit_lsn);
        let damaged = |what: String| {
            refuse(format!(
                "segment {key}: {what}; `lethe verify --changes --deep` checks the whole stream"
            ))
        };
        let mut txns = TxnChecker::new();
        let mut applying = false;
        let mut applied_here = false;
        for part in &seg.parts {
            // A record that makes no sense: a damaged part (read it to its
            // end, where size and BLAKE3 are checked) or, if it is intact,
            // what the record says, naming the part either way.
            let in_part = |what: String| match intact(&storage, part, opener) {
                Err(why) => damaged(why),
                Ok(()) => damaged(format!("{}: {what}", part.key)),
            };
            let r = crate::repo::object::open_object(storage.clone(), part, opener)
                .map_err(|e| damaged(format!("{}: {e}", part.key)))?;
            let r = Counted {
                inner: r,
                bytes: &progress.bytes,
            };
            let mut rr = RecordReader::new(BufReader::with_capacity(1 << 16, r))
                .map_err(|e| damaged(format!("{}: {e}", part.key)))?;
            while let Some(rec) = rr
                .next_record()
                .map_err(|e| damaged(format!("{}: {e}", part.key)))?
            {
                if let Record::Relation(desc) = &rec {
                    let shape = match tables.get(&(desc.schema.as_str(), desc.name.as_str())) {
                        Some(&t) => Shape::of(desc, &out.tables[t])
                            .map(|s| (t, s))
                            .map_err(|e| e.to_string()),
                        None => Err(format!(
                            "{}.{}: changed in the stream but not in base {}",
                            desc.schema, desc.name, base.id
                        )),
                    };
                    shapes.insert(desc.relid, shape);
                    continue;
                }
                txns.feed(&rec).map_err(|e| in_part(e.to_string()))?;
                match &rec {
                    Record::Begin {
                        commit_lsn,
                        commit_time,
                        ..
                    } => {
                        let at =
                            changes::codec::commit_time_to_utc(*commit_time).ok_or_else(|| {
                                in_part(format!("commit time {commit_time} out of range"))
                            })?;
                        if stop.past(*commit_lsn, at) {
                            stopped = true;
                            break 'segments;
                        }
                        last_seen = Some(*commit_lsn);
                        txn_lsn = *commit_lsn;
                        let dup = out.last_lsn.is_some_and(|l| *commit_lsn <= l);
                        if dup {
                            out.duplicates += 1;
                        }
                        applying = *commit_lsn >= consistent && !dup;
                        if applying {
                            out.last_commit_at = Some(at);
                            progress
                                .commit_time
                                .store(*commit_time, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                    Record::Commit { commit_lsn, .. } => {
                        if applying {
                            out.xacts += 1;
                            progress
                                .xacts
                                .store(out.xacts, std::sync::atomic::Ordering::Relaxed);
                            out.first_lsn.get_or_insert(*commit_lsn);
                            out.last_lsn = Some(*commit_lsn);
                            applied_here = true;
                        }
                        applying = false;
                    }
                    Record::Insert { relid, .. }
                    | Record::Update { relid, .. }
                    | Record::Delete { relid, .. }
                        if applying =>
                    {
                        let d = delta_for(&mut deltas, &shapes, &out.tables, &base.id, &db, *relid)
                            .map_err(&in_part)?;
                        out.changes += 1;
                        let r = match &rec {
                            Record::Insert { new, .. } => d.insert(new),
                            Record::Update { old, new, .. } => {
                                d.update(old.as_ref().map(|(k, v)| (*k, v.as_slice())), new)
                            }
                            Record::Delete { kind, old, .. } => d.delete(*kind, old),
                            _ => Ok(()),
                        };
                        r.map_err(|e| in_part(e.to_string()))?;
                    }
                    Record::Message { prefix, content } if applying && prefix == ddl::PREFIX => {
                        let d = ddl::Ddl::parse(content).map_err(&in_part)?;
                        match d.meaning() {
                            ddl::Meaning::Replay(sql) => out.ddl.push((txn_lsn, sql)),
                            ddl::Meaning::AddColumns(a) => {
                                // A plain table holds rows; a partitioned
                                // one's rows are in its partitions.
                                let own = a.partitions.is_empty().then_some((&a.table, &a.columns));
                                let held = own
                                    .into_iter()
                                    .chain(a.partitions.iter().map(|p| (&p.table, &p.columns)));
                                for (name, columns) in held {
                                    let t = tables
                                        .get(&(name.schema.as_str(), name.name.as_str()))
                                        .copied()
                                        .ok_or_else(|| {
                                            refuse(format!(
                                                "the transaction committed at {txn_lsn} added columns to {}.{}, which base {} does not hold",
                                                name.schema, name.name, base.id
                                            ))
                                        })?;
                                    add_columns(&mut out, t, columns).map_err(|e| {
                                        refuse(format!(
                                            "the transaction committed at {txn_lsn}: {e}"
                                        ))
                                    })?;
                                }
                                out.pre_ddl.push((txn_lsn, a.sql));
                            }
                            ddl::Meaning::Other => {}
                            ddl::Meaning::Unreplayable => {
                                return Err(refuse(format!(
                                    "the transaction committed at {txn_lsn} changed the schema in a way lethe cannot replay ({}); \
                                     restore a point before it, or one after the base the capture took for it (`lethe list` shows both)",
                                    d.describe()
                                )));
                            }
                        }
                    }
                    Record::Truncate { relids, .. } if applying => {
                        for relid in relids {
                            out.changes += 1;
                            delta_for(&mut deltas, &shapes, &out.tables, &base.id, &db, *relid)
                                .map_err(&in_part)?
                                .truncate()
                                .map_err(|e| in_part(e.to_string()))?;
                        }
                    }
                    _ => {}
                }
            }
        }
        if applied_here {
            out.sequences = Some(seg.sequences.clone());
        }
    }
    if !stopped
        && let Some(want) = must_reach
        && last_seen.is_none_or(|l| l < want)
        && want >= consistent
    {
        return Err(refuse(format!(
            "the change stream ends at {} but its head says the last stored commit is {want}: segments are missing; \
             `lethe verify --changes` checks the stream",
            last_seen.map_or("the base".into(), |l| l.to_string())
        )));
    }
    // An LSN is judged by the commit it reaches: past the window's end it
    // lies in a gap, or past the last schema check, in a shape no base has.
    if let (super::Stop::Lsn(l), Some(at)) = (stop, out.last_commit_at)
        && at > chosen.window.to
    {
        return Err(refuse(format!(
            "--at LSN {l}: its last commit ({}) is past the restorable window {} → {} (a gap, or a schema change \
             the stream does not carry, follows it); `lethe list` shows the restorable times",
            crate::units::rfc3339(at),
            crate::units::rfc3339(chosen.window.from),
            crate::units::rfc3339(chosen.window.to),
        )));
    }
    db.flush().map_err(|e| refuse(e.to_string()))?;
    out.deltas = deltas
        .into_iter()
        .map(|(t, d)| (t, Arc::new(d.seal())))
        .collect();
    Ok(out)
}

/// Appends captured columns to table `t` as of the point, with the value
/// rows stored before them hold.
fn add_columns(out: &mut Replayed, t: usize, columns: &[ddl::AddedColumn]) -> Result<(), String> {
    let entry = &mut out.tables[t];
    if entry.generated_tail() > 0 {
        return Err(format!(
            "columns were added to {}, which has a generated column the base copies: lethe cannot replay that",
            entry.qualified()
        ));
    }
    for c in columns {
        if entry.columns.iter().any(|b| b.name == c.name) {
            return Err(format!(
                "column {} added to {} is already there: the stream and the base disagree",
                c.name,
                entry.qualified()
            ));
        }
        entry.columns.push(c.column());
        out.fills.entry(t).or_default().push(c.missing_field());
    }
    Ok(())
}

/// The delta of the table `relid` names, made on its first change. A
/// table whose columns captured DDL appended takes the longer shape (rows
/// stored before keep fewer fields, filled when merged).
fn delta_for<'a>(
    deltas: &'a mut HashMap<usize, TableDelta>,
    shapes: &HashMap<u32, Result<(usize, Shape), String>>,
    tables: &[crate::repo::manifest::TableEntry],
    base_id: &crate::repo::manifest::SnapshotId,
    db: &Arc<store::DeltaDb>,
    relid: u32,
) -> Result<&'a mut TableDelta, String> {
    let (t, shape) = match shapes.get(&relid) {
        Some(Ok(s)) => s,
        Some(Err(e)) => return Err(e.clone()),
        None => {
            return Err(format!(
                "a change to relation {relid} before its description"
            ));
        }
    };
    let entry = &tables[*t];
    if entry.generated_tail() > 0 {
        return Err(format!(
            "{} has a generated column a foreign key follows ({}), which pgoutput does not send before PostgreSQL 18, \
             so its changes cannot be filtered; restore the base ({}) instead",
            entry.qualified(),
            entry.columns[entry.columns.len() - entry.generated_tail()..]
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            base_id
        ));
    }
    let d = deltas
        .entry(*t)
        .or_insert_with(|| TableDelta::new(shape.clone(), db.clone(), *t as u32));
    if d.shape.extended_by(shape) {
        d.shape = shape.clone();
    }
    if &d.shape != shape {
        return Err(format!(
            "{} changed shape inside the window without a recorded gap",
            entry.qualified()
        ));
    }
    Ok(d)
}

impl Replayed {
    /// Logs `restore.replayed` (pass A done).
    pub fn log(&self, c: &Chosen) {
        let stale = not_captured(c);
        if !stale.is_empty() {
            tracing::warn!(
                event = "restore.not_captured",
                tables = %stale.join(", "),
                base = %c.base.id,
                "{} table(s) are not in the change stream (unlogged, or without a replica identity): they are restored as of base {} ({}), not as of the point",
                stale.len(),
                c.base.id,
                crate::units::rfc3339(c.base.finished_at)
            );
        }
        tracing::info!(
            event = "restore.replayed",
            point = %c.point,
            base = %c.base.id,
            base_lsn = %c.consistent,
            last_lsn = self.last_lsn.map(|l| l.to_string()),
            last_commit_at = self.last_commit_at.map(crate::units::rfc3339),
            segments = c.segments.len(),
            transactions = self.xacts,
            changes = self.changes,
            duplicates = self.duplicates,
            ddl = self.ddl.len() + self.pre_ddl.len(),
            tables = self.deltas.len(),
            "replayed {} transaction(s) after base {} up to {}",
            self.xacts,
            c.base.id,
            c.point
        );
    }

    /// The report's point section (its tables are filled after pass B).
    pub fn report(&self, c: &Chosen) -> crate::restore::report::PointReport {
        crate::restore::report::PointReport {
            at: c.point.to_string(),
            window_from: c.window.from,
            window_to: c.window.to,
            base_lsn: c.consistent.to_string(),
            first_lsn: self.first_lsn.map(|l| l.to_string()),
            last_lsn: self.last_lsn.map(|l| l.to_string()),
            last_commit_at: self.last_commit_at,
            segments: c.segments.len(),
            transactions: self.xacts,
            changes: self.changes,
            duplicates: self.duplicates,
            ddl: self.ddl.len() + self.pre_ddl.len(),
            tables: Vec::new(),
            not_captured: not_captured(c),
        }
    }
}

/// Reads `part` to its end, where its size and BLAKE3 are checked against
/// the segment's manifest: `Err` (naming it) when it is damaged.
fn intact(
    storage: &Arc<dyn Storage>,
    part: &crate::repo::manifest::ObjectEntry,
    opener: &Opener,
) -> Result<(), String> {
    let mut r = crate::repo::object::open_object(Arc::clone(storage), part, opener)
        .map_err(|e| e.to_string())?;
    std::io::copy(&mut r, &mut std::io::sink())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The base's tables the stream does not carry, as the base recorded them.
fn not_captured(c: &Chosen) -> Vec<String> {
    let Some(info) = &c.base.continuous else {
        return Vec::new();
    };
    c.base
        .tables
        .iter()
        .map(|t| t.qualified())
        .filter(|t| info.not_captured.contains(t))
        .collect()
}
