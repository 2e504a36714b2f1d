//! Putting standalone mode together: store, Envoy router, Prometheus analyzer, webhooks,
//! runner, directory watch and the HTTP server. `sluice standalone` and `sluice demo` both
//! start through [`Standalone::launch`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sluice_analysis::{AddressPolicy, PrometheusAnalyzer, RunOptions};
use sluice_core::backend::Backend;
use sluice_core::exec::{Analyzer, TrafficRouter, Webhooks};
use sluice_envoy::admin::EnvoyAdmin;
use sluice_envoy::xds::EnvoyRouter;
use sluice_notify::Telemetry;

use super::backend::StandaloneBackend;
use super::loader::DirLoader;
use super::runner::{Deps, Runner, Timing};
use super::server::{self, ServeError};
use super::store::{Retention, Store};

#[derive(Clone, Debug)]
pub struct Options {
    /// Directory of Rollout files.
    pub dir: PathBuf,
    /// How Envoy gets its configuration: sluice's ADS server, or files.
    pub xds: Xds,
    /// The store file.
    pub store: PathBuf,
    /// Prometheus for every rollout without its own `analysis.provider`.
    pub prometheus: Option<String>,
    /// Scrape interval of that Prometheus (the judge's rate windows follow it).
    pub scrape_interval: Duration,
    /// HTTP API/UI address (`127.0.0.1:0` picks a free port).
    pub listen: String,
    /// Envoy's admin address (file-based xDS): when set, a routing change counts as applied
    /// only once Envoy reports the new config version. ADS confirms by Envoy's ACK instead.
    pub envoy_admin: Option<String>,
    pub timing: Timing,
}

/// How sluice hands Envoy its clusters and routes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Xds {
    /// Serve delta ADS (gRPC) on `listen` (`host:port`); Envoy's bootstrap points there
    /// (`sluice envoy-bootstrap --xds ads`). Each change pushes only that rollout's resources
    /// and counts as applied once Envoy acknowledges it.
    Ads { listen: String },
    /// Write `cds.json` / `rds.json` into `dir`, which Envoy watches.
    Files { dir: PathBuf },
}

/// Default address of the ADS server.
pub const DEFAULT_XDS_LISTEN: &str = "127.0.0.1:18000";
/// How long a routing change waits for Envoy's ACK (or admin confirmation).
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error("xDS: {0}")]
    Router(#[from] sluice_envoy::xds::XdsError),
    #[error("Prometheus client: {0}")]
    Analyzer(#[from] sluice_analysis::SourceError),
    #[error("webhook client: {0}")]
    Webhooks(#[from] sluice_notify::webhooks::ClientError),
    #[error("Envoy admin: {0}")]
    Admin(#[from] sluice_envoy::admin::AdminError),
    #[error("rollout directory {0} does not exist or is not a directory")]
    NoDir(String),
}

/// A running standalone sluice. Dropping it stops the runner, the watcher and the server
/// (traffic and store stay as they are).
pub struct Standalone {
    pub runner: Arc<Runner>,
    pub backend: Arc<StandaloneBackend>,
    /// Where the HTTP API/UI listens.
    pub http_addr: SocketAddr,
    /// Where the ADS server listens (None with file-based xDS).
    pub xds_addr: Option<SocketAddr>,
    watch: tokio::task::JoinHandle<()>,
    http: tokio::task::JoinHandle<Result<(), ServeError>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Standalone {
    /// Starts everything. `app` builds the HTTP app from the backend (the web API/UI, or
    /// [`server::health_app`]).
    pub async fn launch(
        opts: Options,
        telemetry: Option<Telemetry>,
        app: impl FnOnce(Arc<dyn Backend>) -> axum::Router,
    ) -> Result<Standalone, LaunchError> {
        if !opts.dir.is_dir() {
            return Err(LaunchError::NoDir(opts.dir.display().to_string()));
        }
        let store = Store::open(&opts.store, Retention::default()).map_err(ServeError::from)?;
        let router = match &opts.xds {
            Xds::Ads { listen } => EnvoyRouter::serve_ads(listen, CONFIRM_TIMEOUT).await?,
            Xds::Files { dir } => {
                let mut router = EnvoyRouter::open(dir)?;
                if let Some(admin) = &opts.envoy_admin {
                    let base = if admin.starts_with("http") {
                        admin.clone()
                    } else {
                        format!("http://{admin}")
                    };
                    router = router.with_admin(EnvoyAdmin::with_base(base)?, CONFIRM_TIMEOUT);
                }
                router
            }
        };
        let xds_addr = router.ads().map(|a| a.local_addr());
        // One push with every stored rollout before any rollout ticks (see stored_plans). Over
        // ADS Envoy may not be connected yet: publish, and let it fetch when it connects.
        let stored = server::stored_plans(&store).await?;
        if !stored.is_empty() {
            let res = match &opts.xds {
                Xds::Ads { .. } => router.preload(&stored).await,
                Xds::Files { .. } => router.set_many(&stored).await,
            };
            if let Err(e) = res {
                tracing::warn!(error = %e, "re-applying the stored traffic plans failed");
            }
        }
        let router: Arc<dyn TrafficRouter> = Arc::new(router);
        let analyzer: Arc<dyn Analyzer> = Arc::new(
            PrometheusAnalyzer::new(AddressPolicy::SpecOrDefault(opts.prometheus.clone()))?
                .with_options(RunOptions {
                    scrape_interval: opts.scrape_interval,
                }),
        );
        let webhooks: Arc<dyn Webhooks> = Arc::new(match &telemetry {
            Some(t) => t.webhooks()?,
            None => sluice_notify::webhooks::HttpWebhooks::new(None)?,
        });
        let runner = Runner::new(
            store,
            Deps {
                router,
                analyzer,
                webhooks,
                telemetry,
            },
            opts.timing,
        );
        // HTTP first: the first scan runs in the background (on a blocking thread), so the API
        // answers at once however many or large the files are.
        let mut loader = DirLoader::new(&opts.dir).with_settle(super::loader::SETTLE);
        let watch = tokio::spawn({
            let runner = runner.clone();
            async move {
                if let Err(e) = server::start(&runner, &mut loader).await {
                    tracing::error!(error = %e, "first scan of the rollout directory failed");
                }
                server::watch(runner, loader).await;
            }
        });

        let backend = Arc::new(StandaloneBackend {
            runner: runner.clone(),
        });
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
        let listen = opts.listen.clone();
        let app = app(backend.clone());
        let http = tokio::spawn(async move {
            server::serve_http(
                &listen,
                app,
                async move {
                    let _ = stop_rx.await;
                },
                Some(bound_tx),
            )
            .await
        });
        let http_addr = match bound_rx.await {
            Ok(a) => a,
            Err(_) => {
                // The server task ended before binding: report its error.
                watch.abort();
                runner.shutdown();
                return Err(match http.await {
                    Ok(Err(e)) => e.into(),
                    _ => {
                        ServeError::Http(std::io::Error::other("HTTP server did not start")).into()
                    }
                });
            }
        };
        tracing::info!(%http_addr, ?xds_addr, dir = %opts.dir.display(), "sluice standalone running");
        Ok(Standalone {
            runner,
            backend,
            http_addr,
            xds_addr,
            watch,
            http,
            stop: Some(stop_tx),
        })
    }

    /// Runs until the HTTP server stops (it only stops on error or [`Standalone::shutdown`]).
    pub async fn wait(&mut self) -> Result<(), ServeError> {
        match (&mut self.http).await {
            Ok(r) => r,
            Err(e) => Err(ServeError::Http(std::io::Error::other(e.to_string()))),
        }
    }

    /// Stops serving and ticking.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.watch.abort();
        self.runner.shutdown();
        let _ = (&mut self.http).await;
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.watch.abort();
        self.http.abort();
        self.runner.shutdown();
    }
}
