//! PostgreSQL's COPY text format, in one place: escapes (`escape`), the
//! fast line and field scanner (`scan`) the restore filter runs on, and the
//! row and field iterator over a stream (`rows`, built on `scan`) that the
//! snapshot's writer and leak check and `verify` use.

pub mod escape;
pub mod rows;
pub mod scan;
