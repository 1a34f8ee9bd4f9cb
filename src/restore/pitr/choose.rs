//! Choosing what a point needs: the restorable window it lies in (or a
//! refusal naming the nearest restorable times), the newest base of that
//! window at or before it, and the stored segments from the base's
//! consistent point on, checked to chain without a hole.

use super::{Chosen, Stop, refuse};
use crate::capture::window::{self, Window};
use crate::repo::changes::manifest::SegmentManifest;
use crate::repo::changes::point::stamp;
use crate::repo::changes::{self, Lsn, Point};
use crate::repo::layout::{self, SourceScope};
use crate::repo::manifest::Manifest;
use crate::restore::RestoreError;
use crate::storage::{Storage, StorageExt};
use chrono::{DateTime, Duration, Utc};

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
    let window::Stored {
        head,
        gaps,
        windows,
        ..
    } = window::stored(storage, source, &bases)
        .await
        .map_err(|e| refuse(format!("reading the change stream of {source}: {e}")))?;
    let (Some(first), Some(last)) = (windows.first(), windows.last()) else {
        return Err(refuse(format!(
            "nothing to restore to a point from: continuous capture of {source} has no restorable window in {} \
             (no base with its change stream is stored; `lethe list` shows what is; is [continuous] enabled?)",
            storage.describe()
        )));
    };
    // The window and the time that picks the base.
    let (w, at, stop) = match point {
        // Everything stored, unless the window ends before the head: where
        // the schema was last seen unchanged, or where a gap opened.
        Point::Latest => {
            let whole = head
                .as_ref()
                .is_some_and(|h| h.epoch == last.epoch && h.verified_at == last.to);
            let stop = if whole {
                Stop::End
            } else {
                Stop::Time(last.to)
            };
            (last.clone(), last.to, stop)
        }
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
    // A segment past the stop: its first commit is.
    let past = |m: &SegmentManifest| stop.past(m.first_commit_lsn, m.first_commit_at);
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
