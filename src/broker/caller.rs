//! Who is calling: the identity the broker extracted from a validated caller token.

use serde_json::value::RawValue;

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
    /// The client the token was issued to (`appid` in v1 tokens, `azp` in v2).
    pub app_id: Option<String>,
    /// UPN or name for a user; managed identity resource id, display name or app id for an app.
    pub display: DisplayName,
    /// Delegated scopes (`scp`), empty for apps.
    pub scopes: Vec<String>,
    /// App roles (`roles`).
    pub roles: Vec<String>,
    /// Group object ids from the `groups` claim (entries that are not GUIDs are left out).
    pub groups: Vec<ObjectId>,
    /// The token names its groups elsewhere (`_claim_names`, `hasgroups`) instead of listing them: too
    /// many to fit. The broker does not call Graph, so such a caller matches no group grant.
    pub group_overage: bool,
    /// The caller token's `exp`, in Unix seconds: nothing derived from it may outlive it.
    pub expires_at: u64,
    /// The signing key id, so a cached validation stops counting once that key is retired.
    pub kid: String,
}

/// A caller's display string together with its JSON literal, escaped once when the token is validated
/// rather than on every response and audit line that names the caller.
#[derive(Debug, Clone)]
pub struct DisplayName {
    text: String,
    json: Box<RawValue>,
}

impl DisplayName {
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The string as a JSON string literal.
    pub fn as_json(&self) -> &RawValue {
        &self.json
    }
}

impl From<String> for DisplayName {
    fn from(text: String) -> Self {
        // Serializing a string cannot fail; `null` is only the type's required fallback.
        let json =
            serde_json::value::to_raw_value(&text).unwrap_or_else(|_| RawValue::NULL.to_owned());
        Self { text, json }
    }
}

impl From<&str> for DisplayName {
    fn from(text: &str) -> Self {
        Self::from(text.to_owned())
    }
}

impl PartialEq for DisplayName {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for DisplayName {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_name_json_is_the_escaped_literal() {
        let name = DisplayName::from("ana \"the admin\"\n");
        assert_eq!(name.as_str(), "ana \"the admin\"\n");
        assert_eq!(name.as_json().get(), r#""ana \"the admin\"\n""#);
    }
}
