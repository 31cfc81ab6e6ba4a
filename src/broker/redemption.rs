//! Redeeming a delegation bearer on `/api/token`: the bearer is parsed (a malformed one never reaches
//! the store), its record read within the revocation bound, the lane and audience checked against the
//! delegation, and the narrowing re-checked against the policy in force. The user lane's tokens come
//! from the refresh grant with the record's sealed refresh token; the newest refresh token is kept by a
//! compare-and-swap write, and a loser of a race continues with the winner's. The service lane's come
//! from client credentials. Downstream tokens are cached as every other token is.

use std::sync::Arc;
use std::time::Duration;

use crate::broker::authenticated::{Exchange, GrantRequest};
use crate::broker::caller::CallerKind;
use crate::broker::delegator::{authorize_delegator, resolve_all, subject_allows};
use crate::broker::digest::Digest;
use crate::broker::error::{BrokerError, CallerError, UpstreamError, UpstreamErrorKind};
use crate::broker::exchange::IssuedToken;
use crate::broker::ids::ObjectId;
use crate::broker::policy::{Policy, Principal};
use crate::broker::scope::TargetScope;
use crate::broker::token_cache::Grant;
use crate::broker::{Broker, Lane};
use crate::clock::now;
use crate::delegation::{
    self, BearerRefused, Counted, DelegationId, DelegationRecord, DelegationState, Delegations,
    Membership, SealedSecret, SubjectKind, Versioned,
};
use crate::secret::Secret;

/// How often a refresh refused as already redeemed re-reads the record for the winner's refresh
/// token, and how long it waits between reads (the winner may not have written it yet).
const RACE_RE_READS: u32 = 4;
const RACE_WAIT: Duration = Duration::from_millis(250);

/// What a redemption asks for, once the HTTP edge has read it.
pub struct Redeem<'a> {
    pub audience: &'a str,
    pub lane: Option<Lane>,
    pub revision: Option<u64>,
}

impl Broker {
    /// The delegation a bearer names, active, read within the revocation bound. Unknown, malformed,
    /// expired, revoked or altered bearers are all `invalid_token`.
    pub async fn authenticate_delegation(
        &self,
        bearer: &Secret,
    ) -> Result<Arc<Versioned>, BrokerError> {
        let refused = BrokerError::InvalidCaller(CallerError::DelegationBearerRefused);
        let delegations = self.delegations.as_ref().ok_or(refused.clone())?;
        let bearer = delegation::parse(bearer.expose()).map_err(|_| refused.clone())?;
        let now = now();
        let current = delegations
            .authenticate(&bearer, now)
            .await
            .map_err(|err| match err {
                BearerRefused::Invalid => refused.clone(),
                BearerRefused::Unavailable => BrokerError::DelegationStoreUnavailable,
            })?;
        match current.record.state_at(now) {
            DelegationState::Active => Ok(current),
            DelegationState::ReauthenticationRequired => {
                Err(BrokerError::ReauthenticationRequired {
                    claims: current.record.claims.clone(),
                })
            }
            DelegationState::Revoked | DelegationState::Expired => Err(refused),
        }
    }

    /// A token for one of the delegation's audiences, issued to its subject.
    pub async fn redeem_delegation(
        &self,
        current: &Versioned,
        policy: &Policy,
        ask: Redeem<'_>,
    ) -> Result<(TargetScope, Grant), BrokerError> {
        let record = &current.record;
        if ask.lane.is_some_and(|lane| lane != record.lane) {
            return Err(BrokerError::LaneNotDelegated);
        }
        if !record.audiences.iter().any(|alias| alias == ask.audience) {
            return Err(BrokerError::AudienceNotDelegated);
        }
        policy.check_revision(ask.revision)?;
        let scope = policy.resolve_audience(ask.audience)?;
        still_allowed(policy, record, &scope)?;
        let grant = match record.lane {
            Lane::Service => self.service_token(&scope).await?,
            Lane::User => self.delegated_user_token(record, &scope).await?,
        };
        if let Some(delegations) = &self.delegations {
            delegations.count(Counted::Redeemed);
            delegations.note_redemption(&record.id, now());
        }
        Ok((scope, grant))
    }

    /// The user lane through the token cache; a cold key runs the refresh grant.
    async fn delegated_user_token(
        &self,
        record: &DelegationRecord,
        scope: &TargetScope,
    ) -> Result<Grant, BrokerError> {
        let delegations = self
            .delegations
            .clone()
            .ok_or(BrokerError::DelegationsNotEnabled)?;
        let credential = self.credential.current()?;
        let key = Digest::of(&[
            b"delegation",
            self.client_id.as_str().as_bytes(),
            credential.version.as_bytes(),
            record.id.to_string().as_bytes(),
            scope.as_str().as_bytes(),
        ]);
        let refresh = Refresh {
            exchange: self.exchange(),
            delegations,
            id: record.id.clone(),
            scope: scope.clone(),
        };
        let fetch = move || {
            let (refresh, credential) = (refresh.clone(), credential.clone());
            Box::pin(async move { refresh.run(credential).await })
                as futures_util::future::BoxFuture<'static, _>
        };
        let outcome = self.cache.get_or_fetch(key, record.expires_at, fetch).await;
        match outcome {
            Err(err) if is_refusal_of_the_sign_in(&err.kind) => {
                Err(BrokerError::ReauthenticationRequired {
                    claims: claims_of(&err.kind),
                })
            }
            other => self.count(other),
        }
    }
}

/// Both sides must still hold what the delegation carries: the delegator's delegate grant, and in the
/// user lane the subject's own user-lane grants, as the policy in force states them. Neither token is
/// at hand, so each side is matched by its object id and by the app roles and groups its token carried
/// at creation.
fn still_allowed(
    policy: &Policy,
    record: &DelegationRecord,
    scope: &TargetScope,
) -> Result<(), BrokerError> {
    let scopes = std::slice::from_ref(scope);
    let delegator = Recorded {
        kind: CallerKind::Msi,
        oid: &record.delegator,
        membership: &record.delegator_membership,
    };
    authorize_delegator(policy, &delegator, record.lane, scopes)
        .map_err(|_| BrokerError::AudienceNotDelegated)?;
    if record.subject.kind == SubjectKind::User {
        let subject = Recorded {
            kind: CallerKind::User,
            oid: &record.subject.oid,
            membership: &record.subject.membership,
        };
        subject_allows(policy, &subject, scopes).map_err(|_| BrokerError::AudienceNotDelegated)?;
    }
    // The audiences were resolved once at creation; a policy that no longer defines one refuses it.
    resolve_all(policy, &record.audiences).map(|_| ())
}

/// One party of a delegation as its record keeps it, for re-checking grants without a token.
struct Recorded<'a> {
    kind: CallerKind,
    oid: &'a ObjectId,
    membership: &'a Membership,
}

impl Principal for Recorded<'_> {
    fn kind(&self) -> CallerKind {
        self.kind
    }
    fn oid(&self) -> &ObjectId {
        self.oid
    }
    fn roles(&self) -> &[String] {
        &self.membership.roles
    }
    fn groups(&self) -> &[ObjectId] {
        &self.membership.groups
    }
    fn group_overage(&self) -> bool {
        self.membership.group_overage
    }
}

/// Entra refused the sign-in behind the refresh token: revoked, expired, redeemed elsewhere, or a
/// Conditional Access demand.
fn is_refusal_of_the_sign_in(kind: &UpstreamErrorKind) -> bool {
    matches!(
        kind,
        UpstreamErrorKind::AssertionRejected
            | UpstreamErrorKind::InteractionRequired { .. }
            | UpstreamErrorKind::ConsentRequired
    )
}

fn claims_of(kind: &UpstreamErrorKind) -> Option<String> {
    match kind {
        UpstreamErrorKind::InteractionRequired { claims } => claims.clone(),
        _ => None,
    }
}

/// One refresh for the token cache: self-contained, so the cache may also run it ahead of expiry.
#[derive(Clone)]
struct Refresh {
    exchange: Exchange,
    delegations: Delegations,
    id: DelegationId,
    scope: TargetScope,
}

impl Refresh {
    async fn run(
        &self,
        credential: Arc<crate::broker::credential::ClientCredential>,
    ) -> Result<IssuedToken, UpstreamError> {
        let unavailable = || UpstreamError::new(UpstreamErrorKind::Unavailable);
        let mut current = self
            .delegations
            .read(&self.id)
            .await
            .map_err(|_| unavailable())?;
        loop {
            let sealed = current
                .record
                .refresh_token
                .clone()
                .ok_or_else(unavailable)?;
            let refresh_token = self
                .delegations
                .open_refresh_token(&current.record)
                .ok()
                .flatten()
                .ok_or_else(unavailable)?;
            let request = GrantRequest::Refresh {
                refresh_token,
                scope: self.scope.clone(),
            };
            let err = match self
                .exchange
                .run_user_grant(credential.clone(), &request)
                .await
            {
                Ok(grant) => {
                    self.keep_newest(&sealed, grant.refresh_token.as_ref())
                        .await;
                    return Ok(grant.token);
                }
                Err(err) => err,
            };
            if !is_refusal_of_the_sign_in(&err.kind) {
                return Err(err);
            }
            if err.kind == UpstreamErrorKind::AssertionRejected
                && let Some(newer) = self.successor_of(&sealed).await
            {
                current = newer;
                continue;
            }
            self.mark_reauthentication_required(claims_of(&err.kind))
                .await;
            return Err(err);
        }
    }

    /// After Entra refused `used` as already redeemed, the record holding a newer refresh token, if
    /// another instance writes one within a short wait.
    async fn successor_of(&self, used: &SealedSecret) -> Option<Versioned> {
        for attempt in 0..RACE_RE_READS {
            if attempt > 0 {
                tokio::time::sleep(RACE_WAIT).await;
            }
            let newer = self.delegations.read(&self.id).await.ok()?;
            if newer.record.refresh_token.as_ref() != Some(used) {
                return Some(newer);
            }
        }
        None
    }

    /// Writes the rotated refresh token over the one used, unless another instance has written a
    /// newer one since (then theirs is kept).
    async fn keep_newest(&self, used: &SealedSecret, rotated: Option<&Secret>) {
        let sealed = match rotated.map(|token| self.delegations.seal(&self.id, token)) {
            Some(Ok(sealed)) => sealed,
            Some(Err(err)) => {
                tracing::warn!(delegation = %self.id, error = %err, "rotated refresh token not sealed; the previous one is kept");
                return;
            }
            None => return,
        };
        let written = self
            .delegations
            .update(&self.id, |record| {
                if record.refresh_token.as_ref() != Some(used) {
                    return Ok::<_, ()>(false);
                }
                record.refresh_token = Some(sealed.clone());
                Ok(true)
            })
            .await;
        if written.is_err() {
            tracing::warn!(delegation = %self.id, "rotated refresh token not written; the store did not answer");
        }
    }

    async fn mark_reauthentication_required(&self, claims: Option<String>) {
        let written = self
            .delegations
            .update(&self.id, |record| {
                if record.state != DelegationState::Active {
                    return Ok::<_, ()>(false);
                }
                record.state = DelegationState::ReauthenticationRequired;
                record.claims = claims.clone();
                Ok(true)
            })
            .await;
        if written.is_err() {
            tracing::warn!(delegation = %self.id, "reauthentication_required not written; the store did not answer");
        }
    }
}
