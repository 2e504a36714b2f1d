//! Notifications: Slack incoming-webhook messages and a generic JSON sink.
//!
//! Sinks are configured once for the process ([`NotifyConfig`]: flags, env vars or a YAML
//! file) and per rollout (`spec.notifications`). Every URL is a [`Secret`] read from an env var
//! or a file: global sinks are read at start-up (a missing file is an error then), per-rollout
//! sinks at each send (so a rotated file is picked up; a missing one is logged and counted).
//!
//! Which engine events notify is decided by [`classify`]: started, step, paused, resumed,
//! promoted, rolled back, failed, would have failed (a shadow metric). Each message carries the reason and a link to the rollout's
//! UI page when `uiBaseUrl` is set.
//!
//! [`NotifyingRecorder`] wraps a mode's own [`Recorder`]: it records first, then updates the
//! event/analysis metrics, then notifies. Delivery is awaited with a short timeout (a slow
//! Slack delays that rollout's tick by at most [`SEND_TIMEOUT`], never loses its state).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::secret::{Secret, SecretError};
use crate::webhooks::root_cause;
use sluice_core::engine::{AnalysisReport, Event, EventReason};
use sluice_core::exec::Recorder;
use sluice_core::spec::{Notification, NotificationKind, Rollout, RolloutStatus};
use sluice_telemetry::Metrics;

pub const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// What a notification is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Topic {
    Started,
    Step,
    Paused,
    Resumed,
    Promoted,
    RolledBack,
    Failed,
    /// The data plane refused a traffic plan (or could not be reached): once per cause.
    RouterRefused,
    /// A shadow metric (`mode: shadow`) failed: it would have counted, it did not act.
    WouldHaveFailed,
}

impl Topic {
    pub fn title(self) -> &'static str {
        match self {
            Topic::Started => "Rollout started",
            Topic::Step => "Step",
            Topic::Paused => "Paused",
            Topic::Resumed => "Resumed",
            Topic::Promoted => "Promoted",
            Topic::RolledBack => "Rolled back",
            Topic::Failed => "Analysis failed",
            Topic::RouterRefused => "Traffic plan refused",
            Topic::WouldHaveFailed => "Would have failed (shadow metric)",
        }
    }
    fn emoji(self) -> &'static str {
        match self {
            Topic::Started => ":rocket:",
            Topic::Step => ":arrow_forward:",
            Topic::Paused => ":double_vertical_bar:",
            Topic::Resumed => ":arrow_forward:",
            Topic::Promoted => ":white_check_mark:",
            Topic::RolledBack => ":rotating_light:",
            Topic::Failed => ":warning:",
            Topic::RouterRefused => ":no_entry:",
            Topic::WouldHaveFailed => ":ghost:",
        }
    }
}

/// The notification topic of an event, `None` for events that only go to the history.
/// Exhaustive on purpose: a new reason must be placed here, not silently dropped.
pub fn classify(event: &Event) -> Option<Topic> {
    use EventReason as R;
    Some(match event.reason {
        R::RolloutStarted => Topic::Started,
        R::Progressing => Topic::Resumed,
        // `Promoted` is a person passing the current step.
        R::StepStarted | R::Promoted => Topic::Step,
        // A gate webhook said no (emitted when its answer changes): the rollout waits.
        R::Paused | R::GateHeld => Topic::Paused,
        R::Succeeded => Topic::Promoted,
        R::RolledBack | R::Undone => Topic::RolledBack,
        R::AnalysisFailed => Topic::Failed,
        // The tick emits it once per distinct cause, not per retry.
        R::RouterRefused => Topic::RouterRefused,
        R::ShadowCheckFailed => Topic::WouldHaveFailed,
        R::Initialized
        | R::Promoting
        | R::Idle
        | R::CommandRejected
        | R::StepAdvanced
        | R::StepsChanged
        | R::AnalysisTemplateChanged
        | R::GateOpened
        | R::CanaryNotReady
        | R::AnalysisInconclusive
        | R::RouterAccepted
        | R::AnalysisCancelled
        | R::WebhookCancelled
        | R::EffectPending
        | R::EffectCompleted
        | R::Resumed
        | R::SpecUpdated
        | R::SpecInvalid
        | R::StableRepointed
        | R::StableRelabelled
        | R::ExecutorError
        | R::Unmanaged
        | R::Finalized
        | R::InvalidSpec
        | R::TargetNotFound
        | R::UnsupportedSelector
        | R::IstioAPIMissing
        | R::GatewayAPIMissing
        | R::RouteNotFound
        | R::RouteRuleUnusable
        | R::Forbidden => return None,
    })
}

/// Global notification settings: from flags/env ([`NotifyArgs`]) or a YAML file.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotifyConfig {
    /// Same shape as `spec.notifications`: `{type: slack|json, urlFromEnv | urlFromFile}`.
    #[serde(default)]
    pub sinks: Vec<Notification>,
    /// Base URL of sluice's web UI, for links (e.g. `https://sluice.example.com`).
    #[serde(default)]
    pub ui_base_url: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("notification config: {0}")]
    Config(String),
    #[error("notification sink {index} ({kind}): {source}")]
    Secret {
        index: usize,
        kind: &'static str,
        #[source]
        source: SecretError,
    },
    #[error("notification sink {index} ({kind}): set exactly one of urlFromEnv, urlFromFile")]
    NoSource { index: usize, kind: &'static str },
    #[error("building the notification HTTP client: {0}")]
    Client(String),
}

fn kind_str(kind: NotificationKind) -> &'static str {
    match kind {
        NotificationKind::Slack => "slack",
        NotificationKind::Json => "json",
    }
}

/// A resolved sink: where to post, in which format.
#[derive(Clone, Debug)]
pub struct Sink {
    pub kind: NotificationKind,
    pub url: Secret,
}

impl Sink {
    pub fn resolve(n: &Notification, index: usize) -> Result<Sink, NotifyError> {
        let kind = kind_str(n.kind);
        let url = match (&n.url_from_env, &n.url_from_file) {
            (Some(var), None) => Secret::from_env(var),
            (None, Some(path)) => Secret::from_file(path),
            _ => return Err(NotifyError::NoSource { index, kind }),
        }
        .map_err(|source| NotifyError::Secret {
            index,
            kind,
            source,
        })?;
        Ok(Sink { kind: n.kind, url })
    }
}

/// The facts of one notification; both formats render it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub topic: Topic,
    pub namespace: String,
    pub name: String,
    pub phase: &'static str,
    /// Event reason (e.g. `RolledBack`) and the status reason (e.g. `AnalysisFailed`).
    pub event: String,
    pub reason: Option<String>,
    pub message: String,
    pub step: u32,
    pub steps: usize,
    pub canary_weight: u32,
    pub stable_revision: Option<String>,
    pub canary_revision: Option<String>,
    pub url: Option<String>,
    pub at: DateTime<Utc>,
}

impl Message {
    pub fn new(
        topic: Topic,
        rollout: &Rollout,
        status: &RolloutStatus,
        event: &Event,
        ui_base_url: Option<&str>,
        at: DateTime<Utc>,
    ) -> Message {
        let namespace = rollout
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = rollout.metadata.name.clone().unwrap_or_default();
        Message {
            topic,
            url: ui_base_url.map(|b| ui_link(b, &namespace, &name)),
            namespace,
            name,
            phase: status.phase.as_str(),
            event: event.reason.as_str().to_string(),
            reason: status
                .reason
                .and_then(|r| serde_json::to_value(r).ok())
                .and_then(|v| v.as_str().map(str::to_string)),
            message: event.message.clone(),
            step: status.step_index,
            steps: sluice_core::rollout_plan::stage_count(&rollout.spec),
            canary_weight: status.canary_weight,
            stable_revision: status.stable_revision.clone(),
            canary_revision: status.canary_revision.clone(),
            at,
        }
    }

    /// A Slack incoming-webhook body: `text` (fallback, shown in notifications) and `blocks`.
    pub fn slack(&self) -> Value {
        let who = format!("{}/{}", self.namespace, self.name);
        let text = format!(
            "{} {} {}: {}",
            self.topic.emoji(),
            self.topic.title(),
            who,
            self.message
        );
        let mut context = vec![format!("phase *{}*", self.phase)];
        if let Some(r) = &self.reason {
            context.push(format!("reason {}", slack_escape(r)));
        }
        if self.steps > 0 {
            context.push(format!("step {}/{}", self.step + 1, self.steps));
        }
        context.push(format!("canary {}%", self.canary_weight));
        if let Some(r) = &self.stable_revision {
            context.push(format!("stable `{}`", slack_escape(r)));
        }
        if let Some(r) = &self.canary_revision {
            context.push(format!("canary `{}`", slack_escape(r)));
        }
        if let Some(u) = &self.url {
            context.push(format!("<{}|open in sluice>", u));
        }
        json!({
            "text": slack_escape(&text),
            "blocks": [
                {
                    "type": "section",
                    "text": {
                        "type": "mrkdwn",
                        "text": format!(
                            "{} *{}* `{}`\n{}",
                            self.topic.emoji(),
                            self.topic.title(),
                            slack_escape(&who),
                            slack_escape(&self.message)
                        ),
                    }
                },
                {
                    "type": "context",
                    "elements": [{"type": "mrkdwn", "text": context.join(" · ")}]
                }
            ]
        })
    }

    pub fn json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// The UI page of a rollout (the UI routes by URL fragment: `#/rollouts/<ns>/<name>`).
pub fn ui_link(base: &str, namespace: &str, name: &str) -> String {
    format!(
        "{}/#/rollouts/{namespace}/{name}",
        base.trim_end_matches('/')
    )
}

/// Slack's mrkdwn needs `&`, `<`, `>` escaped; everything else is literal.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Sends notifications to the global sinks and the rollout's own.
#[derive(Debug)]
pub struct Notifier {
    global: Vec<Sink>,
    ui_base_url: Option<String>,
    client: reqwest::Client,
    metrics: Option<Arc<Metrics>>,
}

impl Notifier {
    /// Resolves the global sinks now: a missing secret file fails start-up, loudly.
    pub fn new(config: &NotifyConfig, metrics: Option<Arc<Metrics>>) -> Result<Self, NotifyError> {
        let global = config
            .sinks
            .iter()
            .enumerate()
            .map(|(i, n)| Sink::resolve(n, i))
            .collect::<Result<Vec<_>, _>>()?;
        let client = reqwest::Client::builder()
            .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
            .timeout(SEND_TIMEOUT)
            .build()
            .map_err(|e| NotifyError::Client(root_cause(&e)))?;
        Ok(Notifier {
            global,
            ui_base_url: config.ui_base_url.clone(),
            client,
            metrics,
        })
    }

    /// Notify about `event` if it is a notifying one; returns how many sinks accepted it.
    pub async fn notify(&self, rollout: &Rollout, status: &RolloutStatus, event: &Event) -> usize {
        let Some(topic) = classify(event) else {
            return 0;
        };
        let msg = Message::new(
            topic,
            rollout,
            status,
            event,
            self.ui_base_url.as_deref(),
            Utc::now(),
        );
        let mut sinks = self.global.clone();
        for (i, n) in rollout.spec.notifications.iter().enumerate() {
            match Sink::resolve(n, i) {
                Ok(s) => sinks.push(s),
                Err(e) => {
                    // The error names the env var / file, never the URL.
                    tracing::warn!(error = %e, "spec.notifications[{i}] skipped");
                    self.count(kind_str(n.kind), "config_error");
                }
            }
        }
        let sends = sinks.iter().map(|s| self.send(s, &msg));
        futures::future::join_all(sends)
            .await
            .into_iter()
            .filter(|ok| *ok)
            .count()
    }

    async fn send(&self, sink: &Sink, msg: &Message) -> bool {
        let kind = kind_str(sink.kind);
        let body = match sink.kind {
            NotificationKind::Slack => msg.slack(),
            NotificationKind::Json => msg.json(),
        };
        // One retry when the connection failed (nothing was delivered, so no duplicate).
        let mut result = self.client.post(sink.url.expose()).json(&body).send().await;
        if matches!(&result, Err(e) if e.is_connect()) {
            tokio::time::sleep(Duration::from_millis(200)).await;
            result = self.client.post(sink.url.expose()).json(&body).send().await;
        }
        let (ok, outcome) = match result {
            Ok(r) if r.status().is_success() => (true, "success"),
            Ok(r) => {
                let status = r.status().as_u16();
                tracing::warn!(sink = kind, status, topic = ?msg.topic, "notification refused");
                (false, "http_error")
            }
            Err(e) => {
                let label = if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connect_error"
                } else {
                    "error"
                };
                let error = root_cause(&e);
                tracing::warn!(sink = kind, %error, topic = ?msg.topic, "notification not sent");
                (false, label)
            }
        };
        self.count(kind, outcome);
        ok
    }

    fn count(&self, sink: &str, outcome: &str) {
        if let Some(m) = &self.metrics {
            m.observe_notification(sink, outcome);
        }
    }
}

/// Wraps a mode's recorder: record, update metrics, notify.
pub struct NotifyingRecorder {
    pub inner: Arc<dyn Recorder>,
    pub notifier: Arc<Notifier>,
    pub metrics: Arc<Metrics>,
}

#[async_trait::async_trait]
impl Recorder for NotifyingRecorder {
    async fn event(&self, rollout: &Rollout, status: &RolloutStatus, event: &Event) {
        self.inner.event(rollout, status, event).await;
        self.metrics.observe_event(rollout, event);
        self.metrics.observe_status(rollout, status);
        if event.warning {
            tracing::warn!(reason = %event.reason, message = %event.message, "event");
        } else {
            tracing::info!(reason = %event.reason, message = %event.message, "event");
        }
        self.notifier.notify(rollout, status, event).await;
    }

    async fn analysis(&self, rollout: &Rollout, report: &AnalysisReport) {
        self.inner.analysis(rollout, report).await;
        self.metrics.observe_analysis(rollout, report);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_text_is_escaped_and_links_are_built() {
        assert_eq!(
            slack_escape("a < b && c > d"),
            "a &lt; b &amp;&amp; c &gt; d"
        );
        assert_eq!(
            ui_link("https://ui.example/", "ns", "r"),
            "https://ui.example/#/rollouts/ns/r"
        );
    }
}
