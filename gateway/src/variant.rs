//! State of one route variant (`namespace/name`, main or preview) that outlives route-table
//! rebuilds: the activator's wait queue and held count, the round-robin cursor of the
//! balancer, and lock-free load accounting for the autoscaler's `LoadReport`.

use std::{
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::*},
    },
    time::Instant,
};

use apiroutes_crds::autoscale::{RouteLoad, RouteRef};
use arc_swap::ArcSwapOption;
use tokio::sync::Notify;

use crate::probe::{Probed, Starting};

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Microseconds since the first call (a monotonic process clock).
pub fn now_us() -> u64 {
    let epoch = EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
}

const COUNT_BITS: u32 = 20;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

/// A route variant's persistent state.
pub struct VariantState {
    /// Shared with the route table's maps (one copy of the names per variant).
    pub key: Arc<RouteRef>,
    /// Round-robin start for ties in least-in-flight balancing.
    pub rr: AtomicUsize,
    /// Requests held right now waiting for a ready endpoint.
    pub held: AtomicU32,
    /// Woken when the variant gets ready endpoints.
    pub ready: Notify,
    /// A `Demand` push is under way (one at a time per variant).
    pub demand_in_flight: AtomicBool,
    /// Pods of the variant that run but are not Ready yet (set by the Kubernetes source).
    pub starting: ArcSwapOption<Starting>,
    /// One of them that passed the gateway's own readiness check (see [`crate::probe`]).
    pub probed: ArcSwapOption<Probed>,
    /// A probe task is running for this variant.
    pub probing: AtomicBool,
    /// `count` (low 20 bits) and the time of the last change in µs (high 44 bits).
    load: AtomicU64,
    /// Integral of `count` over time since the last report, in request·µs.
    area: AtomicU64,
    max: AtomicU32,
    requests: AtomicU64,
    last_active: AtomicU64,
}

impl VariantState {
    pub fn new(key: impl Into<Arc<RouteRef>>) -> Self {
        VariantState {
            key: key.into(),
            rr: AtomicUsize::new(0),
            held: AtomicU32::new(0),
            ready: Notify::new(),
            demand_in_flight: AtomicBool::new(false),
            starting: ArcSwapOption::empty(),
            probed: ArcSwapOption::empty(),
            probing: AtomicBool::new(false),
            load: AtomicU64::new(now_us() << COUNT_BITS),
            area: AtomicU64::new(0),
            max: AtomicU32::new(0),
            requests: AtomicU64::new(0),
            last_active: AtomicU64::new(0),
        }
    }

    /// Changes the in-flight count by `delta`, closing the time segment at the old count.
    fn transition(&self, delta: i64) -> u64 {
        let mut old = self.load.load(Acquire);
        loop {
            let count = old & COUNT_MASK;
            let last = old >> COUNT_BITS;
            let now = now_us().max(last);
            let next = count.saturating_add_signed(delta).min(COUNT_MASK);
            match self
                .load
                .compare_exchange_weak(old, (now << COUNT_BITS) | next, AcqRel, Acquire)
            {
                Ok(_) => {
                    if count > 0 {
                        self.area.fetch_add(count * (now - last), Relaxed);
                    }
                    return next;
                }
                Err(actual) => old = actual,
            }
        }
    }

    /// A request for this variant started (held or proxied).
    pub fn begin(&self) {
        let n = self.transition(1);
        self.requests.fetch_add(1, Relaxed);
        self.max
            .fetch_max(u32::try_from(n).unwrap_or(u32::MAX), Relaxed);
    }

    /// A request for this variant finished.
    pub fn end(&self) {
        self.transition(-1);
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> u64 {
        self.load.load(Acquire) & COUNT_MASK
    }

    /// The figures since the last call, for a `LoadReport` covering `interval_us`; `None`
    /// when the variant has been idle for longer than `keep_idle_us` (stop reporting it).
    pub fn take_load(&self, interval_us: u64, keep_idle_us: u64) -> Option<RouteLoad> {
        let now_count = self.transition(0);
        let area = self.area.swap(0, AcqRel);
        let max = self
            .max
            .swap(u32::try_from(now_count).unwrap_or(u32::MAX), AcqRel);
        let requests = self.requests.swap(0, AcqRel);
        let held = self.held.load(Acquire);
        let now = now_us();
        if area > 0 || requests > 0 || now_count > 0 || held > 0 {
            self.last_active.store(now.max(1), Relaxed);
        } else {
            // 0: never had load; otherwise report zeros for a while so the autoscaler
            // sees the decay, then stop.
            let last = self.last_active.load(Relaxed);
            if last == 0 || now.saturating_sub(last) > keep_idle_us {
                return None;
            }
        }
        #[allow(clippy::cast_precision_loss)]
        let average = area as f64 / interval_us.max(1) as f64;
        Some(RouteLoad {
            route: (*self.key).clone(),
            average_concurrency: average,
            max_concurrency: max,
            requests,
            held,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use apiroutes_crds::labels::Variant;

    fn key() -> RouteRef {
        RouteRef {
            namespace: "ns".into(),
            name: "r".into(),
            variant: Variant::Main,
        }
    }

    #[test]
    fn load_is_time_averaged() {
        let v = VariantState::new(key());
        let _ = v.take_load(1, u64::MAX);
        let t0 = now_us();
        v.begin();
        v.begin();
        std::thread::sleep(std::time::Duration::from_millis(40));
        v.end();
        std::thread::sleep(std::time::Duration::from_millis(40));
        let dt = now_us() - t0;
        let load = v.take_load(dt, u64::MAX).unwrap();
        // Two in flight for ~40 ms then one for ~40 ms, over ~80 ms: about 1.5.
        assert!(
            load.average_concurrency > 1.0 && load.average_concurrency < 2.0,
            "{load:?}"
        );
        assert_eq!(load.max_concurrency, 2);
        assert_eq!(load.requests, 2);
        assert_eq!(v.in_flight(), 1);
        v.end();
        let later = v.take_load(1_000_000, 0);
        assert!(later.is_some(), "had load this interval");
    }

    #[test]
    fn idle_variants_are_reported_only_while_recently_active() {
        let v = VariantState::new(key());
        assert!(v.take_load(1_000_000, u64::MAX).is_none(), "never had load");
        v.begin();
        v.end();
        assert!(v.take_load(1_000_000, u64::MAX).is_some());
        assert!(
            v.take_load(1_000_000, u64::MAX).is_some(),
            "zeros while recent"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(
            v.take_load(1_000_000, 1).is_none(),
            "dropped after the window"
        );
    }
}
