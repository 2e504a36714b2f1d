//! Telemetry: sluice's own metrics, logging, and the decorators that feed them. A leaf over
//! the core: notifications and webhooks (`sluice-notify`) build on it, never the reverse.
//!
//! - [`metrics`]: the `sluice_*` Prometheus series and `/metrics` encoding.
//! - [`logging`]: human/JSON log formats and the per-tick span.
//! - [`observed_tick`]: [`exec::tick`] inside the tick span, timed, with errors counted and
//!   the rollout's gauges updated. Both modes call this instead of `exec::tick`.
//! - [`MeteredAnalyzer`]: times every analysis run.
//!
//! Notifications and the event/analysis counters live in `sluice_notify::NotifyingRecorder`,
//! which wraps each mode's own recorder.

pub mod logging;
pub mod metrics;

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use tracing::Instrument;

use sluice_core::engine::Command;
use sluice_core::exec::{self, Analyzer, Executors, TickOutcome};
use sluice_core::rollout_plan::RolloutPlan;
use sluice_core::spec::{CheckResult, Rollout, RolloutStatus};

pub use logging::LogFormat;
pub use metrics::Metrics;

/// [`exec::deliver`] in the rollout's tick span (its log lines carry the rollout and the
/// `revision` the tick observed), after the caller persisted the tick's status.
pub async fn observed_deliver(
    ex: &Executors,
    rollout: &Rollout,
    revision: Option<&str>,
    outbox: &[exec::Outgoing],
) {
    if outbox.is_empty() {
        return;
    }
    let span = logging::tick_span(rollout);
    if let Some(rev) = revision {
        span.record("revision", tracing::field::display(rev));
    }
    exec::deliver(ex, rollout, outbox).instrument(span).await;
}

/// One reconcile with logging context and metrics around it.
pub async fn observed_tick(
    ex: &Executors,
    metrics: &Metrics,
    rollout: &Rollout,
    plan: &RolloutPlan,
    status: &RolloutStatus,
    command: Option<Command>,
    now: DateTime<Utc>,
) -> TickOutcome {
    observed_tick_interruptible(ex, metrics, rollout, plan, status, command, now, None).await
}

/// [`observed_tick`] over [`exec::tick_interruptible`]: `abort` / `pause` from `interrupt`
/// cut short an analysis or webhook in flight.
// The tick's own inputs plus the metrics and the interrupt: a struct would only rename them.
#[allow(clippy::too_many_arguments)]
pub async fn observed_tick_interruptible(
    ex: &Executors,
    metrics: &Metrics,
    rollout: &Rollout,
    plan: &RolloutPlan,
    status: &RolloutStatus,
    command: Option<Command>,
    now: DateTime<Utc>,
    interrupt: Option<exec::Interrupt<'_>>,
) -> TickOutcome {
    let span = logging::tick_span(rollout);
    let start = Instant::now();
    let out = exec::tick_interruptible(ex, rollout, plan, status, command, now, interrupt)
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
