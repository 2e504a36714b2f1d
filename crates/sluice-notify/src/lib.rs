//! What sluice says to the outside world about a rollout, above the metrics leaf
//! (`sluice-telemetry`):
//!
//! - [`notify`]: Slack / JSON notifications for rollout events ([`notify::NotifyingRecorder`]
//!   wraps each mode's recorder and also counts events and verdicts in the metrics).
//! - [`webhooks`]: the HTTP executor for gate and rollout webhooks.
//! - [`secret`]: the type that keeps URLs and tokens out of logs, the UI and `Debug` output.
//! - [`Telemetry`]: metrics + notifier, built once in `main`, with the decorators both modes
//!   put around their executors.

pub mod notify;
pub mod secret;
pub mod webhooks;

use std::sync::Arc;

use sluice_core::exec::Executors;
use sluice_telemetry::{MeteredAnalyzer, Metrics};

/// What a mode needs from this area, built once in `main`: the metrics registry and the
/// notifier, plus [`Telemetry::wrap`] to put the decorators around a mode's executors.
#[derive(Clone)]
pub struct Telemetry {
    pub metrics: Arc<Metrics>,
    pub notifier: Arc<crate::notify::Notifier>,
}

impl Telemetry {
    pub fn new(config: &crate::notify::NotifyConfig) -> Result<Self, crate::notify::NotifyError> {
        let metrics = Arc::new(Metrics::new());
        let notifier = Arc::new(crate::notify::Notifier::new(
            config,
            Some(Arc::clone(&metrics)),
        )?);
        Ok(Telemetry { metrics, notifier })
    }

    /// The HTTP webhook executor, counting its calls in these metrics.
    pub fn webhooks(&self) -> Result<crate::webhooks::HttpWebhooks, crate::webhooks::ClientError> {
        crate::webhooks::HttpWebhooks::new(Some(Arc::clone(&self.metrics)))
    }

    /// A mode's executors with analysis timing, event/verdict metrics and notifications.
    pub fn wrap(&self, ex: Executors) -> Executors {
        Executors {
            analyzer: Arc::new(MeteredAnalyzer {
                inner: ex.analyzer,
                metrics: Arc::clone(&self.metrics),
            }),
            recorder: Arc::new(crate::notify::NotifyingRecorder {
                inner: ex.recorder,
                notifier: Arc::clone(&self.notifier),
                metrics: Arc::clone(&self.metrics),
            }),
            ..ex
        }
    }
}
