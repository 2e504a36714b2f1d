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
//!
//! ## Preemption
//! [`tick_interruptible`] takes a future that yields a command arriving meanwhile (`abort`,
//! `pause`: [`Command::preempts`]). While the tick waits on an analysis or a webhook, that
//! command cuts it short: the call in flight is dropped (its result would be discarded anyway),
//! an `AnalysisCancelled` / `WebhookCancelled` event says so, the round's other effects still
//! run, and the engine steps again at once with the command. A 30 s-slow Prometheus therefore
//! delays an abort by one poll, not by 30 s.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use chrono::{DateTime, Utc};

use crate::engine::{self, AnalysisReport, Command, Effect, Event, GateAnswer, Observations};
use crate::rollout_plan::RolloutPlan;
use crate::spec::{CheckResult, Condition, Rollout, RolloutStatus, WebhookKind};
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
    /// A preempting command that interrupted this tick but that the engine did not see (an
    /// executor failed before it could): the caller queues it again.
    pub unhandled_command: Option<Command>,
}

/// What [`tick_interruptible`] races analyses and webhook calls against: resolves with a
/// command that must not wait for them (see [`Command::preempts`]).
pub type Interrupt<'a> = Pin<&'a mut (dyn Future<Output = Command> + Send)>;

/// Runs `work` unless `interrupt` resolves first; then `work` is dropped (cancelled).
async fn race<T>(
    work: impl Future<Output = T>,
    interrupt: &mut Interrupt<'_>,
) -> Result<T, Command> {
    let mut work = std::pin::pin!(work);
    std::future::poll_fn(|cx| {
        // The command first: when both are ready, the person's decision wins.
        if let Poll::Ready(c) = interrupt.as_mut().poll(cx) {
            return Poll::Ready(Err(c));
        }
        work.as_mut().poll(cx).map(Ok)
    })
    .await
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
    tick_interruptible(ex, rollout, plan, status, command, now, None).await
}

/// [`tick`], cut short by a command from `interrupt` while it waits on an analysis or a
/// webhook (module docs, Preemption). `interrupt` is polled only during those waits and at most
/// once to completion.
pub async fn tick_interruptible(
    ex: &Executors,
    rollout: &Rollout,
    plan: &RolloutPlan,
    status: &RolloutStatus,
    command: Option<Command>,
    now: DateTime<Utc>,
    mut interrupt: Option<Interrupt<'_>>,
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
                unhandled_command: None,
            };
        }
    };
    obs.command = command;
    if let Some(rev) = &obs.revision {
        // Fills the `revision` field of the caller's tick span (no-op without one).
        tracing::Span::current().record("revision", tracing::field::display(rev));
    }
    // A preempting command that arrived during this round, for the next one.
    let mut preempted: Option<Command> = None;
    let mut rounds = 0;
    loop {
        rounds += 1;
        let (next, effects) = engine::step(plan, &status, &obs, now);
        // Answers are consumed by the step that saw them.
        obs.command = None;
        obs.analysis = None;
        obs.webhooks.clear();
        let mut again = false;
        let mut error = None;
        let mut events: Vec<&Event> = Vec::new();
        for effect in &effects {
            let blocking = matches!(effect, Effect::RunAnalysis | Effect::CallWebhooks(_));
            if blocking && preempted.is_some() {
                // The command already decided; waiting on this call would only delay it.
                continue;
            }
            let result: Result<(), (&'static str, BoxError)> = match effect {
                Effect::ApplyTraffic(plan) => match ex.router.apply(rollout, plan).await {
                    Ok(()) => {
                        applied = Some(plan.clone());
                        Ok(())
                    }
                    Err(e) => Err((APPLY_TRAFFIC, e)),
                },
                Effect::RunAnalysis => {
                    let run = async {
                        let mut checks = ex.analyzer.analyze(rollout, now).await;
                        checks.extend(ex.webhooks.checks(rollout, &next, now).await);
                        checks
                    };
                    match interruptible(run, &mut interrupt).await {
                        Ok(checks) => {
                            let report = AnalysisReport { at: now, checks };
                            ex.recorder.analysis(rollout, &report).await;
                            obs.analysis = Some(report);
                            again = true;
                        }
                        Err(c) => {
                            preempted = Some(c);
                            let ev = cancelled("AnalysisCancelled", "the analysis", c);
                            ex.recorder.event(rollout, &next, &ev).await;
                        }
                    }
                    Ok(())
                }
                Effect::CallWebhooks(kind) => {
                    match interruptible(ex.webhooks.call(rollout, &next, *kind), &mut interrupt)
                        .await
                    {
                        Ok(Some(answer)) if kind.is_gate() => {
                            obs.webhooks.push(answer);
                            again = true;
                        }
                        Ok(_) => {}
                        Err(c) => {
                            preempted = Some(c);
                            let what = format!("the {} webhooks", kind.as_str());
                            let ev = cancelled("WebhookCancelled", &what, c);
                            ex.recorder.event(rollout, &next, &ev).await;
                        }
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
                    // Recorded once the round's effects succeeded: a round that fails keeps the
                    // previous status and is decided again, so its events would repeat every
                    // tick (a refused plan sent one "started" notification per second).
                    events.push(ev);
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
            if error.action == APPLY_TRAFFIC {
                refused(ex, rollout, &mut status, &error, now).await;
            }
            return TickOutcome {
                status,
                error: Some(error),
                applied,
                unhandled_command: preempted,
            };
        }
        let mut next = next;
        for ev in events {
            ex.recorder.event(rollout, &next, ev).await;
        }
        if applied.is_some() {
            accepted(ex, rollout, &mut next, now).await;
        }
        status = next;
        if let Some(c) = preempted.take() {
            // The engine steps again from what was carried out, now with the command.
            obs.command = Some(c);
            again = true;
        }
        // One round more than usual at most: a preemption arrives once per tick.
        if !again || (rounds >= MAX_ROUNDS && obs.command.is_none()) {
            break;
        }
        // Promotion and scaling change what runs: observe again before the next round.
        match ex.workloads.observe(rollout, &status).await {
            Ok(fresh) => {
                let analysis = obs.analysis.take();
                let webhooks = std::mem::take(&mut obs.webhooks);
                let command = obs.command.take();
                obs = fresh;
                obs.analysis = analysis;
                obs.webhooks = webhooks;
                obs.command = command;
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
                    unhandled_command: obs.command,
                };
            }
        }
    }
    TickOutcome {
        status,
        error: None,
        applied,
        unhandled_command: None,
    }
}

/// [`ExecError::action`] of a plan the router did not apply.
pub const APPLY_TRAFFIC: &str = "apply traffic";

/// Condition kind saying whether the data plane took the last traffic plan. `False` (reason
/// [`ROUTER_REFUSED`], the router's error as message) while a plan is refused or the data plane
/// is unreachable; removed once a plan is applied.
pub const TRAFFIC_CONDITION: &str = "TrafficApplied";
/// Reason of the `TrafficApplied=False` condition and of the event that announces it.
pub const ROUTER_REFUSED: &str = "RouterRefused";

/// How `status.message` starts while a plan is refused.
const REFUSED_PREFIX: &str = "traffic plan refused by the data plane: ";

/// A refused plan is a state, not a loop: the condition carries the cause, and an event (hence
/// one notification) leaves only when the cause is new, not on every retry.
async fn refused(
    ex: &Executors,
    rollout: &Rollout,
    status: &mut RolloutStatus,
    error: &ExecError,
    now: DateTime<Utc>,
) {
    let cause = error.source.to_string();
    let same = status
        .conditions
        .iter()
        .find(|c| c.kind == TRAFFIC_CONDITION)
        .filter(|c| c.status == "False" && c.message == cause)
        .map(|c| c.last_transition_time);
    status.conditions.retain(|c| c.kind != TRAFFIC_CONDITION);
    // Also the message: what the UI, `sluice status` and the list show first.
    status.message = Some(format!("{REFUSED_PREFIX}{cause}"));
    status.conditions.push(Condition {
        kind: TRAFFIC_CONDITION.into(),
        status: "False".into(),
        reason: ROUTER_REFUSED.into(),
        message: cause.clone(),
        last_transition_time: same.unwrap_or(now),
    });
    if same.is_none() {
        let ev = Event {
            reason: ROUTER_REFUSED.into(),
            message: format!(
                "the data plane did not take the traffic plan: {cause}; nothing changed, \
                 retrying with backoff"
            ),
            warning: true,
        };
        ex.recorder.event(rollout, status, &ev).await;
    }
}

/// A plan went through: a refusal recorded earlier is over.
async fn accepted(ex: &Executors, rollout: &Rollout, status: &mut RolloutStatus, _: DateTime<Utc>) {
    let before = status.conditions.len();
    status.conditions.retain(|c| c.kind != TRAFFIC_CONDITION);
    if status
        .message
        .as_deref()
        .is_some_and(|m| m.starts_with(REFUSED_PREFIX))
    {
        status.message = None;
    }
    if status.conditions.len() != before {
        let ev = Event {
            reason: "RouterAccepted".into(),
            message: "the data plane took the traffic plan again".into(),
            warning: false,
        };
        ex.recorder.event(rollout, status, &ev).await;
    }
}

/// `work`, raced against the interrupt while there is one that has not fired yet.
async fn interruptible<T>(
    work: impl Future<Output = T>,
    interrupt: &mut Option<Interrupt<'_>>,
) -> Result<T, Command> {
    match interrupt {
        Some(i) => {
            let out = race(work, i).await;
            if out.is_err() {
                // A future is not polled again after it completed.
                *interrupt = None;
            }
            out
        }
        None => Ok(work.await),
    }
}

fn cancelled(reason: &str, what: &str, command: Command) -> Event {
    Event {
        reason: reason.into(),
        message: format!("{command} arrived while {what} ran: cancelled, its result discarded"),
        warning: false,
    }
}
