//! The control API's calls on the broker's app credentials: make (and register, and store in the vault)
//! a certificate; add a federated identity credential.

use crate::control_input::{Refusal, bad_request, body};
use crate::http::Request;
use crate::identities::{BROKER_IDENTITY_OID, TENANT_ID, TOKEN_EXCHANGE_AUDIENCE};
use crate::state::State;
use crate::vault::Vault;
use crate::{app_credentials, clock};
use serde::Deserialize;
use serde_json::{Value, json};

/// Makes a certificate; optionally registers it on the broker's app and stores it in the vault.
pub async fn certificates(state: &State, request: &Request) -> Result<Value, Refusal> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Make {
        #[serde(default = "yes")]
        register: bool,
        #[serde(default)]
        vault_secret: Option<String>,
        #[serde(default)]
        vault_format: Option<String>,
        /// Days from now to `notAfter`; negative makes an expired certificate.
        #[serde(default = "a_year")]
        valid_days: i64,
        /// Days from now to `notBefore`; positive makes a certificate that is not valid yet.
        #[serde(default)]
        starts_in_days: i64,
    }
    fn yes() -> bool {
        true
    }
    fn a_year() -> i64 {
        365
    }
    let make: Make = body(request)?;
    if !(-3650..=3650).contains(&make.valid_days) || make.valid_days == 0 {
        return Err(bad_request(
            "valid_days must be between -3650 and 3650, not 0",
        ));
    }
    if !(0..make.valid_days.max(1)).contains(&make.starts_in_days) {
        return Err(bad_request(
            "starts_in_days must be 0 or more, and less than valid_days",
        ));
    }
    let content_type = match make.vault_format.as_deref() {
        None | Some("pkcs12") => "application/x-pkcs12",
        Some("pem") => "application/x-pem-file",
        Some(_) => return Err(bad_request("vault_format must be pkcs12 or pem")),
    };
    if make
        .vault_secret
        .as_deref()
        .is_some_and(|name| !Vault::is_valid_name(name))
    {
        return Err(bad_request(
            "secret names are 1-127 letters, digits and dashes",
        ));
    }
    let now = clock::now();
    let not_after = now + make.valid_days * 86_400;
    let not_before = match make.starts_in_days {
        0 => not_after.min(now) - 30 * 86_400,
        days => now + days * 86_400,
    };
    let generated =
        tokio::task::spawn_blocking(move || app_credentials::generate(not_before, not_after))
            .await
            .map_err(|error| bad_request(error.to_string()))?
            .map_err(|error| bad_request(error.to_string()))?;
    if make.register {
        state
            .app_credentials()
            .register(generated.registration.clone());
    }
    if let Some(name) = &make.vault_secret {
        let value = match content_type {
            "application/x-pem-file" => &generated.pem,
            _ => &generated.pkcs12_base64,
        };
        state.vault().set_typed(name, value, Some(content_type));
    }
    let registration = &generated.registration;
    Ok(json!({
        "thumbprint_sha256": app_credentials::hex_of(&registration.x5t_s256),
        "x5t#S256": registration.x5t_s256,
        "x5t": registration.x5t,
        "not_after": registration.not_after,
        "registered": make.register,
        "pem": generated.pem,
        "pkcs12": generated.pkcs12_base64,
    }))
}

/// Adds a federated identity credential to the broker's app; by default the one that trusts the
/// broker's user-assigned identity.
pub fn federated(state: &State, request: &Request) -> Result<Value, Refusal> {
    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct Add {
        issuer: Option<String>,
        subject: Option<String>,
        audiences: Option<Vec<String>>,
    }
    let add: Add = body(request)?;
    let issuer = add.issuer.unwrap_or_else(|| state.v2_issuer(TENANT_ID));
    let subject = add
        .subject
        .unwrap_or_else(|| BROKER_IDENTITY_OID.to_owned());
    let audiences = add
        .audiences
        .unwrap_or_else(|| vec![TOKEN_EXCHANGE_AUDIENCE.to_owned()]);
    if issuer.is_empty() || subject.is_empty() || audiences.is_empty() {
        return Err(bad_request(
            "issuer, subject and audiences must not be empty",
        ));
    }
    let record = state
        .app_credentials()
        .add_federated(&issuer, &subject, audiences);
    Ok(json!({
        "id": record.id,
        "issuer": record.issuer,
        "subject": record.subject,
        "audiences": record.audiences,
    }))
}
