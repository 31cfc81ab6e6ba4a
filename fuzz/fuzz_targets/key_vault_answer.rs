//! Key Vault answers to a secret read: two bytes of status, then the body. A value is taken only from a
//! 200 whose body is a secret with a `value`; only a 401 or 403 is taken as a refusal of the token.
#![no_main]

use libfuzzer_sys::fuzz_target;
use token_broker::fuzzing::key_vault_answer;

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
        // The SDK's model skips unknown members without checking their UTF-8 (seen in the campaign); the
        // value itself is always valid UTF-8, so a lossy reading must still hold it.
        let document: serde_json::Value = serde_json::from_str(&String::from_utf8_lossy(body))
            .expect("value taken from a body that is not JSON");
        assert_eq!(document["value"].as_str(), Some(secret.expose()));
    }
});
