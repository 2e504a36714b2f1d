//! TEMPORARY: what `sluice controller` uses until the analysis (`PrometheusAnalyzer`) and
//! webhook executors land in main. Safe by construction: every metric is Inconclusive (never
//! a pass, so a rollout pauses instead of advancing) and every gate webhook answers "not
//! passed". Replace in `main.rs` with the real executors.

use chrono::{DateTime, Utc};

use crate::engine::GateAnswer;
use crate::exec::{Analyzer, Webhooks};
use crate::spec::{CheckResult, Rollout, RolloutStatus, Verdict, WebhookKind};

const WHY: &str = "this sluice build has no analysis executor wired into the controller";

pub struct Unwired;

#[async_trait::async_trait]
impl Analyzer for Unwired {
    async fn analyze(&self, rollout: &Rollout, now: DateTime<Utc>) -> Vec<CheckResult> {
        rollout
            .spec
            .analysis
            .metrics
            .iter()
            .map(|m| CheckResult {
                metric: m.name.clone(),
                verdict: Verdict::Inconclusive,
                value: None,
                min: m.thresholds.min,
                max: m.thresholds.max,
                reason: WHY.into(),
                at: now,
            })
            .collect()
    }
}

#[async_trait::async_trait]
impl Webhooks for Unwired {
    async fn call(
        &self,
        rollout: &Rollout,
        _status: &RolloutStatus,
        kind: WebhookKind,
    ) -> Option<GateAnswer> {
        let any = rollout.spec.webhooks.iter().any(|w| w.kind == kind);
        (any && kind.is_gate()).then(|| GateAnswer {
            kind,
            passed: false,
            message: "webhook executor not wired into the controller".into(),
        })
    }

    async fn checks(
        &self,
        rollout: &Rollout,
        _status: &RolloutStatus,
        now: DateTime<Utc>,
    ) -> Vec<CheckResult> {
        rollout
            .spec
            .webhooks
            .iter()
            .filter(|w| w.kind == WebhookKind::Rollout)
            .map(|w| CheckResult {
                metric: format!("webhook {}", w.name),
                verdict: Verdict::Inconclusive,
                value: None,
                min: None,
                max: None,
                reason: "webhook executor not wired into the controller".into(),
                at: now,
            })
            .collect()
    }
}
