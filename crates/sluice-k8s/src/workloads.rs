//! [`sluice_core::exec::Workloads`] over the API: the target Deployment is the canary, `<name>-primary`
//! is stable. Scaling patches only `spec.replicas` of the target (a merge patch, so the user's
//! own `kubectl apply` keeps owning everything else); the primary is server-side applied.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PodTemplateSpec, Service};
use std::sync::Arc;

use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::cache::Caches;
use super::objects::{self, deployment_ready};
use super::{Error, Result, is_not_found, names, retry_on_conflict};
use sluice_core::engine::Observations;
use sluice_core::exec::{BoxError, Workloads};
use sluice_core::spec::{Rollout, RolloutStatus};

pub struct KubeWorkloads {
    client: Client,
    /// The controller's watch caches: reads come from there once synced (`None`: every read
    /// is a GET, as in the reconcile tests).
    caches: Option<Arc<Caches>>,
}

fn apply_params() -> PatchParams {
    PatchParams::apply(names::FIELD_MANAGER).force()
}

impl KubeWorkloads {
    pub fn new(client: Client) -> Self {
        KubeWorkloads {
            client,
            caches: None,
        }
    }

    /// Reads Deployments and Services from `caches` (see [`crate::cache`]).
    pub fn with_caches(client: Client, caches: Arc<Caches>) -> Self {
        KubeWorkloads {
            client,
            caches: Some(caches),
        }
    }

    /// A Deployment from the cache, or from the API server while the cache is not synced.
    async fn read_deployment(&self, rollout: &Rollout, name: &str) -> Result<Option<Deployment>> {
        let ns = objects::namespace(rollout)?;
        if let Some(Ok(cached)) = self.caches.as_ref().map(|c| c.deployments.get(ns, name)) {
            return Ok(cached);
        }
        Ok(self.deployments(rollout)?.get_opt(name).await?)
    }

    /// A Service from the cache, or from the API server while the cache is not synced.
    async fn read_service(
        &self,
        api: &Api<Service>,
        ns: &str,
        name: &str,
    ) -> Result<Option<Service>> {
        if let Some(Ok(cached)) = self.caches.as_ref().map(|c| c.services.get(ns, name)) {
            return Ok(cached);
        }
        Ok(api.get_opt(name).await?)
    }

    fn deployments(&self, rollout: &Rollout) -> Result<Api<Deployment>> {
        Ok(Api::namespaced(
            self.client.clone(),
            objects::namespace(rollout)?,
        ))
    }

    pub async fn target(&self, rollout: &Rollout) -> Result<Deployment> {
        let name = objects::target_name(rollout)?;
        self.read_deployment(rollout, name).await?.ok_or_else(|| {
            Error::NotFound(format!(
                "target Deployment {}/{name} (spec.targetRef) not found",
                objects::namespace(rollout).unwrap_or_default()
            ))
        })
    }

    pub async fn primary(&self, rollout: &Rollout) -> Result<Option<Deployment>> {
        let name = names::primary(objects::name(rollout)?);
        self.read_deployment(rollout, &name).await
    }

    async fn apply_primary(
        &self,
        rollout: &Rollout,
        target: &Deployment,
        template: &PodTemplateSpec,
        replicas: i32,
        previous: Option<&PodTemplateSpec>,
    ) -> Result<()> {
        let d = objects::primary_deployment(rollout, target, template, replicas, previous)?;
        let name = d.metadata.name.clone().unwrap_or_default();
        let api = self.deployments(rollout)?;
        let (params, patch) = (apply_params(), Patch::Apply(&d));
        retry_on_conflict("apply primary", || api.patch(&name, &params, &patch)).await?;
        Ok(())
    }

    /// Objects that must exist before the engine decides anything: the primary (a copy of
    /// the target on first sight: whatever runs when sluice arrives is stable), the
    /// `-primary`/`-canary` Services, and `<name>` when nobody else made it.
    pub async fn ensure(&self, rollout: &Rollout) -> Result<()> {
        let target = self.target(rollout).await?;
        if self.primary(rollout).await?.is_none() {
            let replicas = objects::replicas(&target).max(1);
            self.apply_primary(
                rollout,
                &target,
                &objects::template(&target),
                replicas,
                None,
            )
            .await?;
        }
        let ns = objects::namespace(rollout)?;
        let services: Api<Service> = Api::namespaced(self.client.clone(), ns);
        for svc in objects::services(rollout, &target)? {
            let name = svc.metadata.name.clone().unwrap_or_default();
            // Read first: an unchanged Service is not applied again (no write per reconcile).
            if let Some(existing) = self.read_service(&services, ns, &name).await?
                && names::unchanged(&existing, &svc)
            {
                continue;
            }
            services
                .patch(&name, &apply_params(), &Patch::Apply(&svc))
                .await?;
        }
        let apex = objects::apex_service(rollout, &target)?;
        let apex_name = apex.metadata.name.clone().unwrap_or_default();
        if self
            .read_service(&services, ns, &apex_name)
            .await?
            .is_none()
        {
            match services.create(&super::names::post_params(), &apex).await {
                Ok(_) => {}
                // Someone created it between our read and our create: theirs wins.
                Err(kube::Error::Api(s)) if s.is_already_exists() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    async fn set_target_replicas(&self, rollout: &Rollout, replicas: i32) -> Result<()> {
        let name = objects::target_name(rollout)?;
        let api = self.deployments(rollout)?;
        let body = json!({"spec": {"replicas": replicas}});
        let (params, patch) = (super::names::patch_params(), Patch::Merge(&body));
        retry_on_conflict("scale target", || api.patch(name, &params, &patch)).await?;
        Ok(())
    }

    /// After a rollout ended (or on first sight), the target's pods are not needed: stable
    /// runs on the primary. Scales the target to zero once the primary runs the stable revision
    /// and is Ready. Returns whether it scaled.
    pub async fn settle(&self, rollout: &Rollout, status: &RolloutStatus) -> Result<bool> {
        let Some(stable) = status.stable_revision.as_deref() else {
            return Ok(false);
        };
        if !status.phase.is_terminal() {
            return Ok(false);
        }
        let Some(primary) = self.primary(rollout).await? else {
            return Ok(false);
        };
        if objects::primary_revision(&primary).as_deref() != Some(stable)
            || !deployment_ready(&primary)
        {
            return Ok(false);
        }
        let target = self.target(rollout).await?;
        if objects::replicas(&target) == 0 {
            return Ok(false);
        }
        self.set_target_replicas(rollout, 0).await?;
        Ok(true)
    }

    /// For the finalizer: the target running what the primary runs (the stable, promoted
    /// template), at the primary's scale. Returns whether it is Ready.
    ///
    /// Traffic leaves the primary for the target's pods next, so a target that holds a version
    /// which never passed its steps (a deletion mid-rollout) gets the stable template back
    /// first (a JSON patch that replaces `spec.template` exactly, guarded by the template it
    /// replaces); until that rollout is Ready, traffic stays on the primary.
    pub async fn restore_target(&self, rollout: &Rollout) -> Result<bool> {
        let target = match self.target(rollout).await {
            Ok(t) => t,
            // The user deleted their Deployment: nothing to give back.
            Err(Error::NotFound(_)) => return Ok(true),
            Err(e) => return Err(e),
        };
        let primary = self.primary(rollout).await?;
        if let Some(p) = &primary
            && let (Some(stable), Some(stable_revision)) =
                (objects::source_template(p), objects::primary_revision(p))
            && objects::target_revision(&target) != stable_revision
        {
            self.set_target_template(rollout, &target, &stable).await?;
            return Ok(false);
        }
        let want = match &primary {
            Some(p) => objects::replicas(p).max(1),
            None => objects::replicas(&target).max(1),
        };
        if objects::replicas(&target) < want {
            self.set_target_replicas(rollout, want).await?;
            return Ok(false);
        }
        Ok(deployment_ready(&target))
    }

    async fn set_target_template(
        &self,
        rollout: &Rollout,
        target: &Deployment,
        template: &k8s_openapi::api::core::v1::PodTemplateSpec,
    ) -> Result<()> {
        let name = objects::target_name(rollout)?;
        let api = self.deployments(rollout)?;
        let resource_version = target.metadata.resource_version.clone().unwrap_or_default();
        let stable = serde_json::to_value(template)
            .map_err(|e| Error::Invalid(format!("stable template: {e}")))?;
        // `test` first: if the Deployment changed since it was read, the patch fails (422) and
        // the next reconcile looks again instead of overwriting an edit it has not seen.
        let ops: json_patch::Patch = serde_json::from_value(json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": resource_version},
            {"op": "replace", "path": "/spec/template", "value": stable},
        ]))
        .map_err(|e| Error::Invalid(format!("template patch: {e}")))?;
        api.patch(name, &super::names::patch_params(), &Patch::<()>::Json(ops))
            .await?;
        tracing::info!(rollout = %rollout.key(), "deleting: target restored to the stable template");
        Ok(())
    }

    /// For the finalizer: point `<name>` (when sluice created it) at the target's pods, then
    /// delete the primary and the two Services.
    pub async fn remove(&self, rollout: &Rollout) -> Result<()> {
        let name = objects::name(rollout)?;
        let ns = objects::namespace(rollout)?;
        let services: Api<Service> = Api::namespaced(self.client.clone(), ns);
        if let Some(apex) = services.get_opt(name).await? {
            let ours = apex
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(names::CREATED_BY_ANNOTATION))
                .is_some_and(|uid| Some(uid) == rollout.metadata.uid.as_ref());
            if ours && let Ok(target) = self.target(rollout).await {
                let patch = json!({"spec": {"selector": objects::target_selector(&target)?}});
                services
                    .patch(name, &super::names::patch_params(), &Patch::Merge(&patch))
                    .await?;
            }
        }
        for svc in [names::primary(name), names::canary(name)] {
            ignore_not_found(services.delete(&svc, &Default::default()).await)?;
        }
        ignore_not_found(
            self.deployments(rollout)?
                .delete(&names::primary(name), &Default::default())
                .await,
        )?;
        Ok(())
    }
}

pub(crate) fn ignore_not_found<T>(r: Result<T, kube::Error>) -> Result<()> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn boxed(e: Error) -> BoxError {
    Box::new(e)
}

#[async_trait::async_trait]
impl Workloads for KubeWorkloads {
    async fn observe(
        &self,
        rollout: &Rollout,
        _status: &RolloutStatus,
    ) -> Result<Observations, BoxError> {
        let target = self.target(rollout).await.map_err(boxed)?;
        let primary = self.primary(rollout).await.map_err(boxed)?;
        Ok(Observations {
            revision: Some(objects::target_revision(&target)),
            stable_running: primary.as_ref().and_then(objects::primary_revision),
            stable_ready: primary.as_ref().is_some_and(deployment_ready),
            canary_ready: deployment_ready(&target),
            ..Default::default()
        })
    }

    async fn scale_up_canary(&self, rollout: &Rollout) -> Result<(), BoxError> {
        let target = self.target(rollout).await.map_err(boxed)?;
        if objects::replicas(&target) > 0 {
            return Ok(());
        }
        let want = match self.primary(rollout).await.map_err(boxed)? {
            Some(p) => objects::replicas(&p).max(1),
            None => 1,
        };
        self.set_target_replicas(rollout, want).await.map_err(boxed)
    }

    async fn scale_down_canary(&self, rollout: &Rollout) -> Result<(), BoxError> {
        self.set_target_replicas(rollout, 0).await.map_err(boxed)
    }

    async fn promote(&self, rollout: &Rollout, revision: &str) -> Result<(), BoxError> {
        let target = self.target(rollout).await.map_err(boxed)?;
        let now = objects::target_revision(&target);
        if now != revision {
            return Err(boxed(Error::Invalid(format!(
                "cannot promote {revision}: the target's template changed to {now}"
            ))));
        }
        let primary = self.primary(rollout).await.map_err(boxed)?;
        let previous = primary.as_ref().and_then(objects::source_template);
        let replicas = match objects::replicas(&target) {
            0 => primary.as_ref().map(objects::replicas).unwrap_or(1).max(1),
            n => n,
        };
        self.apply_primary(
            rollout,
            &target,
            &objects::template(&target),
            replicas,
            previous.as_ref(),
        )
        .await
        .map_err(boxed)
    }

    async fn restore_stable(&self, rollout: &Rollout, revision: &str) -> Result<(), BoxError> {
        let target = self.target(rollout).await.map_err(boxed)?;
        let primary = self
            .primary(rollout)
            .await
            .map_err(boxed)?
            .ok_or_else(|| boxed(Error::NotFound("primary Deployment not found".into())))?;
        let previous = objects::previous_template(&primary)
            .filter(|t| names::revision(t) == revision)
            .ok_or_else(|| {
                boxed(Error::NotFound(format!(
                    "the pod template of revision {revision} is no longer kept on the primary"
                )))
            })?;
        let current = objects::source_template(&primary);
        self.apply_primary(
            rollout,
            &target,
            &previous,
            objects::replicas(&primary).max(1),
            current.as_ref(),
        )
        .await
        .map_err(boxed)
    }
}
