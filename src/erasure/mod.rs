//! The erasure list: subject ids that must never come back in a restore.
pub mod api;
pub mod client;
pub mod config;
pub mod journal;
pub mod memset;
pub mod policy;
pub mod pseudonym;
pub mod reader;
pub mod store;
pub mod subject;

pub use memset::MemSet;
pub use store::{ErasureStore, StoreError};

pub(crate) use subject::digits_u64;
pub use subject::{SubjectKey, key_of, normalize};

/// Membership test used by the restore filter on its hot path.
pub trait ErasureSet: Send + Sync {
    fn contains(&self, key: SubjectKey) -> bool;
    /// `out[i] = self.contains(keys[i])` for every key (`out` is at least as
    /// long as `keys`). The same answers as `contains`; a large set overrides
    /// it to overlap the memory accesses of the whole batch.
    fn contains_batch(&self, keys: &[SubjectKey], out: &mut [bool]) {
        for (k, o) in keys.iter().zip(out.iter_mut()) {
            *o = self.contains(*k);
        }
    }
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
