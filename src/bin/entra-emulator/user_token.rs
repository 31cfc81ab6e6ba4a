//! The access token the tenant issues to a user through the broker (On-Behalf-Of or a refresh): v1, for one
//! resource, naming the user of the original sign-in and the broker as the client.

use crate::identities::{BROKER_CLIENT_ID, TENANT_ID};
use crate::issue::{self, Claims};
use serde_json::{Value, json};

/// The claims of a user's sign-in that the tenant carries into the tokens issued from it.
const SIGN_IN_CLAIMS: &[&str] = &[
    "oid",
    "sub",
    "name",
    "upn",
    "preferred_username",
    "amr",
    "family_name",
    "given_name",
];

/// The sign-in claims of a user's token, kept with a refresh token.
pub fn sign_in(user: &Claims) -> Claims {
    SIGN_IN_CLAIMS
        .iter()
        .filter_map(|name| Some(((*name).to_owned(), user.get(*name)?.clone())))
        .collect()
}

/// A Conditional Access MFA demand is met by a sign-in whose `amr` says MFA was performed.
pub fn performed_mfa(user: &Claims) -> bool {
    user.get("amr")
        .and_then(Value::as_array)
        .is_some_and(|methods| methods.iter().any(|method| method.as_str() == Some("mfa")))
}

/// The issued token's claims.
pub fn claims(user: &Claims, oid: &str, resource: &str, lifetime: i64) -> Claims {
    let text = |name: &str| user.get(name).and_then(Value::as_str);
    let upn = text("upn")
        .or_else(|| text("preferred_username"))
        .unwrap_or_default();
    let mut claims = issue::v1_claims(TENANT_ID, resource, lifetime);
    claims.extend(issue::object(json!({
        "acr": "1",
        "amr": user.get("amr").cloned().unwrap_or_else(|| json!(["pwd"])),
        "appid": BROKER_CLIENT_ID,
        "appidacr": "1",
        "idtyp": "user",
        "name": text("name").unwrap_or_default(),
        "oid": oid,
        "scp": "user_impersonation",
        "sub": text("sub").unwrap_or(oid),
        "unique_name": upn,
        "upn": upn,
    })));
    for optional in ["family_name", "given_name"] {
        if let Some(value) = user.get(optional) {
            claims.insert(optional.to_owned(), value.clone());
        }
    }
    claims
}
