//! Fixtures for tests in this and other crates: `route("name", "/api/x").created(5)`.

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time},
    jiff::Timestamp,
};

use crate::types::{ApiRoute, ApiRouteSpec, Preview, Scaling};

/// A minimal valid ApiRoute in namespace `default` with image `echo:test`.
pub fn route(name: &str, path: &str) -> ApiRoute {
    ApiRoute {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some("default".to_owned()),
            uid: Some(format!("uid-{name}")),
            generation: Some(1),
            ..ObjectMeta::default()
        },
        spec: ApiRouteSpec {
            path: path.to_owned(),
            methods: None,
            host: None,
            image: "echo:test".to_owned(),
            port: 8080,
            env: vec![],
            env_from: vec![],
            resources: None,
            readiness_path: None,
            read_only_root_filesystem: false,
            timeout_seconds: 30,
            body_limit: "1Mi".to_owned(),
            trailing_slash: false,
            scaling: Scaling::default(),
            preview: None,
            function: None,
        },
        status: None,
    }
}

/// Builder-style tweaks for fixtures.
impl ApiRoute {
    /// Created `secs` seconds after the epoch.
    pub fn created(mut self, secs: i64) -> Self {
        let ts = Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH);
        self.metadata.creation_timestamp = Some(Time(ts));
        self
    }

    pub fn namespace(mut self, ns: &str) -> Self {
        self.metadata.namespace = Some(ns.to_owned());
        self
    }

    pub fn methods(mut self, methods: &[&str]) -> Self {
        self.spec.methods = Some(methods.iter().map(|m| (*m).to_owned()).collect());
        self
    }

    pub fn host(mut self, host: &str) -> Self {
        self.spec.host = Some(host.to_owned());
        self
    }

    pub fn with_preview(mut self) -> Self {
        self.spec.preview = Some(Preview {
            image: "echo:preview".to_owned(),
            env: vec![],
        });
        self
    }

    /// Served by the shared function `name`.
    pub fn function(mut self, name: &str) -> Self {
        self.spec.function = Some(name.to_owned());
        self
    }

    pub fn scaling(mut self, min: i32, max: i32) -> Self {
        self.spec.scaling.min_replicas = min;
        self.spec.scaling.max_replicas = max;
        self
    }
}
