//! `spec.webhooks` over HTTP: the [`Webhooks`] executor both modes use.
//!
//! Every call POSTs the same JSON [`Payload`] (rollout identity, phase, step, weights,
//! revisions, the webhook's `metadata`) to each webhook of the requested kind, concurrently,
//! each with its own timeout (`timeout`, default 10s).
//!
//! - **Gates** (`pre-rollout`, `confirm-*`): the answer passes only when *every* webhook of the
//!   kind answered 2xx; the message lists the ones that did not. A gate is never retried inside
//!   one call: the engine asks again on the next tick, so a "not yet" answer costs one request
//!   per tick.
//! - **`rollout`**: one [`CheckResult`] per webhook with every analysis; anything but 2xx
//!   (including timeouts and connection errors) is a `Fail` with the reason.
//! - **Notifications** (`post-rollout`, `rollback`, `event`): fired once per transition; a
//!   *connection* error (the request never left) is retried with backoff, since a duplicate is
//!   then impossible. Non-2xx answers are logged and counted, never retried.
//!
//! URLs are spec fields and are not logged; bearer tokens come from env vars or files
//! (`tokenFromEnv` / `tokenFromFile`) as [`Secret`]s. Errors are logged without their URL.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::secret::Secret;
use sluice_core::engine::GateAnswer;
use sluice_core::exec::Webhooks;
use sluice_core::spec::{CheckResult, Rollout, RolloutStatus, Verdict, Webhook, WebhookKind};
use sluice_telemetry::Metrics;

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The JSON body of every webhook call.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub phase: &'static str,
    /// Index (0-based) of the current step, and the number of steps.
    pub step: u32,
    pub steps: usize,
    pub canary_weight: u32,
    /// Any request (routed or mirrored) goes to the canary; weight 0 cannot tell for
    /// header-matched and mirror-only steps.
    pub canary_traffic: bool,
    pub stable_revision: Option<&'a str>,
    pub canary_revision: Option<&'a str>,
    /// The webhook type, e.g. `confirm-promotion`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub metadata: &'a BTreeMap<String, String>,
    /// Machine-readable reason of the current phase (e.g. `AnalysisFailed`), if any.
    pub reason: Option<String>,
    pub message: Option<&'a str>,
}

impl<'a> Payload<'a> {
    pub fn new(rollout: &'a Rollout, status: &'a RolloutStatus, hook: &'a Webhook) -> Payload<'a> {
        Payload {
            name: rollout.metadata.name.as_deref().unwrap_or(""),
            namespace: rollout.metadata.namespace.as_deref().unwrap_or("default"),
            phase: status.phase.as_str(),
            step: status.step_index,
            steps: sluice_core::rollout_plan::stage_count(&rollout.spec),
            canary_weight: status.canary_weight,
            canary_traffic: status.canary_traffic,
            stable_revision: status.stable_revision.as_deref(),
            canary_revision: status.canary_revision.as_deref(),
            kind: hook.kind.as_str(),
            metadata: &hook.metadata,
            // The serialized form (camelCase) is what receivers see in status too.
            reason: status
                .reason
                .and_then(|r| serde_json::to_value(r).ok())
                .and_then(|v| v.as_str().map(str::to_string)),
            message: status.message.as_deref(),
        }
    }
}

/// Retries of notification-type webhooks after connection errors.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    /// Total attempts, including the first.
    pub attempts: u32,
    /// Wait before the second attempt; doubles after each.
    pub backoff: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 3,
            backoff: Duration::from_millis(200),
        }
    }
}

/// What happened to one call of one webhook.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Success(u16),
    /// Answered, but not 2xx: status and the start of the body.
    Http(u16, String),
    Timeout(Duration),
    /// Could not connect (the request was never sent).
    Connect(String),
    /// Anything else, including a token that could not be read.
    Error(String),
}

impl Outcome {
    pub fn ok(&self) -> bool {
        matches!(self, Outcome::Success(_))
    }
    /// The `outcome` label of `sluice_webhook_calls_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Success(_) => "success",
            Outcome::Http(..) => "http_error",
            Outcome::Timeout(_) => "timeout",
            Outcome::Connect(_) => "connect_error",
            Outcome::Error(_) => "error",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Success(code) => write!(f, "HTTP {code}"),
            Outcome::Http(code, body) if body.is_empty() => write!(f, "HTTP {code}"),
            Outcome::Http(code, body) => write!(f, "HTTP {code}: {body}"),
            Outcome::Timeout(d) => {
                write!(f, "timed out after {}", sluice_core::duration::format(*d))
            }
            Outcome::Connect(e) => write!(f, "connection failed: {e}"),
            Outcome::Error(e) => f.write_str(e),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("building the webhook HTTP client: {0}")]
pub struct ClientError(#[source] reqwest::Error);

/// [`Webhooks`] over HTTP (reqwest, rustls).
#[derive(Clone)]
pub struct HttpWebhooks {
    client: reqwest::Client,
    metrics: Option<Arc<Metrics>>,
    retry: Retry,
}

impl HttpWebhooks {
    pub fn new(metrics: Option<Arc<Metrics>>) -> Result<Self, ClientError> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
            // A webhook that redirects elsewhere should say so, not be followed silently.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(ClientError)?;
        Ok(HttpWebhooks {
            client,
            metrics,
            retry: Retry::default(),
        })
    }

    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// Call every webhook of `kind`, concurrently; `(name, outcome)` in spec order.
    pub async fn call_all(
        &self,
        rollout: &Rollout,
        status: &RolloutStatus,
        kind: WebhookKind,
    ) -> Vec<(String, Outcome)> {
        let hooks = rollout.spec.webhooks.iter().filter(|w| w.kind == kind);
        let calls = hooks.map(|hook| async move {
            let outcome = self.call_one(rollout, status, hook).await;
            (hook.name.clone(), outcome)
        });
        futures::future::join_all(calls).await
    }

    async fn call_one(&self, rollout: &Rollout, status: &RolloutStatus, hook: &Webhook) -> Outcome {
        let start = Instant::now();
        let retry_connect = matches!(
            hook.kind,
            WebhookKind::PostRollout | WebhookKind::Rollback | WebhookKind::Event
        );
        let attempts = if retry_connect {
            self.retry.attempts.max(1)
        } else {
            1
        };
        let mut backoff = self.retry.backoff;
        let mut outcome = Outcome::Error("not called".into());
        for attempt in 1..=attempts {
            outcome = self.send(rollout, status, hook).await;
            if !matches!(outcome, Outcome::Connect(_)) || attempt == attempts {
                break;
            }
            tracing::debug!(
                webhook = %hook.name,
                r#type = hook.kind.as_str(),
                attempt,
                %outcome,
                "webhook unreachable, retrying"
            );
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
        let elapsed = start.elapsed();
        if let Some(m) = &self.metrics {
            m.observe_webhook(hook.kind, outcome.label(), elapsed.as_secs_f64());
        }
        let ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        let kind = hook.kind.as_str();
        if outcome.ok() {
            tracing::debug!(
                webhook = %hook.name,
                r#type = kind,
                %outcome,
                elapsed_ms = ms,
                "webhook called"
            );
        } else {
            tracing::warn!(
                webhook = %hook.name,
                r#type = kind,
                %outcome,
                elapsed_ms = ms,
                "webhook failed"
            );
        }
        outcome
    }

    async fn send(&self, rollout: &Rollout, status: &RolloutStatus, hook: &Webhook) -> Outcome {
        let timeout = hook
            .timeout
            .as_deref()
            .and_then(|t| sluice_core::duration::parse(t).ok())
            .unwrap_or(DEFAULT_TIMEOUT);
        let mut req = self
            .client
            .post(&hook.url)
            .timeout(timeout)
            .json(&Payload::new(rollout, status, hook));
        match token(hook) {
            Ok(Some(t)) => req = req.bearer_auth(t.expose()),
            Ok(None) => {}
            Err(e) => return Outcome::Error(e),
        }
        match req.send().await {
            Ok(resp) => {
                let code = resp.status();
                if code.is_success() {
                    Outcome::Success(code.as_u16())
                } else {
                    let body = resp.text().await.unwrap_or_default();
                    Outcome::Http(code.as_u16(), snippet(&body))
                }
            }
            Err(e) if e.is_timeout() => Outcome::Timeout(timeout),
            Err(e) if e.is_connect() => Outcome::Connect(root_cause(&e)),
            Err(e) => Outcome::Error(format!("request failed: {}", root_cause(&e))),
        }
    }
}

/// The bearer token of a webhook, if it declares one.
fn token(hook: &Webhook) -> Result<Option<Secret>, String> {
    let read = match (&hook.token_from_env, &hook.token_from_file) {
        (Some(var), _) => Secret::from_env(var),
        (None, Some(path)) => Secret::from_file(path),
        (None, None) => return Ok(None),
    };
    read.map(Some).map_err(|e| format!("token: {e}"))
}

/// The innermost error's text: says *why* ("Connection refused") without the request URL,
/// which reqwest puts in its own Display and which may hold a secret.
pub(crate) fn root_cause(e: &reqwest::Error) -> String {
    let mut deepest = None;
    let mut cur: &dyn std::error::Error = e;
    while let Some(next) = cur.source() {
        deepest = Some(next);
        cur = next;
    }
    match deepest {
        Some(d) => d.to_string(),
        None if e.is_builder() => "invalid request (is the URL valid?)".into(),
        None if e.is_redirect() => "redirects are not followed".into(),
        None => "request error".into(),
    }
}

fn snippet(body: &str) -> String {
    const MAX: usize = 200;
    let body = body.trim();
    match body.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &body[..i]),
        None => body.to_string(),
    }
}

/// `"name: outcome; name: outcome"` of the calls that did not succeed.
fn failures(results: &[(String, Outcome)]) -> String {
    results
        .iter()
        .filter(|(_, o)| !o.ok())
        .map(|(n, o)| format!("{n}: {o}"))
        .collect::<Vec<_>>()
        .join("; ")
}

#[async_trait::async_trait]
impl Webhooks for HttpWebhooks {
    async fn call(
        &self,
        rollout: &Rollout,
        status: &RolloutStatus,
        kind: WebhookKind,
    ) -> Option<GateAnswer> {
        let results = self.call_all(rollout, status, kind).await;
        if results.is_empty() {
            return None;
        }
        let passed = results.iter().all(|(_, o)| o.ok());
        let message = if passed {
            format!(
                "{} {} webhook(s) answered 2xx",
                results.len(),
                kind.as_str()
            )
        } else {
            failures(&results)
        };
        Some(GateAnswer {
            kind,
            passed,
            message,
        })
    }

    async fn checks(
        &self,
        rollout: &Rollout,
        status: &RolloutStatus,
        now: DateTime<Utc>,
    ) -> Vec<CheckResult> {
        self.call_all(rollout, status, WebhookKind::Rollout)
            .await
            .into_iter()
            .map(|(name, outcome)| CheckResult {
                metric: format!("webhook:{name}"),
                verdict: if outcome.ok() {
                    Verdict::Pass
                } else {
                    Verdict::Fail
                },
                value: None,
                min: None,
                max: None,
                reason: format!("rollout webhook {name}: {outcome}"),
                at: now,
                more_requests: None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_say_what_happened() {
        assert_eq!(Outcome::Success(204).to_string(), "HTTP 204");
        assert_eq!(Outcome::Http(503, String::new()).to_string(), "HTTP 503");
        assert_eq!(
            Outcome::Http(409, "frozen".into()).to_string(),
            "HTTP 409: frozen"
        );
        assert_eq!(
            Outcome::Timeout(Duration::from_secs(10)).to_string(),
            "timed out after 10s"
        );
        assert!(Outcome::Success(200).ok() && !Outcome::Http(302, String::new()).ok());
        let long = "é".repeat(500);
        let s = snippet(&long);
        assert_eq!(s.chars().count(), 201);
        assert!(s.ends_with('…'));
    }

    #[test]
    fn failures_lists_only_the_failed_hooks() {
        let r = vec![
            ("a".to_string(), Outcome::Success(200)),
            ("b".to_string(), Outcome::Http(500, "boom".into())),
            (
                "c".to_string(),
                Outcome::Connect("Connection refused".into()),
            ),
        ];
        assert_eq!(
            failures(&r),
            "b: HTTP 500: boom; c: connection failed: Connection refused"
        );
    }
}
