//! PostgreSQL's COPY text format, in one place: escapes (`escape`) and
//! the fast line and field scanner (`scan`) that the restore filter, the
//! snapshot's leak check and `verify` share.

pub mod escape;
pub mod scan;
