//! `GET /api/health`: readiness and why, for operators and probes. Anonymous, so it says nothing about
//! callers, tokens, secrets, allowlist or policy contents: only what is loaded, how old it is, why a
//! re-read failed or a policy document was refused, and counters.
//!
//! `ready` (200): everything loaded and current. `degraded` (200, still serving): a Key Vault value keeps
//! failing to re-read, is empty or unparseable, the allowlist is past its maximum age (app callers are
//! then refused), the policy document is refused or keeps failing to re-read, the client
//! certificate expires within 14 days, a new credential version was set aside (the previous one
//! serving), or Entra refuses the broker's credential. `not_ready` (503): signing keys, policy,
//! allowlist or the broker's credential never loaded, or its client certificate expired.

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use crate::broker::Broker;
use crate::broker::allowlist::AllowlistStatus;
use crate::broker::credential::{CredentialKind, Standing};
use crate::broker::credential_source::CredentialSource;
use crate::broker::freshness::{Freshness, ReadProblem};
use crate::clock::now;
use crate::http::error::{ApiError, ErrorContext};
use crate::http::reply::no_store_json;

pub const ROUTE: &str = "health";

pub async fn handle(method: Method, broker: Arc<Broker>) -> Response {
    if method != Method::GET {
        return ApiError::MethodNotAllowed { allow: "GET" }.into_response(&ErrorContext::default());
    }
    let keys = broker.jwks.current();
    let allowlist = broker.allowlist.as_ref().map(|a| a.status());
    let policy = broker.policy.status();
    let credential = CredentialHealth::of(&broker.credential);
    let secret = broker.credential.freshness();
    let mut reasons = reasons(
        [
            (keys.is_none(), "signing_keys_not_loaded"),
            (policy.revision.is_none(), "policy_not_loaded"),
            (
                allowlist.as_ref().is_some_and(|a| !a.loaded),
                "allowlist_not_loaded",
            ),
            (!credential.loaded, credential.not_loaded_reason()),
        ],
        allowlist.as_ref(),
        &policy.freshness,
    );
    reasons.extend(degraded_reason(
        &secret,
        credential_read_codes(broker.credential.kind()),
    ));
    reasons.extend(credential.expiry_reason());
    reasons.extend(credential.standing_reasons());
    let ready = credential.usable == credential.loaded
        && !reasons.iter().any(|reason| reason.ends_with("_not_loaded"));
    let status = match (ready, reasons.is_empty()) {
        (false, _) => "not_ready",
        (true, false) => "degraded",
        (true, true) => "ready",
    };
    let mut body = json!({
        "status": status,
        "reasons": reasons,
        "signing_keys": {
            "loaded": keys.is_some(),
            "count": keys.as_ref().map(|k| k.len()),
            "age_seconds": keys.as_ref().map(|k| k.loaded_at.elapsed().as_secs()),
        },
        "credential": with_freshness(json!(credential), &secret),
        "policy_revision": policy.revision,
        "policy": with_freshness(json!({
            "loaded": policy.revision.is_some(),
            "source": policy.origin.as_str(),
            "revision": policy.revision,
            "grants": policy.grants,
            "last_refusal": policy.last_refusal,
            "version": policy.version,
            "refused_version": policy.refused_version,
        }), &policy.freshness),
        "token_cache_entries": broker.cache.len(),
        "counters": broker.metrics.snapshot(),
    });
    // Kept for the secret kind, as before the credential section existed.
    if let (CredentialKind::Secret, Some(fields)) = (broker.credential.kind(), body.as_object_mut())
    {
        fields.insert(
            "client_secret".into(),
            with_freshness(json!({ "loaded": credential.loaded }), &secret),
        );
    }
    // The legacy allowlist only exists without a policy document.
    if let (Some(allowlist), Some(fields)) = (allowlist, body.as_object_mut()) {
        let section = json!({
            "loaded": allowlist.loaded,
            "stale": allowlist.stale,
            "max_age_seconds": allowlist.max_age.map(|age| age.as_secs()),
        });
        fields.insert(
            "allowlist".into(),
            with_freshness(section, &allowlist.freshness),
        );
    }
    let mut response = no_store_json(&body);
    if !ready {
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    }
    response
}

/// The reasons health is not `ready`: what never loaded, then what is degraded.
fn reasons(
    missing: [(bool, &'static str); 4],
    allowlist: Option<&AllowlistStatus>,
    policy: &Freshness,
) -> Vec<&'static str> {
    let mut reasons: Vec<&'static str> = missing
        .into_iter()
        .filter_map(|(missing, reason)| missing.then_some(reason))
        .collect();
    if let Some(allowlist) = allowlist {
        reasons.extend(degraded_reason(
            &allowlist.freshness,
            [
                "allowlist_empty",
                "allowlist_unparseable",
                "allowlist_refresh_failing",
            ],
        ));
        if allowlist.stale {
            reasons.push("allowlist_stale");
        }
    }
    // A policy document that is refused (invalid, or changed without a higher revision) or keeps
    // failing to re-read; the last good document keeps deciding meanwhile.
    reasons.extend(degraded_reason(
        policy,
        ["policy_refused", "policy_refused", "policy_refresh_failing"],
    ));
    reasons
}

/// The `[empty, unparseable, refresh failing]` codes of re-reads of the broker's credential, named
/// after what is read.
fn credential_read_codes(kind: CredentialKind) -> [&'static str; 3] {
    match kind {
        CredentialKind::Certificate => [
            "client_certificate_empty",
            "client_certificate_unparseable",
            "client_certificate_refresh_failing",
        ],
        CredentialKind::Secret | CredentialKind::ManagedIdentity => [
            "client_secret_empty",
            "client_secret_unparseable",
            "client_secret_refresh_failing",
        ],
    }
}

/// Why a re-read value is degraded, from its source's `[empty, unparseable, refresh failing]` codes.
fn degraded_reason(freshness: &Freshness, codes: [&'static str; 3]) -> Option<&'static str> {
    if !freshness.is_degraded() {
        return None;
    }
    let [empty, unparseable, refresh_failing] = codes;
    Some(match freshness.last_problem()? {
        ReadProblem::Empty => empty,
        ReadProblem::Unparseable => unparseable,
        ReadProblem::Unreachable | ReadProblem::Refused | ReadProblem::FileUnreadable => {
            refresh_failing
        }
    })
}

/// Adds the age of the last successful read, the failed reads since and the last failure's code.
fn with_freshness(mut section: Value, freshness: &Freshness) -> Value {
    if let Some(fields) = section.as_object_mut() {
        fields.insert(
            "age_seconds".into(),
            json!(freshness.age().map(|age| age.as_secs())),
        );
        fields.insert("failed_reads".into(), json!(freshness.failed_reads()));
        fields.insert(
            "last_failure".into(),
            json!(freshness.last_problem().map(|problem| problem.code())),
        );
    }
    section
}

/// Within this many days of its `notAfter`, the client certificate is named in `reasons` (still ready).
const CERTIFICATE_WARNING_DAYS: i64 = 14;
const DAY: i64 = 86_400;

/// What health says about the broker's own credential. Public facts only: the kind, a certificate's
/// thumbprint and validity, the identity's client id and how old its token is.
#[derive(Serialize)]
struct CredentialHealth {
    kind: &'static str,
    loaded: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    thumbprint_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_after: Option<String>,
    /// Whole days until the certificate's `notAfter` (negative once past).
    #[serde(skip_serializing_if = "Option::is_none")]
    days_left: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    /// `null` until the first token is held.
    #[serde(skip_serializing_if = "is_not_identity")]
    identity_token_age_seconds: Option<Option<u64>>,
    /// Entra refused the credential in force, even after a fresh identity token or another version.
    refused: bool,
    /// The version the source serves that is not used, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    set_aside: Option<SetAsideHealth>,
    /// Loaded, and not an expired certificate.
    #[serde(skip)]
    usable: bool,
}

#[derive(Serialize)]
struct SetAsideHealth {
    version: String,
    reason: &'static str,
}

fn is_not_identity(age: &Option<Option<u64>>) -> bool {
    age.is_none()
}

impl CredentialHealth {
    fn not_loaded_reason(&self) -> &'static str {
        match self.kind {
            "certificate" => "client_certificate_not_loaded",
            "managed-identity" => "managed_identity_not_loaded",
            _ => "client_secret_not_loaded",
        }
    }

    /// `client_certificate_expired` (not ready), or `client_certificate_expires_soon` within
    /// `CERTIFICATE_WARNING_DAYS` (degraded, still serving).
    fn expiry_reason(&self) -> Option<&'static str> {
        match self.days_left {
            Some(_) if !self.usable => Some("client_certificate_expired"),
            Some(days) if days < CERTIFICATE_WARNING_DAYS => {
                Some("client_certificate_expires_soon")
            }
            _ => None,
        }
    }

    /// `<credential>_refused` while Entra refuses the credential in force, and
    /// `<credential>_version_set_aside` while the source serves a version that is not used.
    fn standing_reasons(&self) -> impl Iterator<Item = &'static str> {
        let (refused, set_aside) = match self.kind {
            "certificate" => (
                "client_certificate_refused",
                "client_certificate_version_set_aside",
            ),
            "managed-identity" => (
                "managed_identity_token_refused",
                "managed_identity_version_set_aside",
            ),
            _ => ("client_secret_refused", "client_secret_version_set_aside"),
        };
        [
            self.refused.then_some(refused),
            self.set_aside.is_some().then_some(set_aside),
        ]
        .into_iter()
        .flatten()
    }

    fn of(source: &CredentialSource) -> Self {
        let kind = source.kind();
        let mut health = Self {
            kind: kind.as_str(),
            loaded: false,
            thumbprint_sha256: None,
            not_after: None,
            days_left: None,
            client_id: None,
            identity_token_age_seconds: None,
            refused: false,
            set_aside: source.served_set_aside().map(|set_aside| SetAsideHealth {
                version: set_aside.version.to_string(),
                reason: set_aside.reason.as_str(),
            }),
            usable: false,
        };
        let Ok(credential) = source.current() else {
            return health;
        };
        health.loaded = true;
        health.usable = true;
        health.refused = credential.standing() == Standing::Refused;
        if let Some(certificate) = credential.certificate_details() {
            let now = i64::try_from(now()).unwrap_or(i64::MAX);
            health.usable = certificate.not_after > now;
            health.days_left = Some((certificate.not_after - now).div_euclid(DAY));
            health.thumbprint_sha256 = Some(certificate.thumbprint_sha256.clone());
            health.not_after = rfc3339(certificate.not_after);
        }
        if kind == CredentialKind::ManagedIdentity {
            health.client_id = Some(credential.used.version.to_string());
            health.identity_token_age_seconds =
                Some(credential.identity_token_age().map(|age| age.as_secs()));
        }
        health
    }
}

fn rfc3339(unix: i64) -> Option<String> {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()?
        .format(&Rfc3339)
        .ok()
}
