//! Analysis against a real Prometheus (Debian `prometheus`), started on 127.0.0.1 with a 1 s
//! scrape of an exporter this test serves: Envoy's metric names, with counters and histograms
//! that grow in fixed proportions, so every rate ratio and quantile is known exactly.
//!
//! Clusters (standalone rollouts in namespace `default` → `<name>-canary` / `<name>-stable`):
//! - `web-canary`: 95% 2xx / 5% 5xx; latency 90% in (10, 25] ms, 10% in (250, 500] ms
//!   → p99 = 250 + 250·(99−90)/10 = 475 ms.
//! - `web-stable`: 100% 2xx; latency 100% in (10, 25] ms → p99 = 10 + 15·0.99 = 24.85 ms.
//! - `bad-canary`: only 5xx (no 2xx series at all) → success rate 0%, not "no data".
//! - `idle-canary`: series exist but never move → 0/0 = NaN → Inconclusive.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use sluice_analysis::run::RunOptions;
use sluice_analysis::{
    AddressPolicy, MetricSource, PrometheusAnalyzer, PrometheusConfig, PrometheusSource, QueryValue,
};
use sluice_core::spec::{CheckResult, Rollout, Verdict};
use sluice_testkit::procs::Prometheus;
use sluice_testkit::procs::prometheus::scrape_config;

const BUCKETS: [&str; 12] = [
    "0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "+Inf",
];

/// Per tick: (2xx, 5xx) responses and observations per bucket index (upper bound).
struct Cluster {
    name: &'static str,
    ok: u64,
    err: u64,
    observations: Vec<(usize, u64)>,
}

#[derive(Default)]
struct Counters {
    /// Per cluster: 2xx, 5xx, cumulative bucket counts, sum.
    state: Vec<(u64, u64, [u64; 12], f64)>,
}

fn clusters() -> Vec<Cluster> {
    vec![
        Cluster {
            name: "web-canary",
            ok: 19,
            err: 1,
            observations: vec![(4, 18), (8, 2)],
        },
        Cluster {
            name: "web-stable",
            ok: 20,
            err: 0,
            observations: vec![(4, 20)],
        },
        Cluster {
            name: "bad-canary",
            ok: 0,
            err: 20,
            observations: vec![(4, 20)],
        },
        Cluster {
            name: "bad-stable",
            ok: 20,
            err: 0,
            observations: vec![(4, 20)],
        },
        Cluster {
            name: "idle-canary",
            ok: 0,
            err: 0,
            observations: vec![],
        },
    ]
}

fn tick(c: &mut Counters, spec: &[Cluster]) {
    for (i, cl) in spec.iter().enumerate() {
        let s = &mut c.state[i];
        s.0 += cl.ok;
        s.1 += cl.err;
        for &(bucket, n) in &cl.observations {
            // Cumulative buckets: an observation in bucket b counts in every bucket >= b.
            for b in bucket..BUCKETS.len() {
                s.2[b] += n;
            }
            s.3 += n as f64 * BUCKETS[bucket].parse::<f64>().unwrap_or(0.0);
        }
    }
}

fn render(c: &Counters, spec: &[Cluster]) -> String {
    let mut out = String::new();
    out.push_str("# TYPE envoy_cluster_upstream_rq_xx counter\n");
    for (i, cl) in spec.iter().enumerate() {
        let (ok, err) = (c.state[i].0, c.state[i].1);
        // Like Envoy: a code class appears once it has been seen (bad-canary has no 2xx series).
        if cl.ok > 0 || cl.name == "idle-canary" {
            let _ = writeln!(
                out,
                "envoy_cluster_upstream_rq_xx{{envoy_response_code_class=\"2\",envoy_cluster_name=\"{}\"}} {ok}",
                cl.name
            );
        }
        if cl.err > 0 || cl.name == "idle-canary" {
            let _ = writeln!(
                out,
                "envoy_cluster_upstream_rq_xx{{envoy_response_code_class=\"5\",envoy_cluster_name=\"{}\"}} {err}",
                cl.name
            );
        }
    }
    out.push_str("# TYPE envoy_cluster_upstream_rq counter\n");
    for (i, cl) in spec.iter().enumerate() {
        let _ = writeln!(
            out,
            "envoy_cluster_upstream_rq{{envoy_response_code=\"200\",envoy_cluster_name=\"{}\"}} {}",
            cl.name, c.state[i].0
        );
        let _ = writeln!(
            out,
            "envoy_cluster_upstream_rq{{envoy_response_code=\"503\",envoy_cluster_name=\"{}\"}} {}",
            cl.name, c.state[i].1
        );
    }
    out.push_str("# TYPE envoy_cluster_upstream_rq_time histogram\n");
    for (i, cl) in spec.iter().enumerate() {
        let s = &c.state[i];
        for (b, le) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "envoy_cluster_upstream_rq_time_bucket{{envoy_cluster_name=\"{}\",le=\"{le}\"}} {}",
                cl.name, s.2[b]
            );
        }
        let _ = writeln!(
            out,
            "envoy_cluster_upstream_rq_time_sum{{envoy_cluster_name=\"{}\"}} {}",
            cl.name, s.3
        );
        let _ = writeln!(
            out,
            "envoy_cluster_upstream_rq_time_count{{envoy_cluster_name=\"{}\"}} {}",
            cl.name,
            s.2[BUCKETS.len() - 1]
        );
    }
    out
}

/// Serves /metrics on 127.0.0.1 and advances the counters every 100 ms. Returns `host:port`.
async fn exporter() -> String {
    let spec = Arc::new(clusters());
    let counters = Arc::new(Mutex::new(Counters {
        state: vec![(0, 0, [0; 12], 0.0); spec.len()],
    }));
    {
        let (spec, counters) = (spec.clone(), counters.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(100));
            loop {
                every.tick().await;
                tick(&mut counters.lock().expect("lock"), &spec);
            }
        });
    }
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let (spec, counters) = (spec.clone(), counters.clone());
            async move { render(&counters.lock().expect("lock"), &spec) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

fn rollout(name: &str, metrics: &str) -> Rollout {
    let yaml = format!(
        "apiVersion: sluice.dev/v1alpha1\nkind: Rollout\nmetadata: {{name: {name}}}\nspec:\n  \
         upstreams: {{stable: '127.0.0.1:1', canary: '127.0.0.1:2'}}\n  service: {{port: 80}}\n  \
         strategy: {{canary: {{steps: [10]}}}}\n  analysis:\n    interval: 10s\n    \
         provider: {{prometheus: {{address: 'http://127.0.0.1:1'}}}}\n    metrics: {metrics}\n"
    );
    serde_yaml::from_str(&yaml).expect("rollout")
}

/// Polls `promql` until `ok` holds for its value, or panics after `timeout`.
async fn wait_for(
    source: &PrometheusSource,
    promql: &str,
    timeout: Duration,
    ok: impl Fn(&QueryValue) -> bool,
) {
    let start = Instant::now();
    loop {
        let last = source.query(promql, Utc::now()).await;
        if last.as_ref().is_ok_and(&ok) {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "{promql}: still {last:?} after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn check<'a>(checks: &'a [CheckResult], metric: &str) -> &'a CheckResult {
    checks
        .iter()
        .find(|c| c.metric == metric)
        .unwrap_or_else(|| panic!("no check {metric}"))
}

fn approx(c: &CheckResult, want: f64, tol: f64) {
    let v = c
        .value
        .unwrap_or_else(|| panic!("{}: no value ({})", c.metric, c.reason));
    assert!(
        (v - want).abs() <= tol,
        "{}: value {v}, want {want} ± {tol} ({})",
        c.metric,
        c.reason
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_against_a_real_prometheus() {
    sluice_testkit::fakes::install_crypto();
    let target = exporter().await;
    let mut prom = Prometheus::start(&scrape_config("envoy", &[target], Duration::from_secs(1)))
        .await
        .expect("start prometheus (install it with scripts/install-deps.sh)");
    prom.wait_for_targets("envoy", Duration::from_secs(30))
        .await
        .expect("target up");
    let source = PrometheusSource::new(PrometheusConfig::new(prom.url())).expect("source");
    // Rates need two scrapes inside the window; the comparison (12s window, 4s rate windows)
    // needs >= 8 points per version: wait for 16s of samples.
    wait_for(
        &source,
        r#"count_over_time(envoy_cluster_upstream_rq_xx{envoy_cluster_name="web-stable"}[16s])"#,
        Duration::from_secs(60),
        |v| matches!(v, QueryValue::Vector(s) if s.first().is_some_and(|s| s.value >= 15.0)),
    )
    .await;

    let analyzer = PrometheusAnalyzer::new(AddressPolicy::Override(prom.url().to_string()))
        .expect("analyzer")
        .with_options(RunOptions {
            scrape_interval: Duration::from_secs(1),
        });
    use sluice_core::exec::Analyzer;

    let web = rollout(
        "web",
        "[{name: sr-strict, builtin: request-success-rate, thresholds: {min: 99}},
          {name: sr-loose, builtin: request-success-rate, thresholds: {min: 90}},
          {name: p99-ok, builtin: request-duration, thresholds: {max: 500}},
          {name: p99-tight, builtin: request-duration, thresholds: {max: 400}},
          {name: busy-enough, builtin: request-success-rate, minRequests: 100, thresholds: {min: 90}},
          {name: too-quiet, builtin: request-success-rate, minRequests: 1000000000, thresholds: {min: 90}},
          {name: lat-vs-stable, builtin: request-duration, interval: 12s, compare: {kind: latency}},
          {name: err-vs-stable, builtin: request-success-rate, compare: {kind: error-rate, worse: lower}},
          {name: custom, query: 'sum(rate(envoy_cluster_upstream_rq_xx{envoy_cluster_name=\"{{ stable }}\"}[{{ interval }}]))', thresholds: {min: 1}}]",
    );
    let checks = analyzer.analyze(&web, Utc::now()).await;
    let show: Vec<String> = checks
        .iter()
        .map(|c| format!("{}: {:?} {:?} {}", c.metric, c.verdict, c.value, c.reason))
        .collect();
    let show = show.join("\n");

    let c = check(&checks, "sr-strict");
    assert_eq!(c.verdict, Verdict::Fail, "{show}");
    approx(c, 95.0, 1e-6);
    assert_eq!(check(&checks, "sr-loose").verdict, Verdict::Pass, "{show}");
    let c = check(&checks, "p99-ok");
    assert_eq!(c.verdict, Verdict::Pass, "{show}");
    approx(c, 475.0, 1e-6);
    assert_eq!(check(&checks, "p99-tight").verdict, Verdict::Fail, "{show}");
    assert_eq!(
        check(&checks, "busy-enough").verdict,
        Verdict::Pass,
        "{show}"
    );
    let c = check(&checks, "too-quiet");
    assert_eq!(c.verdict, Verdict::Inconclusive, "{show}");
    assert!(c.reason.contains("below minRequests"), "{show}");
    let c = check(&checks, "lat-vs-stable");
    assert_eq!(c.verdict, Verdict::Fail, "{show}");
    assert!(c.reason.contains("shifted"), "{show}");
    let c = check(&checks, "err-vs-stable");
    assert_eq!(c.verdict, Verdict::Fail, "{show}");
    assert!(c.reason.contains("canary 5xx"), "{show}");
    let c = check(&checks, "custom");
    assert_eq!(c.verdict, Verdict::Pass, "{show}");
    // web-stable answers 20 requests per 100 ms.
    approx(c, 200.0, 20.0);

    // Only 5xx: zero-filled to 0%, a Fail, not "no data".
    let bad = rollout(
        "bad",
        "[{name: sr, builtin: request-success-rate, thresholds: {min: 99}}]",
    );
    let c = &analyzer.analyze(&bad, Utc::now()).await[0];
    assert_eq!(c.verdict, Verdict::Fail, "{}", c.reason);
    approx(c, 0.0, 0.0);

    // No traffic: NaN, Inconclusive (for both builtins), never Pass.
    let idle = rollout(
        "idle",
        "[{name: sr, builtin: request-success-rate, thresholds: {min: 99}},
          {name: p99, builtin: request-duration, thresholds: {max: 500}}]",
    );
    let checks = analyzer.analyze(&idle, Utc::now()).await;
    let c = check(&checks, "sr");
    assert_eq!(c.verdict, Verdict::Inconclusive, "{}", c.reason);
    assert!(c.reason.contains("NaN"), "{}", c.reason);
    assert_eq!(check(&checks, "p99").verdict, Verdict::Inconclusive);

    // `sluice analyze` on a file, against this Prometheus. In-process: the binary in the shared
    // target directory may belong to another checkout's build while this test runs.
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("web.yaml");
    std::fs::write(&file, serde_yaml::to_string(&web).expect("yaml")).expect("write");
    let mut out = Vec::new();
    let all_pass = sluice_analysis::report::analyze(
        &file,
        Some(prom.url().to_string()),
        Duration::from_secs(1),
        &mut out,
    )
    .await
    .expect("analyze");
    let text = String::from_utf8_lossy(&out);
    eprintln!("{show}\n\n{text}");
    assert!(!all_pass, "some checks fail: {text}");
    assert!(
        text.contains("rollout default/web (data plane envoy"),
        "{text}"
    );
    assert!(
        text.contains("  sr-strict: Fail\n    reason:    success rate 95% < min 99"),
        "{text}"
    );
    assert!(text.contains("    threshold: min 99"), "{text}");
    assert!(
        text.contains(r#"envoy_cluster_name="web-canary", envoy_response_code_class!="5"}[10s]"#),
        "{text}"
    );
    assert!(text.contains("  p99-ok: Pass"), "{text}");

    // The standalone example (rollouts/analysis/standalone-web.yaml), pointed at this Prometheus:
    // its rollout `web` reads the same clusters.
    let example = sluice_testkit::files::root().join("rollouts/analysis/standalone-web.yaml");
    let mut out = Vec::new();
    sluice_analysis::report::analyze(
        &example,
        Some(prom.url().to_string()),
        Duration::from_secs(1),
        &mut out,
    )
    .await
    .expect("analyze the example");
    let text = String::from_utf8_lossy(&out);
    eprintln!("{text}");
    for expected in [
        "  success-rate: Fail\n    reason:    success rate 95% < min 99",
        "  latency-p99: Pass\n    reason:    p99 duration 475 ms <= max 500",
        "  errors-vs-stable: Fail",
        "  upstream-resets: Pass",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    // Its 2-minute comparison has not got enough history yet: never a Pass.
    assert!(!text.contains("  latency-vs-stable: Pass"), "{text}");

    // Prometheus gone: Inconclusive with the reason, never Pass.
    prom.stop();
    let checks = analyzer.analyze(&web, Utc::now()).await;
    assert_eq!(checks.len(), 9);
    for c in &checks {
        assert_eq!(
            c.verdict,
            Verdict::Inconclusive,
            "{}: {}",
            c.metric,
            c.reason
        );
        assert!(
            c.reason.contains("unreachable"),
            "{}: {}",
            c.metric,
            c.reason
        );
    }
}
