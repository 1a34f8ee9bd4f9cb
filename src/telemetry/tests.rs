use super::*;

#[test]
fn every_level_keeps_the_sdk_checksum_warning_quiet() {
    for level in ["error", "warn", "info", "debug", "trace", "lethe=debug"] {
        let spec = filter_spec(level);
        assert!(EnvFilter::try_new(&spec).is_ok(), "{spec}");
        assert!(spec.starts_with(level), "{spec}");
        assert!(
            spec.contains(",aws_sdk_s3::http_response_checksum=error")
                && spec.ends_with(",pg_walstream=warn"),
            "{spec}"
        );
    }
}

#[test]
fn levels_and_directives_pass_the_check() {
    for ok in [
        "error",
        "warn",
        "INFO",
        "debug",
        "trace",
        "off",
        "lethe=debug",
        "info,lethe::snapshot=trace",
        "warn, lethe=debug",
        "lethe[snapshot{id=1}]=debug",
    ] {
        assert_eq!(check_level(ok), Ok(()), "{ok}");
    }
}

#[test]
fn a_mistyped_level_or_broken_directive_is_refused_naming_the_valid_levels() {
    for bad in [
        "warning",
        "verbose",
        "",
        "lethe=loud",
        "info,lethe=warning",
        "lethe",
        "lethe=debug=x",
    ] {
        let e = check_level(bad).expect_err(bad);
        assert!(
            e.contains("error, warn, info, debug, trace") && e.contains("lethe=debug"),
            "{bad}: {e}"
        );
    }
}

#[test]
fn per_table_fields_become_json_objects_and_other_lines_stay_as_they_are() {
    let line = br#"{"level":"INFO","event":"restore.completed","rows_dropped_by_table":"{\"public.users\":5}","rows_nulled_by_table":"{}","note":"{\"a\":1}"}"#;
    let mut with_nl = line.to_vec();
    with_nl.push(b'\n');
    let out = objects_in_line(with_nl);
    assert!(out.ends_with(b"\n"));
    let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
    assert_eq!(v["rows_dropped_by_table"]["public.users"], 5, "{v}");
    assert!(v["rows_nulled_by_table"].is_object(), "{v}");
    assert_eq!(v["note"], "{\"a\":1}", "other fields stay strings: {v}");
    let plain = b"{\"event\":\"x\",\"rows_dropped_by_table\":\"nope\"}\n".to_vec();
    assert_eq!(objects_in_line(plain.clone()), plain);
}

#[test]
fn a_line_from_another_crate_without_an_event_gets_sdk_log_and_its_target() {
    let t = foreign_target("aws_smithy_runtime::client::retries", false).expect("foreign");
    let line =
        b"{\"timestamp\":\"2026-12-06T10:00:00Z\",\"level\":\"WARN\",\"message\":\"retrying\"}\n";
    let out = with_sdk_event(line.to_vec(), &t);
    let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
    assert_eq!(v["event"], SDK_EVENT, "{v}");
    assert_eq!(v["target"], "aws_smithy_runtime::client::retries", "{v}");
    assert_eq!(v["level"], "WARN", "{v}");
    assert_eq!(v["message"], "retrying", "{v}");
    assert!(out.ends_with(b"\n"));
    let empty = with_sdk_event(b"{}\n".to_vec(), "hyper");
    let v: serde_json::Value = serde_json::from_slice(&empty).expect("json");
    assert_eq!(v["event"], SDK_EVENT, "{v}");
}

#[test]
fn lethe_lines_and_lines_that_carry_an_event_are_left_alone() {
    assert_eq!(foreign_target("lethe::snapshot::run", false), None);
    assert_eq!(foreign_target("lethe", false), None);
    assert_eq!(foreign_target("aws_config::profile", true), None);
    assert_eq!(
        foreign_target("lethe_other", false).as_deref(),
        Some("lethe_other")
    );
}

/// Through the real formatter and writer: a WARN from an SDK target comes
/// out as one JSON line with `event` = `sdk.log` and the target; Lethe's
/// lines keep their shape.
#[test]
fn the_json_formatter_gives_an_sdk_warning_an_event() {
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("sink").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let sink = Sink::default();
    let open = {
        let s = sink.clone();
        move || s.clone()
    };
    let subscriber = tracing_subscriber::fmt()
        .with_target(false)
        .with_writer(JsonLines(open))
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        tracing::warn!(target: "aws_smithy_runtime::client", "an SDK warning");
        tracing::info!(event = "snapshot.completed", "ours");
    });
    let text = String::from_utf8(sink.0.lock().expect("out").clone()).expect("utf8");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect(l))
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0]["event"], SDK_EVENT, "{text}");
    assert_eq!(lines[0]["target"], "aws_smithy_runtime::client", "{text}");
    assert_eq!(lines[0]["level"], "WARN", "{text}");
    assert_eq!(lines[1]["event"], "snapshot.completed", "{text}");
    assert!(lines[1].get("target").is_none(), "{text}");
}

#[test]
fn auto_is_the_default_and_is_json_unless_stderr_is_a_terminal() {
    assert_eq!(LogConfig::default().format, LogFormat::Auto);
    assert_eq!(LogFormat::Auto.resolve(false), LogFormat::Json);
    assert_eq!(LogFormat::Auto.resolve(true), LogFormat::Text);
    for f in [LogFormat::Json, LogFormat::Text] {
        assert_eq!(f.resolve(true), f);
        assert_eq!(f.resolve(false), f);
    }
    let parsed: LogConfig = toml::from_str("format = \"auto\"").expect("auto parses");
    assert_eq!(parsed.format, LogFormat::Auto);
}

#[test]
fn a_log_mark_sees_only_the_lines_the_filter_let_through() {
    use tracing::Level;
    let subscriber = tracing_subscriber::registry()
        .with(EnvFilter::new("warn"))
        .with(Counted);
    tracing::subscriber::with_default(subscriber, || {
        let mark = LogMark::now();
        tracing::info!(event = "test.filtered");
        assert!(!mark.logged_since(Level::INFO));
        tracing::error!(event = "test.shown");
        assert!(mark.logged_since(Level::ERROR));
        assert!(!mark.logged_since(Level::WARN));
        assert!(!LogMark::now().logged_since(Level::ERROR));
    });
}
