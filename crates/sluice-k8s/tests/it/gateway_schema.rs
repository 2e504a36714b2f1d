//! Every generated Gateway API route must be one the API server accepts: checked against the
//! standard-channel HTTPRoute and GRPCRoute CRD schemas (tests/fixtures/gateway-api/) with
//! sluice's schema checker (`sluice_core::validate::schema`: types, required fields, enums,
//! ranges, list sizes, string lengths and patterns).
//!
//! The CRDs' CEL rules (`x-kubernetes-validations`) are not run by that checker; [`cel`]
//! evaluates by hand the ones about fields sluice writes:
//! - backendRefs and the RequestMirror backendRef: "Must have port for Service reference";
//! - filters: "filter.requestMirror must be specified for RequestMirror filter.type" and "must be
//!   nil if the filter.type is not RequestMirror";
//! - requestMirror: "Only one of percent or fraction may be specified";
//! - parentRefs: "sectionName must be specified / unique when parentRefs includes 2 or more
//!   references to the same parent";
//! - rules: "the total number of matches across all rules in a route must be less than 128";
//! - backendRefs' filters (sticky sessions): "ResponseHeaderModifier filter cannot be
//!   repeated", "filter.responseHeaderModifier must be specified / must be nil if the
//!   filter.type is not ResponseHeaderModifier";
//! - and the list-map keys (`x-kubernetes-list-type: map`): header names unique in a match and
//!   in a header modifier's `add` / `set`.
//!
//! Not evaluated, because sluice never writes the fields they constrain ([`cel`] asserts that
//! it does not): the path-match rules (absolute path, no `//`, `/./`, `%2f`, ...), the
//! RequestRedirect / URLRewrite / CORS rules, `timeouts` (backendRequest <= request), the
//! header-modifier repetition rules, and GRPCRoute's `method` rules (service / method
//! syntax).

use serde_json::{Value, json};
use sluice_core::spec::Rollout;
use sluice_core::validate::{FieldPath, schema};
use sluice_k8s::gateway_api;

fn schema_of(file: &str) -> Value {
    let path = sluice_testkit::files::root()
        .join("tests/fixtures/gateway-api")
        .join(file);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("read schema")).expect("json")
}

/// Problems of a generated route: envelope, `spec` against the CRD schema, the CEL rules above.
fn problems(obj: &Value, kind: &str, schema: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if obj["apiVersion"] != "gateway.networking.k8s.io/v1" {
        out.push(format!("apiVersion {}", obj["apiVersion"]));
    }
    if obj["kind"] != kind {
        out.push(format!("kind {}", obj["kind"]));
    }
    if !obj["metadata"]["name"].is_string() {
        out.push("metadata.name missing".into());
    }
    let body = json!({ "spec": obj["spec"] });
    out.extend(
        schema::check(&body, schema, &FieldPath::default())
            .into_iter()
            .map(|m| format!("{}: {}", m.path, m.message)),
    );
    out.extend(cel(&obj["spec"]));
    out
}

fn is_service_ref(r: &Value) -> bool {
    r.get("group").is_none_or(|g| g == "") && r.get("kind").is_none_or(|k| k == "Service")
}

/// The CEL rules listed in the module docs, evaluated on `spec`.
fn cel(spec: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let empty = Vec::new();
    let parents = spec["parentRefs"].as_array().unwrap_or(&empty);
    for (i, a) in parents.iter().enumerate() {
        let same = |b: &Value| {
            ["group", "kind", "namespace", "name"]
                .iter()
                .all(|k| a.get(*k) == b.get(*k))
        };
        for (j, b) in parents.iter().enumerate().skip(i + 1) {
            if same(b) {
                if a.get("sectionName").is_none() || b.get("sectionName").is_none() {
                    out.push(format!(
                        "spec.parentRefs[{j}]: sectionName must be specified"
                    ));
                } else if a.get("sectionName") == b.get("sectionName") {
                    out.push(format!("spec.parentRefs[{j}]: sectionName must be unique"));
                }
            }
        }
    }
    let rules = spec["rules"].as_array().unwrap_or(&empty);
    let total: usize = rules
        .iter()
        .map(|r| r["matches"].as_array().map_or(0, Vec::len))
        .sum();
    if total > 128 {
        out.push(format!("spec.rules: {total} matches in all, more than 128"));
    }
    let mut names = std::collections::BTreeSet::new();
    for (i, rule) in rules.iter().enumerate() {
        let p = format!("spec.rules[{i}]");
        if let Some(n) = rule["name"].as_str()
            && !names.insert(n.to_string())
        {
            out.push(format!("{p}.name: {n} is not unique in the route"));
        }
        for field in ["timeouts", "retry", "sessionPersistence"] {
            if rule.get(field).is_some() {
                out.push(format!(
                    "{p}.{field}: written by sluice but its rules are not evaluated"
                ));
            }
        }
        for (k, b) in rule["backendRefs"]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .enumerate()
        {
            if is_service_ref(b) && b.get("port").is_none() {
                out.push(format!(
                    "{p}.backendRefs[{k}]: Must have port for Service reference"
                ));
            }
            // Sticky sessions: one ResponseHeaderModifier (its rules are evaluated here; any
            // other backend filter is not).
            let filters = b["filters"].as_array().unwrap_or(&empty);
            let modifiers = filters
                .iter()
                .filter(|f| f["type"] == "ResponseHeaderModifier")
                .count();
            if modifiers > 1 {
                out.push(format!(
                    "{p}.backendRefs[{k}].filters: ResponseHeaderModifier filter cannot be repeated"
                ));
            }
            for (j, f) in filters.iter().enumerate() {
                let fp = format!("{p}.backendRefs[{k}].filters[{j}]");
                if f["type"] != "ResponseHeaderModifier" {
                    out.push(format!("{fp}.type: {} (rules not evaluated)", f["type"]));
                    continue;
                }
                let others: Vec<&String> = f
                    .as_object()
                    .map(|o| {
                        o.keys()
                            .filter(|k| *k != "type" && *k != "responseHeaderModifier")
                            .collect()
                    })
                    .unwrap_or_default();
                if !others.is_empty() {
                    out.push(format!(
                        "{fp}: {others:?} must be nil for ResponseHeaderModifier"
                    ));
                }
                let Some(m) = f.get("responseHeaderModifier") else {
                    out.push(format!(
                        "{fp}: filter.responseHeaderModifier must be specified for \
                         ResponseHeaderModifier filter.type"
                    ));
                    continue;
                };
                for list in ["add", "set"] {
                    let mut seen = std::collections::BTreeSet::new();
                    for h in m[list].as_array().unwrap_or(&empty) {
                        let n = h["name"].as_str().unwrap_or("").to_ascii_lowercase();
                        if !seen.insert(n.clone()) {
                            out.push(format!("{fp}.responseHeaderModifier.{list}: {n} twice"));
                        }
                    }
                }
            }
        }
        for (k, m) in rule["matches"]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .enumerate()
        {
            for field in ["path", "method", "queryParams"] {
                if m.get(field).is_some() {
                    out.push(format!("{p}.matches[{k}].{field}: rules not evaluated"));
                }
            }
            let mut seen = std::collections::BTreeSet::new();
            for h in m["headers"].as_array().unwrap_or(&empty) {
                let n = h["name"].as_str().unwrap_or("").to_ascii_lowercase();
                if !seen.insert(n.clone()) {
                    out.push(format!("{p}.matches[{k}].headers: {n} twice"));
                }
            }
        }
        for (k, f) in rule["filters"]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .enumerate()
        {
            let fp = format!("{p}.filters[{k}]");
            if f["type"] != "RequestMirror" {
                out.push(format!("{fp}.type: {} (rules not evaluated)", f["type"]));
                continue;
            }
            let Some(m) = f.get("requestMirror") else {
                out.push(format!(
                    "{fp}: filter.requestMirror must be specified for RequestMirror filter.type"
                ));
                continue;
            };
            let others: Vec<&String> = f
                .as_object()
                .map(|o| {
                    o.keys()
                        .filter(|k| *k != "type" && *k != "requestMirror")
                        .collect()
                })
                .unwrap_or_default();
            if !others.is_empty() {
                out.push(format!("{fp}: {others:?} must be nil for RequestMirror"));
            }
            if m.get("percent").is_some() && m.get("fraction").is_some() {
                out.push(format!(
                    "{fp}.requestMirror: Only one of percent or fraction"
                ));
            }
            if is_service_ref(&m["backendRef"]) && m["backendRef"].get("port").is_none() {
                out.push(format!(
                    "{fp}.requestMirror.backendRef: Must have port for Service reference"
                ));
            }
        }
    }
    out
}

/// The examples as written, and each with Gateway API routing declared (parents, hostnames).
fn rollouts() -> Vec<Rollout> {
    let mut out = Vec::new();
    for f in sluice_testkit::files::example_files() {
        for r in sluice_testkit::files::load(&f) {
            if r.spec.target_ref.is_some() {
                let mut g = r.clone();
                // Istio's hosts and gateways make no sense with Gateway API (refused).
                g.spec.service.hosts.clear();
                g.spec.service.gateways.clear();
                g.spec.routing.istio = None;
                g.spec.routing.gateway_api = Some(
                    serde_json::from_value(json!({
                        "parentRefs": [
                            {"name": "public", "namespace": "infra", "sectionName": "https"},
                            {"name": "public", "namespace": "infra", "sectionName": "http"},
                        ],
                        "hostnames": ["reviews.example.com", "*.reviews.example.org"],
                    }))
                    .expect("gatewayAPI"),
                );
                out.push(g);
            }
            out.push(r);
        }
    }
    out
}

#[test]
fn routes_of_every_step_match_the_gateway_api_schemas() {
    let http = schema_of("httproute-v1.openapi.json");
    let grpc = schema_of("grpcroute-v1.openapi.json");
    let mut checked = 0;
    for r in rollouts() {
        for step in sluice_core::plan::steps(&sluice_testkit::plan_of(&r)) {
            let hr = gateway_api::http_route(&r, &step.traffic);
            let p = problems(&hr, "HTTPRoute", &http);
            assert!(p.is_empty(), "{} {}: {p:#?}", r.key(), step.label);
            let gr = gateway_api::grpc_route(&r, &step.traffic);
            let p = problems(&gr, "GRPCRoute", &grpc);
            assert!(p.is_empty(), "{} {}: {p:#?}", r.key(), step.label);
            checked += 2;
        }
    }
    assert!(checked >= 40, "only {checked} routes checked");
}

/// The check is not vacuous: routes the API server would reject are rejected, by the schema
/// and by the hand-evaluated CEL rules.
#[test]
fn the_check_rejects_broken_routes() {
    let http = schema_of("httproute-v1.openapi.json");
    let r = &sluice_testkit::files::load(
        &sluice_testkit::files::root().join("rollouts/reviews-dark-launch.yaml"),
    )[0];
    let plan = &sluice_core::plan::steps(&sluice_testkit::plan_of(r))[0].traffic;
    let good = gateway_api::http_route(r, plan);
    assert!(problems(&good, "HTTPRoute", &http).is_empty());

    type Mutation = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Mutation)> = vec![
        (
            "spec.rules[0].backendRefs[0].weight",
            Box::new(|v| v["spec"]["rules"][0]["backendRefs"][0]["weight"] = json!(-1)),
        ),
        (
            "spec.rules[0].matches[0].headers[0].type",
            Box::new(|v| {
                v["spec"]["rules"][0]["matches"][0]["headers"][0]["type"] = json!("Prefix")
            }),
        ),
        (
            "spec.rules[0].matches[0].headers[0].name",
            Box::new(|v| {
                v["spec"]["rules"][0]["matches"][0]["headers"][0]["name"] = json!("bad header")
            }),
        ),
        (
            "spec.rules[1].name",
            Box::new(|v| v["spec"]["rules"][1]["name"] = json!("Default")),
        ),
        (
            "spec.rules[1].filters[0].requestMirror.percent",
            Box::new(|v| {
                v["spec"]["rules"][1]["filters"][0]["requestMirror"]["percent"] = json!(101)
            }),
        ),
        (
            "spec.rules[1].filters[0].requestMirror: Only one",
            Box::new(|v| {
                v["spec"]["rules"][1]["filters"][0]["requestMirror"]["fraction"] =
                    json!({"numerator": 1})
            }),
        ),
        (
            "spec.rules[1].filters[0].requestMirror.backendRef: Must have port",
            Box::new(|v| {
                if let Some(b) = v["spec"]["rules"][1]["filters"][0]["requestMirror"]["backendRef"]
                    .as_object_mut()
                {
                    b.remove("port");
                }
            }),
        ),
        (
            "spec.rules[0].backendRefs[0]: Must have port",
            Box::new(|v| {
                if let Some(b) = v["spec"]["rules"][0]["backendRefs"][0].as_object_mut() {
                    b.remove("port");
                }
            }),
        ),
        (
            "spec.parentRefs[1]: sectionName must be specified",
            Box::new(|v| {
                let p = v["spec"]["parentRefs"][0].clone();
                v["spec"]["parentRefs"] = json!([p.clone(), p]);
            }),
        ),
        (
            "spec.rules[1].name: default is not unique",
            Box::new(|v| v["spec"]["rules"][0]["name"] = json!("default")),
        ),
    ];
    for (want, mutate) in cases {
        let mut bad = good.clone();
        mutate(&mut bad);
        let p = problems(&bad, "HTTPRoute", &http);
        assert!(
            p.iter().any(|m| m.starts_with(want)),
            "expected a problem at {want}, got {p:#?}"
        );
    }
}

mod generated {
    //! Random valid Rollouts with Gateway API routing: every HTTPRoute and GRPCRoute of every
    //! step matches the schemas, with weights adding up to 100 in every rule.

    use proptest::prelude::*;

    fn header_match() -> impl Strategy<Value = String> {
        let name = prop::sample::select(vec!["x-user", "end-user", "cookie", "x-beta"]);
        let m = prop_oneof![
            "[a-z0-9.]{1,8}".prop_map(|v| format!("exact: \"{v}\"")),
            "[a-z0-9.+*]{1,8}".prop_map(|v| format!("prefix: \"{v}\"")),
            "[a-z0-9]{1,8}".prop_map(|v| format!("regex: \"^(.*?;)?({v})(;.*)?$\"")),
        ];
        (name, m).prop_map(|(n, m)| format!("        - headers: {{{n}: {{{m}}}}}\n"))
    }

    fn strategy() -> impl Strategy<Value = String> {
        let matches = || prop::collection::vec(header_match(), 1..4).prop_map(|v| v.concat());
        prop_oneof![
            prop::collection::btree_set(1u32..=100, 1..6).prop_map(|s| {
                let v: Vec<String> = s.iter().map(ToString::to_string).collect();
                format!("    canary: {{steps: [{}]}}\n", v.join(", "))
            }),
            (matches(), 0u32..=100).prop_map(|(m, p)| format!(
                "    darkLaunch:\n      match:\n{m}      mirrorPercent: {p}\n      thenCanary: {{steps: [30, 60]}}\n"
            )),
            (matches(), 1u32..20).prop_map(|(m, n)| format!(
                "    abTest:\n      match:\n{m}      iterations: {n}\n"
            )),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn every_generated_step_is_a_valid_route(
            strategy in strategy(),
            port in 1u16..,
            parent in prop::option::of("[a-z]{1,8}"),
            grpc in any::<bool>(),
        ) {
            let parents = parent
                .map(|p| format!("      parentRefs: [{{name: {p}, sectionName: web}}]\n"))
                .unwrap_or_default();
            let kind = if grpc { "      routeKind: GRPCRoute\n" } else { "" };
            let text = format!(
                "apiVersion: sluice.dev/v1alpha1\nkind: Rollout\nmetadata: {{name: svc, namespace: ns}}\n\
                 spec:\n  targetRef: {{name: svc}}\n  service:\n    port: {port}\n  routing:\n    gatewayAPI:\n{parents}{kind}      hostnames: [svc.example.com]\n  strategy:\n{strategy}"
            );
            let rollouts = sluice_core::validate::load_str(&text, "gen").map_err(|p| {
                TestCaseError::fail(format!("{p:#?}\n{text}"))
            })?;
            let (kind_name, file) = if grpc {
                ("GRPCRoute", "grpcroute-v1.openapi.json")
            } else {
                ("HTTPRoute", "httproute-v1.openapi.json")
            };
            let schema = super::schema_of(file);
            for step in sluice_core::plan::steps(&sluice_testkit::plan_of(&rollouts[0])) {
                let route = sluice_k8s::gateway_api::declared_route(&rollouts[0], &step.traffic);
                let p = super::problems(&route, kind_name, &schema);
                prop_assert!(p.is_empty(), "{p:#?}\n{text}");
                for rule in route["spec"]["rules"].as_array().into_iter().flatten() {
                    let sum: u64 = rule["backendRefs"].as_array().into_iter().flatten()
                        .filter_map(|d| d["weight"].as_u64()).sum();
                    prop_assert_eq!(sum, 100);
                }
            }
        }
    }
}

/// An HTTPRoute and a GRPCRoute the user owns, edited by sluice at every step of every example
/// (rules inserted with their matches, weights, the mirror filter), still match the schemas and
/// the CEL rules above.
#[test]
fn a_users_route_edited_at_every_step_matches_the_gateway_api_schemas() {
    use sluice_k8s::owned_route::{Dialect, apply};
    let http = schema_of("httproute-v1.openapi.json");
    let grpc = schema_of("grpcroute-v1.openapi.json");
    let path = sluice_testkit::files::root().join("tests/fixtures/owned-routes/web-httproute.yaml");
    let user_http: Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).expect("read")).expect("yaml");
    let user_grpc = json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "GRPCRoute",
        "metadata": {"name": "grpc", "namespace": "bookinfo"},
        "spec": {
            "parentRefs": [{"name": "public", "namespace": "infra"}],
            "rules": [
                {"name": "ratings", "matches": [{"method": {"service": "bookinfo.Ratings"}}],
                 "backendRefs": [{"name": "ratings", "port": 9080}]},
                {"name": "reviews", "matches": [{"method": {"service": "bookinfo.Reviews"}}],
                 "filters": [{"type": "RequestHeaderModifier",
                              "requestHeaderModifier": {"add": [{"name": "x-env", "value": "prod"}]}}],
                 "backendRefs": [{"name": "reviews", "port": 9080}]},
            ],
        },
    });
    for (user, kind, schema) in [
        (&user_http, "HTTPRoute", &http),
        (&user_grpc, "GRPCRoute", &grpc),
    ] {
        // The user's own fields (path matches, timeouts, header filters) are copied into the
        // inserted rules as written; their CEL rules are the ones `cel` does not evaluate, so
        // those notes are left out here: the schema still checks them.
        let checked = |route: &Value| -> Vec<String> {
            problems(route, kind, schema)
                .into_iter()
                .filter(|p| !p.contains("not evaluated"))
                .collect()
        };
        assert_eq!(checked(user), Vec::<String>::new());
        let mut inserted = 0;
        for r in rollouts() {
            for step in sluice_core::plan::steps(&sluice_testkit::plan_of(&r)) {
                let route =
                    apply(Dialect::GatewayApi, &r, user, "reviews", &step.traffic).expect("apply");
                let p = checked(&route);
                assert!(p.is_empty(), "{kind} {} {}: {p:#?}", r.key(), step.label);
                inserted += route["spec"]["rules"].as_array().map_or(0, Vec::len) - 2;
            }
        }
        assert!(inserted >= 3, "{kind}: no rule was inserted ({inserted})");
    }
}
