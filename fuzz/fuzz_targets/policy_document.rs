//! Grants policy documents: an accepted one is a JSON object with a revision and a list of grants, and
//! every alias it maps resolves to a `.default` scope.
#![no_main]

use libfuzzer_sys::fuzz_target;
use token_broker::fuzz_entry_points::policy_document;

fuzz_target!(|data: &[u8]| {
    if let Ok(policy) = policy_document(data) {
        let document: serde_json::Value =
            serde_json::from_slice(data).expect("accepted a document that is not JSON");
        assert!(
            document["revision"].is_u64(),
            "accepted revision {}",
            document["revision"]
        );
        assert!(document["grants"].is_array(), "accepted without grants");
        let aliases = document["audiences"].as_object().into_iter().flatten();
        for (alias, _) in aliases {
            let scope = policy
                .resolve_audience(alias)
                .expect("a mapped alias resolves");
            assert!(
                scope.as_str().ends_with("/.default"),
                "{alias} resolves to {}",
                scope.as_str()
            );
        }
    }
});
