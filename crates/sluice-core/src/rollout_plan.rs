//! A Rollout's spec parsed once into what the engine runs: [`RolloutPlan`].
//!
//! The spec is the wire format (strings, optional fields, "exactly one of" choices); the plan
//! is the same intent with every choice made and every string parsed: stages with their
//! traffic and gates, a typed interval, non-zero limits, parsed schedule windows, the promotion
//! mode. [`RolloutPlan::try_from`] runs the validation rules ([`crate::validate::rules`]) and
//! returns *every* problem with its field path, so a plan exists only for a spec that
//! `sluice validate` accepts. The engine, the standalone runner, the controller and
//! `sluice plan` all work from a plan, never from the spec's strings: there is no fallback for
//! a value that does not parse, because such a spec never becomes a plan.

use std::fmt;
use std::num::NonZeroU32;

use chrono::Duration;

use crate::schedule::Windows;
use crate::spec::{CanaryStrategy, DeadlineWait, LowTraffic, MetricMode, RolloutSpec, WebhookKind};
use crate::traffic::{STICKY_COOKIE_VALUE, SetCookie, TrafficPlan};
use crate::validate::FieldPath;
use crate::validate::rules::{self, Findings};

/// One stage of a rollout: its traffic, the gates that open before the traffic moves, and the
/// passing checks it needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Stage {
    /// Short human description: "canary 25%", "dark launch (mirror 20%)", "A/B test".
    pub label: String,
    pub traffic: TrafficPlan,
    /// Passing analysis checks needed before the stage is done (at least one).
    pub checks: u32,
    /// Gate webhooks the spec declares that must open, in this order, before the stage's
    /// traffic applies: `confirm-rollout` and `pre-rollout` before the first stage,
    /// `confirm-traffic-increase` before each later one.
    pub gates: Vec<WebhookKind>,
}

/// How analysis runs.
#[derive(Clone, Debug, PartialEq)]
pub struct AnalysisPlan {
    /// `skipAnalysis`: each check passes when its interval has elapsed.
    pub skip: bool,
    /// Time between checks (> 0), for the engine's arithmetic on instants.
    pub interval: Duration,
    /// The same interval for timers and requeues.
    pub interval_std: std::time::Duration,
    /// Failed checks in a row before rollback.
    pub failure_limit: NonZeroU32,
    /// Inconclusive checks in a row before the rollout pauses.
    pub inconclusive_limit: NonZeroU32,
    /// The spec declares enforcing checks (metrics not in `mode: shadow`, or `rollout`
    /// webhooks). Then a report without any enforcing
    /// check result is no evidence (Inconclusive); without declared checks an empty report
    /// passes, each step lasting one interval (`sluice validate` warns about such a spec).
    pub has_checks: bool,
    /// Metrics with `mode: shadow`: judged, shown and announced, never acted on.
    pub shadow: Vec<String>,
    /// Metrics with `critical: true`: one Fail rolls back at once.
    pub critical: Vec<String>,
    /// `gatherFor`: how long into a step a judge's "not enough evidence yet" does not count
    /// towards the inconclusive limit.
    pub gather_for: Duration,
    /// `lowTraffic`: what happens after that.
    pub low_traffic: LowTraffic,
    /// The analysis templates the metrics were taken from, as `<Kind> <name>@<version>`
    /// (see [`crate::analysis_template`]); the engine records a change in the history.
    pub templates: Vec<String>,
}

impl AnalysisPlan {
    pub fn is_shadow(&self, metric: &str) -> bool {
        self.shadow.iter().any(|m| m == metric)
    }
    pub fn is_critical(&self, metric: &str) -> bool {
        self.critical.iter().any(|m| m == metric)
    }
}

/// How long a rollout may wait without progress.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadlinePlan {
    pub duration: Duration,
    /// The duration as the spec wrote it, for messages.
    pub text: String,
    /// The deadline also covers waits for gate webhooks / schedule windows.
    pub gates: bool,
    pub windows: bool,
}

/// What must happen after the last stage passed before stable takes the new version.
#[derive(Clone, Debug, PartialEq)]
pub struct PromotionPlan {
    /// Wait for a person's `promote`.
    pub manual: bool,
    /// Gate webhooks that must open before promotion (`confirm-promotion` when declared).
    pub gates: Vec<WebhookKind>,
}

/// A Rollout's spec, parsed: the only thing the engine sees.
#[derive(Clone, Debug)]
pub struct RolloutPlan {
    /// At least one stage, in order; promotion follows the last.
    pub stages: Vec<Stage>,
    pub analysis: AnalysisPlan,
    /// Traffic moves only inside these windows; `None`: always.
    pub schedule: Option<Windows>,
    pub promotion: PromotionPlan,
    pub progress_deadline: DeadlinePlan,
}

/// One thing wrong with a spec, with its field path (`spec.strategy.canary.steps[1]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecProblem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for SpecProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Why a spec did not become a plan: every problem found, never empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidSpec(pub Vec<SpecProblem>);

impl fmt::Display for InvalidSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [] => f.write_str("invalid spec"),
            [one] => write!(f, "{one}"),
            [first, rest @ ..] => write!(f, "{first} (and {} more problems)", rest.len()),
        }
    }
}

impl std::error::Error for InvalidSpec {}

impl TryFrom<&RolloutSpec> for RolloutPlan {
    type Error = InvalidSpec;

    /// Runs every validation rule of the spec; a plan comes back only when none failed.
    fn try_from(spec: &RolloutSpec) -> Result<Self, InvalidSpec> {
        let mut findings = Findings::default();
        rules::check_spec(spec, &mut findings);
        // The rules say everything wrong with the spec; only a spec they accept is converted
        // (so a value is never reported twice, once by the rules and once by the conversion).
        let plan = if findings.0.is_empty() {
            parse(spec, &mut Problems(&mut findings))
        } else {
            None
        };
        match plan {
            Some(plan) if findings.0.is_empty() => Ok(plan),
            _ => {
                let mut found: Vec<SpecProblem> = findings
                    .0
                    .into_iter()
                    .map(|(path, message)| SpecProblem { path, message })
                    .collect();
                if found.is_empty() {
                    // Unreachable for a spec the rules accept; never an empty error.
                    found.push(SpecProblem {
                        path: "spec".into(),
                        message: "cannot be turned into a plan".into(),
                    });
                }
                Err(InvalidSpec(found))
            }
        }
    }
}

impl RolloutPlan {
    /// Whether the plan moves traffic only inside schedule windows.
    pub fn scheduled(&self) -> bool {
        self.schedule.is_some()
    }
}

/// How many stages `spec` runs, for messages and payloads that show "step 2 of 5"; 0 for a spec
/// that is not valid (such a rollout never runs a step). Parses the spec: for the rare paths
/// that hold only the spec (notifications, webhook payloads), never for the engine's loop.
pub fn stage_count(spec: &RolloutSpec) -> usize {
    stages_only(spec).map_or(0, |p| p.stages.len())
}

/// The plan of `spec` for its stages only: the stages do not depend on analysis templates, so
/// a Rollout read as written (references not resolved) still shows them.
fn stages_only(spec: &RolloutSpec) -> Option<RolloutPlan> {
    if spec
        .analysis
        .templates
        .iter()
        .all(|t| t.resolved_version.is_some())
    {
        return RolloutPlan::try_from(spec).ok();
    }
    let mut s = spec.clone();
    for t in &mut s.analysis.templates {
        t.resolved_version.get_or_insert_with(String::new);
    }
    RolloutPlan::try_from(&s).ok()
}

/// The stage labels of `spec` ("canary 10%", …) for the UI's step timeline; empty for a spec
/// that is not valid. Parses the spec, like [`stage_count`].
pub fn stage_labels(spec: &RolloutSpec) -> Vec<String> {
    stages_only(spec)
        .map(|p| p.stages.into_iter().map(|s| s.label).collect())
        .unwrap_or_default()
}

struct Problems<'a>(&'a mut Findings);

impl Problems<'_> {
    fn add(&mut self, path: &FieldPath, message: impl Into<String>) {
        self.0.0.push((path.to_string(), message.into()));
    }
}

/// Builds the plan. The rules have already reported everything wrong; this only converts,
/// reporting (never unwrapping) a value that still does not convert.
fn parse(spec: &RolloutSpec, p: &mut Problems<'_>) -> Option<RolloutPlan> {
    let root = FieldPath::root("spec");
    let declared = |k: WebhookKind| spec.webhooks.iter().any(|w| w.kind == k);
    let gates_of = |kinds: &[WebhookKind]| -> Vec<WebhookKind> {
        kinds.iter().copied().filter(|k| declared(*k)).collect()
    };

    let st = &spec.strategy;
    let sp = root.field("strategy");
    let mut stages = match (&st.canary, &st.dark_launch, &st.ab_test) {
        (Some(c), None, None) => canary_stages(c, &sp.field("canary"), p)?,
        (None, Some(d), None) => {
            let label = match d.mirror_percent.filter(|p| *p > 0) {
                Some(m) => format!("dark launch (mirror {m}%)"),
                None => "dark launch".to_string(),
            };
            let mut out = vec![Stage {
                label,
                traffic: TrafficPlan::matched(&d.matches, d.mirror_percent),
                checks: d.iterations,
                gates: Vec::new(),
            }];
            if let Some(c) = &d.then_canary {
                out.extend(canary_stages(
                    c,
                    &sp.field("darkLaunch").field("thenCanary"),
                    p,
                )?);
            }
            out
        }
        (None, None, Some(ab)) => vec![Stage {
            label: "A/B test".to_string(),
            traffic: TrafficPlan::matched(&ab.matches, None),
            checks: ab.iterations,
            gates: Vec::new(),
        }],
        _ => {
            p.add(&sp, "set exactly one of `canary`, `darkLaunch`, `abTest`");
            return None;
        }
    };
    if stages.is_empty() {
        p.add(&sp, "the strategy has no steps");
        return None;
    }
    // With an enforcing `compare` metric the judges gather evidence over the whole step and
    // pass only once it suffices: one pass ends a stage, a count of `iterations` would only
    // add time, not evidence.
    if paced_by_evidence(spec) {
        for stage in &mut stages {
            stage.checks = 1;
        }
    }
    for (i, stage) in stages.iter_mut().enumerate() {
        if stage.checks == 0 {
            p.add(&sp, "every stage needs at least one passing check");
        }
        stage.gates = if i == 0 {
            gates_of(&[WebhookKind::ConfirmRollout, WebhookKind::PreRollout])
        } else {
            gates_of(&[WebhookKind::ConfirmTrafficIncrease])
        };
        if let Err(e) = stage.traffic.check() {
            p.add(&sp, format!("stage {} ({}): {e}", i + 1, stage.label));
        }
    }

    let ap = root.field("analysis");
    let a = &spec.analysis;
    let interval = match crate::duration::parse(&a.interval) {
        Ok(d) if !d.is_zero() => match Duration::from_std(d) {
            Ok(c) => Some((c, d)),
            Err(_) => {
                p.add(&ap.field("interval"), "is too long");
                None
            }
        },
        Ok(_) => {
            p.add(&ap.field("interval"), "must be longer than zero");
            None
        }
        Err(e) => {
            p.add(&ap.field("interval"), e);
            None
        }
    };
    let gather_for = match a.gather_for.as_deref() {
        None => Duration::from_std(crate::spec::DEFAULT_GATHER_FOR).ok(),
        Some(text) => match crate::duration::parse(text).map(Duration::from_std) {
            Ok(Ok(d)) => Some(d),
            Ok(Err(_)) => {
                p.add(&ap.field("gatherFor"), "is too long");
                None
            }
            Err(e) => {
                p.add(&ap.field("gatherFor"), e);
                None
            }
        },
    };
    let names = |pick: &dyn Fn(&crate::spec::Metric) -> bool| -> Vec<String> {
        a.metrics
            .iter()
            .filter(|m| pick(m))
            .map(|m| m.name.clone())
            .collect()
    };
    let failure_limit = NonZeroU32::new(a.failure_limit);
    if failure_limit.is_none() {
        p.add(&ap.field("failureLimit"), "must be at least 1");
    }
    let inconclusive_limit = NonZeroU32::new(a.inconclusive_limit);
    if inconclusive_limit.is_none() {
        p.add(&ap.field("inconclusiveLimit"), "must be at least 1");
    }

    let schedule = match &spec.schedule {
        None => None,
        Some(s) => match Windows::parse(s) {
            Ok(w) => Some(w),
            Err(e) => {
                p.add(&root.field("schedule"), e);
                return None;
            }
        },
    };

    let dp = root.field("progressDeadline").field("duration");
    let deadline = &spec.progress_deadline;
    let deadline_duration = match crate::duration::parse(&deadline.duration) {
        Ok(d) if !d.is_zero() => match Duration::from_std(d) {
            Ok(c) => Some(c),
            Err(_) => {
                p.add(&dp, "is too long");
                None
            }
        },
        Ok(_) => {
            p.add(&dp, "must be longer than zero");
            None
        }
        Err(e) => {
            p.add(&dp, e);
            None
        }
    };
    let covers = |w: DeadlineWait| deadline.covers.contains(&w);

    // A reference not resolved means the template's metrics are not in this spec: running it
    // would judge without them (or, with no other check, pass every step on no evidence).
    let mut templates = Vec::new();
    for (i, t) in spec.analysis.templates.iter().enumerate() {
        match t.recorded() {
            Some(l) => templates.push(l),
            None => p.add(
                &root.field("analysis").field("templates").index(i),
                format!(
                    "template `{}` is not resolved: its metrics are not in this spec \
                     (sluice resolves templates before it plans)",
                    t.name
                ),
            ),
        }
    }

    Some(RolloutPlan {
        progress_deadline: DeadlinePlan {
            duration: deadline_duration?,
            text: deadline.duration.clone(),
            gates: covers(DeadlineWait::Gates),
            windows: covers(DeadlineWait::Windows),
        },
        stages,
        analysis: AnalysisPlan {
            skip: spec.skip_analysis,
            interval: interval?.0,
            interval_std: interval?.1,
            failure_limit: failure_limit?,
            inconclusive_limit: inconclusive_limit?,
            has_checks: a.metrics.iter().any(|m| m.mode.is_enforce())
                || spec.webhooks.iter().any(|w| w.kind == WebhookKind::Rollout),
            shadow: names(&|m| m.mode == MetricMode::Shadow),
            critical: names(&|m| m.critical),
            gather_for: gather_for?,
            low_traffic: a.low_traffic,
            templates,
        },
        schedule,
        promotion: PromotionPlan {
            manual: spec.promotion.manual,
            gates: gates_of(&[WebhookKind::ConfirmPromotion]),
        },
    })
}

/// Whether the steps advance when the judges pass (an enforcing `compare` metric) rather than
/// after a count of checks.
pub fn paced_by_evidence(spec: &RolloutSpec) -> bool {
    spec.analysis
        .metrics
        .iter()
        .any(|m| m.compare.is_some() && m.mode.is_enforce())
}

fn canary_stages(c: &CanaryStrategy, at: &FieldPath, p: &mut Problems<'_>) -> Option<Vec<Stage>> {
    let cookie = match &c.session_affinity {
        None => None,
        Some(a) => match crate::duration::parse(&a.max_age) {
            Ok(d) if d.as_secs() > 0 => Some(SetCookie {
                name: a.cookie_name.clone(),
                value: STICKY_COOKIE_VALUE.to_string(),
                max_age_seconds: d.as_secs(),
            }),
            Ok(_) => {
                p.add(
                    &at.field("sessionAffinity").field("maxAge"),
                    "must be at least 1s",
                );
                return None;
            }
            Err(e) => {
                p.add(&at.field("sessionAffinity").field("maxAge"), e);
                return None;
            }
        },
    };
    Some(
        c.weights()
            .into_iter()
            .map(|w| Stage {
                label: match cookie {
                    Some(_) => format!("canary {w}% (sticky)"),
                    None => format!("canary {w}%"),
                },
                traffic: match &cookie {
                    Some(cookie) => TrafficPlan::sticky_weighted(w, cookie),
                    None => TrafficPlan::weighted(w),
                },
                checks: 1,
                gates: Vec::new(),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::spec::{
        AbTestStrategy, DarkLaunchStrategy, HttpMatch, Schedule, Strategy as Strat, StringMatch,
        Upstreams, Webhook,
    };

    fn base() -> RolloutSpec {
        RolloutSpec {
            upstreams: Some(Upstreams {
                stable: "127.0.0.1:1".into(),
                canary: "127.0.0.1:2".into(),
                stable_revision: None,
            }),
            target_ref: None,
            revision: None,
            service: crate::spec::ServiceSpec {
                port: 9080,
                ..Default::default()
            },
            routing: Default::default(),
            strategy: Strat::default(),
            analysis: Default::default(),
            schedule: None,
            promotion: Default::default(),
            progress_deadline: Default::default(),
            webhooks: Vec::new(),
            skip_analysis: false,
            notifications: Vec::new(),
        }
    }

    fn header_match(value: &str) -> HttpMatch {
        HttpMatch {
            headers: [(
                "x-user".to_string(),
                StringMatch {
                    exact: Some(value.into()),
                    ..Default::default()
                },
            )]
            .into(),
        }
    }

    /// Specs of every shape, most of them invalid: weights out of range or out of order,
    /// several strategies or none, zero limits, unreadable intervals and windows.
    fn any_spec() -> impl Strategy<Value = RolloutSpec> {
        let steps = proptest::collection::vec(0u32..=120, 0..6);
        let canary = (
            proptest::option::of(steps),
            proptest::option::of(0u32..=60),
            proptest::option::of(0u32..=120),
        )
            .prop_map(
                |(steps, step_weight, max_weight)| crate::spec::CanaryStrategy {
                    steps,
                    step_weight,
                    max_weight,
                    session_affinity: None,
                },
            );
        let matches =
            proptest::collection::vec("[a-z\r\n]{0,3}".prop_map(|v| header_match(&v)), 0..3);
        let dark = (
            matches.clone(),
            proptest::option::of(0u32..=120),
            0u32..3,
            proptest::option::of(canary.clone()),
        )
            .prop_map(|(matches, mirror_percent, iterations, then_canary)| {
                DarkLaunchStrategy {
                    matches,
                    mirror_percent,
                    iterations,
                    then_canary,
                }
            });
        let ab = (matches, 0u32..3).prop_map(|(matches, iterations)| AbTestStrategy {
            matches,
            iterations,
        });
        let strategy = (
            proptest::option::of(canary),
            proptest::option::of(dark),
            proptest::option::of(ab),
        )
            .prop_map(|(canary, dark_launch, ab_test)| Strat {
                canary,
                dark_launch,
                ab_test,
            });
        let interval = prop_oneof![
            Just("30s".to_string()),
            Just("0s".to_string()),
            Just("soon".to_string()),
            Just("1h30m".to_string()),
            "[0-9a-z]{0,4}",
        ];
        let schedule = proptest::option::of(prop_oneof![
            Just("* 9-16 * * Mon-Fri".to_string()),
            Just("not a cron".to_string()),
            Just("* * 30 2 *".to_string()),
        ]);
        let hooks = proptest::sample::subsequence(
            vec![
                WebhookKind::ConfirmRollout,
                WebhookKind::PreRollout,
                WebhookKind::ConfirmTrafficIncrease,
                WebhookKind::ConfirmPromotion,
            ],
            0..=4,
        );
        (
            strategy,
            interval,
            0u32..3,
            0u32..3,
            schedule,
            hooks,
            any::<bool>(),
        )
            .prop_map(|(strategy, interval, fl, il, window, hooks, manual)| {
                let mut spec = base();
                spec.strategy = strategy;
                spec.analysis.interval = interval;
                spec.analysis.failure_limit = fl;
                spec.analysis.inconclusive_limit = il;
                spec.schedule = window.map(|w| Schedule {
                    windows: vec![w],
                    time_zone: None,
                });
                spec.webhooks = hooks
                    .into_iter()
                    .map(|kind| Webhook {
                        name: kind.as_str().into(),
                        kind,
                        url: "http://127.0.0.1:1/hook".into(),
                        timeout: None,
                        metadata: Default::default(),
                        token_from_env: None,
                        token_from_file: None,
                    })
                    .collect();
                spec.promotion.manual = manual;
                spec
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Never panics; accepts exactly what the validation rules accept; and what it accepts
        /// is runnable: at least one stage, each needing a check, canary weights inside 0..=100
        /// and strictly increasing, every stage's traffic adding up to 100, gates only where
        /// the spec declares them.
        #[test]
        fn a_plan_exists_exactly_for_valid_specs_and_is_runnable(spec in any_spec()) {
            let mut findings = Findings::default();
            rules::check_spec(&spec, &mut findings);
            let parsed = RolloutPlan::try_from(&spec);
            prop_assert_eq!(parsed.is_ok(), findings.0.is_empty(), "{:?} / {:?}", parsed.as_ref().err(), findings.0);
            match parsed {
                Err(e) => {
                    prop_assert!(!e.0.is_empty());
                    prop_assert!(e.0.iter().all(|p| p.path.starts_with("spec")), "{:?}", e.0);
                }
                Ok(plan) => {
                    prop_assert!(!plan.stages.is_empty());
                    prop_assert!(plan.analysis.interval > Duration::zero());
                    let mut last = 0;
                    for stage in &plan.stages {
                        prop_assert!(stage.checks >= 1);
                        prop_assert!(stage.traffic.check().is_ok());
                        let w = stage.traffic.canary_weight();
                        prop_assert!(w <= 100);
                        if stage.label.starts_with("canary") {
                            prop_assert!(w > last, "weights must strictly increase: {:?}", plan.stages);
                            last = w;
                        }
                        for g in &stage.gates {
                            prop_assert!(spec.webhooks.iter().any(|h| h.kind == *g));
                        }
                    }
                    prop_assert_eq!(plan.promotion.manual, spec.promotion.manual);
                }
            }
        }
    }

    #[test]
    fn gates_sit_where_the_engine_asks_for_them() {
        let mut spec = base();
        spec.strategy.canary = Some(crate::spec::CanaryStrategy {
            steps: Some(vec![10, 50]),
            ..Default::default()
        });
        for kind in [
            WebhookKind::PreRollout,
            WebhookKind::ConfirmTrafficIncrease,
            WebhookKind::ConfirmPromotion,
            WebhookKind::Rollback,
        ] {
            spec.webhooks.push(Webhook {
                name: kind.as_str().into(),
                kind,
                url: "http://127.0.0.1:1/hook".into(),
                timeout: None,
                metadata: Default::default(),
                token_from_env: None,
                token_from_file: None,
            });
        }
        let plan = RolloutPlan::try_from(&spec).expect("valid");
        assert_eq!(plan.stages[0].gates, vec![WebhookKind::PreRollout]);
        assert_eq!(
            plan.stages[1].gates,
            vec![WebhookKind::ConfirmTrafficIncrease]
        );
        assert_eq!(plan.promotion.gates, vec![WebhookKind::ConfirmPromotion]);
        assert_eq!(
            plan.analysis.interval_std,
            std::time::Duration::from_secs(60)
        );
    }

    #[test]
    fn the_error_names_the_first_problem_and_counts_the_rest() {
        let mut spec = base();
        spec.strategy.canary = Some(crate::spec::CanaryStrategy {
            steps: Some(vec![50, 20]),
            ..Default::default()
        });
        spec.analysis.failure_limit = 0;
        let e = RolloutPlan::try_from(&spec).unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("spec."), "{text}");
        assert!(text.ends_with("(and 1 more problems)"), "{text}");
    }
}
