//! The pure rollout engine: `step(plan, status, observations, now) -> (status, effects)`.
//!
//! The engine sees a [`RolloutPlan`] (the spec parsed once, see `crate::rollout_plan`), never
//! the spec's strings: an interval, a limit or a window that does not parse never gets here.
//!
//! No I/O, no clock reads, no randomness: everything the engine knows arrives as
//! [`Observations`], everything it wants done leaves as [`Effect`]s, which executors (the
//! Kubernetes controller, the standalone runner, see `crate::exec`) carry out before calling
//! `step` again. `docs/engine.md` tells the whole story for users; this is the short version.
//!
//! ## Flow
//! `Idle` → (new revision) → `Progressing` through the plan's stages → (last stage passed, gates
//! open) → `Promoting` → (stable runs the new revision and is ready) → `Succeeded`.
//! Failed analysis (`failureLimit` in a row), a failed pre-rollout webhook or `abort` →
//! `Failed` with all traffic on stable. Inconclusive analysis (`inconclusiveLimit` in a row)
//! → `Paused`, never a pass. A new revision mid-rollout restarts from the first stage.
//!
//! Each stage: wait for the canary to be ready → wait for a schedule window → gates
//! (`confirm-rollout` and `pre-rollout` before the first stage, `confirm-traffic-increase`
//! before later ones) → apply the stage's traffic → ask for analysis every interval → after
//! `checks` passes, the stage advances on a pass judged in that same step, inside a window.
//!
//! ## Guarantees (held by the property tests in `props.rs`)
//! - every emitted [`TrafficPlan`] passes [`TrafficPlan::check`] (weights add up to 100);
//! - no plan sends (or mirrors) traffic to a canary the same observations call not ready, and
//!   a canary that stops being ready loses every request at once;
//! - `Failed` always comes with an all-stable plan;
//! - a stage advances only on a fresh passing analysis (or `skipAnalysis`'s timer) inside a
//!   schedule window, or on `promote`;
//! - an Inconclusive or missing check never counts as a pass;
//! - `step_index` stays within the stages, and the engine never panics.

mod events;
#[cfg(test)]
mod props;
#[cfg(test)]
#[allow(clippy::type_complexity)] // table-driven cases are tuples, read row by row
mod tests;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::rollout_plan::{RolloutPlan, Stage};
use crate::spec::{
    CheckResult, LowTraffic, PendingGate, Phase, Reason, RolloutStatus, Verdict, WebhookKind,
};
use crate::traffic::TrafficPlan;

pub use events::{EngineEvent, Event, EventReason};

/// What the executor saw since the last call.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Observations {
    /// Revision the target declares now (the version users want). `None`: not known yet.
    pub revision: Option<String>,
    /// Revision the stable side actually runs (Kubernetes: the primary Deployment's template;
    /// standalone: the stable upstream). `None` before the first promotion on Kubernetes.
    pub stable_running: Option<String>,
    /// The stable side has ready endpoints.
    pub stable_ready: bool,
    /// The canary side has ready endpoints.
    pub canary_ready: bool,
    /// Result of the analysis the engine last asked for with [`Effect::RunAnalysis`].
    pub analysis: Option<AnalysisReport>,
    /// Answers of gate webhooks the engine asked for with [`Effect::CallWebhooks`].
    pub webhooks: Vec<GateAnswer>,
    /// A command from a person or a CI pipeline.
    pub command: Option<Command>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisReport {
    pub at: DateTime<Utc>,
    pub checks: Vec<CheckResult>,
}

impl AnalysisReport {
    /// The report without its shadow checks (`mode: shadow`): what the engine decides on.
    pub fn enforced(&self, analysis: &crate::rollout_plan::AnalysisPlan) -> AnalysisReport {
        AnalysisReport {
            at: self.at,
            checks: self
                .checks
                .iter()
                .filter(|c| !analysis.is_shadow(&c.metric))
                .cloned()
                .collect(),
        }
    }

    /// Fail if any check failed, else Inconclusive if any was, else Pass. No checks at all is a
    /// Pass only because the user asked for no metrics; missing *data* is Inconclusive per check.
    pub fn verdict(&self) -> Verdict {
        if self.checks.iter().any(|c| c.verdict == Verdict::Fail) {
            Verdict::Fail
        } else if self
            .checks
            .iter()
            .any(|c| c.verdict == Verdict::Inconclusive)
        {
            Verdict::Inconclusive
        } else {
            Verdict::Pass
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GateAnswer {
    pub kind: WebhookKind,
    /// Every webhook of this kind answered 2xx.
    pub passed: bool,
    pub message: String,
}

/// A person's (or a CI pipeline's) decision. [`command_allowed`] says when each applies; a
/// command that does not apply when it reaches the engine is recorded as a `CommandRejected`
/// event and changes nothing else.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Command {
    /// At the manual promotion gate: promote. Otherwise pass the running step now, whatever
    /// analysis says (and forget earlier bad results), moving to the next step, whose traffic
    /// still waits for readiness, a window and its gates. Never overrides a webhook gate.
    Promote,
    /// Hold: no analysis, no step changes; traffic stays, except off an unready canary.
    Pause,
    /// Continue after a pause (by user or inconclusive analysis), checking right away.
    Resume,
    /// Roll back now: all traffic to stable, canary scaled down; during promotion, stable's
    /// previous revision is restored.
    Abort,
    /// After a failure, run the same revision again from the first stage.
    Retry,
    /// After a promotion, put the previous stable revision back (ends `Failed`/`Undone`).
    Undo,
}

impl Command {
    /// Whether the command cuts short an analysis or a webhook call in flight (see
    /// [`crate::exec::tick_interruptible`]): stopping must not wait behind a slow Prometheus.
    /// The others wait for the tick in flight, whose result they build on.
    pub fn preempts(self) -> bool {
        matches!(self, Command::Abort | Command::Pause)
    }

    pub const ALL: [Command; 6] = [
        Command::Promote,
        Command::Pause,
        Command::Resume,
        Command::Abort,
        Command::Retry,
        Command::Undo,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Promote => "promote",
            Command::Pause => "pause",
            Command::Resume => "resume",
            Command::Abort => "abort",
            Command::Retry => "retry",
            Command::Undo => "undo",
        }
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Command {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Command::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                format!("unknown command {s:?} (promote, pause, resume, abort, retry, undo)")
            })
    }
}

/// What the engine wants done. Executors carry these out in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Effect {
    /// Make the data plane route exactly like this.
    ApplyTraffic(TrafficPlan),
    /// Run every metric now and call `step` again with the [`AnalysisReport`].
    /// Executors also call `rollout` webhooks here and add their results as checks.
    RunAnalysis,
    /// Call the webhooks of this kind. For gates, report the answer as a [`GateAnswer`];
    /// others are fire-and-forget notifications.
    CallWebhooks(WebhookKind),
    /// Make the canary run (Kubernetes: scale the target up).
    ScaleUpCanary,
    /// The canary is no longer needed (Kubernetes: scale the target to zero).
    ScaleDownCanary,
    /// Make stable run `revision` (Kubernetes: copy the target's template to primary;
    /// standalone: point the stable upstream where the canary points).
    PromoteCanary { revision: String },
    /// Make stable run an earlier `revision` again (undo).
    RestoreStable { revision: String },
    /// Record an event (Kubernetes Event, history, notifications, `event` webhooks).
    Event(Event),
}

/// Whether `command` makes sense in `status` now. The HTTP API answers 409 with the message
/// when it does not; the engine re-checks when the command arrives (the status may have moved
/// on) and then records a `CommandRejected` warning event and changes nothing else.
///
/// | command   | allowed when                                                                |
/// |-----------|-----------------------------------------------------------------------------|
/// | `promote` | `Progressing`/`Paused`, not waiting on a webhook gate, and either awaiting promotion or the current step's traffic is applied |
/// | `pause`   | `Progressing` or `Paused` (pausing a paused rollout makes it paused by user) |
/// | `resume`  | `Paused`, except while awaiting promotion (that needs `promote`)            |
/// | `abort`   | `Progressing`, `Paused` or `Promoting`                                      |
/// | `retry`   | `Failed` with a revision to retry                                           |
/// | `undo`    | `Succeeded` with a previous stable revision                                 |
pub fn command_allowed(status: &RolloutStatus, command: Command) -> Result<(), CommandRefusal> {
    let phase = status.phase;
    let refuse = |why: Refusal| Err(CommandRefusal { command, why });
    match command {
        Command::Promote => {
            if !matches!(phase, Phase::Progressing | Phase::Paused) {
                return refuse(Refusal::Phase(phase));
            }
            if let Some(gate) = &status.pending_gate {
                return refuse(Refusal::GateWebhook(gate.kind));
            }
            if status.reason == Some(Reason::AwaitingPromotion) || status.step_started_at.is_some()
            {
                Ok(())
            } else {
                refuse(Refusal::StepNotStarted)
            }
        }
        Command::Pause => match phase {
            Phase::Progressing | Phase::Paused => Ok(()),
            _ => refuse(Refusal::Phase(phase)),
        },
        Command::Resume => match (phase, status.reason) {
            (Phase::Paused, Some(Reason::AwaitingPromotion)) => refuse(Refusal::AwaitsPromote),
            (Phase::Paused, _) => Ok(()),
            _ => refuse(Refusal::NotPaused(phase)),
        },
        Command::Abort => match phase {
            Phase::Progressing | Phase::Paused | Phase::Promoting => Ok(()),
            _ => refuse(Refusal::NothingInFlight(phase)),
        },
        Command::Retry => match phase {
            Phase::Failed if status.canary_revision.is_some() => Ok(()),
            Phase::Failed => refuse(Refusal::NoRevisionToRetry),
            _ => refuse(Refusal::NotFailed(phase)),
        },
        Command::Undo => match phase {
            Phase::Succeeded if status.previous_stable_revision.is_some() => Ok(()),
            Phase::Succeeded => refuse(Refusal::NoPreviousStable),
            _ => refuse(Refusal::NotSucceeded(phase)),
        },
    }
}

/// A command that does not apply now, and why ([`command_allowed`]). Its `Display` is the
/// sentence the API answers with (409) and the `CommandRejected` event carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandRefusal {
    pub command: Command,
    pub why: Refusal,
}

/// Why a command was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The command does not apply in this phase.
    Phase(Phase),
    /// `resume` outside `Paused`.
    NotPaused(Phase),
    /// `abort` with nothing in flight.
    NothingInFlight(Phase),
    /// `retry` outside `Failed`.
    NotFailed(Phase),
    /// `undo` outside `Succeeded`.
    NotSucceeded(Phase),
    /// `promote` never overrides a webhook gate.
    GateWebhook(WebhookKind),
    /// `promote` passes a running step; this one's traffic is not applied yet.
    StepNotStarted,
    /// `resume` while the rollout waits for `promote`.
    AwaitsPromote,
    /// `retry` without a failed revision.
    NoRevisionToRetry,
    /// `undo` without a previous stable revision.
    NoPreviousStable,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Phase(p) => write!(f, "the rollout is {p}"),
            Refusal::NotPaused(p) => write!(f, "the rollout is {p}, not Paused"),
            Refusal::NothingInFlight(p) => {
                write!(f, "the rollout is {p}; there is nothing in flight")
            }
            Refusal::NotFailed(p) => write!(f, "the rollout is {p}, not Failed"),
            Refusal::NotSucceeded(p) => write!(f, "the rollout is {p}, not Succeeded"),
            Refusal::GateWebhook(kind) => write!(
                f,
                "waiting for {} webhooks, which promote does not override",
                kind.as_str()
            ),
            Refusal::StepNotStarted => f.write_str(
                "the current step has not started (its traffic is not applied yet); \
                 promote passes a running step",
            ),
            Refusal::AwaitsPromote => f.write_str("the rollout waits for promote, not resume"),
            Refusal::NoRevisionToRetry => f.write_str("no failed revision to retry"),
            Refusal::NoPreviousStable => f.write_str("no previous stable revision to go back to"),
        }
    }
}

impl std::fmt::Display for CommandRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot {}: {}", self.command, self.why)
    }
}

impl std::error::Error for CommandRefusal {}

/// One engine step. See the module docs for the flow and guarantees.
pub fn step(
    plan: &RolloutPlan,
    status: &RolloutStatus,
    obs: &Observations,
    now: DateTime<Utc>,
) -> (RolloutStatus, Vec<Effect>) {
    let mut e = Engine {
        plan,
        obs,
        now,
        s: status.clone(),
        effects: Vec::new(),
    };
    e.run();
    let Engine { s, effects, .. } = e;
    (s, effects)
}

struct Engine<'a> {
    plan: &'a RolloutPlan,
    obs: &'a Observations,
    now: DateTime<Utc>,
    s: RolloutStatus,
    effects: Vec<Effect>,
}

impl Engine<'_> {
    fn run(&mut self) {
        // First sight: whatever runs now is stable; there is nothing to roll out yet.
        if self.s.stable_revision.is_none() {
            let Some(initial) = self
                .obs
                .stable_running
                .clone()
                .or(self.obs.revision.clone())
            else {
                self.s.message = Some("waiting for the target's revision".into());
                if let Some(cmd) = self.obs.command {
                    self.event(
                        EventReason::CommandRejected,
                        format!("cannot {cmd}: the target's revision is not known yet"),
                        true,
                    );
                }
                return;
            };
            self.s.stable_revision = Some(initial.clone());
            self.s.phase = Phase::Idle;
            self.apply(TrafficPlan::stable_only());
            self.event(
                EventReason::Initialized,
                format!("stable revision is {initial}"),
                false,
            );
        }
        self.clamp_step_index();
        self.templates_changed();

        if let Some(cmd) = self.obs.command {
            self.command(cmd);
        }
        self.revision_change();

        match self.s.phase {
            Phase::Progressing => self.progress(),
            Phase::Paused => self.paused(),
            Phase::Promoting => self.promoting(),
            Phase::Idle | Phase::Succeeded | Phase::Failed => {}
        }
        self.progress_deadline();
    }

    /// A rollout that waits without progress longer than `progressDeadline` fails, all traffic
    /// on stable: for its canary's readiness always, for gates and windows when the spec's
    /// `covers` says so. The clock starts when such a wait starts and stops when the rollout
    /// moves on (or waits for something else, e.g. a person after `pause`).
    fn progress_deadline(&mut self) {
        let d = &self.plan.progress_deadline;
        let what = match (self.s.phase, self.s.reason) {
            (Phase::Progressing, Some(Reason::WaitingForReady)) => {
                "waited for the canary to be ready"
            }
            (Phase::Progressing, Some(Reason::AwaitingWebhook)) if d.gates => {
                "waited for a gate webhook"
            }
            (Phase::Progressing, Some(Reason::OutsideWindow)) if d.windows => {
                "waited for a schedule window"
            }
            // `lowTraffic: wait`: past `gatherFor`, the judges still lack evidence.
            (Phase::Progressing, _) if self.starved() => "waited for enough traffic to decide",
            _ => {
                self.s.waiting_since = None;
                return;
            }
        };
        let since = *self.s.waiting_since.get_or_insert(self.now);
        if self.now - since >= d.duration {
            let message = format!(
                "{what} for {}, longer than the progress deadline ({})",
                crate::duration::format((self.now - since).to_std().unwrap_or_default()),
                d.text
            );
            self.s.waiting_since = None;
            self.rollback(Reason::ProgressDeadlineExceeded, message);
        }
    }

    /// A spec edited mid-rollout may have fewer stages than `step_index` assumes: go on from
    /// the (new) last stage rather than holding for ever.
    fn clamp_step_index(&mut self) {
        let n = self.plan.stages.len();
        if n > 0 && self.s.step_index as usize >= n {
            let old = self.s.step_index;
            self.s.step_index = (n - 1) as u32;
            self.reset_step();
            self.event(
                EventReason::StepsChanged,
                format!(
                    "the strategy now has {n} steps; step {} continues as step {n}",
                    old + 1
                ),
                true,
            );
        }
    }

    /// The spec now runs other versions of its analysis templates (edited, added, removed):
    /// the checks from this step on use them, and the history says which.
    fn templates_changed(&mut self) {
        let now = &self.plan.analysis.templates;
        if *now == self.s.analysis_templates {
            return;
        }
        let before = std::mem::replace(&mut self.s.analysis_templates, now.clone());
        let name = |l: &str| l.rsplit_once('@').map_or(l, |(n, _)| n).to_string();
        let mut parts = Vec::new();
        for l in now.iter().filter(|l| !before.contains(l)) {
            match before.iter().find(|b| name(b) == name(l)) {
                Some(old) => parts.push(format!("{l} (was {old})")),
                None => parts.push(format!("{l} added")),
            }
        }
        for b in before
            .iter()
            .filter(|b| !now.iter().any(|l| name(l) == name(b)))
        {
            parts.push(format!("{b} removed"));
        }
        self.event(
            EventReason::AnalysisTemplateChanged,
            format!("checks from now on use {}", parts.join(", ")),
            false,
        );
    }

    // ------------------------------------------------------------------ commands

    fn command(&mut self, cmd: Command) {
        if let Err(refusal) = command_allowed(&self.s, cmd) {
            self.event(EventReason::CommandRejected, refusal.to_string(), true);
            return;
        }
        match cmd {
            Command::Pause => {
                self.transition(Phase::Paused, Some(Reason::PausedByUser), "paused by user");
            }
            Command::Resume => {
                self.s.consecutive_inconclusive = 0;
                // Check right away instead of waiting a full interval. Not with skipAnalysis:
                // there the timer is the check, and resuming is no evidence.
                if !self.plan.analysis.skip {
                    self.s.next_analysis_at = Some(self.now);
                }
                self.transition(Phase::Progressing, None, "resumed by user");
            }
            Command::Abort => {
                if self.s.phase == Phase::Promoting
                    && let Some(stable) = self.s.stable_revision.clone()
                {
                    // Stable may already be half rewritten: put the old revision back.
                    self.effects
                        .push(Effect::RestoreStable { revision: stable });
                }
                self.rollback(Reason::Aborted, "aborted by user".into());
            }
            Command::Promote => {
                if self.s.reason == Some(Reason::AwaitingPromotion) {
                    self.start_promotion();
                } else {
                    // Pass the current step now, whatever analysis said: a person decided, so
                    // earlier bad results do not count against the next step either.
                    if let Some(stage) = self.plan.stages.get(self.s.step_index as usize) {
                        self.s.passed_checks = stage.checks;
                    }
                    self.s.consecutive_failures = 0;
                    self.s.consecutive_inconclusive = 0;
                    self.s.reason = None;
                    self.s.phase = Phase::Progressing;
                    self.event(
                        EventReason::Promoted,
                        "current step passed by user".into(),
                        false,
                    );
                    // The next stage starts in `progress`, which `run` calls next.
                    self.advance(true);
                }
            }
            Command::Retry => {
                let rev = self.s.canary_revision.clone().unwrap_or_default();
                self.start_rollout(rev, "retry");
            }
            Command::Undo => {
                let prev = self.s.previous_stable_revision.take().unwrap_or_default();
                let undone = self.s.stable_revision.replace(prev.clone());
                // Keep the undone revision as canary so the same target revision does not start
                // a new rollout by itself; `retry` or a new revision does.
                self.s.canary_revision = undone;
                self.effects.push(Effect::RestoreStable {
                    revision: prev.clone(),
                });
                self.apply(TrafficPlan::stable_only());
                self.transition(
                    Phase::Failed,
                    Some(Reason::Undone),
                    &format!("undone: stable back to {prev}"),
                );
            }
        }
    }

    // ------------------------------------------------------------------ revisions

    fn revision_change(&mut self) {
        let Some(rev) = self.obs.revision.clone() else {
            return;
        };
        if Some(&rev) == self.s.canary_revision.as_ref() {
            return;
        }
        if Some(&rev) == self.s.stable_revision.as_ref() {
            // The target went back to what stable runs: nothing to roll out any more.
            if matches!(self.s.phase, Phase::Progressing | Phase::Paused) {
                self.apply(TrafficPlan::stable_only());
                self.effects.push(Effect::ScaleDownCanary);
                self.s.canary_revision = None;
                self.reset_step();
                self.transition(Phase::Idle, None, "target reverted to the stable revision");
            } else if self.s.phase != Phase::Promoting {
                self.s.canary_revision = None;
            }
            return;
        }
        if self.s.phase == Phase::Promoting {
            // Stable is being rewritten; the new revision starts once promotion completes.
            return;
        }
        let restarting = matches!(self.s.phase, Phase::Progressing | Phase::Paused);
        if restarting {
            self.apply(TrafficPlan::stable_only());
        }
        self.start_rollout(
            rev,
            if restarting {
                "new revision, restarting"
            } else {
                "new revision"
            },
        );
    }

    fn start_rollout(&mut self, rev: String, why: &str) {
        self.s.canary_revision = Some(rev.clone());
        self.reset_step();
        self.s.step_index = 0;
        self.s.consecutive_failures = 0;
        self.s.consecutive_inconclusive = 0;
        self.s.last_verdicts.clear();
        self.effects.push(Effect::ScaleUpCanary);
        self.transition_event(
            Phase::Progressing,
            None,
            &format!("rolling out {rev} ({why})"),
            true,
        );
    }

    fn reset_step(&mut self) {
        self.s.passed_checks = 0;
        self.s.more_requests = None;
        self.s.step_started_at = None;
        self.s.next_analysis_at = None;
        self.s.passed_gates.clear();
        self.s.pending_gate = None;
    }

    // ------------------------------------------------------------------ progressing

    fn progress(&mut self) {
        let plan = self.plan;
        let Some(stage) = plan.stages.get(self.s.step_index as usize) else {
            // A plan has at least one stage, and `clamp_step_index` keeps the index inside;
            // should either ever fail, promoting would skip analysis, so hold instead.
            self.s.message = Some("the strategy has no steps".into());
            return;
        };
        if !self.obs.canary_ready {
            self.canary_unready();
            // Ask again while waiting: scaling up is idempotent (a no-op when the canary
            // runs), and it undoes a scale-down whose decision was never persisted (a
            // rollback whose status write failed is decided again from the older status).
            if !self.effects.contains(&Effect::ScaleUpCanary) {
                self.effects.push(Effect::ScaleUpCanary);
            }
            self.s.reason = Some(Reason::WaitingForReady);
            self.s.message = Some("waiting for the canary to be ready".into());
            return;
        }
        if self.s.step_started_at.is_none() {
            // Window first: gates (a pre-rollout smoke test, say) should run just before the
            // traffic they guard moves, not hours earlier.
            if !self.window_open() {
                return;
            }
            for &gate in &stage.gates {
                if !self.gate_open(gate) {
                    return;
                }
            }
            self.start_stage(stage);
            return;
        }

        // The stage is running. Only a pass judged in this very step can finish it: a pass
        // from before a window closed is no evidence about the canary now.
        let mut fresh_pass = false;
        let mut judged = false;
        if plan.analysis.skip {
            if self.analysis_due() {
                self.s.passed_checks += 1;
                self.s.next_analysis_at = Some(self.now + self.interval());
                fresh_pass = true;
            }
        } else if let Some(report) = self.fresh_report() {
            judged = true;
            fresh_pass = self.judge(&report) == Verdict::Pass;
            if self.s.phase != Phase::Progressing {
                return;
            }
        }
        self.s.passed_checks = self.s.passed_checks.min(stage.checks);
        let run_analysis = !plan.analysis.skip && !judged && self.analysis_due();

        if self
            .s
            .pending_gate
            .as_ref()
            .is_some_and(|g| g.kind == WebhookKind::ConfirmPromotion)
        {
            // Promotion was decided; only its webhook holds it. Analysis goes on meanwhile: a
            // failure still rolls back.
            self.start_promotion();
            if self.s.phase == Phase::Progressing && run_analysis {
                self.effects.push(Effect::RunAnalysis);
            }
            return;
        }
        if fresh_pass && self.s.passed_checks >= stage.checks {
            if self.advance(false) {
                self.progress();
            }
            return;
        }
        if run_analysis {
            self.effects.push(Effect::RunAnalysis);
            return;
        }
        if let Some(n) = self.s.more_requests {
            self.s.message = Some(format!(
                "{}: gathering evidence, about {n} more requests to the canary needed",
                stage.label
            ));
        } else if self.s.passed_checks < stage.checks {
            self.s.message = Some(format!(
                "{}: {} of {} checks passed",
                stage.label, self.s.passed_checks, stage.checks
            ));
        }
    }

    fn start_stage(&mut self, stage: &Stage) {
        // Sticky sessions: the cookie names this revision's cohort (see `for_revision`).
        let traffic = match &self.s.canary_revision {
            Some(rev) => stage.traffic.clone().for_revision(rev),
            None => stage.traffic.clone(),
        };
        self.apply(traffic);
        self.s.step_started_at = Some(self.now);
        self.s.next_analysis_at = Some(self.now + self.interval());
        self.s.passed_checks = 0;
        self.s.reason = None;
        self.s.message = Some(format!("{}: waiting for analysis", stage.label));
        self.event(
            EventReason::StepStarted,
            format!(
                "step {}/{}: {}",
                self.s.step_index + 1,
                self.plan.stages.len(),
                stage.label
            ),
            false,
        );
    }

    /// The report answers the analysis asked for in this stage: taken after the stage started,
    /// once the check was due, and not in the future (a skewed clock must not pass a step).
    fn fresh_report(&self) -> Option<AnalysisReport> {
        let report = self.obs.analysis.as_ref()?;
        let started = self.s.step_started_at?;
        (report.at >= started && report.at <= self.now && self.analysis_due_at(report.at))
            .then(|| report.clone())
    }

    fn analysis_due(&self) -> bool {
        self.analysis_due_at(self.now)
    }

    fn analysis_due_at(&self, t: DateTime<Utc>) -> bool {
        self.s.next_analysis_at.is_some_and(|due| t >= due)
    }

    /// The step's judges lack evidence for longer than `gatherFor`, and the rollout waits for
    /// it (`lowTraffic: wait`; with `pause` such checks count towards the inconclusive limit).
    fn starved(&self) -> bool {
        let a = &self.plan.analysis;
        a.low_traffic == LowTraffic::Wait
            && self.s.more_requests.is_some()
            && self
                .s
                .step_started_at
                .is_some_and(|t| self.now - t >= a.gather_for)
    }

    fn judge(&mut self, report: &AnalysisReport) -> Verdict {
        // Every check is kept (shown, charted); only the enforcing ones decide.
        self.s.last_verdicts = report.checks.clone();
        self.s.more_requests = None;
        self.s.next_analysis_at = Some(report.at + self.interval());
        let a = &self.plan.analysis;
        let shadow = AnalysisReport {
            at: report.at,
            checks: report
                .checks
                .iter()
                .filter(|c| a.is_shadow(&c.metric))
                .cloned()
                .collect(),
        };
        let report = &report.enforced(a);
        let critical: Vec<&CheckResult> = report
            .checks
            .iter()
            .filter(|c| c.verdict == Verdict::Fail && a.is_critical(&c.metric))
            .collect();
        if shadow.checks.iter().any(|c| c.verdict == Verdict::Fail) {
            self.event(
                EventReason::ShadowCheckFailed,
                format!(
                    "would have failed (shadow, no action): {}",
                    summarize(&shadow, Verdict::Fail)
                ),
                true,
            );
        }
        if !critical.is_empty() {
            let failed = critical
                .iter()
                .map(|c| format!("{}: {}", c.metric, c.reason))
                .collect::<Vec<_>>()
                .join("; ");
            self.rollback(
                Reason::AnalysisFailed,
                format!("critical check failed: {failed}"),
            );
            return Verdict::Fail;
        }
        let a = &self.plan.analysis;
        // A report with no results at all, for a rollout that declares checks, says nothing
        // about the canary (an executor lost them): never a pass.
        let empty = report.checks.is_empty() && a.has_checks;
        let verdict = if empty {
            Verdict::Inconclusive
        } else {
            report.verdict()
        };
        match verdict {
            Verdict::Pass => {
                self.s.passed_checks += 1;
                self.s.consecutive_failures = 0;
                self.s.consecutive_inconclusive = 0;
            }
            Verdict::Fail => {
                self.s.consecutive_failures += 1;
                self.s.consecutive_inconclusive = 0;
                let failed = summarize(report, Verdict::Fail);
                if self.s.consecutive_failures >= a.failure_limit.get() {
                    self.rollback(
                        Reason::AnalysisFailed,
                        format!(
                            "{} failed check(s) in a row: {failed}",
                            self.s.consecutive_failures
                        ),
                    );
                } else {
                    self.event(EventReason::AnalysisFailed, failed, true);
                }
            }
            Verdict::Inconclusive => {
                // Gathering evidence: every undecided check only wants more requests.
                let undecided = || {
                    report
                        .checks
                        .iter()
                        .filter(|c| c.verdict == Verdict::Inconclusive)
                };
                let gathering = (!empty && undecided().all(|c| c.more_requests.is_some()))
                    .then(|| undecided().filter_map(|c| c.more_requests).max())
                    .flatten();
                if let Some(n) = gathering {
                    self.s.more_requests = Some(n);
                    let young = self
                        .s
                        .step_started_at
                        .is_none_or(|t| report.at - t < a.gather_for);
                    if young || a.low_traffic == LowTraffic::Wait {
                        // Evidence accumulates over the step: waiting is progress, not a
                        // reason to pause (and earlier failures are not forgotten either).
                        return verdict;
                    }
                }
                // Not a pass, and not a reason to forget earlier failures either.
                self.s.consecutive_inconclusive += 1;
                let mut why = if empty {
                    "no check results, although the rollout declares checks".to_string()
                } else {
                    summarize(report, Verdict::Inconclusive)
                };
                if let Some(n) = gathering {
                    why = format!(
                        "too little traffic: about {n} more requests to the canary still needed; {why}"
                    );
                }
                if self.s.consecutive_inconclusive >= a.inconclusive_limit.get() {
                    self.transition(
                        Phase::Paused,
                        Some(Reason::Inconclusive),
                        &format!(
                            "paused: {} inconclusive check(s) in a row: {why}",
                            self.s.consecutive_inconclusive
                        ),
                    );
                } else {
                    self.event(EventReason::AnalysisInconclusive, why, true);
                }
            }
        }
        verdict
    }

    /// The current stage passed: move to the next one (returns true; the caller starts it) or
    /// to promotion. Unless `forced` (promote), only inside a schedule window.
    fn advance(&mut self, forced: bool) -> bool {
        if !forced && !self.window_open() {
            self.s.message = Some(
                "step passed; waiting for a schedule window and a fresh pass to advance".into(),
            );
            return false;
        }
        let last = self.s.step_index as usize + 1 >= self.plan.stages.len();
        if last {
            if self.plan.promotion.manual && !forced {
                self.transition(
                    Phase::Paused,
                    Some(Reason::AwaitingPromotion),
                    "all steps passed; waiting for promote",
                );
            } else {
                self.start_promotion();
            }
            return false;
        }
        self.s.step_index += 1;
        self.reset_step();
        self.event(
            EventReason::StepAdvanced,
            format!("advancing to step {}", self.s.step_index + 1),
            false,
        );
        true
    }

    fn start_promotion(&mut self) {
        for &gate in &self.plan.promotion.gates {
            if !self.gate_open(gate) {
                if self.s.phase == Phase::Paused {
                    // Stay paused on the webhook gate, not on the manual one.
                    self.s.reason = Some(Reason::AwaitingWebhook);
                }
                return;
            }
        }
        let Some(rev) = self.s.canary_revision.clone() else {
            return;
        };
        self.s.previous_stable_revision = self.s.stable_revision.clone();
        self.effects.push(Effect::PromoteCanary {
            revision: rev.clone(),
        });
        self.transition(
            Phase::Promoting,
            None,
            &format!("promoting {rev} to stable"),
        );
    }

    /// Whether the schedule allows moving traffic now; if not, says so in the status.
    fn window_open(&mut self) -> bool {
        let Some(windows) = &self.plan.schedule else {
            return true;
        };
        if windows.contains(self.now) {
            return true;
        }
        if self.s.phase == Phase::Progressing {
            self.s.reason = Some(Reason::OutsideWindow);
        }
        self.s.message = Some("waiting for a schedule window to move traffic".into());
        false
    }

    // ------------------------------------------------------------------ gates

    /// Whether the gate of `kind` (one the plan declares) is open for the current stage; asks
    /// for it if not.
    fn gate_open(&mut self, kind: WebhookKind) -> bool {
        if self.s.passed_gates.contains(&kind) {
            return true;
        }
        let asked = self.s.pending_gate.as_ref().is_some_and(|p| p.kind == kind);
        // Only an answer to a question asked in this stage counts.
        if asked && let Some(answer) = self.obs.webhooks.iter().find(|a| a.kind == kind) {
            if answer.passed {
                self.s.pending_gate = None;
                self.s.passed_gates.push(kind);
                self.event(
                    EventReason::GateOpened,
                    format!("{} webhooks passed", kind.as_str()),
                    false,
                );
                return true;
            }
            if kind == WebhookKind::PreRollout {
                self.rollback(
                    Reason::PreRolloutFailed,
                    format!("pre-rollout webhook failed: {}", answer.message),
                );
                return false;
            }
            let changed = self
                .s
                .pending_gate
                .as_ref()
                .is_some_and(|p| p.last_error.as_ref() != Some(&answer.message));
            if let Some(p) = self.s.pending_gate.as_mut() {
                p.last_error = Some(answer.message.clone());
            }
            if changed {
                self.event(
                    EventReason::GateHeld,
                    format!("{} webhooks said no: {}", kind.as_str(), answer.message),
                    true,
                );
            }
            self.hold_at_gate(kind);
            // Asked again on the next tick, not in this one: the executor would loop on it.
            return false;
        }
        if !asked {
            self.s.pending_gate = Some(PendingGate {
                kind,
                since: self.now,
                last_error: None,
            });
        }
        self.hold_at_gate(kind);
        let call = Effect::CallWebhooks(kind);
        if !self.effects.contains(&call) {
            self.effects.push(call);
        }
        false
    }

    fn hold_at_gate(&mut self, kind: WebhookKind) {
        if self.s.phase == Phase::Progressing {
            self.s.reason = Some(Reason::AwaitingWebhook);
        }
        self.s.message = Some(format!("waiting for {} webhooks", kind.as_str()));
    }

    // ------------------------------------------------------------------ paused / promoting

    fn paused(&mut self) {
        // A paused rollout holds its traffic, but never on a canary that stopped being ready.
        if !self.obs.canary_ready {
            self.canary_unready();
        }
        if self.s.reason == Some(Reason::AwaitingWebhook) {
            self.start_promotion();
        }
    }

    fn promoting(&mut self) {
        let rev = self.s.canary_revision.clone();
        let done = self.obs.stable_ready
            && self.obs.stable_running.is_some()
            && self.obs.stable_running == rev;
        if !done {
            if !self.obs.canary_ready && self.canary_live() {
                self.apply(TrafficPlan::stable_only());
                self.event(
                    EventReason::CanaryNotReady,
                    "canary not ready during promotion: traffic to stable".into(),
                    true,
                );
            }
            self.s.reason = Some(Reason::WaitingForReady);
            self.s.message = Some("waiting for stable to run the new revision".into());
            return;
        }
        self.s.stable_revision = rev.clone();
        self.s.canary_revision = None;
        self.apply(TrafficPlan::stable_only());
        self.effects.push(Effect::ScaleDownCanary);
        self.effects
            .push(Effect::CallWebhooks(WebhookKind::PostRollout));
        self.reset_step();
        self.transition(
            Phase::Succeeded,
            None,
            &format!(
                "{} promoted: stable takes all traffic",
                rev.unwrap_or_default()
            ),
        );
    }

    /// The canary is not ready: take every request (routed or mirrored) off it, and make the
    /// current stage start again once it is.
    fn canary_unready(&mut self) {
        if self.canary_live() || self.s.step_started_at.is_some() {
            self.apply(TrafficPlan::stable_only());
            self.event(
                EventReason::CanaryNotReady,
                "canary not ready: traffic back to stable".into(),
                true,
            );
        }
        self.s.step_started_at = None;
        // The stage starts again from zero passes, so a promotion decided on its earlier
        // passes no longer stands (a person's `promote`, awaited while paused, does).
        if self.s.phase == Phase::Progressing
            && self
                .s
                .pending_gate
                .as_ref()
                .is_some_and(|g| g.kind == WebhookKind::ConfirmPromotion)
        {
            self.s.pending_gate = None;
        }
    }

    fn rollback(&mut self, reason: Reason, message: String) {
        self.apply(TrafficPlan::stable_only());
        self.effects.push(Effect::ScaleDownCanary);
        self.effects
            .push(Effect::CallWebhooks(WebhookKind::Rollback));
        self.reset_step();
        // Rollback starts only from a phase in flight, so the transition to Failed is a change
        // and records `RolledBack` exactly once.
        self.transition(
            Phase::Failed,
            Some(reason),
            &format!("rolled back: {message}"),
        );
    }

    // ------------------------------------------------------------------ helpers

    /// Whether the applied plan may send requests to the canary. `canary_weight` covers
    /// statuses written before `canary_traffic` existed.
    fn canary_live(&self) -> bool {
        self.s.canary_traffic || self.s.canary_weight > 0
    }

    fn apply(&mut self, plan: TrafficPlan) {
        self.s.canary_weight = plan.canary_weight();
        self.s.canary_traffic = plan.touches_canary();
        // Only the latest plan matters; drop an earlier one from this same step.
        self.effects
            .retain(|e| !matches!(e, Effect::ApplyTraffic(_)));
        self.effects.push(Effect::ApplyTraffic(plan));
    }

    fn transition(&mut self, phase: Phase, reason: Option<Reason>, message: &str) {
        self.transition_event(phase, reason, message, false)
    }

    /// [`Self::transition`]; `starting` names the event `RolloutStarted` (a new rollout)
    /// rather than after the phase (`Progressing` is a resume).
    fn transition_event(
        &mut self,
        phase: Phase,
        reason: Option<Reason>,
        message: &str,
        starting: bool,
    ) {
        let warning = matches!(phase, Phase::Failed)
            || matches!(
                reason,
                Some(Reason::Inconclusive) | Some(Reason::AnalysisFailed)
            );
        let changed = self.s.phase != phase || self.s.reason != reason;
        self.s.phase = phase;
        self.s.reason = reason;
        self.s.message = Some(message.to_string());
        if changed {
            self.s.last_transition_at = Some(self.now);
            let name = match (phase, reason) {
                _ if starting => EventReason::RolloutStarted,
                (Phase::Failed, Some(Reason::Undone)) => EventReason::Undone,
                (Phase::Failed, _) => EventReason::RolledBack,
                (Phase::Idle, _) => EventReason::Idle,
                (Phase::Progressing, _) => EventReason::Progressing,
                (Phase::Paused, _) => EventReason::Paused,
                (Phase::Promoting, _) => EventReason::Promoting,
                (Phase::Succeeded, _) => EventReason::Succeeded,
            };
            self.event(name, message.to_string(), warning);
            if phase != Phase::Idle {
                self.effects.push(Effect::CallWebhooks(WebhookKind::Event));
            }
        }
    }

    fn event(&mut self, reason: EventReason, message: String, warning: bool) {
        self.effects.push(Effect::Event(Event {
            reason,
            message,
            warning,
        }));
    }

    fn interval(&self) -> Duration {
        self.plan.analysis.interval
    }
}

fn summarize(report: &AnalysisReport, verdict: Verdict) -> String {
    report
        .checks
        .iter()
        .filter(|c| c.verdict == verdict)
        .map(|c| format!("{}: {}", c.metric, c.reason))
        .collect::<Vec<_>>()
        .join("; ")
}
