use super::*;

fn t(s: &[u8]) -> Value {
    Value::Text(s.to_vec())
}

fn payload(records: &[Record]) -> Vec<u8> {
    let mut out = Vec::new();
    write_header(&mut out).unwrap();
    for r in records {
        write_record(&mut out, r).unwrap();
    }
    out
}

fn read_all(data: &[u8]) -> Result<Vec<Record>, CodecError> {
    let mut r = RecordReader::new(data)?;
    let mut v = Vec::new();
    while let Some(rec) = r.next_record()? {
        v.push(rec);
    }
    Ok(v)
}

/// The error a payload of `header` and then `lines` gives.
fn error_of(body: &[u8]) -> CodecError {
    let mut data = b"lethe-changes 1\n".to_vec();
    data.extend_from_slice(body);
    read_all(&data).unwrap_err()
}

fn awkward() -> Vec<Value> {
    vec![
        t(b"plain"),
        t(b"tab\there"),
        t(b"new\nline\r\n"),
        t(b"back\\slash\\"),
        t(b"\\N"),
        t(b"\\u"),
        t(b"\\"),
        t(b"\\\\N"),
        t(b""),
        Value::Null,
        Value::Unchanged,
        t(b"\xff\xfe\x00non-utf8"),
        t(b"\\t literal"),
        t(b"N"),
        t(b"u"),
    ]
}

fn every_kind() -> Vec<Record> {
    let many: Vec<Value> = (0..1600).map(|i| t(i.to_string().as_bytes())).collect();
    vec![
        Record::Begin {
            commit_lsn: Lsn(0x16_B374_D848),
            xid: u32::MAX,
            commit_time: -1,
        },
        Record::Insert {
            relid: 16384,
            new: awkward(),
        },
        Record::Insert {
            relid: 1,
            new: vec![],
        },
        Record::Insert {
            relid: 1,
            new: vec![t(b"")],
        },
        Record::Insert {
            relid: 1,
            new: vec![Value::Null],
        },
        Record::Insert {
            relid: u32::MAX,
            new: many.clone(),
        },
        Record::Update {
            relid: 2,
            old: None,
            new: awkward(),
        },
        Record::Update {
            relid: 2,
            old: None,
            new: vec![],
        },
        Record::Update {
            relid: 2,
            old: Some((OldKind::Key, vec![t(b"1"), Value::Null])),
            new: awkward(),
        },
        Record::Update {
            relid: 2,
            old: Some((OldKind::Full, awkward())),
            new: vec![],
        },
        Record::Update {
            relid: 2,
            old: Some((OldKind::Full, vec![])),
            new: vec![t(b"3")],
        },
        Record::Update {
            relid: 2,
            old: Some((OldKind::Full, many.clone())),
            new: many,
        },
        Record::Delete {
            relid: 3,
            kind: OldKind::Key,
            old: vec![t(b"-"), Value::Null],
        },
        Record::Delete {
            relid: 3,
            kind: OldKind::Full,
            old: awkward(),
        },
        Record::Delete {
            relid: 3,
            kind: OldKind::Full,
            old: vec![],
        },
        Record::Truncate {
            flags: 3,
            relids: vec![16384, 16390, u32::MAX],
        },
        Record::Truncate {
            flags: 0,
            relids: vec![],
        },
        Record::Message {
            prefix: "lethe.ddl".into(),
            content: b"ALTER TABLE t\n\tADD c int; -- \\N \\u \xff".to_vec(),
        },
        Record::Message {
            prefix: "\\N".into(),
            content: b"\\u".to_vec(),
        },
        Record::Message {
            prefix: String::new(),
            content: Vec::new(),
        },
        Record::Commit {
            commit_lsn: Lsn(0x16_B374_D848),
            end_lsn: Lsn(0),
        },
        Record::Relation(crate::repo::changes::manifest::RelationDesc {
            relid: 16384,
            schema: "odd\tschema".into(),
            name: "line\nbreak \\N".into(),
            replident: "d".into(),
            columns: vec![crate::repo::changes::manifest::RelColumn {
                name: "id".into(),
                type_oid: 20,
                typmod: -1,
                type_name: Some("bigint".into()),
                base_type: None,
                attnum: Some(1),
                key: true,
            }],
        }),
    ]
}

#[test]
fn every_record_kind_round_trips() {
    let records = every_kind();
    let data = payload(&records);
    assert_eq!(read_all(&data).unwrap(), records);
    // One line per record after the header.
    assert_eq!(
        data.iter().filter(|&&b| b == b'\n').count(),
        records.len() + 1
    );
}

#[test]
fn lines_are_as_the_design_writes_them() {
    let mut out = Vec::new();
    let line = |out: &mut Vec<u8>, r: Record| {
        out.clear();
        write_record(out, &r).unwrap();
        String::from_utf8_lossy(out).into_owned()
    };
    assert_eq!(
        line(&mut out, every_kind()[0].clone()),
        "B\t16/B374D848\t4294967295\t-1\n"
    );
    assert_eq!(
        line(
            &mut out,
            Record::Insert {
                relid: 7,
                new: vec![
                    t(b"a\tb\\"),
                    Value::Null,
                    Value::Unchanged,
                    t(b"\\N"),
                    t(b"")
                ]
            }
        ),
        "I\t7\ta\\tb\\\\\t\\N\t\\u\t\\\\N\t\n"
    );
    assert_eq!(
        line(
            &mut out,
            Record::Update {
                relid: 7,
                old: Some((OldKind::Key, vec![t(b"1")])),
                new: vec![t(b"2"), t(b"x")]
            }
        ),
        "U\t7\tK\t1\t1\t2\tx\n"
    );
    assert_eq!(
        line(
            &mut out,
            Record::Update {
                relid: 7,
                old: None,
                new: vec![t(b"2")]
            }
        ),
        "U\t7\t-\t2\n"
    );
    assert_eq!(
        line(
            &mut out,
            Record::Delete {
                relid: 7,
                kind: OldKind::Full,
                old: vec![t(b"1")]
            }
        ),
        "D\t7\tO\t1\n"
    );
    assert_eq!(
        line(
            &mut out,
            Record::Truncate {
                flags: 1,
                relids: vec![7, 8]
            }
        ),
        "T\t1\t7\t8\n"
    );
    assert_eq!(
        line(
            &mut out,
            Record::Commit {
                commit_lsn: Lsn(1),
                end_lsn: Lsn(2)
            }
        ),
        "C\t0/1\t0/2\n"
    );
    let mut h = Vec::new();
    write_header(&mut h).unwrap();
    assert_eq!(h, b"lethe-changes 1\n");
}

#[test]
fn every_copy_escape_is_decoded() {
    let data = b"lethe-changes 1\nI\t1\t\\b\\f\\n\\r\\t\\v\t\\101\\7\\0101\t\\x41\\x4g\\xz\t\\q\\.\\\\\tN\\N\\u\n";
    let got = read_all(data).unwrap();
    assert_eq!(
        got,
        vec![Record::Insert {
            relid: 1,
            new: vec![
                t(b"\x08\x0c\n\r\t\x0b"),
                t(b"A\x07\x081"),
                t(b"A\x04gxz"),
                t(b"q.\\"),
                t(b"NNu"),
            ]
        }]
    );
}

#[test]
fn commit_times_convert_both_ways() {
    let zero = commit_time_to_utc(0).unwrap();
    assert_eq!(zero.to_rfc3339(), "2000-01-01T00:00:00+00:00");
    let t: DateTime<Utc> = "2026-11-22T13:04:05.123456Z".parse().unwrap();
    let pg = utc_to_commit_time(t).unwrap();
    assert_eq!(commit_time_to_utc(pg), Some(t));
    assert_eq!(
        utc_to_commit_time(commit_time_to_utc(-5).unwrap()),
        Some(-5)
    );
    assert_eq!(commit_time_to_utc(i64::MAX), None);
    assert_eq!(commit_time_to_utc(i64::MIN), None);
}

#[test]
fn headers_are_checked() {
    for (data, newer) in [
        (&b""[..], false),
        (b"\n", false),
        (b"lethe-changes\n", false),
        (b"lethe-changes 0\n", false),
        (b"lethe-changes 1 \n", false),
        (b"lethe-changes +1\n", false),
        (b"lethe-changes one\n", false),
        (b"B\t0/1\t3\t4\n", false),
        (b"lethe-changes 2\n", true),
        (b"lethe-changes 99999999999999999999\n", true),
    ] {
        let err = read_all(data).expect_err("refused");
        assert_eq!(err.line, 1, "{err}");
        if newer {
            assert!(matches!(err.kind, CodecErrorKind::Newer(_)), "{err}");
            assert!(
                err.to_string().contains("written by a newer Lethe"),
                "{err}"
            );
        } else {
            assert!(matches!(err.kind, CodecErrorKind::NotPayload(_)), "{err}");
        }
    }
    let err = read_all(b"lethe-changes 1").expect_err("truncated");
    assert!(matches!(err.kind, CodecErrorKind::Truncated), "{err}");
    assert_eq!(read_all(b"lethe-changes 1\n").unwrap(), vec![]);
}

/// What a hostile line's error must be.
type Want = fn(&CodecErrorKind) -> bool;

#[test]
fn hostile_lines_name_their_line() {
    let good = "B\t0/1\t3\t4\n";
    let cases: &[(&str, Want)] = &[
        ("C\t0/1\t0/2", |k| matches!(k, CodecErrorKind::Truncated)),
        (
            "X\t1\n",
            |k| matches!(k, CodecErrorKind::UnknownTag(t) if t == "X"),
        ),
        (
            "\n",
            |k| matches!(k, CodecErrorKind::UnknownTag(t) if t.is_empty()),
        ),
        ("BB\t0/1\t3\t4\n", |k| {
            matches!(k, CodecErrorKind::UnknownTag(_))
        }),
        ("B\t0/1\t3\n", |k| {
            matches!(
                k,
                CodecErrorKind::FieldCount {
                    tag: 'B',
                    found: 3,
                    ..
                }
            )
        }),
        ("B\t0/1\t3\t4\t5\n", |k| {
            matches!(k, CodecErrorKind::FieldCount { tag: 'B', .. })
        }),
        ("C\t0/1\n", |k| {
            matches!(k, CodecErrorKind::FieldCount { tag: 'C', .. })
        }),
        ("I\n", |k| {
            matches!(k, CodecErrorKind::FieldCount { tag: 'I', .. })
        }),
        ("U\t1\n", |k| {
            matches!(k, CodecErrorKind::FieldCount { tag: 'U', .. })
        }),
        ("U\t1\tK\n", |k| {
            matches!(k, CodecErrorKind::FieldCount { tag: 'U', .. })
        }),
        ("U\t1\tK\t3\ta\tb\n", |k| {
            matches!(
                k,
                CodecErrorKind::FieldCount {
                    tag: 'U',
                    found: 6,
                    ..
                }
            )
        }),
        ("U\t1\tK\t18446744073709551615\n", |k| {
            matches!(k, CodecErrorKind::FieldCount { tag: 'U', .. })
        }),
        ("U\t1\tK\t99999999999999999999999\n", |k| {
            matches!(k, CodecErrorKind::BadNumber { field: 4, .. })
        }),
        ("U\t1\tX\t0\n", |k| {
            matches!(k, CodecErrorKind::BadKind { field: 3, .. })
        }),
        ("D\t1\n", |k| {
            matches!(k, CodecErrorKind::FieldCount { tag: 'D', .. })
        }),
        ("D\t1\t-\n", |k| {
            matches!(k, CodecErrorKind::BadKind { field: 3, .. })
        }),
        ("T\n", |k| {
            matches!(k, CodecErrorKind::FieldCount { tag: 'T', .. })
        }),
        ("T\t256\n", |k| {
            matches!(k, CodecErrorKind::BadNumber { field: 2, .. })
        }),
        ("T\t1\tx\n", |k| {
            matches!(k, CodecErrorKind::BadNumber { field: 3, .. })
        }),
        ("M\tp\n", |k| {
            matches!(k, CodecErrorKind::FieldCount { tag: 'M', .. })
        }),
        ("M\t\\N\tx\n", |k| {
            matches!(k, CodecErrorKind::BadField { field: 2, .. })
        }),
        ("M\tp\t\\u\n", |k| {
            matches!(k, CodecErrorKind::BadField { field: 3, .. })
        }),
        ("M\t\\xff\tx\n", |k| {
            matches!(k, CodecErrorKind::BadField { field: 2, .. })
        }),
        ("B\t01\t3\t4\n", |k| {
            matches!(k, CodecErrorKind::BadLsn { field: 2, .. })
        }),
        ("C\t0/1\tG/2\n", |k| {
            matches!(k, CodecErrorKind::BadLsn { field: 3, .. })
        }),
        ("B\t0/1\t-3\t4\n", |k| {
            matches!(k, CodecErrorKind::BadNumber { field: 3, .. })
        }),
        ("B\t0/1\t+3\t4\n", |k| {
            matches!(k, CodecErrorKind::BadNumber { field: 3, .. })
        }),
        ("B\t0/1\t3\t4x\n", |k| {
            matches!(k, CodecErrorKind::BadNumber { field: 4, .. })
        }),
        ("B\t0/1\t3\t-\n", |k| {
            matches!(k, CodecErrorKind::BadNumber { field: 4, .. })
        }),
        ("B\t0/1\t4294967296\t4\n", |k| {
            matches!(k, CodecErrorKind::BadNumber { field: 3, .. })
        }),
        ("I\t\t1\n", |k| {
            matches!(k, CodecErrorKind::BadNumber { field: 2, .. })
        }),
        ("I\t1\ta\\\n", |k| {
            matches!(k, CodecErrorKind::StrayBackslash { field: 3 })
        }),
        ("I\t1\tx\t\\\\\\\tb\n", |k| {
            matches!(k, CodecErrorKind::StrayBackslash { field: 4 })
        }),
        ("I\t1\t\\\n", |k| {
            matches!(k, CodecErrorKind::StrayBackslash { field: 3 })
        }),
    ];
    for (line, want) in cases {
        // A line without its newline can only be the last one.
        let tail = if line.ends_with('\n') { good } else { "" };
        let body = format!("{good}{good}{line}{tail}");
        let err = error_of(body.as_bytes());
        assert_eq!(err.line, 4, "{line:?}: {err}");
        assert!(want(&err.kind), "{line:?}: {err:?}");
        assert!(err.to_string().contains("line 4"), "{err}");
    }
    // Non-UTF-8 garbage lines are refused, not panicked on.
    let err = error_of(b"\xff\xfe\t\x80\n");
    assert_eq!(err.line, 2);
    assert!(matches!(err.kind, CodecErrorKind::UnknownTag(_)));
}

/// A small deterministic xorshift64*, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self) -> Vec<u8> {
        const INTERESTING: &[u8] = b"\\\t\n\rNu.x0178abv ";
        let len = self.below(12) as usize;
        (0..len)
            .map(|_| match self.below(3) {
                0 => INTERESTING[self.below(INTERESTING.len() as u64) as usize],
                _ => self.next() as u8,
            })
            .collect()
    }
    fn value(&mut self) -> Value {
        match self.below(8) {
            0 => Value::Null,
            1 => Value::Unchanged,
            2 => Value::Text(b"\\N".to_vec()),
            3 => Value::Text(Vec::new()),
            _ => Value::Text(self.bytes()),
        }
    }
    fn values(&mut self) -> Vec<Value> {
        let n = self.below(6) as usize;
        (0..n).map(|_| self.value()).collect()
    }
    fn kind(&mut self) -> OldKind {
        if self.below(2) == 0 {
            OldKind::Key
        } else {
            OldKind::Full
        }
    }
    fn record(&mut self) -> Record {
        match self.below(7) {
            0 => Record::Begin {
                commit_lsn: Lsn(self.next()),
                xid: self.next() as u32,
                commit_time: self.next() as i64,
            },
            1 => Record::Insert {
                relid: self.next() as u32,
                new: self.values(),
            },
            2 => Record::Update {
                relid: self.next() as u32,
                old: match self.below(2) {
                    0 => None,
                    _ => Some((self.kind(), self.values())),
                },
                new: self.values(),
            },
            3 => Record::Delete {
                relid: self.next() as u32,
                kind: self.kind(),
                old: self.values(),
            },
            4 => Record::Truncate {
                flags: self.next() as u8,
                relids: (0..self.below(4)).map(|_| self.next() as u32).collect(),
            },
            5 => Record::Message {
                prefix: String::from_utf8_lossy(&self.bytes()).into_owned(),
                content: self.bytes(),
            },
            _ => Record::Commit {
                commit_lsn: Lsn(self.next()),
                end_lsn: Lsn(self.next()),
            },
        }
    }
}

#[test]
fn random_records_round_trip() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let records: Vec<Record> = (0..5000).map(|_| rng.record()).collect();
    let data = payload(&records);
    assert_eq!(read_all(&data).unwrap(), records);
}

#[test]
fn random_garbage_never_panics() {
    let mut rng = Rng(42);
    let base = payload(&every_kind());
    for _ in 0..2000 {
        let mut data = base.clone();
        for _ in 0..=rng.below(4) {
            let i = rng.below(data.len() as u64) as usize;
            data[i] = match rng.below(4) {
                0 => b'\t',
                1 => b'\\',
                2 => b'\n',
                _ => rng.next() as u8,
            };
        }
        let _ = read_all(&data);
    }
}
