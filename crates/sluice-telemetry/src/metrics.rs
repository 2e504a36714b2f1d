//! sluice's own metrics, served at `/metrics` in the OpenMetrics text format.
//!
//! One [`Metrics`] per process holds a `prometheus-client` registry with every series under
//! the `sluice_` prefix. Executors and decorators feed it (`observe_*`); the web layer serves
//! [`Metrics::encode`] through the `Fn() -> String` hook from [`Metrics::encoder`].
//! docs/observability.md lists every series; a test keeps that list and this file in sync.
//!
//! Cardinality: per-rollout series carry `namespace`/`name` (and `metric` for analysis), which
//! is bounded by what users declare. [`Metrics::forget`] drops a deleted rollout's series.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use sluice_core::engine::{AnalysisReport, Event};
use sluice_core::spec::{Phase, Rollout, RolloutStatus, WebhookKind};

/// The `Content-Type` to serve [`Metrics::encode`] with.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

const PHASES: [Phase; 6] = [
    Phase::Idle,
    Phase::Progressing,
    Phase::Paused,
    Phase::Promoting,
    Phase::Succeeded,
    Phase::Failed,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RolloutLabels {
    namespace: String,
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    namespace: String,
    name: String,
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MetricLabels {
    namespace: String,
    name: String,
    metric: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabels {
    namespace: String,
    name: String,
    metric: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ThresholdLabels {
    namespace: String,
    name: String,
    metric: String,
    bound: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    namespace: String,
    name: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    r#type: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookTypeLabels {
    r#type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NotificationLabels {
    sink: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    kind: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;
type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Seconds, 5 ms .. ~40 s: ticks and Prometheus queries are usually tens of milliseconds,
/// webhooks can take their whole timeout.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

pub struct Metrics {
    registry: Registry,
    phase: Family<PhaseLabels, Gauge>,
    canary_weight: Family<RolloutLabels, Gauge>,
    step: Family<RolloutLabels, Gauge>,
    verdicts: Family<VerdictLabels, Counter>,
    analysis_value: Family<MetricLabels, FloatGauge>,
    analysis_threshold: Family<ThresholdLabels, FloatGauge>,
    analysis_duration: HistogramFamily<RolloutLabels>,
    events: Family<EventLabels, Counter>,
    webhook_calls: Family<WebhookLabels, Counter>,
    webhook_duration: HistogramFamily<WebhookTypeLabels>,
    notifications: Family<NotificationLabels, Counter>,
    tick_duration: Histogram,
    errors: Family<ErrorLabels, Counter>,
    leader: Gauge,
    /// Metric names seen per rollout, so [`Metrics::forget`] can drop their gauges too.
    analysed: Mutex<BTreeMap<(String, String), BTreeSet<String>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sluice");
        let m = Metrics {
            phase: Family::default(),
            canary_weight: Family::default(),
            step: Family::default(),
            verdicts: Family::default(),
            analysis_value: Family::default(),
            analysis_threshold: Family::default(),
            analysis_duration: Family::new_with_constructor(latency_histogram),
            events: Family::default(),
            webhook_calls: Family::default(),
            webhook_duration: Family::new_with_constructor(latency_histogram),
            notifications: Family::default(),
            tick_duration: latency_histogram(),
            errors: Family::default(),
            leader: Gauge::default(),
            analysed: Mutex::default(),
            registry: Registry::default(),
        };
        // Counters get `_total` appended by the encoder; names here are without it.
        registry.register(
            "rollout_phase",
            "1 for the phase each rollout is in, 0 for the others",
            m.phase.clone(),
        );
        registry.register(
            "rollout_canary_weight",
            "Percent of the default route's traffic on the canary",
            m.canary_weight.clone(),
        );
        registry.register(
            "rollout_step",
            "Index (0-based) of the rollout's current step",
            m.step.clone(),
        );
        registry.register(
            "analysis_verdicts",
            "Analysis checks by metric and result (Pass, Fail, Inconclusive)",
            m.verdicts.clone(),
        );
        registry.register(
            "analysis_value",
            "Last measured value of each analysed metric",
            m.analysis_value.clone(),
        );
        registry.register(
            "analysis_threshold",
            "Thresholds of each analysed metric (bound=min|max)",
            m.analysis_threshold.clone(),
        );
        registry.register(
            "analysis_duration_seconds",
            "Time one analysis of a rollout took (all its metrics and rollout webhooks)",
            m.analysis_duration.clone(),
        );
        registry.register(
            "rollout_events",
            "Events recorded per rollout by reason (RolledBack counts rollbacks)",
            m.events.clone(),
        );
        registry.register(
            "webhook_calls",
            "Webhook calls by type and outcome (success, http_error, timeout, connect_error, error)",
            m.webhook_calls.clone(),
        );
        registry.register(
            "webhook_duration_seconds",
            "Time webhook calls took, by type",
            m.webhook_duration.clone(),
        );
        registry.register(
            "notifications",
            "Notifications sent by sink (slack, json) and outcome",
            m.notifications.clone(),
        );
        registry.register(
            "tick_duration_seconds",
            "Time one reconcile (tick) of one rollout took",
            m.tick_duration.clone(),
        );
        registry.register(
            "errors",
            "Executor errors by kind (the action that failed)",
            m.errors.clone(),
        );
        registry.register(
            "leader",
            "1 while this instance is the leader (standalone: always 1)",
            m.leader.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The registry in the OpenMetrics text format (serve with [`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; the encoder only errors on a failing writer.
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            tracing::error!("encoding metrics failed");
        }
        out
    }

    /// The hook the web router takes for `/metrics`.
    pub fn encoder(self: &Arc<Self>) -> Arc<dyn Fn() -> String + Send + Sync> {
        let me = Arc::clone(self);
        Arc::new(move || me.encode())
    }

    /// Phase (one-hot), canary weight and step of a rollout after a tick or an event.
    pub fn observe_status(&self, rollout: &Rollout, status: &RolloutStatus) {
        let (namespace, name) = ids(rollout);
        for p in PHASES {
            self.phase
                .get_or_create(&PhaseLabels {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    phase: p.as_str().to_string(),
                })
                .set(i64::from(p == status.phase));
        }
        let l = RolloutLabels { namespace, name };
        self.canary_weight
            .get_or_create(&l)
            .set(i64::from(status.canary_weight));
        self.step
            .get_or_create(&l)
            .set(i64::from(status.step_index));
    }

    /// Verdicts, values and thresholds of one analysis.
    pub fn observe_analysis(&self, rollout: &Rollout, report: &AnalysisReport) {
        let (namespace, name) = ids(rollout);
        self.analysed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((namespace.clone(), name.clone()))
            .or_default()
            .extend(report.checks.iter().map(|c| c.metric.clone()));
        for c in &report.checks {
            self.verdicts
                .get_or_create(&VerdictLabels {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    metric: c.metric.clone(),
                    result: c.verdict.as_str().to_string(),
                })
                .inc();
            let ml = MetricLabels {
                namespace: namespace.clone(),
                name: name.clone(),
                metric: c.metric.clone(),
            };
            match c.value.filter(|v| v.is_finite()) {
                Some(v) => {
                    self.analysis_value.get_or_create(&ml).set(v);
                }
                // No value: drop the old one rather than chart a stale number.
                None => {
                    self.analysis_value.remove(&ml);
                }
            }
            for (bound, v) in [("min", c.min), ("max", c.max)] {
                if let Some(v) = v {
                    self.analysis_threshold
                        .get_or_create(&ThresholdLabels {
                            namespace: namespace.clone(),
                            name: name.clone(),
                            metric: c.metric.clone(),
                            bound: bound.to_string(),
                        })
                        .set(v);
                }
            }
        }
    }

    pub fn observe_analysis_duration(&self, rollout: &Rollout, seconds: f64) {
        let (namespace, name) = ids(rollout);
        self.analysis_duration
            .get_or_create(&RolloutLabels { namespace, name })
            .observe(seconds);
    }

    pub fn observe_event(&self, rollout: &Rollout, event: &Event) {
        let (namespace, name) = ids(rollout);
        self.events
            .get_or_create(&EventLabels {
                namespace,
                name,
                reason: event.reason.as_str().to_string(),
            })
            .inc();
    }

    pub fn observe_webhook(&self, kind: WebhookKind, outcome: &str, seconds: f64) {
        self.webhook_calls
            .get_or_create(&WebhookLabels {
                r#type: kind.as_str().to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        self.webhook_duration
            .get_or_create(&WebhookTypeLabels {
                r#type: kind.as_str().to_string(),
            })
            .observe(seconds);
    }

    pub fn observe_notification(&self, sink: &str, outcome: &str) {
        self.notifications
            .get_or_create(&NotificationLabels {
                sink: sink.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    pub fn observe_tick(&self, seconds: f64) {
        self.tick_duration.observe(seconds);
    }

    /// `kind` is e.g. [`sluice_core::exec::ExecError::metric_label`].
    pub fn observe_error(&self, kind: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                kind: kind.to_string(),
            })
            .inc();
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// Drop the gauges of a deleted rollout (counters and histograms stay: they are history).
    pub fn forget(&self, namespace: &str, name: &str) {
        for p in PHASES {
            self.phase.remove(&PhaseLabels {
                namespace: namespace.to_string(),
                name: name.to_string(),
                phase: p.as_str().to_string(),
            });
        }
        let l = RolloutLabels {
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        self.canary_weight.remove(&l);
        self.step.remove(&l);
        let metrics = self
            .analysed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(namespace.to_string(), name.to_string()))
            .unwrap_or_default();
        for metric in metrics {
            self.analysis_value.remove(&MetricLabels {
                namespace: namespace.to_string(),
                name: name.to_string(),
                metric: metric.clone(),
            });
            for bound in ["min", "max"] {
                self.analysis_threshold.remove(&ThresholdLabels {
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                    metric: metric.clone(),
                    bound: bound.to_string(),
                });
            }
        }
    }
}

fn ids(rollout: &Rollout) -> (String, String) {
    (
        rollout
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        rollout.metadata.name.clone().unwrap_or_default(),
    )
}
