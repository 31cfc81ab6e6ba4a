//! Access tokens the emulated tenant issues: v1-shaped RS256 JWTs signed by the current key, with the
//! claims every Entra v1 access token has. Callers add the identity claims.

use crate::keys::SigningKey;
use crate::state::State;
use crate::{clock, ids, jwt};
use serde_json::{Map, Value, json};

pub type Claims = Map<String, Value>;

/// The JOSE header Entra puts on access tokens.
pub fn header(key: &SigningKey) -> Claims {
    object(json!({"typ": "JWT", "alg": "RS256", "x5t": key.kid, "kid": key.kid}))
}

/// `aud`, `iss`, `iat`, `nbf`, `exp`, `aio`, `rh`, `tid`, `uti` and `ver` of a v1 access token.
pub fn v1_claims(tenant: &str, audience: &str, lifetime: i64) -> Claims {
    let now = clock::now();
    object(json!({
        "aud": audience,
        "iss": State::v1_issuer(tenant),
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "aio": ids::random_b64url(42),
        "rh": format!("0.A{}.", ids::random_b64url(48)),
        "tid": tenant,
        "uti": ids::random_b64url(16),
        "ver": "1.0",
    }))
}

/// Signs `claims` with the current key.
pub fn sign(state: &State, claims: &Claims) -> anyhow::Result<String> {
    let key = state.keys().current();
    jwt::encode(&header(&key), claims, &key)
}

/// The map inside a JSON object literal (empty for anything else).
pub fn object(value: Value) -> Claims {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
