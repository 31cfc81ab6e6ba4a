//! `docs/openapi.yaml` as a test oracle: every JSON response a test receives through `TestBroker` is
//! validated against the schema the document gives for its route, method and status, so the document
//! cannot drift from the broker.

use std::path::Path;
use std::sync::OnceLock;

use jsonschema::{Draft, Validator};
use serde_json::{Value, json};

use super::function_app::APP_ROOT;
use super::schemas::schema_errors;

/// The document, parsed once.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let path = Path::new(APP_ROOT).join("docs/openapi.yaml");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        serde_norway::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
    })
}

/// The documented path that `path` names (matched case-insensitively, as the host routes, without a
/// query string; a `{parameter}` segment matches any one segment), if any.
pub fn documented_path(path: &str) -> Option<&'static str> {
    let path = path.split('?').next().unwrap_or(path);
    let path = path.strip_suffix('/').unwrap_or(path);
    document()["paths"]
        .as_object()?
        .keys()
        .find(|documented| template_matches(documented, path))
        .map(String::as_str)
}

fn template_matches(template: &str, path: &str) -> bool {
    let (template, path): (Vec<&str>, Vec<&str>) =
        (template.split('/').collect(), path.split('/').collect());
    template.len() == path.len()
        && template.iter().zip(&path).all(|(expected, actual)| {
            (expected.starts_with('{') && expected.ends_with('}') && !actual.is_empty())
                || expected.eq_ignore_ascii_case(actual)
        })
}

/// Follows one `$ref` within the document.
fn resolve(value: &'static Value) -> &'static Value {
    match value["$ref"].as_str() {
        Some(reference) => {
            let pointer = reference.strip_prefix('#').expect("a local $ref");
            resolve(document().pointer(pointer).expect("the $ref resolves"))
        }
        None => value,
    }
}

/// A JSON pointer token, percent-encoded for use in a URI fragment (`{id}` in templated paths).
fn escape(token: &str) -> String {
    token
        .replace('~', "~0")
        .replace('/', "~1")
        .replace('{', "%7B")
        .replace('}', "%7D")
}

/// A validator for the JSON body of `method path` answered with `status`, or `None` when the document
/// does not describe that operation (a host-level answer such as its own 404) or gives it no JSON body.
/// Panics when the operation is documented but the status is not: that is drift.
pub fn response_validator(method: &str, path: &str, status: u16) -> Option<Validator> {
    let path = documented_path(path)?;
    let method = method.to_ascii_lowercase();
    let operation = &document()["paths"][path][&method];
    if !operation.is_object() {
        return None;
    }
    let status = status.to_string();
    let response = operation["responses"]
        .get(&status)
        .unwrap_or_else(|| panic!("docs/openapi.yaml: {method} {path} does not document {status}"));
    resolve(response)["content"]["application/json"]["schema"].as_object()?;
    // The response itself, or the `#/components/responses/...` it refers to.
    let at = match response["$ref"].as_str() {
        Some(reference) => reference.trim_start_matches('#').to_owned(),
        None => format!("/paths/{}/{method}/responses/{status}", escape(path)),
    };
    // The whole document is the schema resource, so its `#/components/...` references resolve; its
    // OpenAPI fields are unknown keywords to JSON Schema and ignored.
    let mut root = document().clone();
    root["$ref"] = json!(format!("#{at}/content/application~1json/schema"));
    let validator = jsonschema::options()
        .with_draft(Draft::Draft202012)
        .build(&root)
        .unwrap_or_else(|e| panic!("docs/openapi.yaml schema compiles: {e}"));
    Some(validator)
}

/// Asserts that `body` is what the document says `method path` answers with `status`.
pub fn assert_conforms(method: &str, path: &str, status: u16, body: &[u8]) {
    let Some(validator) = response_validator(method, path, status) else {
        return;
    };
    let json: Value = serde_json::from_slice(body).unwrap_or_else(|_| {
        panic!(
            "{method} {path} {status}: the body is not JSON: {:?}",
            String::from_utf8_lossy(body)
        )
    });
    assert_eq!(
        schema_errors(&validator, &json),
        Vec::<String>::new(),
        "{method} {path} {status} does not match docs/openapi.yaml: {json}"
    );
}
