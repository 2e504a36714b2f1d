//! CLI glue for standalone mode: `sluice standalone`, `sluice demo`, `sluice bench rollback`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use sluice::standalone::launch::{Options, Standalone};
use sluice::standalone::runner::Timing;
use sluice::telemetry::Telemetry;

#[derive(Args, Debug)]
pub struct StandaloneArgs {
    /// Directory of Rollout files (polled every second for edits).
    #[arg(long)]
    pub dir: PathBuf,
    /// Directory of the xDS files Envoy watches (see `sluice envoy-bootstrap`).
    #[arg(long)]
    pub xds_dir: PathBuf,
    /// The store file (created if missing): every rollout's state and history.
    #[arg(long)]
    pub store: PathBuf,
    /// Prometheus for rollouts without `analysis.provider.prometheus`.
    #[arg(long)]
    pub prometheus: Option<String>,
    /// Scrape interval of that Prometheus.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub scrape_interval: Duration,
    /// Address of the HTTP API / UI.
    #[arg(long, default_value = "127.0.0.1:7474")]
    pub listen: String,
    /// Envoy's admin address (host:port): confirm every routing change with Envoy.
    #[arg(long)]
    pub envoy_admin: Option<String>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    sluice::duration::parse(s)
}

/// Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

pub async fn standalone(
    args: StandaloneArgs,
    notify: &sluice::notify::NotifyArgs,
) -> anyhow::Result<()> {
    let telemetry = Telemetry::new(&notify.config()?)?;
    let opts = Options {
        dir: args.dir,
        xds_dir: args.xds_dir,
        store: args.store,
        prometheus: args.prometheus,
        scrape_interval: args.scrape_interval,
        listen: args.listen,
        envoy_admin: args.envoy_admin,
        timing: Timing::default(),
    };
    let mut s = Standalone::launch(opts, Some(telemetry), |_backend| {
        sluice::standalone::server::health_app()
    })
    .await?;
    eprintln!("sluice standalone: HTTP on http://{}", s.http_addr);
    tokio::select! {
        r = s.wait() => r?,
        _ = shutdown_signal() => s.shutdown().await,
    }
    Ok(())
}
