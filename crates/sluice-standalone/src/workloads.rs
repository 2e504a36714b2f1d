//! Workloads of a standalone rollout: two upstream addresses, and where "stable" points.
//!
//! - **Revision** of the target: `spec.revision` when set, else the canary upstream address.
//!   Changing either (in the file) starts a rollout.
//! - **Stable** is a pointer plus the revision it runs: initially `spec.upstreams.stable`,
//!   labelled `spec.revision` when stable and canary are the same address (nothing to roll
//!   out), else `spec.upstreams.stableRevision`, else the stable address. Promotion makes it
//!   point where the canary points, labelled with the canary's revision (and remembers the old
//!   address for `undo`). Pointer and label live in the store with the status, so a restart
//!   keeps them. Editing `upstreams.stable` in the file re-points stable directly (no
//!   rollout): the operator said where stable is. Editing only `upstreams.stableRevision`
//!   relabels stable while it still points at `upstreams.stable`.
//! - **Readiness**: a TCP connect to each upstream with a short timeout, made by the shared
//!   [`Prober`] once per period per address (not per rollout per tick); rollouts read its
//!   answers. A canary that answers 500s is "ready" — judging it is the analysis' job.
//! - **Scaling** is a no-op: standalone upstreams are started and stopped by whoever runs them.
//!
//! Labels and addresses never meet by accident: the stable label is the declared revision
//! exactly when stable and canary are the same address, so a file whose two sides agree starts
//! no rollout, whatever the labels look like (validation rejects a `stableRevision` that
//! contradicts it).
//!
//! The router sees the rollout with `upstreams.stable` replaced by the stable pointer
//! ([`EffectiveRouter`]), so the Envoy stable cluster follows promotions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_core::engine::Observations;
use sluice_core::exec::{BoxError, TrafficRouter, Workloads};
use sluice_core::spec::{Rollout, RolloutStatus};
use sluice_core::traffic::TrafficPlan;

use super::store::UpstreamState;

/// The revision the rollout file declares (what should end up stable).
pub fn revision(rollout: &Rollout) -> Option<String> {
    rollout
        .spec
        .revision
        .clone()
        .or_else(|| rollout.spec.upstreams.as_ref().map(|u| u.canary.clone()))
}

/// Where stable points for a rollout seen for the first time (or whose `upstreams.stable` was
/// edited), and the revision it runs.
pub fn initial_upstreams(rollout: &Rollout) -> UpstreamState {
    let (stable, spec_stable_revision) = rollout
        .spec
        .upstreams
        .as_ref()
        .map(|u| (u.stable.clone(), u.stable_revision.clone()))
        .unwrap_or_default();
    UpstreamState {
        stable_address: stable.clone(),
        stable_revision: stable_label(rollout),
        previous_stable_address: None,
        spec_stable: stable,
        spec_stable_revision,
    }
}

/// The revision the file says runs at `upstreams.stable`. When stable and canary are the same
/// address there is nothing to roll out, so stable runs the declared revision.
fn stable_label(rollout: &Rollout) -> String {
    let Some(u) = rollout.spec.upstreams.as_ref() else {
        return String::new();
    };
    if u.stable == u.canary {
        return revision(rollout).unwrap_or_else(|| u.stable.clone());
    }
    u.stable_revision
        .clone()
        .unwrap_or_else(|| u.stable.clone())
}

/// What following the file's stable side did (see [`Cell::sync_spec`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StableSync {
    Unchanged,
    /// `upstreams.stable` was edited: stable points there now, undo history forgotten.
    Repointed,
    /// Only `upstreams.stableRevision` was edited, and stable still points at
    /// `upstreams.stable`: same address, new label.
    Relabelled,
}

/// The rollout as the data plane must see it: stable replaced by the stable pointer.
pub fn effective(rollout: &Rollout, state: &UpstreamState) -> Rollout {
    let mut r = rollout.clone();
    if let Some(u) = r.spec.upstreams.as_mut() {
        u.stable = state.stable_address.clone();
    }
    r
}

/// Per-rollout state shared by its router wrapper and its workloads: the stable pointer and the
/// plan the data plane serves.
pub struct Cell {
    upstreams: Mutex<UpstreamState>,
    applied: Mutex<Option<TrafficPlan>>,
}

impl Cell {
    pub fn new(upstreams: UpstreamState, applied: Option<TrafficPlan>) -> Arc<Cell> {
        Arc::new(Cell {
            upstreams: Mutex::new(upstreams),
            applied: Mutex::new(applied),
        })
    }

    pub fn upstreams(&self) -> UpstreamState {
        lock(&self.upstreams).clone()
    }

    pub fn applied(&self) -> Option<TrafficPlan> {
        lock(&self.applied).clone()
    }

    /// Follows an edit of `upstreams.stable` / `upstreams.stableRevision` in the file.
    pub fn sync_spec(&self, rollout: &Rollout) -> StableSync {
        let Some(u) = rollout.spec.upstreams.as_ref() else {
            return StableSync::Unchanged;
        };
        let mut s = lock(&self.upstreams);
        if u.stable != s.spec_stable {
            *s = initial_upstreams(rollout);
            return StableSync::Repointed;
        }
        if u.stable_revision == s.spec_stable_revision {
            return StableSync::Unchanged;
        }
        s.spec_stable_revision = u.stable_revision.clone();
        // After a promotion stable runs the canary's version: a label for the old address
        // does not describe it.
        if s.stable_address != s.spec_stable {
            return StableSync::Unchanged;
        }
        let label = stable_label(rollout);
        if label == s.stable_revision {
            return StableSync::Unchanged;
        }
        s.stable_revision = label;
        StableSync::Relabelled
    }
}

// A poisoned lock only means another task panicked while holding plain data: use it anyway.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Passes the effective rollout to the real router and remembers what was applied.
pub struct EffectiveRouter {
    pub inner: Arc<dyn TrafficRouter>,
    pub cell: Arc<Cell>,
}

#[async_trait::async_trait]
impl TrafficRouter for EffectiveRouter {
    async fn apply(&self, rollout: &Rollout, plan: &TrafficPlan) -> Result<(), BoxError> {
        let eff = effective(rollout, &self.cell.upstreams());
        self.inner.apply(&eff, plan).await?;
        *lock(&self.cell.applied) = Some(plan.clone());
        Ok(())
    }
}

pub struct StandaloneWorkloads {
    pub router: Arc<dyn TrafficRouter>,
    pub cell: Arc<Cell>,
    pub prober: Arc<Prober>,
}

impl StandaloneWorkloads {
    /// Moves the stable pointer, then makes the data plane follow it with the plan it serves
    /// now. If the data plane refuses, the pointer goes back: the engine retries next tick.
    async fn repoint(&self, rollout: &Rollout, next: UpstreamState) -> Result<(), BoxError> {
        let before = std::mem::replace(&mut *lock(&self.cell.upstreams), next.clone());
        if before.stable_address == next.stable_address {
            return Ok(());
        }
        let plan = self.cell.applied().unwrap_or_else(TrafficPlan::stable_only);
        if let Err(e) = self.router.apply(&effective(rollout, &next), &plan).await {
            *lock(&self.cell.upstreams) = before;
            return Err(e);
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Workloads for StandaloneWorkloads {
    async fn observe(
        &self,
        rollout: &Rollout,
        _status: &RolloutStatus,
    ) -> Result<Observations, BoxError> {
        let up = rollout
            .spec
            .upstreams
            .as_ref()
            .ok_or("spec.upstreams is required in standalone mode")?;
        let state = self.cell.upstreams();
        let stable_ready = self.prober.ready(&state.stable_address).await;
        let canary_ready = if up.canary == state.stable_address {
            stable_ready
        } else {
            self.prober.ready(&up.canary).await
        };
        Ok(Observations {
            revision: revision(rollout),
            stable_running: Some(state.stable_revision),
            stable_ready,
            canary_ready,
            ..Default::default()
        })
    }

    async fn scale_up_canary(&self, _rollout: &Rollout) -> Result<(), BoxError> {
        Ok(())
    }

    async fn scale_down_canary(&self, _rollout: &Rollout) -> Result<(), BoxError> {
        Ok(())
    }

    async fn promote(&self, rollout: &Rollout, revision: &str) -> Result<(), BoxError> {
        let canary = rollout
            .spec
            .upstreams
            .as_ref()
            .map(|u| u.canary.clone())
            .ok_or("spec.upstreams is required in standalone mode")?;
        let mut next = self.cell.upstreams();
        if next.stable_address == canary && next.stable_revision == revision {
            return Ok(()); // already promoted (a retried tick): keep the undo address
        }
        if next.stable_address != canary {
            next.previous_stable_address = Some(next.stable_address.clone());
        }
        next.stable_address = canary;
        next.stable_revision = revision.to_string();
        self.repoint(rollout, next).await
    }

    async fn restore_stable(&self, rollout: &Rollout, revision: &str) -> Result<(), BoxError> {
        let mut next = self.cell.upstreams();
        let Some(previous) = next.previous_stable_address.take() else {
            return Err("no previous stable address to restore".into());
        };
        next.stable_address = previous;
        next.stable_revision = revision.to_string();
        self.repoint(rollout, next).await
    }
}

/// Readiness of upstream addresses, probed once per period for every rollout that uses them
/// (a TCP connect each), instead of two connects per rollout per tick: a thousand rollouts
/// over the same two backends cost two connects a period. Rollouts read the cached answer and
/// subscribe to [`Prober::changes`] to tick when one of theirs changes.
pub struct Prober {
    timeout: Duration,
    state: Mutex<HashMap<String, Probed>>,
    changes: tokio::sync::watch::Sender<u64>,
}

struct Probed {
    ready: bool,
    /// When a rollout last asked: addresses nobody asked about for a while are dropped.
    asked: std::time::Instant,
}

/// Addresses not asked about for this long are no longer probed.
const FORGET_AFTER: Duration = Duration::from_secs(300);
/// Probes in flight at once.
const PROBE_CONCURRENCY: usize = 64;

impl Prober {
    pub fn new(timeout: Duration) -> Arc<Prober> {
        Arc::new(Prober {
            timeout,
            state: Mutex::new(HashMap::new()),
            changes: tokio::sync::watch::channel(0).0,
        })
    }

    /// Whether `address` answered its last probe. An address seen for the first time is
    /// probed now (a new rollout does not wait a period for its first observation).
    pub async fn ready(&self, address: &str) -> bool {
        if let Some(p) = lock(&self.state).get_mut(address) {
            p.asked = std::time::Instant::now();
            return p.ready;
        }
        let ready = probe(address, self.timeout).await;
        lock(&self.state).insert(
            address.to_string(),
            Probed {
                ready,
                asked: std::time::Instant::now(),
            },
        );
        ready
    }

    /// The last answer for `address`, without probing (None: never probed).
    pub fn cached(&self, address: &str) -> Option<bool> {
        lock(&self.state).get(address).map(|p| p.ready)
    }

    /// Bumped whenever an address' readiness changed.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Probes every known address once (concurrently, bounded) and reports changes.
    pub async fn probe_all(&self) {
        use futures::StreamExt;
        let addresses: Vec<String> = {
            let mut s = lock(&self.state);
            s.retain(|_, p| p.asked.elapsed() < FORGET_AFTER);
            s.keys().cloned().collect()
        };
        let results: Vec<(String, bool)> = futures::stream::iter(addresses)
            .map(|a| async move {
                let r = probe(&a, self.timeout).await;
                (a, r)
            })
            .buffer_unordered(PROBE_CONCURRENCY)
            .collect()
            .await;
        let mut changed = false;
        {
            let mut s = lock(&self.state);
            for (a, ready) in results {
                if let Some(p) = s.get_mut(&a)
                    && p.ready != ready
                {
                    p.ready = ready;
                    changed = true;
                }
            }
        }
        if changed {
            self.changes.send_modify(|g| *g += 1);
        }
    }

    /// Probes every `period` until the returned task is aborted.
    pub fn spawn(self: &Arc<Self>, period: Duration) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(period);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                me.probe_all().await;
            }
        })
    }
}

/// TCP connect within `timeout`.
pub async fn probe(address: &str, timeout: Duration) -> bool {
    matches!(
        tokio::time::timeout(timeout, tokio::net::TcpStream::connect(address)).await,
        Ok(Ok(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what it was asked to apply (with the stable address it saw); can be told to fail.
    #[derive(Default)]
    struct FakeRouter {
        applied: Mutex<Vec<(String, TrafficPlan)>>,
        fail: std::sync::atomic::AtomicBool,
    }

    #[async_trait::async_trait]
    impl TrafficRouter for FakeRouter {
        async fn apply(&self, rollout: &Rollout, plan: &TrafficPlan) -> Result<(), BoxError> {
            if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
                return Err("envoy config dir not writable".into());
            }
            let stable = rollout.spec.upstreams.as_ref().unwrap().stable.clone();
            lock(&self.applied).push((stable, plan.clone()));
            Ok(())
        }
    }

    fn rollout(stable: &str, canary: &str, revision: Option<&str>) -> Rollout {
        let mut r: Rollout = serde_yaml::from_str(&format!(
            r#"
apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata: {{name: reviews}}
spec:
  upstreams: {{stable: "{stable}", canary: "{canary}"}}
  service: {{port: 8080}}
  strategy: {{canary: {{steps: [50]}}}}
"#
        ))
        .unwrap();
        r.spec.revision = revision.map(str::to_string);
        r
    }

    fn setup(
        r: &Rollout,
    ) -> (
        Arc<FakeRouter>,
        Arc<Cell>,
        StandaloneWorkloads,
        EffectiveRouter,
    ) {
        let fake = Arc::new(FakeRouter::default());
        let cell = Cell::new(initial_upstreams(r), None);
        let w = StandaloneWorkloads {
            router: fake.clone(),
            cell: cell.clone(),
            prober: Prober::new(Duration::from_millis(300)),
        };
        let er = EffectiveRouter {
            inner: fake.clone(),
            cell: cell.clone(),
        };
        (fake, cell, w, er)
    }

    #[test]
    fn revision_is_the_explicit_label_or_the_canary_address() {
        assert_eq!(
            revision(&rollout("a:1", "b:2", None)).as_deref(),
            Some("b:2")
        );
        assert_eq!(
            revision(&rollout("a:1", "b:2", Some("v2"))).as_deref(),
            Some("v2")
        );
        // Same address on both sides: stable already runs the declared revision.
        let same = initial_upstreams(&rollout("a:1", "a:1", Some("v1")));
        assert_eq!(same.stable_revision, "v1");
        let differ = initial_upstreams(&rollout("a:1", "b:2", Some("v2")));
        assert_eq!(differ.stable_revision, "a:1");
        let mut labelled = rollout("a:1", "b:2", Some("v2"));
        labelled.spec.upstreams.as_mut().unwrap().stable_revision = Some("v1".into());
        assert_eq!(initial_upstreams(&labelled).stable_revision, "v1");
    }

    #[tokio::test]
    async fn promotion_points_stable_at_the_canary_and_undo_points_it_back() {
        let r = rollout("127.0.0.1:1001", "127.0.0.1:1002", None);
        let (fake, cell, w, er) = setup(&r);
        er.apply(&r, &TrafficPlan::weighted(80)).await.unwrap();
        w.promote(&r, "127.0.0.1:1002").await.unwrap();
        let s = cell.upstreams();
        assert_eq!(s.stable_address, "127.0.0.1:1002");
        assert_eq!(s.stable_revision, "127.0.0.1:1002");
        assert_eq!(s.previous_stable_address.as_deref(), Some("127.0.0.1:1001"));
        // The data plane was told at once, with the plan it served.
        let applied = lock(&fake.applied).clone();
        assert_eq!(
            applied.last().unwrap(),
            &("127.0.0.1:1002".to_string(), TrafficPlan::weighted(80))
        );
        // A retried promote keeps the undo address.
        w.promote(&r, "127.0.0.1:1002").await.unwrap();
        assert_eq!(
            cell.upstreams().previous_stable_address.as_deref(),
            Some("127.0.0.1:1001")
        );
        // Later applies through the wrapper carry the new stable.
        er.apply(&r, &TrafficPlan::stable_only()).await.unwrap();
        assert_eq!(lock(&fake.applied).last().unwrap().0, "127.0.0.1:1002");

        w.restore_stable(&r, "127.0.0.1:1001").await.unwrap();
        let s = cell.upstreams();
        assert_eq!(s.stable_address, "127.0.0.1:1001");
        assert_eq!(s.previous_stable_address, None);
        assert!(
            w.restore_stable(&r, "x").await.is_err(),
            "nothing left to undo"
        );
    }

    #[tokio::test]
    async fn a_refused_repoint_leaves_stable_where_it_was() {
        let r = rollout("127.0.0.1:1001", "127.0.0.1:1002", None);
        let (fake, cell, w, _) = setup(&r);
        fake.fail.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(w.promote(&r, "127.0.0.1:1002").await.is_err());
        assert_eq!(cell.upstreams().stable_address, "127.0.0.1:1001");
    }

    #[tokio::test]
    async fn observe_probes_both_upstreams() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let live = listener.local_addr().unwrap().to_string();
        // A port that was free a moment ago: nothing listens there.
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        let r = rollout(&live, &dead, None);
        let (_, _, w, _) = setup(&r);
        let obs = w.observe(&r, &RolloutStatus::default()).await.unwrap();
        assert!(obs.stable_ready);
        assert!(!obs.canary_ready);
        assert_eq!(obs.revision.as_deref(), Some(dead.as_str()));
        assert_eq!(obs.stable_running.as_deref(), Some(live.as_str()));
    }

    /// Issue 16: two TCP connects per rollout per tick. Now a thousand observations of the
    /// same upstream cost one connect, each probe round one more, and a backend going away is
    /// announced once on the change channel.
    #[tokio::test]
    async fn one_prober_connects_once_per_address_per_round_and_announces_changes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        let server = tokio::spawn(async move {
            while let Ok((_sock, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        let connects = || accepted.load(std::sync::atomic::Ordering::SeqCst);
        let wait_connects = |n: usize| async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while connects() < n {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{} < {n}",
                    connects()
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        let prober = Prober::new(Duration::from_millis(300));
        let mut changes = prober.changes();
        for _ in 0..1000 {
            assert!(prober.ready(&addr).await);
        }
        wait_connects(1).await;
        prober.probe_all().await;
        wait_connects(2).await;
        assert_eq!(connects(), 2, "one connect per address per round");
        assert!(!changes.has_changed().unwrap(), "nothing changed yet");

        server.abort();
        let _ = server.await;
        prober.probe_all().await;
        assert!(changes.has_changed().unwrap(), "the change is announced");
        changes.borrow_and_update();
        assert_eq!(prober.cached(&addr), Some(false));
        assert!(!prober.ready(&addr).await);
        prober.probe_all().await;
        assert!(
            !changes.has_changed().unwrap(),
            "still down: no new announcement"
        );
    }

    #[test]
    fn editing_the_stable_address_repoints_stable() {
        let r = rollout("127.0.0.1:1001", "127.0.0.1:1002", None);
        let cell = Cell::new(initial_upstreams(&r), None);
        assert_eq!(cell.sync_spec(&r), StableSync::Unchanged);
        let moved = rollout("127.0.0.1:1003", "127.0.0.1:1002", None);
        assert_eq!(cell.sync_spec(&moved), StableSync::Repointed);
        assert_eq!(cell.upstreams().stable_address, "127.0.0.1:1003");
        let eff = effective(&moved, &cell.upstreams());
        assert_eq!(eff.spec.upstreams.unwrap().stable, "127.0.0.1:1003");
    }

    #[tokio::test]
    async fn editing_the_stable_label_relabels_only_an_unmoved_stable() {
        let label = |r: &mut Rollout, l: &str| {
            r.spec.upstreams.as_mut().unwrap().stable_revision = Some(l.into());
        };
        let mut r = rollout("127.0.0.1:1001", "127.0.0.1:1002", Some("v2"));
        let (_, cell, w, _) = setup(&r);
        assert_eq!(cell.upstreams().stable_revision, "127.0.0.1:1001");
        label(&mut r, "v1");
        assert_eq!(cell.sync_spec(&r), StableSync::Relabelled);
        let s = cell.upstreams();
        assert_eq!(
            (s.stable_address.as_str(), s.stable_revision.as_str()),
            ("127.0.0.1:1001", "v1")
        );
        assert_eq!(cell.sync_spec(&r), StableSync::Unchanged);

        // Promoted: stable runs v2 at the canary address; a new label for the old stable
        // address neither moves nor relabels it.
        w.promote(&r, "v2").await.unwrap();
        label(&mut r, "v1.0");
        assert_eq!(cell.sync_spec(&r), StableSync::Unchanged);
        let s = cell.upstreams();
        assert_eq!(
            (s.stable_address.as_str(), s.stable_revision.as_str()),
            ("127.0.0.1:1002", "v2")
        );
        // Undo restores the address and the label the engine remembers.
        w.restore_stable(&r, "v1").await.unwrap();
        let s = cell.upstreams();
        assert_eq!(
            (s.stable_address.as_str(), s.stable_revision.as_str()),
            ("127.0.0.1:1001", "v1")
        );
    }
}
