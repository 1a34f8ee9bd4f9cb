//! The erasure list: subject ids that must never come back in a restore.
pub mod api;
pub mod client;
pub mod journal;
pub mod memset;
pub mod store;
pub mod subject;

pub use memset::MemSet;
pub use store::{ErasureStore, StoreError};

pub use subject::{SubjectKey, key_of, normalize};

/// Membership test used by the restore filter on its hot path.
pub trait ErasureSet: Send + Sync {
    fn contains(&self, key: SubjectKey) -> bool;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
