//! The operator's own Deployments and Services as its caches keep them.
//!
//! The reconciler reads three things of them: the metadata (labels, owner, the applied-hash
//! annotation), the replica counts, and, for the drift check (`resources::covers`), every
//! field it applies. As k8s-openapi structs a Deployment was about 7 KB in memory and a
//! Service 3 KB, 100 MB at 10,000 routes, most of it the pod template. Here the spec is
//! kept as its compact JSON (what the drift check compares anyway) and decoded only for
//! that check. Watch events decode into these types directly ([`serde::Deserialize`]),
//! and [`kube::Resource`] makes them usable with watchers, stores and the controller like
//! the objects they stand for. ApiRoutes and Pods stay k8s-openapi objects, trimmed
//! ([`trim_route`], [`trim_pod`]).

use std::borrow::Cow;

use apiroutes_crds::ApiRoute;
use k8s_openapi::{
    NamespaceResourceScope,
    api::{
        apps::v1::{Deployment, DeploymentStatus},
        core::v1::{Pod, Service},
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::Resource;
use serde::{Deserialize, Deserializer, de::Error as _};
use serde_json::Value;

use crate::resources::APPLIED_HASH;

/// Keeps of an object's metadata what the operator reads (managed fields and annotations
/// other than its applied hash go).
fn trim_meta(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.retain(|k, _| k == APPLIED_HASH);
        if a.is_empty() {
            meta.annotations = None;
        }
    }
}

/// The object as JSON (`apiVersion`, `kind`, `metadata`, `spec`), for the drift check.
fn as_json<K: Resource<DynamicType = ()>>(metadata: &ObjectMeta, spec: &str) -> Value {
    let mut obj = serde_json::Map::new();
    obj.insert(
        "apiVersion".to_owned(),
        Value::String(K::api_version(&()).into_owned()),
    );
    obj.insert("kind".to_owned(), Value::String(K::kind(&()).into_owned()));
    obj.insert(
        "metadata".to_owned(),
        serde_json::to_value(metadata).unwrap_or(Value::Null),
    );
    obj.insert(
        "spec".to_owned(),
        serde_json::from_str(spec).unwrap_or(Value::Null),
    );
    Value::Object(obj)
}

/// A spec as compact JSON (`null` when absent).
fn spec_json<T: serde::Serialize>(spec: Option<T>) -> Box<str> {
    spec.and_then(|s| serde_json::to_string(&s).ok())
        .unwrap_or_else(|| "null".to_owned())
        .into()
}

/// A Deployment of the operator's, as cached.
#[derive(Clone, Debug, Default)]
pub struct CachedDeployment {
    pub metadata: ObjectMeta,
    /// `spec.replicas`.
    pub replicas: Option<i32>,
    /// Its status without conditions.
    pub status: Option<DeploymentStatus>,
    /// `spec` as compact JSON.
    spec: Box<str>,
}

impl CachedDeployment {
    /// The object's fields the drift check compares, as JSON.
    pub fn json(&self) -> Value {
        as_json::<Self>(&self.metadata, &self.spec)
    }
}

impl From<Deployment> for CachedDeployment {
    fn from(mut d: Deployment) -> Self {
        trim_meta(&mut d.metadata);
        let mut status = d.status;
        if let Some(s) = status.as_mut() {
            s.conditions = None;
        }
        CachedDeployment {
            replicas: d.spec.as_ref().and_then(|s| s.replicas),
            spec: spec_json(d.spec),
            metadata: d.metadata,
            status,
        }
    }
}

/// A Service of the operator's, as cached.
#[derive(Clone, Debug, Default)]
pub struct CachedService {
    pub metadata: ObjectMeta,
    /// `spec` as compact JSON.
    spec: Box<str>,
}

impl CachedService {
    /// The object's fields the drift check compares, as JSON.
    pub fn json(&self) -> Value {
        as_json::<Self>(&self.metadata, &self.spec)
    }
}

impl From<Service> for CachedService {
    fn from(mut s: Service) -> Self {
        trim_meta(&mut s.metadata);
        CachedService {
            spec: spec_json(s.spec),
            metadata: s.metadata,
        }
    }
}

/// `Deserialize` (the object it stands for, decoded, then kept as `From` keeps it) and
/// `kube::Resource` (that object's kind, group, version and plural) for a cached type.
macro_rules! cached_as {
    ($cached:ty, $object:ty) => {
        impl<'de> Deserialize<'de> for $cached {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let object = <$object>::deserialize(d).map_err(D::Error::custom)?;
                Ok(object.into())
            }
        }

        impl Resource for $cached {
            type DynamicType = ();
            type Scope = NamespaceResourceScope;

            fn kind(_: &()) -> Cow<'_, str> {
                <$object>::kind(&())
            }
            fn group(_: &()) -> Cow<'_, str> {
                <$object>::group(&())
            }
            fn version(_: &()) -> Cow<'_, str> {
                <$object>::version(&())
            }
            fn plural(_: &()) -> Cow<'_, str> {
                <$object>::plural(&())
            }
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

cached_as!(CachedDeployment, Deployment);
cached_as!(CachedService, Service);

/// An ApiRoute without managed fields and `kubectl`'s copy of its last applied spec.
pub fn trim_route(r: &mut ApiRoute) {
    r.metadata.managed_fields = None;
    if let Some(a) = r.metadata.annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// A pod's metadata and status: the operator reads its labels, owner and readiness, never
/// its spec.
pub fn trim_pod(p: &mut Pod) {
    p.metadata.managed_fields = None;
    p.spec = None;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn a_cached_deployment_keeps_what_the_operator_reads() {
        let live = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "a", "namespace": "shop", "generation": 3,
                         "labels": {"apiroutes.dev/route": "a"},
                         "annotations": {APPLIED_HASH: "h", "deployment.kubernetes.io/revision": "2"},
                         "managedFields": [{"manager": "x"}]},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"apiroutes.dev/route": "a"}},
                     "template": {"spec": {"containers": [{"name": "fn", "image": "echo:1"}]}}},
            "status": {"replicas": 2, "readyReplicas": 1,
                       "conditions": [{"type": "Available", "status": "True"}]}
        });
        let c: CachedDeployment = serde_json::from_value(live.clone()).unwrap();
        assert_eq!(c.replicas, Some(2));
        assert_eq!(c.metadata.generation, Some(3));
        let status = c.status.clone().unwrap();
        assert_eq!((status.replicas, status.ready_replicas), (Some(2), Some(1)));
        assert!(status.conditions.is_none());
        assert!(c.metadata.managed_fields.is_none());
        assert_eq!(
            c.metadata
                .annotations
                .clone()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            [APPLIED_HASH]
        );
        assert_eq!(c.json()["spec"], live["spec"]);
        assert_eq!(c.json()["metadata"]["labels"], live["metadata"]["labels"]);
        assert_eq!(CachedDeployment::kind(&()), "Deployment");
        assert_eq!(CachedDeployment::api_version(&()), "apps/v1");
        assert_eq!(CachedDeployment::plural(&()), "deployments");
    }

    #[test]
    fn a_cached_service_keeps_its_spec_for_the_drift_check() {
        let live = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "a", "namespace": "shop"},
            "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80}]},
            "status": {"loadBalancer": {}}
        });
        let c: CachedService = serde_json::from_value(live.clone()).unwrap();
        assert_eq!(c.json()["spec"], live["spec"]);
        assert_eq!(CachedService::api_version(&()), "v1");
        assert_eq!(CachedService::plural(&()), "services");
    }
}

#[cfg(test)]
mod covers_tests {
    #![allow(clippy::unwrap_used)]

    use apiroutes_crds::{labels::Variant, testing::route};

    use super::*;
    use crate::resources::{Config, covers_json, desired_deployment, desired_service};

    #[test]
    fn a_cached_child_covers_the_object_it_was_applied_from() {
        let r = route("a", "/api/a").created(1);
        let d = desired_deployment(&r, Variant::Main, &Config::default());
        assert!(covers_json(&CachedDeployment::from(d.clone()).json(), &d));
        let s = desired_service(&r, Variant::Main, &Config::default());
        assert!(covers_json(&CachedService::from(s.clone()).json(), &s));
    }
}
