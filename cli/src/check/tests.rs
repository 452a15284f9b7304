#![allow(clippy::unwrap_used)]

use super::*;

fn run(text: &str) -> Report {
    check(
        &[Input {
            name: "r.yaml".into(),
            text: text.into(),
        }],
        "default",
    )
}

fn errors(text: &str) -> Vec<String> {
    run(text)
        .findings
        .into_iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| format!("{}: {}", f.location, f.message))
        .collect()
}

fn route(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: apiroutes.dev/v1alpha1\nkind: ApiRoute\nmetadata:\n  name: {name}\nspec:\n{spec}\n"
    )
}

#[test]
fn a_good_manifest_passes() {
    let text = format!(
        "{}---\n{}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x}}\n",
        route("hello", "  path: /api/hello\n  image: echo:1"),
        route(
            "user",
            "  path: /api/users/[id]\n  image: echo:1\n  methods: [GET, PUT]\n  host: shop.example.com\n  port: 9000\n  bodyLimit: 512Ki\n  readinessPath: /healthz\n  scaling: {minReplicas: 1, maxReplicas: 3}\n  env: [{name: A, value: b}]\n  preview: {image: echo:draft}"
        ),
    );
    let report = run(&text);
    assert_eq!(report.findings, vec![]);
    assert_eq!((report.routes, report.skipped), (2, 1));
    assert!(report.render().ends_with(
        "2 ApiRoute(s) checked (1 other document(s) skipped): 0 error(s), 0 warning(s)\n"
    ));
}

#[test]
fn path_errors_name_the_field_and_the_place() {
    assert_eq!(
        errors(&route("a", "  path: /api/[...a]/b\n  image: echo:1")),
        ["r.yaml#1 default/a: spec.path: catch-all \"[...a]\" at byte 5 must be the last segment"]
    );
    assert_eq!(
        errors(&route("a", "  path: /api/../x\n  image: echo:1")),
        ["r.yaml#1 default/a: spec.path: segment \"..\" at byte 5: '.' and '..' are not allowed"]
    );
    assert_eq!(
        errors(&route("a", "  path: api/x\n  image: echo:1")),
        ["r.yaml#1 default/a: spec.path: pattern must start with '/' (got \"api/x\")"]
    );
}

#[test]
fn schema_checks_name_the_field() {
    let cases = [
        (
            "  path: /api/x\n  image: ' echo'",
            "spec.image: image must be a non-empty image reference without spaces",
        ),
        ("  path: /api/x", "spec.image: Required value"),
        (
            "  path: /api/x\n  image: e\n  methods: [get]",
            "spec.methods: methods must be upper-case HTTP method names such as GET, POST",
        ),
        (
            "  path: /api/x\n  image: e\n  methods: [GET, GET]",
            "spec.methods: methods must not repeat",
        ),
        (
            "  path: /api/x\n  image: e\n  methods: []",
            "spec.methods: must have at least 1 item(s), has 0",
        ),
        (
            "  path: /api/x\n  image: e\n  port: 70000",
            "spec.port: must be at most 65535, got 70000",
        ),
        (
            "  path: /api/x\n  image: e\n  port: '80'",
            "spec.port: must be integer, got string (\"80\")",
        ),
        (
            "  path: /api/x\n  image: e\n  scaling: {minReplicas: 5, maxReplicas: 2}",
            "spec.scaling.minReplicas: minReplicas (5) must not exceed maxReplicas (2)",
        ),
        // The default maxReplicas (10) counts, as after the API server's defaulting.
        (
            "  path: /api/x\n  image: e\n  scaling: {minReplicas: 11}",
            "spec.scaling.minReplicas: minReplicas (11) must not exceed maxReplicas (10)",
        ),
        (
            "  path: /api/x\n  image: e\n  scaling: {targetConcurrency: 0}",
            "spec.scaling.targetConcurrency: must be at least 1, got 0",
        ),
        (
            "  path: /api/x\n  image: e\n  timeoutSeconds: 0",
            "spec.timeoutSeconds: must be at least 1, got 0",
        ),
        (
            "  path: /api/x\n  image: e\n  timeoutSeconds: 4000",
            "spec.timeoutSeconds: must be at most 3600, got 4000",
        ),
        (
            "  path: /api/x\n  image: e\n  bodyLimit: 1mb",
            "spec.bodyLimit: bodyLimit \"1mb\" is not a byte quantity such as 1Mi, 512Ki, 10M or 1500",
        ),
        (
            "  path: /api/x\n  image: e\n  bodyLimit: '0'",
            "spec.bodyLimit: bodyLimit \"0\" must be greater than 0",
        ),
        (
            "  path: /api/x\n  image: e\n  readinessPath: healthz",
            "spec.readinessPath: readinessPath must start with '/'",
        ),
        (
            "  path: /api/x\n  image: e\n  host: 'shop.example.com:8080'",
            "spec.host: host must be a DNS name such as shop.example.com, without port or scheme",
        ),
        (
            "  path: /api/x\n  image: e\n  bodylimit: 1Mi",
            "spec: unknown field \"bodylimit\"",
        ),
        (
            "  path: /api/x\n  image: e\n  preview: {}",
            "spec.preview.image: Required value",
        ),
        (
            "  path: /api/x\n  image: e\n  env: [{value: x}]",
            "spec.env[0].name: Required value",
        ),
    ];
    for (spec, want) in cases {
        let got = errors(&route("a", spec));
        assert_eq!(got, [format!("r.yaml#1 default/a: {want}")], "{spec}");
    }
}

#[test]
fn metadata_and_document_problems() {
    let e = errors(
        "apiVersion: apiroutes.dev/v1\nkind: ApiRoute\nmetadata: {name: Bad_Name}\nspec: {path: /api/x, image: e}\n",
    );
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].contains("apiVersion: \"apiroutes.dev/v1\" is not served"));
    assert!(
        e[1].contains("metadata.name must be a DNS label starting with a letter")
            && e[1].contains("(got \"Bad_Name\")"),
        "{e:?}"
    );
    let other = run("apiVersion: gateway.example/v1\nkind: ApiRoute\nmetadata: {name: a}\n");
    assert_eq!((other.routes, other.skipped, other.errors()), (0, 1, 0));
    let e = errors("kind: ApiRoute\napiVersion: apiroutes.dev/v1alpha1\nmetadata: {name: a}\n");
    assert_eq!(e, ["r.yaml#1 default/a: spec: Required value"]);
    let e = errors("a: [unclosed\n");
    assert!(e[0].starts_with("r.yaml#1: not valid YAML"), "{e:?}");
    // Names the operator cannot derive its objects from: the CRD's rules.
    let e = errors(&route(&"x".repeat(56), "  path: /api/x\n  image: e"));
    assert!(
        e[0].contains("metadata.name must be at most 55 characters"),
        "{e:?}"
    );
    let e = errors(&route("shop-preview", "  path: /api/x\n  image: e"));
    assert!(e[0].contains("must not end in '-preview'"), "{e:?}");
    // Lists are expanded; JSON is YAML.
    let list = r#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"apiroutes.dev/v1alpha1","kind":"ApiRoute","metadata":{"name":"a"},"spec":{"path":"/x/[a]/[a]","image":"e"}}]}"#;
    assert_eq!(
        errors(list),
        [
            "r.yaml#1.items[0] default/a: spec.path: parameter \"a\" appears twice (second at byte 7)"
        ]
    );
}

#[test]
fn conflicts_across_files_name_the_winner() {
    let a = route(
        "users",
        "  path: /api/users/[id]\n  image: e\n  methods: [GET]",
    );
    let b = route("users-by-slug", "  path: /api/users/[slug]\n  image: e");
    let c = route(
        "users-post",
        "  path: /api/users/[id]\n  image: e\n  methods: [POST]",
    );
    let d = route(
        "hosted",
        "  path: /api/users/[id]\n  image: e\n  host: shop.example.com",
    );
    let report = check(
        &[
            Input {
                name: "a.yaml".into(),
                text: format!("{a}---\n{c}"),
            },
            Input {
                name: "b.yaml".into(),
                text: format!("{b}---\n{d}"),
            },
        ],
        "default",
    );
    let errs: Vec<String> = report
        .findings
        .iter()
        .map(|f| format!("{}: {}", f.location, f.message))
        .collect();
    // Without creation times the first by namespace/name wins: users-by-slug (all methods)
    // loses to users (GET); users-post (POST) overlaps only the loser, and a loser blocks
    // nobody; hosted has a host, so it conflicts with none of the hostless routes.
    assert_eq!(
        errs,
        [
            "b.yaml#1 default/users-by-slug: spec.path: /api/users/[slug] conflicts with default/users (/api/users/[id] at a.yaml#1 default/users): same pattern (/api/users/[]), overlapping host and methods; default/users wins (the older route wins; without creation times, the first by namespace/name), this one would not be routed"
        ]
    );
    let dup = errors(&format!("{a}---\n{a}"));
    assert!(
        dup[0].contains("default/users is defined twice (also at r.yaml#1 default/users)"),
        "{dup:?}"
    );
}

#[test]
fn every_cel_rule_of_the_crd_compiles_in_the_offline_interpreter() {
    // A rule the interpreter cannot compile would fail every manifest (fail-closed).
    let rules = Rules::new();
    let errors: Vec<String> = rules
        .schema
        .compilation_errors()
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn function_names_and_their_preview_rule_are_checked() {
    assert_eq!(
        errors(&route(
            "a",
            "  path: /api/a\n  image: echo:1\n  function: shop"
        )),
        Vec::<String>::new()
    );
    assert_eq!(
        errors(&route(
            "a",
            "  path: /api/a\n  image: echo:1\n  function: Shop.x"
        )),
        [format!(
            "r.yaml#1 default/a: spec.function: {}",
            labels::FUNCTION_NAME_MESSAGE
        )]
    );
    assert_eq!(
        errors(&route(
            "a",
            "  path: /api/a\n  image: echo:1\n  function: shop\n  preview: {image: echo:2}"
        )),
        [format!(
            "r.yaml#1 default/a: spec.preview: {}",
            labels::FUNCTION_PREVIEW_MESSAGE
        )]
    );
}

#[test]
fn schema_and_cel_findings_are_reported_together() {
    // As the API server refuses both (issue 15's example).
    let mut got = errors(&route(
        "a",
        "  path: /api/x\n  image: ''\n  scaling: {minReplicas: 5, maxReplicas: 2}",
    ));
    got.sort();
    assert_eq!(
        got,
        [
            "r.yaml#1 default/a: spec.image: image must be a non-empty image reference without spaces",
            "r.yaml#1 default/a: spec.image: must not be empty",
            "r.yaml#1 default/a: spec.scaling.minReplicas: minReplicas (5) must not exceed maxReplicas (2)",
        ]
    );
}

#[test]
fn reserved_property_names_are_respelled_for_the_interpreter() {
    assert_eq!(
        respell("!has(self.spec.function) || !has(self.spec.preview)"),
        "!has(self.spec.__function__) || !has(self.spec.preview)"
    );
    // Calls and longer names are left alone.
    assert_eq!(
        respell("self.for(x) && self.format.size() > 0"),
        "self.for(x) && self.format.size() > 0"
    );
    assert_eq!(respell("self.namespace"), "self.__namespace__");
}
