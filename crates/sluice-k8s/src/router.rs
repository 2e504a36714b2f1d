//! [`sluice_core::exec::TrafficRouter`] for Kubernetes: [`KubeRouter`] picks, per Rollout, the
//! [`IstioRouter`] (server-side apply of the VirtualService `<name>` and the DestinationRules of
//! the two hosts) or, with `spec.routing.gatewayAPI`, the [`GatewayApiRouter`] (server-side
//! apply of the HTTPRoute or GRPCRoute `<name>`), both with field manager `sluice`; or, when
//! the Rollout names a route the user owns, the [`OwnedRouter`] (one rule of that route edited
//! in a resourceVersion-guarded read-modify-write, see [`owned_route`]).
//!
//! The objects come from [`crate::istio`] — the same functions `sluice plan -o
//! virtualservice` prints — plus an owner reference to the Rollout. Server-side apply means
//! fields other tools own on the VirtualService (annotations, extra fields) are left alone;
//! `force` takes over the routes if someone edited them, since the engine's plan must win.

use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};

use super::cache::Caches;
use super::objects;
use super::owned_route::{self, Dialect};
use super::recorder::Live;
use super::workloads::ignore_not_found;
use super::{
    CONFLICT_ATTEMPTS, Error, Result, gateway_api, is_conflict, istio, names, retry_on_conflict,
};
use sluice_core::exec::{BoxError, TrafficRouter};
use sluice_core::spec::{Rollout, RouteKind, RouteRef};
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
    /// Reads come from the controller's watch caches once synced (`None`: GETs).
    caches: Option<std::sync::Arc<Caches>>,
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
        IstioRouter {
            client,
            live,
            caches: None,
        }
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
        let cached = self
            .caches
            .as_ref()
            .and_then(|c| c.istio(ar))
            .map(|c| c.get(objects::namespace(rollout).unwrap_or_default(), &name));
        let existing = match cached {
            Some(Ok(cached)) => cached,
            _ => api.get_opt(&name).await?,
        };
        if let Some(existing) = existing
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
        self.remove_destination_rules(rollout).await?;
        self.live.forget(&rollout.key());
        Ok(())
    }

    /// The DestinationRules of the two hosts (also with a VirtualService the user owns).
    pub async fn remove_destination_rules(&self, rollout: &Rollout) -> Result<()> {
        let drs = self.api(rollout, &destination_rule_resource())?;
        for dr in istio::destination_rules(rollout) {
            let dr_name = object_name(&dr)?;
            ignore_not_found(drs.delete(&dr_name, &Default::default()).await)?;
        }
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

/// The Gateway API route resource of `kind` (`httproutes` / `grpcroutes`).
pub fn route_resource(kind: RouteKind) -> ApiResource {
    let (k, plural) = match kind {
        RouteKind::Http => ("HTTPRoute", "httproutes"),
        RouteKind::Grpc => ("GRPCRoute", "grpcroutes"),
    };
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(gateway_api::API_GROUP, "v1", k),
        plural,
    )
}

/// The route the controller applies for `plan` on a Gateway API Rollout:
/// [`gateway_api::declared_route`] (what `sluice plan -o httproute` prints) plus the owner
/// reference; a plan that breaks the invariants is refused before anything is sent.
pub fn gateway_route_object(rollout: &Rollout, plan: &TrafficPlan) -> Result<Value> {
    plan.check()
        .map_err(|e| Error::Invalid(format!("refusing to apply an invalid plan: {e}")))?;
    owned(rollout, gateway_api::declared_route(rollout, plan))
}

/// Gateway API routing: the HTTPRoute or GRPCRoute `<name>` (its kind from
/// `routing.gatewayAPI.routeKind`). No other object is needed: the backends are the
/// `-primary`/`-canary` Services the workloads create.
pub struct GatewayApiRouter {
    client: Client,
    live: std::sync::Arc<Live>,
    /// Route kinds discovery has shown to be served: asked once per process, not per
    /// reconcile (an idle rollout sends nothing). A kind not seen yet is asked again on every
    /// reconcile until it is.
    served: std::sync::Mutex<std::collections::BTreeSet<&'static str>>,
}

impl GatewayApiRouter {
    pub fn new(client: Client, live: std::sync::Arc<Live>) -> Self {
        GatewayApiRouter {
            client,
            live,
            served: Default::default(),
        }
    }

    /// Whether the cluster serves the Rollout's route kind (`gateway.networking.k8s.io/v1`
    /// httproutes or grpcroutes); [`Error::ApiMissing`] naming group/version and resource
    /// when it does not (the Gateway API CRDs are not installed, or an older version without
    /// GRPCRoute v1).
    pub async fn ensure(&self, rollout: &Rollout) -> Result<()> {
        let ar = route_resource(gateway_api::route_kind(rollout));
        let plural: &'static str = match gateway_api::route_kind(rollout) {
            RouteKind::Http => "httproutes",
            RouteKind::Grpc => "grpcroutes",
        };
        let known = |s: &Self| {
            s.served
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .contains(plural)
        };
        if known(self) {
            return Ok(());
        }
        let gv = format!("{}/{}", ar.group, ar.version);
        let missing = || Error::ApiMissing(format!("{gv} {plural}"));
        let list = match self.client.list_api_group_resources(&gv).await {
            Ok(list) => list,
            Err(kube::Error::Api(s)) if s.code == 404 => return Err(missing()),
            Err(e) => return Err(e.into()),
        };
        if !list.resources.iter().any(|r| r.name == plural) {
            return Err(missing());
        }
        self.served
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(plural);
        Ok(())
    }

    fn api(&self, rollout: &Rollout, kind: RouteKind) -> Result<Api<DynamicObject>> {
        Ok(Api::namespaced_with(
            self.client.clone(),
            objects::namespace(rollout)?,
            &route_resource(kind),
        ))
    }

    pub async fn apply_plan(&self, rollout: &Rollout, plan: &TrafficPlan) -> Result<()> {
        let route = gateway_route_object(rollout, plan)?;
        let name = object_name(&route)?;
        let api = self.api(rollout, gateway_api::route_kind(rollout))?;
        // Forced: the engine's plan wins over another manager's edit of the rules.
        let params = PatchParams::apply(names::FIELD_MANAGER).force();
        let patch = Patch::Apply(&route);
        retry_on_conflict("apply gateway api route", || {
            api.patch(&name, &params, &patch)
        })
        .await?;
        self.live.set_plan(&rollout.key(), plan.clone());
        Ok(())
    }

    /// For the finalizer: `plan` on the route only if it exists (see
    /// [`IstioRouter::apply_plan_if_present`]).
    pub async fn apply_plan_if_present(&self, rollout: &Rollout, plan: &TrafficPlan) -> Result<()> {
        let route = gateway_route_object(rollout, plan)?;
        let api = self.api(rollout, gateway_api::route_kind(rollout))?;
        let name = objects::name(rollout)?;
        let patch = Patch::Merge(json!({"spec": route["spec"]}));
        ignore_not_found(api.patch(name, &names::patch_params(), &patch).await)?;
        self.live.set_plan(&rollout.key(), plan.clone());
        Ok(())
    }

    /// For the finalizer, after traffic went back to primary: the route of either kind (the
    /// kind may have been edited since it was written).
    pub async fn remove(&self, rollout: &Rollout) -> Result<()> {
        let name = objects::name(rollout)?;
        for kind in [RouteKind::Http, RouteKind::Grpc] {
            let api = self.api(rollout, kind)?;
            ignore_not_found(api.delete(name, &Default::default()).await)?;
        }
        self.live.forget(&rollout.key());
        Ok(())
    }
}

/// A route the user owns (`routing.istio.virtualServiceRef` / `routing.gatewayAPI.routeRef`):
/// [`owned_route::apply`] / [`owned_route::restore`] in a read-modify-write guarded by the
/// route's resourceVersion (a replace that carries it). A 409 Conflict means the user (or
/// another tool) changed the route between the read and the write: read again and apply
/// again, so their change is kept. Server-side apply is no help here: the rule lists are
/// atomic in these CRDs, so applying one rule would take the whole list.
pub struct OwnedRouter {
    client: Client,
    live: std::sync::Arc<Live>,
}

/// The route a Rollout names, with the API it lives in and the field path that names it.
struct OwnedTarget<'a> {
    dialect: Dialect,
    resource: ApiResource,
    reference: &'a RouteRef,
    field: &'static str,
}

fn owned_target(rollout: &Rollout) -> Option<OwnedTarget<'_>> {
    let routing = &rollout.spec.routing;
    match (&routing.gateway_api, &routing.istio) {
        (Some(g), _) => g.route_ref.as_ref().map(|reference| OwnedTarget {
            dialect: Dialect::GatewayApi,
            resource: route_resource(g.route_kind),
            reference,
            field: "spec.routing.gatewayAPI.routeRef",
        }),
        (None, Some(i)) => i.virtual_service_ref.as_ref().map(|reference| OwnedTarget {
            dialect: Dialect::Istio,
            resource: virtual_service_resource(),
            reference,
            field: "spec.routing.istio.virtualServiceRef",
        }),
        (None, None) => None,
    }
}

impl OwnedRouter {
    pub fn new(client: Client, live: std::sync::Arc<Live>) -> Self {
        OwnedRouter { client, live }
    }

    /// Reads the route, computes the edit, writes it with the resourceVersion it read;
    /// again on 409. An edit that changes nothing is not written. A missing route is an error
    /// unless `missing_ok` (the finalizer's way out: nothing to put back).
    async fn edit(
        &self,
        rollout: &Rollout,
        missing_ok: bool,
        edit: impl Fn(Dialect, &Value, &str) -> Result<Value, owned_route::OwnedRouteError>,
    ) -> Result<()> {
        let Some(t) = owned_target(rollout) else {
            return Err(Error::Invalid(
                "the Rollout names no route of its own".into(),
            ));
        };
        let ns = objects::namespace(rollout)?;
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, &t.resource);
        let name = t.reference.name.as_str();
        let mut attempt = 1;
        loop {
            let Some(obj) = api.get_opt(name).await? else {
                if missing_ok {
                    return Ok(());
                }
                return Err(Error::NotFound(format!(
                    "{} {ns}/{name} named in {}.name not found",
                    t.resource.kind, t.field
                )));
            };
            let current = serde_json::to_value(&obj)
                .map_err(|e| Error::Invalid(format!("{} {ns}/{name}: {e}", t.resource.kind)))?;
            let next = edit(t.dialect, &current, &t.reference.rule_name)?;
            if next == current {
                return Ok(());
            }
            let next: DynamicObject = serde_json::from_value(next)
                .map_err(|e| Error::Invalid(format!("{} {ns}/{name}: {e}", t.resource.kind)))?;
            match api.replace(name, &names::post_params(), &next).await {
                Err(e) if is_conflict(&e) && attempt < CONFLICT_ATTEMPTS => {
                    tracing::debug!(rollout = %rollout.key(), route = %name, attempt,
                        "the route changed since it was read; reading it again");
                    attempt += 1;
                }
                Err(e) => return Err(e.into()),
                Ok(_) => return Ok(()),
            }
        }
    }

    /// Before traffic moves: the route exists and has the named rule (and it routes), so a
    /// typo shows on the Rollout's Ready condition instead of at the first step.
    pub async fn ensure(&self, rollout: &Rollout) -> Result<()> {
        let Some(t) = owned_target(rollout) else {
            return Ok(());
        };
        let ns = objects::namespace(rollout)?;
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, &t.resource);
        let name = t.reference.name.as_str();
        let Some(obj) = api.get_opt(name).await? else {
            return Err(Error::NotFound(format!(
                "{} {ns}/{name} named in {}.name not found",
                t.resource.kind, t.field
            )));
        };
        let current = serde_json::to_value(&obj)
            .map_err(|e| Error::Invalid(format!("{} {ns}/{name}: {e}", t.resource.kind)))?;
        owned_route::apply(
            t.dialect,
            rollout,
            &current,
            &t.reference.rule_name,
            &TrafficPlan::stable_only(),
        )?;
        Ok(())
    }

    pub async fn apply_plan(&self, rollout: &Rollout, plan: &TrafficPlan) -> Result<()> {
        self.edit(rollout, false, |d, current, rule| {
            owned_route::apply(d, rollout, current, rule, plan)
        })
        .await?;
        self.live.set_plan(&rollout.key(), plan.clone());
        Ok(())
    }

    /// For the finalizer: `plan` on the route if it (and its rule) is still there.
    pub async fn apply_plan_if_present(&self, rollout: &Rollout, plan: &TrafficPlan) -> Result<()> {
        self.edit(rollout, true, |d, current, rule| {
            match owned_route::apply(d, rollout, current, rule, plan) {
                Err(owned_route::OwnedRouteError::RuleNotFound { .. }) => Ok(current.clone()),
                other => other,
            }
        })
        .await?;
        self.live.set_plan(&rollout.key(), plan.clone());
        Ok(())
    }

    /// For the finalizer: the user's rule back as they wrote it; the route itself stays.
    pub async fn restore(&self, rollout: &Rollout) -> Result<()> {
        self.edit(rollout, true, |d, current, rule| {
            owned_route::restore(d, rollout, current, rule)
        })
        .await?;
        self.live.forget(&rollout.key());
        Ok(())
    }
}

/// The router of each Rollout: a route the user owns when the Rollout names one; else Gateway
/// API when `spec.routing.gatewayAPI` is set, else Istio.
pub struct KubeRouter {
    pub istio: IstioRouter,
    pub gateway_api: GatewayApiRouter,
    pub owned: OwnedRouter,
}

fn uses_gateway_api(rollout: &Rollout) -> bool {
    rollout.spec.routing.gateway_api.is_some()
}

fn uses_owned_route(rollout: &Rollout) -> bool {
    rollout.spec.routing.owned_route().is_some()
}

impl KubeRouter {
    pub fn new(client: Client, live: std::sync::Arc<Live>) -> Self {
        KubeRouter {
            istio: IstioRouter::new(client.clone(), live.clone()),
            gateway_api: GatewayApiRouter::new(client.clone(), live.clone()),
            owned: OwnedRouter::new(client, live),
        }
    }

    /// Reads the Istio objects from `caches` (see [`crate::cache`]).
    pub fn with_caches(
        client: Client,
        live: std::sync::Arc<Live>,
        caches: std::sync::Arc<Caches>,
    ) -> Self {
        let mut router = Self::new(client, live);
        router.istio.caches = Some(caches);
        router
    }

    pub async fn apply_plan(&self, rollout: &Rollout, plan: &TrafficPlan) -> Result<()> {
        if uses_owned_route(rollout) {
            self.owned.apply_plan(rollout, plan).await
        } else if uses_gateway_api(rollout) {
            self.gateway_api.apply_plan(rollout, plan).await
        } else {
            self.istio.apply_plan(rollout, plan).await
        }
    }

    pub async fn apply_plan_if_present(&self, rollout: &Rollout, plan: &TrafficPlan) -> Result<()> {
        if uses_owned_route(rollout) {
            self.owned.apply_plan_if_present(rollout, plan).await
        } else if uses_gateway_api(rollout) {
            self.gateway_api.apply_plan_if_present(rollout, plan).await
        } else {
            self.istio.apply_plan_if_present(rollout, plan).await
        }
    }

    /// What must exist before traffic moves: Istio's DestinationRules, or for Gateway API the
    /// route kind served by the cluster; then the user's route and rule when the Rollout names
    /// one.
    pub async fn ensure(&self, rollout: &Rollout) -> Result<()> {
        if uses_gateway_api(rollout) {
            self.gateway_api.ensure(rollout).await?;
        } else {
            self.istio.ensure(rollout).await?;
        }
        self.owned.ensure(rollout).await
    }

    /// For the finalizer: the declared router's objects; a route the user owns is restored,
    /// never deleted.
    pub async fn remove(&self, rollout: &Rollout) -> Result<()> {
        if uses_owned_route(rollout) {
            self.owned.restore(rollout).await?;
            if !uses_gateway_api(rollout) {
                self.istio.remove_destination_rules(rollout).await?;
            }
            Ok(())
        } else if uses_gateway_api(rollout) {
            self.gateway_api.remove(rollout).await
        } else {
            self.istio.remove(rollout).await
        }
    }
}

#[async_trait::async_trait]
impl TrafficRouter for GatewayApiRouter {
    async fn apply(&self, rollout: &Rollout, plan: &TrafficPlan) -> Result<(), BoxError> {
        self.apply_plan(rollout, plan)
            .await
            .map_err(|e| Box::new(e) as BoxError)
    }
}

#[async_trait::async_trait]
impl TrafficRouter for KubeRouter {
    async fn apply(&self, rollout: &Rollout, plan: &TrafficPlan) -> Result<(), BoxError> {
        self.apply_plan(rollout, plan)
            .await
            .map_err(|e| Box::new(e) as BoxError)
    }
}
