//! [`sluice_core::exec::TrafficRouter`] for Istio: server-side apply of the VirtualService `<name>`
//! (and the DestinationRules of the two hosts) with field manager `sluice`.
//!
//! The objects come from [`crate::istio`] — the same functions `sluice plan -o
//! virtualservice` prints — plus an owner reference to the Rollout. Server-side apply means
//! fields other tools own on the VirtualService (annotations, extra fields) are left alone;
//! `force` takes over the routes if someone edited them, since the engine's plan must win.

use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};

use super::objects;
use super::recorder::Live;
use super::workloads::ignore_not_found;
use super::{Error, Result, istio, names, retry_on_conflict};
use sluice_core::exec::{BoxError, TrafficRouter};
use sluice_core::spec::Rollout;
use sluice_core::traffic::TrafficPlan;

pub fn virtual_service_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("networking.istio.io", "v1", "VirtualService"),
        "virtualservices",
    )
}

pub fn destination_rule_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("networking.istio.io", "v1", "DestinationRule"),
        "destinationrules",
    )
}

pub struct IstioRouter {
    client: Client,
    live: std::sync::Arc<Live>,
}

/// The generated object with the Rollout as controlling owner (garbage collection backs up
/// the finalizer).
pub fn owned(rollout: &Rollout, mut obj: Value) -> Result<Value> {
    let owner = serde_json::to_value(objects::owner(rollout)?)
        .map_err(|e| Error::Invalid(format!("owner reference: {e}")))?;
    match obj.get_mut("metadata").and_then(Value::as_object_mut) {
        Some(meta) => {
            meta.insert("ownerReferences".into(), Value::Array(vec![owner]));
            meta.insert(
                "namespace".into(),
                Value::String(objects::namespace(rollout)?.to_string()),
            );
        }
        None => {
            return Err(Error::Invalid(
                "generated Istio object has no metadata".into(),
            ));
        }
    }
    Ok(obj)
}

/// The VirtualService the controller applies for `plan`: [`istio::virtual_service`] (what
/// `sluice plan -o virtualservice` prints) plus the owner reference.
pub fn virtual_service_object(rollout: &Rollout, plan: &TrafficPlan) -> Result<Value> {
    owned(rollout, istio::virtual_service(rollout, plan))
}

/// [`virtual_service_object`] for a plan that keeps the invariants (weights add up to 100, ...);
/// a broken plan is refused before anything is sent.
fn checked_virtual_service(rollout: &Rollout, plan: &TrafficPlan) -> Result<Value> {
    plan.check()
        .map_err(|e| Error::Invalid(format!("refusing to apply an invalid plan: {e}")))?;
    virtual_service_object(rollout, plan)
}

/// The DestinationRules the controller applies.
pub fn destination_rule_objects(rollout: &Rollout) -> Result<Vec<Value>> {
    istio::destination_rules(rollout)
        .into_iter()
        .map(|dr| owned(rollout, dr))
        .collect()
}

fn object_name(obj: &Value) -> Result<String> {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| Error::Invalid("generated Istio object has no metadata.name".into()))
}

impl IstioRouter {
    pub fn new(client: Client, live: std::sync::Arc<Live>) -> Self {
        IstioRouter { client, live }
    }

    fn api(&self, rollout: &Rollout, ar: &ApiResource) -> Result<Api<DynamicObject>> {
        Ok(Api::namespaced_with(
            self.client.clone(),
            objects::namespace(rollout)?,
            ar,
        ))
    }

    async fn apply_object(&self, rollout: &Rollout, ar: &ApiResource, obj: Value) -> Result<()> {
        let name = object_name(&obj)?;
        let api = self.api(rollout, ar)?;
        // Read first: an object that already says all this is not applied again (no write per
        // reconcile); one that another manager changed is (the forced apply restores it).
        if let Some(existing) = api.get_opt(&name).await?
            && names::unchanged(&existing, &obj)
        {
            return Ok(());
        }
        let params = PatchParams::apply(names::FIELD_MANAGER).force();
        let patch = Patch::Apply(&obj);
        retry_on_conflict("apply istio object", || api.patch(&name, &params, &patch)).await?;
        Ok(())
    }

    pub async fn apply_plan(&self, rollout: &Rollout, plan: &TrafficPlan) -> Result<()> {
        let vs = checked_virtual_service(rollout, plan)?;
        self.apply_object(rollout, &virtual_service_resource(), vs)
            .await?;
        self.live.set_plan(&rollout.key(), plan.clone());
        Ok(())
    }

    /// For the finalizer: `plan` on the VirtualService only if it exists. A JSON merge patch of
    /// a missing object is a 404 (ignored), where a server-side apply would create one pointing
    /// at hosts that may never have existed or are about to go.
    pub async fn apply_plan_if_present(&self, rollout: &Rollout, plan: &TrafficPlan) -> Result<()> {
        let vs = checked_virtual_service(rollout, plan)?;
        let api = self.api(rollout, &virtual_service_resource())?;
        let name = objects::name(rollout)?;
        let params = names::patch_params();
        let patch = Patch::Merge(json!({"spec": vs["spec"]}));
        ignore_not_found(api.patch(name, &params, &patch).await)?;
        self.live.set_plan(&rollout.key(), plan.clone());
        Ok(())
    }

    /// DestinationRules for the `-primary` and `-canary` hosts.
    pub async fn ensure(&self, rollout: &Rollout) -> Result<()> {
        for dr in destination_rule_objects(rollout)? {
            self.apply_object(rollout, &destination_rule_resource(), dr)
                .await?;
        }
        Ok(())
    }

    /// For the finalizer, after traffic went back to primary.
    pub async fn remove(&self, rollout: &Rollout) -> Result<()> {
        let name = objects::name(rollout)?;
        let vs = self.api(rollout, &virtual_service_resource())?;
        ignore_not_found(vs.delete(name, &Default::default()).await)?;
        let drs = self.api(rollout, &destination_rule_resource())?;
        for dr in istio::destination_rules(rollout) {
            let dr_name = object_name(&dr)?;
            ignore_not_found(drs.delete(&dr_name, &Default::default()).await)?;
        }
        self.live.forget(&rollout.key());
        Ok(())
    }
}

#[async_trait::async_trait]
impl TrafficRouter for IstioRouter {
    async fn apply(&self, rollout: &Rollout, plan: &TrafficPlan) -> Result<(), BoxError> {
        self.apply_plan(rollout, plan)
            .await
            .map_err(|e| Box::new(e) as BoxError)
    }
}
