//! [`sluice_core::backend::Backend`] over the API server, so the web API and UI run in controller
//! mode too. Any replica can serve it (reads and command annotations need no leadership);
//! history recorded by this replica comes from [`Live`], otherwise from Kubernetes Events and
//! `status.lastVerdicts`.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Event as CoreEvent;
use kube::Client;
use kube::api::{Api, ListParams, Patch};

use super::cache::Caches;
use super::recorder::Live;
use super::{commands, is_not_found};
use sluice_core::backend::{Backend, BackendError, Change, EventRecord, RolloutView};
use sluice_core::engine::{self, Command};
use sluice_core::spec::{CheckResult, Rollout};

pub struct KubeBackend {
    client: Client,
    /// Empty: all namespaces.
    namespaces: Vec<String>,
    live: Arc<Live>,
    /// The controller's Rollout watch cache: lists and gets are served from it once it synced
    /// (no request per page view); `None`, or not synced yet: from the API server.
    caches: Option<Arc<Caches>>,
}

fn unavailable(e: kube::Error) -> BackendError {
    BackendError::Unavailable(e.to_string())
}

/// What the API, UI and CLI show of a Rollout read from the cluster; the traffic split is the
/// status' `appliedTraffic`.
pub fn rollout_view(r: Rollout) -> RolloutView {
    // From the status, which every replica and the CLI read alike (not a replica's memory).
    let traffic = r.status.as_ref().and_then(|s| s.applied_traffic.clone());
    RolloutView {
        namespace: r.metadata.namespace.clone().unwrap_or_default(),
        name: r.metadata.name.clone().unwrap_or_default(),
        stages: sluice_core::rollout_plan::stage_labels(&r.spec),
        traffic,
        status: r.status.clone().unwrap_or_default(),
        // Shown by the API, the UI and `sluice status`: never with credentials in URLs.
        spec: r.spec.redacted(),
    }
}

impl KubeBackend {
    pub fn new(client: Client, namespaces: Vec<String>, live: Arc<Live>) -> Self {
        KubeBackend {
            client,
            namespaces,
            live,
            caches: None,
        }
    }

    /// Serves Rollouts from the controller's watch cache (see [`crate::cache`]).
    pub fn with_caches(mut self, caches: Arc<Caches>) -> Self {
        self.caches = Some(caches);
        self
    }

    fn view(&self, r: Rollout) -> RolloutView {
        rollout_view(r)
    }

    async fn fetch(&self, namespace: &str, name: &str) -> Result<Rollout, BackendError> {
        if !self.namespaces.is_empty() && !self.namespaces.iter().any(|n| n == namespace) {
            return Err(BackendError::NotFound(format!("{namespace}/{name}")));
        }
        if let Some(Ok(cached)) = self
            .caches
            .as_ref()
            .map(|c| c.rollouts.get(namespace, name))
        {
            return cached.ok_or_else(|| BackendError::NotFound(format!("{namespace}/{name}")));
        }
        let api: Api<Rollout> = Api::namespaced(self.client.clone(), namespace);
        match api.get(name).await {
            Ok(r) => Ok(r),
            Err(e) if is_not_found(&e) => {
                Err(BackendError::NotFound(format!("{namespace}/{name}")))
            }
            Err(e) => Err(unavailable(e)),
        }
    }
}

#[async_trait::async_trait]
impl Backend for KubeBackend {
    async fn list(&self) -> Result<Vec<RolloutView>, BackendError> {
        if let Some(Ok(cached)) = self.caches.as_ref().map(|c| c.rollouts.list()) {
            let mut out: Vec<RolloutView> = cached
                .into_iter()
                .map(|r| self.view(r.as_ref().clone()))
                .collect();
            out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
            return Ok(out);
        }
        let mut out = Vec::new();
        let apis: Vec<Api<Rollout>> = if self.namespaces.is_empty() {
            vec![Api::all(self.client.clone())]
        } else {
            self.namespaces
                .iter()
                .map(|n| Api::namespaced(self.client.clone(), n))
                .collect()
        };
        for api in apis {
            let list = api
                .list(&ListParams::default())
                .await
                .map_err(unavailable)?;
            out.extend(list.items.into_iter().map(|r| self.view(r)));
        }
        out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        Ok(out)
    }

    async fn get(&self, namespace: &str, name: &str) -> Result<RolloutView, BackendError> {
        Ok(self.view(self.fetch(namespace, name).await?))
    }

    async fn analysis(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Vec<CheckResult>, BackendError> {
        let r = self.fetch(namespace, name).await?;
        let kept = self.live.analysis(&r.key());
        if !kept.is_empty() {
            return Ok(kept);
        }
        Ok(r.status.map(|s| s.last_verdicts).unwrap_or_default())
    }

    async fn events(&self, namespace: &str, name: &str) -> Result<Vec<EventRecord>, BackendError> {
        let r = self.fetch(namespace, name).await?;
        let kept = self.live.events(&r.key());
        if !kept.is_empty() {
            return Ok(kept);
        }
        // Recorded by another replica (or before a restart): the Kubernetes Events. They do
        // not carry phase/step, so those are today's values.
        let status = r.status.clone().unwrap_or_default();
        let api: Api<CoreEvent> = Api::namespaced(self.client.clone(), namespace);
        let lp = ListParams::default().fields(&format!(
            "involvedObject.kind=Rollout,involvedObject.name={name}"
        ));
        let list = api.list(&lp).await.map_err(unavailable)?;
        let mut out: Vec<EventRecord> = list
            .items
            .into_iter()
            .filter_map(|e| {
                let at = e
                    .event_time
                    .as_ref()
                    .map(|t| t.0)
                    .or(e.last_timestamp.as_ref().map(|t| t.0))
                    .or(e.first_timestamp.as_ref().map(|t| t.0))?;
                let at = chrono::DateTime::from_timestamp(
                    at.as_second(),
                    at.subsec_nanosecond().max(0) as u32,
                )?;
                Some(EventRecord {
                    at,
                    reason: e.reason.unwrap_or_default(),
                    message: e.message.unwrap_or_default(),
                    warning: e.type_.as_deref() == Some("Warning"),
                    phase: status.phase,
                    step_index: status.step_index,
                    canary_weight: status.canary_weight,
                })
            })
            .collect();
        out.sort_by_key(|e| e.at);
        Ok(out)
    }

    async fn command(
        &self,
        namespace: &str,
        name: &str,
        command: Command,
    ) -> Result<(), BackendError> {
        let r = self.fetch(namespace, name).await?;
        engine::command_allowed(&r.status.unwrap_or_default(), command)?;
        let value = commands::annotation_value(command, chrono::Utc::now());
        let patch = commands::request_patch(&value, None);
        let api: Api<Rollout> = Api::namespaced(self.client.clone(), namespace);
        api.patch(name, &super::names::patch_params(), &Patch::Merge(&patch))
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.live.subscribe()
    }
}
