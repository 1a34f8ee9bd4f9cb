//! Continuous capture from a logical replication slot (issue 19): the
//! `[continuous]` config section and the preflight checks that refuse a
//! source the capture would hurt or could not read. The capture itself goes
//! beside `snapshot` (see ARCHITECTURE.md); this module uses only `pg`.

pub mod config;
pub mod preflight;
pub mod slot;

pub use config::ContinuousConfig;
pub use preflight::{Preflight, PreflightError, PreflightWarning, Refusal, preflight};
pub use slot::{Ensured, Removed, SlotError, disable, ensure};

#[cfg(test)]
mod tests;
