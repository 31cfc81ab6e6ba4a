//! "May this caller have this?": the allowlist and user policy for the service principal's token, the
//! scope map, the audience map and the policy revision. Deny by default; no network calls here.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::broker::allowlist::Allowlist;
use crate::broker::caller::{Caller, CallerKind};
use crate::broker::error::BrokerError;
use crate::broker::scope::{AudienceMap, TargetScope, is_alias};
use crate::settings::UserAccess;

pub struct Policy {
    pub allowlist: Arc<Allowlist>,
    pub user_access: UserAccess,
    pub required_user_scope: Option<String>,
    pub allowed_scopes: BTreeSet<TargetScope>,
    pub audiences: AudienceMap,
    pub revision: u64,
}

impl Policy {
    /// A user token must carry the required delegated scope, when one is configured (RFC 6750 §3.1:
    /// insufficient_scope is a 403).
    pub fn check_user_scope(&self, caller: &Caller) -> Result<(), BrokerError> {
        match (&self.required_user_scope, caller.kind) {
            (Some(required), CallerKind::User) if !caller.scopes.iter().any(|s| s == required) => {
                Err(BrokerError::InsufficientScope)
            }
            _ => Ok(()),
        }
    }

    /// Whether the caller may receive the broker's own service-principal token.
    pub fn authorize_service(&self, caller: &Caller) -> Result<(), BrokerError> {
        let allowed = match caller.kind {
            CallerKind::Msi => self.allowlist.contains(&caller.oid)?,
            CallerKind::User => match &self.user_access {
                UserAccess::Denied => false,
                UserAccess::Allowlist(oids) => oids.contains(&caller.oid),
                UserAccess::AppRole(role) => caller.roles.iter().any(|r| r == role),
                UserAccess::Tenant => true,
            },
        };
        if allowed {
            Ok(())
        } else {
            Err(BrokerError::CallerNotAllowed)
        }
    }

    pub fn authorize_scope(&self, scope: &TargetScope) -> Result<(), BrokerError> {
        if self.allowed_scopes.contains(scope) {
            Ok(())
        } else {
            Err(BrokerError::ScopeNotAllowed)
        }
    }

    /// The scope an audience alias stands for. Malformed aliases are the HTTP layer's 400.
    pub fn resolve_audience(&self, alias: &str) -> Result<TargetScope, BrokerError> {
        if !is_alias(alias) {
            return Err(BrokerError::UnknownAudience);
        }
        self.audiences
            .resolve(alias)
            .cloned()
            .ok_or(BrokerError::UnknownAudience)
    }

    pub fn check_revision(&self, pinned: Option<u64>) -> Result<(), BrokerError> {
        match pinned {
            Some(pinned) if pinned != self.revision => Err(BrokerError::RevisionMismatch {
                pinned,
                current: self.revision,
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::ids::Guid;

    fn caller(kind: CallerKind, roles: &[&str], scopes: &[&str]) -> Caller {
        Caller {
            kind,
            oid: "3c4d5e6f-7a8b-4c9d-8e0f-2a3b4c5d6e7f"
                .parse::<Guid>()
                .unwrap(),
            tenant: "6f1c2b7e-3d4a-4e5f-8a9b-0c1d2e3f4a5b"
                .parse::<Guid>()
                .unwrap(),
            display: "ana@contoso.com".into(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            roles: roles.iter().map(|s| (*s).to_owned()).collect(),
            expires_at: 0,
            kid: "k".into(),
        }
    }

    fn policy(user_access: UserAccess) -> Policy {
        Policy {
            allowlist: Arc::new(Allowlist::new(BTreeSet::new(), None)),
            user_access,
            required_user_scope: Some("user_impersonation".into()),
            allowed_scopes: BTreeSet::new(),
            audiences: AudienceMap::new(Default::default()),
            revision: 3,
        }
    }

    #[test]
    fn users_are_denied_by_default() {
        let user = caller(CallerKind::User, &[], &["user_impersonation"]);
        assert_eq!(
            policy(UserAccess::Denied).authorize_service(&user),
            Err(BrokerError::CallerNotAllowed)
        );
        assert_eq!(policy(UserAccess::Tenant).authorize_service(&user), Ok(()));
    }

    #[test]
    fn app_role_admits_only_holders() {
        let policy = policy(UserAccess::AppRole("Broker.User".into()));
        assert_eq!(
            policy.authorize_service(&caller(CallerKind::User, &["Broker.User"], &[])),
            Ok(())
        );
        assert_eq!(
            policy.authorize_service(&caller(CallerKind::User, &["broker.user"], &[])),
            Err(BrokerError::CallerNotAllowed)
        );
    }

    #[test]
    fn apps_not_on_the_allowlist_are_refused() {
        let app = caller(CallerKind::Msi, &[], &[]);
        assert_eq!(
            policy(UserAccess::Tenant).authorize_service(&app),
            Err(BrokerError::CallerNotAllowed)
        );
    }

    #[test]
    fn required_scope_applies_to_users_only() {
        let policy = policy(UserAccess::Tenant);
        assert_eq!(
            policy.check_user_scope(&caller(CallerKind::User, &[], &["Files.Read"])),
            Err(BrokerError::InsufficientScope)
        );
        assert_eq!(
            policy.check_user_scope(&caller(CallerKind::Msi, &[], &[])),
            Ok(())
        );
    }

    #[test]
    fn pinned_revision_must_match() {
        let policy = policy(UserAccess::Denied);
        assert_eq!(policy.check_revision(None), Ok(()));
        assert_eq!(policy.check_revision(Some(3)), Ok(()));
        assert_eq!(
            policy.check_revision(Some(2)),
            Err(BrokerError::RevisionMismatch {
                pinned: 2,
                current: 3
            })
        );
    }
}
