//! Which kind of credential the broker proves itself with, and which one a request used: plain values
//! that errors and logs name without reaching the credential itself.

use std::sync::Arc;

/// How the broker proves itself (`BROKER_CREDENTIAL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    Secret,
    Certificate,
    ManagedIdentity,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Secret => "secret",
            Self::Certificate => "certificate",
            Self::ManagedIdentity => "managed-identity",
        }
    }
}

/// Which credential a request used, for the operator's log: the kind and a version that is safe to
/// print (a certificate's SHA-256 thumbprint, the identity's client id, a short digest of a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialUsed {
    pub kind: CredentialKind,
    pub version: Arc<str>,
}
