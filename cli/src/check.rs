//! `apiroutes check FILE...`: validates ApiRoute manifests offline, as the cluster would.
//!
//! Three layers, each from the one home of its rule:
//! 1. **The CRD's structural schema**, walked from `ApiRoute::crd()` itself (types,
//!    required fields, unknown fields, bounds, lengths, item counts), so a bound changed in
//!    `apiroutes-crds` is checked here without an edit.
//! 2. **The CRD's CEL rules**, each by a Rust equivalent keyed by the rule's text (the
//!    offline CEL interpreter is not used: `kube-core`'s `cel` feature pulls a crate this
//!    workspace does not vendor). A test fails when the CRD gains a rule without one here.
//!    `spec.path` is checked with `Pattern::parse`, whose errors say what and where.
//! 3. **The conflict rule**, `apiroutes_crds::conflict::admit`, across every manifest given.
//!
//! [`check`] is pure (texts in, findings out); reading files is the caller's.

use std::collections::BTreeMap;

use apiroutes_crds::{
    ApiRoute, Pattern, PatternError,
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
    let mut valid: Vec<Valid> = Vec::new();
    for input in inputs {
        for (location, doc) in documents(input, &mut report) {
            check_document(
                &location,
                doc,
                namespace,
                &spec_schema,
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

    if problems.is_empty() {
        match serde_json::from_value::<ApiRoute>(doc.clone()) {
            Ok(mut route) => {
                // CEL rules see the object after defaulting, as the API server's do.
                match serde_json::to_value(&route.spec) {
                    Ok(defaulted) => cel(spec_schema, &defaulted, "spec", &mut problems),
                    Err(e) => problems.push(format!("spec: {e}")),
                }
                // The CRD's object-level rule `labels::FUNCTION_PREVIEW_RULE`.
                if route.spec.function.is_some() && route.spec.preview.is_some() {
                    problems.push(format!(
                        "spec.preview: {}",
                        labels::FUNCTION_PREVIEW_MESSAGE
                    ));
                }
                if problems.is_empty() {
                    route.metadata.namespace = Some(ns.to_owned());
                    valid.push(Valid {
                        location: location.clone(),
                        route,
                    });
                }
            }
            Err(e) => problems.push(e.to_string()),
        }
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

/// The `spec` schema of the CRD, as the API server has it.
pub fn spec_schema() -> JSONSchemaProps {
    ApiRoute::crd()
        .spec
        .versions
        .into_iter()
        .next()
        .and_then(|v| v.schema)
        .and_then(|s| s.open_api_v3_schema)
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

/// The CEL rules of the schema, by their Rust equivalents, on the defaulted value.
fn cel(schema: &JSONSchemaProps, value: &Value, path: &str, problems: &mut Vec<String>) {
    if value.is_null() {
        return;
    }
    for rule in schema.x_kubernetes_validations.iter().flatten() {
        let verdict = match cel_equivalent(&rule.rule) {
            Some(check) => check(value),
            None => Verdict::Pass, // covered by a test: every rule has an equivalent
        };
        let at = match &rule.field_path {
            Some(field) => format!("{path}{field}"),
            None => path.to_owned(),
        };
        let message = rule
            .message
            .clone()
            .unwrap_or_else(|| format!("failed rule: {}", rule.rule));
        match verdict {
            Verdict::Pass => {}
            Verdict::Fail => problems.push(format!("{at}: {message}")),
            Verdict::FailWith(why) => problems.push(format!("{at}: {why}")),
        }
    }
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let sub = schema.properties.as_ref().and_then(|p| p.get(key)).or(
                    match &schema.additional_properties {
                        Some(JSONSchemaPropsOrBool::Schema(s)) => Some(s.as_ref()),
                        _ => None,
                    },
                );
                if let Some(sub) = sub {
                    cel(sub, child, &format!("{path}.{key}"), problems);
                }
            }
        }
        Value::Array(items) => {
            if let Some(JSONSchemaPropsOrArray::Schema(item)) = &schema.items {
                for (i, v) in items.iter().enumerate() {
                    cel(item, v, &format!("{path}[{i}]"), problems);
                }
            }
        }
        _ => {}
    }
}

enum Verdict {
    Pass,
    /// Fails: say the rule's own message.
    Fail,
    /// Fails: say this more precise message instead.
    FailWith(String),
}

fn verdict(ok: bool) -> Verdict {
    if ok { Verdict::Pass } else { Verdict::Fail }
}

type CelCheck = fn(&Value) -> Verdict;

/// The Rust equivalent of one of the CRD's CEL rules, by the rule's text.
fn cel_equivalent(rule: &str) -> Option<CelCheck> {
    let check: CelCheck = match rule {
        r if r.starts_with("self == '/' || self.matches(") => {
            |v| match v.as_str().map(Pattern::parse) {
                Some(Err(PatternError::DotSegment { .. })) | Some(Ok(_)) => Verdict::Pass,
                Some(Err(e)) => Verdict::FailWith(e.to_string()),
                None => Verdict::Fail,
            }
        }
        "!self.split('/').exists(s, s == '.' || s == '..')" => {
            |v| match v.as_str().map(Pattern::parse) {
                Some(Err(e @ PatternError::DotSegment { .. })) => Verdict::FailWith(e.to_string()),
                _ => Verdict::Pass,
            }
        }
        "self.all(m, m.matches('^[A-Z][A-Z-]*$'))" => |v| {
            verdict(strings(v).all(|m| {
                m.starts_with(|c: char| c.is_ascii_uppercase())
                    && m.chars().all(|c| c.is_ascii_uppercase() || c == '-')
            }))
        },
        "self.all(m, self.exists_one(n, n == m))" => |v| {
            let all: Vec<&str> = strings(v).collect();
            let mut seen = std::collections::BTreeSet::new();
            match all.iter().find(|m| !seen.insert(**m)) {
                None => Verdict::Pass,
                Some(dup) => Verdict::FailWith(format!("methods must not repeat ({dup} twice)")),
            }
        },
        r if r.starts_with("self.matches('^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?") => {
            |v| verdict(v.as_str().is_some_and(is_host))
        }
        "self.trim() == self && self != ''" => {
            |v| verdict(v.as_str().is_some_and(|s| !s.is_empty() && s.trim() == s))
        }
        "self.startsWith('/')" => |v| verdict(v.as_str().is_some_and(|s| s.starts_with('/'))),
        labels::FUNCTION_NAME_RULE => |v| {
            verdict(v.as_str().is_some_and(|s| {
                s.starts_with(|c: char| c.is_ascii_lowercase()) && is_dns_label(s)
            }))
        },
        "isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))" => {
            |v| match v.as_str().map(|s| (s, quantity::parse_bytes(s))) {
                Some((_, Some(b))) if b > 0 => Verdict::Pass,
                Some((s, Some(_))) => {
                    Verdict::FailWith(format!("bodyLimit {s:?} must be greater than 0"))
                }
                Some((s, None)) => Verdict::FailWith(format!(
                    "bodyLimit {s:?} is not a byte quantity such as 1Mi, 512Ki, 10M or 1500"
                )),
                None => Verdict::Fail,
            }
        }
        "self.minReplicas <= self.maxReplicas" => |v| {
            let get = |k: &str| v.get(k).and_then(Value::as_i64);
            match (get("minReplicas"), get("maxReplicas")) {
                (Some(min), Some(max)) if min > max => Verdict::FailWith(format!(
                    "minReplicas ({min}) must not exceed maxReplicas ({max})"
                )),
                _ => Verdict::Pass,
            }
        },
        _ => return None,
    };
    Some(check)
}

fn strings(v: &Value) -> impl Iterator<Item = &str> {
    v.as_array().into_iter().flatten().filter_map(Value::as_str)
}

/// `^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$`
fn is_host(s: &str) -> bool {
    s.split('.').all(|label| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    })
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
