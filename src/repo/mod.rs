//! The repository format, in one place: where things live in storage
//! (`layout`), what a snapshot is (`manifest`), how one object is sealed and
//! opened (`object`), the leases that keep writers apart (`lease`, `holder`),
//! the checks that a stored snapshot is whole (`verify`), and continuous
//! capture's keys, JSON documents and payload codec (`changes`).
//!
//! Everything that writes to or reads from a repository goes through here;
//! nothing here knows about PostgreSQL or the erasure filter.

pub mod changes;
pub mod evidence;
pub mod holder;
pub mod layout;
pub mod lease;
pub mod manifest;
pub mod object;
pub mod verify;
pub mod verify_changes;
