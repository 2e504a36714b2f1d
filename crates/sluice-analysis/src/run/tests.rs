//! Metric runs against a fake source that answers by matching the rendered PromQL.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::*;
use crate::source::{QueryValue, Sample, Series, SourceError};
use sluice_core::spec::{Comparison, Direction, Thresholds};

type Answer = Result<QueryValue, SourceError>;

/// Answers the first rule whose needle occurs in the query; records every query.
struct Fake {
    instant: Vec<(&'static str, Answer)>,
    range: Vec<(&'static str, Result<Vec<Series>, SourceError>)>,
    seen: Mutex<Vec<String>>,
}

impl Fake {
    fn new(instant: Vec<(&'static str, Answer)>) -> Self {
        Fake {
            instant,
            range: Vec::new(),
            seen: Mutex::default(),
        }
    }
}

#[async_trait::async_trait]
impl MetricSource for Fake {
    async fn query(&self, promql: &str, _at: DateTime<Utc>) -> Result<QueryValue, SourceError> {
        self.seen.lock().expect("lock").push(promql.to_string());
        self.instant
            .iter()
            .find(|(needle, _)| promql.contains(needle))
            .map(|(_, a)| a.clone())
            .unwrap_or(Ok(QueryValue::Vector(vec![])))
    }
    async fn query_range(&self, promql: &str, _r: TimeRange) -> Result<Vec<Series>, SourceError> {
        self.seen.lock().expect("lock").push(promql.to_string());
        self.range
            .iter()
            .find(|(needle, _)| promql.contains(needle))
            .map(|(_, a)| a.clone())
            .unwrap_or(Ok(vec![]))
    }
}

fn one(v: f64) -> Answer {
    Ok(QueryValue::Vector(vec![Sample {
        labels: BTreeMap::new(),
        at: 0.0,
        value: v,
    }]))
}

fn series(values: &[f64]) -> Result<Vec<Series>, SourceError> {
    Ok(vec![Series {
        labels: BTreeMap::new(),
        points: values
            .iter()
            .enumerate()
            .map(|(i, v)| (i as f64, *v))
            .collect(),
    }])
}

fn rollout(metrics: &str) -> Rollout {
    let spec: sluice_core::spec::RolloutSpec = serde_yaml::from_str(&format!(
        "upstreams: {{stable: '127.0.0.1:1', canary: '127.0.0.1:2'}}\nservice: {{port: 80}}\n\
         strategy: {{canary: {{steps: [10]}}}}\nanalysis:\n  interval: 30s\n  metrics: {metrics}\n"
    ))
    .expect("spec");
    Rollout::new("web", spec)
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).expect("time")
}

async fn run_first(source: &Fake, r: &Rollout) -> MetricRun {
    run_metric(
        source,
        r,
        &r.spec.analysis.metrics[0],
        now(),
        RunOptions::default(),
    )
    .await
}

#[tokio::test]
async fn builtin_success_rate_pass_and_fail() {
    let r = rollout("[{name: sr, builtin: request-success-rate, thresholds: {min: 99}}]");
    let run = run_first(&Fake::new(vec![("web-canary", one(99.5))]), &r).await;
    assert_eq!(run.check.verdict, Verdict::Pass, "{}", run.check.reason);
    assert_eq!(run.check.value, Some(99.5));
    assert_eq!(run.check.min, Some(99.0));
    assert_eq!(run.check.reason, "success rate 99.5% >= min 99");
    assert!(
        run.queries[0]
            .promql
            .contains(r#"envoy_cluster_name="web-canary""#)
    );
    assert!(run.queries[0].promql.contains("[30s]"));

    let run = run_first(&Fake::new(vec![("web-canary", one(0.0))]), &r).await;
    assert_eq!(run.check.verdict, Verdict::Fail);
    assert_eq!(run.check.reason, "success rate 0% < min 99");
}

#[tokio::test]
async fn no_data_and_errors_are_inconclusive_with_reasons() {
    let r = rollout("[{name: p99, builtin: request-duration, thresholds: {max: 500}}]");
    let cases: Vec<(Answer, &str)> = vec![
        (one(f64::NAN), "NaN"),
        (Ok(QueryValue::Vector(vec![])), "no series"),
        (
            Err(SourceError::Unreachable {
                address: "http://127.0.0.1:1".into(),
                attempts: 3,
                detail: "connection refused".into(),
            }),
            "unreachable",
        ),
        (
            Err(SourceError::Timeout {
                address: "http://x".into(),
                after: std::time::Duration::from_secs(10),
            }),
            "did not answer within",
        ),
    ];
    for (answer, words) in cases {
        let run = run_first(&Fake::new(vec![("histogram_quantile", answer)]), &r).await;
        assert_eq!(
            run.check.verdict,
            Verdict::Inconclusive,
            "{}",
            run.check.reason
        );
        assert!(
            run.check.reason.contains(words),
            "{:?} should say {words:?}",
            run.check.reason
        );
        assert_eq!(run.queries.len(), 1);
    }
}

#[tokio::test]
async fn too_little_traffic_is_inconclusive_even_when_the_value_fails() {
    let r = rollout(
        "[{name: sr, builtin: request-success-rate, minRequests: 100, thresholds: {min: 99}}]",
    );
    let fake = Fake::new(vec![("increase(", one(12.0)), ("rate(", one(50.0))]);
    let run = run_first(&fake, &r).await;
    assert_eq!(run.check.verdict, Verdict::Inconclusive);
    assert!(
        run.check
            .reason
            .contains("12 requests to the canary in 30s, below minRequests 100"),
        "{}",
        run.check.reason
    );
    // Enough traffic: the same value fails.
    let fake = Fake::new(vec![("increase(", one(1000.0)), ("rate(", one(50.0))]);
    assert_eq!(run_first(&fake, &r).await.check.verdict, Verdict::Fail);
    // Count unknown (Prometheus down): never Pass.
    let fake = Fake::new(vec![
        ("increase(", Err(SourceError::Config("x".into()))),
        ("rate(", one(100.0)),
    ]);
    assert_eq!(
        run_first(&fake, &r).await.check.verdict,
        Verdict::Inconclusive
    );
}

#[tokio::test]
async fn custom_query_renders_variables_and_checks_shape() {
    let r = rollout(
        r#"[{name: q, query: 'sum(x{ns="{{ namespace }}", c="{{ target }}", s="{{ stable }}"}[{{ interval }}])', thresholds: {max: 1}}]"#,
    );
    let fake = Fake::new(vec![(
        "x{",
        Ok(QueryValue::Vector(vec![
            Sample {
                labels: BTreeMap::from([("a".into(), "1".into())]),
                at: 0.0,
                value: 0.5,
            },
            Sample {
                labels: BTreeMap::from([("a".into(), "2".into())]),
                at: 0.0,
                value: 0.5,
            },
        ])),
    )]);
    let run = run_first(&fake, &r).await;
    assert_eq!(run.check.verdict, Verdict::Inconclusive);
    assert!(
        run.check.reason.contains("2 series where one is expected"),
        "{}",
        run.check.reason
    );
    assert_eq!(
        fake.seen.lock().expect("lock")[0],
        r#"sum(x{ns="default", c="web-canary", s="web-stable"}[30s])"#
    );
}

#[tokio::test]
async fn misconfigured_metrics_are_inconclusive() {
    for metrics in [
        "[{name: both, builtin: request-duration, query: 'x', thresholds: {max: 1}}]",
        "[{name: neither, thresholds: {max: 1}}]",
        "[{name: bad, query: '{{ nope }}', thresholds: {max: 1}}]",
        "[{name: win, builtin: request-duration, interval: 'soon', thresholds: {max: 1}}]",
        "[{name: none, builtin: request-duration}]",
    ] {
        let r = rollout(metrics);
        let run = run_first(&Fake::new(vec![("", one(0.1))]), &r).await;
        assert_eq!(
            run.check.verdict,
            Verdict::Inconclusive,
            "{metrics}: {}",
            run.check.reason
        );
    }
}

#[tokio::test]
async fn latency_comparison_reads_both_versions() {
    let mut r = rollout("[{name: lat, builtin: request-duration}]");
    r.spec.analysis.metrics[0].compare = Some(Comparison {
        kind: ComparisonKind::Latency,
        worse: Direction::Higher,
        margin: 0.1,
        confidence: 0.95,
        detect: None,
        power: None,
    });
    let stable: Vec<f64> = (0..30).map(|i| 100.0 + f64::from(i % 7)).collect();
    let slow: Vec<f64> = stable.iter().map(|v| v * 1.5).collect();
    let mut fake = Fake::new(vec![]);
    fake.range = vec![
        ("web-canary", series(&slow)),
        ("web-stable", series(&stable)),
    ];
    let run = run_first(&fake, &r).await;
    assert_eq!(run.check.verdict, Verdict::Fail, "{}", run.check.reason);
    assert_eq!(run.queries.len(), 2);
    // The judge's step: 30s / 30 points = 1s, but not below the 15s scrape default; rate window 30s+.
    assert!(
        run.queries[0].purpose.contains("step 15s"),
        "{:?}",
        run.queries[0]
    );
    assert!(
        run.queries[0].promql.contains("[60s]"),
        "{}",
        run.queries[0].promql
    );

    fake.range = vec![
        ("web-canary", series(&stable)),
        ("web-stable", series(&stable)),
    ];
    let opts = RunOptions {
        scrape_interval: std::time::Duration::from_secs(1),
    };
    let run = run_metric(&fake, &r, &r.spec.analysis.metrics[0], now(), opts).await;
    assert_eq!(run.check.verdict, Verdict::Pass, "{}", run.check.reason);
    // 1s scrape: step 1s, rate window max(1s + 1s, 4s).
    assert!(
        run.queries[0].purpose.contains("step 1s"),
        "{:?}",
        run.queries[0]
    );
    assert!(
        run.queries[0].promql.contains("[4s]"),
        "{}",
        run.queries[0].promql
    );

    fake.range = vec![("web-stable", series(&stable))];
    let run = run_metric(&fake, &r, &r.spec.analysis.metrics[0], now(), opts).await;
    assert_eq!(run.check.verdict, Verdict::Inconclusive);
    assert!(
        run.check.reason.contains("no data for the canary"),
        "{}",
        run.check.reason
    );
}

#[tokio::test]
async fn error_rate_comparison_uses_counts() {
    let mut r = rollout("[{name: err, builtin: request-success-rate, thresholds: {min: 90}}]");
    r.spec.analysis.metrics[0].compare = Some(Comparison {
        kind: ComparisonKind::ErrorRate,
        worse: Direction::Lower,
        margin: 0.1,
        confidence: 0.95,
        detect: None,
        power: None,
    });
    r.spec.analysis.metrics[0].thresholds = Thresholds {
        min: Some(90.0),
        max: None,
    };
    let fake = Fake::new(vec![
        (r#"web-canary", envoy_response_code_class="5""#, one(500.0)),
        (r#"web-stable", envoy_response_code_class="5""#, one(100.0)),
        ("increase(", one(10_000.0)),
        ("rate(", one(95.0)),
    ]);
    let run = run_first(&fake, &r).await;
    // The threshold passes (95% >= 90%), the comparison fails: Fail.
    assert_eq!(run.check.verdict, Verdict::Fail, "{}", run.check.reason);
    assert!(
        run.check.reason.contains("success rate 95% >= min 90"),
        "{}",
        run.check.reason
    );
    assert!(
        run.check.reason.contains("canary 5xx 500/10000"),
        "{}",
        run.check.reason
    );
    assert_eq!(
        run.check.value,
        Some(95.0),
        "the threshold part's value is shown"
    );
}

#[tokio::test]
async fn comparisons_accumulate_evidence_over_the_step() {
    let mut r = rollout("[{name: err, builtin: request-success-rate}]");
    r.spec.analysis.metrics[0].compare = Some(Comparison {
        kind: ComparisonKind::ErrorRate,
        worse: Direction::Lower,
        margin: 0.1,
        confidence: 0.99,
        detect: None,
        power: None,
    });
    // Without a step start, or early in the step: one window, first look.
    assert_eq!(
        evidence_span(&r, std::time::Duration::from_secs(30), now()),
        (std::time::Duration::from_secs(30), 1)
    );
    let mut status = sluice_core::spec::RolloutStatus {
        step_started_at: Some(now() - chrono::Duration::seconds(10)),
        ..Default::default()
    };
    r.status = Some(status.clone());
    assert_eq!(
        evidence_span(&r, std::time::Duration::from_secs(30), now()).1,
        1
    );
    // Ten minutes into the step: the counts cover all of it (look 20 of 30 s windows).
    status.step_started_at = Some(now() - chrono::Duration::seconds(600));
    r.status = Some(status);
    assert_eq!(
        evidence_span(&r, std::time::Duration::from_secs(30), now()),
        (std::time::Duration::from_secs(600), 20)
    );
    // 1% errors on both sides: 100 of 10000 is too few to decide, and the judge says how many
    // more requests it needs.
    let fake = Fake::new(vec![
        (r#"web-canary", envoy_response_code_class="5""#, one(12.0)),
        (r#"web-stable", envoy_response_code_class="5""#, one(10.0)),
        ("increase(", one(1000.0)),
    ]);
    let run = run_first(&fake, &r).await;
    assert_eq!(
        run.check.verdict,
        Verdict::Inconclusive,
        "{}",
        run.check.reason
    );
    assert!(
        run.check.reason.contains("more requests to the canary"),
        "{}",
        run.check.reason
    );
    assert!(
        run.queries.iter().all(|q| q.promql.contains("[600s]")),
        "{:#?}",
        run.queries
    );
}

#[tokio::test]
async fn a_shadow_metric_says_so_in_its_reason() {
    let mut r = rollout("[{name: sr, builtin: request-success-rate, thresholds: {min: 99}}]");
    r.spec.analysis.metrics[0].mode = sluice_core::spec::MetricMode::Shadow;
    let fake = Fake::new(vec![("rate(", one(95.0))]);
    let run = run_first(&fake, &r).await;
    // Judged like any check...
    assert_eq!(run.check.verdict, Verdict::Fail, "{}", run.check.reason);
    // ...and marked as one the engine will not act on.
    assert!(
        run.check
            .reason
            .starts_with("shadow, never acts: success rate 95% < min 99"),
        "{}",
        run.check.reason
    );
}
