//! `sluice controller`: executors (Prometheus analysis, HTTP webhooks, telemetry), then the
//! controller loop of `sluice_k8s`. Logging is set up by `main`.

use std::sync::Arc;

use sluice_k8s::controller::{self, Args};

pub async fn controller(args: Args, notify: &crate::cli::notify::NotifyArgs) -> anyhow::Result<()> {
    let telemetry = sluice_notify::Telemetry::new(&notify.config()?)?;
    // No address override: each Rollout names its own Prometheus (spec.analysis.provider).
    let analyzer = Arc::new(sluice_analysis::PrometheusAnalyzer::new(None)?);
    let webhooks = Arc::new(telemetry.webhooks()?);
    // The web UI/API on `--listen`. Commands need SLUICE_API_TOKEN (e.g. from a Secret);
    // without it they are refused.
    let token = sluice_api::load_token(None)?;
    let metrics = telemetry.metrics.encoder();
    let web: controller::WebRouter = Box::new(move |backend| {
        sluice_api::router(sluice_api::ApiState::new(backend, token).with_metrics(metrics))
    });
    controller::run(
        args.into_options(analyzer, webhooks, Some(telemetry), Some(web)),
        Default::default(),
    )
    .await?;
    Ok(())
}
