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
//! Schema changes lethe's event triggers capture as replayable are applied
//! at the point: indexes, triggers, views and functions after post-data,
//! columns appended to a table after pre-data (rows stored before take the
//! column's value for them, `merge::Padded`). Every other schema change is
//! a gap and a new base (issue 19), so between a base and a point every
//! table has the base's shape plus appended columns, which
//! `delta::Shape::of` checks.

mod choose;
pub mod delta;
pub mod merge;
mod replay;
pub mod store;

pub use choose::choose;
pub use replay::{Replayed, replay};

use super::RestoreError;
use crate::capture::window::Window;
use crate::crypto::Opener;
use crate::repo::changes::manifest::SegmentManifest;
use crate::repo::changes::{Lsn, Point};
use crate::repo::manifest::Manifest;
use chrono::{DateTime, Utc};
use delta::SealedDelta;
use std::collections::HashMap;
use std::sync::Arc;

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

/// A point's captured DDL (`repo::changes::ddl`), in commit order, each
/// with its commit.
#[derive(Debug, Default)]
pub struct PointDdl {
    /// `ALTER TABLE … ADD COLUMN`s, run after pre-data.
    pub pre: Vec<(Lsn, String)>,
    /// Indexes, triggers, views, functions, run after post-data.
    pub post: Vec<(Lsn, String)>,
    /// Per manifest table index, the fields rows stored before the columns
    /// were added take (`merge::Padded`).
    pub fills: Fills,
}

/// Per manifest table index, the COPY fields of its appended columns.
pub type Fills = HashMap<usize, Vec<Vec<u8>>>;

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

/// What each merged table's last pass held, by manifest table index.
pub type Merged = std::sync::Mutex<HashMap<usize, merge::MergeCounts>>;

/// Per table the replay touched (`tables`, in load order): its changes
/// and what the merge did.
/// `stats` are the filter's last pass per table.
pub fn table_reports(
    manifest: &Manifest,
    tables: &[(usize, Arc<SealedDelta>)],
    merged: &Merged,
    stats: &HashMap<usize, crate::restore::filter::TableStats>,
) -> Vec<super::report::PointTable> {
    let merged = merged.lock().map(|m| m.clone()).unwrap_or_default();
    tables
        .iter()
        .map(|(t, d)| {
            let m = merged.get(t).copied().unwrap_or_default();
            let s = stats.get(t).copied().unwrap_or_default();
            super::report::PointTable {
                table: manifest.tables[*t].qualified(),
                changes: d.changes,
                base_rows_replaced: m.base_replaced,
                rows_from_changes: m.delta_rows,
                rows_dropped_from_changes: s.changes_dropped,
                rows_nulled_from_changes: s.changes_nulled,
                truncated: d.truncated,
            }
        })
        .collect()
}
