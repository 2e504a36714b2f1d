//! The `Rollout` kind: what users write (`spec`) and what sluice records (`status`).
//!
//! The same types serve both modes. On Kubernetes they are the CRD `rollouts.sluice.dev`
//! (generated from these types by `sluice crd`); standalone, they are YAML files with the same
//! `apiVersion`/`kind`. Parsing is strict (`deny_unknown_fields`): a typo is an error with a
//! suggestion, never a silently ignored field. Cross-field rules ("exactly one of ...", "steps
//! increase", "min <= max") live in [`crate::validate`], which reports every problem at once.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const API_VERSION: &str = "sluice.dev/v1alpha1";
pub const KIND: &str = "Rollout";

// With the `crd` feature, kube's derive makes `Rollout` (ObjectMeta + this spec + status) a
// Kubernetes resource; without it, `plain::Rollout` has the same fields, so code written against
// one compiles against the other. (A `//` comment: doc comments become CRD descriptions.)
/// A progressive rollout of one service.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[cfg_attr(feature = "crd", derive(kube::CustomResource))]
#[cfg_attr(
    feature = "crd",
    kube(
        group = "sluice.dev",
        version = "v1alpha1",
        kind = "Rollout",
        namespaced,
        status = "RolloutStatus",
        shortname = "sro",
        category = "sluice",
        printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
        printcolumn = r#"{"name":"Step","type":"integer","jsonPath":".status.stepIndex"}"#,
        printcolumn = r#"{"name":"Canary Weight","type":"integer","jsonPath":".status.canaryWeight"}"#,
        printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RolloutSpec {
    /// Kubernetes target: the user's Deployment, where new versions appear.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    /// Standalone target: addresses of the stable and canary upstreams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstreams: Option<Upstreams>,
    /// Standalone only: an explicit revision label for the canary (e.g. `v2`). When absent,
    /// the canary upstream address is the revision (changing it starts a rollout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Routing identity: port, hosts and gateways of the service.
    pub service: ServiceSpec,
    /// Which Kubernetes routing API carries the traffic plan: an Istio VirtualService (the
    /// default) or, with `gatewayAPI`, a Gateway API HTTPRoute or GRPCRoute.
    #[serde(default, skip_serializing_if = "Routing::is_default")]
    pub routing: Routing,
    /// Exactly one of `canary`, `darkLaunch`, `abTest`.
    pub strategy: Strategy,
    #[serde(default)]
    pub analysis: Analysis,
    /// Steps advance only inside one of these windows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    #[serde(default)]
    pub promotion: Promotion,
    /// How long a rollout may wait without progress before it fails (instead of waiting
    /// forever).
    #[serde(default)]
    pub progress_deadline: ProgressDeadline,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<Webhook>,
    /// Advance every `analysis.interval` without asking the metric source (e.g. for staging).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_analysis: bool,
    /// Notification sinks for this rollout (in addition to the global ones).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notifications: Vec<Notification>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TargetRef {
    #[serde(default = "default_target_api_version")]
    pub api_version: String,
    #[serde(default = "default_target_kind")]
    pub kind: String,
    pub name: String,
}

fn default_target_api_version() -> String {
    "apps/v1".into()
}
fn default_target_kind() -> String {
    "Deployment".into()
}

/// Standalone upstreams as `host:port`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Upstreams {
    pub stable: String,
    pub canary: String,
    /// Revision label of the version at `stable` (e.g. `v1`), read when sluice takes the stable
    /// side from the file: first sight, or an edit of `stable` or of this field. When `stable`
    /// and `canary` are the same address, stable runs `revision` and this may be left out.
    /// Default: the stable address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_revision: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceSpec {
    pub port: u16,
    /// VirtualService hosts; defaults to the rollout name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// VirtualService gateways; defaults to `mesh` (Istio's default).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
}

/// `spec.routing`: the router of a Kubernetes Rollout. Empty: Istio, with a VirtualService
/// sluice generates and owns.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Routing {
    /// Istio routing options (the default router); `virtualServiceRef` makes sluice edit a
    /// rule of the user's own VirtualService instead of generating one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub istio: Option<IstioRouting>,
    /// Route with a `gateway.networking.k8s.io/v1` HTTPRoute (or GRPCRoute) named like the
    /// Rollout instead of an Istio VirtualService.
    #[serde(
        default,
        rename = "gatewayAPI",
        skip_serializing_if = "Option::is_none"
    )]
    pub gateway_api: Option<GatewayApiRouting>,
}

impl Routing {
    pub fn is_default(&self) -> bool {
        self == &Routing::default()
    }
}

/// Gateway API routing: the route's parents and hostnames, and which route kind carries it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayApiRouting {
    /// Gateways (or Services) the route attaches to. Default: the Service `<name>` on
    /// `service.port` (a GAMMA mesh route, for east-west traffic).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parent_refs: Vec<ParentRef>,
    /// Host names the route answers for (Gateway listeners); default: every host the parent
    /// accepts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// `HTTPRoute` (default) or `GRPCRoute`.
    #[serde(default, skip_serializing_if = "RouteKind::is_http")]
    pub route_kind: RouteKind,
    /// A route the user owns (of kind `routeKind`): sluice edits only the named rule's
    /// backendRefs (and mirror) and inserts its match rules before it, instead of generating
    /// the route `<name>`. Its parents and hostnames are the route's own, so `parentRefs` and
    /// `hostnames` stay empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_ref: Option<RouteRef>,
}

/// Istio routing: by default sluice generates and owns the VirtualService `<name>`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IstioRouting {
    /// A VirtualService the user owns: sluice edits only the named `http` route's
    /// destinations (and mirror) and inserts its match routes before it; `service.hosts` and
    /// `service.gateways` stay empty (the VirtualService has its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_service_ref: Option<RouteRef>,
}

/// A rule of a route the user owns, in the Rollout's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteRef {
    /// The route object's name.
    pub name: String,
    /// The `name` of the rule (Istio `http[].name`, Gateway API `rules[].name`) whose traffic
    /// the rollout moves. While it runs, sluice owns that rule's destinations (Istio `route`,
    /// `mirror`, `mirrorPercentage`; Gateway API `backendRefs` and its own RequestMirror
    /// filter); every other field and rule stays the user's. On deletion of the Rollout the
    /// rule is put back as it was (kept meanwhile in the route's `sluice.dev/original-rules`
    /// annotation).
    pub rule_name: String,
}

impl Routing {
    /// The user's route and rule sluice edits, if the Rollout names one (either router).
    pub fn owned_route(&self) -> Option<&RouteRef> {
        match (&self.gateway_api, &self.istio) {
            (Some(g), _) => g.route_ref.as_ref(),
            (None, Some(i)) => i.virtual_service_ref.as_ref(),
            (None, None) => None,
        }
    }
}

/// The Gateway API route kind sluice writes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum RouteKind {
    #[default]
    #[serde(rename = "HTTPRoute")]
    Http,
    #[serde(rename = "GRPCRoute")]
    Grpc,
}

impl RouteKind {
    pub fn is_http(&self) -> bool {
        *self == RouteKind::Http
    }
}

/// A Gateway API `parentRef`: the fields mean what they mean there.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParentRef {
    /// API group of the parent; default `gateway.networking.k8s.io`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind of the parent; default `Gateway`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Namespace of the parent; default the Rollout's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    /// A listener of the Gateway (or a port name of a Service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Strategy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStrategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dark_launch: Option<DarkLaunchStrategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ab_test: Option<AbTestStrategy>,
}

/// Weighted canary: either an explicit `steps` list or `stepWeight` up to `maxWeight`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanaryStrategy {
    /// Canary weights in percent, strictly increasing, each 1..=100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_weight: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_weight: Option<u32>,
    /// Sticky sessions (Flagger's `sessionAffinity`): a client that reached the new version
    /// at a step gets a cookie from its responses and keeps reaching it at the following
    /// steps; on rollback or promotion the cookie route goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity: Option<SessionAffinity>,
}

/// The cookie that pins a client to the new version during a canary.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionAffinity {
    /// Cookie name (an RFC 6265 token); default `sluice-canary`.
    #[serde(default = "default_cookie_name")]
    pub cookie_name: String,
    /// How long the browser keeps the cookie (Go-style duration, whole seconds; default 1h).
    /// A cookie outlives the rollout by up to this: a client that still holds it reaches the
    /// next rollout's new version from its first step.
    #[serde(default = "default_max_age")]
    pub max_age: String,
}

fn default_cookie_name() -> String {
    "sluice-canary".into()
}
fn default_max_age() -> String {
    "1h".into()
}

impl CanaryStrategy {
    /// The weights this canary walks through. Assumes a validated spec; on an invalid one it
    /// returns what it can (never panics).
    pub fn weights(&self) -> Vec<u32> {
        if let Some(steps) = &self.steps {
            return steps.clone();
        }
        match (self.step_weight, self.max_weight) {
            (Some(step), max) if step > 0 => {
                let max = max.unwrap_or(100).min(100);
                let mut out = Vec::new();
                let mut w = step;
                while w <= max {
                    out.push(w);
                    w += step;
                }
                out
            }
            _ => Vec::new(),
        }
    }
}

/// Matching requests go to the new version; optionally a percentage of the rest is mirrored
/// to it (responses from the mirror are discarded). Optionally followed by a canary ramp.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DarkLaunchStrategy {
    #[serde(rename = "match")]
    pub matches: Vec<HttpMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_percent: Option<u32>,
    /// Analysis passes required before the dark launch ends.
    #[serde(default = "default_iterations")]
    pub iterations: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub then_canary: Option<CanaryStrategy>,
}

/// A cohort chosen by header/cookie sees B for `iterations` analysis passes; then B is judged
/// against A and promoted or rolled back.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AbTestStrategy {
    #[serde(rename = "match")]
    pub matches: Vec<HttpMatch>,
    #[serde(default = "default_iterations")]
    pub iterations: u32,
}

fn default_iterations() -> u32 {
    1
}

/// One request match, as Istio's HTTPMatchRequest for headers: all headers must match.
/// Cookies are matched through the `cookie` header (e.g. `regex: "^(.*?;)?(user=test)(;.*)?$"`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpMatch {
    #[serde(default)]
    pub headers: BTreeMap<String, StringMatch>,
}

/// Exactly one of `exact`, `prefix`, `regex` (RE2 syntax, as Istio and Envoy use).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StringMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Analysis {
    /// Time between checks, Go-style duration (`500ms`, `30s`, `1m`, `1h30m`).
    #[serde(default = "default_interval")]
    pub interval: String,
    /// Failed checks in a row before rollback.
    #[serde(default = "default_failure_limit")]
    pub failure_limit: u32,
    /// Inconclusive checks in a row before the rollout pauses (inconclusive never passes).
    #[serde(default = "default_inconclusive_limit")]
    pub inconclusive_limit: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Provider>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metric>,
    /// Shared metrics: `AnalysisTemplate`s (this namespace) or `ClusterAnalysisTemplate`s by
    /// name, with arguments. Their metrics run next to `metrics`, re-read at every check.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub templates: Vec<TemplateRef>,
    /// While a `compare` judge gathers evidence ("about N more requests"), its Inconclusive
    /// checks do not count towards `inconclusiveLimit` for this long into a step (Go-style
    /// duration; default 10m). Then `lowTraffic` decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gather_for: Option<String>,
    /// What to do when the evidence still does not suffice after `gatherFor` (a canary with
    /// too little traffic): `pause` (default: gathering checks count towards
    /// `inconclusiveLimit` again) or `wait` (keep gathering).
    #[serde(default, skip_serializing_if = "LowTraffic::is_pause")]
    pub low_traffic: LowTraffic,
}

/// A reference to an analysis template, with the values of its arguments.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateRef {
    /// The template's `metadata.name`.
    pub name: String,
    /// `true`: a `ClusterAnalysisTemplate`; `false` (default): an `AnalysisTemplate` in the
    /// Rollout's namespace (standalone: a template file in the Rollouts' directory).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cluster_scope: bool,
    /// Argument values by name; arguments the template declares with a `default` may be left
    /// out.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, ArgValue>,
    /// Set by sluice on the spec it runs: the template's resourceVersion (Kubernetes) or
    /// content hash (files) its metrics were taken from. Leave it out: a written value is
    /// replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_version: Option<String>,
}

impl TemplateRef {
    /// `AnalysisTemplate errors@17` once resolved (what the status records), else `None`.
    pub fn recorded(&self) -> Option<String> {
        let kind = if self.cluster_scope {
            "ClusterAnalysisTemplate"
        } else {
            "AnalysisTemplate"
        };
        self.resolved_version
            .as_ref()
            .map(|v| format!("{kind} {}@{v}", self.name))
    }
}

/// An argument value: a number or a string (`1.5`, `"reviews"`, `"30s"`); the template's
/// declared `type` says which it must be.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum ArgValue {
    Number(f64),
    Text(String),
}

impl std::fmt::Display for ArgValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArgValue::Number(n) => write!(f, "{n}"),
            ArgValue::Text(t) => f.write_str(t),
        }
    }
}

// A number or a string: the API server's structural schemas allow a node without `type` only
// with `x-kubernetes-preserve-unknown-fields` (`int-or-string` would refuse `0.5`).
impl JsonSchema for ArgValue {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ArgValue".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A number or a string.",
            "x-kubernetes-preserve-unknown-fields": true
        })
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LowTraffic {
    #[default]
    Pause,
    Wait,
}

impl LowTraffic {
    pub fn is_pause(&self) -> bool {
        *self == LowTraffic::Pause
    }
}

/// Default `analysis.gatherFor`.
pub const DEFAULT_GATHER_FOR: std::time::Duration = std::time::Duration::from_secs(600);

impl Default for Analysis {
    fn default() -> Self {
        Analysis {
            interval: default_interval(),
            failure_limit: default_failure_limit(),
            inconclusive_limit: default_inconclusive_limit(),
            provider: None,
            metrics: Vec::new(),
            templates: Vec::new(),
            gather_for: None,
            low_traffic: LowTraffic::Pause,
        }
    }
}

fn default_interval() -> String {
    "1m".into()
}
fn default_failure_limit() -> u32 {
    2
}
fn default_inconclusive_limit() -> u32 {
    3
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Provider {
    pub prometheus: PrometheusProvider,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrometheusProvider {
    pub address: String,
    /// Per-query timeout (Go-style duration); default 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Which data plane's series the builtin metrics query: `istio` or `envoy`.
    /// Default: `istio` for a `targetRef`, `envoy` for `upstreams`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_plane: Option<DataPlane>,
    /// Bearer token read from this file (never inline: secrets stay out of specs and status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_file: Option<String>,
    /// Basic auth: username inline, password from a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    /// Extra HTTP headers sent with every query (e.g. `X-Scope-OrgID` for Mimir/Cortex).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    pub password_file: String,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DataPlane {
    Istio,
    Envoy,
}

/// One check. Exactly one of `builtin` / `query`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metric {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builtin: Option<BuiltinMetric>,
    /// PromQL template; variables: `{{ namespace }}`, `{{ name }}`, `{{ target }}`,
    /// `{{ stable }}`, `{{ canary }}`, `{{ interval }}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(default)]
    pub thresholds: Thresholds,
    /// Below this many requests in the window the check is Inconclusive (never Pass, never Fail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_requests: Option<f64>,
    /// Query window for this metric; defaults to `analysis.interval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Compare the canary against stable on the same window with a statistical test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare: Option<Comparison>,
    /// `enforce` (default): the check decides. `shadow`: judged, recorded, charted and
    /// notified as "would have failed", but never changes the rollout — to watch a new metric
    /// before trusting it.
    #[serde(default, skip_serializing_if = "MetricMode::is_enforce")]
    pub mode: MetricMode,
    /// One Fail of this check rolls back at once, whatever `failureLimit` says.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub critical: bool,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "kebab-case")]
pub enum MetricMode {
    #[default]
    Enforce,
    Shadow,
}

impl MetricMode {
    pub fn is_enforce(&self) -> bool {
        *self == MetricMode::Enforce
    }
}

impl Analysis {
    /// The metric a check result is named after, if it is one of this analysis' metrics (a
    /// webhook check is not).
    pub fn metric(&self, name: &str) -> Option<&Metric> {
        self.metrics.iter().find(|m| m.name == name)
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum BuiltinMetric {
    /// Percentage of non-5xx responses.
    RequestSuccessRate,
    /// p99 request duration in milliseconds.
    RequestDuration,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Thresholds {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// Statistical comparison of canary against stable.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Comparison {
    /// `latency` (Mann-Whitney U + Hodges-Lehmann interval + tail check) or `error-rate`
    /// (sequential test on counts, may stop early).
    pub kind: ComparisonKind,
    /// Which direction is worse: `higher` (latency, errors) or `lower` (success rate).
    #[serde(default = "default_worse")]
    pub worse: Direction,
    /// Allowed degradation, relative (0.1 = 10% worse is tolerated).
    #[serde(default = "default_margin")]
    pub margin: f64,
    /// Confidence level, e.g. 0.95. For `error-rate`, `1 − confidence` is the declared
    /// false-Fail rate (a canary within the margin failed).
    #[serde(default = "default_confidence")]
    pub confidence: f64,
    /// `error-rate` only: the smallest degradation the test must catch, as a ratio of stable's
    /// error rate (`2x`) or in percentage points above it (`+0.5pp`). Default `2x`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detect: Option<String>,
    /// `error-rate` only: probability of failing a canary degraded by `detect`; `1 − power` is
    /// the declared false-Pass rate. Default 0.95.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power: Option<f64>,
}

/// The `detect` of a comparison, parsed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Detect {
    /// Canary's error rate at least this multiple of stable's.
    Ratio(f64),
    /// Canary's error rate at least this many percentage points above stable's (a fraction:
    /// `+0.5pp` is 0.005).
    Points(f64),
}

/// Default `detect`: a doubling of the error rate.
pub const DEFAULT_DETECT: Detect = Detect::Ratio(2.0);
/// Default `power`.
pub const DEFAULT_POWER: f64 = 0.95;

impl Detect {
    /// `2x`, `1.5x`, `+0.5pp`, `0.5pp`. Only the syntax is checked here; the relation to the
    /// margin is checked by validation.
    pub fn parse(text: &str) -> Result<Detect, String> {
        let t = text.trim();
        let syntax =
            || format!("`{text}` is not `<ratio>x` (e.g. `2x`) or `+<points>pp` (e.g. `+0.5pp`)");
        let number = |s: &str| -> Result<f64, String> {
            s.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(syntax)
        };
        if let Some(r) = t.strip_suffix('x') {
            let r = number(r)?;
            if r <= 1.0 {
                return Err(format!("`{text}`: a ratio must be above 1 (e.g. `2x`)"));
            }
            Ok(Detect::Ratio(r))
        } else if let Some(pp) = t.strip_suffix("pp") {
            let pp = number(pp.strip_prefix('+').unwrap_or(pp))?;
            if !(pp > 0.0 && pp < 100.0) {
                return Err(format!(
                    "`{text}`: percentage points must be above 0 and below 100"
                ));
            }
            Ok(Detect::Points(pp / 100.0))
        } else {
            Err(syntax())
        }
    }
}

impl Comparison {
    /// `detect`, parsed, or the default. Validation has reported a bad one already.
    pub fn detect(&self) -> Result<Detect, String> {
        self.detect
            .as_deref()
            .map_or(Ok(DEFAULT_DETECT), Detect::parse)
    }
    pub fn power(&self) -> f64 {
        self.power.unwrap_or(DEFAULT_POWER)
    }
}

fn default_worse() -> Direction {
    Direction::Higher
}
fn default_margin() -> f64 {
    0.1
}
fn default_confidence() -> f64 {
    0.95
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ComparisonKind {
    Latency,
    ErrorRate,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    Higher,
    Lower,
}

/// Steps advance only inside one of the windows. Cron expressions: the usual 5-field crontab
/// (`min hour day-of-month month day-of-week`) or 6/7 fields with seconds first.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Schedule {
    pub windows: Vec<String>,
    /// IANA time zone name; default UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

/// A rollout that waits longer than `duration` for its canary to become ready (and, when
/// `covers` says so, for a gate webhook or a schedule window) fails with reason
/// `progressDeadlineExceeded`, all traffic on stable.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProgressDeadline {
    /// Go-style duration; default 10m.
    #[serde(default = "default_progress_deadline")]
    pub duration: String,
    /// Waits the deadline also covers, besides the canary's readiness: `gates` (confirm-*
    /// webhooks that keep saying no), `windows` (waiting for a schedule window).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub covers: Vec<DeadlineWait>,
}

impl Default for ProgressDeadline {
    fn default() -> Self {
        ProgressDeadline {
            duration: default_progress_deadline(),
            covers: Vec::new(),
        }
    }
}

fn default_progress_deadline() -> String {
    "10m".into()
}

/// A wait [`ProgressDeadline::covers`] may include.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum DeadlineWait {
    Gates,
    Windows,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Promotion {
    /// Wait for a `promote` command before the final promotion.
    #[serde(default)]
    pub manual: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Webhook {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: WebhookKind,
    pub url: String,
    /// Go-style duration; default 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Free-form values passed in the payload.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Name of an environment variable holding a bearer token sent as `Authorization`.
    /// Tokens come from env vars or files only, never inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_from_env: Option<String>,
    /// Path of a file holding a bearer token sent as `Authorization`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_from_file: Option<String>,
}

#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum WebhookKind {
    /// Before any traffic moves; failure aborts the rollout.
    PreRollout,
    /// Every analysis tick; failure counts as a failed check.
    Rollout,
    /// Gate before the rollout starts.
    ConfirmRollout,
    /// Gate before each weight increase.
    ConfirmTrafficIncrease,
    /// Gate before the final promotion.
    ConfirmPromotion,
    /// After success.
    PostRollout,
    /// On rollback.
    Rollback,
    /// On every transition.
    Event,
}

impl WebhookKind {
    pub const ALL: [WebhookKind; 8] = [
        WebhookKind::PreRollout,
        WebhookKind::Rollout,
        WebhookKind::ConfirmRollout,
        WebhookKind::ConfirmTrafficIncrease,
        WebhookKind::ConfirmPromotion,
        WebhookKind::PostRollout,
        WebhookKind::Rollback,
        WebhookKind::Event,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookKind::PreRollout => "pre-rollout",
            WebhookKind::Rollout => "rollout",
            WebhookKind::ConfirmRollout => "confirm-rollout",
            WebhookKind::ConfirmTrafficIncrease => "confirm-traffic-increase",
            WebhookKind::ConfirmPromotion => "confirm-promotion",
            WebhookKind::PostRollout => "post-rollout",
            WebhookKind::Rollback => "rollback",
            WebhookKind::Event => "event",
        }
    }
    /// Gates hold the rollout until every webhook of the kind answers 2xx.
    pub fn is_gate(self) -> bool {
        matches!(
            self,
            WebhookKind::PreRollout
                | WebhookKind::ConfirmRollout
                | WebhookKind::ConfirmTrafficIncrease
                | WebhookKind::ConfirmPromotion
        )
    }
}

/// A per-rollout notification sink. URLs come from files or env vars, never inline.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Notification {
    /// `slack` (incoming-webhook format) or `json`.
    #[serde(rename = "type")]
    pub kind: NotificationKind,
    /// Name of an environment variable holding the URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_from_env: Option<String>,
    /// Path of a file holding the URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_from_file: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum NotificationKind {
    Slack,
    Json,
}

// ---------------------------------------------------------------------------------------------
// Status
// ---------------------------------------------------------------------------------------------

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema, Default)]
pub enum Phase {
    /// Nothing to roll out: all traffic on stable.
    #[default]
    Idle,
    /// Moving through the steps.
    Progressing,
    /// Held: by a command, an inconclusive analysis, a manual promotion gate or a webhook gate.
    Paused,
    /// The new version is being made stable; traffic stays until stable runs it.
    Promoting,
    /// The new version is stable and takes all traffic.
    Succeeded,
    /// Rolled back (analysis, webhook or abort): all traffic on stable.
    Failed,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Idle => "Idle",
            Phase::Progressing => "Progressing",
            Phase::Paused => "Paused",
            Phase::Promoting => "Promoting",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
        }
    }
    /// A rollout in this phase is done until a new revision (or retry/undo) arrives.
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Idle | Phase::Succeeded | Phase::Failed)
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a rollout is paused or failed: machine-readable, for CLIs and exit codes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Reason {
    /// Paused by a `pause` command.
    PausedByUser,
    /// Inconclusive analysis reached `inconclusiveLimit`.
    Inconclusive,
    /// Waiting for a `promote` command (`promotion.manual`).
    AwaitingPromotion,
    /// Waiting for a confirm-* webhook to answer 2xx.
    AwaitingWebhook,
    /// Waiting for the current time to enter a schedule window.
    OutsideWindow,
    /// Waiting for the canary (or the promoted stable) to become ready.
    WaitingForReady,
    /// Failed analysis reached `failureLimit`.
    AnalysisFailed,
    /// A pre-rollout webhook failed.
    PreRolloutFailed,
    /// Stopped by an `abort` command.
    Aborted,
    /// Rolled back to the previous stable version by an `undo` command.
    Undone,
    /// Waited longer than `progressDeadline` (canary readiness, or a covered gate / window).
    ProgressDeadlineExceeded,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    #[serde(default)]
    pub phase: Phase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// Human-readable state, e.g. "step 2/3: 2 of 3 checks passed".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Index into the rollout's stages (see `engine::stages`).
    #[serde(default)]
    pub step_index: u32,
    /// Canary weight of the default route now applied.
    #[serde(default)]
    pub canary_weight: u32,
    /// Whether the applied plan sends any request (routed or mirrored) to the canary.
    /// `canaryWeight` alone cannot tell: header-matched and mirror-only plans have weight 0.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub canary_traffic: bool,
    /// The traffic plan the data plane last confirmed (written after the router applied it):
    /// what each version gets right now, in both modes and on every controller replica.
    /// `canaryWeight` is what the engine decided; this is what is served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_traffic: Option<crate::traffic::TrafficPlan>,
    /// Since when the rollout waits without progress (for the canary, or a wait
    /// `progressDeadline.covers`); cleared when it moves on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_since: Option<DateTime<Utc>>,
    /// Revision taking stable traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_revision: Option<String>,
    /// Revision under rollout (or last rolled out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_revision: Option<String>,
    /// Stable revision before the last promotion, for `undo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_stable_revision: Option<String>,
    /// Passed analysis checks in the current step.
    #[serde(default)]
    pub passed_checks: u32,
    #[serde(default)]
    pub consecutive_failures: u32,
    #[serde(default)]
    pub consecutive_inconclusive: u32,
    /// When the current step began (traffic applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_started_at: Option<DateTime<Utc>>,
    /// When the next analysis is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_analysis_at: Option<DateTime<Utc>>,
    /// Gates (webhook kinds) already passed for the current step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub passed_gates: Vec<WebhookKind>,
    /// A gate the engine is waiting on, with when it was requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_gate: Option<PendingGate>,
    /// The latest verdict per metric.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub last_verdicts: Vec<CheckResult>,
    /// The analysis templates the running spec took metrics from, as
    /// `<Kind> <name>@<version>`: a change is recorded in the history when a check uses it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub analysis_templates: Vec<String>,
    /// While the step's judges gather evidence: roughly how many more requests to the canary
    /// they need (the largest estimate of the enforcing checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub more_requests: Option<u64>,
    /// Workload changes the engine decided whose executor failed (e.g. a 403 on the canary
    /// scale-down): the decision stands, and these are retried, in order, before the next step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_effects: Vec<PendingEffect>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingGate {
    pub kind: WebhookKind,
    pub since: DateTime<Utc>,
    /// Last answer when it was not 2xx, for status/UI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// A workload change still to be carried out (see `RolloutStatus::pending_effects`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingEffect {
    pub action: WorkloadAction,
    /// The revision to promote or restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Why the last attempt failed (or which earlier effect it waits for).
    pub error: String,
    /// When the first attempt failed.
    pub since: DateTime<Utc>,
}

/// The workload operations of the engine (`engine::Effect`'s non-traffic, non-analysis part).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum WorkloadAction {
    ScaleUpCanary,
    ScaleDownCanary,
    PromoteCanary,
    RestoreStable,
}

impl WorkloadAction {
    /// What an error message calls it.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadAction::ScaleUpCanary => "scale up canary",
            WorkloadAction::ScaleDownCanary => "scale down canary",
            WorkloadAction::PromoteCanary => "promote",
            WorkloadAction::RestoreStable => "restore stable",
        }
    }
    /// Actions that undo each other: a later one of the same group replaces an earlier
    /// pending one (an abort's scale-down supersedes a pending scale-up).
    pub fn supersedes(self, other: WorkloadAction) -> bool {
        use WorkloadAction::*;
        matches!(
            (self, other),
            (
                ScaleUpCanary | ScaleDownCanary,
                ScaleUpCanary | ScaleDownCanary
            ) | (PromoteCanary | RestoreStable, PromoteCanary | RestoreStable)
        )
    }
}

/// Kubernetes-style condition.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: String,
    /// "True", "False" or "Unknown".
    pub status: String,
    pub reason: String,
    pub message: String,
    pub last_transition_time: DateTime<Utc>,
}

/// Pass, Fail or Inconclusive. Inconclusive never counts as a pass.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum Verdict {
    Pass,
    Fail,
    Inconclusive,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "Pass",
            Verdict::Fail => "Fail",
            Verdict::Inconclusive => "Inconclusive",
        }
    }
}

/// One metric's check at one moment: what the UI charts and the history keeps.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    pub metric: String,
    pub verdict: Verdict,
    /// The measured value (absent when there was none, e.g. empty result).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Why, in words: "success rate 97.2% < min 99%", "no data: 0/0 (no traffic)".
    pub reason: String,
    pub at: DateTime<Utc>,
    /// Inconclusive for want of evidence: roughly how many more requests to the canary a
    /// decision needs (the `compare` judge's estimate, or what `minRequests` still lacks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub more_requests: Option<u64>,
}

#[cfg(not(feature = "crd"))]
pub use plain::{ObjectMeta, Rollout};

/// `Rollout` without kube: the object as it appears in files and in the API server, with the
/// metadata fields sluice reads (the others are accepted and ignored, as Kubernetes' own
/// `ObjectMeta` does for fields it does not know).
#[cfg(not(feature = "crd"))]
pub mod plain {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};

    use super::{API_VERSION, KIND, RolloutSpec, RolloutStatus};

    #[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
    #[serde(rename_all = "camelCase")]
    pub struct ObjectMeta {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub namespace: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub labels: Option<BTreeMap<String, String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub annotations: Option<BTreeMap<String, String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub uid: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub resource_version: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub generation: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub finalizers: Option<Vec<String>>,
    }

    #[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[serde(rename_all = "camelCase")]
    pub struct Rollout {
        #[serde(default = "api_version")]
        pub api_version: String,
        #[serde(default = "kind")]
        pub kind: String,
        #[serde(default)]
        pub metadata: ObjectMeta,
        pub spec: RolloutSpec,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub status: Option<RolloutStatus>,
    }

    fn api_version() -> String {
        API_VERSION.to_string()
    }

    fn kind() -> String {
        KIND.to_string()
    }

    impl Rollout {
        /// The same constructor kube's derive generates.
        pub fn new(name: &str, spec: RolloutSpec) -> Self {
            Self {
                api_version: api_version(),
                kind: kind(),
                metadata: ObjectMeta {
                    name: Some(name.to_string()),
                    ..ObjectMeta::default()
                },
                spec,
                status: None,
            }
        }
    }
}

/// `url` with any credentials in it replaced by `***`, for every output a person or another
/// program reads (API, UI, CLI, logs): the authority's userinfo (`user:password@`) and every
/// query value (`?token=…`, a common way to pass a secret); parameter names stay. A string
/// that is not a URL is returned as it is.
pub fn redact_url_credentials(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => format!("***@{}", &authority[at + 1..]),
        None => authority.to_string(),
    };
    let (tail, fragment) = match tail.find('#') {
        Some(i) => tail.split_at(i),
        None => (tail, ""),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let masked: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, v)) if !v.is_empty() => format!("{k}=***"),
                    _ => pair.to_string(),
                })
                .collect();
            format!("{path}?{}", masked.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}{fragment}")
}

impl RolloutSpec {
    /// The spec as it may be shown: credentials in the Prometheus address and webhook URLs
    /// masked (the spec itself keeps them; queries and calls use the real values).
    pub fn redacted(&self) -> RolloutSpec {
        let mut spec = self.clone();
        if let Some(p) = spec.analysis.provider.as_mut() {
            p.prometheus.address = redact_url_credentials(&p.prometheus.address);
        }
        for w in &mut spec.webhooks {
            w.url = redact_url_credentials(&w.url);
        }
        spec
    }
}

impl Rollout {
    /// `namespace/name`, with `default` for objects without a namespace (standalone files).
    pub fn key(&self) -> String {
        format!(
            "{}/{}",
            self.metadata.namespace.as_deref().unwrap_or("default"),
            self.metadata.name.as_deref().unwrap_or("")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_are_masked_and_nothing_else_changes() {
        for (url, shown) in [
            (
                "http://user:s3cret@prom:9090/x?q=1",
                "http://***@prom:9090/x?q=***",
            ),
            (
                "https://hooks.example/c?token=s3cret&flag&empty=#frag",
                "https://hooks.example/c?token=***&flag&empty=#frag",
            ),
            (
                "https://s3cret@hooks.example/a@b",
                "https://***@hooks.example/a@b",
            ),
            ("http://u:p@ss@host", "http://***@host"),
            (
                "http://prometheus.istio-system:9090",
                "http://prometheus.istio-system:9090",
            ),
            (
                "http://host/path@not-userinfo",
                "http://host/path@not-userinfo",
            ),
            ("not a url", "not a url"),
        ] {
            assert_eq!(redact_url_credentials(url), shown, "{url}");
        }
        let spec: RolloutSpec = serde_yaml::from_str(
            "service: {port: 80}\nstrategy: {canary: {steps: [10]}}\nanalysis:\n  provider: \
             {prometheus: {address: 'http://u:pw@prom:9090'}}\nwebhooks:\n  - {name: g, type: \
             confirm-rollout, url: 'https://tok@hooks/x'}\n",
        )
        .expect("spec");
        let shown = serde_json::to_string(&spec.redacted()).expect("json");
        assert!(!shown.contains("pw") && !shown.contains("tok@"), "{shown}");
        assert!(shown.contains("http://***@prom:9090") && shown.contains("https://***@hooks/x"));
        assert!(
            serde_json::to_string(&spec)
                .expect("json")
                .contains("u:pw@"),
            "spec kept"
        );
    }

    /// Every reason as the API and the CRD send it (camelCase). The `match` makes a new
    /// variant a compile error here until it is listed.
    fn all_reasons() -> Vec<String> {
        let all = [
            Reason::PausedByUser,
            Reason::Inconclusive,
            Reason::AwaitingPromotion,
            Reason::AwaitingWebhook,
            Reason::OutsideWindow,
            Reason::WaitingForReady,
            Reason::AnalysisFailed,
            Reason::PreRolloutFailed,
            Reason::Aborted,
            Reason::Undone,
            Reason::ProgressDeadlineExceeded,
        ];
        all.iter()
            .map(|r| {
                match r {
                    Reason::PausedByUser
                    | Reason::Inconclusive
                    | Reason::AwaitingPromotion
                    | Reason::AwaitingWebhook
                    | Reason::OutsideWindow
                    | Reason::WaitingForReady
                    | Reason::AnalysisFailed
                    | Reason::PreRolloutFailed
                    | Reason::Aborted
                    | Reason::Undone
                    | Reason::ProgressDeadlineExceeded => {}
                }
                serde_json::to_value(r)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default()
            })
            .collect()
    }

    /// docs/engine.md's table of `status.reason` lists exactly the reasons, spelled as sent.
    #[test]
    fn the_engine_docs_spell_every_reason_as_the_api_sends_it() {
        let doc = include_str!("../../../docs/engine.md");
        let section = doc
            .split("\n## Phases and reasons\n")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .expect("a Phases and reasons section");
        let mut documented: Vec<String> = section
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split('`').next())
            .filter(|name| *name != "status.reason")
            .map(String::from)
            .collect();
        documented.sort();
        let mut sent = all_reasons();
        sent.sort();
        assert_eq!(documented, sent);
    }

    /// Nowhere in the docs is a reason written the Rust way (`Paused/Inconclusive`, "reason
    /// `OutsideWindow`"): the API, the CRD and `kubectl` show `inconclusive`, `outsideWindow`.
    #[test]
    fn no_doc_spells_a_reason_in_pascal_case() {
        let docs = [
            ("README.md", include_str!("../../../README.md")),
            ("docs/engine.md", include_str!("../../../docs/engine.md")),
            ("docs/api.md", include_str!("../../../docs/api.md")),
            ("docs/ci.md", include_str!("../../../docs/ci.md")),
            (
                "docs/standalone.md",
                include_str!("../../../docs/standalone.md"),
            ),
            (
                "docs/observability.md",
                include_str!("../../../docs/observability.md"),
            ),
            (
                "docs/analysis.md",
                include_str!("../../../docs/analysis.md"),
            ),
            ("docs/envoy.md", include_str!("../../../docs/envoy.md")),
            (
                "docs/kubernetes.md",
                include_str!("../../../docs/kubernetes.md"),
            ),
            (
                "docs/rollout-spec.md",
                include_str!("../../../docs/rollout-spec.md"),
            ),
        ];
        for camel in all_reasons() {
            let pascal = format!("{}{}", camel[..1].to_uppercase(), &camel[1..]);
            for (name, text) in docs {
                for wrong in [
                    format!("Paused/{pascal}"),
                    format!("Failed/{pascal}"),
                    format!("Progressing/{pascal}"),
                    format!("reason `{pascal}`"),
                    format!("reason: {pascal}"),
                    format!("\"reason\": \"{pascal}\""),
                    format!("| `{pascal}` | Paused"),
                    format!("| `{pascal}` | Failed"),
                    format!("| `{pascal}` | Progressing"),
                ] {
                    assert!(
                        !text.contains(&wrong),
                        "{name} says {wrong:?}; the API sends {camel}"
                    );
                }
            }
        }
    }
}
