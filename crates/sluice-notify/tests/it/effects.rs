//! The executors' contract (`sluice_core::exec`): effects in a fixed order, a failed workload
//! effect left pending (the decision stands) and retried before the next step, and events
//! leaving only through the outbox, after the caller persisted the status.

use std::sync::Arc;

use chrono::Duration;
use sluice_core::engine::Command;
use sluice_core::exec::{self, EFFECTS_CONDITION};
use sluice_core::spec::{Phase, Rollout, RolloutStatus, Verdict, WorkloadAction};
use sluice_testkit::fakes::*;
use sluice_testkit::plan_of;

fn ratings() -> Rollout {
    rollout(
        r#"
apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata: {name: ratings}
spec:
  upstreams: {stable: "127.0.0.1:1", canary: "127.0.0.1:2"}
  service: {port: 9080}
  strategy: {canary: {steps: [50, 100]}}
  analysis: {interval: 30s, failureLimit: 1}
"#,
    )
}

fn reasons(out: &exec::TickOutcome) -> Vec<String> {
    out.events()
        .map(|(e, _)| e.reason.as_str().to_string())
        .collect()
}

/// A failing analysis at 50% rolls back while the canary scale-down is refused (403): the
/// status still says Failed with all traffic on stable, `RolledBack` is recorded exactly once,
/// the scale-down stays pending and is retried each tick until it goes through.
#[tokio::test]
async fn a_refused_scale_down_does_not_undo_the_rollback() {
    let r = ratings();
    let plan = plan_of(&r);
    let fakes = Fakes::new(Verdict::Pass);
    let ex = fakes.executors(Arc::new(NoWebhooks));
    let mut now = t0();
    // Initialized, then the rollout starts and reaches 50%.
    let mut s = RolloutStatus::default();
    for _ in 0..3 {
        let out = exec::tick(&ex, &r, &plan, &s, None, now).await;
        assert!(
            out.error.is_none(),
            "{:?}",
            out.error.map(|e| e.to_string())
        );
        s = out.status;
    }
    assert_eq!(
        (s.phase, s.canary_weight),
        (Phase::Progressing, 50),
        "{s:?}"
    );

    fakes.analyzer.set(Verdict::Fail);
    fakes.workloads.fail(
        WorkloadAction::ScaleDownCanary,
        Some("deployments.apps \"ratings\" is forbidden (403)"),
    );
    now += Duration::seconds(30);
    let out = exec::tick(&ex, &r, &plan, &s, None, now).await;
    let err = out
        .error
        .as_ref()
        .expect("the failed scale-down is reported");
    assert_eq!(err.action, "scale down canary");
    assert_eq!(out.status.phase, Phase::Failed, "the decision stands");
    assert_eq!(out.status.canary_weight, 0);
    assert_eq!(out.applied.as_ref().map(|p| p.canary_weight()), Some(0));
    assert_eq!(
        fakes.router.weights().last(),
        Some(&0),
        "the data plane moved"
    );
    let pending: Vec<_> = out
        .status
        .pending_effects
        .iter()
        .map(|p| p.action)
        .collect();
    assert_eq!(pending, [WorkloadAction::ScaleDownCanary]);
    assert!(out.status.pending_effects[0].error.contains("403"));
    let cond = out
        .status
        .conditions
        .iter()
        .find(|c| c.kind == EFFECTS_CONDITION)
        .expect("EffectsApplied condition");
    assert_eq!(cond.status, "False");
    assert!(
        cond.message.contains("scale down canary failed"),
        "{cond:?}"
    );
    let first = reasons(&out);
    assert_eq!(
        first.iter().filter(|r| *r == "RolledBack").count(),
        1,
        "{first:?}"
    );
    assert!(first.contains(&"EffectPending".to_string()), "{first:?}");
    s = out.status;

    // Still refused: retried, nothing new decided or announced, the status unchanged.
    for _ in 0..3 {
        now += Duration::seconds(30);
        let out = exec::tick(&ex, &r, &plan, &s, None, now).await;
        assert!(out.error.is_some());
        assert!(reasons(&out).is_empty(), "{:?}", reasons(&out));
        assert_eq!(out.status, s, "a retry that fails again changes nothing");
        s = out.status;
    }
    assert_eq!(fakes.workloads.attempts(WorkloadAction::ScaleDownCanary), 4);

    // The permission is fixed: the scale-down runs, the condition goes, no second RolledBack.
    fakes.workloads.fail(WorkloadAction::ScaleDownCanary, None);
    now += Duration::seconds(30);
    let out = exec::tick(&ex, &r, &plan, &s, None, now).await;
    assert!(out.error.is_none());
    assert!(out.status.pending_effects.is_empty());
    assert!(
        out.status
            .conditions
            .iter()
            .all(|c| c.kind != EFFECTS_CONDITION)
    );
    assert_eq!(out.status.phase, Phase::Failed);
    assert_eq!(reasons(&out), ["EffectCompleted"]);
    assert_eq!(fakes.workloads.attempts(WorkloadAction::ScaleDownCanary), 5);
}

/// Nothing reaches the recorder (history, Kubernetes Events, notifications) before the caller
/// delivers the outbox, i.e. before the status that contains those events was persisted.
#[tokio::test]
async fn events_leave_only_when_delivered() {
    let r = ratings();
    let plan = plan_of(&r);
    let fakes = Fakes::new(Verdict::Pass);
    let ex = fakes.executors(Arc::new(NoWebhooks));
    let out = exec::tick(&ex, &r, &plan, &RolloutStatus::default(), None, t0()).await;
    assert!(
        reasons(&out).contains(&"Initialized".to_string()),
        "{:?}",
        reasons(&out)
    );
    assert!(
        fakes.recorder.reasons().is_empty(),
        "sent before persisting"
    );
    // The caller's store refused the status: it drops the outbox, ticks again from the old
    // status, and only that tick's events (the same decision) are delivered — once.
    let again = exec::tick(&ex, &r, &plan, &RolloutStatus::default(), None, t0()).await;
    assert_eq!(reasons(&again), reasons(&out), "the same decision again");
    exec::deliver(&ex, &r, &again.outbox).await;
    assert_eq!(fakes.recorder.reasons(), reasons(&again));
}

/// An abort is not held up by a scale-up that keeps failing: its scale-down supersedes it.
#[tokio::test]
async fn an_abort_supersedes_a_stuck_scale_up() {
    let r = ratings();
    let plan = plan_of(&r);
    let fakes = Fakes::new(Verdict::Pass);
    let ex = fakes.executors(Arc::new(NoWebhooks));
    fakes
        .workloads
        .fail(WorkloadAction::ScaleUpCanary, Some("quota exceeded"));
    let mut s = RolloutStatus::default();
    let mut stuck = false;
    for _ in 0..3 {
        let out = exec::tick(&ex, &r, &plan, &s, None, t0()).await;
        s = out.status;
        stuck |= s
            .pending_effects
            .iter()
            .any(|p| p.action == WorkloadAction::ScaleUpCanary);
    }
    assert!(stuck, "the scale-up is pending: {s:?}");
    let out = exec::tick(&ex, &r, &plan, &s, Some(Command::Abort), t0()).await;
    assert_eq!(out.status.phase, Phase::Failed, "{:?}", out.status);
    assert!(
        out.status.pending_effects.is_empty(),
        "{:?}",
        out.status.pending_effects
    );
    assert!(fakes.workloads.attempts(WorkloadAction::ScaleDownCanary) >= 1);
}
