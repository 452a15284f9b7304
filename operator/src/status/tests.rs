#![allow(clippy::unwrap_used)]

use apiroutes_crds::{PatternError, conflict::Admission, testing::route};
use k8s_openapi::{api::core::v1::Pod, apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use serde_json::json;

use super::*;
use crate::cache::CachedDeployment;

fn t(secs: i64) -> Time {
    Time(Timestamp::from_second(secs).unwrap())
}

fn deployment(desired: Option<i32>, replicas: i32, ready: i32) -> CachedDeployment {
    serde_json::from_value(json!({
        "metadata": {"name": "a"},
        "spec": {"replicas": desired, "selector": {}, "template": {}},
        "status": {"replicas": replicas, "readyReplicas": ready}
    }))
    .unwrap()
}

fn pod_waiting(reason: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "a-123"},
        "status": {"containerStatuses": [{
            "name": "function", "image": "echo:bad", "imageID": "", "ready": false,
            "restartCount": 4,
            "state": {"waiting": {"reason": reason, "message": "boom"}}
        }]}
    }))
    .unwrap()
}

fn cfg() -> Config {
    Config {
        gateway_url: Some("http://gw.example/".into()),
        ..Config::default()
    }
}

/// (accepted status, accepted reason, ready status, ready reason)
fn summary(s: &ApiRouteStatus) -> (String, String, String, String) {
    (
        s.conditions[0].status.clone(),
        s.conditions[0].reason.clone(),
        s.conditions[1].status.clone(),
        s.conditions[1].reason.clone(),
    )
}

#[test]
fn status_table() {
    let accepted = Admission::Accepted;
    let conflict = Admission::Conflict {
        winner: "shop/old".into(),
    };
    let invalid = Admission::Invalid(PatternError::Empty);
    let bad_name = Admission::InvalidName("metadata.name must not end in '-preview'");
    let pull = pod_waiting("ImagePullBackOff");
    let crash = pod_waiting("CrashLoopBackOff");
    let zero = deployment(Some(0), 0, 0);
    let starting = deployment(Some(1), 1, 0);
    let up = deployment(Some(2), 2, 2);
    type Case<'a> = (
        &'a str,
        &'a Admission,
        Option<&'a CachedDeployment>,
        Vec<&'a Pod>,
        [&'a str; 4],
    );
    let cases: Vec<Case> = vec![
        (
            "a name that cannot name its objects",
            &bad_name,
            None,
            vec![],
            ["False", "InvalidName", "False", "NotAccepted"],
        ),
        (
            "no deployment yet",
            &accepted,
            None,
            vec![],
            ["True", "Accepted", "False", "Progressing"],
        ),
        (
            "scaled to zero",
            &accepted,
            Some(&zero),
            vec![],
            ["True", "Accepted", "True", "ScaledToZero"],
        ),
        (
            "starting",
            &accepted,
            Some(&starting),
            vec![],
            ["True", "Accepted", "False", "Progressing"],
        ),
        (
            "available",
            &accepted,
            Some(&up),
            vec![],
            ["True", "Accepted", "True", "Available"],
        ),
        (
            "available with a failing new pod",
            &accepted,
            Some(&up),
            vec![&pull],
            ["True", "Accepted", "True", "Available"],
        ),
        (
            "image pull",
            &accepted,
            Some(&starting),
            vec![&pull],
            ["True", "Accepted", "False", "ImagePullFailing"],
        ),
        (
            "crash loop",
            &accepted,
            Some(&starting),
            vec![&crash],
            ["True", "Accepted", "False", "CrashLooping"],
        ),
        (
            "pull beats crash",
            &accepted,
            Some(&starting),
            vec![&crash, &pull],
            ["True", "Accepted", "False", "ImagePullFailing"],
        ),
        (
            "conflict",
            &conflict,
            None,
            vec![],
            ["False", "Conflict", "False", "NotAccepted"],
        ),
        (
            "invalid",
            &invalid,
            None,
            vec![],
            ["False", "InvalidSpec", "False", "NotAccepted"],
        ),
    ];
    let r = route("a", "/api/users/[id]");
    for (name, admission, dep, pods, want) in cases {
        let s = compute_status(
            &r,
            Observed {
                admission,
                deployment: dep,
                pods: &pods,
                function_mismatch: None,
            },
            &cfg(),
            &t(100),
        );
        let want = (
            want[0].into(),
            want[1].into(),
            want[2].into(),
            want[3].into(),
        );
        assert_eq!(summary(&s), want, "case {name}");
    }
}

#[test]
fn fields_and_messages() {
    let mut r = route("a", "/api/users/[id]");
    r.metadata.generation = Some(7);
    let dep = deployment(Some(3), 3, 2);
    let s = compute_status(
        &r,
        Observed {
            admission: &Admission::Accepted,
            deployment: Some(&dep),
            pods: &[],
            function_mismatch: None,
        },
        &cfg(),
        &t(100),
    );
    assert_eq!(s.observed_generation, Some(7));
    assert_eq!((s.replicas, s.ready_replicas), (3, 2));
    assert_eq!(s.url.as_deref(), Some("http://gw.example/api/users/[id]"));
    assert_eq!(s.conditions[0].observed_generation, Some(7));
    assert_eq!(s.conditions[1].message, "2/3 replicas ready");

    let conflict = Admission::Conflict {
        winner: "shop/old".into(),
    };
    let s = compute_status(
        &r,
        Observed {
            admission: &conflict,
            deployment: None,
            pods: &[],
            function_mismatch: None,
        },
        &Config::default(),
        &t(100),
    );
    assert!(
        s.conditions[0].message.contains("shop/old"),
        "{}",
        s.conditions[0].message
    );
    assert_eq!(s.url, None);
    let invalid = Admission::Invalid(PatternError::Empty);
    let s = compute_status(
        &r,
        Observed {
            admission: &invalid,
            deployment: None,
            pods: &[],
            function_mismatch: None,
        },
        &Config::default(),
        &t(100),
    );
    assert!(
        s.conditions[0].message.starts_with("spec.path: "),
        "{}",
        s.conditions[0].message
    );
    let pull = pod_waiting("ErrImagePull");
    let problem = pod_problem(&[&pull]).unwrap();
    assert_eq!(
        problem.message,
        "pod a-123: cannot pull image echo:bad: boom"
    );
}

#[test]
fn transition_time_kept_while_status_unchanged_and_recompute_is_identical() {
    let mut r = route("a", "/api/a");
    let starting = deployment(Some(1), 1, 0);
    let up = deployment(Some(1), 1, 1);
    let obs = |d| Observed {
        admission: &Admission::Accepted,
        deployment: Some(d),
        pods: &[],
        function_mismatch: None,
    };
    let s1 = compute_status(&r, obs(&starting), &cfg(), &t(100));
    assert_eq!(s1.conditions[1].last_transition_time, t(100));
    r.status = Some(s1.clone());
    // Nothing changed but time: identical status, so the caller skips the patch.
    let s2 = compute_status(&r, obs(&starting), &cfg(), &t(200));
    assert_eq!(s2, s1);
    // Ready flips: its time moves, Accepted's stays.
    let s3 = compute_status(&r, obs(&up), &cfg(), &t(300));
    assert_eq!(s3.conditions[0].last_transition_time, t(100));
    assert_eq!(s3.conditions[1].last_transition_time, t(300));
    // Reason changes without a status flip keep the time.
    r.status = Some(s3.clone());
    let zero = deployment(Some(0), 0, 0);
    let s4 = compute_status(&r, obs(&zero), &cfg(), &t(400));
    assert_eq!(s4.conditions[1].reason, "ScaledToZero");
    assert_eq!(s4.conditions[1].last_transition_time, t(300));
}

#[test]
fn a_crash_loop_says_why_the_container_last_stopped() {
    let mut pod = pod_waiting("CrashLoopBackOff");
    let cs = &mut pod
        .status
        .as_mut()
        .unwrap()
        .container_statuses
        .as_mut()
        .unwrap()[0];
    cs.last_state =
        serde_json::from_value(json!({"terminated": {"reason": "OOMKilled", "exitCode": 137}}))
            .unwrap();
    let problem = pod_problem(&[&pod]).unwrap();
    assert_eq!(problem.reason, "CrashLooping");
    assert_eq!(
        problem.message,
        "pod a-123: container function is failing (CrashLoopBackOff, 4 restarts, last OOMKilled with exit code 137): boom"
    );
}
