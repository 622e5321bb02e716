//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// Where a test needs something the machine may lack: skip with a clear message, unless
/// `ALIGNSCOPE_REQUIRE_ALL=1` (set by `.ci/run`) turns the absence into a failure.
pub fn skip_or_fail(what: &str) {
    if std::env::var("ALIGNSCOPE_REQUIRE_ALL").is_ok_and(|v| v == "1") {
        panic!("required for this test but missing: {what}");
    }
    eprintln!("SKIPPED: {what} (install the test dependencies: see README)");
}

pub fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Is `program` on PATH?
pub fn has_program(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}
