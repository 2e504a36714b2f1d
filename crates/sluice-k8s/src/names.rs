//! Names, labels and annotations sluice uses on the cluster, and the revision of a pod template.

use k8s_openapi::api::core::v1::PodTemplateSpec;

/// Field manager of every write sluice makes (server-side applies, merge and JSON patches,
/// creates, replaces), so `kubectl get -o yaml --show-managed-fields` names it.
pub const FIELD_MANAGER: &str = "sluice";

/// Parameters of every non-apply patch sluice sends.
pub fn patch_params() -> kube::api::PatchParams {
    kube::api::PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}

/// Parameters of every create and replace sluice sends.
pub fn post_params() -> kube::api::PostParams {
    kube::api::PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}
/// Finalizer on Rollouts: traffic back to primary and cleanup before deletion.
pub const FINALIZER: &str = "sluice.dev/cleanup";
/// Command annotation on a Rollout (`promote`, or `promote@<nonce>`).
pub const COMMAND_ANNOTATION: &str = "sluice.dev/command";
/// Set by the controller when it processed a command (value: the command annotation's value).
pub const COMMAND_ACK_ANNOTATION: &str = "sluice.dev/command-ack";
/// Revision (pod template hash) a primary Deployment runs.
pub const REVISION_ANNOTATION: &str = "sluice.dev/revision";
/// The target pod template (JSON, as the user wrote it) the primary was made from.
pub const SOURCE_TEMPLATE_ANNOTATION: &str = "sluice.dev/source-template";
/// The primary's previous source template (JSON), kept for `undo`.
pub const PREVIOUS_TEMPLATE_ANNOTATION: &str = "sluice.dev/previous-template";
/// Marks the apex Service `<name>` when sluice created it (value: the Rollout's uid).
pub const CREATED_BY_ANNOTATION: &str = "sluice.dev/created-by";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Condition type recording the last processed command, so a retried status write never runs
/// a command twice.
pub const COMMAND_CONDITION: &str = "CommandProcessed";
/// Present (False, reason `EventReason::InvalidSpec`, `TargetNotFound`, …) while the
/// controller cannot act on the Rollout.
pub const READY_CONDITION: &str = "Ready";

pub fn primary(name: &str) -> String {
    format!("{name}-primary")
}

pub fn canary(name: &str) -> String {
    format!("{name}-canary")
}

/// Revision of a pod template: FNV-1a over its canonical JSON (serde_json maps are sorted),
/// 10 hex digits like Kubernetes' pod-template-hash. Stable across processes and versions.
pub fn revision(template: &PodTemplateSpec) -> String {
    let json = serde_json::to_value(template).unwrap_or_default();
    let canonical = canonical_json(&json);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in canonical.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:010x}", h & 0xff_ffff_ffff)
}

/// JSON with object keys sorted, whatever serde_json's map ordering feature says.
fn canonical_json(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .into_iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        serde_json::Value::from(k.as_str()),
                        canonical_json(&m[k])
                    )
                })
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        serde_json::Value::Array(a) => {
            let inner: Vec<String> = a.iter().map(canonical_json).collect();
            format!("[{}]", inner.join(","))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(image: &str) -> PodTemplateSpec {
        serde_json::from_value(serde_json::json!({
            "metadata": {"labels": {"app": "reviews", "version": "v1"}},
            "spec": {"containers": [{"name": "reviews", "image": image}]}
        }))
        .unwrap_or_default()
    }

    #[test]
    fn revision_depends_on_the_template_only() {
        let a = revision(&template("reviews:v1"));
        assert_eq!(a, revision(&template("reviews:v1")));
        assert_eq!(a.len(), 10);
        assert_ne!(a, revision(&template("reviews:v2")));
    }

    #[test]
    fn canonical_json_sorts_keys() {
        let a = serde_json::json!({"b": 1, "a": {"d": [1, {"z": 1, "y": 2}], "c": null}});
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"c":null,"d":[1,{"y":2,"z":1}]},"b":1}"#
        );
    }
}

/// Whether `existing` already holds everything `desired` says (objects field by field, lists
/// item by item, scalars equal), ignoring what the server or others added. An apply of
/// `desired` would then change nothing, so it is not sent: an idle reconcile writes nothing.
pub fn covers(existing: &serde_json::Value, desired: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (existing, desired) {
        (Value::Object(e), Value::Object(d)) => d
            .iter()
            .all(|(k, dv)| dv.is_null() || e.get(k).is_some_and(|ev| covers(ev, dv))),
        (Value::Array(e), Value::Array(d)) => {
            e.len() == d.len() && e.iter().zip(d).all(|(ev, dv)| covers(ev, dv))
        }
        (e, d) => e == d,
    }
}

/// [`covers`] on typed objects; anything that does not serialize counts as changed (applied).
pub fn unchanged(
    existing: &impl k8s_openapi::serde::Serialize,
    desired: &impl k8s_openapi::serde::Serialize,
) -> bool {
    match (
        serde_json::to_value(existing),
        serde_json::to_value(desired),
    ) {
        (Ok(e), Ok(d)) => covers(&e, &d),
        _ => false,
    }
}

#[cfg(test)]
mod covers_tests {
    use serde_json::json;

    use super::covers;

    #[test]
    fn covers_ignores_what_others_added_and_sees_every_difference() {
        let desired =
            json!({"spec": {"ports": [{"port": 80, "name": "http"}], "selector": {"app": "a"}}});
        let existing = json!({"metadata": {"uid": "u"}, "spec": {"ports": [{"port": 80, "name": "http", "protocol": "TCP"}], "selector": {"app": "a"}, "clusterIP": "10.0.0.1"}});
        assert!(covers(&existing, &desired));
        for changed in [
            json!({"spec": {"ports": [{"port": 81, "name": "http"}], "selector": {"app": "a"}}}),
            json!({"spec": {"ports": [{"port": 80, "name": "http"}], "selector": {"app": "b"}}}),
            json!({"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 90}], "selector": {"app": "a"}}}),
            json!({"spec": {"ports": [{"port": 80, "name": "http"}], "selector": {"app": "a", "v": "1"}}}),
        ] {
            assert!(!covers(&existing, &changed), "{changed}");
        }
    }
}
