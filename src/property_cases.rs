//! Property-based fuzzing (proptest) of everything that parses hostile input: caller tokens through the
//! full RS256 rule set, Authorization headers, request bodies, scopes, ids, the allowlist secret, the
//! policy document, and Entra's answers. Each property asserts "no panic" and that nothing malformed is ever accepted.
//! Case counts are fixed so a run is bounded; `PROPTEST_CASES` raises them for a longer campaign.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use reqwest::StatusCode;
use warp::http::{HeaderMap, HeaderValue, Method, header};

use crate::broker::allowlist;
use crate::broker::entra_error;
use crate::broker::exchange::parse_success;
use crate::broker::ids::Guid;
use crate::broker::policy::compile;
use crate::broker::scope::TargetScope;
use crate::broker::validation::key_id;
use crate::broker::validation::tests::{Signer, rules, user_claims};
use crate::http::request::RequestParts;
use crate::http::token::{TokenRequest, parse as parse_token_request};

fn cases(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// One signer for the whole run: RSA key generation is the slow part.
fn signer() -> &'static Signer {
    static SIGNER: std::sync::OnceLock<Signer> = std::sync::OnceLock::new();
    SIGNER.get_or_init(Signer::new)
}

proptest! {
    #![proptest_config(cases(4_000))]

    #[test]
    fn arbitrary_text_is_never_a_valid_token(text in any::<String>()) {
        if let Ok(kid) = key_id(&text) {
            prop_assert!(rules().verify(&text, &kid, &signer().keys).is_err());
        }
    }

    #[test]
    fn mutated_valid_tokens_are_rejected(position in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let token = signer().sign(&serde_json::json!({"alg": "RS256", "kid": "k1"}), &user_claims());
        let mut bytes = token.clone().into_bytes();
        let at = position.index(bytes.len());
        prop_assume!(bytes[at] != byte);
        bytes[at] = byte;
        let mutated = String::from_utf8_lossy(&bytes).into_owned();
        prop_assume!(mutated != token);
        let outcome = key_id(&mutated).and_then(|kid| rules().verify(&mutated, &kid, &signer().keys));
        // A flip inside base64 padding bits can decode to the same bytes; anything else must fail.
        if let Ok(caller) = outcome {
            let same = |t: &str| t.split('.').map(|s| URL_SAFE_NO_PAD.decode(s).ok()).collect::<Vec<_>>();
            prop_assert_eq!(same(&mutated), same(&token));
            prop_assert_eq!(caller.display.as_str(), "ana@contoso.com");
        }
    }

    #[test]
    fn arbitrary_claims_signed_by_a_trusted_key_never_panic(claims in prop::collection::btree_map("[a-z_]{1,8}", any::<i64>(), 0..12)) {
        let token = signer().sign(&serde_json::json!({"alg": "RS256", "kid": "k1"}), &serde_json::json!(claims));
        prop_assert!(rules().verify(&token, "k1", &signer().keys).is_err());
    }

    #[test]
    fn authorization_headers_never_panic(value in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_bytes(&value) {
            headers.insert(header::AUTHORIZATION, value);
        }
        let parts = RequestParts { method: Method::POST, headers, body: Ok(Default::default()) };
        if let Ok(token) = parts.bearer() {
            prop_assert_eq!(token.expose().split('.').count(), 3);
        }
    }

    #[test]
    fn request_bodies_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(request) = serde_json::from_slice::<TokenRequest>(&body) {
            let _ = parse_token_request(request);
        }
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let parts = RequestParts { method: Method::POST, headers, body: Ok(body.into()) };
        let _ = parts.json_body::<serde_json::Value>();
    }

    #[test]
    fn scopes_that_parse_are_single_default_scopes(text in any::<String>()) {
        if let Ok(scope) = TargetScope::parse(&text) {
            prop_assert!(scope.as_str().ends_with("/.default"));
            prop_assert!(!scope.as_str().chars().any(|c| c.is_whitespace() || c.is_control()));
            prop_assert!(scope.resource().starts_with("https://") || scope.resource().starts_with("api://"));
        }
    }

    #[test]
    fn ids_that_parse_are_canonical(text in any::<String>()) {
        if let Ok(guid) = text.parse::<Guid>() {
            prop_assert_eq!(guid.as_str(), text.to_ascii_lowercase());
            prop_assert!(guid.as_str().bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'));
        }
    }

    #[test]
    fn allowlist_secrets_never_panic(text in any::<String>()) {
        let _ = allowlist::parse(&text);
    }

    #[test]
    fn policy_documents_never_panic_and_accepted_ones_are_well_formed(
        bytes in prop::collection::vec(any::<u8>(), 0..1024),
        grant in r#"\{"name":"[a-z-]{0,8}","(apps|users)":(\["[0-9a-f-]{0,40}"\]|"tenant"|\{"(oids|groups|app_role)":[\["a-z0-9-]{0,40}\]?\}),"lane":"(user|service|x)","(scopes|audiences)":\["[a-z:/.]{0,40}"\]\}"#,
    ) {
        let _ = compile::from_bytes(&bytes);
        let document = format!(r#"{{"revision":1,"grants":[{grant}]}}"#);
        if let Ok((_, policy)) = compile::from_bytes(document.as_bytes()) {
            for grant in &policy.grants {
                prop_assert!(!grant.allowed.is_empty());
                prop_assert!(grant.allowed.iter().all(|s| TargetScope::parse(s.as_str()).is_ok()));
            }
        }
    }

    #[test]
    fn entra_answers_never_panic(status in 100u16..600, body in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(status) = StatusCode::from_u16(status) {
            let _ = entra_error::classify(status, None, &body);
        }
        if let Ok((token, expires_in)) = parse_success(&body) {
            prop_assert!(token.expose_json().get().len() > 2 && expires_in > 0);
        }
    }
}
