//! A JOSE header and a claims payload (split at the first newline), genuinely signed by the trusted key,
//! through the whole rule set: the fuzzer's bytes reach the claim rules, not just the signature check.
#![no_main]

use libfuzzer_sys::fuzz_target;
use token_broker_fuzz::{assert_sound, signing_key, tenant};

fuzz_target!(|data: &[u8]| {
    let (header, payload) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let token = signing_key().sign_token(header, payload);
    let authorization = format!("Bearer {token}");
    if let Ok(caller) = tenant().authenticate(&[authorization.as_bytes()]) {
        assert_sound(&token, &caller);
    }
});
