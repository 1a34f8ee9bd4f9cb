//! `--dry-run`: every table is read through the filter, which decides and
//! counts, and nothing is written or connected to.

use super::{Destination, Source, TableDest};
use crate::restore::RestoreError;
use crate::restore::plan::RestorePlan;
use async_trait::async_trait;
use std::sync::Arc;

/// Writes nothing: the report is the result.
pub struct DryRun;

#[async_trait]
impl Destination for DryRun {
    fn mode(&self) -> &'static str {
        "dry_run"
    }

    async fn pre_data(&self, _: &Source, _: &mut RestorePlan) -> Result<(), RestoreError> {
        Ok(())
    }

    fn tables(self: Arc<Self>) -> Option<Arc<dyn TableDest>> {
        None
    }

    fn jobs(&self, jobs: usize) -> usize {
        jobs
    }

    async fn post_data(&self, _: &Source) -> Result<(), RestoreError> {
        Ok(())
    }

    async fn sequences(&self, _: &Source) -> Result<(), RestoreError> {
        Ok(())
    }
}
