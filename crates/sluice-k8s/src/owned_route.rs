//! Routes the user owns: a [`TrafficPlan`] written into one named rule of the user's own Istio
//! VirtualService or Gateway API HTTPRoute / GRPCRoute, instead of a route sluice generates.
//!
//! Pure functions from the route as read (JSON) to the route to write; the router
//! ([`crate::router`]) wraps them in a resourceVersion-guarded read-modify-write, and
//! `sluice plan --route FILE` shows their result as a diff against the user's file.
//!
//! ## What sluice changes
//! - The named rule's destinations: Istio `route`, Gateway API `backendRefs`, set to the plan's
//!   default (last) route on `<name>-primary` / `<name>-canary`; its mirror (Istio `mirror` +
//!   `mirrorPercentage`, Gateway API one `RequestMirror` filter to a sluice Service) when the
//!   plan mirrors.
//! - The plan's match routes become rules inserted right before the named one, named
//!   `sluice-<rule>-<i>`: copies of the named rule (retries, timeouts, filters, rewrites stay)
//!   whose matches are the rule's own ANDed with the plan's headers, so they only take
//!   requests the named rule would have taken. Gateway API ranks a match with more header
//!   matches first, so the inserted rules also win there.
//! - The rule as the user wrote it, in the route's annotation [`ORIGINAL_RULES_ANNOTATION`]
//!   (a JSON map rule name → rule), written with the first edit: it survives restarts and
//!   leader changes, and [`restore`] puts the owned fields back from it.
//!
//! ## Guarantees
//! - Every other field, rule, host and annotation is left as read: each edit starts from the
//!   current object, so a user's change between two steps is kept (the router re-reads on
//!   409 Conflict and applies again).
//! - [`restore`] removes the inserted rules and the annotation entry and resets the owned
//!   fields: a route the user did not touch meanwhile is JSON-equal to what they wrote.
//!
//! ## Caveats
//! - While a rollout runs, a user's edit of the owned fields of the named rule is overwritten
//!   at the next step and the original is what comes back.
//! - A rule that does not route (Istio `redirect`, `directResponse`, `delegate`) is refused.

use serde_json::{Map, Value, json};

use sluice_core::spec::Rollout;
use sluice_core::traffic::{Route, TrafficPlan};

use crate::{gateway_api, istio};

/// Annotation on the user's route: the rules sluice edits, as the user wrote them.
pub const ORIGINAL_RULES_ANNOTATION: &str = "sluice.dev/original-rules";
/// Prefix of the rules sluice inserts (the validation refuses a `ruleName` that starts so).
pub use sluice_core::validate::rules::OWNED_RULE_PREFIX;

/// Which API's route it is: the field names differ, the edit does not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// `networking.istio.io` VirtualService: `spec.http[]`, `match`, `route`.
    Istio,
    /// `gateway.networking.k8s.io` HTTPRoute / GRPCRoute: `spec.rules[]`, `matches`,
    /// `backendRefs`.
    GatewayApi,
}

impl Dialect {
    /// The dialect of a route object, from its `kind`.
    pub fn of(obj: &Value) -> Option<Dialect> {
        match obj.get("kind").and_then(Value::as_str)? {
            "VirtualService" => Some(Dialect::Istio),
            "HTTPRoute" | "GRPCRoute" => Some(Dialect::GatewayApi),
            _ => None,
        }
    }

    fn rules(self) -> &'static str {
        match self {
            Dialect::Istio => "http",
            Dialect::GatewayApi => "rules",
        }
    }

    fn matches(self) -> &'static str {
        match self {
            Dialect::Istio => "match",
            Dialect::GatewayApi => "matches",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OwnedRouteError {
    #[error("{route}: no spec.{field} list to edit")]
    NoRules { route: String, field: &'static str },
    #[error("{route}: no rule named {rule:?} in spec.{field} (named rules: {names})")]
    RuleNotFound {
        route: String,
        rule: String,
        field: &'static str,
        names: String,
    },
    #[error(
        "{route}: rule {rule:?} has `{field}`; sluice can only move the traffic of a rule that routes to destinations"
    )]
    NotRouting {
        route: String,
        rule: String,
        field: &'static str,
    },
    #[error("{route}: annotation {ORIGINAL_RULES_ANNOTATION} is not a JSON object of rules: {why}")]
    BadAnnotation { route: String, why: String },
    #[error("refusing to apply an invalid plan: {0}")]
    InvalidPlan(String),
}

type Result<T> = std::result::Result<T, OwnedRouteError>;

fn route_label(obj: &Value) -> String {
    let kind = obj["kind"].as_str().unwrap_or("route");
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    match obj["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// `sluice-<rule>-<i>`: the i-th rule sluice inserts before `rule`.
pub fn inserted_name(rule: &str, i: usize) -> String {
    format!("{OWNED_RULE_PREFIX}{rule}-{i}")
}

fn is_inserted(rule_name: &str, candidate: &Value) -> bool {
    candidate
        .get("name")
        .and_then(Value::as_str)
        .and_then(|n| n.strip_prefix(OWNED_RULE_PREFIX))
        .and_then(|n| n.strip_prefix(rule_name))
        .and_then(|n| n.strip_prefix('-'))
        .is_some_and(|i| !i.is_empty() && i.chars().all(|c| c.is_ascii_digit()))
}

fn original_rules(obj: &Value) -> Result<Map<String, Value>> {
    match obj
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(ORIGINAL_RULES_ANNOTATION))
    {
        None => Ok(Map::new()),
        Some(Value::String(text)) => match serde_json::from_str(text) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err(OwnedRouteError::BadAnnotation {
                route: route_label(obj),
                why: "not an object".into(),
            }),
            Err(e) => Err(OwnedRouteError::BadAnnotation {
                route: route_label(obj),
                why: e.to_string(),
            }),
        },
        Some(_) => Err(OwnedRouteError::BadAnnotation {
            route: route_label(obj),
            why: "not a string".into(),
        }),
    }
}

/// Writes (or, when empty, removes) the annotation; an `annotations` map left empty by that
/// goes too, so a route gets back exactly the metadata it had.
fn set_original_rules(obj: &mut Value, rules: &Map<String, Value>) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    if rules.is_empty() {
        if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            a.remove(ORIGINAL_RULES_ANNOTATION);
            if a.is_empty() {
                meta.remove("annotations");
            }
        }
        return;
    }
    let text = Value::Object(rules.clone()).to_string();
    let annotations = meta
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if !annotations.is_object() {
        *annotations = Value::Object(Map::new());
    }
    annotations[ORIGINAL_RULES_ANNOTATION] = Value::String(text);
}

/// Whether a Gateway API filter is the mirror sluice adds (to one of its two Services).
fn is_sluice_mirror(rollout_hosts: &[String; 2], filter: &Value) -> bool {
    filter["type"] == "RequestMirror"
        && filter
            .pointer("/requestMirror/backendRef/name")
            .and_then(Value::as_str)
            .is_some_and(|n| rollout_hosts.iter().any(|h| h == n))
}

fn hosts(rollout: &Rollout) -> [String; 2] {
    [istio::primary_host(rollout), istio::canary_host(rollout)]
}

const ISTIO_OWNED: [&str; 4] = ["route", "mirror", "mirrorPercentage", "mirrorPercent"];

/// The owned fields of `rule` back to the `original`'s (removed where it had none).
fn restore_owned(d: Dialect, hosts: &[String; 2], rule: &mut Map<String, Value>, original: &Value) {
    let put = |rule: &mut Map<String, Value>, field: &str| match original.get(field) {
        Some(v) => {
            rule.insert(field.into(), v.clone());
        }
        None => {
            rule.remove(field);
        }
    };
    match d {
        Dialect::Istio => {
            for f in ISTIO_OWNED {
                put(rule, f);
            }
        }
        Dialect::GatewayApi => {
            put(rule, "backendRefs");
            if let Some(filters) = rule.get_mut("filters").and_then(Value::as_array_mut) {
                filters.retain(|f| !is_sluice_mirror(hosts, f));
                if filters.is_empty() && original.get("filters").is_none() {
                    rule.remove("filters");
                }
            }
        }
    }
}

/// `route`'s destinations and mirror on `rule`.
fn set_traffic(d: Dialect, rollout: &Rollout, rule: &mut Map<String, Value>, route: &Route) {
    match d {
        Dialect::Istio => {
            let dests: Vec<Value> = route
                .destinations
                .iter()
                .map(|w| istio::route_destination(rollout, w))
                .collect();
            rule.insert("route".into(), Value::Array(dests));
            if let Some(m) = &route.mirror {
                rule.insert("mirror".into(), istio::destination(rollout, m.destination));
                rule.insert(
                    "mirrorPercentage".into(),
                    json!({ "value": f64::from(m.percent) }),
                );
                rule.remove("mirrorPercent");
            }
        }
        Dialect::GatewayApi => {
            let refs: Vec<Value> = route
                .destinations
                .iter()
                .map(|w| gateway_api::weighted_backend(rollout, w))
                .collect();
            rule.insert("backendRefs".into(), Value::Array(refs));
            if let Some(m) = &route.mirror {
                let filter = json!({
                    "type": "RequestMirror",
                    "requestMirror": {
                        "backendRef": gateway_api::backend(rollout, m.destination),
                        "percent": m.percent,
                    },
                });
                match rule.get_mut("filters").and_then(Value::as_array_mut) {
                    Some(filters) => filters.push(filter),
                    None => {
                        rule.insert("filters".into(), json!([filter]));
                    }
                }
            }
        }
    }
}

/// The rule's own matches ANDed with each of the plan's (every pair, ORed): the inserted rule
/// takes only requests the named rule would have taken. A header the rule already matches
/// takes the plan's condition.
fn combined_matches(d: Dialect, rule: &Map<String, Value>, route: &Route) -> Vec<Value> {
    let own: Vec<Value> = match rule.get(d.matches()).and_then(Value::as_array) {
        Some(list) if !list.is_empty() => list.clone(),
        _ => vec![json!({})],
    };
    let mut out = Vec::new();
    for o in &own {
        for p in &route.matches {
            let mut m = o.clone();
            match d {
                Dialect::Istio => {
                    let extra = istio::http_match(p);
                    let headers = m
                        .as_object_mut()
                        .map(|m| m.entry("headers").or_insert_with(|| json!({})));
                    if let (Some(Value::Object(h)), Some(extra)) =
                        (headers, extra["headers"].as_object())
                    {
                        for (k, v) in extra {
                            h.insert(k.clone(), v.clone());
                        }
                    }
                }
                Dialect::GatewayApi => {
                    let extra = gateway_api::route_match(p);
                    let extra = extra["headers"].as_array().cloned().unwrap_or_default();
                    let names: Vec<String> = extra
                        .iter()
                        .filter_map(|h| h["name"].as_str().map(str::to_ascii_lowercase))
                        .collect();
                    let mut headers: Vec<Value> = m["headers"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|h| {
                            h["name"]
                                .as_str()
                                .is_none_or(|n| !names.contains(&n.to_ascii_lowercase()))
                        })
                        .collect();
                    headers.extend(extra);
                    m["headers"] = Value::Array(headers);
                }
            }
            out.push(m);
        }
    }
    out
}

/// Splits `obj`'s rules into (rules without the inserted ones, index of `rule_name`).
fn rules_of(d: Dialect, obj: &Value, rule_name: &str) -> Result<(Vec<Value>, Option<usize>)> {
    let rules = obj
        .pointer(&format!("/spec/{}", d.rules()))
        .and_then(Value::as_array)
        .ok_or_else(|| OwnedRouteError::NoRules {
            route: route_label(obj),
            field: d.rules(),
        })?;
    let kept: Vec<Value> = rules
        .iter()
        .filter(|r| !is_inserted(rule_name, r))
        .cloned()
        .collect();
    let at = kept.iter().position(|r| r["name"] == rule_name);
    Ok((kept, at))
}

/// The route `current` with `plan` in its rule `rule_name` (see the module docs). `current`
/// is the whole object as read; the result keeps its metadata (resourceVersion included, for
/// the guarded write).
pub fn apply(
    d: Dialect,
    rollout: &Rollout,
    current: &Value,
    rule_name: &str,
    plan: &TrafficPlan,
) -> Result<Value> {
    plan.check().map_err(OwnedRouteError::InvalidPlan)?;
    let (mut rules, at) = rules_of(d, current, rule_name)?;
    let Some(at) = at else {
        let names: Vec<&str> = rules.iter().filter_map(|r| r["name"].as_str()).collect();
        return Err(OwnedRouteError::RuleNotFound {
            route: route_label(current),
            rule: rule_name.into(),
            field: d.rules(),
            names: if names.is_empty() {
                "none".into()
            } else {
                names.join(", ")
            },
        });
    };
    let mut originals = original_rules(current)?;
    let original = originals
        .entry(rule_name.to_string())
        .or_insert_with(|| rules[at].clone())
        .clone();
    let mut base = rules[at].as_object().cloned().unwrap_or_default();
    if d == Dialect::Istio {
        for field in ["redirect", "directResponse", "delegate"] {
            if base.contains_key(field) {
                return Err(OwnedRouteError::NotRouting {
                    route: route_label(current),
                    rule: rule_name.into(),
                    field,
                });
            }
        }
    }
    let hosts = hosts(rollout);
    restore_owned(d, &hosts, &mut base, &original);

    let (last, matched) = match plan.routes.split_last() {
        Some(split) => split,
        None => return Err(OwnedRouteError::InvalidPlan("no routes".into())),
    };
    let mut inserted = Vec::new();
    for (i, r) in matched.iter().enumerate() {
        let mut rule = base.clone();
        rule.insert("name".into(), Value::String(inserted_name(rule_name, i)));
        rule.insert(
            d.matches().into(),
            Value::Array(combined_matches(d, &base, r)),
        );
        set_traffic(d, rollout, &mut rule, r);
        inserted.push(Value::Object(rule));
    }
    let mut edited = base;
    set_traffic(d, rollout, &mut edited, last);
    rules[at] = Value::Object(edited);
    rules.splice(at..at, inserted);

    let mut out = current.clone();
    out["spec"][d.rules()] = Value::Array(rules);
    set_original_rules(&mut out, &originals);
    Ok(out)
}

/// The route `current` with rule `rule_name` as the user wrote it: inserted rules removed,
/// owned fields from the annotation, the annotation entry removed. A rule the user deleted
/// meanwhile stays deleted.
pub fn restore(d: Dialect, rollout: &Rollout, current: &Value, rule_name: &str) -> Result<Value> {
    let (mut rules, at) = rules_of(d, current, rule_name)?;
    let mut originals = original_rules(current)?;
    if let (Some(at), Some(original)) = (at, originals.remove(rule_name))
        && let Some(rule) = rules[at].as_object_mut()
    {
        restore_owned(d, &hosts(rollout), rule, &original);
    }
    let mut out = current.clone();
    out["spec"][d.rules()] = Value::Array(rules);
    set_original_rules(&mut out, &originals);
    Ok(out)
}

/// `sluice plan --route FILE`: for every step (and the promoted state, and the finalizer),
/// what sluice would write into the user's route `route` (as read from their file), as a
/// unified diff against it. The dialect comes from the route's `kind`; the rule from the
/// Rollout's `virtualServiceRef` / `routeRef`, which must name a route of that kind.
pub fn plan_diff(
    rollout: &Rollout,
    plan: &sluice_core::rollout_plan::RolloutPlan,
    route: &Value,
) -> std::result::Result<String, String> {
    let d = Dialect::of(route).ok_or_else(|| {
        format!(
            "the route file holds a {}, not a VirtualService, HTTPRoute or GRPCRoute",
            route["kind"].as_str().unwrap_or("document without `kind`")
        )
    })?;
    let routing = &rollout.spec.routing;
    let (reference, field) = match (d, &routing.gateway_api, &routing.istio) {
        (Dialect::GatewayApi, Some(g), _) => {
            (g.route_ref.as_ref(), "spec.routing.gatewayAPI.routeRef")
        }
        (Dialect::Istio, None, Some(i)) => (
            i.virtual_service_ref.as_ref(),
            "spec.routing.istio.virtualServiceRef",
        ),
        (Dialect::Istio, _, _) => (None, "spec.routing.istio.virtualServiceRef"),
        (Dialect::GatewayApi, _, _) => (None, "spec.routing.gatewayAPI.routeRef"),
    };
    let reference = reference.ok_or_else(|| {
        format!(
            "the Rollout {} does not name a route of its own for this {}: set {field}",
            rollout.metadata.name.as_deref().unwrap_or(""),
            route["kind"].as_str().unwrap_or("route"),
        )
    })?;
    let yaml = |v: &Value| sluice_core::yaml::to_string(v).map_err(|e| e.to_string());
    let before = yaml(route)?;
    let mut out = String::new();
    let name = route["metadata"]["name"].as_str().unwrap_or("");
    if name != reference.name {
        out.push_str(&format!(
            "# note: the file's route is {name:?}; the Rollout names {:?}\n",
            reference.name
        ));
    }
    let mut last = route.clone();
    for s in sluice_core::plan::steps(plan) {
        let title = match s.step {
            Some(n) => format!("step {n}: {}", s.label),
            None => s.label.clone(),
        };
        last = apply(d, rollout, &last, &reference.rule_name, &s.traffic)
            .map_err(|e| e.to_string())?;
        out.push_str(&format!("# {title}\n"));
        out.push_str(&unified_diff(&before, &yaml(&last)?));
    }
    let restored = restore(d, rollout, &last, &reference.rule_name).map_err(|e| e.to_string())?;
    out.push_str("# finalize (Rollout deleted): the rule put back\n");
    out.push_str(&unified_diff(&before, &yaml(&restored)?));
    Ok(out)
}

/// A unified diff (3 lines of context) of two texts; "(no change)" when equal. Longest common
/// subsequence over lines: routes are small.
pub fn unified_diff(a: &str, b: &str) -> String {
    let a: Vec<&str> = a.lines().collect();
    let b: Vec<&str> = b.lines().collect();
    if a == b {
        return "  (no change)\n".into();
    }
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    // (tag, a index, b index, line)
    let mut ops: Vec<(char, usize, usize, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            ops.push((' ', i, j, a[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            // Removals before additions, as `diff -u` prints a changed line.
            ops.push(('-', i, j, a[i]));
            i += 1;
        } else {
            ops.push(('+', i, j, b[j]));
            j += 1;
        }
    }
    const CONTEXT: usize = 3;
    let changed: Vec<usize> = (0..ops.len()).filter(|&k| ops[k].0 != ' ').collect();
    let mut out = String::new();
    let mut k = 0;
    while k < changed.len() {
        let start = changed[k].saturating_sub(CONTEXT);
        let mut end = changed[k];
        while k + 1 < changed.len() && changed[k + 1] <= end + 2 * CONTEXT + 1 {
            k += 1;
            end = changed[k];
        }
        let end = (end + CONTEXT + 1).min(ops.len());
        let hunk = &ops[start..end];
        let a_len = hunk.iter().filter(|o| o.0 != '+').count();
        let b_len = hunk.iter().filter(|o| o.0 != '-').count();
        out.push_str(&format!(
            "@@ -{},{a_len} +{},{b_len} @@\n",
            hunk[0].1 + 1,
            hunk[0].2 + 1
        ));
        for (tag, _, _, line) in hunk {
            out.push_str(&format!("{tag}{line}\n"));
        }
        k += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::spec::HttpMatch;

    fn rollout() -> Rollout {
        serde_yaml::from_str(
            "apiVersion: sluice.dev/v1alpha1\nkind: Rollout\n\
             metadata: {name: reviews, namespace: bookinfo}\n\
             spec: {targetRef: {name: reviews}, service: {port: 9080}, strategy: {canary: {steps: [10]}}}\n",
        )
        .expect("rollout")
    }

    fn user_vs() -> Value {
        json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": "reviews-vs", "namespace": "bookinfo", "resourceVersion": "7"},
            "spec": {
                "hosts": ["reviews.example.com"],
                "http": [
                    {"name": "admin", "match": [{"uri": {"prefix": "/admin"}}],
                     "route": [{"destination": {"host": "admin"}}]},
                    {"name": "main", "match": [{"uri": {"prefix": "/"}}],
                     "retries": {"attempts": 3, "perTryTimeout": "2s"}, "timeout": "10s",
                     "route": [{"destination": {"host": "reviews", "port": {"number": 9080}}}]},
                ],
            },
        })
    }

    fn beta() -> HttpMatch {
        serde_yaml::from_str("headers: {x-user: {exact: beta}}").expect("match")
    }

    #[test]
    fn a_weighted_step_edits_only_the_named_rule_and_keeps_the_original() {
        let vs = user_vs();
        let out = apply(
            Dialect::Istio,
            &rollout(),
            &vs,
            "main",
            &TrafficPlan::weighted(20),
        )
        .expect("apply");
        assert_eq!(
            out["spec"]["http"][0], vs["spec"]["http"][0],
            "other rule untouched"
        );
        let main = &out["spec"]["http"][1];
        assert_eq!(main["retries"], vs["spec"]["http"][1]["retries"]);
        assert_eq!(main["timeout"], "10s");
        assert_eq!(main["route"][0]["destination"]["host"], "reviews-primary");
        assert_eq!(main["route"][0]["weight"], 80);
        assert_eq!(main["route"][1]["destination"]["host"], "reviews-canary");
        assert_eq!(main["route"][1]["weight"], 20);
        assert_eq!(out["metadata"]["resourceVersion"], "7");
        let saved: Value = serde_json::from_str(
            out["metadata"]["annotations"][ORIGINAL_RULES_ANNOTATION]
                .as_str()
                .expect("annotation"),
        )
        .expect("json");
        assert_eq!(saved["main"], vs["spec"]["http"][1]);
        // A second step starts from the edited object and still restores the first original.
        let again = apply(
            Dialect::Istio,
            &rollout(),
            &out,
            "main",
            &TrafficPlan::weighted(50),
        )
        .expect("apply");
        assert_eq!(again["spec"]["http"][1]["route"][1]["weight"], 50);
        let back = restore(Dialect::Istio, &rollout(), &again, "main").expect("restore");
        assert_eq!(back, vs);
    }

    #[test]
    fn match_routes_are_inserted_before_the_rule_with_its_matches_anded() {
        let vs = user_vs();
        let plan = TrafficPlan::matched(&[beta()], Some(20));
        let out = apply(Dialect::Istio, &rollout(), &vs, "main", &plan).expect("apply");
        let http = out["spec"]["http"].as_array().expect("http");
        assert_eq!(http.len(), 3);
        assert_eq!(http[1]["name"], "sluice-main-0");
        assert_eq!(
            http[1]["match"],
            json!([{"uri": {"prefix": "/"}, "headers": {"x-user": {"exact": "beta"}}}])
        );
        assert_eq!(
            http[1]["retries"]["attempts"], 3,
            "the rule's policies come along"
        );
        assert_eq!(http[1]["route"][0]["destination"]["host"], "reviews-canary");
        assert_eq!(http[2]["name"], "main");
        assert_eq!(http[2]["mirror"]["host"], "reviews-canary");
        assert_eq!(http[2]["mirrorPercentage"]["value"], 20.0);
        // The next plan replaces the inserted rules rather than adding more.
        let next = apply(
            Dialect::Istio,
            &rollout(),
            &out,
            "main",
            &TrafficPlan::weighted(10),
        )
        .expect("apply");
        assert_eq!(next["spec"]["http"].as_array().map(Vec::len), Some(2));
        assert!(next["spec"]["http"][1].get("mirror").is_none());
        assert_eq!(restore(Dialect::Istio, &rollout(), &next, "main"), Ok(vs));
    }

    #[test]
    fn gateway_api_rules_keep_their_filters_and_get_a_mirror_filter() {
        let route = json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "web", "annotations": {"team": "a"}},
            "spec": {"rules": [
                {"name": "main", "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                 "filters": [{"type": "RequestHeaderModifier",
                              "requestHeaderModifier": {"set": [{"name": "x-env", "value": "prod"}]}}],
                 "timeouts": {"request": "10s"},
                 "backendRefs": [{"name": "reviews", "port": 9080}]},
            ]},
        });
        let plan = TrafficPlan::matched(&[beta()], Some(20));
        let out = apply(Dialect::GatewayApi, &rollout(), &route, "main", &plan).expect("apply");
        let rules = out["spec"]["rules"].as_array().expect("rules");
        assert_eq!(rules[0]["name"], "sluice-main-0");
        assert_eq!(
            rules[0]["matches"][0]["headers"],
            json!([{"name": "x-user", "type": "Exact", "value": "beta"}])
        );
        assert_eq!(rules[0]["matches"][0]["path"]["value"], "/");
        assert_eq!(rules[0]["filters"], route["spec"]["rules"][0]["filters"]);
        let filters = rules[1]["filters"].as_array().expect("filters");
        assert_eq!(filters.len(), 2);
        assert_eq!(
            filters[1]["requestMirror"]["backendRef"]["name"],
            "reviews-canary"
        );
        assert_eq!(rules[1]["timeouts"]["request"], "10s");
        assert_eq!(out["metadata"]["annotations"]["team"], "a");
        assert_eq!(
            restore(Dialect::GatewayApi, &rollout(), &out, "main"),
            Ok(route)
        );
    }

    #[test]
    fn the_diff_shows_only_changed_lines_with_context() {
        let a = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n";
        let b = "a\nb\nc\nd\nE\nf\ng\nh\ni\nj\nk\n";
        assert_eq!(
            unified_diff(a, b),
            "@@ -2,9 +2,10 @@\n b\n c\n d\n-e\n+E\n f\n g\n h\n i\n j\n+k\n"
        );
        assert_eq!(unified_diff(a, a), "  (no change)\n");
    }

    #[test]
    fn a_missing_rule_or_a_redirect_is_refused_with_the_route_and_rule() {
        let err = apply(
            Dialect::Istio,
            &rollout(),
            &user_vs(),
            "nope",
            &TrafficPlan::weighted(5),
        )
        .expect_err("missing");
        assert_eq!(
            err.to_string(),
            "VirtualService bookinfo/reviews-vs: no rule named \"nope\" in spec.http (named rules: admin, main)"
        );
        let mut vs = user_vs();
        vs["spec"]["http"][1]["redirect"] = json!({"uri": "/v2"});
        let err = apply(
            Dialect::Istio,
            &rollout(),
            &vs,
            "main",
            &TrafficPlan::weighted(5),
        )
        .expect_err("redirect");
        assert!(err.to_string().contains("has `redirect`"), "{err}");
        let mut bad = TrafficPlan::weighted(5);
        bad.routes[0].destinations[0].weight = 1;
        assert!(matches!(
            apply(Dialect::Istio, &rollout(), &user_vs(), "main", &bad),
            Err(OwnedRouteError::InvalidPlan(_))
        ));
    }
}
