use super::*;

#[test]
fn sizes_parse_with_binary_units_and_round_trip() {
    assert_eq!(parse_bytes("8GiB"), Ok(8 << 30));
    assert_eq!(parse_bytes(" 512 mib "), Ok(512 << 20));
    assert_eq!(parse_bytes("1048576"), Ok(1 << 20));
    assert_eq!(parse_bytes("3B"), Ok(3));
    for n in [0, 1, 1 << 10, 3 << 20, 8 << 30, 5 << 40, 1_000_001] {
        assert_eq!(parse_bytes(&format_bytes(n)), Ok(n), "{n}");
    }
    assert_eq!(format_bytes(8 << 30), "8GiB");
}

#[test]
fn sizes_without_a_number_or_with_an_unknown_unit_are_refused() {
    for bad in ["", "GiB", "8GB", "1.5GiB", "-1", "99999999999999TiB"] {
        let e = parse_bytes(bad).unwrap_err();
        assert!(e.contains("invalid size"), "{bad}: {e}");
    }
}
