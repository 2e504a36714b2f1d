//! Translating rollouts' [`TrafficPlan`]s into Envoy v3 configuration (pure, no I/O).
//!
//! One Envoy serves every standalone rollout:
//!
//! - **Bootstrap** ([`bootstrap`]): admin on 127.0.0.1, one static listener whose
//!   HttpConnectionManager takes its routes from RDS, and CDS; both RDS and CDS are
//!   file-based (`path_config_source` + `watched_directory`), so a rename in the xDS directory
//!   is an atomic swap Envoy picks up within milliseconds.
//! - **CDS** ([`XdsConfig::clusters`]): two clusters per rollout, `{prefix}-stable` and
//!   `{prefix}-canary` ([`cluster_name`]), STATIC for IP addresses, STRICT_DNS for host names.
//! - **RDS** ([`XdsConfig::route_config`]): one RouteConfiguration ([`ROUTE_CONFIG_NAME`],
//!   `validate_clusters: true` so a route naming a missing cluster is rejected instead of
//!   answering 503), one virtual host per rollout, selected by `spec.service.hosts` (the
//!   rollout name by default; plus `*` when there is exactly one rollout, so a bare
//!   `curl 127.0.0.1:PORT` works).
//!
//! Routes keep the plan's order. A plan route matching any of several [`HttpMatch`]es (OR)
//! becomes one Envoy route per match (Envoy ANDs the header matchers of one route). Weights
//! become `weighted_clusters` (relative weights; Envoy 1.40 deprecates `total_weight`), a
//! mirror becomes a `request_mirror_policies` entry with a `runtime_fraction`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::{Value, json};

use sluice_core::spec::{HttpMatch, Rollout, StringMatch};
use sluice_core::traffic::{Destination, Route, TrafficPlan, WeightedDestination};

/// Name of the one RouteConfiguration every rollout's virtual host lives in.
pub const ROUTE_CONFIG_NAME: &str = "sluice";
/// `stat_prefix` of the listener's HttpConnectionManager (`http.sluice.*` stats).
pub const STAT_PREFIX: &str = "sluice";
/// File names inside the xDS directory.
/// JSON rather than YAML: Envoy parses JSON several times faster (it reads the whole file on
/// every change).
pub const CDS_FILE: &str = "cds.json";
pub const RDS_FILE: &str = "rds.json";
/// Name of the static cluster through which Envoy reaches sluice's ADS server.
pub const XDS_CLUSTER: &str = "sluice_xds";

const CLUSTER_TYPE: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const ROUTE_TYPE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
const HCM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const ROUTER_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("metadata.name is required for the Envoy router")]
    MissingName,
    #[error("{rollout}: spec.upstreams is required for the Envoy router")]
    MissingUpstreams { rollout: String },
    #[error("{rollout}: spec.upstreams.{field}: {reason} (got {value:?}, want host:port)")]
    BadAddress {
        rollout: String,
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("{rollout}: traffic plan: {reason}")]
    BadPlan { rollout: String, reason: String },
    #[error("{rollout}: {path}: exactly one of exact, prefix, regex is required")]
    BadStringMatch { rollout: String, path: String },
    #[error("{rollout}: {path}.regex: {reason}")]
    BadRegex {
        rollout: String,
        path: String,
        reason: String,
    },
    #[error(
        "{first} and {second} would both own Envoy clusters {prefix}-stable/-canary; rename one"
    )]
    DuplicateClusters {
        prefix: String,
        first: String,
        second: String,
    },
    #[error("host {host:?} is claimed by both {first} and {second} (spec.service.hosts)")]
    DuplicateHost {
        host: String,
        first: String,
        second: String,
    },
}

pub use sluice_core::traffic::{cluster_name, name_prefix};

/// An upstream address, `host:port` (IPv6 as `[::1]:port`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    pub host: String,
    pub port: u16,
}

impl Upstream {
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        let (host, port) = s.rsplit_once(':').ok_or("missing :port")?;
        let port: u16 = port.parse().map_err(|_| "port is not a number 1..=65535")?;
        if port == 0 {
            return Err("port 0 is not an address");
        }
        let bracketed = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
        if bracketed.is_none() && host.contains(':') {
            return Err("an IPv6 address needs brackets, e.g. [::1]:8080");
        }
        let host = bracketed.unwrap_or(host);
        if host.is_empty() {
            return Err("missing host");
        }
        if host.contains(['/', ' ', '[', ']']) {
            return Err("host contains / [ ] or a space");
        }
        if host.contains(':') && host.parse::<IpAddr>().is_err() {
            return Err("host with ':' must be an IPv6 address in brackets");
        }
        Ok(Upstream {
            host: host.to_string(),
            port,
        })
    }

    fn is_ip(&self) -> bool {
        self.host.parse::<IpAddr>().is_ok()
    }
}

/// What the router needs of one rollout: identity, hosts and upstream addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteTarget {
    pub namespace: Option<String>,
    pub name: String,
    /// Host names selecting this rollout's virtual host (never empty).
    pub hosts: Vec<String>,
    pub stable: Upstream,
    pub canary: Upstream,
}

impl RouteTarget {
    pub fn from_rollout(rollout: &Rollout) -> Result<Self, Error> {
        let key = rollout.key();
        let name = rollout
            .metadata
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .ok_or(Error::MissingName)?;
        let up = rollout
            .spec
            .upstreams
            .as_ref()
            .ok_or_else(|| Error::MissingUpstreams {
                rollout: key.clone(),
            })?;
        let parse = |field: &'static str, value: &str| {
            Upstream::parse(value).map_err(|reason| Error::BadAddress {
                rollout: key.clone(),
                field,
                value: value.to_string(),
                reason,
            })
        };
        let hosts = if rollout.spec.service.hosts.is_empty() {
            vec![name.clone()]
        } else {
            rollout.spec.service.hosts.clone()
        };
        Ok(RouteTarget {
            namespace: rollout.metadata.namespace.clone(),
            name,
            hosts,
            stable: parse("stable", &up.stable)?,
            canary: parse("canary", &up.canary)?,
        })
    }

    pub fn key(&self) -> String {
        format!(
            "{}/{}",
            self.namespace.as_deref().unwrap_or("default"),
            self.name
        )
    }

    pub fn cluster(&self, dest: Destination) -> String {
        cluster_name(self.namespace.as_deref(), &self.name, dest)
    }

    fn upstream(&self, dest: Destination) -> &Upstream {
        match dest {
            Destination::Stable => &self.stable,
            Destination::Canary => &self.canary,
        }
    }
}

/// The resources sluice hands to Envoy: clusters (CDS) and the one route configuration (RDS).
#[derive(Clone, Debug, PartialEq)]
pub struct XdsConfig {
    pub clusters: Vec<Value>,
    pub route_config: Value,
}

impl XdsConfig {
    /// Names of the clusters, in order.
    pub fn cluster_names(&self) -> Vec<String> {
        self.clusters
            .iter()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect()
    }
}

/// One rollout's share of the configuration: its two clusters and its virtual host (without
/// the catch-all `*` a lone rollout gets: see [`with_catch_all`]).
#[derive(Clone, Debug, PartialEq)]
pub struct RolloutConfig {
    /// `namespace/name`.
    pub key: String,
    /// Cluster name prefix (also the virtual host's name).
    pub prefix: String,
    pub clusters: Vec<Value>,
    pub virtual_host: Value,
    /// The virtual host's domains, lower-cased, each once.
    pub domains: Vec<String>,
}

/// Translate one rollout's plan on its own. What only the whole set can tell (two rollouts
/// sharing a host or a cluster prefix) is checked by [`translate`] and by the router's index.
pub fn translate_rollout(target: &RouteTarget, plan: &TrafficPlan) -> Result<RolloutConfig, Error> {
    let key = target.key();
    plan.check().map_err(|reason| Error::BadPlan {
        rollout: key.clone(),
        reason,
    })?;
    // `default/shop-cart` and `shop/cart` flatten to the same cluster names.
    let prefix = name_prefix(target.namespace.as_deref(), &target.name);
    let clusters = [Destination::Stable, Destination::Canary]
        .into_iter()
        .map(|dest| cluster(&target.cluster(dest), target.upstream(dest)))
        .collect();
    let mut domains: Vec<String> = Vec::new();
    for host in &target.hosts {
        // Listed twice by the same rollout: once is enough.
        let lower = host.to_ascii_lowercase();
        if !domains.contains(&lower) {
            domains.push(lower);
        }
    }
    let mut routes = Vec::new();
    for (i, route) in plan.routes.iter().enumerate() {
        routes.extend(envoy_routes(target, &key, i, route)?);
    }
    let virtual_host = json!({
        "name": prefix,
        "domains": domains,
        "routes": routes,
    });
    Ok(RolloutConfig {
        key,
        prefix,
        clusters,
        virtual_host,
        domains,
    })
}

impl RolloutConfig {
    pub fn cluster_names(&self) -> std::collections::BTreeSet<String> {
        self.clusters
            .iter()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect()
    }
}

/// `vhost` answering every host as well (`*`): the lone rollout's, so a bare
/// `curl 127.0.0.1:PORT` works.
pub fn with_catch_all(vhost: &Value) -> Value {
    let mut v = vhost.clone();
    if let Some(domains) = v["domains"].as_array_mut()
        && !domains.iter().any(|d| d == "*")
    {
        domains.push(json!("*"));
    }
    v
}

/// The one RouteConfiguration holding `virtual_hosts` (file-based RDS).
pub fn route_configuration(virtual_hosts: Vec<Value>) -> Value {
    json!({
        "@type": ROUTE_TYPE,
        "name": ROUTE_CONFIG_NAME,
        "validate_clusters": true,
        "virtual_hosts": virtual_hosts,
    })
}

/// Translate every rollout's current plan (any order; output is sorted by rollout key so the
/// same inputs always give the same bytes).
pub fn translate(entries: &[(RouteTarget, TrafficPlan)]) -> Result<XdsConfig, Error> {
    let mut sorted: Vec<&(RouteTarget, TrafficPlan)> = entries.iter().collect();
    sorted.sort_by_key(|(t, _)| t.key());
    let mut configs = Vec::new();
    let mut claims = Claims::default();
    for (target, plan) in &sorted {
        let cfg = translate_rollout(target, plan)?;
        claims.claim(&cfg)?;
        configs.push(cfg);
    }
    Ok(assemble(configs.iter()))
}

/// The whole configuration from per-rollout pieces (already checked against each other), in
/// the order given.
pub fn assemble<'a>(configs: impl ExactSizeIterator<Item = &'a RolloutConfig>) -> XdsConfig {
    let lone = configs.len() == 1;
    let mut clusters = Vec::new();
    let mut virtual_hosts = Vec::new();
    for cfg in configs {
        clusters.extend(cfg.clusters.iter().cloned());
        virtual_hosts.push(if lone {
            with_catch_all(&cfg.virtual_host)
        } else {
            cfg.virtual_host.clone()
        });
    }
    XdsConfig {
        clusters,
        route_config: route_configuration(virtual_hosts),
    }
}

/// Who owns which host and cluster prefix: Envoy rejects a route config with one domain in two
/// virtual hosts, and two rollouts must not share clusters. Kept up to date one rollout at a
/// time, so checking a change costs O(its hosts), not O(rollouts).
#[derive(Clone, Debug, Default)]
pub struct Claims {
    hosts: BTreeMap<String, String>,
    prefixes: BTreeMap<String, String>,
}

impl Claims {
    /// Record `cfg`'s hosts and prefix, or say who already holds one (nothing recorded then).
    pub fn claim(&mut self, cfg: &RolloutConfig) -> Result<(), Error> {
        if let Some(first) = self.prefixes.get(&cfg.prefix)
            && *first != cfg.key
        {
            return Err(Error::DuplicateClusters {
                prefix: cfg.prefix.clone(),
                first: first.clone(),
                second: cfg.key.clone(),
            });
        }
        for host in &cfg.domains {
            if let Some(first) = self.hosts.get(host)
                && *first != cfg.key
            {
                return Err(Error::DuplicateHost {
                    host: host.clone(),
                    first: first.clone(),
                    second: cfg.key.clone(),
                });
            }
        }
        self.prefixes.insert(cfg.prefix.clone(), cfg.key.clone());
        for host in &cfg.domains {
            self.hosts.insert(host.clone(), cfg.key.clone());
        }
        Ok(())
    }

    /// Forget what `cfg` held.
    pub fn release(&mut self, cfg: &RolloutConfig) {
        if self.prefixes.get(&cfg.prefix) == Some(&cfg.key) {
            self.prefixes.remove(&cfg.prefix);
        }
        for host in &cfg.domains {
            if self.hosts.get(host) == Some(&cfg.key) {
                self.hosts.remove(host);
            }
        }
    }
}

fn cluster(name: &str, up: &Upstream) -> Value {
    let mut c = json!({
        "@type": CLUSTER_TYPE,
        "name": name,
        "type": if up.is_ip() { "STATIC" } else { "STRICT_DNS" },
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                "address": up.host,
                "port_value": up.port,
            }}}}]}],
        },
    });
    if !up.is_ip() {
        // Demo backends listen on IPv4 only; `localhost` must not resolve to ::1 first.
        c["dns_lookup_family"] = json!("V4_PREFERRED");
    }
    c
}

/// One plan route → one Envoy route per OR-ed match (or one catch-all route).
fn envoy_routes(
    target: &RouteTarget,
    key: &str,
    index: usize,
    route: &Route,
) -> Result<Vec<Value>, Error> {
    let (action, headers) = route_action(target, route);
    let name = |m: Option<usize>| match m {
        Some(m) => format!("routes[{index}].matches[{m}]"),
        None => format!("routes[{index}]"),
    };
    let with_headers = |mut r: Value| {
        if let Some(h) = &headers {
            r["response_headers_to_add"] = h.clone();
        }
        r
    };
    if route.matches.is_empty() {
        return Ok(vec![with_headers(json!({
            "name": name(None),
            "match": {"prefix": "/"},
            "route": action,
        }))]);
    }
    let mut out = Vec::new();
    for (m, hm) in route.matches.iter().enumerate() {
        let path = name(Some(m));
        out.push(with_headers(json!({
            "name": path,
            "match": {"prefix": "/", "headers": header_matchers(key, &path, hm)?},
            "route": action.clone(),
        })));
    }
    Ok(out)
}

/// `response_headers_to_add` for a destination's `Set-Cookie` (sticky sessions). Appended, so
/// the upstream's own cookies stay.
fn set_cookie_headers(d: &WeightedDestination) -> Option<Value> {
    d.set_cookie.as_ref().map(|c| {
        json!([{
            "header": {"key": "set-cookie", "value": c.header_value()},
            "append_action": "APPEND_IF_EXISTS_OR_ADD",
        }])
    })
}

fn header_matchers(key: &str, path: &str, m: &HttpMatch) -> Result<Vec<Value>, Error> {
    m.headers
        .iter()
        .map(|(name, sm)| {
            let at = format!("{path}.headers.{name}");
            if let Some(re) = &sm.regex {
                // Envoy (RE2) would reject the whole route config; catch it here with the field
                // path. Rust's regex syntax is close to RE2's (no backreferences, no lookaround).
                regex::Regex::new(re).map_err(|e| Error::BadRegex {
                    rollout: key.to_string(),
                    path: at.clone(),
                    reason: e.to_string().lines().last().unwrap_or("invalid").to_string(),
                })?;
                // What RE2 refuses though Rust's regex takes it (program size, repeat count).
                if let Some(reason) = sluice_core::validate::re2::envoy_refusal(re) {
                    return Err(Error::BadRegex {
                        rollout: key.to_string(),
                        path: at,
                        reason,
                    });
                }
            }
            string_match(sm)
                .map(|string_match| json!({"name": name.to_ascii_lowercase(), "string_match": string_match}))
                .ok_or_else(|| Error::BadStringMatch {
                    rollout: key.to_string(),
                    path: at,
                })
        })
        .collect()
}

fn string_match(sm: &StringMatch) -> Option<Value> {
    match (&sm.exact, &sm.prefix, &sm.regex) {
        (Some(v), None, None) => Some(json!({"exact": v})),
        (None, Some(v), None) => Some(json!({"prefix": v})),
        (None, None, Some(v)) => Some(json!({"safe_regex": {"regex": v}})),
        _ => None,
    }
}

/// The route action, and the response headers of a route with a single cluster (with weighted
/// clusters they sit on the cluster entry: only that cluster's answers carry them).
fn route_action(target: &RouteTarget, route: &Route) -> (Value, Option<Value>) {
    // Merge duplicate destinations and drop zero weights: Envoy needs a positive total, and a
    // cluster listed with weight 0 would only clutter the config dump.
    let mut weights: BTreeMap<Destination, u32> = BTreeMap::new();
    let mut headers: BTreeMap<Destination, Value> = BTreeMap::new();
    for d in &route.destinations {
        *weights.entry(d.destination).or_default() += d.weight;
        if let Some(h) = set_cookie_headers(d)
            && d.weight > 0
        {
            headers.insert(d.destination, h);
        }
    }
    weights.retain(|_, w| *w > 0);
    let single: Vec<Destination> = weights.keys().copied().collect();
    let mut route_headers = None;
    let mut action = if let [dest] = single.as_slice() {
        route_headers = headers.get(dest).cloned();
        json!({"cluster": target.cluster(*dest)})
    } else {
        let clusters: Vec<Value> = weights
            .iter()
            .map(|(dest, w)| {
                let mut c = json!({"name": target.cluster(*dest), "weight": w});
                if let Some(h) = headers.get(dest) {
                    c["response_headers_to_add"] = h.clone();
                }
                c
            })
            .collect();
        json!({"weighted_clusters": {"clusters": clusters}})
    };
    if let Some(mirror) = &route.mirror {
        action["request_mirror_policies"] = json!([{
            "cluster": target.cluster(mirror.destination),
            "runtime_fraction": {"default_value": {
                "numerator": mirror.percent.min(100),
                "denominator": "HUNDRED",
            }},
        }]);
    }
    (action, route_headers)
}

/// A file-based xDS document: what Envoy reads from `cds.yaml` / `rds.yaml`.
pub fn discovery_response(version: &str, resources: &[Value]) -> Value {
    json!({"version_info": version, "resources": resources})
}

/// Content version: FNV-1a of the serialized resources, so identical content always carries
/// the same version (also across sluice restarts) and a confirmation cannot be fooled by an
/// older config that happened to carry the same counter value.
pub fn content_version(resources: &[Value]) -> String {
    let bytes = serde_json::to_vec(resources).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Where Envoy gets its clusters and routes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum XdsSource {
    /// sluice's ADS server (delta gRPC) at `host:port`.
    Ads { host: String, port: u16 },
    /// Files in `dir`, an absolute path (Envoy resolves paths from its own cwd).
    Files { dir: String },
}

/// Where Envoy listens and finds its configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootstrapOptions {
    pub xds: XdsSource,
    pub listen_address: String,
    pub listen_port: u16,
    pub admin_port: u16,
}

/// The Envoy stats sluice, its builtin queries and the demo read (Envoy's names, before the
/// Prometheus renaming): per-cluster request counts by code / code class, the latency
/// histogram, requests in flight and resets; the xDS update counters and versions the router
/// and the tests check; the ADS connection state. Everything else (≈ 340 series per rollout)
/// is never created, so `/stats/prometheus` stays small at thousands of rollouts.
pub const STATS_INCLUDED: &[(&str, &str)] = &[
    // Envoy's regexes match the whole name. `[^.]+`: not `cluster.X.external.upstream_rq_*`
    // (a copy of each series); Envoy's own tag extraction cuts cluster names at the first dot
    // too, so a dotted name had no usable per-cluster series before either.
    (
        "safe_regex",
        r"cluster\.[^.]+\.upstream_rq_([1-5]xx|[1-5][0-9][0-9]|total|active|time|rx_reset)",
    ),
    ("prefix", "cluster_manager.cds."),
    ("prefix", "http.sluice.rds."),
    ("prefix", "http.sluice.vhds."),
    ("prefix", "control_plane."),
    ("exact", "server.live"),
    ("exact", "server.state"),
    ("exact", "server.uptime"),
];

fn stats_config() -> Value {
    let patterns: Vec<Value> = STATS_INCLUDED
        .iter()
        .map(|(kind, v)| match *kind {
            "safe_regex" => json!({"safe_regex": {"regex": v}}),
            _ => json!({ *kind: v }),
        })
        .collect();
    json!({"stats_matcher": {"inclusion_list": {"patterns": patterns}}})
}

fn hcm(route_source: Value) -> Value {
    let mut hcm = json!({
        "@type": HCM_TYPE,
        "stat_prefix": STAT_PREFIX,
        // `Host: reviews:9080` must select the `reviews` virtual host.
        "strip_any_host_port": true,
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_TYPE}}],
    });
    match route_source {
        Value::Null => {
            // ADS: the route configuration, whose virtual hosts come by VHDS on the same stream.
            hcm["rds"] = json!({
                "route_config_name": ROUTE_CONFIG_NAME,
                "config_source": ads_source(),
            });
        }
        Value::String(path) => {
            hcm["rds"] = json!({
                "route_config_name": ROUTE_CONFIG_NAME,
                "config_source": {"resource_api_version": "V3", "path_config_source": {
                    "path": path,
                    "watched_directory": {"path": parent_dir(&path)},
                }},
            });
        }
        inline => hcm["route_config"] = inline,
    }
    hcm
}

fn parent_dir(path: &str) -> String {
    match path.rsplit_once('/') {
        Some(("", _)) => "/".to_string(),
        Some((dir, _)) => dir.to_string(),
        None => ".".to_string(),
    }
}

/// An `ads` config source; Envoy starts serving (with what it has) after 1 s without sluice.
fn ads_source() -> Value {
    json!({"ads": {}, "resource_api_version": "V3", "initial_fetch_timeout": "1s"})
}

fn base_bootstrap(opts: &BootstrapOptions, hcm: Value) -> Value {
    json!({
        "stats_config": stats_config(),
        "node": {"id": "sluice", "cluster": "sluice"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": opts.admin_port}}},
        // Without this, latency histograms lag counters by ~5 s in /stats/prometheus.
        "stats_flush_interval": "1s",
        "static_resources": {"listeners": [{
            "name": "sluice",
            "address": {"socket_address": {"address": opts.listen_address, "port_value": opts.listen_port}},
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": hcm,
            }]}],
        }]},
    })
}

/// The bootstrap pointing Envoy at sluice's ADS server or xDS files.
pub fn bootstrap(opts: &BootstrapOptions) -> Value {
    match &opts.xds {
        XdsSource::Files { dir } => {
            let dir = dir.trim_end_matches('/');
            let dir = if dir.is_empty() { "/" } else { dir };
            let mut b = base_bootstrap(opts, hcm(Value::String(format!("{dir}/{RDS_FILE}"))));
            b["dynamic_resources"] = json!({"cds_config": {
                "resource_api_version": "V3",
                "path_config_source": {"path": format!("{dir}/{CDS_FILE}"), "watched_directory": {"path": dir}},
            }});
            b
        }
        XdsSource::Ads { host, port } => {
            let mut b = base_bootstrap(opts, hcm(Value::Null));
            b["dynamic_resources"] = json!({
                "ads_config": {
                    "api_type": "DELTA_GRPC",
                    "transport_api_version": "V3",
                    "set_node_on_first_message_only": true,
                    "grpc_services": [{"envoy_grpc": {
                        "cluster_name": XDS_CLUSTER,
                        // Reconnect quickly when sluice (re)starts after Envoy.
                        "retry_policy": {"retry_back_off": {"base_interval": "0.1s", "max_interval": "1s"}},
                    }}],
                },
                "cds_config": ads_source(),
            });
            let up = Upstream {
                host: host.clone(),
                port: *port,
            };
            let mut xds = cluster(XDS_CLUSTER, &up);
            if let Some(o) = xds.as_object_mut() {
                o.remove("@type");
            }
            xds["typed_extension_protocol_options"] = json!({
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http2_protocol_options": {}},
                },
            });
            b["static_resources"]["clusters"] = json!([xds]);
            b
        }
    }
}

/// A self-contained bootstrap carrying `config` statically: what `envoy --mode validate`
/// checks the generated clusters and routes with (validation mode does not load xDS files).
pub fn static_bootstrap(opts: &BootstrapOptions, config: &XdsConfig) -> Value {
    let mut route = config.route_config.clone();
    if let Some(o) = route.as_object_mut() {
        o.remove("@type");
    }
    let mut b = base_bootstrap(opts, hcm(route));
    let clusters: Vec<Value> = config
        .clusters
        .iter()
        .map(|c| {
            let mut c = c.clone();
            if let Some(o) = c.as_object_mut() {
                o.remove("@type");
            }
            c
        })
        .collect();
    b["static_resources"]["clusters"] = Value::Array(clusters);
    b
}

#[cfg(test)]
pub(crate) mod tests;
