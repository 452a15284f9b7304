//! Pod status from process state: a pure function of what the agent knows.

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminated {
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub reason: String,
    pub message: Option<String>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Timestamp,
}

impl Terminated {
    /// From a process's exit: 128+N for a signal, reason `Completed` for 0, else `Error`.
    pub fn from_exit(
        code: Option<i32>,
        signal: Option<i32>,
        started_at: Timestamp,
        now: Timestamp,
    ) -> Self {
        let exit_code = code.unwrap_or_else(|| 128 + signal.unwrap_or(0));
        Self {
            exit_code,
            signal,
            reason: if exit_code == 0 { "Completed" } else { "Error" }.to_owned(),
            message: None,
            started_at: Some(started_at),
            finished_at: now,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunState {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started_at: Timestamp,
        pid: u32,
    },
    Terminated(Terminated),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRuntime {
    pub name: String,
    pub image: String,
    pub state: RunState,
    pub last_terminated: Option<Terminated>,
    pub restart_count: i32,
    /// Readiness probe passing (or no probe and running).
    pub ready: bool,
    /// Startup probe passed (or none).
    pub started: bool,
}

impl ContainerRuntime {
    pub fn new(name: &str, image: &str) -> Self {
        Self {
            name: name.to_owned(),
            image: image.to_owned(),
            state: RunState::Waiting {
                reason: "ContainerCreating".to_owned(),
                message: None,
            },
            last_terminated: None,
            restart_count: 0,
            ready: false,
            started: false,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodRuntime {
    pub pod_ip: Option<String>,
    pub host_ip: String,
    pub start_time: Option<Timestamp>,
    pub containers: Vec<ContainerRuntime>,
}

fn terminated_state(t: &Terminated) -> ContainerStateTerminated {
    ContainerStateTerminated {
        exit_code: t.exit_code,
        signal: t.signal,
        reason: Some(t.reason.clone()),
        message: t.message.clone(),
        started_at: t.started_at.map(Time),
        finished_at: Some(Time(t.finished_at)),
        container_id: None,
    }
}

fn container_status(c: &ContainerRuntime) -> ContainerStatus {
    let state = match &c.state {
        RunState::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: message.clone(),
            }),
            ..ContainerState::default()
        },
        RunState::Running { started_at, .. } => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(Time(*started_at)),
            }),
            ..ContainerState::default()
        },
        RunState::Terminated(t) => ContainerState {
            terminated: Some(terminated_state(t)),
            ..ContainerState::default()
        },
    };
    let container_id = match &c.state {
        RunState::Running { pid, .. } => Some(format!("process://{pid}")),
        _ => None,
    };
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone(),
        image_id: format!("local://{}", c.image),
        container_id,
        ready: c.ready && matches!(c.state, RunState::Running { .. }),
        started: Some(c.started && matches!(c.state, RunState::Running { .. })),
        restart_count: c.restart_count,
        state: Some(state),
        last_state: Some(
            c.last_terminated
                .as_ref()
                .map_or_else(ContainerState::default, |t| ContainerState {
                    terminated: Some(terminated_state(t)),
                    ..ContainerState::default()
                }),
        ),
        ..ContainerStatus::default()
    }
}

/// The kubelet's phase rules (getPhase) for pods without init containers.
pub fn phase(containers: &[ContainerRuntime], restart_policy: &str) -> &'static str {
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in containers {
        match &c.state {
            RunState::Running { .. } => running += 1,
            RunState::Terminated(t) => {
                stopped += 1;
                if t.exit_code == 0 {
                    succeeded += 1;
                }
            }
            // Waiting after a previous run (e.g. back-off) counts as stopped.
            RunState::Waiting { .. } => match &c.last_terminated {
                Some(t) => {
                    stopped += 1;
                    if t.exit_code == 0 {
                        succeeded += 1;
                    }
                }
                None => waiting += 1,
            },
        }
    }
    if waiting > 0 {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if stopped > 0 {
        match restart_policy {
            "Always" => "Running",
            _ if stopped == succeeded => "Succeeded",
            "OnFailure" => "Running",
            _ => "Failed",
        }
    } else {
        "Pending"
    }
}

fn condition(
    prev: Option<&PodStatus>,
    type_: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<String>,
    now: Timestamp,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let previous = prev
        .and_then(|p| p.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_));
    let last_transition_time = match previous {
        Some(p) if p.status == status => p.last_transition_time.clone(),
        _ => Some(Time(now)),
    };
    PodCondition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.map(str::to_owned),
        message,
        last_transition_time,
        ..PodCondition::default()
    }
}

/// The status to report. `prev` keeps condition transition times stable; the caller
/// patches only when this differs from what it last sent.
pub fn compute_status(
    prev: Option<&PodStatus>,
    rt: &PodRuntime,
    restart_policy: &str,
    now: Timestamp,
) -> PodStatus {
    let phase = phase(&rt.containers, restart_policy);
    let unready: Vec<&str> = rt
        .containers
        .iter()
        .filter(|c| !(c.ready && matches!(c.state, RunState::Running { .. })))
        .map(|c| c.name.as_str())
        .collect();
    let all_ready = unready.is_empty() && !rt.containers.is_empty();
    let (reason, message) = if all_ready {
        (None, None)
    } else if phase == "Succeeded" || phase == "Failed" {
        (Some("PodCompleted"), None)
    } else {
        (
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    };
    let conditions = vec![
        condition(
            prev,
            "PodReadyToStartContainers",
            rt.pod_ip.is_some(),
            None,
            None,
            now,
        ),
        condition(prev, "Initialized", true, None, None, now),
        condition(prev, "Ready", all_ready, reason, message.clone(), now),
        condition(prev, "ContainersReady", all_ready, reason, message, now),
    ];
    PodStatus {
        phase: Some(phase.to_owned()),
        conditions: Some(conditions),
        host_ip: Some(rt.host_ip.clone()),
        host_ips: Some(vec![HostIP {
            ip: rt.host_ip.clone(),
        }]),
        pod_ip: rt.pod_ip.clone(),
        pod_ips: rt.pod_ip.as_ref().map(|ip| vec![PodIP { ip: ip.clone() }]),
        start_time: rt.start_time.map(Time),
        container_statuses: Some(rt.containers.iter().map(container_status).collect()),
        ..PodStatus::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).expect("timestamp")
    }

    fn running(ready: bool) -> ContainerRuntime {
        ContainerRuntime {
            state: RunState::Running {
                started_at: ts(1),
                pid: 42,
            },
            ready,
            started: true,
            ..ContainerRuntime::new("app", "test/http:1")
        }
    }

    fn rt(containers: Vec<ContainerRuntime>) -> PodRuntime {
        PodRuntime {
            pod_ip: Some("10.244.0.2".into()),
            host_ip: "10.244.0.1".into(),
            start_time: Some(ts(0)),
            containers,
        }
    }

    fn cond<'a>(s: &'a PodStatus, t: &str) -> &'a PodCondition {
        s.conditions
            .as_ref()
            .and_then(|c| c.iter().find(|c| c.type_ == t))
            .expect("condition")
    }

    #[test]
    fn creating_is_pending_and_not_ready() {
        let s = compute_status(
            None,
            &rt(vec![ContainerRuntime::new("app", "i")]),
            "Always",
            ts(2),
        );
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        assert_eq!(cond(&s, "Ready").status, "False");
        assert_eq!(
            cond(&s, "Ready").message.as_deref(),
            Some("containers with unready status: [app]")
        );
        let cs = &s.container_statuses.as_ref().expect("statuses")[0];
        assert_eq!(
            cs.state
                .as_ref()
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.reason.as_deref()),
            Some("ContainerCreating")
        );
    }

    #[test]
    fn running_then_ready_keeps_transition_times() {
        let s1 = compute_status(None, &rt(vec![running(false)]), "Always", ts(2));
        assert_eq!(s1.phase.as_deref(), Some("Running"));
        assert_eq!(cond(&s1, "Ready").status, "False");
        let s2 = compute_status(Some(&s1), &rt(vec![running(true)]), "Always", ts(5));
        assert_eq!(cond(&s2, "Ready").status, "True");
        assert_eq!(cond(&s2, "Ready").last_transition_time, Some(Time(ts(5))));
        assert_eq!(
            cond(&s2, "Initialized").last_transition_time,
            Some(Time(ts(2)))
        );
        assert_eq!(s2.pod_ip.as_deref(), Some("10.244.0.2"));
        assert_eq!(
            s2.pod_ips.as_ref().map(|v| v[0].ip.as_str()),
            Some("10.244.0.2")
        );
        let cs = &s2.container_statuses.as_ref().expect("statuses")[0];
        assert!(cs.ready);
        assert_eq!(cs.container_id.as_deref(), Some("process://42"));
        let s3 = compute_status(Some(&s2), &rt(vec![running(true)]), "Always", ts(9));
        assert_eq!(s2, s3, "nothing changed, nothing to patch");
    }

    #[test]
    fn crash_loop_reports_last_state_and_restarts() {
        let t = Terminated::from_exit(Some(3), None, ts(1), ts(2));
        let c = ContainerRuntime {
            state: RunState::Waiting {
                reason: "CrashLoopBackOff".into(),
                message: Some("back-off".into()),
            },
            last_terminated: Some(t),
            restart_count: 2,
            ..ContainerRuntime::new("app", "i")
        };
        let s = compute_status(None, &rt(vec![c]), "Always", ts(3));
        assert_eq!(s.phase.as_deref(), Some("Running"));
        let cs = &s.container_statuses.as_ref().expect("statuses")[0];
        assert_eq!(cs.restart_count, 2);
        assert!(!cs.ready);
        let last = cs
            .last_state
            .as_ref()
            .and_then(|l| l.terminated.as_ref())
            .expect("last");
        assert_eq!(last.exit_code, 3);
        assert_eq!(last.reason.as_deref(), Some("Error"));
    }

    #[test]
    fn terminal_phases_follow_restart_policy() {
        let done = |code| ContainerRuntime {
            state: RunState::Terminated(Terminated::from_exit(Some(code), None, ts(0), ts(1))),
            ..ContainerRuntime::new("c", "i")
        };
        assert_eq!(phase(&[done(0)], "Never"), "Succeeded");
        assert_eq!(phase(&[done(1)], "Never"), "Failed");
        assert_eq!(phase(&[done(0), done(1)], "Never"), "Failed");
        assert_eq!(phase(&[done(1)], "OnFailure"), "Running");
        assert_eq!(phase(&[done(0)], "OnFailure"), "Succeeded");
        assert_eq!(phase(&[done(0), running(true)], "Never"), "Running");
        assert_eq!(
            phase(&[ContainerRuntime::new("c", "i"), running(true)], "Always"),
            "Pending"
        );
    }

    #[test]
    fn signals_become_128_plus_n() {
        let t = Terminated::from_exit(None, Some(15), ts(0), ts(1));
        assert_eq!(t.exit_code, 143);
        assert_eq!(t.reason, "Error");
    }
}
