//! `sluice controller`: the executors (Prometheus analysis, HTTP webhooks, telemetry), the
//! controller loop of `sluice_k8s`, and — joined here, as kube-rs's controller-rs does — the
//! probe endpoints and the web API over the controller's backend. Logging is set up by `main`.

use std::net::SocketAddr;
use std::sync::Arc;

use sluice_k8s::controller::{Controller, Options, Readiness};
use sluice_telemetry::Metrics;
use tokio::sync::watch;

/// `sluice controller` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct ControllerArgs {
    /// Namespaces to watch (comma-separated); default: all.
    #[arg(long, value_delimiter = ',', env = "SLUICE_NAMESPACES")]
    pub namespaces: Vec<String>,
    /// Namespace of the leader-election Lease (default: the pod's namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "sluice-system")]
    pub lease_namespace: String,
    #[arg(long, default_value = "sluice-controller")]
    pub lease_name: String,
    /// This replica's identity in the Lease and its Events (default: the pod name).
    #[arg(long, env = "POD_NAME", default_value = "sluice-local")]
    pub identity: String,
    /// Address of `/healthz`, `/readyz`, `/leader` and `/metrics`.
    #[arg(long, default_value = "0.0.0.0:8081")]
    pub probe_addr: SocketAddr,
    /// Serve the web API/UI here (every replica can; commands go through the annotation).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Another host name the web API/UI answer to, e.g. a Service or Ingress name (repeatable;
    /// `*`: any). localhost, 127.0.0.1 and [::1] always work (`kubectl port-forward`); other
    /// `Host` headers get 421 (DNS rebinding).
    #[arg(
        long,
        value_name = "NAME",
        env = "SLUICE_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    pub allowed_host: Vec<String>,
    /// Requests per second this replica sends to the API server at most (reads and writes
    /// together; waiting, not failing, beyond it). An idle fleet sends none.
    #[arg(long, default_value_t = 50.0, env = "SLUICE_KUBE_QPS")]
    pub kube_qps: f64,
    /// Requests allowed in a burst above `--kube-qps` (e.g. on start-up with many Rollouts).
    #[arg(long, default_value_t = 100, env = "SLUICE_KUBE_BURST")]
    pub kube_burst: u32,
}

pub async fn controller(
    args: ControllerArgs,
    notify: &crate::cli::notify::NotifyArgs,
) -> anyhow::Result<()> {
    let telemetry = sluice_notify::Telemetry::new(&notify.config()?)?;
    // No address override: each Rollout names its own Prometheus (spec.analysis.provider).
    let analyzer = Arc::new(sluice_analysis::PrometheusAnalyzer::new(
        sluice_analysis::AddressPolicy::SpecOrDefault(None),
    )?);
    let webhooks = Arc::new(telemetry.webhooks()?);
    let metrics = Arc::clone(&telemetry.metrics);
    let controller = Controller::new(Options {
        namespaces: args
            .namespaces
            .into_iter()
            .filter(|n| !n.is_empty())
            .collect(),
        lease_namespace: args.lease_namespace,
        lease_name: args.lease_name,
        identity: args.identity,
        analyzer,
        webhooks,
        telemetry: Some(telemetry),
        client_limits: sluice_k8s::throttle::ClientLimits {
            qps: args.kube_qps,
            burst: args.kube_burst,
        },
    })
    .await?;

    tokio::spawn(probes(
        args.probe_addr,
        controller.leader(),
        controller.readiness(),
        Arc::clone(&metrics),
    ));
    if let Some(addr) = args.listen {
        // Commands need SLUICE_API_TOKEN (e.g. from a Secret); without it they are refused.
        let token = sluice_api::load_token(None, crate::cli::api_token_env())?;
        let backend: Arc<dyn sluice_core::backend::Backend> = Arc::new(controller.backend());
        let app = sluice_api::router(
            sluice_api::ApiState::new(backend, token)
                .with_metrics(metrics.encoder())
                .with_allowed_hosts(&args.allowed_host),
        );
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
        tokio::spawn(async move {
            let forever = std::future::pending::<()>();
            if let Err(e) = sluice_api::server::serve(listener, app, forever).await {
                tracing::error!(error = %e, "web API stopped");
            }
        });
    }
    controller.run().await?;
    Ok(())
}

/// `/healthz`: the process runs. `/readyz`: the watches have listed once and none is failing
/// (503 with the reason otherwise); followers are ready too (they serve the web API and stand
/// by), so readiness does not depend on leadership; `/leader` tells which one leads.
/// `/metrics` sits next to the probes so every replica can be scraped, with or without
/// `--listen`.
async fn probes(
    addr: SocketAddr,
    leader: watch::Receiver<bool>,
    readiness: Arc<Readiness>,
    metrics: Arc<Metrics>,
) {
    use axum::{Router, routing::get};
    let metrics_route = get(move || {
        let body = metrics.encode();
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
        .route(
            "/readyz",
            get(move || {
                let answer = match readiness.check(std::time::Instant::now()) {
                    Ok(()) => (axum::http::StatusCode::OK, "ok".to_string()),
                    Err(why) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, why),
                };
                async move { answer }
            }),
        )
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

/// `sluice bench kube` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchKubeArgs {
    /// Rollouts (each with its own Deployment).
    #[arg(long, default_value_t = 100)]
    pub rollouts: usize,
    /// Every Rollout's analysis interval (e.g. 10s, 500ms).
    #[arg(long, default_value = "10s")]
    pub interval: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn bench_kube(args: BenchKubeArgs) -> anyhow::Result<()> {
    let interval = sluice_core::duration::parse(&args.interval)
        .map_err(|e| anyhow::anyhow!("--interval: {e}"))?;
    if interval.is_zero() {
        anyhow::bail!("--interval: must be longer than zero");
    }
    let r = sluice_lab::bench::kube::bench_kube(args.rollouts, interval)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
        return Ok(());
    }
    println!(
        "kube: {} rollouts, interval {}s, initialized in {:.1}s",
        r.rollouts, r.interval_s, r.init_s
    );
    println!(
        "  idle:        {:.2} API requests/s, {:.1} reconciles/s, {:.2} requests per reconcile",
        r.idle_requests_per_s, r.idle_reconciles_per_s, r.idle_requests_per_reconcile
    );
    if !r.idle_requests_by_kind.is_empty() {
        let by: Vec<String> = r
            .idle_requests_by_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        println!("    idle requests: {}", by.join(", "));
    }
    println!(
        "  progressing: {:.2} API requests/s, {:.1} reconciles/s, {:.2} requests per reconcile ({} of {} promoted)",
        r.progressing_requests_per_s,
        r.progressing_reconciles_per_s,
        r.progressing_requests_per_reconcile,
        r.promoted,
        r.rollouts
    );
    match r.all_promoted_s {
        Some(s) => println!("  every rollout promoted {s:.1}s after the new image"),
        None => println!("  not every rollout promoted within the time limit"),
    }
    println!(
        "  memory: {:.1} MiB RSS (controller + in-memory API server), {:.1} KiB per rollout",
        r.rss_mib, r.rss_kib_per_rollout
    );
    Ok(())
}
