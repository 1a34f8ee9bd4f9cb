//! Prometheus metrics, derived from the log events: a tracing layer reads
//! each event's stable name and fields and updates the metric it feeds, so
//! a metric can never disagree with the event an operator alerts on, and no
//! module does bookkeeping of its own. The daemon serves them on
//! `metrics.listen` (`GET /metrics`, OpenMetrics text, which Prometheus
//! scrapes as it is).
//!
//! The layer sees every `lethe` event down to DEBUG whatever `log.level`
//! says (`continuous.flushed` is DEBUG), with its own filter.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::atomic::AtomicU64;
use tracing::field::{Field, Visit};

type F64Gauge = Gauge<f64, AtomicU64>;

/// `[metrics]`: where the daemon serves `/metrics` (off when `listen` is
/// absent).
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `HOST:PORT`, e.g. `127.0.0.1:9187`. Keep it on loopback unless a
    /// firewall guards the port: the metrics name tables' counts and times.
    pub listen: Option<String>,
}

impl MetricsConfig {
    /// The address to bind, or why `listen` is not one.
    ///
    /// # Errors
    /// Not a `HOST:PORT` socket address.
    pub fn addr(&self) -> Result<Option<std::net::SocketAddr>, String> {
        let Some(l) = &self.listen else {
            return Ok(None);
        };
        l.trim().parse().map(Some).map_err(|e| {
            format!("{e}: metrics.listen takes an IP address and a port, e.g. \"127.0.0.1:9187\" (or leave it out to serve no metrics)")
        })
    }
}
type Labels = Vec<(String, String)>;

/// Every metric Lethe exports (names without the `lethe_` prefix).
pub struct Metrics {
    registry: Registry,
    events: Family<Labels, Counter>,
    failures: Family<Labels, Counter>,
    snapshot_success: F64Gauge,
    snapshot_seconds: F64Gauge,
    snapshot_bytes_stored: F64Gauge,
    snapshot_bytes_raw: F64Gauge,
    snapshot_rows: F64Gauge,
    base_success: F64Gauge,
    retention_run: F64Gauge,
    retention_deleted: Family<Labels, Counter>,
    retention_bytes_freed: Counter,
    list_entries: F64Gauge,
    list_sync: F64Gauge,
    leaks: Counter,
    slot_lag_bytes: F64Gauge,
    slot_lag_seconds: F64Gauge,
    last_flushed_commit: F64Gauge,
    flushed_transactions: Counter,
    drill_rto: F64Gauge,
    drill_success: F64Gauge,
    restore_success: F64Gauge,
    restore_seconds: F64Gauge,
    evidence_seq: F64Gauge,
}

impl Metrics {
    fn new() -> Metrics {
        let mut r = Registry::with_prefix("lethe");
        let m = Metrics {
            events: Family::default(),
            failures: Family::default(),
            snapshot_success: F64Gauge::default(),
            snapshot_seconds: F64Gauge::default(),
            snapshot_bytes_stored: F64Gauge::default(),
            snapshot_bytes_raw: F64Gauge::default(),
            snapshot_rows: F64Gauge::default(),
            base_success: F64Gauge::default(),
            retention_run: F64Gauge::default(),
            retention_deleted: Family::default(),
            retention_bytes_freed: Counter::default(),
            list_entries: F64Gauge::default(),
            list_sync: F64Gauge::default(),
            leaks: Counter::default(),
            slot_lag_bytes: F64Gauge::default(),
            slot_lag_seconds: F64Gauge::default(),
            last_flushed_commit: F64Gauge::default(),
            flushed_transactions: Counter::default(),
            drill_rto: F64Gauge::default(),
            drill_success: F64Gauge::default(),
            restore_success: F64Gauge::default(),
            restore_seconds: F64Gauge::default(),
            evidence_seq: F64Gauge::default(),
            registry: Registry::default(),
        };
        let build = Family::<Labels, F64Gauge>::default();
        build
            .get_or_create(&vec![
                ("version".into(), env!("CARGO_PKG_VERSION").into()),
                ("commit".into(), crate::BUILD_COMMIT.into()),
            ])
            .set(1.0);
        r.register("build_info", "Lethe's version and commit (always 1)", build);
        r.register(
            "events",
            "Log events by stable name and level (see the README's event tables)",
            m.events.clone(),
        );
        r.register(
            "failures",
            "ERROR-level events by kind (snapshot, retention, restore, continuous.gap, drill, evidence, …)",
            m.failures.clone(),
        );
        r.register(
            "snapshot_last_success_timestamp_seconds",
            "When the last snapshot committed (snapshot.completed)",
            m.snapshot_success.clone(),
        );
        r.register(
            "snapshot_last_duration_seconds",
            "How long the last committed snapshot took",
            m.snapshot_seconds.clone(),
        );
        r.register(
            "snapshot_last_stored_bytes",
            "Bytes the last committed snapshot stored (compressed, encrypted)",
            m.snapshot_bytes_stored.clone(),
        );
        r.register(
            "snapshot_last_raw_bytes",
            "COPY text bytes the last committed snapshot read",
            m.snapshot_bytes_raw.clone(),
        );
        r.register(
            "snapshot_last_rows",
            "Rows in the last committed snapshot",
            m.snapshot_rows.clone(),
        );
        r.register(
            "continuous_base_last_success_timestamp_seconds",
            "When continuous capture last stored a base (continuous.base_completed)",
            m.base_success.clone(),
        );
        r.register(
            "retention_last_run_timestamp_seconds",
            "When a retention pass last finished (retention.completed)",
            m.retention_run.clone(),
        );
        r.register(
            "retention_deleted",
            "What retention deleted, by what (snapshots, leftovers, segments, gaps)",
            m.retention_deleted.clone(),
        );
        r.register(
            "retention_freed_bytes",
            "Bytes retention freed",
            m.retention_bytes_freed.clone(),
        );
        r.register(
            "erasure_list_entries",
            "Subjects on the erasure list (erasure.synced, erasure.added, erasure.removed)",
            m.list_entries.clone(),
        );
        r.register(
            "erasure_last_sync_timestamp_seconds",
            "When the erasure list was last synced with the journal in storage",
            m.list_sync.clone(),
        );
        r.register(
            "erasure_leaks_detected",
            "Root tables found holding rows of erased subjects (erasure.leak_detected)",
            m.leaks.clone(),
        );
        r.register(
            "continuous_slot_lag_bytes",
            "WAL the replication slot keeps for Lethe (continuous.lag)",
            m.slot_lag_bytes.clone(),
        );
        r.register(
            "continuous_slot_lag_seconds",
            "Seconds since storage was last vouched complete: the recovery point (continuous.lag)",
            m.slot_lag_seconds.clone(),
        );
        r.register(
            "continuous_last_flushed_commit_timestamp_seconds",
            "Commit time of the newest transaction in storage (continuous.flushed)",
            m.last_flushed_commit.clone(),
        );
        r.register(
            "continuous_flushed_transactions",
            "Transactions stored by continuous capture",
            m.flushed_transactions.clone(),
        );
        r.register(
            "drill_last_rto_seconds",
            "How long the last successful restore drill took (drill.completed)",
            m.drill_rto.clone(),
        );
        r.register(
            "drill_last_success_timestamp_seconds",
            "When the last restore drill succeeded",
            m.drill_success.clone(),
        );
        r.register(
            "restore_last_success_timestamp_seconds",
            "When a restore last completed in this process (restore.completed)",
            m.restore_success.clone(),
        );
        r.register(
            "restore_last_duration_seconds",
            "How long the last completed restore took",
            m.restore_seconds.clone(),
        );
        r.register(
            "evidence_last_seq",
            "Sequence number of the last evidence record this process appended",
            m.evidence_seq.clone(),
        );
        Metrics { registry: r, ..m }
    }

    /// The exposition text (OpenMetrics, which Prometheus reads).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    fn observe(&self, name: &str, level: &tracing::Level, f: &Fields) {
        self.events
            .get_or_create(&vec![
                ("event".into(), name.into()),
                ("level".into(), level.as_str().into()),
            ])
            .inc();
        if *level == tracing::Level::ERROR {
            let kind = name.strip_suffix(".failed").unwrap_or(name);
            self.failures
                .get_or_create(&vec![("kind".into(), kind.into())])
                .inc();
        }
        let now = now_seconds();
        match name {
            "snapshot.completed" => {
                self.snapshot_success.set(now);
                f.set(&self.snapshot_seconds, "seconds");
                f.set(&self.snapshot_bytes_stored, "bytes_stored");
                f.set(&self.snapshot_bytes_raw, "bytes_raw");
                f.set(&self.snapshot_rows, "rows");
            }
            "continuous.base_completed" => {
                self.base_success.set(now);
            }
            "retention.completed" => {
                self.retention_run.set(now);
                for (what, field) in [
                    ("snapshots", "deleted"),
                    ("leftovers", "leftovers_deleted"),
                    ("segments", "segments_deleted"),
                    ("gaps", "gaps_deleted"),
                ] {
                    let n = f.u64(field);
                    let c = self
                        .retention_deleted
                        .get_or_create(&vec![("what".into(), what.into())]);
                    c.inc_by(n);
                }
                self.retention_bytes_freed.inc_by(f.u64("bytes_freed"));
            }
            "erasure.synced" => {
                self.list_sync.set(now);
                f.set(&self.list_entries, "total");
            }
            "erasure.added" | "erasure.removed" => f.set(&self.list_entries, "total"),
            "erasure.leak_detected" => {
                self.leaks.inc();
            }
            "continuous.lag" => {
                f.set(&self.slot_lag_bytes, "lag_bytes");
                f.set(&self.slot_lag_seconds, "lag_s");
            }
            "continuous.flushed" => {
                if let Some(t) = f.time("last_commit_at") {
                    self.last_flushed_commit.set(t);
                }
                self.flushed_transactions.inc_by(f.u64("xacts"));
            }
            "drill.completed" => {
                self.drill_success.set(now);
                f.set(&self.drill_rto, "seconds");
            }
            "restore.completed" => {
                self.restore_success.set(now);
                f.set(&self.restore_seconds, "seconds");
            }
            "evidence.appended" => f.set(&self.evidence_seq, "seq"),
            _ => {}
        }
    }
}

fn now_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// This process's metrics.
pub fn metrics() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(Metrics::new)
}

/// An event's fields: numbers as numbers, the rest as text.
#[derive(Default)]
struct Fields {
    num: HashMap<&'static str, f64>,
    text: HashMap<&'static str, String>,
}

impl Fields {
    fn set(&self, g: &F64Gauge, name: &str) {
        if let Some(v) = self.num.get(name) {
            g.set(*v);
        }
    }

    fn u64(&self, name: &str) -> u64 {
        self.num.get(name).map_or(0, |v| *v as u64)
    }

    fn time(&self, name: &str) -> Option<f64> {
        let t = chrono::DateTime::parse_from_rfc3339(self.text.get(name)?).ok()?;
        Some(t.timestamp_micros() as f64 / 1e6)
    }
}

impl Visit for Fields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.num.insert(field.name(), value);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.num.insert(field.name(), value as f64);
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.num.insert(field.name(), value as f64);
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.num.insert(field.name(), f64::from(u8::from(value)));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.text.insert(field.name(), value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let s = format!("{value:?}");
        match s.parse::<f64>() {
            Ok(v) => {
                self.num.insert(field.name(), v);
            }
            Err(_) => {
                self.text.insert(field.name(), s);
            }
        }
    }
}

/// The layer that feeds [`metrics`] from events with an `event` field.
pub struct MetricsLayer;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for MetricsLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut f = Fields::default();
        event.record(&mut f);
        let Some(name) = f.text.remove("event") else {
            return;
        };
        metrics().observe(&name, event.metadata().level(), &f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_layer(f: impl FnOnce()) {
        use tracing_subscriber::layer::SubscriberExt;
        let sub = tracing_subscriber::registry().with(MetricsLayer);
        tracing::subscriber::with_default(sub, f);
    }

    fn value(text: &str, line_start: &str) -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    #[test]
    fn events_set_the_metrics_they_feed() {
        with_layer(|| {
            tracing::info!(
                event = "snapshot.completed",
                id = "x",
                tables = 3,
                rows = 1234u64,
                bytes_raw = 99u64,
                bytes_stored = 42u64,
                seconds = 1.5f64
            );
            tracing::debug!(event = "continuous.flushed", end_lsn = "0/1", last_commit_at = %"2026-12-07T01:00:00Z", xacts = 5u64, changes = 9u64, bytes_raw = 1u64);
            tracing::error!(event = "snapshot.failed", stage = "copy", error = "boom");
            tracing::info!(
                event = "retention.completed",
                kept = 1,
                deleted = 2u64,
                leftovers_deleted = 0u64,
                segments_deleted = 7u64,
                gaps_deleted = 0u64,
                uploads_aborted = 0u64,
                bytes_freed = 1000u64,
                errors = 0u64,
                seconds = 0.1f64
            );
        });
        let text = metrics().render();
        assert_eq!(
            value(&text, "lethe_snapshot_last_rows "),
            Some(1234.0),
            "{text}"
        );
        assert_eq!(
            value(&text, "lethe_snapshot_last_stored_bytes "),
            Some(42.0),
            "{text}"
        );
        assert_eq!(
            value(&text, "lethe_snapshot_last_duration_seconds "),
            Some(1.5),
            "{text}"
        );
        assert_eq!(
            value(
                &text,
                "lethe_continuous_last_flushed_commit_timestamp_seconds "
            ),
            Some(1_796_605_200.0),
            "{text}"
        );
        assert!(
            value(&text, "lethe_failures_total{kind=\"snapshot\"}").is_some_and(|v| v >= 1.0),
            "{text}"
        );
        assert!(
            value(&text, "lethe_retention_deleted_total{what=\"segments\"}")
                .is_some_and(|v| v >= 7.0),
            "{text}"
        );
        assert!(text.contains("lethe_build_info{"), "{text}");
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
    }

    /// Every metric the shipped alert rules and dashboard name is one the
    /// daemon exports (a renamed metric would silence an alert).
    #[test]
    fn the_alert_rules_and_the_dashboard_name_only_exported_metrics() {
        // Families show once they have a member: give each one.
        with_layer(|| {
            tracing::error!(event = "drill.failed", step = "restore", error = "x");
            tracing::info!(
                event = "retention.completed",
                deleted = 0u64,
                bytes_freed = 0u64
            );
        });
        let text = metrics().render();
        let exported: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        assert!(exported.len() > 15, "{text}");
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let dash =
            std::fs::read_to_string(root.join("deploy/grafana/lethe.json")).expect("dashboard");
        let dash_json: serde_json::Value =
            serde_json::from_str(&dash).expect("the dashboard is JSON");
        assert!(
            dash_json["panels"]
                .as_array()
                .is_some_and(|p| p.len() >= 10)
        );
        for file in [
            "deploy/alerts/lethe-metrics-rules.yaml",
            "deploy/grafana/lethe.json",
        ] {
            let body = std::fs::read_to_string(root.join(file)).expect(file);
            let mut named = 0;
            for (i, _) in body.match_indices("lethe_") {
                let name: String = body[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if name == "lethe_" || body[..i].ends_with('-') {
                    continue;
                }
                named += 1;
                let base = name.strip_suffix("_total").unwrap_or(&name);
                assert!(
                    exported.contains(&name.as_str()) || exported.contains(&base),
                    "{file} names {name}, which lethe does not export: {exported:?}"
                );
            }
            assert!(named > 5, "{file}");
        }
    }
}
