//! "May this caller have this?": the grants policy. A request is allowed when some grant matches the
//! caller, the lane and the resolved scope; deny by default. The policy comes from a document
//! (`document`, `compile`) or, without one, from the legacy settings (`legacy`), and `source` swaps it
//! whole on reload: for Key Vault, the version `history` puts in force; for a file, what `stable_file`
//! read. No network calls here.

pub mod compile;
pub mod document;
pub mod history;
pub mod legacy;
pub mod source;
pub mod stable_file;

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use crate::broker::Lane;
use crate::broker::allowlist::Allowlist;
use crate::broker::caller::{Caller, CallerKind};
use crate::broker::error::BrokerError;
use crate::broker::ids::ObjectId;
use crate::broker::scope::{AudienceMap, TargetScope, is_alias};

/// One loaded policy: immutable, shared by every request that decides through it.
pub struct Policy {
    /// What `/api/token` pins (`configurationRevision`) and health shows.
    pub revision: u64,
    pub audiences: AudienceMap,
    pub grants: Vec<Grant>,
}

pub struct Grant {
    /// Written to the audit line as `grant` when this grant allows a request.
    pub name: Arc<str>,
    pub callers: Callers,
    pub lane: Lane,
    /// The scopes as listed, for whoami.
    pub scopes: Vec<TargetScope>,
    /// The aliases as listed (every alias, for the built-in policy's any-alias grants), for whoami.
    pub aliases: Vec<String>,
    /// Every scope this grant allows: the listed scopes and what the listed aliases resolve to.
    pub allowed: BTreeSet<TargetScope>,
    /// Built-in policy only: any alias of the audience map, as the legacy settings allowed on
    /// `/api/token` independently of the GetSPToken scope map.
    pub any_alias: bool,
    /// A delegate grant lets its apps create delegations in its lane for what it allows, and gives
    /// them nothing to redeem themselves.
    pub delegate: Option<Delegate>,
}

/// What a delegate grant allows its delegations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delegate {
    /// The longest `lifetime_seconds` a delegation under this grant may ask for.
    pub max_lifetime_seconds: u64,
}

impl Delegate {
    /// The shortest delegation lifetime, and the longest maximum a grant may set (Entra's refresh
    /// tokens live 90 days).
    pub const MIN_LIFETIME_SECONDS: u64 = 60;
    pub const LONGEST_MAX_LIFETIME_SECONDS: u64 = 90 * 86_400;
}

impl Default for Delegate {
    /// `"delegate": true`: delegations of up to a day.
    fn default() -> Self {
        Self {
            max_lifetime_seconds: 86_400,
        }
    }
}

/// Who a grant is for.
pub enum Callers {
    /// App-only tokens (managed identities, service principals).
    Apps(AppMatch),
    /// Delegated user tokens.
    Users(UserMatch),
}

pub enum AppMatch {
    Oids(HashSet<ObjectId>),
    /// An app role assigned to the caller on the broker's enterprise app (`roles`).
    AppRole(String),
    /// The legacy allowlist (settings merged with the Key Vault secret); fails closed until loaded.
    Allowlist(Arc<Allowlist>),
}

pub enum UserMatch {
    Tenant,
    Oids(HashSet<ObjectId>),
    AppRole(String),
    /// Membership from the token's `groups` claim. A token with group overage markers matches no group
    /// grant, whatever its `groups` claim says: its list is not the whole membership, and the broker
    /// makes no Graph calls.
    Groups(HashSet<ObjectId>),
}

/// What a request asks for: a lane and a scope, reached through an alias (`/api/token`) or named
/// directly (GetSPToken).
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    pub lane: Lane,
    pub scope: &'a TargetScope,
    pub via_alias: bool,
}

/// What grants match on: a caller's validated token, or what a delegation recorded of one (borrowed,
/// so a re-check at every redemption copies nothing).
pub trait Principal {
    fn kind(&self) -> CallerKind;
    fn oid(&self) -> &ObjectId;
    /// App roles (`roles`).
    fn roles(&self) -> &[String];
    /// Group object ids (`groups`).
    fn groups(&self) -> &[ObjectId];
    /// The token named its groups elsewhere instead of listing them.
    fn group_overage(&self) -> bool;
}

impl Principal for Caller {
    fn kind(&self) -> CallerKind {
        self.kind
    }
    fn oid(&self) -> &ObjectId {
        &self.oid
    }
    fn roles(&self) -> &[String] {
        &self.roles
    }
    fn groups(&self) -> &[ObjectId] {
        &self.groups
    }
    fn group_overage(&self) -> bool {
        self.group_overage
    }
}

impl Callers {
    pub fn matches(&self, caller: &impl Principal) -> Result<bool, BrokerError> {
        let has_role = |role: &String| caller.roles().iter().any(|r| r == role);
        Ok(match (self, caller.kind()) {
            (Self::Apps(apps), CallerKind::Msi) => match apps {
                AppMatch::Oids(oids) => oids.contains(caller.oid()),
                AppMatch::AppRole(role) => has_role(role),
                AppMatch::Allowlist(allowlist) => allowlist.contains(caller.oid())?,
            },
            (Self::Users(users), CallerKind::User) => match users {
                UserMatch::Tenant => true,
                UserMatch::Oids(oids) => oids.contains(caller.oid()),
                UserMatch::AppRole(role) => has_role(role),
                UserMatch::Groups(groups) => {
                    !caller.group_overage() && caller.groups().iter().any(|g| groups.contains(g))
                }
            },
            _ => false,
        })
    }
}

impl Grant {
    fn allows(&self, ask: &Ask<'_>) -> bool {
        self.lane == ask.lane
            && (self.allowed.contains(ask.scope) || (self.any_alias && ask.via_alias))
    }
}

impl Policy {
    /// The first grant that allows `ask` for `caller`. Refused with `CallerNotAllowed` when no grant
    /// in the lane matches the caller at all, and `ScopeNotAllowed` when some do but none covers the
    /// scope.
    /// Delegate grants never allow a request of their own.
    pub fn authorize(&self, caller: &impl Principal, ask: Ask<'_>) -> Result<&Grant, BrokerError> {
        let mut caller_in_lane = false;
        let redeemable = self
            .grants
            .iter()
            .filter(|g| g.lane == ask.lane && g.delegate.is_none());
        for grant in redeemable {
            if !grant.callers.matches(caller)? {
                continue;
            }
            if grant.allows(&ask) {
                return Ok(grant);
            }
            caller_in_lane = true;
        }
        Err(if caller_in_lane {
            BrokerError::ScopeNotAllowed
        } else {
            BrokerError::CallerNotAllowed
        })
    }

    /// The first delegate grant of `lane` that matches the delegator and allows every one of `scopes`
    /// (resolved from aliases). Refused with `CallerNotAllowed` when no delegate grant of the lane
    /// matches the delegator, and `ScopeNotAllowed` when some do but none covers every scope.
    pub fn authorize_delegation(
        &self,
        delegator: &impl Principal,
        lane: Lane,
        scopes: &[TargetScope],
    ) -> Result<&Grant, BrokerError> {
        let mut delegator_in_lane = false;
        let delegating = self
            .grants
            .iter()
            .filter(|g| g.lane == lane && g.delegate.is_some());
        for grant in delegating {
            if !grant.callers.matches(delegator)? {
                continue;
            }
            let covers = scopes.iter().all(|scope| {
                grant.allows(&Ask {
                    lane,
                    scope,
                    via_alias: true,
                })
            });
            if covers {
                return Ok(grant);
            }
            delegator_in_lane = true;
        }
        Err(if delegator_in_lane {
            BrokerError::ScopeNotAllowed
        } else {
            BrokerError::CallerNotAllowed
        })
    }

    /// The grants that match `caller`, in document order (whoami).
    pub fn grants_for(&self, caller: &Caller) -> Result<Vec<&Grant>, BrokerError> {
        let mut matching = Vec::new();
        for grant in &self.grants {
            if grant.callers.matches(caller)? {
                matching.push(grant);
            }
        }
        Ok(matching)
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
pub(crate) mod tests {
    use super::*;
    use crate::broker::ids::Guid;

    pub const ANA: &str = "3c4d5e6f-7a8b-4c9d-8e0f-2a3b4c5d6e7f";
    pub const APP: &str = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
    pub const GROUP: &str = "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a";

    pub fn caller(kind: CallerKind, oid: &str, roles: &[&str], groups: &[&str]) -> Caller {
        Caller {
            kind,
            oid: oid.parse::<Guid>().unwrap(),
            tenant: "6f1c2b7e-3d4a-4e5f-8a9b-0c1d2e3f4a5b".parse().unwrap(),
            app_id: None,
            display: "ana@contoso.com".into(),
            scopes: vec!["user_impersonation".into()],
            roles: roles.iter().map(|s| (*s).to_owned()).collect(),
            groups: groups.iter().map(|g| g.parse().unwrap()).collect(),
            group_overage: false,
            expires_at: 0,
            kid: "k".into(),
        }
    }

    fn scope(text: &str) -> TargetScope {
        TargetScope::parse(text).unwrap()
    }

    fn grant(name: &str, callers: Callers, lane: Lane, scopes: &[&str]) -> Grant {
        let scopes: Vec<TargetScope> = scopes.iter().map(|s| scope(s)).collect();
        Grant {
            name: name.into(),
            callers,
            lane,
            allowed: scopes.iter().cloned().collect(),
            scopes,
            aliases: vec![],
            any_alias: false,
            delegate: None,
        }
    }

    const SQL: &str = "https://database.windows.net/.default";
    const STORAGE: &str = "https://storage.azure.com/.default";

    fn policy() -> Policy {
        Policy {
            revision: 3,
            audiences: AudienceMap::new(Default::default()),
            grants: vec![
                grant(
                    "app-sql",
                    Callers::Apps(AppMatch::Oids([APP.parse().unwrap()].into())),
                    Lane::Service,
                    &[SQL],
                ),
                grant(
                    "group-storage",
                    Callers::Users(UserMatch::Groups([GROUP.parse().unwrap()].into())),
                    Lane::User,
                    &[STORAGE],
                ),
            ],
        }
    }

    fn ask(lane: Lane, text: &TargetScope) -> Ask<'_> {
        Ask {
            lane,
            scope: text,
            via_alias: false,
        }
    }

    #[test]
    fn the_first_matching_grant_allows() {
        let policy = policy();
        let app = caller(CallerKind::Msi, APP, &[], &[]);
        let sql = scope(SQL);
        let grant = policy.authorize(&app, ask(Lane::Service, &sql)).unwrap();
        assert_eq!(&*grant.name, "app-sql");
    }

    #[test]
    fn a_caller_with_grants_elsewhere_is_refused_the_scope() {
        let policy = policy();
        let app = caller(CallerKind::Msi, APP, &[], &[]);
        let storage = scope(STORAGE);
        assert_eq!(
            policy.authorize(&app, ask(Lane::Service, &storage)).err(),
            Some(BrokerError::ScopeNotAllowed)
        );
    }

    #[test]
    fn a_caller_without_grants_in_the_lane_is_refused() {
        let policy = policy();
        let member = caller(CallerKind::User, ANA, &[], &[GROUP]);
        let storage = scope(STORAGE);
        assert!(policy.authorize(&member, ask(Lane::User, &storage)).is_ok());
        assert_eq!(
            policy
                .authorize(&member, ask(Lane::Service, &storage))
                .err(),
            Some(BrokerError::CallerNotAllowed)
        );
        let outsider = caller(CallerKind::User, ANA, &[], &[]);
        assert_eq!(
            policy.authorize(&outsider, ask(Lane::User, &storage)).err(),
            Some(BrokerError::CallerNotAllowed)
        );
    }

    #[test]
    fn group_overage_matches_no_group_grant_even_beside_a_groups_claim() {
        let policy = policy();
        let mut overage = caller(CallerKind::User, ANA, &[], &[GROUP]);
        overage.group_overage = true;
        assert!(policy.grants_for(&overage).unwrap().is_empty());
    }

    #[test]
    fn app_grants_never_match_users_with_the_same_oid() {
        let policy = policy();
        let user = caller(CallerKind::User, APP, &[], &[]);
        assert!(policy.grants_for(&user).unwrap().is_empty());
    }

    #[test]
    fn a_delegate_grant_allows_delegations_but_nothing_to_redeem() {
        let mut policy = policy();
        let mut delegating = grant(
            "delegate-sql",
            Callers::Apps(AppMatch::Oids([ANA.parse().unwrap()].into())),
            Lane::User,
            &[SQL],
        );
        delegating.delegate = Some(Delegate::default());
        policy.grants.push(delegating);
        let delegator = caller(CallerKind::Msi, ANA, &[], &[]);
        let (sql, storage) = (scope(SQL), scope(STORAGE));

        let grant = policy
            .authorize_delegation(&delegator, Lane::User, std::slice::from_ref(&sql))
            .unwrap();
        assert_eq!(&*grant.name, "delegate-sql");
        assert_eq!(
            policy
                .authorize_delegation(&delegator, Lane::User, &[sql.clone(), storage])
                .err(),
            Some(BrokerError::ScopeNotAllowed)
        );
        assert_eq!(
            policy
                .authorize_delegation(&delegator, Lane::Service, std::slice::from_ref(&sql))
                .err(),
            Some(BrokerError::CallerNotAllowed)
        );
        assert_eq!(
            policy.authorize(&delegator, ask(Lane::User, &sql)).err(),
            Some(BrokerError::CallerNotAllowed)
        );
        let app = caller(CallerKind::Msi, APP, &[], &[]);
        assert_eq!(
            policy
                .authorize_delegation(&app, Lane::Service, std::slice::from_ref(&sql))
                .err(),
            Some(BrokerError::CallerNotAllowed),
            "an ordinary grant does not delegate"
        );
    }

    #[test]
    fn pinned_revision_must_match() {
        let policy = policy();
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
