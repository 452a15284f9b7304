//! One Prometheus registry, prefix `apiroutes_operator_`.

use std::time::Instant;

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, Opts, Registry, TextEncoder,
};

use crate::error::Result;

pub const PREFIX: &str = "apiroutes_operator";

pub struct Metrics {
    pub registry: Registry,
    pub reconciliations: IntCounterVec,
    pub reconcile_duration: Histogram,
    pub reconcile_errors: IntCounterVec,
    pub decisions: IntCounterVec,
    pub route_replicas: GaugeVec,
    pub scale_writes: IntCounterVec,
    pub activation_duration: HistogramVec,
    pub leader: IntGauge,
    pub routes: Gauge,
    pub autoscaler_rejected: IntCounterVec,
    pub events_dropped: IntCounter,
}

impl Metrics {
    pub fn new() -> Result<Self> {
        let registry = Registry::new_custom(Some(PREFIX.to_owned()), None)?;
        let reconciliations = IntCounterVec::new(
            Opts::new(
                "reconciliations_total",
                "Reconciliations of ApiRoutes by result.",
            ),
            &["result"],
        )?;
        let reconcile_duration = Histogram::with_opts(
            HistogramOpts::new(
                "reconcile_duration_seconds",
                "Time one reconciliation took.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
        )?;
        let reconcile_errors = IntCounterVec::new(
            Opts::new(
                "reconcile_errors_total",
                "Failed reconciliations by reason.",
            ),
            &["reason"],
        )?;
        let decisions = IntCounterVec::new(
            Opts::new(
                "autoscaler_decisions_total",
                "Autoscaler decisions by direction.",
            ),
            &["direction"],
        )?;
        let route_replicas = GaugeVec::new(
            Opts::new(
                "route_replicas",
                "Replicas per route variant: current and desired.",
            ),
            &["route", "variant", "kind"],
        )?;
        let scale_writes = IntCounterVec::new(
            Opts::new(
                "scale_writes_total",
                "Writes of the scale subresource by cause and result.",
            ),
            &["cause", "result"],
        )?;
        let activation_duration = HistogramVec::new(
            HistogramOpts::new(
                "activation_duration_seconds",
                "From a demand push for a variant at zero to its scale subresource written.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            ]),
            &["result"],
        )?;
        let leader = IntGauge::new("leader", "1 while this instance holds the leader Lease.")?;
        let autoscaler_rejected = IntCounterVec::new(
            Opts::new(
                "autoscaler_rejected_total",
                "Pushes to the autoscaler refused: unauthenticated, forbidden or unavailable (the token could not be reviewed).",
            ),
            &["reason"],
        )?;
        let routes = Gauge::new("routes", "ApiRoutes in the operator's cache.")?;
        let events_dropped = IntCounter::new(
            "events_dropped_total",
            "Kubernetes Events not published because the queue was full.",
        )?;
        registry.register(Box::new(reconciliations.clone()))?;
        registry.register(Box::new(reconcile_duration.clone()))?;
        registry.register(Box::new(reconcile_errors.clone()))?;
        registry.register(Box::new(decisions.clone()))?;
        registry.register(Box::new(route_replicas.clone()))?;
        registry.register(Box::new(scale_writes.clone()))?;
        registry.register(Box::new(activation_duration.clone()))?;
        registry.register(Box::new(leader.clone()))?;
        registry.register(Box::new(routes.clone()))?;
        registry.register(Box::new(autoscaler_rejected.clone()))?;
        registry.register(Box::new(events_dropped.clone()))?;
        Ok(Metrics {
            registry,
            reconciliations,
            reconcile_duration,
            reconcile_errors,
            decisions,
            route_replicas,
            scale_writes,
            activation_duration,
            leader,
            routes,
            autoscaler_rejected,
            events_dropped,
        })
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = vec![];
        // Encoding into a Vec cannot fail for well-formed metrics.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        buf
    }

    /// Starts timing one reconciliation; the time is recorded when the guard drops.
    pub fn reconcile_timer(&self) -> ReconcileTimer<'_> {
        ReconcileTimer {
            metrics: self,
            start: Instant::now(),
        }
    }
}

/// Records the reconcile duration when dropped, whichever way the reconcile returns.
pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    start: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics
            .reconcile_duration
            .observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_carry_the_prefix_and_the_timer_records() {
        let m = Metrics::new().unwrap();
        {
            let _t = m.reconcile_timer();
        }
        m.reconciliations.with_label_values(&["ok"]).inc();
        m.route_replicas
            .with_label_values(&["default/a", "main", "current"])
            .set(2.0);
        let text = String::from_utf8(m.encode()).unwrap();
        assert!(
            text.contains("apiroutes_operator_reconcile_duration_seconds_count 1"),
            "{text}"
        );
        assert!(text.contains("apiroutes_operator_reconciliations_total{result=\"ok\"} 1"));
        assert!(text.contains(
            "apiroutes_operator_route_replicas{kind=\"current\",route=\"default/a\",variant=\"main\"} 2"
        ));
        assert!(text.contains("apiroutes_operator_leader 0"));
    }
}
