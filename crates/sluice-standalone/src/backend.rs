//! [`Backend`] of standalone mode: reads from the store, commands go to the rollout's task.

use std::sync::Arc;

use sluice_core::backend::{Backend, BackendError, Change, EventRecord, RolloutView};
use sluice_core::engine::{self, Command};
use sluice_core::spec::CheckResult;

use super::runner::Runner;
use super::store::{RolloutRecord, StoreError};

pub struct StandaloneBackend {
    pub runner: Arc<Runner>,
}

fn unavailable(e: StoreError) -> BackendError {
    BackendError::Unavailable(e.to_string())
}

fn view(key: &str, record: RolloutRecord) -> RolloutView {
    let (namespace, name) = key.split_once('/').unwrap_or(("default", key));
    let stages = sluice_core::rollout_plan::stage_labels(&record.rollout.spec);
    RolloutView {
        namespace: namespace.to_string(),
        name: name.to_string(),
        spec: record.rollout.spec,
        status: record.status,
        traffic: record.applied,
        stages,
    }
}

impl StandaloneBackend {
    async fn record(&self, namespace: &str, name: &str) -> Result<RolloutRecord, BackendError> {
        let key = format!("{namespace}/{name}");
        let k = key.clone();
        self.runner
            .store()
            .run(move |s| s.get(&k))
            .await
            .map_err(unavailable)?
            .filter(|r| !r.retired)
            .ok_or(BackendError::NotFound(key))
    }
}

#[async_trait::async_trait]
impl Backend for StandaloneBackend {
    async fn list(&self) -> Result<Vec<RolloutView>, BackendError> {
        let records = self
            .runner
            .store()
            .run(|s| s.list())
            .await
            .map_err(unavailable)?;
        Ok(records
            .into_iter()
            .filter(|(_, r)| !r.retired)
            .map(|(k, r)| view(&k, r))
            .collect())
    }

    async fn get(&self, namespace: &str, name: &str) -> Result<RolloutView, BackendError> {
        let record = self.record(namespace, name).await?;
        Ok(view(&format!("{namespace}/{name}"), record))
    }

    async fn analysis(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Vec<CheckResult>, BackendError> {
        self.record(namespace, name).await?;
        let key = format!("{namespace}/{name}");
        self.runner
            .store()
            .run(move |s| s.checks(&key))
            .await
            .map_err(unavailable)
    }

    async fn events(&self, namespace: &str, name: &str) -> Result<Vec<EventRecord>, BackendError> {
        self.record(namespace, name).await?;
        let key = format!("{namespace}/{name}");
        self.runner
            .store()
            .run(move |s| s.events(&key))
            .await
            .map_err(unavailable)
    }

    async fn command(
        &self,
        namespace: &str,
        name: &str,
        command: Command,
    ) -> Result<(), BackendError> {
        let record = self.record(namespace, name).await?;
        engine::command_allowed(&record.status, command)?;
        let key = format!("{namespace}/{name}");
        if self.runner.command(&key, command) {
            Ok(())
        } else {
            Err(BackendError::NotFound(key))
        }
    }

    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.runner.changes()
    }

    async fn problems(&self) -> Result<Vec<sluice_core::backend::FileProblem>, BackendError> {
        Ok(self.runner.problems())
    }
}
