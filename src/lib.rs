//! Lethe: consistent PostgreSQL snapshots into EU object storage, restored
//! through a filter that keeps erased data subjects erased.
//!
//! Data flow, by module: `config` → `source` (PostgreSQL) → `snapshot`
//! (manifest, writer) → `storage` (S3, directory) → `restore` (reader,
//! filter, loader) with `erasure` (the list) and `crypto` (age) beside them;
//! `daemon` schedules it all and `retention` forgets on time.

pub mod capture;
pub mod config;
pub mod continuous;
pub mod copytext;
pub mod crypto;
pub mod daemon;
pub mod drill_config;
pub mod erasure;
pub mod framed;
pub mod jsonpath;
pub mod leak_state;
pub mod pause_switch;
pub mod pg;
pub(crate) mod prefetch;
pub mod repo;
pub mod residency;
pub mod restore;
pub mod retention;
pub mod schedule;
pub mod secrets;
pub mod shutdown;
pub mod snapshot;
pub mod storage;
pub mod telemetry;
pub mod units;

/// The commit this binary was built from (see `build.rs`).
pub const BUILD_COMMIT: &str = env!("LETHE_COMMIT");

/// `lethe --version`: the version and the commit.
pub const VERSION_LINE: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("LETHE_COMMIT"),
    ")"
);

/// Exit codes: the CLI contract.
pub mod exit {
    pub const OK: i32 = 0;
    pub const FAILURE: i32 = 1;
    pub const USAGE: i32 = 2;
}
