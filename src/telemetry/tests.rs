use super::*;

#[test]
fn every_level_keeps_the_sdk_checksum_warning_quiet() {
    for level in ["error", "warn", "info", "debug", "trace", "lethe=debug"] {
        let spec = filter_spec(level);
        assert!(EnvFilter::try_new(&spec).is_ok(), "{spec}");
        assert!(spec.starts_with(level), "{spec}");
        assert!(
            spec.ends_with("aws_sdk_s3::http_response_checksum=error"),
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
