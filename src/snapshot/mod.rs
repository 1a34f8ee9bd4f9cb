//! Snapshots: the manifest format and the repository layout around it.
pub mod cleanup;
pub(crate) mod pause;
mod tables;
pub mod writer;
