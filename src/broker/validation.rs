//! "Is this a genuine access token from our tenant, for us?": RS256 against the tenant's published keys,
//! issuer, tenant, audience, lifetime and token-shape rules, then user-versus-app from the token's own
//! claims. A token already fully validated is remembered (by digest) until its own expiry.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation, errors::ErrorKind};
use quick_cache::sync::Cache;
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::broker::caller::{Caller, CallerKind};
use crate::broker::digest::Digest;
use crate::broker::error::{BrokerError, CallerError};
use crate::broker::ids::{ClientId, Guid, TenantId};
use crate::broker::jwks::{JwksCache, KeySet};
use crate::broker::strict_json;
use crate::clock::now;
use crate::secret::Secret;

/// How many validated caller tokens are remembered.
const VALIDATED_CAPACITY: usize = 20_000;
/// Longest display string kept from a token.
const MAX_DISPLAY: usize = 256;
/// Deepest JSON nesting accepted in claims; Entra's access tokens nest two or three levels.
const MAX_CLAIMS_DEPTH: usize = 8;

pub struct CallerValidator {
    jwks: Arc<JwksCache>,
    rules: TokenRules,
    /// Validated callers by digest of their whole token. Read on every request, so a light cache whose
    /// hits take one shared shard lock; each entry is checked against its token's expiry and key when
    /// read, and expired ones are swept by `forget_expired`.
    validated: Cache<Digest, Arc<Caller>>,
}

/// The checks a token must pass against a given key set: pure, so tests and fuzzing reach it directly.
pub struct TokenRules {
    pub tenant: TenantId,
    pub client_id: ClientId,
    pub skew: Duration,
}

/// The claims the broker reads. Unknown claims are ignored, once `strict_segment` has checked every one.
#[derive(Deserialize)]
struct Claims {
    iss: String,
    tid: String,
    oid: String,
    sub: Option<String>,
    exp: u64,
    iat: u64,
    ver: Option<String>,
    idtyp: Option<String>,
    scp: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    /// Group overage markers: Entra names a Graph source for the groups (`_claim_names`,
    /// `_claim_sources`) or says there are some (`hasgroups`) instead of listing them. Any of them, with
    /// any value, counts.
    #[serde(rename = "_claim_names")]
    claim_names: Option<IgnoredAny>,
    #[serde(rename = "_claim_sources")]
    claim_sources: Option<IgnoredAny>,
    hasgroups: Option<IgnoredAny>,
    appid: Option<String>,
    azp: Option<String>,
    upn: Option<String>,
    preferred_username: Option<String>,
    unique_name: Option<String>,
    name: Option<String>,
    xms_mirid: Option<String>,
    app_displayname: Option<String>,
    nonce: Option<serde_json::Value>,
    at_hash: Option<serde_json::Value>,
}

impl CallerValidator {
    pub fn new(
        jwks: Arc<JwksCache>,
        tenant: TenantId,
        client_id: ClientId,
        skew: Duration,
    ) -> Self {
        Self {
            jwks,
            rules: TokenRules {
                tenant,
                client_id,
                skew,
            },
            validated: Cache::new(VALIDATED_CAPACITY),
        }
    }

    pub async fn validate(&self, token: &Secret) -> Result<(Arc<Caller>, bool), BrokerError> {
        let digest = Digest::of_bytes(token.expose().as_bytes());
        if let Some(caller) = self.validated.get(&digest) {
            if caller.expires_at > now() && self.jwks.is_trusted(&caller.kid) {
                return Ok((caller, true));
            }
            self.validated
                .remove_if(&digest, |current| Arc::ptr_eq(current, &caller));
        }
        let caller = Arc::new(self.validate_fully(token.expose()).await?);
        self.validated.insert(digest, caller.clone());
        Ok((caller, false))
    }

    /// Drops remembered callers whose tokens have expired (run periodically; memory stays bounded by
    /// the capacity regardless).
    pub fn forget_expired(&self) {
        let now = now();
        self.validated.retain(|_, caller| caller.expires_at > now);
    }

    async fn validate_fully(&self, token: &str) -> Result<Caller, BrokerError> {
        let kid = key_id(token)?;
        let keys = self.jwks.key_set_for(&kid).await?;
        Ok(self.rules.verify(token, &kid, &keys)?)
    }
}

/// The `kid` of an RS256 token's header. `jku`, `x5u`, `jwk` and `x5c` are never consulted: keys come
/// only from the tenant's JWKS.
pub fn key_id(token: &str) -> Result<String, CallerError> {
    let segment = token.split('.').next().unwrap_or_default();
    let names = strict_segment(segment)?;
    // RFC 7515 §4.1.11: a recipient that does not understand a `crit` extension must refuse the JWS.
    // The broker understands none (`b64: false` included), so any `crit` is refused.
    if names.iter().any(|name| name == "crit") {
        return Err(CallerError::CriticalHeader);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| CallerError::Malformed)?;
    // Only RS256. Trusting the header's `alg` is how "HS256 signed with the public key" forgeries get in.
    if header.alg != Algorithm::RS256 {
        return Err(CallerError::AlgorithmNotAllowed);
    }
    header.kid.ok_or(CallerError::MissingKeyId)
}

impl TokenRules {
    /// Verifies `token` (whose header named `kid`) against `keys` and every claim rule.
    pub fn verify(&self, token: &str, kid: &str, keys: &KeySet) -> Result<Caller, CallerError> {
        let key = keys.key(kid).ok_or(CallerError::UnknownKey)?;
        strict_segment(token.split('.').nth(1).ok_or(CallerError::Malformed)?)?;

        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = self.skew.as_secs();
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud"]);
        let client = self.client_id.as_str();
        validation.set_audience(&[format!("api://{client}"), client.to_owned()]);
        validation.set_issuer(&keys.issuers);
        let claims = jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map_err(|err| caller_error(err.kind()))?
            .claims;
        self.check_claims(&claims, &keys.issuers)?;
        caller_of(claims, self.tenant.clone(), kid)
    }

    fn check_claims(&self, claims: &Claims, issuers: &[String; 2]) -> Result<(), CallerError> {
        if claims.iat > now() + self.skew.as_secs() {
            return Err(CallerError::IssuedInFuture);
        }
        if Guid::parse_canonical(&claims.tid).ok().as_ref() != Some(&self.tenant) {
            return Err(CallerError::WrongTenant);
        }
        // A v1 issuer goes with `ver: 1.0` and `appid`; a v2 issuer with `ver: 2.0` and `azp`.
        let v1 = claims.iss == issuers[0];
        let (expected_ver, app) = if v1 {
            ("1.0", claims.appid.as_deref())
        } else {
            ("2.0", claims.azp.as_deref())
        };
        if claims.ver.as_deref() != Some(expected_ver) {
            return Err(CallerError::VersionMismatch);
        }
        // ID tokens carry a nonce or at_hash and no appid/azp; only access tokens are accepted.
        if claims.nonce.is_some() || claims.at_hash.is_some() {
            return Err(CallerError::NotAnAccessToken);
        }
        app.ok_or(CallerError::NotAnAccessToken)?;
        // Whatever the version, either claim naming the broker means the broker could have obtained the
        // token for itself.
        let names_broker = |id: &Option<String>| {
            id.as_deref()
                .is_some_and(|id| id.eq_ignore_ascii_case(self.client_id.as_str()))
        };
        if names_broker(&claims.appid) || names_broker(&claims.azp) {
            return Err(CallerError::BrokerItself);
        }
        Ok(())
    }
}

/// The caller a token's claims describe, after every rule has passed.
fn caller_of(claims: Claims, tenant: TenantId, kid: &str) -> Result<Caller, CallerError> {
    let kind = kind_of(&claims)?;
    let group_overage = claims.claim_names.is_some()
        || claims.claim_sources.is_some()
        || claims.hasgroups.is_some();
    Ok(Caller {
        kind,
        oid: Guid::parse_canonical(&claims.oid).map_err(|_| CallerError::MissingClaim)?,
        tenant,
        app_id: claims.appid.clone().or_else(|| claims.azp.clone()),
        display: display_of(&claims).into(),
        scopes: claims
            .scp
            .as_deref()
            .unwrap_or_default()
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        groups: claims
            .groups
            .iter()
            .filter_map(|g| g.parse().ok())
            .collect(),
        group_overage,
        roles: claims.roles,
        expires_at: claims.exp,
        kid: kid.to_owned(),
    })
}

/// The caller a token describes, read without verifying its signature or any other rule: for the
/// offline policy checker only, never for a request.
pub fn unverified_caller(token: &str) -> Result<Caller, CallerError> {
    let payload = token
        .trim()
        .split('.')
        .nth(1)
        .ok_or(CallerError::Malformed)?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| CallerError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&payload).map_err(|_| CallerError::MissingClaim)?;
    let tenant = Guid::parse_canonical(&claims.tid).map_err(|_| CallerError::MissingClaim)?;
    caller_of(claims, tenant, "")
}

/// The member names of one base64url segment, which must be strict JSON (`strict_json`): UTF-8, an
/// object, unique names at every level, nested at most `MAX_CLAIMS_DEPTH` deep.
fn strict_segment(segment: &str) -> Result<Vec<String>, CallerError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| CallerError::Malformed)?;
    strict_json::object_member_names(&bytes, MAX_CLAIMS_DEPTH).map_err(|_| CallerError::Malformed)
}

/// User or app, from `idtyp` when present, else from the presence of delegated scopes. A token with
/// neither is an app only when its subject is its object id, as in every app-only token Entra issues
/// (a user token's `sub` is a pairwise id): otherwise a user token without `scp` would pass for an app.
fn kind_of(claims: &Claims) -> Result<CallerKind, CallerError> {
    let has_scp = claims.scp.as_deref().is_some_and(|s| !s.trim().is_empty());
    match (claims.idtyp.as_deref(), has_scp) {
        (Some("user") | None, true) => Ok(CallerKind::User),
        (Some("app"), false) => Ok(CallerKind::Msi),
        (None, false) if claims.sub.as_deref() == Some(claims.oid.as_str()) => Ok(CallerKind::Msi),
        _ => Err(CallerError::AmbiguousIdentity),
    }
}

fn display_of(claims: &Claims) -> String {
    let candidates = if kind_of(claims) == Ok(CallerKind::User) {
        [
            &claims.upn,
            &claims.preferred_username,
            &claims.unique_name,
            &claims.name,
        ]
    } else {
        [
            &claims.xms_mirid,
            &claims.app_displayname,
            &claims.appid,
            &claims.azp,
        ]
    };
    let display = candidates
        .into_iter()
        .flatten()
        .find(|value| !value.trim().is_empty())
        .map_or(claims.oid.as_str(), String::as_str);
    display
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_DISPLAY)
        .collect()
}

fn caller_error(kind: &ErrorKind) -> CallerError {
    match kind {
        ErrorKind::InvalidSignature => CallerError::BadSignature,
        ErrorKind::ExpiredSignature => CallerError::Expired,
        ErrorKind::ImmatureSignature => CallerError::NotYetValid,
        ErrorKind::InvalidIssuer => CallerError::WrongIssuer,
        ErrorKind::InvalidAudience => CallerError::WrongAudience,
        ErrorKind::InvalidAlgorithm => CallerError::AlgorithmNotAllowed,
        ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) => {
            CallerError::MissingClaim
        }
        _ => CallerError::Malformed,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashMap;

    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::rsa::{KeyPair, KeySize};
    use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::DecodingKey;
    use serde_json::{Value, json};

    use super::*;

    const TENANT: &str = "6f1c2b7e-3d4a-4e5f-8a9b-0c1d2e3f4a5b";
    const BROKER: &str = "0b5e9c3a-7f2d-4a61-9c8e-2d4b6a8f1e37";
    const USER: &str = "3c4d5e6f-7a8b-4c9d-8e0f-2a3b4c5d6e7f";
    const V2_ISSUER: &str = "https://login.example/6f1c2b7e-3d4a-4e5f-8a9b-0c1d2e3f4a5b/v2.0";
    const V1_ISSUER: &str = "https://sts.windows.net/6f1c2b7e-3d4a-4e5f-8a9b-0c1d2e3f4a5b/";

    pub struct Signer {
        key: KeyPair,
        pub keys: KeySet,
    }

    impl Signer {
        pub fn new() -> Self {
            let key = KeyPair::generate(KeySize::Rsa2048).unwrap();
            let public = key.public_key();
            let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
            let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
            let keys = HashMap::from([(
                "k1".to_owned(),
                DecodingKey::from_rsa_components(&n, &e).unwrap(),
            )]);
            Self {
                key,
                keys: KeySet::new(keys, [V1_ISSUER.to_owned(), V2_ISSUER.to_owned()]),
            }
        }

        pub fn sign(&self, header: &Value, claims: &Value) -> String {
            self.sign_raw(header.to_string().as_bytes(), claims.to_string().as_bytes())
        }

        /// An RS256 token over exactly these header and payload bytes, JSON or not.
        pub fn sign_raw(&self, header: &[u8], payload: &[u8]) -> String {
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header),
                URL_SAFE_NO_PAD.encode(payload)
            );
            let mut signature = vec![0; self.key.public_modulus_len()];
            self.key
                .sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    input.as_bytes(),
                    &mut signature,
                )
                .unwrap();
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
        }
    }

    pub fn rules() -> TokenRules {
        TokenRules {
            tenant: TENANT.parse().unwrap(),
            client_id: BROKER.parse().unwrap(),
            skew: Duration::from_secs(120),
        }
    }

    pub fn user_claims() -> Value {
        let now = now();
        json!({
            "aud": format!("api://{BROKER}"), "iss": V2_ISSUER, "tid": TENANT, "oid": USER, "sub": "s",
            "iat": now - 10, "nbf": now - 10, "exp": now + 3600, "ver": "2.0", "idtyp": "user",
            "scp": "user_impersonation", "azp": "7c8d9e0f-1a2b-4c3d-8e4f-5a6b7c8d9e0f",
            "preferred_username": "ana@contoso.com", "name": "Ana Lima",
        })
    }

    fn header() -> Value {
        json!({"alg": "RS256", "typ": "JWT", "kid": "k1"})
    }

    fn verify(signer: &Signer, claims: &Value) -> Result<Caller, CallerError> {
        rules().verify(&signer.sign(&header(), claims), "k1", &signer.keys)
    }

    fn with(mut claims: Value, changes: Value) -> Value {
        for (name, value) in changes.as_object().unwrap() {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(name);
            } else {
                claims[name] = value.clone();
            }
        }
        claims
    }

    #[test]
    fn v2_user_token_yields_a_user_caller() {
        let signer = Signer::new();
        let caller = verify(&signer, &user_claims()).unwrap();
        assert_eq!(caller.kind, CallerKind::User);
        assert_eq!(caller.display.as_str(), "ana@contoso.com");
        assert_eq!(caller.oid.as_str(), USER);
        assert_eq!(caller.scopes, ["user_impersonation"]);
    }

    #[test]
    fn groups_are_read_and_overage_is_recognised() {
        let signer = Signer::new();
        let group = "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a";
        let listed = with(
            user_claims(),
            json!({"groups": [group, "Finance Analysts"]}),
        );
        let caller = verify(&signer, &listed).unwrap();
        assert_eq!(caller.groups, [group.parse::<Guid>().unwrap()]);
        assert!(!caller.group_overage);
        assert_eq!(
            caller.app_id.as_deref(),
            Some("7c8d9e0f-1a2b-4c3d-8e4f-5a6b7c8d9e0f")
        );
        let overage = with(
            user_claims(),
            json!({"_claim_names": {"groups": "src1"},
                   "_claim_sources": {"src1": {"endpoint": "https://graph.windows.net/t/users/u/getMemberObjects"}}}),
        );
        let caller = verify(&signer, &overage).unwrap();
        assert!(caller.group_overage && caller.groups.is_empty());
    }

    #[test]
    fn every_overage_marker_counts_whatever_else_the_token_carries() {
        let signer = Signer::new();
        let group = "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a";
        for marker in [
            json!({"_claim_names": {"groups": "src1"}}),
            json!({"_claim_names": {"other": "src1"}}),
            json!({"_claim_sources": {"src1": {"endpoint": "https://graph.microsoft.com/x"}}}),
            json!({"hasgroups": true}),
            json!({"hasgroups": false}),
        ] {
            let mut changes = marker.clone();
            changes["groups"] = json!([group]);
            let caller = verify(&signer, &with(user_claims(), changes)).unwrap();
            assert!(caller.group_overage, "{marker}");
        }
    }

    #[test]
    fn a_token_without_idtyp_or_scp_is_an_app_only_when_its_subject_is_its_object_id() {
        let signer = Signer::new();
        let neither = with(
            user_claims(),
            json!({"idtyp": null, "scp": null, "roles": ["Broker.Ingest"]}),
        );
        assert_eq!(
            verify(&signer, &neither).unwrap_err(),
            CallerError::AmbiguousIdentity
        );
        assert_eq!(
            verify(&signer, &with(neither.clone(), json!({"sub": null}))).unwrap_err(),
            CallerError::AmbiguousIdentity
        );
        let app = verify(&signer, &with(neither, json!({"sub": USER}))).unwrap();
        assert_eq!(app.kind, CallerKind::Msi);
    }

    #[test]
    fn an_unverified_read_describes_the_same_caller_for_the_offline_checker() {
        let signer = Signer::new();
        let token = signer.sign(
            &header(),
            &with(user_claims(), json!({"roles": ["Broker.User"]})),
        );
        let caller = unverified_caller(&token).unwrap();
        assert_eq!(
            caller,
            verify(
                &signer,
                &with(user_claims(), json!({"roles": ["Broker.User"]}))
            )
            .map(|c| Caller {
                kid: String::new(),
                ..c
            })
            .unwrap()
        );
        assert_eq!(
            unverified_caller("not.a-token"),
            Err(CallerError::Malformed)
        );
    }

    #[test]
    fn v1_app_token_yields_an_msi_caller_with_its_resource_id() {
        let signer = Signer::new();
        let claims = with(
            user_claims(),
            json!({"iss": V1_ISSUER, "ver": "1.0", "idtyp": "app", "scp": null, "azp": null,
                   "appid": "2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e", "aud": BROKER,
                   "xms_mirid": "/subscriptions/x/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/ws"}),
        );
        let caller = verify(&signer, &claims).unwrap();
        assert_eq!(caller.kind, CallerKind::Msi);
        assert!(
            caller
                .display
                .as_str()
                .ends_with("userAssignedIdentities/ws")
        );
    }

    #[test]
    fn claim_rules_reject_with_their_reason() {
        let signer = Signer::new();
        let now = now();
        let cases = [
            (json!({"exp": now - 600}), CallerError::Expired),
            (json!({"nbf": now + 600}), CallerError::NotYetValid),
            (json!({"iat": now + 600}), CallerError::IssuedInFuture),
            (
                json!({"aud": "https://graph.microsoft.com"}),
                CallerError::WrongAudience,
            ),
            (
                json!({"aud": "https://database.windows.net"}),
                CallerError::WrongAudience,
            ),
            (
                json!({"tid": "9e8d7c6b-5a49-4837-a625-1403f2e1d0c9"}),
                CallerError::WrongTenant,
            ),
            (
                json!({"iss": "https://login.example/common/v2.0"}),
                CallerError::WrongIssuer,
            ),
            (json!({"ver": "1.0"}), CallerError::VersionMismatch),
            (json!({"nonce": "n"}), CallerError::NotAnAccessToken),
            (json!({"azp": null}), CallerError::NotAnAccessToken),
            (json!({"azp": BROKER}), CallerError::BrokerItself),
            (json!({"idtyp": "app"}), CallerError::AmbiguousIdentity),
            (json!({"idtyp": "device"}), CallerError::AmbiguousIdentity),
            (json!({"oid": "not-a-guid"}), CallerError::MissingClaim),
            (
                json!({"oid": USER.to_uppercase()}),
                CallerError::MissingClaim,
            ),
            (
                json!({"oid": format!(" {USER}")}),
                CallerError::MissingClaim,
            ),
            (
                json!({"tid": TENANT.to_uppercase()}),
                CallerError::WrongTenant,
            ),
            (json!({"oid": null}), CallerError::Malformed),
            (json!({"exp": null}), CallerError::Malformed),
            (json!({"exp": "soon"}), CallerError::Malformed),
        ];
        for (changes, expected) in cases {
            let claims = with(user_claims(), changes.clone());
            assert_eq!(verify(&signer, &claims).unwrap_err(), expected, "{changes}");
        }
    }

    #[test]
    fn deeply_nested_claims_are_malformed() {
        let signer = Signer::new();
        let mut deep = json!("x");
        for _ in 0..MAX_CLAIMS_DEPTH {
            deep = json!({ "a": [deep] });
        }
        let claims = with(user_claims(), json!({ "deep": deep }));
        assert_eq!(
            verify(&signer, &claims).unwrap_err(),
            CallerError::Malformed
        );
    }

    #[test]
    fn signature_by_another_key_is_rejected() {
        let (signer, other) = (Signer::new(), Signer::new());
        let token = other.sign(&header(), &user_claims());
        assert_eq!(
            rules().verify(&token, "k1", &signer.keys).unwrap_err(),
            CallerError::BadSignature
        );
    }

    /// Verifies a token signed over exactly `header` and `payload`, the way the validator meets it.
    fn verify_raw(signer: &Signer, header: &[u8], payload: &[u8]) -> Result<Caller, CallerError> {
        let token = signer.sign_raw(header, payload);
        let kid = key_id(&token)?;
        rules().verify(&token, &kid, &signer.keys)
    }

    #[test]
    fn any_crit_header_is_refused_even_on_a_genuine_signature() {
        let signer = Signer::new();
        let payload = user_claims().to_string();
        for header in [
            json!({"alg": "RS256", "kid": "k1", "crit": ["foo"], "foo": 1}),
            json!({"alg": "RS256", "kid": "k1", "crit": ["b64"], "b64": false}),
            json!({"alg": "RS256", "kid": "k1", "crit": []}),
        ] {
            assert_eq!(
                verify_raw(&signer, header.to_string().as_bytes(), payload.as_bytes()).unwrap_err(),
                CallerError::CriticalHeader,
                "{header}"
            );
        }
        assert!(verify_raw(&signer, header().to_string().as_bytes(), payload.as_bytes()).is_ok());
    }

    #[test]
    fn either_appid_or_azp_naming_the_broker_is_refused_whatever_the_version() {
        let signer = Signer::new();
        let v1 = with(
            user_claims(),
            json!({"iss": V1_ISSUER, "ver": "1.0", "azp": null,
                   "appid": "7c8d9e0f-1a2b-4c3d-8e4f-5a6b7c8d9e0f"}),
        );
        assert!(verify(&signer, &v1).is_ok());
        let cases = [
            with(v1.clone(), json!({"azp": BROKER})),
            with(v1, json!({"azp": BROKER.to_uppercase()})),
            with(user_claims(), json!({"appid": BROKER})),
        ];
        for claims in cases {
            assert_eq!(
                verify(&signer, &claims).unwrap_err(),
                CallerError::BrokerItself,
                "{claims}"
            );
        }
    }

    #[test]
    fn duplicate_claims_anywhere_in_the_payload_are_malformed() {
        let signer = Signer::new();
        let claims = user_claims().to_string();
        let body = claims.trim_start_matches('{');
        for payload in [
            format!(r#"{{"oid":"9e8d7c6b-5a49-4837-a625-1403f2e1d0c9",{body}"#),
            format!(r#"{{"x":1,"x":2,{body}"#),
            format!(r#"{{"x":{{"y":{{"a":1,"a":1}}}},{body}"#),
            format!(r#"{{"x":[{{"oid":1,"oid":1}}],{body}"#),
        ] {
            assert_eq!(
                verify_raw(&signer, header().to_string().as_bytes(), payload.as_bytes())
                    .unwrap_err(),
                CallerError::Malformed,
                "{payload}"
            );
        }
        let header = br#"{"alg":"RS256","kid":"k1","kid":"k1"}"#;
        assert_eq!(
            verify_raw(&signer, header, claims.as_bytes()).unwrap_err(),
            CallerError::Malformed
        );
    }

    #[test]
    fn invalid_utf8_in_a_claim_nobody_reads_is_malformed() {
        let signer = Signer::new();
        let claims = user_claims().to_string();
        let body = claims.trim_start_matches('{').as_bytes();
        let cases: [Vec<u8>; 3] = [
            [br#"{"note":""#.as_slice(), b"\xff\xfe", br#"","#, body].concat(),
            [br#"{"note":"\udc00","#.as_slice(), body].concat(),
            [b"{\"\xc3\":1,".as_slice(), body].concat(),
        ];
        for payload in cases {
            assert_eq!(
                verify_raw(&signer, header().to_string().as_bytes(), &payload).unwrap_err(),
                CallerError::Malformed,
                "{}",
                String::from_utf8_lossy(&payload)
            );
        }
    }

    #[test]
    fn header_algorithm_is_pinned() {
        let forged = |alg: &str| {
            format!(
                "{}.{}.",
                URL_SAFE_NO_PAD.encode(json!({"alg": alg, "kid": "k1"}).to_string()),
                URL_SAFE_NO_PAD.encode(user_claims().to_string())
            )
        };
        assert_eq!(
            key_id(&forged("HS256")),
            Err(CallerError::AlgorithmNotAllowed)
        );
        assert_eq!(key_id(&forged("none")), Err(CallerError::Malformed));
        assert_eq!(key_id(&forged("RS256")), Ok("k1".to_owned()));
        assert_eq!(key_id("a.b"), Err(CallerError::Malformed));
    }
}
