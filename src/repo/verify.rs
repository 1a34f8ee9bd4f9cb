//! Checking a stored snapshot against its manifest.
//!
//! Every object must exist with the manifest's size and BLAKE3 (streamed,
//! never held in memory). `deep` also decrypts and decompresses each object
//! and parses every COPY stream: rows counted against the manifest, each
//! row's field count against the table's columns, each object ending at a
//! row boundary. All problems are collected, each naming its object.

use super::layout::{self as repo, RepoError};
use super::manifest::{Manifest, ObjectEntry, SnapshotId};
use crate::copytext::rows::Rows;
use crate::crypto::Opener;
use crate::storage::{Storage, StorageError};
use futures::{StreamExt, TryStreamExt};
use std::io::Read;
use std::sync::Arc;

/// Objects checked at once.
const CONCURRENCY: usize = 4;

/// One thing wrong with a stored snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    Missing {
        key: String,
    },
    Size {
        key: String,
        found: u64,
        expected: u64,
    },
    Checksum {
        key: String,
        found: String,
        expected: String,
    },
    /// Deep: cannot be decrypted, decompressed or read.
    Unreadable {
        key: String,
        message: String,
    },
    /// Deep: the payload disagrees with the manifest.
    Content {
        key: String,
        message: String,
    },
    /// The manifest contradicts itself.
    Manifest {
        message: String,
    },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Missing { key } => write!(f, "MISSING    {key}: not in storage"),
            Problem::Size {
                key,
                found,
                expected,
            } if found < expected => {
                write!(
                    f,
                    "TRUNCATED  {key}: {found} bytes stored, the manifest says {expected}"
                )
            }
            Problem::Size {
                key,
                found,
                expected,
            } => {
                write!(
                    f,
                    "SIZE       {key}: {found} bytes stored, the manifest says {expected}"
                )
            }
            Problem::Checksum {
                key,
                found,
                expected,
            } => {
                write!(
                    f,
                    "CHECKSUM   {key}: BLAKE3 {found}, the manifest says {expected}: the object is damaged"
                )
            }
            Problem::Unreadable { key, message } => write!(f, "UNREADABLE {key}: {message}"),
            Problem::Content { key, message } => write!(f, "CONTENT    {key}: {message}"),
            Problem::Manifest { message } => write!(f, "MANIFEST   {message}"),
        }
    }
}

/// The outcome for one snapshot.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    pub id: SnapshotId,
    pub objects: usize,
    /// Stored bytes checked.
    pub bytes: u64,
    /// Rows parsed (deep only).
    pub rows: u64,
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// What to parse an object as (deep mode).
#[derive(Clone, Copy)]
enum Payload {
    Schema,
    Copy { columns: usize },
}

/// Verifies one snapshot; `deep` carries the opener for decryption.
///
/// # Errors
/// The manifest cannot be read (missing, unparsable): nothing to check against.
pub async fn verify_snapshot(
    storage: Arc<dyn Storage>,
    id: &SnapshotId,
    deep: Option<&Opener>,
) -> Result<VerifyReport, RepoError> {
    let m = repo::load_manifest(storage.as_ref(), id).await?;
    let mut problems = manifest_problems(&m);
    let mut work: Vec<(ObjectEntry, Payload)> = vec![
        (m.schema.pre.clone(), Payload::Schema),
        (m.schema.post.clone(), Payload::Schema),
    ];
    for t in &m.tables {
        for o in &t.objects {
            work.push((
                o.clone(),
                Payload::Copy {
                    columns: t.columns.len(),
                },
            ));
        }
    }
    let objects = work.len();
    let bytes = work.iter().map(|(o, _)| o.size).sum();
    let results: Vec<(u64, Vec<Problem>)> = futures::stream::iter(work)
        .map(|(entry, payload)| {
            let storage = storage.clone();
            let opener = deep.cloned();
            async move { check_object(storage, entry, payload, opener).await }
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let mut rows = 0;
    for (r, p) in results {
        rows += r;
        problems.extend(p);
    }
    Ok(VerifyReport {
        id: id.clone(),
        objects,
        bytes,
        rows,
        problems,
    })
}

fn manifest_problems(m: &Manifest) -> Vec<Problem> {
    let mut out = Vec::new();
    for t in &m.tables {
        let rows: u64 = t.objects.iter().map(|o| o.rows).sum();
        if rows != t.rows {
            out.push(Problem::Manifest {
                message: format!(
                    "table {} says {} rows but its objects add up to {rows}",
                    t.qualified(),
                    t.rows
                ),
            });
        }
        if t.objects.is_empty() {
            out.push(Problem::Manifest {
                message: format!("table {} has no object", t.qualified()),
            });
        }
    }
    out
}

/// Returns (rows parsed, problems) for one object.
async fn check_object(
    storage: Arc<dyn Storage>,
    entry: ObjectEntry,
    payload: Payload,
    opener: Option<Opener>,
) -> (u64, Vec<Problem>) {
    let key = entry.key.clone();
    match storage.head(&key).await {
        Ok(None) => return (0, vec![Problem::Missing { key }]),
        Ok(Some(meta)) if meta.size != entry.size => {
            return (
                0,
                vec![Problem::Size {
                    key,
                    found: meta.size,
                    expected: entry.size,
                }],
            );
        }
        Ok(Some(_)) => {}
        Err(e) => {
            return (
                0,
                vec![Problem::Unreadable {
                    key,
                    message: e.to_string(),
                }],
            );
        }
    }
    let Some(opener) = opener else {
        return (
            0,
            shallow(storage.as_ref(), &entry)
                .await
                .into_iter()
                .collect(),
        );
    };
    let st = storage.clone();
    let e2 = entry.clone();
    // `open_object` reads the age header, so it blocks too.
    let parsed = tokio::task::spawn_blocking(move || {
        let reader =
            crate::repo::object::open_object(st, &e2, &opener).map_err(|e| e.to_string())?;
        parse(reader, &e2, payload)
    })
    .await
    .unwrap_or_else(|e| Err(format!("parser panicked: {e}")));
    match parsed {
        Ok((rows, problems)) => (rows, problems),
        // Name the damage precisely when the bytes themselves are wrong;
        // otherwise report what decryption or decompression said.
        Err(message) => match shallow(storage.as_ref(), &entry).await {
            Some(p) => (0, vec![p]),
            None => (0, vec![Problem::Unreadable { key, message }]),
        },
    }
}

/// Streams the stored bytes through BLAKE3 and compares with the manifest.
pub(crate) async fn shallow(storage: &dyn Storage, entry: &ObjectEntry) -> Option<Problem> {
    let key = entry.key.clone();
    let mut stream = match storage.get(&key).await {
        Ok(s) => s,
        Err(StorageError::NotFound { .. }) => return Some(Problem::Missing { key }),
        Err(e) => {
            return Some(Problem::Unreadable {
                key,
                message: e.to_string(),
            });
        }
    };
    let mut hasher = blake3::Hasher::new();
    let mut size = 0u64;
    loop {
        match stream.try_next().await {
            Ok(Some(chunk)) => {
                size += chunk.len() as u64;
                hasher.update(&chunk);
            }
            Ok(None) => break,
            Err(e) => {
                return Some(Problem::Unreadable {
                    key,
                    message: e.to_string(),
                });
            }
        }
    }
    if size != entry.size {
        return Some(Problem::Size {
            key,
            found: size,
            expected: entry.size,
        });
    }
    let found = hasher.finalize().to_hex().to_string();
    (found != entry.blake3).then(|| Problem::Checksum {
        key,
        found,
        expected: entry.blake3.clone(),
    })
}

/// Reads a whole payload, cutting COPY payloads into rows and fields with
/// `copytext::rows` (exact without decoding: raw tabs and newlines only
/// separate).
fn parse(
    mut r: Box<dyn Read + Send>,
    entry: &ObjectEntry,
    payload: Payload,
) -> Result<(u64, Vec<Problem>), String> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut raw = 0u64;
    let mut stream = Rows::new();
    let mut bad_rows = 0u64;
    let mut first_bad: Option<(u64, usize)> = None;
    loop {
        let n = r.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        raw += n as u64;
        let Payload::Copy { columns } = payload else {
            continue;
        };
        let mut n_row = stream.rows();
        stream.feed(&buf[..n], |row| {
            n_row += 1;
            // A zero-column table writes empty lines; one empty field
            // otherwise (an empty string in a one-column table).
            let found = if columns == 0 && row.is_empty() {
                0
            } else {
                row.field_count()
            };
            if found != columns {
                bad_rows += 1;
                first_bad.get_or_insert((n_row, found));
            }
        });
    }
    let rows = stream.rows();
    let mut problems = Vec::new();
    let key = &entry.key;
    if raw != entry.raw_size {
        problems.push(Problem::Content {
            key: key.clone(),
            message: format!(
                "{raw} bytes after decompression, the manifest says {}",
                entry.raw_size
            ),
        });
    }
    if let Payload::Copy { columns } = payload {
        if !stream.at_row_start() {
            problems.push(Problem::Content {
                key: key.clone(),
                message: "the COPY stream ends inside a row".into(),
            });
        }
        if rows != entry.rows {
            problems.push(Problem::Content {
                key: key.clone(),
                message: format!("{rows} rows, the manifest says {}", entry.rows),
            });
        }
        if let Some((row, found)) = first_bad {
            problems.push(Problem::Content {
                key: key.clone(),
                message: format!(
                    "{bad_rows} row(s) with the wrong number of fields (first: row {row} has {found}, the table has {columns} columns)"
                ),
            });
        }
    }
    Ok((rows, problems))
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
