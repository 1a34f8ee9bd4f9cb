//! One pass over one table: its objects are downloaded, checked and
//! decrypted as they stream (`ObjectsReader`), filtered on a blocking thread
//! and, when the pass writes, handed through the framed channel to the
//! destination; a collecting pass only records dropped keys (`collect`,
//! `settle`). `runner` schedules the passes.

use super::RestoreError;
use super::filter::{Collected, FilterError, KeySet, Probe, RowFilter, TableStats, run_stream};
use super::plan::RestorePlan;
use crate::crypto::Opener;
use crate::erasure::ErasureSet;
use crate::erasure::config::SubjectType;
use crate::repo::manifest::{Manifest, TableEntry};
use crate::storage::Storage;
use bytes::Bytes;
use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::mpsc;

pub use super::progress::Progress;
pub use crate::framed::Frame;

/// How a table pass failed.
#[derive(Debug)]
pub(super) enum RunError {
    /// The destination stopped taking rows: its own error says why, and is
    /// the one reported (this one only if it has none).
    DestinationGone(RestoreError),
    Failed(RestoreError),
}

impl From<RestoreError> for RunError {
    fn from(e: RestoreError) -> RunError {
        RunError::Failed(e)
    }
}

impl From<RunError> for RestoreError {
    fn from(e: RunError) -> RestoreError {
        match e {
            RunError::DestinationGone(e) | RunError::Failed(e) => e,
        }
    }
}

/// Everything a table pass needs, shared by all of them.
pub struct Shared {
    pub storage: Arc<dyn Storage>,
    pub opener: Opener,
    pub manifest: Arc<Manifest>,
    pub plan: Arc<RestorePlan>,
    pub erasure: Arc<dyn ErasureSet>,
    pub subject_type: SubjectType,
    pub progress: Arc<Progress>,
    /// Told each table's index as soon as its data is committed (so its
    /// index builds can start while other tables load).
    pub loaded: Option<mpsc::UnboundedSender<usize>>,
    /// For redactions that write pseudonyms.
    pub pseudonym_key: Option<Arc<crate::erasure::pseudonym::PseudonymKey>>,
    /// A point-in-time restore: the tables whose base stream is merged
    /// with the replayed changes (`pitr::merge`); empty otherwise.
    pub deltas: super::pitr::Deltas,
    /// A point: the fields of columns captured DDL appended, per table, for
    /// rows stored before (`pitr::merge::Padded`).
    pub fills: super::pitr::Fills,
    /// What each merged table's last pass held.
    pub merged: Arc<super::pitr::Merged>,
}

/// One table's result.
#[derive(Debug, Clone, Copy)]
pub struct TableOutcome {
    pub table: usize,
    pub stats: TableStats,
    pub passes: u32,
}

/// A table's objects read one after the other as one COPY stream; each is
/// opened only when the previous one ends.
struct ObjectsReader {
    shared: Arc<Shared>,
    table: usize,
    next: usize,
    current: Option<Box<dyn Read + Send>>,
}

impl Read for ObjectsReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if let Some(r) = self.current.as_mut() {
                let n = r.read(out)?;
                if n > 0 {
                    self.shared
                        .progress
                        .bytes
                        .fetch_add(n as u64, Ordering::Relaxed);
                    // Test hook: mid-table, for the progress display's test.
                    crate::snapshot::pause::blocking("restore_data");
                    return Ok(n);
                }
                self.current = None;
            }
            let objects = &self.shared.manifest.tables[self.table].objects;
            let Some(entry) = objects.get(self.next) else {
                return Ok(0);
            };
            self.next += 1;
            self.current = Some(crate::repo::object::open_object(
                self.shared.storage.clone(),
                entry,
                &self.shared.opener,
            )?);
        }
    }
}

/// Reads table `t` once through the filter. `parents` holds the sets of the
/// tables its checks read (other than itself); `own` its record sets so far.
/// With `tx`, kept rows go to the destination and `End` is sent on success.
pub(super) fn pass_blocking(
    shared: &Arc<Shared>,
    t: usize,
    parents: &HashMap<usize, Arc<Vec<KeySet>>>,
    own: Vec<KeySet>,
    tx: Option<mpsc::Sender<Frame>>,
    internal: Option<Vec<bool>>,
) -> Result<(Vec<KeySet>, TableStats, Option<Collected>), RunError> {
    use super::filter::SetRef;
    let _reading = shared.progress.reading(t);
    let plan = &shared.plan.tables[t];
    let not_ready = |table: usize| {
        RestoreError::Internal(format!(
            "{}: the dropped set of {} is not ready",
            plan.table, shared.plan.tables[table].table
        ))
    };
    // A check against several sets (a key to a partitioned table) reads
    // their union, merged once here; a partitioned table referencing itself
    // reads its own growing set and the union of its other partitions'.
    let mut merged: Vec<Option<KeySet>> = Vec::with_capacity(plan.fks.len());
    for fk in &plan.fks {
        merged.push(match &fk.set {
            SetRef::Dropped(sources) if sources.len() > 1 => {
                let mut union = KeySet::default();
                for &(table, slot) in sources.iter().filter(|(table, _)| *table != t) {
                    let set = parents
                        .get(&table)
                        .and_then(|s| s.get(slot))
                        .ok_or_else(|| not_ready(table))?;
                    union.extend(set);
                }
                Some(union)
            }
            _ => None,
        });
    }
    let mut probes = Vec::with_capacity(plan.fks.len());
    for (fk, union) in plan.fks.iter().zip(&merged) {
        let own = match &fk.set {
            SetRef::Dropped(sources) => sources.iter().find(|(table, _)| *table == t).map(|s| s.1),
            SetRef::Root => None,
        };
        probes.push(match (&fk.set, union, own) {
            (SetRef::Root, _, _) => Probe::Root,
            (_, Some(union), Some(slot)) => Probe::OwnOr(slot, union),
            (_, Some(union), None) => Probe::Parent(union),
            (_, None, Some(slot)) => Probe::Own(slot),
            (SetRef::Dropped(sources), None, None) => {
                let &(table, slot) = sources.first().ok_or_else(|| not_ready(t))?;
                Probe::Parent(
                    parents
                        .get(&table)
                        .and_then(|s| s.get(slot))
                        .ok_or_else(|| not_ready(table))?,
                )
            }
        });
    }
    let mut filter = RowFilter::new(
        plan,
        shared.erasure.as_ref(),
        shared.subject_type,
        probes,
        own,
    )
    .with_pseudonym_key(shared.pseudonym_key.as_deref());
    if let Some(internal) = internal {
        filter = filter.collecting(internal);
    }
    let objects = ObjectsReader {
        shared: shared.clone(),
        table: t,
        next: 0,
        current: None,
    };
    // A point: the base merged with the table's changes. Its reader checks
    // the base's rows against the manifest itself.
    let merged = shared.deltas.get(&t).cloned();
    let fills = shared.fills.get(&t).cloned();
    let ncols = shared.manifest.tables[t].columns.len();
    let objects: Box<dyn Read + Send> = match &fills {
        None => Box::new(objects),
        Some(f) => Box::new(super::pitr::merge::Padded::new(objects, f.clone(), ncols)),
    };
    let reader: Box<dyn Read + Send> = match &merged {
        None => objects,
        Some(delta) => {
            let s = shared.clone();
            let reader = super::pitr::merge::MergedReader::new(
                objects,
                delta.clone(),
                shared.manifest.tables[t].rows,
                shared.manifest.tables[t].qualified(),
            )
            .on_end(move |c| {
                if let Ok(mut m) = s.merged.lock() {
                    m.insert(t, c);
                }
            });
            filter = filter.with_changes_after(reader.boundary());
            match &fills {
                None => Box::new(reader),
                Some(f) => Box::new(super::pitr::merge::Padded::new(reader, f.clone(), ncols)),
            }
        }
    };
    let generated = shared.manifest.tables[t].generated_tail();
    let result = match &tx {
        Some(tx) => {
            let mut emit = |b: Bytes| {
                // Generated columns were copied for the filter only.
                let b = if generated > 0 {
                    strip_fields(&b, generated)
                } else {
                    b
                };
                tx.blocking_send(Frame::Data(b))
                    .map_err(|_| FilterError::DestinationGone)
            };
            run_stream(&mut filter, reader, Some(&mut emit))
        }
        None => run_stream(&mut filter, reader, None),
    };
    let entry = &shared.manifest.tables[t];
    result.map_err(|e| match e {
        FilterError::DestinationGone => RunError::DestinationGone(object_error(entry, e)),
        e => RunError::Failed(object_error(entry, e)),
    })?;
    let collected = filter.take_collected();
    let (own, stats) = filter.finish();
    if tx.is_some() && merged.is_none() && stats.rows_read != entry.rows {
        return Err(RestoreError::Object {
            table: entry.qualified(),
            message: format!(
                "the manifest says {} rows but {} hold {}",
                entry.rows,
                object_keys(entry),
                stats.rows_read
            ),
        }
        .into());
    }
    if let Some(tx) = tx {
        // Not `DestinationGone`: a destination gone by the end has always
        // been reported as this error rather than its own.
        tx.blocking_send(Frame::End).map_err(|_| {
            RestoreError::Internal(format!(
                "{}: {}",
                entry.qualified(),
                FilterError::DestinationGone
            ))
        })?;
    }
    Ok((own, stats, collected))
}

/// Complete COPY text rows without their last `n` fields (raw tabs only
/// separate fields: a tab in data is escaped).
pub(super) fn strip_fields(rows: &[u8], n: usize) -> Bytes {
    let mut out = Vec::with_capacity(rows.len());
    let mut start = 0;
    for nl in memchr::memchr_iter(b'\n', rows) {
        let line = &rows[start..nl];
        let mut end = line.len();
        for _ in 0..n {
            end = memchr::memrchr(b'\t', &line[..end]).unwrap_or(0);
        }
        out.extend_from_slice(&line[..end]);
        out.push(b'\n');
        start = nl + 1;
    }
    Bytes::from(out)
}

pub(super) fn object_keys(entry: &TableEntry) -> String {
    entry
        .objects
        .iter()
        .map(|o| o.key.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn object_error(entry: &TableEntry, e: FilterError) -> RestoreError {
    // Read errors already name their object; filter errors name the table.
    let named = match &e {
        FilterError::Io(io) => crate::repo::object::ObjectError::of(io)
            .is_some_and(|n| entry.objects.iter().any(|o| o.key == n.key())),
        _ => false,
    };
    let message = e.to_string();
    RestoreError::Object {
        table: entry.qualified(),
        message: if named {
            message
        } else {
            format!("reading {}: {message}", object_keys(entry))
        },
    }
}

/// Runs a blocking pass on the blocking pool.
pub(super) async fn pass(
    shared: &Arc<Shared>,
    t: usize,
    parents: &Arc<HashMap<usize, Arc<Vec<KeySet>>>>,
    own: Vec<KeySet>,
    tx: Option<mpsc::Sender<Frame>>,
) -> Result<(Vec<KeySet>, TableStats), RunError> {
    let (s, p) = (shared.clone(), parents.clone());
    tokio::task::spawn_blocking(move || pass_blocking(&s, t, &p, own, tx, None))
        .await
        .map_err(|e| RestoreError::Internal(format!("filter task: {e}")))?
        .map(|(own, stats, _)| (own, stats))
}

/// A collecting pass over table `t` (see [`Collected`]); `internal[i]`
/// says whether its check `i` is a drop-check inside its component.
pub(super) async fn collect(
    shared: &Arc<Shared>,
    t: usize,
    parents: &Arc<HashMap<usize, Arc<Vec<KeySet>>>>,
    internal: Vec<bool>,
) -> Result<Collected, RestoreError> {
    let (s, p) = (shared.clone(), parents.clone());
    let own = vec![KeySet::default(); shared.plan.tables[t].sets()];
    tokio::task::spawn_blocking(move || pass_blocking(&s, t, &p, own, None, Some(internal)))
        .await
        .map_err(|e| RestoreError::Internal(format!("filter task: {e}")))?
        .map(|(_, _, c)| c.unwrap_or_default())
        .map_err(RestoreError::from)
}

/// Settles a self-referencing component in memory from one collecting
/// pass per table: starting from the rows dropped by themselves, a dropped
/// row's recorded keys drop every row whose internal drop-check reads
/// that key, until nothing more drops. Returns each table's final record
/// sets. Memory: the component's keys (one entry per recorded or
/// referencing key) and an index from set and key to referencing rows.
pub(super) fn settle(
    shared: &Shared,
    comp: &[usize],
    collected: &[Collected],
) -> HashMap<usize, Vec<KeySet>> {
    use super::filter::SetRef;
    let pos: HashMap<usize, usize> = comp.iter().enumerate().map(|(i, &t)| (t, i)).collect();
    // Rows are (member, row); a set is (member, slot).
    let mut waiting: HashMap<(usize, u32, u128), Vec<(usize, u32)>> = HashMap::new();
    for (m, c) in collected.iter().enumerate() {
        let plan = &shared.plan.tables[comp[m]];
        for &(row, check, key) in &c.refs {
            let SetRef::Dropped(sources) = &plan.fks[check as usize].set else {
                continue;
            };
            for &(table, slot) in sources {
                if let Some(&pm) = pos.get(&table) {
                    waiting
                        .entry((pm, slot as u32, key))
                        .or_default()
                        .push((m, row));
                }
            }
        }
    }
    // Each member's records, grouped by row (they were pushed in row order).
    let records_of = |m: usize, row: u32| {
        let r = &collected[m].records;
        let start = r.partition_point(|&(x, _, _)| x < row);
        r[start..].iter().take_while(move |&&(x, _, _)| x == row)
    };
    let mut sets: Vec<Vec<KeySet>> = comp
        .iter()
        .map(|&t| vec![KeySet::default(); shared.plan.tables[t].sets()])
        .collect();
    let mut dropped: Vec<std::collections::HashSet<u32>> = vec![Default::default(); comp.len()];
    let mut queue: Vec<(usize, u32)> = Vec::new();
    for (m, c) in collected.iter().enumerate() {
        for &row in &c.direct {
            if dropped[m].insert(row) {
                queue.push((m, row));
            }
        }
    }
    while let Some((m, row)) = queue.pop() {
        for &(_, slot, key) in records_of(m, row) {
            if !sets[m][slot as usize].insert(key) {
                continue;
            }
            if let Some(rows) = waiting.remove(&(m, slot, key)) {
                for (m2, r2) in rows {
                    if dropped[m2].insert(r2) {
                        queue.push((m2, r2));
                    }
                }
            }
        }
    }
    comp.iter().copied().zip(sets).collect()
}
