//! Where the policy comes from and which one is in force: fixed (the legacy settings), a document
//! re-read from a file, or the version of a Key Vault secret its history puts in force (`history`). A
//! file's document that differs from the loaded one must carry a higher revision; an unreadable, invalid
//! or refused document keeps the last good one; never loaded means every request is refused (fail
//! closed). Swapped whole, so a request decides through one policy.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::broker::error::{BrokerError, LoadFailure};
use crate::broker::freshness::{Freshness, ReadProblem};
use crate::broker::policy::Policy;
use crate::broker::policy::compile;
use crate::broker::policy::document::RawDocument;
use crate::broker::policy::history::{self, Outcome};

/// Where the policy is read from; health shows its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyOrigin {
    /// The legacy settings, read once at start-up.
    Settings,
    /// The Key Vault secret named by `BROKER_POLICY_SECRET_NAME`.
    KeyVault,
    /// The file at `BROKER_POLICY_FILE`.
    File,
}

impl PolicyOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Settings => "settings",
            Self::KeyVault => "key_vault",
            Self::File => "file",
        }
    }
}

struct State {
    policy: Option<Arc<Policy>>,
    /// The document `policy` was compiled from (None for the legacy settings).
    document: Option<RawDocument>,
    /// When the source last confirmed the policy in force (read it unchanged, or a newer one), and the
    /// failed or refused reads since.
    freshness: Freshness,
    /// Why the source's current content is not in force, until a read puts it in force.
    refusal: Option<String>,
    /// Key Vault only: the secret version in force, and the newer one refused.
    version: Option<String>,
    refused_version: Option<String>,
}

pub struct PolicySource {
    origin: PolicyOrigin,
    state: ArcSwap<State>,
}

/// What the health route may say: never the document's contents.
pub struct PolicyStatus {
    pub origin: PolicyOrigin,
    pub revision: Option<u64>,
    pub grants: Option<usize>,
    /// A refused document counts as `Unparseable` (an operator must fix it).
    pub freshness: Freshness,
    pub last_refusal: Option<String>,
    /// Key Vault only: the secret version in force, and the newest version refused after it.
    pub version: Option<String>,
    pub refused_version: Option<String>,
}

impl PolicySource {
    /// The legacy settings' policy: in force from the start, never reloaded.
    pub fn fixed(policy: Policy) -> Self {
        Self::with(PolicyOrigin::Settings, Some(policy))
    }

    /// A document source that has not been read yet: every request is refused until it is.
    pub fn pending(origin: PolicyOrigin) -> Self {
        Self::with(origin, None)
    }

    fn with(origin: PolicyOrigin, policy: Option<Policy>) -> Self {
        Self {
            origin,
            state: ArcSwap::from_pointee(State {
                policy: policy.map(Arc::new),
                document: None,
                freshness: Freshness::default(),
                refusal: None,
                version: None,
                refused_version: None,
            }),
        }
    }

    /// The policy in force. One atomic load and a reference count: this is on every request.
    pub fn current(&self) -> Result<Arc<Policy>, BrokerError> {
        self.state
            .load()
            .policy
            .clone()
            .ok_or(BrokerError::PolicyUnavailable)
    }

    pub fn is_loaded(&self) -> bool {
        self.state.load().policy.is_some()
    }

    /// Applies one read of the source: the document's bytes, or why they could not be read.
    pub fn apply(&self, read: Result<Vec<u8>, LoadFailure>) {
        match read {
            Err(failure) => {
                let reason = match (self.origin, failure) {
                    (PolicyOrigin::File, _) => "the policy file could not be read",
                    (_, LoadFailure::Unreachable) => "Key Vault could not be reached",
                    (_, LoadFailure::Misconfigured) => {
                        "the policy secret is missing or the managed identity may not read it"
                    }
                };
                self.apply_failure(failure, reason);
            }
            Ok(bytes) => {
                let current = self.state.load_full();
                let next = match compile::from_bytes(&bytes) {
                    Err(errors) => {
                        for err in &errors {
                            // Path and fixed sentence only: the parser's own message may quote the
                            // document.
                            tracing::warn!(path = %err.path, problem = err.problem, "policy document error");
                        }
                        tracing::warn!(
                            source = self.origin.as_str(),
                            "policy document is invalid; keeping the last good policy"
                        );
                        let reason = history::invalid_reason(&errors);
                        self.refused(&current, ReadProblem::Unparseable, reason)
                    }
                    Ok((document, policy)) => self.decide(&current, document, policy),
                };
                self.state.store(Arc::new(next));
            }
        }
    }

    /// A read that failed (or timed out), with the fixed sentence health shows: the last good policy
    /// stays in force.
    pub fn apply_failure(&self, failure: LoadFailure, reason: &'static str) {
        tracing::warn!(
            source = self.origin.as_str(),
            reason,
            "policy read failed; keeping the last good policy"
        );
        let current = self.state.load_full();
        let next = self.refused(&current, failure.into(), reason.to_owned());
        self.state.store(Arc::new(next));
    }

    /// Applies the verdict over a Key Vault secret's version history: its version in force replaces
    /// the policy (whatever its revision: every instance computes the same one), and a refused newer
    /// version is reported. Without a valid version, the last good policy stays.
    pub fn apply_history(&self, outcome: Outcome) {
        let current = self.state.load_full();
        let Some((version, compiled)) = outcome.in_force else {
            let (refused_version, reason) = outcome.refused.unzip();
            let mut next = self.refused(
                &current,
                ReadProblem::Unparseable,
                reason.unwrap_or_else(|| {
                    "no enabled version of the policy secret holds a valid document".to_owned()
                }),
            );
            next.refused_version = refused_version;
            self.state.store(Arc::new(next));
            return;
        };
        if current.version.as_deref() != Some(version.as_str()) {
            tracing::info!(
                source = self.origin.as_str(),
                version,
                revision = compiled.policy.revision,
                grants = compiled.policy.grants.len(),
                "policy loaded"
            );
        }
        let (refused_version, refusal) = outcome.refused.unzip();
        if let (Some(refused_version), Some(_)) = (&refused_version, &refusal) {
            tracing::warn!(
                source = self.origin.as_str(),
                version,
                refused_version,
                "policy secret version refused; its history keeps an older version in force"
            );
        }
        let freshness = match refusal {
            Some(_) => current
                .freshness
                .succeeded()
                .failed(ReadProblem::Unparseable),
            None => current.freshness.succeeded(),
        };
        self.state.store(Arc::new(State {
            policy: Some(compiled.policy.clone()),
            document: Some(compiled.document.clone()),
            freshness,
            refusal,
            version: Some(version),
            refused_version,
        }));
    }

    /// A valid document: in force if it is the first, the same, or a higher revision.
    fn decide(&self, current: &State, document: RawDocument, policy: Policy) -> State {
        let loaded = current.policy.as_ref().map(|p| p.revision);
        if current.document.as_ref() == Some(&document) {
            return State {
                policy: current.policy.clone(),
                document: current.document.clone(),
                freshness: current.freshness.succeeded(),
                refusal: None,
                version: None,
                refused_version: None,
            };
        }
        if let Some(loaded) = loaded.filter(|loaded| document.revision <= *loaded) {
            let reason = format!(
                "document revision {} differs from the loaded revision {loaded} but is not higher",
                document.revision
            );
            tracing::warn!(
                source = self.origin.as_str(),
                revision = document.revision,
                loaded,
                "policy document refused; keeping the last good policy"
            );
            return self.refused(current, ReadProblem::Unparseable, reason);
        }
        tracing::info!(
            source = self.origin.as_str(),
            revision = policy.revision,
            grants = policy.grants.len(),
            "policy loaded"
        );
        State {
            policy: Some(Arc::new(policy)),
            document: Some(document),
            freshness: current.freshness.succeeded(),
            refusal: None,
            version: None,
            refused_version: None,
        }
    }

    fn refused(&self, current: &State, problem: ReadProblem, reason: String) -> State {
        State {
            policy: current.policy.clone(),
            document: current.document.clone(),
            freshness: current.freshness.failed(problem),
            refusal: Some(reason),
            version: current.version.clone(),
            refused_version: current.refused_version.clone(),
        }
    }

    pub fn status(&self) -> PolicyStatus {
        let state = self.state.load();
        PolicyStatus {
            origin: self.origin,
            revision: state.policy.as_ref().map(|p| p.revision),
            grants: state.policy.as_ref().map(|p| p.grants.len()),
            freshness: state.freshness,
            last_refusal: state.refusal.clone(),
            version: state.version.clone(),
            refused_version: state.refused_version.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(revision: u64, scope: &str) -> Vec<u8> {
        format!(
            r#"{{"revision": {revision}, "grants": [{{"name": "g", "users": "tenant", "lane": "user", "scopes": ["{scope}"]}}]}}"#
        )
        .into_bytes()
    }

    const SQL: &str = "https://database.windows.net/.default";
    const STORAGE: &str = "https://storage.azure.com/.default";

    fn allowed_scope(source: &PolicySource) -> String {
        source.current().unwrap().grants[0].scopes[0].to_string()
    }

    #[test]
    fn fails_closed_until_the_first_document_loads() {
        let source = PolicySource::pending(PolicyOrigin::KeyVault);
        assert_eq!(source.current().err(), Some(BrokerError::PolicyUnavailable));
        source.apply(Err(LoadFailure::Unreachable));
        assert_eq!(source.current().err(), Some(BrokerError::PolicyUnavailable));
        assert_eq!(
            source.status().last_refusal.as_deref(),
            Some("Key Vault could not be reached")
        );
        source.apply(Ok(document(1, SQL)));
        assert_eq!(source.current().unwrap().revision, 1);
        assert_eq!(source.status().last_refusal, None);
    }

    #[test]
    fn a_higher_revision_replaces_the_policy() {
        let source = PolicySource::pending(PolicyOrigin::File);
        source.apply(Ok(document(1, SQL)));
        source.apply(Ok(document(2, STORAGE)));
        assert_eq!(allowed_scope(&source), STORAGE);
    }

    #[test]
    fn a_changed_document_without_a_higher_revision_is_refused() {
        let source = PolicySource::pending(PolicyOrigin::File);
        source.apply(Ok(document(2, SQL)));
        for revision in [2, 1] {
            source.apply(Ok(document(revision, STORAGE)));
            assert_eq!(allowed_scope(&source), SQL);
            let refusal = source.status().last_refusal.unwrap();
            assert!(refusal.contains("is not higher"), "{refusal}");
            assert!(source.status().freshness.is_degraded());
        }
        // Reading the loaded document again puts it back in force and clears the refusal.
        source.apply(Ok(document(2, SQL)));
        assert_eq!(source.status().last_refusal, None);
        assert!(!source.status().freshness.is_degraded());
    }

    fn history(versions: &[(&str, Vec<u8>)]) -> Outcome {
        let history = history::History::default();
        let listed: Vec<history::Version> = versions
            .iter()
            .zip(1..)
            .map(|((id, bytes), created)| {
                history.record(id, bytes);
                history::Version {
                    id: (*id).to_owned(),
                    created,
                }
            })
            .collect();
        history.outcome(&listed).unwrap()
    }

    #[test]
    fn the_history_decides_whatever_this_instance_loaded_before() {
        let source = PolicySource::pending(PolicyOrigin::KeyVault);
        source.apply_history(history(&[
            ("a", document(5, SQL)),
            ("b", document(5, STORAGE)),
        ]));
        assert_eq!(allowed_scope(&source), SQL);
        let status = source.status();
        assert_eq!(
            (status.version.as_deref(), status.refused_version.as_deref()),
            (Some("a"), Some("b"))
        );
        assert!(status.freshness.is_degraded());
        // With the newer versions disabled, every instance goes back to the older one.
        source.apply_history(history(&[("old", document(4, STORAGE))]));
        assert_eq!(allowed_scope(&source), STORAGE);
        assert_eq!(source.status().refused_version, None);
        assert!(!source.status().freshness.is_degraded());
    }

    #[test]
    fn a_history_without_a_valid_version_keeps_the_last_good_policy() {
        let source = PolicySource::pending(PolicyOrigin::KeyVault);
        source.apply_history(history(&[("a", document(5, SQL))]));
        source.apply_history(history(&[("b", document(6, "openid"))]));
        assert_eq!(allowed_scope(&source), SQL);
        assert_eq!(source.status().refused_version.as_deref(), Some("b"));
    }

    #[test]
    fn an_invalid_document_keeps_the_last_good_one_and_says_where() {
        let source = PolicySource::pending(PolicyOrigin::File);
        source.apply(Ok(document(1, SQL)));
        source.apply(Ok(document(5, "openid")));
        assert_eq!(allowed_scope(&source), SQL);
        assert_eq!(
            source.status().last_refusal.as_deref(),
            Some(
                "invalid document, 1 error(s); first: grants[0].scopes[0]: is not one <https:// or api:// resource>/.default scope"
            )
        );
    }
}
