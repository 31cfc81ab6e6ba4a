//! The control API under `/_emulator` (plain HTTP, JSON in and out): mint caller tokens, rotate and retire
//! signing keys, set secrets, make and register (or remove) the broker's certificates, add or revoke its
//! federated credentials, read the client assertions presented, inject faults, set the OBO policy,
//! revoke a user's sessions, register resources, change settings, move the clock forward and read or
//! reset the counters. Never faulted; answers 400 `{"error","error_description"}` to bad input.

use crate::control_credentials::{certificates, federated};
use crate::control_input::{Refusal, bad_request, body, found};
use crate::directory::Demand;
use crate::http::{self, Request, Response};
use crate::keys::SigningKey;
use crate::mint::{self, MintRequest};
use crate::state::State;
use crate::vault::{MAX_PAGE_SIZE, Vault};
use crate::{clock, ids};
use serde::Deserialize;
use serde_json::{Value, json};
use warp::http::{Method, StatusCode};

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
        (&Method::POST, ["users", oid, "revoke-sessions"]) => revoke_sessions(state, oid),
        (&Method::POST, ["clock"]) => advance_clock(request),
        (&Method::POST, ["resources"]) => resources(state, request),
        (&Method::POST, ["settings"]) => settings(state, request),
        (&Method::GET, ["stats"]) => Ok(state.stats.snapshot()),
        (&Method::POST, ["stats", "reset"]) => {
            state.stats.reset();
            Ok(state.stats.snapshot())
        }
        (
            _,
            ["tokens" | "faults" | "obo-policy" | "resources" | "settings" | "clock"]
            | ["users", _, "revoke-sessions"]
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

/// What an admin's "revoke sessions" (Graph `revokeSignInSessions`) does to the user's refresh tokens.
fn revoke_sessions(state: &State, user_oid: &str) -> Result<Value, Refusal> {
    if !ids::is_guid(user_oid) {
        return Err(bad_request("the user id must be a GUID"));
    }
    let revoked = state.refresh_tokens().revoke_user(user_oid);
    Ok(json!({"value": true, "refresh_tokens_revoked": revoked}))
}

/// Moves the tenant's clock forward (tokens issued and checked after this use the new time).
fn advance_clock(request: &Request) -> Result<Value, Refusal> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Advance {
        advance_seconds: i64,
    }
    let advance: Advance = body(request)?;
    if !(1..=366 * 86_400).contains(&advance.advance_seconds) {
        return Err(bad_request(
            "advance_seconds must be between 1 and 31622400",
        ));
    }
    let offset = clock::advance(advance.advance_seconds);
    Ok(json!({"now": clock::now(), "offset_seconds": offset}))
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
        /// A redeemed refresh token cannot be redeemed again.
        strict_refresh_tokens: Option<bool>,
    }
    let settings: Settings = body(request)?;
    if let Some(size) = settings.key_vault_page_size {
        if !(1..=MAX_PAGE_SIZE).contains(&size) {
            return Err(bad_request("key_vault_page_size must be between 1 and 25"));
        }
        state.vault().page_size = size;
    }
    let strict = {
        let mut refresh_tokens = state.refresh_tokens();
        if let Some(strict) = settings.strict_refresh_tokens {
            refresh_tokens.strict = strict;
        }
        refresh_tokens.strict
    };
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
        "strict_refresh_tokens": strict,
    }))
}
