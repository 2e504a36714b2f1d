//! The Kubernetes objects sluice generates, as pure functions of the Rollout and the target
//! Deployment (golden files in `tests/golden/k8s/` pin their exact shape).
//!
//! Flagger's layout: the user's Deployment (`targetRef`) is where new versions appear and
//! serves as the canary; `<name>-primary` runs the last promoted pod template. Selector labels
//! of the target (`app: reviews`) become `app: reviews-primary` on the primary, so the two
//! never select each other's pods.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{PodTemplateSpec, Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;

use super::names;
use sluice_core::spec::Rollout;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ObjectError {
    #[error("{0} is missing")]
    Missing(&'static str),
    #[error(
        "target Deployment {0} has no spec.selector.matchLabels (sluice needs label selectors)"
    )]
    NoSelector(String),
}

pub fn name(rollout: &Rollout) -> Result<&str, ObjectError> {
    rollout
        .metadata
        .name
        .as_deref()
        .ok_or(ObjectError::Missing("Rollout .metadata.name"))
}

pub fn namespace(rollout: &Rollout) -> Result<&str, ObjectError> {
    rollout
        .metadata
        .namespace
        .as_deref()
        .ok_or(ObjectError::Missing("Rollout .metadata.namespace"))
}

/// Name of the target Deployment (`spec.targetRef.name`).
pub fn target_name(rollout: &Rollout) -> Result<&str, ObjectError> {
    rollout
        .spec
        .target_ref
        .as_ref()
        .map(|t| t.name.as_str())
        .ok_or(ObjectError::Missing("Rollout .spec.targetRef"))
}

/// Controller owner reference to the Rollout (needs its uid, so only for stored objects).
pub fn owner(rollout: &Rollout) -> Result<OwnerReference, ObjectError> {
    rollout
        .controller_owner_ref(&())
        .ok_or(ObjectError::Missing("Rollout .metadata.uid"))
}

/// The target's selector labels (`app: reviews`): what the canary Service selects.
pub fn target_selector(target: &Deployment) -> Result<BTreeMap<String, String>, ObjectError> {
    let labels = target
        .spec
        .selector
        .match_labels
        .clone()
        .unwrap_or_default();
    if labels.is_empty() {
        return Err(ObjectError::NoSelector(
            target.metadata.name.clone().unwrap_or_default(),
        ));
    }
    Ok(labels)
}

/// The primary's selector: every selector label of the target with `-primary` appended.
pub fn primary_selector(target: &Deployment) -> Result<BTreeMap<String, String>, ObjectError> {
    Ok(target_selector(target)?
        .into_iter()
        .map(|(k, v)| (k, names::primary(&v)))
        .collect())
}

fn labels(extra: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut l = extra.clone();
    l.insert(names::MANAGED_BY_LABEL.into(), "sluice".into());
    l
}

/// `<name>-primary`: `template` (a promoted pod template of the target) with the primary's
/// selector labels, scaled to `replicas`. `previous` is the template it ran before (for undo).
pub fn primary_deployment(
    rollout: &Rollout,
    target: &Deployment,
    template: &PodTemplateSpec,
    replicas: i32,
    previous: Option<&PodTemplateSpec>,
) -> Result<Deployment, ObjectError> {
    let name = name(rollout)?;
    let selector = primary_selector(target)?;
    let revision = names::revision(template);
    let source = serde_json::to_string(template).unwrap_or_default();
    let mut template = template.clone();
    let meta = template.metadata.get_or_insert_with(Default::default);
    let pod_labels = meta.labels.get_or_insert_with(Default::default);
    pod_labels.extend(selector.clone());
    meta.annotations
        .get_or_insert_with(Default::default)
        .insert(names::REVISION_ANNOTATION.into(), revision.clone());
    let mut annotations = BTreeMap::from([
        (names::REVISION_ANNOTATION.to_string(), revision),
        (names::SOURCE_TEMPLATE_ANNOTATION.to_string(), source),
    ]);
    if let Some(prev) = previous {
        annotations.insert(
            names::PREVIOUS_TEMPLATE_ANNOTATION.into(),
            serde_json::to_string(prev).unwrap_or_default(),
        );
    }
    let tspec = target.spec.clone();
    Ok(Deployment {
        metadata: ObjectMeta {
            name: Some(names::primary(name)),
            namespace: Some(namespace(rollout)?.to_string()),
            labels: Some(labels(&selector)),
            annotations: Some(annotations),
            owner_references: Some(vec![owner(rollout)?]),
            ..Default::default()
        },
        spec: DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(selector),
                match_expressions: None,
            },
            template,
            strategy: tspec.strategy,
            min_ready_seconds: tspec.min_ready_seconds,
            progress_deadline_seconds: tspec.progress_deadline_seconds,
            revision_history_limit: tspec.revision_history_limit,
            paused: None,
        },
        status: None,
    })
}

fn service(
    rollout: &Rollout,
    svc_name: String,
    selector: BTreeMap<String, String>,
) -> Result<Service, ObjectError> {
    let port = i32::from(rollout.spec.service.port);
    Ok(Service {
        metadata: ObjectMeta {
            name: Some(svc_name),
            namespace: Some(namespace(rollout)?.to_string()),
            labels: Some(labels(&BTreeMap::new())),
            owner_references: Some(vec![owner(rollout)?]),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port,
                target_port: Some(IntOrString::Int(port)),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            type_: Some("ClusterIP".into()),
            ..Default::default()
        }),
        status: None,
    })
}

/// `<name>-primary` and `<name>-canary`, the two hosts the VirtualService routes to. The
/// container is assumed to listen on `spec.service.port`.
pub fn services(rollout: &Rollout, target: &Deployment) -> Result<Vec<Service>, ObjectError> {
    let name = name(rollout)?;
    Ok(vec![
        service(rollout, names::primary(name), primary_selector(target)?)?,
        service(rollout, names::canary(name), target_selector(target)?)?,
    ])
}

/// `<name>`, created only when missing (the host clients use). No owner reference: deleting
/// the Rollout must not delete the address clients call; the finalizer points it back at the
/// target's pods instead.
pub fn apex_service(rollout: &Rollout, target: &Deployment) -> Result<Service, ObjectError> {
    let name = name(rollout)?;
    let mut svc = service(rollout, name.to_string(), primary_selector(target)?)?;
    svc.metadata.owner_references = None;
    svc.metadata.annotations = Some(BTreeMap::from([(
        names::CREATED_BY_ANNOTATION.to_string(),
        rollout.metadata.uid.clone().unwrap_or_default(),
    )]));
    Ok(svc)
}

/// Rolled out and serving: the controller saw the latest spec, every replica runs the latest
/// template and is available. Zero replicas is never ready (no endpoints to send traffic to).
pub fn deployment_ready(d: &Deployment) -> bool {
    let want = d.spec.replicas.unwrap_or(1);
    let Some(st) = &d.status else { return false };
    let observed = st.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
    want > 0
        && observed
        && st.updated_replicas.unwrap_or(0) >= want
        && st.available_replicas.unwrap_or(0) >= want
        && st.replicas.unwrap_or(0) == st.updated_replicas.unwrap_or(0)
}

pub fn replicas(d: &Deployment) -> i32 {
    d.spec.replicas.unwrap_or(1)
}

pub fn template(d: &Deployment) -> PodTemplateSpec {
    d.spec.template.clone()
}

/// The revision a primary runs (its annotation), if it was made by sluice.
pub fn primary_revision(primary: &Deployment) -> Option<String> {
    primary
        .metadata
        .annotations
        .as_ref()?
        .get(names::REVISION_ANNOTATION)
        .cloned()
}

fn template_annotation(primary: &Deployment, key: &str) -> Option<PodTemplateSpec> {
    let raw = primary.metadata.annotations.as_ref()?.get(key)?;
    serde_json::from_str(raw).ok()
}

/// The source template the primary runs now.
pub fn source_template(primary: &Deployment) -> Option<PodTemplateSpec> {
    template_annotation(primary, names::SOURCE_TEMPLATE_ANNOTATION)
}

/// The source template the primary ran before the last promotion (for undo).
pub fn previous_template(primary: &Deployment) -> Option<PodTemplateSpec> {
    template_annotation(primary, names::PREVIOUS_TEMPLATE_ANNOTATION)
}

/// The target's own template (labels as the user wrote them) — what the primary's annotation
/// revision is computed from, so target and primary revisions compare directly.
pub fn target_revision(target: &Deployment) -> String {
    names::revision(&template(target))
}
