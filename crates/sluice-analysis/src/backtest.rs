//! `sluice backtest`: what a Rollout would have decided on a past window of Prometheus data.
//!
//! ## Flow
//! The Rollout's plan runs through the same engine and executor glue as a live rollout
//! ([`sluice_core::exec::tick`]) in simulated time: a new revision appears at `from`, the
//! clock jumps from one due check to the next, and every check is the live analyzer's
//! ([`crate::PrometheusAnalyzer`]) evaluated at that check's instant. Only the world around the
//! engine is simulated: both versions are always ready, promotion is instant, gate webhooks are
//! taken as open (a backtest must not call them), and traffic changes are only recorded.
//!
//! ## Why instant queries at each check's time
//! A live check is an instant query at its own time (and, for `compare`, a range query ending
//! there); asking the same queries with `time=` a past instant gives exactly the answer the
//! live check would have got from the data as it is now. A `query_range` with `step = interval`
//! would give the same values for plain metrics but not for the judges, whose windows and
//! evidence grow with the step; and the engine decides *when* the next check is (a step that
//! passes early moves the next one), which only a check-by-check replay follows.
//!
//! ## Caveats
//! Data that arrived late (or was backfilled) is seen as if it had been there; a Rollout that
//! pauses (inconclusive checks, manual promotion) would wait for a person there: the replay
//! stops and says so.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use sluice_core::engine::{AnalysisReport, Event, GateAnswer, Observations};
use sluice_core::exec::{
    self, Analyzer, BoxError, Executors, Recorder, TrafficRouter, Webhooks, Workloads,
};
use sluice_core::rollout_plan::RolloutPlan;
use sluice_core::spec::{CheckResult, Phase, Rollout, RolloutStatus, Verdict, WebhookKind};
use sluice_core::traffic::TrafficPlan;

/// One decision (or notable event) of the replay.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub at: DateTime<Utc>,
    /// Seconds after `from` (the deploy).
    pub after_secs: i64,
    /// `deploy`, `start` (a step's traffic applied), `advance`, `promote`, `succeeded`, `pause`,
    /// `rollback`, or the event's reason.
    pub action: String,
    pub phase: Phase,
    /// 1-based step shown to people.
    pub step: u32,
    pub canary_weight: u32,
    pub message: String,
    /// The checks of the analysis that drove it (empty for decisions no check made).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckResult>,
}

/// The outcome of a replay.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// `promoted`, `rolled back`, `paused` or `undecided` (the window ended first).
    pub outcome: String,
    pub phase: Phase,
    /// Seconds from the deploy to the final decision; `None` when undecided.
    pub time_to_decision_secs: Option<i64>,
    pub rollbacks: u32,
    pub checks: u32,
    /// The checks that drove the final decision (`metric: reason`).
    pub driving_checks: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Backtest {
    pub rollout: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub steps: Vec<Decision>,
    pub summary: Summary,
}

/// The simulated world, shared by the executors: the clock and what was recorded.
#[derive(Default)]
struct World {
    now: Option<DateTime<Utc>>,
    revision: String,
    stable: String,
    events: Vec<(DateTime<Utc>, Event, RolloutStatus)>,
    reports: Vec<AnalysisReport>,
}

#[derive(Clone, Default)]
struct Sim(Arc<Mutex<World>>);

impl Sim {
    fn lock(&self) -> std::sync::MutexGuard<'_, World> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait::async_trait]
impl TrafficRouter for Sim {
    async fn apply(&self, _: &Rollout, _: &TrafficPlan) -> Result<(), BoxError> {
        Ok(())
    }
}

#[async_trait::async_trait]
impl Workloads for Sim {
    async fn observe(&self, _: &Rollout, _: &RolloutStatus) -> Result<Observations, BoxError> {
        let w = self.lock();
        Ok(Observations {
            revision: Some(w.revision.clone()),
            stable_running: Some(w.stable.clone()),
            stable_ready: true,
            canary_ready: true,
            ..Default::default()
        })
    }
    async fn scale_up_canary(&self, _: &Rollout) -> Result<(), BoxError> {
        Ok(())
    }
    async fn scale_down_canary(&self, _: &Rollout) -> Result<(), BoxError> {
        Ok(())
    }
    async fn promote(&self, _: &Rollout, revision: &str) -> Result<(), BoxError> {
        self.lock().stable = revision.to_string();
        Ok(())
    }
    async fn restore_stable(&self, _: &Rollout, revision: &str) -> Result<(), BoxError> {
        self.lock().stable = revision.to_string();
        Ok(())
    }
}

#[async_trait::async_trait]
impl Webhooks for Sim {
    async fn call(&self, r: &Rollout, _: &RolloutStatus, kind: WebhookKind) -> Option<GateAnswer> {
        // Gates are taken as open: a replay must not call them.
        r.spec
            .webhooks
            .iter()
            .any(|w| w.kind == kind)
            .then(|| GateAnswer {
                kind,
                passed: true,
                message: "backtest: gate webhooks are taken as open".into(),
            })
    }
    async fn checks(&self, _: &Rollout, _: &RolloutStatus, _: DateTime<Utc>) -> Vec<CheckResult> {
        Vec::new()
    }
}

#[async_trait::async_trait]
impl Recorder for Sim {
    async fn event(&self, _: &Rollout, status: &RolloutStatus, event: &Event) {
        let mut w = self.lock();
        let at = w.now.unwrap_or_default();
        w.events.push((at, event.clone(), status.clone()));
    }
    async fn analysis(&self, _: &Rollout, report: &AnalysisReport) {
        self.lock().reports.push(report.clone());
    }
}

/// Replays `rollout` (templates resolved) on `[from, to]`, asking `analyzer` at each check.
pub async fn run(
    rollout: &Rollout,
    analyzer: Arc<dyn Analyzer>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Backtest, String> {
    if to <= from {
        return Err(format!("--to ({to}) must be after --from ({from})"));
    }
    let plan = RolloutPlan::try_from(&rollout.spec).map_err(|e| e.to_string())?;
    let sim = Sim::default();
    {
        let mut w = sim.lock();
        w.revision = "stable".into();
        w.stable = "stable".into();
    }
    let ex = Executors {
        router: Arc::new(sim.clone()),
        workloads: Arc::new(sim.clone()),
        analyzer,
        webhooks: Arc::new(sim.clone()),
        recorder: Arc::new(sim.clone()),
    };
    // Before the window: the stable version runs alone.
    let before = from - Duration::seconds(1);
    sim.lock().now = Some(before);
    let first = exec::tick(&ex, rollout, &plan, &RolloutStatus::default(), None, before).await;
    // Nothing to persist here: the outbox (events into the replay's history) leaves at once.
    exec::deliver(&ex, rollout, &first.outbox).await;
    let mut status = first.status;
    {
        let mut w = sim.lock();
        w.revision = "canary".into();
        w.events.clear();
    }
    let mut now = from;
    let mut ticks = 0u32;
    let stop;
    loop {
        sim.lock().now = Some(now);
        let out = exec::tick(&ex, rollout, &plan, &status, None, now).await;
        if let Some(e) = out.error {
            return Err(format!("at {now}: {e}"));
        }
        exec::deliver(&ex, rollout, &out.outbox).await;
        status = out.status;
        ticks += 1;
        if matches!(
            status.phase,
            Phase::Succeeded | Phase::Failed | Phase::Paused
        ) {
            stop = Some(now);
            break;
        }
        // The next moment the engine waits for: a due check, or (promotion, gates) a moment later.
        // Promotion is instant here: its end is seen a second later, not at a check time.
        let next = status
            .next_analysis_at
            .filter(|t| *t > now && status.phase != Phase::Promoting)
            .unwrap_or(now + Duration::seconds(1));
        if next > to || ticks > 100_000 {
            stop = None;
            break;
        }
        now = next;
    }
    let w = sim.lock();
    let mut steps = Vec::new();
    let mut rollbacks = 0;
    for (at, ev, st) in &w.events {
        use sluice_core::engine::EventReason as R;
        let action = match ev.reason {
            R::RolloutStarted => "deploy",
            R::StepStarted => "start",
            R::StepAdvanced => "advance",
            R::Promoting => "promote",
            R::Succeeded => "succeeded",
            R::Paused => "pause",
            R::RolledBack => {
                rollbacks += 1;
                "rollback"
            }
            other => other.as_str(),
        };
        // The analysis of this instant drove the decision, if there was one.
        let checks = match action {
            "advance" | "promote" | "pause" | "rollback" => w
                .reports
                .iter()
                .rev()
                .find(|r| r.at == *at)
                .map(|r| r.checks.clone())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        steps.push(Decision {
            at: *at,
            after_secs: (*at - from).num_seconds(),
            action: action.to_string(),
            phase: st.phase,
            step: st.step_index + 1,
            canary_weight: st.canary_weight,
            message: ev.message.clone(),
            checks,
        });
    }
    let outcome = match (stop, status.phase) {
        (Some(_), Phase::Succeeded) => "promoted",
        (Some(_), Phase::Failed) => "rolled back",
        (Some(_), Phase::Paused) => "paused",
        _ => "undecided",
    };
    let driving = steps
        .iter()
        .rev()
        .find(|d| !d.checks.is_empty())
        .map(|d| {
            let wanted = match status.phase {
                Phase::Failed => Some(Verdict::Fail),
                Phase::Paused => Some(Verdict::Inconclusive),
                _ => None,
            };
            d.checks
                .iter()
                .filter(|c| wanted.is_none_or(|v| c.verdict == v))
                .map(|c| format!("{}: {}", c.metric, c.reason))
                .collect()
        })
        .unwrap_or_default();
    Ok(Backtest {
        rollout: rollout.key(),
        from,
        to,
        summary: Summary {
            outcome: outcome.to_string(),
            phase: status.phase,
            time_to_decision_secs: stop.map(|t| (t - from).num_seconds()),
            rollbacks,
            checks: w.reports.len() as u32,
            driving_checks: driving,
        },
        steps,
    })
}

/// The table `sluice backtest` prints.
pub fn table(b: &Backtest) -> String {
    let mut out = format!(
        "backtest of {} on {} .. {} (deploy at the start)\n",
        b.rollout,
        b.from.to_rfc3339(),
        b.to.to_rfc3339()
    );
    out.push_str("  after     time                  action     step  weight  what\n");
    for d in &b.steps {
        out.push_str(&format!(
            "  {:>6}s  {}  {:<9}  {:>4}  {:>5}%  {}\n",
            d.after_secs,
            d.at.format("%Y-%m-%dT%H:%M:%SZ"),
            d.action,
            d.step,
            d.canary_weight,
            d.message
        ));
        for c in &d.checks {
            out.push_str(&format!(
                "{:>44}{}: {} ({})\n",
                "",
                c.metric,
                c.verdict.as_str(),
                c.reason
            ));
        }
    }
    let s = &b.summary;
    out.push_str(&format!(
        "outcome: {}{}; {} check(s), {} rollback(s)\n",
        s.outcome,
        s.time_to_decision_secs
            .map(|t| format!(" after {t}s"))
            .unwrap_or_default(),
        s.checks,
        s.rollbacks
    ));
    if !s.driving_checks.is_empty() {
        out.push_str(&format!("decided by: {}\n", s.driving_checks.join("; ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_testkit::fakes::FakeAnalyzer;

    fn rollout() -> Rollout {
        sluice_testkit::fakes::rollout(
            r#"apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  upstreams: {stable: "127.0.0.1:9001", canary: "127.0.0.1:9002"}
  service: {port: 8080}
  strategy: {canary: {steps: [20, 50]}}
  analysis:
    interval: 30s
    inconclusiveLimit: 2
    metrics: [{name: success-rate, query: 'sum(up)', thresholds: {min: 99}}]
"#,
        )
    }

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    #[tokio::test]
    async fn a_window_without_data_pauses_and_never_passes() {
        let a = Arc::new(FakeAnalyzer::new(Verdict::Inconclusive));
        let b = run(&rollout(), a, t0(), t0() + Duration::minutes(10))
            .await
            .unwrap();
        assert_eq!(b.summary.outcome, "paused");
        assert_eq!(
            b.summary.time_to_decision_secs,
            Some(60),
            "two inconclusive checks"
        );
        assert!(
            b.steps.iter().all(|d| d.action != "advance"),
            "{:?}",
            b.steps
        );
    }

    #[tokio::test]
    async fn passing_checks_promote_at_the_check_times_and_a_short_window_is_undecided() {
        let a = Arc::new(FakeAnalyzer::new(Verdict::Pass));
        let b = run(&rollout(), a.clone(), t0(), t0() + Duration::minutes(10))
            .await
            .unwrap();
        let at: Vec<(i64, &str)> = b
            .steps
            .iter()
            .map(|d| (d.after_secs, d.action.as_str()))
            .filter(|(_, a)| ["advance", "promote", "succeeded"].contains(a))
            .collect();
        assert_eq!(at, [(30, "advance"), (60, "promote"), (61, "succeeded")]);
        assert_eq!(b.summary.outcome, "promoted");

        let b = run(&rollout(), a, t0(), t0() + Duration::seconds(45))
            .await
            .unwrap();
        assert_eq!(b.summary.outcome, "undecided");
        assert_eq!(b.summary.time_to_decision_secs, None);
        let table = table(&b);
        assert!(table.contains("outcome: undecided;"), "{table}");
        assert!(
            run(
                &rollout(),
                Arc::new(FakeAnalyzer::new(Verdict::Pass)),
                t0(),
                t0()
            )
            .await
            .is_err()
        );
    }
}
