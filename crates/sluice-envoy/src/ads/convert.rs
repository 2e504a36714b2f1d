//! sluice's Envoy JSON (what [`crate::translate`] produces, and file-based xDS writes) →
//! the protobuf messages ADS sends. One translation feeds both transports; this only changes
//! the encoding, and refuses any shape it does not know instead of dropping a field.

use serde_json::Value;

use super::proto::{self, Message};

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("encoding {what} for ADS: {path}: {reason}")]
pub struct EncodeError {
    pub what: String,
    pub path: String,
    pub reason: String,
}

type R<T> = Result<T, (String, String)>;

fn err<T>(path: &str, reason: impl Into<String>) -> R<T> {
    Err((path.to_string(), reason.into()))
}

fn obj<'a>(v: &'a Value, path: &str, known: &[&str]) -> R<&'a serde_json::Map<String, Value>> {
    let o = v
        .as_object()
        .ok_or_else(|| (path.to_string(), "not an object".to_string()))?;
    if let Some(k) = o.keys().find(|k| !known.contains(&k.as_str())) {
        return err(&format!("{path}.{k}"), "field unknown to the ADS encoder");
    }
    Ok(o)
}

fn string(v: &Value, path: &str) -> R<String> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| (path.to_string(), "not a string".to_string()))
}

fn uint(v: &Value, path: &str) -> R<u32> {
    v.as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| (path.to_string(), "not a 32-bit unsigned number".to_string()))
}

fn array<'a>(v: &'a Value, path: &str) -> R<&'a Vec<Value>> {
    v.as_array()
        .ok_or_else(|| (path.to_string(), "not an array".to_string()))
}

fn wrap<T>(what: &str, r: R<T>) -> Result<T, EncodeError> {
    r.map_err(|(path, reason)| EncodeError {
        what: what.to_string(),
        path,
        reason,
    })
}

/// A translated cluster → `envoy.config.cluster.v3.Cluster` bytes.
pub fn cluster(v: &Value) -> Result<Vec<u8>, EncodeError> {
    let what = format!("cluster {}", v["name"].as_str().unwrap_or("?"));
    wrap(&what, cluster_msg(v)).map(|c| c.encode_to_vec())
}

fn cluster_msg(v: &Value) -> R<proto::Cluster> {
    let o = obj(
        v,
        "",
        &[
            "@type",
            "name",
            "type",
            "connect_timeout",
            "load_assignment",
            "dns_lookup_family",
        ],
    )?;
    let r#type = match o.get("type").and_then(Value::as_str) {
        Some("STATIC") => proto::STATIC,
        Some("STRICT_DNS") => proto::STRICT_DNS,
        other => return err("type", format!("unsupported cluster type {other:?}")),
    };
    let dns_lookup_family = match o.get("dns_lookup_family").and_then(Value::as_str) {
        None => 0,
        Some("V4_PREFERRED") => proto::V4_PREFERRED,
        Some(other) => return err("dns_lookup_family", format!("unsupported {other:?}")),
    };
    let connect_timeout = match o.get("connect_timeout") {
        None => None,
        Some(t) => Some(duration(t, "connect_timeout")?),
    };
    let la = &o.get("load_assignment").cloned().unwrap_or(Value::Null);
    let la_o = obj(la, "load_assignment", &["cluster_name", "endpoints"])?;
    let mut endpoints = Vec::new();
    for (i, loc) in array(&la["endpoints"], "load_assignment.endpoints")?
        .iter()
        .enumerate()
    {
        let p = format!("load_assignment.endpoints[{i}]");
        obj(loc, &p, &["lb_endpoints"])?;
        let mut lb_endpoints = Vec::new();
        for (j, lb) in array(&loc["lb_endpoints"], &p)?.iter().enumerate() {
            let p = format!("{p}.lb_endpoints[{j}]");
            obj(lb, &p, &["endpoint"])?;
            obj(&lb["endpoint"], &p, &["address"])?;
            obj(&lb["endpoint"]["address"], &p, &["socket_address"])?;
            let sa = &lb["endpoint"]["address"]["socket_address"];
            obj(sa, &p, &["address", "port_value"])?;
            lb_endpoints.push(proto::LbEndpoint {
                endpoint: Some(proto::Endpoint {
                    address: Some(proto::Address {
                        socket_address: Some(proto::SocketAddress {
                            address: string(&sa["address"], &format!("{p}.address"))?,
                            port_value: uint(&sa["port_value"], &format!("{p}.port_value"))?,
                        }),
                    }),
                }),
            });
        }
        endpoints.push(proto::LocalityLbEndpoints { lb_endpoints });
    }
    Ok(proto::Cluster {
        name: string(&v["name"], "name")?,
        r#type: Some(r#type),
        connect_timeout,
        dns_lookup_family,
        load_assignment: Some(proto::ClusterLoadAssignment {
            cluster_name: string(
                la_o.get("cluster_name").unwrap_or(&Value::Null),
                "load_assignment.cluster_name",
            )?,
            endpoints,
        }),
    })
}

/// `"1s"`, `"0.25s"` → Duration.
fn duration(v: &Value, path: &str) -> R<proto::Duration> {
    let s = string(v, path)?;
    let secs: f64 = s
        .strip_suffix('s')
        .and_then(|n| n.parse().ok())
        .filter(|n: &f64| n.is_finite() && *n >= 0.0)
        .ok_or_else(|| (path.to_string(), format!("{s:?} is not a duration like 1s")))?;
    Ok(proto::Duration {
        seconds: secs.trunc() as i64,
        nanos: (secs.fract() * 1e9).round() as i32,
    })
}

/// A translated virtual host → `envoy.config.route.v3.VirtualHost` bytes, named `name`.
pub fn virtual_host(v: &Value, name: &str) -> Result<Vec<u8>, EncodeError> {
    wrap(&format!("virtual host {name}"), virtual_host_msg(v, name)).map(|m| m.encode_to_vec())
}

fn virtual_host_msg(v: &Value, name: &str) -> R<proto::VirtualHost> {
    obj(v, "", &["name", "domains", "routes"])?;
    let domains = array(&v["domains"], "domains")?
        .iter()
        .enumerate()
        .map(|(i, d)| string(d, &format!("domains[{i}]")))
        .collect::<R<Vec<_>>>()?;
    let routes = array(&v["routes"], "routes")?
        .iter()
        .enumerate()
        .map(|(i, r)| route(r, &format!("routes[{i}]")))
        .collect::<R<Vec<_>>>()?;
    Ok(proto::VirtualHost {
        name: name.to_string(),
        domains,
        routes,
    })
}

fn route(v: &Value, path: &str) -> R<proto::Route> {
    obj(v, path, &["name", "match", "route"])?;
    let m = &v["match"];
    obj(m, &format!("{path}.match"), &["prefix", "headers"])?;
    let mut headers = Vec::new();
    if let Some(hs) = m.get("headers") {
        for (i, h) in array(hs, &format!("{path}.match.headers"))?
            .iter()
            .enumerate()
        {
            let p = format!("{path}.match.headers[{i}]");
            obj(h, &p, &["name", "string_match"])?;
            let sm = &h["string_match"];
            obj(sm, &p, &["exact", "prefix", "safe_regex"])?;
            let pattern = if let Some(e) = sm.get("exact") {
                proto::MatchPattern::Exact(string(e, &p)?)
            } else if let Some(e) = sm.get("prefix") {
                proto::MatchPattern::Prefix(string(e, &p)?)
            } else if let Some(re) = sm.get("safe_regex") {
                obj(re, &p, &["regex"])?;
                proto::MatchPattern::SafeRegex(proto::RegexMatcher {
                    regex: string(&re["regex"], &p)?,
                })
            } else {
                return err(&p, "no exact, prefix or safe_regex");
            };
            headers.push(proto::HeaderMatcher {
                name: string(&h["name"], &p)?,
                string_match: Some(proto::StringMatcher {
                    match_pattern: Some(pattern),
                }),
            });
        }
    }
    let a = &v["route"];
    let ap = format!("{path}.route");
    obj(
        a,
        &ap,
        &["cluster", "weighted_clusters", "request_mirror_policies"],
    )?;
    let cluster_specifier = if let Some(c) = a.get("cluster") {
        proto::ClusterSpecifier::Cluster(string(c, &ap)?)
    } else if let Some(w) = a.get("weighted_clusters") {
        obj(w, &ap, &["clusters"])?;
        let clusters = array(&w["clusters"], &ap)?
            .iter()
            .map(|c| {
                obj(c, &ap, &["name", "weight"])?;
                Ok(proto::ClusterWeight {
                    name: string(&c["name"], &ap)?,
                    weight: Some(proto::UInt32Value {
                        value: uint(&c["weight"], &ap)?,
                    }),
                })
            })
            .collect::<R<Vec<_>>>()?;
        proto::ClusterSpecifier::WeightedClusters(proto::WeightedCluster { clusters })
    } else {
        return err(&ap, "no cluster or weighted_clusters");
    };
    let mut request_mirror_policies = Vec::new();
    if let Some(ms) = a.get("request_mirror_policies") {
        for m in array(ms, &ap)? {
            obj(m, &ap, &["cluster", "runtime_fraction"])?;
            let dv = &m["runtime_fraction"]["default_value"];
            obj(dv, &ap, &["numerator", "denominator"])?;
            if dv["denominator"] != "HUNDRED" {
                return err(&ap, "mirror denominator must be HUNDRED");
            }
            request_mirror_policies.push(proto::RequestMirrorPolicy {
                cluster: string(&m["cluster"], &ap)?,
                runtime_fraction: Some(proto::RuntimeFractionalPercent {
                    default_value: Some(proto::FractionalPercent {
                        numerator: uint(&dv["numerator"], &ap)?,
                        denominator: 0,
                    }),
                }),
            });
        }
    }
    Ok(proto::Route {
        r#match: Some(proto::RouteMatch {
            prefix: Some(string(
                m.get("prefix").unwrap_or(&Value::Null),
                &format!("{path}.match.prefix"),
            )?),
            headers,
        }),
        route: Some(proto::RouteAction {
            cluster_specifier: Some(cluster_specifier),
            request_mirror_policies,
        }),
        name: string(&v["name"], &format!("{path}.name"))?,
    })
}

/// The one RouteConfiguration for ADS: no virtual hosts of its own, they come by VHDS (one
/// resource per rollout) over the same ADS stream.
pub fn route_configuration_vhds(name: &str) -> Vec<u8> {
    proto::RouteConfiguration {
        name: name.to_string(),
        virtual_hosts: Vec::new(),
        validate_clusters: Some(proto::BoolValue { value: true }),
        vhds: Some(proto::Vhds {
            config_source: Some(proto::ConfigSource {
                ads: Some(proto::AggregatedConfigSource {}),
                // Envoy counts an empty VHDS reply as no reply: without rollouts it would wait
                // the default 15 s before serving.
                initial_fetch_timeout: Some(proto::Duration {
                    seconds: 1,
                    nanos: 0,
                }),
                resource_api_version: proto::API_V3,
            }),
        }),
    }
    .encode_to_vec()
}
