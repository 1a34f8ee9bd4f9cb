//! The repository layout: marker, snapshot prefixes, manifests.
//!
//! ```text
//! lethe.json                               marker: format, retention
//! snapshots/<ID>/manifest.json             written last; presence = complete
//! snapshots/<ID>/schema/{pre,post}.sql.zst.age
//! snapshots/<ID>/data/<n>.<schema>.<table>.<part>.copy.zst.age
//! erasures/<ULID>.json                     erasure journal
//! ```

use super::manifest::{FORMAT_VERSION, Manifest, ManifestError, SnapshotId};
use crate::storage::{Storage, StorageError, StorageExt};
use serde::{Deserialize, Serialize};

pub const MARKER_KEY: &str = "lethe.json";
pub const SNAPSHOTS_PREFIX: &str = "snapshots/";
pub const ERASURES_PREFIX: &str = "erasures/";

pub fn snapshot_prefix(id: &SnapshotId) -> String {
    format!("{SNAPSHOTS_PREFIX}{id}/")
}

pub fn manifest_key(id: &SnapshotId) -> String {
    format!("{SNAPSHOTS_PREFIX}{id}/manifest.json")
}

/// Suffix of a stored payload: `.zst.age`, or `.zst` when encryption is
/// disabled (the key says what the bytes are).
pub fn payload_suffix(sealed: bool) -> &'static str {
    if sealed { ".zst.age" } else { ".zst" }
}

/// `snapshots/<ID>/schema/<section>.sql.zst.age` (`section`: `pre`, `post`).
pub fn schema_key(id: &SnapshotId, section: &str, sealed: bool) -> String {
    format!(
        "{SNAPSHOTS_PREFIX}{id}/schema/{section}.sql{}",
        payload_suffix(sealed)
    )
}

/// `snapshots/<ID>/data/<n>.<schema>.<table>.<part>.copy.zst.age`, with `n`
/// (the table's number) and `part` zero-padded so keys sort in order, and
/// names made key-safe by [`key_safe`]. The manifest keeps the real names.
pub fn data_key(
    id: &SnapshotId,
    n: usize,
    schema: &str,
    table: &str,
    part: usize,
    sealed: bool,
) -> String {
    format!(
        "{SNAPSHOTS_PREFIX}{id}/data/{n:04}.{}.{}.{part:03}.copy{}",
        key_safe(schema),
        key_safe(table),
        payload_suffix(sealed)
    )
}

/// A PostgreSQL name as a key segment: `[A-Za-z0-9_-]` kept, every other
/// byte (including `.` and `=`) written as `=XX` (uppercase hex of the UTF-8
/// byte), so the result is unambiguous and passes `validate_key`.
pub fn key_safe(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("={b:02X}"));
        }
    }
    if out.is_empty() { "=".to_string() } else { out }
}

/// The repository marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    pub format: u32,
    pub retention_days: u32,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("no complete snapshot in {0}; run `lethe snapshot` first")]
    Empty(String),
    #[error("snapshot {0} not found (it may have expired); `lethe list` shows what exists")]
    NoSuchSnapshot(String),
    #[error("{0}")]
    BadSelector(String),
    #[error("repository marker {MARKER_KEY} is damaged: {0}")]
    BadMarker(String),
    #[error(
        "repository {storage} has format {format}, newer than this lethe understands; upgrade lethe"
    )]
    NewerFormat { storage: String, format: u32 },
    #[error(
        "{storage} holds no complete snapshot of the configured source {wanted} ({others}); check source.url, or that this is the right repository"
    )]
    NoneOfSource {
        storage: String,
        wanted: String,
        others: String,
    },
    #[error(
        "no complete snapshot of {wanted} finished before {before}: the oldest finished at {oldest}; pick a later --before, or see `lethe list`"
    )]
    NothingBefore {
        wanted: String,
        before: String,
        oldest: String,
    },
    #[error(
        "snapshot {id} is of {theirs}, not of the configured source {ours}: its rows would be filtered with this config's erasure roots and list; restore it with the config of {theirs}"
    )]
    OtherSource {
        id: String,
        theirs: String,
        ours: String,
    },
}

/// The source a command works on: snapshots of other databases in the same
/// repository are never picked by `latest` nor restored by id.
#[derive(Debug, Clone)]
pub struct SourceScope {
    /// `host:port/dbname` (`pg::source_identity`).
    pub identity: String,
    pub database: String,
}

impl SourceScope {
    /// Whether `m` is a snapshot of this source: by the identity it records,
    /// or, for manifests written before it was recorded, by database name.
    pub fn matches(&self, m: &Manifest) -> bool {
        match &m.source {
            Some(s) => *s == self.identity,
            None => m.database == self.database,
        }
    }

    fn describe(m: &Manifest) -> String {
        m.source
            .clone()
            .unwrap_or_else(|| format!("database {}", m.database))
    }
}

/// Resolves `latest` or an id to a complete snapshot of `scope`'s source
/// and loads its manifest: `latest` is the newest snapshot of that source,
/// and an id of another source's snapshot is refused.
///
/// # Errors
/// As [`resolve`]; `NoneOfSource`, `OtherSource`.
pub async fn resolve_in(
    storage: &dyn Storage,
    selector: &str,
    scope: &SourceScope,
) -> Result<Manifest, RepoError> {
    if selector != "latest" {
        let id = resolve(storage, selector).await?;
        let m = load_manifest(storage, &id).await?;
        if !scope.matches(&m) {
            return Err(RepoError::OtherSource {
                id: id.to_string(),
                theirs: SourceScope::describe(&m),
                ours: scope.identity.clone(),
            });
        }
        return Ok(m);
    }
    let ids = list_complete(storage).await?;
    if ids.is_empty() {
        return Err(RepoError::Empty(storage.describe()));
    }
    let mut others = std::collections::BTreeSet::new();
    for id in &ids {
        let m = load_manifest(storage, id).await?;
        if scope.matches(&m) {
            return Ok(m);
        }
        others.insert(SourceScope::describe(&m));
    }
    Err(RepoError::NoneOfSource {
        storage: storage.describe(),
        wanted: scope.identity.clone(),
        others: format!(
            "it holds snapshots of {}",
            others.into_iter().collect::<Vec<_>>().join(", ")
        ),
    })
}

/// Which snapshot a restore wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// The newest complete snapshot of the source.
    Latest,
    /// One snapshot by id (still checked to be of the source).
    Id(String),
    /// The newest complete snapshot of the source whose manifest's
    /// `finished_at` is strictly before this time.
    Before(chrono::DateTime<chrono::Utc>),
    /// A point of continuous capture (`restore --at`): a base and the
    /// changes after it, not one snapshot (`restore::pitr` resolves it).
    At(crate::repo::changes::Point),
}

impl Selector {
    /// `latest` or an id, as the positional argument gives it.
    pub fn from_arg(s: &str) -> Selector {
        if s == "latest" {
            Selector::Latest
        } else {
            Selector::Id(s.to_string())
        }
    }
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Selector::Latest => f.write_str("latest"),
            Selector::Id(id) => f.write_str(id),
            Selector::Before(t) => write!(f, "before {}", rfc3339(*t)),
            Selector::At(p) => write!(f, "at {p}"),
        }
    }
}

/// Milliseconds at most: enough to tell snapshots apart, short to read.
fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        .replace(".000Z", "Z")
}

/// Resolves a [`Selector`] within `scope`'s source (see [`resolve_in`]).
///
/// # Errors
/// As [`resolve_in`]; `NothingBefore` when every snapshot of the source
/// finished at or after the time asked for.
pub async fn resolve_selected(
    storage: &dyn Storage,
    selector: &Selector,
    scope: &SourceScope,
) -> Result<Manifest, RepoError> {
    let before = match selector {
        Selector::Latest => return resolve_in(storage, "latest", scope).await,
        Selector::Id(id) => return resolve_in(storage, id, scope).await,
        Selector::Before(t) => *t,
        Selector::At(p) => {
            return Err(RepoError::BadSelector(format!(
                "at {p}: a point of continuous capture is a base and its changes, not one snapshot"
            )));
        }
    };
    // Newest first by id (start time); finish times need not be in the same
    // order, so every manifest of the source is read.
    let ids = list_complete(storage).await?;
    if ids.is_empty() {
        return Err(RepoError::Empty(storage.describe()));
    }
    let mut best: Option<Manifest> = None;
    let mut oldest: Option<chrono::DateTime<chrono::Utc>> = None;
    let mut others = std::collections::BTreeSet::new();
    for id in &ids {
        let m = load_manifest(storage, id).await?;
        if !scope.matches(&m) {
            others.insert(SourceScope::describe(&m));
            continue;
        }
        oldest = Some(oldest.map_or(m.finished_at, |o| o.min(m.finished_at)));
        if m.finished_at < before && best.as_ref().is_none_or(|b| m.finished_at > b.finished_at) {
            best = Some(m);
        }
    }
    match (best, oldest) {
        (Some(m), _) => Ok(m),
        (None, Some(oldest)) => Err(RepoError::NothingBefore {
            wanted: scope.identity.clone(),
            before: rfc3339(before),
            oldest: rfc3339(oldest),
        }),
        (None, None) => Err(RepoError::NoneOfSource {
            storage: storage.describe(),
            wanted: scope.identity.clone(),
            others: format!(
                "it holds snapshots of {}",
                others.into_iter().collect::<Vec<_>>().join(", ")
            ),
        }),
    }
}

/// What is under `snapshots/`: complete ids (manifest present) and the ids of
/// prefixes without a manifest (interrupted or being written).
#[derive(Debug, Default, Clone)]
pub struct Inventory {
    pub complete: Vec<SnapshotId>,
    pub incomplete: Vec<SnapshotId>,
}

/// Splits `snapshots/<id>/<tail>` into a parsed id and the tail; `None` for
/// any key that is not under a valid snapshot id (never trusted as a path).
pub fn split_snapshot_key(key: &str) -> Option<(SnapshotId, &str)> {
    let rest = key.strip_prefix(SNAPSHOTS_PREFIX)?;
    let (id, tail) = rest.split_once('/')?;
    Some((id.parse::<SnapshotId>().ok()?, tail))
}

/// Lists snapshot prefixes; ids are sorted oldest first. Keys that do not
/// parse as snapshot ids are ignored (never trusted as paths).
///
/// # Errors
/// Storage errors.
pub async fn inventory(storage: &dyn Storage) -> Result<Inventory, StorageError> {
    let mut complete = std::collections::BTreeSet::new();
    let mut seen = std::collections::BTreeSet::new();
    for o in storage.list(SNAPSHOTS_PREFIX).await? {
        let Some((id, tail)) = split_snapshot_key(&o.key) else {
            continue;
        };
        if tail == "manifest.json" {
            complete.insert(id.clone());
        }
        seen.insert(id);
    }
    let incomplete = seen.difference(&complete).cloned().collect();
    Ok(Inventory {
        complete: complete.into_iter().collect(),
        incomplete,
    })
}

/// Complete snapshots, newest first.
///
/// # Errors
/// Storage errors.
pub async fn list_complete(storage: &dyn Storage) -> Result<Vec<SnapshotId>, StorageError> {
    let mut v = inventory(storage).await?.complete;
    v.reverse();
    Ok(v)
}

/// Resolves `latest` or an id to a complete snapshot.
///
/// # Errors
/// Bad selector, empty repository, unknown id.
pub async fn resolve(storage: &dyn Storage, selector: &str) -> Result<SnapshotId, RepoError> {
    if selector == "latest" {
        return list_complete(storage)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| RepoError::Empty(storage.describe()));
    }
    let id: SnapshotId = selector.parse().map_err(RepoError::BadSelector)?;
    match storage.head(&manifest_key(&id)).await? {
        Some(_) => Ok(id),
        None => Err(RepoError::NoSuchSnapshot(id.to_string())),
    }
}

/// Reads and checks a snapshot's manifest.
///
/// # Errors
/// Missing manifest, bad JSON, newer format.
pub async fn load_manifest(storage: &dyn Storage, id: &SnapshotId) -> Result<Manifest, RepoError> {
    let key = manifest_key(id);
    let data = match storage.get_bytes(&key).await {
        Err(StorageError::NotFound { .. }) => {
            return Err(RepoError::NoSuchSnapshot(id.to_string()));
        }
        other => other?,
    };
    let m = Manifest::from_json(&key, &data)?;
    if &m.id != id {
        return Err(ManifestError::Inconsistent {
            key,
            message: format!("it names snapshot {}", m.id),
        }
        .into());
    }
    Ok(m)
}

/// Reads the repository marker, `None` when the repository is not initialised.
///
/// # Errors
/// Storage errors or a damaged marker.
pub async fn read_marker(storage: &dyn Storage) -> Result<Option<Marker>, RepoError> {
    match storage.get_bytes(MARKER_KEY).await {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| RepoError::BadMarker(e.to_string())),
        Err(StorageError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The marker as a snapshot writer (`lethe snapshot`, the daemon) checks it
/// before it starts: a newer format refuses; no marker is allowed and
/// logged as `repository.uninitialised`.
///
/// # Errors
/// `NewerFormat`, storage errors or a damaged marker.
pub async fn check_marker(storage: &dyn Storage) -> Result<Option<Marker>, RepoError> {
    let marker = read_marker(storage).await?;
    match &marker {
        Some(m) if m.format > FORMAT_VERSION => {
            return Err(RepoError::NewerFormat {
                storage: storage.describe(),
                format: m.format,
            });
        }
        Some(_) => {}
        None => tracing::warn!(
            event = "repository.uninitialised",
            storage = %storage.describe(),
            "no repository marker: run `lethe init` to set up the lifecycle rule that backs up retention"
        ),
    }
    Ok(marker)
}

/// A fresh marker for this build's format.
pub fn new_marker(retention_days: u32) -> Marker {
    Marker {
        format: FORMAT_VERSION,
        retention_days,
        created_at: chrono::Utc::now(),
    }
}

#[cfg(test)]
#[path = "layout_tests.rs"]
mod tests;
