use super::*;

#[test]
fn a_table_is_listed_as_read_while_its_guard_lives() {
    let p = Progress::default();
    let a = p.reading(3);
    {
        let _b = p.reading(5);
        assert_eq!(p.now_reading(), vec![3, 5]);
    }
    assert_eq!(p.now_reading(), vec![3]);
    drop(a);
    assert!(p.now_reading().is_empty());
}

#[test]
fn the_message_names_tables_done_and_those_being_read() {
    assert_eq!(message(2, 7, &[]), "2/7 tables done");
    let names = ["public.orders".to_string(), "public.notes".to_string()];
    assert_eq!(
        message(2, 7, &names),
        "2/7 tables done · reading public.orders, public.notes"
    );
}
