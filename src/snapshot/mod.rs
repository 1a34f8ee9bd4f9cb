//! Taking a snapshot: `run` orchestrates it (cleanup, connect, catalog,
//! lock, schema, data, sequences, commit), `tables` copies the rows,
//! `stage` says where it stands, `cleanup` removes what interrupted runs
//! left. The format it writes is `crate::repo`'s.
pub mod cleanup;
pub mod locked;
pub(crate) mod pause;
pub mod run;
mod schema;
pub mod stage;
mod stream;
mod tables;
