use super::*;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn epoch() -> Epoch {
    "01JD7Z8X9Q2W3E4R5T6Y7V8W9X".parse().unwrap()
}

const SRC: &str = "127.0.0.1:5432/app";

fn part(key: String) -> ObjectEntry {
    ObjectEntry {
        key,
        size: 10,
        blake3: "ab".into(),
        raw_size: 20,
        rows: 3,
    }
}

/// A valid manifest and the key it is stored at.
fn segment() -> (String, SegmentManifest) {
    let mut m = SegmentManifest {
        format: SEGMENT_FORMAT,
        source: SRC.into(),
        system_id: "7301234567890123456".into(),
        timeline: 1,
        epoch: epoch(),
        base_lsn: Lsn(0x100),
        prev_end_lsn: Lsn(0x200),
        first_commit_lsn: Lsn(0x300),
        last_commit_lsn: Lsn(0x400),
        end_lsn: Lsn(0x430),
        first_commit_at: at("2026-11-22T13:04:05.123456Z"),
        last_commit_at: at("2026-11-22T13:04:09Z"),
        xacts: 2,
        changes: 7,
        parts: Vec::new(),
        relations: vec![RelationDesc {
            relid: 16384,
            schema: "public".into(),
            name: "orders".into(),
            replident: "d".into(),
            columns: vec![
                RelColumn {
                    name: "id".into(),
                    type_oid: 20,
                    typmod: -1,
                    type_name: Some("bigint".into()),
                    base_type: None,
                    attnum: Some(1),
                    key: true,
                },
                RelColumn {
                    name: "total".into(),
                    type_oid: 1700,
                    typmod: 786_438,
                    type_name: Some("numeric(12,2)".into()),
                    base_type: Some("numeric(12,2)".into()),
                    attnum: Some(3),
                    key: false,
                },
            ],
        }],
        ddl: vec![DdlMark {
            commit_lsn: Lsn(0x400),
            seq: 0,
        }],
        rewrites: vec![16384],
        sequences: vec![SequenceValue {
            schema: "public".into(),
            name: "orders_id_seq".into(),
            last_value: 42,
            is_called: true,
        }],
        sequences_at: Some(at("2026-11-22T13:04:10Z")),
        recipients: vec!["age1xyz".into()],
        compression: "zstd".into(),
    };
    let stem = m.stem();
    m.parts = vec![part(stem.part_key(0, true)), part(stem.part_key(1, true))];
    (stem.manifest_key(m.last_commit_lsn), m)
}

fn broken(f: impl FnOnce(&mut SegmentManifest)) -> String {
    let (key, mut m) = segment();
    f(&mut m);
    let err = SegmentManifest::from_json(&key, &m.to_json()).unwrap_err();
    assert!(matches!(err, ChangesError::Invalid { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&key), "{msg}");
    msg
}

#[test]
fn segment_manifest_round_trips() {
    let (key, m) = segment();
    assert_eq!(
        key,
        "changes/127=2E0=2E0=2E1=3A5432=2Fapp/01JD7Z8X9Q2W3E4R5T6Y7V8W9X/20261122/13/0000000000000300-0000000000000400.json"
    );
    let json = m.to_json();
    let text = String::from_utf8(json.clone()).unwrap();
    assert!(text.contains("\"first_commit_lsn\": \"0/300\""), "{text}");
    assert_eq!(SegmentManifest::from_json(&key, &json).unwrap(), m);
    // Unsealed parts when there are no recipients.
    let (_, mut m) = segment();
    m.recipients.clear();
    m.parts = vec![part(m.stem().part_key(0, false))];
    assert_eq!(SegmentManifest::from_json(&key, &m.to_json()).unwrap(), m);
}

#[test]
fn newer_formats_and_bad_json_are_refused_by_key() {
    let (key, m) = segment();
    let mut v: serde_json::Value = serde_json::from_slice(&m.to_json()).unwrap();
    v["format"] = 2.into();
    v["something_new"] = true.into();
    let err = SegmentManifest::from_json(&key, &serde_json::to_vec(&v).unwrap()).unwrap_err();
    assert!(
        matches!(err, ChangesError::TooNew { found: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains(&key) && err.to_string().contains("upgrade lethe"));

    let mut v: serde_json::Value = serde_json::from_slice(&m.to_json()).unwrap();
    v["something_new"] = true.into();
    let err = SegmentManifest::from_json(&key, &serde_json::to_vec(&v).unwrap()).unwrap_err();
    assert!(matches!(err, ChangesError::Parse { .. }), "{err}");
    assert!(err.to_string().contains("something_new"), "{err}");

    for bad in [&b"{"[..], b"", b"[]", b"{\"format\": 1}", b"\xff"] {
        let err = SegmentManifest::from_json(&key, bad).unwrap_err();
        assert!(matches!(err, ChangesError::Parse { .. }), "{err}");
        assert!(err.to_string().contains(&key), "{err}");
    }
    let mut v: serde_json::Value = serde_json::from_slice(&m.to_json()).unwrap();
    v["end_lsn"] = "nope".into();
    let err = SegmentManifest::from_json(&key, &serde_json::to_vec(&v).unwrap()).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn every_segment_rule_is_checked() {
    let msg = broken(|m| m.first_commit_lsn = Lsn(0x401));
    assert!(
        msg.contains("first_commit_lsn ≤ last_commit_lsn ≤ end_lsn"),
        "{msg}"
    );
    let msg = broken(|m| m.end_lsn = Lsn(0x3FF));
    assert!(msg.contains("≤ end_lsn"), "{msg}");
    let msg = broken(|m| m.prev_end_lsn = Lsn(0x301));
    assert!(msg.contains("prev_end_lsn"), "{msg}");
    let msg = broken(|m| m.last_commit_at = at("2026-11-22T13:04:05Z"));
    assert!(msg.contains("first_commit_at"), "{msg}");
    let msg = broken(|m| m.parts.clear());
    assert!(msg.contains("no payload parts"), "{msg}");
    let msg = broken(|m| m.parts.swap(0, 1));
    assert!(msg.contains("part 0"), "{msg}");
    let msg = broken(|m| {
        let k = m.parts[1].key.replace(".001.", ".002.");
        m.parts[1].key = k;
    });
    assert!(msg.contains("part 1"), "{msg}");
    let msg = broken(|m| m.recipients.clear());
    assert!(msg.contains("unsealed"), "{msg}");
    let msg = broken(|m| m.parts[0].key = "snapshots/x/data/0.copy.zst.age".into());
    assert!(msg.contains("part 0"), "{msg}");
    let msg = broken(|m| {
        let r = m.relations[0].clone();
        m.relations.push(r);
    });
    assert!(msg.contains("relation 16384 is listed twice"), "{msg}");
    let msg = broken(|m| m.relations[0].replident = "x".into());
    assert!(msg.contains("replident"), "{msg}");
    // Fields that name another segment than the key.
    for f in [
        (|m: &mut SegmentManifest| m.source = "other:5432/app".into()) as fn(&mut SegmentManifest),
        |m| m.epoch = Epoch::new(),
        |m| m.first_commit_at = at("2026-11-22T12:59:59Z"),
        |m| m.last_commit_lsn = Lsn(0x401),
    ] {
        let msg = broken(f);
        assert!(msg.contains("name segment"), "{msg}");
    }
    // Equal bounds are fine.
    let (key, mut m) = segment();
    m.prev_end_lsn = m.first_commit_lsn;
    m.last_commit_at = m.first_commit_at;
    m.validate(&key).unwrap();
    assert!(m.validate("changes/x.json").is_err());
}

fn head() -> (String, Head) {
    let h = Head {
        format: HEAD_FORMAT,
        source: SRC.into(),
        epoch: epoch(),
        base_lsn: Lsn(0x16_0000_0000),
        end_lsn: Lsn(0x16_B374_D848),
        last_commit_lsn: Some(Lsn(0x16_B374_D800)),
        last_commit_at: Some(at("2026-11-22T13:04:09Z")),
        verified_at: at("2026-11-22T13:05:00Z"),
        schema_checked_at: None,
        schema_digest: None,
        base_ids: vec!["20261122T130000Z-3f9a".into()],
    };
    (head_key(SRC), h)
}

#[test]
fn heads_round_trip_and_are_checked() {
    let (key, h) = head();
    assert_eq!(Head::from_json(&key, &h.to_json()).unwrap(), h);
    let mut empty = h.clone();
    empty.last_commit_lsn = None;
    empty.last_commit_at = None;
    empty.base_ids.clear();
    assert_eq!(Head::from_json(&key, &empty.to_json()).unwrap(), empty);

    let err = Head::from_json(&key, br#"{"format": 9, "x": 1}"#).unwrap_err();
    assert!(
        matches!(err, ChangesError::TooNew { found: 9, .. }),
        "{err}"
    );
    let mut v: serde_json::Value = serde_json::from_slice(&h.to_json()).unwrap();
    v["extra"] = 1.into();
    let err = Head::from_json(&key, &serde_json::to_vec(&v).unwrap()).unwrap_err();
    assert!(matches!(err, ChangesError::Parse { .. }), "{err}");
    let mut late = h.clone();
    late.last_commit_lsn = Some(Lsn(0x16_B374_D849));
    let err = Head::from_json(&key, &late.to_json()).unwrap_err();
    assert!(err.to_string().contains("after end_lsn"), "{err}");
    let err = Head::from_json("changes/x/head.json", &h.to_json()).unwrap_err();
    assert!(matches!(err, ChangesError::Invalid { .. }), "{err}");
}

#[test]
fn gap_records_round_trip_and_are_checked() {
    let id = super::super::new_gap_id();
    let g = GapRecord {
        format: GAP_FORMAT,
        id: id.clone(),
        source: SRC.into(),
        epoch_before: Some(epoch()),
        last_commit_lsn: Some(Lsn(5)),
        last_commit_at: Some(at("2026-11-22T13:04:09Z")),
        epoch_after: None,
        resumed_lsn: None,
        resumed_at: None,
        base_id: None,
        reason: GapReason::WalLevelInsufficient,
        detected_at: at("2026-11-22T13:05:00Z"),
    };
    let key = gap_key(SRC, &id);
    let json = g.to_json();
    assert!(String::from_utf8_lossy(&json).contains("\"wal_level_insufficient\""));
    assert_eq!(GapRecord::from_json(&key, &json).unwrap(), g);
    let err = GapRecord::from_json(&key, br#"{"format": 2}"#).unwrap_err();
    assert!(matches!(err, ChangesError::TooNew { .. }), "{err}");
    let err = GapRecord::from_json(&gap_key(SRC, "01JD7Z8X9Q2W3E4R5T6Y7V8W9X"), &json).unwrap_err();
    assert!(err.to_string().contains("names gap record"), "{err}");
    let mut bad = g.clone();
    bad.id = "x".into();
    let err = GapRecord::from_json(&gap_key(SRC, "x"), &bad.to_json()).unwrap_err();
    assert!(err.to_string().contains("not a ULID"), "{err}");
    let mut v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    v["reason"] = "tired".into();
    assert!(GapRecord::from_json(&key, &serde_json::to_vec(&v).unwrap()).is_err());
}

#[test]
fn gap_reasons_are_named_as_serialised() {
    for r in [
        GapReason::SlotMissing,
        GapReason::WalRemoved,
        GapReason::RowsRemoved,
        GapReason::WalLevelInsufficient,
        GapReason::IdleTimeout,
        GapReason::Rewrite,
        GapReason::SchemaUndetected,
        GapReason::SystemChanged,
    ] {
        let j = serde_json::to_string(&r).unwrap();
        assert_eq!(j, format!("\"{r}\""));
        assert_eq!(serde_json::from_str::<GapReason>(&j).unwrap(), r);
    }
    assert_eq!(GapReason::SlotMissing.to_string(), "slot_missing");
}
