//! Tools some tests need beyond the Rust toolchain (Azurite from npm, the published Python client from
//! PyPI), installed on first need by the same `.ci/` script that `.ci/run` calls beforehand, so
//! `cargo test --locked` in a fresh clone installs them itself where the registries can be reached.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Mutex;

/// Scripts already run by this test process, so a failed install is not retried by every test.
static RAN: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);

/// True once `installed()` holds, running `.ci/<script>` (at most once per process) if it does not yet.
pub fn ensure(script: &'static str, installed: impl Fn() -> bool) -> bool {
    if installed() {
        return true;
    }
    let mut ran = RAN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if installed() {
        return true;
    }
    if ran.get_or_insert_with(HashSet::new).insert(script) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(".ci")
            .join(script);
        eprintln!("installing a test tool: bash {}", path.display());
        let status = std::process::Command::new("bash").arg(&path).status();
        if !status.is_ok_and(|status| status.success()) {
            eprintln!("bash {} failed", path.display());
        }
    }
    installed()
}
