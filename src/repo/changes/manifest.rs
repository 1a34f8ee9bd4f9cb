//! The JSON documents of a change stream: the segment manifest (written
//! last, its presence makes a segment complete), the stream head and the
//! gap record. Each carries a `format`; a newer one is refused, as
//! `repo::manifest` refuses a newer snapshot manifest.

use super::{
    ChangesError, Epoch, Lsn, SegmentStem, gap_key, head_key, is_ulid, parse_manifest_key,
};
use crate::repo::manifest::{ObjectEntry, SequenceValue};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Segment manifest format written by this build; newer ones are refused.
pub const SEGMENT_FORMAT: u32 = 1;
/// Stream head format written by this build; newer ones are refused.
pub const HEAD_FORMAT: u32 = 1;
/// Gap record format written by this build; newer ones are refused.
pub const GAP_FORMAT: u32 = 1;

const SEGMENT: &str = "segment manifest";
const HEAD: &str = "stream head";
const GAP: &str = "gap record";

/// Reads `format` first, so that a newer document is refused as newer
/// rather than as one with unknown fields, then the whole document.
fn parse_versioned<T: DeserializeOwned>(
    what: &'static str,
    supported: u32,
    key: &str,
    data: &[u8],
) -> Result<T, ChangesError> {
    #[derive(Deserialize)]
    struct Version {
        format: u32,
    }
    let parse = |e: serde_json::Error| ChangesError::Parse {
        what,
        key: key.to_string(),
        message: e.to_string(),
    };
    let v: Version = serde_json::from_slice(data).map_err(parse)?;
    if v.format > supported {
        return Err(ChangesError::TooNew {
            what,
            key: key.to_string(),
            found: v.format,
            supported,
        });
    }
    serde_json::from_slice(data).map_err(parse)
}

fn invalid(what: &'static str, key: &str, rule: String) -> ChangesError {
    ChangesError::Invalid {
        what,
        key: key.to_string(),
        rule,
    }
}

/// One column of a relation as pgoutput described it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelColumn {
    /// Column name.
    pub name: String,
    /// `pg_type` oid.
    pub type_oid: u32,
    /// Type modifier (`atttypmod`), -1 when none.
    pub typmod: i32,
    /// `format_type(type_oid, typmod)`, e.g. `numeric(12,2)`.
    pub type_name: Option<String>,
    /// `format_type()` of the type under any domains.
    pub base_type: Option<String>,
    /// `pg_attribute.attnum`, when looked up.
    pub attnum: Option<i16>,
    /// Part of the replica identity (pgoutput's key flag).
    pub key: bool,
}

impl RelColumn {
    /// A column as pgoutput describes it, nothing looked up.
    pub fn sent(name: String, type_oid: u32, typmod: i32, key: bool) -> RelColumn {
        RelColumn {
            name,
            type_oid,
            typmod,
            type_name: None,
            base_type: None,
            attnum: None,
            key,
        }
    }
}

/// A relation a segment's payload uses, with the shape every change of it
/// in the segment has.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelationDesc {
    /// The relation's oid, as the payload's records name it.
    pub relid: u32,
    /// Schema name.
    pub schema: String,
    /// Relation name.
    pub name: String,
    /// `relreplident`: `d` default, `f` full, `i` index, `n` nothing.
    pub replident: String,
    /// The columns pgoutput sends, in order.
    pub columns: Vec<RelColumn>,
}

/// Where a `lethe.ddl` message sits in the payload: the transaction's
/// commit LSN and the message's place among that transaction's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DdlMark {
    /// Commit LSN of the transaction holding the DDL.
    pub commit_lsn: Lsn,
    /// The message's number within that transaction, from 0.
    pub seq: u32,
}

/// A segment's manifest (design §2.4): what the payload parts are and
/// everything needed to read them on their own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentManifest {
    /// [`SEGMENT_FORMAT`] when written.
    pub format: u32,
    /// The raw source identity, `host:port/dbname`.
    pub source: String,
    /// The server's system identifier (IDENTIFY_SYSTEM).
    pub system_id: String,
    /// The server's timeline.
    pub timeline: u32,
    /// The stream.
    pub epoch: Epoch,
    /// The epoch's first consistent point.
    pub base_lsn: Lsn,
    /// The previous segment's `end_lsn`: segments chain through it.
    pub prev_end_lsn: Lsn,
    /// The first transaction's commit LSN.
    pub first_commit_lsn: Lsn,
    /// The last transaction's commit LSN.
    pub last_commit_lsn: Lsn,
    /// The end of the last transaction's commit record.
    pub end_lsn: Lsn,
    /// The first transaction's commit time.
    pub first_commit_at: DateTime<Utc>,
    /// The last transaction's commit time.
    pub last_commit_at: DateTime<Utc>,
    /// Transactions in the payload.
    pub xacts: u64,
    /// Change records (I, U, D, T, M) in the payload.
    pub changes: u64,
    /// The payload parts, in order; concatenated they are the payload.
    pub parts: Vec<ObjectEntry>,
    /// Every relation the payload uses.
    pub relations: Vec<RelationDesc>,
    /// Where the payload's `lethe.ddl` messages are.
    pub ddl: Vec<DdlMark>,
    /// Relids whose table was rewritten in this segment.
    pub rewrites: Vec<u32>,
    /// Sequence values sampled after the segment's last commit arrived.
    pub sequences: Vec<SequenceValue>,
    /// When `sequences` was sampled.
    pub sequences_at: Option<DateTime<Utc>>,
    /// Fingerprints of the age recipients; empty means stored unencrypted.
    pub recipients: Vec<String>,
    /// `zstd`.
    pub compression: String,
}

impl SegmentManifest {
    /// The stem of this segment's keys, from its own fields.
    pub fn stem(&self) -> SegmentStem {
        SegmentStem::new(
            &self.source,
            &self.epoch,
            self.first_commit_at,
            self.first_commit_lsn,
        )
    }

    /// Parses and checks ([`SegmentManifest::validate`]) a manifest read
    /// from `key`.
    ///
    /// # Errors
    /// Bad JSON, a newer format, a broken rule; each names `key`.
    pub fn from_json(key: &str, data: &[u8]) -> Result<SegmentManifest, ChangesError> {
        let m: SegmentManifest = parse_versioned(SEGMENT, SEGMENT_FORMAT, key, data)?;
        m.validate(key)?;
        Ok(m)
    }

    /// Pretty JSON for storage.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("segment manifest serialises")
    }

    /// Checks the manifest stored at `key` keeps its rules:
    /// `first_commit_lsn ≤ last_commit_lsn ≤ end_lsn`,
    /// `prev_end_lsn ≤ first_commit_lsn`, `first_commit_at ≤
    /// last_commit_at`, `key` is the manifest key its own fields make,
    /// parts are not empty and are the stem's parts `.000`, `.001`, … in
    /// order, all sealed (`.age`) when there are recipients and none when
    /// not, relids are unique and `replident` is one of `d f i n`.
    ///
    /// # Errors
    /// `Invalid`, naming `key` and the broken rule.
    pub fn validate(&self, key: &str) -> Result<(), ChangesError> {
        let bad = |rule: String| Err(invalid(SEGMENT, key, rule));
        let (first, last, end) = (self.first_commit_lsn, self.last_commit_lsn, self.end_lsn);
        if !(first <= last && last <= end) {
            return bad(format!(
                "commit LSNs must satisfy first_commit_lsn ≤ last_commit_lsn ≤ end_lsn, got {first}, {last}, {end}"
            ));
        }
        if self.prev_end_lsn > first {
            return bad(format!(
                "prev_end_lsn {} is after first_commit_lsn {first}",
                self.prev_end_lsn
            ));
        }
        if self.first_commit_at > self.last_commit_at {
            return bad(format!(
                "first_commit_at {} is after last_commit_at {}",
                self.first_commit_at, self.last_commit_at
            ));
        }
        let stem = self.stem();
        let own = stem.manifest_key(self.last_commit_lsn);
        if own != key || parse_manifest_key(key).is_none() {
            return bad(format!("its fields name segment {own}, not this key"));
        }
        if self.parts.is_empty() {
            return bad("it lists no payload parts".into());
        }
        let sealed = !self.recipients.is_empty();
        for (i, p) in self.parts.iter().enumerate() {
            let n = u32::try_from(i).unwrap_or(u32::MAX);
            let want = stem.part_key(n, sealed);
            if p.key != want {
                return bad(format!(
                    "part {i} is {:?}, expected {want:?} (parts are numbered from .000 in order{})",
                    p.key,
                    if sealed {
                        ", sealed since there are recipients"
                    } else {
                        ", unsealed since there are no recipients"
                    }
                ));
            }
        }
        let mut relids = std::collections::BTreeSet::new();
        for r in &self.relations {
            if !relids.insert(r.relid) {
                return bad(format!("relation {} is listed twice", r.relid));
            }
            if !matches!(r.replident.as_str(), "d" | "f" | "i" | "n") {
                return bad(format!(
                    "relation {} has replident {:?}, not one of d, f, i, n",
                    r.relid, r.replident
                ));
            }
        }
        Ok(())
    }
}

/// A stream's head (`head.json`, rewritten): how far the stream is known
/// to be complete, and the bases taken in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Head {
    /// [`HEAD_FORMAT`] when written.
    pub format: u32,
    /// The raw source identity.
    pub source: String,
    /// The stream.
    pub epoch: Epoch,
    /// The epoch's first consistent point (its first base's).
    pub base_lsn: Lsn,
    /// The stream is complete up to here: the last segment's `end_lsn`, or
    /// further when lethe saw the source idle past it (a heartbeat).
    pub end_lsn: Lsn,
    /// The last commit stored, if any.
    pub last_commit_lsn: Option<Lsn>,
    /// When the last commit stored was made, if any.
    pub last_commit_at: Option<DateTime<Utc>>,
    /// When the slot was last seen healthy with everything stored.
    pub verified_at: DateTime<Utc>,
    /// Until when the source's schema is known to be the newest base's
    /// (`capture::schema`; the server's clock): restorable points end here.
    /// Absent in heads of lethe before 2026-12-07.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_checked_at: Option<DateTime<Utc>>,
    /// The source's schema digest when columns appended by captured DDL
    /// (`add_columns`) moved it past the newest base's: what a restarted
    /// capture compares with. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_digest: Option<String>,
    /// Snapshot ids of the bases taken in this epoch.
    pub base_ids: Vec<String>,
}

impl Head {
    /// Parses and checks a head read from `key`: `key` is the head key of
    /// its own source and epoch, and `last_commit_lsn ≤ end_lsn`.
    ///
    /// # Errors
    /// Bad JSON, a newer format, a broken rule; each names `key`.
    pub fn from_json(key: &str, data: &[u8]) -> Result<Head, ChangesError> {
        let h: Head = parse_versioned(HEAD, HEAD_FORMAT, key, data)?;
        let want = head_key(&h.source);
        if want != key {
            return Err(invalid(HEAD, key, format!("it names stream head {want}")));
        }
        if let Some(l) = h.last_commit_lsn.filter(|l| *l > h.end_lsn) {
            return Err(invalid(
                HEAD,
                key,
                format!("last_commit_lsn {l} is after end_lsn {}", h.end_lsn),
            ));
        }
        Ok(h)
    }

    /// Pretty JSON for storage.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("stream head serialises")
    }
}

/// Why a stream broke (design §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GapReason {
    /// The slot is gone.
    SlotMissing,
    /// The slot's WAL was removed (`wal_status = 'lost'`).
    WalRemoved,
    /// The slot was invalidated because rows it needs were removed.
    RowsRemoved,
    /// `wal_level` no longer supports logical decoding.
    WalLevelInsufficient,
    /// The slot was invalidated for being idle.
    IdleTimeout,
    /// A table rewrite the stream cannot follow.
    Rewrite,
    /// A schema change the stream did not see.
    SchemaUndetected,
    /// Another system id or timeline (failover, restored server).
    SystemChanged,
}

impl GapReason {
    /// The snake_case name, as serialised.
    pub fn as_str(&self) -> &'static str {
        match self {
            GapReason::SlotMissing => "slot_missing",
            GapReason::WalRemoved => "wal_removed",
            GapReason::RowsRemoved => "rows_removed",
            GapReason::WalLevelInsufficient => "wal_level_insufficient",
            GapReason::IdleTimeout => "idle_timeout",
            GapReason::Rewrite => "rewrite",
            GapReason::SchemaUndetected => "schema_undetected",
            GapReason::SystemChanged => "system_changed",
        }
    }
}

impl std::fmt::Display for GapReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One gap in a source's history (`changes/<src>/gaps/<id>.json`): from
/// the last commit stored before it to where capture resumed. The
/// `*_after` and `resumed_*` fields are filled once capture resumes; an
/// open gap has them `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GapRecord {
    /// [`GAP_FORMAT`] when written.
    pub format: u32,
    /// The record's ULID (its key's name).
    pub id: String,
    /// The raw source identity.
    pub source: String,
    /// The stream that broke, if there was one.
    pub epoch_before: Option<Epoch>,
    /// The last commit stored before the gap.
    pub last_commit_lsn: Option<Lsn>,
    /// When that commit was made.
    pub last_commit_at: Option<DateTime<Utc>>,
    /// The stream capture resumed in (the same epoch for `rewrite` and
    /// `schema_undetected`).
    pub epoch_after: Option<Epoch>,
    /// The new consistent point.
    pub resumed_lsn: Option<Lsn>,
    /// When capture resumed.
    pub resumed_at: Option<DateTime<Utc>>,
    /// The base taken to resume.
    pub base_id: Option<String>,
    /// Why.
    pub reason: GapReason,
    /// When the gap was detected.
    pub detected_at: DateTime<Utc>,
}

impl GapRecord {
    /// Parses and checks a gap record read from `key`: `id` is a ULID and
    /// `key` is the gap key of its own source and id.
    ///
    /// # Errors
    /// Bad JSON, a newer format, a broken rule; each names `key`.
    pub fn from_json(key: &str, data: &[u8]) -> Result<GapRecord, ChangesError> {
        let g: GapRecord = parse_versioned(GAP, GAP_FORMAT, key, data)?;
        if !is_ulid(&g.id) {
            return Err(invalid(GAP, key, format!("id {:?} is not a ULID", g.id)));
        }
        let want = gap_key(&g.source, &g.id);
        if want != key {
            return Err(invalid(GAP, key, format!("it names gap record {want}")));
        }
        Ok(g)
    }

    /// Pretty JSON for storage.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("gap record serialises")
    }
}

#[cfg(test)]
#[path = "manifest_tests.rs"]
mod tests;
