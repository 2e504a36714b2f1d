//! Test support (hidden from docs): an in-memory [`Backend`] that runs the REAL engine through
//! [`sluice_core::exec::tick`], with fake workloads and a fake metric source.
//!
//! Used by the API tests, the browser test and the `sluice wait` tests. Nothing here talks to
//! a data plane or Prometheus: the "world" is a target revision per rollout (set it with
//! [`MemoryBackend::deploy`] to start a rollout), a stable side that runs whatever was last
//! promoted, and metric values drawn around (or, when [`Health::Failing`], beyond) each
//! metric's thresholds.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{Notify, broadcast};

use sluice_core::backend::{Backend, BackendError, Change, ChangeKind, EventRecord, RolloutView};
use sluice_core::engine::{self, AnalysisReport, Command, Event, GateAnswer, Observations};
use sluice_core::exec::{self, BoxError, Executors};
use sluice_core::rollout_plan::RolloutPlan;
use sluice_core::spec::{CheckResult, Metric, Rollout, RolloutStatus, Verdict, WebhookKind};
use sluice_core::traffic::TrafficPlan;

/// What the fake metric source reports for a rollout's canary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Values comfortably inside the thresholds.
    Healthy,
    /// Values beyond the thresholds.
    Failing,
    /// No value at all (Inconclusive).
    NoData,
}

const HISTORY: usize = 500;

struct Entry {
    rollout: Rollout,
    status: RolloutStatus,
    traffic: Option<TrafficPlan>,
    events: Vec<EventRecord>,
    analysis: Vec<CheckResult>,
    commands: VecDeque<Command>,
    target_revision: String,
    stable_running: String,
    health: Health,
    rng: SmallRng,
    /// The `now` of the tick in progress: history carries the engine's clock, simulated or not.
    clock: DateTime<Utc>,
}

type Key = (String, String);

pub struct MemoryBackend {
    world: Mutex<BTreeMap<Key, Entry>>,
    tx: broadcast::Sender<Change>,
    wake: Notify,
}

impl MemoryBackend {
    /// `capacity`: how many changes a subscriber may fall behind before it is told it lagged.
    pub fn new(capacity: usize) -> Arc<Self> {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Arc::new(MemoryBackend {
            world: Mutex::new(BTreeMap::new()),
            tx,
            wake: Notify::new(),
        })
    }

    fn world(&self) -> MutexGuard<'_, BTreeMap<Key, Entry>> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Add a rollout whose stable side runs `stable_revision` (nothing to roll out yet).
    pub fn insert(&self, rollout: Rollout, stable_revision: &str) {
        let key = key_of(&rollout);
        let seed = key.0.len() as u64 * 31 + key.1.len() as u64;
        self.world().insert(
            key,
            Entry {
                rollout,
                status: RolloutStatus::default(),
                traffic: None,
                events: Vec::new(),
                analysis: Vec::new(),
                commands: VecDeque::new(),
                target_revision: stable_revision.to_string(),
                stable_running: stable_revision.to_string(),
                health: Health::Healthy,
                rng: SmallRng::seed_from_u64(seed),
                clock: Utc::now(),
            },
        );
        self.wake.notify_one();
    }

    /// Replace a rollout's status as if the engine had produced it (for tests of the API).
    pub fn set_status(&self, namespace: &str, name: &str, status: RolloutStatus) {
        if let Some(e) = self.world().get_mut(&(namespace.into(), name.into())) {
            e.status = status;
        }
    }

    /// A new version appears at the target: the engine starts a rollout on its next tick.
    pub fn deploy(&self, namespace: &str, name: &str, revision: &str) {
        if let Some(e) = self.world().get_mut(&(namespace.into(), name.into())) {
            e.target_revision = revision.to_string();
        }
        self.wake.notify_one();
    }

    pub fn set_health(&self, namespace: &str, name: &str, health: Health) {
        if let Some(e) = self.world().get_mut(&(namespace.into(), name.into())) {
            e.health = health;
        }
    }

    pub fn status(&self, namespace: &str, name: &str) -> Option<RolloutStatus> {
        self.world()
            .get(&(namespace.into(), name.into()))
            .map(|e| e.status.clone())
    }

    /// How many events the rollout has recorded.
    pub fn events_len(&self, namespace: &str, name: &str) -> usize {
        self.world()
            .get(&(namespace.into(), name.into()))
            .map_or(0, |e| e.events.len())
    }

    /// Run the tick loop: every `period`, and right away after a command or a deploy.
    pub fn spawn_ticker(self: &Arc<Self>, period: Duration) -> tokio::task::JoinHandle<()> {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                me.tick_all(Utc::now()).await;
                tokio::select! {
                    _ = tokio::time::sleep(period) => {}
                    _ = me.wake.notified() => {}
                }
            }
        })
    }

    /// One reconcile of every rollout at `now`, through the real `exec::tick` and engine.
    pub async fn tick_all(self: &Arc<Self>, now: DateTime<Utc>) {
        let keys: Vec<Key> = self.world().keys().cloned().collect();
        for key in keys {
            let Some((rollout, status, command)) = self.world().get_mut(&key).map(|e| {
                e.clock = now;
                (e.rollout.clone(), e.status.clone(), e.commands.pop_front())
            }) else {
                continue;
            };
            let ex = Executors {
                router: Arc::new(Fake(Arc::clone(self))),
                workloads: Arc::new(Fake(Arc::clone(self))),
                analyzer: Arc::new(Fake(Arc::clone(self))),
                webhooks: Arc::new(Fake(Arc::clone(self))),
                recorder: Arc::new(Fake(Arc::clone(self))),
            };
            // The in-memory world holds only valid rollouts (tests add them); one that is not
            // is skipped, as the controller refuses it.
            let plan = match RolloutPlan::try_from(&rollout.spec) {
                Ok(plan) => plan,
                Err(e) => {
                    tracing::warn!(error = %e, "memory backend: invalid spec, not ticked");
                    continue;
                }
            };
            let out = exec::tick(&ex, &rollout, &plan, &status, command, now).await;
            if let Some(err) = &out.error {
                tracing::warn!(error = %err, "memory backend tick failed");
            }
            let changed = {
                let mut w = self.world();
                let Some(e) = w.get_mut(&key) else { continue };
                if let Some(plan) = out.applied {
                    e.traffic = Some(plan);
                }
                let changed = e.status != out.status;
                e.status = out.status.clone();
                changed.then(|| change(&key, &e.status, ChangeKind::Status))
            };
            if let Some(c) = changed {
                let _ = self.tx.send(c);
            }
            // Stored above: now the events may leave (the executors' outbox contract).
            exec::deliver(&ex, &rollout, &out.outbox).await;
        }
    }

    fn with_entry<T>(&self, rollout: &Rollout, f: impl FnOnce(&mut Entry) -> T) -> Option<T> {
        self.world().get_mut(&key_of(rollout)).map(f)
    }

    fn view(key: &Key, e: &Entry) -> RolloutView {
        RolloutView {
            namespace: key.0.clone(),
            name: key.1.clone(),
            spec: e.rollout.spec.clone(),
            status: e.status.clone(),
            traffic: e.traffic.clone(),
            stages: sluice_core::rollout_plan::stage_labels(&e.rollout.spec),
        }
    }
}

fn key_of(r: &Rollout) -> Key {
    (
        r.metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        r.metadata.name.clone().unwrap_or_default(),
    )
}

fn change(key: &Key, s: &RolloutStatus, kind: ChangeKind) -> Change {
    Change {
        namespace: key.0.clone(),
        name: key.1.clone(),
        phase: s.phase,
        step_index: s.step_index,
        canary_weight: s.canary_weight,
        kind,
    }
}

fn not_found(ns: &str, name: &str) -> BackendError {
    BackendError::NotFound(format!("{ns}/{name}"))
}

#[async_trait::async_trait]
impl Backend for MemoryBackend {
    async fn list(&self) -> Result<Vec<RolloutView>, BackendError> {
        Ok(self
            .world()
            .iter()
            .map(|(k, e)| MemoryBackend::view(k, e))
            .collect())
    }

    async fn get(&self, namespace: &str, name: &str) -> Result<RolloutView, BackendError> {
        let key = (namespace.to_string(), name.to_string());
        self.world()
            .get(&key)
            .map(|e| MemoryBackend::view(&key, e))
            .ok_or_else(|| not_found(namespace, name))
    }

    async fn analysis(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Vec<CheckResult>, BackendError> {
        self.world()
            .get(&(namespace.into(), name.into()))
            .map(|e| e.analysis.clone())
            .ok_or_else(|| not_found(namespace, name))
    }

    async fn events(&self, namespace: &str, name: &str) -> Result<Vec<EventRecord>, BackendError> {
        self.world()
            .get(&(namespace.into(), name.into()))
            .map(|e| e.events.clone())
            .ok_or_else(|| not_found(namespace, name))
    }

    async fn command(
        &self,
        namespace: &str,
        name: &str,
        command: Command,
    ) -> Result<(), BackendError> {
        {
            let mut w = self.world();
            let e = w
                .get_mut(&(namespace.into(), name.into()))
                .ok_or_else(|| not_found(namespace, name))?;
            engine::command_allowed(&e.status, command)?;
            e.commands.push_back(command);
        }
        self.wake.notify_one();
        Ok(())
    }

    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.tx.subscribe()
    }
}

/// Every fake executor, over the shared world.
struct Fake(Arc<MemoryBackend>);

#[async_trait::async_trait]
impl exec::TrafficRouter for Fake {
    async fn apply(&self, rollout: &Rollout, plan: &TrafficPlan) -> Result<(), BoxError> {
        plan.check()?;
        self.0
            .with_entry(rollout, |e| e.traffic = Some(plan.clone()));
        Ok(())
    }
}

#[async_trait::async_trait]
impl exec::Workloads for Fake {
    async fn observe(
        &self,
        rollout: &Rollout,
        _: &RolloutStatus,
    ) -> Result<Observations, BoxError> {
        self.0
            .with_entry(rollout, |e| Observations {
                revision: Some(e.target_revision.clone()),
                stable_running: Some(e.stable_running.clone()),
                stable_ready: true,
                canary_ready: true,
                ..Default::default()
            })
            .ok_or_else(|| "rollout deleted".into())
    }
    async fn scale_up_canary(&self, _: &Rollout) -> Result<(), BoxError> {
        Ok(())
    }
    async fn scale_down_canary(&self, _: &Rollout) -> Result<(), BoxError> {
        Ok(())
    }
    async fn promote(&self, rollout: &Rollout, revision: &str) -> Result<(), BoxError> {
        self.0
            .with_entry(rollout, |e| e.stable_running = revision.to_string());
        Ok(())
    }
    async fn restore_stable(&self, rollout: &Rollout, revision: &str) -> Result<(), BoxError> {
        // The target keeps the undone revision: the engine remembers it as the canary, so
        // it does not start again by itself (`retry` does).
        self.0
            .with_entry(rollout, |e| e.stable_running = revision.to_string());
        Ok(())
    }
}

#[async_trait::async_trait]
impl exec::Analyzer for Fake {
    async fn analyze(&self, rollout: &Rollout, now: DateTime<Utc>) -> Vec<CheckResult> {
        self.0
            .with_entry(rollout, |e| {
                let health = e.health;
                rollout
                    .spec
                    .analysis
                    .metrics
                    .iter()
                    .map(|m| fake_check(m, health, &mut e.rng, now))
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl exec::Webhooks for Fake {
    async fn call(&self, _: &Rollout, _: &RolloutStatus, _: WebhookKind) -> Option<GateAnswer> {
        None
    }
    async fn checks(&self, _: &Rollout, _: &RolloutStatus, _: DateTime<Utc>) -> Vec<CheckResult> {
        Vec::new()
    }
}

#[async_trait::async_trait]
impl exec::Recorder for Fake {
    async fn event(&self, rollout: &Rollout, status: &RolloutStatus, event: &Event) {
        let key = key_of(rollout);
        let sent = self.0.with_entry(rollout, |e| {
            e.events.push(EventRecord::of(e.clock, status, event));
            trim(&mut e.events);
            change(&key, status, ChangeKind::Event)
        });
        if let Some(c) = sent {
            let _ = self.0.tx.send(c);
        }
    }
    async fn analysis(&self, rollout: &Rollout, report: &AnalysisReport) {
        let key = key_of(rollout);
        let sent = self.0.with_entry(rollout, |e| {
            e.analysis.extend(report.checks.iter().cloned());
            trim(&mut e.analysis);
            change(&key, &e.status, ChangeKind::Analysis)
        });
        if let Some(c) = sent {
            let _ = self.0.tx.send(c);
        }
    }
}

fn trim<T>(v: &mut Vec<T>) {
    if v.len() > HISTORY {
        v.drain(..v.len() - HISTORY);
    }
}

/// A value around (healthy) or beyond (failing) the metric's thresholds, judged like the
/// real analyzer judges: no value is Inconclusive, outside a bound is Fail.
fn fake_check(m: &Metric, health: Health, rng: &mut SmallRng, at: DateTime<Utc>) -> CheckResult {
    let (min, max) = (m.thresholds.min, m.thresholds.max);
    let noise: f64 = rng.random_range(-1.0..1.0);
    let value = match health {
        Health::NoData => None,
        Health::Healthy => Some(match (min, max) {
            (Some(lo), Some(hi)) => lo + (hi - lo) * (0.5 + 0.3 * noise),
            (Some(lo), None) => lo + (lo.abs() * 0.004).max(0.1) * (1.2 + 0.8 * noise),
            (None, Some(hi)) => hi * (0.55 + 0.25 * noise),
            (None, None) => 1.0,
        }),
        Health::Failing => Some(match (min, max) {
            (Some(lo), _) => lo - (lo.abs() * 0.03).max(1.0) * (1.5 + 0.5 * noise),
            (None, Some(hi)) => hi * (1.4 + 0.3 * noise),
            (None, None) => 0.0,
        }),
    };
    let (verdict, reason) = match value {
        None => (Verdict::Inconclusive, "no data".to_string()),
        Some(v) if min.is_some_and(|lo| v < lo) => (
            Verdict::Fail,
            format!("{v:.2} < min {}", min.unwrap_or_default()),
        ),
        Some(v) if max.is_some_and(|hi| v > hi) => (
            Verdict::Fail,
            format!("{v:.2} > max {}", max.unwrap_or_default()),
        ),
        Some(v) => (Verdict::Pass, format!("{v:.2} within thresholds")),
    };
    CheckResult {
        metric: m.name.clone(),
        verdict,
        value,
        min,
        max,
        reason,
        at,
        more_requests: None,
    }
}
