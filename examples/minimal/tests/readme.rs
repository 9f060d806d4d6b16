//! The README's "Use lookout in your Worker" shows this crate's code, all of it, as it is.

#[test]
fn the_readme_shows_the_minimal_adopters_code() {
    let readme = include_str!("../../../README.md");
    let code = include_str!("../src/lib.rs").trim_end();
    assert!(readme.contains(&format!("```rust\n{code}\n```")), "README.md does not show examples/minimal/src/lib.rs");
}
