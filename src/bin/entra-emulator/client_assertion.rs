//! Client assertions (RFC 7523 `private_key_jwt`) for the broker's app, checked as Entra checks them.
//! An assertion whose `iss` is the client id is a certificate assertion: a registered certificate named
//! by `x5t#S256` or `x5t`, a PS256 or RS256 signature by its key, the certificate within its validity,
//! `sub` = `iss` = the client id (AADSTS700021), `aud` = this tenant's v2 token endpoint (700023), a
//! `jti`, and `nbf`/`exp` with 5 minutes of skew (700024); key not found, bad signature or expired key
//! give 700027. Any other issuer is a federated credential: a token this tenant issued (signature by a
//! published key, lifetime), matched against the app's federated records by issuer (700211), subject
//! (700213) and audience (700212), and 70021 when the app has no federated record at all.

use crate::aadsts_assertion as refusal;
use crate::entra_error::EntraError;
use crate::identities::{BROKER_CLIENT_ID, TENANT_ID};
use crate::jwt::Jwt;
use crate::state::State;
use crate::{app_credentials, clock};
use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, RSA_PSS_2048_8192_SHA256};
use serde_json::Value;

pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const SKEW_SECONDS: i64 = 300;

/// How the broker authenticated, for the stats.
pub enum Method {
    Certificate,
    Federated,
}

pub fn check(state: &State, assertion: &str, client_id: &str) -> Result<Method, EntraError> {
    let jwt = Jwt::parse(assertion).ok_or_else(refusal::malformed)?;
    let issuer = jwt.str_claim("iss").unwrap_or_default();
    if issuer.eq_ignore_ascii_case(client_id) {
        certificate(state, &jwt, client_id).map(|()| Method::Certificate)
    } else {
        federated(state, &jwt).map(|()| Method::Federated)
    }
}

fn certificate(state: &State, jwt: &Jwt, client_id: &str) -> Result<(), EntraError> {
    let header = |name: &str| jwt.header.get(name).and_then(Value::as_str);
    let registered = state
        .app_credentials()
        .certificate(header("x5t#S256"), header("x5t"));
    let thumbprint = header("x5t#S256")
        .or(header("x5t"))
        .map(app_credentials::hex_of)
        .unwrap_or_default();
    let registered =
        registered.ok_or_else(|| refusal::key_not_found(&thumbprint, BROKER_CLIENT_ID))?;
    let algorithm = match header("alg") {
        Some("PS256") => &RSA_PSS_2048_8192_SHA256,
        Some("RS256") => &RSA_PKCS1_2048_8192_SHA256,
        _ => return Err(refusal::bad_signature()),
    };
    if !jwt.verify_with(algorithm, &registered.public_key) {
        return Err(refusal::bad_signature());
    }
    let now = clock::now();
    if now >= registered.not_after || now < registered.not_before {
        return Err(refusal::key_expired(&thumbprint, BROKER_CLIENT_ID));
    }
    if !jwt
        .str_claim("sub")
        .is_some_and(|sub| sub.eq_ignore_ascii_case(client_id))
    {
        return Err(refusal::client_mismatch());
    }
    let endpoint = format!("{}/{TENANT_ID}/oauth2/v2.0/token", state.config.authority);
    if jwt.str_claim("aud") != Some(endpoint.as_str()) {
        return Err(refusal::wrong_audience());
    }
    if jwt.str_claim("jti").is_none_or(str::is_empty) {
        return Err(refusal::malformed());
    }
    lifetime(jwt)
}

fn federated(state: &State, jwt: &Jwt) -> Result<(), EntraError> {
    let issuer = jwt.str_claim("iss").unwrap_or_default();
    let subject = jwt.str_claim("sub").unwrap_or_default();
    let audience = jwt.str_claim("aud").unwrap_or_default();
    let records = state.app_credentials().federated().to_vec();
    if records.is_empty() {
        return Err(refusal::no_federated_record(issuer, subject, audience));
    }
    let by_issuer: Vec<_> = records.iter().filter(|r| r.issuer == issuer).collect();
    if by_issuer.is_empty() {
        return Err(refusal::no_record_for_issuer(issuer));
    }
    // Only this tenant's own tokens can be verified here: their signing keys are the emulator's.
    let published = state.keys().published();
    if issuer != state.v2_issuer(TENANT_ID) || jwt.verify(&published).is_err() {
        return Err(refusal::bad_signature());
    }
    lifetime(jwt)?;
    let by_subject: Vec<_> = by_issuer.iter().filter(|r| r.subject == subject).collect();
    if by_subject.is_empty() {
        return Err(refusal::no_record_for_subject(subject));
    }
    if !by_subject
        .iter()
        .any(|r| r.audiences.iter().any(|a| a == audience))
    {
        return Err(refusal::no_record_for_audience(audience));
    }
    Ok(())
}

fn lifetime(jwt: &Jwt) -> Result<(), EntraError> {
    let now = clock::now();
    let expiry = jwt.int_claim("exp").ok_or_else(refusal::malformed)?;
    let not_before = jwt.int_claim("nbf").unwrap_or(i64::MIN);
    if now > expiry.saturating_add(SKEW_SECONDS) || not_before > now.saturating_add(SKEW_SECONDS) {
        return Err(refusal::outside_valid_time(
            &clock::iso8601(now),
            &clock::iso8601(not_before.max(0)),
            &clock::iso8601(expiry),
        ));
    }
    Ok(())
}
