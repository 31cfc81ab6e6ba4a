//! Authorization header values (one per line) through the bearer rules, the key id and every signature
//! and claim rule. Seeds include genuinely signed tokens, so mutations start from accepted inputs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use token_broker_fuzz::{assert_sound, tenant};

fuzz_target!(|data: &[u8]| {
    let values: Vec<&[u8]> = data.split(|&b| b == b'\n').take(4).collect();
    if let Ok(caller) = tenant().authenticate(&values) {
        // The HTTP layer never delivers a value with a control byte other than tab, so the broker saw
        // only the others (found by the campaign: a NUL line before a good bearer); exactly one of
        // them must be there.
        let delivered: Vec<&[u8]> = values
            .iter()
            .copied()
            .filter(|value| {
                value
                    .iter()
                    .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
            })
            .collect();
        assert_eq!(
            delivered.len(),
            1,
            "accepted with {} values",
            delivered.len()
        );
        let value = std::str::from_utf8(delivered[0]).expect("accepted a non-UTF-8 header");
        let token = value.split_once(' ').expect("accepted without a scheme").1;
        assert_sound(token, &caller);
    }
});
