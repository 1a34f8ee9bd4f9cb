use super::*;

#[test]
fn pausing_twice_keeps_the_first_time_and_resume_reports_it() {
    let s = PauseSwitch::new();
    let t0 = Utc::now();
    assert!(s.pause(t0));
    assert!(!s.pause(t0 + chrono::Duration::seconds(5)));
    assert_eq!(s.paused_since(), Some(t0));
    assert_eq!(s.resume(), Some(t0));
    assert_eq!(s.resume(), None);
    assert_eq!(s.paused_since(), None);
}
