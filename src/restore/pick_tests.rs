use super::*;

#[test]
fn ages_read_as_hours_and_minutes() {
    assert_eq!(human_ago(45), "45 s");
    assert_eq!(human_ago(3 * 3600 + 12 * 60 + 5), "3 h 12 min");
    assert_eq!(human_ago(2 * 86_400 + 4 * 3600), "2 d 4 h");
    assert_eq!(human_ago(-5), "0 s");
}
