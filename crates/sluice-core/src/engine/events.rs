//! What happened to a rollout, as a typed value: every part that reacts to an event
//! (notifications, Kubernetes Events, metrics, the UI's history) matches on [`EventReason`]
//! exhaustively, so a new reason cannot be silently ignored and a renamed one cannot be
//! silently missed.

use serde::{Deserialize, Serialize};

/// An event: why (typed), what (for people), and whether it is a warning.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub reason: EventReason,
    pub message: String,
    pub warning: bool,
}

impl Event {
    pub fn new(reason: EventReason, message: impl Into<String>) -> Self {
        Event {
            reason,
            message: message.into(),
            warning: reason.is_warning(),
        }
    }
    pub fn reason(&self) -> EventReason {
        self.reason
    }
    pub fn message(&self) -> &str {
        &self.message
    }
    pub fn warning(&self) -> bool {
        self.warning
    }
}

/// The events of the engine under the name the issue tracker and the docs use.
pub type EngineEvent = Event;

macro_rules! reasons {
    ($( $(#[$doc:meta])* $name:ident => $warn:literal, )*) => {
        /// Why an event was recorded. Serialized (history, Kubernetes Events, metrics labels,
        /// webhook payloads) as its CamelCase name.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum EventReason {
            $( $(#[$doc])* $name, )*
        }

        impl EventReason {
            pub const ALL: &'static [EventReason] = &[$(EventReason::$name,)*];

            /// The CamelCase name, e.g. `StepAdvanced`.
            pub fn as_str(self) -> &'static str {
                match self { $( EventReason::$name => stringify!($name), )* }
            }

            /// Whether an event with this reason is a warning when nothing else says.
            pub fn is_warning(self) -> bool {
                match self { $( EventReason::$name => $warn, )* }
            }
        }
    };
}

reasons! {
    // The engine.
    /// First sight: the stable revision is known.
    Initialized => false,
    /// A new revision (or `retry`) started a rollout.
    RolloutStarted => false,
    /// Back to progressing after a pause (`resume`, `promote` while paused).
    Progressing => false,
    /// Paused (by a person, inconclusive analysis, awaiting promotion).
    Paused => false,
    /// Stable is being switched to the new revision.
    Promoting => false,
    /// The new revision is stable.
    Succeeded => false,
    /// Back to stable after a failure or an abort.
    RolledBack => true,
    /// `undo`: the previous stable revision is back.
    Undone => true,
    /// The target went back to the stable revision: nothing to roll out.
    Idle => false,
    /// A command that does not apply now (or could not be read).
    CommandRejected => true,
    /// A person passed the current step (`promote`).
    Promoted => false,
    /// A stage's traffic is applied.
    StepStarted => false,
    /// A stage passed; the next one starts.
    StepAdvanced => false,
    /// The spec's stages changed mid-rollout.
    StepsChanged => false,
    /// An analysis template the spec uses changed (new resourceVersion / content hash).
    AnalysisTemplateChanged => false,
    /// A gate webhook said no.
    GateHeld => true,
    /// A gate webhook said yes.
    GateOpened => false,
    /// The canary stopped being ready: traffic back to stable.
    CanaryNotReady => true,
    /// A check failed (below `failureLimit` in a row).
    AnalysisFailed => true,
    /// A check was inconclusive (below `inconclusiveLimit` in a row).
    AnalysisInconclusive => true,
    /// A `mode: shadow` check failed: it would have counted, it did not.
    ShadowCheckFailed => true,
    // The executors (`exec`).
    /// The data plane refused the traffic plan.
    RouterRefused => true,
    /// The data plane took a plan again after refusing.
    RouterAccepted => false,
    /// A preempting command cancelled an analysis in flight.
    AnalysisCancelled => false,
    /// A preempting command cancelled a webhook call in flight.
    WebhookCancelled => false,
    /// A workload change failed; the decision stands and it is retried.
    EffectPending => true,
    /// Pending workload changes went through.
    EffectCompleted => false,
    // Standalone mode.
    /// sluice restarted and resumed a rollout in flight.
    Resumed => false,
    /// The rollout's file changed.
    SpecUpdated => false,
    /// The rollout's file became invalid; the last good spec keeps running.
    SpecInvalid => true,
    /// `upstreams.stable` was edited.
    StableRepointed => false,
    /// `upstreams.stableRevision` was edited.
    StableRelabelled => false,
    /// An executor failed (other than the router).
    ExecutorError => true,
    /// The rollout's file was removed: all traffic to stable, no longer managed.
    Unmanaged => false,
    // Kubernetes mode.
    /// The finalizer ran: routing back to the user's Service.
    Finalized => false,
    /// The spec breaks a validation rule.
    InvalidSpec => true,
    /// `spec.targetRef` names no Deployment.
    TargetNotFound => true,
    /// The target selects its pods with `matchExpressions` only.
    UnsupportedSelector => true,
    /// Istio's `networking.istio.io/v1` is not served.
    IstioAPIMissing => true,
    /// The Gateway API (`gateway.networking.k8s.io/v1` routes) is not served.
    GatewayAPIMissing => true,
    /// The route the user owns (`virtualServiceRef` / `routeRef`) does not exist.
    RouteNotFound => true,
    /// The user's route rule cannot take the plan (missing rule, a redirect, …).
    RouteRuleUnusable => true,
    /// RBAC forbids a request the controller needs.
    Forbidden => true,
}

impl std::fmt::Display for EventReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EventReason {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        EventReason::ALL
            .iter()
            .copied()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown event reason {s:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_serde_and_from_str() {
        for &r in EventReason::ALL {
            let json = serde_json::to_value(r).unwrap();
            assert_eq!(json, serde_json::Value::String(r.as_str().into()));
            assert_eq!(serde_json::from_value::<EventReason>(json).unwrap(), r);
            assert_eq!(r.as_str().parse::<EventReason>().unwrap(), r);
        }
        assert!("NoSuchReason".parse::<EventReason>().is_err());
    }

    #[test]
    fn the_docs_list_every_reason() {
        let doc =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/engine.md"))
                .expect("docs/engine.md");
        let table = doc
            .split("## Event reasons")
            .nth(1)
            .expect("an Event reasons section");
        for &r in EventReason::ALL {
            assert!(
                table.contains(&format!("`{r}`")),
                "docs/engine.md does not list {r}"
            );
        }
    }
}
