//! The restorable windows of the change stream, from what is stored: each
//! epoch runs from its oldest kept base to where the stream is vouched for
//! (the head for the running epoch, the gap that ended it otherwise), less
//! the gaps inside it (schema changes no DDL was captured for). The running
//! epoch ends no later than its head's `schema_checked_at` (past it, the
//! schema may differ from the bases') and the start of a gap still open.

use super::CaptureError;
use crate::repo::changes::manifest::{GapRecord, Head};
use crate::repo::changes::{self, Epoch};
use crate::repo::manifest::Manifest;
use crate::storage::{Storage, StorageExt};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// A stretch of time a point-in-time restore can reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Window {
    pub epoch: Epoch,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Bases kept in this window.
    pub bases: usize,
}

/// A base of continuous capture: its epoch and when it was taken.
#[derive(Debug, Clone)]
pub struct Base {
    pub epoch: Epoch,
    pub at: DateTime<Utc>,
}

/// What is stored of a source's change stream.
#[derive(Debug)]
pub struct Stored {
    /// The running epoch's head, if any.
    pub head: Option<Head>,
    /// Every gap record kept.
    pub gaps: Vec<GapRecord>,
    /// The bases among the manifests given.
    pub bases: Vec<Base>,
    /// The restorable windows, oldest first.
    pub windows: Vec<Window>,
}

/// Reads the head and the gap records of `source` (`host:port/dbname`) and
/// computes its windows from the bases among `manifests`.
///
/// # Errors
/// Storage fails, or a head or gap record does not parse.
pub async fn stored(
    storage: &dyn Storage,
    source: &str,
    manifests: &[Manifest],
) -> Result<Stored, CaptureError> {
    let head = super::session::read_head(storage, source).await?;
    let gaps = gap_records(storage, source).await?;
    let bases: Vec<Base> = manifests
        .iter()
        .filter_map(|m| {
            Some(Base {
                epoch: m.continuous.as_ref()?.epoch.clone(),
                at: m.started_at,
            })
        })
        .collect();
    let windows = windows(&bases, head.as_ref(), &gaps);
    Ok(Stored {
        head,
        gaps,
        bases,
        windows,
    })
}

/// Every gap record kept for `source`.
///
/// # Errors
/// Storage fails, or a record does not parse.
pub async fn gap_records(
    storage: &dyn Storage,
    source: &str,
) -> Result<Vec<GapRecord>, CaptureError> {
    let prefix = changes::gaps_prefix(source);
    let mut gaps = Vec::new();
    for o in storage
        .list(&prefix)
        .await
        .map_err(CaptureError::storage(&prefix))?
    {
        let data = storage
            .get_bytes(&o.key)
            .await
            .map_err(CaptureError::storage(&o.key))?;
        gaps.push(GapRecord::from_json(&o.key, &data).map_err(CaptureError::Format)?);
    }
    Ok(gaps)
}

/// The windows, oldest first. `head` is the running epoch's; gaps are every
/// gap record kept.
pub fn windows(bases: &[Base], head: Option<&Head>, gaps: &[GapRecord]) -> Vec<Window> {
    let mut epochs: Vec<&Epoch> = bases.iter().map(|b| &b.epoch).collect();
    epochs.sort();
    epochs.dedup();
    let mut out = Vec::new();
    for epoch in epochs {
        let mut mine: Vec<&Base> = bases.iter().filter(|b| &b.epoch == epoch).collect();
        mine.sort_by_key(|b| b.at);
        let Some(first) = mine.first() else { continue };
        // Where the epoch ends: the head (no later than the schema is known
        // unchanged, nor than a gap still open), else the gap that closed it.
        let end = match head {
            Some(h) if &h.epoch == epoch => {
                let open = gaps
                    .iter()
                    .filter(|g| g.epoch_before.as_ref() == Some(epoch) && g.epoch_after.is_none())
                    .map(|g| g.last_commit_at.unwrap_or(g.detected_at));
                [Some(h.verified_at), h.schema_checked_at]
                    .into_iter()
                    .flatten()
                    .chain(open)
                    .min()
            }
            _ => gaps
                .iter()
                .filter(|g| {
                    g.epoch_before.as_ref() == Some(epoch) && g.epoch_after.as_ref() != Some(epoch)
                })
                .filter_map(|g| g.last_commit_at.or(Some(g.detected_at)))
                .min(),
        };
        let Some(end) = end else { continue };
        // Gaps inside the epoch split it.
        let mut inner: Vec<(DateTime<Utc>, DateTime<Utc>)> = gaps
            .iter()
            .filter(|g| {
                g.epoch_before.as_ref() == Some(epoch) && g.epoch_after.as_ref() == Some(epoch)
            })
            .filter_map(|g| Some((g.last_commit_at.unwrap_or(g.detected_at), g.resumed_at?)))
            .collect();
        inner.sort();
        let mut from = first.at;
        for (gap_from, gap_to) in inner {
            if gap_from > from {
                out.push(window(epoch, from, gap_from.min(end), &mine));
            }
            from = from.max(gap_to);
        }
        if end > from {
            out.push(window(epoch, from, end, &mine));
        }
    }
    out.retain(|w| w.from < w.to);
    // Oldest first by time: epoch ids minted in the same millisecond do not
    // sort by time.
    out.sort_by_key(|w| w.from);
    out
}

fn window(epoch: &Epoch, from: DateTime<Utc>, to: DateTime<Utc>, bases: &[&Base]) -> Window {
    Window {
        epoch: epoch.clone(),
        from,
        to,
        bases: bases.iter().filter(|b| b.at >= from && b.at <= to).count(),
    }
}

#[cfg(test)]
#[path = "window_tests.rs"]
mod tests;
