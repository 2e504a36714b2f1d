//! `sluice controller`: wiring of clients, leader election, the kube-runtime Controller(s)
//! and the probe endpoints.

use std::net::SocketAddr;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use kube::client::ClientBuilder;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, watcher};
use kube::{Client, Config};
use tokio::sync::watch;

use super::gate::LeaderGateLayer;
use super::leader::{self, LeaseConfig};
use super::reconcile::{self, Context};
use super::recorder::Live;
use super::{Error, names};
use sluice_core::exec::{Analyzer, Webhooks};
use sluice_core::spec::Rollout;

/// `sluice controller` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Namespaces to watch (comma-separated); default: all.
    #[arg(long, value_delimiter = ',', env = "SLUICE_NAMESPACES")]
    pub namespaces: Vec<String>,
    /// Namespace of the leader-election Lease (default: the pod's namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "sluice-system")]
    pub lease_namespace: String,
    #[arg(long, default_value = "sluice-controller")]
    pub lease_name: String,
    /// This replica's identity in the Lease (default: the pod name).
    #[arg(long, env = "POD_NAME", default_value = "sluice-local")]
    pub identity: String,
    /// Address of `/healthz`, `/readyz` and `/leader`.
    #[arg(long, default_value = "0.0.0.0:8081")]
    pub probe_addr: SocketAddr,
    /// Serve the web API/UI here (every replica can; commands go through the annotation).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
}

/// Builds the web API's router over a backend (the web module's `router`); kept as a
/// function so this module does not depend on the web layer.
pub type WebRouter = Box<dyn FnOnce(Arc<dyn sluice_core::backend::Backend>) -> axum::Router + Send>;

impl Args {
    pub fn into_options(
        self,
        analyzer: Arc<dyn Analyzer>,
        webhooks: Arc<dyn Webhooks>,
        telemetry: Option<sluice_notify::Telemetry>,
        web: Option<WebRouter>,
    ) -> Options {
        if self.listen.is_some() && web.is_none() {
            tracing::warn!("--listen given, but this build has no web API wired in: not serving");
        }
        Options {
            web: self.listen.zip(web),
            namespaces: self
                .namespaces
                .into_iter()
                .filter(|n| !n.is_empty())
                .collect(),
            lease_namespace: self.lease_namespace,
            lease_name: self.lease_name,
            identity: self.identity,
            probe_addr: self.probe_addr,
            analyzer,
            webhooks,
            telemetry,
        }
    }
}

pub struct Options {
    /// Namespaces to watch; empty: all.
    pub namespaces: Vec<String>,
    /// Namespace and name of the leader Lease.
    pub lease_namespace: String,
    pub lease_name: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    /// `/healthz` and `/readyz`.
    pub probe_addr: SocketAddr,
    pub analyzer: Arc<dyn Analyzer>,
    pub webhooks: Arc<dyn Webhooks>,
    /// Metrics and notifications around the executors.
    pub telemetry: Option<sluice_notify::Telemetry>,
    /// Address and router of the web API, if served.
    pub web: Option<(SocketAddr, WebRouter)>,
}

/// Clients of a controller replica: `read` for watches, the backend and the lease; `write`
/// refuses mutations unless `leader` is true.
pub struct Clients {
    pub read: Client,
    pub write: Client,
}

pub async fn clients(leader: watch::Receiver<bool>) -> Result<Clients, Error> {
    let config = Config::infer()
        .await
        .map_err(|e| Error::Invalid(format!("kubeconfig / in-cluster config: {e}")))?;
    let read = Client::try_from(config.clone())?;
    let write = ClientBuilder::try_from(config)?
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

/// Runs the controller until SIGTERM/ctrl-c.
pub async fn run(opts: Options, live: Arc<Live>) -> Result<(), Error> {
    let (tx, rx) = watch::channel(false);
    let clients = clients(rx.clone()).await?;
    let lease_api: Api<Lease> = Api::namespaced(clients.read.clone(), &opts.lease_namespace);
    let lease_cfg = LeaseConfig::new(&opts.lease_name, &opts.identity);
    let election = tokio::spawn(leader::run(lease_api.clone(), lease_cfg.clone(), tx));
    let metrics = opts.telemetry.as_ref().map(|t| Arc::clone(&t.metrics));
    tokio::spawn(probes(opts.probe_addr, rx.clone(), metrics));
    if let Some((addr, router)) = opts.web {
        // The backend reads with the ungated client: followers serve the API too.
        let backend: Arc<dyn sluice_core::backend::Backend> =
            Arc::new(super::backend::KubeBackend::new(
                clients.read.clone(),
                opts.namespaces.clone(),
                live.clone(),
            ));
        let app = router(backend);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::Invalid(format!("cannot listen on {addr}: {e}")))?;
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "web API stopped");
            }
        });
    }

    let mut ctx = Context::new(
        clients.write.clone(),
        opts.analyzer.clone(),
        opts.webhooks.clone(),
        live,
        Arc::new(chrono::Utc::now),
    );
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
    let scopes: Vec<(Api<Rollout>, Api<Deployment>)> = if opts.namespaces.is_empty() {
        vec![(
            Api::all(clients.read.clone()),
            Api::all(clients.read.clone()),
        )]
    } else {
        opts.namespaces
            .iter()
            .map(|n| {
                (
                    Api::namespaced(clients.read.clone(), n),
                    Api::namespaced(clients.read.clone(), n),
                )
            })
            .collect()
    };
    let mut runs = Vec::new();
    for (rollouts, deployments) in scopes {
        let controller = Controller::new(rollouts, watcher::Config::default());
        let store = controller.store();
        let leader = rx.clone();
        let ctx = ctx.clone();
        let run = controller
            .watches(deployments, watcher::Config::default(), move |d| {
                rollouts_for(&store, &d)
            })
            .shutdown_on_signal()
            .run(
                move |r, ctx: Arc<Context>| {
                    let leader = leader.clone();
                    async move {
                        // Followers keep their caches warm and do nothing else.
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
            .for_each(|res| async move {
                if let Err(e) = res {
                    tracing::debug!(error = %e, "controller");
                }
            });
        runs.push(run);
    }
    futures::future::join_all(runs).await;
    // Shutting down (SIGTERM): stop renewing, stop writing, hand the lease over.
    election.abort();
    if let Err(e) = leader::release(&lease_api, &lease_cfg).await {
        tracing::warn!(error = %e, "could not release the lease; it expires on its own");
    }
    Ok(())
}

/// `/healthz`: the process runs. `/readyz`: also answers on followers (they serve the web API
/// and stand by), so readiness does not depend on leadership; `/leader` tells which one leads.
async fn probes(
    addr: SocketAddr,
    leader: watch::Receiver<bool>,
    metrics: Option<Arc<sluice_telemetry::Metrics>>,
) {
    use axum::{Router, routing::get};
    // `/metrics` sits next to the probes so every replica can be scraped, with or without
    // `--listen`.
    let metrics_route = get(move || {
        let body = metrics.as_ref().map(|m| m.encode()).unwrap_or_default();
        async move {
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    sluice_telemetry::metrics::CONTENT_TYPE,
                )],
                body,
            )
        }
    });
    let app = Router::new()
        .route("/metrics", metrics_route)
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route(
            "/leader",
            get(move || {
                let leader = *leader.borrow();
                async move { if leader { "leader" } else { "follower" } }
            }),
        );
    match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => {
            if let Err(e) = axum::serve(l, app).await {
                tracing::error!(error = %e, "probe server stopped");
            }
        }
        Err(e) => tracing::error!(%addr, error = %e, "cannot bind probe address"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector::store::Writer;

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
