//! Entra's refusals of client assertions (certificate and federated credentials), with its codes,
//! `error` values and wording: AADSTS50027, 700021, 700023, 700024, 700027, 70021, 700211-700213.

use crate::entra_error::EntraError;
use warp::http::StatusCode;

const INVALID_CLIENT: &str = "invalid_client";

fn refusal(code: u32, message: impl Into<String>) -> EntraError {
    EntraError::new(StatusCode::UNAUTHORIZED, INVALID_CLIENT, code, message)
}

pub fn malformed() -> EntraError {
    refusal(50027, "JWT token is invalid or malformed.")
}

pub fn key_not_found(thumbprint: &str, client_id: &str) -> EntraError {
    refusal(
        700027,
        format!(
            "The certificate with identifier used to sign the client assertion is not registered on application. \
             [Reason - The key was not found., Thumbprint of key used by client: '{thumbprint}', Please visit the \
             Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{client_id}'.]"
        ),
    )
}

pub fn key_expired(thumbprint: &str, client_id: &str) -> EntraError {
    refusal(
        700027,
        format!(
            "Client assertion contains an invalid signature. [Reason - The key used is expired., Thumbprint of key \
             used by client: '{thumbprint}', Found key 'Start=..., End=...', Please visit the Azure Portal, Graph \
             Explorer or directly use MS Graph to see configured keys for app Id '{client_id}'.]"
        ),
    )
}

pub fn bad_signature() -> EntraError {
    refusal(700027, "Client assertion failed signature validation.")
}

pub fn client_mismatch() -> EntraError {
    refusal(
        700021,
        "Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation \
         at https://docs.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials .",
    )
}

pub fn wrong_audience() -> EntraError {
    refusal(
        700023,
        "Client assertion audience claim does not match Realm issuer. Review the documentation at \
         https://docs.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials .",
    )
}

pub fn outside_valid_time(now: &str, from: &str, until: &str) -> EntraError {
    refusal(
        700024,
        format!(
            "Client assertion is not within its valid time range. Current time: {now}, assertion valid from \
             {from}, expiry time of assertion {until}. Review the documentation at \
             https://docs.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials ."
        ),
    )
}

pub fn no_federated_record(issuer: &str, subject: &str, audience: &str) -> EntraError {
    refusal(
        70021,
        format!(
            "No matching federated identity record found for presented assertion. Assertion Issuer: '{issuer}'. \
             Assertion Subject: '{subject}'. Assertion Audience: '{audience}'."
        ),
    )
}

pub fn no_record_for_issuer(issuer: &str) -> EntraError {
    refusal(
        700211,
        format!(
            "No matching federated identity record found for presented assertion issuer '{issuer}'."
        ),
    )
}

pub fn no_record_for_subject(subject: &str) -> EntraError {
    refusal(
        700213,
        format!(
            "No matching federated identity record found for presented assertion subject '{subject}'."
        ),
    )
}

pub fn no_record_for_audience(audience: &str) -> EntraError {
    refusal(
        700212,
        format!(
            "No matching federated identity record found for presented assertion audience '{audience}'."
        ),
    )
}
