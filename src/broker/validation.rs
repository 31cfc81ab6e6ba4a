//! "Is this a genuine access token from our tenant, for us?": RS256 against the tenant's published keys,
//! issuer, tenant, audience, lifetime and token-shape rules, then user-versus-app from the token's own
//! claims. A token already fully validated is remembered (by digest) until its own expiry.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, Validation, errors::ErrorKind};
use moka::future::Cache;
use serde::Deserialize;

use crate::broker::caller::{Caller, CallerKind};
use crate::broker::digest::Digest;
use crate::broker::error::{BrokerError, CallerError};
use crate::broker::ids::{ClientId, Guid, TenantId};
use crate::broker::jwks::JwksCache;
use crate::broker::timed::{Timed, TimedExpiry};
use crate::secret::Secret;

/// How many validated caller tokens are remembered.
const VALIDATED_CAPACITY: u64 = 20_000;
/// Longest display string kept from a token.
const MAX_DISPLAY: usize = 256;

pub struct CallerValidator {
    jwks: Arc<JwksCache>,
    tenant: TenantId,
    client_id: ClientId,
    skew: Duration,
    validated: Cache<Digest, Timed<Arc<Caller>>>,
}

/// The claims the broker reads. Unknown claims are ignored; a duplicated known claim fails parsing.
#[derive(Deserialize)]
struct Claims {
    iss: String,
    tid: String,
    oid: String,
    exp: u64,
    iat: u64,
    ver: Option<String>,
    idtyp: Option<String>,
    scp: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
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
            tenant,
            client_id,
            skew,
            validated: Cache::builder()
                .max_capacity(VALIDATED_CAPACITY)
                .expire_after(TimedExpiry)
                .build(),
        }
    }

    pub async fn validate(&self, token: &Secret) -> Result<(Arc<Caller>, bool), BrokerError> {
        let digest = Digest::of(&[token.expose().as_bytes()]);
        if let Some(hit) = self.validated.get(&digest).await {
            if hit.value.expires_at > now() && self.jwks.is_trusted(&hit.value.kid) {
                return Ok((hit.value, true));
            }
        }
        let caller = Arc::new(self.validate_fully(token.expose()).await?);
        let ttl = Duration::from_secs(caller.expires_at.saturating_sub(now()));
        self.validated
            .insert(digest, Timed::new(caller.clone(), ttl))
            .await;
        Ok((caller, false))
    }

    async fn validate_fully(&self, token: &str) -> Result<Caller, BrokerError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| CallerError::Malformed)?;
        // Only RS256. Trusting the header's `alg` is how "HS256 signed with the public key" forgeries
        // get in. `jku`, `x5u`, `jwk` and `x5c` are never consulted: keys come from the tenant's JWKS.
        if header.alg != Algorithm::RS256 {
            return Err(CallerError::AlgorithmNotAllowed.into());
        }
        let kid = header.kid.ok_or(CallerError::MissingKeyId)?;
        let keys = self.jwks.key_set_for(&kid).await?;
        let key = keys.key(&kid).ok_or(CallerError::UnknownKey)?;

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
        Ok(Caller {
            kind: kind_of(&claims)?,
            oid: claims.oid.parse().map_err(|_| CallerError::MissingClaim)?,
            tenant: self.tenant.clone(),
            display: display_of(&claims),
            scopes: claims
                .scp
                .as_deref()
                .unwrap_or_default()
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            roles: claims.roles,
            expires_at: claims.exp,
            kid,
        })
    }

    fn check_claims(&self, claims: &Claims, issuers: &[String; 2]) -> Result<(), CallerError> {
        if claims.iat > now() + self.skew.as_secs() {
            return Err(CallerError::IssuedInFuture);
        }
        if claims.tid.parse::<Guid>().ok().as_ref() != Some(&self.tenant) {
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
        let app = app.ok_or(CallerError::NotAnAccessToken)?;
        if app.eq_ignore_ascii_case(self.client_id.as_str()) {
            return Err(CallerError::BrokerItself);
        }
        Ok(())
    }
}

/// User or app, from `idtyp` when present, else from the presence of delegated scopes.
fn kind_of(claims: &Claims) -> Result<CallerKind, CallerError> {
    let has_scp = claims.scp.as_deref().is_some_and(|s| !s.trim().is_empty());
    match (claims.idtyp.as_deref(), has_scp) {
        (Some("user") | None, true) => Ok(CallerKind::User),
        (Some("app") | None, false) => Ok(CallerKind::Msi),
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

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
