#[test]
fn segments_are_percent_encoded() {
    assert_eq!(super::encode_segment("a/b c%"), "a%2Fb%20c%25");
    assert_eq!(super::encode_segment("Ünï"), "%C3%9Cn%C3%AF");
    assert_eq!(super::encode_segment("0b6e-AZ_~."), "0b6e-AZ_~.");
}
