//! The App Service managed-identity endpoint `GET /msi/token` (api-version 2019-08-01): checks
//! `X-IDENTITY-HEADER` (missing → 400, wrong → 401), the api-version, `resource` and any identity selector
//! (`client_id`, `principal_id`/`object_id`, `mi_res_id`), and answers with an app token for the Function
//! App's system-assigned identity or, selected, one of its user-assigned ones (the broker's federated
//! identity, the resource identity): v1 for resources, v2 (the
//! tenant's v2 issuer, `sub` = the identity's object id) for `api://AzureADTokenExchange`, as federated
//! credentials expect. Errors use App Service's `{statusCode, message, correlationId}` shape.

use crate::http::{self, Request, Response};
use crate::identities::{
    BROKER_IDENTITY_CLIENT_ID, BROKER_IDENTITY_OID, BROKER_IDENTITY_RESOURCE_ID,
    FUNCTION_MI_CLIENT_ID, FUNCTION_MI_OID, FUNCTION_MI_RESOURCE_ID, RESOURCE_IDENTITY_CLIENT_ID,
    RESOURCE_IDENTITY_OID, RESOURCE_IDENTITY_RESOURCE_ID, TENANT_ID, TENANT_NAME,
    TOKEN_EXCHANGE_AUDIENCE,
};
use crate::ids;
use crate::issue;
use crate::state::State;
use serde_json::{Value, json};
use warp::http::{Method, StatusCode};

const API_VERSION: &str = "2019-08-01";

/// An identity attached to the Function App.
struct Identity {
    oid: &'static str,
    client_id: &'static str,
    resource_id: &'static str,
}

/// The system-assigned identity first (chosen when no selector is given), then the user-assigned ones.
const IDENTITIES: [Identity; 3] = [
    Identity {
        oid: FUNCTION_MI_OID,
        client_id: FUNCTION_MI_CLIENT_ID,
        resource_id: FUNCTION_MI_RESOURCE_ID,
    },
    Identity {
        oid: BROKER_IDENTITY_OID,
        client_id: BROKER_IDENTITY_CLIENT_ID,
        resource_id: BROKER_IDENTITY_RESOURCE_ID,
    },
    Identity {
        oid: RESOURCE_IDENTITY_OID,
        client_id: RESOURCE_IDENTITY_CLIENT_ID,
        resource_id: RESOURCE_IDENTITY_RESOURCE_ID,
    },
];

impl Identity {
    /// The value of each selector parameter that would mean this identity.
    fn selectors(&self) -> [(&'static str, &'static str); 4] {
        [
            ("client_id", self.client_id),
            ("principal_id", self.oid),
            ("object_id", self.oid),
            ("mi_res_id", self.resource_id),
        ]
    }
}

/// An App Service identity-endpoint error answer.
pub fn failure(status: StatusCode, message: &str) -> Response {
    http::json(
        status,
        &json!({"statusCode": status.as_u16(), "message": message, "correlationId": ids::guid()}),
    )
}

pub fn handle(state: &State, request: &Request) -> Response {
    answer(state, request, Honesty::Honest)
}

/// The `stale_token` fault: a token that expired `STALE_BY` seconds ago, answered with the
/// `expires_on` a fresh one would have.
pub fn handle_stale(state: &State, request: &Request) -> Response {
    answer(state, request, Honesty::Stale)
}

/// How long before the answer a stale token expired: beyond Entra's 5 minutes of clock skew.
const STALE_BY: i64 = 600;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Honesty {
    Honest,
    Stale,
}

fn answer(state: &State, request: &Request, honesty: Honesty) -> Response {
    match validate(state, request) {
        Ok((identity, resource, lifetime)) => token(state, identity, &resource, lifetime, honesty),
        Err((status, message)) => failure(status, &message),
    }
}

/// The selected identity, the requested resource and the token lifetime, or the refusal's status and
/// message.
fn validate(
    state: &State,
    request: &Request,
) -> Result<(&'static Identity, String, i64), (StatusCode, String)> {
    let bad = |message: &str| (StatusCode::BAD_REQUEST, message.to_owned());
    if request.method != Method::GET {
        return Err((
            StatusCode::METHOD_NOT_ALLOWED,
            "The requested resource does not support this method.".into(),
        ));
    }
    let presented = request
        .header("x-identity-header")
        .ok_or_else(|| bad("The X-IDENTITY-HEADER header is required."))?;
    if request.header_count("x-identity-header") != 1
        || !ids::secrets_equal(presented, &state.config.identity_header)
    {
        return Err((
            StatusCode::UNAUTHORIZED,
            "Unauthorized. The X-IDENTITY-HEADER value is not valid.".into(),
        ));
    }
    let pairs = request.query_pairs();
    if let Some(name) = http::first_duplicate(&pairs) {
        return Err(bad(&format!("The query parameter '{name}' is duplicated.")));
    }
    let param = |name: &str| http::first_value(&pairs, name);
    match param("api-version") {
        Some(API_VERSION) => {}
        Some(other) => {
            return Err(bad(&format!(
                "The api-version '{other}' is not supported. Use {API_VERSION}."
            )));
        }
        None => return Err(bad("The api-version query parameter is required.")),
    }
    let resource =
        param("resource").ok_or_else(|| bad("The resource query parameter is required."))?;
    let selected = IDENTITIES.iter().find(|identity| {
        identity
            .selectors()
            .iter()
            .all(|(name, ours)| param(name).is_none_or(|asked| asked.eq_ignore_ascii_case(ours)))
    });
    let identity = selected.ok_or_else(|| bad("Unable to load the proper Managed Identity."))?;
    let directory = state.directory();
    if !directory.knows_resource(resource) {
        // App Service passes Entra's refusal through.
        return Err(bad(&format!(
            "AADSTS500011: The resource principal named {resource} was not found in the tenant named {TENANT_NAME}."
        )));
    }
    Ok((identity, resource.to_owned(), directory.token_lifetime))
}

/// The 200 answer: an app token for `identity`, `expires_on` as a string (for a stale token, the
/// `expires_on` of a fresh one).
fn token(
    state: &State,
    identity: &Identity,
    resource: &str,
    lifetime: i64,
    honesty: Honesty,
) -> Response {
    let mut claims = issue::v1_claims(TENANT_ID, resource, lifetime);
    let claimed_expiry = claims
        .get("exp")
        .and_then(Value::as_i64)
        .unwrap_or_default();
    if honesty == Honesty::Stale {
        let expired = claimed_expiry - lifetime - STALE_BY;
        claims.extend(issue::object(json!({
            "iat": expired - lifetime,
            "nbf": expired - lifetime,
            "exp": expired,
        })));
    }
    if resource == TOKEN_EXCHANGE_AUDIENCE {
        claims.extend(issue::object(json!({
            "iss": state.v2_issuer(TENANT_ID),
            "azp": identity.client_id,
            "azpacr": "2",
            "ver": "2.0",
        })));
    } else {
        claims.extend(issue::object(json!({
            "appid": identity.client_id,
            "appidacr": "2",
            "idp": State::v1_issuer(TENANT_ID),
        })));
    }
    claims.extend(issue::object(json!({
        "idtyp": "app",
        "oid": identity.oid,
        "sub": identity.oid,
        "xms_mirid": identity.resource_id,
    })));
    match issue::sign(state, &claims) {
        Ok(token) => http::json(
            StatusCode::OK,
            &json!({
                "access_token": token,
                "expires_on": claimed_expiry.to_string(),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": identity.client_id,
            }),
        ),
        Err(_) => failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            "An unexpected error occured while fetching the AAD Token.",
        ),
    }
}
