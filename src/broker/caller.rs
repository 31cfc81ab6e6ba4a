//! Who is calling: the identity the broker extracted from a validated caller token.

use crate::broker::ids::{ObjectId, TenantId};

/// Whether a token was issued to a signed-in user (delegated) or to an application (app-only: a managed
/// identity such as a Fabric workspace identity, or a service principal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallerKind {
    User,
    Msi,
}

impl CallerKind {
    /// The wire spelling in GetSPToken's `caller.type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "USER",
            Self::Msi => "MSI",
        }
    }
}

/// A validated caller. Holds no token: the bearer stays with the request that presented it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub kind: CallerKind,
    pub oid: ObjectId,
    pub tenant: TenantId,
    /// UPN or name for a user; managed identity resource id, display name or app id for an app.
    pub display: String,
    /// Delegated scopes (`scp`), empty for apps.
    pub scopes: Vec<String>,
    /// App roles (`roles`).
    pub roles: Vec<String>,
    /// The caller token's `exp`, in Unix seconds: nothing derived from it may outlive it.
    pub expires_at: u64,
    /// The signing key id, so a cached validation stops counting once that key is retired.
    pub kid: String,
}
