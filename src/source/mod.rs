//! The databases Lethe snapshots: connection, catalog, schema dump and the
//! COPY streams of table rows. PostgreSQL today (MySQL/MariaDB later).

pub mod postgres;
