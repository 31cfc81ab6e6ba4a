//! Entry points for the coverage-guided fuzz targets in `fuzz/` (feature `fuzzing`; never in a deployed
//! build). Each one runs hostile bytes through the very functions the broker uses on them, so a target
//! exercises the production rules rather than a copy; the targets assert what an accepted input implies.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use azure_core::error::{CheckSuccessOptions, check_success};
use azure_core::http::headers::Headers;
use azure_core::http::{RawResponse, Response};
use bytes::Bytes;
use futures_util::FutureExt;
use jsonwebtoken::DecodingKey;
use warp::http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use crate::azure::key_vault;
use crate::broker::allowlist::{self, AllowlistParseError};
use crate::broker::caller::Caller;
use crate::broker::error::{CallerError, LoadFailure, UpstreamError, UpstreamErrorKind};
use crate::broker::exchange;
use crate::broker::ids::ObjectId;
use crate::broker::jwks::{self, KeySet};
use crate::broker::policy::Policy;
use crate::broker::policy::compile;
use crate::broker::policy::document::DocumentError;
use crate::broker::scope::TargetScope;
use crate::broker::validation::{TokenRules, key_id};
use crate::http::error::ApiError;
use crate::http::get_sp_token::{self, GetSpTokenRequest};
use crate::http::request::RequestParts;
use crate::http::token::{self, ParsedRequest, TokenRequest};
use crate::secret::{Secret, SecretJson};
use crate::settings::{Settings, SettingsError};

/// The tenant, broker client id and issuers the fuzzed tokens are checked against.
pub const TENANT: &str = "6f1c2b7e-3d4a-4e5f-8a9b-0c1d2e3f4a5b";
pub const BROKER: &str = "0b5e9c3a-7f2d-4a61-9c8e-2d4b6a8f1e37";
pub const V1_ISSUER: &str = "https://sts.windows.net/6f1c2b7e-3d4a-4e5f-8a9b-0c1d2e3f4a5b/";
pub const V2_ISSUER: &str =
    "https://login.microsoftonline.com/6f1c2b7e-3d4a-4e5f-8a9b-0c1d2e3f4a5b/v2.0";
/// The `kid` under which the fuzzing key is registered.
pub const KID: &str = "fuzz-key";
/// Clock skew allowed, as the broker's default.
pub const SKEW: Duration = Duration::from_secs(120);

/// A validator whose key set holds exactly one RSA key, the fuzzing key.
pub struct FixedTenant {
    rules: TokenRules,
    keys: KeySet,
}

impl FixedTenant {
    /// `modulus_b64url`: the fuzzing key's modulus (exponent 65537), as a JWKS `n` field.
    pub fn new(modulus_b64url: &str) -> Result<Self, jsonwebtoken::errors::Error> {
        let key = DecodingKey::from_rsa_components(modulus_b64url, "AQAB")?;
        let rules = TokenRules {
            tenant: TENANT.parse().map_err(|_| invalid_constant())?,
            client_id: BROKER.parse().map_err(|_| invalid_constant())?,
            skew: SKEW,
        };
        let keys = KeySet::new(
            [(KID.to_owned(), key)].into(),
            [V1_ISSUER.to_owned(), V2_ISSUER.to_owned()],
        );
        Ok(Self { rules, keys })
    }

    /// A request's `Authorization` values through the route's rules: exactly one bearer, its key id,
    /// then the signature and every claim rule. Values that are not header values are left out, as
    /// the HTTP layer never delivers them.
    pub fn authenticate(&self, authorization: &[&[u8]]) -> Result<Caller, CallerError> {
        let mut headers = HeaderMap::new();
        for value in authorization {
            if let Ok(value) = HeaderValue::from_bytes(value) {
                headers.append(header::AUTHORIZATION, value);
            }
        }
        let bearer = RequestParts {
            method: Method::POST,
            headers,
            body: Ok(Bytes::new()),
        }
        .bearer()?;
        let kid = key_id(bearer.expose())?;
        self.rules.verify(bearer.expose(), &kid, &self.keys)
    }
}

fn invalid_constant() -> jsonwebtoken::errors::Error {
    jsonwebtoken::errors::ErrorKind::InvalidKeyFormat.into()
}

/// A `POST /api/GetSPToken` body sent as `application/json`, read as the route reads it.
pub fn get_sp_token_request(body: &[u8]) -> Result<TargetScope, ApiError> {
    let request: GetSpTokenRequest = json_request(body).json_body()?;
    get_sp_token::target_scope(&request)
}

/// A `POST /api/token` body sent as `application/json`, read as the route reads it.
pub fn token_request(body: &[u8]) -> Result<ParsedRequest, ApiError> {
    let request: TokenRequest = json_request(body).json_body()?;
    token::parse(request)
}

fn json_request(body: &[u8]) -> RequestParts {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    RequestParts {
        method: Method::POST,
        headers,
        body: Ok(Bytes::copy_from_slice(body)),
    }
}

/// An answer of Entra's token endpoint: the issued token and its lifetime in seconds, or the
/// classified error. A status outside 100-999 is an invalid response, as the HTTP client would say.
pub fn token_endpoint_answer(
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Result<(SecretJson, u64), UpstreamError> {
    let status = StatusCode::from_u16(status)
        .map_err(|_| UpstreamError::new(UpstreamErrorKind::InvalidResponse))?;
    exchange::read_answer(status, retry_after, body)
}

/// A JWKS document: how many of its keys the broker would verify with, or `None` if it is not one.
pub fn jwks_answer(body: &[u8]) -> Option<usize> {
    serde_json::from_slice(body)
        .ok()
        .map(|document| jwks::usable_keys(document).len())
}

/// Key Vault's answer to a secret read, checked as the SDK's pipeline checks it (success is 200 only),
/// then read as the broker reads it: the value or why there is none, and whether the broker would take
/// the answer as a refusal of its token (and retry once with a fresh one).
pub fn key_vault_answer(status: u16, body: &[u8]) -> (Result<Secret, LoadFailure>, bool) {
    let raw = RawResponse::from_bytes(status.into(), Headers::new(), body.to_vec());
    let options = CheckSuccessOptions {
        success_codes: &[200],
    };
    // A RawResponse is already in memory: the check never waits.
    let Some(checked) = check_success(raw, Some(options)).now_or_never() else {
        return (Err(LoadFailure::Unreachable), false);
    };
    let read = key_vault::secret_value(checked.map(Response::from));
    let token_refused = read.as_ref().is_err_and(key_vault::is_token_refused);
    let value = key_vault::value_of("allowlist", read).map(|secret| secret.value);
    (value, token_refused)
}

/// The allowlist secret's value (comma- or whitespace-separated ids, or a JSON array of ids).
pub fn allowlist_secret(text: &str) -> Result<HashSet<ObjectId>, AllowlistParseError> {
    allowlist::parse(text)
}

/// A grants policy document (docs/policy.md), parsed and compiled as the policy source does.
pub fn policy_document(bytes: &[u8]) -> Result<Policy, Vec<DocumentError>> {
    compile::from_bytes(bytes).map(|(_, policy)| policy)
}

/// The settings with `name` (e.g. `BROKER_ALLOWED_MSI_OIDS`) set to `value` beside the required ones.
pub fn settings_with(name: &str, value: &str) -> Result<Settings, SettingsError> {
    let vars: BTreeMap<&str, &str> = [
        ("BROKER_TENANT_ID", TENANT),
        ("BROKER_CLIENT_ID", BROKER),
        ("BROKER_CLIENT_SECRET", "fuzzing-secret"),
        (name, value),
    ]
    .into();
    Settings::from_lookup(|key| vars.get(key).map(|v| (*v).to_owned()))
}
