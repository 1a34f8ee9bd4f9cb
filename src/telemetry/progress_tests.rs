use super::*;

#[test]
fn the_templates_parse() {
    for t in [RESTORE_TEMPLATE, REPLAY_TEMPLATE, SNAPSHOT_TEMPLATE] {
        assert!(ProgressStyle::with_template(t).is_ok(), "{t}");
    }
}

#[test]
fn a_log_line_is_written_whole_when_its_writer_drops() {
    let mut w = LineWriter::default();
    w.write_all(b"{\"event\":").expect("write");
    w.write_all(b"\"x\"}\n").expect("write");
    assert_eq!(w.0, b"{\"event\":\"x\"}\n");
    // Dropping it writes the line to stderr (no bar is active in tests).
}
