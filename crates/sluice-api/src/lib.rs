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
pub mod server;
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
    /// Host names (no port) the API and UI answer to; `None`: any (`--allowed-host '*'`).
    pub(crate) hosts: Option<Arc<[String]>>,
}

/// Host names the API and UI always answer to: a page on another name that resolves to
/// 127.0.0.1 (DNS rebinding) must not read rollouts or send commands through a browser.
pub const LOOPBACK_HOSTS: [&str; 4] = ["localhost", "127.0.0.1", "[::1]", "::1"];

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
            hosts: Some(LOOPBACK_HOSTS.iter().map(|h| h.to_string()).collect()),
        }
    }

    /// Answer to these host names too (besides [`LOOPBACK_HOSTS`]), e.g. the name of an
    /// Ingress or Service in front of sluice. `*` among them turns the check off.
    pub fn with_allowed_hosts(mut self, extra: &[String]) -> Self {
        if extra.iter().any(|h| h == "*") {
            self.hosts = None;
        } else {
            let mut all: Vec<String> = LOOPBACK_HOSTS.iter().map(|h| h.to_string()).collect();
            all.extend(extra.iter().map(|h| h.trim().to_ascii_lowercase()));
            self.hosts = Some(all.into());
        }
        self
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
    let hosts = state.hosts.clone();
    r.merge(ui::router())
        .fallback(handlers::not_found)
        .layer(axum::extract::DefaultBodyLimit::max(server::MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(move |req, next| {
            check_host(hosts.clone(), req, next)
        }))
        .with_state(state)
}

/// Refuses a request whose `Host` is not allowed (421), except the probes and `/metrics`,
/// which kubelets and Prometheus reach by pod IP and which hold nothing secret. A request
/// without `Host` (HTTP/1.0, in-process tests) is no browser's and passes.
async fn check_host(
    hosts: Option<Arc<[String]>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let open = matches!(req.uri().path(), "/healthz" | "/readyz" | "/metrics");
    if let (Some(hosts), false) = (hosts, open)
        && let Some(host) = req.headers().get(http::header::HOST)
    {
        let host = host.to_str().unwrap_or_default().to_ascii_lowercase();
        let name = host_name(&host);
        if !hosts.iter().any(|h| h == name) {
            return (
                http::StatusCode::MISDIRECTED_REQUEST,
                axum::Json(ErrorBody {
                    error: "misdirected".into(),
                    message: format!(
                        "host {name:?} is not served here (DNS rebinding protection); \
                         allowed: {}; add it with --allowed-host",
                        hosts.join(", ")
                    ),
                    field: None,
                }),
            )
                .into_response();
        }
    }
    next.run(req).await
}

/// `name` of `name:port`, `[v6]` of `[v6]:port`.
fn host_name(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
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
