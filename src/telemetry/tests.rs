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
