//! Which version of a Key Vault policy secret is in force, computed from the secret's whole version
//! history the same way on every instance, so one started later refuses exactly what a running one
//! refused. Walking the enabled versions oldest first: a valid document is in force when its revision is
//! higher than every older valid version's; one equal to the document in force confirms it; any other
//! (an invalid document, a lower revision, the same revision with other content) is refused. Versions
//! never change once written, so each is read and compiled once and remembered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::broker::policy::document::{DocumentError, RawDocument};
use crate::broker::policy::{Policy, compile};

/// One enabled version of the secret, as Key Vault lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub id: String,
    /// Unix seconds. Two versions created in the same second are ordered by id, the same way everywhere.
    pub created: i64,
}

/// A valid version's document and the policy compiled from it.
pub struct Compiled {
    pub document: RawDocument,
    pub policy: Arc<Policy>,
}

/// What one version holds.
enum Content {
    Valid(Arc<Compiled>),
    /// Why it is invalid: fixed sentences and a JSON path, never the document's text.
    Invalid(String),
}

/// The history's verdict.
pub struct Outcome {
    /// The version in force and its document; `None` when no version holds a valid document.
    pub in_force: Option<(String, Arc<Compiled>)>,
    /// The newest version that is not in force, when it is newer than the one in force, and why.
    pub refused: Option<(String, String)>,
}

/// Every version read so far, by id.
#[derive(Default)]
pub struct History {
    read: Mutex<HashMap<String, Content>>,
}

impl History {
    fn read(&self) -> MutexGuard<'_, HashMap<String, Content>> {
        self.read.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The listed versions not read yet, oldest first.
    pub fn unread(&self, listed: &[Version]) -> Vec<String> {
        let read = self.read();
        ordered(listed)
            .into_iter()
            .filter(|version| !read.contains_key(&version.id))
            .map(|version| version.id.clone())
            .collect()
    }

    /// Compiles one version's value and remembers the result.
    pub fn record(&self, id: &str, bytes: &[u8]) {
        let content = match compile::from_bytes(bytes) {
            Ok((document, policy)) => Content::Valid(Arc::new(Compiled {
                document,
                policy: Arc::new(policy),
            })),
            Err(errors) => Content::Invalid(invalid_reason(&errors)),
        };
        self.read().insert(id.to_owned(), content);
    }

    /// The verdict over `listed`, or `None` while some listed version is unread. Forgets versions no
    /// longer listed (deleted, purged or disabled).
    pub fn outcome(&self, listed: &[Version]) -> Option<Outcome> {
        let mut read = self.read();
        read.retain(|id, _| listed.iter().any(|version| &version.id == id));
        let mut highest: Option<u64> = None;
        let mut in_force: Option<(&str, &Arc<Compiled>)> = None;
        let mut refused: Option<(&str, String)> = None;
        for version in ordered(listed) {
            match read.get(&version.id)? {
                Content::Invalid(reason) => refused = Some((&version.id, reason.clone())),
                Content::Valid(compiled) => {
                    let revision = compiled.document.revision;
                    match highest {
                        Some(highest) if revision <= highest => {
                            let confirms = in_force
                                .is_some_and(|(_, current)| current.document == compiled.document);
                            refused = (!confirms).then(|| {
                                (version.id.as_str(), not_higher_reason(revision, highest))
                            });
                        }
                        _ => {
                            in_force = Some((&version.id, compiled));
                            refused = None;
                        }
                    }
                    highest = highest.max(Some(revision));
                }
            }
        }
        Some(Outcome {
            in_force: in_force.map(|(id, compiled)| (id.to_owned(), compiled.clone())),
            refused: refused.map(|(id, reason)| (id.to_owned(), reason)),
        })
    }
}

/// Oldest first: by creation time, then by id.
fn ordered(listed: &[Version]) -> Vec<&Version> {
    let mut ordered: Vec<&Version> = listed.iter().collect();
    ordered.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
    ordered
}

pub(crate) fn invalid_reason(errors: &[DocumentError]) -> String {
    let first = errors.first().map(ToString::to_string).unwrap_or_default();
    format!(
        "invalid document, {} error(s); first: {first}",
        errors.len()
    )
}

fn not_higher_reason(revision: u64, highest: u64) -> String {
    format!(
        "document revision {revision} differs from revision {highest} of an older version but is not higher"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SQL: &str = "https://database.windows.net/.default";
    const STORAGE: &str = "https://storage.azure.com/.default";

    fn document(revision: u64, scope: &str) -> Vec<u8> {
        format!(
            r#"{{"revision": {revision}, "grants": [{{"name": "g", "users": "tenant", "lane": "user", "scopes": ["{scope}"]}}]}}"#
        )
        .into_bytes()
    }

    /// A history of `(id, created, value)`, every version read.
    fn history(versions: &[(&str, i64, Vec<u8>)]) -> (History, Vec<Version>) {
        let history = History::default();
        let listed = versions
            .iter()
            .map(|(id, created, bytes)| {
                history.record(id, bytes);
                Version {
                    id: (*id).to_owned(),
                    created: *created,
                }
            })
            .collect();
        (history, listed)
    }

    fn verdict(outcome: &Outcome) -> (Option<(&str, u64)>, Option<&str>) {
        (
            outcome
                .in_force
                .as_ref()
                .map(|(id, compiled)| (id.as_str(), compiled.document.revision)),
            outcome.refused.as_ref().map(|(id, _)| id.as_str()),
        )
    }

    #[test]
    fn the_same_revision_with_other_content_is_refused_whatever_came_first() {
        let (history, listed) =
            history(&[("a", 10, document(5, SQL)), ("b", 20, document(5, STORAGE))]);
        let outcome = history.outcome(&listed).unwrap();
        assert_eq!(verdict(&outcome), (Some(("a", 5)), Some("b")));
        let reason = &outcome.refused.unwrap().1;
        assert!(reason.contains("is not higher"), "{reason}");
    }

    #[test]
    fn a_rollback_to_a_lower_revision_is_refused() {
        let (history, listed) = history(&[
            ("a", 10, document(3, SQL)),
            ("b", 20, document(4, STORAGE)),
            ("c", 30, document(3, SQL)),
        ]);
        assert_eq!(
            verdict(&history.outcome(&listed).unwrap()),
            (Some(("b", 4)), Some("c"))
        );
    }

    #[test]
    fn a_higher_revision_after_a_refused_one_is_in_force_and_clears_the_refusal() {
        let (history, listed) = history(&[
            ("a", 10, document(5, SQL)),
            ("b", 20, document(5, STORAGE)),
            ("c", 30, document(6, STORAGE)),
        ]);
        assert_eq!(
            verdict(&history.outcome(&listed).unwrap()),
            (Some(("c", 6)), None)
        );
    }

    #[test]
    fn uploading_the_document_in_force_again_confirms_it() {
        let (history, listed) = history(&[
            ("a", 10, document(5, SQL)),
            ("b", 20, document(5, STORAGE)),
            ("c", 30, document(5, SQL)),
        ]);
        assert_eq!(
            verdict(&history.outcome(&listed).unwrap()),
            (Some(("a", 5)), None)
        );
    }

    #[test]
    fn an_invalid_version_is_refused_and_older_valid_ones_decide() {
        let (history, listed) = history(&[
            ("a", 10, document(5, SQL)),
            ("b", 20, document(9, "openid")),
        ]);
        let outcome = history.outcome(&listed).unwrap();
        assert_eq!(verdict(&outcome), (Some(("a", 5)), Some("b")));
        assert!(outcome.refused.unwrap().1.starts_with("invalid document"));
    }

    #[test]
    fn the_listing_order_does_not_matter_and_ties_break_by_id() {
        let (history, mut listed) = history(&[
            ("b", 10, document(5, STORAGE)),
            ("a", 10, document(5, SQL)),
            ("c", 5, document(1, SQL)),
        ]);
        let forward = verdict(&history.outcome(&listed).unwrap())
            .0
            .map(|v| v.0.to_owned());
        listed.reverse();
        let backward = verdict(&history.outcome(&listed).unwrap())
            .0
            .map(|v| v.0.to_owned());
        assert_eq!(forward.as_deref(), Some("a"));
        assert_eq!(backward.as_deref(), Some("a"));
    }

    #[test]
    fn no_verdict_while_a_listed_version_is_unread() {
        let (history, mut listed) = history(&[("a", 10, document(5, SQL))]);
        listed.push(Version {
            id: "b".into(),
            created: 20,
        });
        assert_eq!(history.unread(&listed), ["b"]);
        assert!(history.outcome(&listed).is_none());
    }

    #[test]
    fn a_version_no_longer_listed_no_longer_counts() {
        // Disabling the newer version is how an operator rolls back: every instance then agrees.
        let (history, mut listed) =
            history(&[("a", 10, document(3, SQL)), ("b", 20, document(4, STORAGE))]);
        listed.pop();
        assert_eq!(
            verdict(&history.outcome(&listed).unwrap()),
            (Some(("a", 3)), None)
        );
        assert_eq!(history.unread(&listed), Vec::<String>::new());
    }
}
