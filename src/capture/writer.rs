//! The capture's writer: decoded messages in, segments out, positions
//! confirmed back. Runs on one blocking thread; the receiver task and a
//! ticker feed it through one channel.
//!
//! The order that makes a crash lose nothing (docs/design/continuous.md §3):
//! every part stored → the segment manifest → `head.json` → confirm the
//! segment's end to the server. A transaction stored before a crash but
//! not yet confirmed comes again after it; the writer skips every
//! transaction whose commit lies below where the stored stream ends.

use super::segment::{Change, OpenSegment, SegmentError, StreamCtx};
use crate::pg::replication::{Change as Msg, Confirmer, Frame, RelationMsg};
use crate::repo::changes::codec::commit_time_to_utc;
use crate::repo::changes::manifest::{HEAD_FORMAT, Head, RelColumn, RelationDesc, SegmentManifest};
use crate::repo::changes::{self, Lsn, ddl};
use crate::repo::manifest::SequenceValue;
use crate::storage::{StorageError, StorageExt};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What the writer receives.
pub enum Input {
    /// One frame (the writer takes a hand-off of [`Input::Frames`] apart
    /// into these).
    Frame(Frame),
    /// Frames in stream order (a transaction's, or a part of a long one).
    Frames(Vec<Frame>),
    /// Time passed: close a segment that is due.
    Tick,
    /// A later base of this epoch is stored: the head lists it, and its
    /// schema digest is the reference from now on.
    BaseStored { id: String, digest: Option<String> },
}

/// Reads the source between transactions, after the last commit of a
/// segment arrived: the sequences' current values, and the schema's digest
/// with the server's time of the read (`pg::digest`).
pub trait SequenceSampler: Send {
    fn sample(&mut self) -> Result<Vec<SequenceValue>, String>;
    fn schema(&mut self) -> Result<crate::pg::digest::DigestRead, String>;
}

#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    #[error(transparent)]
    Segment(#[from] SegmentError),
    #[error("storing the stream head {key}: {source}")]
    Head {
        key: String,
        #[source]
        source: StorageError,
    },
    #[error("reading sequence values for a change segment: {0}")]
    Sequences(String),
    #[error("the replication stream broke its order: {0}")]
    Order(String),
    #[error("a commit time lethe cannot represent ({0} µs after 2000-01-01)")]
    Time(i64),
}

/// Where the stored stream stands.
#[derive(Debug, Clone)]
pub struct Stored {
    /// `end_lsn`: everything before it is stored (or was nothing of ours).
    pub head: Head,
    /// The last stored segment's `end_lsn` (the base's consistent point
    /// before the first): the next segment's `prev_end_lsn`.
    pub chain_end: Lsn,
    /// The shapes of the relations the last stored segment used: a
    /// Relation message that differs is a schema change.
    pub shapes: BTreeMap<u32, RelationDesc>,
}

/// A schema change the capture saw: the window from `since` to the next
/// base cannot be restored (no DDL is captured), so a base is taken now.
#[derive(Debug, Clone)]
pub struct SchemaChange {
    /// The last time known to be in the old shape.
    pub since: Option<DateTime<Utc>>,
    pub what: String,
}

/// The writer's settings.
pub struct WriterOptions {
    pub flush_every: Duration,
    /// A segment is closed at the next commit past this many raw bytes.
    pub segment_bytes: u64,
    /// `head.json` is rewritten at least this often while idle.
    pub head_every: Duration,
}

/// One flushed segment, for events and tests.
#[derive(Debug, Clone)]
pub struct Flushed {
    pub end_lsn: Lsn,
    pub last_commit_at: DateTime<Utc>,
    pub xacts: u64,
    pub changes: u64,
    pub bytes: u64,
}

/// Runs until the input closes (the receiver stopped) or an error.
///
/// # Errors
/// A segment or head that cannot be stored, a stream out of order.
#[allow(clippy::too_many_arguments)] // one call site: the session's parts
pub fn run(
    mut input: mpsc::Receiver<Input>,
    ctx: &StreamCtx,
    mut stored: Stored,
    confirmer: &Confirmer,
    sampler: &mut dyn SequenceSampler,
    opts: &WriterOptions,
    changed: &mpsc::Sender<SchemaChange>,
    schema: super::schema::SchemaWatch,
) -> Result<Stored, WriterError> {
    let mut schema = SchemaReads::new(schema, opts.flush_every);
    let mut relations: BTreeMap<u32, RelationMsg> = BTreeMap::new();
    let mut open: Option<OpenSegment> = None;
    let mut due: Option<Instant> = None;
    // Inside a transaction that was stored before (sent again): skipped.
    let mut skipping = false;
    let mut in_txn = false;
    let mut txn_commit_lsn = Lsn(0);
    let mut txn_at: Option<DateTime<Utc>> = None;
    // The first idle heartbeat writes the head at once (a new epoch's
    // window opens with it); later ones at most every `head_every`.
    let mut last_head = Instant::now()
        .checked_sub(opts.head_every)
        .unwrap_or_else(Instant::now);
    // A message between transactions with nothing unstored: its position,
    // and for lethe's heartbeat the server's time when it was emitted.
    let mut idle_confirm: Option<(Lsn, Option<DateTime<Utc>>)> = None;
    confirmer.confirm(stored.head.end_lsn.0);

    // The frames of the last hand-off not yet handled, one at a time.
    let mut frames = Vec::<Frame>::new().into_iter();
    loop {
        let msg = match frames.next() {
            Some(f) => Input::Frame(f),
            None => match input.blocking_recv() {
                Some(m) => m,
                None => break,
            },
        };
        match msg {
            // Only taken once the last hand-off is used up.
            Input::Frames(batch) => {
                frames = batch.into_iter();
                continue;
            }
            Input::Tick => {}
            Input::BaseStored { id, digest } => {
                stored.head.base_ids.push(id);
                stored.head.schema_digest = None;
                if let Some(c) = schema.watch.base_stored(&stored.head, digest.as_deref()) {
                    schema_changed(changed, c);
                }
                put_head(ctx, &stored.head)?;
            }
            Input::Frame(f) => match f.change {
                Msg::Begin {
                    final_lsn,
                    commit_time,
                    xid,
                } => {
                    if in_txn {
                        return Err(WriterError::Order(format!(
                            "Begin of {} inside the transaction committing at {}",
                            Lsn(final_lsn),
                            txn_commit_lsn
                        )));
                    }
                    in_txn = true;
                    txn_commit_lsn = Lsn(final_lsn);
                    txn_at = commit_time_to_utc(commit_time);
                    skipping = txn_commit_lsn < stored.head.end_lsn;
                    if !skipping {
                        let at = txn_at.ok_or(WriterError::Time(commit_time))?;
                        let seg = open.get_or_insert_with(|| {
                            OpenSegment::begin(stored.chain_end, txn_commit_lsn, at, ctx)
                        });
                        seg.begin_txn(txn_commit_lsn, xid, commit_time, ctx)?;
                    }
                }
                Msg::Relation(r) => {
                    let desc = super::segment::relation_desc(&r);
                    if let Some(prev) = stored.shapes.get(&r.relid)
                        && !same_shape(prev, &desc)
                    {
                        let what = format!(
                            "{}.{} changed shape ({} → {} columns)",
                            desc.schema,
                            desc.name,
                            prev.columns.len(),
                            desc.columns.len()
                        );
                        if let Some(c) = schema.watch.seen(&stored.head, what, None) {
                            schema_changed(changed, c);
                        }
                    }
                    stored.shapes.insert(r.relid, desc);
                    relations.insert(r.relid, r);
                }
                Msg::Insert { relid, ref new } if in_txn => {
                    if !skipping && let Some(seg) = open.as_mut() {
                        seg.change(Change::Insert { relid, new }, &relations, ctx)?;
                    }
                }
                Msg::Update {
                    relid,
                    ref old,
                    ref new,
                } if in_txn => {
                    if !skipping && let Some(seg) = open.as_mut() {
                        let old = old.as_ref().map(|(k, c)| (*k, c.as_slice()));
                        seg.change(Change::Update { relid, old, new }, &relations, ctx)?;
                    }
                }
                Msg::Delete {
                    relid,
                    kind,
                    ref old,
                } if in_txn => {
                    if !skipping && let Some(seg) = open.as_mut() {
                        seg.change(Change::Delete { relid, kind, old }, &relations, ctx)?;
                    }
                }
                Msg::Truncate { flags, ref relids } if in_txn => {
                    if !skipping && let Some(seg) = open.as_mut() {
                        seg.change(Change::Truncate { flags, relids }, &relations, ctx)?;
                    }
                }
                Msg::Message {
                    transactional: true,
                    ref prefix,
                    ref content,
                    ..
                } if in_txn => {
                    if !skipping && let Some(seg) = open.as_mut() {
                        seg.change(Change::Message { prefix, content }, &relations, ctx)?;
                    }
                    if !skipping && prefix == ddl::PREFIX {
                        captured_ddl(content, txn_at, &mut stored, &mut schema.watch, changed);
                    }
                }
                Msg::Commit {
                    commit_lsn,
                    end_lsn,
                    commit_time,
                } => {
                    if !in_txn || Lsn(commit_lsn) != txn_commit_lsn {
                        return Err(WriterError::Order(format!(
                            "Commit at {} without its Begin",
                            Lsn(commit_lsn)
                        )));
                    }
                    in_txn = false;
                    if let Some(c) = schema.watch.stream_reached(&mut stored.head, Lsn(end_lsn)) {
                        schema_changed(changed, c);
                    }
                    if !skipping && let Some(seg) = open.as_mut() {
                        let at = commit_time_to_utc(commit_time)
                            .ok_or(WriterError::Time(commit_time))?;
                        seg.commit(Lsn(commit_lsn), Lsn(end_lsn), at, ctx)?;
                        if due.is_none() {
                            due = Some(Instant::now() + opts.flush_every.saturating_sub(late(at)));
                        }
                        if seg.raw_bytes() >= opts.segment_bytes {
                            due = Some(Instant::now());
                        }
                    }
                    skipping = false;
                }
                Msg::Message {
                    transactional: false,
                    ref prefix,
                    ref content,
                    ..
                } => {
                    // A heartbeat (or another tool's message) between
                    // transactions: with nothing unstored, the server may
                    // forget everything before it.
                    if !in_txn && open.is_none() {
                        idle_confirm = Some((Lsn(f.wal_end), heartbeat_time(prefix, content)));
                    }
                    // Decoded in WAL order: every commit before it came.
                    if !in_txn
                        && let Some(c) = schema
                            .watch
                            .stream_reached(&mut stored.head, Lsn(f.wal_start))
                    {
                        schema_changed(changed, c);
                    }
                }
                Msg::Skipped => {}
                other => {
                    return Err(WriterError::Order(format!(
                        "{other:?} outside a transaction"
                    )));
                }
            },
        }

        // Close a due segment between transactions.
        if !in_txn && due.is_some_and(|d| Instant::now() >= d) {
            if let Some(seg) = open.take() {
                let f = flush(seg, ctx, &mut stored, sampler, &mut schema, changed)?;
                confirmer.confirm(f.end_lsn.0);
                last_head = Instant::now();
                tracing::debug!(
                    event = "continuous.flushed",
                    end_lsn = %f.end_lsn,
                    last_commit_at = %f.last_commit_at,
                    xacts = f.xacts,
                    changes = f.changes,
                    bytes_raw = f.bytes,
                );
            }
            due = None;
        }
        if !in_txn && open.is_none() && schema.due() {
            let before = stored.head.schema_checked_at;
            schema.read(sampler, &mut stored.head, changed);
            // The first read past the last stored commit (or the head's
            // time) makes it restorable: the head says so now, not a
            // minute later.
            let after = stored.head.schema_checked_at;
            let crossed = |t: Option<DateTime<Utc>>| t.is_some() && before < t && after >= t;
            if crossed(stored.head.last_commit_at) || crossed(Some(stored.head.verified_at)) {
                put_head(ctx, &stored.head)?;
                last_head = Instant::now();
            }
        }
        // Idle: the head vouches for the heartbeat's position first, then
        // the server may let go of the WAL before it (a restart must never
        // find the slot ahead of the head).
        // The first heartbeat past the last stored commit makes it
        // restorable by time: the head says so at once.
        let catches_up = |emitted: Option<DateTime<Utc>>, head: &Head| {
            emitted.is_some_and(|t| {
                head.last_commit_at
                    .is_some_and(|c| head.verified_at < c && t - STAMP_ORDER >= c)
            })
        };
        if let Some((lsn, emitted)) = idle_confirm.take()
            && open.is_none()
            && !in_txn
            && lsn > stored.head.end_lsn
            && (last_head.elapsed() >= opts.head_every || catches_up(emitted, &stored.head))
        {
            stored.head.end_lsn = lsn;
            // Complete up to when the heartbeat was emitted, not when it
            // arrived: a stream catching up after an outage is not.
            if let Some(t) = emitted {
                vouch(&mut stored.head, t);
            }
            // Within the reads' budget (the idle read above may have just
            // run in this same turn).
            if schema.due() {
                schema.read(sampler, &mut stored.head, changed);
            }
            put_head(ctx, &stored.head)?;
            confirmer.confirm(lsn.0);
            last_head = Instant::now();
        }
        ctx.segment_due.set(due);
    }
    // Stopped between transactions: store what is complete rather than
    // have the server send it again.
    if !in_txn && let Some(seg) = open.take() {
        let f = flush(seg, ctx, &mut stored, sampler, &mut schema, changed)?;
        confirmer.confirm(f.end_lsn.0);
    } else if !in_txn {
        // One last look, so the window reaches the stop.
        let before = stored.head.schema_checked_at;
        schema.read(sampler, &mut stored.head, changed);
        if stored.head.schema_checked_at > before {
            put_head(ctx, &stored.head)?;
        }
    }
    Ok(stored)
}

/// Same columns (names, types, modifiers, key flags) in the same order.
fn same_shape(a: &RelationDesc, b: &RelationDesc) -> bool {
    a.columns.len() == b.columns.len()
        && a.columns.iter().zip(&b.columns).all(|(x, y)| {
            x.name == y.name && x.type_oid == y.type_oid && x.typmod == y.typmod && x.key == y.key
        })
}

/// A commit is stamped a few microseconds before its WAL record is
/// written, so stamps and WAL order can disagree by that much (more if the
/// backend is descheduled in between): one stamped this much before the
/// time vouched for may still be on its way.
const STAMP_ORDER: chrono::Duration = chrono::Duration::milliseconds(100);

/// How long ago the server made a commit that just arrived, at most
/// [`ARRIVAL_ALLOWANCE`]: a segment is due `flush_every` after its first
/// commit was made, not after it arrived (the receiver reads a sparse
/// stream a few transactions at a time), and a stream catching up, or a
/// server clock ahead of ours, closes segments at most that much sooner.
fn late(commit_at: DateTime<Utc>) -> Duration {
    (Utc::now() - commit_at)
        .to_std()
        .unwrap_or_default()
        .min(ARRIVAL_ALLOWANCE)
}

/// A command lethe's event triggers captured (`repo::changes::ddl`), in a
/// transaction committed at `txn_at`:
/// - one no restore can replay (or a message lethe cannot read): a base,
///   as for a change the digest sees;
/// - columns appended: the table's shape takes them (so its next Relation
///   message is no change) and the digest is expected to grow by their
///   lines (`SchemaWatch::columns_added`);
/// - any other: the digest judges it.
fn captured_ddl(
    content: &[u8],
    txn_at: Option<DateTime<Utc>>,
    stored: &mut Stored,
    watch: &mut super::schema::SchemaWatch,
    changed: &mpsc::Sender<SchemaChange>,
) {
    let what =
        match ddl::Ddl::parse(content) {
            Ok(d) => match d.meaning() {
                ddl::Meaning::Replay(_) | ddl::Meaning::Other => return,
                ddl::Meaning::AddColumns(a) => {
                    let tables = std::iter::once((a.relid, &a.columns))
                        .chain(a.partitions.iter().map(|p| (p.relid, &p.columns)));
                    for (relid, columns) in tables {
                        if let Some(desc) = stored.shapes.get_mut(&relid) {
                            let key = desc.replident == "f";
                            desc.columns.extend(columns.iter().map(|c| {
                                RelColumn::sent(c.name.clone(), c.type_oid, c.typmod, key)
                            }));
                        }
                    }
                    watch.columns_added(a.digest_delta);
                    return;
                }
                ddl::Meaning::Unreplayable => {
                    format!("{}, which a restore cannot replay", d.describe())
                }
            },
            Err(e) => e,
        };
    if let Some(c) = watch.seen(
        &stored.head,
        what,
        txn_at.map(|t| t - chrono::Duration::microseconds(1)),
    ) {
        schema_changed(changed, c);
    }
}

/// See [`late`].
const ARRIVAL_ALLOWANCE: Duration = Duration::from_secs(1);

/// The head vouches that storage is complete up to `through` (a stored
/// commit's time or a heartbeat's, the server's clock), less
/// [`STAMP_ORDER`]; it never moves back.
fn vouch(head: &mut Head, through: DateTime<Utc>) {
    head.verified_at = head.verified_at.max(through - STAMP_ORDER);
}

/// The server's time in lethe's heartbeat (`capture::watch`: microseconds
/// since the epoch), if `prefix`/`content` are one.
fn heartbeat_time(prefix: &str, content: &[u8]) -> Option<DateTime<Utc>> {
    if prefix != super::watch::HEARTBEAT_PREFIX {
        return None;
    }
    let micros: i64 = std::str::from_utf8(content).ok()?.trim().parse().ok()?;
    DateTime::from_timestamp_micros(micros)
}

/// Reads of the source's schema digest (`capture::schema`): at every flush
/// and as often while idle, so a change's gap starts at most `flush_every`
/// before it — but never more often than 20 times the last read took, so
/// the reads cost the source at most 5 % of a core (a schema of 2,000
/// tables takes about 0.2 s to read).
struct SchemaReads {
    watch: super::schema::SchemaWatch,
    last: Option<Instant>,
    every: Duration,
    floor: Duration,
}

/// A read may take this share of the time between reads, at most.
const SCHEMA_READ_SHARE: u32 = 20;

impl SchemaReads {
    fn new(watch: super::schema::SchemaWatch, floor: Duration) -> SchemaReads {
        SchemaReads {
            watch,
            last: None,
            every: floor,
            floor,
        }
    }

    fn due(&self) -> bool {
        self.last.is_none_or(|l| l.elapsed() >= self.every)
    }

    /// Reads the digest and judges it: the head's check time moves, or a
    /// change goes to the bases' task. A failed read moves nothing.
    fn read(
        &mut self,
        sampler: &mut dyn SequenceSampler,
        head: &mut Head,
        changed: &mpsc::Sender<SchemaChange>,
    ) {
        let started = Instant::now();
        let read = sampler.schema();
        self.last = Some(Instant::now());
        self.every = self.floor.max(started.elapsed() * SCHEMA_READ_SHARE);
        match read {
            Ok(r) => {
                if let Some(c) = self.watch.read(head, &r.digest, r.at, r.lsn) {
                    schema_changed(changed, c);
                }
            }
            Err(e) => {
                tracing::warn!(event = "continuous.schema_check_failed", error = %e, "the source's schema could not be read: restorable points stop at the last check until it can");
            }
        }
    }
}

fn schema_changed(changed: &mpsc::Sender<SchemaChange>, c: SchemaChange) {
    tracing::warn!(event = "continuous.schema_changed", change = %c.what, "a schema change the stream does not carry: a base is taken now; restores between the last check before it and that base are refused");
    // Full means a base is already coming for earlier changes.
    let _ = changed.try_send(c);
}

fn flush(
    seg: OpenSegment,
    ctx: &StreamCtx,
    stored: &mut Stored,
    sampler: &mut dyn SequenceSampler,
    schema: &mut SchemaReads,
    changed: &mpsc::Sender<SchemaChange>,
) -> Result<Flushed, WriterError> {
    let bytes = seg.raw_bytes();
    let sequences = sampler.sample().map_err(WriterError::Sequences)?;
    let m: SegmentManifest = seg.close(sequences, Some(Utc::now()), ctx)?;
    crate::snapshot::pause::blocking("capture.after_manifest");
    stored.head.end_lsn = m.end_lsn;
    stored.chain_end = m.end_lsn;
    stored.head.last_commit_lsn = Some(m.last_commit_lsn);
    stored.head.last_commit_at = Some(m.last_commit_at);
    // Complete through the segment's last commit; a stream catching up
    // after an outage is not complete up to now.
    vouch(&mut stored.head, m.last_commit_at);
    if schema.due() {
        schema.read(sampler, &mut stored.head, changed);
    }
    put_head(ctx, &stored.head)?;
    crate::snapshot::pause::blocking("capture.after_head");
    Ok(Flushed {
        end_lsn: m.end_lsn,
        last_commit_at: m.last_commit_at,
        xacts: m.xacts,
        changes: m.changes,
        bytes,
    })
}

/// Writes `head.json`.
///
/// # Errors
/// `Head` naming the key.
pub fn put_head(ctx: &StreamCtx, head: &Head) -> Result<(), WriterError> {
    let key = changes::head_key(&ctx.source);
    debug_assert_eq!(head.format, HEAD_FORMAT);
    ctx.rt
        .block_on(
            ctx.storage
                .put_bytes(&key, bytes::Bytes::from(head.to_json())),
        )
        .map_err(|source| WriterError::Head { key, source })?;
    ctx.vouched.store(
        head.verified_at.timestamp(),
        std::sync::atomic::Ordering::Relaxed,
    );
    Ok(())
}
