use super::*;

#[test]
fn copy_text_escapes_decode() {
    let mut out = Vec::new();
    crate::copytext::escape::decode_escapes(br"a\tb\\c\nd\101\x41\q", &mut out);
    assert_eq!(out, b"a\tb\\c\nd\x41Aq");
}

struct Set(Vec<u128>);
impl ErasureSet for Set {
    fn contains(&self, k: u128) -> bool {
        self.0.contains(&k)
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

#[test]
fn leak_counter_counts_listed_subjects_across_batch_boundaries() {
    let probe = LeakProbe {
        column: "email".into(),
        col: 1,
        set: Arc::new(Set(vec![
            key_of(SubjectType::Text, b"a\tb").unwrap(),
            key_of(SubjectType::Text, b"x").unwrap(),
        ])),
        subject_type: SubjectType::Text,
        subject: None,
    };
    let mut s = LeakCounter::new(probe);
    let data = b"1\ta\\tb\n2\t\\N\n3\tx\n4\ty\n";
    for chunk in data.chunks(3) {
        s.feed(chunk);
    }
    assert_eq!(s.hits, 2);
}
