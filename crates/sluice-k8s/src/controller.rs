//! The controller loop: clients, leader election and the kube-runtime Controller(s).
//!
//! The binary joins it with the web API and the probe endpoints (as kube-rs's controller-rs
//! does): [`Controller::new`] builds the clients and the leader channel, [`Controller::leader`]
//! and [`Controller::backend`] are what the HTTP side needs, [`Controller::run`] runs until
//! SIGTERM / ctrl-c.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use kube::client::ClientBuilder;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller as KubeController, WatchStreamExt};
use kube::{Client, Config};
use tokio::sync::watch;

use super::backend::KubeBackend;
use super::cache::{Caches, Streams};
use super::gate::LeaderGateLayer;
use super::leader::{self, Fence, LeaseConfig};
use super::reconcile::{self, Context};
use super::recorder::Live;
use super::throttle::{ClientLimits, ThrottleLayer};
use super::{Error, names};
use sluice_core::exec::{Analyzer, Webhooks};
use sluice_core::spec::Rollout;

pub struct Options {
    /// Namespaces to watch; empty: all.
    pub namespaces: Vec<String>,
    /// Namespace and name of the leader Lease.
    pub lease_namespace: String,
    pub lease_name: String,
    /// This replica's identity (the pod name): the Lease holder and the Events' instance.
    pub identity: String,
    pub analyzer: Arc<dyn Analyzer>,
    pub webhooks: Arc<dyn Webhooks>,
    /// Metrics and notifications around the executors.
    pub telemetry: Option<sluice_notify::Telemetry>,
    /// Rate limit of the API clients [`Controller::new`] builds (shared by reads and writes).
    pub client_limits: ClientLimits,
}

/// Clients of a controller replica: `read` for watches, the backend and the lease; `write`
/// refuses mutations unless `leader` is true.
pub struct Clients {
    pub read: Client,
    pub write: Client,
}

pub async fn clients(leader: Fence, limits: ClientLimits) -> Result<Clients, Error> {
    limits.check().map_err(Error::Invalid)?;
    let config = Config::infer()
        .await
        .map_err(|e| Error::Invalid(format!("kubeconfig / in-cluster config: {e}")))?;
    // One bucket for both clients: the limit is this replica's, whatever it reads or writes.
    let throttle = ThrottleLayer::new(limits);
    let read = ClientBuilder::try_from(config.clone())?
        .with_layer(&throttle)
        .build();
    let write = ClientBuilder::try_from(config)?
        .with_layer(&throttle)
        .with_layer(&LeaderGateLayer::new(leader))
        .build();
    Ok(Clients { read, write })
}

/// Rollouts that care about this Deployment: their target, or their primary.
fn rollouts_for(store: &Store<Rollout>, d: &Deployment) -> Vec<ObjectRef<Rollout>> {
    let (Some(name), ns) = (d.metadata.name.as_deref(), d.metadata.namespace.as_deref()) else {
        return Vec::new();
    };
    store
        .state()
        .iter()
        .filter(|r| r.metadata.namespace.as_deref() == ns)
        .filter(|r| {
            let rname = r.metadata.name.as_deref().unwrap_or_default();
            r.spec.target_ref.as_ref().is_some_and(|t| t.name == name)
                || names::primary(rname) == name
        })
        .map(|r| ObjectRef::from_obj(r.as_ref()))
        .collect()
}

/// What in a Rollout wakes its reconcile: the spec (`generation`), the annotations (commands),
/// the finalizers and the deletion. Not the status: sluice's own status write would otherwise
/// wake the reconcile that just wrote it. The engine's own wake-ups are the requeue it asks for
/// (next analysis, the interval), and target Deployment changes arrive through their watch.
fn wakes_reconcile(r: &Rollout) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    r.metadata.generation.hash(&mut h);
    r.metadata.annotations.hash(&mut h);
    r.metadata.finalizers.hash(&mut h);
    r.metadata
        .deletion_timestamp
        .as_ref()
        .map(|t| t.0.to_string())
        .hash(&mut h);
    Some(h.finish())
}

/// Whether this replica can serve: every watch has listed once (caches synced) and no watch
/// has failed recently. A failing watch (API server unreachable, the Rollout CRD missing, RBAC
/// forbidding the list) retries with a backoff of at most ~30 s, so an error within
/// [`Readiness::FAILING_WINDOW`] means it is still failing.
#[derive(Debug)]
pub struct Readiness {
    scopes: usize,
    state: std::sync::Mutex<ReadinessState>,
}

#[derive(Debug, Default)]
struct ReadinessState {
    synced: usize,
    last_error: Option<(std::time::Instant, String)>,
}

impl Readiness {
    pub const FAILING_WINDOW: std::time::Duration = std::time::Duration::from_secs(45);

    fn new(scopes: usize) -> Self {
        Readiness {
            scopes,
            state: Default::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ReadinessState> {
        // A panic while holding this lock cannot leave the counters inconsistent.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn synced(&self) {
        self.lock().synced += 1;
    }

    fn failed(&self, at: std::time::Instant, error: String) {
        self.lock().last_error = Some((at, error));
    }

    /// `Ok` when ready, else why not (what `/readyz` answers).
    pub fn check(&self, now: std::time::Instant) -> Result<(), String> {
        let s = self.lock();
        if let Some((at, e)) = &s.last_error
            && now.saturating_duration_since(*at) < Self::FAILING_WINDOW
        {
            return Err(format!("watching Rollouts/Deployments fails: {e}"));
        }
        if s.synced < self.scopes {
            return Err(format!(
                "caches not synced yet ({} of {} watch scopes listed)",
                s.synced, self.scopes
            ));
        }
        Ok(())
    }
}

/// A controller replica, built but not yet running.
pub struct Controller {
    opts: Options,
    clients: Clients,
    caches: Arc<Caches>,
    streams: Streams,
    leader_tx: watch::Sender<bool>,
    leader_rx: watch::Receiver<bool>,
    fence: Fence,
    live: Arc<Live>,
    readiness: Arc<Readiness>,
}

impl Controller {
    /// Clients from the kubeconfig / in-cluster config; the write client is gated by this
    /// replica's fence (closed until it holds the Lease).
    pub async fn new(opts: Options) -> Result<Self, Error> {
        let fence = Fence::new();
        let clients = clients(fence.clone(), opts.client_limits).await?;
        Ok(Self::assemble(opts, clients, fence))
    }

    /// A replica over clients built by `make` from this replica's write fence (tests: an
    /// in-memory API server; the write client must be gated by the fence, as [`clients`] does).
    pub fn with_clients(opts: Options, make: impl FnOnce(Fence) -> Clients) -> Self {
        let fence = Fence::new();
        let clients = make(fence.clone());
        Self::assemble(opts, clients, fence)
    }

    fn assemble(opts: Options, clients: Clients, fence: Fence) -> Self {
        let (leader_tx, leader_rx) = watch::channel(false);
        let scopes = opts.namespaces.len().max(1);
        let (caches, streams) = Caches::new(&clients.read, &opts.namespaces);
        Controller {
            opts,
            clients,
            caches,
            streams,
            leader_tx,
            leader_rx,
            fence,
            live: Arc::default(),
            readiness: Arc::new(Readiness::new(scopes)),
        }
    }

    /// Cache sync and watch health, for `/readyz`.
    pub fn readiness(&self) -> Arc<Readiness> {
        Arc::clone(&self.readiness)
    }

    /// True while this replica leads (for `/leader`, the metrics gauge).
    pub fn leader(&self) -> watch::Receiver<bool> {
        self.leader_rx.clone()
    }

    /// What the web API serves in this mode. It reads with the ungated client: followers
    /// serve the API too (commands go through the Rollout annotation).
    pub fn backend(&self) -> KubeBackend {
        KubeBackend::new(
            self.clients.read.clone(),
            self.opts.namespaces.clone(),
            self.live.clone(),
        )
        .with_caches(Arc::clone(&self.caches))
    }

    /// Runs until SIGTERM / ctrl-c, then releases the Lease.
    pub async fn run(self) -> Result<(), Error> {
        let Controller {
            opts,
            clients,
            caches,
            streams,
            leader_tx,
            leader_rx: rx,
            fence,
            live,
            readiness,
        } = self;
        let lease_api: Api<Lease> = Api::namespaced(clients.read.clone(), &opts.lease_namespace);
        let lease_cfg = LeaseConfig::new(&opts.lease_name, &opts.identity);
        let election = tokio::spawn(leader::run(
            lease_api.clone(),
            lease_cfg.clone(),
            fence.clone(),
            leader_tx,
        ));

        let mut ctx = Context::new(
            clients.write.clone(),
            opts.analyzer.clone(),
            opts.webhooks.clone(),
            live,
            Arc::new(sluice_core::clock::SystemClock),
        )
        .with_caches(Arc::clone(&caches))
        .with_identity(&opts.identity);
        if let Some(tel) = &opts.telemetry {
            ctx = ctx.with_telemetry(tel);
            // The leader gauge follows the election.
            let metrics = Arc::clone(&tel.metrics);
            let mut leader_rx = rx.clone();
            tokio::spawn(async move {
                loop {
                    metrics.set_leader(*leader_rx.borrow_and_update());
                    if leader_rx.changed().await.is_err() {
                        break;
                    }
                }
            });
        }
        let ctx = Arc::new(ctx);
        let (rollout_streams, deployment_streams, services, istio) = streams.split();
        Streams::drive_others(services, istio);
        let stores: Vec<Store<Rollout>> = caches.rollouts.stores().cloned().collect();
        let mut runs = Vec::new();
        for ((rollouts, deployments), store) in rollout_streams
            .into_iter()
            .zip(deployment_streams)
            .zip(stores)
        {
            // Every Rollout event reaches the live stream of a follower (the leader announces
            // its own writes); only those in `wakes_reconcile` reach the reconcile.
            let (live, leading) = (Arc::clone(&ctx.live), rx.clone());
            let rollouts = rollouts
                .inspect(move |r| {
                    if let Ok(r) = r
                        && !*leading.borrow()
                    {
                        live.observe(r);
                    }
                })
                .predicate_filter(wakes_reconcile, Default::default());
            let controller = KubeController::for_stream(rollouts, store.clone());
            let synced = store.clone();
            let ready = Arc::clone(&readiness);
            tokio::spawn(async move {
                // Polled again every 200 ms: kube-runtime's store readiness wakes only the
                // last task that waited on it (a oneshot channel), and the controller's own
                // applier waits on it too; a single `await` here could sleep for ever and
                // leave `/readyz` false (found by the k8s_wiring test).
                loop {
                    let wait = synced.wait_until_ready();
                    match tokio::time::timeout(std::time::Duration::from_millis(200), wait).await {
                        Ok(Ok(())) => break ready.synced(),
                        Ok(Err(_)) => break,
                        Err(_) => {}
                    }
                }
            });
            let leader = rx.clone();
            let ctx = ctx.clone();
            let run = controller
                .watches_stream(deployments, move |d| rollouts_for(&store, &d))
                .shutdown_on_signal()
                .run(
                    move |r, ctx: Arc<Context>| {
                        let leader = leader.clone();
                        async move {
                            // Followers keep their caches warm and serve the API: what the
                            // leader writes reaches their UI sessions through the watch.
                            if !*leader.borrow() {
                                return Ok(kube::runtime::controller::Action::requeue(
                                    std::time::Duration::from_secs(5),
                                ));
                            }
                            reconcile::reconcile(r, ctx).await
                        }
                    },
                    reconcile::error_policy,
                    ctx,
                )
                .for_each({
                    let readiness = Arc::clone(&readiness);
                    move |res| {
                        let readiness = Arc::clone(&readiness);
                        async move {
                            match res {
                                // The watches themselves fail: nothing reconciles until they
                                // recover, and the user must hear it (WARN, `/readyz` false).
                                Err(kube::runtime::controller::Error::QueueError(e)) => {
                                    tracing::warn!(
                                        error = %e,
                                        watching = "rollouts.sluice.dev/v1alpha1, deployments.apps/v1",
                                        "watch failed (API server unreachable, CRD missing or RBAC?)"
                                    );
                                    readiness.failed(std::time::Instant::now(), e.to_string());
                                }
                                // Reconcile errors were logged by the error policy.
                                Err(e) => tracing::debug!(error = %e, "controller"),
                                Ok(_) => {}
                            }
                        }
                    }
                });
            runs.push(run);
        }
        futures::future::join_all(runs).await;
        // Shutting down (SIGTERM): stop renewing, stop writing, hand the lease over.
        election.abort();
        fence.revoke();
        if let Err(e) = leader::release(&lease_api, &lease_cfg).await {
            tracing::warn!(error = %e, "could not release the lease; it expires on its own");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn ready_only_once_every_scope_listed_and_while_no_watch_fails() {
        let r = Readiness::new(2);
        let t0 = Instant::now();
        assert!(r.check(t0).expect_err("nothing listed").contains("0 of 2"));
        r.synced();
        assert!(r.check(t0).is_err(), "one scope of two");
        r.synced();
        assert_eq!(r.check(t0), Ok(()));
        r.failed(
            t0,
            "the server could not find the requested resource".into(),
        );
        let e = r.check(t0 + Duration::from_secs(10)).expect_err("failing");
        assert!(e.contains("could not find the requested resource"), "{e}");
        assert_eq!(
            r.check(t0 + Readiness::FAILING_WINDOW + Duration::from_secs(1)),
            Ok(()),
            "no error for a whole window: recovered"
        );
    }
    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher;

    fn rollout(ns: &str, name: &str, target: &str) -> Rollout {
        serde_yaml::from_str(&format!(
            "apiVersion: sluice.dev/v1alpha1\nkind: Rollout\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{targetRef: {{name: {target}}}, service: {{port: 80}}, strategy: {{canary: {{steps: [10]}}}}}}\n"
        ))
        .expect("rollout")
    }

    fn deployment(ns: &str, name: &str) -> Deployment {
        serde_yaml::from_str(&format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{selector: {{matchLabels: {{app: x}}}}, template: {{}}}}\n"
        ))
        .expect("deployment")
    }

    #[test]
    fn a_deployment_change_wakes_the_rollouts_that_target_or_own_it() {
        let mut w: Writer<Rollout> = Writer::default();
        for r in [
            rollout("a", "reviews", "reviews"),
            rollout("a", "web", "frontend"),
            rollout("b", "reviews", "reviews"),
        ] {
            w.apply_watcher_event(&watcher::Event::Apply(r));
        }
        let store = w.as_reader();
        let names = |d: &Deployment| {
            let mut v: Vec<String> = rollouts_for(&store, d)
                .into_iter()
                .map(|o| format!("{}/{}", o.namespace.unwrap_or_default(), o.name))
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(&deployment("a", "reviews")), vec!["a/reviews"]);
        assert_eq!(names(&deployment("a", "frontend")), vec!["a/web"]);
        assert_eq!(names(&deployment("a", "web-primary")), vec!["a/web"]);
        assert!(names(&deployment("a", "other")).is_empty());
    }
}
