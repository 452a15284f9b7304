#![allow(clippy::unwrap_used)]

use apiroutes_crds::{
    Scaling,
    autoscale::{Demand, LoadReport, RouteLoad, RouteRef},
    labels::Variant,
};

use super::*;

fn spec(min: i32, max: i32, target: i32, zero_after: i32) -> Scaling {
    Scaling {
        min_replicas: min,
        max_replicas: max,
        target_concurrency: target,
        scale_to_zero_after_seconds: zero_after,
    }
}

/// Replays a recorded scenario: `load[t]` is the concurrency seen in second `t` (held
/// requests are `held[t]` when given); replicas follow each decision at once. Returns the
/// replicas after each second. Observation starts at t = 0 (a fresh leader).
fn replay(spec: &Scaling, start: i32, load: &[f64], held: &[u32]) -> Vec<i32> {
    let mut h = History::new(0.0);
    let mut replicas = start;
    let mut out = vec![];
    for (t, c) in load.iter().enumerate() {
        let now = t as f64 + 1.0;
        let held = held.get(t).copied().unwrap_or(0);
        h.push(Sample {
            at: now,
            concurrency: *c,
            requests: if *c > 0.0 { 1 } else { 0 },
            held,
        });
        let d = recommend(&h, spec, replicas, now);
        h.panic_since = d.panic_since;
        replicas = d.desired;
        out.push(replicas);
    }
    out
}

fn repeat(v: f64, n: usize) -> Vec<f64> {
    vec![v; n]
}

fn changes(xs: &[i32]) -> usize {
    xs.windows(2).filter(|w| w[0] != w[1]).count()
}

#[test]
fn steady_load_settles_and_stays() {
    // 35 in flight, 10 per replica: 4 replicas, no oscillation.
    let s = spec(0, 10, 10, 60);
    let out = replay(&s, 4, &repeat(35.0, 180), &[]);
    assert!(out.iter().all(|r| *r == 4), "{out:?}");
}

#[test]
fn spike_enters_panic_and_scales_in_bounded_steps() {
    let s = spec(1, 50, 10, 60);
    let mut load = repeat(10.0, 70);
    load.extend(repeat(300.0, 10));
    let out = replay(&s, 1, &load, &[]);
    // Before the spike: 1 replica.
    assert_eq!(out[69], 1);
    // The spike is met within a few seconds (panic window), never more than x4 a step.
    for w in out.windows(2) {
        assert!(w[1] <= (w[0].max(1)) * 4, "{out:?}");
    }
    assert!(out[72] >= 16, "{out:?}");
    assert_eq!(out[79], 30, "{out:?}");
}

#[test]
fn decay_scales_down_slowly_and_never_in_panic() {
    let s = spec(0, 50, 10, 600);
    let mut load = repeat(300.0, 70);
    load.extend(repeat(0.0, 150));
    let out = replay(&s, 30, &load, &[]);
    assert_eq!(out[69], 30);
    // Down follows the 60 s average: gradual, monotonic, no dip below the load.
    assert!(out[80] >= 25, "{out:?}");
    assert!(out.windows(2).all(|w| w[1] <= w[0]), "{out:?}");
    // Then down, at most halving per step, to one replica (zero only after 600 s idle).
    for w in out.windows(2) {
        assert!(w[1] >= w[0] / 2, "{out:?}");
    }
    assert_eq!(*out.last().unwrap(), 1, "{out:?}");
}

#[test]
fn idle_goes_to_zero_after_the_idle_period_only() {
    let s = spec(0, 10, 10, 30);
    let mut load = repeat(5.0, 70);
    load.extend(repeat(0.0, 60));
    let out = replay(&s, 1, &load, &[]);
    // Idle from t=71: still one replica 29 s later, zero at 30 s idle.
    assert_eq!(out[70 + 28], 1, "{out:?}");
    assert_eq!(out[70 + 30], 0, "{out:?}");
    assert!(out[100..].iter().all(|r| *r == 0));
    // minReplicas 1 never reaches zero.
    let out = replay(&spec(1, 10, 10, 30), 1, &repeat(0.0, 200), &[]);
    assert!(out.iter().all(|r| *r == 1));
}

#[test]
fn flapping_load_does_not_flap_replicas() {
    // Bursts of 40 for 3 s, then 3 s of nothing, over and over: average 20.
    let s = spec(0, 10, 10, 60);
    let load: Vec<f64> = (0..240)
        .map(|t| if (t / 3) % 2 == 0 { 40.0 } else { 0.0 })
        .collect();
    let out = replay(&s, 2, &load, &[]);
    assert!(changes(&out[60..]) <= 1, "{out:?}");
    assert!(out[60..].iter().all(|r| (2..=4).contains(r)), "{out:?}");
}

#[test]
fn demand_from_zero_wakes_at_once_and_holds_one_replica() {
    let s = spec(0, 10, 10, 30);
    // Long idle at zero, then one held request.
    let mut load = repeat(0.0, 100);
    load.push(1.0);
    let mut held = vec![0; 100];
    held.push(1);
    let out = replay(&s, 0, &load, &held);
    assert!(out[..100].iter().all(|r| *r == 0));
    assert_eq!(out[100], 1);
    // A burst of held requests from zero: up to x4 in one decision.
    let mut load = repeat(0.0, 100);
    load.push(200.0);
    let mut held = vec![0; 100];
    held.push(200);
    let out = replay(&s, 0, &load, &held);
    assert_eq!(out[100], 4);
    assert_eq!(wake_replicas(&s), 1);
    assert_eq!(wake_replicas(&spec(3, 5, 10, 30)), 3);
}

#[test]
fn never_below_one_while_requests_are_held() {
    let s = spec(0, 10, 10, 0);
    let mut h = History::new(0.0);
    h.push(Sample {
        at: 100.0,
        concurrency: 0.0,
        requests: 0,
        held: 2,
    });
    h.last_active = Some(0.0);
    let d = recommend(&h, &s, 0, 100.5);
    assert_eq!(d.desired, 1);
}

#[test]
fn a_new_leader_starts_from_current_replicas() {
    // A fresh history (no samples yet) with 7 replicas: nothing moves during the first
    // stable window, even with light load.
    let s = spec(0, 10, 10, 300);
    let out = replay(&s, 7, &repeat(5.0, 59), &[]);
    assert!(out.iter().all(|r| *r == 7), "{out:?}");
    // Nor to zero, even when the idle period is short and nothing is reported.
    let out = replay(&spec(0, 10, 10, 5), 2, &repeat(0.0, 70), &[]);
    assert!(out[..59].iter().all(|r| *r == 2), "{out:?}");
    assert_eq!(out[69], 0, "{out:?}");
}

#[test]
fn bounds_apply_at_once() {
    let mut h = History::new(0.0);
    for t in 1..=100 {
        h.push(Sample {
            at: t as f64,
            concurrency: 500.0,
            requests: 10,
            held: 0,
        });
    }
    // Above max: straight down to max.
    assert_eq!(recommend(&h, &spec(0, 5, 10, 60), 20, 100.0).desired, 5);
    // Below min: straight up to min.
    let idle = History::new(0.0);
    assert_eq!(recommend(&idle, &spec(3, 5, 10, 60), 0, 100.0).desired, 3);
}

fn rr(name: &str) -> RouteRef {
    RouteRef {
        namespace: "default".into(),
        name: name.into(),
        variant: Variant::Main,
    }
}

fn load(gateway: &str, routes: &[(&str, f64, u32)]) -> LoadReport {
    LoadReport {
        gateway: gateway.into(),
        interval_seconds: 1.0,
        routes: routes
            .iter()
            .map(|(n, c, held)| RouteLoad {
                route: rr(n),
                average_concurrency: *c,
                max_concurrency: c.ceil() as u32,
                requests: 3,
                held: *held,
            })
            .collect(),
    }
}

#[test]
fn tracker_sums_gateways_and_forgets_silent_ones() {
    let mut t = Tracker::default();
    t.observe_load(&load("gw1", &[("a", 4.0, 0), ("b", 1.0, 0)]), 10.0);
    t.observe_load(&load("gw2", &[("a", 6.0, 1)]), 10.5);
    let s = t.sample(&rr("a"), 11.0);
    assert_eq!((s.concurrency, s.requests, s.held), (10.0, 6, 1));
    // gw1 reports again without "b": b has no load from it any more.
    t.observe_load(&load("gw1", &[("a", 2.0, 0)]), 12.0);
    assert_eq!(t.sample(&rr("b"), 12.0).concurrency, 0.0);
    // gw2 goes silent: forgotten after the timeout.
    assert_eq!(t.sample(&rr("a"), 15.0).concurrency, 8.0);
    assert_eq!(t.sample(&rr("a"), 16.0).concurrency, 2.0);
    assert_eq!(t.sample(&rr("a"), 30.0).concurrency, 0.0);
    assert_eq!(t.routes().count(), 0);
    // A demand counts as held concurrency.
    t.observe_demand(
        &Demand {
            gateway: "gw1".into(),
            route: rr("c"),
            held: 3,
        },
        40.0,
    );
    let s = t.sample(&rr("c"), 40.2);
    assert_eq!((s.concurrency, s.held), (3.0, 3));
}

#[test]
fn a_route_put_to_sleep_soon_after_traffic_stays_asleep() {
    // scaleToZeroAfterSeconds shorter than the panic window: after the last request the
    // route sleeps; recent traffic still in the panic window must not wake it again with
    // no request waiting (seen on the real node: 0, then 1 a second later, "decision").
    let s = spec(0, 10, 10, 1);
    let mut load = repeat(0.0, 70);
    load.extend([1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    let out = replay(&s, 1, &load, &[]);
    let after = &out[72..];
    assert!(
        after.iter().all(|r| *r == 0),
        "woke with no demand: {out:?}"
    );
}

#[test]
fn quiet_seconds_are_not_stored_and_change_nothing() {
    // Against a history that keeps every sample: the same averages and held counts, for a
    // mix of quiet runs, bursts and held requests.
    let mut compact = History::new(0.0);
    let mut full = History::new(0.0);
    for t in 1..400u32 {
        let at = f64::from(t);
        let phase = (t / 17) % 4;
        let sample = Sample {
            at,
            concurrency: if phase == 1 { f64::from(t % 5) } else { 0.0 },
            requests: u64::from(phase == 1 && t % 3 == 0),
            held: if phase == 2 && t % 4 == 0 { 2 } else { 0 },
        };
        compact.push(sample);
        full.samples.push_back(sample);
        if sample.active() {
            full.last_active = Some(at);
        }
        while full
            .samples
            .front()
            .is_some_and(|s| s.at <= at - STABLE_WINDOW)
        {
            full.samples.pop_front();
        }
        for window in [STABLE_WINDOW, PANIC_WINDOW] {
            assert_eq!(
                compact.average(window, at),
                full.average(window, at),
                "t={t}"
            );
        }
        assert_eq!(compact.held(at), full.held(at), "t={t}");
        assert_eq!(compact.held(at + 1.0), full.held(at + 1.0), "t={t}");
        assert_eq!(compact.last_active, full.last_active);
    }
    // An idle route keeps nothing.
    let mut idle = History::new(0.0);
    for t in 1..100 {
        idle.push(Sample {
            at: f64::from(t),
            ..Sample::default()
        });
    }
    assert!(idle.samples.is_empty());
}
