//! Text through the delegation bearer parser (prefix, length, base64url, checksum). Seeds are genuine
//! bearers, so one-byte mutations start from accepted inputs and must almost always be refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use token_broker::delegation::bearer::{BEARER_LEN, BEARER_PREFIX};
use token_broker::delegation::{DelegationId, looks_like_delegation_bearer, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(bearer) = parse(text) {
        assert!(looks_like_delegation_bearer(text));
        assert!(text.starts_with(BEARER_PREFIX) && text.len() == BEARER_LEN);
        assert_eq!(bearer.expose(), text, "an accepted bearer is kept verbatim");
        let id = bearer.id().to_string();
        assert_eq!(id.parse::<DelegationId>().as_ref(), Ok(bearer.id()));
        assert!(bearer.hash().matches(&bearer));
    }
});
