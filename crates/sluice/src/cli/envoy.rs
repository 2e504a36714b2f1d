//! CLI glue for the Envoy side: `envoy-bootstrap`, `demo-app`, `bench route-apply`.

use std::path::PathBuf;

use clap::Args;

use sluice_envoy::translate::{BootstrapOptions, XdsSource, bootstrap};
use sluice_standalone::launch::Xds;

use crate::cli::standalone::{XdsKind, xds_choice};
use sluice_envoy::xds::EnvoyRouter;
use sluice_lab::demo_app::{self, DemoConfig};
use sluice_lab::procs::envoy::write_bootstrap;

#[derive(Args, Debug)]
pub struct BootstrapArgs {
    /// Where Envoy gets its configuration: `ads` (sluice's gRPC server at --xds-address) or
    /// `files` (--xds-dir); the same as `sluice standalone --xds`.
    #[arg(long, value_enum, default_value_t = XdsKind::Ads)]
    pub xds: XdsKind,
    /// sluice's ADS server (`sluice standalone --xds-listen`), as host:port.
    #[arg(long, default_value = sluice_standalone::launch::DEFAULT_XDS_LISTEN)]
    pub xds_address: String,
    /// Directory of the xDS files sluice writes, with --xds files (created, with empty
    /// cds.json/rds.json where missing, so Envoy can start right away).
    #[arg(long)]
    pub xds_dir: Option<PathBuf>,
    /// Port of Envoy's one listener (every rollout, selected by Host).
    #[arg(long)]
    pub listen_port: u16,
    #[arg(long, default_value = "127.0.0.1")]
    pub listen_address: String,
    /// Admin port (always on 127.0.0.1).
    #[arg(long)]
    pub admin_port: u16,
    /// Write here instead of stdout.
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
}

pub fn envoy_bootstrap(args: &BootstrapArgs) -> anyhow::Result<()> {
    let xds = match xds_choice(args.xds, &args.xds_address, args.xds_dir.clone())? {
        Xds::Files { dir } => {
            let router = EnvoyRouter::open(&dir)?;
            let dir = router.dir().unwrap_or(&dir).display().to_string();
            XdsSource::Files { dir }
        }
        Xds::Ads { listen } => {
            let (host, port) = listen
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?)))
                .ok_or_else(|| anyhow::anyhow!("--xds-address: {listen:?} is not host:port"))?;
            XdsSource::Ads {
                host: host.to_string(),
                port,
            }
        }
    };
    let opts = BootstrapOptions {
        xds,
        listen_address: args.listen_address.clone(),
        listen_port: args.listen_port,
        admin_port: args.admin_port,
    };
    match &args.output {
        Some(path) => write_bootstrap(path, &opts)?,
        None => print!("{}", sluice_core::yaml::to_string(&bootstrap(&opts))?),
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct DemoAppArgs {
    /// Version the app reports (v1, v2, v3 look like Bookinfo's reviews).
    #[arg(long, default_value = "v1")]
    pub version: String,
    #[arg(long)]
    pub port: u16,
    /// Share of requests answered with HTTP 500 (0..=1).
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Added latency per request.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Bearer token required by POST /control (from the environment only, never argv).
    #[arg(
        long = "control-token",
        env = "SLUICE_DEMO_CONTROL_TOKEN",
        hide_env_values = true,
        hide = true
    )]
    pub control_token: Option<String>,
}

pub async fn demo_app(args: DemoAppArgs) -> anyhow::Result<()> {
    let config = DemoConfig {
        version: args.version,
        error_rate: args.error_rate,
        latency_ms: args.latency_ms,
        control_token: args.control_token,
    };
    demo_app::run(config, args.port).await?;
    Ok(())
}

/// The target for decision -> Envoy serving the new routes.
const ROUTE_APPLY_P99_TARGET_MS: f64 = 50.0;

#[derive(Args, Debug)]
pub struct RouteApplyArgs {
    /// Route swaps per pass.
    #[arg(long, default_value_t = 200)]
    pub swaps: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn bench_route_apply(args: &RouteApplyArgs) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("sluice-bench-route-apply-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = sluice_lab::bench::route_apply::bench_route_apply(&dir, args.swaps.max(1)).await;
    let _ = std::fs::remove_dir_all(&dir);
    let r = result?;
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!("route apply, {} swaps, Envoy {}:", r.swaps, r.envoy_version);
        println!(
            "  decision -> Envoy serving the new routes: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            r.route_apply_p50_ms, r.route_apply_p99_ms, r.route_apply_max_ms
        );
        println!(
            "  decision -> admin stats confirm the version: p50 {:.2} ms, p99 {:.2} ms",
            r.confirm_p50_ms, r.confirm_p99_ms
        );
        let met = if r.route_apply_p99_ms <= ROUTE_APPLY_P99_TARGET_MS {
            "met"
        } else {
            "NOT met"
        };
        println!("  target p99 <= {ROUTE_APPLY_P99_TARGET_MS} ms: {met}");
    }
    Ok(())
}
