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
            reason: event.reason.as_str().to_string(),
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
    pub kind: ChangeKind,
}

/// What changed about a rollout (the `kind` of a live-view change).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// Its status (phase, step, traffic, …).
    Status,
    /// A new entry in its event history.
    Event,
    /// New analysis results.
    Analysis,
    /// It is gone (deleted, its file removed).
    Deleted,
}

/// One problem of a rollout file (or object) that could not be loaded: what `sluice validate`
/// prints, for the API and the UI. The rollouts it defined before keep their last good spec.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileProblem {
    /// The file as sluice reads it (standalone), or `namespace/name` (Kubernetes).
    pub file: String,
    /// 1-based document index in a multi-document file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<usize>,
    /// Field path, e.g. `spec.strategy.canary.steps[1]`; empty for whole-file problems.
    pub path: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// Problems this entry stands for beyond itself (a capped list's last line).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub omitted: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl From<&crate::validate::Problem> for FileProblem {
    fn from(p: &crate::validate::Problem) -> Self {
        FileProblem {
            file: p.file.clone(),
            document: p.document,
            path: p.path.clone(),
            message: p.message.clone(),
            line: p.line,
            column: p.column,
            omitted: p.omitted,
        }
    }
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

/// A refused command is a conflict with the rollout's current state (HTTP 409, its sentence).
impl From<crate::engine::CommandRefusal> for BackendError {
    fn from(r: crate::engine::CommandRefusal) -> Self {
        BackendError::Conflict(r.to_string())
    }
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
    /// Rollout files that could not be loaded, each problem with its field path (empty when
    /// the mode has no such files).
    async fn problems(&self) -> Result<Vec<FileProblem>, BackendError> {
        Ok(Vec::new())
    }
}
