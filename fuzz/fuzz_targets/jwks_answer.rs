//! JWKS documents from the authority: never a panic, and never more usable keys than entries.
#![no_main]

use libfuzzer_sys::fuzz_target;
use token_broker::fuzz_entry_points::jwks_answer;

fuzz_target!(|data: &[u8]| {
    if let Some(usable) = jwks_answer(data) {
        let entries = serde_json::from_slice::<serde_json::Value>(data)
            .ok()
            .and_then(|doc| doc["keys"].as_array().map(Vec::len));
        if let Some(entries) = entries {
            assert!(usable <= entries);
        }
    }
});
