//! What a caller may ask a token for: `TargetScope` (one `<resource>/.default` scope, parsed strictly),
//! the allowed-scope set for GetSPToken and the audience-alias map for the Token route.

use std::collections::BTreeMap;
use std::fmt;

/// Longest scope accepted; real resource URIs are far shorter.
const MAX_SCOPE_LEN: usize = 256;
const DEFAULT_SUFFIX: &str = "/.default";

/// The scopes GetSPToken serves when `BROKER_ALLOWED_SCOPES` is not set.
pub const DEFAULT_SCOPES: &[&str] = &[
    "https://database.windows.net/.default",
    "https://database.windows.net//.default",
    "https://management.azure.com/.default",
    "https://storage.azure.com/.default",
    "https://vault.azure.net/.default",
    "https://api.fabric.microsoft.com/.default",
    "https://analysis.windows.net/powerbi/api/.default",
];

/// The Token route's aliases before `BROKER_AUDIENCES` adds, overrides or removes entries.
pub const DEFAULT_AUDIENCES: &[(&str, &str)] = &[
    ("arm", "https://management.azure.com/.default"),
    ("fabric_api", "https://api.fabric.microsoft.com/.default"),
    (
        "fabric_cli",
        "https://analysis.windows.net/powerbi/api/.default",
    ),
    ("sql", "https://database.windows.net/.default"),
    ("storage", "https://storage.azure.com/.default"),
    ("vault", "https://vault.azure.net/.default"),
];

/// Why a requested scope is malformed. Never carries the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("scope is empty")]
    Empty,
    #[error("scope is too long")]
    TooLong,
    #[error("scope contains whitespace or control characters (several scopes?)")]
    Separator,
    #[error("scope does not end with /.default")]
    NotDefault,
    #[error("scope resource is not an https:// or api:// URI")]
    BadResource,
}

impl ScopeError {
    /// Stable reason code for the audit line.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Empty => "scope_empty",
            Self::TooLong => "scope_too_long",
            Self::Separator => "scope_separator",
            Self::NotDefault => "scope_not_default",
            Self::BadResource => "scope_bad_resource",
        }
    }
}

/// One `<resource>/.default` scope: a single https:// or api:// resource, no userinfo, query, fragment,
/// port, dot segments or escapes. `openid`, `offline_access` and other OIDC scopes fail the suffix rule.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetScope(Box<str>);

impl TargetScope {
    pub fn parse(text: &str) -> Result<Self, ScopeError> {
        if text.is_empty() {
            return Err(ScopeError::Empty);
        }
        if text.len() > MAX_SCOPE_LEN {
            return Err(ScopeError::TooLong);
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ScopeError::Separator);
        }
        let resource = text
            .strip_suffix(DEFAULT_SUFFIX)
            .ok_or(ScopeError::NotDefault)?;
        if is_clean_resource(resource) {
            Ok(Self(text.into()))
        } else {
            Err(ScopeError::BadResource)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The resource the scope names (the scope without `/.default`).
    pub fn resource(&self) -> &str {
        self.0.strip_suffix(DEFAULT_SUFFIX).unwrap_or(&self.0)
    }
}

fn is_clean_resource(resource: &str) -> bool {
    let Some((scheme, rest)) = resource.split_once("://") else {
        return false;
    };
    if !matches!(scheme, "https" | "api") || rest.is_empty() {
        return false;
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '/' | '~');
    if !rest.chars().all(allowed) {
        return false;
    }
    let mut segments = rest.split('/');
    let host = segments.next().unwrap_or_default();
    // A trailing slash (`https://database.windows.net/`) is a real, documented spelling; other empty,
    // `.` and `..` segments are not.
    let mut path = segments.peekable();
    let mut path_ok = true;
    while let Some(segment) = path.next() {
        let last = path.peek().is_none();
        path_ok &= (!segment.is_empty() || last) && segment != "." && segment != "..";
    }
    !host.is_empty() && !host.starts_with('.') && !host.ends_with('.') && path_ok
}

impl fmt::Display for TargetScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TargetScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TargetScope({})", self.0)
    }
}

/// The Token route's audience aliases (`sql` → `https://database.windows.net/.default`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudienceMap(BTreeMap<String, TargetScope>);

impl AudienceMap {
    pub fn new(entries: BTreeMap<String, TargetScope>) -> Self {
        Self(entries)
    }

    pub fn resolve(&self, alias: &str) -> Option<&TargetScope> {
        self.0.get(alias)
    }

    /// The known aliases, sorted, for error descriptions.
    pub fn aliases(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

/// Whether `alias` has the shape of an audience alias: 1 to 64 of `[a-z0-9_-]`.
pub fn is_alias(alias: &str) -> bool {
    (1..=64).contains(&alias.len())
        && alias
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_scope_parses() {
        for scope in DEFAULT_SCOPES {
            assert!(TargetScope::parse(scope).is_ok(), "{scope}");
        }
    }

    #[test]
    fn custom_api_scope_parses() {
        let scope =
            TargetScope::parse("api://0b5e9c3a-7f2d-4a61-9c8e-2d4b6a8f1e37/.default").unwrap();
        assert_eq!(
            scope.resource(),
            "api://0b5e9c3a-7f2d-4a61-9c8e-2d4b6a8f1e37"
        );
    }

    #[test]
    fn malformed_scopes_are_rejected_with_their_reason() {
        let cases = [
            ("", ScopeError::Empty),
            ("openid", ScopeError::NotDefault),
            ("offline_access", ScopeError::NotDefault),
            (
                "https://database.windows.net/user_impersonation",
                ScopeError::NotDefault,
            ),
            (
                "https://database.windows.net/.default offline_access",
                ScopeError::Separator,
            ),
            (
                "https://database.windows.net/.default\n",
                ScopeError::Separator,
            ),
            (
                "https://database.windows.net/\u{0}/.default",
                ScopeError::Separator,
            ),
            (
                "http://database.windows.net/.default",
                ScopeError::BadResource,
            ),
            (
                "https://user@database.windows.net/.default",
                ScopeError::BadResource,
            ),
            (
                "https://database.windows.net/../x/.default",
                ScopeError::BadResource,
            ),
            (
                "https://database.windows.net:8443/.default",
                ScopeError::BadResource,
            ),
            (
                "https://database.windows.net/?a=b/.default",
                ScopeError::BadResource,
            ),
            (
                "https://database.windows.net/%2e%2e/.default",
                ScopeError::BadResource,
            ),
            ("https:///.default", ScopeError::BadResource),
            ("/.default", ScopeError::BadResource),
        ];
        for (case, expected) in cases {
            assert_eq!(TargetScope::parse(case), Err(expected), "{case:?}");
        }
        let long = format!("https://{}.net/.default", "a".repeat(300));
        assert_eq!(TargetScope::parse(&long), Err(ScopeError::TooLong));
    }

    #[test]
    fn alias_shape_is_strict() {
        assert!(is_alias("fabric_api"));
        assert!(!is_alias("SQL"));
        assert!(!is_alias("sql\n"));
        assert!(!is_alias(""));
        assert!(!is_alias(&"a".repeat(65)));
    }
}
