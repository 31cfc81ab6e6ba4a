//! The control API under `/_emulator` (plain HTTP, JSON in and out): mint caller tokens, rotate and retire
//! signing keys, set secrets, inject faults, set the OBO policy, register resources, change settings and
//! read or reset the counters. Never faulted; answers 400 `{"error","error_description"}` to bad input.

use crate::directory::Demand;
use crate::http::{self, Request, Response};
use crate::ids;
use crate::keys::SigningKey;
use crate::mint::{self, MintRequest};
use crate::state::State;
use crate::vault::Vault;
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
    }
    if !Vault::is_valid_name(name) {
        return Err(bad_request(
            "secret names are 1-127 letters, digits and dashes",
        ));
    }
    let put: Put = body(request)?;
    let version = state.vault().set(name, &put.value);
    Ok(json!({
        "name": version.name,
        "version": version.version,
        "id": format!("{}secrets/{}/{}", state.config.vault_url, version.name, version.version),
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
    }
    let settings: Settings = body(request)?;
    let mut directory = state.directory();
    if let Some(lifetime) = settings.token_lifetime_seconds {
        if !(1..=86_400).contains(&lifetime) {
            return Err(bad_request(
                "token_lifetime_seconds must be between 1 and 86400",
            ));
        }
        directory.token_lifetime = lifetime;
    }
    Ok(json!({"token_lifetime_seconds": directory.token_lifetime}))
}
