//! The Function App's configuration: host.json and every function.json validate against SchemaStore's
//! schemas, and describe exactly the handler and routes the broker serves.

use std::path::Path;

use crate::helpers::function_app::{APP_ROOT, FunctionApp, function_json_paths, read_json};
use crate::helpers::schemas::{schema_errors, schema_path};

#[test]
fn host_json_validates_against_the_schema() {
    let schema = read_json(&schema_path("host.json"));
    let validator = jsonschema::draft7::new(&schema).expect("host.json schema compiles");
    let host_json = read_json(&Path::new(APP_ROOT).join("host.json"));

    assert_eq!(schema_errors(&validator, &host_json), Vec::<String>::new());
}

#[test]
fn every_function_json_validates_against_the_schema() {
    // The schema declares draft-04 but uses `const`: draft-07 semantics (shared/schemas/README.md).
    let schema = read_json(&schema_path("function.json"));
    let validator = jsonschema::draft7::new(&schema).expect("function.json schema compiles");
    let paths = function_json_paths();
    assert!(!paths.is_empty(), "no */function.json under {APP_ROOT}");

    for (name, path) in paths {
        let errors = schema_errors(&validator, &read_json(&path));
        assert_eq!(errors, Vec::<String>::new(), "{name}/function.json");
    }
}

#[test]
fn default_executable_path_names_the_token_broker_binary() {
    let app = FunctionApp::load();
    let binary = Path::new(env!("CARGO_BIN_EXE_token-broker"))
        .file_name()
        .and_then(|name| name.to_str())
        .expect("binary file name");

    assert_eq!(app.executable, binary);
    assert_eq!(
        app.host_json["customHandler"]["enableForwardingHttpRequest"],
        true
    );
}

#[test]
fn functions_are_anonymous_http_in_http_out_with_the_methods_the_broker_serves() {
    let app = FunctionApp::load();
    let expected = [
        (
            "Delegations",
            "delegations/{*rest}",
            vec!["get", "post", "delete"],
        ),
        ("GetSPToken", "GetSPToken", vec!["post"]),
        ("Health", "health", vec!["get"]),
        ("Token", "token", vec!["post"]),
        ("WhoAmI", "whoami", vec!["get"]),
    ];

    let actual: Vec<(&str, &str, Vec<&str>)> = app
        .functions
        .iter()
        .map(|f| {
            let methods = f.methods.iter().flatten().map(String::as_str).collect();
            (f.name.as_str(), f.route.as_str(), methods)
        })
        .collect();

    assert_eq!(actual, expected);
    assert_eq!(app.route_prefix, "api");
    for function in &app.functions {
        assert_eq!(function.auth_level, "anonymous", "{}", function.name);
        let bindings: Vec<(&str, &str)> = function.json["bindings"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|b| {
                (
                    b["type"].as_str().unwrap_or_default(),
                    b["direction"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            bindings,
            [("httpTrigger", "in"), ("http", "out")],
            "{}: forwarding needs exactly one httpTrigger in and one http out",
            function.name
        );
    }
}

/// The handler's stdout reaches Application Insights as `traces` under the category
/// `Host.Function.Console` (the host's `WorkerConstants.FunctionConsoleLogCategoryName`), one trace per
/// line at Information. Adaptive sampling keeps about 20 items a second per instance by default
/// (https://learn.microsoft.com/azure/azure-functions/configure-monitoring#configure-sampling), which would
/// drop audit lines under load: traces are excluded from sampling.
#[test]
fn host_json_keeps_every_audit_line_unsampled_at_information() {
    let host_json = FunctionApp::load().host_json;
    let logging = &host_json["logging"];
    let sampling = &logging["applicationInsights"]["samplingSettings"];

    assert_eq!(logging["logLevel"]["Host.Function.Console"], "Information");
    let sampling_off = sampling["isEnabled"] == false;
    let traces_excluded = sampling["excludedTypes"]
        .as_str()
        .unwrap_or_default()
        .split(';')
        .any(|kind| kind.trim().eq_ignore_ascii_case("Trace"));
    assert!(
        sampling_off || traces_excluded,
        "sampling may drop traces: {sampling}"
    );
}
