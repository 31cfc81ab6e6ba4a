//! The record kept per delegation, and its strict JSON form at rest: unknown members, duplicate
//! members, wrong types and out-of-range values are refused, so a record written by a newer or a
//! tampered writer is never half-understood. The refresh token is held only sealed, bearers only as
//! hashes; nothing in a record is usable by whoever reads the store.

use serde::{Deserialize, Serialize};

use super::bearer::{Bearer, BearerHash};
use super::id::DelegationId;
use super::seal::SealedSecret;
use crate::broker::Lane;
use crate::broker::ids::{Guid, ObjectId};
use crate::broker::strict_json;

/// The record format this code writes and reads.
const FORMAT: u32 = 1;
/// Most audiences a delegation names.
pub const MAX_AUDIENCES: usize = 16;
/// Most characters in a label.
pub const MAX_LABEL_CHARS: usize = 128;
/// Deepest nesting of objects and arrays in a stored record.
const MAX_DEPTH: usize = 4;
/// Most app roles, and most groups, kept of one token: Entra lists at most 200 groups before it switches
/// to overage claims. A token with more keeps the first ones, which can only narrow what it matches.
pub const MAX_MEMBERSHIPS: usize = 256;
/// Most characters in an app role value.
const MAX_ROLE_CHARS: usize = 256;
/// Most bearer hashes kept: expired ones are dropped on every issue, so only a delegation rotated this
/// often within one bearer lifetime reaches it, and then the oldest is dropped.
pub const MAX_BEARERS: usize = 64;

/// Whose tokens a delegation redeems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    /// A user (the user lane): tokens come from the user's sealed refresh token.
    User,
    /// The broker's own service principal (the service lane).
    ServicePrincipal,
}

impl SubjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::ServicePrincipal => "service_principal",
        }
    }
}

/// The identity a delegation's tokens are issued to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub kind: SubjectKind,
    pub oid: ObjectId,
    /// The user principal name, or the service principal's name; for audit and answers only.
    pub display: String,
    /// The user's app roles and groups at creation (empty in the service lane).
    pub membership: Membership,
}

/// The app roles and groups a token carried when the delegation was created. No token is at hand at
/// redemption, so grants that admit by app role or by group are re-checked against these: the grant is
/// the policy's in force, the membership is the one proven at creation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Membership {
    /// App role values (`roles`), at most [`MAX_MEMBERSHIPS`].
    pub roles: Vec<String>,
    /// Group object ids (`groups`), at most [`MAX_MEMBERSHIPS`].
    pub groups: Vec<ObjectId>,
    /// The token carried overage claims instead of its groups: it matches no group grant.
    pub group_overage: bool,
}

impl Membership {
    /// What a validated token carried, bounded.
    pub fn of(roles: &[String], groups: &[ObjectId], group_overage: bool) -> Self {
        Self {
            roles: roles
                .iter()
                .filter(|role| role.chars().count() <= MAX_ROLE_CHARS)
                .take(MAX_MEMBERSHIPS)
                .cloned()
                .collect(),
            groups: groups.iter().take(MAX_MEMBERSHIPS).cloned().collect(),
            group_overage,
        }
    }
}

/// A delegation's state as stored. Expiry is also decided from `expires_at` (see
/// [`DelegationRecord::state_at`]), so a record need not be rewritten to expire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DelegationState {
    Active,
    Revoked,
    Expired,
    /// The refresh token was refused (`invalid_grant`, `interaction_required`); the delegator must have
    /// the user sign in again. `claims` holds the challenge.
    ReauthenticationRequired,
}

impl DelegationState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::ReauthenticationRequired => "reauthentication_required",
        }
    }
}

/// One bearer issued for the delegation: its hash and when it stops being accepted (unix seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BearerEntry {
    pub hash: BearerHash,
    pub expires_at: u64,
}

/// Everything the broker keeps about one delegation. Times are unix seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelegationRecord {
    pub id: DelegationId,
    /// The object id of the app that created the delegation; the only caller that may see it.
    pub delegator: ObjectId,
    /// The delegator's app roles at creation.
    pub delegator_membership: Membership,
    pub lane: Lane,
    /// Audience aliases of the policy, 1 to [`MAX_AUDIENCES`], without repeats.
    pub audiences: Vec<String>,
    pub subject: Subject,
    pub label: Option<String>,
    pub created: u64,
    pub expires_at: u64,
    pub state: DelegationState,
    /// The claims challenge of the refusal that made the state `reauthentication_required`.
    pub claims: Option<String>,
    /// The subject's newest refresh token, sealed (user lane only).
    pub refresh_token: Option<SealedSecret>,
    pub bearers: Vec<BearerEntry>,
    pub last_used: Option<u64>,
    pub redemptions: u64,
    /// The policy revision in force when the delegation was created.
    pub policy_revision: u64,
}

/// A stored record that does not parse, or breaks a rule. Says nothing more: the record is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("stored delegation record is malformed")]
pub struct CorruptRecord;

impl DelegationRecord {
    /// The state at `now`: a stored `active` past `expires_at` is `expired`.
    pub fn state_at(&self, now: u64) -> DelegationState {
        match self.state {
            DelegationState::Active if now >= self.expires_at => DelegationState::Expired,
            state => state,
        }
    }

    /// Whether `bearer` is one of this delegation's bearers and still within its own expiry and the
    /// delegation's. Every stored hash is compared (constant time each), so the answer takes the same
    /// time wherever the match is. The delegation's state is the caller's to check.
    pub fn accepts_bearer(&self, bearer: &Bearer, now: u64) -> bool {
        if bearer.id() != &self.id {
            return false;
        }
        let presented = bearer.hash();
        let mut accepted = false;
        for entry in &self.bearers {
            let matches = entry.hash.equals(&presented);
            accepted |= matches && now < entry.expires_at && now < self.expires_at;
        }
        accepted
    }

    /// Records a newly issued bearer: drops the expired entries, and the oldest beyond
    /// [`MAX_BEARERS`].
    pub fn add_bearer(&mut self, bearer: &Bearer, expires_at: u64, now: u64) {
        self.bearers.retain(|entry| entry.expires_at > now);
        self.bearers.push(BearerEntry {
            hash: bearer.hash(),
            expires_at,
        });
        let excess = self.bearers.len().saturating_sub(MAX_BEARERS);
        self.bearers.drain(..excess);
    }

    /// The record's stored form.
    pub fn to_json(&self) -> Vec<u8> {
        let stored = StoredRecord {
            format: FORMAT,
            id: self.id.clone(),
            delegator: self.delegator.to_string(),
            delegator_membership: StoredMembership::from(&self.delegator_membership),
            lane: match self.lane {
                Lane::User => StoredLane::User,
                Lane::Service => StoredLane::Service,
            },
            audiences: self.audiences.clone(),
            subject: StoredSubject {
                kind: self.subject.kind,
                oid: self.subject.oid.to_string(),
                display: self.subject.display.clone(),
                membership: StoredMembership::from(&self.subject.membership),
            },
            label: self.label.clone(),
            created: self.created,
            expires_at: self.expires_at,
            state: self.state,
            claims: self.claims.clone(),
            refresh_token: self.refresh_token.clone(),
            bearers: self.bearers.clone(),
            last_used: self.last_used,
            redemptions: self.redemptions,
            policy_revision: self.policy_revision,
        };
        // A struct of strings, numbers and enums always serializes.
        serde_json::to_vec(&stored).unwrap_or_default()
    }

    /// Parses a stored record strictly.
    pub fn from_json(bytes: &[u8]) -> Result<Self, CorruptRecord> {
        strict_json::object_member_names(bytes, MAX_DEPTH).map_err(|_| CorruptRecord)?;
        let stored: StoredRecord = serde_json::from_slice(bytes).map_err(|_| CorruptRecord)?;
        stored.validate()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum StoredLane {
    User,
    Service,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredSubject {
    #[serde(rename = "type")]
    kind: SubjectKind,
    oid: String,
    display: String,
    membership: StoredMembership,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredMembership {
    roles: Vec<String>,
    groups: Vec<String>,
    group_overage: bool,
}

impl From<&Membership> for StoredMembership {
    fn from(membership: &Membership) -> Self {
        Self {
            roles: membership.roles.clone(),
            groups: membership.groups.iter().map(ToString::to_string).collect(),
            group_overage: membership.group_overage,
        }
    }
}

impl StoredMembership {
    fn validate(self) -> Result<Membership, CorruptRecord> {
        let roles_ok = self.roles.len() <= MAX_MEMBERSHIPS
            && self
                .roles
                .iter()
                .all(|role| !role.is_empty() && role.chars().count() <= MAX_ROLE_CHARS);
        if !roles_ok || self.groups.len() > MAX_MEMBERSHIPS {
            return Err(CorruptRecord);
        }
        let groups = self
            .groups
            .iter()
            .map(|group| Guid::parse_canonical(group).map_err(|_| CorruptRecord))
            .collect::<Result<_, _>>()?;
        Ok(Membership {
            roles: self.roles,
            groups,
            group_overage: self.group_overage,
        })
    }
}

/// The JSON at rest. Every member is required (`null` where absent), so a missing one is an error.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredRecord {
    format: u32,
    id: DelegationId,
    delegator: String,
    delegator_membership: StoredMembership,
    lane: StoredLane,
    audiences: Vec<String>,
    subject: StoredSubject,
    #[serde(deserialize_with = "Option::deserialize")]
    label: Option<String>,
    created: u64,
    expires_at: u64,
    state: DelegationState,
    #[serde(deserialize_with = "Option::deserialize")]
    claims: Option<String>,
    #[serde(deserialize_with = "Option::deserialize")]
    refresh_token: Option<SealedSecret>,
    bearers: Vec<BearerEntry>,
    #[serde(deserialize_with = "Option::deserialize")]
    last_used: Option<u64>,
    redemptions: u64,
    policy_revision: u64,
}

impl StoredRecord {
    fn validate(self) -> Result<DelegationRecord, CorruptRecord> {
        let oid = |text: &str| Guid::parse_canonical(text).map_err(|_| CorruptRecord);
        let audiences_ok = (1..=MAX_AUDIENCES).contains(&self.audiences.len())
            && self.audiences.iter().enumerate().all(|(i, audience)| {
                !audience.is_empty() && !self.audiences.iter().take(i).any(|a| a == audience)
            });
        let label_ok = self
            .label
            .as_deref()
            .is_none_or(|label| label.chars().count() <= MAX_LABEL_CHARS);
        let lane = match self.lane {
            StoredLane::User => Lane::User,
            StoredLane::Service => Lane::Service,
        };
        let subject_ok = match lane {
            Lane::User => self.subject.kind == SubjectKind::User,
            Lane::Service => {
                self.subject.kind == SubjectKind::ServicePrincipal
                    && self.refresh_token.is_none()
                    && self.subject.membership.roles.is_empty()
                    && self.subject.membership.groups.is_empty()
            }
        };
        let valid = self.format == FORMAT
            && audiences_ok
            && label_ok
            && subject_ok
            && self.created <= self.expires_at
            && self.bearers.len() <= MAX_BEARERS;
        if !valid {
            return Err(CorruptRecord);
        }
        Ok(DelegationRecord {
            id: self.id,
            delegator: oid(&self.delegator)?,
            delegator_membership: self.delegator_membership.validate()?,
            lane,
            audiences: self.audiences,
            subject: Subject {
                kind: self.subject.kind,
                oid: oid(&self.subject.oid)?,
                display: self.subject.display,
                membership: self.subject.membership.validate()?,
            },
            label: self.label,
            created: self.created,
            expires_at: self.expires_at,
            state: self.state,
            claims: self.claims,
            refresh_token: self.refresh_token,
            bearers: self.bearers,
            last_used: self.last_used,
            redemptions: self.redemptions,
            policy_revision: self.policy_revision,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::delegation::seal::{KEY_BYTES, Keyring};
    use crate::secret::Secret;

    /// A user-lane record with one bearer, for tests across the module.
    pub(crate) fn user_record() -> (DelegationRecord, Bearer) {
        let id = DelegationId::generate().unwrap();
        let bearer = Bearer::generate(&id).unwrap();
        let keyring = Keyring::from_versions(vec![("v1".into(), vec![3; KEY_BYTES])]).unwrap();
        let mut record = DelegationRecord {
            refresh_token: Some(keyring.seal(&id, &Secret::new("refresh")).unwrap()),
            id,
            delegator: "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d".parse().unwrap(),
            delegator_membership: Membership {
                roles: vec!["Delegate.Sessions".into()],
                ..Membership::default()
            },
            lane: Lane::User,
            audiences: vec!["sql".into(), "storage".into()],
            subject: Subject {
                kind: SubjectKind::User,
                oid: "5c1f0e2d-8b3a-4f7c-9d6e-1a2b3c4d5e6f".parse().unwrap(),
                display: "alice@contoso.example".into(),
                membership: Membership {
                    roles: vec!["Analyst".into()],
                    groups: vec!["0b6a1c2d-3e4f-4a5b-8c7d-9e0f1a2b3c4d".parse().unwrap()],
                    group_overage: false,
                },
            },
            label: Some("session 4711".into()),
            created: 1_000,
            expires_at: 4_600,
            state: DelegationState::Active,
            claims: None,
            bearers: Vec::new(),
            last_used: None,
            redemptions: 0,
            policy_revision: 3,
        };
        record.add_bearer(&bearer, 1_900, 1_000);
        (record, bearer)
    }

    type Edit = dyn FnOnce(&mut serde_json::Value);

    fn reparsed(
        edit: impl FnOnce(&mut serde_json::Value),
    ) -> Result<DelegationRecord, CorruptRecord> {
        let (record, _) = user_record();
        let mut value: serde_json::Value = serde_json::from_slice(&record.to_json()).unwrap();
        edit(&mut value);
        DelegationRecord::from_json(&serde_json::to_vec(&value).unwrap())
    }

    #[test]
    fn a_record_round_trips_through_its_stored_form() {
        let (record, _) = user_record();
        assert_eq!(DelegationRecord::from_json(&record.to_json()), Ok(record));
    }

    #[test]
    fn unknown_missing_or_mistyped_members_are_refused() {
        let cases: Vec<(&str, Box<Edit>)> = vec![
            ("unknown member", Box::new(|v| v["extra"] = 1.into())),
            (
                "unknown subject member",
                Box::new(|v| v["subject"]["extra"] = 1.into()),
            ),
            (
                "missing member",
                Box::new(|v| _ = v.as_object_mut().unwrap().remove("claims")),
            ),
            ("string count", Box::new(|v| v["redemptions"] = "1".into())),
            ("negative time", Box::new(|v| v["created"] = (-1).into())),
            ("unknown state", Box::new(|v| v["state"] = "paused".into())),
            ("unknown lane", Box::new(|v| v["lane"] = "admin".into())),
            (
                "upper-case oid",
                Box::new(|v| v["delegator"] = "1A2B3C4D-5E6F-4A7B-8C9D-0E1F2A3B4C5D".into()),
            ),
            ("bad id", Box::new(|v| v["id"] = "x".into())),
            (
                "no audiences",
                Box::new(|v| v["audiences"] = serde_json::json!([])),
            ),
            (
                "repeated audience",
                Box::new(|v| v["audiences"] = serde_json::json!(["sql", "sql"])),
            ),
            ("future format", Box::new(|v| v["format"] = 2.into())),
            (
                "service lane with a user",
                Box::new(|v| v["lane"] = "service".into()),
            ),
            (
                "expiry before creation",
                Box::new(|v| v["expires_at"] = 10.into()),
            ),
            (
                "bad bearer hash",
                Box::new(|v| v["bearers"][0]["hash"] = "abc".into()),
            ),
            (
                "long label",
                Box::new(|v| v["label"] = "x".repeat(129).into()),
            ),
            (
                "missing membership",
                Box::new(|v| _ = v.as_object_mut().unwrap().remove("delegator_membership")),
            ),
            (
                "group that is not a GUID",
                Box::new(|v| v["subject"]["membership"]["groups"][0] = "analysts".into()),
            ),
            (
                "empty role",
                Box::new(|v| v["subject"]["membership"]["roles"][0] = "".into()),
            ),
            (
                "too many roles",
                Box::new(|v| {
                    v["delegator_membership"]["roles"] =
                        serde_json::json!(vec!["r"; MAX_MEMBERSHIPS + 1]);
                }),
            ),
            (
                "service lane with groups",
                Box::new(|v| {
                    v["lane"] = "service".into();
                    v["subject"]["type"] = "service_principal".into();
                    v["refresh_token"] = serde_json::Value::Null;
                }),
            ),
        ];
        for (case, edit) in cases {
            assert_eq!(reparsed(edit).err(), Some(CorruptRecord), "case `{case}`");
        }
    }

    #[test]
    fn the_fuzz_seeds_start_from_accepted_records() {
        let seeds =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/delegation_record");
        for seed in ["seed-00", "seed-01", "seed-02"] {
            let bytes = std::fs::read(seeds.join(seed)).unwrap();
            assert!(
                DelegationRecord::from_json(&bytes).is_ok(),
                "{seed} is refused"
            );
        }
        let unknown_member = std::fs::read(seeds.join("seed-03")).unwrap();
        assert_eq!(
            DelegationRecord::from_json(&unknown_member),
            Err(CorruptRecord)
        );
    }

    #[test]
    fn duplicate_members_and_non_objects_are_refused() {
        let (record, _) = user_record();
        let text = String::from_utf8(record.to_json()).unwrap();
        let duplicated = text.replacen("{", "{\"redemptions\":9,", 1);
        assert_eq!(
            DelegationRecord::from_json(duplicated.as_bytes()),
            Err(CorruptRecord)
        );
        assert_eq!(DelegationRecord::from_json(b"[]"), Err(CorruptRecord));
        assert_eq!(DelegationRecord::from_json(b""), Err(CorruptRecord));
    }

    #[test]
    fn a_bearer_is_accepted_only_until_its_own_and_the_delegations_expiry() {
        let (mut record, bearer) = user_record();
        assert!(record.accepts_bearer(&bearer, 1_899));
        assert!(!record.accepts_bearer(&bearer, 1_900));
        let other = Bearer::generate(&record.id).unwrap();
        assert!(!record.accepts_bearer(&other, 1_000));
        record.add_bearer(&other, 9_999, 1_000);
        assert!(record.accepts_bearer(&other, 4_599));
        assert!(!record.accepts_bearer(&other, 4_600));
    }

    #[test]
    fn issuing_a_bearer_drops_expired_ones_and_keeps_at_most_the_limit() {
        let (mut record, _) = user_record();
        for _ in 0..MAX_BEARERS + 5 {
            let bearer = Bearer::generate(&record.id).unwrap();
            record.add_bearer(&bearer, 3_000, 2_000);
        }
        assert_eq!(record.bearers.len(), MAX_BEARERS);
        assert!(record.bearers.iter().all(|entry| entry.expires_at == 3_000));
    }

    #[test]
    fn membership_of_a_token_keeps_at_most_the_limit_and_no_oversized_role() {
        let roles: Vec<String> = std::iter::once("r".repeat(MAX_ROLE_CHARS + 1))
            .chain((0..MAX_MEMBERSHIPS + 3).map(|i| format!("role{i}")))
            .collect();
        let group: ObjectId = "0b6a1c2d-3e4f-4a5b-8c7d-9e0f1a2b3c4d".parse().unwrap();
        let groups = vec![group; MAX_MEMBERSHIPS + 1];
        let membership = Membership::of(&roles, &groups, true);
        assert_eq!(membership.roles.len(), MAX_MEMBERSHIPS);
        assert_eq!(membership.roles[0], "role0");
        assert_eq!(membership.groups.len(), MAX_MEMBERSHIPS);
        assert!(membership.group_overage);
    }

    #[test]
    fn an_active_record_past_its_expiry_is_expired() {
        let (record, _) = user_record();
        assert_eq!(record.state_at(4_599), DelegationState::Active);
        assert_eq!(record.state_at(4_600), DelegationState::Expired);
    }
}
