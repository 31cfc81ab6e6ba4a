//! Key Vault answers to a secret read: two bytes of status, then the body. A value is taken only from a
//! 200 whose body is a secret with a `value`; only a 401 or 403 is taken as a refusal of the token.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;
use token_broker::fuzz_entry_points::key_vault_answer;

fuzz_target!(|data: &[u8]| {
    let [high, low, body @ ..] = data else {
        return;
    };
    let status = u16::from_be_bytes([*high, *low]) % 1000;
    let (value, token_refused) = key_vault_answer(status, body);
    assert!(
        !token_refused || status == 401 || status == 403,
        "{status} taken as a token refusal"
    );
    if let Ok(secret) = value {
        assert_eq!(status, 200, "secret value taken from a {status}");
        // The SDK's model skips unknown members without checking their UTF-8 or the range of their
        // numbers (both seen in the campaign), so the oracle reads the body as loosely: lossy UTF-8, and
        // every member but `value` kept raw, unparsed. The value itself is always valid UTF-8.
        let document: HashMap<String, Box<RawValue>> =
            serde_json::from_str(&String::from_utf8_lossy(body))
                .expect("value taken from a body that is not a JSON object");
        let value: String = serde_json::from_str(document["value"].get())
            .expect("value taken from a body whose value is not a string");
        assert_eq!(value, secret.expose());
    }
});
