//! `sluice controller`: executors (Prometheus analysis, HTTP webhooks, telemetry), then the
//! controller loop of `sluice::k8s`. Logging is set up by `main`.

use std::sync::Arc;

use sluice::k8s::controller::{self, Args};

pub async fn controller(args: Args, notify: &sluice::notify::NotifyArgs) -> anyhow::Result<()> {
    let telemetry = sluice::telemetry::Telemetry::new(&notify.config()?)?;
    // No address override: each Rollout names its own Prometheus (spec.analysis.provider).
    let analyzer = Arc::new(sluice::analysis::PrometheusAnalyzer::new(None)?);
    let webhooks = Arc::new(telemetry.webhooks()?);
    controller::run(
        args.into_options(analyzer, webhooks, Some(telemetry), None),
        Default::default(),
    )
    .await?;
    Ok(())
}
