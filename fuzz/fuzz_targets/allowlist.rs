//! The allowlist formats: the first byte picks the Key Vault secret, `BROKER_ALLOWED_MSI_OIDS` or
//! `BROKER_ALLOWED_USER_OIDS`; the rest is the value. Accepted ids are canonical lower-case GUIDs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use token_broker::fuzz_entry_points::{allowlist_secret, settings_with};

fn assert_canonical(id: &str) {
    assert_eq!(id.len(), 36, "accepted id {id:?}");
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || b == b'-'),
        "accepted id {id:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let [format, value @ ..] = data else {
        return;
    };
    let Ok(value) = std::str::from_utf8(value) else {
        return;
    };
    match format % 3 {
        0 => {
            if let Ok(ids) = allowlist_secret(value) {
                ids.iter().for_each(|id| assert_canonical(id.as_str()));
            }
        }
        1 => {
            if let Ok(settings) = settings_with("BROKER_ALLOWED_MSI_OIDS", value) {
                settings
                    .static_allowlist
                    .iter()
                    .for_each(|id| assert_canonical(id.as_str()));
            }
        }
        _ => {
            let _ = settings_with("BROKER_ALLOWED_USER_OIDS", value);
        }
    }
});
