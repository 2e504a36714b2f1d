//! What the HTTP API, the UI and the CLI see of rollouts, whatever the mode.
//!
//! Standalone implements [`Backend`] over its embedded store; the Kubernetes controller over
//! the API server (status subresource + annotations for commands). Handlers only use this trait.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::engine::Command;
use crate::spec::{CheckResult, RolloutSpec, RolloutStatus};
use crate::traffic::TrafficPlan;

/// A rollout as listed and shown.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutView {
    pub namespace: String,
    pub name: String,
    pub spec: RolloutSpec,
    pub status: RolloutStatus,
    /// The plan the data plane serves now (None before the first apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<TrafficPlan>,
    /// Labels of the stages (e.g. "canary 10%"), for the step timeline.
    pub stages: Vec<String>,
}

/// One entry of a rollout's event history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventRecord {
    pub at: DateTime<Utc>,
    pub reason: String,
    pub message: String,
    pub warning: bool,
    /// Phase and step right after the event.
    pub phase: crate::spec::Phase,
    pub step_index: u32,
    pub canary_weight: u32,
}

impl EventRecord {
    /// The history entry for an engine event, with the status right after it.
    pub fn of(
        at: DateTime<Utc>,
        status: &crate::spec::RolloutStatus,
        event: &crate::engine::Event,
    ) -> Self {
        EventRecord {
            at,
            reason: event.reason.clone(),
            message: event.message.clone(),
            warning: event.warning,
            phase: status.phase,
            step_index: status.step_index,
            canary_weight: status.canary_weight,
        }
    }
}

/// A change notification for live views (SSE).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub namespace: String,
    pub name: String,
    pub phase: crate::spec::Phase,
    pub step_index: u32,
    pub canary_weight: u32,
    /// "status", "event", "analysis" or "deleted".
    pub kind: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("rollout {0} not found")]
    NotFound(String),
    /// The command does not apply in the current phase (HTTP 409).
    #[error("{0}")]
    Conflict(String),
    #[error("backend unavailable: {0}")]
    Unavailable(String),
}

#[async_trait::async_trait]
pub trait Backend: Send + Sync {
    async fn list(&self) -> Result<Vec<RolloutView>, BackendError>;
    async fn get(&self, namespace: &str, name: &str) -> Result<RolloutView, BackendError>;
    /// Every analysis check, oldest first (bounded by the backend's retention).
    async fn analysis(&self, namespace: &str, name: &str)
    -> Result<Vec<CheckResult>, BackendError>;
    async fn events(&self, namespace: &str, name: &str) -> Result<Vec<EventRecord>, BackendError>;
    /// Queue a command; it takes effect on the rollout's next tick (which the backend should
    /// trigger promptly). Err(Conflict) when `engine::command_allowed` says no.
    async fn command(
        &self,
        namespace: &str,
        name: &str,
        command: Command,
    ) -> Result<(), BackendError>;
    /// Live changes. Slow receivers lag and lose messages; they never slow the engine.
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Change>;
}
