//! Engine flow tests (table style). Property tests of the invariants live in `props.rs`.

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::*;
use crate::spec::*;

pub(crate) fn canary_spec(steps: &[u32]) -> RolloutSpec {
    RolloutSpec {
        target_ref: None,
        upstreams: Some(Upstreams {
            stable: "127.0.0.1:1".into(),
            canary: "127.0.0.1:2".into(),
        }),
        revision: None,
        service: ServiceSpec {
            port: 9080,
            ..Default::default()
        },
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
        webhooks: vec![],
        skip_analysis: false,
        notifications: vec![],
    }
}

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
