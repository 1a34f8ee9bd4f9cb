//! Integration tests: one binary, a module per area, real PostgreSQL and a
//! real S3 server (Garage).

mod api_abuse;
mod api_identity;
mod capture;
mod check;
mod cli_ux;
mod common;
mod continuous;
mod crash;
mod crash_daemon;
mod credentials;
mod daemon;
mod erasure;
mod erasure_import;
mod erasure_remove;
mod errors_once;
mod faults;
mod faults_http;
mod hostile;
mod init;
mod outage;
mod panics;
mod pitr;
mod postdata;
mod progress;
mod restore;
mod restore_pick;
mod reuse;
mod rig;
mod s3proxy;
mod schemas;
mod secrets;
mod snapshot;
mod sources;
mod storage;
mod subjects;
