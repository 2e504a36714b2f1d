//! Every Kubernetes API call the controller makes, in one place.
//!
//! The RBAC ClusterRole in `deploy/rbac/clusterrole.yaml` (and the Helm chart's copy) must
//! grant exactly these: `tests/k8s_manifests.rs` compares the two, and the controller tests'
//! in-memory API server checks that every request it receives is listed here.

/// One resource and the verbs used on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiCall {
    /// API group ("" for the core group).
    pub group: &'static str,
    /// Resource, with `/subresource` where one is used.
    pub resource: &'static str,
    pub verbs: &'static [&'static str],
    /// Why sluice needs it (repeated as a comment in the ClusterRole).
    pub why: &'static str,
}

pub const CALLS: &[ApiCall] = &[
    ApiCall {
        group: "sluice.dev",
        resource: "rollouts",
        verbs: &["get", "list", "watch", "patch"],
        why: "watch Rollouts; patch adds/removes the finalizer and clears command annotations",
    },
    ApiCall {
        group: "sluice.dev",
        resource: "rollouts/status",
        verbs: &["patch"],
        why: "write phase, step, weight, verdicts, conditions",
    },
    ApiCall {
        group: "sluice.dev",
        resource: "analysistemplates",
        verbs: &["get"],
        why: "read the analysis templates a Rollout references, at every reconcile",
    },
    ApiCall {
        group: "sluice.dev",
        resource: "clusteranalysistemplates",
        verbs: &["get"],
        why: "read the cluster-wide analysis templates a Rollout references",
    },
    ApiCall {
        group: "apps",
        resource: "deployments",
        verbs: &["get", "list", "watch", "patch", "delete"],
        why: "read/scale the target; server-side apply and delete <name>-primary",
    },
    ApiCall {
        group: "",
        resource: "services",
        verbs: &["get", "list", "watch", "create", "patch", "delete"],
        why: "watch cache; apply <name>-primary/-canary, create <name> if missing, clean up",
    },
    ApiCall {
        group: "networking.istio.io",
        resource: "virtualservices",
        verbs: &["get", "list", "watch", "update", "patch", "delete"],
        why: "watch cache (get until synced), then server-side apply of the routes when they differ; removed by the finalizer; update: one rule of a VirtualService the user owns (virtualServiceRef)",
    },
    ApiCall {
        group: "networking.istio.io",
        resource: "destinationrules",
        verbs: &["get", "list", "watch", "patch", "delete"],
        why: "watch cache (get until synced), then server-side apply of the two hosts' rules when they differ; removed by the finalizer",
    },
    ApiCall {
        group: "gateway.networking.k8s.io",
        resource: "httproutes",
        verbs: &["get", "update", "patch", "delete"],
        why: "server-side apply of the routes of Rollouts with routing.gatewayAPI; removed by the finalizer; get/update: one rule of a route the user owns (routeRef)",
    },
    ApiCall {
        group: "gateway.networking.k8s.io",
        resource: "grpcroutes",
        verbs: &["get", "update", "patch", "delete"],
        why: "the same for routeKind GRPCRoute",
    },
    ApiCall {
        group: "events.k8s.io",
        resource: "events",
        verbs: &["create", "patch"],
        why: "Kubernetes Events on every transition (patch: repeated events become series)",
    },
    ApiCall {
        group: "",
        resource: "events",
        verbs: &["list"],
        why: "the web API's event history of a rollout",
    },
    ApiCall {
        group: "coordination.k8s.io",
        resource: "leases",
        verbs: &["get", "create", "update"],
        why: "leader election",
    },
];

/// Whether `verb` on `group`/`resource` is in [`CALLS`], or is API discovery (a `get` of
/// `/apis/<group>/<version>`, resource ""): Kubernetes grants that to every authenticated user
/// (the built-in `system:discovery` role), so the ClusterRole does not list it. sluice asks once
/// per process whether the Gateway API route kinds are served.
pub fn allowed(group: &str, resource: &str, verb: &str) -> bool {
    (resource.is_empty() && verb == "get")
        || CALLS
            .iter()
            .any(|c| c.group == group && c.resource == resource && c.verbs.contains(&verb))
}
