//! sluice's own metrics (OpenMetrics text), logs (formats, span fields, no secrets).
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::{Arc, Mutex};

use chrono::Duration;
use sluice_core::exec::{BoxError, TrafficRouter};
use sluice_core::spec::{Notification, NotificationKind, Rollout, RolloutStatus, Verdict};
use sluice_core::traffic::TrafficPlan;
use sluice_notify::Telemetry;
use sluice_notify::notify::{Notifier, NotifyConfig};
use sluice_notify::webhooks::HttpWebhooks;
use sluice_telemetry::Metrics;
use sluice_telemetry::logging::{LogFormat, subscriber};
use sluice_testkit::fakes::*;
use sluice_testkit::observed_tick_delivered as observed_tick;
use sluice_testkit::plan_of;
use tracing_subscriber::EnvFilter;

// ------------------------------------------------------------------ an OpenMetrics parser

#[derive(Debug, Default)]
struct Family {
    kind: String,
    help: bool,
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

fn valid_name(n: &str) -> bool {
    let mut c = n.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':')
}

fn parse_value(v: &str) -> Result<f64, String> {
    match v {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => v.parse().map_err(|_| format!("bad value {v:?}")),
    }
}

fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        let name: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        if name.is_empty() {
            break;
        }
        if !valid_name(&name) || chars.next() != Some('=') || chars.next() != Some('"') {
            return Err(format!("bad label in {s:?}"));
        }
        let mut val = String::new();
        loop {
            match chars.next() {
                Some('\\') => match chars.next() {
                    Some('n') => val.push('\n'),
                    Some(c @ ('\\' | '"')) => val.push(c),
                    _ => return Err(format!("bad escape in {s:?}")),
                },
                Some('"') => break,
                Some(c) => val.push(c),
                None => return Err(format!("unterminated label value in {s:?}")),
            }
        }
        if out.insert(name.clone(), val).is_some() {
            return Err(format!("duplicate label {name}"));
        }
        match chars.next() {
            Some(',') => continue,
            None => break,
            Some(c) => return Err(format!("unexpected {c:?} in labels {s:?}")),
        }
    }
    Ok(out)
}

/// Parses the OpenMetrics text format strictly enough to catch what Prometheus rejects:
/// metadata before samples, samples belong to their family with a legal suffix, label
/// syntax, values, histogram buckets cumulative and ending in +Inf == _count, `# EOF` last.
fn parse_openmetrics(text: &str) -> Result<BTreeMap<String, Family>, String> {
    let mut fams: BTreeMap<String, Family> = BTreeMap::new();
    let mut current: Option<String> = None;
    let lines: Vec<&str> = text.lines().collect();
    if lines.last() != Some(&"# EOF") {
        return Err("missing # EOF".into());
    }
    for line in &lines[..lines.len() - 1] {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kw, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let arg = parts.next().unwrap_or("");
            if !valid_name(name) {
                return Err(format!("bad metric name in {line:?}"));
            }
            let fam = fams.entry(name.to_string()).or_default();
            match kw {
                "HELP" => fam.help = true,
                "UNIT" => {}
                "TYPE" => {
                    if ![
                        "counter",
                        "gauge",
                        "histogram",
                        "summary",
                        "info",
                        "stateset",
                        "unknown",
                        "gaugehistogram",
                    ]
                    .contains(&arg)
                    {
                        return Err(format!("bad type in {line:?}"));
                    }
                    fam.kind = arg.to_string();
                }
                _ => return Err(format!("unknown metadata {line:?}")),
            }
            current = Some(name.to_string());
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            return Err(format!("unexpected line {line:?}"));
        }
        let (series, value) = line
            .rsplit_once(' ')
            .ok_or_else(|| format!("no value in {line:?}"))?;
        let value = parse_value(value)?;
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (
                n,
                parse_labels(
                    l.strip_suffix('}')
                        .ok_or_else(|| format!("bad labels {line:?}"))?,
                )?,
            ),
            None => (series, BTreeMap::new()),
        };
        let fam_name = current
            .clone()
            .ok_or_else(|| format!("sample before TYPE: {line:?}"))?;
        let fam = fams.get_mut(&fam_name).unwrap();
        let suffixes: &[&str] = match fam.kind.as_str() {
            "counter" => &["_total", "_created"],
            "histogram" => &["_bucket", "_sum", "_count", "_created"],
            "gauge" => &[""],
            _ => &["", "_total", "_bucket", "_sum", "_count"],
        };
        if !suffixes.iter().any(|s| name == format!("{fam_name}{s}")) {
            return Err(format!(
                "sample {name} does not belong to {} {fam_name}",
                fam.kind
            ));
        }
        fam.samples.push((name.to_string(), labels, value));
    }
    for (name, fam) in &fams {
        if fam.kind.is_empty() || !fam.help {
            return Err(format!("{name}: missing TYPE or HELP"));
        }
        if fam.kind == "histogram" {
            // Group buckets by their labels without `le`.
            let mut series: BTreeMap<BTreeMap<String, String>, Vec<(f64, f64)>> = BTreeMap::new();
            let mut counts: BTreeMap<BTreeMap<String, String>, f64> = BTreeMap::new();
            for (n, l, v) in &fam.samples {
                let mut key = l.clone();
                if n.ends_with("_bucket") {
                    let le = parse_value(&key.remove("le").ok_or("bucket without le")?)?;
                    series.entry(key).or_default().push((le, *v));
                } else if n.ends_with("_count") {
                    counts.insert(key, *v);
                }
            }
            for (key, buckets) in series {
                if !buckets
                    .windows(2)
                    .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
                {
                    return Err(format!("{name}{key:?}: buckets not cumulative"));
                }
                let last = buckets.last().unwrap();
                if last.0 != f64::INFINITY || Some(&last.1) != counts.get(&key) {
                    return Err(format!("{name}{key:?}: +Inf bucket != _count"));
                }
            }
        }
    }
    Ok(fams)
}

#[test]
fn the_parser_rejects_broken_text() {
    assert!(parse_openmetrics("# TYPE a gauge\n# HELP a x\na 1\n# EOF").is_ok());
    assert!(parse_openmetrics("# TYPE a gauge\n# HELP a x\na 1\n").is_err());
    assert!(parse_openmetrics("# TYPE a gauge\n# HELP a x\nb 1\n# EOF").is_err());
    assert!(parse_openmetrics("# TYPE a counter\n# HELP a x\na 1\n# EOF").is_err());
    assert!(parse_openmetrics("# TYPE a gauge\n# HELP a x\na{x=\"1} 1\n# EOF").is_err());
    assert!(parse_openmetrics("# TYPE a gauge\n# HELP a x\na one\n# EOF").is_err());
    assert!(
        parse_openmetrics(
            "# TYPE h histogram\n# HELP h x\nh_sum 1\nh_count 2\nh_bucket{le=\"1\"} 3\nh_bucket{le=\"+Inf\"} 2\n# EOF"
        )
        .is_err()
    );
}

// ------------------------------------------------------------------ metrics

struct FailingRouter;

#[async_trait::async_trait]
impl TrafficRouter for FailingRouter {
    async fn apply(&self, _: &Rollout, _: &TrafficPlan) -> Result<(), BoxError> {
        Err("envoy config directory not writable".into())
    }
}

/// Drives rollouts so that every series has samples; returns the registry.
async fn populated_metrics() -> Arc<Metrics> {
    install_crypto();
    let rx = Receiver::start().await;
    let tel = Telemetry::new(&NotifyConfig::default()).unwrap();
    let r = rollout(&format!(
        r#"
apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata: {{name: reviews, namespace: bookinfo}}
spec:
  upstreams: {{stable: "127.0.0.1:1", canary: "127.0.0.1:2"}}
  service: {{port: 9080}}
  strategy: {{canary: {{steps: [10, 50]}}}}
  analysis: {{interval: 30s, failureLimit: 1}}
  webhooks:
    - {{name: load, type: rollout, url: "{b}/load"}}
    - {{name: tell, type: event, url: "{b}/event"}}
  notifications:
    - {{type: json, urlFromEnv: SLUICE_TEST_UNSET_URL}}
"#,
        b = rx.base
    ));
    let fakes = Fakes::new(Verdict::Fail);
    let ex = tel.wrap(fakes.executors(Arc::new(tel.webhooks().unwrap())));
    let mut s = RolloutStatus::default();
    let mut now = t0();
    for _ in 0..3 {
        s = observed_tick(&ex, &tel.metrics, &r, &plan_of(&r), &s, None, now)
            .await
            .status;
        now += Duration::seconds(30);
    }
    // An executor error.
    let mut broken = ex.clone();
    broken.router = Arc::new(FailingRouter);
    *fakes.workloads.revision.lock().unwrap() = "v3".into();
    let out = observed_tick(&broken, &tel.metrics, &r, &plan_of(&r), &s, None, now).await;
    assert!(out.error.is_some());
    tel.metrics.set_leader(true);
    tel.metrics
}

fn documented_series() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(sluice_testkit::files::root().join("docs/observability.md"))
        .unwrap();
    let re = regex::Regex::new(r"(?m)^\| `(sluice_[a-z_]+)` \|").unwrap();
    re.captures_iter(&doc).map(|c| c[1].to_string()).collect()
}

#[tokio::test]
async fn metrics_parse_as_openmetrics_and_match_the_docs() {
    let metrics = populated_metrics().await;
    let text = metrics.encode();
    let fams = parse_openmetrics(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));

    // Docs name counters with `_total`, as users query them.
    let exported: BTreeSet<String> = fams
        .iter()
        .map(|(n, f)| {
            if f.kind == "counter" {
                format!("{n}_total")
            } else {
                n.clone()
            }
        })
        .collect();
    let documented = documented_series();
    assert!(documented.len() >= 14, "{documented:?}");
    assert_eq!(
        exported, documented,
        "docs/observability.md and the registry differ"
    );
    for (name, fam) in &fams {
        assert!(name.starts_with("sluice_"));
        assert!(
            !fam.samples.is_empty(),
            "{name} has no samples after a full scenario"
        );
        if fam.kind == "histogram" {
            assert!(name.ends_with("_seconds"), "{name}");
        }
    }

    // Prometheus' own linter agrees (naming conventions, format). promtool reads the classic
    // text format, where HELP names the sample (`x_total`); OpenMetrics names the family (`x`),
    // so it reports counters as lacking help. Anything else is a real complaint.
    // (It exits non-zero on lint findings, so the exit code alone says nothing here.)
    let (_, lint) = promtool(&["check", "metrics"], &text);
    let complaints: Vec<&str> = lint
        .lines()
        .filter(|l| {
            !l.strip_suffix(" no help text")
                .and_then(|n| n.strip_suffix("_total"))
                .is_some_and(|fam| fams.get(fam).is_some_and(|f| f.kind == "counter" && f.help))
        })
        .collect();
    assert!(complaints.is_empty(), "promtool check metrics:\n{lint}");

    let has = |s: &str| assert!(text.contains(s), "missing {s}\n{text}");
    has(r#"sluice_rollout_phase{namespace="bookinfo",name="reviews",phase="Failed"} 1"#);
    has(r#"sluice_rollout_phase{namespace="bookinfo",name="reviews",phase="Progressing"} 0"#);
    has(r#"sluice_rollout_canary_weight{namespace="bookinfo",name="reviews"} 0"#);
    has(
        r#"sluice_analysis_verdicts_total{namespace="bookinfo",name="reviews",metric="success-rate",result="Fail"} 1"#,
    );
    has(
        r#"sluice_analysis_verdicts_total{namespace="bookinfo",name="reviews",metric="webhook:load",result="Pass"} 1"#,
    );
    has(r#"sluice_analysis_value{namespace="bookinfo",name="reviews",metric="success-rate"} 80.0"#);
    has(
        r#"sluice_analysis_threshold{namespace="bookinfo",name="reviews",metric="success-rate",bound="min"} 99.0"#,
    );
    has(
        r#"sluice_rollout_events_total{namespace="bookinfo",name="reviews",reason="RolledBack"} 1"#,
    );
    has(r#"sluice_webhook_calls_total{type="rollout",outcome="success"} 1"#);
    has(r#"sluice_errors_total{kind="apply traffic"} 1"#);
    has(r#"sluice_notifications_total{sink="json",outcome="config_error"}"#);
    has("sluice_tick_duration_seconds_count 4");
    has("sluice_leader 1");

    // A deleted rollout's gauges go away.
    metrics.forget("bookinfo", "reviews");
    let after = metrics.encode();
    for gone in [
        "sluice_rollout_phase{",
        "sluice_rollout_canary_weight{",
        "sluice_analysis_value{",
        "sluice_analysis_threshold{",
    ] {
        assert!(!after.contains(gone), "{gone} left after forget:\n{after}");
    }
    assert!(after.contains("sluice_analysis_verdicts_total{"));
}

// ------------------------------------------------------------------ logs

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Buf {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

const SECRETS: [&str; 5] = [
    "xoxb-slack-path-secret",
    "json-sink-path-secret",
    "query-token-secret",
    "bearer-token-secret",
    "webhook-query-secret",
];

/// Every failure path that could log a URL or token, at `trace` level (reqwest and hyper
/// included), in `format`. Returns what was logged.
async fn run_with_secrets(format: LogFormat) -> String {
    install_crypto();
    let buf = Buf::default();
    let w = buf.clone();
    let _guard = tracing::subscriber::set_default(subscriber(
        format,
        EnvFilter::new("trace"),
        move || w.clone(),
        false,
    ));

    let rx = Receiver::start().await;
    rx.answer(&format!("/services/T0/{}", SECRETS[0]), 500);
    rx.answer("/gate", 403);
    let closed = closed_port();
    let dir = tempfile::tempdir().unwrap();
    let slack = dir.path().join("slack");
    std::fs::write(&slack, format!("{}/services/T0/{}", rx.base, SECRETS[0])).unwrap();
    let json = dir.path().join("json");
    std::fs::write(
        &json,
        format!(
            "http://127.0.0.1:{closed}/{}?token={}",
            SECRETS[1], SECRETS[2]
        ),
    )
    .unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, SECRETS[3]).unwrap();

    let sink = |kind, path: &std::path::Path| Notification {
        kind,
        url_from_env: None,
        url_from_file: Some(path.display().to_string()),
    };
    let config = NotifyConfig {
        sinks: vec![
            sink(NotificationKind::Slack, &slack),
            sink(NotificationKind::Json, &json),
        ],
        ui_base_url: None,
    };
    let metrics = Arc::new(Metrics::new());
    let notifier = Arc::new(Notifier::new(&config, Some(metrics.clone())).unwrap());
    tracing::debug!(?notifier, "notifier built");
    let tel = Telemetry {
        metrics: metrics.clone(),
        notifier,
    };

    let r = rollout(&format!(
        r#"
apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata: {{name: reviews, namespace: bookinfo}}
spec:
  upstreams: {{stable: "127.0.0.1:1", canary: "127.0.0.1:2"}}
  service: {{port: 9080}}
  strategy: {{canary: {{steps: [10]}}}}
  analysis: {{interval: 30s, failureLimit: 1}}
  webhooks:
    - {{name: gate, type: confirm-rollout, url: "{b}/gate", tokenFromFile: "{t}"}}
    - {{name: tell, type: event, url: "http://127.0.0.1:{closed}/e?key={s}"}}
"#,
        b = rx.base,
        t = token.display(),
        s = SECRETS[4],
    ));
    let fakes = Fakes::new(Verdict::Pass);
    let hooks = HttpWebhooks::new(Some(metrics.clone()))
        .unwrap()
        .with_retry(sluice_notify::webhooks::Retry {
            attempts: 2,
            backoff: std::time::Duration::from_millis(5),
        });
    let ex = tel.wrap(fakes.executors(Arc::new(hooks)));
    let s = observed_tick(
        &ex,
        &metrics,
        &r,
        &plan_of(&r),
        &RolloutStatus::default(),
        None,
        t0(),
    )
    .await
    .status;
    // The gate refused (403) with the token sent; the rollout started (event hooks, failing
    // notifications).
    assert_eq!(
        rx.hits("/gate")[0].authorization.as_deref(),
        Some(format!("Bearer {}", SECRETS[3]).as_str())
    );
    assert!(
        s.pending_gate
            .as_ref()
            .unwrap()
            .last_error
            .as_deref()
            .unwrap()
            .contains("403")
    );
    // Nothing secret in what the UI/API would show either.
    let status_json = serde_json::to_string(&s).unwrap();
    for secret in SECRETS {
        assert!(!status_json.contains(secret), "{secret} in status");
    }
    drop(_guard);
    buf.text()
}

#[tokio::test]
async fn secrets_never_show_up_in_captured_logs() {
    for format in [LogFormat::Human, LogFormat::Json] {
        let logs = run_with_secrets(format).await;
        if std::env::var_os("SHOW_LOGS").is_some() {
            eprintln!("{logs}");
        }
        // The failures were logged (so the test looked at real failure paths) ...
        assert!(logs.contains("notification refused"), "{logs}");
        assert!(logs.contains("notification not sent"), "{logs}");
        assert!(logs.contains("webhook failed"), "{logs}");
        assert!(
            logs.contains("***"),
            "the Debug of the notifier prints its sinks masked"
        );
        // ... without any secret, at any level, from any crate.
        for secret in SECRETS {
            assert!(
                !logs.contains(secret),
                "{secret} leaked in {format:?} logs:\n{logs}"
            );
        }
    }
}

#[tokio::test]
async fn json_log_lines_about_a_rollout_carry_its_identity() {
    let logs = run_with_secrets(LogFormat::Json).await;
    let mut seen = 0;
    for line in logs.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if v["target"]
            .as_str()
            .is_some_and(|t| t.starts_with("sluice"))
            && v["fields"]["message"] != "notifier built"
        {
            let span = &v["span"];
            assert_eq!(span["name"], "tick", "{line}");
            assert_eq!(span["namespace"], "bookinfo", "{line}");
            assert_eq!(span["rollout"], "reviews", "{line}");
            assert_eq!(span["revision"], "v2", "{line}");
            seen += 1;
        }
    }
    assert!(seen >= 3, "{logs}");
}

#[tokio::test]
async fn human_log_lines_carry_the_tick_span() {
    let logs = run_with_secrets(LogFormat::Human).await;
    let line = logs
        .lines()
        .find(|l| l.contains("webhook failed"))
        .unwrap_or_else(|| panic!("{logs}"));
    assert!(
        line.contains("tick{namespace=bookinfo rollout=reviews revision=v2}"),
        "{line}"
    );
}
