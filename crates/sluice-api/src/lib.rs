//! The HTTP API, the live event stream and the web UI: one axum [`Router`] for both modes.
//!
//! ## Flow
//! Handlers only talk to a [`Backend`] (standalone store or Kubernetes API server). Reads go
//! straight to it; commands are checked (token, path, body) and queued with
//! [`Backend::command`], which refuses with a conflict when `engine::command_allowed` says
//! no. Live views subscribe to [`Backend::subscribe`] through `/api/v1/events/stream` (SSE).
//!
//! ## Guarantees
//! - Mutating calls need `Authorization: Bearer <token>`; the token is compared in constant
//!   time. Without a configured token every mutating call is refused (secure by default).
//!   A refused call (401/403/400/404/409) changes nothing.
//! - Errors are JSON `{error, message, field?}`; internal errors are logged and answered with a
//!   generic message.
//! - An SSE client that falls behind the broadcast buffer is told so and disconnected; it can
//!   never slow the engine (broadcast sends never wait for receivers).
//! - The OpenAPI document is generated from the same route table the router is built from
//!   ([`routes::routes`]) and from the schemars schemas of the response types.

mod auth;
mod error;
mod handlers;
#[doc(hidden)]
pub mod openapi;
pub mod routes;
mod sse;
mod ui;

use std::path::Path;
use std::sync::Arc;

use axum::Router;

use sluice_core::backend::Backend;

pub use error::{ApiError, ErrorBody};
pub use handlers::{CommandAccepted, CommandRequest, CommandState, RolloutResponse};

/// Environment variable the server reads its API token from (see [`load_token`]).
pub const TOKEN_ENV: &str = "SLUICE_API_TOKEN";

/// Address the server listens on by default and the CLI talks to by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7474";

/// Renders the Prometheus text exposition for `/metrics` (the telemetry module's registry).
pub type MetricsFn = Arc<dyn Fn() -> String + Send + Sync>;

/// What every handler shares.
#[derive(Clone)]
pub struct ApiState {
    pub(crate) backend: Arc<dyn Backend>,
    /// `None`: mutating calls are refused.
    pub(crate) token: Option<Arc<str>>,
    pub(crate) metrics: Option<MetricsFn>,
    /// Open SSE streams are bounded: each holds a connection and a broadcast receiver.
    pub(crate) streams: Arc<tokio::sync::Semaphore>,
}

/// Default bound on concurrent `/api/v1/events/stream` clients.
pub const MAX_STREAMS: usize = 256;

impl ApiState {
    /// `token`: the bearer token mutating calls must present. `None` (or an empty string)
    /// disables every mutating call.
    pub fn new(backend: Arc<dyn Backend>, token: Option<String>) -> Self {
        let token = token
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .map(Arc::from);
        ApiState {
            backend,
            token,
            metrics: None,
            streams: Arc::new(tokio::sync::Semaphore::new(MAX_STREAMS)),
        }
    }

    /// At most `n` concurrent SSE clients; more get 503 until one leaves.
    pub fn with_max_streams(mut self, n: usize) -> Self {
        self.streams = Arc::new(tokio::sync::Semaphore::new(n));
        self
    }

    /// Serve this text on `/metrics`.
    pub fn with_metrics(mut self, metrics: MetricsFn) -> Self {
        self.metrics = Some(metrics);
        self
    }
}

/// The whole HTTP surface: `/api/v1/...`, `/api/openapi.json`, `/healthz`, `/readyz`,
/// `/metrics` and the web UI at `/`.
pub fn router(state: ApiState) -> Router {
    let mut r = Router::new();
    for def in routes::routes() {
        r = r.route(def.path, handlers::method_router(&def));
    }
    r.merge(ui::router())
        .fallback(handlers::not_found)
        .with_state(state)
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read the API token file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the API token file {0} is empty")]
    Empty(String),
}

/// The API token: from `file` when given (surrounding whitespace trimmed), else `from_env`
/// (the value of [`TOKEN_ENV`], which the binary reads), else `None` (mutating calls disabled).
pub fn load_token(
    file: Option<&Path>,
    from_env: Option<String>,
) -> Result<Option<String>, TokenError> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let t = text.trim();
        if t.is_empty() {
            return Err(TokenError::Empty(path.display().to_string()));
        }
        return Ok(Some(t.to_string()));
    }
    Ok(from_env
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty()))
}
