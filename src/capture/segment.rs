//! One open segment: committed transactions written as `lethe-changes 1`
//! records into payload parts (zstd → age → storage, as they arrive), then
//! closed by writing its manifest. Blocking: use it from the capture's
//! writer thread, never on an async worker.

use crate::crypto::Sealer;
use crate::pg::replication::{Col, RelationMsg};
use crate::repo::changes::codec::{self, OldKind, Record, Value};
use crate::repo::changes::manifest::{RelColumn, RelationDesc, SEGMENT_FORMAT, SegmentManifest};
use crate::repo::changes::{Epoch, Lsn, SegmentStem};
use crate::repo::manifest::{ObjectEntry, SequenceValue};
use crate::repo::object::ObjectSink;
use crate::storage::{ObjectMeta, Storage, StorageError};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use tokio::task::JoinHandle;

/// Lines are gathered here and handed to the compressor in blocks.
const LINE_BUFFER: usize = 64 << 10;

/// What every segment of one capture session shares.
pub struct StreamCtx {
    pub storage: Arc<dyn Storage>,
    pub sealer: Sealer,
    pub zstd_level: i32,
    /// A part is closed (and the next begun) past this many raw bytes.
    pub part_bytes: u64,
    /// The raw source identity, `host:port/dbname`.
    pub source: String,
    pub system_id: String,
    pub timeline: u32,
    pub epoch: Epoch,
    pub base_lsn: Lsn,
    pub rt: tokio::runtime::Handle,
    /// Unix time of the last head written: storage was complete then.
    pub vouched: Arc<std::sync::atomic::AtomicI64>,
    /// When the writer's open segment is due: the ticker wakes it then,
    /// and seldom while nothing is due.
    pub segment_due: Arc<super::receive::Due>,
}

impl StreamCtx {
    fn sealed(&self) -> bool {
        !matches!(self.sealer, Sealer::Disabled)
    }
}

struct Part {
    sink: ObjectSink,
    upload: JoinHandle<Result<ObjectMeta, StorageError>>,
}

/// A segment being written.
pub struct OpenSegment {
    stem: SegmentStem,
    prev_end_lsn: Lsn,
    first_commit_lsn: Lsn,
    first_commit_at: DateTime<Utc>,
    last_commit_lsn: Option<Lsn>,
    last_commit_at: DateTime<Utc>,
    end_lsn: Lsn,
    xacts: u64,
    changes: u64,
    relations: BTreeMap<u32, RelationDesc>,
    parts: Vec<ObjectEntry>,
    part: Option<Part>,
    buf: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error("writing change segment {stem}: {message}")]
    Write { stem: String, message: String },
    #[error("storing the manifest of change segment {key}: {source}")]
    Manifest {
        key: String,
        #[source]
        source: StorageError,
    },
    #[error(
        "a change to relation {relid} arrived before its Relation message; the stream is not \
         readable (report this as a bug)"
    )]
    UnknownRelation { relid: u32 },
}

fn value(c: &Col) -> Value {
    match c {
        Col::Null => Value::Null,
        Col::Unchanged => Value::Unchanged,
        Col::Text(b) => Value::Text(b.to_vec()),
    }
}

fn values(cs: &[Col]) -> Vec<Value> {
    cs.iter().map(value).collect()
}

fn old_kind(k: char) -> OldKind {
    if k == 'K' {
        OldKind::Key
    } else {
        OldKind::Full
    }
}

/// A Relation message as the manifest records it.
pub fn relation_desc(r: &RelationMsg) -> RelationDesc {
    RelationDesc {
        relid: r.relid,
        schema: r.schema.clone(),
        name: r.name.clone(),
        replident: r.replident.to_string(),
        columns: r
            .columns
            .iter()
            .map(|c| RelColumn::sent(c.name.clone(), c.type_oid, c.typmod, c.key))
            .collect(),
    }
}

/// A change of a transaction, as the writer hands it over.
pub enum Change<'a> {
    Insert {
        relid: u32,
        new: &'a [Col],
    },
    Update {
        relid: u32,
        old: Option<(char, &'a [Col])>,
        new: &'a [Col],
    },
    Delete {
        relid: u32,
        kind: char,
        old: &'a [Col],
    },
    Truncate {
        flags: u8,
        relids: &'a [u32],
    },
    Message {
        prefix: &'a str,
        content: &'a [u8],
    },
}

impl OpenSegment {
    /// Begins a segment whose first transaction commits at `commit_lsn`
    /// and `commit_at`; `prev_end_lsn` is where the stored stream ends.
    pub fn begin(
        prev_end_lsn: Lsn,
        commit_lsn: Lsn,
        commit_at: DateTime<Utc>,
        ctx: &StreamCtx,
    ) -> OpenSegment {
        OpenSegment {
            stem: SegmentStem::new(&ctx.source, &ctx.epoch, commit_at, commit_lsn),
            prev_end_lsn,
            first_commit_lsn: commit_lsn,
            first_commit_at: commit_at,
            last_commit_lsn: None,
            last_commit_at: commit_at,
            end_lsn: prev_end_lsn,
            xacts: 0,
            changes: 0,
            relations: BTreeMap::new(),
            parts: Vec::new(),
            part: None,
            buf: Vec::with_capacity(LINE_BUFFER * 2),
        }
    }

    fn err(&self, e: impl std::fmt::Display) -> SegmentError {
        SegmentError::Write {
            stem: self.stem.as_str().to_string(),
            message: e.to_string(),
        }
    }

    /// Raw payload bytes so far.
    pub fn raw_bytes(&self) -> u64 {
        self.parts.iter().map(|p| p.raw_size).sum::<u64>()
            + self.part.as_ref().map_or(0, |p| p.sink.raw_bytes())
            + self.buf.len() as u64
    }

    fn write(&mut self, r: &Record, ctx: &StreamCtx) -> Result<(), SegmentError> {
        codec::write_record(&mut self.buf, r).map_err(|e| self.err(e))?;
        if self.buf.len() >= LINE_BUFFER {
            self.drain(ctx)?;
        }
        Ok(())
    }

    /// Hands the gathered lines to the current part, opening one if need
    /// be, and closes the part once it is past `part_bytes`.
    fn drain(&mut self, ctx: &StreamCtx) -> Result<(), SegmentError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if self.part.is_none() {
            let n = u32::try_from(self.parts.len()).unwrap_or(u32::MAX);
            let key = self.stem.part_key(n, ctx.sealed());
            let (mut sink, upload) =
                ObjectSink::create(ctx.storage.clone(), key, &ctx.sealer, ctx.zstd_level)
                    .map_err(|e| self.err(e))?;
            codec::write_header(&mut sink).map_err(|e| self.err(e))?;
            self.part = Some(Part { sink, upload });
        }
        let part = self.part.as_mut().expect("opened above");
        if let Err(e) = part.sink.write_all(&self.buf) {
            return Err(self.err(e));
        }
        self.buf.clear();
        if part.sink.raw_bytes() >= ctx.part_bytes {
            self.close_part(ctx)?;
        }
        Ok(())
    }

    fn close_part(&mut self, ctx: &StreamCtx) -> Result<(), SegmentError> {
        if let Some(Part { sink, upload }) = self.part.take() {
            let entry = sink.finish(upload, &ctx.rt).map_err(|e| self.err(e))?;
            self.parts.push(entry);
        }
        Ok(())
    }

    /// A transaction begins.
    pub fn begin_txn(
        &mut self,
        commit_lsn: Lsn,
        xid: u32,
        commit_time: i64,
        ctx: &StreamCtx,
    ) -> Result<(), SegmentError> {
        self.write(
            &Record::Begin {
                commit_lsn,
                xid,
                commit_time,
            },
            ctx,
        )
    }

    /// Writes an `R` record for `relid` when this segment has not described
    /// it yet or its shape changed since (a Relation message after DDL).
    fn describe(
        &mut self,
        relid: u32,
        known: &BTreeMap<u32, RelationMsg>,
        ctx: &StreamCtx,
    ) -> Result<(), SegmentError> {
        let rel = known
            .get(&relid)
            .ok_or(SegmentError::UnknownRelation { relid })?;
        let desc = relation_desc(rel);
        if self.relations.get(&relid) != Some(&desc) {
            self.write(&Record::Relation(desc.clone()), ctx)?;
            self.relations.insert(relid, desc);
        }
        Ok(())
    }

    /// A change inside the open transaction.
    pub fn change(
        &mut self,
        c: Change<'_>,
        known: &BTreeMap<u32, RelationMsg>,
        ctx: &StreamCtx,
    ) -> Result<(), SegmentError> {
        let record = match c {
            Change::Insert { relid, new } => {
                self.describe(relid, known, ctx)?;
                Record::Insert {
                    relid,
                    new: values(new),
                }
            }
            Change::Update { relid, old, new } => {
                self.describe(relid, known, ctx)?;
                Record::Update {
                    relid,
                    old: old.map(|(k, cols)| (old_kind(k), values(cols))),
                    new: values(new),
                }
            }
            Change::Delete { relid, kind, old } => {
                self.describe(relid, known, ctx)?;
                Record::Delete {
                    relid,
                    kind: old_kind(kind),
                    old: values(old),
                }
            }
            Change::Truncate { flags, relids } => {
                for r in relids {
                    self.describe(*r, known, ctx)?;
                }
                Record::Truncate {
                    flags,
                    relids: relids.to_vec(),
                }
            }
            Change::Message { prefix, content } => Record::Message {
                prefix: prefix.to_string(),
                content: content.to_vec(),
            },
        };
        self.changes += 1;
        self.write(&record, ctx)
    }

    /// The open transaction committed.
    pub fn commit(
        &mut self,
        commit_lsn: Lsn,
        end_lsn: Lsn,
        commit_at: DateTime<Utc>,
        ctx: &StreamCtx,
    ) -> Result<(), SegmentError> {
        self.write(
            &Record::Commit {
                commit_lsn,
                end_lsn,
            },
            ctx,
        )?;
        self.xacts += 1;
        self.last_commit_lsn = Some(commit_lsn);
        self.last_commit_at = self.last_commit_at.max(commit_at);
        self.end_lsn = end_lsn;
        Ok(())
    }

    /// Stores the last part and then the manifest: from here on the
    /// segment exists. Call only between transactions, with at least one
    /// committed.
    pub fn close(
        mut self,
        sequences: Vec<SequenceValue>,
        sequences_at: Option<DateTime<Utc>>,
        ctx: &StreamCtx,
    ) -> Result<SegmentManifest, SegmentError> {
        self.drain(ctx)?;
        self.close_part(ctx)?;
        let last = self
            .last_commit_lsn
            .ok_or_else(|| self.err("closed with no committed transaction"))?;
        let m = SegmentManifest {
            format: SEGMENT_FORMAT,
            source: ctx.source.clone(),
            system_id: ctx.system_id.clone(),
            timeline: ctx.timeline,
            epoch: ctx.epoch.clone(),
            base_lsn: ctx.base_lsn,
            prev_end_lsn: self.prev_end_lsn,
            first_commit_lsn: self.first_commit_lsn,
            last_commit_lsn: last,
            end_lsn: self.end_lsn,
            first_commit_at: self.first_commit_at,
            last_commit_at: self.last_commit_at,
            xacts: self.xacts,
            changes: self.changes,
            parts: std::mem::take(&mut self.parts),
            relations: std::mem::take(&mut self.relations).into_values().collect(),
            ddl: Vec::new(),
            rewrites: Vec::new(),
            sequences,
            sequences_at,
            recipients: ctx.sealer.fingerprints(),
            compression: "zstd".into(),
        };
        let key = self.stem.manifest_key(last);
        crate::snapshot::pause::blocking("capture.after_parts");
        ctx.rt
            .block_on(crate::storage::StorageExt::put_bytes(
                ctx.storage.as_ref(),
                &key,
                bytes::Bytes::from(m.to_json()),
            ))
            .map_err(|source| SegmentError::Manifest { key, source })?;
        Ok(m)
    }
}
