//! The v2 token endpoint `POST /{tenant}/oauth2/v2.0/token`, as strict as Entra: form-encoded POST only,
//! no repeated parameter, a known confidential client with its secret, and for client credentials exactly
//! one `<resource>/.default` of a resource that exists. Which grant a request asks for is decided in `token_route`.
//! Codes and wording follow Entra's published answers (AADSTS900144, 9000411, 70003, 700016, 7000215,
//! 1002012, 500011, 90002, 900561).

use crate::entra_error::{self, EntraError};
use crate::http::{self, Request, Response};
use crate::identities::{BROKER_CLIENT_ID, BROKER_SP_OID, TENANT_ID};
use crate::issue::{self, Claims};
use crate::state::State;
use crate::stats::Counter;
use crate::{aadsts, client_assertion, ids};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use warp::http::StatusCode;

pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// The form parameters of a token request, in order, duplicates kept. Empty unless the body is
/// `application/x-www-form-urlencoded` (Entra then reports `grant_type` missing).
pub struct Form {
    pairs: Vec<(String, String)>,
    /// `client_secret_basic` credentials from the Authorization header (RFC 6749 §2.3.1).
    basic: Option<(String, String)>,
}

impl Form {
    pub fn parse(request: &Request) -> Self {
        let is_form = request.header("content-type").is_some_and(|value| {
            value.split(';').next().is_some_and(|media| {
                media
                    .trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
        let pairs = if is_form {
            url::form_urlencoded::parse(&request.body)
                .map(|(name, value)| (name.into_owned(), value.into_owned()))
                .collect()
        } else {
            Vec::new()
        };
        Self {
            pairs,
            basic: request.header("authorization").and_then(basic_credentials),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        http::first_value(&self.pairs, name)
    }

    pub fn require(&self, name: &str) -> Result<&str, EntraError> {
        self.get(name)
            .ok_or_else(|| aadsts::missing_parameter(name))
    }

    pub fn duplicated(&self) -> Option<&str> {
        http::first_duplicate(&self.pairs)
    }
}

/// `Basic base64(urlencode(id):urlencode(secret))`.
fn basic_credentials(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |part: &str| {
        url::form_urlencoded::parse(format!("v={part}").as_bytes())
            .next()
            .map(|(_, value)| value.into_owned())
    };
    Some((unescape(id)?, unescape(secret)?))
}

/// Only the broker is a confidential client, and only in its home tenant. It proves itself with its
/// secret, in the form (`client_secret_post`) or a Basic Authorization header, or with a client
/// assertion (`private_key_jwt`: a certificate or a federated credential); never with two of these.
pub fn authenticate(
    state: &State,
    form: &Form,
    tenant: &str,
    tenant_name: &str,
) -> Result<(), EntraError> {
    let assertion = form.get("client_assertion");
    let assertion_type = form.get("client_assertion_type");
    let (client_id, secret) = match &form.basic {
        Some(_) if form.get("client_secret").is_some() || assertion.is_some() => {
            return Err(aadsts::malformed_request());
        }
        Some((id, _)) if form.get("client_id").is_some_and(|posted| posted != id) => {
            return Err(aadsts::malformed_request());
        }
        Some((id, secret)) => (id.as_str(), Some(secret.as_str())),
        None => (form.require("client_id")?, form.get("client_secret")),
    };
    if !client_id.eq_ignore_ascii_case(BROKER_CLIENT_ID) || !tenant.eq_ignore_ascii_case(TENANT_ID)
    {
        return Err(aadsts::unknown_client(client_id, tenant_name));
    }
    match (secret, assertion, assertion_type) {
        (Some(_), Some(_), _) | (Some(_), None, Some(_)) => Err(aadsts::malformed_request()),
        (Some(secret), None, None) => {
            if ids::secrets_equal(secret, &state.config.broker_client_secret) {
                Ok(())
            } else {
                Err(aadsts::invalid_client_secret(BROKER_CLIENT_ID))
            }
        }
        (None, Some(assertion), Some(client_assertion::ASSERTION_TYPE)) => {
            state.remember_assertion(assertion);
            let method = client_assertion::check(state, assertion, client_id)?;
            state.stats.bump(match method {
                client_assertion::Method::Certificate => Counter::CertificateAssertion,
                client_assertion::Method::Federated => Counter::FederatedAssertion,
            });
            Ok(())
        }
        (None, Some(_), Some(_)) => Err(aadsts::invalid_assertion_type()),
        (None, Some(_), None) => Err(aadsts::missing_parameter("client_assertion_type")),
        (None, None, _) => Err(aadsts::missing_client_credential()),
    }
}

pub fn client_credentials(
    state: &State,
    request: &Request,
    form: &Form,
    tenant: &str,
    tenant_name: &str,
) -> Result<Response, EntraError> {
    authenticate(state, form, tenant, tenant_name)?;
    let scope = form.require("scope")?;
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    if let Some(bad) = scopes.iter().find(|one| !one.ends_with("/.default")) {
        return Err(aadsts::scope_not_default(bad));
    }
    let resource = match scopes.as_slice() {
        [one] => one.trim_end_matches("/.default"),
        _ => return Err(aadsts::scope_invalid(scope)),
    };
    let lifetime = {
        let directory = state.directory();
        if resource.is_empty() || !directory.knows_resource(resource) {
            return Err(aadsts::unknown_resource(resource, tenant_name));
        }
        directory.token_lifetime
    };
    let mut claims = issue::v1_claims(tenant, resource, lifetime);
    claims.extend(issue::object(json!({
        "appid": BROKER_CLIENT_ID,
        "appidacr": "1",
        "idp": State::v1_issuer(tenant),
        "idtyp": "app",
        "oid": BROKER_SP_OID,
        "sub": BROKER_SP_OID,
    })));
    success(state, request, scope, &claims, lifetime)
}

/// The 200 answer: `token_type`, `scope`, `expires_in`, `ext_expires_in`, `access_token`.
pub fn success(
    state: &State,
    request: &Request,
    scope: &str,
    claims: &Claims,
    lifetime: i64,
) -> Result<Response, EntraError> {
    let token = issue::sign(state, claims).map_err(|_| aadsts::server_error())?;
    let body = json!({
        "token_type": "Bearer",
        "scope": scope,
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": token,
    });
    let mut response = http::json(StatusCode::OK, &body);
    entra_error::entra_headers(
        &mut response,
        request,
        &ids::guid(),
        &entra_error::correlation_id(request),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Listener;
    use warp::http::header::{CONTENT_TYPE, HeaderValue};
    use warp::http::{HeaderMap, Method};

    fn form(body: &'static str) -> Form {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        Form::parse(&Request {
            listener: Listener::Https,
            method: Method::POST,
            path: "/t/oauth2/v2.0/token".into(),
            query: String::new(),
            headers,
            body: body.into(),
        })
    }

    #[test]
    fn repeated_parameters_are_found() {
        assert_eq!(form("a=1&scope=x&b=2&scope=y").duplicated(), Some("scope"));
        assert_eq!(form("a=1&b=2").duplicated(), None);
    }

    #[test]
    fn empty_values_count_as_missing() {
        assert!(form("client_secret=").get("client_secret").is_none());
    }
}
