use super::*;
use crate::storage::fs::FsStorage;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_then_open_round_trips_and_names_a_damaged_object() {
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(FsStorage::open(dir.path().to_path_buf()).unwrap());
    let id = age::x25519::Identity::generate();
    let sealer = Sealer::Age(vec![id.to_public()]);
    let opener = Opener::Age(vec![id]);
    let payload: Vec<u8> = (0..300_000u32)
        .flat_map(|i| format!("{i}\tname {i}\n").into_bytes())
        .collect();
    let st = storage.clone();
    let p = payload.clone();
    let rt = tokio::runtime::Handle::current();
    let entry = tokio::task::spawn_blocking(move || {
        let (mut sink, h) =
            ObjectSink::create(st, "snapshots/x/data/1.copy".into(), &sealer, 3).unwrap();
        sink.write_all(&p).unwrap();
        sink.add_rows(300_000);
        sink.finish(h, &rt).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(entry.raw_size, payload.len() as u64);
    assert_eq!(entry.rows, 300_000);

    let st = storage.clone();
    let (e2, o2) = (entry.clone(), opener.clone());
    let back = tokio::task::spawn_blocking(move || {
        let mut r = open_object(st, &e2, &o2)?;
        let mut v = Vec::new();
        r.read_to_end(&mut v).map(|_| v)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(back, payload);

    // Flip one byte in the stored object: the read fails naming the key.
    let path = dir.path().join(&entry.key);
    let mut raw = std::fs::read(&path).unwrap();
    let mid = raw.len() / 2;
    raw[mid] ^= 0x40;
    std::fs::write(&path, raw).unwrap();
    let st = storage.clone();
    let e3 = entry.clone();
    let err = tokio::task::spawn_blocking(move || {
        open_object(st, &e3, &opener)?.read_to_end(&mut Vec::new())
    })
    .await
    .unwrap()
    .unwrap_err();
    assert!(err.to_string().contains(&entry.key), "{err}");
}

/// Read errors carry an `ObjectError` naming their key, whether their text
/// named it already (a checksum mismatch: passed on as is) or `NamedReader`
/// prefixed it; the texts are the ones the object layer always printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_errors_carry_the_key_they_name() {
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(FsStorage::open(dir.path().to_path_buf()).unwrap());
    let key = "snapshots/x/data/2.copy".to_string();
    let body: ByteStream = Box::pin(futures::stream::once(async {
        Ok(Bytes::from_static(b"abc"))
    }));
    storage.put(&key, body).await.unwrap();
    let (st, k) = (storage.clone(), key.clone());
    let err = tokio::task::spawn_blocking(move || {
        let r = download_pipe(st, k.clone(), Some((3, "00".into())));
        NamedReader { inner: r, key: k }.read_to_end(&mut Vec::new())
    })
    .await
    .unwrap()
    .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert_eq!(
        ObjectError::of(&err).map(ObjectError::key),
        Some(key.as_str())
    );
    assert!(
        err.to_string()
            .starts_with(&format!("object {key} fails its checksum (BLAKE3 ")),
        "{err}"
    );

    let failing = std::io::Cursor::new(Vec::<u8>::new()).chain(Failing);
    let err = NamedReader {
        inner: failing,
        key: key.clone(),
    }
    .read_to_end(&mut Vec::new())
    .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
    assert_eq!(
        ObjectError::of(&err).map(ObjectError::key),
        Some(key.as_str())
    );
    assert_eq!(err.to_string(), format!("object {key}: boom"));
}

struct Failing;

impl Read for Failing {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "boom",
        ))
    }
}
