//! The managed-identity allowlist: object ids from `BROKER_ALLOWED_MSI_OIDS` merged with the Key Vault
//! secret, swapped whole on each successful re-read. The last good list survives a failed read, but only
//! for `max_age`: past that the list can no longer be confirmed and every app caller is refused, as it is
//! while Key Vault is configured and has never been read successfully (fail closed).

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::broker::error::{BrokerError, LoadFailure};
use crate::broker::freshness::{Freshness, ReadProblem};
use crate::broker::ids::ObjectId;

/// Most ids a secret may hold; far above any real allowlist, low enough to bound memory.
const MAX_ENTRIES: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllowlistParseError {
    /// Blank is a mistake (a value lost in a copy), never "nobody": that is spelled `[]`.
    #[error("the value is empty; store [] to admit no app callers")]
    Empty,
    #[error("entry {index} is not a GUID")]
    NotAGuid { index: usize },
    #[error("not a JSON array of strings")]
    NotAJsonArray,
    #[error("more than {MAX_ENTRIES} entries")]
    TooMany,
}

/// Parses the secret's value: ids separated by commas or whitespace, or a JSON array of id strings
/// (`[]` for none). One bad entry rejects the whole value, so a typo never silently drops (or admits)
/// anyone; an empty or blank value is rejected too.
pub fn parse(text: &str) -> Result<HashSet<ObjectId>, AllowlistParseError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(AllowlistParseError::Empty);
    }
    let items: Vec<String> = if text.starts_with('[') {
        serde_json::from_str(text).map_err(|_| AllowlistParseError::NotAJsonArray)?
    } else {
        text.split(|c: char| c == ',' || c.is_whitespace())
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect()
    };
    if items.len() > MAX_ENTRIES {
        return Err(AllowlistParseError::TooMany);
    }
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            item.parse()
                .map_err(|_| AllowlistParseError::NotAGuid { index })
        })
        .collect()
}

/// The Key Vault half of the list: which secret, and how long a list may go unconfirmed.
#[derive(Debug, Clone)]
pub struct VaultList {
    pub secret: String,
    /// `BROKER_ALLOWLIST_MAX_AGE_SECONDS`.
    pub max_age: Duration,
    /// The refresh interval, sent as `Retry-After` once the list is stale.
    pub refresh: Duration,
}

struct State {
    oids: HashSet<ObjectId>,
    freshness: Freshness,
    /// Why the list is unusable, while it has never loaded.
    unavailable: Option<LoadFailure>,
}

pub struct Allowlist {
    fixed: BTreeSet<ObjectId>,
    vault: Option<VaultList>,
    state: ArcSwap<State>,
}

/// What the health route may say about the allowlist.
pub struct AllowlistStatus {
    pub loaded: bool,
    pub freshness: Freshness,
    /// Past `max_age` without a successful read: app callers are refused.
    pub stale: bool,
    pub max_age: Option<Duration>,
    pub entries: usize,
}

impl Allowlist {
    /// `vault`: the Key Vault list that must load before any app caller is admitted, if any.
    pub fn new(fixed: BTreeSet<ObjectId>, vault: Option<VaultList>) -> Self {
        let state = State {
            oids: fixed.iter().cloned().collect(),
            freshness: Freshness::default(),
            unavailable: vault.as_ref().map(|_| LoadFailure::Unreachable),
        };
        Self {
            fixed,
            vault,
            state: ArcSwap::from_pointee(state),
        }
    }

    pub fn contains(&self, oid: &ObjectId) -> Result<bool, BrokerError> {
        let state = self.state.load();
        if let Some(failure) = state.unavailable {
            return Err(BrokerError::AllowlistUnavailable(failure));
        }
        if let Some(vault) = &self.vault
            && state.freshness.is_older_than(vault.max_age)
        {
            return Err(BrokerError::AllowlistStale {
                retry_after: vault.refresh,
            });
        }
        Ok(state.oids.contains(oid))
    }

    /// Applies one Key Vault read: the secret's text, or why it could not be read.
    pub fn apply(&self, read: Result<String, LoadFailure>) {
        let secret = self
            .vault
            .as_ref()
            .map_or("", |vault| vault.secret.as_str());
        let parsed = read.map_err(ReadProblem::from).and_then(|text| {
            parse(&text).map_err(|err| match err {
                AllowlistParseError::Empty => {
                    tracing::warn!(
                        secret,
                        "allowlist secret is empty; keeping the last good list (store [] to admit no app callers)"
                    );
                    ReadProblem::Empty
                }
                _ => {
                    tracing::warn!(secret, error = %err, "allowlist secret is unparseable; keeping the last good list");
                    ReadProblem::Unparseable
                }
            })
        });
        let current = self.state.load();
        let next = match parsed {
            Ok(mut oids) => {
                oids.extend(self.fixed.iter().cloned());
                if current.oids != oids || current.unavailable.is_some() {
                    tracing::info!(entries = oids.len(), "allowlist loaded");
                }
                State {
                    oids,
                    freshness: current.freshness.succeeded(),
                    unavailable: None,
                }
            }
            // Keep the last good list; before the first load, record why there is none.
            Err(problem) => State {
                oids: current.oids.clone(),
                freshness: current.freshness.failed(problem),
                unavailable: current.unavailable.map(|_| problem.load_failure()),
            },
        };
        self.state.store(Arc::new(next));
    }

    pub fn status(&self) -> AllowlistStatus {
        let state = self.state.load();
        let max_age = self.vault.as_ref().map(|vault| vault.max_age);
        AllowlistStatus {
            loaded: state.unavailable.is_none(),
            freshness: state.freshness,
            stale: max_age.is_some_and(|max_age| state.freshness.is_older_than(max_age)),
            max_age,
            entries: state.oids.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
    const B: &str = "2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e";

    fn oid(text: &str) -> ObjectId {
        text.parse().unwrap()
    }

    fn vault(max_age_seconds: u64) -> VaultList {
        VaultList {
            secret: "allowed-msi-oids".to_owned(),
            max_age: Duration::from_secs(max_age_seconds),
            refresh: Duration::from_secs(120),
        }
    }

    #[test]
    fn list_formats_parse_to_the_same_set() {
        let expected: HashSet<ObjectId> = [oid(A), oid(B)].into();
        assert_eq!(parse(&format!("{A},{B}")).unwrap(), expected);
        assert_eq!(parse(&format!(" {A}\n{B}\t")).unwrap(), expected);
        assert_eq!(
            parse(&format!("[\"{A}\", \"{}\"]", B.to_uppercase())).unwrap(),
            expected
        );
        assert!(parse("[]").unwrap().is_empty());
        assert!(parse(" [ ] ").unwrap().is_empty());
    }

    #[test]
    fn an_empty_or_blank_value_is_refused_not_read_as_nobody() {
        for blank in ["", " ", "\n\t ", "\u{3000}"] {
            assert_eq!(parse(blank), Err(AllowlistParseError::Empty), "{blank:?}");
        }
    }

    #[test]
    fn one_bad_entry_rejects_the_whole_value() {
        assert_eq!(
            parse(&format!("{A},nope")),
            Err(AllowlistParseError::NotAGuid { index: 1 })
        );
        assert_eq!(parse("[1, 2]"), Err(AllowlistParseError::NotAJsonArray));
    }

    #[test]
    fn fails_closed_until_the_vault_list_loads_then_keeps_the_last_good_list() {
        let allowlist = Allowlist::new(BTreeSet::new(), Some(vault(3600)));
        assert_eq!(
            allowlist.contains(&oid(A)),
            Err(BrokerError::AllowlistUnavailable(LoadFailure::Unreachable))
        );
        allowlist.apply(Err(LoadFailure::Misconfigured));
        assert_eq!(
            allowlist.contains(&oid(A)),
            Err(BrokerError::AllowlistUnavailable(
                LoadFailure::Misconfigured
            ))
        );
        allowlist.apply(Ok(A.to_owned()));
        assert_eq!(allowlist.contains(&oid(A)), Ok(true));
        allowlist.apply(Err(LoadFailure::Unreachable));
        assert_eq!(allowlist.contains(&oid(A)), Ok(true));
        assert_eq!(allowlist.contains(&oid(B)), Ok(false));
    }

    #[test]
    fn fixed_ids_are_merged_with_the_vault_list() {
        let allowlist = Allowlist::new([oid(B)].into(), Some(vault(3600)));
        allowlist.apply(Ok(A.to_owned()));
        assert_eq!(allowlist.contains(&oid(B)), Ok(true));
        assert_eq!(allowlist.status().entries, 2);
    }

    #[test]
    fn an_empty_value_after_a_load_keeps_the_last_good_list_and_says_why() {
        let allowlist = Allowlist::new(BTreeSet::new(), Some(vault(3600)));
        allowlist.apply(Ok(A.to_owned()));
        allowlist.apply(Ok("  ".to_owned()));
        assert_eq!(allowlist.contains(&oid(A)), Ok(true));
        let status = allowlist.status();
        assert_eq!(status.freshness.last_problem(), Some(ReadProblem::Empty));
        assert!(status.freshness.is_degraded());
    }

    #[test]
    fn an_empty_value_before_any_load_fails_closed_as_misconfigured() {
        let allowlist = Allowlist::new(BTreeSet::new(), Some(vault(3600)));
        allowlist.apply(Ok(String::new()));
        assert_eq!(
            allowlist.contains(&oid(A)),
            Err(BrokerError::AllowlistUnavailable(
                LoadFailure::Misconfigured
            ))
        );
    }

    #[test]
    fn a_list_older_than_its_max_age_refuses_every_app_caller() {
        let allowlist = Allowlist::new(BTreeSet::new(), Some(vault(0)));
        allowlist.apply(Ok(A.to_owned()));
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(
            allowlist.contains(&oid(A)),
            Err(BrokerError::AllowlistStale {
                retry_after: Duration::from_secs(120)
            })
        );
        assert!(allowlist.status().stale);
    }

    #[test]
    fn a_list_without_key_vault_never_goes_stale() {
        let allowlist = Allowlist::new([oid(A)].into(), None);
        assert_eq!(allowlist.contains(&oid(A)), Ok(true));
        assert!(!allowlist.status().stale);
    }
}
