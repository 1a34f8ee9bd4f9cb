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
}

/// What is under `snapshots/`: complete ids (manifest present) and the ids of
/// prefixes without a manifest (interrupted or being written).
#[derive(Debug, Default, Clone)]
pub struct Inventory {
    pub complete: Vec<SnapshotId>,
    pub incomplete: Vec<SnapshotId>,
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
        let rest = &o.key[SNAPSHOTS_PREFIX.len()..];
        let Some((id, tail)) = rest.split_once('/') else { continue };
        let Ok(id) = id.parse::<SnapshotId>() else { continue };
        if tail == "manifest.json" {
            complete.insert(id.clone());
        }
        seen.insert(id);
    }
    let incomplete = seen.difference(&complete).cloned().collect();
    Ok(Inventory { complete: complete.into_iter().collect(), incomplete })
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
        Err(StorageError::NotFound { .. }) => return Err(RepoError::NoSuchSnapshot(id.to_string())),
        other => other?,
    };
    let m = Manifest::from_json(&key, &data)?;
    if &m.id != id {
        return Err(ManifestError::Inconsistent { key, message: format!("it names snapshot {}", m.id) }.into());
    }
    Ok(m)
}

/// Reads the repository marker, `None` when the repository is not initialised.
///
/// # Errors
/// Storage errors or a damaged marker.
pub async fn read_marker(storage: &dyn Storage) -> Result<Option<Marker>, RepoError> {
    match storage.get_bytes(MARKER_KEY).await {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| RepoError::BadMarker(e.to_string())),
        Err(StorageError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A fresh marker for this build's format.
pub fn new_marker(retention_days: u32) -> Marker {
    Marker { format: FORMAT_VERSION, retention_days, created_at: chrono::Utc::now() }
}
