//! `sluice bench route-apply`: how long from the router being handed a new plan (the engine's
//! decision) until a real Envoy serves it.
//!
//! Setup: a real Envoy with sluice's bootstrap and two in-process demo backends (v1 stable,
//! v2 canary). Each swap flips the plan between 100% stable and 100% canary; the clock starts
//! right before [`EnvoyRouter::set`] (translation, temp file, fsync, rename all count) and stops
//! when a request sent through Envoy is answered by the version the new plan names. Probing
//! requests go back to back on a kept-alive connection, so the resolution is one round trip
//! (well under a millisecond here).
//!
//! A second pass measures the same swaps confirmed through Envoy's admin stats instead
//! (`version_text`), which is what `apply` waits for when the router has an admin address.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::demo_app::{self, DemoConfig, DemoHandle};
use crate::procs::envoy::{EnvoyError, EnvoyProcess};
use sluice_core::spec::{Rollout, RolloutSpec, ServiceSpec, Upstreams};
use sluice_core::traffic::TrafficPlan;
use sluice_envoy::xds::{EnvoyRouter, XdsError};

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Envoy(#[from] EnvoyError),
    #[error(transparent)]
    Xds(#[from] XdsError),
    #[error(transparent)]
    Demo(#[from] demo_app::DemoError),
    #[error("swap {swap}: Envoy still served {seen:?} {waited:?} after the write (wanted {want})")]
    NotServed {
        swap: usize,
        want: String,
        seen: Option<String>,
        waited: Duration,
    },
}

/// Figures of one run (milliseconds).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct RouteApplyReport {
    pub swaps: usize,
    /// Decision → first request served by the new destination.
    pub route_apply_p50_ms: f64,
    pub route_apply_p99_ms: f64,
    pub route_apply_max_ms: f64,
    /// Decision → Envoy's admin stats report the new routes version.
    pub confirm_p50_ms: f64,
    pub confirm_p99_ms: f64,
    pub envoy_version: String,
}

/// A throwaway rollout whose two upstreams are the demo backends.
pub fn bench_rollout(stable: &DemoHandle, canary: &DemoHandle) -> Rollout {
    Rollout::new(
        "bench",
        RolloutSpec {
            target_ref: None,
            upstreams: Some(Upstreams {
                stable: stable.upstream(),
                canary: canary.upstream(),
                stable_revision: None,
            }),
            revision: None,
            service: ServiceSpec {
                port: 80,
                hosts: vec!["bench".into()],
                gateways: vec![],
            },
            strategy: Default::default(),
            analysis: Default::default(),
            schedule: None,
            promotion: Default::default(),
            progress_deadline: Default::default(),
            webhooks: vec![],
            skip_analysis: false,
            notifications: vec![],
        },
    )
}

/// Which version answered a request through Envoy (`x-demo-version`), if any.
pub async fn served_by(client: &reqwest::Client, url: &str) -> Option<String> {
    let resp = client.get(url).send().await.ok()?;
    resp.headers()
        .get("x-demo-version")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Flip `rollout` between all-stable and all-canary `swaps` times; returns the milliseconds
/// from each `set` call to the first response from the new version.
pub async fn measure_swaps(
    router: &EnvoyRouter,
    rollout: &Rollout,
    client: &reqwest::Client,
    url: &str,
    versions: (&str, &str),
    swaps: usize,
) -> Result<Vec<f64>, BenchError> {
    let mut out = Vec::with_capacity(swaps);
    for swap in 0..swaps {
        let to_canary = swap % 2 == 0;
        let (plan, want) = if to_canary {
            (TrafficPlan::weighted(100), versions.1)
        } else {
            (TrafficPlan::stable_only(), versions.0)
        };
        let start = Instant::now();
        router.set(rollout, &plan).await?;
        let mut seen = None;
        loop {
            seen = served_by(client, url).await.or(seen);
            if seen.as_deref() == Some(want) {
                break;
            }
            if start.elapsed() > Duration::from_secs(5) {
                return Err(BenchError::NotServed {
                    swap,
                    want: want.to_string(),
                    seen,
                    waited: start.elapsed(),
                });
            }
        }
        out.push(start.elapsed().as_secs_f64() * 1e3);
    }
    Ok(out)
}

/// The whole benchmark in `work_dir` (a real Envoy, two demo backends, `swaps` swaps per pass).
pub async fn bench_route_apply(
    work_dir: &Path,
    swaps: usize,
) -> Result<RouteApplyReport, BenchError> {
    let localhost = SocketAddr::from(([127, 0, 0, 1], 0));
    let v1 = demo_app::start(DemoConfig::new("v1"), localhost).await?;
    let v2 = demo_app::start(DemoConfig::new("v2"), localhost).await?;
    let rollout = bench_rollout(&v1, &v2);
    let (envoy, confirming) =
        EnvoyProcess::start_standalone(work_dir, Duration::from_secs(5)).await?;
    // Same directory, no admin confirmation: `set` returns right after the rename, and the
    // probe requests see when Envoy serves it.
    let plain = EnvoyRouter::open(work_dir.join("xds"))?;
    plain.set(&rollout, &TrafficPlan::stable_only()).await?;
    // Both routers must agree on what is on disk; the confirming one learns it here.
    confirming
        .set(&rollout, &TrafficPlan::stable_only())
        .await?;

    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .pool_max_idle_per_host(1)
        .build()
        .map_err(|e| {
            BenchError::Envoy(EnvoyError::Io {
                path: "http client".into(),
                source: std::io::Error::other(e),
            })
        })?;
    let url = envoy.url();
    let served = measure_swaps(&plain, &rollout, &client, &url, ("v1", "v2"), swaps).await?;

    let mut confirmed = Vec::with_capacity(swaps);
    for swap in 0..swaps {
        let plan = TrafficPlan::weighted(if swap % 2 == 0 { 100 } else { 0 });
        let start = Instant::now();
        confirming.set(&rollout, &plan).await?;
        confirmed.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let envoy_version = crate::procs::envoy::envoy_version()
        .await
        .unwrap_or_default();
    envoy.stop().await;
    let p = |s: &[f64], q| super::percentile(s, q).unwrap_or(f64::NAN);
    Ok(RouteApplyReport {
        swaps,
        route_apply_p50_ms: p(&served, 0.5),
        route_apply_p99_ms: p(&served, 0.99),
        route_apply_max_ms: p(&served, 1.0),
        confirm_p50_ms: p(&confirmed, 0.5),
        confirm_p99_ms: p(&confirmed, 0.99),
        envoy_version,
    })
}
