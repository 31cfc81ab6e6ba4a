//! The policy document's wire form: strict serde types (unknown fields, duplicate keys and `null` are
//! errors, reported with their JSON path) and the 256 KiB cap. Meaning is given by `compile`, not here.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::Path;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_path_to_error::{Path as JsonPath, Segment};

use crate::broker::excerpt;

/// Largest document accepted, from either source.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// Most characters of a key a JSON path shows.
const PATH_KEY_CHARS: usize = 32;
/// Most characters of a JSON path; with the longest fixed sentence, a reason stays under 300 bytes.
const PATH_CHARS: usize = 160;
/// Most characters of the parser's message the offline checker prints.
const DETAIL_CHARS: usize = 200;

/// A problem with a document, at a JSON path such as `grants[2].apps[0]` (`$` for the whole document).
///
/// `Display` (the path and a fixed sentence) is what health and the logs carry: the path's keys show
/// only their leading name characters, so no document text beyond a short name reaches them. `value`
/// and `detail` quote the document, escaped and cut (`excerpt`): only the offline checker prints them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentError {
    pub path: String,
    pub problem: &'static str,
    /// The offending value, quoted (`excerpt::quoted`).
    pub value: Option<String>,
    /// The parser's own message, escaped and cut.
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
    #[serde(default, deserialize_with = "present")]
    pub apps: Option<RawApps>,
    #[serde(default, deserialize_with = "present")]
    pub users: Option<RawUsers>,
    pub lane: RawLane,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub audiences: Vec<String>,
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
    #[serde(default, deserialize_with = "present")]
    pub oids: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    pub app_role: Option<String>,
    #[serde(default, deserialize_with = "present")]
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
            value: None,
            detail: None,
        });
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let document: RawDocument =
        serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
            let path = json_path(err.path());
            let inner = err.into_inner();
            let problem = match inner.classify() {
                serde_json::error::Category::Data => "does not match the document schema",
                _ => "is not valid JSON",
            };
            DocumentError {
                path,
                problem,
                value: None,
                detail: Some(excerpt::escaped(&inner.to_string(), DETAIL_CHARS)),
            }
        })?;
    deserializer.end().map_err(|err| DocumentError {
        path: "$".into(),
        problem: "has trailing characters after the document",
        value: None,
        detail: Some(excerpt::escaped(&err.to_string(), DETAIL_CHARS)),
    })?;
    Ok(document)
}

/// `grants[0].apps` from serde_path_to_error's path, or `$` for the root; at most `PATH_CHARS`.
fn json_path(path: &JsonPath) -> String {
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&path_key(key));
            }
            Segment::Unknown => out.push_str(if out.is_empty() { "?" } else { ".?" }),
        }
    }
    match out.chars().count() {
        0 => "$".into(),
        count if count > PATH_CHARS => excerpt::escaped(&out, PATH_CHARS),
        _ => out,
    }
}

/// A key as a path shows it: its leading name characters (A-Z a-z 0-9 _ -), at most `PATH_KEY_CHARS`
/// of them, then `…` if anything was left out. A planted `client_secret=...` key, or one carrying an
/// escape sequence, shows no more than the name before its first other character.
fn path_key(key: &str) -> String {
    let name_end = key
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-')))
        .unwrap_or(key.len());
    let (name, rest) = key.split_at(name_end);
    if key.is_empty() {
        return "\"\"".into();
    }
    let mut shown = excerpt::escaped(name, PATH_KEY_CHARS);
    if !rest.is_empty() && !shown.ends_with(excerpt::CUT) {
        shown.push(excerpt::CUT);
    }
    shown
}

/// A field that may be left out but, when present, must hold a value: serde reads `null` as absent,
/// which would let `{"apps": null, "users": ...}` pass for "exactly one of".
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
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
    fn null_is_refused_wherever_a_value_is_expected() {
        for (document, path) in [
            (
                r#"{"revision": 1, "grants": [{"name": "a", "apps": null, "users": "tenant", "lane": "user", "audiences": ["sql"]}]}"#,
                "grants[0].apps",
            ),
            (
                r#"{"revision": 1, "grants": [{"name": "a", "users": null, "apps": ["1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"], "lane": "service", "audiences": ["sql"]}]}"#,
                "grants[0].users",
            ),
            (
                r#"{"revision": 1, "grants": [{"name": "a", "users": {"oids": ["1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"], "groups": null}, "lane": "user", "audiences": ["sql"]}]}"#,
                "grants[0].users.groups",
            ),
            (
                r#"{"revision": 1, "grants": [{"name": "a", "users": {"app_role": null, "groups": ["1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"]}, "lane": "user", "audiences": ["sql"]}]}"#,
                "grants[0].users.app_role",
            ),
            (
                r#"{"revision": 1, "grants": [{"name": "a", "users": {"oids": null}, "lane": "user", "audiences": ["sql"]}]}"#,
                "grants[0].users.oids",
            ),
            (
                r#"{"revision": 1, "grants": [{"name": "a", "users": "tenant", "lane": "user", "audiences": ["sql"], "scopes": null}]}"#,
                "grants[0].scopes",
            ),
            (
                r#"{"revision": 1, "grants": [{"name": "a", "users": "tenant", "lane": "user", "audiences": null, "scopes": ["https://a.b/.default"]}]}"#,
                "grants[0].audiences",
            ),
            (
                r#"{"revision": 1, "audiences": null, "grants": []}"#,
                "audiences",
            ),
            (
                r#"{"revision": 1, "grants": [{"name": "a", "apps": {"app_role": null}, "lane": "service", "audiences": ["sql"]}]}"#,
                "grants[0].apps.app_role",
            ),
            (r#"{"revision": null, "grants": []}"#, "revision"),
            (r#"{"revision": 1, "grants": null}"#, "grants"),
        ] {
            let err = error_of(document);
            assert_eq!(err.path, path, "{document}");
            assert_eq!(err.problem, "does not match the document schema");
        }
    }

    #[test]
    fn a_path_shows_only_a_short_name_of_a_key() {
        let planted = error_of(
            r#"{"revision": 1, "grants": [{"name": "a", "lane": "service", "client_secret=hunter2-value": 1}]}"#,
        );
        assert_eq!(planted.path, "grants[0].client_secret…");
        let escape = error_of("{\"revision\": 1, \"grants\": [], \"\\u001b[2Kvalid\": 1}");
        assert_eq!(escape.path, "…");
        let huge = format!(
            r#"{{"revision": 1, "grants": [], "{}": 1}}"#,
            "k".repeat(200_000)
        );
        let err = error_of(&huge);
        assert_eq!(err.path, format!("{}…", "k".repeat(PATH_KEY_CHARS)));
        // The parser's message quotes the key: escaped and cut for the offline checker.
        let detail = err.detail.unwrap();
        assert!(detail.chars().count() <= DETAIL_CHARS + 1, "{detail}");
        let detail = escape.detail.unwrap();
        assert!(!detail.chars().any(char::is_control), "{detail}");
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
