//! The restore's progress: counters the table passes update without locks
//! (and the set of tables being read), and the display a terminal shows
//! (`telemetry::progress`): bytes of the snapshot read of the total,
//! percentage, rate, ETA, tables done and the tables being read.

use super::plan::{PrePass, RestorePlan};
use crate::repo::manifest::Manifest;
use crate::telemetry::progress::{Display, RESTORE_TEMPLATE};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Counters for the progress display.
#[derive(Debug, Default)]
pub struct Progress {
    /// Payload bytes read from the snapshot's table objects (every pass).
    pub bytes: AtomicU64,
    pub tables_done: AtomicUsize,
    /// The tables a pass is reading now, by index (in start order).
    reading: Mutex<Vec<usize>>,
}

impl Progress {
    /// Marks table `t` as being read until the guard drops.
    pub fn reading(&self, t: usize) -> Reading<'_> {
        if let Ok(mut r) = self.reading.lock() {
            r.push(t);
        }
        Reading { p: self, t }
    }

    fn now_reading(&self) -> Vec<usize> {
        self.reading.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// See [`Progress::reading`].
pub struct Reading<'a> {
    p: &'a Progress,
    t: usize,
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        if let Ok(mut r) = self.p.reading.lock()
            && let Some(i) = r.iter().position(|&x| x == self.t)
        {
            r.remove(i);
        }
    }
}

/// The payload bytes the restore will read: each table's raw bytes once,
/// twice in a component that needs a pre-pass (the plan decides it before
/// any read).
pub fn bytes_to_read(manifest: &Manifest, plan: &RestorePlan) -> u64 {
    plan.components
        .iter()
        .map(|c| {
            let reads = if c.pre_pass == PrePass::None { 1 } else { 2 };
            c.tables
                .iter()
                .filter_map(|&t| manifest.tables.get(t))
                .map(|t| t.objects.iter().map(|o| o.raw_size).sum::<u64>() * reads)
                .sum::<u64>()
        })
        .sum()
}

/// The line under the bar: `2/7 tables done · reading public.orders, …`.
fn message(done: usize, total: usize, names: &[String]) -> String {
    if names.is_empty() {
        format!("{done}/{total} tables done")
    } else {
        format!("{done}/{total} tables done · reading {}", names.join(", "))
    }
}

/// Shows the display on a terminal, refreshed four times a second, until
/// the returned task is aborted or the display dropped (the task holds it
/// weakly: a cancelled restore drops it); `None` when stderr is not a
/// terminal.
pub fn spawn_display(
    progress: Arc<Progress>,
    manifest: Arc<Manifest>,
    total: u64,
) -> Option<(tokio::task::JoinHandle<()>, Arc<Display>)> {
    let display = Arc::new(Display::new(RESTORE_TEMPLATE, total)?);
    let weak = Arc::downgrade(&display);
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            let Some(d) = weak.upgrade() else { return };
            update(&d, &progress, &manifest, total);
        }
    });
    Some((task, display))
}

/// One refresh of the display from the counters.
pub fn update(d: &Display, progress: &Progress, manifest: &Manifest, total: u64) {
    let bytes = progress.bytes.load(Ordering::Relaxed);
    let bar = d.bar();
    bar.set_length(total.max(bytes));
    bar.set_position(bytes);
    let names: Vec<String> = progress
        .now_reading()
        .iter()
        .filter_map(|&t| manifest.tables.get(t))
        .map(|t| format!("{}.{}", t.schema, t.name))
        .collect();
    bar.set_message(message(
        progress.tables_done.load(Ordering::Relaxed),
        manifest.tables.len(),
        &names,
    ));
}

#[cfg(test)]
#[path = "progress_tests.rs"]
mod tests;
