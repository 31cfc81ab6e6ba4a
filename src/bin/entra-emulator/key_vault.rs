//! Key Vault secrets `GET /secrets/{name}[/{version}]?api-version=..` (the version list is in
//! `key_vault_list`): the bearer challenge (401 with
//! `WWW-Authenticate`), token validation (signature by a published key, lifetime with 5 minutes of skew,
//! issuer/tenant, `aud` https://vault.azure.net), RBAC (only the Function App's identities may read), then the
//! secret, counted per reading identity. Error bodies are Key Vault's `{"error":{"code","message"}}` with
//! its AKV/IDX message texts.

use crate::http::{self, Request, Response};
use crate::identities::{
    BROKER_IDENTITY_OID, FUNCTION_MI_OID, KEY_VAULT_API_VERSIONS, RESOURCE_IDENTITY_OID, TENANT_ID,
    VAULT_RESOURCE,
};
use crate::jwt::{Jwt, VerifyError};
use crate::state::State;
use crate::stats::Counter;
use crate::vault::SecretVersion;
use crate::{clock, ids};
use serde_json::{Value, json};
use warp::http::{Method, StatusCode};

const SKEW_SECONDS: i64 = 300;

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let mut response = http::json(
        status,
        &json!({"error": {"code": code, "message": message}}),
    );
    http::set_header(&mut response, "cache-control", "no-cache");
    http::set_header(&mut response, "x-ms-request-id", &ids::guid());
    http::set_header(&mut response, "x-ms-keyvault-service-version", "1.9.2795.1");
    response
}

/// 401 with the bearer challenge the SDK reads the authority and resource from.
fn unauthorized(state: &State, message: &str) -> Response {
    let mut response = error(StatusCode::UNAUTHORIZED, "Unauthorized", message);
    let challenge = format!(
        "Bearer authorization=\"{}/{TENANT_ID}\", resource=\"{VAULT_RESOURCE}\"",
        state.config.authority
    );
    http::set_header(&mut response, "www-authenticate", &challenge);
    response
}

pub fn throttled() -> Response {
    error(
        StatusCode::TOO_MANY_REQUESTS,
        "Throttled",
        "Request was not processed because too many requests were received. Reason: A single client can only make \
         a limited number of calls in 10 seconds.",
    )
}

pub fn internal_error() -> Response {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalServerError",
        "An unexpected error occurred while processing the request.",
    )
}

pub fn handle(state: &State, request: &Request, name: &str, version: Option<&str>) -> Response {
    let reader = match admit(state, request, name) {
        Ok(reader) => reader,
        Err(refusal) => return *refusal,
    };
    let Some(secret) = state.vault().get(name, version) else {
        let id = version.map_or_else(|| name.to_owned(), |version| format!("{name}/{version}"));
        let message = format!(
            "A secret with (name/id) {id} was not found in this key vault. If you recently deleted this secret you \
             may be able to recover it using the correct recovery command. For help resolving this issue, please \
             see https://go.microsoft.com/fwlink/?linkid=2125182"
        );
        return error(StatusCode::NOT_FOUND, "SecretNotFound", &message);
    };
    state.stats.key_vault_read_by(&reader);
    let mut response = http::json(
        StatusCode::OK,
        &json!({
            "value": secret.value,
            "contentType": secret.content_type,
            "id": format!("{}secrets/{}/{}", state.config.vault_url, secret.name, secret.version),
            "attributes": attributes(&secret),
            "tags": {},
        }),
    );
    http::set_header(&mut response, "cache-control", "no-cache");
    response
}

/// What every secrets route checks first, in Key Vault's order: the method (only GET here), the bearer
/// token, RBAC, then `api-version`. `Ok` is the caller's object id, `Err` the refusal to send (boxed: a
/// response is large).
pub fn admit(state: &State, request: &Request, name: &str) -> Result<String, Box<Response>> {
    if request.method != Method::GET {
        return Err(Box::new(error(
            StatusCode::METHOD_NOT_ALLOWED,
            "BadRequest",
            "The requested method is not supported for this resource.",
        )));
    }
    let caller = match authenticate(state, request) {
        Ok(caller) => caller,
        Err(message) => {
            if request.header("authorization").is_some() {
                state.stats.bump(Counter::KeyVaultTokenRefused);
            }
            return Err(Box::new(unauthorized(state, &message)));
        }
    };
    // The Function App's identities (system-assigned, and the user-assigned broker and resource
    // identities) hold the Key Vault Secrets User role (get and list); nobody else does.
    if ![FUNCTION_MI_OID, BROKER_IDENTITY_OID, RESOURCE_IDENTITY_OID].contains(&caller.oid.as_str())
    {
        return Err(Box::new(forbidden(&caller, name)));
    }
    let query = request.query_pairs();
    let api_version = query
        .iter()
        .find(|(key, _)| key == "api-version")
        .map(|(_, value)| value.as_str());
    match api_version {
        None | Some("") => Err(Box::new(bad_parameter(
            "The api-version query parameter is required.",
        ))),
        Some(given) if !KEY_VAULT_API_VERSIONS.contains(&given) => {
            Err(Box::new(bad_parameter(&format!(
                "The specified version ({given}) is not recognized. Consider using the latest supported version (2025-07-01)."
            ))))
        }
        Some(_) => Ok(caller.oid),
    }
}

/// 400 BadParameter, as Key Vault answers a malformed query.
pub fn bad_parameter(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "BadParameter", message)
}

/// A version's `attributes`, as Key Vault gives them on a read and in a list (every version is
/// enabled, with neither `exp` nor `nbf`).
pub fn attributes(secret: &SecretVersion) -> Value {
    json!({
        "enabled": true,
        "created": secret.created,
        "updated": secret.created,
        "recoveryLevel": "Recoverable+Purgeable",
        "recoverableDays": 90,
    })
}

/// Who the bearer token says is calling.
struct Caller {
    oid: String,
    appid: String,
    issuer: String,
}

/// The caller named by a valid bearer token, or the message of the 401.
fn authenticate(state: &State, request: &Request) -> Result<Caller, String> {
    const MISSING: &str = "AKV10000: Request is missing a Bearer or PoP token.";
    let header = request.header("authorization").ok_or(MISSING)?;
    let (scheme, token) = header.split_once(' ').ok_or(MISSING)?;
    if !scheme.eq_ignore_ascii_case("bearer") || request.header_count("authorization") != 1 {
        return Err(MISSING.into());
    }
    let jwt = Jwt::parse(token.trim())
        .ok_or("Error validating token: IDX14100: JWT is not well formed.")?;
    let published = state.keys().published();
    jwt.verify(&published).map_err(|failure| match failure {
        VerifyError::UnknownKey(_) => format!(
            "AKV10046: Unable to resolve the key used for signature validation. EncodedJwtHeader: '{}'.",
            jwt.encoded_header
        ),
        VerifyError::BadSignature(_) | VerifyError::NotRs256 => {
            "Error validating token: IDX10503: Signature validation failed.".into()
        }
    })?;
    check_lifetime(&jwt)?;
    let issuer = jwt.str_claim("iss").unwrap_or_default().to_owned();
    let expected = [State::v1_issuer(TENANT_ID), state.v2_issuer(TENANT_ID)];
    if !expected.contains(&issuer) || jwt.str_claim("tid") != Some(TENANT_ID) {
        return Err(format!(
            "AKV10032: Invalid issuer. Expected one of {}, found {issuer}.",
            expected.join(", ")
        ));
    }
    let audience = jwt.claims.get("aud").cloned().unwrap_or(Value::Null);
    if audience.as_str() != Some(VAULT_RESOURCE) {
        let found = audience
            .as_str()
            .map_or_else(|| audience.to_string(), str::to_owned);
        return Err(format!(
            "AKV10022: Invalid audience. Expected {VAULT_RESOURCE}, found: {found}."
        ));
    }
    Ok(Caller {
        oid: jwt.str_claim("oid").unwrap_or_default().to_owned(),
        appid: jwt
            .str_claim("appid")
            .or_else(|| jwt.str_claim("azp"))
            .unwrap_or_default()
            .to_owned(),
        issuer,
    })
}

/// `exp` and `nbf`, with the 5 minutes of skew the validator allows.
fn check_lifetime(jwt: &Jwt) -> Result<(), String> {
    let now = clock::now();
    let expiry = jwt.int_claim("exp").unwrap_or(i64::MIN);
    if now > expiry.saturating_add(SKEW_SECONDS) {
        return Err(format!(
            "Error validating token: IDX10223: Lifetime validation failed. The token is expired. ValidTo: '{}', \
             Current time: '{}'.",
            clock::iso8601(expiry),
            clock::iso8601(now)
        ));
    }
    if jwt
        .int_claim("nbf")
        .is_some_and(|nbf| nbf > now.saturating_add(SKEW_SECONDS))
    {
        return Err("Error validating token: IDX10222: Lifetime validation failed. The token is not yet valid.".into());
    }
    Ok(())
}

/// 403 ForbiddenByRbac, worded as Key Vault words it.
fn forbidden(caller: &Caller, name: &str) -> Response {
    let message = format!(
        "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role \
         definitions were changed recently, please observe propagation time.\r\nCaller: appid={};oid={};iss={}\r\n\
         Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'\r\nResource: '/subscriptions/\
         00000000-0000-0000-0000-000000000000/resourcegroups/rg/providers/microsoft.keyvault/vaults/emulator/secrets/\
         {}'\r\nAssignment: (not found)\r\nDenyAssignmentId: null\r\nDecisionReason: 'DeniedWithNoValidRBAC' \r\n\
         Vault: emulator;location=westeurope\r\n",
        caller.appid,
        caller.oid,
        caller.issuer,
        name.to_ascii_lowercase()
    );
    let mut response = http::json(
        StatusCode::FORBIDDEN,
        &json!({"error": {"code": "Forbidden", "message": message, "innererror": {"code": "ForbiddenByRbac"}}}),
    );
    http::set_header(&mut response, "cache-control", "no-cache");
    response
}
