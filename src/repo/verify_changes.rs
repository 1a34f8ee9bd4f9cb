//! Checking a source's stored change stream (continuous capture): every
//! listed segment's parts exist with their manifest's size and BLAKE3, the
//! segments of each epoch chain without a hole or an overlap
//! (`prev_end_lsn` of one is the `end_lsn` of the one before; the first
//! starts at the epoch's base when the head knows it), and `deep` also
//! decrypts and reads every record: transactions well formed across the
//! parts, their number and their changes as the manifest says, their
//! commit LSNs inside the segment's range.

use super::changes::codec::{Record, RecordReader, TxnChecker};
use super::changes::manifest::{Head, SegmentManifest};
use super::changes::{self, Epoch, Lsn};
use super::manifest::ObjectEntry;
use super::verify::{Problem, shallow};
use crate::crypto::Opener;
use crate::storage::{Storage, StorageError, StorageExt};
use std::collections::BTreeMap;
use std::io::BufReader;
use std::sync::Arc;

/// What `verify_changes` found.
#[derive(Debug, Default)]
pub struct ChangesReport {
    pub segments: usize,
    pub parts: usize,
    pub bytes: u64,
    /// Transactions read (deep only).
    pub xacts: u64,
    pub problems: Vec<Problem>,
}

impl ChangesReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

fn manifest_problem(key: &str, message: impl std::fmt::Display) -> Problem {
    Problem::Manifest {
        message: format!("{key}: {message}"),
    }
}

/// Verifies the change stream of `source` (`host:port/dbname`).
///
/// # Errors
/// The listing or the head cannot be read.
pub async fn verify_changes(
    storage: Arc<dyn Storage>,
    source: &str,
    deep: Option<&Opener>,
) -> Result<ChangesReport, StorageError> {
    let mut out = ChangesReport::default();
    let head_key = changes::head_key(source);
    let head = match storage.head(&head_key).await? {
        None => None,
        Some(_) => {
            let data = storage.get_bytes(&head_key).await?;
            match Head::from_json(&head_key, &data) {
                Ok(h) => Some(h),
                Err(e) => {
                    out.problems.push(manifest_problem(&head_key, e));
                    None
                }
            }
        }
    };
    let prefix = changes::source_prefix(source);
    let mut epochs: BTreeMap<Epoch, Vec<SegmentManifest>> = BTreeMap::new();
    for o in storage.list(&prefix).await? {
        let Some(k) = changes::parse_manifest_key(&o.key) else {
            continue;
        };
        let data = match storage.get_bytes(&o.key).await {
            Ok(d) => d,
            Err(e) => {
                out.problems.push(Problem::Unreadable {
                    key: o.key.clone(),
                    message: e.to_string(),
                });
                continue;
            }
        };
        match SegmentManifest::from_json(&o.key, &data) {
            Ok(m) => epochs.entry(k.epoch).or_default().push(m),
            Err(e) => out.problems.push(manifest_problem(&o.key, e)),
        }
    }
    // The first segment must start at the epoch's first base, as long as
    // that base is kept (once it expired, so may have the segments after it).
    let first_base_kept = match head.as_ref().and_then(|h| h.base_ids.first()) {
        Some(id) => match id.parse::<super::manifest::SnapshotId>() {
            Ok(id) => storage
                .head(&super::layout::manifest_key(&id))
                .await?
                .is_some(),
            Err(_) => false,
        },
        None => false,
    };
    for (epoch, mut segs) in epochs {
        segs.sort_by_key(|m| m.first_commit_lsn);
        let mut prev: Option<(Lsn, Lsn, String)> = head
            .as_ref()
            .filter(|h| h.epoch == epoch && first_base_kept)
            .map(|h| (h.base_lsn, Lsn(0), "the epoch's base".to_string()));
        for m in &segs {
            let key = m.stem().manifest_key(m.last_commit_lsn);
            if let Some((end, last, what)) = &prev {
                if m.prev_end_lsn != *end {
                    out.problems.push(manifest_problem(
                        &key,
                        format!(
                            "continues from {} but {what} ends at {end}: a segment between them is missing",
                            m.prev_end_lsn
                        ),
                    ));
                }
                if m.first_commit_lsn <= *last {
                    out.problems.push(manifest_problem(
                        &key,
                        format!(
                            "overlaps {what}: its first commit {} is not after {last}",
                            m.first_commit_lsn
                        ),
                    ));
                }
            }
            prev = Some((m.end_lsn, m.last_commit_lsn, format!("segment {key}")));
            out.segments += 1;
            out.parts += m.parts.len();
            out.bytes += m.parts.iter().map(|p| p.size).sum::<u64>();
            match deep {
                None => {
                    for p in &m.parts {
                        out.problems.extend(shallow(storage.as_ref(), p).await);
                    }
                }
                Some(opener) => {
                    let (xacts, problems) =
                        read_segment(storage.clone(), m.clone(), opener.clone()).await;
                    out.xacts += xacts;
                    out.problems.extend(problems);
                }
            }
        }
    }
    Ok(out)
}

/// Reads every record of a segment's parts, in order (deep).
async fn read_segment(
    storage: Arc<dyn Storage>,
    m: SegmentManifest,
    opener: Opener,
) -> (u64, Vec<Problem>) {
    let key = m.stem().manifest_key(m.last_commit_lsn);
    let st = storage.clone();
    let m2 = m.clone();
    let read = tokio::task::spawn_blocking(
        move || -> Result<(u64, u64, Vec<String>), (ObjectEntry, String)> {
            let mut txns = TxnChecker::new();
            let (mut xacts, mut changes) = (0u64, 0u64);
            let mut wrong = Vec::new();
            for p in &m2.parts {
                let r = crate::repo::object::open_object(st.clone(), p, &opener)
                    .map_err(|e| (p.clone(), e.to_string()))?;
                let mut rr =
                    RecordReader::new(BufReader::new(r)).map_err(|e| (p.clone(), e.to_string()))?;
                while let Some(rec) = rr.next_record().map_err(|e| (p.clone(), e.to_string()))? {
                    if matches!(rec, Record::Relation(_)) {
                        continue;
                    }
                    match txns.feed(&rec) {
                        Ok(Some(t)) => {
                            xacts += 1;
                            changes += t.changes;
                            if t.commit_lsn < m2.first_commit_lsn
                                || t.commit_lsn > m2.last_commit_lsn
                            {
                                wrong.push(format!(
                                    "commit {} lies outside the segment's {}..{}",
                                    t.commit_lsn, m2.first_commit_lsn, m2.last_commit_lsn
                                ));
                            }
                        }
                        Ok(None) => {}
                        Err(e) => return Err((p.clone(), e.to_string())),
                    }
                }
            }
            if let Err(e) = txns.finish() {
                wrong.push(e.to_string());
            }
            Ok((xacts, changes, wrong))
        },
    )
    .await;
    match read {
        Ok(Ok((xacts, changes, mut wrong))) => {
            if xacts != m.xacts {
                wrong.push(format!(
                    "{xacts} transactions, the manifest says {}",
                    m.xacts
                ));
            }
            if changes != m.changes {
                wrong.push(format!(
                    "{changes} changes, the manifest says {}",
                    m.changes
                ));
            }
            (
                xacts,
                wrong
                    .into_iter()
                    .map(|w| Problem::Content {
                        key: key.clone(),
                        message: w,
                    })
                    .collect(),
            )
        }
        Ok(Err((part, message))) => match shallow(storage.as_ref(), &part).await {
            Some(p) => (0, vec![p]),
            None => (
                0,
                vec![Problem::Unreadable {
                    key: part.key,
                    message,
                }],
            ),
        },
        Err(e) => (
            0,
            vec![Problem::Unreadable {
                key,
                message: format!("reader panicked: {e}"),
            }],
        ),
    }
}
