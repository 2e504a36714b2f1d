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
pub const CDS_FILE: &str = "cds.yaml";
pub const RDS_FILE: &str = "rds.yaml";

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

/// Translate every rollout's current plan (any order; output is sorted by rollout key so the
/// same inputs always give the same bytes).
pub fn translate(entries: &[(RouteTarget, TrafficPlan)]) -> Result<XdsConfig, Error> {
    let mut sorted: Vec<&(RouteTarget, TrafficPlan)> = entries.iter().collect();
    sorted.sort_by_key(|(t, _)| t.key());
    let mut clusters = Vec::new();
    let mut virtual_hosts = Vec::new();
    let mut claimed: BTreeMap<String, String> = BTreeMap::new();
    let mut prefixes: BTreeMap<String, String> = BTreeMap::new();
    for (target, plan) in &sorted {
        let key = target.key();
        plan.check().map_err(|reason| Error::BadPlan {
            rollout: key.clone(),
            reason,
        })?;
        // `default/shop-cart` and `shop/cart` flatten to the same cluster names.
        let prefix = name_prefix(target.namespace.as_deref(), &target.name);
        if let Some(first) = prefixes.insert(prefix.clone(), key.clone()) {
            return Err(Error::DuplicateClusters {
                prefix,
                first,
                second: key,
            });
        }
        for dest in [Destination::Stable, Destination::Canary] {
            clusters.push(cluster(&target.cluster(dest), target.upstream(dest)));
        }
        let mut domains = Vec::new();
        for host in &target.hosts {
            // Envoy rejects a route config with one domain in two virtual hosts; say who clashes.
            let lower = host.to_ascii_lowercase();
            match claimed.insert(lower.clone(), key.clone()) {
                // Listed twice by the same rollout: once is enough.
                Some(first) if first == key => continue,
                Some(first) => {
                    return Err(Error::DuplicateHost {
                        host: host.clone(),
                        first,
                        second: key,
                    });
                }
                None => domains.push(lower),
            }
        }
        if sorted.len() == 1 && !domains.iter().any(|d| d == "*") {
            domains.push("*".to_string());
        }
        let mut routes = Vec::new();
        for (i, route) in plan.routes.iter().enumerate() {
            routes.extend(envoy_routes(target, &key, i, route)?);
        }
        virtual_hosts.push(json!({
            "name": prefix,
            "domains": domains,
            "routes": routes,
        }));
    }
    Ok(XdsConfig {
        clusters,
        route_config: json!({
            "@type": ROUTE_TYPE,
            "name": ROUTE_CONFIG_NAME,
            "validate_clusters": true,
            "virtual_hosts": virtual_hosts,
        }),
    })
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

/// Where Envoy listens and finds its files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootstrapOptions {
    /// Absolute path of the xDS directory (Envoy resolves paths from its own cwd).
    pub xds_dir: String,
    pub listen_address: String,
    pub listen_port: u16,
    pub admin_port: u16,
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

fn base_bootstrap(opts: &BootstrapOptions, hcm: Value) -> Value {
    json!({
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

/// The bootstrap pointing Envoy at sluice's xDS files.
pub fn bootstrap(opts: &BootstrapOptions) -> Value {
    let dir = opts.xds_dir.trim_end_matches('/');
    let dir = if dir.is_empty() { "/" } else { dir };
    let mut b = base_bootstrap(opts, hcm(Value::String(format!("{dir}/{RDS_FILE}"))));
    b["dynamic_resources"] = json!({"cds_config": {
        "resource_api_version": "V3",
        "path_config_source": {"path": format!("{dir}/{CDS_FILE}"), "watched_directory": {"path": dir}},
    }});
    b
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
