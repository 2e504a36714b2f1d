//! `sluice controller`: logging, executors, then the controller loop of `sluice::k8s`.

use std::sync::Arc;

use sluice::k8s::controller::{self, Args};

pub async fn controller(args: Args) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    // TODO(lead): replace `Unwired` with `analysis::PrometheusAnalyzer` and
    // `webhooks::HttpWebhooks`, and pass `Some(Box::new(|backend| api::router(...)))` to serve
    // `--listen` (see docs/kubernetes.md).
    let unwired = Arc::new(sluice::k8s::unwired::Unwired);
    controller::run(
        args.into_options(unwired.clone(), unwired, None),
        Default::default(),
    )
    .await?;
    Ok(())
}
