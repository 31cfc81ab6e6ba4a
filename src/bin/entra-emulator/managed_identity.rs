//! The App Service managed-identity endpoint `GET /msi/token` (api-version 2019-08-01): checks
//! `X-IDENTITY-HEADER` (missing → 400, wrong → 401), the api-version, `resource` and any identity selector,
//! and answers with a v1 app token for the Function App's identity. Errors use App Service's
//! `{statusCode, message, correlationId}` shape.

use crate::http::{self, Request, Response};
use crate::identities::{
    FUNCTION_MI_CLIENT_ID, FUNCTION_MI_OID, FUNCTION_MI_RESOURCE_ID, TENANT_ID, TENANT_NAME,
};
use crate::ids;
use crate::issue;
use crate::state::State;
use serde_json::{Value, json};
use warp::http::{Method, StatusCode};

const API_VERSION: &str = "2019-08-01";

/// The parameters that select a user-assigned identity, and the value that would mean this one.
const SELECTORS: [(&str, &str); 4] = [
    ("client_id", FUNCTION_MI_CLIENT_ID),
    ("principal_id", FUNCTION_MI_OID),
    ("object_id", FUNCTION_MI_OID),
    ("mi_res_id", FUNCTION_MI_RESOURCE_ID),
];

/// An App Service identity-endpoint error answer.
pub fn failure(status: StatusCode, message: &str) -> Response {
    http::json(
        status,
        &json!({"statusCode": status.as_u16(), "message": message, "correlationId": ids::guid()}),
    )
}

pub fn handle(state: &State, request: &Request) -> Response {
    match validate(state, request) {
        Ok((resource, lifetime)) => token(state, &resource, lifetime),
        Err((status, message)) => failure(status, &message),
    }
}

/// The requested resource and the token lifetime, or the refusal's status and message.
fn validate(state: &State, request: &Request) -> Result<(String, i64), (StatusCode, String)> {
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
    if SELECTORS
        .iter()
        .any(|(name, ours)| param(name).is_some_and(|asked| !asked.eq_ignore_ascii_case(ours)))
    {
        return Err(bad("Unable to load the proper Managed Identity."));
    }
    let directory = state.directory();
    if !directory.knows_resource(resource) {
        // App Service passes Entra's refusal through.
        return Err(bad(&format!(
            "AADSTS500011: The resource principal named {resource} was not found in the tenant named {TENANT_NAME}."
        )));
    }
    Ok((resource.to_owned(), directory.token_lifetime))
}

/// The 200 answer: a v1 app token for the Function App's identity, `expires_on` as a string.
fn token(state: &State, resource: &str, lifetime: i64) -> Response {
    let mut claims = issue::v1_claims(TENANT_ID, resource, lifetime);
    claims.extend(issue::object(json!({
        "appid": FUNCTION_MI_CLIENT_ID,
        "appidacr": "2",
        "idp": State::v1_issuer(TENANT_ID),
        "idtyp": "app",
        "oid": FUNCTION_MI_OID,
        "sub": FUNCTION_MI_OID,
        "xms_mirid": FUNCTION_MI_RESOURCE_ID,
    })));
    let expires_on = claims
        .get("exp")
        .and_then(Value::as_i64)
        .unwrap_or_default();
    match issue::sign(state, &claims) {
        Ok(token) => http::json(
            StatusCode::OK,
            &json!({
                "access_token": token,
                "expires_on": expires_on.to_string(),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": FUNCTION_MI_CLIENT_ID,
            }),
        ),
        Err(_) => failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            "An unexpected error occured while fetching the AAD Token.",
        ),
    }
}
