//! The `ApiRoute` custom resource (`apiroutes.dev/v1alpha1`). Doc comments here become the
//! CRD's descriptions (`kubectl explain apiroute.spec`); validation attributes become its
//! schema and CEL rules, so `kubectl apply` of a bad object fails naming the field.

use k8s_openapi::api::core::v1::{EnvFromSource, EnvVar, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::quantity;

/// An HTTP function served at a Next.js-style path: the gateway routes matching requests
/// to replicas of `image`, which the operator scales with load (down to zero when idle).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "apiroutes.dev",
    version = "v1alpha1",
    kind = "ApiRoute",
    plural = "apiroutes",
    singular = "apiroute",
    shortname = "ar",
    category = "apiroutes",
    namespaced,
    status = "ApiRouteStatus",
    doc = "An HTTP function served at a Next.js-style path pattern.",
    // The JSON form: kube-derive 5 warns "duplicated attribute" on repeated `printcolumn(..)`.
    printcolumn = r#"{"name":"Path","type":"string","jsonPath":".spec.path"}"#,
    printcolumn = r#"{"name":"Methods","type":"string","jsonPath":".spec.methods"}"#,
    printcolumn = r#"{"name":"Image","type":"string","jsonPath":".spec.image"}"#,
    printcolumn = r#"{"name":"Accepted","type":"string","jsonPath":".status.conditions[?(@.type==\"Accepted\")].status"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Replicas","type":"integer","jsonPath":".status.replicas"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    // `-o wide`: why a route is not accepted (`Conflict`, `InvalidSpec`) or not ready.
    printcolumn = r#"{"name":"Reason","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Accepted\")].reason"}"#,
    printcolumn = r#"{"name":"Ready-Reason","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    // The rules of `labels::ROUTE_NAME_RULES`, in order (attributes take no loops).
    validation = kube::core::Rule::new(crate::labels::ROUTE_NAME_RULES[0].0).message(crate::labels::ROUTE_NAME_RULES[0].1),
    validation = kube::core::Rule::new(crate::labels::ROUTE_NAME_RULES[1].0).message(crate::labels::ROUTE_NAME_RULES[1].1),
    validation = kube::core::Rule::new(crate::labels::ROUTE_NAME_RULES[2].0).message(crate::labels::ROUTE_NAME_RULES[2].1),
    validation = kube::core::Rule::new(crate::labels::FUNCTION_PREVIEW_RULE).message(crate::labels::FUNCTION_PREVIEW_MESSAGE).field_path(".spec.preview")
)]
#[serde(rename_all = "camelCase")]
pub struct ApiRouteSpec {
    /// Path pattern in the Next.js `pages/api` language: static segments, `[param]` (one
    /// segment), `[...param]` (one or more, last only) and `[[...param]]` (zero or more, last
    /// only), e.g. `/api/users/[id]`. Matched exactly as Next.js matches its API routes.
    #[x_kube(validation = kube::core::Rule::new(PATH_RULE).message(PATH_MESSAGE))]
    #[x_kube(validation = kube::core::Rule::new(PATH_DOTS_RULE).message("must not contain '.' or '..' segments"))]
    #[schemars(length(min = 1, max = 1024))]
    pub path: String,

    /// HTTP methods this route serves (upper case). Absent means all methods; a request
    /// with another method gets 405 with an `Allow` header. Two routes may share a path
    /// when their methods do not overlap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 16), inner(length(min = 1, max = 32)))]
    #[x_kube(validation = kube::core::Rule::new("self.all(m, m.matches('^[A-Z][A-Z-]*$'))").message("methods must be upper-case HTTP method names such as GET, POST"))]
    #[x_kube(validation = kube::core::Rule::new("self.all(m, self.exists_one(n, n == m))").message("methods must not repeat"))]
    pub methods: Option<Vec<String>>,

    /// Host this route serves (exact match, case-insensitive, no port). Absent means any
    /// host; a route with a host wins over one without for requests to that host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\\\\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$')").message("host must be a DNS name such as shop.example.com, without port or scheme"))]
    pub host: Option<String>,

    /// Container image of the function. It must listen on `$PORT` (all interfaces, or
    /// `$HOST` when set), answer its readiness check, and drain on SIGTERM.
    #[schemars(length(min = 1, max = 1024))]
    #[x_kube(validation = kube::core::Rule::new("self.trim() == self && self != ''").message("image must be a non-empty image reference without spaces"))]
    pub image: String,

    /// Container port the function listens on; also given to the process as `$PORT`.
    #[serde(default = "default_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,

    /// Environment variables for the function's container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,

    /// Sources of environment variables for the function's container, as a Pod's
    /// `envFrom` (a Secret or ConfigMap in the route's namespace). `apiroutes deploy` puts an
    /// app's `.env` files in a Secret named here, so values never appear in the ApiRoute.
    /// Entries of `env` win over these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_from: Vec<EnvFromSource>,

    /// Compute resources of the function's container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Path of an HTTP readiness check on the function (e.g. `/healthz`). Absent means a
    /// TCP check on `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self.startsWith('/')").message("readinessPath must start with '/'"))]
    #[schemars(length(min = 1, max = 1024))]
    pub readiness_path: Option<String>,

    /// Run the function on a read-only root filesystem, with an emptyDir on `/tmp` for
    /// scratch files. Off by default: functions already run as uid 65532 with no
    /// capabilities, so they can write only where the image lets everyone (its `/tmp`);
    /// the volume costs every pod start about 300 ms of the kubelet's volume manager,
    /// which polls mounts (docs/performance.md, cold-start timeline).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only_root_filesystem: bool,

    /// Request deadline at the gateway, in seconds; the client gets 504 after it.
    #[serde(default = "default_timeout_seconds")]
    #[schemars(range(min = 1, max = 3600))]
    pub timeout_seconds: i32,

    /// Request body cap as a Kubernetes quantity (e.g. `1Mi`, `512Ki`, `10M`); larger
    /// bodies get 413. The default, 1Mi, is about Next.js's default of 1mb.
    #[serde(default = "default_body_limit")]
    #[x_kube(validation = kube::core::Rule::new(crate::quantity::BYTES_RULE).message("bodyLimit must be a positive byte size such as 1Mi, 512Ki, 10M or 1500 (suffixes k, M, G, T, Ki, Mi, Gi, Ti)"))]
    #[schemars(length(min = 1, max = 32))]
    pub body_limit: String,

    /// Next.js `trailingSlash: true` for this route: the gateway serves the path with a
    /// trailing slash (`/api/x/`) and answers the path without it with a 308 to it, query
    /// kept. A path whose last segment is a file name (`data.json`) keeps the default: it
    /// is served without the slash and redirected to that. Absent or false: Next.js's
    /// default, `/api/x/` gets a 308 to `/api/x`. `apiroutes deploy` sets it from the app's
    /// next.config.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub trailing_slash: bool,

    /// How the function scales.
    #[serde(default)]
    pub scaling: Scaling,

    /// Preview Mode: while a request carries a valid preview cookie, it is served by a
    /// separate Deployment of this image instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<Preview>,

    /// Serve this route from a function shared with the other ApiRoutes of the namespace
    /// that name the same function: one Deployment (`fn.<function>`) runs them all, so
    /// they share module state and cold starts. Its pod template comes from the group's
    /// oldest route; a route whose image, port, env, envFrom, resources, readinessPath,
    /// readOnlyRootFilesystem or scaling differ from it is not accepted
    /// (`FunctionMismatch`). Absent: the route has its own Deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = kube::core::Rule::new(crate::labels::FUNCTION_NAME_RULE).message(crate::labels::FUNCTION_NAME_MESSAGE))]
    pub function: Option<String>,
}

const PATH_RULE: &str = r"self == '/' || self.matches('^(/([A-Za-z0-9._~!$&()*+,;=:@-]|%[0-9A-Fa-f]{2})+|/\\[[A-Za-z0-9_-]+\\])*(/\\[\\.\\.\\.[A-Za-z0-9_-]+\\]|/\\[\\[\\.\\.\\.[A-Za-z0-9_-]+\\]\\])?$')";
const PATH_MESSAGE: &str = "must be a Next.js route pattern: '/'-separated static segments, [param], and a last [...param] or [[...param]], with no trailing '/' (e.g. /api/users/[id])";
const PATH_DOTS_RULE: &str = "!self.split('/').exists(s, s == '.' || s == '..')";

/// Scaling bounds and targets of an ApiRoute.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self.minReplicas <= self.maxReplicas").message("minReplicas must not exceed maxReplicas").field_path(".minReplicas"))]
pub struct Scaling {
    /// Fewest replicas. 0 lets the route scale to zero when idle; the gateway holds the
    /// next request while it wakes.
    #[serde(default)]
    #[schemars(range(min = 0, max = 1000))]
    pub min_replicas: i32,

    /// Most replicas.
    #[serde(default = "default_max_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: i32,

    /// In-flight requests per replica that the autoscaler aims at.
    #[serde(default = "default_target_concurrency")]
    #[schemars(range(min = 1, max = 10000))]
    pub target_concurrency: i32,

    /// Seconds without requests after which a route with `minReplicas: 0` scales to zero.
    #[serde(default = "default_scale_to_zero_after")]
    #[schemars(range(min = 0, max = 86400))]
    pub scale_to_zero_after_seconds: i32,
}

impl Default for Scaling {
    fn default() -> Self {
        Scaling {
            min_replicas: 0,
            max_replicas: default_max_replicas(),
            target_concurrency: default_target_concurrency(),
            scale_to_zero_after_seconds: default_scale_to_zero_after(),
        }
    }
}

/// The Preview Mode variant of a route.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    /// Image serving preview (draft) requests.
    #[schemars(length(min = 1, max = 1024))]
    #[x_kube(validation = kube::core::Rule::new("self.trim() == self && self != ''").message("preview.image must be a non-empty image reference without spaces"))]
    pub image: String,

    /// Extra environment variables for the preview container (added to `spec.env`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
}

/// What the operator last saw and did.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApiRouteStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Replicas of the main Deployment.
    #[serde(default)]
    pub replicas: i32,
    /// Ready replicas of the main Deployment.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Where the route is served (gateway base URL + path pattern).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `Accepted` (routed, or `Conflict` with the winner named) and `Ready` (requests
    /// will be served; scaled to zero but wakeable counts as ready).
    /// A list-map keyed by `type`, as Kubernetes' own conditions, so server-side apply
    /// merges them entry by entry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

fn default_port() -> i32 {
    8080
}
fn default_timeout_seconds() -> i32 {
    30
}
fn default_body_limit() -> String {
    "1Mi".to_owned()
}
fn default_max_replicas() -> i32 {
    10
}
fn default_target_concurrency() -> i32 {
    10
}
fn default_scale_to_zero_after() -> i32 {
    60
}

impl ApiRouteSpec {
    /// The body limit in bytes, or `None` when `bodyLimit` does not parse (the API server
    /// refuses such objects; this guards objects from elsewhere, e.g. static files).
    pub fn body_limit_bytes(&self) -> Option<u64> {
        quantity::parse_bytes(&self.body_limit)
    }
}

impl ApiRoute {
    /// `namespace/name`, as functions see it in `x-apiroute-name`.
    pub fn key(&self) -> String {
        format!(
            "{}/{}",
            self.metadata.namespace.as_deref().unwrap_or_default(),
            self.metadata.name.as_deref().unwrap_or_default()
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn defaults_fill_an_minimal_spec() {
        let spec: ApiRouteSpec =
            serde_json::from_str(r#"{"path":"/api/x","image":"echo:1"}"#).unwrap();
        assert_eq!(spec.port, 8080);
        assert_eq!(spec.timeout_seconds, 30);
        assert_eq!(spec.body_limit_bytes(), Some(1 << 20));
        assert_eq!(spec.scaling, Scaling::default());
        assert!(!spec.trailing_slash);
        // Left out when false, so routes written before the field stay byte-identical.
        let json = serde_json::to_value(&spec).unwrap();
        assert!(json.get("trailingSlash").is_none(), "{json}");
        let spec: ApiRouteSpec =
            serde_json::from_str(r#"{"path":"/api/x","image":"e","trailingSlash":true}"#).unwrap();
        assert!(spec.trailing_slash);
        assert_eq!(serde_json::to_value(&spec).unwrap()["trailingSlash"], true);
    }
}
