//! The repository format, in one place: where things live in storage
//! (`layout`), what a snapshot is (`manifest`), how one object is sealed and
//! opened (`object`), the leases that keep writers apart (`lease`, `holder`),
//! and the checks that a stored snapshot is whole (`verify`).
//!
//! Everything that writes to or reads from a repository goes through here;
//! nothing here knows about PostgreSQL or the erasure filter.

pub mod holder;
pub mod layout;
pub mod lease;
pub mod manifest;
pub mod object;
pub mod verify;
