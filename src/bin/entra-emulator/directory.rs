//! The tenant's mutable directory: which resources exist, the per-user OBO policy (MFA or consent
//! demands) and the lifetime of issued tokens.

use crate::identities;

/// What Entra demands before it issues an OBO token for a user and resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Demand {
    /// Conditional Access wants MFA; the id is the policy named in the `claims` challenge.
    Mfa { policy_id: String },
    /// The user has not consented to the broker for this resource.
    Consent,
}

struct OboRule {
    user_oid: String,
    resource: Option<String>,
    demand: Demand,
}

pub struct Directory {
    resources: Vec<String>,
    rules: Vec<OboRule>,
    /// Lifetime of issued tokens in seconds (`expires_in`).
    pub token_lifetime: i64,
}

/// Compares resource ids as Entra does for v1 resources: a trailing slash does not matter.
fn same_resource(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

impl Directory {
    pub fn new() -> Self {
        Self {
            resources: identities::default_resources(),
            rules: Vec::new(),
            token_lifetime: 3599,
        }
    }

    pub fn knows_resource(&self, resource: &str) -> bool {
        !resource.is_empty()
            && self
                .resources
                .iter()
                .any(|known| same_resource(known, resource))
    }

    pub fn add_resource(&mut self, resource: &str) {
        if !self.knows_resource(resource) {
            self.resources.push(resource.to_owned());
        }
    }

    /// Sets (or with `None`, clears) the demand for a user on one resource or, with `resource: None`, on all.
    pub fn set_demand(&mut self, user_oid: &str, resource: Option<&str>, demand: Option<Demand>) {
        let user_oid = user_oid.to_ascii_lowercase();
        self.rules.retain(|rule| {
            rule.user_oid != user_oid
                || match (&rule.resource, resource) {
                    (None, None) => false,
                    (Some(existing), Some(wanted)) => !same_resource(existing, wanted),
                    _ => true,
                }
        });
        if let Some(demand) = demand {
            self.rules.push(OboRule {
                user_oid,
                resource: resource.map(str::to_owned),
                demand,
            });
        }
    }

    /// The demand for this user and resource: a rule for the resource wins over a rule for all resources.
    pub fn demand_for(&self, user_oid: &str, resource: &str) -> Option<Demand> {
        let user_rules = || {
            self.rules
                .iter()
                .filter(|rule| rule.user_oid.eq_ignore_ascii_case(user_oid))
        };
        user_rules()
            .find(|rule| {
                rule.resource
                    .as_deref()
                    .is_some_and(|r| same_resource(r, resource))
            })
            .or_else(|| user_rules().find(|rule| rule.resource.is_none()))
            .map(|rule| rule.demand.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_rules_win_over_tenant_wide_ones_and_can_be_cleared() {
        let mut directory = Directory::new();
        directory.set_demand("U1", None, Some(Demand::Consent));
        directory.set_demand(
            "u1",
            Some("https://database.windows.net"),
            Some(Demand::Mfa {
                policy_id: "p".into(),
            }),
        );
        assert_eq!(
            directory.demand_for("u1", "https://database.windows.net/"),
            Some(Demand::Mfa {
                policy_id: "p".into()
            })
        );
        assert_eq!(
            directory.demand_for("u1", "https://storage.azure.com"),
            Some(Demand::Consent)
        );
        directory.set_demand("u1", None, None);
        assert_eq!(
            directory.demand_for("u1", "https://storage.azure.com"),
            None
        );
    }

    #[test]
    fn resources_match_with_or_without_trailing_slash() {
        let directory = Directory::new();
        assert!(directory.knows_resource("https://storage.azure.com/"));
        assert!(!directory.knows_resource("https://unknown.example.com"));
    }
}
