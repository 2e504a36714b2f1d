//! CLI glue for standalone mode: `sluice standalone`, `sluice demo`, `sluice bench rollback`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use sluice_notify::Telemetry;
use sluice_standalone::launch::{Options, Standalone};
use sluice_standalone::runner::Timing;

#[derive(Args, Debug)]
pub struct StandaloneArgs {
    /// Directory of Rollout files (polled every second for edits).
    #[arg(long)]
    pub dir: PathBuf,
    /// How Envoy gets its configuration: `ads` (sluice serves delta ADS over gRPC on
    /// --xds-listen; each change sends only that rollout's resources) or `files` (cds.json /
    /// rds.json in --xds-dir). Envoy's bootstrap must match (`sluice envoy-bootstrap --xds ...`).
    #[arg(long, value_enum, default_value_t = XdsKind::Ads)]
    pub xds: XdsKind,
    /// Address of the ADS server (with --xds ads).
    #[arg(long, default_value = sluice_standalone::launch::DEFAULT_XDS_LISTEN)]
    pub xds_listen: String,
    /// Directory of the xDS files Envoy watches (with --xds files).
    #[arg(long)]
    pub xds_dir: Option<PathBuf>,
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
    /// Envoy's admin address (host:port), with --xds files: confirm every routing change with
    /// Envoy (ADS confirms by Envoy's ACK).
    #[arg(long)]
    pub envoy_admin: Option<String>,
    /// File holding the API token mutating HTTP calls need (else $SLUICE_API_TOKEN; without
    /// either, promote/pause/... over HTTP are refused).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Another host name the API and UI answer to (repeatable; `*`: any). localhost,
    /// 127.0.0.1 and [::1] always work; other `Host` headers get 421 (DNS rebinding).
    #[arg(
        long,
        value_name = "NAME",
        env = "SLUICE_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    pub allowed_host: Vec<String>,
}

/// `--xds`: the transport to Envoy.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdsKind {
    Ads,
    Files,
}

/// The transport from `--xds`, `--xds-listen` and `--xds-dir`, or what is missing / extra.
pub fn xds_choice(
    kind: XdsKind,
    listen: &str,
    dir: Option<PathBuf>,
) -> anyhow::Result<sluice_standalone::launch::Xds> {
    use sluice_standalone::launch::Xds;
    match (kind, dir) {
        (XdsKind::Ads, None) => Ok(Xds::Ads {
            listen: listen.to_string(),
        }),
        (XdsKind::Ads, Some(_)) => {
            anyhow::bail!(
                "--xds-dir is for --xds files (the default, --xds ads, serves gRPC on --xds-listen)"
            )
        }
        (XdsKind::Files, Some(dir)) => Ok(Xds::Files { dir }),
        (XdsKind::Files, None) => anyhow::bail!("--xds files needs --xds-dir DIR"),
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    sluice_core::duration::parse(s)
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
    notify: &crate::cli::notify::NotifyArgs,
) -> anyhow::Result<()> {
    let telemetry = Telemetry::new(&notify.config()?)?;
    let token = sluice_api::load_token(args.token_file.as_deref(), crate::cli::api_token_env())?;
    if token.is_none() {
        eprintln!(
            "sluice standalone: no API token (--token-file or {}): commands over HTTP are refused",
            sluice_api::TOKEN_ENV
        );
    }
    let metrics = telemetry.metrics.encoder();
    let opts = Options {
        dir: args.dir,
        xds: xds_choice(args.xds, &args.xds_listen, args.xds_dir)?,
        store: args.store,
        prometheus: args.prometheus,
        scrape_interval: args.scrape_interval,
        listen: args.listen,
        envoy_admin: args.envoy_admin,
        timing: Timing::default(),
    };
    let hosts = args.allowed_host;
    let mut s = Standalone::launch(opts, Some(telemetry), move |backend| {
        sluice_api::router(
            sluice_api::ApiState::new(backend, token)
                .with_metrics(metrics)
                .with_allowed_hosts(&hosts),
        )
    })
    .await?;
    eprintln!("sluice standalone: HTTP on http://{}", s.http_addr);
    if let Some(xds) = s.xds_addr {
        eprintln!("sluice standalone: ADS (delta xDS over gRPC) on {xds}");
    }
    tokio::select! {
        r = s.wait() => r?,
        _ = shutdown_signal() => s.shutdown().await,
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Stop everything and exit once the scenario is over (default: keep running, so the web
    /// UI stays up to look at, until Ctrl-C).
    #[arg(long)]
    pub exit: bool,
    /// Analysis interval of the demo rollout (each step lasts about this long; long enough to
    /// watch a step in the web UI).
    #[arg(long, default_value = "10s")]
    pub interval: String,
    /// Requests per second through Envoy.
    #[arg(long, default_value_t = 50)]
    pub rps: u32,
    /// Address of the HTTP API / UI (port 0: a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
}

pub async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    use sluice_lab::standalone::demo::{self, DemoOptions};
    let opts = DemoOptions {
        interval: args.interval,
        rps: args.rps,
        listen: args.listen,
        ..DemoOptions::default()
    };
    let mut out = std::io::stdout();
    let started = tokio::select! {
        r = demo::start(&opts, &mut out, |backend, token| {
            sluice_api::router(sluice_api::ApiState::new(backend, Some(token)))
        }) => r?,
        _ = shutdown_signal() => {
            eprintln!("\ninterrupted while starting");
            return Ok(());
        }
    };
    let outcome = tokio::select! {
        r = async {
            demo::scenario(&started, &opts, &mut out).await?;
            if !args.exit {
                println!("\neverything stays up: look around in the web UI; Ctrl-C stops it all.");
                std::future::pending::<()>().await;
            }
            anyhow::Ok(())
        } => r,
        _ = shutdown_signal() => {
            eprintln!("\ninterrupted: stopping Envoy, Prometheus and sluice");
            Ok(())
        }
    };
    // Stop and reap every child before exiting, whatever the outcome.
    started.stop().await;
    outcome
}

#[derive(Args, Debug)]
pub struct RollbackArgs {
    /// Print one JSON object (fault_to_decision_s, fault_to_zero_canary_s,
    /// route_apply_p50_ms, route_apply_p99_ms) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Fault injections; the figures are medians over them.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Route swaps for the decision → Envoy part.
    #[arg(long, default_value_t = 200)]
    pub swaps: usize,
}

pub async fn bench_rollback(args: RollbackArgs) -> anyhow::Result<()> {
    use sluice_lab::standalone::bench::{self, RollbackOptions};
    let opts = RollbackOptions {
        runs: args.runs,
        swaps: args.swaps,
        ..RollbackOptions::default()
    };
    let mut progress = |line: String| eprintln!("{line}");
    let run = bench::rollback(&opts, &mut progress);
    let (report, _runs) = tokio::select! {
        r = run => r?,
        _ = shutdown_signal() => anyhow::bail!("interrupted"),
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "fault onset → rollback decision:      {:.2} s (median of {})",
            report.fault_to_decision_s, opts.runs
        );
        println!(
            "fault onset → 0% of requests to canary: {:.2} s (canary's own counter)",
            report.fault_to_zero_canary_s
        );
        println!(
            "decision → Envoy serving new routes:  p50 {:.2} ms, p99 {:.2} ms ({} swaps)",
            report.route_apply_p50_ms, report.route_apply_p99_ms, opts.swaps
        );
    }
    Ok(())
}

#[cfg(test)]
mod xds_tests {
    use super::*;
    use sluice_standalone::launch::Xds;

    #[test]
    fn xds_flags_pick_the_transport_or_say_what_is_missing() {
        assert_eq!(
            xds_choice(XdsKind::Ads, "127.0.0.1:18000", None).unwrap(),
            Xds::Ads {
                listen: "127.0.0.1:18000".into()
            }
        );
        assert_eq!(
            xds_choice(XdsKind::Files, "ignored", Some("/x".into())).unwrap(),
            Xds::Files { dir: "/x".into() }
        );
        let e = xds_choice(XdsKind::Files, "a:1", None).unwrap_err();
        assert!(e.to_string().contains("--xds files needs --xds-dir"), "{e}");
        let e = xds_choice(XdsKind::Ads, "a:1", Some("/x".into())).unwrap_err();
        assert!(
            e.to_string().contains("--xds-dir is for --xds files"),
            "{e}"
        );
    }
}
