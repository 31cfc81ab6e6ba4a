//! The policy document's wire form: strict serde types (unknown fields and duplicate keys are errors,
//! reported with their JSON path) and the 256 KiB cap. Meaning is given by `compile`, not here.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::Path;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

/// Largest document accepted, from either source.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// A problem with a document, at a JSON path such as `grants[2].apps[0]` (`$` for the whole document).
///
/// `problem` is a fixed sentence that never quotes the document. `detail` is the parser's own message,
/// which may quote it: only the offline checker prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentError {
    pub path: String,
    pub problem: &'static str,
    pub detail: Option<String>,
}

impl fmt::Display for DocumentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.problem)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDocument {
    pub revision: u64,
    #[serde(default, deserialize_with = "unique_map")]
    pub audiences: Option<BTreeMap<String, String>>,
    pub grants: Vec<RawGrant>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGrant {
    pub name: String,
    #[serde(default)]
    pub apps: Option<RawApps>,
    #[serde(default)]
    pub users: Option<RawUsers>,
    pub lane: RawLane,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub audiences: Vec<String>,
    /// `true` or `{"max_lifetime_seconds": N}`: the grant lets its apps create delegations.
    #[serde(default)]
    pub delegate: Option<RawDelegate>,
}

/// `delegate`: a flag, or the delegation limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawDelegate {
    Flag(bool),
    Limits { max_lifetime_seconds: u64 },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DelegateLimits {
    max_lifetime_seconds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawLane {
    Service,
    User,
}

/// `apps`: a list of object ids, or `{"app_role": R}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawApps {
    Oids(Vec<String>),
    AppRole(String),
}

/// `users`: `"tenant"`, or an object with exactly one of `oids`, `app_role`, `groups`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawUsers {
    Tenant,
    Selector(UserSelector),
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSelector {
    pub oids: Option<Vec<String>>,
    pub app_role: Option<String>,
    pub groups: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppRoleSelector {
    app_role: String,
}

/// Reads a document file, at most one byte past the cap (so an oversized file is refused by `parse`
/// without being read whole). Blocking: call it off the async workers.
pub fn read_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_DOCUMENT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Parses a document's bytes; the first structural error stops parsing (the meaning checks in
/// `compile` then report every remaining problem at once).
pub fn parse(bytes: &[u8]) -> Result<RawDocument, DocumentError> {
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(DocumentError {
            path: "$".into(),
            problem: "the document is larger than 256 KiB",
            detail: None,
        });
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let document: RawDocument =
        serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
            let path = json_path(&err.path().to_string());
            let inner = err.into_inner();
            let problem = match inner.classify() {
                serde_json::error::Category::Data => "does not match the document schema",
                _ => "is not valid JSON",
            };
            DocumentError {
                path,
                problem,
                detail: Some(inner.to_string()),
            }
        })?;
    deserializer.end().map_err(|err| DocumentError {
        path: "$".into(),
        problem: "has trailing characters after the document",
        detail: Some(err.to_string()),
    })?;
    Ok(document)
}

/// `grants[0].apps` from serde_path_to_error's `grants[0].apps`, or `$` for the root (`.`).
fn json_path(path: &str) -> String {
    if path.is_empty() || path == "." {
        "$".into()
    } else {
        path.to_owned()
    }
}

/// A string-keyed map in which a repeated key is an error (serde_json keeps the last one silently).
fn unique_map<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<BTreeMap<String, String>>, D::Error> {
    struct UniqueMap;
    impl<'de> Visitor<'de> for UniqueMap {
        type Value = BTreeMap<String, String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object of alias to scope")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut entries = BTreeMap::new();
            while let Some((key, value)) = map.next_entry::<String, String>()? {
                if entries.contains_key(&key) {
                    return Err(de::Error::custom(format_args!("duplicate alias `{key}`")));
                }
                entries.insert(key, value);
            }
            Ok(entries)
        }
    }
    deserializer.deserialize_map(UniqueMap).map(Some)
}

impl<'de> Deserialize<'de> for RawApps {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AppsVisitor;
        impl<'de> Visitor<'de> for AppsVisitor {
            type Value = RawApps;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a list of object ids or {"app_role": "<role>"}"#)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<RawApps, A::Error> {
                Vec::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(RawApps::Oids)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawApps, A::Error> {
                AppRoleSelector::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|selector| RawApps::AppRole(selector.app_role))
            }
        }
        deserializer.deserialize_any(AppsVisitor)
    }
}

impl<'de> Deserialize<'de> for RawUsers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct UsersVisitor;
        impl<'de> Visitor<'de> for UsersVisitor {
            type Value = RawUsers;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#""tenant" or an object with one of oids, app_role, groups"#)
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<RawUsers, E> {
                match value {
                    "tenant" => Ok(RawUsers::Tenant),
                    _ => Err(E::invalid_value(de::Unexpected::Str(value), &self)),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawUsers, A::Error> {
                UserSelector::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawUsers::Selector)
            }
        }
        deserializer.deserialize_any(UsersVisitor)
    }
}

impl<'de> Deserialize<'de> for RawDelegate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DelegateVisitor;
        impl<'de> Visitor<'de> for DelegateVisitor {
            type Value = RawDelegate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"true, false or {"max_lifetime_seconds": <seconds>}"#)
            }
            fn visit_bool<E: de::Error>(self, value: bool) -> Result<RawDelegate, E> {
                Ok(RawDelegate::Flag(value))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawDelegate, A::Error> {
                DelegateLimits::deserialize(de::value::MapAccessDeserializer::new(map)).map(
                    |limits| RawDelegate::Limits {
                        max_lifetime_seconds: limits.max_lifetime_seconds,
                    },
                )
            }
        }
        deserializer.deserialize_any(DelegateVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(text: &str) -> DocumentError {
        parse(text.as_bytes()).unwrap_err()
    }

    #[test]
    fn a_minimal_document_parses() {
        let document = parse(br#"{"revision": 1, "grants": []}"#).unwrap();
        assert_eq!(document.revision, 1);
        assert!(document.audiences.is_none());
    }

    #[test]
    fn unknown_fields_are_errors_with_their_path() {
        let err = error_of(
            r#"{"revision": 1, "grants": [{"name": "a", "lane": "service", "scope": []}]}"#,
        );
        assert_eq!(err.path, "grants[0].scope");
        assert_eq!(err.problem, "does not match the document schema");
        let err = error_of(
            r#"{"revision": 1, "grants": [{"name": "a", "lane": "service", "apps": {"app_role": "R", "x": 1}}]}"#,
        );
        assert!(err.path.starts_with("grants[0].apps"), "{}", err.path);
    }

    #[test]
    fn duplicate_keys_are_errors() {
        assert_eq!(
            error_of(r#"{"revision": 1, "revision": 2, "grants": []}"#).path,
            "$"
        );
        let err = error_of(
            r#"{"revision": 1, "audiences": {"sql": "https://a.b/.default", "sql": "https://c.d/.default"}, "grants": []}"#,
        );
        assert_eq!(err.path, "audiences");
        assert!(err.detail.unwrap().contains("duplicate alias"));
    }

    #[test]
    fn users_take_tenant_or_a_selector() {
        let document = parse(
            br#"{"revision": 1, "grants": [
                {"name": "a", "users": "tenant", "lane": "user", "audiences": ["sql"]},
                {"name": "b", "users": {"groups": ["x"]}, "lane": "user", "audiences": ["sql"]}]}"#,
        )
        .unwrap();
        assert_eq!(document.grants[0].users, Some(RawUsers::Tenant));
        assert!(matches!(
            document.grants[1].users,
            Some(RawUsers::Selector(_))
        ));
        assert_eq!(
            error_of(
                r#"{"revision": 1, "grants": [{"name": "a", "users": "everyone", "lane": "user"}]}"#
            )
            .path,
            "grants[0].users"
        );
    }

    #[test]
    fn delegate_takes_a_flag_or_limits() {
        let document = parse(
            br#"{"revision": 1, "grants": [
                {"name": "a", "apps": [], "lane": "user", "audiences": ["sql"], "delegate": true},
                {"name": "b", "apps": [], "lane": "service", "audiences": ["sql"],
                 "delegate": {"max_lifetime_seconds": 600}}]}"#,
        )
        .unwrap();
        assert_eq!(document.grants[0].delegate, Some(RawDelegate::Flag(true)));
        assert_eq!(
            document.grants[1].delegate,
            Some(RawDelegate::Limits {
                max_lifetime_seconds: 600
            })
        );
        for bad in [r#""yes""#, r#"{"max_lifetime": 600}"#, "1"] {
            let text = format!(
                r#"{{"revision": 1, "grants": [{{"name": "a", "apps": [], "lane": "user", "delegate": {bad}}}]}}"#
            );
            assert!(
                error_of(&text).path.starts_with("grants[0].delegate"),
                "{bad}"
            );
        }
    }

    #[test]
    fn oversized_and_trailing_input_is_refused() {
        let big = format!(
            r#"{{"revision": 1, "grants": [], "pad": "{}"}}"#,
            "x".repeat(MAX_DOCUMENT_BYTES)
        );
        assert_eq!(
            error_of(&big).problem,
            "the document is larger than 256 KiB"
        );
        assert_eq!(
            error_of(r#"{"revision": 1, "grants": []} {}"#).problem,
            "has trailing characters after the document"
        );
        assert_eq!(error_of("{").problem, "is not valid JSON");
    }
}
