//! `sluice backtest` against a real Prometheus whose history this test writes: an OpenMetrics
//! file of known counters backfilled with `promtool tsdb create-blocks-from openmetrics` into
//! the TSDB Prometheus then starts on. Two past windows, the same Rollout (steps 20%, 50%;
//! analysis every 1m; the canary's 5xx share must stay ≤ 5%; one Fail rolls back):
//! - healthy (0.5% errors): the step advances at +60 s, promotion starts at +120 s;
//! - a spike (50% errors from +90 s): advance at +60 s, rolled back at +120 s, the first check
//!   whose 1m window sees the spike.

use std::fmt::Write as _;
use std::process::Command;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use sluice_testkit::procs::Prometheus;

const ROLLOUT: &str = r#"apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  upstreams: {stable: "127.0.0.1:9001", canary: "127.0.0.1:9002"}
  service: {port: 8080}
  strategy: {canary: {steps: [20, 50]}}
  analysis:
    interval: 1m
    failureLimit: 1
    metrics:
      - name: canary-errors
        query: '100 * sum(rate(requests_total{version="canary",code="500"}[{{ interval }}])) / sum(rate(requests_total{version="canary"}[{{ interval }}]))'
        thresholds: {max: 5}
"#;

/// Counters every 10 s from `start` to `end`: 10 requests/s per version, the canary's error
/// share `canary_errors(t)`, stable's 0.5%. One series after the other, each in time order.
fn openmetrics(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    canary_errors: impl Fn(DateTime<Utc>) -> f64,
) -> String {
    let mut out = String::from("# TYPE requests counter\n");
    for (version, errors) in [
        ("canary", &canary_errors as &dyn Fn(DateTime<Utc>) -> f64),
        ("stable", &|_| 0.005),
    ] {
        for code in ["200", "500"] {
            let mut total = 0.0;
            let mut t = start;
            while t <= end {
                let share = errors(t);
                total += 100.0 * if code == "500" { share } else { 1.0 - share };
                writeln!(
                    out,
                    "requests_total{{version=\"{version}\",code=\"{code}\"}} {total} {}",
                    t.timestamp()
                )
                .expect("as written by this test");
                t += Duration::seconds(10);
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

fn backtest(file: &std::path::Path, url: &str, from: DateTime<Utc>) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "backtest",
            file.to_str().expect("as written by this test"),
            "--prometheus",
            url,
        ])
        .args(["--from", &from.to_rfc3339(), "--to"])
        .arg((from + Duration::minutes(10)).to_rfc3339())
        .args(["--scrape-interval", "10s", "-o", "json"])
        .output()
        .expect("run sluice backtest");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all: Value = serde_json::from_slice(&out.stdout).expect("json");
    all[0].clone()
}

/// (seconds after the deploy, action) of the decisions.
fn decisions(b: &Value) -> Vec<(i64, String)> {
    b["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter(|d| {
            ["advance", "promote", "rollback", "pause"]
                .contains(&d["action"].as_str().expect("as written by this test"))
        })
        .map(|d| {
            (
                d["afterSecs"].as_i64().expect("as written by this test"),
                d["action"]
                    .as_str()
                    .expect("as written by this test")
                    .to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn past_windows_replay_to_the_expected_decisions_at_the_expected_times() {
    sluice_testkit::fakes::install_crypto();
    // Two windows well inside the default retention, in the past, on whole minutes; the
    // Prometheus head is empty, so backfilled blocks overlap nothing.
    let now = Utc::now().timestamp();
    let healthy =
        DateTime::from_timestamp(now - now % 60 - 3 * 3600, 0).expect("as written by this test");
    let spike = healthy + Duration::minutes(40);
    let dir = tempfile::tempdir().expect("as written by this test");
    let spike_from = spike + Duration::seconds(90);
    let history = openmetrics(
        healthy - Duration::minutes(10),
        spike + Duration::minutes(10),
        |t| if t >= spike_from { 0.5 } else { 0.005 },
    );
    let om = dir.path().join("history.om");
    std::fs::write(&om, &history).expect("as written by this test");
    let data = dir.path().join("prom/data");
    std::fs::create_dir_all(&data).expect("as written by this test");
    let promtool = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&om)
        .arg(&data)
        .output()
        .expect("promtool (Debian's prometheus package) on PATH");
    assert!(
        promtool.status.success(),
        "{}{}",
        String::from_utf8_lossy(&promtool.stdout),
        String::from_utf8_lossy(&promtool.stderr)
    );
    let prom = Prometheus::start_in(&dir.path().join("prom"), "global: {scrape_interval: 10s}\n")
        .await
        .expect("prometheus");
    let rollout = dir.path().join("web.yaml");
    std::fs::write(&rollout, ROLLOUT).expect("as written by this test");

    let b = backtest(&rollout, prom.url(), healthy);
    assert_eq!(
        decisions(&b),
        [(60, "advance".to_string()), (120, "promote".to_string())],
        "{b:#}"
    );
    assert_eq!(b["summary"]["outcome"], "promoted", "{b:#}");
    assert_eq!(b["summary"]["rollbacks"], 0);
    let promote = &b["steps"]
        .as_array()
        .expect("as written by this test")
        .iter()
        .find(|d| d["action"] == "promote")
        .expect("as written by this test");
    assert_eq!(promote["checks"][0]["verdict"], "Pass", "{promote:#}");
    let value = promote["checks"][0]["value"]
        .as_f64()
        .expect("as written by this test");
    assert!(
        (value - 0.5).abs() < 0.01,
        "canary errors {value}% (0.5% written)"
    );

    let b = backtest(&rollout, prom.url(), spike);
    assert_eq!(
        decisions(&b),
        [(60, "advance".to_string()), (120, "rollback".to_string())],
        "{b:#}"
    );
    let s = &b["summary"];
    assert_eq!(s["outcome"], "rolled back", "{b:#}");
    assert_eq!(s["timeToDecisionSecs"], 120);
    assert_eq!(s["rollbacks"], 1);
    let driving = s["drivingChecks"][0]
        .as_str()
        .expect("as written by this test");
    assert!(driving.starts_with("canary-errors: "), "{driving}");

    // The table names the same decisions.
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "backtest",
            rollout.to_str().expect("as written by this test"),
            "--prometheus",
            prom.url(),
        ])
        .args(["--from", &spike.timestamp().to_string(), "--to"])
        .arg((spike + Duration::minutes(10)).timestamp().to_string())
        .output()
        .expect("as written by this test");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("outcome: rolled back after 120s"), "{table}");
}
