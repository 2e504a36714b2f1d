//! Fixtures shared by the API, CLI and browser tests: rollouts over the in-memory backend,
//! which runs the real engine through `exec::tick`.

use std::sync::Arc;

use crate::memory::MemoryBackend;
use chrono::{DateTime, Duration, Utc};
use sluice_core::spec::{Rollout, RolloutStatus};

pub const TOKEN: &str = "s3cret-token-for-tests";

/// A canary rollout (10% then 50%) with two metrics and, when `manual`, a promotion gate.
pub fn rollout(namespace: &str, name: &str, manual: bool, interval: &str) -> Rollout {
    canary(namespace, name, manual, interval, &[10, 50])
}

/// A canary rollout through `steps` with two metrics and, when `manual`, a promotion gate.
pub fn canary(namespace: &str, name: &str, manual: bool, interval: &str, steps: &[u32]) -> Rollout {
    let steps = format!("{steps:?}");
    let yaml = format!(
        r#"
apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  upstreams: {{stable: "127.0.0.1:8001", canary: "127.0.0.1:8002"}}
  service: {{port: 8080}}
  strategy: {{canary: {{steps: {steps}}}}}
  analysis:
    interval: {interval}
    metrics:
      - name: success-rate
        builtin: request-success-rate
        thresholds: {{min: 99}}
      - name: latency-p99
        builtin: request-duration
        thresholds: {{max: 500}}
  promotion: {{manual: {manual}}}
"#
    );
    serde_yaml::from_str(&yaml).expect("fixture rollout parses")
}

/// A dark launch for a header cohort with a 20% mirror, then a canary ramp.
pub fn dark_launch(namespace: &str, name: &str, interval: &str) -> Rollout {
    let yaml = format!(
        r#"
apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  upstreams: {{stable: "127.0.0.1:8101", canary: "127.0.0.1:8102"}}
  service: {{port: 8080}}
  strategy:
    darkLaunch:
      match: [{{headers: {{x-beta: {{exact: "true"}}}}}}]
      mirrorPercent: 20
      iterations: 2
      thenCanary: {{stepWeight: 25, maxWeight: 75}}
  analysis:
    interval: {interval}
    metrics:
      - name: error-rate
        query: 'sum(rate(errors[1m]))'
        thresholds: {{max: 2}}
"#
    );
    serde_yaml::from_str(&yaml).expect("fixture rollout parses")
}

/// A backend holding `default/web` (manual gate) at stable revision v1.
pub fn backend() -> Arc<MemoryBackend> {
    let b = MemoryBackend::new(64);
    b.insert(rollout("default", "web", true, "1s"), "v1");
    b
}

/// Tick with a simulated clock (one second per tick) until `done` holds; panics after 60
/// ticks with the last status, so a stuck engine fails the test with a reason.
pub async fn drive(
    b: &Arc<MemoryBackend>,
    now: &mut DateTime<Utc>,
    ns: &str,
    name: &str,
    done: impl Fn(&RolloutStatus) -> bool,
) -> RolloutStatus {
    for _ in 0..60 {
        b.tick_all(*now).await;
        let s = b.status(ns, name).expect("rollout exists");
        if done(&s) {
            return s;
        }
        *now += Duration::seconds(1);
    }
    panic!(
        "{ns}/{name} never reached the expected state; last: {:?}",
        b.status(ns, name)
    );
}
