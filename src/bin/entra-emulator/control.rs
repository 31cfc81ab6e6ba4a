//! The control API under `/_emulator` (plain HTTP, JSON in and out): mint caller tokens, rotate and retire
//! signing keys, set secrets, make and register (or remove) the broker's certificates, add or revoke its
//! federated credentials, read the client assertions presented, inject faults, set the OBO policy,
//! register resources, change settings and read or reset the counters. Never faulted; answers 400 `{"error","error_description"}` to bad input.

use crate::directory::Demand;
use crate::http::{self, Request, Response};
use crate::identities::{BROKER_IDENTITY_OID, TENANT_ID, TOKEN_EXCHANGE_AUDIENCE};
use crate::keys::SigningKey;
use crate::mint::{self, MintRequest};
use crate::state::State;
use crate::vault::{MAX_PAGE_SIZE, Vault};
use crate::{app_credentials, clock, ids};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use warp::http::{Method, StatusCode};

/// Why a control request was refused.
enum Refusal {
    BadRequest(String),
    NotFound,
    MethodNotAllowed(&'static str),
}

fn bad_request(description: impl Into<String>) -> Refusal {
    Refusal::BadRequest(description.into())
}

impl Refusal {
    fn respond(self) -> Response {
        match self {
            Self::BadRequest(description) => http::json(
                StatusCode::BAD_REQUEST,
                &json!({"error": "invalid_request", "error_description": description}),
            ),
            Self::NotFound => http::json(StatusCode::NOT_FOUND, &json!({"error": "not_found"})),
            Self::MethodNotAllowed(allow) => {
                let mut response = http::json(
                    StatusCode::METHOD_NOT_ALLOWED,
                    &json!({"error": "method_not_allowed"}),
                );
                http::set_header(&mut response, "allow", allow);
                response
            }
        }
    }
}

/// An empty body reads as `{}`.
fn body<T: DeserializeOwned>(request: &Request) -> Result<T, Refusal> {
    let bytes: &[u8] = if request.body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &request.body
    };
    serde_json::from_slice(bytes)
        .map_err(|error| bad_request(format!("invalid JSON body: {error}")))
}

pub async fn handle(state: &State, request: &Request, route: &[&str]) -> Response {
    let result = match (&request.method, route) {
        (&Method::POST, ["tokens"]) => tokens(state, request).await,
        (&Method::POST, ["keys", "rotate"]) => rotate(state, request).await,
        (&Method::POST, ["keys", "retire"]) => {
            state.keys_mut().retire_all_but_current();
            Ok(key_summary(state))
        }
        (&Method::PUT, ["secrets", name]) => put_secret(state, request, name),
        (&Method::POST, ["certificates"]) => certificates(state, request).await,
        (&Method::DELETE, ["certificates", thumbprint]) => {
            found(state.app_credentials().unregister(thumbprint))
        }
        (&Method::POST, ["federated-credentials"]) => federated(state, request),
        (&Method::DELETE, ["federated-credentials", id]) => {
            found(state.app_credentials().remove_federated(id))
        }
        (&Method::GET, ["assertions"]) => Ok(json!({"assertions": state.assertions()})),
        (&Method::POST, ["faults"]) => faults(state, request),
        (&Method::POST, ["obo-policy"]) => obo_policy(state, request),
        (&Method::POST, ["resources"]) => resources(state, request),
        (&Method::POST, ["settings"]) => settings(state, request),
        (&Method::GET, ["stats"]) => Ok(state.stats.snapshot()),
        (&Method::POST, ["stats", "reset"]) => {
            state.stats.reset();
            Ok(state.stats.snapshot())
        }
        (
            _,
            ["tokens" | "faults" | "obo-policy" | "resources" | "settings"]
            | ["keys", "rotate" | "retire"]
            | ["stats", "reset"],
        ) => Err(Refusal::MethodNotAllowed("POST")),
        (_, ["secrets", _]) => Err(Refusal::MethodNotAllowed("PUT")),
        (_, ["certificates" | "federated-credentials"]) => Err(Refusal::MethodNotAllowed("POST")),
        (_, ["certificates" | "federated-credentials", _]) => {
            Err(Refusal::MethodNotAllowed("DELETE"))
        }
        (_, ["assertions"]) => Err(Refusal::MethodNotAllowed("GET")),
        (_, ["stats"]) => Err(Refusal::MethodNotAllowed("GET")),
        _ => Err(Refusal::NotFound),
    };
    match result {
        Ok(body) => http::json(StatusCode::OK, &body),
        Err(refusal) => refusal.respond(),
    }
}

async fn tokens(state: &State, request: &Request) -> Result<Value, Refusal> {
    let mint_request: MintRequest = body(request)?;
    let token = mint::mint(state, mint_request).await.map_err(bad_request)?;
    Ok(json!({"access_token": token}))
}

fn key_summary(state: &State) -> Value {
    let keys = state.keys();
    json!({"kid": keys.current().kid, "published": keys.published_kids()})
}

async fn rotate(state: &State, request: &Request) -> Result<Value, Refusal> {
    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct Rotate {
        #[serde(default)]
        retire_previous: bool,
    }
    let options: Rotate = body(request)?;
    let key = tokio::task::spawn_blocking(SigningKey::generate)
        .await
        .map_err(|error| bad_request(error.to_string()))?
        .map_err(|error| bad_request(error.to_string()))?;
    state.keys_mut().rotate(key, options.retire_previous);
    Ok(key_summary(state))
}

fn put_secret(state: &State, request: &Request, name: &str) -> Result<Value, Refusal> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Put {
        value: String,
        #[serde(default)]
        content_type: Option<String>,
    }
    if !Vault::is_valid_name(name) {
        return Err(bad_request(
            "secret names are 1-127 letters, digits and dashes",
        ));
    }
    let put: Put = body(request)?;
    let version = state
        .vault()
        .set_typed(name, &put.value, put.content_type.as_deref());
    Ok(json!({
        "name": version.name,
        "version": version.version,
        "id": format!("{}secrets/{}/{}", state.config.vault_url, version.name, version.version),
    }))
}

fn found(removed: bool) -> Result<Value, Refusal> {
    if removed {
        Ok(json!({"removed": true}))
    } else {
        Err(Refusal::NotFound)
    }
}

/// Makes a certificate; optionally registers it on the broker's app and stores it in the vault.
async fn certificates(state: &State, request: &Request) -> Result<Value, Refusal> {
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
fn federated(state: &State, request: &Request) -> Result<Value, Refusal> {
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

fn faults(state: &State, request: &Request) -> Result<Value, Refusal> {
    let spec: Value = body(request)?;
    let mut faults = state.faults();
    faults.apply(&spec).map_err(bad_request)?;
    Ok(faults.describe())
}

fn obo_policy(state: &State, request: &Request) -> Result<Value, Refusal> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Policy {
        user_oid: String,
        #[serde(default)]
        resource: Option<String>,
        demand: String,
    }
    let policy: Policy = body(request)?;
    if !ids::is_guid(&policy.user_oid) {
        return Err(bad_request("user_oid must be a GUID"));
    }
    let demand = match policy.demand.as_str() {
        "mfa" => Some(Demand::Mfa {
            policy_id: ids::guid(),
        }),
        "consent" => Some(Demand::Consent),
        "none" => None,
        _ => return Err(bad_request("demand must be one of mfa, consent, none")),
    };
    state
        .directory()
        .set_demand(&policy.user_oid, policy.resource.as_deref(), demand);
    Ok(json!({"user_oid": policy.user_oid, "resource": policy.resource, "demand": policy.demand}))
}

fn resources(state: &State, request: &Request) -> Result<Value, Refusal> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Register {
        resource: String,
    }
    let register: Register = body(request)?;
    let resource = register.resource;
    if resource.is_empty()
        || resource.ends_with("/.default")
        || resource
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad_request(
            "resource must be a resource identifier such as api://<app id>",
        ));
    }
    state.directory().add_resource(&resource);
    Ok(json!({"resource": resource}))
}

fn settings(state: &State, request: &Request) -> Result<Value, Refusal> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Settings {
        token_lifetime_seconds: Option<i64>,
        key_vault_page_size: Option<usize>,
    }
    let settings: Settings = body(request)?;
    if let Some(size) = settings.key_vault_page_size {
        if !(1..=MAX_PAGE_SIZE).contains(&size) {
            return Err(bad_request("key_vault_page_size must be between 1 and 25"));
        }
        state.vault().page_size = size;
    }
    let mut directory = state.directory();
    if let Some(lifetime) = settings.token_lifetime_seconds {
        if !(1..=86_400).contains(&lifetime) {
            return Err(bad_request(
                "token_lifetime_seconds must be between 1 and 86400",
            ));
        }
        directory.token_lifetime = lifetime;
    }
    Ok(json!({
        "token_lifetime_seconds": directory.token_lifetime,
        "key_vault_page_size": state.vault().page_size,
    }))
}
