//! Key Vault answers to a secret read: two bytes of status, then the body. A value is taken only from a
//! 200 whose body is a secret with a `value`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use token_broker::fuzzing::key_vault_answer;

fuzz_target!(|data: &[u8]| {
    let [high, low, body @ ..] = data else {
        return;
    };
    let status = u16::from_be_bytes([*high, *low]) % 1000;
    if let Ok(secret) = key_vault_answer(status, body) {
        assert_eq!(status, 200, "secret value taken from a {status}");
        let document: serde_json::Value =
            serde_json::from_slice(body).expect("value taken from a body that is not JSON");
        assert_eq!(document["value"].as_str(), Some(secret.expose()));
    }
});
