//! Entra token-endpoint answers: two bytes of status, one of `Retry-After` seconds (0: none), then the
//! body. A token is taken only from a 2xx with a bearer token of believable lifetime.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use token_broker::fuzz_entry_points::token_endpoint_answer;

fuzz_target!(|data: &[u8]| {
    let [high, low, retry, body @ ..] = data else {
        return;
    };
    let status = u16::from_be_bytes([*high, *low]) % 1000;
    let retry_after = (*retry > 0).then(|| Duration::from_secs(u64::from(*retry)));
    if let Ok((token, expires_in)) = token_endpoint_answer(status, retry_after, body) {
        assert!((200..300).contains(&status), "token taken from a {status}");
        assert!((1..=86_400).contains(&expires_in));
        assert!(token.expose_json().get().len() > 2, "empty token taken");
    }
});
