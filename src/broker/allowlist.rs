//! The managed-identity allowlist: object ids from `BROKER_ALLOWED_MSI_OIDS` merged with the Key Vault
//! secret, swapped whole on each successful re-read. The last good list survives a failed read; if Key
//! Vault is configured and has never been read successfully, every app caller is refused (fail closed).

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::broker::error::{BrokerError, LoadFailure};
use crate::broker::ids::ObjectId;

/// Most ids a secret may hold; far above any real allowlist, low enough to bound memory.
const MAX_ENTRIES: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllowlistParseError {
    #[error("entry {index} is not a GUID")]
    NotAGuid { index: usize },
    #[error("not a JSON array of strings")]
    NotAJsonArray,
    #[error("more than {MAX_ENTRIES} entries")]
    TooMany,
}

/// Parses the secret's value: ids separated by commas or whitespace, or a JSON array of id strings.
/// One bad entry rejects the whole value, so a typo never silently drops (or admits) anyone.
pub fn parse(text: &str) -> Result<HashSet<ObjectId>, AllowlistParseError> {
    let text = text.trim();
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

struct State {
    oids: HashSet<ObjectId>,
    /// When the Key Vault list was last read successfully (None: never, or no Key Vault).
    loaded_at: Option<Instant>,
    /// Why the list is unusable, while it has never loaded.
    unavailable: Option<LoadFailure>,
}

pub struct Allowlist {
    fixed: BTreeSet<ObjectId>,
    state: ArcSwap<State>,
}

/// What the health route may say about the allowlist.
pub struct AllowlistStatus {
    pub loaded: bool,
    pub age: Option<Duration>,
    pub entries: usize,
}

impl Allowlist {
    /// `from_vault`: whether a Key Vault list must load before any app caller is admitted.
    pub fn new(fixed: BTreeSet<ObjectId>, from_vault: bool) -> Self {
        let state = State {
            oids: fixed.iter().cloned().collect(),
            loaded_at: None,
            unavailable: from_vault.then_some(LoadFailure::Unreachable),
        };
        Self {
            fixed,
            state: ArcSwap::from_pointee(state),
        }
    }

    pub fn contains(&self, oid: &ObjectId) -> Result<bool, BrokerError> {
        let state = self.state.load();
        match state.unavailable {
            Some(failure) => Err(BrokerError::AllowlistUnavailable(failure)),
            None => Ok(state.oids.contains(oid)),
        }
    }

    /// Applies one Key Vault read: the secret's text, or why it could not be read.
    pub fn apply(&self, read: Result<String, LoadFailure>) {
        let parsed = read.and_then(|text| {
            parse(&text).map_err(|err| {
                tracing::warn!(error = %err, "allowlist secret is unparseable; keeping the last good list");
                LoadFailure::Misconfigured
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
                    loaded_at: Some(Instant::now()),
                    unavailable: None,
                }
            }
            // Keep the last good list; before the first load, record why there is none.
            Err(failure) => State {
                oids: current.oids.clone(),
                loaded_at: current.loaded_at,
                unavailable: current.unavailable.map(|_| failure),
            },
        };
        self.state.store(Arc::new(next));
    }

    pub fn status(&self) -> AllowlistStatus {
        let state = self.state.load();
        AllowlistStatus {
            loaded: state.unavailable.is_none(),
            age: state.loaded_at.map(|at| at.elapsed()),
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

    #[test]
    fn list_formats_parse_to_the_same_set() {
        let expected: HashSet<ObjectId> = [oid(A), oid(B)].into();
        assert_eq!(parse(&format!("{A},{B}")).unwrap(), expected);
        assert_eq!(parse(&format!(" {A}\n{B}\t")).unwrap(), expected);
        assert_eq!(
            parse(&format!("[\"{A}\", \"{}\"]", B.to_uppercase())).unwrap(),
            expected
        );
        assert!(parse("").unwrap().is_empty());
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
        let allowlist = Allowlist::new(BTreeSet::new(), true);
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
        let allowlist = Allowlist::new([oid(B)].into(), true);
        allowlist.apply(Ok(A.to_owned()));
        assert_eq!(allowlist.contains(&oid(B)), Ok(true));
        assert_eq!(allowlist.status().entries, 2);
    }
}
