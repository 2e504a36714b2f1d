//! `sluice bench kube`: what N Rollouts cost the Kubernetes API server, measured with the real
//! controller wiring (`Controller::with_clients`: watches, reflector caches, leader election,
//! the fenced write client) against the in-memory API server of [`crate::kube_api`], which
//! logs every request.
//!
//! Phases: N Deployments and Rollouts are created and initialized (primary, Services,
//! DestinationRules, VirtualService); then three intervals idle; then every Deployment gets a
//! new image and three intervals of progress are measured (every check passes: steps 10% and
//! 50%, then promotion). Requests exclude the watches (long-lived, opened once) and the Lease
//! renewals (one every 5 s whatever N is). Reconciles are the controller's own tick count
//! (`sluice_tick_duration_seconds_count`). The process' RSS includes the in-memory API server
//! and its copies of every object; the per-rollout figure is the growth from the seeded API
//! server alone to the initialized fleet (its history and request log forgotten), divided by
//! N: an upper bound of the controller's own cost, since it also counts the API server's
//! copies of the seven objects sluice creates per Rollout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sluice_core::engine::GateAnswer;
use sluice_core::exec::{Analyzer, Webhooks};
use sluice_core::spec::{CheckResult, Rollout, RolloutStatus, Verdict, WebhookKind};
use sluice_k8s::controller::{Clients, Controller, Options};
use sluice_k8s::gate::LeaderGateLayer;

use crate::kube_api::FakeApi;

const NS: &str = "bench";

#[derive(Debug, Clone, Serialize)]
pub struct KubeBenchReport {
    pub rollouts: usize,
    pub interval_s: f64,
    /// From the controller's start until every Rollout is initialized and its target scaled
    /// to zero.
    pub init_s: f64,
    pub idle_requests_per_s: f64,
    pub idle_reconciles_per_s: f64,
    pub idle_requests_per_reconcile: f64,
    /// The idle window's requests by verb and resource, most frequent first.
    pub idle_requests_by_kind: Vec<(String, usize)>,
    pub progressing_requests_per_s: f64,
    pub progressing_reconciles_per_s: f64,
    pub progressing_requests_per_reconcile: f64,
    /// Rollouts promoted by the end of the progressing window.
    pub promoted: usize,
    /// From the new image on every Deployment until every Rollout promoted it (`None`: not
    /// within the time limit).
    pub all_promoted_s: Option<f64>,
    /// The whole process (controller + in-memory API server), after initialization.
    pub rss_mib: f64,
    pub rss_kib_per_rollout: f64,
}

/// Every check passes, at once.
struct Passing;

#[async_trait::async_trait]
impl Analyzer for Passing {
    async fn analyze(&self, _: &Rollout, now: DateTime<Utc>) -> Vec<CheckResult> {
        vec![CheckResult {
            metric: "success-rate".into(),
            verdict: Verdict::Pass,
            value: Some(100.0),
            min: Some(99.0),
            max: None,
            reason: "bench: always passes".into(),
            at: now,
            more_requests: None,
        }]
    }
}

struct NoWebhooks;

#[async_trait::async_trait]
impl Webhooks for NoWebhooks {
    async fn call(&self, _: &Rollout, _: &RolloutStatus, _: WebhookKind) -> Option<GateAnswer> {
        None
    }
    async fn checks(&self, _: &Rollout, _: &RolloutStatus, _: DateTime<Utc>) -> Vec<CheckResult> {
        Vec::new()
    }
}

fn deployment(i: usize, image: &str) -> serde_json::Value {
    let name = format!("app{i}");
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image, "ports": [{"containerPort": 8080}]}]}
            }
        }
    })
}

fn rollout(i: usize, interval: Duration) -> serde_json::Value {
    json!({
        "apiVersion": "sluice.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": format!("app{i}"), "namespace": NS},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": format!("app{i}")},
            "service": {"port": 8080},
            "strategy": {"canary": {"steps": [10, 50]}},
            "analysis": {"interval": format!("{}ms", interval.as_millis()), "failureLimit": 1}
        }
    })
}

/// Resident set size of this process, MiB (Linux `/proc/self/status`); 0 elsewhere.
pub fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Requests logged from `from` on that count (not watches, not the Lease), by verb and
/// resource, most frequent first.
fn requests(api: &FakeApi, from: usize) -> Vec<(String, usize)> {
    let mut by: std::collections::BTreeMap<String, usize> = Default::default();
    for l in api.log().get(from..).unwrap_or_default() {
        if l.verb != "watch" && l.resource != "leases" {
            *by.entry(format!("{} {}", l.verb, l.resource)).or_default() += 1;
        }
    }
    let mut v: Vec<(String, usize)> = by.into_iter().collect();
    v.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    v
}

fn total(by: &[(String, usize)]) -> f64 {
    // A fold from +0.0: an empty float `sum()` is -0.0.
    by.iter().fold(0.0, |t, (_, n)| t + *n as f64)
}

fn ticks(metrics: &sluice_telemetry::Metrics) -> f64 {
    metrics
        .encode()
        .lines()
        .find_map(|l| l.strip_prefix("sluice_tick_duration_seconds_count "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

fn statuses(api: &FakeApi, n: usize) -> Vec<RolloutStatus> {
    (0..n)
        .map(|i| {
            api.get("sluice.dev", "rollouts", NS, &format!("app{i}"))
                .and_then(|v| serde_json::from_value::<Rollout>(v).ok())
                .and_then(|r| r.status)
                .unwrap_or_default()
        })
        .collect()
}

/// Waits until `done` holds (checked every 100 ms), at most `limit`.
async fn until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Result<(), String> {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > limit {
            return Err(format!("gave up after {limit:?} waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Runs the benchmark (see the module docs). `interval`: every Rollout's analysis interval.
pub async fn bench_kube(rollouts: usize, interval: Duration) -> Result<KubeBenchReport, String> {
    let n = rollouts.max(1);
    let api = FakeApi::new();
    for i in 0..n {
        api.seed("apps", "deployments", deployment(i, "app:v1"));
        api.seed("sluice.dev", "rollouts", rollout(i, interval));
    }
    let rss_seeded = rss_mib();
    let telemetry =
        sluice_notify::Telemetry::new(&Default::default()).map_err(|e| e.to_string())?;
    let metrics = Arc::clone(&telemetry.metrics);
    let opts = Options {
        namespaces: vec![],
        lease_namespace: "sluice-system".into(),
        lease_name: "sluice-controller".into(),
        identity: "bench".into(),
        analyzer: Arc::new(Passing),
        webhooks: Arc::new(NoWebhooks),
        telemetry: Some(telemetry),
        // Not throttled: the bench counts what the controller asks for.
        client_limits: Default::default(),
    };
    let fake = api.clone();
    let controller = Controller::with_clients(opts, move |fence| Clients {
        read: fake.client(),
        write: kube::client::ClientBuilder::new(fake.clone(), "default")
            .with_layer(&LeaderGateLayer::new(fence))
            .build(),
    });
    // The Deployment controller and the kubelet: pods Ready soon after every change.
    let kubelet = {
        let api = api.clone();
        tokio::spawn(async move {
            loop {
                api.roll_out_deployments();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let started = Instant::now();
    let run = tokio::spawn(controller.run());
    let limit = Duration::from_secs(60) + interval * 3 + Duration::from_millis(20 * n as u64);
    let result = async {
        until("every rollout initialized", limit, || {
            statuses(&api, n)
                .iter()
                .all(|s| s.stable_revision.is_some())
                && (0..n).all(|i| {
                    api.get("apps", "deployments", NS, &format!("app{i}"))
                        .is_some_and(|d| d["spec"]["replicas"] == 0)
                })
        })
        .await?;
        let init_s = started.elapsed().as_secs_f64();
        // The watch history and the request log are the API server's, not the controller's:
        // forget them (as etcd compaction does) before measuring memory.
        api.compact();
        api.clear_log();
        tokio::time::sleep(interval).await;
        let rss = rss_mib();

        let window = interval * 3;
        let (from, t0) = (api.log().len(), ticks(&metrics));
        tokio::time::sleep(window).await;
        let idle_by = requests(&api, from);
        let idle_requests = total(&idle_by);
        let idle_ticks = ticks(&metrics) - t0;

        let before: Vec<Option<String>> = statuses(&api, n)
            .into_iter()
            .map(|s| s.stable_revision)
            .collect();
        for i in 0..n {
            api.edit("apps", "deployments", NS, &format!("app{i}"), |d| {
                d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("app:v2");
            });
        }
        let edited = Instant::now();
        let (from, t0) = (api.log().len(), ticks(&metrics));
        tokio::time::sleep(window).await;
        let busy_requests = total(&requests(&api, from));
        let busy_ticks = ticks(&metrics) - t0;
        let promoted = statuses(&api, n)
            .into_iter()
            .zip(&before)
            .filter(|(s, b)| s.stable_revision.is_some() && s.stable_revision != **b)
            .count();
        let all_promoted_s = until("every rollout promoted", limit, || {
            statuses(&api, n)
                .into_iter()
                .zip(&before)
                .all(|(s, b)| s.stable_revision.is_some() && s.stable_revision != *b)
        })
        .await
        .ok()
        .map(|()| edited.elapsed().as_secs_f64());
        let secs = window.as_secs_f64();
        let per = |r: f64, t: f64| if t > 0.0 { r / t } else { 0.0 };
        Ok(KubeBenchReport {
            rollouts: n,
            interval_s: interval.as_secs_f64(),
            init_s,
            idle_requests_per_s: idle_requests / secs,
            idle_reconciles_per_s: idle_ticks / secs,
            idle_requests_per_reconcile: per(idle_requests, idle_ticks),
            idle_requests_by_kind: idle_by,
            progressing_requests_per_s: busy_requests / secs,
            progressing_reconciles_per_s: busy_ticks / secs,
            progressing_requests_per_reconcile: per(busy_requests, busy_ticks),
            promoted,
            all_promoted_s,
            rss_mib: rss,
            rss_kib_per_rollout: (rss - rss_seeded).max(0.0) * 1024.0 / n as f64,
        })
    }
    .await;
    run.abort();
    kubelet.abort();
    result
}
