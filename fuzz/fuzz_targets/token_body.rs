//! `POST /api/token` bodies: an accepted one has an alias audience and a printable, bounded label.
#![no_main]

use libfuzzer_sys::fuzz_target;
use token_broker::broker::scope::is_alias;
use token_broker::fuzz_entry_points::token_request;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = token_request(data) {
        assert!(
            is_alias(&request.audience),
            "accepted audience {:?}",
            request.audience
        );
        if let Some(label) = &request.label {
            assert!(label.len() <= 64 && label.bytes().all(|b| b.is_ascii_graphic()));
        }
    }
});
