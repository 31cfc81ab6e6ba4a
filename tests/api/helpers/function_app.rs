//! The Function App as the Functions host reads it (FUNCTIONS_HOST.md §1.1, §1.6, §2): host.json's route
//! prefix and handler path, and every `<FunctionName>/function.json` under the app root.

use std::path::{Path, PathBuf};

use serde_json::Value;

pub const APP_ROOT: &str = env!("CARGO_MANIFEST_DIR");

pub struct FunctionApp {
    pub host_json: Value,
    pub route_prefix: String,
    pub executable: String,
    pub functions: Vec<Function>,
}

pub struct Function {
    /// The folder name.
    pub name: String,
    pub json: Value,
    /// `route`, or the function name when it is absent or empty.
    pub route: String,
    /// Lower-cased; `None` accepts every method.
    pub methods: Option<Vec<String>>,
    pub auth_level: String,
}

impl FunctionApp {
    pub fn load() -> Self {
        let host_json = read_json(&Path::new(APP_ROOT).join("host.json"));
        let route_prefix = host_json["extensions"]["http"]["routePrefix"]
            .as_str()
            .unwrap_or("api")
            .trim_matches('/')
            .to_owned();
        let executable = host_json["customHandler"]["description"]["defaultExecutablePath"]
            .as_str()
            .expect("host.json names customHandler.description.defaultExecutablePath")
            .to_owned();
        let functions = function_json_paths()
            .into_iter()
            .map(|(name, path)| Function::parse(name, read_json(&path)))
            .collect();
        Self {
            host_json,
            route_prefix,
            executable,
            functions,
        }
    }

    /// The function a request goes to, matched as ASP.NET routing does: path case-insensitive, an
    /// optional trailing slash, a trailing catch-all (`{*rest}`) matching the rest of the path or
    /// nothing, then the `methods` constraint.
    pub fn route(&self, method: &str, path: &str) -> Option<&Function> {
        let path = path.strip_prefix('/').unwrap_or(path);
        let path = path.strip_suffix('/').unwrap_or(path);
        self.functions.iter().find(|function| {
            let template = self.template(function);
            let matches = match template.strip_suffix(CATCH_ALL) {
                Some(fixed) => {
                    path.eq_ignore_ascii_case(fixed)
                        || path
                            .get(..=fixed.len())
                            .is_some_and(|head| head.eq_ignore_ascii_case(&format!("{fixed}/")))
                }
                None => path.eq_ignore_ascii_case(&template),
            };
            matches && function.accepts(method)
        })
    }

    fn template(&self, function: &Function) -> String {
        if self.route_prefix.is_empty() {
            function.route.clone()
        } else {
            format!("{}/{}", self.route_prefix, function.route)
        }
    }
}

/// The one route parameter the harness understands: a trailing catch-all.
const CATCH_ALL: &str = "/{*rest}";

impl Function {
    fn parse(name: String, json: Value) -> Self {
        let trigger = json["bindings"]
            .as_array()
            .and_then(|bindings| {
                bindings
                    .iter()
                    .find(|b| b["type"].as_str() == Some("httpTrigger"))
            })
            .unwrap_or_else(|| panic!("{name}/function.json has no httpTrigger binding"));
        let route = match trigger["route"].as_str().map(|r| r.trim_matches('/')) {
            Some(route) if !route.is_empty() => route.to_owned(),
            _ => name.clone(),
        };
        let fixed = route.strip_suffix(CATCH_ALL).unwrap_or(&route);
        assert!(
            !fixed.contains('{'),
            "{name}: the harness routes literal templates and one trailing catch-all only, not `{route}`"
        );
        let methods = trigger["methods"].as_array().map(|methods| {
            methods
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_ascii_lowercase)
                .collect()
        });
        let auth_level = trigger["authLevel"]
            .as_str()
            .unwrap_or("function")
            .to_owned();
        Self {
            name,
            json,
            route,
            methods,
            auth_level,
        }
    }

    fn accepts(&self, method: &str) -> bool {
        self.methods
            .as_ref()
            .is_none_or(|methods| methods.iter().any(|m| m.eq_ignore_ascii_case(method)))
    }
}

/// `(folder name, path)` of every `*/function.json` directly under the app root, sorted.
pub fn function_json_paths() -> Vec<(String, PathBuf)> {
    let mut found: Vec<(String, PathBuf)> = std::fs::read_dir(APP_ROOT)
        .expect("read the app root")
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let path = entry.path().join("function.json");
            let name = entry.file_name().into_string().ok()?;
            path.is_file().then_some((name, path))
        })
        .collect();
    found.sort();
    found
}

pub fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}
