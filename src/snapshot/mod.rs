//! Snapshots: the manifest format and the repository layout around it.
pub mod cleanup;
pub mod manifest;
pub(crate) mod pause;
pub mod repo;
mod tables;
pub mod verify;
pub mod writer;

pub use manifest::{Manifest, SnapshotId};
