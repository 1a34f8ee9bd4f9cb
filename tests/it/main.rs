//! Integration tests: one binary, a module per area, real PostgreSQL and a
//! real S3 server (Garage).

mod common;
mod daemon;
mod erasure;
mod hostile;
mod restore;
mod snapshot;
mod init;
mod storage;
mod rig;
mod secrets;
mod crash;
mod faults;
mod api_abuse;
mod outage;
