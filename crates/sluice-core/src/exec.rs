//! Executing the engine's effects: the thin glue both modes share.
//!
//! One [`tick`] = observe → `engine::step` → carry out the effects → `step` again while the
//! engine asked for something that answers immediately (an analysis run, gate webhooks), at
//! most a few rounds. Mode-specific parts sit behind small traits:
//!
//! - [`TrafficRouter`]: Istio VirtualService (Kubernetes) or Envoy file xDS (standalone);
//! - [`Workloads`]: readiness and revisions of stable/canary, scaling and promotion;
//! - [`Analyzer`]: runs every metric of a rollout (Prometheus) and returns the checks;
//! - [`Webhooks`]: calls `spec.webhooks` of one kind (gates answer, others fire and forget);
//! - [`Recorder`]: keeps events and analysis history (store, Kubernetes Events, notifications).
//!
//! Failure of an executor never panics and never loses state: the status computed so far is
//! returned with the error, and the caller persists it.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::engine::{self, AnalysisReport, Command, Effect, Event, GateAnswer, Observations};
use crate::rollout_plan::RolloutPlan;
use crate::spec::{CheckResult, Rollout, RolloutStatus, WebhookKind};
use crate::traffic::TrafficPlan;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Routers translate a plan into their data plane's config; they never decide.
#[async_trait::async_trait]
pub trait TrafficRouter: Send + Sync {
    async fn apply(&self, rollout: &Rollout, plan: &TrafficPlan) -> Result<(), BoxError>;
}

/// What runs where, and the operations on workloads the engine asks for.
#[async_trait::async_trait]
pub trait Workloads: Send + Sync {
    /// Fill revision / readiness fields of the observations.
    async fn observe(
        &self,
        rollout: &Rollout,
        status: &RolloutStatus,
    ) -> Result<Observations, BoxError>;
    async fn scale_up_canary(&self, rollout: &Rollout) -> Result<(), BoxError>;
    async fn scale_down_canary(&self, rollout: &Rollout) -> Result<(), BoxError>;
    async fn promote(&self, rollout: &Rollout, revision: &str) -> Result<(), BoxError>;
    async fn restore_stable(&self, rollout: &Rollout, revision: &str) -> Result<(), BoxError>;
}

/// Runs every metric of the rollout once. Never fails as a whole: a check that could not be
/// made is an Inconclusive [`CheckResult`] with the reason.
#[async_trait::async_trait]
pub trait Analyzer: Send + Sync {
    async fn analyze(&self, rollout: &Rollout, now: DateTime<Utc>) -> Vec<CheckResult>;
}

/// Calls the rollout's webhooks of one kind with the standard payload.
#[async_trait::async_trait]
pub trait Webhooks: Send + Sync {
    /// `None` when the rollout has no webhook of this kind.
    async fn call(
        &self,
        rollout: &Rollout,
        status: &RolloutStatus,
        kind: WebhookKind,
    ) -> Option<GateAnswer>;
    /// `rollout` webhooks as checks (failure = failed check), run with every analysis.
    async fn checks(
        &self,
        rollout: &Rollout,
        status: &RolloutStatus,
        now: DateTime<Utc>,
    ) -> Vec<CheckResult>;
}

/// Where history goes: events (with the status after them) and analysis results.
#[async_trait::async_trait]
pub trait Recorder: Send + Sync {
    async fn event(&self, rollout: &Rollout, status: &RolloutStatus, event: &Event);
    async fn analysis(&self, rollout: &Rollout, report: &AnalysisReport);
}

/// The executors of one mode.
#[derive(Clone)]
pub struct Executors {
    pub router: Arc<dyn TrafficRouter>,
    pub workloads: Arc<dyn Workloads>,
    pub analyzer: Arc<dyn Analyzer>,
    pub webhooks: Arc<dyn Webhooks>,
    pub recorder: Arc<dyn Recorder>,
}

#[derive(Debug, thiserror::Error)]
#[error("{action} failed for {rollout}: {source}")]
pub struct ExecError {
    pub rollout: String,
    pub action: &'static str,
    #[source]
    pub source: BoxError,
}

impl ExecError {
    pub fn metric_label(&self) -> &'static str {
        self.action
    }
}

/// Outcome of one tick: the status to persist, and the first executor error if any (the
/// status already reflects every effect that did succeed).
pub struct TickOutcome {
    pub status: RolloutStatus,
    pub error: Option<ExecError>,
    /// Traffic plan applied during this tick, if any.
    pub applied: Option<TrafficPlan>,
}

/// Rounds of step → execute within one tick. Each round answers one request of the engine
/// (gates, then analysis, then the next stage's gates); more would hide a loop bug.
const MAX_ROUNDS: usize = 6;

/// One reconcile of one rollout. `plan` is the rollout's spec parsed once
/// (`RolloutPlan::try_from(&rollout.spec)`), held by the caller across ticks.
pub async fn tick(
    ex: &Executors,
    rollout: &Rollout,
    plan: &RolloutPlan,
    status: &RolloutStatus,
    command: Option<Command>,
    now: DateTime<Utc>,
) -> TickOutcome {
    let key = rollout.key();
    let mut status = status.clone();
    let mut applied = None;
    let mut obs = match ex.workloads.observe(rollout, &status).await {
        Ok(o) => o,
        Err(source) => {
            return TickOutcome {
                status,
                error: Some(ExecError {
                    rollout: key,
                    action: "observe",
                    source,
                }),
                applied,
            };
        }
    };
    obs.command = command;
    if let Some(rev) = &obs.revision {
        // Fills the `revision` field of the caller's tick span (no-op without one).
        tracing::Span::current().record("revision", tracing::field::display(rev));
    }
    for _ in 0..MAX_ROUNDS {
        let (next, effects) = engine::step(plan, &status, &obs, now);
        // Answers are consumed by the step that saw them.
        obs.command = None;
        obs.analysis = None;
        obs.webhooks.clear();
        let mut again = false;
        let mut error = None;
        for effect in &effects {
            let result: Result<(), (&'static str, BoxError)> = match effect {
                Effect::ApplyTraffic(plan) => match ex.router.apply(rollout, plan).await {
                    Ok(()) => {
                        applied = Some(plan.clone());
                        Ok(())
                    }
                    Err(e) => Err(("apply traffic", e)),
                },
                Effect::RunAnalysis => {
                    let mut checks = ex.analyzer.analyze(rollout, now).await;
                    checks.extend(ex.webhooks.checks(rollout, &next, now).await);
                    let report = AnalysisReport { at: now, checks };
                    ex.recorder.analysis(rollout, &report).await;
                    obs.analysis = Some(report);
                    again = true;
                    Ok(())
                }
                Effect::CallWebhooks(kind) => {
                    if let Some(answer) = ex.webhooks.call(rollout, &next, *kind).await
                        && kind.is_gate()
                    {
                        obs.webhooks.push(answer);
                        again = true;
                    }
                    Ok(())
                }
                Effect::ScaleUpCanary => ex
                    .workloads
                    .scale_up_canary(rollout)
                    .await
                    .map_err(|e| ("scale up canary", e)),
                Effect::ScaleDownCanary => ex
                    .workloads
                    .scale_down_canary(rollout)
                    .await
                    .map_err(|e| ("scale down canary", e)),
                Effect::PromoteCanary { revision } => ex
                    .workloads
                    .promote(rollout, revision)
                    .await
                    .map_err(|e| ("promote", e)),
                Effect::RestoreStable { revision } => ex
                    .workloads
                    .restore_stable(rollout, revision)
                    .await
                    .map_err(|e| ("restore stable", e)),
                Effect::Event(ev) => {
                    ex.recorder.event(rollout, &next, ev).await;
                    Ok(())
                }
            };
            if let Err((action, source)) = result {
                error = Some(ExecError {
                    rollout: key.clone(),
                    action,
                    source,
                });
                break;
            }
        }
        if let Some(error) = error {
            // Traffic could not be applied: keep the *previous* status so the engine retries
            // the same decision next tick instead of believing the data plane moved.
            return TickOutcome {
                status,
                error: Some(error),
                applied,
            };
        }
        status = next;
        if !again {
            break;
        }
        // Promotion and scaling change what runs: observe again before the next round.
        match ex.workloads.observe(rollout, &status).await {
            Ok(fresh) => {
                let analysis = obs.analysis.take();
                let webhooks = std::mem::take(&mut obs.webhooks);
                obs = fresh;
                obs.analysis = analysis;
                obs.webhooks = webhooks;
            }
            Err(source) => {
                return TickOutcome {
                    status,
                    error: Some(ExecError {
                        rollout: key,
                        action: "observe",
                        source,
                    }),
                    applied,
                };
            }
        }
    }
    TickOutcome {
        status,
        error: None,
        applied,
    }
}
