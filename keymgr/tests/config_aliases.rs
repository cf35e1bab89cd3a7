//! Every name of a backend reads the same section: a secret stored through
//! one configuration is there for the next process.
#![cfg(feature = "mock")]

use keymgr::{Config, Context, KeySpec};

/// `backend = "embedded"` with a `[mock]` section must open the sealed
/// store, not a memory-only one (issue 11's bug).
#[tokio::test]
async fn embedded_alias_reads_the_mock_section() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.sealed");
    let text = format!(
        "backend = \"embedded\"\n[mock]\npath = {:?}\n",
        store.display().to_string()
    );
    let ctx = Context::new("p", "u");
    let id = {
        let km = keymgr::build(&Config::from_toml_str(&text).unwrap()).unwrap();
        km.create_key(&ctx, &KeySpec::aes(256)).await.unwrap()
    };
    assert!(store.exists(), "the sealed store was not written");
    let km = keymgr::build(&Config::from_toml_str(&text).unwrap()).unwrap();
    assert_eq!(km.get(&ctx, &id).await.unwrap().payload.len(), 32);
}
