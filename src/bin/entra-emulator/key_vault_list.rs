//! Key Vault's list of a secret's versions, `GET /secrets/{name}/versions?api-version=..[&maxresults=n]`:
//! the same checks as a read, then one page of `{"value": [{id, attributes, contentType?, tags}],
//! "nextLink"}`, never values. Pages hold up to `maxresults` (1-25, default 25, or the smaller page size
//! the control API sets); `nextLink` carries an opaque `$skiptoken`. Oldest first; a secret that does not
//! exist lists no versions.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use warp::http::StatusCode;

use crate::http::{self, Request, Response};
use crate::key_vault::{admit, attributes, bad_parameter};
use crate::state::State;
use crate::vault::{MAX_PAGE_SIZE, SecretVersion};

pub fn handle(state: &State, request: &Request, name: &str) -> Response {
    if let Err(refusal) = admit(state, request, name) {
        return *refusal;
    }
    let page = match Page::parse(request, name) {
        Ok(page) => page,
        Err(message) => return bad_parameter(&message),
    };
    let vault = state.vault();
    let versions = vault.versions(name);
    if page.start > 0 && page.start >= versions.len() {
        return bad_parameter("The $skiptoken parameter is invalid.");
    }
    let size = page
        .max_results
        .unwrap_or(MAX_PAGE_SIZE)
        .min(vault.page_size);
    let end = versions.len().min(page.start + size);
    let items: Vec<Value> = versions
        .get(page.start..end)
        .unwrap_or_default()
        .iter()
        .map(|version| item(state, version))
        .collect();
    let next_link = (end < versions.len()).then(|| {
        format!(
            "{}secrets/{name}/versions?api-version={}&$skiptoken={}&maxresults={size}",
            state.config.vault_url,
            page.api_version,
            skip_token(name, end)
        )
    });
    let mut response = http::json(
        StatusCode::OK,
        &json!({"value": items, "nextLink": next_link}),
    );
    http::set_header(&mut response, "cache-control", "no-cache");
    response
}

/// One version's properties: Key Vault lists no values.
fn item(state: &State, version: &SecretVersion) -> Value {
    let mut item = json!({
        "id": format!("{}secrets/{}/{}", state.config.vault_url, version.name, version.version),
        "attributes": attributes(version),
        "tags": {},
    });
    if let (Some(content_type), Some(fields)) = (&version.content_type, item.as_object_mut()) {
        fields.insert("contentType".into(), json!(content_type));
    }
    item
}

/// Where a page starts and how long it may be, from the query.
struct Page {
    api_version: String,
    max_results: Option<usize>,
    start: usize,
}

impl Page {
    fn parse(request: &Request, name: &str) -> Result<Self, String> {
        let mut page = Self {
            api_version: String::new(),
            max_results: None,
            start: 0,
        };
        let pairs = request.query_pairs();
        if let Some(duplicate) = http::first_duplicate(&pairs) {
            return Err(format!(
                "The {duplicate} parameter is given more than once."
            ));
        }
        for (key, value) in pairs {
            match key.as_str() {
                "api-version" => page.api_version = value,
                "maxresults" => {
                    page.max_results = Some(
                        value
                            .parse()
                            .ok()
                            .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
                            .ok_or("The maxresults parameter must be an integer from 1 to 25.")?,
                    );
                }
                "$skiptoken" => {
                    page.start =
                        start_of(name, &value).ok_or("The $skiptoken parameter is invalid.")?;
                }
                other => return Err(format!("The {other} parameter is not supported.")),
            }
        }
        Ok(page)
    }
}

/// An opaque continuation: which secret, and the index of the next version.
fn skip_token(name: &str, start: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{start}", name.to_ascii_lowercase()))
}

fn start_of(name: &str, token: &str) -> Option<usize> {
    let decoded = String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()?;
    let (for_name, start) = decoded.rsplit_once(':')?;
    let start: usize = start.parse().ok()?;
    (for_name == name.to_ascii_lowercase() && start > 0).then_some(start)
}
