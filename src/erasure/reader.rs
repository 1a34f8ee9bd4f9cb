//! Reading the erasure list into memory: one reader, used by snapshots (the
//! CLI's and the daemon's) and by restores, with what to do about a list
//! that is missing or cannot be read as the caller's policy.
//!
//! - A restore never runs without the list: a list that is missing,
//!   unreadable or behind the journal refuses (`restore::load_list` adds
//!   the journal check on top of [`open`] and [`load`]).
//! - A snapshot does not depend on the list: it records the list's state in
//!   the manifest and counts rows of erased subjects still in the source
//!   (the leak check). A list that is absent is empty; one that cannot be
//!   read is reported (`snapshot.erasure_list_unreadable`) and the snapshot
//!   goes on without the leak check ([`for_snapshot`]).
//!
//! An erasure added through the API while the list is read makes the
//! count check in [`MemSet::load`] fail; [`load`] reads again, up to
//! `attempts` times.

use super::config::SubjectType;
use super::memset::MemSet;
use super::store::{ErasureStore, StoreError};
use crate::repo::manifest::ListState;
use std::path::Path;
use std::sync::Arc;

/// How many times a snapshot reads a list that changed under it.
pub const SNAPSHOT_ATTEMPTS: u32 = 3;

/// Opens the list at `path` for reading (beside a running daemon, as a
/// secondary); `Ok(None)` when no list was ever created there.
///
/// # Errors
/// The list exists but cannot be opened.
pub fn open(path: &Path, subject_type: SubjectType) -> Result<Option<ErasureStore>, StoreError> {
    if !path.join("CURRENT").exists() {
        return Ok(None);
    }
    ErasureStore::open_for_restore(path, subject_type).map(Some)
}

/// Reads every id of `store` into memory, with the state (count and
/// digest) of exactly the entries read. A read that races an add is
/// repeated, `attempts` times in all.
///
/// # Errors
/// The list cannot be read (or kept changing).
pub async fn load(
    store: &Arc<ErasureStore>,
    attempts: u32,
) -> Result<(MemSet, ListState), StoreError> {
    let mut left = attempts.max(1);
    loop {
        let s = Arc::clone(store);
        let r = tokio::task::spawn_blocking(move || MemSet::load(&s))
            .await
            .map_err(|e| StoreError::Corrupt {
                path: store.path().to_path_buf(),
                message: format!("reading the list stopped: {e}"),
            })?;
        left -= 1;
        match r {
            Ok(read) => return Ok(read),
            Err(_) if left > 0 => {}
            Err(e) => return Err(e),
        }
    }
}

/// The list as a snapshot uses it: its state for the manifest and the
/// in-memory set for the leak check. `None` (an empty state, no leak
/// check) when there is no list or it cannot be read; the latter is logged
/// as `snapshot.erasure_list_unreadable`.
pub async fn for_snapshot(
    store: Option<Arc<ErasureStore>>,
    path: &Path,
) -> Option<(ListState, Arc<MemSet>)> {
    let store = store?;
    match load(&store, SNAPSHOT_ATTEMPTS).await {
        Ok((set, state)) => Some((state, Arc::new(set))),
        Err(e) => {
            unreadable(path, &e);
            None
        }
    }
}

/// Logs that the snapshot goes on without the list.
pub fn unreadable(path: &Path, e: &StoreError) {
    tracing::warn!(
        event = "snapshot.erasure_list_unreadable",
        path = %path.display(),
        error = %e,
        "the manifest records an empty erasure list state and no leak check runs"
    );
}
