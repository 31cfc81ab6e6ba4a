//! From a parsed document to a `Policy`: every id, scope, alias, role and name checked, every problem
//! collected with its JSON path (the whole document is refused if there is one).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::broker::Lane;
use crate::broker::excerpt;
use crate::broker::ids::ObjectId;
use crate::broker::policy::document::{
    self, DocumentError, RawApps, RawDocument, RawGrant, RawLane, RawUsers,
};
use crate::broker::policy::{AppMatch, Callers, Grant, Policy, UserMatch};
use crate::broker::scope::{AudienceMap, DEFAULT_AUDIENCES, TargetScope, is_alias};

/// Parses and compiles a document's bytes.
pub fn from_bytes(bytes: &[u8]) -> Result<(RawDocument, Policy), Vec<DocumentError>> {
    let raw = document::parse(bytes).map_err(|err| vec![err])?;
    let policy = compile(&raw)?;
    Ok((raw, policy))
}

pub fn compile(raw: &RawDocument) -> Result<Policy, Vec<DocumentError>> {
    let mut errors = Errors::default();
    let audiences = audiences(raw.audiences.as_ref(), &mut errors);
    let mut first_index: HashMap<&str, usize> = HashMap::new();
    let mut grants = Vec::with_capacity(raw.grants.len());
    for (index, grant) in raw.grants.iter().enumerate() {
        let at = format!("grants[{index}]");
        if first_index.insert(&grant.name, index).is_some() {
            errors.add_quoting(
                format!("{at}.name"),
                "repeats the name of an earlier grant",
                &grant.name,
            );
        }
        if let Some(grant) = compile_grant(grant, &at, &audiences, &mut errors) {
            grants.push(grant);
        }
    }
    errors.finish(Policy {
        revision: raw.revision,
        audiences: AudienceMap::new(audiences),
        grants,
    })
}

#[derive(Default)]
struct Errors(Vec<DocumentError>);

impl Errors {
    fn add(&mut self, path: String, problem: &'static str) {
        self.push(path, problem, None);
    }

    /// A problem with a value, which the offline checker quotes (escaped and cut short).
    fn add_quoting(&mut self, path: String, problem: &'static str, value: &str) {
        self.push(path, problem, Some(excerpt::quoted(value)));
    }

    fn push(&mut self, path: String, problem: &'static str, value: Option<String>) {
        self.0.push(DocumentError {
            path,
            problem,
            value,
            detail: None,
        });
    }

    fn finish(self, policy: Policy) -> Result<Policy, Vec<DocumentError>> {
        if self.0.is_empty() {
            Ok(policy)
        } else {
            Err(self.0)
        }
    }
}

/// The document's aliases, which replace the built-in map when present.
fn audiences(
    listed: Option<&BTreeMap<String, String>>,
    errors: &mut Errors,
) -> BTreeMap<String, TargetScope> {
    let Some(listed) = listed else {
        return DEFAULT_AUDIENCES
            .iter()
            .filter_map(|(alias, scope)| {
                Some(((*alias).to_owned(), TargetScope::parse(scope).ok()?))
            })
            .collect();
    };
    let mut map = BTreeMap::new();
    for (alias, scope) in listed {
        if !is_alias(alias) {
            // Not in the path: the key is not a well-formed alias, so it is not a name a path may show.
            errors.add_quoting(
                "audiences".into(),
                "is a key that is not an alias (1-64 of a-z 0-9 _ -)",
                alias,
            );
            continue;
        }
        match TargetScope::parse(scope) {
            Ok(scope) => {
                map.insert(alias.clone(), scope);
            }
            Err(_) => errors.add_quoting(
                format!("audiences.{alias}"),
                "is not one <https:// or api:// resource>/.default scope",
                scope,
            ),
        }
    }
    map
}

fn compile_grant(
    raw: &RawGrant,
    at: &str,
    audiences: &BTreeMap<String, TargetScope>,
    errors: &mut Errors,
) -> Option<Grant> {
    if !is_grant_name(&raw.name) {
        errors.add_quoting(
            format!("{at}.name"),
            "is not a grant name (1-64 of A-Z a-z 0-9 . _ -)",
            &raw.name,
        );
    }
    let lane = match raw.lane {
        RawLane::Service => Lane::Service,
        RawLane::User => Lane::User,
    };
    let callers = match (&raw.apps, &raw.users) {
        (Some(apps), None) => {
            if lane == Lane::User {
                errors.add(
                    format!("{at}.lane"),
                    "is user, but On-Behalf-Of needs a user: apps grants use lane service",
                );
            }
            apps_match(apps, &format!("{at}.apps"), errors).map(Callers::Apps)
        }
        (None, Some(users)) => {
            users_match(users, &format!("{at}.users"), errors).map(Callers::Users)
        }
        _ => {
            errors.add(at.to_owned(), "needs exactly one of apps and users");
            None
        }
    };
    let mut allowed = BTreeSet::new();
    let mut scopes = Vec::with_capacity(raw.scopes.len());
    for (index, text) in raw.scopes.iter().enumerate() {
        match TargetScope::parse(text) {
            Ok(scope) => {
                allowed.insert(scope.clone());
                scopes.push(scope);
            }
            Err(_) => errors.add_quoting(
                format!("{at}.scopes[{index}]"),
                "is not one <https:// or api:// resource>/.default scope",
                text,
            ),
        }
    }
    for (index, alias) in raw.audiences.iter().enumerate() {
        match audiences.get(alias) {
            Some(scope) => {
                allowed.insert(scope.clone());
            }
            None => errors.add_quoting(
                format!("{at}.audiences[{index}]"),
                "is not an alias defined in audiences (or built in, when audiences is absent)",
                alias,
            ),
        }
    }
    if raw.scopes.is_empty() && raw.audiences.is_empty() {
        errors.add(
            at.to_owned(),
            "allows nothing: list scopes, audiences or both",
        );
    }
    Some(Grant {
        name: raw.name.as_str().into(),
        callers: callers?,
        lane,
        scopes,
        aliases: raw.audiences.clone(),
        allowed,
        any_alias: false,
    })
}

fn apps_match(raw: &RawApps, at: &str, errors: &mut Errors) -> Option<AppMatch> {
    match raw {
        RawApps::Oids(oids) => oid_set(oids, at, errors).map(AppMatch::Oids),
        RawApps::AppRole(role) => {
            role_value(role, &format!("{at}.app_role"), errors).map(AppMatch::AppRole)
        }
    }
}

fn users_match(raw: &RawUsers, at: &str, errors: &mut Errors) -> Option<UserMatch> {
    let RawUsers::Selector(selector) = raw else {
        return Some(UserMatch::Tenant);
    };
    match (&selector.oids, &selector.app_role, &selector.groups) {
        (Some(oids), None, None) => {
            oid_set(oids, &format!("{at}.oids"), errors).map(UserMatch::Oids)
        }
        (None, Some(role), None) => {
            role_value(role, &format!("{at}.app_role"), errors).map(UserMatch::AppRole)
        }
        (None, None, Some(groups)) => {
            oid_set(groups, &format!("{at}.groups"), errors).map(UserMatch::Groups)
        }
        _ => {
            errors.add(
                at.to_owned(),
                "needs exactly one of oids, app_role and groups",
            );
            None
        }
    }
}

fn oid_set(texts: &[String], at: &str, errors: &mut Errors) -> Option<HashSet<ObjectId>> {
    if texts.is_empty() {
        errors.add(at.to_owned(), "lists no object ids");
        return None;
    }
    let mut oids = HashSet::with_capacity(texts.len());
    let mut valid = true;
    for (index, text) in texts.iter().enumerate() {
        match text.parse() {
            Ok(oid) => {
                oids.insert(oid);
            }
            Err(_) => {
                errors.add_quoting(
                    format!("{at}[{index}]"),
                    "is not an object id (a GUID)",
                    text,
                );
                valid = false;
            }
        }
    }
    valid.then_some(oids)
}

/// An app role value: printable ASCII without spaces, as Entra allows in `roles`.
fn role_value(text: &str, at: &str, errors: &mut Errors) -> Option<String> {
    if (1..=120).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic()) {
        Some(text.to_owned())
    } else {
        errors.add_quoting(
            at.to_owned(),
            "is not an app role value (printable ASCII, no spaces)",
            text,
        );
        None
    }
}

fn is_grant_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";

    fn errors_of(text: &str) -> Vec<(String, &'static str)> {
        from_bytes(text.as_bytes())
            .err()
            .expect("the document should be refused")
            .into_iter()
            .map(|err| (err.path, err.problem))
            .collect()
    }

    #[test]
    fn the_issue_example_compiles() {
        let text = format!(
            r#"{{"revision": 7,
              "audiences": {{"sql": "https://database.windows.net/.default", "storage": "https://storage.azure.com/.default"}},
              "grants": [
                {{"name": "sales-workspace-sql", "apps": ["{APP}"], "lane": "service",
                  "scopes": ["https://database.windows.net/.default"]}},
                {{"name": "ingestion-storage", "apps": {{"app_role": "Broker.Ingest"}}, "lane": "service", "audiences": ["storage"]}},
                {{"name": "everyone-own-sql", "users": "tenant", "lane": "user", "audiences": ["sql"]}}]}}"#
        );
        let (_, policy) = from_bytes(text.as_bytes()).unwrap();
        assert_eq!(policy.revision, 7);
        assert_eq!(policy.grants.len(), 3);
        assert!(
            policy.resolve_audience("arm").is_err(),
            "document aliases replace the built-in map"
        );
        let storage = TargetScope::parse("https://storage.azure.com/.default").unwrap();
        assert!(policy.grants[1].allowed.contains(&storage));
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let errors = errors_of(
            r#"{"revision": 1, "grants": [
                {"name": "a", "apps": ["not-a-guid", "also-not"], "lane": "user", "scopes": ["openid"]},
                {"name": "a", "users": {"groups": []}, "lane": "user", "audiences": ["nope"]},
                {"name": "bad name", "lane": "service", "users": {"oids": ["1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"], "app_role": "R"}}]}"#,
        );
        let paths: Vec<&str> = errors.iter().map(|(path, _)| path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "grants[0].lane",
                "grants[0].apps[0]",
                "grants[0].apps[1]",
                "grants[0].scopes[0]",
                "grants[1].name",
                "grants[1].users.groups",
                "grants[1].audiences[0]",
                "grants[2].name",
                "grants[2].users",
                "grants[2]",
            ]
        );
    }

    #[test]
    fn aliases_must_be_well_formed_and_defined() {
        let errors = errors_of(
            r#"{"revision": 1, "audiences": {"SQL": "https://database.windows.net/.default", "kv": "vault"},
                "grants": [{"name": "a", "users": "tenant", "lane": "user", "audiences": ["sql"]}]}"#,
        );
        assert_eq!(
            errors.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
            ["audiences", "audiences.kv", "grants[0].audiences[0]"]
        );
    }

    #[test]
    fn a_grant_needs_callers_and_something_to_allow() {
        let errors = errors_of(r#"{"revision": 1, "grants": [{"name": "a", "lane": "service"}]}"#);
        assert_eq!(
            errors,
            [
                (
                    "grants[0]".to_owned(),
                    "needs exactly one of apps and users"
                ),
                (
                    "grants[0]".to_owned(),
                    "allows nothing: list scopes, audiences or both"
                ),
            ]
        );
    }
}
