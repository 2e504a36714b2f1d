//! Property tests: random specs driven by random sequences of observations, checking the
//! engine's invariants after every single step (see the module docs of `engine` and
//! `docs/engine.md`).
//!
//! A small simulated world plays the executor: it remembers the plan the data plane serves,
//! makes stable run what `PromoteCanary` / `RestoreStable` asked for when the sequence says the
//! promotion finished, and feeds back random analysis reports (any verdict, sometimes stale,
//! sometimes from the future), gate answers (to the gate asked for, or to any gate), commands,
//! readiness flips, new or reverted revisions, and time jumps (seconds to days, so schedule
//! windows open and close).

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;

use super::tests::{
    ab_spec, canary_spec, dark_spec, report, stages, step, step_weight_spec, webhook,
};
// `step` and `stages` from the tests shadow the engine's: they take the spec and run its plan.
use super::*;
use crate::spec::{
    CheckResult, LowTraffic, Metric, MetricMode, Reason, RolloutSpec, Schedule, Verdict,
};

const GATES: [WebhookKind; 4] = [
    WebhookKind::ConfirmRollout,
    WebhookKind::PreRollout,
    WebhookKind::ConfirmTrafficIncrease,
    WebhookKind::ConfirmPromotion,
];

/// Strictly increasing weights in 1..=100.
fn weights() -> impl Strategy<Value = Vec<u32>> {
    proptest::collection::btree_set(1u32..=100, 1..=4).prop_map(|s| s.into_iter().collect())
}

fn strategy_spec() -> impl Strategy<Value = RolloutSpec> {
    prop_oneof![
        weights().prop_map(|w| canary_spec(&w)),
        // Sticky sessions: the cookie route must follow the same invariants (gone on
        // rollback, abort and promotion: every plan that leaves the canary is stable-only).
        weights().prop_map(|w| {
            let mut spec = canary_spec(&w);
            if let Some(c) = spec.strategy.canary.as_mut() {
                c.session_affinity = Some(crate::spec::SessionAffinity {
                    cookie_name: "sluice-canary".into(),
                    max_age: "1h".into(),
                });
            }
            spec
        }),
        (1u32..=50, 1u32..=100).prop_map(|(step, max)| step_weight_spec(step, max.max(step))),
        (
            proptest::option::of(0u32..=100),
            1u32..=3,
            proptest::option::of(weights())
        )
            .prop_map(|(mirror, it, then)| dark_spec(mirror, it, then.as_deref())),
        (1u32..=4).prop_map(ab_spec),
    ]
}

fn schedule() -> impl Strategy<Value = Option<Schedule>> {
    let windows = prop_oneof![
        Just("* 9-16 * * Mon-Fri"),
        // Every other minute: opens and closes all the time.
        Just("*/2 * * * *"),
        Just("0-29 * * * *"),
        Just("* 22-23,0-5 * * *"),
    ];
    let tz = prop_oneof![
        Just(None),
        Just(Some("Europe/Berlin")),
        Just(Some("Asia/Kolkata")),
        Just(Some("America/Los_Angeles")),
    ];
    proptest::option::weighted(
        0.4,
        (windows, tz).prop_map(|(w, tz)| Schedule {
            windows: vec![w.to_string()],
            time_zone: tz.map(String::from),
        }),
    )
}

fn spec() -> impl Strategy<Value = RolloutSpec> {
    (
        strategy_spec(),
        1u32..=3,
        1u32..=3,
        any::<bool>(),
        proptest::sample::subsequence(GATES.to_vec(), 0..=4),
        schedule(),
        proptest::bool::weighted(0.15),
        prop_oneof![Just("10s"), Just("30s"), Just("1m")],
        any::<bool>(),
        prop_oneof![Just("2m"), Just("10m")],
        proptest::sample::subsequence(
            vec![
                crate::spec::DeadlineWait::Gates,
                crate::spec::DeadlineWait::Windows,
            ],
            0..=2,
        ),
    )
        .prop_map(
            |(
                mut spec,
                fl,
                il,
                manual,
                gates,
                schedule,
                skip,
                interval,
                metric,
                deadline,
                covers,
            )| {
                // Derived, not drawn: the random stream (and so the checked-in regression
                // seeds) stays what it was before metric modes existed.
                let modes = (fl + il + u32::from(manual)) % 4;
                spec.progress_deadline.duration = deadline.into();
                spec.progress_deadline.covers = covers;
                if metric {
                    // The reports' checks are named `m`; `modes` makes it critical (1, 3)
                    // and adds a shadow metric `s` (2, 3).
                    spec.analysis.metrics = vec![Metric {
                        name: "m".into(),
                        builtin: Some(crate::spec::BuiltinMetric::RequestSuccessRate),
                        query: None,
                        thresholds: crate::spec::Thresholds {
                            min: Some(99.0),
                            max: None,
                        },
                        min_requests: None,
                        interval: None,
                        compare: None,
                        mode: MetricMode::Enforce,
                        critical: modes % 2 == 1,
                    }];
                    if modes >= 2 {
                        let mut s = spec.analysis.metrics[0].clone();
                        s.name = "s".into();
                        s.mode = MetricMode::Shadow;
                        s.critical = false;
                        spec.analysis.metrics.push(s);
                    }
                    spec.analysis.low_traffic = if modes == 1 {
                        LowTraffic::Wait
                    } else {
                        LowTraffic::Pause
                    };
                }
                spec.analysis.failure_limit = fl;
                spec.analysis.inconclusive_limit = il;
                spec.analysis.interval = interval.into();
                spec.promotion.manual = manual;
                spec.webhooks = gates.into_iter().map(webhook).collect();
                spec.schedule = schedule;
                spec.skip_analysis = skip;
                spec
            },
        )
}

/// One thing that happens in the world before the next engine step.
#[derive(Clone, Debug)]
enum Op {
    /// Time passes (seconds), nothing else.
    Wait(i64),
    /// The analysis the engine asked for (if it did) comes back, `skew` seconds off `now`.
    Analyze(Vec<Verdict>, i64),
    /// A report arrives whether or not it was asked for.
    Report(Vec<Verdict>, i64),
    /// The pending gate answers.
    AnswerGate(bool),
    /// Some gate answers, asked or not.
    Gate(usize, bool),
    Command(Command),
    /// The target declares `v{n}` (v1 is the initial stable).
    Revision(u8),
    CanaryReady(bool),
    StableReady(bool),
    /// The promotion the engine asked for is done (stable runs it).
    PromotionDone,
}

fn verdict() -> impl Strategy<Value = Verdict> {
    prop_oneof![
        6 => Just(Verdict::Pass),
        2 => Just(Verdict::Fail),
        2 => Just(Verdict::Inconclusive),
    ]
}

/// The checks of one report: usually one, sometimes several or none at all.
fn verdicts() -> impl Strategy<Value = Vec<Verdict>> {
    prop_oneof![
        6 => verdict().prop_map(|v| vec![v]),
        2 => proptest::collection::vec(verdict(), 2..=3),
        1 => Just(Vec::new()),
    ]
}

/// A report with one check per verdict.
/// Half the Inconclusive checks are a judge gathering evidence (with `moreRequests`); a spec
/// with a shadow metric gets its check too, failing or undecided now and then.
fn report_of(spec: &RolloutSpec, at: DateTime<Utc>, verdicts: &[Verdict]) -> AnalysisReport {
    let mut r = report(at, Verdict::Pass);
    let one = r.checks.pop().expect("one check");
    let t = at.timestamp().unsigned_abs();
    r.checks = verdicts
        .iter()
        .map(|v| CheckResult {
            verdict: *v,
            more_requests: (*v == Verdict::Inconclusive && t.is_multiple_of(2))
                .then_some(100 + t % 900),
            ..one.clone()
        })
        .collect();
    if spec.analysis.metrics.iter().any(|m| m.name == "s") {
        r.checks.push(CheckResult {
            metric: "s".into(),
            verdict: [Verdict::Fail, Verdict::Inconclusive, Verdict::Pass][(t % 3) as usize],
            ..one
        });
    }
    r
}

/// `obs` with the verdicts of the checks `pick` selects replaced by Pass.
fn passing(obs: &Observations, pick: impl Fn(&CheckResult) -> bool) -> Observations {
    let mut o = obs.clone();
    if let Some(r) = &mut o.analysis {
        for c in r.checks.iter_mut().filter(|c| pick(c)) {
            c.verdict = Verdict::Pass;
            c.more_requests = None;
        }
    }
    o
}

fn is_shadow(spec: &RolloutSpec, c: &CheckResult) -> bool {
    spec.analysis
        .metrics
        .iter()
        .any(|m| m.name == c.metric && m.mode == MetricMode::Shadow)
}

/// Metric modes: a shadow check changes nothing but what is shown (its verdict in
/// `lastVerdicts`, a "would have failed" event); a critical Fail the engine judges rolls back
/// at once, whatever `failureLimit` says.
fn check_modes(
    spec: &RolloutSpec,
    prev: &RolloutStatus,
    obs: &Observations,
    now: DateTime<Utc>,
    s: &RolloutStatus,
    fx: &[Effect],
) -> Result<(), TestCaseError> {
    let Some(report) = &obs.analysis else {
        return Ok(());
    };
    let shadow = |c: &CheckResult| is_shadow(spec, c);
    if report
        .checks
        .iter()
        .any(|c| shadow(c) && c.verdict != Verdict::Pass)
    {
        let (mut s2, fx2) = step(spec, prev, &passing(obs, shadow), now);
        s2.last_verdicts = s.last_verdicts.clone();
        prop_assert_eq!(&s2, s, "a shadow verdict changed the rollout");
        let acting: Vec<&Effect> = fx
            .iter()
            .filter(
                |e| !matches!(e, Effect::Event(ev) if ev.reason == EventReason::ShadowCheckFailed),
            )
            .collect();
        prop_assert_eq!(acting, fx2.iter().collect::<Vec<_>>());
    }
    let critical = |c: &CheckResult| {
        spec.analysis
            .metrics
            .iter()
            .any(|m| m.name == c.metric && m.critical)
    };
    if report
        .checks
        .iter()
        .any(|c| critical(c) && c.verdict == Verdict::Fail)
    {
        let (s2, _) = step(spec, prev, &passing(obs, critical), now);
        // The engine judged this report (its verdicts are what the status shows).
        if s2.last_verdicts != s.last_verdicts {
            prop_assert_eq!(s.phase, Phase::Failed, "critical Fail without rollback");
            prop_assert_eq!(s.reason, Some(Reason::AnalysisFailed));
            prop_assert!(fx.contains(&Effect::ApplyTraffic(TrafficPlan::stable_only())));
        }
    }
    Ok(())
}

/// Whether a report is a pass, decided here and not by the engine's code: every enforcing
/// check passed (shadow checks never count), and there is at least one when the spec declares
/// enforcing metrics.
fn passes(spec: &RolloutSpec, r: &AnalysisReport) -> bool {
    let enforcing: Vec<&CheckResult> = r.checks.iter().filter(|c| !is_shadow(spec, c)).collect();
    enforcing.iter().all(|c| c.verdict == Verdict::Pass)
        && (!enforcing.is_empty()
            || spec
                .analysis
                .metrics
                .iter()
                .all(|m| m.mode == MetricMode::Shadow))
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => prop_oneof![
            6 => 0i64..=90,
            2 => 90i64..=3600,
            1 => 3600i64..=3 * 86400,
        ]
        .prop_map(Op::Wait),
        12 => (verdicts(), prop_oneof![8 => Just(0i64), 1 => -90i64..=0, 1 => 1i64..=60])
            .prop_map(|(v, s)| Op::Analyze(v, s)),
        2 => (verdicts(), -300i64..=300).prop_map(|(v, s)| Op::Report(v, s)),
        5 => prop_oneof![4 => Just(true), 1 => Just(false)].prop_map(Op::AnswerGate),
        1 => (0..GATES.len(), any::<bool>()).prop_map(|(k, p)| Op::Gate(k, p)),
        3 => proptest::sample::select(Command::ALL.to_vec()).prop_map(Op::Command),
        1 => (1u8..=3).prop_map(Op::Revision),
        2 => proptest::bool::weighted(0.7).prop_map(Op::CanaryReady),
        1 => proptest::bool::weighted(0.7).prop_map(Op::StableReady),
        3 => Just(Op::PromotionDone),
    ]
}

struct World {
    now: DateTime<Utc>,
    revision: String,
    stable_running: String,
    canary_ready: bool,
    stable_ready: bool,
    promotion: Option<String>,
    /// What the data plane serves.
    plan: TrafficPlan,
    /// The canary got a request since the current rollout began.
    canary_touched: bool,
    /// A `promote` was accepted since the current rollout began.
    promote_accepted: bool,
}

fn open_at(spec: &RolloutSpec, now: DateTime<Utc>) -> bool {
    crate::schedule::window_open(spec.schedule.as_ref(), now)
}

/// A Pass report the engine must accept as the answer to the analysis it asked for.
fn fresh_pass(
    spec: &RolloutSpec,
    prev: &RolloutStatus,
    obs: &Observations,
    now: DateTime<Utc>,
) -> bool {
    obs.analysis.as_ref().is_some_and(|r| {
        passes(spec, r)
            && prev.step_started_at.is_some_and(|s| r.at >= s)
            && prev.next_analysis_at.is_some_and(|d| r.at >= d)
            && r.at <= now
    })
}

fn is_rejected(e: &Effect) -> bool {
    matches!(e, Effect::Event(ev) if ev.reason == EventReason::CommandRejected)
}

/// Runs one step and checks every invariant against the step before.
fn check_step(
    spec: &RolloutSpec,
    n_stages: usize,
    w: &mut World,
    prev: &RolloutStatus,
    obs: &Observations,
) -> Result<(RolloutStatus, bool), TestCaseError> {
    let now = w.now;
    let (s, fx) = step(spec, prev, obs, now);
    check_modes(spec, prev, obs, now, &s, &fx)?;

    // Plans: at most one per step, structurally valid, never towards an unready canary, and
    // either all-stable or exactly the current stage's traffic (started inside a window).
    let plans: Vec<&TrafficPlan> = fx
        .iter()
        .filter_map(|e| match e {
            Effect::ApplyTraffic(p) => Some(p),
            _ => None,
        })
        .collect();
    prop_assert!(plans.len() <= 1, "several plans in one step: {:?}", fx);
    if let Some(plan) = plans.first() {
        prop_assert!(plan.check().is_ok(), "invalid plan {:?}", plan);
        if plan.sticky_cookie().is_some() {
            prop_assert!(
                plan.canary_weight() > 0,
                "a cookie route without a canary step"
            );
        }
        if plan.touches_canary() {
            prop_assert!(obs.canary_ready, "plan to an unready canary: {:?}", plan);
            let stage = stages(spec);
            let expected = stage[s.step_index as usize]
                .traffic
                .clone()
                .for_revision(s.canary_revision.as_deref().unwrap_or_default());
            prop_assert_eq!(&expected, *plan);
            prop_assert!(open_at(spec, now), "traffic moved outside a window");
        } else {
            prop_assert_eq!(*plan, &TrafficPlan::stable_only());
        }
        w.plan = (*plan).clone();
    }
    if w.plan.touches_canary() {
        w.canary_touched = true;
    }
    // The status describes what the data plane serves.
    prop_assert_eq!(s.canary_weight, w.plan.canary_weight());
    prop_assert_eq!(s.canary_traffic, w.plan.touches_canary());
    // An unready canary loses every request at once, whatever the phase.
    if !obs.canary_ready {
        prop_assert!(
            !w.plan.touches_canary(),
            "unready canary still served: {:?}",
            s
        );
    }
    if s.phase == Phase::Failed {
        prop_assert_eq!(&w.plan, &TrafficPlan::stable_only());
        prop_assert_eq!(s.canary_weight, 0);
    }
    // Entering Failed is announced exactly once (`RolledBack`, or `Undone` for undo); staying
    // in it is not announced again.
    let announced = fx
        .iter()
        .filter(|e| matches!(e, Effect::Event(ev) if ev.reason == EventReason::RolledBack || ev.reason == EventReason::Undone))
        .count();
    let entered = s.phase == Phase::Failed && prev.phase != Phase::Failed;
    // The progress deadline fails a rollout only after a wait of at least the deadline.
    if entered && s.reason == Some(Reason::ProgressDeadlineExceeded) {
        let deadline = crate::duration::parse(&spec.progress_deadline.duration).expect("valid");
        let since = prev.waiting_since.unwrap_or(now);
        prop_assert!(
            (now - since).to_std().unwrap_or_default() >= deadline,
            "failed after waiting {:?}",
            now - since
        );
    }
    // (A step may pass through Failed and leave it at once — abort, then a new revision — so
    // an announcement without ending in Failed is allowed; two never are.)
    prop_assert!(announced <= 1, "announced twice: {:?}", fx);
    prop_assert!(
        !entered || announced == 1,
        "entered Failed silently: {:?}",
        fx
    );
    if s.phase == Phase::Failed
        && s.reason == Some(Reason::PreRolloutFailed)
        && prev.phase != Phase::Failed
    {
        prop_assert!(!w.canary_touched, "pre-rollout failed after canary traffic");
    }

    // Steps: within the stages, at most one forward per step, and only on a fresh pass (or
    // skipAnalysis's timer) inside a window, or on an accepted promote.
    prop_assert!(
        (s.step_index as usize) < n_stages,
        "step {} of {n_stages}",
        s.step_index
    );
    let promoted =
        obs.command == Some(Command::Promote) && command_allowed(prev, Command::Promote).is_ok();
    let same_rollout = s.canary_revision == prev.canary_revision;
    if same_rollout && s.step_index > prev.step_index {
        prop_assert_eq!(s.step_index, prev.step_index + 1);
        let skip_tick = spec.skip_analysis && prev.next_analysis_at.is_some_and(|d| now >= d);
        prop_assert!(
            promoted || ((fresh_pass(spec, prev, obs, now) || skip_tick) && open_at(spec, now)),
            "advanced without a fresh pass in a window: {:?} -> {:?} with {:?}",
            prev,
            s,
            obs
        );
    }
    if same_rollout && s.step_index == prev.step_index && s.passed_checks > prev.passed_checks {
        let skip_tick = spec.skip_analysis && prev.next_analysis_at.is_some_and(|d| now >= d);
        prop_assert!(
            promoted || fresh_pass(spec, prev, obs, now) || skip_tick,
            "passed_checks grew without a pass: {:?}",
            obs.analysis
        );
    }
    // A new rollout (new revision, or retry) starts from the first stage, with nothing passed.
    let restarted = s.phase == Phase::Progressing
        && s.canary_revision.is_some()
        && (!same_rollout || prev.phase == Phase::Failed);
    if restarted {
        prop_assert_eq!((s.step_index, s.passed_checks), (0, 0));
    }
    if let Some(stage) = stages(spec).get(s.step_index as usize) {
        prop_assert!(s.passed_checks <= stage.checks);
    }
    if s.reason == Some(Reason::AwaitingPromotion) {
        prop_assert!(spec.promotion.manual);
    }
    // Promotion: with `promotion.manual` only after a person's promote; otherwise on a fresh
    // pass inside a window, or on the "yes" of the confirm-promotion webhook it waited for.
    if promoted {
        w.promote_accepted = true;
    }
    if s.phase == Phase::Promoting && prev.phase != Phase::Promoting {
        let skip_tick = spec.skip_analysis && prev.next_analysis_at.is_some_and(|d| now >= d);
        let gate_yes = prev
            .pending_gate
            .as_ref()
            .is_some_and(|g| g.kind == WebhookKind::ConfirmPromotion)
            && obs
                .webhooks
                .iter()
                .any(|a| a.kind == WebhookKind::ConfirmPromotion && a.passed)
            // ...and the stage it decided on still stands (no restart since).
            && stages(spec)
                .get(prev.step_index as usize)
                .is_some_and(|st| prev.passed_checks >= st.checks);
        prop_assert!(
            promoted
                || gate_yes
                || ((fresh_pass(spec, prev, obs, now) || skip_tick) && open_at(spec, now)),
            "promoted without a reason: {:?} with {:?}",
            prev,
            obs
        );
        if spec.promotion.manual {
            prop_assert!(w.promote_accepted, "manual promotion without promote");
        }
    }
    // Paused means held: no analysis, no step changes, unless a command or a new revision.
    if prev.phase == Phase::Paused && s.phase == Phase::Paused && obs.command.is_none() {
        prop_assert!(!fx.contains(&Effect::RunAnalysis));
        if same_rollout {
            prop_assert_eq!(s.step_index, prev.step_index);
            prop_assert!(s.passed_checks <= prev.passed_checks);
        }
    }
    // Gates are asked for at most once per step.
    for kind in GATES {
        let asks = fx
            .iter()
            .filter(|e| **e == Effect::CallWebhooks(kind))
            .count();
        prop_assert!(asks <= 1, "{kind:?} asked {asks} times");
    }

    // Commands: a rejected one adds exactly a CommandRejected event to what the same step
    // without it does; an accepted one never produces that event.
    if let Some(cmd) = obs.command {
        let allowed = prev.stable_revision.is_some() && command_allowed(prev, cmd).is_ok();
        if allowed {
            prop_assert!(!fx.iter().any(is_rejected));
        } else {
            let mut quiet = obs.clone();
            quiet.command = None;
            let (qs, qfx) = step(spec, prev, &quiet, now);
            prop_assert_eq!(&s, &qs);
            prop_assert!(fx.first().is_some_and(is_rejected), "{:?}", fx);
            prop_assert_eq!(&fx[1..], &qfx[..]);
        }
    }

    // The executor's part.
    for e in &fx {
        match e {
            Effect::PromoteCanary { revision } => w.promotion = Some(revision.clone()),
            Effect::RestoreStable { revision } => {
                w.promotion = None;
                w.stable_running = revision.clone();
            }
            _ => {}
        }
    }
    if s.canary_revision != prev.canary_revision
        || (s.phase == Phase::Progressing
            && matches!(prev.phase, Phase::Failed | Phase::Idle | Phase::Succeeded))
    {
        w.canary_touched = w.plan.touches_canary();
        w.promote_accepted = false;
    }
    let asked_analysis = fx.contains(&Effect::RunAnalysis);
    Ok((s, asked_analysis))
}

fn run_ops(spec: &RolloutSpec, start: i64, ops: &[Op]) -> Result<(), TestCaseError> {
    let n_stages = stages(spec).len();
    prop_assert!(n_stages > 0);
    let mut w = World {
        now: Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap() + Duration::seconds(start),
        revision: "v1".into(),
        stable_running: "v1".into(),
        canary_ready: true,
        stable_ready: true,
        promotion: None,
        plan: TrafficPlan::stable_only(),
        canary_touched: false,
        promote_accepted: false,
    };
    let mut status = RolloutStatus::default();
    let mut asked_analysis = false;
    // The rollout starts from v1 and the target moves to v2 right away.
    for op in std::iter::once(Op::Revision(2)).chain(ops.iter().cloned()) {
        let mut obs = Observations::default();
        match op {
            Op::Wait(secs) => w.now += Duration::seconds(secs),
            Op::Analyze(v, skew) => {
                if let Some(due) = status.next_analysis_at
                    && due > w.now
                {
                    w.now = due;
                }
                if asked_analysis {
                    obs.analysis = Some(report_of(spec, w.now + Duration::seconds(skew), &v));
                }
            }
            Op::Report(v, skew) => {
                obs.analysis = Some(report_of(spec, w.now + Duration::seconds(skew), &v))
            }
            Op::AnswerGate(passed) => {
                if let Some(g) = &status.pending_gate {
                    obs.webhooks.push(GateAnswer {
                        kind: g.kind,
                        passed,
                        message: "answer".into(),
                    });
                }
            }
            Op::Gate(k, passed) => obs.webhooks.push(GateAnswer {
                kind: GATES[k],
                passed,
                message: "answer".into(),
            }),
            Op::Command(c) => obs.command = Some(c),
            Op::Revision(n) => w.revision = format!("v{n}"),
            Op::CanaryReady(r) => w.canary_ready = r,
            Op::StableReady(r) => w.stable_ready = r,
            Op::PromotionDone => {
                if let Some(rev) = w.promotion.take() {
                    w.stable_running = rev;
                }
            }
        }
        obs.revision = Some(w.revision.clone());
        obs.stable_running = Some(w.stable_running.clone());
        obs.canary_ready = w.canary_ready;
        obs.stable_ready = w.stable_ready;
        let prev = status.clone();
        // `Analyze` answers only when the engine asked for analysis.
        (status, asked_analysis) = check_step(spec, n_stages, &mut w, &prev, &obs)?;
        // Serialising the status and reading it back changes nothing (it is persisted).
        let json =
            serde_json::to_string(&status).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back: RolloutStatus =
            serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&back, &status);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn invariants_hold_for_every_reachable_state(
        spec in spec(),
        start in 0i64..7 * 86400,
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        run_ops(&spec, start, &ops)?;
    }
}

/// The generators reach the interesting places (otherwise the properties prove little):
/// over many random runs, every phase and every reason shows up.
#[test]
fn random_runs_reach_every_phase() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    use std::collections::HashSet;

    let mut runner = TestRunner::deterministic();
    let mut phases = HashSet::new();
    let mut reasons = HashSet::new();
    for _ in 0..300 {
        let spec = spec().new_tree(&mut runner).unwrap().current();
        let ops = proptest::collection::vec(op(), 40..80)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let mut status = RolloutStatus::default();
        let mut w_rev = "v2".to_string();
        let mut stable = "v1".to_string();
        let mut promo = None;
        let mut ready = true;
        let mut now = Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap();
        for op in ops {
            let mut obs = Observations::default();
            match op {
                Op::Wait(s) => now += Duration::seconds(s),
                Op::Analyze(v, _) | Op::Report(v, _) => {
                    if let Some(d) = status.next_analysis_at
                        && d > now
                    {
                        now = d;
                    }
                    obs.analysis = Some(report_of(&spec, now, &v));
                }
                Op::AnswerGate(p) => {
                    if let Some(g) = &status.pending_gate {
                        obs.webhooks.push(GateAnswer {
                            kind: g.kind,
                            passed: p,
                            message: String::new(),
                        });
                    }
                }
                Op::Command(c) => obs.command = Some(c),
                Op::Revision(n) => w_rev = format!("v{n}"),
                Op::CanaryReady(r) => ready = r,
                Op::PromotionDone => {
                    if let Some(r) = promo.take() {
                        stable = r;
                    }
                }
                Op::Gate(..) | Op::StableReady(_) => {}
            }
            obs.revision = Some(w_rev.clone());
            obs.stable_running = Some(stable.clone());
            obs.canary_ready = ready;
            obs.stable_ready = true;
            let (s, fx) = step(&spec, &status, &obs, now);
            for e in fx {
                if let Effect::PromoteCanary { revision } = e {
                    promo = Some(revision);
                }
            }
            phases.insert(s.phase);
            reasons.insert(s.reason);
            status = s;
        }
    }
    for p in [
        Phase::Idle,
        Phase::Progressing,
        Phase::Paused,
        Phase::Promoting,
        Phase::Succeeded,
        Phase::Failed,
    ] {
        assert!(phases.contains(&p), "never reached {p}");
    }
    for r in [
        Reason::PausedByUser,
        Reason::Inconclusive,
        Reason::AwaitingPromotion,
        Reason::AwaitingWebhook,
        Reason::OutsideWindow,
        Reason::WaitingForReady,
        Reason::AnalysisFailed,
        Reason::PreRolloutFailed,
        Reason::Aborted,
        Reason::Undone,
    ] {
        assert!(reasons.contains(&Some(r)), "never reached {r:?}");
    }
}
