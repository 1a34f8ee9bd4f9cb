//! Point-in-time restore (`lethe restore --at`): roll forward, then filter
//! (design `docs/design/continuous.md` §2.7).
//!
//! 1. `choose`: the point inside a restorable window (refused, naming the
//!    nearest restorable times, before the oldest base, after the last
//!    flushed commit or inside a gap), the newest base of that window at or
//!    before it, and the stored segments from the base's consistent point
//!    on, checked to chain without a hole.
//! 2. `replay` (pass A): every transaction from the base's consistent
//!    point up to and including the last commit at the point, in commit
//!    order, each once (a transaction stored twice counts once), into a
//!    [`delta`]: each touched row's version at the point.
//! 3. Pass B is the ordinary restore: each table's base stream merged with
//!    its delta ([`merge`]) goes through plan → filter → destination, so the
//!    result is exactly what restoring a snapshot taken at the point gives.
//!
//! Schema changes are not replayed: capture records a gap and takes a new
//! base for each (issue 19), so between a base and a point every table has
//! the base's shape, which `delta::Shape::of` checks.

pub mod delta;
pub mod merge;
pub mod store;

use super::RestoreError;
use crate::capture::window::{self, Window};
use crate::crypto::Opener;
use crate::repo::changes::codec::{Record, RecordReader, TxnChecker};
use crate::repo::changes::manifest::{GapRecord, Head, SegmentManifest};
use crate::repo::changes::{self, Lsn, Point};
use crate::repo::layout::{self, SourceScope};
use crate::repo::manifest::{Manifest, SequenceValue};
use crate::storage::{Storage, StorageExt};
use chrono::{DateTime, Duration, Utc};
use delta::{SealedDelta, Shape, TableDelta};
use std::collections::HashMap;
use std::io::BufReader;
use std::sync::Arc;

use changes::point::stamp;

/// Where replay stops: the first transaction past it is not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Time(DateTime<Utc>),
    Lsn(Lsn),
    End,
}

impl Stop {
    fn past(&self, commit_lsn: Lsn, commit_at: DateTime<Utc>) -> bool {
        match *self {
            Stop::Time(t) => commit_at > t,
            Stop::Lsn(l) => commit_lsn > l,
            Stop::End => false,
        }
    }
}

/// The base and segments a point needs.
#[derive(Clone)]
pub struct Chosen {
    /// The point as asked for.
    pub point: Point,
    /// The time the rows are as of: the point's, or the window's end for
    /// `latest` and an LSN.
    pub at: DateTime<Utc>,
    pub base: Manifest,
    /// From the one holding the base's consistent point, in commit order.
    pub segments: Vec<SegmentManifest>,
    pub window: Window,
    pub consistent: Lsn,
    stop: Stop,
    /// The last commit the stream must reach when the point is not passed
    /// before it (the head's, or the gap's that ended the epoch).
    must_reach: Option<Lsn>,
}

fn refuse(message: String) -> RestoreError {
    RestoreError::Point(message)
}

fn window_list(ws: &[Window]) -> String {
    ws.iter()
        .map(|w| format!("{} → {}", stamp(w.from), stamp(w.to)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Finds the base and segments for `point`, or refuses naming the nearest
/// restorable times.
///
/// # Errors
/// `Point` for a point outside every window; `Repo`/`Internal` for storage.
pub async fn choose(
    storage: &dyn Storage,
    scope: &SourceScope,
    point: &Point,
) -> Result<Chosen, RestoreError> {
    let source = &scope.identity;
    let storage_err = |key: &str, e: &dyn std::fmt::Display| {
        RestoreError::Internal(format!("reading {key} from storage: {e}"))
    };
    let head_key = changes::head_key(source);
    let head = match storage
        .head(&head_key)
        .await
        .map_err(|e| storage_err(&head_key, &e))?
    {
        None => None,
        Some(_) => {
            let data = storage
                .get_bytes(&head_key)
                .await
                .map_err(|e| storage_err(&head_key, &e))?;
            Some(Head::from_json(&head_key, &data).map_err(|e| refuse(e.to_string()))?)
        }
    };
    let mut gaps = Vec::new();
    let gaps_prefix = changes::gaps_prefix(source);
    for o in storage
        .list(&gaps_prefix)
        .await
        .map_err(|e| storage_err(&gaps_prefix, &e))?
    {
        let data = storage
            .get_bytes(&o.key)
            .await
            .map_err(|e| storage_err(&o.key, &e))?;
        gaps.push(GapRecord::from_json(&o.key, &data).map_err(|e| refuse(e.to_string()))?);
    }
    let mut bases = Vec::new();
    for id in layout::list_complete(storage)
        .await
        .map_err(layout::RepoError::from)?
    {
        let m = layout::load_manifest(storage, &id).await?;
        if scope.matches(&m) && m.continuous.is_some() {
            bases.push(m);
        }
    }
    let marks: Vec<window::Base> = bases
        .iter()
        .filter_map(|m| {
            Some(window::Base {
                epoch: m.continuous.as_ref()?.epoch.clone(),
                at: m.started_at,
            })
        })
        .collect();
    let windows = window::windows(&marks, head.as_ref(), &gaps);
    let (Some(first), Some(last)) = (windows.first(), windows.last()) else {
        return Err(refuse(format!(
            "nothing to restore to a point from: continuous capture of {source} has no restorable window in {} \
             (no base with its change stream is stored; `lethe list` shows what is; is [continuous] enabled?)",
            storage.describe()
        )));
    };
    // The window and the time that picks the base.
    let (w, at, stop) = match point {
        Point::Latest => (last.clone(), last.to, Stop::End),
        Point::Time(t) => {
            if *t < first.from {
                return Err(refuse(format!(
                    "--at {}: older than the oldest restorable time {} (restorable: {})",
                    stamp(*t),
                    stamp(first.from),
                    window_list(&windows)
                )));
            }
            if *t > last.to {
                return Err(refuse(format!(
                    "--at {}: newer than the last flushed commit; the newest restorable time is {} \
                     (changes are stored through it; a later point needs capture to catch up)",
                    stamp(*t),
                    stamp(last.to)
                )));
            }
            match windows.iter().find(|w| w.from <= *t && *t <= w.to) {
                Some(w) => (w.clone(), *t, Stop::Time(*t)),
                None => {
                    let before = windows.iter().filter(|w| w.to < *t).map(|w| w.to).max();
                    let after = windows.iter().filter(|w| w.from > *t).map(|w| w.from).min();
                    let why = gaps
                        .iter()
                        .find(|g| {
                            g.last_commit_at.unwrap_or(g.detected_at) <= *t
                                && g.resumed_at.is_none_or(|r| *t < r)
                        })
                        .map_or(String::new(), |g| format!(" ({})", g.reason));
                    return Err(refuse(format!(
                        "--at {}: inside a gap of the change stream{why}, where no change was stored; \
                         the nearest restorable times are {} (before) and {} (after)",
                        stamp(*t),
                        before.map_or("none".into(), stamp),
                        after.map_or("none".into(), stamp),
                    )));
                }
            }
        }
        Point::Lsn(l) => {
            // The newest base at or before the LSN (LSNs grow across epochs).
            let base = bases
                .iter()
                .filter(|m| {
                    m.continuous
                        .as_ref()
                        .is_some_and(|c| c.consistent_lsn <= *l)
                })
                .max_by_key(|m| m.continuous.as_ref().map(|c| c.consistent_lsn));
            let Some(base) = base else {
                return Err(refuse(format!(
                    "--at LSN {l}: older than every stored base (restorable: {})",
                    window_list(&windows)
                )));
            };
            let w = windows
                .iter()
                .filter(|w| w.from <= base.started_at && base.started_at <= w.to)
                .max_by_key(|w| w.from)
                .ok_or_else(|| {
                    refuse(format!(
                        "--at LSN {l}: the base at or before it ({}) is in no restorable window (restorable: {})",
                        base.id,
                        window_list(&windows)
                    ))
                })?;
            (w.clone(), w.to, Stop::Lsn(*l))
        }
    };
    let base = bases
        .into_iter()
        .filter(|m| {
            m.continuous.as_ref().is_some_and(|c| c.epoch == w.epoch)
                && m.started_at >= w.from
                && m.started_at <= at
                && match stop {
                    Stop::Lsn(l) => m.continuous.as_ref().is_some_and(|c| c.consistent_lsn <= l),
                    _ => true,
                }
        })
        .max_by_key(|m| m.started_at)
        .ok_or_else(|| {
            refuse(format!(
                "{point}: no base of the window {} → {} was taken at or before it",
                stamp(w.from),
                stamp(w.to)
            ))
        })?;
    let consistent = base
        .continuous
        .as_ref()
        .map(|c| c.consistent_lsn)
        .unwrap_or_default();
    // Where the epoch's stream must reach: the head, or the gap ending it.
    let (must_reach, end_lsn) = match head.as_ref().filter(|h| h.epoch == w.epoch) {
        Some(h) => (h.last_commit_lsn, Some(h.end_lsn)),
        None => {
            let g = gaps
                .iter()
                .filter(|g| {
                    g.epoch_before.as_ref() == Some(&w.epoch)
                        && g.epoch_after.as_ref() != Some(&w.epoch)
                })
                .min_by_key(|g| g.detected_at);
            (
                g.and_then(|g| g.last_commit_lsn),
                g.and_then(|g| g.last_commit_lsn),
            )
        }
    };
    if let (Stop::Lsn(l), Some(end)) = (stop, end_lsn)
        && l > end
    {
        return Err(refuse(format!(
            "--at LSN {l}: newer than the last flushed position {end} of the stream (the newest restorable time is {})",
            stamp(w.to)
        )));
    }
    if let Stop::Lsn(l) = stop
        && let Some(g) = gaps.iter().find(|g| {
            g.epoch_before.as_ref() == Some(&w.epoch)
                && g.last_commit_lsn.is_some_and(|a| a < l)
                && g.resumed_lsn.is_none_or(|b| l < b)
        })
    {
        return Err(refuse(format!(
            "--at LSN {l}: inside a gap of the change stream ({}) from {} to {}",
            g.reason,
            g.last_commit_lsn.map_or("?".into(), |x| x.to_string()),
            g.resumed_lsn.map_or("not closed".into(), |x| x.to_string()),
        )));
    }
    let segments = segments_for(storage, source, &w, &base, consistent, stop).await?;
    Ok(Chosen {
        point: point.clone(),
        at,
        base,
        segments,
        window: w,
        consistent,
        stop,
        must_reach,
    })
}

/// The segments of `w`'s epoch from the one holding `consistent` to the
/// first that starts past `stop`, listed hour by hour (keys carry the hour
/// of their first commit), checked to chain.
async fn segments_for(
    storage: &dyn Storage,
    source: &str,
    w: &Window,
    base: &Manifest,
    consistent: Lsn,
    stop: Stop,
) -> Result<Vec<SegmentManifest>, RestoreError> {
    let prefix = changes::stream_prefix(source, &w.epoch);
    let past = |m: &SegmentManifest| match stop {
        Stop::Time(s) => m.first_commit_at > s,
        Stop::Lsn(l) => m.first_commit_lsn > l,
        Stop::End => false,
    };
    let mut found: Vec<SegmentManifest> = Vec::new();
    // The base's hour and the one before it, then back an hour at a time
    // until a segment reaches to its consistent point (a segment's key has
    // its first commit's hour, which may lie well before the base after a
    // catch-up).
    let mut back = base.started_at - Duration::hours(1);
    list_hour(storage, &prefix, back, consistent, &mut found).await?;
    list_hour(storage, &prefix, base.started_at, consistent, &mut found).await?;
    let floor = base.started_at - Duration::days(40);
    while found
        .first()
        .is_some_and(|m| m.prev_end_lsn > consistent && m.first_commit_lsn > consistent)
        && back > floor
    {
        back -= Duration::hours(1);
        list_hour(storage, &prefix, back, consistent, &mut found).await?;
    }
    // Forward until a segment starts past the stop, or the window ends.
    let mut t = base.started_at;
    while !found.iter().any(past) && t <= w.to {
        t += Duration::hours(1);
        list_hour(storage, &prefix, t, consistent, &mut found).await?;
    }
    // Keep those up to the first that starts past the stop.
    if let Some(i) = found.iter().position(past) {
        found.truncate(i + 1);
    }
    // Chain: no hole from the consistent point on.
    let mut end = consistent;
    for (i, m) in found.iter().enumerate() {
        let key = m.stem().manifest_key(m.last_commit_lsn);
        if i == 0 {
            if m.prev_end_lsn > consistent && m.first_commit_lsn > consistent {
                return Err(refuse(format!(
                    "the change stream is missing the changes from the base's consistent point {consistent} to {} \
                     (the first stored segment after base {} is {key}); `lethe verify --changes` checks the stream",
                    m.prev_end_lsn, base.id
                )));
            }
        } else if m.prev_end_lsn != end {
            return Err(refuse(format!(
                "the change stream is missing the changes from {end} to {} (before segment {key}); \
                 `lethe verify --changes` checks the stream",
                m.prev_end_lsn
            )));
        }
        end = m.end_lsn;
    }
    Ok(found)
}

/// Adds the segments listed under the hour of `t` whose last commit is at
/// or after `consistent`, keeping `found` sorted by first commit.
async fn list_hour(
    storage: &dyn Storage,
    prefix: &str,
    t: DateTime<Utc>,
    consistent: Lsn,
    found: &mut Vec<SegmentManifest>,
) -> Result<(), RestoreError> {
    let key = format!("{prefix}{}/", t.format("%Y%m%d/%H"));
    for o in storage
        .list(&key)
        .await
        .map_err(|e| RestoreError::Internal(format!("listing {key}: {e}")))?
    {
        if changes::parse_manifest_key(&o.key).is_none() {
            continue;
        }
        let data = storage
            .get_bytes(&o.key)
            .await
            .map_err(|e| RestoreError::Internal(format!("reading {}: {e}", o.key)))?;
        let m = SegmentManifest::from_json(&o.key, &data).map_err(|e| refuse(e.to_string()))?;
        if m.last_commit_lsn >= consistent {
            found.push(m);
        }
    }
    found.sort_by_key(|m| m.first_commit_lsn);
    found.dedup_by_key(|m| m.first_commit_lsn);
    Ok(())
}

/// Per manifest table index, the delta of a table the replay touched.
pub type Deltas = HashMap<usize, Arc<SealedDelta>>;

/// The opener for the chosen segments: plaintext when none has
/// recipients, else the identity from `--identity` or
/// `encryption.identity_file`.
///
/// # Errors
/// Encrypted segments and no identity, or one that cannot be read.
pub fn segments_opener(
    c: &Chosen,
    identity: Option<&std::path::Path>,
    cfg: &crate::config::Config,
) -> Result<Opener, RestoreError> {
    let Some(sealed) = c.segments.iter().find(|s| !s.recipients.is_empty()) else {
        return Ok(Opener::Plain);
    };
    super::identity_opener(
        identity,
        cfg,
        &format!(
            "the change stream is encrypted (recipients {})",
            sealed.recipients.join(", ")
        ),
    )
}

impl Replayed {
    /// Logs `restore.replayed` (pass A done).
    pub fn log(&self, c: &Chosen) {
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
            tables = self.deltas.len(),
            "replayed {} transaction(s) after base {} up to {}",
            self.xacts,
            c.base.id,
            c.point
        );
    }

    /// The report's point section (its tables are filled after pass B).
    pub fn report(&self, c: &Chosen) -> super::report::PointReport {
        super::report::PointReport {
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
            tables: Vec::new(),
        }
    }
}

/// What each merged table's last pass held, by manifest table index.
pub type Merged = std::sync::Mutex<HashMap<usize, merge::MergeCounts>>;

/// Per table the replay touched (`tables`, in load order): its changes
/// and what the merge did.
pub fn table_reports(
    manifest: &Manifest,
    tables: &[(usize, Arc<SealedDelta>)],
    merged: &Merged,
) -> Vec<super::report::PointTable> {
    let merged = merged.lock().map(|m| m.clone()).unwrap_or_default();
    tables
        .iter()
        .map(|(t, d)| {
            let m = merged.get(t).copied().unwrap_or_default();
            super::report::PointTable {
                table: manifest.tables[*t].qualified(),
                changes: d.changes,
                base_rows_replaced: m.base_replaced,
                rows_from_changes: m.delta_rows,
                truncated: d.truncated,
            }
        })
        .collect()
}

/// What pass A produced.
pub struct Replayed {
    /// Per manifest table index.
    pub deltas: HashMap<usize, Arc<SealedDelta>>,
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
    };
    let mut stopped = false;
    let mut last_seen: Option<Lsn> = None;
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
                        Some(&t) => Shape::of(desc, &base.tables[t])
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
                txns.feed(&rec)
                    .map_err(|e| damaged(format!("{}: {e}", part.key)))?;
                match &rec {
                    Record::Begin {
                        commit_lsn,
                        commit_time,
                        ..
                    } => {
                        let at =
                            changes::codec::commit_time_to_utc(*commit_time).ok_or_else(|| {
                                damaged(format!("commit time {commit_time} out of range"))
                            })?;
                        if stop.past(*commit_lsn, at) {
                            stopped = true;
                            break 'segments;
                        }
                        last_seen = Some(*commit_lsn);
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
                        let d =
                            delta_for(&mut deltas, &shapes, base, &db, *relid).map_err(&damaged)?;
                        out.changes += 1;
                        let r = match &rec {
                            Record::Insert { new, .. } => d.insert(new),
                            Record::Update { old, new, .. } => {
                                d.update(old.as_ref().map(|(k, v)| (*k, v.as_slice())), new)
                            }
                            Record::Delete { kind, old, .. } => d.delete(*kind, old),
                            _ => Ok(()),
                        };
                        r.map_err(|e| damaged(e.to_string()))?;
                    }
                    Record::Truncate { relids, .. } if applying => {
                        for relid in relids {
                            out.changes += 1;
                            delta_for(&mut deltas, &shapes, base, &db, *relid)
                                .map_err(&damaged)?
                                .truncate()
                                .map_err(|e| damaged(e.to_string()))?;
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
    db.flush().map_err(|e| refuse(e.to_string()))?;
    out.deltas = deltas
        .into_iter()
        .map(|(t, d)| (t, Arc::new(d.seal())))
        .collect();
    Ok(out)
}

/// The delta of the table `relid` names, made on its first change.
fn delta_for<'a>(
    deltas: &'a mut HashMap<usize, TableDelta>,
    shapes: &HashMap<u32, Result<(usize, Shape), String>>,
    base: &Manifest,
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
    let entry = &base.tables[*t];
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
            base.id
        ));
    }
    let d = deltas
        .entry(*t)
        .or_insert_with(|| TableDelta::new(shape.clone(), db.clone(), *t as u32));
    if &d.shape != shape {
        return Err(format!(
            "{} changed shape inside the window without a recorded gap",
            entry.qualified()
        ));
    }
    Ok(d)
}
