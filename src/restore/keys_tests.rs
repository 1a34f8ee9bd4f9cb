use super::*;

fn col(t: &str) -> Column {
    Column {
        name: "c".into(),
        type_name: t.into(),
        default: None,
        base_type: None,
        nondeterministic: false,
        generated: false,
    }
}

fn canon(form: KeyForm, v: &str) -> String {
    let mut out = Vec::new();
    String::from_utf8(canonical(form, v.as_bytes(), &mut out).to_vec()).unwrap()
}

#[test]
fn numeric_values_take_one_spelling_whatever_their_scale() {
    for (v, want) in [
        ("3.00", "3"),
        ("3", "3"),
        ("003.500", "3.5"),
        ("-0.0", "0"),
        ("-0", "0"),
        ("0.10", "0.1"),
        ("-12.340", "-12.34"),
        ("+7", "7"),
        ("990001.00", "990001"),
        ("NaN", "NaN"),
        ("Infinity", "Infinity"),
    ] {
        assert_eq!(canon(KeyForm::Numeric, v), want, "{v}");
    }
}

#[test]
fn padding_and_case_fold_as_postgresql_compares() {
    assert_eq!(canon(KeyForm::Trim, "C3      "), "C3");
    assert_eq!(canon(KeyForm::Trim, "  C3"), "  C3", "leading spaces count");
    assert_eq!(canon(KeyForm::Trim, "   "), "");
    assert_eq!(
        canon(KeyForm::LowerAscii, "Ann@EXAMPLE.com"),
        "ann@example.com"
    );
    assert_eq!(
        canon(KeyForm::LowerAscii, "ÉLAN"),
        "Élan",
        "C locale folds ASCII only"
    );
    assert_eq!(canon(KeyForm::Lower, "ÉLAN@Æble.DK"), "élan@æble.dk");
}

#[test]
fn types_are_classified_under_their_domains_and_modifiers() {
    let mut d = col("user_id");
    d.base_type = Some("bigint".into());
    assert_eq!(classify(&d), KeyClass::Int);
    assert_eq!(
        classify(&col("numeric(12,2)")),
        KeyClass::Numeric { scale: Some(2) }
    );
    assert_eq!(
        classify(&col("numeric(12)")),
        KeyClass::Numeric { scale: Some(0) }
    );
    assert_eq!(classify(&col("numeric")), KeyClass::Numeric { scale: None });
    assert_eq!(classify(&col("character(8)")), KeyClass::BpChar);
    assert_eq!(classify(&col("character varying(20)")), KeyClass::Text);
    assert_eq!(classify(&col("public.citext")), KeyClass::CiText);
    assert_eq!(
        classify(&col("timestamp(3) without time zone")),
        KeyClass::Exact("timestamp without time zone".into())
    );
    for t in [
        "double precision",
        "real",
        "jsonb",
        "integer[]",
        "interval",
        "int4range",
    ] {
        assert!(matches!(classify(&col(t)), KeyClass::Unsupported(_)), "{t}");
    }
    let mut nd = col("text");
    nd.nondeterministic = true;
    assert!(matches!(classify(&nd), KeyClass::Unsupported(_)));
}

#[test]
fn a_bigint_subject_matches_only_integer_roots_and_numeric_without_scale() {
    let f = |t: &str| root_form(&classify(&col(t)), SubjectType::Bigint, None);
    assert_eq!(f("bigint"), Some(KeyForm::Plain));
    assert_eq!(f("numeric"), Some(KeyForm::Numeric));
    assert_eq!(f("numeric(10,0)"), Some(KeyForm::Numeric));
    for t in [
        "numeric(12,2)",
        "text",
        "integer[]",
        "jsonb",
        "uuid",
        "character varying",
    ] {
        assert_eq!(f(t), None, "{t}");
    }
    let mut st = Vec::new();
    assert_eq!(
        root_key(SubjectType::Bigint, KeyForm::Numeric, b"990001.00", &mut st),
        crate::erasure::key_of(SubjectType::Bigint, b"990001")
    );
    assert_eq!(
        root_key(SubjectType::Bigint, KeyForm::Numeric, b"3.5", &mut st),
        None
    );
}

#[test]
fn keys_of_different_families_are_refused() {
    let c = |t: &str| classify(&col(t));
    assert_eq!(
        child_form(&c("integer"), &c("bigint"), None),
        Some(KeyForm::Plain)
    );
    assert_eq!(
        child_form(&c("bigint"), &c("numeric"), None),
        Some(KeyForm::Numeric)
    );
    assert_eq!(
        child_form(&c("character varying(8)"), &c("character(8)"), None),
        Some(KeyForm::Trim)
    );
    assert_eq!(
        child_form(&c("character(8)"), &c("text"), None),
        Some(KeyForm::Trim)
    );
    assert_eq!(
        child_form(&c("text"), &c("citext"), Some("C")),
        Some(KeyForm::LowerAscii)
    );
    assert_eq!(
        child_form(&c("double precision"), &c("double precision"), None),
        None
    );
    assert_eq!(
        child_form(&c("date"), &c("timestamp without time zone"), None),
        None
    );
    assert_eq!(child_form(&c("uuid"), &c("text"), None), None);
}
