//! `POST /api/GetSPToken` bodies: an accepted one names exactly one clean `.default` scope.
#![no_main]

use libfuzzer_sys::fuzz_target;
use token_broker::fuzz_entry_points::get_sp_token_request;

fuzz_target!(|data: &[u8]| {
    if let Ok(scope) = get_sp_token_request(data) {
        let scope = scope.as_str();
        assert!(scope.ends_with("/.default"), "accepted scope {scope:?}");
        assert!(
            !scope.chars().any(|c| c.is_whitespace() || c.is_control()),
            "accepted scope {scope:?}"
        );
    }
});
