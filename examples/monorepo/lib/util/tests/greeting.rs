#[test]
fn greets() {
    assert_eq!(util::greeting("x"), "hello, x");
}
