//! `compute_status`: the ApiRoute's status as a pure function of what the operator sees.

use apiroutes_crds::{ApiRoute, ApiRouteStatus, conflict::Admission};
use k8s_openapi::{
    api::core::v1::Pod,
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
};

use crate::{cache::CachedDeployment, reasons::*, resources::Config};

/// Container waiting reasons that mean the image cannot be pulled.
const IMAGE_PULL_REASONS: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "RegistryUnavailable",
];
/// Container waiting reasons that mean the process keeps failing to start or crashing.
const CRASH_REASONS: &[&str] = &[
    "CrashLoopBackOff",
    "CreateContainerError",
    "CreateContainerConfigError",
    "RunContainerError",
];

/// What the operator observed for one route when computing its status.
#[derive(Clone, Copy, Debug)]
pub struct Observed<'a> {
    pub admission: &'a Admission,
    /// The main Deployment as last applied or seen (with its status).
    pub deployment: Option<&'a CachedDeployment>,
    /// Pods of the main variant (may be empty when none are visible).
    pub pods: &'a [&'a Pod],
    /// Why the route cannot join its shared function (`FunctionMismatch`), if it cannot.
    pub function_mismatch: Option<&'a str>,
}

/// A pod-level failure worth reporting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodProblem {
    pub reason: &'static str,
    pub message: String,
}

/// The first image-pull or crash problem among `pods` (image pull failures first: they
/// are the more actionable).
pub fn pod_problem(pods: &[&Pod]) -> Option<PodProblem> {
    let mut crash = None;
    for pod in pods {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let statuses = pod.status.as_ref().into_iter().flat_map(|s| {
            s.container_statuses
                .iter()
                .flatten()
                .chain(s.init_container_statuses.iter().flatten())
        });
        for cs in statuses {
            let Some(waiting) = cs.state.as_ref().and_then(|s| s.waiting.as_ref()) else {
                continue;
            };
            let reason = waiting.reason.as_deref().unwrap_or_default();
            let detail = waiting.message.as_deref().unwrap_or(reason);
            if IMAGE_PULL_REASONS.contains(&reason) {
                return Some(PodProblem {
                    reason: REASON_IMAGE_PULL_FAILING,
                    message: format!("pod {name}: cannot pull image {}: {detail}", cs.image),
                });
            }
            if crash.is_none() && CRASH_REASONS.contains(&reason) {
                // Why it last stopped (`OOMKilled`, `Error` with its exit code) says more
                // than the back-off.
                let last = cs
                    .last_state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .map(|t| {
                        let why = t.reason.as_deref().unwrap_or("exited");
                        format!(", last {why} with exit code {}", t.exit_code)
                    })
                    .unwrap_or_default();
                crash = Some(PodProblem {
                    reason: REASON_CRASH_LOOPING,
                    message: format!(
                        "pod {name}: container {} is failing ({reason}, {} restarts{last}): {detail}",
                        cs.name, cs.restart_count
                    ),
                });
            }
        }
    }
    crash
}

/// The whole status of `route`. Conditions keep their `lastTransitionTime` from `route`'s
/// current status when their `status` did not change, so computing twice on the same
/// inputs gives the same result and the caller can skip the patch when it equals the old.
pub fn compute_status(
    route: &ApiRoute,
    observed: Observed<'_>,
    config: &Config,
    now: &Time,
) -> ApiRouteStatus {
    let generation = route.metadata.generation;
    let old = route
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let dep_status = observed.deployment.and_then(|d| d.status.as_ref());
    let replicas = dep_status.and_then(|s| s.replicas).unwrap_or(0);
    let ready = dep_status.and_then(|s| s.ready_replicas).unwrap_or(0);
    let desired = observed.deployment.and_then(|d| d.replicas);

    let (accepted, accepted_reason, accepted_message) = match observed.admission {
        Admission::Accepted => match observed.function_mismatch {
            Some(m) => (false, REASON_FUNCTION_MISMATCH, m.to_owned()),
            None => (true, REASON_ACCEPTED, "routed by the gateways".to_owned()),
        },
        Admission::Conflict { winner } => (
            false,
            REASON_CONFLICT,
            format!(
                "ApiRoute {winner} already serves this path pattern (with overlapping host and methods); \
                 this route is not routed and runs no replicas until that one is changed or deleted"
            ),
        ),
        Admission::Invalid(e) => (false, REASON_INVALID_SPEC, format!("spec.path: {e}")),
        Admission::InvalidName(m) => (false, REASON_INVALID_NAME, (*m).to_owned()),
        Admission::NotGranted(d) => (
            false,
            d.reason,
            format!(
                "{}; this route is not routed and runs no replicas",
                d.message
            ),
        ),
    };

    let (ready_ok, ready_reason, ready_message) = if !accepted {
        (
            false,
            REASON_NOT_ACCEPTED,
            "the route is not accepted (see the Accepted condition)".to_owned(),
        )
    } else {
        let problem = pod_problem(observed.pods);
        match observed.deployment {
            None => (
                false,
                REASON_PROGRESSING,
                "waiting for the Deployment to be created".to_owned(),
            ),
            Some(_) if ready > 0 => {
                let mut message = format!("{ready}/{replicas} replicas ready");
                if let Some(p) = &problem {
                    message.push_str(&format!("; some pods are failing: {}", p.message));
                }
                (true, REASON_AVAILABLE, message)
            }
            Some(_) => match problem {
                Some(p) => (false, p.reason, p.message),
                None if desired == Some(0) && replicas == 0 => (
                    true,
                    REASON_SCALED_TO_ZERO,
                    "scaled to zero; the next request wakes the route".to_owned(),
                ),
                None => (
                    false,
                    REASON_PROGRESSING,
                    format!("waiting for replicas to become ready (0/{replicas} ready)"),
                ),
            },
        }
    };

    let conditions = vec![
        condition(
            old,
            ACCEPTED,
            accepted,
            accepted_reason,
            accepted_message,
            generation,
            now,
        ),
        condition(
            old,
            READY,
            ready_ok,
            ready_reason,
            ready_message,
            generation,
            now,
        ),
    ];
    let url = config
        .gateway_url
        .as_ref()
        .map(|base| format!("{}{}", base.trim_end_matches('/'), route.spec.path));
    ApiRouteStatus {
        observed_generation: generation,
        replicas,
        ready_replicas: ready,
        url,
        conditions,
    }
}

/// A condition, keeping the old `lastTransitionTime` when its `status` is unchanged.
pub fn condition(
    old: &[Condition],
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    let status = if ok { "True" } else { "False" };
    let last_transition_time = old
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message,
        observed_generation: generation,
        last_transition_time,
    }
}

/// The condition of `type_` in a status, if any.
pub fn find<'a>(status: Option<&'a ApiRouteStatus>, type_: &str) -> Option<&'a Condition> {
    status?.conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests;
