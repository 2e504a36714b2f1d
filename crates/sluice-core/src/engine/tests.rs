//! Engine flow tests (table style). Property tests of the invariants live in `props.rs`.
//!
//! Most tests drive a [`Sim`]: a rollout whose stable runs `v1`, with the target at `v2`, and
//! helpers that play the executor's part (run the analysis when asked, answer gates, send
//! commands, move the clock).

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::*;
use crate::spec::*;

// ------------------------------------------------------------------------------ fixtures

/// The tests write specs (the form users write); the engine runs their plan. A test spec that
/// does not parse is a broken test, so this panics with every problem.
pub(crate) fn plan_of(spec: &RolloutSpec) -> RolloutPlan {
    RolloutPlan::try_from(spec).unwrap_or_else(|e| panic!("test spec is invalid: {e:?}"))
}

/// [`super::step`] on the plan of `spec`.
pub(crate) fn step(
    spec: &RolloutSpec,
    status: &RolloutStatus,
    obs: &Observations,
    now: DateTime<Utc>,
) -> (RolloutStatus, Vec<Effect>) {
    super::step(&plan_of(spec), status, obs, now)
}

/// The stages of `spec`'s plan.
pub(crate) fn stages(spec: &RolloutSpec) -> Vec<Stage> {
    plan_of(spec).stages
}

pub(crate) fn canary_spec(steps: &[u32]) -> RolloutSpec {
    RolloutSpec {
        target_ref: None,
        upstreams: Some(Upstreams {
            stable: "127.0.0.1:1".into(),
            canary: "127.0.0.1:2".into(),
            stable_revision: None,
        }),
        revision: None,
        service: ServiceSpec {
            port: 9080,
            ..Default::default()
        },
        routing: Default::default(),
        strategy: Strategy {
            canary: Some(CanaryStrategy {
                steps: Some(steps.to_vec()),
                ..Default::default()
            }),
            ..Default::default()
        },
        analysis: Analysis {
            interval: "30s".into(),
            ..Default::default()
        },
        schedule: None,
        promotion: Promotion::default(),
        progress_deadline: Default::default(),
        webhooks: vec![],
        skip_analysis: false,
        notifications: vec![],
    }
}

pub(crate) fn step_weight_spec(step: u32, max: u32) -> RolloutSpec {
    let mut spec = canary_spec(&[]);
    spec.strategy.canary = Some(CanaryStrategy {
        steps: None,
        step_weight: Some(step),
        max_weight: Some(max),
        session_affinity: None,
    });
    spec
}

pub(crate) fn beta_match() -> HttpMatch {
    HttpMatch {
        headers: [(
            "x-user".to_string(),
            StringMatch {
                exact: Some("beta".into()),
                ..Default::default()
            },
        )]
        .into(),
    }
}

pub(crate) fn dark_spec(mirror: Option<u32>, iterations: u32, then: Option<&[u32]>) -> RolloutSpec {
    let mut spec = canary_spec(&[]);
    spec.strategy = Strategy {
        dark_launch: Some(DarkLaunchStrategy {
            matches: vec![beta_match()],
            mirror_percent: mirror,
            iterations,
            then_canary: then.map(|s| CanaryStrategy {
                steps: Some(s.to_vec()),
                ..Default::default()
            }),
        }),
        ..Default::default()
    };
    spec
}

pub(crate) fn ab_spec(iterations: u32) -> RolloutSpec {
    let mut spec = canary_spec(&[]);
    spec.strategy = Strategy {
        ab_test: Some(AbTestStrategy {
            matches: vec![beta_match()],
            iterations,
        }),
        ..Default::default()
    };
    spec
}

pub(crate) fn webhook(kind: WebhookKind) -> Webhook {
    Webhook {
        name: kind.as_str().into(),
        kind,
        url: "http://127.0.0.1:1/hook".into(),
        timeout: None,
        metadata: Default::default(),
        token_from_env: None,
        token_from_file: None,
    }
}

fn with_hooks(mut spec: RolloutSpec, kinds: &[WebhookKind]) -> RolloutSpec {
    spec.webhooks = kinds.iter().map(|k| webhook(*k)).collect();
    spec
}

fn with_schedule(mut spec: RolloutSpec, windows: &[&str], tz: Option<&str>) -> RolloutSpec {
    spec.schedule = Some(Schedule {
        windows: windows.iter().map(|w| w.to_string()).collect(),
        time_zone: tz.map(String::from),
    });
    spec
}

/// Wednesday 2026-11-25 10:00 UTC.
pub(crate) fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap()
}

pub(crate) fn report(at: DateTime<Utc>, v: Verdict) -> AnalysisReport {
    AnalysisReport {
        at,
        checks: vec![CheckResult {
            metric: "m".into(),
            verdict: v,
            value: Some(1.0),
            min: None,
            max: None,
            reason: "test".into(),
            at,
            more_requests: None,
        }],
    }
}

fn obs(rev: &str, stable: &str) -> Observations {
    Observations {
        revision: Some(rev.into()),
        stable_running: Some(stable.into()),
        stable_ready: true,
        canary_ready: true,
        ..Default::default()
    }
}

fn applied(effects: &[Effect]) -> Option<&TrafficPlan> {
    effects.iter().find_map(|e| match e {
        Effect::ApplyTraffic(p) => Some(p),
        _ => None,
    })
}

// ------------------------------------------------------------------------------ simulator

/// One rollout and the world around it, stepped by hand.
struct Sim {
    spec: RolloutSpec,
    s: RolloutStatus,
    now: DateTime<Utc>,
    /// What the target declares.
    rev: String,
    /// What stable runs.
    stable: String,
    canary_ready: bool,
    stable_ready: bool,
    /// Effects of the last step.
    fx: Vec<Effect>,
    /// The plan the data plane serves (last applied).
    plan: Option<TrafficPlan>,
}

impl Sim {
    /// Initialized with v1 stable, then the target moves to v2 (one step, at `t0`).
    fn new(spec: RolloutSpec) -> Sim {
        let mut sim = Sim {
            spec,
            s: RolloutStatus::default(),
            now: t0(),
            rev: "v1".into(),
            stable: "v1".into(),
            canary_ready: true,
            stable_ready: true,
            fx: vec![],
            plan: None,
        };
        sim.tick();
        assert_eq!(sim.s.phase, Phase::Idle);
        assert_eq!(sim.plan, Some(TrafficPlan::stable_only()));
        sim.rev = "v2".into();
        sim
    }

    fn obs(&self) -> Observations {
        Observations {
            revision: Some(self.rev.clone()),
            stable_running: Some(self.stable.clone()),
            stable_ready: self.stable_ready,
            canary_ready: self.canary_ready,
            ..Default::default()
        }
    }

    fn run(&mut self, o: Observations) -> &mut Self {
        let (s, fx) = step(&self.spec, &self.s, &o, self.now);
        let plans = fx
            .iter()
            .filter(|e| matches!(e, Effect::ApplyTraffic(_)))
            .count();
        assert!(plans <= 1, "more than one plan in one step: {fx:?}");
        if let Some(p) = applied(&fx) {
            p.check().expect("plan must be valid");
            assert!(
                o.canary_ready || !p.touches_canary(),
                "canary not ready but plan touches it: {p:?}"
            );
            assert_eq!(s.canary_weight, p.canary_weight());
            self.plan = Some(p.clone());
        }
        if s.phase == Phase::Failed {
            assert_eq!(self.plan, Some(TrafficPlan::stable_only()));
            assert_eq!(s.canary_weight, 0);
        }
        // The executor's part: promotion rewrites stable.
        for e in &fx {
            match e {
                Effect::PromoteCanary { revision } | Effect::RestoreStable { revision } => {
                    self.stable = revision.clone()
                }
                _ => {}
            }
        }
        self.s = s;
        self.fx = fx;
        self
    }

    fn tick(&mut self) -> &mut Self {
        let o = self.obs();
        self.run(o)
    }

    fn wait(&mut self, secs: i64) -> &mut Self {
        self.now += Duration::seconds(secs);
        self.tick()
    }

    /// Moves to when the analysis is due, lets the engine ask for it, answers `v`.
    fn verdict(&mut self, v: Verdict) -> &mut Self {
        if let Some(due) = self.s.next_analysis_at
            && due > self.now
        {
            self.now = due;
        }
        self.tick();
        assert!(
            self.fx.contains(&Effect::RunAnalysis),
            "analysis was not asked for: {:?} / {:?}",
            self.s,
            self.fx
        );
        let mut o = self.obs();
        o.analysis = Some(report(self.now, v));
        self.run(o)
    }

    fn pass(&mut self) -> &mut Self {
        self.verdict(Verdict::Pass)
    }

    fn cmd(&mut self, c: Command) -> &mut Self {
        let mut o = self.obs();
        o.command = Some(c);
        self.run(o)
    }

    fn gate(&mut self, kind: WebhookKind, passed: bool) -> &mut Self {
        let mut o = self.obs();
        o.webhooks.push(GateAnswer {
            kind,
            passed,
            message: if passed { "ok" } else { "nope" }.into(),
        });
        self.run(o)
    }

    fn has(&self, e: &Effect) -> bool {
        self.fx.contains(e)
    }

    fn count(&self, e: &Effect) -> usize {
        self.fx.iter().filter(|x| *x == e).count()
    }

    fn events(&self) -> Vec<&str> {
        self.fx
            .iter()
            .filter_map(|e| match e {
                Effect::Event(ev) => Some(ev.reason.as_str()),
                _ => None,
            })
            .collect()
    }

    fn weight(&self) -> u32 {
        self.plan.as_ref().map_or(0, |p| p.canary_weight())
    }

    fn canary_live(&self) -> bool {
        self.plan.as_ref().is_some_and(|p| p.touches_canary())
    }

    fn phase(&self) -> (Phase, Option<Reason>) {
        (self.s.phase, self.s.reason)
    }
}

// ------------------------------------------------------------------------------ strategies

#[test]
fn canary_walks_steps_and_promotes() {
    let spec = canary_spec(&[10, 50]);
    let mut now = t0();
    let (s, fx) = step(&spec, &RolloutStatus::default(), &obs("v2", "v1"), now);
    assert_eq!(s.phase, Phase::Progressing);
    assert_eq!(s.stable_revision.as_deref(), Some("v1"));
    assert_eq!(applied(&fx).unwrap().canary_weight(), 10);
    assert!(fx.contains(&Effect::ScaleUpCanary));

    // Not due yet: nothing.
    let (s, fx) = step(&spec, &s, &obs("v2", "v1"), now + Duration::seconds(10));
    assert!(!fx.contains(&Effect::RunAnalysis));
    now += Duration::seconds(30);
    let (s, fx) = step(&spec, &s, &obs("v2", "v1"), now);
    assert!(fx.contains(&Effect::RunAnalysis));
    let mut o = obs("v2", "v1");
    o.analysis = Some(report(now, Verdict::Pass));
    let (s, fx) = step(&spec, &s, &o, now);
    assert_eq!(s.step_index, 1);
    assert_eq!(applied(&fx).unwrap().canary_weight(), 50);

    now += Duration::seconds(30);
    o.analysis = Some(report(now, Verdict::Pass));
    let (s, fx) = step(&spec, &s, &o, now);
    assert_eq!(s.phase, Phase::Promoting);
    assert!(fx.contains(&Effect::PromoteCanary {
        revision: "v2".into()
    }));
    // Traffic stays until stable runs v2.
    assert!(applied(&fx).is_none());

    let (s, fx) = step(&spec, &s, &obs("v2", "v2"), now + Duration::seconds(1));
    assert_eq!(s.phase, Phase::Succeeded);
    assert_eq!(s.stable_revision.as_deref(), Some("v2"));
    assert_eq!(applied(&fx).unwrap(), &TrafficPlan::stable_only());
}

/// Every strategy walks its stages in order, each stage needing its number of passes, then
/// promotes and ends with all traffic on the new stable.
#[test]
fn strategies_walk_their_stages() {
    let m = vec![beta_match()];
    /// (name, spec, each stage's traffic and passes needed)
    type Case = (&'static str, RolloutSpec, Vec<(TrafficPlan, u32)>);
    let cases: Vec<Case> = vec![
        (
            "canary steps",
            canary_spec(&[10, 25, 50]),
            vec![
                (TrafficPlan::weighted(10), 1),
                (TrafficPlan::weighted(25), 1),
                (TrafficPlan::weighted(50), 1),
            ],
        ),
        (
            "canary stepWeight/maxWeight",
            step_weight_spec(20, 60),
            vec![
                (TrafficPlan::weighted(20), 1),
                (TrafficPlan::weighted(40), 1),
                (TrafficPlan::weighted(60), 1),
            ],
        ),
        (
            "dark launch, mirror, then canary",
            dark_spec(Some(20), 2, Some(&[30, 60])),
            vec![
                (TrafficPlan::matched(&m, Some(20)), 2),
                (TrafficPlan::weighted(30), 1),
                (TrafficPlan::weighted(60), 1),
            ],
        ),
        (
            "dark launch without mirror",
            dark_spec(None, 1, None),
            vec![(TrafficPlan::matched(&m, None), 1)],
        ),
        (
            "A/B test",
            ab_spec(3),
            vec![(TrafficPlan::matched(&m, None), 3)],
        ),
    ];
    for (name, spec, expected) in cases {
        assert_eq!(
            stages(&spec)
                .iter()
                .map(|s| (s.traffic.clone(), s.checks))
                .collect::<Vec<_>>(),
            expected,
            "{name}: stages"
        );
        let mut sim = Sim::new(spec);
        sim.tick();
        for (i, (plan, checks)) in expected.iter().enumerate() {
            assert_eq!(sim.s.phase, Phase::Progressing, "{name}: stage {i}");
            assert_eq!(sim.s.step_index as usize, i, "{name}: stage {i}");
            assert_eq!(sim.plan.as_ref(), Some(plan), "{name}: stage {i} traffic");
            for n in 1..*checks {
                sim.pass();
                assert_eq!(sim.s.step_index as usize, i, "{name}: stage {i} pass {n}");
                assert_eq!(sim.s.passed_checks, n, "{name}: stage {i} pass {n}");
            }
            sim.pass();
        }
        assert_eq!(sim.s.phase, Phase::Promoting, "{name}");
        assert!(sim.has(&Effect::PromoteCanary {
            revision: "v2".into()
        }));
        // The last stage's traffic holds while stable is rewritten.
        assert_eq!(
            sim.plan.as_ref(),
            Some(&expected.last().unwrap().0),
            "{name}"
        );
        sim.wait(1);
        assert_eq!(sim.phase(), (Phase::Succeeded, None), "{name}");
        assert_eq!(sim.plan, Some(TrafficPlan::stable_only()), "{name}");
        assert_eq!(sim.s.stable_revision.as_deref(), Some("v2"));
        assert_eq!(sim.s.previous_stable_revision.as_deref(), Some("v1"));
        assert!(sim.has(&Effect::ScaleDownCanary));
        assert!(sim.has(&Effect::CallWebhooks(WebhookKind::PostRollout)));
    }
}

#[test]
fn skip_analysis_advances_every_interval_without_asking() {
    let mut spec = canary_spec(&[10, 50]);
    spec.skip_analysis = true;
    let mut sim = Sim::new(spec);
    sim.tick();
    assert_eq!(sim.weight(), 10);
    sim.wait(29);
    assert_eq!(sim.s.step_index, 0);
    sim.wait(1);
    assert!(!sim.has(&Effect::RunAnalysis));
    assert_eq!(sim.s.step_index, 1);
    assert_eq!(sim.weight(), 50);
    sim.wait(30);
    assert_eq!(sim.s.phase, Phase::Promoting);
}

// ------------------------------------------------------------------------------ analysis

#[test]
fn failures_roll_back_and_inconclusive_pauses() {
    let mut spec = canary_spec(&[10, 50]);
    spec.analysis.failure_limit = 2;
    spec.analysis.inconclusive_limit = 2;
    let now = t0();
    let (s0, _) = step(&spec, &RolloutStatus::default(), &obs("v2", "v1"), now);

    let mut o = obs("v2", "v1");
    let t1 = now + Duration::seconds(30);
    o.analysis = Some(report(t1, Verdict::Fail));
    let (s, _) = step(&spec, &s0, &o, t1);
    assert_eq!(s.phase, Phase::Progressing);
    let t2 = t1 + Duration::seconds(30);
    o.analysis = Some(report(t2, Verdict::Fail));
    let (s, fx) = step(&spec, &s, &o, t2);
    assert_eq!(s.phase, Phase::Failed);
    assert_eq!(s.reason, Some(Reason::AnalysisFailed));
    assert_eq!(applied(&fx).unwrap(), &TrafficPlan::stable_only());
    assert!(fx.contains(&Effect::CallWebhooks(WebhookKind::Rollback)));
    // The same revision does not restart by itself.
    let (s, _) = step(&spec, &s, &obs("v2", "v1"), t2 + Duration::minutes(5));
    assert_eq!(s.phase, Phase::Failed);

    o.analysis = Some(report(t1, Verdict::Inconclusive));
    let (s, _) = step(&spec, &s0, &o, t1);
    o.analysis = Some(report(t2, Verdict::Inconclusive));
    let (s, _) = step(&spec, &s, &o, t2);
    assert_eq!(s.phase, Phase::Paused);
    assert_eq!(s.reason, Some(Reason::Inconclusive));
    assert_eq!(s.step_index, 0);
}

/// `failureLimit` / `inconclusiveLimit`: a table of verdict sequences and where they end.
#[test]
fn limits() {
    use Verdict::*;
    type Case = (u32, u32, &'static [Verdict], Phase, Option<Reason>, u32);
    let cases: &[Case] = &[
        // (failureLimit, inconclusiveLimit, verdicts, phase, reason, step_index)
        (
            1,
            3,
            &[Fail],
            Phase::Failed,
            Some(Reason::AnalysisFailed),
            0,
        ),
        (2, 3, &[Fail], Phase::Progressing, None, 0),
        (2, 3, &[Fail, Pass], Phase::Progressing, None, 1),
        (2, 3, &[Fail, Pass, Fail], Phase::Progressing, None, 1),
        (
            2,
            3,
            &[Fail, Fail],
            Phase::Failed,
            Some(Reason::AnalysisFailed),
            0,
        ),
        // Inconclusive is not a pass: it does not reset the failure count.
        (
            2,
            3,
            &[Fail, Inconclusive, Fail],
            Phase::Failed,
            Some(Reason::AnalysisFailed),
            0,
        ),
        (
            2,
            3,
            &[Inconclusive, Inconclusive],
            Phase::Progressing,
            None,
            0,
        ),
        (
            2,
            3,
            &[Inconclusive, Inconclusive, Inconclusive],
            Phase::Paused,
            Some(Reason::Inconclusive),
            0,
        ),
        (
            2,
            1,
            &[Inconclusive],
            Phase::Paused,
            Some(Reason::Inconclusive),
            0,
        ),
        // A failure resets the inconclusive count (and vice versa a pass resets both).
        (
            5,
            2,
            &[Inconclusive, Fail, Inconclusive],
            Phase::Progressing,
            None,
            0,
        ),
        (
            5,
            2,
            &[Inconclusive, Pass, Inconclusive],
            Phase::Progressing,
            None,
            1,
        ),
    ];
    for (i, (fl, il, verdicts, phase, reason, step_index)) in cases.iter().enumerate() {
        let mut spec = canary_spec(&[10, 50]);
        spec.analysis.failure_limit = *fl;
        spec.analysis.inconclusive_limit = *il;
        let mut sim = Sim::new(spec);
        sim.tick();
        for v in *verdicts {
            sim.verdict(*v);
        }
        assert_eq!(sim.s.phase, *phase, "case {i}: {verdicts:?}");
        assert_eq!(sim.s.reason, *reason, "case {i}: {verdicts:?}");
        assert_eq!(sim.s.step_index, *step_index, "case {i}: {verdicts:?}");
        // Inconclusive never counts as a pass.
        let passes = verdicts.iter().filter(|v| **v == Pass).count() as u32;
        assert!(sim.s.step_index <= passes, "case {i}");
    }
}

/// Limits of 0 and unreadable schedules or intervals never reach the engine: the spec does not
/// become a plan, and the error names every field (no silent "0 means 1", no fallback interval).
#[test]
fn specs_the_engine_cannot_run_do_not_become_plans() {
    let mut spec = canary_spec(&[10, 50]);
    spec.analysis.failure_limit = 0;
    spec.analysis.inconclusive_limit = 0;
    spec.analysis.interval = "soon".into();
    spec.schedule = Some(Schedule {
        windows: vec!["not a cron".into()],
        time_zone: None,
    });
    let err = RolloutPlan::try_from(&spec).unwrap_err();
    let paths: Vec<&str> = err.0.iter().map(|p| p.path.as_str()).collect();
    for want in [
        "spec.analysis.failureLimit",
        "spec.analysis.inconclusiveLimit",
        "spec.analysis.interval",
        "spec.schedule.windows[0]",
    ] {
        assert!(paths.contains(&want), "{want} missing from {paths:?}");
    }
    // Each problem once, however many layers noticed it.
    let mut unique = err.0.clone();
    unique.dedup();
    assert_eq!(unique.len(), err.0.len(), "{:?}", err.0);
}

#[test]
fn an_empty_or_stale_report_never_passes() {
    let mut sim = Sim::new(canary_spec(&[10, 50]));
    sim.tick();
    let started = sim.s.step_started_at.unwrap();
    // A report from before the step started (e.g. the previous stage's) is ignored.
    sim.now = started + Duration::seconds(30);
    let mut o = sim.obs();
    o.analysis = Some(report(started - Duration::seconds(1), Verdict::Pass));
    sim.run(o);
    assert_eq!((sim.s.step_index, sim.s.passed_checks), (0, 0));
    // A report taken before the analysis was due is ignored.
    let mut o = sim.obs();
    o.analysis = Some(report(started + Duration::seconds(10), Verdict::Pass));
    sim.run(o);
    assert_eq!((sim.s.step_index, sim.s.passed_checks), (0, 0));
    // A report with a failing check among passing ones fails.
    let mut r = report(sim.now, Verdict::Pass);
    r.checks.push(CheckResult {
        verdict: Verdict::Inconclusive,
        ..r.checks[0].clone()
    });
    assert_eq!(r.verdict(), Verdict::Inconclusive);
    let mut o = sim.obs();
    o.analysis = Some(r.clone());
    sim.run(o);
    assert_eq!((sim.s.step_index, sim.s.passed_checks), (0, 0));
    assert_eq!(sim.s.consecutive_inconclusive, 1);
    // The same report delivered twice counts once.
    let mut o = sim.obs();
    o.analysis = Some(r);
    sim.run(o);
    assert_eq!(sim.s.consecutive_inconclusive, 1);
    r = report(sim.now, Verdict::Fail);
    r.checks.push(CheckResult {
        verdict: Verdict::Pass,
        ..r.checks[0].clone()
    });
    assert_eq!(r.verdict(), Verdict::Fail);
}

/// An empty report (no check results at all) is decided on purpose: for a rollout that declares
/// metrics it is no evidence and never passes; for one that declares none, it is what every
/// report looks like, and the step passes after its interval (`sluice validate` warns).
#[test]
fn an_empty_report_passes_only_when_no_checks_are_declared() {
    let empty = |at| AnalysisReport { at, checks: vec![] };
    let mut spec = canary_spec(&[10, 50]);
    spec.analysis.metrics = vec![Metric {
        name: "success-rate".into(),
        builtin: Some(BuiltinMetric::RequestSuccessRate),
        query: None,
        thresholds: Thresholds {
            min: Some(99.0),
            max: None,
        },
        min_requests: None,
        interval: None,
        compare: None,
        ..Default::default()
    }];
    let mut sim = Sim::new(spec);
    sim.tick();
    sim.now += Duration::seconds(30);
    let mut o = sim.obs();
    o.analysis = Some(empty(sim.now));
    sim.run(o);
    assert_eq!((sim.s.step_index, sim.s.passed_checks), (0, 0));
    assert_eq!(sim.s.consecutive_inconclusive, 1);

    let mut sim = Sim::new(canary_spec(&[10, 50]));
    sim.tick();
    sim.now += Duration::seconds(30);
    let mut o = sim.obs();
    o.analysis = Some(empty(sim.now));
    sim.run(o);
    assert_eq!(
        sim.s.step_index, 1,
        "no metrics declared: the empty report passes"
    );
}

/// Regression: a report stamped in the future (clock skew, a bug in an executor) used to be
/// judged and to push the next analysis into the future.
#[test]
fn regression_future_report_is_ignored() {
    let mut sim = Sim::new(canary_spec(&[10, 50]));
    sim.tick();
    sim.now += Duration::seconds(30);
    let mut o = sim.obs();
    o.analysis = Some(report(sim.now + Duration::hours(1), Verdict::Pass));
    sim.run(o);
    assert_eq!((sim.s.step_index, sim.s.passed_checks), (0, 0));
    assert!(sim.has(&Effect::RunAnalysis));
}

// ------------------------------------------------------------------------------ windows

/// Business hours in Berlin; t0 (10:00 UTC, Wednesday) is 11:00 there.
fn berlin_spec() -> RolloutSpec {
    with_schedule(
        canary_spec(&[10, 50]),
        &["* 9-16 * * Mon-Fri"],
        Some("Europe/Berlin"),
    )
}

#[test]
fn windows_gate_stage_starts_and_advances() {
    // (schedule, time zone, start time, traffic moves at start)
    /// (window, time zone, UTC (hour, minute), traffic moves)
    type Case = (&'static str, Option<&'static str>, (u32, u32), bool);
    let cases: &[Case] = &[
        ("* 9-16 * * Mon-Fri", Some("Europe/Berlin"), (10, 0), true),
        // 16:30 UTC is 17:30 in Berlin: closed, although 16:30 is inside "9-16" in UTC.
        ("* 9-16 * * Mon-Fri", Some("Europe/Berlin"), (16, 30), false),
        ("* 9-16 * * Mon-Fri", None, (16, 30), true),
        // 08:30 UTC is 09:30 in Berlin: open, although 08 is outside "9-16" in UTC.
        ("* 9-16 * * Mon-Fri", Some("Europe/Berlin"), (8, 30), true),
        ("* 9-16 * * Mon-Fri", None, (8, 30), false),
        // 22:00 UTC is 07:00 next day in Tokyo (Thursday).
        ("* 7 * * Thu", Some("Asia/Tokyo"), (22, 0), true),
        ("* 7 * * Wed", Some("Asia/Tokyo"), (22, 0), false),
    ];
    for (i, (window, tz, (h, m), open)) in cases.iter().enumerate() {
        let spec = with_schedule(canary_spec(&[10, 50]), &[window], *tz);
        let mut sim = Sim::new(spec);
        sim.now = Utc.with_ymd_and_hms(2026, 11, 25, *h, *m, 0).unwrap();
        sim.tick();
        assert_eq!(sim.weight() > 0, *open, "case {i}: {window} {tz:?}");
        if !open {
            assert_eq!(sim.s.reason, Some(Reason::OutsideWindow), "case {i}");
            assert!(!sim.canary_live());
        }
    }
}

#[test]
fn passes_outside_a_window_do_not_advance_and_analysis_continues() {
    let mut sim = Sim::new(berlin_spec());
    sim.tick();
    assert_eq!(sim.weight(), 10);
    // 15:59:30 Berlin: inside; the step's analysis is due at 16:00... move to 17:00 Berlin.
    sim.now = Utc.with_ymd_and_hms(2026, 11, 25, 16, 0, 0).unwrap();
    sim.pass();
    assert_eq!(sim.s.step_index, 0, "passed outside the window: no advance");
    assert_eq!(sim.s.reason, Some(Reason::OutsideWindow));
    assert_eq!(sim.weight(), 10, "traffic holds outside the window");
    // Analysis keeps running (a failure still counts while we wait).
    sim.verdict(Verdict::Fail);
    assert_eq!(sim.s.consecutive_failures, 1);
    // Thursday 08:00 UTC = 09:00 Berlin: inside, but the stale pass does not count...
    sim.now = Utc.with_ymd_and_hms(2026, 11, 26, 8, 0, 0).unwrap();
    let mut o = sim.obs();
    o.analysis = None;
    sim.run(o);
    assert_eq!(sim.s.step_index, 0);
    // ...a fresh one inside the window does.
    sim.pass();
    assert_eq!(sim.s.step_index, 1);
    assert_eq!(sim.weight(), 50);
}

/// Regression: the stage passed before the window closed; when it opened again the engine
/// advanced on that old pass, without fresh evidence.
#[test]
fn regression_window_opening_does_not_advance_on_an_old_pass() {
    let mut sim = Sim::new(berlin_spec());
    sim.tick();
    sim.now = Utc.with_ymd_and_hms(2026, 11, 25, 16, 0, 0).unwrap();
    sim.pass();
    assert_eq!(sim.s.step_index, 0);
    sim.now = Utc.with_ymd_and_hms(2026, 11, 26, 8, 0, 0).unwrap();
    sim.s.next_analysis_at = Some(sim.now + Duration::seconds(30));
    sim.tick();
    assert_eq!(sim.s.step_index, 0, "advanced on a pass from yesterday");
}

/// Regression: gates were called outside the window, so a pre-rollout smoke test could run
/// hours before traffic moved.
#[test]
fn regression_gates_wait_for_the_window() {
    let spec = with_hooks(berlin_spec(), &[WebhookKind::PreRollout]);
    let mut sim = Sim::new(spec);
    sim.now = Utc.with_ymd_and_hms(2026, 11, 25, 20, 0, 0).unwrap();
    sim.tick();
    assert_eq!(sim.s.reason, Some(Reason::OutsideWindow));
    assert!(!sim.has(&Effect::CallWebhooks(WebhookKind::PreRollout)));
    sim.now = Utc.with_ymd_and_hms(2026, 11, 26, 8, 0, 0).unwrap();
    sim.tick();
    assert!(sim.has(&Effect::CallWebhooks(WebhookKind::PreRollout)));
    sim.gate(WebhookKind::PreRollout, true);
    assert_eq!(sim.weight(), 10);
}

// ------------------------------------------------------------------------------ promotion

#[test]
fn manual_promotion_waits_for_promote() {
    let mut spec = canary_spec(&[10, 50]);
    spec.promotion.manual = true;
    let mut sim = Sim::new(spec);
    sim.tick();
    sim.pass().pass();
    assert_eq!(
        sim.phase(),
        (Phase::Paused, Some(Reason::AwaitingPromotion))
    );
    assert_eq!(sim.weight(), 50, "traffic holds while waiting");
    // Time passes, analysis is not asked for, nothing moves.
    sim.wait(3600);
    assert_eq!(
        sim.phase(),
        (Phase::Paused, Some(Reason::AwaitingPromotion))
    );
    assert!(!sim.has(&Effect::RunAnalysis));
    // Resume is not promote.
    sim.cmd(Command::Resume);
    assert_eq!(sim.events(), vec!["CommandRejected"]);
    assert_eq!(
        sim.phase(),
        (Phase::Paused, Some(Reason::AwaitingPromotion))
    );
    sim.cmd(Command::Promote);
    assert_eq!(sim.s.phase, Phase::Promoting);
    assert!(sim.has(&Effect::PromoteCanary {
        revision: "v2".into()
    }));
    sim.wait(1);
    assert_eq!(sim.s.phase, Phase::Succeeded);
}

#[test]
fn promotion_waits_for_stable_readiness() {
    let mut sim = Sim::new(canary_spec(&[50]));
    sim.tick();
    sim.pass();
    assert_eq!(sim.s.phase, Phase::Promoting);
    // Stable runs v2 but is not ready: hold (traffic unchanged).
    sim.stable_ready = false;
    sim.wait(10);
    assert_eq!(
        sim.phase(),
        (Phase::Promoting, Some(Reason::WaitingForReady))
    );
    assert_eq!(sim.weight(), 50);
    // Stable ready but still on v1 (promotion not applied yet): hold.
    sim.stable_ready = true;
    sim.stable = "v1".into();
    sim.wait(10);
    assert_eq!(sim.s.phase, Phase::Promoting);
    sim.stable = "v2".into();
    sim.wait(10);
    assert_eq!(sim.s.phase, Phase::Succeeded);
    assert_eq!(sim.plan, Some(TrafficPlan::stable_only()));
}

/// Regression: with a header-matched plan (A/B, dark launch) the canary weight is 0, so a
/// canary that stopped being ready during promotion kept receiving the matched requests.
#[test]
fn regression_promoting_takes_matched_traffic_off_an_unready_canary() {
    let mut sim = Sim::new(ab_spec(1));
    sim.tick();
    sim.pass();
    assert_eq!(sim.s.phase, Phase::Promoting);
    sim.stable = "v1".into(); // promotion still in progress
    assert!(sim.canary_live());
    sim.canary_ready = false;
    sim.wait(1);
    assert!(!sim.canary_live(), "plan still touches the canary");
}

// ------------------------------------------------------------------------------ readiness

#[test]
fn canary_not_ready_mid_step_sends_traffic_back_and_restarts_the_step() {
    let mut sim = Sim::new(canary_spec(&[10, 50]));
    sim.canary_ready = false;
    sim.tick();
    assert_eq!(
        sim.phase(),
        (Phase::Progressing, Some(Reason::WaitingForReady))
    );
    assert!(!sim.canary_live(), "no traffic before the canary is ready");
    sim.canary_ready = true;
    sim.wait(5);
    sim.pass();
    assert_eq!(sim.weight(), 50);
    sim.canary_ready = false;
    sim.wait(5);
    assert_eq!(sim.weight(), 0);
    assert!(sim.events().contains(&"CanaryNotReady"));
    assert_eq!(sim.s.step_index, 1);
    // A pass reported while not ready does not count.
    let mut o = sim.obs();
    o.analysis = Some(report(sim.now, Verdict::Pass));
    sim.run(o);
    assert_eq!(sim.s.passed_checks, 0);
    sim.canary_ready = true;
    sim.wait(5);
    assert_eq!(sim.weight(), 50, "the step starts again");
    assert_eq!(sim.s.passed_checks, 0);
}

#[test]
fn paused_rollout_takes_traffic_off_an_unready_canary() {
    let mut sim = Sim::new(canary_spec(&[10, 50]));
    sim.tick();
    sim.cmd(Command::Pause);
    assert_eq!(sim.weight(), 10, "pause holds traffic");
    sim.canary_ready = false;
    sim.wait(5);
    assert_eq!(sim.phase(), (Phase::Paused, Some(Reason::PausedByUser)));
    assert!(!sim.canary_live());
}

/// Regression: after a dark launch passed and the next (canary) stage waited for its
/// confirm-traffic-increase gate, the dark launch's header route and mirror stayed on a canary
/// that had stopped being ready (its canary weight is 0, and the step had not started).
#[test]
fn regression_unready_canary_between_stages_loses_matched_traffic() {
    let spec = with_hooks(
        dark_spec(Some(20), 1, Some(&[50])),
        &[WebhookKind::ConfirmTrafficIncrease],
    );
    let mut sim = Sim::new(spec);
    sim.tick();
    sim.pass();
    assert_eq!(sim.s.step_index, 1);
    assert!(sim.has(&Effect::CallWebhooks(WebhookKind::ConfirmTrafficIncrease)));
    assert!(sim.canary_live(), "dark launch traffic holds at the gate");
    sim.canary_ready = false;
    sim.wait(5);
    assert!(!sim.canary_live(), "plan still touches the unready canary");
}

// ------------------------------------------------------------------------------ revisions

#[test]
fn new_revision_mid_rollout_restarts_from_the_first_stage() {
    let mut sim = Sim::new(canary_spec(&[10, 25, 50]));
    sim.tick();
    sim.pass();
    assert_eq!((sim.s.step_index, sim.weight()), (1, 25));
    // v3 appears and is not ready yet: stable only, stage 0.
    sim.rev = "v3".into();
    sim.canary_ready = false;
    sim.wait(1);
    assert_eq!(sim.s.canary_revision.as_deref(), Some("v3"));
    assert_eq!(sim.s.step_index, 0);
    assert_eq!(sim.s.passed_checks, 0);
    assert!(!sim.canary_live());
    assert!(sim.has(&Effect::ScaleUpCanary));
    sim.canary_ready = true;
    sim.wait(1);
    assert_eq!((sim.s.step_index, sim.weight()), (0, 10));
    // Also from Paused.
    sim.cmd(Command::Pause);
    sim.rev = "v4".into();
    sim.wait(1);
    assert_eq!(sim.s.phase, Phase::Progressing);
    assert_eq!(sim.s.canary_revision.as_deref(), Some("v4"));
}

#[test]
fn new_revision_during_promotion_waits_for_it_to_finish() {
    let mut sim = Sim::new(canary_spec(&[50]));
    sim.tick();
    sim.pass();
    assert_eq!(sim.s.phase, Phase::Promoting);
    sim.stable = "v1".into();
    sim.rev = "v3".into();
    sim.wait(1);
    assert_eq!(sim.s.phase, Phase::Promoting);
    assert_eq!(sim.s.canary_revision.as_deref(), Some("v2"));
    sim.stable = "v2".into();
    sim.wait(1);
    assert_eq!(sim.s.phase, Phase::Succeeded);
    sim.wait(1);
    assert_eq!(sim.s.phase, Phase::Progressing);
    assert_eq!(sim.s.canary_revision.as_deref(), Some("v3"));
}

#[test]
fn target_reverting_to_stable_ends_the_rollout() {
    let mut sim = Sim::new(canary_spec(&[10, 50]));
    sim.tick();
    assert_eq!(sim.weight(), 10);
    sim.rev = "v1".into();
    sim.wait(1);
    assert_eq!(sim.phase(), (Phase::Idle, None));
    assert_eq!(sim.plan, Some(TrafficPlan::stable_only()));
    assert!(sim.has(&Effect::ScaleDownCanary));
    assert_eq!(sim.s.canary_revision, None);
    // After a failure, reverting clears the failed revision so it may be tried again.
    sim.rev = "v2".into();
    sim.wait(1);
    sim.cmd(Command::Abort);
    assert_eq!(sim.s.phase, Phase::Failed);
    sim.rev = "v1".into();
    sim.wait(1);
    assert_eq!(sim.s.phase, Phase::Failed);
    assert_eq!(sim.s.canary_revision, None);
    sim.rev = "v2".into();
    sim.wait(1);
    assert_eq!(sim.s.phase, Phase::Progressing);
}

#[test]
fn waits_for_a_revision_before_anything() {
    let spec = canary_spec(&[10]);
    let (s, fx) = step(
        &spec,
        &RolloutStatus::default(),
        &Observations::default(),
        t0(),
    );
    assert_eq!(s.stable_revision, None);
    assert!(fx.is_empty());
    // Kubernetes before the first promotion: the target's revision becomes stable.
    let o = Observations {
        revision: Some("v1".into()),
        ..Default::default()
    };
    let (s, fx) = step(&spec, &RolloutStatus::default(), &o, t0());
    assert_eq!(s.stable_revision.as_deref(), Some("v1"));
    assert_eq!(s.phase, Phase::Idle);
    assert_eq!(applied(&fx), Some(&TrafficPlan::stable_only()));
}

/// Regression: a command sent before the first revision was known vanished without a trace.
#[test]
fn regression_command_before_initialization_is_rejected_visibly() {
    let o = Observations {
        command: Some(Command::Pause),
        ..Default::default()
    };
    let (s, fx) = step(&canary_spec(&[10]), &RolloutStatus::default(), &o, t0());
    assert_eq!(s.phase, Phase::Idle);
    assert!(
        fx.iter().any(
            |e| matches!(e, Effect::Event(ev) if ev.reason == EventReason::CommandRejected && ev.warning)
        )
    );
}

/// Regression: a spec edited mid-rollout to fewer steps left `stepIndex` past the end and the
/// rollout stuck for ever.
#[test]
fn regression_step_index_past_the_end_after_a_spec_edit() {
    let mut sim = Sim::new(canary_spec(&[10, 25, 50, 75]));
    sim.tick();
    sim.pass().pass().pass();
    assert_eq!(sim.s.step_index, 3);
    sim.spec = canary_spec(&[20, 40]);
    sim.wait(1);
    assert_eq!(sim.s.step_index, 1);
    assert_eq!(sim.weight(), 40);
    sim.pass();
    assert_eq!(sim.s.phase, Phase::Promoting);
}

// ------------------------------------------------------------------------------ commands

/// Builds a rollout in a named situation.
fn situation(name: &str) -> Sim {
    let mut spec = canary_spec(&[10, 50]);
    spec.promotion.manual = name == "awaiting-promotion";
    if name == "waiting-gate" {
        spec = with_hooks(spec, &[WebhookKind::ConfirmRollout]);
    }
    let mut sim = Sim::new(spec);
    match name {
        "idle" => {
            sim.rev = "v1".into();
            sim.tick();
        }
        "progressing" => {
            sim.tick();
        }
        "waiting-gate" => {
            sim.tick();
            assert_eq!(sim.s.reason, Some(Reason::AwaitingWebhook));
        }
        "paused" => {
            sim.tick().cmd(Command::Pause);
        }
        "inconclusive" => {
            sim.spec.analysis.inconclusive_limit = 1;
            sim.tick().verdict(Verdict::Inconclusive);
            assert_eq!(sim.s.reason, Some(Reason::Inconclusive));
        }
        "awaiting-promotion" => {
            sim.tick().pass().pass();
            assert_eq!(sim.s.reason, Some(Reason::AwaitingPromotion));
        }
        "promoting" => {
            sim.tick().pass().pass();
            sim.stable = "v1".into();
            assert_eq!(sim.s.phase, Phase::Promoting);
        }
        "succeeded" => {
            sim.tick().pass().pass().wait(1);
            assert_eq!(sim.s.phase, Phase::Succeeded);
        }
        "failed" => {
            sim.tick().cmd(Command::Abort);
            assert_eq!(sim.s.phase, Phase::Failed);
        }
        other => panic!("unknown situation {other}"),
    }
    sim
}

/// Every command in every situation: rejected ones leave the status untouched except for a
/// `CommandRejected` event, accepted ones lead where the table says.
#[test]
fn command_matrix() {
    use Command::*;
    use Phase::*;
    type Expect = Option<(Phase, Option<Reason>)>;
    let p = |phase: Phase, reason: Option<Reason>| -> Expect { Some((phase, reason)) };
    let no: Expect = None;
    let cases: Vec<(&str, Command, Expect)> = vec![
        ("idle", Promote, no),
        ("idle", Pause, no),
        ("idle", Resume, no),
        ("idle", Abort, no),
        ("idle", Retry, no),
        ("idle", Undo, no),
        ("progressing", Promote, p(Progressing, None)),
        ("progressing", Pause, p(Paused, Some(Reason::PausedByUser))),
        ("progressing", Resume, no),
        ("progressing", Abort, p(Failed, Some(Reason::Aborted))),
        ("progressing", Retry, no),
        ("progressing", Undo, no),
        // Promote passes a running step; it does not open webhook gates.
        ("waiting-gate", Promote, no),
        ("waiting-gate", Pause, p(Paused, Some(Reason::PausedByUser))),
        ("waiting-gate", Abort, p(Failed, Some(Reason::Aborted))),
        ("paused", Promote, p(Progressing, None)),
        ("paused", Pause, p(Paused, Some(Reason::PausedByUser))),
        ("paused", Resume, p(Progressing, None)),
        ("paused", Abort, p(Failed, Some(Reason::Aborted))),
        ("paused", Retry, no),
        ("paused", Undo, no),
        ("inconclusive", Promote, p(Progressing, None)),
        ("inconclusive", Resume, p(Progressing, None)),
        ("inconclusive", Abort, p(Failed, Some(Reason::Aborted))),
        (
            "awaiting-promotion",
            Promote,
            p(Promoting, Some(Reason::WaitingForReady)),
        ),
        ("awaiting-promotion", Resume, no),
        (
            "awaiting-promotion",
            Pause,
            p(Paused, Some(Reason::PausedByUser)),
        ),
        (
            "awaiting-promotion",
            Abort,
            p(Failed, Some(Reason::Aborted)),
        ),
        ("promoting", Promote, no),
        ("promoting", Pause, no),
        ("promoting", Resume, no),
        ("promoting", Abort, p(Failed, Some(Reason::Aborted))),
        ("promoting", Retry, no),
        ("promoting", Undo, no),
        ("succeeded", Promote, no),
        ("succeeded", Pause, no),
        ("succeeded", Abort, no),
        ("succeeded", Retry, no),
        ("succeeded", Undo, p(Failed, Some(Reason::Undone))),
        ("failed", Promote, no),
        ("failed", Pause, no),
        ("failed", Resume, no),
        ("failed", Abort, no),
        ("failed", Retry, p(Progressing, None)),
        ("failed", Undo, no),
    ];
    for (name, c, expect) in cases {
        let mut sim = situation(name);
        let before = sim.s.clone();
        let allowed = command_allowed(&before, c);
        assert_eq!(
            allowed.is_ok(),
            expect.is_some(),
            "{name} {c}: command_allowed said {allowed:?}"
        );
        // The same step without the command, to compare against.
        let (quiet_status, quiet_fx) = step(&sim.spec, &before, &sim.obs(), sim.now);
        sim.cmd(c);
        match expect {
            None => {
                let refusal = allowed.unwrap_err();
                assert_eq!(refusal.command, c, "{name}");
                let msg = refusal.to_string();
                assert!(msg.contains(c.as_str()), "{name} {c}: message {msg:?}");
                assert_eq!(
                    sim.s, quiet_status,
                    "{name} {c}: rejected command changed the status"
                );
                let rejected = Effect::Event(Event {
                    reason: EventReason::CommandRejected,
                    message: msg,
                    warning: true,
                });
                let mut expected = vec![rejected];
                expected.extend(quiet_fx);
                assert_eq!(sim.fx, expected, "{name} {c}");
            }
            Some((phase, reason)) => {
                assert_eq!(sim.phase(), (phase, reason), "{name} {c}: {:?}", sim.fx);
                assert!(!sim.events().contains(&"CommandRejected"), "{name} {c}");
            }
        }
    }
}

#[test]
fn abort_rolls_back_and_retry_runs_again() {
    let mut sim = Sim::new(canary_spec(&[10, 50]));
    sim.tick().pass();
    assert_eq!(sim.weight(), 50);
    sim.cmd(Command::Abort);
    assert_eq!(sim.phase(), (Phase::Failed, Some(Reason::Aborted)));
    assert_eq!(sim.plan, Some(TrafficPlan::stable_only()));
    assert!(sim.has(&Effect::ScaleDownCanary));
    assert!(sim.has(&Effect::CallWebhooks(WebhookKind::Rollback)));
    assert!(sim.events().contains(&"RolledBack"));
    sim.cmd(Command::Retry);
    assert_eq!(sim.s.phase, Phase::Progressing);
    assert_eq!((sim.s.step_index, sim.weight()), (0, 10));
    assert!(sim.has(&Effect::ScaleUpCanary));
}

#[test]
fn abort_during_promotion_restores_stable() {
    let mut sim = situation("promoting");
    sim.cmd(Command::Abort);
    assert_eq!(sim.phase(), (Phase::Failed, Some(Reason::Aborted)));
    assert!(sim.has(&Effect::RestoreStable {
        revision: "v1".into()
    }));
    assert_eq!(sim.s.stable_revision.as_deref(), Some("v1"));
    // The aborted revision does not start again by itself.
    sim.wait(60);
    assert_eq!(sim.s.phase, Phase::Failed);
}

#[test]
fn undo_restores_the_previous_stable() {
    let mut sim = situation("succeeded");
    sim.cmd(Command::Undo);
    assert_eq!(sim.phase(), (Phase::Failed, Some(Reason::Undone)));
    assert!(sim.has(&Effect::RestoreStable {
        revision: "v1".into()
    }));
    assert_eq!(sim.s.stable_revision.as_deref(), Some("v1"));
    assert_eq!(sim.plan, Some(TrafficPlan::stable_only()));
    // The target still declares v2: it does not roll out again by itself, retry does.
    sim.wait(60);
    assert_eq!(sim.s.phase, Phase::Failed);
    assert!(command_allowed(&sim.s, Command::Undo).is_err());
    sim.cmd(Command::Retry);
    assert_eq!(sim.s.phase, Phase::Progressing);
    assert_eq!(sim.s.canary_revision.as_deref(), Some("v2"));
}

#[test]
fn promote_passes_the_current_step_and_resume_asks_for_analysis() {
    let mut sim = Sim::new(canary_spec(&[10, 25, 50]));
    sim.tick();
    sim.cmd(Command::Promote);
    assert_eq!((sim.s.step_index, sim.weight()), (1, 25));
    assert!(sim.events().contains(&"Promoted"));
    sim.cmd(Command::Pause);
    sim.wait(600);
    assert!(!sim.has(&Effect::RunAnalysis), "paused: no analysis");
    sim.cmd(Command::Resume);
    assert!(sim.has(&Effect::RunAnalysis), "resume checks right away");
}

/// Regression: promote after an inconclusive pause kept the inconclusive count, so the next
/// inconclusive check paused again at once.
#[test]
fn regression_promote_resets_the_counts() {
    let mut spec = canary_spec(&[10, 50]);
    spec.analysis.inconclusive_limit = 2;
    spec.analysis.failure_limit = 2;
    let mut sim = Sim::new(spec);
    sim.tick()
        .verdict(Verdict::Fail)
        .verdict(Verdict::Inconclusive)
        .verdict(Verdict::Inconclusive);
    assert_eq!(sim.s.reason, Some(Reason::Inconclusive));
    sim.cmd(Command::Promote);
    assert_eq!(sim.s.step_index, 1);
    sim.verdict(Verdict::Inconclusive);
    assert_eq!(sim.s.phase, Phase::Progressing);
    sim.verdict(Verdict::Fail);
    assert_eq!(sim.s.phase, Phase::Progressing);
}

/// Regression: promote while the first step waited for its pre-rollout webhook skipped the
/// webhook and sent traffic to the canary.
#[test]
fn regression_promote_cannot_skip_a_pre_rollout_gate() {
    let spec = with_hooks(canary_spec(&[10, 50]), &[WebhookKind::PreRollout]);
    let mut sim = Sim::new(spec);
    sim.tick();
    assert_eq!(sim.s.reason, Some(Reason::AwaitingWebhook));
    sim.cmd(Command::Promote);
    assert_eq!(sim.events(), vec!["CommandRejected"]);
    assert!(!sim.canary_live());
    assert_eq!(sim.s.step_index, 0);
}

// ------------------------------------------------------------------------------ gates

#[test]
fn confirm_rollout_holds_until_it_passes() {
    let spec = with_hooks(canary_spec(&[10, 50]), &[WebhookKind::ConfirmRollout]);
    let mut sim = Sim::new(spec);
    sim.tick();
    assert_eq!(
        sim.phase(),
        (Phase::Progressing, Some(Reason::AwaitingWebhook))
    );
    assert!(sim.has(&Effect::CallWebhooks(WebhookKind::ConfirmRollout)));
    assert!(!sim.canary_live());
    sim.gate(WebhookKind::ConfirmRollout, false);
    assert_eq!(sim.s.reason, Some(Reason::AwaitingWebhook));
    assert_eq!(
        sim.s.pending_gate.as_ref().unwrap().last_error.as_deref(),
        Some("nope")
    );
    assert!(!sim.canary_live());
    // Asked again on the next tick.
    sim.wait(10);
    assert!(sim.has(&Effect::CallWebhooks(WebhookKind::ConfirmRollout)));
    sim.gate(WebhookKind::ConfirmRollout, true);
    assert_eq!(sim.weight(), 10);
    assert_eq!(sim.s.reason, None);
    assert!(sim.events().contains(&"GateOpened"));
}

/// Regression: a failed gate answer made the engine ask again in the same step, so one tick of
/// the executor loop called the webhook up to six times.
#[test]
fn regression_failed_gate_is_not_asked_again_in_the_same_step() {
    let spec = with_hooks(canary_spec(&[10, 50]), &[WebhookKind::ConfirmRollout]);
    let mut sim = Sim::new(spec);
    sim.tick();
    sim.gate(WebhookKind::ConfirmRollout, false);
    assert!(!sim.has(&Effect::CallWebhooks(WebhookKind::ConfirmRollout)));
}

#[test]
fn pre_rollout_failure_fails_before_any_canary_traffic() {
    let spec = with_hooks(
        canary_spec(&[10, 50]),
        &[WebhookKind::ConfirmRollout, WebhookKind::PreRollout],
    );
    let mut sim = Sim::new(spec);
    sim.tick();
    assert!(sim.has(&Effect::CallWebhooks(WebhookKind::ConfirmRollout)));
    sim.gate(WebhookKind::ConfirmRollout, true);
    assert!(sim.has(&Effect::CallWebhooks(WebhookKind::PreRollout)));
    assert!(!sim.canary_live());
    sim.gate(WebhookKind::PreRollout, false);
    assert_eq!(sim.phase(), (Phase::Failed, Some(Reason::PreRolloutFailed)));
    assert!(!sim.canary_live());
    assert_eq!(sim.plan, Some(TrafficPlan::stable_only()));
    assert!(sim.s.message.as_deref().unwrap().contains("nope"));
}

#[test]
fn confirm_traffic_increase_holds_each_increase() {
    let spec = with_hooks(
        canary_spec(&[10, 25, 50]),
        &[WebhookKind::ConfirmTrafficIncrease],
    );
    let mut sim = Sim::new(spec);
    sim.tick();
    assert_eq!(sim.weight(), 10, "the first step is not an increase gate");
    sim.pass();
    assert_eq!(sim.s.step_index, 1);
    assert_eq!(sim.weight(), 10, "held at the previous weight");
    assert!(sim.has(&Effect::CallWebhooks(WebhookKind::ConfirmTrafficIncrease)));
    // A stale answer (not asked for in this stage) does not count: answers before asking.
    sim.gate(WebhookKind::ConfirmTrafficIncrease, true);
    assert_eq!(sim.weight(), 25);
    sim.pass();
    assert_eq!(sim.weight(), 25);
    sim.gate(WebhookKind::ConfirmTrafficIncrease, false);
    assert_eq!(sim.weight(), 25);
    sim.wait(5);
    sim.gate(WebhookKind::ConfirmTrafficIncrease, true);
    assert_eq!(sim.weight(), 50);
}

#[test]
fn gate_answers_not_asked_for_are_ignored() {
    let spec = with_hooks(
        canary_spec(&[10, 25]),
        &[WebhookKind::ConfirmTrafficIncrease],
    );
    let mut sim = Sim::new(spec);
    sim.tick();
    // An answer arriving with the pass that finishes stage 0 was not asked for stage 1 yet.
    sim.now = sim.s.next_analysis_at.unwrap();
    let mut o = sim.obs();
    o.analysis = Some(report(sim.now, Verdict::Pass));
    o.webhooks.push(GateAnswer {
        kind: WebhookKind::ConfirmTrafficIncrease,
        passed: true,
        message: "ok".into(),
    });
    sim.run(o);
    assert_eq!(sim.s.step_index, 1);
    assert_eq!(sim.weight(), 10);
}

#[test]
fn confirm_promotion_holds_and_releases() {
    let spec = with_hooks(canary_spec(&[10, 50]), &[WebhookKind::ConfirmPromotion]);
    let mut sim = Sim::new(spec);
    sim.tick().pass().pass();
    assert_eq!(
        sim.phase(),
        (Phase::Progressing, Some(Reason::AwaitingWebhook))
    );
    assert!(sim.has(&Effect::CallWebhooks(WebhookKind::ConfirmPromotion)));
    assert_eq!(sim.weight(), 50);
    sim.gate(WebhookKind::ConfirmPromotion, false);
    assert_eq!(sim.s.phase, Phase::Progressing);
    // Analysis goes on while waiting: a failure still rolls back.
    sim.verdict(Verdict::Pass);
    assert_eq!(sim.s.phase, Phase::Progressing);
    // The answer arrives in a step of its own (no new analysis needed).
    sim.wait(1);
    sim.gate(WebhookKind::ConfirmPromotion, true);
    assert_eq!(sim.s.phase, Phase::Promoting);
}

#[test]
fn confirm_promotion_after_manual_promote() {
    let mut spec = with_hooks(canary_spec(&[10]), &[WebhookKind::ConfirmPromotion]);
    spec.promotion.manual = true;
    let mut sim = Sim::new(spec);
    sim.tick().pass();
    assert_eq!(
        sim.phase(),
        (Phase::Paused, Some(Reason::AwaitingPromotion))
    );
    assert!(!sim.has(&Effect::CallWebhooks(WebhookKind::ConfirmPromotion)));
    sim.cmd(Command::Promote);
    assert_eq!(sim.phase(), (Phase::Paused, Some(Reason::AwaitingWebhook)));
    // Regression: the gate was asked twice in this step.
    assert_eq!(
        sim.count(&Effect::CallWebhooks(WebhookKind::ConfirmPromotion)),
        1
    );
    // Promote cannot override the webhook.
    assert!(command_allowed(&sim.s, Command::Promote).is_err());
    sim.gate(WebhookKind::ConfirmPromotion, true);
    assert_eq!(sim.s.phase, Phase::Promoting);
}

/// Regression: promote to a stage with a confirm-traffic-increase gate asked the webhook twice
/// in one step (once from the command, once from the phase's own processing).
#[test]
fn regression_promote_asks_the_next_gate_once() {
    let spec = with_hooks(
        canary_spec(&[10, 25]),
        &[WebhookKind::ConfirmTrafficIncrease],
    );
    let mut sim = Sim::new(spec);
    sim.tick().cmd(Command::Promote);
    assert_eq!(sim.s.step_index, 1);
    assert_eq!(
        sim.count(&Effect::CallWebhooks(WebhookKind::ConfirmTrafficIncrease)),
        1
    );
}

// ------------------------------------------------------------------------------ commands API

#[test]
fn commands_parse_and_print() {
    for c in Command::ALL {
        assert_eq!(c.as_str().parse::<Command>(), Ok(c));
        assert_eq!(c.to_string(), c.as_str());
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            format!("\"{}\"", c.as_str())
        );
    }
    assert!("promot".parse::<Command>().unwrap_err().contains("promote"));
}

/// Regression (found by the property tests): with `skipAnalysis`, resume made the timer due at
/// once, so pause + resume passed a step without waiting an interval.
#[test]
fn regression_skip_analysis_resume_is_not_a_pass() {
    let mut spec = canary_spec(&[10, 50]);
    spec.skip_analysis = true;
    let mut sim = Sim::new(spec);
    sim.tick().cmd(Command::Pause).cmd(Command::Resume);
    assert_eq!((sim.s.step_index, sim.s.passed_checks), (0, 0));
    sim.wait(30);
    assert_eq!(sim.s.step_index, 1);
}

/// Regression: the canary blipped while confirm-promotion was pending; the stage restarted
/// from zero passes, yet the old promotion decision stood and the next "yes" promoted.
#[test]
fn regression_readiness_blip_cancels_a_pending_promotion_decision() {
    let spec = with_hooks(canary_spec(&[10, 50]), &[WebhookKind::ConfirmPromotion]);
    let mut sim = Sim::new(spec);
    sim.tick().pass().pass();
    assert_eq!(
        sim.s.pending_gate.as_ref().map(|g| g.kind),
        Some(WebhookKind::ConfirmPromotion)
    );
    sim.canary_ready = false;
    sim.wait(1);
    sim.canary_ready = true;
    sim.wait(1);
    assert_eq!(sim.weight(), 50, "the stage started again");
    sim.gate(WebhookKind::ConfirmPromotion, true);
    assert_eq!(
        sim.s.phase,
        Phase::Progressing,
        "promoted without a fresh pass"
    );
    sim.pass();
    assert!(sim.has(&Effect::CallWebhooks(WebhookKind::ConfirmPromotion)));
    sim.gate(WebhookKind::ConfirmPromotion, true);
    assert_eq!(sim.s.phase, Phase::Promoting);
}

/// A canary that never becomes ready fails the rollout after `progressDeadline` (traffic on
/// stable, `RolledBack` once); gates and windows count only when `covers` says so; a pause
/// never does.
#[test]
fn progress_deadline_ends_waits_that_would_last_forever() {
    // The canary is never ready.
    let mut spec = canary_spec(&[10, 50]);
    spec.progress_deadline.duration = "5m".into();
    let mut sim = Sim::new(spec);
    sim.canary_ready = false;
    sim.tick();
    assert_eq!(sim.s.reason, Some(Reason::WaitingForReady));
    sim.now += Duration::minutes(4);
    sim.tick();
    assert_eq!(sim.s.phase, Phase::Progressing, "within the deadline");
    sim.now += Duration::minutes(1);
    sim.tick();
    assert_eq!(sim.s.phase, Phase::Failed);
    assert_eq!(sim.s.reason, Some(Reason::ProgressDeadlineExceeded));
    assert!(!sim.canary_live());
    assert!(
        sim.s
            .message
            .as_deref()
            .unwrap_or("")
            .contains("progress deadline (5m)")
    );

    // A gate that keeps saying no: waits for ever unless covered.
    for covered in [false, true] {
        let mut spec = with_hooks(canary_spec(&[10, 50]), &[WebhookKind::ConfirmRollout]);
        spec.progress_deadline.duration = "5m".into();
        if covered {
            spec.progress_deadline.covers = vec![DeadlineWait::Gates];
        }
        let mut sim = Sim::new(spec);
        sim.tick();
        for _ in 0..12 {
            sim.now += Duration::minutes(1);
            sim.gate(WebhookKind::ConfirmRollout, false);
            sim.tick();
        }
        let expected = if covered {
            Phase::Failed
        } else {
            Phase::Progressing
        };
        assert_eq!(sim.s.phase, expected, "gates covered: {covered}");
    }

    // A paused rollout is a person's decision: never failed by the deadline.
    let mut spec = canary_spec(&[10, 50]);
    spec.progress_deadline.duration = "5m".into();
    let mut sim = Sim::new(spec);
    sim.tick();
    sim.cmd(Command::Pause);
    sim.canary_ready = false;
    sim.now += Duration::hours(2);
    sim.tick();
    assert_eq!(sim.s.phase, Phase::Paused);
}

// ------------------------------------------------------------------------------ metric modes

fn moded_report(at: DateTime<Utc>, m: Verdict, s: Verdict) -> AnalysisReport {
    let mut r = report(at, m);
    r.checks.push(CheckResult {
        metric: "s".into(),
        verdict: s,
        reason: "p99 1200ms > max 500".into(),
        ..r.checks[0].clone()
    });
    r
}

/// A metric the validation rules accept (the engine runs only valid specs' plans).
fn valid_metric(name: &str) -> Metric {
    Metric {
        name: name.into(),
        builtin: Some(BuiltinMetric::RequestSuccessRate),
        thresholds: Thresholds {
            min: Some(99.0),
            max: None,
        },
        ..Default::default()
    }
}

fn moded_spec(critical: bool) -> RolloutSpec {
    let mut spec = canary_spec(&[10, 50]);
    spec.analysis.failure_limit = 3;
    spec.analysis.inconclusive_limit = 1;
    spec.analysis.metrics = vec![
        Metric {
            critical,
            ..valid_metric("m")
        },
        Metric {
            mode: MetricMode::Shadow,
            ..valid_metric("s")
        },
    ];
    spec
}

#[test]
fn a_shadow_fail_is_shown_and_announced_but_never_acts() {
    let spec = moded_spec(false);
    let now = t0();
    let (s0, _) = step(&spec, &RolloutStatus::default(), &obs("v2", "v1"), now);
    let t1 = now + Duration::seconds(30);
    let mut o = obs("v2", "v1");
    for shadow in [Verdict::Fail, Verdict::Inconclusive] {
        o.analysis = Some(moded_report(t1, Verdict::Pass, shadow));
        let (s, fx) = step(&spec, &s0, &o, t1);
        // The enforcing check passed: the step (one check) is done, traffic moves on.
        assert_eq!(
            (s.phase, s.step_index),
            (Phase::Progressing, 1),
            "{shadow:?}"
        );
        assert_eq!(applied(&fx).map(|p| p.canary_weight()), Some(50));
        // The shadow verdict is kept for the status and the UI.
        assert_eq!(s.last_verdicts[1].verdict, shadow);
        let would = fx.iter().find_map(|e| match e {
            Effect::Event(ev) if ev.reason == EventReason::ShadowCheckFailed => {
                Some(ev.message.clone())
            }
            _ => None,
        });
        match shadow {
            Verdict::Fail => assert_eq!(
                would.as_deref(),
                Some("would have failed (shadow, no action): s: p99 1200ms > max 500")
            ),
            _ => assert_eq!(would, None),
        }
    }
}

#[test]
fn a_critical_fail_rolls_back_at_once_whatever_failure_limit_says() {
    let now = t0();
    let t1 = now + Duration::seconds(30);
    let mut o = obs("v2", "v1");
    o.analysis = Some(moded_report(t1, Verdict::Fail, Verdict::Pass));
    // Not critical: the first of three allowed failures.
    let spec = moded_spec(false);
    let (s0, _) = step(&spec, &RolloutStatus::default(), &obs("v2", "v1"), now);
    let (s, _) = step(&spec, &s0, &o, t1);
    assert_eq!((s.phase, s.consecutive_failures), (Phase::Progressing, 1));
    // Critical: rolled back now.
    let spec = moded_spec(true);
    let (s0, _) = step(&spec, &RolloutStatus::default(), &obs("v2", "v1"), now);
    let (s, fx) = step(&spec, &s0, &o, t1);
    assert_eq!(
        (s.phase, s.reason),
        (Phase::Failed, Some(Reason::AnalysisFailed))
    );
    assert_eq!(applied(&fx), Some(&TrafficPlan::stable_only()));
    assert!(
        s.message
            .as_deref()
            .is_some_and(|m| m.contains("critical check failed: m: test")),
        "{s:?}"
    );
}

// ------------------------------------------------------------------------------ evidence pacing

fn gathering_report(at: DateTime<Utc>, more: u64) -> AnalysisReport {
    let mut r = report(at, Verdict::Inconclusive);
    r.checks[0].more_requests = Some(more);
    r
}

fn compare_spec(low_traffic: LowTraffic) -> RolloutSpec {
    let mut spec = canary_spec(&[10, 50]);
    spec.analysis.inconclusive_limit = 1;
    spec.analysis.low_traffic = low_traffic;
    spec.analysis.metrics = vec![Metric {
        compare: Some(Comparison {
            kind: ComparisonKind::ErrorRate,
            worse: Direction::Higher,
            margin: 0.1,
            confidence: 0.99,
            detect: None,
            power: None,
        }),
        ..valid_metric("m")
    }];
    spec
}

#[test]
fn a_judge_gathering_evidence_holds_the_step_and_says_how_much_more() {
    let spec = compare_spec(LowTraffic::Pause);
    let now = t0();
    let (mut s, _) = step(&spec, &RolloutStatus::default(), &obs("v2", "v1"), now);
    // Nine minutes of "not enough data yet" (one inconclusive would otherwise pause).
    for i in 1..=18 {
        let t = now + Duration::seconds(30 * i);
        let mut o = obs("v2", "v1");
        o.analysis = Some(gathering_report(t, 2000 - 100 * i as u64));
        (s, _) = step(&spec, &s, &o, t);
        assert_eq!((s.phase, s.step_index), (Phase::Progressing, 0), "{s:?}");
        assert_eq!(s.consecutive_inconclusive, 0);
    }
    assert_eq!(s.more_requests, Some(200));
    assert_eq!(
        s.message.as_deref(),
        Some("canary 10%: gathering evidence, about 200 more requests to the canary needed")
    );
    // The judge passes: the step is done at once, and the estimate is gone.
    let t = now + Duration::seconds(30 * 19);
    let mut o = obs("v2", "v1");
    o.analysis = Some(report(t, Verdict::Pass));
    let (s2, _) = step(&spec, &s, &o, t);
    assert_eq!((s2.step_index, s2.more_requests), (1, None));

    // Still gathering after `gatherFor` (10m): too little traffic — paused by default.
    let t = now + Duration::seconds(30 * 21);
    o.analysis = Some(gathering_report(t, 150));
    let (paused, _) = step(&spec, &s, &o, t);
    assert_eq!(
        (paused.phase, paused.reason),
        (Phase::Paused, Some(Reason::Inconclusive))
    );
    assert!(
        paused
            .message
            .as_deref()
            .is_some_and(|m| m.contains("too little traffic: about 150 more requests")),
        "{paused:?}"
    );
    // ...or kept waiting with `lowTraffic: wait`.
    let spec = compare_spec(LowTraffic::Wait);
    let (waiting, _) = step(&spec, &s, &o, t);
    assert_eq!(
        (waiting.phase, waiting.more_requests),
        (Phase::Progressing, Some(150))
    );
    // An Inconclusive that is not about traffic (no data, Prometheus down) counts as ever.
    o.analysis = Some(report(t, Verdict::Inconclusive));
    let (s3, _) = step(&spec, &s, &o, t);
    assert_eq!(s3.phase, Phase::Paused);
}

#[test]
fn with_compare_every_stage_needs_one_pass() {
    let mut spec = dark_spec(Some(20), 3, Some(&[10, 50]));
    assert_eq!(stages(&spec)[0].checks, 3);
    spec.analysis.metrics = compare_spec(LowTraffic::Pause).analysis.metrics;
    assert!(stages(&spec).iter().all(|s| s.checks == 1));
    // A shadow comparison decides nothing, so it paces nothing either.
    spec.analysis.metrics[0].mode = MetricMode::Shadow;
    assert_eq!(stages(&spec)[0].checks, 3);
}

#[test]
fn low_traffic_wait_keeps_gathering_until_the_progress_deadline() {
    let mut spec = compare_spec(LowTraffic::Wait);
    spec.progress_deadline.duration = "20m".into();
    let now = t0();
    let (mut s, _) = step(&spec, &RolloutStatus::default(), &obs("v2", "v1"), now);
    let mut failed_at = None;
    for i in 1..=80 {
        let t = now + Duration::seconds(30 * i);
        let mut o = obs("v2", "v1");
        o.analysis = Some(gathering_report(t, 500));
        (s, _) = step(&spec, &s, &o, t);
        if s.phase == Phase::Failed {
            failed_at = Some(t - now);
            break;
        }
        assert_eq!(s.phase, Phase::Progressing, "at {}s: {s:?}", 30 * i);
    }
    // 10m of gathering (`gatherFor`), then 20m of waiting for traffic: the deadline.
    assert_eq!(failed_at, Some(Duration::minutes(30)));
    assert_eq!(s.reason, Some(Reason::ProgressDeadlineExceeded));
    assert!(
        s.message
            .as_deref()
            .is_some_and(|m| m.contains("waited for enough traffic to decide")),
        "{s:?}"
    );
}

#[test]
fn an_edited_analysis_template_is_recorded_once_and_the_step_goes_on() {
    let mut spec = canary_spec(&[20, 50]);
    let with_template = |spec: &mut RolloutSpec, version: &str| {
        spec.analysis.templates = vec![TemplateRef {
            name: "errors".into(),
            resolved_version: Some(version.into()),
            ..Default::default()
        }];
        spec.analysis.metrics = vec![Metric {
            name: "errors".into(),
            query: Some("sum(up)".into()),
            thresholds: Thresholds {
                max: Some(1.0),
                ..Default::default()
            },
            ..Default::default()
        }];
    };
    with_template(&mut spec, "17");
    let mut sim = Sim::new(spec);
    assert_eq!(
        sim.s.analysis_templates,
        ["AnalysisTemplate errors@17"],
        "recorded from the first step"
    );
    sim.tick();
    sim.pass();
    assert_eq!(sim.s.step_index, 1);
    assert!(!sim.events().contains(&"AnalysisTemplateChanged"));

    with_template(&mut sim.spec, "18");
    sim.tick();
    let ev: Vec<&Event> = sim
        .fx
        .iter()
        .filter_map(|e| match e {
            Effect::Event(ev) if ev.reason == EventReason::AnalysisTemplateChanged => Some(ev),
            _ => None,
        })
        .collect();
    assert_eq!(ev.len(), 1);
    assert_eq!(
        ev[0].message,
        "checks from now on use AnalysisTemplate errors@18 (was AnalysisTemplate errors@17)"
    );
    assert_eq!(
        sim.s.step_index, 1,
        "a template edit does not restart the rollout"
    );
    assert_eq!(sim.s.analysis_templates, ["AnalysisTemplate errors@18"]);
    sim.tick();
    assert!(!sim.events().contains(&"AnalysisTemplateChanged"), "once");

    sim.spec.analysis.templates.clear();
    sim.tick();
    assert!(sim.events().contains(&"AnalysisTemplateChanged"));
    assert!(sim.s.analysis_templates.is_empty());
}
