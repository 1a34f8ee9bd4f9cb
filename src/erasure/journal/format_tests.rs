use super::*;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// A journal object exactly as lethe before removals wrote it.
const OLD: &[u8] = br#"{"format":1,"subject_type":"bigint","groups":[{"added_at":"2026-01-02T03:04:05Z","reference":"GDPR-17","origin":"db1","subjects":["42","43"]},{"added_at":"2026-01-02T03:04:06Z","origin":"db2","subjects":["7"]}]}"#;

#[test]
fn format_1_objects_still_parse_unchanged() {
    let d = decode("erasures/x.json", SubjectType::Bigint, OLD).unwrap();
    assert!(d.removals.is_empty());
    assert_eq!(d.groups.len(), 2);
    assert_eq!(d.groups[0].0.reference.as_deref(), Some("GDPR-17"));
    assert_eq!(d.groups[0].1, ["42", "43"]);
    assert_eq!(d.groups[1].0.origin, "db2");
}

#[test]
fn objects_without_removals_are_still_written_as_format_1() {
    let groups = vec![(
        BatchRecord {
            added_at: t("2026-01-02T03:04:05Z"),
            reference: Some("GDPR-17".into()),
            origin: "db1".into(),
        },
        vec!["42".to_string(), "43".to_string()],
    )];
    let body = encode(SubjectType::Bigint, &groups, &[]).unwrap();
    let text = String::from_utf8(body.clone()).unwrap();
    assert!(text.starts_with(r#"{"format":1,"subject_type""#), "{text}");
    assert!(!text.contains("removals") && !text.contains("newer_lethe"));
    // Byte for byte what the old writer produced for the same group.
    assert_eq!(
        text,
        r#"{"format":1,"subject_type":"bigint","groups":[{"added_at":"2026-01-02T03:04:05Z","reference":"GDPR-17","origin":"db1","subjects":["42","43"]}]}"#
    );
}

fn removal() -> Vec<(RemovalRecord, Vec<String>)> {
    vec![(
        RemovalRecord {
            removed_at: t("2026-01-02T04:00:00Z"),
            reason: "typo for 43".into(),
            origin: "db1".into(),
        },
        vec!["42".to_string()],
    )]
}

#[test]
fn removal_records_round_trip_as_format_2() {
    let body = encode(SubjectType::Bigint, &[], &removal()).unwrap();
    let text = String::from_utf8(body.clone()).unwrap();
    assert!(
        text.starts_with(r#"{"format":2,"newer_lethe_required":""#),
        "{text}"
    );
    let d = decode("erasures/x.json", SubjectType::Bigint, &body).unwrap();
    assert!(d.groups.is_empty());
    assert_eq!(d.removals, removal());
}

/// The decoder of lethe before removals, verbatim in its checks: strict
/// parse first, then the format.
mod old_reader {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // fields parsed only to be refused or accepted
    pub struct JournalObject {
        format: u32,
        subject_type: SubjectType,
        groups: Vec<JournalGroup>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct JournalGroup {
        added_at: DateTime<Utc>,
        #[serde(default)]
        reference: Option<String>,
        origin: String,
        subjects: Vec<String>,
    }

    pub fn decode(data: &[u8]) -> Result<(), String> {
        let obj: JournalObject = serde_json::from_slice(data).map_err(|e| e.to_string())?;
        if obj.format > 1 {
            return Err(format!("format {} is newer", obj.format));
        }
        Ok(())
    }
}

#[test]
fn an_old_reader_refuses_a_removal_object_naming_the_newer_lethe_canary() {
    assert!(old_reader::decode(OLD).is_ok());
    let body = encode(SubjectType::Bigint, &[], &removal()).unwrap();
    let err = old_reader::decode(&body).unwrap_err();
    assert!(
        err.contains("unknown field `newer_lethe_required`"),
        "{err}"
    );
}

#[test]
fn a_newer_format_is_refused_before_anything_else_is_parsed() {
    let body = br#"{"format":3,"subject_type":"bigint","groups":[],"something_new":[1]}"#;
    let err = decode("erasures/x.json", SubjectType::Bigint, body).unwrap_err();
    assert!(
        matches!(err, JournalError::NewerFormat { found: 3, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("newer lethe"), "{err}");
}

#[test]
fn a_format_1_object_with_removals_is_refused() {
    let body = br#"{"format":1,"subject_type":"bigint","groups":[],"removals":[{"removed_at":"2026-01-02T04:00:00Z","reason":"x","origin":"h","subjects":["1"]}]}"#;
    let err = decode("erasures/x.json", SubjectType::Bigint, body).unwrap_err();
    assert!(err.to_string().contains("cannot hold removals"), "{err}");
}
