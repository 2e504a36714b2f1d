//! One task per rollout, ticking the engine and persisting every tick.
//!
//! ## Flow
//! A rollout's task loops: read its current spec → [`exec::tick`] → write status, stable
//! pointer, applied plan and the tick's history in one store transaction → broadcast what
//! changed → sleep `min(analysis.interval, 1s)`, or less when a command arrives (commands
//! trigger an immediate tick) or the spec changes. `abort` and `pause` do not wait for the
//! tick in flight: they cut short an analysis or webhook it waits on
//! ([`exec::tick_interruptible`]).
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
    Cell, EffectiveRouter, StableSync, StandaloneWorkloads, effective, initial_upstreams,
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
}

#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Longest time between two ticks of a rollout.
    pub max_period: Duration,
    /// Shortest time between two ticks (a 0s interval must not spin).
    pub min_period: Duration,
    pub probe_timeout: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            max_period: Duration::from_secs(1),
            min_period: Duration::from_millis(100),
            probe_timeout: Duration::from_millis(300),
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
}

/// Runs every managed rollout. Also the [`sluice_core::backend::Backend`] of standalone mode (see
/// `backend.rs`).
pub struct Runner {
    shared: Arc<Shared>,
    tasks: Mutex<HashMap<String, Handle>>,
    /// Problems of the rollout files that could not be loaded, from the last scan.
    problems: Mutex<Vec<sluice_core::backend::FileProblem>>,
}

impl Runner {
    pub fn new(store: Store, deps: Deps, timing: Timing) -> Arc<Runner> {
        let (changes, _) = broadcast::channel(1024);
        Arc::new(Runner {
            shared: Arc::new(Shared {
                store,
                deps,
                timing,
                changes,
            }),
            tasks: Mutex::new(HashMap::new()),
            problems: Mutex::new(Vec::new()),
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
#[derive(Default)]
pub struct BufferRecorder {
    events: Mutex<Vec<EventRecord>>,
    checks: Mutex<Vec<CheckResult>>,
}

impl BufferRecorder {
    fn push_event(&self, status: &RolloutStatus, event: &Event) {
        lock(&self.events).push(EventRecord::of(Utc::now(), status, event));
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

/// Ticks between `min_period` and `max_period`, following the analysis interval.
fn period(plan: &RolloutPlan, timing: &Timing) -> Duration {
    plan.analysis
        .interval_std
        .clamp(timing.min_period, timing.max_period)
}

/// Longest wait between two attempts at a plan the data plane refuses.
pub const MAX_REFUSAL_BACKOFF: Duration = Duration::from_secs(30);

/// The period, doubled for each consecutive refusal (1 s, 2 s, 4 s … 30 s). Commands and spec
/// edits still wake the rollout at once.
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

async fn rollout_task(
    shared: Arc<Shared>,
    key: String,
    mut spec_rx: watch::Receiver<(Arc<Rollout>, Option<PathBuf>)>,
    mut msgs: mpsc::UnboundedReceiver<Msg>,
) {
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
            // Starting from scratch would forget where traffic is: wait for the store instead.
            tracing::error!(rollout = %key, error = %e, "cannot read the store; rollout not started");
            return;
        }
    };
    let resumed = stored.as_ref().is_some_and(|r| !r.retired);
    let mut record = match stored {
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
    let buffer = Arc::new(BufferRecorder::default());
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
            probe_timeout: shared.timing.probe_timeout,
        }),
        analyzer: shared.deps.analyzer.clone(),
        webhooks: shared.deps.webhooks.clone(),
        recorder,
    };
    let ex = match &shared.deps.telemetry {
        Some(t) => t.wrap(ex),
        None => ex,
    };

    if resumed {
        // The data plane may have been rebuilt (or the router is new in this process): serve
        // what the last committed tick decided before deciding anything new.
        let plan = record
            .applied
            .clone()
            .unwrap_or_else(TrafficPlan::stable_only);
        if let Err(e) = router.apply(&record.rollout, &plan).await {
            tracing::warn!(rollout = %key, error = %e, "re-applying the stored traffic plan failed");
        }
    }
    // Only a rollout in flight resumes: a finished (Succeeded, Failed) or never started (Idle)
    // one would gain a `Resumed` entry on every restart and nothing else.
    if resumed && !record.status.phase.is_terminal() {
        buffer.push_event(
            &record.status,
            &Event {
                reason: EventReason::Resumed,
                message: format!(
                    "sluice restarted: resuming at step {} ({})",
                    record.status.step_index + 1,
                    record.status.phase
                ),
                warning: false,
            },
        );
    }

    let mut queue: VecDeque<Command> = VecDeque::new();
    // The outbox of ticks whose commit has not succeeded yet (`exec::deliver` after it).
    let mut undelivered: Vec<exec::Outgoing> = Vec::new();
    let mut last_error: Option<String> = None;
    // Consecutive ticks whose plan the data plane refused: the wait doubles with each.
    let mut refusals: u32 = 0;
    // Whether the record differs from what the store holds: idle ticks write nothing.
    let mut dirty = true;
    // The spec parsed once per version (its hash): what the engine runs.
    let mut planned: Option<(String, Arc<RolloutPlan>)> = None;
    loop {
        let (rollout, source) = spec_rx.borrow_and_update().clone();
        let hash = spec_hash(&rollout);
        let plan = match &planned {
            Some((h, plan)) if *h == hash => plan.clone(),
            _ => match RolloutPlan::try_from(&rollout.spec) {
                Ok(plan) => {
                    let plan = Arc::new(plan);
                    planned = Some((hash.clone(), plan.clone()));
                    plan
                }
                Err(e) => {
                    // The loader hands over only files `validate` accepts, and the plan *is*
                    // those rules: this is a bug, not a user error. Hold everything as it is
                    // (no tick, traffic unchanged) until the spec changes.
                    tracing::error!(rollout = %key, error = %e, "spec accepted by the loader does not parse; holding");
                    if spec_rx.changed().await.is_err() {
                        let (events, _) = buffer.take();
                        retire(&shared, &key, &mut record, events).await;
                        return;
                    }
                    continue;
                }
            },
        };
        if hash != record.spec_hash
            || source.as_ref().map(|p| p.display().to_string()) != record.source
        {
            if hash != record.spec_hash && started(&record) {
                buffer.push_event(
                    &record.status,
                    &Event {
                        reason: EventReason::SpecUpdated,
                        message: format!("spec {} → {hash}", record.spec_hash),
                        warning: false,
                    },
                );
            }
            dirty = true;
            record.rollout = (*rollout).clone();
            record.spec_hash = hash;
            record.source = source.map(|p| p.display().to_string());
            let sync = cell.sync_spec(&rollout);
            if sync != StableSync::Unchanged {
                let up = cell.upstreams();
                let (reason, what) = match sync {
                    StableSync::Repointed => {
                        (EventReason::StableRepointed, "upstreams.stable edited")
                    }
                    _ => (
                        EventReason::StableRelabelled,
                        "upstreams.stableRevision edited",
                    ),
                };
                buffer.push_event(
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
                // The engine does not see this edit: between rollouts, tell it what stable runs
                // now, so that it compares the declared revision with the right label (and
                // does not offer an undo to an address the store forgot). A rollout in flight
                // keeps its view; its promotion sets the stable label anyway.
                let in_flight = matches!(
                    record.status.phase,
                    Phase::Progressing | Phase::Paused | Phase::Promoting
                );
                if started(&record) && !in_flight {
                    record.status.stable_revision = Some(up.stable_revision.clone());
                    if sync == StableSync::Repointed {
                        record.status.previous_stable_revision = None;
                    }
                }
                // Make the data plane follow now.
                if sync == StableSync::Repointed {
                    let plan = cell.applied().unwrap_or_else(TrafficPlan::stable_only);
                    if let Err(e) = router.apply(&rollout, &plan).await {
                        tracing::warn!(rollout = %key, error = %e, "re-pointing stable failed");
                    }
                }
            }
        }

        let command = queue.pop_front();
        let now = Utc::now();
        let outcome = {
            // `abort` / `pause` arriving while the tick waits on an analysis or a webhook cut
            // it short; other messages are kept for after the tick, in order.
            let noted = record.status.clone();
            let (queue, msgs, buffer) = (&mut queue, &mut msgs, &buffer);
            let interrupt = async move {
                loop {
                    match msgs.recv().await {
                        Some(Msg::Command(c)) if c.preempts() => return c,
                        Some(Msg::Command(c)) => queue.push_back(c),
                        Some(Msg::Note(ev)) => buffer.push_event(&noted, &ev),
                        // The runner let go of this rollout: the select below sees it.
                        None => std::future::pending::<()>().await,
                    }
                }
            };
            let interrupt = std::pin::pin!(interrupt);
            let (st, interrupt): (&RolloutStatus, exec::Interrupt<'_>) =
                (&record.status, interrupt);
            match &shared.deps.telemetry {
                Some(t) => {
                    observed_tick_interruptible(
                        &ex,
                        &t.metrics,
                        &rollout,
                        &plan,
                        st,
                        command,
                        now,
                        Some(interrupt),
                    )
                    .await
                }
                None => {
                    exec::tick_interruptible(
                        &ex,
                        &rollout,
                        &plan,
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
            queue.push_front(c);
        }
        // The tick's events go into this commit's history; notifications leave after it.
        for (ev, st) in outcome.events() {
            buffer.push_event(st, ev);
        }
        undelivered.extend(outcome.outbox.iter().cloned());
        let revision = outcome.revision.clone();
        refusals = match &outcome.error {
            Some(e) if e.action == exec::APPLY_TRAFFIC => refusals.saturating_add(1),
            _ => 0,
        };
        match &outcome.error {
            Some(e) => {
                let msg = e.to_string();
                if shared.deps.telemetry.is_none() {
                    // observed_tick logs it otherwise.
                    tracing::warn!(rollout = %key, error = %msg, "tick failed");
                }
                // Once per distinct error, not once per second. A refused plan is recorded
                // by the tick itself (`RouterRefused`, with a condition).
                if last_error.as_ref() != Some(&msg) && e.action != exec::APPLY_TRAFFIC {
                    buffer.push_event(
                        &outcome.status,
                        &Event {
                            reason: EventReason::ExecutorError,
                            message: msg.clone(),
                            warning: true,
                        },
                    );
                }
                last_error = Some(msg);
            }
            None => last_error = None,
        }
        let applied = cell.applied();
        let mut status = outcome.status;
        // What the router confirmed (the cell follows only successful applies): the status
        // says what is served, as on Kubernetes.
        status.applied_traffic = applied.clone();
        let status_changed = status != record.status;
        record.status = status;
        let upstreams = cell.upstreams();
        dirty |= status_changed || upstreams != record.upstreams || applied != record.applied;
        record.upstreams = upstreams;
        record.applied = applied;
        let (events, checks) = buffer.take();
        dirty |= !events.is_empty() || !checks.is_empty();
        let committed = if !dirty {
            Ok(record.clone())
        } else {
            let mut to_commit = record.clone();
            shared
                .store
                .run({
                    let key = key.clone();
                    let events = events.clone();
                    let checks = checks.clone();
                    move |s| {
                        s.commit_tick(&key, &mut to_commit, &events, &checks)?;
                        Ok(to_commit)
                    }
                })
                .await
        };
        match committed {
            Ok(r) => {
                dirty = false;
                let outbox = std::mem::take(&mut undelivered);
                observed_deliver(&ex, &rollout, revision.as_deref(), &outbox).await;
                record.next_event = r.next_event;
                record.next_check = r.next_check;
                if status_changed {
                    let _ = shared
                        .changes
                        .send(change(&key, &record.status, ChangeKind::Status));
                }
                if !events.is_empty() {
                    let _ = shared
                        .changes
                        .send(change(&key, &record.status, ChangeKind::Event));
                }
                if !checks.is_empty() {
                    let _ = shared
                        .changes
                        .send(change(&key, &record.status, ChangeKind::Analysis));
                }
            }
            Err(e) => {
                tracing::error!(rollout = %key, error = %e, "store write failed; retrying next tick");
                buffer.restore(events, checks);
            }
        }

        if !queue.is_empty() {
            continue;
        }
        let sleep = tokio::time::sleep(backoff(period(&plan, &shared.timing), refusals));
        tokio::select! {
            msg = msgs.recv() => match msg {
                Some(Msg::Command(c)) => queue.push_back(c),
                Some(Msg::Note(ev)) => buffer.push_event(&record.status, &ev),
                None => return,
            },
            changed = spec_rx.changed() => {
                if changed.is_err() {
                    let (events, _) = buffer.take();
                    retire(&shared, &key, &mut record, events).await;
                    return;
                }
            }
            _ = sleep => {}
        }
        // Take every command that arrived meanwhile, in order.
        while let Ok(msg) = msgs.try_recv() {
            match msg {
                Msg::Command(c) => queue.push_back(c),
                Msg::Note(ev) => buffer.push_event(&record.status, &ev),
            }
        }
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
        at: Utc::now(),
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
