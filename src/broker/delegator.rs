//! What a delegator (a trusted backend with an app-only token) does with delegations: create one for a
//! user or for the service lane, issue a fresh bearer, read it, revoke it. The narrowing rules are
//! checked here against the policy in force; the record's storage is `crate::delegation`'s.

use crate::broker::authenticated::GrantRequest;
use crate::broker::caller::{Caller, CallerKind};
use crate::broker::error::{BrokerError, UpstreamError, UpstreamErrorKind};
use crate::broker::policy::{Ask, Delegate, Grant, Policy, Principal};
use crate::broker::scope::TargetScope;
use crate::broker::{Broker, Lane};
use crate::clock::now;
use crate::delegation::{
    Bearer, Counted, DelegationId, DelegationRecord, DelegationState, Delegations, Membership,
    StoreError, Subject, SubjectKind, Versioned,
};
use crate::secret::Secret;

/// A creation request once its fields have their types and bounds (checked at the HTTP edge).
pub struct NewDelegation {
    pub lane: Lane,
    /// Audience aliases, 1 to 16, without repeats.
    pub audiences: Vec<String>,
    pub subject_token: Option<Secret>,
    pub lifetime_seconds: u64,
    pub label: Option<String>,
}

/// A delegation with a bearer just issued for it: the one answer that carries a bearer.
pub struct IssuedBearer {
    pub record: DelegationRecord,
    pub bearer: Bearer,
    /// Unix seconds.
    pub bearer_expires_at: u64,
}

impl Broker {
    fn delegations(&self) -> Result<&Delegations, BrokerError> {
        self.delegations
            .as_ref()
            .ok_or(BrokerError::DelegationsNotEnabled)
    }

    /// Creates a delegation for `delegator`. In the user lane the subject's token is validated as a
    /// caller token is, the subject's own user-lane grants must allow every audience, and On-Behalf-Of
    /// with `offline_access` gives the refresh token that is kept, sealed; the subject's access token
    /// is not kept.
    pub async fn create_delegation(
        &self,
        delegator: &Caller,
        policy: &Policy,
        request: NewDelegation,
    ) -> Result<IssuedBearer, BrokerError> {
        let delegations = self.delegations()?;
        let scopes = resolve_all(policy, &request.audiences)?;
        let grant = authorize_delegator(policy, delegator, request.lane, &scopes)?;
        let limits = grant.delegate.unwrap_or_default();
        if !(Delegate::MIN_LIFETIME_SECONDS..=limits.max_lifetime_seconds)
            .contains(&request.lifetime_seconds)
        {
            return Err(BrokerError::InvalidDelegationRequest(
                "lifetime_out_of_bounds",
            ));
        }
        let id = DelegationId::generate().map_err(|_| BrokerError::DelegationStoreUnavailable)?;
        let (subject, refresh_token) = match (request.lane, &request.subject_token) {
            (Lane::User, Some(token)) => self.user_subject(policy, token, &scopes).await?,
            (Lane::Service, None) => (self.service_subject()?, None),
            _ => {
                return Err(BrokerError::InvalidDelegationRequest(
                    "subject_token_lane_mismatch",
                ));
            }
        };
        let now = now();
        let mut record = DelegationRecord {
            id: id.clone(),
            delegator: delegator.oid.clone(),
            delegator_membership: membership_of(delegator),
            lane: request.lane,
            audiences: request.audiences,
            subject,
            label: request.label,
            created: now,
            expires_at: now + request.lifetime_seconds,
            state: DelegationState::Active,
            claims: None,
            refresh_token: None,
            bearers: Vec::new(),
            last_used: None,
            redemptions: 0,
            policy_revision: policy.revision,
        };
        if let Some(refresh_token) = refresh_token {
            record.refresh_token = Some(
                delegations
                    .seal(&id, &refresh_token)
                    .map_err(|_| BrokerError::DelegationStoreUnavailable)?,
            );
        }
        let (bearer, bearer_expires_at) = new_bearer(delegations, &record, now)?;
        record.add_bearer(&bearer, bearer_expires_at, now);
        let created = delegations.create(&record).await.map_err(store_error)?;
        delegations.count(Counted::Created);
        Ok(IssuedBearer {
            record: created.record,
            bearer,
            bearer_expires_at,
        })
    }

    /// A fresh bearer for an active delegation of `delegator`; earlier bearers stay valid.
    pub async fn rotate_delegation_bearer(
        &self,
        delegator: &Caller,
        policy: &Policy,
        id: &DelegationId,
    ) -> Result<IssuedBearer, BrokerError> {
        let delegations = self.delegations()?;
        let current = self.own_delegation(delegator, id).await?;
        let scopes = resolve_all(policy, &current.record.audiences)?;
        authorize_delegator(policy, delegator, current.record.lane, &scopes)?;
        let now = now();
        if current.record.state_at(now) != DelegationState::Active {
            return Err(BrokerError::DelegationNotActive);
        }
        let (bearer, bearer_expires_at) = new_bearer(delegations, &current.record, now)?;
        let updated = delegations
            .update(id, |record| {
                if record.state_at(now) != DelegationState::Active {
                    return Err(BrokerError::DelegationNotActive);
                }
                record.add_bearer(&bearer, bearer_expires_at, now);
                Ok(true)
            })
            .await
            .map_err(store_error)??;
        Ok(IssuedBearer {
            record: updated.record,
            bearer,
            bearer_expires_at,
        })
    }

    /// The delegation as the store holds it now, if `delegator` created it, with the redemptions this
    /// instance has counted and not yet written.
    pub async fn read_delegation(
        &self,
        delegator: &Caller,
        id: &DelegationId,
    ) -> Result<DelegationRecord, BrokerError> {
        let record = self.own_delegation(delegator, id).await?.record;
        Ok(self.delegations()?.with_pending_usage(record))
    }

    /// Revokes a delegation of `delegator`; revoking a revoked one changes nothing.
    pub async fn revoke_delegation(
        &self,
        delegator: &Caller,
        id: &DelegationId,
    ) -> Result<DelegationRecord, BrokerError> {
        let delegations = self.delegations()?;
        let revoked = delegations
            .update(id, |record| {
                if record.delegator != delegator.oid {
                    return Err(BrokerError::DelegationNotFound);
                }
                if record.state == DelegationState::Revoked {
                    return Ok(false);
                }
                record.state = DelegationState::Revoked;
                Ok(true)
            })
            .await
            .map_err(store_error)??;
        delegations.count(Counted::Revoked);
        Ok(revoked.record)
    }

    /// The record, if it exists and `delegator` created it: every other caller sees "not found".
    async fn own_delegation(
        &self,
        delegator: &Caller,
        id: &DelegationId,
    ) -> Result<Versioned, BrokerError> {
        let current = self.delegations()?.read(id).await.map_err(store_error)?;
        if current.record.delegator == delegator.oid {
            Ok(current)
        } else {
            Err(BrokerError::DelegationNotFound)
        }
    }

    /// The user behind `subject_token` and their refresh token: the token must pass the caller rules
    /// and be a user's, and the user's own user-lane grants must allow every scope.
    async fn user_subject(
        &self,
        policy: &Policy,
        subject_token: &Secret,
        scopes: &[TargetScope],
    ) -> Result<(Subject, Option<Secret>), BrokerError> {
        let subject = match self.authenticate(subject_token).await {
            Ok(subject) if subject.kind == CallerKind::User => subject,
            Ok(_) => return Err(BrokerError::InvalidSubjectToken(NOT_A_USER)),
            Err(BrokerError::InvalidCaller(err)) => {
                return Err(BrokerError::InvalidSubjectToken(err));
            }
            Err(BrokerError::InsufficientScope) => {
                return Err(BrokerError::InvalidSubjectToken(NOT_A_USER));
            }
            Err(other) => return Err(other),
        };
        subject_allows(policy, subject.as_ref(), scopes)?;
        let first = scopes.first().ok_or(BrokerError::AudienceNotAllowed)?;
        let credential = self.credential.current()?;
        let request = GrantRequest::OnBehalfOfOffline {
            assertion: subject_token.clone(),
            scope: first.clone(),
        };
        let grant = self.exchange().run_user_grant(credential, &request).await?;
        let refresh_token = grant.refresh_token.ok_or_else(|| {
            BrokerError::Upstream(UpstreamError::new(UpstreamErrorKind::InvalidResponse))
        })?;
        let subject = Subject {
            kind: SubjectKind::User,
            oid: subject.oid.clone(),
            display: subject.display.as_str().to_owned(),
            membership: membership_of(&subject),
        };
        Ok((subject, Some(refresh_token)))
    }

    /// The broker's own service principal, named by its client id (the broker does not learn its
    /// service principal's object id).
    fn service_subject(&self) -> Result<Subject, BrokerError> {
        let oid = self
            .client_id
            .as_str()
            .parse()
            .map_err(|_| BrokerError::DelegationStoreUnavailable)?;
        Ok(Subject {
            kind: SubjectKind::ServicePrincipal,
            oid,
            display: "token-broker".to_owned(),
            membership: Membership::default(),
        })
    }
}

/// The app roles and groups the caller's token carried, kept for the re-checks at redemption.
fn membership_of(caller: &Caller) -> Membership {
    Membership::of(&caller.roles, &caller.groups, caller.group_overage)
}

/// The subject token validated, but it is an app's (or lacks the user scope): not a user to act for.
const NOT_A_USER: crate::broker::error::CallerError =
    crate::broker::error::CallerError::AmbiguousIdentity;

/// Each alias resolved through the policy in force; an alias it does not define is outside every grant.
pub(crate) fn resolve_all(
    policy: &Policy,
    aliases: &[String],
) -> Result<Vec<TargetScope>, BrokerError> {
    aliases
        .iter()
        .map(|alias| {
            policy
                .resolve_audience(alias)
                .map_err(|_| BrokerError::AudienceNotAllowed)
        })
        .collect()
}

/// The delegate grant that covers the delegator, the lane and every scope. Only app callers delegate.
pub(crate) fn authorize_delegator<'p>(
    policy: &'p Policy,
    delegator: &impl Principal,
    lane: Lane,
    scopes: &[TargetScope],
) -> Result<&'p Grant, BrokerError> {
    if delegator.kind() != CallerKind::Msi {
        return Err(BrokerError::CallerNotAllowed);
    }
    policy
        .authorize_delegation(delegator, lane, scopes)
        .map_err(|err| match err {
            BrokerError::ScopeNotAllowed => BrokerError::AudienceNotAllowed,
            other => other,
        })
}

/// The subject's own user-lane grants must allow every scope.
pub(crate) fn subject_allows(
    policy: &Policy,
    subject: &impl Principal,
    scopes: &[TargetScope],
) -> Result<(), BrokerError> {
    for scope in scopes {
        let ask = Ask {
            lane: Lane::User,
            scope,
            via_alias: true,
        };
        match policy.authorize(subject, ask) {
            Ok(_) => {}
            Err(BrokerError::CallerNotAllowed | BrokerError::ScopeNotAllowed) => {
                return Err(BrokerError::AudienceNotAllowed);
            }
            Err(other) => return Err(other),
        }
    }
    Ok(())
}

/// A new bearer and its expiry: the configured bearer lifetime, never past the delegation's expiry.
fn new_bearer(
    delegations: &Delegations,
    record: &DelegationRecord,
    now: u64,
) -> Result<(Bearer, u64), BrokerError> {
    let bearer =
        Bearer::generate(&record.id).map_err(|_| BrokerError::DelegationStoreUnavailable)?;
    let lifetime = delegations.bounds().token_lifetime.as_secs();
    Ok((bearer, (now + lifetime).min(record.expires_at)))
}

/// A store failure as the routes answer it.
pub(crate) fn store_error(err: StoreError) -> BrokerError {
    match err {
        StoreError::NotFound | StoreError::Corrupt => BrokerError::DelegationNotFound,
        StoreError::AlreadyExists | StoreError::Conflict | StoreError::Unavailable => {
            BrokerError::DelegationStoreUnavailable
        }
    }
}
