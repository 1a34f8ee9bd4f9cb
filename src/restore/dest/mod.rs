//! Where a restore writes: an empty database ([`target::TargetDb`]), one
//! plain SQL file ([`sqlfile::SqlFile`]), or nothing ([`dry_run::DryRun`]).
//! Each is a [`Destination`], whose phases `restore::write` calls in order:
//!
//! `check` → `pre_data` → `start_data` → every table through
//! [`TableDest::load`] (driven by the runner) → `post_data` → `sequences`
//! → `finish`.
//!
//! The schema halves are read one way for all of them: [`SchemaObject`].

pub mod dry_run;
pub mod sqlfile;
pub mod target;

use super::RestoreError;
use super::plan::RestorePlan;
use super::report::RestoreReport;
use crate::crypto::Opener;
use crate::framed::Frame;
use crate::repo::manifest::{ListState, Manifest, ObjectEntry, TableEntry};
use crate::storage::Storage;
use async_trait::async_trait;
use std::io::Read;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Where filtered tables go: the data phase of a [`Destination`].
#[async_trait]
pub trait TableDest: Send + Sync {
    /// Loads one table from `rx`; returns once it is durable. A channel that
    /// closes without `Frame::End` must leave nothing of the table behind.
    async fn load(&self, table: &TableEntry, rx: mpsc::Receiver<Frame>)
    -> Result<(), RestoreError>;
}

/// A restore's destination, phase by phase. Nothing is written before
/// `check` has passed; `finish` sees how the phases between went.
#[async_trait]
pub trait Destination: Send + Sync {
    /// What the report calls it (`mode`).
    fn mode(&self) -> &'static str;

    /// The last refusals, once every other check has passed and before
    /// anything is written (the target is found empty and claimed here).
    async fn check(&self, _plan: &RestorePlan) -> Result<(), RestoreError> {
        Ok(())
    }

    /// The pre-data schema; then whatever the plan needs the schema for
    /// (the target evaluates SET DEFAULT defaults in it).
    async fn pre_data(&self, source: &Source, plan: &mut RestorePlan) -> Result<(), RestoreError>;

    /// Called once before the first table loads. Returns where the runner
    /// reports each table (by index) as soon as its rows are committed, if
    /// the destination wants to know (the target starts its indexes then).
    async fn start_data(
        &self,
        _source: &Source,
    ) -> Result<Option<mpsc::UnboundedSender<usize>>, RestoreError> {
        Ok(None)
    }

    /// Where the tables' rows go; `None` when nothing is loaded and the
    /// filter only decides and counts (a dry run).
    fn tables(self: Arc<Self>) -> Option<Arc<dyn TableDest>>;

    /// How many tables may load at once when `--jobs` asks for `jobs`.
    fn jobs(&self, jobs: usize) -> usize;

    /// The post-data schema (indexes, keys, triggers …).
    async fn post_data(&self, source: &Source) -> Result<(), RestoreError>;

    /// A point's captured DDL (`Source::ddl`), after post-data.
    async fn replay_ddl(&self, _source: &Source) -> Result<(), RestoreError> {
        Ok(())
    }

    /// The sequence values at snapshot time.
    async fn sequences(&self, source: &Source) -> Result<(), RestoreError>;

    /// Ends the restore: commits what was written when `outcome` is a
    /// report, cleans up after a failure otherwise.
    async fn finish(
        &self,
        outcome: Result<RestoreReport, RestoreError>,
    ) -> Result<RestoreReport, RestoreError> {
        outcome
    }
}

/// The snapshot a destination writes from.
pub struct Source {
    pub storage: Arc<dyn Storage>,
    pub opener: Opener,
    pub manifest: Arc<Manifest>,
    /// The erasure list applied (the SQL file's header names it).
    pub list: ListState,
    /// A point restore's captured DDL (indexes, triggers, views, functions
    /// made or dropped after the base), in commit order with the commit it
    /// came in: run after post-data.
    pub ddl: Vec<(crate::repo::changes::Lsn, String)>,
    /// A point restore's captured `ALTER TABLE … ADD COLUMN`s, likewise:
    /// run after pre-data, before any row loads.
    pub pre_ddl: Vec<(crate::repo::changes::Lsn, String)>,
}

impl Source {
    /// The pre-data schema half.
    pub fn pre(&self) -> SchemaObject {
        self.schema(&self.manifest.schema.pre, "pre-data")
    }

    /// The post-data schema half.
    pub fn post(&self) -> SchemaObject {
        self.schema(&self.manifest.schema.post, "post-data")
    }

    fn schema(&self, entry: &ObjectEntry, section: &'static str) -> SchemaObject {
        SchemaObject {
            storage: self.storage.clone(),
            opener: self.opener.clone(),
            entry: entry.clone(),
            section,
        }
    }
}

/// One schema half of the snapshot, ready to be opened.
#[derive(Clone)]
pub struct SchemaObject {
    storage: Arc<dyn Storage>,
    opener: Opener,
    entry: ObjectEntry,
    /// `pre-data` or `post-data`, for messages.
    pub section: &'static str,
}

impl SchemaObject {
    /// Its storage key.
    pub fn key(&self) -> &str {
        &self.entry.key
    }

    /// Opens it: downloaded, checked and decrypted as it is read. Blocking
    /// (opening reads the age header), like every read of it.
    ///
    /// # Errors
    /// The object cannot be opened (the error names it).
    pub fn open(&self) -> std::io::Result<Box<dyn Read + Send>> {
        crate::repo::object::open_object(self.storage.clone(), &self.entry, &self.opener)
    }

    /// Its SQL as text (schema objects are small: DDL only).
    ///
    /// # Errors
    /// `Schema` naming the section, when it cannot be read.
    pub async fn read_to_string(&self) -> Result<String, RestoreError> {
        let object = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut text = String::new();
            object
                .open()
                .and_then(|mut r| r.read_to_string(&mut text))
                .map_err(|e| RestoreError::Schema {
                    section: object.section,
                    message: e.to_string(),
                })?;
            Ok(text)
        })
        .await
        .map_err(|e| RestoreError::Internal(format!("schema reader: {e}")))?
    }
}
