//! `apiroutes check FILE...`: validates ApiRoute manifests offline, as the cluster would.
//!
//! Three layers, each from the one home of its rule:
//! 1. **The CRD's structural schema**, walked from `ApiRoute::crd()` itself (types,
//!    required fields, unknown fields, bounds, lengths, item counts), so a bound changed in
//!    `apiroutes-crds` is checked here without an edit.
//! 2. **The CRD's CEL rules** (`x-kubernetes-validations`, the object-level ones included),
//!    evaluated by a CEL interpreter (`kube-cel`, with the Kubernetes extension functions)
//!    on the defaulted object, as the API server evaluates them: a rule added to the CRD is
//!    checked here without an edit. Where one of our own parsers can say more than the
//!    rule's message (`spec.path`: `Pattern::parse`, what and where; `spec.bodyLimit`; the
//!    replica bounds), it words the failure; it never decides it.
//! 3. **The conflict rule**, `apiroutes_crds::conflict::admit`, across every manifest given.
//!
//! [`check`] is pure (texts in, findings out); reading files is the caller's.

use std::collections::BTreeMap;

use apiroutes_crds::{
    ApiRoute, Pattern,
    conflict::{Admission, admit},
    labels, quantity,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use kube::CustomResourceExt;
use serde::Deserialize;
use serde_json::Value;

/// One manifest file (or stdin) to check.
#[derive(Clone, Debug)]
pub struct Input {
    /// Shown in findings: the path as given, or `<stdin>`.
    pub name: String,
    pub text: String,
}

/// Something wrong (or worth saying) about one document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// `file#doc` and, when known, `namespace/name`.
    pub location: String,
    pub message: String,
    pub severity: Severity,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// The outcome of a check.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
    /// ApiRoute documents seen.
    pub routes: usize,
    /// Documents of other kinds, left alone.
    pub skipped: usize,
}

impl Report {
    pub fn errors(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count()
    }

    /// One line per finding, then a summary.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for f in &self.findings {
            let level = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            out.push_str(&format!("{}: {level}: {}\n", f.location, f.message));
        }
        let warnings = self.findings.len() - self.errors();
        out.push_str(&format!(
            "{} ApiRoute(s) checked{}: {} error(s), {warnings} warning(s)\n",
            self.routes,
            if self.skipped > 0 {
                format!(" ({} other document(s) skipped)", self.skipped)
            } else {
                String::new()
            },
            self.errors(),
        ));
        out
    }
}

const API_VERSION: &str = "apiroutes.dev/v1alpha1";
const KIND: &str = "ApiRoute";

/// A document that passed its own checks and takes part in the conflict check.
struct Valid {
    location: String,
    route: ApiRoute,
}

/// Checks every ApiRoute in `inputs`; `namespace` is where objects without one would go
/// (`kubectl apply`'s current namespace).
pub fn check(inputs: &[Input], namespace: &str) -> Report {
    let mut report = Report::default();
    let spec_schema = spec_schema();
    let rules = Rules::new();
    let mut valid: Vec<Valid> = Vec::new();
    for input in inputs {
        for (location, doc) in documents(input, &mut report) {
            check_document(
                &location,
                doc,
                namespace,
                &spec_schema,
                &rules,
                &mut report,
                &mut valid,
            );
        }
    }
    conflicts(&valid, &mut report);
    report
}

/// The YAML documents of one input (lists expanded), each with its location.
fn documents(input: &Input, report: &mut Report) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(&input.text).enumerate() {
        let location = format!("{}#{}", input.name, i + 1);
        match Value::deserialize(doc) {
            Ok(Value::Null) => {}
            Ok(Value::Object(mut map))
                if map
                    .get("kind")
                    .and_then(Value::as_str)
                    .is_some_and(|k| k.ends_with("List"))
                    && map.get("items").is_some_and(Value::is_array) =>
            {
                if let Some(Value::Array(items)) = map.remove("items") {
                    for (j, item) in items.into_iter().enumerate() {
                        out.push((format!("{location}.items[{j}]"), item));
                    }
                }
            }
            Ok(value) => out.push((location, value)),
            Err(e) => {
                report.findings.push(Finding {
                    location,
                    message: format!("not valid YAML: {e}"),
                    severity: Severity::Error,
                });
                break; // the parser cannot resync after a syntax error
            }
        }
    }
    out
}

fn check_document(
    location: &str,
    doc: Value,
    namespace: &str,
    spec_schema: &JSONSchemaProps,
    rules: &Rules,
    report: &mut Report,
    valid: &mut Vec<Valid>,
) {
    let Value::Object(obj) = &doc else {
        report
            .findings
            .push(error(location, "not a Kubernetes object (a YAML mapping)"));
        return;
    };
    // Another group's `ApiRoute` is not ours; an `apiroutes.dev` one with a wrong version is.
    let ours = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .is_none_or(|v| v.starts_with("apiroutes.dev/"));
    if obj.get("kind").and_then(Value::as_str) != Some(KIND) || !ours {
        report.skipped += 1;
        return;
    }
    report.routes += 1;
    let name = obj
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str);
    let ns = obj
        .get("metadata")
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .unwrap_or(namespace);
    let location = match name {
        Some(n) => format!("{location} {ns}/{n}"),
        None => location.to_owned(),
    };
    let mut problems: Vec<String> = Vec::new();

    match obj.get("apiVersion").and_then(Value::as_str) {
        Some(API_VERSION) => {}
        Some(other) => problems.push(format!(
            "apiVersion: {other:?} is not served; use {API_VERSION}"
        )),
        None => problems.push(format!("apiVersion: Required value ({API_VERSION})")),
    }
    for key in obj.keys() {
        if !matches!(
            key.as_str(),
            "apiVersion" | "kind" | "metadata" | "spec" | "status"
        ) {
            problems.push(format!("unknown field {key:?}"));
        }
    }
    check_metadata(obj.get("metadata"), &mut problems);
    match obj.get("spec") {
        None | Some(Value::Null) => problems.push("spec: Required value".to_owned()),
        Some(spec) => structural(spec_schema, spec, "spec", &mut problems),
    }

    // The CEL rules run whenever the object decodes, beside the schema's findings, as the
    // API server reports both (an empty image and minReplicas > maxReplicas: two errors).
    let structural_ok = problems.is_empty();
    match serde_json::from_value::<ApiRoute>(doc.clone()) {
        Ok(mut route) => {
            // CEL rules see the object after defaulting, as the API server's do.
            match serde_json::to_value(&route) {
                Ok(defaulted) => rules.check(&defaulted, &mut problems),
                Err(e) => problems.push(format!("spec: {e}")),
            }
            if problems.is_empty() {
                route.metadata.namespace = Some(ns.to_owned());
                valid.push(Valid {
                    location: location.clone(),
                    route,
                });
            }
        }
        // What does not decode was already named by the schema walk.
        Err(e) if structural_ok => problems.push(e.to_string()),
        Err(_) => {}
    }
    report
        .findings
        .extend(problems.iter().map(|p| error(&location, p)));
}

fn error(location: &str, message: &str) -> Finding {
    Finding {
        location: location.to_owned(),
        message: message.to_owned(),
        severity: Severity::Error,
    }
}

/// `metadata.name`: the CRD's name rules (`labels::route_name_problem`, the same rules as
/// its CEL), since the route's Deployment, Service and labels are named after it.
/// `generateName` cannot be applied.
fn check_metadata(meta: Option<&Value>, problems: &mut Vec<String>) {
    let Some(Value::Object(meta)) = meta else {
        problems.push("metadata.name: Required value".to_owned());
        return;
    };
    match meta.get("name") {
        Some(Value::String(name)) => {
            if let Some(problem) = labels::route_name_problem(name) {
                problems.push(format!("{problem} (got {name:?})"));
            }
        }
        Some(_) => problems.push("metadata.name: must be a string".to_owned()),
        None => problems.push("metadata.name: Required value".to_owned()),
    }
    if let Some(ns) = meta.get("namespace") {
        match ns.as_str() {
            Some(ns) if is_dns_label(ns) => {}
            _ => problems.push(format!("metadata.namespace: {ns} is not a DNS label")),
        }
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The CRD's whole schema (its one served version), as the API server has it.
fn crd_schema() -> Option<JSONSchemaProps> {
    ApiRoute::crd()
        .spec
        .versions
        .into_iter()
        .next()
        .and_then(|v| v.schema)
        .and_then(|s| s.open_api_v3_schema)
}

/// The `spec` schema of the CRD, as the API server has it.
pub fn spec_schema() -> JSONSchemaProps {
    crd_schema()
        .and_then(|s| s.properties)
        .and_then(|mut p| p.remove("spec"))
        .unwrap_or_default()
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The structural schema check of `value` at `path`.
fn structural(schema: &JSONSchemaProps, value: &Value, path: &str, problems: &mut Vec<String>) {
    if value.is_null() || schema.x_kubernetes_preserve_unknown_fields == Some(true) {
        return;
    }
    if schema.x_kubernetes_int_or_string == Some(true) {
        if !(value.is_string() || value.is_i64() || value.is_u64()) {
            problems.push(format!(
                "{path}: must be an integer or a string, got {}",
                type_name(value)
            ));
        }
        return;
    }
    let expected = schema.type_.as_deref().unwrap_or("");
    let got = type_name(value);
    let fits = match expected {
        "" => true,
        "number" => value.is_number(),
        other => other == got,
    };
    if !fits {
        problems.push(format!("{path}: must be {expected}, got {got} ({value})"));
        return;
    }
    match value {
        Value::Object(map) => {
            for required in schema.required.iter().flatten() {
                if map.get(required).is_none_or(Value::is_null) {
                    problems.push(format!("{path}.{required}: Required value"));
                }
            }
            for (key, child) in map {
                let child_path = format!("{path}.{key}");
                match schema.properties.as_ref().and_then(|p| p.get(key)) {
                    Some(s) => structural(s, child, &child_path, problems),
                    None => match &schema.additional_properties {
                        Some(JSONSchemaPropsOrBool::Schema(s)) => {
                            structural(s, child, &child_path, problems)
                        }
                        Some(JSONSchemaPropsOrBool::Bool(true)) => {}
                        _ => problems.push(format!("{path}: unknown field {key:?}")),
                    },
                }
            }
        }
        Value::Array(items) => {
            let n = items.len() as i64;
            if let Some(min) = schema.min_items
                && n < min
            {
                problems.push(format!("{path}: must have at least {min} item(s), has {n}"));
            }
            if let Some(max) = schema.max_items
                && n > max
            {
                problems.push(format!("{path}: must have at most {max} item(s), has {n}"));
            }
            if let Some(JSONSchemaPropsOrArray::Schema(item)) = &schema.items {
                for (i, v) in items.iter().enumerate() {
                    structural(item, v, &format!("{path}[{i}]"), problems);
                }
            }
        }
        Value::String(s) => {
            let n = s.chars().count() as i64;
            if let Some(min) = schema.min_length
                && n < min
            {
                problems.push(if n == 0 {
                    format!("{path}: must not be empty")
                } else {
                    format!("{path}: must be at least {min} characters")
                });
            }
            if let Some(max) = schema.max_length
                && n > max
            {
                problems.push(format!("{path}: must be at most {max} characters, is {n}"));
            }
            if let Some(allowed) = &schema.enum_
                && !allowed.iter().any(|a| a.0 == *value)
            {
                problems.push(format!("{path}: {s:?} is not one of the allowed values"));
            }
        }
        Value::Number(num) => {
            let x = num.as_f64().unwrap_or_default();
            if expected == "integer"
                && schema.format.as_deref() == Some("int32")
                && i32::try_from(num.as_i64().unwrap_or(i64::MAX)).is_err()
            {
                problems.push(format!("{path}: {num} does not fit a 32-bit integer"));
                return;
            }
            if let Some(min) = schema.minimum
                && x < min
            {
                problems.push(format!("{path}: must be at least {min}, got {num}"));
            }
            if let Some(max) = schema.maximum
                && x > max
            {
                problems.push(format!("{path}: must be at most {max}, got {num}"));
            }
        }
        _ => {}
    }
}

/// The CRD's CEL rules, compiled once.
struct Rules {
    schema: kube_cel::CompiledSchema,
    validator: kube_cel::Validator,
}

impl Rules {
    fn new() -> Self {
        let schema = crd_schema()
            .and_then(|s| serde_json::to_value(s).ok())
            .map(respell_reserved)
            .unwrap_or(Value::Null);
        Rules {
            schema: kube_cel::compile_schema(&schema),
            validator: kube_cel::Validator::new(),
        }
    }

    /// Every rule the (defaulted) `object` breaks, as `field: message`.
    fn check(&self, object: &Value, problems: &mut Vec<String>) {
        let Err(errors) = self.validator.validate_compiled(&self.schema, object, None) else {
            return;
        };
        for e in errors.into_vec() {
            let at = e.field_path.trim_start_matches('.');
            let message = detail(at, object).unwrap_or(e.message);
            // An object-level rule without a field path names its field in its message.
            let problem = if at.is_empty() {
                message
            } else {
                format!("{at}: {message}")
            };
            // The schema walk and the name check may have said it already.
            if !problems.iter().any(|p| p.contains(&problem)) {
                problems.push(problem);
            }
        }
    }
}

/// CEL-reserved words that kube-cel escapes as property names (`__function__`), as the
/// Kubernetes escaping rules once required; the API servers we run resolve
/// `self.spec.function` as written (measured: the CRD's function/preview rule refuses such
/// an object there). Selections of these names are respelled to kube-cel's escaped form.
const RESPELLED: [&str; 17] = [
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// The CRD schema with every rule's field selections of [`RESPELLED`] names escaped.
fn respell_reserved(mut schema: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(map) => {
                if let Some(Value::Array(rules)) = map.get_mut("x-kubernetes-validations") {
                    for rule in rules.iter_mut() {
                        if let Some(Value::String(text)) = rule.get_mut("rule") {
                            *text = respell(text);
                        }
                    }
                }
                map.values_mut().for_each(walk);
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut schema);
    schema
}

/// `self.spec.function` -> `self.spec.__function__` (a `.name` not followed by `(` or
/// another identifier character; string literals are not told apart, none of the CRD's
/// rules has such a name in one).
fn respell(rule: &str) -> String {
    let mut out = String::with_capacity(rule.len());
    let mut rest = rule;
    while let Some(dot) = rest.find('.') {
        out.push_str(&rest[..=dot]);
        rest = &rest[dot + 1..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let (name, after) = rest.split_at(end);
        if RESPELLED.contains(&name) && !after.starts_with('(') {
            out.push_str(&format!("__{name}__"));
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// A more precise wording of a failed rule on `field`, from the parser the platform itself
/// uses for it; `None`: the rule's own message says it.
fn detail(field: &str, object: &Value) -> Option<String> {
    let spec = object.get("spec")?;
    match field {
        "spec.path" => {
            let path = spec.get("path")?.as_str()?;
            Pattern::parse(path).err().map(|e| e.to_string())
        }
        "spec.bodyLimit" => {
            let limit = spec.get("bodyLimit")?.as_str()?;
            Some(match quantity::parse_bytes(limit) {
                Some(0) => format!("bodyLimit {limit:?} must be greater than 0"),
                Some(_) => return None,
                None => format!(
                    "bodyLimit {limit:?} is not a byte quantity such as 1Mi, 512Ki, 10M or 1500"
                ),
            })
        }
        "spec.scaling.minReplicas" => {
            let scaling = spec.get("scaling")?;
            let get = |k: &str| scaling.get(k).and_then(Value::as_i64);
            let (min, max) = (get("minReplicas")?, get("maxReplicas")?);
            Some(format!(
                "minReplicas ({min}) must not exceed maxReplicas ({max})"
            ))
        }
        _ => None,
    }
}

/// Runs the cluster's conflict rule over every valid route given.
fn conflicts(valid: &[Valid], report: &mut Report) {
    let mut by_key: BTreeMap<String, &Valid> = BTreeMap::new();
    let mut unique: Vec<&Valid> = Vec::new();
    for v in valid {
        let key = v.route.key();
        if let Some(first) = by_key.get(&key) {
            report.findings.push(error(
                &v.location,
                &format!(
                    "{key} is defined twice (also at {}); kubectl apply would keep only the last",
                    first.location
                ),
            ));
        } else {
            by_key.insert(key, v);
            unique.push(v);
        }
    }
    let routes: Vec<&ApiRoute> = unique.iter().map(|v| &v.route).collect();
    for (v, admission) in unique.iter().zip(admit(routes.iter().copied())) {
        match admission {
            // RouteGrants are cluster state: `check` has none, so nothing is denied here.
            Admission::Accepted | Admission::NotGranted(_) => {}
            Admission::Conflict { winner } => {
                let winning = by_key.get(&winner);
                let what = winning.map_or(String::new(), |w| {
                    format!(" ({} at {})", w.route.spec.path, w.location)
                });
                let canonical = Pattern::parse(&v.route.spec.path)
                    .map(|p| p.canonical())
                    .unwrap_or_default();
                report.findings.push(error(
                    &v.location,
                    &format!(
                        "spec.path: {} conflicts with {winner}{what}: same pattern ({canonical}), overlapping host and methods; {winner} wins (the older route wins; without creation times, the first by namespace/name), this one would not be routed",
                        v.route.spec.path
                    ),
                ));
            }
            Admission::Invalid(e) => report
                .findings
                .push(error(&v.location, &format!("spec.path: {e}"))),
            // Reported with the other metadata problems.
            Admission::InvalidName(_) => {}
        }
    }
}

#[cfg(test)]
mod tests;
