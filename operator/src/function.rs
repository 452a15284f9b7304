//! Shared functions (`spec.function`): the ApiRoutes of one namespace that name the same
//! function are served by one Deployment, `fn.<function>`
//! ([`function_object_name`]). Pure decisions only; the reconciler applies them.
//!
//! - Membership: every route of the namespace with that `spec.function` and no deletion
//!   timestamp, oldest first (creation time, then name). The oldest is the *reference*:
//!   the Deployment's pod template is built from its spec, so every member computes the
//!   same object and their applies never fight.
//! - A member whose pod-shaping fields ([`mismatch`]) differ from the reference's is not
//!   accepted (`FunctionMismatch`); it writes nothing and deletes nothing, so while
//!   `apiroutes deploy --group` updates the routes one after another, the function keeps
//!   serving.
//! - The Deployment has an ownerReference to every agreeing member (the reference as
//!   controller, the others not), so Kubernetes deletes it with the last of them.
//! - Each route keeps its own headless Service (the gateway's trust chain and endpoints
//!   are per route), selecting the function's pods by [`FUNCTION`].
//! - The autoscaler scales the Deployment once for all members ([`scale_unit`]), on the
//!   summed load of the members, with the reference's `scaling`.

use std::{collections::BTreeMap, sync::Arc};

use apiroutes_crds::{
    ApiRoute,
    autoscale::RouteRef,
    labels::{FUNCTION, MANAGED_BY, MANAGED_BY_VALUE, VARIANT, Variant, function_object_name},
};
use k8s_openapi::{api::apps::v1::Deployment, apimachinery::pkg::apis::meta::v1::OwnerReference};
use kube::{Resource, ResourceExt};

use crate::{
    cache::CachedDeployment,
    resources::{Config, deployment, stamped},
};

/// The routes of `function` in `namespace` among `all`, oldest first; routes being deleted
/// are left out.
pub fn members<'a>(
    namespace: &str,
    function: &str,
    all: impl IntoIterator<Item = &'a ApiRoute>,
) -> Vec<&'a ApiRoute> {
    let mut out: Vec<&ApiRoute> = all
        .into_iter()
        .filter(|r| {
            r.metadata.namespace.as_deref() == Some(namespace)
                && r.spec.function.as_deref() == Some(function)
                && r.metadata.deletion_timestamp.is_none()
        })
        .collect();
    out.sort_by(|a, b| {
        let created = |r: &ApiRoute| r.metadata.creation_timestamp.as_ref().map(|t| t.0);
        created(a)
            .cmp(&created(b))
            .then_with(|| a.name_any().cmp(&b.name_any()))
    });
    out.dedup_by(|a, b| a.name_any() == b.name_any());
    out
}

/// The first field (its `spec.` path) in which `route` differs from the function's
/// `reference` among those that shape the shared pods and their scaling.
pub fn mismatch(reference: &ApiRoute, route: &ApiRoute) -> Option<&'static str> {
    let (a, b) = (&reference.spec, &route.spec);
    [
        ("spec.image", a.image == b.image),
        ("spec.port", a.port == b.port),
        ("spec.env", a.env == b.env),
        ("spec.envFrom", a.env_from == b.env_from),
        ("spec.resources", a.resources == b.resources),
        ("spec.readinessPath", a.readiness_path == b.readiness_path),
        (
            "spec.readOnlyRootFilesystem",
            a.read_only_root_filesystem == b.read_only_root_filesystem,
        ),
        ("spec.scaling", a.scaling == b.scaling),
    ]
    .into_iter()
    .find_map(|(field, same)| (!same).then_some(field))
}

/// A function as one of its members sees it.
#[derive(Clone, Debug)]
pub struct Group {
    pub function: String,
    /// The oldest member: the pod template's source.
    pub reference: ApiRoute,
    /// Members that agree with the reference (the reference first).
    pub members: Vec<ApiRoute>,
}

/// How `route` is run.
#[derive(Clone, Debug)]
pub enum Membership {
    /// No `spec.function`: its own Deployment.
    Own,
    /// Served by the shared Deployment of `Group`.
    Shared(Box<Group>),
    /// Disagrees with the function's reference route in `field`.
    Mismatch {
        function: String,
        reference: String,
        field: &'static str,
    },
}

/// The membership of `route` among `all` (the cached routes; `route` itself replaces its
/// cached version, which may be older).
pub fn membership(route: &ApiRoute, all: &[Arc<ApiRoute>]) -> Membership {
    let (Some(function), Some(namespace)) = (&route.spec.function, &route.metadata.namespace)
    else {
        return Membership::Own;
    };
    let me = route.name_any();
    let others = all
        .iter()
        .map(|r| r.as_ref())
        .filter(|r| r.name_any() != me);
    let members = members(namespace, function, others.chain([route]));
    // `route` is a member unless it is being deleted (its reconcile stops before this).
    let Some(reference) = members.first().copied() else {
        return Membership::Own;
    };
    if let Some(field) = mismatch(reference, route) {
        return Membership::Mismatch {
            function: function.clone(),
            reference: reference.name_any(),
            field,
        };
    }
    Membership::Shared(Box::new(Group {
        function: function.clone(),
        reference: reference.clone(),
        members: members
            .into_iter()
            .filter(|m| mismatch(reference, m).is_none())
            .cloned()
            .collect(),
    }))
}

/// Labels on a function's Deployment and pods (the selector of its routes' Services).
pub fn function_labels(function: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()),
        (FUNCTION.to_owned(), function.to_owned()),
        (VARIANT.to_owned(), Variant::Main.as_str().to_owned()),
    ])
}

/// Owner references of the shared Deployment: every member, the reference as controller.
pub fn owner_references(group: &Group) -> Vec<OwnerReference> {
    group
        .members
        .iter()
        .filter_map(|m| {
            let mut owner = m.controller_owner_ref(&())?;
            if m.name_any() != group.reference.name_any() {
                owner.controller = None;
                owner.block_owner_deletion = None;
            }
            Some(owner)
        })
        .collect()
}

/// The shared Deployment of `group`: the reference route's main Deployment, named and
/// labelled after the function, owned by every member, with the longest drain any member
/// needs. With its applied hash.
pub fn desired_function_deployment(group: &Group, config: &Config) -> Deployment {
    let mut d = deployment(&group.reference, Variant::Main, config);
    let labels = function_labels(&group.function);
    d.metadata.name = Some(function_object_name(&group.function));
    d.metadata.labels = Some(labels.clone());
    d.metadata.owner_references = Some(owner_references(group));
    let longest = group
        .members
        .iter()
        .map(|m| m.spec.timeout_seconds)
        .max()
        .unwrap_or(group.reference.spec.timeout_seconds);
    if let Some(spec) = d.spec.as_mut() {
        spec.selector.match_labels = Some(labels.clone());
        if let Some(meta) = spec.template.metadata.as_mut() {
            meta.labels = Some(labels);
        }
        if let Some(pod) = spec.template.spec.as_mut() {
            pod.termination_grace_period_seconds = Some(crate::resources::grace_seconds(longest));
            // The pod's hostname would otherwise be its name, which has a '.'.
            pod.hostname = Some(group.function.clone());
        }
    }
    stamped(d)
}

/// What the autoscaler scales for `variant` of `route`: the route variant itself, or for
/// a member of a function the function (keyed by its Deployment's name, which no route
/// can have), so the members' demand wakes it once and their load adds up.
pub fn scale_unit(route: &ApiRoute, variant: Variant) -> RouteRef {
    let namespace = route.namespace().unwrap_or_default();
    match (&route.spec.function, variant) {
        (Some(f), Variant::Main) => RouteRef {
            namespace,
            name: function_object_name(f),
            variant: Variant::Main,
        },
        _ => RouteRef {
            namespace,
            name: route.name_any(),
            variant,
        },
    }
}

/// The function a Deployment, pod or Service selector belongs to, from its labels.
pub fn function_label(labels: &BTreeMap<String, String>) -> Option<&str> {
    labels.get(FUNCTION).map(String::as_str)
}

/// The function Deployments in `deployments` that `route` still owns but no longer
/// belongs to, and that no route names any more: deleted by the reconciler (while other
/// routes name the function, their reconciles re-apply its owner references).
pub fn orphaned<'a>(
    route: &ApiRoute,
    deployments: impl IntoIterator<Item = &'a CachedDeployment>,
    all: &[Arc<ApiRoute>],
) -> Vec<String> {
    let (Some(uid), Some(ns)) = (&route.metadata.uid, &route.metadata.namespace) else {
        return vec![];
    };
    deployments
        .into_iter()
        .filter(|d| d.metadata.namespace.as_ref() == Some(ns))
        .filter_map(|d| {
            let function = function_label(d.metadata.labels.as_ref()?)?;
            let owned = d.owner_references().iter().any(|o| &o.uid == uid);
            let mine = route.spec.function.as_deref() == Some(function);
            let named = all.iter().any(|r| {
                r.metadata.namespace.as_ref() == Some(ns)
                    && r.spec.function.as_deref() == Some(function)
                    && r.metadata.deletion_timestamp.is_none()
            });
            (owned && !mine && !named).then(|| d.name_any())
        })
        .collect()
}

#[cfg(test)]
mod tests;
