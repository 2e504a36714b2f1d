//! One scripted fake per executor trait (router, workloads, analyzer, webhooks, recorder),
//! a real HTTP receiver on 127.0.0.1 for webhooks and notifications, and small helpers.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;

use sluice_core::engine::{AnalysisReport, Event, GateAnswer, Observations};
use sluice_core::exec::{
    Analyzer, BoxError, Executors, Recorder, TrafficRouter, Webhooks, Workloads,
};
use sluice_core::spec::{
    CheckResult, Rollout, RolloutStatus, Verdict, WebhookKind, WorkloadAction,
};
use sluice_core::traffic::TrafficPlan;

/// One request the receiver saw.
#[derive(Clone, Debug)]
pub struct Hit {
    pub path: String,
    pub authorization: Option<String>,
    pub body: Value,
}

#[derive(Default)]
struct ReceiverState {
    hits: Mutex<Vec<Hit>>,
    /// Status per path; 200 when absent.
    answers: Mutex<HashMap<String, u16>>,
}

/// An HTTP server on a free port of 127.0.0.1 that records every request and answers with
/// the status set for its path. Stops when dropped.
pub struct Receiver {
    pub base: String,
    state: Arc<ReceiverState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(
    State(st): State<Arc<ReceiverState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let path = uri.path().to_string();
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let code = st
        .answers
        .lock()
        .unwrap()
        .get(&path)
        .copied()
        .unwrap_or(200);
    st.hits.lock().unwrap().push(Hit {
        path,
        authorization,
        body,
    });
    StatusCode::from_u16(code).unwrap()
}

impl Receiver {
    pub async fn start() -> Receiver {
        let state = Arc::new(ReceiverState::default());
        let app = axum::Router::new()
            .fallback(record)
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            base: format!("http://{addr}"),
            state,
            task,
        }
    }
    pub fn answer(&self, path: &str, code: u16) {
        self.state
            .answers
            .lock()
            .unwrap()
            .insert(path.to_string(), code);
    }
    pub fn hits(&self, path: &str) -> Vec<Hit> {
        self.state
            .hits
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.path == path)
            .cloned()
            .collect()
    }
}

/// A port on 127.0.0.1 nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Records every plan it is asked to apply (after checking the plan's invariants, as a real
/// router would refuse a broken one), with the rollout's upstream addresses when it has them.
#[derive(Default)]
pub struct FakeRouter {
    pub plans: Mutex<Vec<TrafficPlan>>,
    /// (stable, canary) upstream addresses per apply; empty strings without `upstreams`.
    pub upstreams: Mutex<Vec<(String, String)>>,
    /// When set, every apply fails with this text (a data plane that refuses the plan).
    pub refusal: Mutex<Option<String>>,
    /// Applies refused so far.
    pub refused: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl TrafficRouter for FakeRouter {
    async fn apply(&self, rollout: &Rollout, plan: &TrafficPlan) -> Result<(), BoxError> {
        if let Some(why) = self.refusal.lock().unwrap().clone() {
            self.refused
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            return Err(why.into());
        }
        plan.check()?;
        let up = rollout
            .spec
            .upstreams
            .as_ref()
            .map(|u| (u.stable.clone(), u.canary.clone()))
            .unwrap_or_default();
        self.upstreams.lock().unwrap().push(up);
        self.plans.lock().unwrap().push(plan.clone());
        Ok(())
    }
}

impl FakeRouter {
    /// Every later apply fails with `why`; `None` accepts again.
    pub fn refuse(&self, why: Option<&str>) {
        *self.refusal.lock().unwrap() = why.map(str::to_string);
    }
    pub fn weights(&self) -> Vec<u32> {
        self.plans
            .lock()
            .unwrap()
            .iter()
            .map(TrafficPlan::canary_weight)
            .collect()
    }
    pub fn max_weight(&self) -> u32 {
        self.weights().into_iter().max().unwrap_or(0)
    }
    /// (stable address, canary address, plan) per apply, in order.
    pub fn log(&self) -> Vec<(String, String, TrafficPlan)> {
        let ups = self.upstreams.lock().unwrap().clone();
        let plans = self.plans.lock().unwrap().clone();
        ups.into_iter()
            .zip(plans)
            .map(|((s, c), p)| (s, c, p))
            .collect()
    }
}

/// Stable runs `stable`, the target declares `revision`; promotion copies one to the other.
pub struct FakeWorkloads {
    pub revision: Mutex<String>,
    pub stable: Mutex<String>,
    /// Actions that fail, with the error text (e.g. a 403 on the canary scale-down).
    pub failing: Mutex<Vec<(WorkloadAction, String)>>,
    /// Every action attempted, in order (failed ones too).
    pub calls: Mutex<Vec<WorkloadAction>>,
}

impl FakeWorkloads {
    pub fn new(stable: &str, revision: &str) -> Self {
        FakeWorkloads {
            revision: Mutex::new(revision.into()),
            stable: Mutex::new(stable.into()),
            failing: Mutex::default(),
            calls: Mutex::default(),
        }
    }
    /// Every later `action` fails with `why`; `None` lets it succeed again.
    pub fn fail(&self, action: WorkloadAction, why: Option<&str>) {
        let mut f = self.failing.lock().unwrap();
        f.retain(|(a, _)| *a != action);
        if let Some(why) = why {
            f.push((action, why.into()));
        }
    }
    /// How often `action` was attempted.
    pub fn attempts(&self, action: WorkloadAction) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|a| **a == action)
            .count()
    }
    fn call(&self, action: WorkloadAction) -> Result<(), BoxError> {
        self.calls.lock().unwrap().push(action);
        match self
            .failing
            .lock()
            .unwrap()
            .iter()
            .find(|(a, _)| *a == action)
        {
            Some((_, why)) => Err(why.clone().into()),
            None => Ok(()),
        }
    }
}

#[async_trait::async_trait]
impl Workloads for FakeWorkloads {
    async fn observe(&self, _: &Rollout, _: &RolloutStatus) -> Result<Observations, BoxError> {
        Ok(Observations {
            revision: Some(self.revision.lock().unwrap().clone()),
            stable_running: Some(self.stable.lock().unwrap().clone()),
            stable_ready: true,
            canary_ready: true,
            ..Default::default()
        })
    }
    async fn scale_up_canary(&self, _: &Rollout) -> Result<(), BoxError> {
        self.call(WorkloadAction::ScaleUpCanary)
    }
    async fn scale_down_canary(&self, _: &Rollout) -> Result<(), BoxError> {
        self.call(WorkloadAction::ScaleDownCanary)
    }
    async fn promote(&self, _: &Rollout, revision: &str) -> Result<(), BoxError> {
        self.call(WorkloadAction::PromoteCanary)?;
        *self.stable.lock().unwrap() = revision.into();
        Ok(())
    }
    async fn restore_stable(&self, _: &Rollout, revision: &str) -> Result<(), BoxError> {
        self.call(WorkloadAction::RestoreStable)?;
        *self.stable.lock().unwrap() = revision.into();
        Ok(())
    }
}

/// One `success-rate` check whose verdict the test sets (and may change with [`FakeAnalyzer::set`]);
/// an Inconclusive check carries no value, as a real one without data does.
pub struct FakeAnalyzer {
    pub verdict: Mutex<Verdict>,
    /// How long every later analysis takes (a slow Prometheus).
    pub delay: Mutex<std::time::Duration>,
    /// Analyses started, and finished (not cancelled).
    pub started: std::sync::atomic::AtomicUsize,
    pub finished: std::sync::atomic::AtomicUsize,
    /// The metrics of the spec each analysis was asked for (resolved templates included).
    pub metrics: Mutex<Vec<Vec<sluice_core::spec::Metric>>>,
}

impl FakeAnalyzer {
    pub fn new(v: Verdict) -> Self {
        FakeAnalyzer {
            verdict: Mutex::new(v),
            delay: Mutex::new(std::time::Duration::ZERO),
            started: Default::default(),
            finished: Default::default(),
            metrics: Default::default(),
        }
    }
    /// The verdict of every later check.
    pub fn set(&self, v: Verdict) {
        *self.verdict.lock().unwrap() = v;
    }
    /// Every later analysis answers after `d`.
    pub fn set_delay(&self, d: std::time::Duration) {
        *self.delay.lock().unwrap() = d;
    }
}

#[async_trait::async_trait]
impl Analyzer for FakeAnalyzer {
    async fn analyze(&self, rollout: &Rollout, now: DateTime<Utc>) -> Vec<CheckResult> {
        use std::sync::atomic::Ordering::SeqCst;
        self.started.fetch_add(1, SeqCst);
        self.metrics
            .lock()
            .unwrap()
            .push(rollout.spec.analysis.metrics.clone());
        let delay = *self.delay.lock().unwrap();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        self.finished.fetch_add(1, SeqCst);
        let v = *self.verdict.lock().unwrap();
        vec![CheckResult {
            metric: "success-rate".into(),
            verdict: v,
            value: match v {
                Verdict::Pass => Some(99.9),
                Verdict::Fail => Some(80.0),
                Verdict::Inconclusive => None,
            },
            min: Some(99.0),
            max: None,
            reason: format!("fake {}", v.as_str()),
            at: now,
            more_requests: None,
        }]
    }
}

#[derive(Default)]
pub struct MemRecorder {
    pub events: Mutex<Vec<Event>>,
    pub reports: Mutex<Vec<AnalysisReport>>,
}

impl MemRecorder {
    pub fn reasons(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.reason.as_str().to_string())
            .collect()
    }
}

#[async_trait::async_trait]
impl Recorder for MemRecorder {
    async fn event(&self, _: &Rollout, _: &RolloutStatus, event: &Event) {
        self.events.lock().unwrap().push(event.clone());
    }
    async fn analysis(&self, _: &Rollout, report: &AnalysisReport) {
        self.reports.lock().unwrap().push(report.clone());
    }
}

/// No webhooks at all: gates never hold, `rollout` hooks add no checks.
pub struct NoWebhooks;

#[async_trait::async_trait]
impl Webhooks for NoWebhooks {
    async fn call(&self, _: &Rollout, _: &RolloutStatus, _: WebhookKind) -> Option<GateAnswer> {
        None
    }
    async fn checks(&self, _: &Rollout, _: &RolloutStatus, _: DateTime<Utc>) -> Vec<CheckResult> {
        Vec::new()
    }
}

pub struct Fakes {
    pub router: Arc<FakeRouter>,
    pub workloads: Arc<FakeWorkloads>,
    pub analyzer: Arc<FakeAnalyzer>,
    pub recorder: Arc<MemRecorder>,
}

impl Fakes {
    pub fn new(verdict: Verdict) -> Self {
        Fakes {
            router: Arc::default(),
            workloads: Arc::new(FakeWorkloads::new("v1", "v2")),
            analyzer: Arc::new(FakeAnalyzer::new(verdict)),
            recorder: Arc::default(),
        }
    }
    pub fn executors(&self, webhooks: Arc<dyn Webhooks>) -> Executors {
        Executors {
            router: self.router.clone(),
            workloads: self.workloads.clone(),
            analyzer: self.analyzer.clone(),
            webhooks,
            recorder: self.recorder.clone(),
        }
    }
}

pub fn rollout(yaml: &str) -> Rollout {
    serde_yaml::from_str(yaml).unwrap()
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap()
}

/// The process-wide rustls crypto provider for clients built in tests (kube, reqwest): two
/// back ends are compiled in, so one must be chosen; the binary does the same in `main`.
pub fn install_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        rustls::crypto::ring::default_provider()
            .install_default()
            .expect("only the testkit installs a rustls provider in tests");
    });
}

/// Runs `promtool` (from Debian's `prometheus`, installed by scripts/install-deps.sh) with
/// `args` and `stdin`; returns (success, stdout + stderr). Panics when promtool is missing:
/// CI installs it, so a missing binary is a failure, not a skip.
pub fn promtool(args: &[&str], stdin: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("promtool not found ({e}): run scripts/install-deps.sh"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
