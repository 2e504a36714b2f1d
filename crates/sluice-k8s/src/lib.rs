//! The Kubernetes controller: Rollouts drive Deployments and Istio VirtualServices.
//!
//! ## Flow of one reconcile ([`reconcile`])
//! 1. The finalizer helper makes sure `sluice.dev/cleanup` is on the Rollout (deletion runs
//!    [`reconcile::cleanup`]: 100% to primary, target scaled back up, sluice's objects removed).
//! 2. [`workloads::KubeWorkloads::ensure`] creates what must exist before any decision: the
//!    `<name>-primary` Deployment (from the target on first sight), the `-primary`/`-canary`
//!    Services, `<name>` if missing, the DestinationRules.
//! 3. A command annotation (`sluice.dev/command`) is read ([`commands`]).
//! 4. [`sluice_core::exec::tick`] observes (revisions, readiness) → `engine::step` → executes the
//!    effects through [`router::KubeRouter`] (Istio or Gateway API), [`workloads::KubeWorkloads`],
//!    [`recorder::KubeRecorder`] and the analyzer/webhooks passed in.
//! 5. The status subresource is patched (observedGeneration, conditions), then the command
//!    annotation is acknowledged and cleared.
//!
//! Deciding stays in the engine; this module only observes and writes. Every write goes
//! through a client gated by leadership ([`leader`]): a replica that loses the Lease cannot
//! write anything any more, even from a reconcile already running.

pub mod api_calls;
pub mod backend;
pub mod cache;
pub mod commands;
pub mod controller;
pub mod gate;
/// The translation from TrafficPlan to Gateway API HTTPRoute / GRPCRoute (also `sluice plan`).
pub mod gateway_api;
/// The translation from TrafficPlan to Istio objects (one code path with `sluice plan`).
pub mod istio;
pub mod leader;
pub mod names;
pub mod objects;
/// Routes the user owns: the plan written into one named rule of their VirtualService or route.
pub mod owned_route;
pub mod reconcile;
pub mod recorder;
pub mod router;
pub mod throttle;
pub mod workloads;

use std::future::Future;
use std::time::Duration;

pub use objects::ObjectError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Object(#[from] ObjectError),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Exec(#[from] sluice_core::exec::ExecError),
    #[error("finalizer: {0}")]
    Finalizer(String),
    /// Not an error: cleanup waits for something (e.g. the target to be Ready again).
    #[error("waiting: {0}")]
    Waiting(String),
    #[error("{0}")]
    Invalid(String),
    /// An API the Rollout needs is not served (its CRDs are not installed): group/version
    /// and resource, e.g. `gateway.networking.k8s.io/v1 httproutes`.
    #[error("{0} not served by this cluster")]
    ApiMissing(String),
    /// The user's route cannot take the plan (rule missing, not routing, bad annotation).
    #[error(transparent)]
    OwnedRoute(#[from] owned_route::OwnedRouteError),
}

impl Error {
    /// Low-cardinality label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Object(_) => "object",
            Error::NotFound(_) => "not_found",
            Error::Exec(e) => e.metric_label(),
            Error::Finalizer(_) => "finalizer",
            Error::Waiting(_) => "waiting",
            Error::Invalid(_) => "invalid",
            Error::ApiMissing(_) => "api_missing",
            Error::OwnedRoute(_) => "owned_route",
        }
    }
}

/// Where "now" comes from (tests drive it by hand; any `Fn() -> DateTime<Utc>` is a clock).
pub type Clock = std::sync::Arc<dyn sluice_core::clock::Clock>;

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_not_found())
}

pub fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409 && s.reason != "AlreadyExists")
}

/// Attempts of a write that meets 409 Conflict before giving up (the reconcile then fails and
/// is requeued, so nothing is lost either way).
pub(crate) const CONFLICT_ATTEMPTS: u32 = 5;

/// Runs `write` again when the API server answers 409 Conflict (someone else changed the
/// object between our read and our write). `write` must re-read what it depends on.
pub async fn retry_on_conflict<T, F, Fut>(what: &str, mut write: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut attempt = 1;
    loop {
        match write().await {
            Err(e) if is_conflict(&e) && attempt < CONFLICT_ATTEMPTS => {
                tracing::debug!(%what, attempt, "conflict, retrying");
                tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}
