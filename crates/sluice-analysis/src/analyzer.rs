//! [`PrometheusAnalyzer`]: the [`sluice_core::exec::Analyzer`] both modes use.
//!
//! Which Prometheus each rollout's queries go to is an [`AddressPolicy`]: normally the rollout's
//! own `spec.analysis.provider.prometheus.address`, with a default for rollouts that name none
//! (`sluice standalone --prometheus`, the demo's own Prometheus); an override for every rollout
//! only where a user asks for it (`sluice analyze --prometheus URL`, to debug queries against
//! another server). Auth, headers and timeout still come from the spec. One HTTP client
//! (connection pool) serves all rollouts.

use chrono::{DateTime, Utc};

use super::prometheus::{PrometheusConfig, PrometheusSource, default_client};
use super::run::{MetricRun, RunOptions, all_inconclusive, run_all};
use super::source::SourceError;
use sluice_core::spec::{CheckResult, Rollout};

/// Where a rollout's queries go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddressPolicy {
    /// The rollout's own `provider.prometheus.address`; for a rollout without a provider, this
    /// default (none: its checks are Inconclusive with the reason).
    SpecOrDefault(Option<String>),
    /// This address for every rollout, whatever its spec says.
    Override(String),
}

pub struct PrometheusAnalyzer {
    client: reqwest::Client,
    addresses: AddressPolicy,
    options: RunOptions,
}

impl PrometheusAnalyzer {
    pub fn new(addresses: AddressPolicy) -> Result<Self, SourceError> {
        Ok(PrometheusAnalyzer {
            client: default_client()?,
            addresses,
            options: RunOptions::default(),
        })
    }

    /// E.g. the scrape interval of the demo's own Prometheus (1s).
    pub fn with_options(mut self, options: RunOptions) -> Self {
        self.options = options;
        self
    }

    /// The source for `rollout`, or why there is none.
    pub fn source_for(&self, rollout: &Rollout) -> Result<PrometheusSource, String> {
        let provider = rollout
            .spec
            .analysis
            .provider
            .as_ref()
            .map(|p| &p.prometheus);
        let cfg = match (provider, &self.addresses) {
            (Some(p), AddressPolicy::Override(address)) => {
                PrometheusConfig::from_provider(p, Some(address))
            }
            (Some(p), AddressPolicy::SpecOrDefault(_)) => PrometheusConfig::from_provider(p, None),
            (None, AddressPolicy::Override(address))
            | (None, AddressPolicy::SpecOrDefault(Some(address))) => {
                Ok(PrometheusConfig::new(address.clone()))
            }
            (None, AddressPolicy::SpecOrDefault(None)) => {
                return Err(
                    "no Prometheus: set spec.analysis.provider.prometheus.address".to_string(),
                );
            }
        };
        cfg.and_then(|c| PrometheusSource::with_client(self.client.clone(), c))
            .map_err(|e| e.to_string())
    }

    /// Every metric of `rollout` with its rendered queries (what `sluice analyze` prints).
    pub async fn run(&self, rollout: &Rollout, now: DateTime<Utc>) -> Vec<MetricRun> {
        if rollout.spec.analysis.metrics.is_empty() {
            return Vec::new();
        }
        match self.source_for(rollout) {
            Ok(source) => run_all(&source, rollout, now, self.options).await,
            Err(reason) => all_inconclusive(rollout, now, &reason),
        }
    }
}

#[async_trait::async_trait]
impl sluice_core::exec::Analyzer for PrometheusAnalyzer {
    async fn analyze(&self, rollout: &Rollout, now: DateTime<Utc>) -> Vec<CheckResult> {
        let runs = self.run(rollout, now).await;
        for r in &runs {
            tracing::debug!(
                rollout = %rollout.key(),
                metric = %r.check.metric,
                verdict = r.check.verdict.as_str(),
                reason = %r.check.reason,
                "analysis check"
            );
        }
        runs.into_iter().map(|r| r.check).collect()
    }
}
