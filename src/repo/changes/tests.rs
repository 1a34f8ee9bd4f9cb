use super::*;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn epoch() -> Epoch {
    "01JD7Z8X9Q2W3E4R5T6Y7V8W9X".parse().unwrap()
}

#[test]
fn lsn_displays_and_parses_as_postgres_prints_it() {
    for (n, s) in [
        (0u64, "0/0"),
        (0x16_B374_D848, "16/B374D848"),
        (u64::MAX, "FFFFFFFF/FFFFFFFF"),
        (1 << 32, "1/0"),
        (0xFFFF_FFFF, "0/FFFFFFFF"),
    ] {
        assert_eq!(Lsn(n).to_string(), s);
        assert_eq!(s.parse::<Lsn>().unwrap(), Lsn(n));
    }
    assert_eq!("16/b374d848".parse::<Lsn>().unwrap(), Lsn(0x16_B374_D848));
    assert_eq!(
        "00000016/0B374D84".parse::<Lsn>().unwrap(),
        Lsn(0x16_0B37_4D84)
    );
    assert_eq!(Lsn(0x16_B374_D848).hex16(), "00000016B374D848");
    assert_eq!(Lsn(u64::MAX).hex16(), "FFFFFFFFFFFFFFFF");
}

#[test]
fn lsn_refuses_what_pg_lsn_refuses_and_names_the_input() {
    for bad in [
        "16B374D848",
        "/1",
        "1/",
        "G/1",
        "",
        "/",
        "1/2/3",
        "+1/2",
        "1/-2",
        " 1/2",
        "1/2 ",
        "100000000/0",
        "0/100000000",
        "1/ä",
    ] {
        let err = bad.parse::<Lsn>().unwrap_err();
        assert!(
            err.to_string().contains(&format!("{bad:?}")),
            "{bad:?}: {err}"
        );
    }
}

#[test]
fn lsn_serialises_as_its_string_form() {
    let j = serde_json::to_string(&Lsn(0x16_B374_D848)).unwrap();
    assert_eq!(j, "\"16/B374D848\"");
    assert_eq!(
        serde_json::from_str::<Lsn>(&j).unwrap(),
        Lsn(0x16_B374_D848)
    );
    assert!(serde_json::from_str::<Lsn>("\"16B374D848\"").is_err());
    assert!(serde_json::from_str::<Lsn>("12").is_err());
}

#[test]
fn epochs_are_ulids_and_are_checked() {
    let e = Epoch::new();
    assert_eq!(e.as_str().len(), 26);
    assert_eq!(e.as_str().parse::<Epoch>().unwrap(), e);
    assert_eq!(e.to_string(), e.as_str());
    let j = serde_json::to_string(&e).unwrap();
    assert_eq!(serde_json::from_str::<Epoch>(&j).unwrap(), e);
    for bad in [
        "",
        "01JD7Z8X9Q2W3E4R5T6Y7V8W9",   // 25
        "01JD7Z8X9Q2W3E4R5T6Y7V8W9XX", // 27
        "01jd7z8x9q2w3e4r5t6y7v8w9x",  // lower case
        "01JD7Z8X9Q2W3E4R5T6Y7V8W9I",  // I
        "81JD7Z8X9Q2W3E4R5T6Y7V8W9X",  // > 128 bits
        "../../../../../../../../..",
    ] {
        assert!(bad.parse::<Epoch>().is_err(), "{bad}");
        assert!(
            serde_json::from_str::<Epoch>(&format!("{bad:?}")).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn keys_are_built_from_the_key_safe_source() {
    let e = epoch();
    let src = "127.0.0.1:5432/app";
    let s = "127=2E0=2E0=2E1=3A5432=2Fapp";
    assert_eq!(source_prefix(src), format!("changes/{s}/"));
    assert_eq!(stream_prefix(src, &e), format!("changes/{s}/{e}/"));
    assert_eq!(head_key(src), format!("changes/{s}/head.json"));
    assert_eq!(gaps_prefix(src), format!("changes/{s}/gaps/"));
    let id = new_gap_id();
    assert_eq!(gap_key(src, &id), format!("changes/{s}/gaps/{id}.json"));
    assert_eq!(
        gap_key(src, "../x"),
        format!("changes/{s}/gaps/=2E=2E=2Fx.json")
    );
    let stem = Stem2(
        SegmentStem::new(src, &e, at("2026-11-22T13:59:59.9Z"), Lsn(0x16_B374_D848)),
        Lsn(0x17_0000_0001),
    );
    let base = format!("changes/{s}/{e}/20261122/13/00000016B374D848");
    assert_eq!(stem.as_str(), base);
    assert_eq!(stem.manifest_key(), format!("{base}-0000001700000001.json"));
    assert_eq!(stem.part_key(0, true), format!("{base}.000.chg.zst.age"));
    assert_eq!(stem.part_key(12, false), format!("{base}.012.chg.zst"));
    for k in [
        stem.manifest_key(),
        stem.part_key(3, true),
        head_key(src),
        gap_key(src, &id),
    ] {
        crate::storage::validate_key(&k).unwrap();
    }
}

#[test]
fn manifest_keys_parse_back_exactly() {
    let e = epoch();
    let src = "db.example:5432/app data";
    let stem = Stem2(
        SegmentStem::new(src, &e, at("2026-01-02T03:04:05Z"), Lsn(7)),
        Lsn(0x1_0000_0000),
    );
    let k = parse_manifest_key(&stem.manifest_key()).unwrap();
    assert_eq!(
        k,
        SegmentKey {
            src_safe: key_safe(src),
            epoch: e.clone(),
            hour: at("2026-01-02T03:00:00Z"),
            first: Lsn(7),
            last: Lsn(0x1_0000_0000),
        }
    );
    let empty = Stem2(
        SegmentStem::new("", &e, at("2026-01-02T03:04:05Z"), Lsn(1)),
        Lsn(1),
    );
    assert_eq!(
        parse_manifest_key(&empty.manifest_key()).unwrap().src_safe,
        "="
    );
}

#[test]
fn manifest_keys_refuse_everything_else() {
    let e = epoch();
    let stem = Stem2(
        SegmentStem::new("s", &e, at("2026-01-02T03:04:05Z"), Lsn(1)),
        Lsn(2),
    );
    let good = stem.manifest_key();
    let first = "0000000000000001";
    let last = "0000000000000002";
    let bad = [
        head_key("s"),
        stem.part_key(0, true),
        stem.part_key(0, false),
        gap_key("s", &new_gap_id()),
        stem.as_str().to_string(),
        format!("{good}x"),
        format!("x{good}"),
        format!("/{good}"),
        good.replace("changes/", "snapshots/"),
        good.replace("/s/", "/s=/"),
        good.replace("/s/", "/s=2/"),
        good.replace("/s/", "/=73/"), // non-canonical: `s` is kept as it is
        good.replace("/s/", "/s=2f/"),
        good.replace("/s/", "/=FF/"), // not UTF-8
        good.replace("/s/", "//"),
        good.replace("/s/", "/s/x/"),
        good.replace(e.as_str(), "not-an-epoch"),
        good.replace("20260102", "20260230"),
        good.replace("20260102", "2026012"),
        good.replace("/03/", "/24/"),
        good.replace("/03/", "/3/"),
        good.replace(first, "000000000000000a"),
        good.replace(first, "1"),
        good.replace(first, "00000000000000001"),
        good.replace(&format!("{first}-{last}"), &format!("{last}-{first}")),
        good.replace(&format!("{first}-"), &format!("{first}_")),
        good.replace(".json", ".JSON"),
        "changes/".into(),
        String::new(),
        "garbage".into(),
    ];
    for k in bad {
        assert!(parse_manifest_key(&k).is_none(), "{k}");
    }
}

#[test]
fn keys_sort_in_commit_order() {
    let e = epoch();
    let t = at("2026-01-02T03:04:05Z");
    let keys = [
        Stem2(
            SegmentStem::new("s", &e, at("2026-01-01T23:59:59Z"), Lsn(0xF)),
            Lsn(0xFF),
        ),
        Stem2(SegmentStem::new("s", &e, t, Lsn(0x100)), Lsn(0x100)),
        Stem2(SegmentStem::new("s", &e, t, Lsn(0x101)), Lsn(0xFFF)),
        Stem2(SegmentStem::new("s", &e, t, Lsn(0x1000)), Lsn(0x1000)),
        Stem2(
            SegmentStem::new("s", &e, t, Lsn(0x1_0000_0000)),
            Lsn(0x1_0000_0000),
        ),
        Stem2(
            SegmentStem::new("s", &e, at("2026-01-02T04:00:00Z"), Lsn(0x2_0000_0000)),
            Lsn(u64::MAX),
        ),
    ]
    .map(|s| s.manifest_key());
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(sorted, keys);
    let parts: Vec<String> = (0..12)
        .map(|n| keys[0].replace("-00000000000000FF.json", "") + &format!(".{n:03}"))
        .collect();
    let mut p = parts.clone();
    p.sort();
    assert_eq!(p, parts);
}

/// A stem with the last commit its manifest key needs.
struct Stem2(SegmentStem, Lsn);

impl Stem2 {
    fn manifest_key(&self) -> String {
        self.0.manifest_key(self.1)
    }
    fn part_key(&self, n: u32, sealed: bool) -> String {
        self.0.part_key(n, sealed)
    }
    fn as_str(&self) -> &str {
        self.0.as_str()
    }
}
