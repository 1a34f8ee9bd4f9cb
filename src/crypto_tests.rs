use super::*;

#[test]
fn seal_then_open_round_trips_and_detects_a_flipped_byte() {
    let id = age::x25519::Identity::generate();
    let sealer = Sealer::Age(vec![id.to_public()]);
    let mut w = sealer.seal(Vec::new()).unwrap();
    let plain: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
    w.write_all(&plain).unwrap();
    let sealed = w.finish().unwrap();
    let opener = Opener::Age(vec![id]);
    let mut out = Vec::new();
    opener
        .open("t", std::io::Cursor::new(sealed.clone()))
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out, plain);

    let mut bad = sealed.clone();
    let n = bad.len();
    bad[n / 2] ^= 1;
    let mut r = opener.open("t", std::io::Cursor::new(bad)).unwrap();
    assert!(r.read_to_end(&mut Vec::new()).is_err());

    let truncated = sealed[..n - 100].to_vec();
    let mut r = opener.open("t", std::io::Cursor::new(truncated)).unwrap();
    assert!(r.read_to_end(&mut Vec::new()).is_err());
}

#[test]
fn wrong_identity_is_refused() {
    let sealer = Sealer::Age(vec![age::x25519::Identity::generate().to_public()]);
    let mut w = sealer.seal(Vec::new()).unwrap();
    w.write_all(b"x").unwrap();
    let sealed = w.finish().unwrap();
    let other = Opener::Age(vec![age::x25519::Identity::generate()]);
    let err = other
        .open("obj-a", std::io::Cursor::new(sealed))
        .err()
        .expect("refused");
    assert!(err.to_string().contains("obj-a"));
}

#[test]
fn keygen_writes_0600_and_refuses_overwrite() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("k");
    let public = keygen(&p).unwrap();
    assert!(public.starts_with("age1"));
    assert_eq!(
        std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(Opener::from_identity_file(&p).is_ok());
    assert!(matches!(keygen(&p), Err(CryptoError::Exists { .. })));
}
