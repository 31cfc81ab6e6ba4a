//! The built-in policy read from the legacy settings (the allowlist, `BROKER_USER_ACCESS`,
//! `BROKER_ALLOWED_SCOPES`, `BROKER_AUDIENCES`, `BROKER_POLICY_REVISION`) when no document is configured.
//! It decides exactly as those settings always have.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::broker::Lane;
use crate::broker::allowlist::Allowlist;
use crate::broker::ids::ObjectId;
use crate::broker::policy::{AppMatch, Callers, Grant, Policy, UserMatch};
use crate::broker::scope::{AudienceMap, TargetScope};

/// Which users may receive the broker's service-principal token (GetSPToken, or lane `service`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserAccess {
    /// No user (the default: a whole tenant is never admitted silently).
    Denied,
    /// Users whose object id is listed in `BROKER_ALLOWED_USER_OIDS`.
    Allowlist(BTreeSet<ObjectId>),
    /// Users whose token carries this app role (`roles`), assigned on the broker's enterprise app.
    AppRole(String),
    /// Every user of the tenant (explicit `BROKER_USER_ACCESS=tenant`).
    Tenant,
}

/// What the legacy settings say.
pub struct LegacySettings<'a> {
    pub allowlist: Arc<Allowlist>,
    pub user_access: &'a UserAccess,
    pub allowed_scopes: &'a BTreeSet<TargetScope>,
    pub audiences: &'a AudienceMap,
    pub revision: u64,
}

/// The equivalent policy: the service principal's token for allowlisted apps and the admitted users,
/// for the scope map on GetSPToken and any alias on `/api/token`; On-Behalf-Of for every user and alias.
pub fn built_in(settings: LegacySettings<'_>) -> Policy {
    let service = |name: &str, callers| Grant {
        name: name.into(),
        callers,
        lane: Lane::Service,
        scopes: settings.allowed_scopes.iter().cloned().collect(),
        aliases: settings.audiences.aliases().map(str::to_owned).collect(),
        allowed: settings.allowed_scopes.clone(),
        any_alias: true,
    };
    let mut grants = vec![service(
        "legacy-allowlisted-apps",
        Callers::Apps(AppMatch::Allowlist(settings.allowlist.clone())),
    )];
    let users = match settings.user_access {
        UserAccess::Denied => None,
        UserAccess::Allowlist(oids) => Some(UserMatch::Oids(oids.iter().cloned().collect())),
        UserAccess::AppRole(role) => Some(UserMatch::AppRole(role.clone())),
        UserAccess::Tenant => Some(UserMatch::Tenant),
    };
    if let Some(users) = users {
        grants.push(service("legacy-user-access", Callers::Users(users)));
    }
    grants.push(Grant {
        name: "legacy-users-on-behalf-of".into(),
        callers: Callers::Users(UserMatch::Tenant),
        lane: Lane::User,
        scopes: Vec::new(),
        aliases: settings.audiences.aliases().map(str::to_owned).collect(),
        allowed: BTreeSet::new(),
        any_alias: true,
    });
    Policy {
        revision: settings.revision,
        audiences: settings.audiences.clone(),
        grants,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::caller::CallerKind;
    use crate::broker::error::BrokerError;
    use crate::broker::policy::Ask;
    use crate::broker::policy::tests::{ANA, APP, caller};
    use crate::broker::scope::DEFAULT_SCOPES;

    fn policy(user_access: &UserAccess, allowlisted: bool) -> Policy {
        let fixed = if allowlisted {
            [APP.parse().unwrap()].into()
        } else {
            BTreeSet::new()
        };
        let scopes: BTreeSet<TargetScope> = DEFAULT_SCOPES[..1]
            .iter()
            .map(|s| TargetScope::parse(s).unwrap())
            .collect();
        let audiences = AudienceMap::new(
            [(
                "storage".to_owned(),
                TargetScope::parse("https://storage.azure.com/.default").unwrap(),
            )]
            .into(),
        );
        built_in(LegacySettings {
            allowlist: Arc::new(Allowlist::new(fixed, None)),
            user_access,
            allowed_scopes: &scopes,
            audiences: &audiences,
            revision: 1,
        })
    }

    fn sql() -> TargetScope {
        TargetScope::parse(DEFAULT_SCOPES[0]).unwrap()
    }

    #[test]
    fn users_are_denied_the_service_lane_by_default() {
        let user = caller(CallerKind::User, ANA, &[], &[]);
        let ask = Ask {
            lane: Lane::Service,
            scope: &sql(),
            via_alias: false,
        };
        assert_eq!(
            policy(&UserAccess::Denied, true)
                .authorize(&user, ask)
                .err(),
            Some(BrokerError::CallerNotAllowed)
        );
        assert!(
            policy(&UserAccess::Tenant, true)
                .authorize(&user, ask)
                .is_ok()
        );
    }

    #[test]
    fn app_role_admits_only_holders() {
        let policy = policy(&UserAccess::AppRole("Broker.User".into()), true);
        let ask = Ask {
            lane: Lane::Service,
            scope: &sql(),
            via_alias: false,
        };
        let holder = caller(CallerKind::User, ANA, &["Broker.User"], &[]);
        assert!(policy.authorize(&holder, ask).is_ok());
        let other = caller(CallerKind::User, ANA, &["broker.user"], &[]);
        assert_eq!(
            policy.authorize(&other, ask).err(),
            Some(BrokerError::CallerNotAllowed)
        );
    }

    #[test]
    fn apps_not_on_the_allowlist_are_refused() {
        let app = caller(CallerKind::Msi, APP, &[], &[]);
        let ask = Ask {
            lane: Lane::Service,
            scope: &sql(),
            via_alias: false,
        };
        assert_eq!(
            policy(&UserAccess::Tenant, false)
                .authorize(&app, ask)
                .err(),
            Some(BrokerError::CallerNotAllowed)
        );
    }

    #[test]
    fn the_scope_map_binds_get_sp_token_and_the_audience_map_binds_the_token_route() {
        let policy = policy(&UserAccess::Denied, true);
        let app = caller(CallerKind::Msi, APP, &[], &[]);
        let storage = TargetScope::parse("https://storage.azure.com/.default").unwrap();
        let direct = Ask {
            lane: Lane::Service,
            scope: &storage,
            via_alias: false,
        };
        assert_eq!(
            policy.authorize(&app, direct).err(),
            Some(BrokerError::ScopeNotAllowed)
        );
        let via_alias = Ask {
            via_alias: true,
            ..direct
        };
        assert_eq!(
            &*policy.authorize(&app, via_alias).unwrap().name,
            "legacy-allowlisted-apps"
        );
    }

    #[test]
    fn every_user_may_use_the_user_lane() {
        let policy = policy(&UserAccess::Denied, true);
        let user = caller(CallerKind::User, ANA, &[], &[]);
        let storage = TargetScope::parse("https://storage.azure.com/.default").unwrap();
        let ask = Ask {
            lane: Lane::User,
            scope: &storage,
            via_alias: true,
        };
        assert_eq!(
            &*policy.authorize(&user, ask).unwrap().name,
            "legacy-users-on-behalf-of"
        );
    }
}
