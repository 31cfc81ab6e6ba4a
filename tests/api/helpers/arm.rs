//! An offline "what would this deployment write" for `deploy/azuredeploy.json`: the template's expressions
//! evaluated for one set of parameters, the resources whose `condition` holds, with every value worked
//! out. Only the functions the template uses are known; an unknown one fails the test, naming it.
//!
//! What only Azure knows stays symbolic: `reference(id).clientId` is the text
//! `reference(<id>).clientId`; `guid(...)` and `uniqueString(...)` give stand-ins of the right shape. The one
//! runtime read that matters to a redeploy, the app settings the app has now
//! (`list(<site>/config/appsettings)`), is given by the test.

use serde_json::{Map, Value, json};

/// The tenant `subscription().tenantId` stands for.
pub const SUBSCRIPTION_TENANT: &str = "7c1e0f5a-3b2d-4e8f-9a6b-5d4c3b2a1f0e";

const RESOURCE_GROUP_ID: &str = "/subscriptions/sub/resourceGroups/rg";

/// One evaluated deployment of a template.
pub struct Deployment<'a> {
    template: &'a Value,
    parameters: Map<String, Value>,
    existing_app_settings: Value,
}

impl<'a> Deployment<'a> {
    /// The deployment with `parameters` (name → value; the template's defaults for the rest) against an
    /// app whose current app settings are `existing_app_settings` (`{}` for a first deployment).
    pub fn new(template: &'a Value, parameters: &Value, existing_app_settings: Value) -> Self {
        let given = parameters.as_object().cloned().unwrap_or_default();
        let declared = template["parameters"]
            .as_object()
            .expect("the template has parameters");
        for name in given.keys() {
            assert!(declared.contains_key(name), "no parameter `{name}`");
        }
        Self {
            template,
            parameters: given,
            existing_app_settings,
        }
    }

    /// Every resource deployed (its `condition` true), fully evaluated, `copy` loops expanded.
    pub fn resources(&self) -> Vec<Value> {
        let mut deployed = Vec::new();
        for resource in self.template["resources"].as_array().expect("resources") {
            let count = match resource.get("copy") {
                Some(copy) => self
                    .eval(&copy["count"], None)
                    .as_u64()
                    .expect("copy count"),
                None => 1,
            };
            for index in 0..count {
                let index = resource.get("copy").map(|_| index);
                let condition = resource
                    .get("condition")
                    .map_or(Value::Bool(true), |c| self.eval(c, index));
                if condition == Value::Bool(true) {
                    let mut evaluated = without_nulls(self.eval(resource, index));
                    if let Some(object) = evaluated.as_object_mut() {
                        object.remove("condition");
                        object.remove("copy");
                    }
                    deployed.push(evaluated);
                }
            }
        }
        deployed
    }

    /// The deployed resources of one type.
    pub fn of_type(&self, resource_type: &str) -> Vec<Value> {
        self.resources()
            .into_iter()
            .filter(|r| r["type"] == resource_type)
            .collect()
    }

    /// The app settings the deployment leaves on the Function App.
    pub fn app_settings(&self) -> Map<String, Value> {
        let config = self.of_type("Microsoft.Web/sites/config");
        assert_eq!(config.len(), 1, "one app settings resource");
        config[0]["properties"]
            .as_object()
            .cloned()
            .expect("app settings are an object")
    }

    /// One output, evaluated.
    pub fn output(&self, name: &str) -> Value {
        self.eval(&self.template["outputs"][name]["value"], None)
    }

    pub fn parameter(&self, name: &str) -> Value {
        if let Some(value) = self.parameters.get(name) {
            return value.clone();
        }
        let default = &self.template["parameters"][name]["defaultValue"];
        assert!(!default.is_null(), "parameter `{name}` has no value");
        self.eval(default, None)
    }

    fn variable(&self, name: &str) -> Value {
        let raw = &self.template["variables"][name];
        assert!(!raw.is_null(), "no variable `{name}`");
        self.eval(raw, None)
    }

    /// Evaluates every expression string in `value` (`[...]`, but not the `[[` escape).
    fn eval(&self, value: &Value, copy_index: Option<u64>) -> Value {
        match value {
            Value::String(text) if text.starts_with('[') && !text.starts_with("[[") => {
                let inner = text
                    .strip_prefix('[')
                    .and_then(|t| t.strip_suffix(']'))
                    .unwrap_or_else(|| panic!("unterminated expression {text}"));
                let mut parser = Parser {
                    text: inner.as_bytes(),
                    at: 0,
                };
                let expression = parser.expression();
                parser.skip_spaces();
                assert_eq!(parser.at, inner.len(), "trailing text in {text}");
                self.evaluate(&expression, copy_index)
            }
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|item| self.eval(item, copy_index))
                    .collect(),
            ),
            Value::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|(k, v)| {
                        let key = match self.eval(&Value::String(k.clone()), copy_index) {
                            Value::String(key) => key,
                            other => other.to_string(),
                        };
                        (key, self.eval(v, copy_index))
                    })
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    fn evaluate(&self, expression: &Expression, copy_index: Option<u64>) -> Value {
        match expression {
            Expression::Literal(value) => value.clone(),
            Expression::Member(target, name) => member(
                self.evaluate(target, copy_index),
                &Value::String(name.clone()),
            ),
            Expression::Index(target, index) => member(
                self.evaluate(target, copy_index),
                &self.evaluate(index, copy_index),
            ),
            Expression::Call(name, args) => self.call(name, args, copy_index),
        }
    }

    fn call(&self, name: &str, args: &[Expression], copy_index: Option<u64>) -> Value {
        let arg = |i: usize| self.evaluate(&args[i], copy_index);
        let all = || -> Vec<Value> { (0..args.len()).map(arg).collect() };
        let text = |v: Value| match v {
            Value::String(s) => s,
            other => other.to_string(),
        };
        match name.to_ascii_lowercase().as_str() {
            "parameters" => self.parameter(&text(arg(0))),
            "variables" => self.variable(&text(arg(0))),
            // ARM evaluates only the branch it takes.
            "if" => {
                if arg(0) == Value::Bool(true) {
                    arg(1)
                } else {
                    arg(2)
                }
            }
            "equals" => Value::Bool(arg(0) == arg(1)),
            "not" => Value::Bool(arg(0) != Value::Bool(true)),
            "and" => Value::Bool(all().iter().all(|v| *v == Value::Bool(true))),
            "or" => Value::Bool(all().contains(&Value::Bool(true))),
            "empty" => Value::Bool(match arg(0) {
                Value::Null => true,
                Value::String(s) => s.is_empty(),
                Value::Array(a) => a.is_empty(),
                Value::Object(o) => o.is_empty(),
                _ => false,
            }),
            "greater" => Value::Bool(arg(0).as_i64() > arg(1).as_i64()),
            "length" => json!(match arg(0) {
                Value::Array(a) => a.len(),
                Value::String(s) => s.len(),
                Value::Object(o) => o.len(),
                other => panic!("length of {other}"),
            }),
            "null" => Value::Null,
            "string" => Value::String(text(arg(0))),
            "concat" => {
                let values = all();
                if values.iter().all(Value::is_array) {
                    Value::Array(
                        values
                            .into_iter()
                            .flat_map(|v| v.as_array().cloned().unwrap_or_default())
                            .collect(),
                    )
                } else {
                    Value::String(values.into_iter().map(text).collect())
                }
            }
            // `{0}`, `{1}`, ... replaced by the arguments after the first (no format specifiers).
            "format" => {
                let values = all();
                let mut formatted = text(values[0].clone());
                for (i, value) in values.into_iter().enumerate().skip(1) {
                    formatted = formatted.replace(&format!("{{{}}}", i - 1), &text(value));
                }
                Value::String(formatted)
            }
            "replace" => Value::String(text(arg(0)).replace(&text(arg(1)), &text(arg(2)))),
            "createarray" => Value::Array(all()),
            "createobject" => {
                let values = all();
                Value::Object(
                    values
                        .chunks(2)
                        .map(|pair| (text(pair[0].clone()), pair[1].clone()))
                        .collect(),
                )
            }
            // Objects: later arguments win per key, as ARM's union does.
            "union" => {
                let mut merged = Map::new();
                for value in all() {
                    merged.extend(value.as_object().cloned().expect("union of objects"));
                }
                Value::Object(merged)
            }
            "copyindex" => json!(copy_index.expect("copyIndex() outside a copy loop")),
            "resourcegroup" => json!({
                "id": RESOURCE_GROUP_ID, "name": "rg", "location": "swedencentral"
            }),
            "subscription" => json!({"subscriptionId": "sub", "tenantId": SUBSCRIPTION_TENANT}),
            "environment" => json!({
                "authentication": {"loginEndpoint": "https://login.microsoftonline.com/"},
                "suffixes": {"storage": "core.windows.net", "keyvaultDns": ".vault.azure.net"}
            }),
            "resourceid" => Value::String(resource_id(
                &format!("{RESOURCE_GROUP_ID}/providers"),
                &all().into_iter().map(text).collect::<Vec<_>>(),
            )),
            "subscriptionresourceid" => Value::String(resource_id(
                "/subscriptions/sub/providers",
                &all().into_iter().map(text).collect::<Vec<_>>(),
            )),
            "extensionresourceid" => {
                let values: Vec<String> = all().into_iter().map(text).collect();
                Value::String(resource_id(
                    &format!("{}/providers", values[0]),
                    &values[1..],
                ))
            }
            "list" => {
                let id = text(arg(0));
                assert!(
                    id.ends_with("/config/appsettings"),
                    "list() of {id}: only the app settings are modelled"
                );
                json!({ "properties": self.existing_app_settings })
            }
            // Deterministic stand-ins of the right shape, so names still match their schemas.
            "uniquestring" => {
                let seed = all().into_iter().map(text).collect::<Vec<_>>().join("|");
                Value::String(stand_in(&seed, 13, "abcdefghijklmnopqrstuvwxyz234567"))
            }
            "guid" => {
                let seed = all().into_iter().map(text).collect::<Vec<_>>().join("|");
                let hex = stand_in(&seed, 32, "0123456789abcdef");
                Value::String(format!(
                    "{}-{}-{}-{}-{}",
                    &hex[..8],
                    &hex[8..12],
                    &hex[12..16],
                    &hex[16..20],
                    &hex[20..]
                ))
            }
            // What Azure assigns at deployment time stays symbolic.
            "reference" => Value::String(format!(
                "reference({})",
                all().into_iter().map(text).collect::<Vec<_>>().join(", ")
            )),
            other => panic!("the ARM function `{other}` is not modelled in helpers/arm.rs"),
        }
    }
}

/// `length` characters of `alphabet`, a function of `seed` (FNV-1a, continued per character).
fn stand_in(seed: &str, length: usize, alphabet: &str) -> String {
    let alphabet = alphabet.as_bytes();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in seed.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    (0..length)
        .map(|_| {
            hash = (hash ^ 0xff).wrapping_mul(0x0100_0000_01b3);
            let index = usize::try_from(hash >> 59).unwrap_or_default() % alphabet.len();
            char::from(alphabet[index])
        })
        .collect()
}

/// `value` without its null members: ARM leaves a property whose value is `null()` unset.
fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(members) => Value::Object(
            members
                .into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

/// `Microsoft.X/a/b` with names `n1, n2` → `<prefix>/Microsoft.X/a/n1/b/n2`.
fn resource_id(prefix: &str, parts: &[String]) -> String {
    let (resource_type, names) = parts.split_first().expect("a resource type");
    let (namespace, types) = resource_type
        .split_once('/')
        .expect("a namespaced resource type");
    let mut id = format!("{prefix}/{namespace}");
    for (kind, name) in types.split('/').zip(names) {
        id.push_str(&format!("/{kind}/{name}"));
    }
    id
}

/// `target.name` or `target[index]`; on a symbolic value (a string) the access is written out.
fn member(target: Value, key: &Value) -> Value {
    match (&target, key) {
        (Value::Object(members), Value::String(name)) => members
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("no member `{name}` in {target}")),
        (Value::Array(items), Value::Number(index)) => index
            .as_u64()
            .and_then(|i| items.get(usize::try_from(i).ok()?))
            .cloned()
            .unwrap_or_else(|| panic!("no item {index} in {target}")),
        (Value::String(symbolic), Value::String(name)) => {
            Value::String(format!("{symbolic}.{name}"))
        }
        _ => panic!("cannot index {target} with {key}"),
    }
}

enum Expression {
    Literal(Value),
    Call(String, Vec<Expression>),
    Member(Box<Expression>, String),
    Index(Box<Expression>, Box<Expression>),
}

/// ARM's expression grammar: calls, `'strings'` (`''` escapes a quote), integers, `true`/`false`,
/// `.member` and `[index]` accessors.
struct Parser<'t> {
    text: &'t [u8],
    at: usize,
}

impl Parser<'_> {
    fn skip_spaces(&mut self) {
        while self.text.get(self.at).is_some_and(u8::is_ascii_whitespace) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_spaces();
        self.text.get(self.at).copied()
    }

    fn expect(&mut self, byte: u8) {
        assert_eq!(
            self.peek(),
            Some(byte),
            "expected `{}` at {} in {}",
            byte as char,
            self.at,
            String::from_utf8_lossy(self.text)
        );
        self.at += 1;
    }

    fn expression(&mut self) -> Expression {
        let mut expression = self.primary();
        loop {
            match self.peek() {
                Some(b'.') => {
                    self.at += 1;
                    expression = Expression::Member(Box::new(expression), self.identifier());
                }
                Some(b'[') => {
                    self.at += 1;
                    let index = self.expression();
                    self.expect(b']');
                    expression = Expression::Index(Box::new(expression), Box::new(index));
                }
                _ => return expression,
            }
        }
    }

    fn primary(&mut self) -> Expression {
        match self.peek() {
            Some(b'\'') => {
                self.at += 1;
                let mut text = Vec::new();
                loop {
                    match self.text.get(self.at) {
                        Some(b'\'') if self.text.get(self.at + 1) == Some(&b'\'') => {
                            text.push(b'\'');
                            self.at += 2;
                        }
                        Some(b'\'') => {
                            self.at += 1;
                            break;
                        }
                        Some(byte) => {
                            text.push(*byte);
                            self.at += 1;
                        }
                        None => panic!("unterminated string"),
                    }
                }
                Expression::Literal(Value::String(
                    String::from_utf8(text).expect("UTF-8 string"),
                ))
            }
            Some(byte) if byte.is_ascii_digit() || byte == b'-' => {
                let start = self.at;
                self.at += 1;
                while self.text.get(self.at).is_some_and(u8::is_ascii_digit) {
                    self.at += 1;
                }
                let number: i64 = std::str::from_utf8(&self.text[start..self.at])
                    .expect("ASCII")
                    .parse()
                    .expect("an integer");
                Expression::Literal(json!(number))
            }
            _ => {
                let name = self.identifier();
                match name.as_str() {
                    "true" => return Expression::Literal(Value::Bool(true)),
                    "false" => return Expression::Literal(Value::Bool(false)),
                    _ => {}
                }
                self.expect(b'(');
                let mut args = Vec::new();
                if self.peek() == Some(b')') {
                    self.at += 1;
                } else {
                    loop {
                        args.push(self.expression());
                        match self.peek() {
                            Some(b',') => self.at += 1,
                            _ => {
                                self.expect(b')');
                                break;
                            }
                        }
                    }
                }
                Expression::Call(name, args)
            }
        }
    }

    fn identifier(&mut self) -> String {
        self.skip_spaces();
        let start = self.at;
        while self
            .text
            .get(self.at)
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
        {
            self.at += 1;
        }
        assert!(
            self.at > start,
            "expected a name at {} in {}",
            self.at,
            String::from_utf8_lossy(self.text)
        );
        String::from_utf8_lossy(&self.text[start..self.at]).into_owned()
    }
}
