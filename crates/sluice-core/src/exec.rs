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
//! Failure of an executor never panics and never loses state. Effects run in a fixed order:
//! traffic first, then workloads, then analysis and gate webhooks. A refused traffic plan
//! keeps the previous status (the engine decides the same again). A workload effect that fails
//! after the traffic moved does not undo the decision: the status is committed with that effect
//! (and the round's later workload effects) in `status.pendingEffects`, which the next tick
//! retries before stepping.
//!
//! ## Outbox
//! A tick sends nothing to people: events and fire-and-forget webhooks come back in
//! [`TickOutcome::outbox`]; the caller persists the status, then calls [`deliver`]. A status
//! that was never persisted is decided again next tick, so its events never left twice.
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

use crate::engine::{
    self, AnalysisReport, Command, Effect, Event, EventReason, GateAnswer, Observations,
};
use crate::rollout_plan::RolloutPlan;
use crate::spec::{
    CheckResult, Condition, PendingEffect, Rollout, RolloutStatus, WebhookKind, WorkloadAction,
};
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
/// status already reflects every effect that did succeed, and lists the workload effects still
/// pending).
pub struct TickOutcome {
    pub status: RolloutStatus,
    pub error: Option<ExecError>,
    /// Traffic plan applied during this tick, if any.
    pub applied: Option<TrafficPlan>,
    /// A preempting command that interrupted this tick but that the engine did not see (an
    /// executor failed before it could): the caller queues it again.
    pub unhandled_command: Option<Command>,
    /// The target's revision the tick observed (for log context when the outbox is sent).
    pub revision: Option<String>,
    /// Events and fire-and-forget webhooks of this tick, in order. Not sent yet: the caller
    /// persists `status` first, then hands these to [`deliver`]. A status that was never
    /// persisted is decided again by the next tick, so its events must not have left.
    pub outbox: Vec<Outgoing>,
}

/// Something a tick wants people or systems told, once its status is persisted.
#[derive(Clone, Debug, PartialEq)]
pub enum Outgoing {
    /// A history entry / Kubernetes Event / notification, with the status right after it.
    Event { event: Event, status: RolloutStatus },
    /// `event`, `post-rollout` or `rollback` webhooks (their answers change nothing).
    Webhooks {
        kind: WebhookKind,
        status: RolloutStatus,
    },
}

impl Outgoing {
    pub fn event(&self) -> Option<&Event> {
        match self {
            Outgoing::Event { event, .. } => Some(event),
            Outgoing::Webhooks { .. } => None,
        }
    }
}

impl TickOutcome {
    /// The events of the outbox, in order (for callers that keep history themselves).
    pub fn events(&self) -> impl Iterator<Item = (&Event, &RolloutStatus)> {
        self.outbox.iter().filter_map(|o| match o {
            Outgoing::Event { event, status } => Some((event, status)),
            Outgoing::Webhooks { .. } => None,
        })
    }
}

/// Sends a tick's outbox: events to the recorder (history, Kubernetes Events, notifications,
/// metrics), fire-and-forget webhooks to their URLs. Call it after the tick's status is
/// persisted, never before.
pub async fn deliver(ex: &Executors, rollout: &Rollout, outbox: &[Outgoing]) {
    for o in outbox {
        match o {
            Outgoing::Event { event, status } => ex.recorder.event(rollout, status, event).await,
            Outgoing::Webhooks { kind, status } => {
                let _ = ex.webhooks.call(rollout, status, *kind).await;
            }
        }
    }
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
    interrupt: Option<Interrupt<'_>>,
) -> TickOutcome {
    let mut out = tick_inner(ex, rollout, plan, status, command, now, interrupt).await;
    effects_condition(&mut out.status, now);
    out
}

/// Condition kind saying whether every workload effect the engine decided was carried out:
/// `False` (reason `EffectPending`, the first pending effect and its error as message)
/// while `status.pendingEffects` is not empty; absent otherwise.
pub const EFFECTS_CONDITION: &str = "EffectsApplied";

fn effects_condition(status: &mut RolloutStatus, now: DateTime<Utc>) {
    let since = status
        .conditions
        .iter()
        .find(|c| c.kind == EFFECTS_CONDITION)
        .map(|c| c.last_transition_time);
    status.conditions.retain(|c| c.kind != EFFECTS_CONDITION);
    if let Some(p) = status.pending_effects.first() {
        let more = status.pending_effects.len() - 1;
        let message = match more {
            0 => format!("{} failed: {}", p.action.as_str(), p.error),
            n => format!(
                "{} failed: {} (and {n} more pending)",
                p.action.as_str(),
                p.error
            ),
        };
        status.conditions.push(Condition {
            kind: EFFECTS_CONDITION.into(),
            status: "False".into(),
            reason: EventReason::EffectPending.as_str().into(),
            message,
            last_transition_time: since.unwrap_or(now),
        });
    }
}

#[allow(clippy::too_many_arguments)]
async fn tick_inner(
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
    let mut out = TickOutcome {
        status: RolloutStatus::default(),
        error: None,
        applied: None,
        unhandled_command: None,
        revision: None,
        outbox: Vec::new(),
    };
    // What an earlier tick decided but could not carry out goes first: the engine's next
    // decision builds on it. Still failing, the rollout holds — unless a person's command
    // waits, whose own effects may replace the stuck one (an abort's scale-down a pending
    // scale-up).
    if !status.pending_effects.is_empty()
        && let Err(error) = run_pending(ex, rollout, &mut status, &mut out.outbox, now).await
        && command.is_none()
    {
        out.status = status;
        out.error = Some(error);
        return out;
    }
    let mut obs = match ex.workloads.observe(rollout, &status).await {
        Ok(o) => o,
        Err(source) => {
            out.status = status;
            out.error = Some(ExecError {
                rollout: key,
                action: "observe",
                source,
            });
            return out;
        }
    };
    obs.command = command;
    out.revision = obs.revision.clone();
    if let Some(rev) = &obs.revision {
        // Fills the `revision` field of the caller's tick span (no-op without one).
        tracing::Span::current().record("revision", tracing::field::display(rev));
    }
    // A preempting command that arrived during this round, for the next one.
    let mut preempted: Option<Command> = None;
    let mut rounds = 0;
    loop {
        rounds += 1;
        let (next, mut effects) = engine::step(plan, &status, &obs, now);
        // Answers are consumed by the step that saw them.
        obs.command = None;
        obs.analysis = None;
        obs.webhooks.clear();
        // Traffic first (never scale down a canary that still gets requests), then workloads,
        // then the calls that answer; events and notifications leave through the outbox.
        effects.sort_by_key(effect_order);
        let mut again = false;
        let mut round_outbox: Vec<Outgoing> = Vec::new();
        // The engine's events belong to its decision, whichever effect fails later; they are
        // sent once the round's status is persisted. A round that fails keeps the previous
        // status and is decided again, so they would otherwise repeat every tick (a refused
        // plan sent one "started" notification per second).
        let mut decided: Vec<Outgoing> = effects
            .iter()
            .filter_map(|e| match e {
                Effect::Event(event) => Some(Outgoing::Event {
                    event: event.clone(),
                    status: next.clone(),
                }),
                _ => None,
            })
            .collect();
        let mut failed: Option<(usize, ExecError)> = None;
        for (i, effect) in effects.iter().enumerate() {
            let blocking = matches!(effect, Effect::RunAnalysis | Effect::CallWebhooks(_));
            if blocking && preempted.is_some() {
                // The command already decided; waiting on this call would only delay it.
                continue;
            }
            let result: Result<(), (&'static str, BoxError)> = match effect {
                Effect::ApplyTraffic(plan) => match ex.router.apply(rollout, plan).await {
                    Ok(()) => {
                        out.applied = Some(plan.clone());
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
                            let event =
                                cancelled(EventReason::AnalysisCancelled, "the analysis", c);
                            round_outbox.push(Outgoing::Event {
                                event,
                                status: next.clone(),
                            });
                        }
                    }
                    Ok(())
                }
                Effect::CallWebhooks(kind) if !kind.is_gate() => {
                    round_outbox.push(Outgoing::Webhooks {
                        kind: *kind,
                        status: next.clone(),
                    });
                    Ok(())
                }
                Effect::CallWebhooks(kind) => {
                    match interruptible(ex.webhooks.call(rollout, &next, *kind), &mut interrupt)
                        .await
                    {
                        Ok(Some(answer)) => {
                            obs.webhooks.push(answer);
                            again = true;
                        }
                        Ok(None) => {}
                        Err(c) => {
                            preempted = Some(c);
                            let what = format!("the {} webhooks", kind.as_str());
                            let event = cancelled(EventReason::WebhookCancelled, &what, c);
                            round_outbox.push(Outgoing::Event {
                                event,
                                status: next.clone(),
                            });
                        }
                    }
                    Ok(())
                }
                Effect::ScaleUpCanary
                | Effect::ScaleDownCanary
                | Effect::PromoteCanary { .. }
                | Effect::RestoreStable { .. } => run_workload(ex, rollout, effect).await,
                Effect::Event(_) => Ok(()),
            };
            if let Err((action, source)) = result {
                failed = Some((
                    i,
                    ExecError {
                        rollout: key.clone(),
                        action,
                        source,
                    },
                ));
                break;
            }
        }
        let mut next = next;
        if let Some((i, error)) = failed {
            if error.action == APPLY_TRAFFIC {
                // Traffic goes first, so nothing else of this round ran: keep the *previous*
                // status, and the engine decides the same again next tick instead of
                // believing the data plane moved.
                refused(&mut status, &error, &mut out.outbox, now);
                out.status = status;
                out.error = Some(error);
                out.unhandled_command = preempted;
                return out;
            }
            // A workload effect failed after the traffic moved: the decision stands (the
            // data plane already serves it). It is committed with this effect and the
            // round's later workload effects pending, retried before the next step.
            if out.applied.is_some() {
                accepted(&mut next, &mut out.outbox, now);
            }
            // Events in the order they happened: the decision's, the round's, the failure.
            out.outbox.append(&mut decided);
            out.outbox.append(&mut round_outbox);
            postpone(&mut next, &effects[i..], &error, &mut out.outbox, now);
            out.status = next;
            out.error = Some(error);
            out.unhandled_command = preempted;
            return out;
        }
        // Workload effects that ran replace pending ones they supersede (see `run_pending`).
        for e in &effects {
            if let Some((action, _)) = workload_action(e) {
                next.pending_effects
                    .retain(|p| !action.supersedes(p.action));
            }
        }
        if out.applied.is_some() {
            accepted(&mut next, &mut out.outbox, now);
        }
        out.outbox.append(&mut decided);
        out.outbox.append(&mut round_outbox);
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
                out.status = status;
                out.error = Some(ExecError {
                    rollout: key,
                    action: "observe",
                    source,
                });
                out.unhandled_command = obs.command;
                return out;
            }
        }
    }
    out.status = status;
    out
}

/// Where an effect runs within a round (a stable sort keeps the engine's order otherwise).
fn effect_order(e: &Effect) -> u8 {
    match e {
        Effect::ApplyTraffic(_) => 0,
        Effect::ScaleUpCanary
        | Effect::ScaleDownCanary
        | Effect::PromoteCanary { .. }
        | Effect::RestoreStable { .. } => 1,
        Effect::RunAnalysis | Effect::CallWebhooks(_) => 2,
        Effect::Event(_) => 3,
    }
}

/// The workload action of an effect, with its revision.
fn workload_action(e: &Effect) -> Option<(WorkloadAction, Option<String>)> {
    match e {
        Effect::ScaleUpCanary => Some((WorkloadAction::ScaleUpCanary, None)),
        Effect::ScaleDownCanary => Some((WorkloadAction::ScaleDownCanary, None)),
        Effect::PromoteCanary { revision } => {
            Some((WorkloadAction::PromoteCanary, Some(revision.clone())))
        }
        Effect::RestoreStable { revision } => {
            Some((WorkloadAction::RestoreStable, Some(revision.clone())))
        }
        _ => None,
    }
}

async fn run_workload(
    ex: &Executors,
    rollout: &Rollout,
    effect: &Effect,
) -> Result<(), (&'static str, BoxError)> {
    let w = &ex.workloads;
    let (action, result) = match effect {
        Effect::ScaleUpCanary => (
            WorkloadAction::ScaleUpCanary,
            w.scale_up_canary(rollout).await,
        ),
        Effect::ScaleDownCanary => (
            WorkloadAction::ScaleDownCanary,
            w.scale_down_canary(rollout).await,
        ),
        Effect::PromoteCanary { revision } => (
            WorkloadAction::PromoteCanary,
            w.promote(rollout, revision).await,
        ),
        Effect::RestoreStable { revision } => (
            WorkloadAction::RestoreStable,
            w.restore_stable(rollout, revision).await,
        ),
        _ => return Ok(()),
    };
    result.map_err(|e| (action.as_str(), e))
}

/// Records the workload effects of `rest` (the failed one first) as pending in `status`; an
/// event announces a failure the status did not already carry (not every retry).
fn postpone(
    status: &mut RolloutStatus,
    rest: &[Effect],
    error: &ExecError,
    outbox: &mut Vec<Outgoing>,
    now: DateTime<Utc>,
) {
    let cause = error.source.to_string();
    let mut first = true;
    for e in rest {
        let Some((action, revision)) = workload_action(e) else {
            continue;
        };
        status
            .pending_effects
            .retain(|p| !action.supersedes(p.action));
        let why = if first {
            cause.clone()
        } else {
            format!("waiting for {}", error.action)
        };
        first = false;
        status.pending_effects.push(PendingEffect {
            action,
            revision,
            error: why,
            since: now,
        });
    }
    let event = Event {
        reason: EventReason::EffectPending,
        message: format!(
            "{} failed: {cause}; the rollout's decision stands, retrying before the next step",
            error.action
        ),
        warning: true,
    };
    outbox.push(Outgoing::Event {
        event,
        status: status.clone(),
    });
}

/// Runs the pending workload effects in order, removing each that succeeds. The first failure
/// stops the run and is returned; its `error` text in the status follows the latest attempt
/// (its `since` stays), so a status write happens only when the cause changes.
async fn run_pending(
    ex: &Executors,
    rollout: &Rollout,
    status: &mut RolloutStatus,
    outbox: &mut Vec<Outgoing>,
    now: DateTime<Utc>,
) -> Result<(), ExecError> {
    let mut done = Vec::new();
    while let Some(p) = status.pending_effects.first().cloned() {
        let effect = match (p.action, p.revision.clone()) {
            (WorkloadAction::ScaleUpCanary, _) => Effect::ScaleUpCanary,
            (WorkloadAction::ScaleDownCanary, _) => Effect::ScaleDownCanary,
            (WorkloadAction::PromoteCanary, Some(revision)) => Effect::PromoteCanary { revision },
            (WorkloadAction::RestoreStable, Some(revision)) => Effect::RestoreStable { revision },
            // A promotion without its revision cannot be carried out (a hand-edited status):
            // drop it; the engine decides again from what runs.
            (WorkloadAction::PromoteCanary | WorkloadAction::RestoreStable, None) => {
                status.pending_effects.remove(0);
                continue;
            }
        };
        match run_workload(ex, rollout, &effect).await {
            Ok(()) => {
                status.pending_effects.remove(0);
                done.push(p.action.as_str());
            }
            Err((action, source)) => {
                let cause = source.to_string();
                status.pending_effects[0].error = cause;
                if !done.is_empty() {
                    completed(status, &done, outbox, now);
                }
                return Err(ExecError {
                    rollout: rollout.key(),
                    action,
                    source,
                });
            }
        }
    }
    completed(status, &done, outbox, now);
    Ok(())
}

fn completed(
    status: &RolloutStatus,
    done: &[&str],
    outbox: &mut Vec<Outgoing>,
    _now: DateTime<Utc>,
) {
    if done.is_empty() {
        return;
    }
    outbox.push(Outgoing::Event {
        event: Event {
            reason: EventReason::EffectCompleted,
            message: format!("done after an earlier failure: {}", done.join(", ")),
            warning: false,
        },
        status: status.clone(),
    });
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
fn refused(
    status: &mut RolloutStatus,
    error: &ExecError,
    outbox: &mut Vec<Outgoing>,
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
        let event = Event {
            reason: EventReason::RouterRefused,
            message: format!(
                "the data plane did not take the traffic plan: {cause}; nothing changed, \
                 retrying with backoff"
            ),
            warning: true,
        };
        outbox.push(Outgoing::Event {
            event,
            status: status.clone(),
        });
    }
}

/// A plan went through: a refusal recorded earlier is over.
fn accepted(status: &mut RolloutStatus, outbox: &mut Vec<Outgoing>, _: DateTime<Utc>) {
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
        let event = Event {
            reason: EventReason::RouterAccepted,
            message: "the data plane took the traffic plan again".into(),
            warning: false,
        };
        outbox.push(Outgoing::Event {
            event,
            status: status.clone(),
        });
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

fn cancelled(reason: EventReason, what: &str, command: Command) -> Event {
    Event {
        reason,
        message: format!("{command} arrived while {what} ran: cancelled, its result discarded"),
        warning: false,
    }
}
