//! The Entra refusals the emulator gives, with the codes, `error` values, statuses and wording Entra uses
//! (checked against published Entra answers; see the module docs of `token_endpoint` and `obo`).

use crate::entra_error::EntraError;
use crate::identities::{self, BROKER_APP_NAME};
use warp::http::StatusCode;

const INVALID_REQUEST: &str = "invalid_request";
const INVALID_GRANT: &str = "invalid_grant";
const INVALID_SCOPE: &str = "invalid_scope";

pub fn tenant_not_found(tenant: &str) -> EntraError {
    EntraError::bad_request(
        "invalid_tenant",
        90002,
        format!(
            "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into \
             the correct cloud. Check with your subscription administrator, this may happen if there are no active \
             subscriptions for the tenant."
        ),
    )
}

pub fn no_tenant() -> EntraError {
    EntraError::bad_request(
        INVALID_REQUEST,
        50059,
        "No tenant-identifying information found in either the request or implied by any provided credentials.",
    )
}

pub fn post_only(method: &str) -> EntraError {
    EntraError::bad_request(
        INVALID_REQUEST,
        900561,
        format!("The endpoint only accepts POST, OPTIONS requests. Received a {method} request."),
    )
}

pub fn duplicated_parameter(name: &str) -> EntraError {
    EntraError::bad_request(
        INVALID_REQUEST,
        9000411,
        format!("The request is not properly formatted. The parameter '{name}' is duplicated."),
    )
}

pub fn missing_parameter(name: &str) -> EntraError {
    EntraError::bad_request(
        INVALID_REQUEST,
        900144,
        format!("The request body must contain the following parameter: '{name}'."),
    )
}

pub fn malformed_request() -> EntraError {
    EntraError::bad_request(
        INVALID_REQUEST,
        9002313,
        "Invalid request. Request is malformed or invalid.",
    )
}

pub fn unsupported_grant(grant: &str) -> EntraError {
    EntraError::bad_request(
        "unsupported_grant_type",
        70003,
        format!("The app requested an unsupported grant type '{grant}'."),
    )
}

pub fn unknown_client(client_id: &str, tenant_name: &str) -> EntraError {
    EntraError::bad_request(
        "unauthorized_client",
        700016,
        format!(
            "Application with identifier '{client_id}' was not found in the directory '{tenant_name}'. This can \
             happen if the application has not been installed by the administrator of the tenant or consented to \
             by any user in the tenant. You may have sent your authentication request to the wrong tenant."
        ),
    )
}

pub fn missing_client_credential() -> EntraError {
    EntraError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        7000218,
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    )
}

pub fn invalid_assertion_type() -> EntraError {
    EntraError::bad_request(
        INVALID_REQUEST,
        50027,
        "The client_assertion_type is not supported; it must be \
         urn:ietf:params:oauth:client-assertion-type:jwt-bearer.",
    )
}

pub fn invalid_client_secret(client_id: &str) -> EntraError {
    EntraError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        7000215,
        format!(
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret \
             value, not the client secret ID, for a secret added to app '{client_id}'."
        ),
    )
}

pub fn scope_not_default(scope: &str) -> EntraError {
    EntraError::bad_request(
        INVALID_SCOPE,
        1002012,
        format!(
            "The provided value for scope {scope} is not valid. Client credential flows must have a scope value \
             with /.default suffixed to the resource identifier (application ID URI)."
        ),
    )
}

pub fn scope_invalid(scope: &str) -> EntraError {
    EntraError::bad_request(
        INVALID_SCOPE,
        70011,
        format!(
            "The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."
        ),
    )
}

pub fn scope_several_resources(scope: &str) -> EntraError {
    EntraError::bad_request(
        INVALID_SCOPE,
        28000,
        format!(
            "Provided value for the input parameter scope is not valid because it contains more than one resource. \
             Scope {scope} is not valid."
        ),
    )
}

pub fn unknown_resource(resource: &str, tenant_name: &str) -> EntraError {
    EntraError::bad_request(
        "invalid_resource",
        500011,
        format!(
            "The resource principal named {resource} was not found in the tenant named {tenant_name}. This can \
             happen if the application has not been installed by the administrator of the tenant or consented to \
             by any user in the tenant. You might have sent your authentication request to the wrong tenant."
        ),
    )
}

pub fn malformed_assertion() -> EntraError {
    EntraError::bad_request(INVALID_REQUEST, 50027, "JWT token is invalid or malformed.")
}

pub fn assertion_key_not_found(kid: &str) -> EntraError {
    EntraError::bad_request(
        INVALID_GRANT,
        50013,
        format!(
            "Assertion failed signature validation. [Reason - The key was not found., Thumbprint of key used by client: '{kid}']"
        ),
    )
}

pub fn assertion_bad_signature(kid: &str) -> EntraError {
    EntraError::bad_request(
        INVALID_GRANT,
        50013,
        format!(
            "Assertion failed signature validation. [Reason - The provided signature value did not match the \
             expected signature value., Thumbprint of key used by client: '{kid}']"
        ),
    )
}

pub fn assertion_wrong_issuer(issuer: &str) -> EntraError {
    EntraError::bad_request(
        INVALID_GRANT,
        50013,
        format!(
            "Assertion failed issuer validation. [Reason - The issuer '{issuer}' is not this tenant's issuer.]"
        ),
    )
}

pub fn assertion_expired(now: &str, expiry: &str) -> EntraError {
    EntraError::bad_request(
        INVALID_GRANT,
        500133,
        format!(
            "Assertion is not within its valid time range. Ensure that the access token is not expired before \
             using it for user assertion, or request a new token. Current time: {now}, expiry time of assertion \
             {expiry}."
        ),
    )
}

pub fn assertion_wrong_audience(audience: &str, client_id: &str) -> EntraError {
    EntraError::bad_request(
        INVALID_GRANT,
        500131,
        format!(
            "Assertion audience does not match the Client app presenting the assertion. The audience in the \
             assertion was '{audience}' and the expected audience is '{client_id}' or one of the Application Uris \
             of this application with App ID '{client_id}'({BROKER_APP_NAME}). The downstream client must request \
             a token for the expected audience (the application that made the OBO request) and this application \
             should use that token as the assertion."
        ),
    )
}

pub fn app_only_assertion(client_id: &str) -> EntraError {
    EntraError::bad_request(
        "unauthorized_client",
        7000114,
        format!("Application '{client_id}' is not allowed to make application on-behalf-of calls."),
    )
}

pub fn mfa_required(resource: &str, claims: String) -> EntraError {
    EntraError::bad_request(
        "interaction_required",
        50076,
        format!(
            "Due to a configuration change made by your administrator, or because you moved to a new location, you \
             must use multi-factor authentication to access '{}'.",
            identities::resource_app_id(resource)
        ),
    )
    .with_suberror("basic_action")
    .with_claims(claims)
}

pub fn consent_required(client_id: &str) -> EntraError {
    EntraError::bad_request(
        INVALID_GRANT,
        65001,
        format!(
            "The user or administrator has not consented to use the application with ID '{client_id}' named \
             '{BROKER_APP_NAME}'. Send an interactive authorization request for this user and resource."
        ),
    )
    .with_suberror("consent_required")
}

pub fn throttled() -> EntraError {
    EntraError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "temporarily_unavailable",
        50196,
        "The server terminated an operation because it encountered a client request loop. Please contact your \
         app vendor.",
    )
}

pub fn server_error() -> EntraError {
    EntraError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        50000,
        "There was an error issuing a token or an issue with our sign-in service.",
    )
}

/// A refresh token the tenant never issued, or mangled.
pub fn malformed_refresh_token() -> EntraError {
    EntraError::bad_request(
        INVALID_GRANT,
        9002313,
        "Invalid request. Request is malformed or invalid.",
    )
}

/// A refresh token issued before an admin revoked the user's sessions (or the password changed).
pub fn refresh_token_revoked(issued_at: &str, valid_from: &str) -> EntraError {
    EntraError::bad_request(
        INVALID_GRANT,
        50173,
        format!(
            "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might \
             have changed or reset their password. The grant was issued on '{issued_at}' and the TokensValidFrom \
             date (before which tokens are not valid) for this user is '{valid_from}'."
        ),
    )
}

/// A refresh token that is no longer valid (strict mode: it was already redeemed).
pub fn refresh_token_expired() -> EntraError {
    EntraError::bad_request(
        INVALID_GRANT,
        70008,
        "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive \
         authorization request for this user and resource.",
    )
}
