//! What a restore did, for `--report FILE` (stable JSON) and the
//! `restore.completed` event: per table rows read, dropped, nulled, redacted
//! and kept, the policy applied and why, the snapshot, the erasure list
//! state applied, and how long it took.

use super::filter::TableStats;
use super::plan::PolicyNote;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// One table's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableReport {
    /// `schema.table`
    pub table: String,
    pub rows_read: u64,
    pub rows_dropped: u64,
    /// Rows kept with references set to NULL or to the column default.
    pub rows_nulled: u64,
    /// Erased subjects' rows kept with columns overwritten.
    pub rows_redacted: u64,
    /// Erased subjects' rows kept unchanged (a keep policy).
    pub rows_kept: u64,
    /// The table's `erasure.policy`; `null` where the foreign keys' rules
    /// apply.
    pub policy: Option<PolicyReport>,
    /// Times the table's data was read (more than 1 for self-references
    /// and foreign-key cycles, which are settled before writing).
    pub passes: u32,
}

/// A table's policy as the report names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyReport {
    /// `drop`, `redact` or `keep`.
    pub action: String,
    pub reason: Option<String>,
    /// The redacted columns.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
}

impl TableReport {
    pub fn new(
        table: String,
        s: TableStats,
        passes: u32,
        policy: Option<&PolicyNote>,
    ) -> TableReport {
        TableReport {
            table,
            rows_read: s.rows_read,
            rows_dropped: s.rows_dropped,
            rows_nulled: s.rows_nulled,
            rows_redacted: s.rows_redacted,
            rows_kept: s.rows_kept,
            policy: policy.map(|p| PolicyReport {
                action: p.action.as_str().into(),
                reason: p.reason.clone(),
                columns: p.set.iter().map(|(c, _)| c.clone()).collect(),
            }),
            passes,
        }
    }
}

/// The erasure list as applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListReport {
    pub count: u64,
    pub digest: String,
    /// False only when `--allow-stale-erasure-list` let a list that could
    /// not be proven current through.
    pub fresh: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RestoreReport {
    pub snapshot: String,
    /// The source database the snapshot was taken from.
    pub database: String,
    /// `target`, `file` or `dry_run`.
    pub mode: String,
    /// The target URL (password redacted) or the SQL file path, if any.
    pub destination: Option<String>,
    pub dry_run: bool,
    pub erasure_list: ListReport,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub seconds: f64,
    /// In load order.
    pub tables: Vec<TableReport>,
    pub rows_read: u64,
    pub rows_dropped: u64,
    pub rows_nulled: u64,
    pub rows_redacted: u64,
    pub rows_kept: u64,
    pub sequences: usize,
    pub notes: Vec<String>,
    /// A point-in-time restore (`--at`): the base is `snapshot`, this says
    /// what was replayed after it. Absent for a snapshot restore.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub point: Option<PointReport>,
}

/// What a point-in-time restore replayed after its base.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PointReport {
    /// The point as asked for (`--at`).
    pub at: String,
    /// The restorable window it lies in.
    pub window_from: DateTime<Utc>,
    pub window_to: DateTime<Utc>,
    /// The base's consistent point: changes from it on were replayed.
    pub base_lsn: String,
    /// The first and last commit applied (none when nothing committed
    /// between the base and the point).
    pub first_lsn: Option<String>,
    pub last_lsn: Option<String>,
    /// The commit time of the last transaction applied.
    pub last_commit_at: Option<DateTime<Utc>>,
    pub segments: usize,
    pub transactions: u64,
    pub changes: u64,
    /// Transactions stored twice (resent after a capture crash), applied once.
    pub duplicates: u64,
    /// Captured DDL statements run after post-data (indexes, triggers,
    /// views and functions made or dropped after the base).
    pub ddl: usize,
    /// Per table the replay touched.
    pub tables: Vec<PointTable>,
    /// Tables the change stream does not carry (unlogged, or without a
    /// replica identity when the base was taken): restored as of the base,
    /// not as of the point.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_captured: Vec<String>,
}

/// One table's share of a replay; its rows then went through the filter
/// with the base's (its `rows_dropped` etc. count both).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PointTable {
    pub table: String,
    /// Row changes replayed (inserts, updates, deletes, truncates).
    pub changes: u64,
    /// Base rows replaced by their version at the point, or gone by then.
    pub base_rows_replaced: u64,
    /// Rows at the point that came from the changes (inserted or updated
    /// after the base), before the filter.
    pub rows_from_changes: u64,
    /// Of those, dropped and set to NULL or a default by the filter (its
    /// `rows_dropped` and `rows_nulled` count them with the base's). An
    /// update that kept unchanged TOAST values is counted with the base.
    pub rows_dropped_from_changes: u64,
    pub rows_nulled_from_changes: u64,
    pub truncated: bool,
}

impl RestoreReport {
    /// Fills in the totals from the tables.
    pub fn total(&mut self) {
        self.rows_read = self.tables.iter().map(|t| t.rows_read).sum();
        self.rows_dropped = self.tables.iter().map(|t| t.rows_dropped).sum();
        self.rows_nulled = self.tables.iter().map(|t| t.rows_nulled).sum();
        self.rows_redacted = self.tables.iter().map(|t| t.rows_redacted).sum();
        self.rows_kept = self.tables.iter().map(|t| t.rows_kept).sum();
    }

    /// `{"billing.invoices": {"action": "keep", "reason": "…"}}` for the
    /// tables with a policy: the `policies` field of `restore.completed`.
    pub fn policies_json(&self) -> String {
        let m: serde_json::Map<String, serde_json::Value> = self
            .tables
            .iter()
            .filter_map(|t| {
                let p = t.policy.as_ref()?;
                Some((t.table.clone(), serde_json::to_value(p).ok()?))
            })
            .collect();
        serde_json::Value::Object(m).to_string()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self)
            .unwrap_or_else(|e| format!("{{\"error\": \"report does not serialise: {e}\"}}"))
    }

    /// `{"public.users": 5, ...}` for tables that lost or changed rows: the
    /// per-table field of the `restore.completed` event.
    pub fn changed_tables_json(&self, pick: fn(&TableReport) -> u64) -> String {
        let m: serde_json::Map<String, serde_json::Value> = self
            .tables
            .iter()
            .filter(|t| pick(t) > 0)
            .map(|t| (t.table.clone(), serde_json::Value::from(pick(t))))
            .collect();
        serde_json::Value::Object(m).to_string()
    }

    /// The evidence record of this restore (or drill): the snapshot, the
    /// point, the list state applied and the counts; no table data, no id.
    pub fn evidence(&self, kind: crate::repo::evidence::Kind) -> crate::repo::evidence::Entry {
        let mut e = crate::repo::evidence::Entry::new(kind, "completed")
            .snapshot(&self.snapshot)
            .list(crate::repo::manifest::ListState {
                count: self.erasure_list.count,
                digest: self.erasure_list.digest.clone(),
            })
            .count("tables", self.tables.len() as u64)
            .count("rows_read", self.rows_read)
            .count("rows_dropped", self.rows_dropped)
            .count("rows_nulled", self.rows_nulled)
            .count("rows_redacted", self.rows_redacted)
            .count("rows_kept", self.rows_kept)
            .count("milliseconds", (self.seconds * 1000.0) as u64)
            .note("mode", &self.mode)
            .note(
                "list_fresh",
                if self.erasure_list.fresh {
                    "true"
                } else {
                    "false"
                },
            );
        if let Some(p) = &self.point {
            e.point = Some(match p.last_commit_at {
                Some(t) => format!("{} (last commit {})", p.at, crate::units::rfc3339(t)),
                None => p.at.clone(),
            });
            e = e
                .count("point_transactions", p.transactions)
                .count("point_changes", p.changes);
        }
        e
    }

    /// Emits `restore.completed`.
    pub fn log_completed(&self) {
        tracing::info!(
            event = "restore.completed",
            snapshot = %self.snapshot,
            mode = %self.mode,
            dry_run = self.dry_run,
            tables = self.tables.len(),
            rows_read = self.rows_read,
            rows_dropped = self.rows_dropped,
            rows_nulled = self.rows_nulled,
            rows_redacted = self.rows_redacted,
            rows_kept = self.rows_kept,
            rows_dropped_by_table = %self.changed_tables_json(|t| t.rows_dropped),
            rows_nulled_by_table = %self.changed_tables_json(|t| t.rows_nulled),
            rows_redacted_by_table = %self.changed_tables_json(|t| t.rows_redacted),
            rows_kept_by_table = %self.changed_tables_json(|t| t.rows_kept),
            policies = %self.policies_json(),
            list_count = self.erasure_list.count,
            list_digest = %self.erasure_list.digest,
            list_fresh = self.erasure_list.fresh,
            seconds = self.seconds,
            point = self.point.as_ref().map(|p| p.at.as_str()),
            point_last_commit_at = self.point.as_ref().and_then(|p| p.last_commit_at).map(crate::units::rfc3339),
            point_last_lsn = self.point.as_ref().and_then(|p| p.last_lsn.as_deref()),
            point_transactions = self.point.as_ref().map(|p| p.transactions),
            point_changes = self.point.as_ref().map(|p| p.changes),
            "restore of {} finished: {} rows read, {} dropped, {} nulled, {} redacted, {} kept by policy",
            self.snapshot,
            self.rows_read,
            self.rows_dropped,
            self.rows_nulled,
            self.rows_redacted,
            self.rows_kept
        );
    }

    /// A table for humans (stdout of `lethe restore`).
    pub fn human(&self) -> String {
        let mut s = String::new();
        let verb = if self.dry_run {
            "would restore"
        } else {
            "restored"
        };
        if let Some(p) = &self.point {
            s.push_str(&format!(
                "{verb} the database {} as it was at {}{}: base {} + {} transaction(s), {} change(s) replayed \
                 ({} → {}{})\n",
                self.database,
                p.at,
                self.destination
                    .as_deref()
                    .map(|d| format!(" into {d}"))
                    .unwrap_or_default(),
                self.snapshot,
                p.transactions,
                p.changes,
                p.first_lsn.as_deref().unwrap_or(&p.base_lsn),
                p.last_lsn.as_deref().unwrap_or(&p.base_lsn),
                p.last_commit_at
                    .map(|t| format!(", last commit {}", t.format("%Y-%m-%d %H:%M:%S%.6f UTC")))
                    .unwrap_or_default()
            ));
        }
        let into = self
            .destination
            .as_deref()
            .map(|d| format!(" into {d}"))
            .unwrap_or_default();
        if self.point.is_none() {
            s.push_str(&format!(
                "{verb} snapshot {} ({}){into}\n",
                self.snapshot, self.database
            ));
        }
        s.push_str(&format!(
            "erasure list: {} entries, digest {}{}\n",
            self.erasure_list.count,
            self.erasure_list.digest,
            if self.erasure_list.fresh {
                ""
            } else {
                " (NOT proven current: --allow-stale-erasure-list)"
            }
        ));
        s.push_str(&format!(
            "{:<40} {:>12} {:>10} {:>10} {:>10} {:>10}  POLICY\n",
            "TABLE", "READ", "DROPPED", "NULLED", "REDACTED", "KEPT"
        ));
        for t in &self.tables {
            s.push_str(&format!(
                "{:<40} {:>12} {:>10} {:>10} {:>10} {:>10}  {}\n",
                t.table,
                t.rows_read,
                t.rows_dropped,
                t.rows_nulled,
                t.rows_redacted,
                t.rows_kept,
                t.policy
                    .as_ref()
                    .map_or("-".to_string(), |p| match &p.reason {
                        Some(r) => format!("{} ({r})", p.action),
                        None => p.action.clone(),
                    })
            ));
        }
        s.push_str(&format!(
            "{:<40} {:>12} {:>10} {:>10} {:>10} {:>10}\n",
            "total",
            self.rows_read,
            self.rows_dropped,
            self.rows_nulled,
            self.rows_redacted,
            self.rows_kept
        ));
        if let Some(p) = self.point.as_ref().filter(|p| !p.not_captured.is_empty()) {
            s.push_str(&format!(
                "note: not in the change stream, so as of the base, not the point: {}\n",
                p.not_captured.join(", ")
            ));
        }
        for n in &self.notes {
            s.push_str(&format!("note: {n}\n"));
        }
        s.push_str(&format!("{:.1}s\n", self.seconds));
        s
    }
}
