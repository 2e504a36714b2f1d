//! [`sluice_core::exec::Recorder`] for Kubernetes: every engine event becomes a Kubernetes Event on
//! the Rollout (`kubectl describe rollout`), and a bounded in-memory history ([`Live`]) feeds
//! the web API of this replica (event list, analysis charts, live traffic, SSE changes).
//!
//! The durable record is the status subresource and the Kubernetes Events; [`Live`] is only a
//! cache, lost on restart (the backend then falls back to Events and `status.lastVerdicts`).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use kube::Client;
use kube::Resource;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder as EventRecorder, Reporter};
use tokio::sync::broadcast;

use sluice_core::backend::{Change, ChangeKind, EventRecord};
use sluice_core::engine::{AnalysisReport, Event};
use sluice_core::exec::Recorder;
use sluice_core::spec::{CheckResult, Rollout, RolloutStatus};
use sluice_core::traffic::TrafficPlan;

/// Entries kept per rollout.
const HISTORY: usize = 500;

/// What this replica saw recently, per rollout key (`namespace/name`).
pub struct Live {
    events: Mutex<HashMap<String, VecDeque<EventRecord>>>,
    analysis: Mutex<HashMap<String, VecDeque<CheckResult>>>,
    plans: Mutex<HashMap<String, TrafficPlan>>,
    /// The last resourceVersion of each Rollout announced by [`Live::observe`].
    seen: Mutex<HashMap<String, String>>,
    changes: broadcast::Sender<Change>,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            events: Mutex::default(),
            analysis: Mutex::default(),
            plans: Mutex::default(),
            seen: Mutex::default(),
            changes: broadcast::channel(256).0,
        }
    }
}

fn push<T>(
    map: &Mutex<HashMap<String, VecDeque<T>>>,
    key: &str,
    items: impl IntoIterator<Item = T>,
) {
    // A poisoned lock only means another thread panicked mid-push; the data is still usable.
    let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
    let q = m.entry(key.to_string()).or_default();
    for item in items {
        if q.len() == HISTORY {
            q.pop_front();
        }
        q.push_back(item);
    }
}

impl Live {
    pub fn events(&self, key: &str) -> Vec<EventRecord> {
        let m = self.events.lock().unwrap_or_else(|p| p.into_inner());
        m.get(key)
            .map(|q| q.iter().cloned().collect())
            .unwrap_or_default()
    }
    pub fn analysis(&self, key: &str) -> Vec<CheckResult> {
        let m = self.analysis.lock().unwrap_or_else(|p| p.into_inner());
        m.get(key)
            .map(|q| q.iter().cloned().collect())
            .unwrap_or_default()
    }
    pub fn plan(&self, key: &str) -> Option<TrafficPlan> {
        let m = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        m.get(key).cloned()
    }
    pub fn set_plan(&self, key: &str, plan: TrafficPlan) {
        let mut m = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        m.insert(key.to_string(), plan);
    }
    pub fn forget(&self, key: &str) {
        self.plans
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }
    /// Tell live views something changed (no receiver is fine).
    /// A Rollout as this replica's watch delivered it: announces it to this replica's API
    /// stream (SSE) when its resourceVersion is new. Followers call it for every watch event,
    /// so their UI sessions see what the leader writes, live, from the status.
    pub fn observe(&self, rollout: &Rollout) {
        let (Some(rv), key) = (rollout.metadata.resource_version.clone(), rollout.key()) else {
            return;
        };
        let new = {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            seen.insert(key, rv.clone()).as_ref() != Some(&rv)
        };
        if new {
            let status = rollout.status.clone().unwrap_or_default();
            self.notify(rollout, &status, ChangeKind::Status);
        }
    }

    pub fn notify(&self, rollout: &Rollout, status: &RolloutStatus, kind: ChangeKind) {
        let _ = self.changes.send(Change {
            namespace: rollout.metadata.namespace.clone().unwrap_or_default(),
            name: rollout.metadata.name.clone().unwrap_or_default(),
            phase: status.phase,
            step_index: status.step_index,
            canary_weight: status.canary_weight,
            kind,
        });
    }
}

pub struct KubeRecorder {
    events: EventRecorder,
    live: std::sync::Arc<Live>,
    clock: super::Clock,
}

impl KubeRecorder {
    /// `instance` names the replica in the Events (`reportingInstance`).
    pub fn new(
        client: Client,
        live: std::sync::Arc<Live>,
        clock: super::Clock,
        instance: Option<String>,
    ) -> Self {
        let reporter = Reporter {
            controller: "sluice".into(),
            instance,
        };
        KubeRecorder {
            events: EventRecorder::new(client, reporter),
            live,
            clock,
        }
    }
}

/// Kubernetes limits: reason 128 characters, note 1 kB.
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[async_trait::async_trait]
impl Recorder for KubeRecorder {
    async fn event(&self, rollout: &Rollout, status: &RolloutStatus, event: &Event) {
        let key = rollout.key();
        push(
            &self.live.events,
            &key,
            [EventRecord::of(self.clock.now(), status, event)],
        );
        self.live.notify(rollout, status, ChangeKind::Event);
        let ev = KubeEvent {
            type_: if event.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: event.reason.as_str().into(),
            note: Some(truncate(&event.message, 1000)),
            action: "Reconcile".into(),
            secondary: None,
        };
        // An Event that cannot be written must not stop the rollout: the status holds the
        // state, the Event is for people.
        if let Err(e) = self.events.publish(&ev, &rollout.object_ref(&())).await {
            tracing::warn!(rollout = %key, error = %e, "could not write Kubernetes Event");
        }
    }

    async fn analysis(&self, rollout: &Rollout, report: &AnalysisReport) {
        push(&self.live.analysis, &rollout.key(), report.checks.clone());
    }
}
