//! Table-driven tests: a runner that checks every named case of a table and
//! names each one that fails, and the small cryptsetup helpers the LUKS test
//! tables share. A test file declares it next to `mod common;` with
//! `#[path = "common/cases.rs"] mod cases;`.
#![allow(dead_code)]

use crate::common::run_ok;
use std::fmt::Display;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// A case of a table: a tuple whose first element is the case's name.
pub(crate) trait Named {
    /// The name a failure report gives.
    fn name(&self) -> String;
}

macro_rules! named_tuples {
    ($(($($t:ident),*)),*) => {$(
        impl<N: Display, $($t),*> Named for (N, $($t),*) {
            fn name(&self) -> String {
                self.0.to_string()
            }
        }
    )*};
}
named_tuples!((B), (B, C), (B, C, D), (B, C, D, E), (B, C, D, E, F));

/// Runs `check` on every case of `table`. A case that panics is reported with
/// its name and the others still run; the test then fails with the names of
/// all the failed cases. Returns how many cases ran.
pub(crate) fn check_named<T: Named>(
    table: &str,
    cases: impl IntoIterator<Item = T>,
    mut check: impl FnMut(T),
) -> usize {
    let mut failed = Vec::new();
    let mut n = 0;
    for case in cases {
        n += 1;
        let case_name = case.name();
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| check(case))) {
            let why = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            eprintln!("FAILED {table}: case `{case_name}`: {why}");
            failed.push(case_name);
        }
    }
    assert!(
        failed.is_empty(),
        "{table}: {} of {n} cases failed: {}",
        failed.len(),
        failed.join(", ")
    );
    eprintln!("{table}: {n} cases passed");
    n
}

/// `cryptsetup luksDump IMG` as text.
pub(crate) fn cs_dump(cs: &Path, img: &Path) -> String {
    let o = run_ok(cs, &["luksDump", &img.display().to_string()]);
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `cryptsetup luksDump --dump-json-metadata IMG`, parsed.
pub(crate) fn cs_json(cs: &Path, img: &Path) -> serde_json::Value {
    let img = img.display().to_string();
    let o = run_ok(cs, &["luksDump", "--dump-json-metadata", &img]);
    serde_json::from_slice(&o.stdout).expect("luksDump JSON")
}

/// `cryptsetup token import`: `token` (JSON text, through a file in `dir`) as token `id`.
pub(crate) fn cs_token_import(cs: &Path, dir: &Path, img: &Path, token: &[u8], id: u32) {
    let file = dir.join(format!("token-{id}.json"));
    std::fs::write(&file, token).unwrap();
    let (file, img) = (file.display().to_string(), img.display().to_string());
    let id = id.to_string();
    let args = ["token", "import", "--json-file", &file, "--token-id", &id];
    run_ok(cs, &[&args[..], &[img.as_str()]].concat());
}
