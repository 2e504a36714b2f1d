//! `sluice controller`: executors (Prometheus analysis, HTTP webhooks, telemetry), then the
//! controller loop of `sluice::k8s`. Logging is set up by `main`.

use std::sync::Arc;

use sluice::k8s::controller::{self, Args};

pub async fn controller(args: Args, notify: &crate::cli::notify::NotifyArgs) -> anyhow::Result<()> {
    let telemetry = sluice::telemetry::Telemetry::new(&notify.config()?)?;
    // No address override: each Rollout names its own Prometheus (spec.analysis.provider).
    let analyzer = Arc::new(sluice::analysis::PrometheusAnalyzer::new(None)?);
    let webhooks = Arc::new(telemetry.webhooks()?);
    // The web UI/API on `--listen`. Commands need SLUICE_API_TOKEN (e.g. from a Secret);
    // without it they are refused.
    let token = sluice::api::load_token(None)?;
    let metrics = telemetry.metrics.encoder();
    let web: controller::WebRouter = Box::new(move |backend| {
        sluice::api::router(sluice::api::ApiState::new(backend, token).with_metrics(metrics))
    });
    controller::run(
        args.into_options(analyzer, webhooks, Some(telemetry), Some(web)),
        Default::default(),
    )
    .await?;
    Ok(())
}
