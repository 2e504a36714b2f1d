//! `sluice standalone`: the loader loop, the runner and the HTTP server, until shutdown.
//!
//! ## Start-up
//! 1. The store is opened (a file left by a killed process opens at its last commit).
//! 2. The HTTP server starts, then the directory is scanned once in the background (on a
//!    blocking thread). Every rollout in a valid file runs (resuming from the
//!    store when it has a record). A stored rollout whose file is invalid now keeps running
//!    with its last good spec from the store; one whose file is gone is retired (all traffic
//!    to stable, record kept as retired).
//! 3. The directory is polled every second from then on.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::loader::{DirLoader, LoadEvent};
use super::runner::Runner;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] super::store::StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("rollout directory {path}: {source}")]
    Dir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP server: {0}")]
    Http(#[source] std::io::Error),
}

/// How often the rollout directory is polled for edits.
pub const POLL: Duration = Duration::from_secs(1);

/// Applies what a directory scan found to the runner.
pub async fn apply_events(runner: &Runner, events: Vec<LoadEvent>) {
    for ev in events {
        match ev {
            LoadEvent::Upsert { rollout, path } => {
                tracing::info!(rollout = %rollout.key(), file = %path.display(), "rollout loaded");
                runner.upsert(*rollout, Some(path));
            }
            LoadEvent::Remove { key, path } => {
                tracing::info!(rollout = %key, file = %path.display(), "rollout removed");
                runner.remove(&key).await;
            }
            LoadEvent::Invalid { path, keeps, error } => {
                tracing::error!(file = %path.display(), %error, "invalid rollout file; previous version keeps running");
                for key in keeps {
                    runner.note(
                        &key,
                        sluice_core::engine::EventReason::SpecInvalid,
                        format!(
                            "{}: {error} (the previous version keeps running)",
                            path.display()
                        ),
                    );
                }
            }
        }
    }
}

/// First scan: start what is in the directory, keep stored rollouts of invalid files on their
/// last good spec, retire stored rollouts whose file is gone.
pub async fn start(runner: &Runner, loader: &mut DirLoader) -> Result<(), ServeError> {
    // Off the async runtime: parsing is bounded, but a directory of large files is still work.
    let taken = std::mem::replace(loader, DirLoader::new(std::path::Path::new("")));
    let (events, taken) = tokio::task::spawn_blocking(move || {
        let mut l = taken;
        (l.scan_all(), l)
    })
    .await
    .map_err(|e| ServeError::Http(std::io::Error::other(format!("directory scan: {e}"))))?;
    *loader = taken;
    runner.set_problems(loader.problems());
    let invalid: BTreeSet<String> = events
        .iter()
        .filter_map(|e| match e {
            LoadEvent::Invalid { path, .. } => Some(path.display().to_string()),
            _ => None,
        })
        .collect();
    let loaded: BTreeSet<String> = events
        .iter()
        .filter_map(|e| match e {
            LoadEvent::Upsert { rollout, .. } => Some(rollout.key()),
            _ => None,
        })
        .collect();
    let stored = runner.store().run(|s| s.list()).await?;
    apply_events(runner, events).await;
    for (key, record) in stored {
        if loaded.contains(&key) || record.retired {
            continue;
        }
        match &record.source {
            Some(src) if invalid.contains(src) => {
                tracing::warn!(rollout = %key, file = %src, "file invalid; running the last good spec from the store");
                loader.adopt(std::path::Path::new(src), record.rollout.clone());
                let rollout = record.rollout.clone();
                runner.upsert(rollout, Some(PathBuf::from(src)));
                runner.note(
                    &key,
                    sluice_core::engine::EventReason::SpecInvalid,
                    format!("{src} is invalid; running the last good spec"),
                );
            }
            _ => runner.remove(&key).await,
        }
    }
    Ok(())
}

/// Every stored rollout as the data plane must serve it (stable pointer applied) with the plan
/// of its last committed tick, retired ones included (all-stable). Routers that rebuild their
/// whole config from what they were told (Envoy) get these in one write before any rollout
/// ticks, so a restart never drops another rollout's routes.
pub async fn stored_plans(
    store: &super::store::Store,
) -> Result<
    Vec<(
        sluice_core::spec::Rollout,
        sluice_core::traffic::TrafficPlan,
    )>,
    ServeError,
> {
    let stored = store.run(|s| s.list()).await?;
    Ok(stored
        .into_iter()
        .map(|(_, r)| {
            let plan = r
                .applied
                .clone()
                .unwrap_or_else(sluice_core::traffic::TrafficPlan::stable_only);
            (super::workloads::effective(&r.rollout, &r.upstreams), plan)
        })
        .collect())
}

/// Polls the directory forever.
pub async fn watch(runner: Arc<Runner>, mut loader: DirLoader) {
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (events, l) = match tokio::task::spawn_blocking(move || {
            let ev = loader.scan();
            (ev, loader)
        })
        .await
        {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(error = %e, "directory scan panicked; stopping the file watcher");
                return;
            }
        };
        loader = l;
        runner.set_problems(loader.problems());
        apply_events(&runner, events).await;
    }
}

/// Serves `app` on `listen` until `shutdown` resolves. Returns the bound address through
/// `bound` (useful with port 0).
pub async fn serve_http(
    listen: &str,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    bound: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: listen.to_string(),
            source,
        })?;
    if let (Some(tx), Ok(addr)) = (bound, listener.local_addr()) {
        let _ = tx.send(addr);
    }
    // With header-size, header-read-timeout, connection and body limits (`sluice_api::server`).
    sluice_api::server::serve(listener, app, shutdown)
        .await
        .map_err(ServeError::Http)
}

/// `/healthz` only: the app used when the web API is not compiled in.
pub fn health_app() -> axum::Router {
    axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok\n" }))
}
