//! Telemetry: sluice's own metrics, logging, and the decorators that feed them.
//!
//! - [`metrics`]: the `sluice_*` Prometheus series and `/metrics` encoding.
//! - [`logging`]: human/JSON log formats and the per-tick span.
//! - [`observed_tick`]: [`exec::tick`] inside the tick span, timed, with errors counted and
//!   the rollout's gauges updated. Both modes call this instead of `exec::tick`.
//! - [`MeteredAnalyzer`]: times every analysis run.
//!
//! Notifications and the event/analysis counters live in [`crate::notify::NotifyingRecorder`],
//! which wraps each mode's own recorder.

pub mod logging;
pub mod metrics;

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use tracing::Instrument;

use crate::engine::Command;
use crate::exec::{self, Analyzer, Executors, TickOutcome};
use crate::spec::{CheckResult, Rollout, RolloutStatus};

pub use logging::LogFormat;
pub use metrics::Metrics;

/// One reconcile with logging context and metrics around it.
pub async fn observed_tick(
    ex: &Executors,
    metrics: &Metrics,
    rollout: &Rollout,
    status: &RolloutStatus,
    command: Option<Command>,
    now: DateTime<Utc>,
) -> TickOutcome {
    let span = logging::tick_span(rollout);
    let start = Instant::now();
    let out = exec::tick(ex, rollout, status, command, now)
        .instrument(span.clone())
        .await;
    metrics.observe_tick(start.elapsed().as_secs_f64());
    metrics.observe_status(rollout, &out.status);
    if let Some(e) = &out.error {
        metrics.observe_error(e.metric_label());
        span.in_scope(|| tracing::warn!(error = %e, "tick failed"));
    } else if out.status.phase != status.phase {
        span.in_scope(|| {
            tracing::info!(
                from = status.phase.as_str(),
                to = out.status.phase.as_str(),
                message = out.status.message.as_deref().unwrap_or(""),
                "phase changed"
            );
        });
    }
    out
}

/// An [`Analyzer`] that records how long each analysis took.
pub struct MeteredAnalyzer {
    pub inner: Arc<dyn Analyzer>,
    pub metrics: Arc<Metrics>,
}

#[async_trait::async_trait]
impl Analyzer for MeteredAnalyzer {
    async fn analyze(&self, rollout: &Rollout, now: DateTime<Utc>) -> Vec<CheckResult> {
        let start = Instant::now();
        let checks = self.inner.analyze(rollout, now).await;
        self.metrics
            .observe_analysis_duration(rollout, start.elapsed().as_secs_f64());
        checks
    }
}

/// What a mode needs from this area, built once in `main`: the metrics registry and the
/// notifier, plus [`Telemetry::wrap`] to put the decorators around a mode's executors.
#[derive(Clone)]
pub struct Telemetry {
    pub metrics: Arc<Metrics>,
    pub notifier: Arc<crate::notify::Notifier>,
}

impl Telemetry {
    pub fn new(config: &crate::notify::NotifyConfig) -> Result<Self, crate::notify::NotifyError> {
        let metrics = Arc::new(Metrics::new());
        let notifier = Arc::new(crate::notify::Notifier::new(
            config,
            Some(Arc::clone(&metrics)),
        )?);
        Ok(Telemetry { metrics, notifier })
    }

    /// The HTTP webhook executor, counting its calls in these metrics.
    pub fn webhooks(&self) -> Result<crate::webhooks::HttpWebhooks, crate::webhooks::ClientError> {
        crate::webhooks::HttpWebhooks::new(Some(Arc::clone(&self.metrics)))
    }

    /// A mode's executors with analysis timing, event/verdict metrics and notifications.
    pub fn wrap(&self, ex: Executors) -> Executors {
        Executors {
            analyzer: Arc::new(MeteredAnalyzer {
                inner: ex.analyzer,
                metrics: Arc::clone(&self.metrics),
            }),
            recorder: Arc::new(crate::notify::NotifyingRecorder {
                inner: ex.recorder,
                notifier: Arc::clone(&self.notifier),
                metrics: Arc::clone(&self.metrics),
            }),
            ..ex
        }
    }
}
