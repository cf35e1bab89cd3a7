//! Test-only crates stay dev-dependencies: a program that depends on
//! keymgr-barbican does not build (or ship) them.

#[test]
fn test_only_crates_are_not_normal_dependencies() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .expect("the crate's manifest");
    let manifest: toml::Value = toml::from_str(&text).expect("a TOML manifest");
    let deps = manifest["dependencies"]
        .as_table()
        .expect("a [dependencies] table");
    for name in ["tempfile", "proptest", "criterion"] {
        assert!(
            !deps.contains_key(name),
            "{name} is a test-only crate: it belongs in [dev-dependencies]"
        );
    }
    assert!(
        deps.contains_key("reqwest"),
        "the check reads the right table"
    );
}
