//! `POST /_emulator/tokens`: caller tokens for tests, signed by the current, previous or an unpublished
//! key. Users get the v2 shape by default, MSI callers v1; `claims` and `header` override or (with null)
//! remove any claim or header field afterwards; `raw_claims` signs a payload string verbatim and
//! `raw_claims_base64url` any payload bytes. `groups` lists group ids; more than Entra's 200 (or
//! `group_overage`) gives the overage claims instead.

use crate::identities::{
    BROKER_CLIENT_ID, MSI_CALLER_APP_ID, MSI_CALLER_OID, MSI_CALLER_RESOURCE_ID, TENANT_ID,
    USER_CLIENT_APP_ID, USER_NAME, USER_OID, USER_UPN,
};
use crate::issue::{self, Claims};
use crate::keys::{KeyChoice, SigningKey};
use crate::state::State;
use crate::{clock, ids, jwt};
use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::sync::Arc;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    #[default]
    User,
    Msi,
}

/// The request body; every field is optional.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MintRequest {
    kind: Option<Kind>,
    version: Option<u8>,
    oid: Option<String>,
    upn: Option<String>,
    name: Option<String>,
    appid: Option<String>,
    scp: Option<String>,
    roles: Option<Vec<String>>,
    groups: Option<Vec<String>>,
    group_overage: Option<bool>,
    audience: Option<String>,
    tenant: Option<String>,
    lifetime_seconds: Option<i64>,
    nbf_offset_seconds: Option<i64>,
    iat_offset_seconds: Option<i64>,
    key: Option<KeyChoice>,
    claims: Option<Map<String, Value>>,
    /// A payload signed verbatim instead of the generated claims.
    raw_claims: Option<String>,
    /// The same as raw bytes in base64url, for payloads that are not UTF-8.
    raw_claims_base64url: Option<String>,
    header: Option<Map<String, Value>>,
}

/// Mints the token; the error is a sentence for the 400 answer.
pub async fn mint(state: &State, request: MintRequest) -> Result<String, String> {
    let kind = request.kind.unwrap_or_default();
    let version = request
        .version
        .unwrap_or(if kind == Kind::User { 2 } else { 1 });
    if version != 1 && version != 2 {
        return Err("version must be 1 or 2".into());
    }
    let key = signing_key(state, request.key.unwrap_or(KeyChoice::Current)).await?;
    let mut header = issue::header(&key);
    apply_overrides(&mut header, request.header.as_ref());
    if let Some(raw) = &request.raw_claims {
        return jwt::encode_raw(&header, raw.as_bytes(), &key).map_err(|error| error.to_string());
    }
    if let Some(encoded) = &request.raw_claims_base64url {
        let raw = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| "raw_claims_base64url must be unpadded base64url".to_owned())?;
        return jwt::encode_raw(&header, &raw, &key).map_err(|error| error.to_string());
    }
    let mut claims = claims(state, &request, kind, version);
    apply_overrides(&mut claims, request.claims.as_ref());
    jwt::encode(&header, &claims, &key).map_err(|error| error.to_string())
}

async fn signing_key(state: &State, choice: KeyChoice) -> Result<Arc<SigningKey>, String> {
    match choice {
        KeyChoice::Current => Ok(state.keys().current()),
        KeyChoice::Previous => state
            .keys()
            .previous()
            .ok_or_else(|| "there is no previous key: rotate first".to_owned()),
        KeyChoice::Unpublished => {
            if let Some(key) = state.keys().unpublished() {
                return Ok(key);
            }
            let key = tokio::task::spawn_blocking(SigningKey::generate)
                .await
                .map_err(|error| error.to_string())?
                .map_err(|error| error.to_string())?;
            Ok(state.keys_mut().set_unpublished(key))
        }
    }
}

fn claims(state: &State, request: &MintRequest, kind: Kind, version: u8) -> Claims {
    let now = clock::now();
    let tenant = request
        .tenant
        .clone()
        .unwrap_or_else(|| TENANT_ID.to_owned());
    let default_oid = if kind == Kind::User {
        USER_OID
    } else {
        MSI_CALLER_OID
    };
    let oid = request
        .oid
        .clone()
        .unwrap_or_else(|| default_oid.to_owned());
    let default_app = if kind == Kind::User {
        USER_CLIENT_APP_ID
    } else {
        MSI_CALLER_APP_ID
    };
    let appid = request
        .appid
        .clone()
        .unwrap_or_else(|| default_app.to_owned());
    let iat = now + request.iat_offset_seconds.unwrap_or(0);
    let mut claims = issue::object(json!({
        "aud": request.audience.clone().unwrap_or_else(|| format!("api://{BROKER_CLIENT_ID}")),
        "iss": if version == 2 { state.v2_issuer(&tenant) } else { State::v1_issuer(&tenant) },
        "iat": iat,
        "nbf": now + request.nbf_offset_seconds.unwrap_or(0),
        "exp": now + request.lifetime_seconds.unwrap_or(3600),
        "aio": ids::random_b64url(42),
        "oid": oid,
        "rh": format!("0.A{}.", ids::random_b64url(48)),
        // App-only tokens name the app itself; user tokens carry a pairwise subject.
        "sub": if kind == Kind::User { pairwise_subject(&oid, &appid) } else { oid.clone() },
        "tid": tenant,
        "uti": ids::random_b64url(16),
        "ver": if version == 2 { "2.0" } else { "1.0" },
        "idtyp": if kind == Kind::User { "user" } else { "app" },
    }));
    let scp = match kind {
        Kind::User => Some(
            request
                .scp
                .clone()
                .unwrap_or_else(|| "user_impersonation".to_owned()),
        ),
        Kind::Msi => request.scp.clone(),
    };
    let upn = request.upn.clone().unwrap_or_else(|| USER_UPN.to_owned());
    let name = request.name.clone().unwrap_or_else(|| USER_NAME.to_owned());
    let identity = match (kind, version) {
        (Kind::User, 2) => {
            json!({"azp": appid, "azpacr": "0", "name": name, "preferred_username": upn})
        }
        (Kind::User, _) => json!({
            "acr": "1", "amr": ["pwd"], "appid": appid, "appidacr": "0", "name": name,
            "unique_name": upn, "upn": upn,
        }),
        (Kind::Msi, 2) => json!({"azp": appid, "azpacr": "2", "xms_mirid": MSI_CALLER_RESOURCE_ID}),
        (Kind::Msi, _) => json!({
            "appid": appid, "appidacr": "2", "idp": State::v1_issuer(&tenant), "xms_mirid": MSI_CALLER_RESOURCE_ID,
        }),
    };
    claims.extend(issue::object(identity));
    if let Some(scp) = scp {
        claims.insert("scp".into(), json!(scp));
    }
    if let Some(roles) = &request.roles {
        claims.insert("roles".into(), json!(roles));
    }
    let groups = request.groups.as_deref().unwrap_or_default();
    if request.group_overage == Some(true) || groups.len() > MAX_TOKEN_GROUPS {
        // Entra's overage form: the groups are named by a Graph source instead of listed.
        claims.insert("_claim_names".into(), json!({"groups": "src1"}));
        claims.insert(
            "_claim_sources".into(),
            json!({"src1": {"endpoint": format!("https://graph.windows.net/{tenant_id}/users/{oid}/getMemberObjects", tenant_id = claims["tid"].as_str().unwrap_or_default())}}),
        );
    } else if request.groups.is_some() {
        claims.insert("groups".into(), json!(groups));
    }
    claims
}

/// Most groups Entra lists in a JWT before it switches to the overage claims.
const MAX_TOKEN_GROUPS: usize = 200;

/// Entra's `sub` is pairwise: stable for one user and one app, different across apps.
fn pairwise_subject(oid: &str, appid: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, format!("{oid}|{appid}").as_bytes()))
}

/// Sets each field to its override, or removes it when the override is null.
fn apply_overrides(target: &mut Map<String, Value>, overrides: Option<&Map<String, Value>>) {
    for (name, value) in overrides.into_iter().flatten() {
        if value.is_null() {
            target.remove(name);
        } else {
            target.insert(name.clone(), value.clone());
        }
    }
}
