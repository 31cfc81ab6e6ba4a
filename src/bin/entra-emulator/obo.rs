//! The on-behalf-of grant: the assertion must be a delegated (user, `scp`) token signed by a currently
//! published key, unexpired (5 minutes of skew, as Entra allows), from this tenant, for the broker
//! (`api://{broker}` or its client id); then the tenant's OBO policy may demand MFA (AADSTS50076 with a
//! `claims` challenge) or consent (AADSTS65001). Codes: AADSTS50027, 50013, 500133, 500131, 7000114, 28000.

use crate::directory::Demand;
use crate::entra_error::EntraError;
use crate::http::{Request, Response};
use crate::identities::{BROKER_CLIENT_ID, TENANT_ID};
use crate::issue;
use crate::jwt::{Jwt, VerifyError};
use crate::state::State;
use crate::token_endpoint::{self, Form};
use crate::{aadsts, clock, user_token};
use serde_json::{Value, json};

/// Entra tolerates this much clock skew on assertions.
const SKEW_SECONDS: i64 = 300;

/// OpenID scopes that may accompany the resource scope.
const OIDC_SCOPES: &[&str] = &["openid", "profile", "email", "offline_access"];

pub fn exchange(
    state: &State,
    request: &Request,
    form: &Form,
    tenant: &str,
    tenant_name: &str,
) -> Result<Response, EntraError> {
    if form.require("requested_token_use")? != "on_behalf_of" {
        return Err(aadsts::malformed_request());
    }
    token_endpoint::authenticate(state, form, tenant, tenant_name)?;
    let assertion = form.require("assertion")?;
    let scope = form.require("scope")?;
    let resource = resource_of(scope)?;
    let user = validate_assertion(state, assertion)?;
    let user_oid = user
        .str_claim("oid")
        .ok_or_else(aadsts::malformed_assertion)?
        .to_owned();
    let (lifetime, demand) = {
        let directory = state.directory();
        if !directory.knows_resource(&resource) {
            return Err(aadsts::unknown_resource(&resource, tenant_name));
        }
        (
            directory.token_lifetime,
            directory.demand_for(&user_oid, &resource),
        )
    };
    meet(demand, &user.claims, &resource)?;
    let claims = user_token::claims(&user.claims, &user_oid, &resource, lifetime);
    let refresh_token = asks_offline_access(scope).then(|| {
        state
            .refresh_tokens()
            .issue(user_token::sign_in(&user.claims))
    });
    token_endpoint::success(state, request, scope, &claims, lifetime, refresh_token)
}

/// `offline_access` among the requested scopes asks for a refresh token.
fn asks_offline_access(scope: &str) -> bool {
    scope.split_whitespace().any(|one| one == "offline_access")
}

/// Applies the tenant's demand for this user and resource (a refresh meets the same demands).
pub fn meet(
    demand: Option<Demand>,
    user: &issue::Claims,
    resource: &str,
) -> Result<(), EntraError> {
    match demand {
        Some(Demand::Mfa { policy_id }) if !user_token::performed_mfa(user) => {
            let claims =
                json!({"access_token": {"capolids": {"essential": true, "values": [policy_id]}}});
            Err(aadsts::mfa_required(resource, claims.to_string()))
        }
        Some(Demand::Consent) => Err(aadsts::consent_required(BROKER_CLIENT_ID)),
        _ => Ok(()),
    }
}

/// The one resource a delegated scope list names (`<resource>/.default` or `<resource>/<permission>`).
pub fn resource_of(scope: &str) -> Result<String, EntraError> {
    let mut resources = scope
        .split_whitespace()
        .filter(|one| !OIDC_SCOPES.contains(one))
        .map(|one| one.rsplit_once('/').map_or("", |(resource, _)| resource));
    let first = resources
        .next()
        .ok_or_else(|| aadsts::scope_invalid(scope))?;
    if first.is_empty() {
        return Err(aadsts::scope_invalid(scope));
    }
    if resources.any(|other| other != first) {
        return Err(aadsts::scope_several_resources(scope));
    }
    Ok(first.to_owned())
}

fn validate_assertion(state: &State, assertion: &str) -> Result<Jwt, EntraError> {
    let jwt = Jwt::parse(assertion).ok_or_else(aadsts::malformed_assertion)?;
    let published = state.keys().published();
    jwt.verify(&published).map_err(|error| match error {
        VerifyError::UnknownKey(kid) => aadsts::assertion_key_not_found(&kid),
        VerifyError::BadSignature(kid) => aadsts::assertion_bad_signature(&kid),
        VerifyError::NotRs256 => aadsts::assertion_bad_signature(jwt.kid()),
    })?;
    let issuer = jwt.str_claim("iss").unwrap_or_default();
    let own_issuer = issuer == State::v1_issuer(TENANT_ID) || issuer == state.v2_issuer(TENANT_ID);
    if !own_issuer || jwt.str_claim("tid") != Some(TENANT_ID) {
        return Err(aadsts::assertion_wrong_issuer(issuer));
    }
    let now = clock::now();
    let expiry = jwt
        .int_claim("exp")
        .ok_or_else(aadsts::malformed_assertion)?;
    let not_before = jwt.int_claim("nbf").unwrap_or(i64::MIN);
    if now > expiry.saturating_add(SKEW_SECONDS) || not_before > now.saturating_add(SKEW_SECONDS) {
        return Err(aadsts::assertion_expired(
            &clock::iso8601(now),
            &clock::iso8601(expiry),
        ));
    }
    let audience = jwt.claims.get("aud").cloned().unwrap_or(Value::Null);
    let for_broker = audience.as_str().is_some_and(|aud| {
        aud.eq_ignore_ascii_case(BROKER_CLIENT_ID)
            || aud.eq_ignore_ascii_case(&format!("api://{BROKER_CLIENT_ID}"))
    });
    if !for_broker {
        let shown = audience
            .as_str()
            .map_or_else(|| audience.to_string(), str::to_owned);
        return Err(aadsts::assertion_wrong_audience(&shown, BROKER_CLIENT_ID));
    }
    let delegated = jwt
        .str_claim("scp")
        .is_some_and(|scp| !scp.trim().is_empty())
        && jwt.str_claim("idtyp") != Some("app");
    if !delegated {
        return Err(aadsts::app_only_assertion(BROKER_CLIENT_ID));
    }
    Ok(jwt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_resource_is_read_from_delegated_scopes() {
        assert_eq!(
            resource_of("https://database.windows.net//.default")
                .ok()
                .as_deref(),
            Some("https://database.windows.net/")
        );
        assert_eq!(
            resource_of("openid api://x/a api://x/b").ok().as_deref(),
            Some("api://x")
        );
        assert!(resource_of("api://x/a api://y/b").is_err());
        assert!(resource_of("openid offline_access").is_err());
        assert!(resource_of("user_impersonation").is_err());
    }
}
