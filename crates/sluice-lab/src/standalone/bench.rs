//! `sluice bench rollback`: how fast a failing canary loses its traffic, in the real setup.
//!
//! Setup ([`Stack`]): demo backends v1 (stable) and v2 (canary), a real Envoy, a real
//! Prometheus scraping Envoy every second, sluice standalone in this process, and load through
//! Envoy: 50 rps of the canary cohort (header `x-cohort: canary`) and 50 rps of everyone else.
//! The rollout is an A/B test with a very high iteration count, so the canary keeps its cohort
//! while it passes; the success-rate check (min 90%, 4 s window = 4 scrapes, 1 s analysis
//! interval, failureLimit 1) judges it.
//!
//! Each run waits until the healthy canary has passed a few checks, then makes it answer 50%
//! HTTP 500 (`/control` of the demo backend) and measures:
//! - (a) fault onset → rollback decision: the `Failed` status' transition time;
//! - (b) fault onset → the canary's own request counter stops moving (the last increase).
//!
//! Then it heals the canary and `retry`s for the next run. (c) decision → Envoy serving new
//! routes is the route-apply benchmark of the Envoy router (p50/p99 over many swaps).

use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Serialize;

use crate::demo_app::{DemoConfig, Faults};
use sluice_core::backend::Backend;
use sluice_core::engine::Command;
use sluice_core::spec::Phase;

use super::demo::WorkDir;
use super::load::{self, LoadGen, Target};
use super::stack::{Stack, StackError};
use sluice_standalone::launch::{LaunchError, Standalone};

const NAME: &str = "bench";
const COHORT_HEADER: &str = "x-cohort";

#[derive(Clone, Debug)]
pub struct RollbackOptions {
    /// Fault injections (the figures are medians over them).
    pub runs: usize,
    /// Swaps for the route-apply part.
    pub swaps: usize,
    /// Share of HTTP 500 answers injected into the canary.
    pub error_rate: f64,
}

impl Default for RollbackOptions {
    fn default() -> Self {
        RollbackOptions {
            runs: 3,
            swaps: 200,
            error_rate: 0.5,
        }
    }
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct RollbackRun {
    pub fault_to_decision_s: f64,
    pub fault_to_zero_canary_s: f64,
}

/// What `--json` prints (exactly these keys).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct RollbackReport {
    pub fault_to_decision_s: f64,
    pub fault_to_zero_canary_s: f64,
    pub route_apply_p50_ms: f64,
    pub route_apply_p99_ms: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum RollbackBenchError {
    #[error(transparent)]
    Stack(#[from] StackError),
    #[error(transparent)]
    Launch(#[from] LaunchError),
    #[error("HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("route apply: {0}")]
    RouteApply(#[from] crate::bench::route_apply::BenchError),
    #[error("{0}")]
    Run(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn rollout_yaml(stable: &str, canary: &str) -> String {
    format!(
        r#"apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata: {{name: {NAME}}}
spec:
  upstreams: {{stable: "{stable}", canary: "{canary}"}}
  service: {{port: 80, hosts: [{NAME}]}}
  strategy:
    abTest:
      match: [{{headers: {{{COHORT_HEADER}: {{exact: canary}}}}}}]
      iterations: 1000000
  analysis:
    interval: 1s
    failureLimit: 1
    inconclusiveLimit: 1000000
    metrics:
      - {{name: success-rate, builtin: request-success-rate, interval: 4s, thresholds: {{min: 90}}}}
"#
    )
}

/// The whole benchmark. `progress` gets a line per stage (stderr in the CLI).
pub async fn rollback(
    opts: &RollbackOptions,
    progress: &mut (dyn FnMut(String) + Send),
) -> Result<(RollbackReport, Vec<RollbackRun>), RollbackBenchError> {
    let work = WorkDir::new("sluice-bench-rollback")?;
    progress("starting Envoy, Prometheus, demo backends and sluice".into());
    let stack = Stack::start(&work.0, &[DemoConfig::new("v1"), DemoConfig::new("v2")]).await?;
    let stable = stack.app("v1").map(|a| a.upstream()).unwrap_or_default();
    let canary_app = stack
        .app("v2")
        .ok_or_else(|| RollbackBenchError::Run("no canary backend".into()))?;
    stack.write_rollout("bench.yaml", &rollout_yaml(&stable, &canary_app.upstream()))?;
    let sluice = Standalone::launch(stack.options("127.0.0.1:0"), None, |_| {
        sluice_standalone::server::health_app()
    })
    .await?;
    let client = load::client()?;
    let target = Target::new(stack.envoy_url(), NAME);
    let _cohort = LoadGen::start(
        client.clone(),
        target.clone().header(COHORT_HEADER, "canary"),
        50,
    );
    let _others = LoadGen::start(client, target, 50);

    let mut runs = Vec::new();
    for run in 0..opts.runs.max(1) {
        if run > 0 {
            canary_app
                .set_faults(&Faults {
                    error_rate: Some(0.0),
                    latency_ms: None,
                })
                .await
                .map_err(|e| RollbackBenchError::Run(e.to_string()))?;
            sluice
                .backend
                .command("default", NAME, Command::Retry)
                .await
                .map_err(|e| RollbackBenchError::Run(e.to_string()))?;
        }
        wait_healthy(&sluice, Duration::from_secs(90)).await?;
        let before = canary_app.stats().await.requests;
        let fault_at = Utc::now();
        let t0 = Instant::now();
        canary_app
            .set_faults(&Faults {
                error_rate: Some(opts.error_rate),
                latency_ms: None,
            })
            .await
            .map_err(|e| RollbackBenchError::Run(e.to_string()))?;

        // Poll the canary's counter and the status; the counter's last increase is (b).
        let mut last_count = before;
        let mut last_change = t0;
        let mut decision: Option<f64> = None;
        let deadline = t0 + Duration::from_secs(120);
        loop {
            let n = canary_app.stats().await.requests;
            if n != last_count {
                last_count = n;
                last_change = Instant::now();
            }
            if decision.is_none()
                && let Ok(v) = sluice.backend.get("default", NAME).await
                && v.status.phase == Phase::Failed
            {
                let at = v.status.last_transition_at.unwrap_or_else(Utc::now);
                decision = Some((at - fault_at).num_milliseconds() as f64 / 1e3);
            }
            // Quiet for 3 s after the decision: the canary gets nothing any more.
            if decision.is_some() && last_change.elapsed() > Duration::from_secs(3) {
                break;
            }
            if Instant::now() > deadline {
                return Err(RollbackBenchError::Run(format!(
                    "run {}: no rollback within 120 s (decision: {decision:?})",
                    run + 1
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let r = RollbackRun {
            fault_to_decision_s: decision.unwrap_or(f64::NAN),
            fault_to_zero_canary_s: (last_change - t0).as_secs_f64(),
        };
        progress(format!(
            "run {}: fault → decision {:.2} s, fault → 0% canary {:.2} s",
            run + 1,
            r.fault_to_decision_s,
            r.fault_to_zero_canary_s
        ));
        runs.push(r);
    }
    drop(sluice);
    drop(stack);

    progress(format!("route apply: {} swaps on a real Envoy", opts.swaps));
    let dir = work.0.join("route-apply");
    std::fs::create_dir_all(&dir)?;
    let ra = crate::bench::route_apply::bench_route_apply(&dir, opts.swaps).await?;
    let median = |f: fn(&RollbackRun) -> f64| {
        let v: Vec<f64> = runs.iter().map(f).collect();
        crate::bench::percentile(&v, 0.5).unwrap_or(f64::NAN)
    };
    // Milliseconds are the resolution of every figure here; more digits would be noise.
    let ms = |x: f64| (x * 1e3).round() / 1e3;
    let us = |x: f64| (x * 1e2).round() / 1e2;
    Ok((
        RollbackReport {
            fault_to_decision_s: ms(median(|r| r.fault_to_decision_s)),
            fault_to_zero_canary_s: ms(median(|r| r.fault_to_zero_canary_s)),
            route_apply_p50_ms: us(ra.route_apply_p50_ms),
            route_apply_p99_ms: us(ra.route_apply_p99_ms),
        },
        runs,
    ))
}

/// The A/B stage runs and the canary has passed a few checks in a row.
async fn wait_healthy(sluice: &Standalone, timeout: Duration) -> Result<(), RollbackBenchError> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(v) = sluice.backend.get("default", NAME).await
            && v.status.phase == Phase::Progressing
            && v.status.step_started_at.is_some()
            && v.status.passed_checks >= 3
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            let last = sluice.backend.get("default", NAME).await.map(|v| v.status);
            return Err(RollbackBenchError::Run(format!(
                "the healthy canary never passed 3 checks: {last:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn bench_rollout_is_a_valid_standalone_ab_test() {
        let r = sluice_standalone::loader::parse(
            &super::rollout_yaml("127.0.0.1:1", "127.0.0.1:2"),
            "bench.yaml",
        )
        .unwrap();
        let stages = sluice_core::rollout_plan::RolloutPlan::try_from(&r[0].spec)
            .unwrap()
            .stages;
        assert_eq!(stages.len(), 1);
        assert_eq!(stages[0].checks, 1_000_000);
        assert_eq!(r[0].spec.analysis.failure_limit, 1);
    }
}
