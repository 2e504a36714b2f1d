//! What a rollout's versions are called in each data plane, and the template variables.
//!
//! - **Istio** (Kubernetes, Flagger-style): the user's Deployment `<target>` runs the canary,
//!   sluice keeps `<target>-primary` for stable. Istio's `destination_workload` label carries
//!   these Deployment names, in the rollout's namespace.
//! - **Envoy** (standalone): one cluster per version, named by [`envoy_cluster`]:
//!   `<name>-stable` / `<name>-canary` in the `default` namespace (standalone files usually have
//!   none), `<namespace>-<name>-stable` / `<namespace>-<name>-canary` otherwise. Envoy exports
//!   the name as the `envoy_cluster_name` label.

use std::collections::BTreeMap;
use std::time::Duration;

use sluice_core::spec::{DataPlane, Rollout};
use sluice_core::traffic::Destination;

/// The namespace standalone rollouts live in when their file has none.
pub const DEFAULT_NAMESPACE: &str = "default";

pub fn namespace(rollout: &Rollout) -> &str {
    rollout
        .metadata
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or(DEFAULT_NAMESPACE)
}

pub fn name(rollout: &Rollout) -> &str {
    rollout.metadata.name.as_deref().unwrap_or("")
}

/// The Envoy cluster of one version of a standalone rollout: the Envoy router's own naming
/// ([`sluice_core::traffic::cluster_name`]), so metrics and routes always agree.
pub fn envoy_cluster(rollout: &Rollout, dest: Destination) -> String {
    sluice_core::traffic::cluster_name(rollout.metadata.namespace.as_deref(), name(rollout), dest)
}

/// The Istio workload (Deployment) of one version: the target runs the canary, `-primary`
/// runs stable. Without a `targetRef` the rollout's own name stands in for the target.
pub fn istio_workload(rollout: &Rollout, dest: Destination) -> String {
    let target = rollout
        .spec
        .target_ref
        .as_ref()
        .map(|t| t.name.as_str())
        .unwrap_or_else(|| name(rollout));
    match dest {
        Destination::Canary => target.to_string(),
        Destination::Stable => format!("{target}-primary"),
    }
}

/// The data plane whose series the builtin metrics read: `provider.prometheus.dataPlane`,
/// else Istio for a `targetRef` and Envoy for `upstreams`.
pub fn data_plane(rollout: &Rollout) -> DataPlane {
    let configured = rollout
        .spec
        .analysis
        .provider
        .as_ref()
        .and_then(|p| p.prometheus.data_plane);
    configured.unwrap_or(
        if rollout.spec.upstreams.is_some() && rollout.spec.target_ref.is_none() {
            DataPlane::Envoy
        } else {
            DataPlane::Istio
        },
    )
}

/// The name of one version in the data plane's metric labels.
pub fn version_name(rollout: &Rollout, plane: DataPlane, dest: Destination) -> String {
    match plane {
        DataPlane::Istio => istio_workload(rollout, dest),
        DataPlane::Envoy => envoy_cluster(rollout, dest),
    }
}

/// A window as PromQL accepts it: whole seconds (`90s`) or, below/between, milliseconds
/// (`1500ms`). Go-style fractions (`1.5s`) are not valid PromQL, so they are never rendered.
pub fn promql_duration(d: Duration) -> String {
    let ms = d.as_millis().max(1);
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Template variables for a query about version `target` of the rollout, over `window`.
/// `stable`/`canary` always name both versions, so a template can also compare them itself.
pub fn variables(
    rollout: &Rollout,
    plane: DataPlane,
    target: Destination,
    window: Duration,
) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("namespace", namespace(rollout).to_string()),
        ("name", name(rollout).to_string()),
        ("target", version_name(rollout, plane, target)),
        ("stable", version_name(rollout, plane, Destination::Stable)),
        ("canary", version_name(rollout, plane, Destination::Canary)),
        ("interval", promql_duration(window)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::spec::{RolloutSpec, TargetRef, Upstreams};

    fn rollout(ns: Option<&str>, target: bool) -> Rollout {
        let spec: RolloutSpec =
            serde_yaml::from_str("service: {port: 80}\nstrategy: {canary: {steps: [10]}}\n")
                .expect("spec");
        let mut r = Rollout::new("reviews", spec);
        r.metadata.namespace = ns.map(str::to_string);
        if target {
            r.spec.target_ref = Some(TargetRef {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                name: "reviews-v".into(),
            });
        } else {
            r.spec.upstreams = Some(Upstreams {
                stable: "127.0.0.1:1".into(),
                canary: "127.0.0.1:2".into(),
                stable_revision: None,
            });
        }
        r
    }

    #[test]
    fn envoy_cluster_names() {
        let r = rollout(None, false);
        assert_eq!(envoy_cluster(&r, Destination::Stable), "reviews-stable");
        assert_eq!(envoy_cluster(&r, Destination::Canary), "reviews-canary");
        let r = rollout(Some("default"), false);
        assert_eq!(envoy_cluster(&r, Destination::Canary), "reviews-canary");
        let r = rollout(Some("shop"), false);
        assert_eq!(
            envoy_cluster(&r, Destination::Stable),
            "shop-reviews-stable"
        );
    }

    #[test]
    fn istio_names_and_default_plane() {
        let r = rollout(Some("bookinfo"), true);
        assert_eq!(data_plane(&r), DataPlane::Istio);
        assert_eq!(istio_workload(&r, Destination::Canary), "reviews-v");
        assert_eq!(istio_workload(&r, Destination::Stable), "reviews-v-primary");
        assert_eq!(data_plane(&rollout(None, false)), DataPlane::Envoy);
        let v = variables(
            &r,
            DataPlane::Istio,
            Destination::Stable,
            Duration::from_secs(90),
        );
        assert_eq!(v["target"], "reviews-v-primary");
        assert_eq!(v["canary"], "reviews-v");
        assert_eq!(v["namespace"], "bookinfo");
        assert_eq!(v["interval"], "90s");
    }

    #[test]
    fn durations_render_as_valid_promql() {
        assert_eq!(promql_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(promql_duration(Duration::from_secs(60)), "60s");
        assert_eq!(promql_duration(Duration::ZERO), "1ms");
    }
}
