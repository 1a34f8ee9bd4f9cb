use super::*;

#[test]
fn default_parts_hold_more_than_five_tib() {
    let s = PartSizing::default();
    assert!(s.capacity() > 5 * 1024 * 1024 * MIB, "{}", s.capacity());
    assert_eq!(s.size_of(1), 8 * MIB);
    assert_eq!(s.size_of(1000), 8 * MIB);
    assert_eq!(s.size_of(1001), 16 * MIB);
    for n in 1..=MAX_PARTS {
        let p = s.size_of(n);
        assert!((MIN_PART..=MAX_PART).contains(&p), "part {n}: {p}");
    }
}

#[test]
fn parts_never_shrink_below_the_s3_minimum() {
    let s = PartSizing {
        first: 1,
        parts_per_step: 2,
    };
    assert_eq!(s.size_of(1), MIN_PART);
    assert_eq!(s.size_of(3), 2 * MIN_PART);
}

fn reader_of(chunks: Vec<&'static [u8]>) -> PartReader {
    let body: ByteStream = Box::pin(futures::stream::iter(
        chunks.into_iter().map(|c| Ok(Bytes::from_static(c))),
    ));
    PartReader {
        body,
        key: "k".into(),
        leftover: None,
        eof: false,
    }
}

#[tokio::test]
async fn parts_are_cut_at_the_requested_size_across_chunks() {
    let mut r = reader_of(vec![b"abc", b"defgh", b"ij"]);
    assert_eq!(
        r.next_part(4).await.ok().flatten().as_deref(),
        Some(&b"abcd"[..])
    );
    assert_eq!(
        r.next_part(4).await.ok().flatten().as_deref(),
        Some(&b"efgh"[..])
    );
    assert_eq!(
        r.next_part(4).await.ok().flatten().as_deref(),
        Some(&b"ij"[..])
    );
    assert!(r.eof);
    assert!(matches!(r.next_part(4).await, Ok(None)));
}

#[tokio::test]
async fn body_errors_become_body_errors() {
    let body: ByteStream = Box::pin(futures::stream::iter(vec![
        Ok(Bytes::from_static(b"ab")),
        Err(StorageError::Transient {
            op: "x",
            key: "y".into(),
            message: "boom".into(),
        }),
    ]));
    let mut r = PartReader {
        body,
        key: "k".into(),
        leftover: None,
        eof: false,
    };
    assert!(matches!(
        r.next_part(10).await,
        Err(StorageError::Body { .. })
    ));
}
