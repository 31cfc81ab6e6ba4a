//! OIDC discovery (v1 and v2 `openid-configuration`) and the JWKS at both keys paths, for the home tenant,
//! the foreign test tenant and `common`/`organizations` (issuer templated with `{tenantid}`, as Entra does).
//! Any other tenant gets AADSTS90002.

use crate::aadsts;
use crate::entra_error::EntraError;
use crate::http::{self, Request, Response};
use crate::keys;
use crate::state::State;
use crate::{identities, ids};
use serde_json::{Value, json};
use warp::http::{Method, StatusCode};

/// The tenant segment as discovery sees it: a known tenant id, or the `{tenantid}` template.
fn tenant_segment(tenant: &str) -> Result<String, EntraError> {
    if ["common", "organizations", "consumers"].contains(&tenant.to_ascii_lowercase().as_str()) {
        return Ok("{tenantid}".to_owned());
    }
    identities::tenant_name(tenant)
        .map(|_| tenant.to_ascii_lowercase())
        .ok_or_else(|| aadsts::tenant_not_found(tenant))
}

fn cached(mut response: Response) -> Response {
    http::set_header(&mut response, "cache-control", "max-age=86400, private");
    http::set_header(&mut response, "access-control-allow-origin", "*");
    http::set_header(&mut response, "x-ms-request-id", &ids::guid());
    response
}

/// `GET /{tenant}/.well-known/openid-configuration` (v1) or `/{tenant}/v2.0/.well-known/openid-configuration`.
pub fn openid_configuration(state: &State, request: &Request, tenant: &str, v2: bool) -> Response {
    if request.method != Method::GET {
        return http::empty(StatusCode::METHOD_NOT_ALLOWED);
    }
    match tenant_segment(tenant) {
        Ok(tenant) => cached(http::json(StatusCode::OK, &document(state, &tenant, v2))),
        Err(error) => error.respond(request),
    }
}

fn document(state: &State, tenant: &str, v2: bool) -> Value {
    let base = format!("{}/{tenant}", state.config.authority);
    let (oauth, issuer, keys) = if v2 {
        (
            format!("{base}/oauth2/v2.0"),
            state.v2_issuer(tenant),
            format!("{base}/discovery/v2.0/keys"),
        )
    } else {
        (
            format!("{base}/oauth2"),
            State::v1_issuer(tenant),
            format!("{base}/discovery/keys"),
        )
    };
    let mut document = json!({
        "token_endpoint": format!("{oauth}/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": keys,
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": issuer,
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "authorization_endpoint": format!("{oauth}/authorize"),
        "device_authorization_endpoint": format!("{oauth}/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{oauth}/logout"),
        "claims_supported": [
            "sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name",
            "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name",
            "tid", "ver", "at_hash", "c_hash", "email"
        ],
        "kerberos_endpoint": format!("{base}/kerberos"),
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    });
    if !v2 && let Some(object) = document.as_object_mut() {
        object.insert("microsoft_multi_refresh_token".into(), json!(true));
        object.insert(
            "check_session_iframe".into(),
            json!(format!("{oauth}/checksession")),
        );
    }
    document
}

/// `GET /{tenant}/discovery/keys` and `/{tenant}/discovery/v2.0/keys`: the published keys.
pub fn keys(state: &State, request: &Request, tenant: &str, v2: bool) -> Response {
    if request.method != Method::GET {
        return http::empty(StatusCode::METHOD_NOT_ALLOWED);
    }
    match tenant_segment(tenant) {
        Ok(tenant) => {
            let issuer = v2.then(|| state.v2_issuer(&tenant));
            let published = state.keys().published();
            cached(http::json(
                StatusCode::OK,
                &keys::jwks(&published, issuer.as_deref()),
            ))
        }
        Err(error) => error.respond(request),
    }
}
