//! The refusals `#[derive(Encrypted)]` makes at compile time, each with its
//! message on the offending field (`tests/compile_fail/*.stderr`). Built
//! against `csfle` without default features, so the cases compile fast.

#[test]
fn refusals() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/compile_fail/*.rs");
}
