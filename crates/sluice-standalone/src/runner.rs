//! One task per rollout, ticking the engine and persisting what changed.
//!
//! ## Flow
//! A rollout's task ([`RolloutTask`]) loops: absorb its current spec → [`exec::tick`] → write
//! status, stable pointer, applied plan and the tick's history in one store transaction (only
//! when something changed) → broadcast what changed → wait. It wakes when its analysis is due,
//! else once per `analysis.interval` (capped by [`Timing::max_period`]) at its own place in
//! the period (from its key: rollouts with the same interval are spread over it), and at once
//! on a command, a spec edit or a readiness change of its upstreams (from the shared
//! [`Prober`], which connects once per address per period for every rollout). `abort` and
//! `pause` do not wait for the tick in flight: they cut short an analysis or webhook it waits
//! on ([`exec::tick_interruptible`]). Time comes from the injected [`Clock`] (wall clock in
//! production).
//!
//! ## Guarantees
//! - A kill at any point loses at most the tick in flight: the next start reads the last
//!   committed tick, re-applies the plan it recorded (so the data plane and the router's view
//!   agree) and continues at the same step. The engine is idempotent over a repeated tick.
//! - Removing a rollout (its file) applies an all-stable plan, then forgets it.
//! - A store write that fails is retried on the next tick with the history kept in memory.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{broadcast, mpsc, watch};

use sluice_core::backend::{Change, ChangeKind, EventRecord};
use sluice_core::clock::Clock;
use sluice_core::engine::{AnalysisReport, Command, Event, EventReason};
use sluice_core::exec::{self, Analyzer, Executors, Recorder, TrafficRouter, Webhooks};
use sluice_core::rollout_plan::RolloutPlan;
use sluice_core::spec::{CheckResult, Phase, Rollout, RolloutStatus};
use sluice_core::traffic::TrafficPlan;
use {
    sluice_notify::Telemetry,
    sluice_telemetry::{observed_deliver, observed_tick_interruptible},
};

use super::store::{RolloutRecord, Store, spec_hash};
use super::workloads::{
    Cell, EffectiveRouter, Prober, StableSync, StandaloneWorkloads, effective, initial_upstreams,
};

/// The mode-independent executors the runner plugs into each rollout.
#[derive(Clone)]
pub struct Deps {
    /// The data plane (Envoy). Sees each rollout with stable replaced by the stable pointer.
    pub router: Arc<dyn TrafficRouter>,
    pub analyzer: Arc<dyn Analyzer>,
    pub webhooks: Arc<dyn Webhooks>,
    /// Metrics, notifications and the tick span around every rollout's executors.
    pub telemetry: Option<Telemetry>,
    /// Where "now" comes from (ticks, history entries).
    pub clock: Arc<dyn Clock>,
}

#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Longest time between two ticks of a rollout (its analysis interval, up to this).
    pub max_period: Duration,
    /// Shortest time between two ticks (a 0s interval must not spin).
    pub min_period: Duration,
    pub probe_timeout: Duration,
    /// How often the shared prober connects to every upstream address.
    pub probe_period: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            max_period: Duration::from_secs(30),
            min_period: Duration::from_millis(100),
            probe_timeout: Duration::from_millis(300),
            probe_period: Duration::from_secs(1),
        }
    }
}

enum Msg {
    Command(Command),
    /// An event that did not come from the engine (bad file, executor error).
    Note(Event),
}

struct Handle {
    spec: watch::Sender<(Arc<Rollout>, Option<PathBuf>)>,
    msgs: mpsc::UnboundedSender<Msg>,
    task: tokio::task::JoinHandle<()>,
}

struct Shared {
    store: Store,
    deps: Deps,
    timing: Timing,
    changes: broadcast::Sender<Change>,
    prober: Arc<Prober>,
}

/// Runs every managed rollout. Also the [`sluice_core::backend::Backend`] of standalone mode (see
/// `backend.rs`).
pub struct Runner {
    shared: Arc<Shared>,
    tasks: Mutex<HashMap<String, Handle>>,
    /// Problems of the rollout files that could not be loaded, from the last scan.
    problems: Mutex<Vec<sluice_core::backend::FileProblem>>,
    /// The shared prober's loop.
    probing: tokio::task::JoinHandle<()>,
}

impl Runner {
    /// Must be called inside a tokio runtime (it starts the shared prober).
    pub fn new(store: Store, deps: Deps, timing: Timing) -> Arc<Runner> {
        let (changes, _) = broadcast::channel(1024);
        let prober = Prober::new(timing.probe_timeout);
        let probing = prober.spawn(timing.probe_period);
        Arc::new(Runner {
            shared: Arc::new(Shared {
                store,
                deps,
                timing,
                changes,
                prober,
            }),
            tasks: Mutex::new(HashMap::new()),
            problems: Mutex::new(Vec::new()),
            probing,
        })
    }

    /// What the API lists as `GET /api/v1/problems` (the loader's view after each scan).
    pub fn set_problems(&self, problems: Vec<sluice_core::backend::FileProblem>) {
        *lock(&self.problems) = problems;
    }

    pub fn problems(&self) -> Vec<sluice_core::backend::FileProblem> {
        lock(&self.problems).clone()
    }

    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    pub fn changes(&self) -> broadcast::Receiver<Change> {
        self.shared.changes.subscribe()
    }

    /// Keys of the rollouts being run.
    pub fn managed(&self) -> Vec<String> {
        let mut keys: Vec<String> = lock(&self.tasks).keys().cloned().collect();
        keys.sort();
        keys
    }

    /// Starts running a rollout, or hands its running task a new spec.
    pub fn upsert(&self, rollout: Rollout, source: Option<PathBuf>) {
        let key = rollout.key();
        let mut tasks = lock(&self.tasks);
        if let Some(h) = tasks.get(&key)
            && !h.task.is_finished()
        {
            h.spec.send_replace((Arc::new(rollout), source));
            return;
        }
        let (spec_tx, spec_rx) = watch::channel((Arc::new(rollout), source));
        let (msg_tx, msg_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(rollout_task(
            self.shared.clone(),
            key.clone(),
            spec_rx,
            msg_rx,
        ));
        tasks.insert(
            key,
            Handle {
                spec: spec_tx,
                msgs: msg_tx,
                task,
            },
        );
    }

    /// Stops managing a rollout: all traffic to stable, and the record is marked retired
    /// (hidden from the API, kept so the data plane serves it all-stable after a restart).
    /// Waits until that is done.
    pub async fn remove(&self, key: &str) {
        let handle = lock(&self.tasks).remove(key);
        if let Some(Handle { spec, task, .. }) = handle {
            // Closing the spec channel tells the task to retire.
            drop(spec);
            let _ = task.await;
        } else if let Ok(Some(mut record)) = self.shared.store.get(key)
            && !record.retired
        {
            retire(&self.shared, key, &mut record, Vec::new()).await;
        }
    }

    /// Queues a command; the rollout ticks at once. False when the rollout is not running.
    pub fn command(&self, key: &str, command: Command) -> bool {
        lock(&self.tasks)
            .get(key)
            .is_some_and(|h| h.msgs.send(Msg::Command(command)).is_ok())
    }

    /// Records a warning in the rollout's history (e.g. its file became invalid).
    pub fn note(&self, key: &str, reason: EventReason, message: String) {
        if let Some(h) = lock(&self.tasks).get(key) {
            let _ = h.msgs.send(Msg::Note(Event {
                reason,
                message,
                warning: true,
            }));
        }
    }

    /// Stops every task without touching traffic or the store (process shutdown).
    pub fn shutdown(&self) {
        for (_, h) in lock(&self.tasks).drain() {
            h.task.abort();
        }
        self.probing.abort();
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Keeps a tick's history in memory until the runner commits it with the status.
pub struct BufferRecorder {
    clock: Arc<dyn Clock>,
    events: Mutex<Vec<EventRecord>>,
    checks: Mutex<Vec<CheckResult>>,
}

impl BufferRecorder {
    pub fn new(clock: Arc<dyn Clock>) -> BufferRecorder {
        BufferRecorder {
            clock,
            events: Mutex::new(Vec::new()),
            checks: Mutex::new(Vec::new()),
        }
    }

    fn push_event(&self, status: &RolloutStatus, event: &Event) {
        lock(&self.events).push(EventRecord::of(self.clock.now(), status, event));
    }

    fn take(&self) -> (Vec<EventRecord>, Vec<CheckResult>) {
        (
            std::mem::take(&mut *lock(&self.events)),
            std::mem::take(&mut *lock(&self.checks)),
        )
    }

    /// Puts history back after a failed commit, before anything newer.
    fn restore(&self, events: Vec<EventRecord>, checks: Vec<CheckResult>) {
        let mut e = lock(&self.events);
        let newer = std::mem::replace(&mut *e, events);
        e.extend(newer);
        let mut c = lock(&self.checks);
        let newer = std::mem::replace(&mut *c, checks);
        c.extend(newer);
    }
}

#[async_trait::async_trait]
impl Recorder for BufferRecorder {
    /// A tick's events reach the history through its outbox, which the runner commits with
    /// the status (`exec::deliver` runs only after that commit, for notifications and
    /// metrics): recording them here too would write them twice.
    async fn event(&self, _rollout: &Rollout, _status: &RolloutStatus, _event: &Event) {}
    async fn analysis(&self, _rollout: &Rollout, report: &AnalysisReport) {
        lock(&self.checks).extend(report.checks.iter().cloned());
    }
}

/// The analysis interval, between `min_period` and `max_period`.
fn period(plan: &RolloutPlan, timing: &Timing) -> Duration {
    plan.analysis
        .interval_std
        .clamp(timing.min_period, timing.max_period)
}

/// Longest wait between two attempts at a plan the data plane refuses.
pub const MAX_REFUSAL_BACKOFF: Duration = Duration::from_secs(30);

/// The period, doubled for each consecutive refusal (e.g. 1 s, 2 s, 4 s … 30 s). Commands and
/// spec edits still wake the rollout at once.
fn backoff(period: Duration, refusals: u32) -> Duration {
    if refusals == 0 {
        return period;
    }
    period
        .saturating_mul(1u32 << refusals.min(16))
        .min(MAX_REFUSAL_BACKOFF.max(period))
}

fn new_record(rollout: &Rollout, source: Option<&PathBuf>) -> RolloutRecord {
    RolloutRecord {
        rollout: rollout.clone(),
        source: source.map(|p| p.display().to_string()),
        spec_hash: spec_hash(rollout),
        status: RolloutStatus::default(),
        upstreams: initial_upstreams(rollout),
        applied: None,
        retired: false,
        next_event: 0,
        next_check: 0,
        history: Default::default(),
    }
}

fn change(key: &str, status: &RolloutStatus, kind: ChangeKind) -> Change {
    let (namespace, name) = key.split_once('/').unwrap_or(("default", key));
    Change {
        namespace: namespace.to_string(),
        name: name.to_string(),
        phase: status.phase,
        step_index: status.step_index,
        canary_weight: status.canary_weight,
        kind,
    }
}

/// Why a rollout's wait ended.
enum Wake {
    /// Tick now (the interval elapsed, a command, a spec edit or a readiness change).
    Tick,
    /// The runner let go of it (its file is gone): all traffic to stable, then stop.
    Retire,
    /// The runner is shutting down: stop without touching anything.
    Stop,
}

/// One rollout's task: its record, its executors and what it waits on. Each method does one
/// thing; [`RolloutTask::run`] strings them together.
struct RolloutTask {
    shared: Arc<Shared>,
    key: String,
    spec_rx: watch::Receiver<(Arc<Rollout>, Option<PathBuf>)>,
    msgs: mpsc::UnboundedReceiver<Msg>,
    /// Bumped by the shared prober when any upstream's readiness changed.
    readiness: watch::Receiver<u64>,
    record: RolloutRecord,
    cell: Arc<Cell>,
    buffer: Arc<BufferRecorder>,
    /// The data plane seen through the stable pointer (remembers what it applied).
    router: Arc<dyn TrafficRouter>,
    ex: Executors,
    queue: VecDeque<Command>,
    last_error: Option<String>,
    /// Consecutive ticks whose plan the data plane refused: the wait doubles with each.
    refusals: u32,
    /// Whether the record differs from what the store holds: idle ticks write nothing.
    dirty: bool,
    /// The spec parsed once per version (its hash): what the engine runs.
    planned: Option<(String, Arc<RolloutPlan>)>,
    /// Where in each period this rollout wakes (from its key), so that rollouts with the same
    /// interval do not all wake together.
    phase: f64,
    /// Readiness of (stable, canary) at the last tick: a change wakes the rollout.
    last_ready: Option<(bool, bool)>,
    /// The status changed since the last commit (the API hears of it once stored).
    status_changed: bool,
    /// The outbox of ticks whose commit has not succeeded yet (`exec::deliver` after it).
    undelivered: Vec<exec::Outgoing>,
    /// The revision the last tick ran for (what delivered notifications name).
    revision: Option<String>,
}

impl RolloutTask {
    /// Reads the rollout's record (or starts a new one) and builds its executors. None when
    /// the store cannot be read: starting from scratch would forget where traffic is.
    async fn open(
        shared: Arc<Shared>,
        key: String,
        mut spec_rx: watch::Receiver<(Arc<Rollout>, Option<PathBuf>)>,
        msgs: mpsc::UnboundedReceiver<Msg>,
    ) -> Option<(RolloutTask, bool)> {
        let (first, source) = spec_rx.borrow_and_update().clone();
        let stored = match shared
            .store
            .run({
                let key = key.clone();
                move |s| s.get(&key)
            })
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(rollout = %key, error = %e, "cannot read the store; rollout not started");
                return None;
            }
        };
        let resumed = stored.as_ref().is_some_and(|r| !r.retired);
        let record = match stored {
            // Its file came back: start over on the same stable pointer, keeping the history.
            Some(mut r) if r.retired => {
                r.retired = false;
                r.status = RolloutStatus::default();
                r
            }
            Some(r) => r,
            None => new_record(&first, source.as_ref()),
        };
        let cell = Cell::new(record.upstreams.clone(), record.applied.clone());
        let buffer = Arc::new(BufferRecorder::new(shared.deps.clock.clone()));
        let recorder: Arc<dyn Recorder> = buffer.clone();
        let router: Arc<dyn TrafficRouter> = Arc::new(EffectiveRouter {
            inner: shared.deps.router.clone(),
            cell: cell.clone(),
        });
        let ex = Executors {
            router: router.clone(),
            workloads: Arc::new(StandaloneWorkloads {
                router: shared.deps.router.clone(),
                cell: cell.clone(),
                prober: shared.prober.clone(),
            }),
            analyzer: shared.deps.analyzer.clone(),
            webhooks: shared.deps.webhooks.clone(),
            recorder,
        };
        let ex = match &shared.deps.telemetry {
            Some(t) => t.wrap(ex),
            None => ex,
        };
        let readiness = shared.prober.changes();
        let phase = phase_of(&key);
        Some((
            RolloutTask {
                shared,
                key,
                spec_rx,
                msgs,
                readiness,
                record,
                cell,
                buffer,
                router,
                ex,
                queue: VecDeque::new(),
                last_error: None,
                refusals: 0,
                dirty: true,
                planned: None,
                phase,
                last_ready: None,
                status_changed: false,
                undelivered: Vec::new(),
                revision: None,
            },
            resumed,
        ))
    }

    /// Until the runner lets go: absorb the spec, tick, commit, wait.
    async fn run(mut self, resumed: bool) {
        if resumed {
            self.resume().await;
        }
        loop {
            let (rollout, source) = self.spec_rx.borrow_and_update().clone();
            let Some(plan) = self.plan(&rollout) else {
                // Held until the spec changes.
                match self.wait_for_spec().await {
                    Wake::Retire => return self.retire().await,
                    Wake::Stop => return,
                    Wake::Tick => continue,
                }
            };
            self.absorb_spec(&rollout, source).await;
            self.tick(&rollout, &plan).await;
            self.commit().await;
            if !self.queue.is_empty() {
                continue;
            }
            match self.wait(&plan).await {
                Wake::Tick => {}
                Wake::Retire => return self.retire().await,
                Wake::Stop => return,
            }
        }
    }

    /// After a restart: serve what the last committed tick decided before deciding anything
    /// new (the data plane may have been rebuilt, or the router is new in this process).
    async fn resume(&mut self) {
        let plan = self
            .record
            .applied
            .clone()
            .unwrap_or_else(TrafficPlan::stable_only);
        if let Err(e) = self.router.apply(&self.record.rollout, &plan).await {
            tracing::warn!(rollout = %self.key, error = %e, "re-applying the stored traffic plan failed");
        }
        // Only a rollout in flight resumes: a finished (Succeeded, Failed) or never started
        // (Idle) one would gain a `Resumed` entry on every restart and nothing else.
        if !self.record.status.phase.is_terminal() {
            self.buffer.push_event(
                &self.record.status,
                &Event {
                    reason: EventReason::Resumed,
                    message: format!(
                        "sluice restarted: resuming at step {} ({})",
                        self.record.status.step_index + 1,
                        self.record.status.phase
                    ),
                    warning: false,
                },
            );
        }
    }

    /// The spec's plan, parsed once per version. None when it does not parse: the loader
    /// hands over only files `validate` accepts, and the plan *is* those rules, so this is a
    /// bug, not a user error; everything is held as it is (no tick, traffic unchanged).
    fn plan(&mut self, rollout: &Rollout) -> Option<Arc<RolloutPlan>> {
        let hash = spec_hash(rollout);
        if let Some((h, plan)) = &self.planned
            && *h == hash
        {
            return Some(plan.clone());
        }
        match RolloutPlan::try_from(&rollout.spec) {
            Ok(plan) => {
                let plan = Arc::new(plan);
                self.planned = Some((hash, plan.clone()));
                Some(plan)
            }
            Err(e) => {
                tracing::error!(rollout = %self.key, error = %e, "spec accepted by the loader does not parse; holding");
                None
            }
        }
    }

    /// Takes in a new version of the spec (or of its file's path): records it, and follows an
    /// edit of the stable upstream at once.
    async fn absorb_spec(&mut self, rollout: &Rollout, source: Option<PathBuf>) {
        let hash = spec_hash(rollout);
        let source = source.map(|p| p.display().to_string());
        if hash == self.record.spec_hash && source == self.record.source {
            return;
        }
        let record = &mut self.record;
        if hash != record.spec_hash && started(record) {
            self.buffer.push_event(
                &record.status,
                &Event {
                    reason: EventReason::SpecUpdated,
                    message: format!("spec {} → {hash}", record.spec_hash),
                    warning: false,
                },
            );
        }
        self.dirty = true;
        record.rollout = rollout.clone();
        record.spec_hash = hash;
        record.source = source;
        let sync = self.cell.sync_spec(rollout);
        if sync == StableSync::Unchanged {
            return;
        }
        let up = self.cell.upstreams();
        let (reason, what) = match sync {
            StableSync::Repointed => (EventReason::StableRepointed, "upstreams.stable edited"),
            _ => (
                EventReason::StableRelabelled,
                "upstreams.stableRevision edited",
            ),
        };
        self.buffer.push_event(
            &record.status,
            &Event {
                reason,
                message: format!(
                    "{what}: stable is {} at {}",
                    up.stable_revision, up.stable_address
                ),
                warning: false,
            },
        );
        // The engine does not see this edit: between rollouts, tell it what stable runs now,
        // so that it compares the declared revision with the right label (and does not offer
        // an undo to an address the store forgot). A rollout in flight keeps its view; its
        // promotion sets the stable label anyway.
        let in_flight = matches!(
            record.status.phase,
            Phase::Progressing | Phase::Paused | Phase::Promoting
        );
        if started(record) && !in_flight {
            record.status.stable_revision = Some(up.stable_revision.clone());
            if sync == StableSync::Repointed {
                record.status.previous_stable_revision = None;
            }
        }
        // Make the data plane follow now.
        if sync == StableSync::Repointed {
            let plan = self.cell.applied().unwrap_or_else(TrafficPlan::stable_only);
            if let Err(e) = self.router.apply(rollout, &plan).await {
                tracing::warn!(rollout = %self.key, error = %e, "re-pointing stable failed");
            }
        }
    }

    /// One engine step with its effects; its outcome lands in the record (not yet stored).
    async fn tick(&mut self, rollout: &Rollout, plan: &RolloutPlan) {
        let command = self.queue.pop_front();
        let now = self.shared.deps.clock.now();
        let outcome = {
            // `abort` / `pause` arriving while the tick waits on an analysis or a webhook cut
            // it short; other messages are kept for after the tick, in order.
            let noted = self.record.status.clone();
            let (queue, msgs, buffer) = (&mut self.queue, &mut self.msgs, &self.buffer);
            let interrupt = async move {
                loop {
                    match msgs.recv().await {
                        Some(Msg::Command(c)) if c.preempts() => return c,
                        Some(Msg::Command(c)) => queue.push_back(c),
                        Some(Msg::Note(ev)) => buffer.push_event(&noted, &ev),
                        // The runner let go of this rollout: the wait after the tick sees it.
                        None => std::future::pending::<()>().await,
                    }
                }
            };
            let interrupt = std::pin::pin!(interrupt);
            let (st, interrupt): (&RolloutStatus, exec::Interrupt<'_>) =
                (&self.record.status, interrupt);
            match &self.shared.deps.telemetry {
                Some(t) => {
                    observed_tick_interruptible(
                        &self.ex,
                        &t.metrics,
                        rollout,
                        plan,
                        st,
                        command,
                        now,
                        Some(interrupt),
                    )
                    .await
                }
                None => {
                    exec::tick_interruptible(
                        &self.ex,
                        rollout,
                        plan,
                        st,
                        command,
                        now,
                        Some(interrupt),
                    )
                    .await
                }
            }
        };
        if let Some(c) = outcome.unhandled_command {
            self.queue.push_front(c);
        }
        // The tick's events go into this commit's history; notifications leave after it.
        for (ev, st) in outcome.events() {
            self.buffer.push_event(st, ev);
        }
        self.undelivered.extend(outcome.outbox.iter().cloned());
        self.revision = outcome.revision.clone();
        self.refusals = match &outcome.error {
            Some(e) if e.action == exec::APPLY_TRAFFIC => self.refusals.saturating_add(1),
            _ => 0,
        };
        match &outcome.error {
            Some(e) => {
                let msg = e.to_string();
                if self.shared.deps.telemetry.is_none() {
                    // observed_tick logs it otherwise.
                    tracing::warn!(rollout = %self.key, error = %msg, "tick failed");
                }
                // Once per distinct error, not once per tick. A refused plan is recorded by
                // the tick itself (`RouterRefused`, with a condition).
                if self.last_error.as_ref() != Some(&msg) && e.action != exec::APPLY_TRAFFIC {
                    self.buffer.push_event(
                        &outcome.status,
                        &Event {
                            reason: EventReason::ExecutorError,
                            message: msg.clone(),
                            warning: true,
                        },
                    );
                }
                self.last_error = Some(msg);
            }
            None => self.last_error = None,
        }
        let applied = self.cell.applied();
        let mut status = outcome.status;
        // What the router confirmed (the cell follows only successful applies): the status
        // says what is served, as on Kubernetes.
        status.applied_traffic = applied.clone();
        let record = &mut self.record;
        if status != record.status {
            self.dirty = true;
            self.status_changed = true;
        }
        record.status = status;
        let upstreams = self.cell.upstreams();
        self.dirty |= upstreams != record.upstreams || applied != record.applied;
        record.upstreams = upstreams;
        record.applied = applied;
        self.last_ready = self.ready_now(rollout);
    }

    /// Writes the record and the tick's history in one transaction when anything changed,
    /// then tells the API what changed. A failed write keeps the history for the next try.
    async fn commit(&mut self) {
        let (events, checks) = self.buffer.take();
        if !self.dirty && events.is_empty() && checks.is_empty() {
            // Nothing to store: what the tick has to send can leave now.
            let outbox = std::mem::take(&mut self.undelivered);
            observed_deliver(
                &self.ex,
                &self.record.rollout,
                self.revision.as_deref(),
                &outbox,
            )
            .await;
            return;
        }
        let stored = self.shared.store.run({
            let key = self.key.clone();
            let mut to_commit = self.record.clone();
            let (events, checks) = (events.clone(), checks.clone());
            move |s| {
                s.commit_tick(&key, &mut to_commit, &events, &checks)?;
                Ok(to_commit)
            }
        });
        match stored.await {
            Ok(r) => {
                let status_changed = std::mem::take(&mut self.status_changed);
                self.dirty = false;
                let outbox = std::mem::take(&mut self.undelivered);
                observed_deliver(
                    &self.ex,
                    &self.record.rollout,
                    self.revision.as_deref(),
                    &outbox,
                )
                .await;
                self.record.next_event = r.next_event;
                self.record.next_check = r.next_check;
                self.record.history = r.history;
                if status_changed {
                    let _ = self.shared.changes.send(change(
                        &self.key,
                        &self.record.status,
                        ChangeKind::Status,
                    ));
                }
                if !events.is_empty() {
                    let _ = self.shared.changes.send(change(
                        &self.key,
                        &self.record.status,
                        ChangeKind::Event,
                    ));
                }
                if !checks.is_empty() {
                    let _ = self.shared.changes.send(change(
                        &self.key,
                        &self.record.status,
                        ChangeKind::Analysis,
                    ));
                }
            }
            Err(e) => {
                tracing::error!(rollout = %self.key, error = %e, "store write failed; retrying next tick");
                self.buffer.restore(events, checks);
            }
        }
    }

    /// Sleeps until the next tick is due: the analysis the status waits for, else this
    /// rollout's place in its next period (backed off while the data plane refuses its
    /// plan); earlier on a command, a spec edit or a change of its upstreams' readiness.
    async fn wait(&mut self, plan: &RolloutPlan) -> Wake {
        let clock = self.shared.deps.clock.clone();
        let period = period(plan, &self.shared.timing);
        let mut sleep_for = if self.refusals > 0 {
            backoff(period, self.refusals)
        } else {
            next_wake(period, self.phase, clock.now())
        };
        if self.refusals == 0
            && let Some(due) = self.record.status.next_analysis_at
            && let Ok(until) = (due - clock.now()).to_std()
        {
            sleep_for = sleep_for.min(until.max(self.shared.timing.min_period));
        }
        let sleep = tokio::time::sleep(sleep_for);
        tokio::pin!(sleep);
        let mut prober_alive = true;
        let wake = loop {
            tokio::select! {
                msg = self.msgs.recv() => match msg {
                    Some(Msg::Command(c)) => {
                        self.queue.push_back(c);
                        break Wake::Tick;
                    }
                    // A note is history, not a reason to tick: it is committed with the next.
                    Some(Msg::Note(ev)) => self.buffer.push_event(&self.record.status, &ev),
                    None => break Wake::Stop,
                },
                changed = self.spec_rx.changed() => {
                    break if changed.is_err() { Wake::Retire } else { Wake::Tick };
                }
                changed = self.readiness.changed(), if prober_alive => {
                    if changed.is_err() {
                        // The prober is gone (shutdown): the other wake-ups still work.
                        prober_alive = false;
                        continue;
                    }
                    let ready = self.ready_now(&self.record.rollout);
                    if ready.is_some() && ready != self.last_ready {
                        break Wake::Tick;
                    }
                }
                _ = &mut sleep => break Wake::Tick,
            }
        };
        // Take every command that arrived meanwhile, in order.
        while let Ok(msg) = self.msgs.try_recv() {
            match msg {
                Msg::Command(c) => self.queue.push_back(c),
                Msg::Note(ev) => self.buffer.push_event(&self.record.status, &ev),
            }
        }
        wake
    }

    /// Waits for a new spec (the current one does not parse).
    async fn wait_for_spec(&mut self) -> Wake {
        match self.spec_rx.changed().await {
            Ok(()) => Wake::Tick,
            Err(_) => Wake::Retire,
        }
    }

    /// Readiness of this rollout's (stable, canary) as the prober last saw it.
    fn ready_now(&self, rollout: &Rollout) -> Option<(bool, bool)> {
        let canary = rollout.spec.upstreams.as_ref()?.canary.clone();
        let stable = self.cell.upstreams().stable_address;
        Some((
            self.shared.prober.cached(&stable)?,
            self.shared.prober.cached(&canary)?,
        ))
    }

    /// All traffic to stable, then the record marked retired (with the pending history).
    async fn retire(mut self) {
        let (events, _) = self.buffer.take();
        retire(&self.shared, &self.key, &mut self.record, events).await;
    }
}

/// Where in each period a rollout wakes, in [0, 1): from its key, so it stays put across
/// restarts and rollouts spread evenly.
fn phase_of(key: &str) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % 10_000) as f64 / 10_000.0
}

/// Time from `now` until the next instant at `phase` of a `period`-long slot (wall-clock
/// aligned), at least a tenth of the period: ticks of rollouts with the same interval are
/// spread over it instead of all following their start.
fn next_wake(period: Duration, phase: f64, now: chrono::DateTime<Utc>) -> Duration {
    let p = period.as_micros().max(1) as i64;
    let at = now.timestamp_micros();
    let offset = (phase * p as f64) as i64;
    let mut next = (at - offset).div_euclid(p) * p + offset + p;
    if next - at < p / 10 {
        next += p;
    }
    Duration::from_micros((next - at).max(0) as u64)
}

async fn rollout_task(
    shared: Arc<Shared>,
    key: String,
    spec_rx: watch::Receiver<(Arc<Rollout>, Option<PathBuf>)>,
    msgs: mpsc::UnboundedReceiver<Msg>,
) {
    if let Some((task, resumed)) = RolloutTask::open(shared, key, spec_rx, msgs).await {
        task.run(resumed).await;
    }
}

fn started(record: &RolloutRecord) -> bool {
    record.status.stable_revision.is_some()
}

/// All traffic to stable, then mark the rollout retired (with `pending` history first).
async fn retire(shared: &Shared, key: &str, record: &mut RolloutRecord, pending: Vec<EventRecord>) {
    let eff = effective(&record.rollout, &record.upstreams);
    let plan = TrafficPlan::stable_only();
    match shared.deps.router.apply(&eff, &plan).await {
        Ok(()) => {
            record.applied = Some(plan);
            record.status.canary_weight = 0;
        }
        Err(e) => {
            tracing::warn!(rollout = %key, error = %e, "could not move traffic to stable on removal")
        }
    }
    record.retired = true;
    let mut events = pending;
    events.push(EventRecord {
        at: shared.deps.clock.now(),
        reason: EventReason::Unmanaged.as_str().into(),
        message: "rollout file removed: traffic left on stable, no longer managed".into(),
        warning: false,
        phase: record.status.phase,
        step_index: record.status.step_index,
        canary_weight: record.status.canary_weight,
    });
    let mut to_commit = record.clone();
    let committed = shared.store.run({
        let key = key.to_string();
        move |s| s.commit_tick(&key, &mut to_commit, &events, &[])
    });
    if let Err(e) = committed.await {
        tracing::error!(rollout = %key, error = %e, "could not mark the rollout retired in the store");
    }
    let _ = shared
        .changes
        .send(change(key, &record.status, ChangeKind::Deleted));
    tracing::info!(rollout = %key, "no longer managed (file removed): traffic left on stable");
}
