//! `sluice plan`: golden files of every example, and route weights adding up to 100.

use sluice_core::spec::RouteKind;
use sluice_testkit::files::{assert_golden, example_files, load, root};

fn golden_name(path: &std::path::Path, ext: &str) -> String {
    let rel = path
        .strip_prefix(root().join("rollouts"))
        .expect("example under rollouts/");
    let stem = rel.with_extension("").to_string_lossy().replace('/', "-");
    format!("plan/{stem}.{ext}")
}

#[test]
fn plan_outputs_match_golden_files() {
    let files = example_files();
    assert!(files.len() >= 4, "expected the examples in rollouts/");
    for f in files {
        let rollouts = load(&f);
        let table: Vec<String> = rollouts
            .iter()
            .map(|r| sluice_core::plan::table(r, &sluice_testkit::plan_of(r)))
            .collect();
        assert_golden(&golden_name(&f, "txt"), &table.join("\n"));
        let vs: Vec<String> = rollouts
            .iter()
            .map(|r| sluice_k8s::istio::plan_yaml(r, &sluice_testkit::plan_of(r)).expect("yaml"))
            .collect();
        assert_golden(&golden_name(&f, "virtualservice.yaml"), &vs.concat());
        for kind in [RouteKind::Http, RouteKind::Grpc] {
            let routes: Vec<String> = rollouts
                .iter()
                .map(|r| {
                    sluice_k8s::gateway_api::plan_yaml(r, &sluice_testkit::plan_of(r), kind)
                        .expect("yaml")
                })
                .collect();
            let ext = match kind {
                RouteKind::Http => "httproute.yaml",
                RouteKind::Grpc => "grpcroute.yaml",
            };
            assert_golden(&golden_name(&f, ext), &routes.concat());
        }
    }
}

/// Every step's HTTPRoute / GRPCRoute, read back from the printed stream: one document per
/// step, every rule's weights adding up to 100, the default rule last, the promoted state all
/// on primary.
#[test]
fn every_step_route_adds_up_to_100() {
    for f in example_files() {
        for r in load(&f) {
            for kind in [RouteKind::Http, RouteKind::Grpc] {
                let plan = sluice_testkit::plan_of(&r);
                let stream = sluice_k8s::gateway_api::plan_yaml(&r, &plan, kind).expect("yaml");
                let docs: Vec<serde_json::Value> = serde_yaml::Deserializer::from_str(&stream)
                    .map(|d| serde::Deserialize::deserialize(d).expect("valid YAML document"))
                    .collect();
                assert_eq!(docs.len(), sluice_core::plan::steps(&plan).len());
                for (i, route) in docs.iter().enumerate() {
                    assert_eq!(route["kind"], sluice_k8s::gateway_api::kind_name(kind));
                    let rules = route["spec"]["rules"].as_array().expect("rules");
                    for rule in rules {
                        let sum: u64 = rule["backendRefs"]
                            .as_array()
                            .expect("backendRefs")
                            .iter()
                            .map(|b| b["weight"].as_u64().expect("weight"))
                            .sum();
                        assert_eq!(sum, 100, "{} step {i}", f.display());
                    }
                    let last = rules.last().expect("default rule");
                    assert!(last.get("matches").is_none());
                    assert_eq!(last["name"], "default");
                }
                let promoted = docs.last().expect("promoted");
                assert_eq!(
                    promoted["spec"]["rules"][0]["backendRefs"][0],
                    serde_json::json!({"name": format!("{}-primary", r.metadata.name.as_deref().unwrap_or("")), "port": r.spec.service.port, "weight": 100})
                );
            }
        }
    }
}

/// The examples' cookie matches work on the `Cookie` header browsers send: `name=value` pairs
/// separated by `; ` (a space after the semicolon), in any position.
#[test]
fn example_cookie_regexes_match_real_cookie_headers() {
    let mut checked = 0;
    for f in example_files() {
        for r in load(&f) {
            let s = &r.spec.strategy;
            let matches = s
                .dark_launch
                .iter()
                .flat_map(|d| &d.matches)
                .chain(s.ab_test.iter().flat_map(|a| &a.matches));
            for m in matches {
                let Some(re) = m.headers.get("cookie").and_then(|c| c.regex.as_deref()) else {
                    continue;
                };
                let re = regex::Regex::new(re).expect("valid regex");
                for header in [
                    "user=jason",
                    "theme=dark; user=jason",
                    "user=jason; theme=dark",
                ] {
                    assert!(
                        re.is_match(header),
                        "{}: {re} misses {header:?}",
                        f.display()
                    );
                }
                for header in ["user=jasonx", "theme=dark; user=bob", "xuser=jason"] {
                    assert!(
                        !re.is_match(header),
                        "{}: {re} matches {header:?}",
                        f.display()
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 1, "no example with a cookie match");
}

/// Every strategy must be covered by an example (and so by a golden file).
#[test]
fn examples_cover_every_strategy() {
    let all: Vec<_> = example_files().iter().flat_map(|f| load(f)).collect();
    let s =
        |pred: fn(&sluice_core::spec::Strategy) -> bool| all.iter().any(|r| pred(&r.spec.strategy));
    assert!(s(|s| s.canary.is_some()));
    assert!(s(|s| s.dark_launch.is_some()));
    assert!(s(|s| s.ab_test.is_some()));
    assert!(all.iter().any(|r| r.spec.upstreams.is_some()));
}

/// Parses the printed YAML stream back and checks every http route of every step.
#[test]
fn every_step_routes_add_up_to_100() {
    for f in example_files() {
        for r in load(&f) {
            let stream =
                sluice_k8s::istio::plan_yaml(&r, &sluice_testkit::plan_of(&r)).expect("yaml");
            let docs: Vec<serde_json::Value> = serde_yaml::Deserializer::from_str(&stream)
                .map(|d| serde::Deserialize::deserialize(d).expect("valid YAML document"))
                .collect();
            let steps = sluice_core::plan::steps(&sluice_testkit::plan_of(&r));
            assert_eq!(
                docs.len(),
                steps.len(),
                "{}: one document per step",
                f.display()
            );
            for (i, vs) in docs.iter().enumerate() {
                assert_eq!(vs["kind"], "VirtualService");
                let http = vs["spec"]["http"].as_array().expect("http routes");
                assert!(!http.is_empty());
                for (j, route) in http.iter().enumerate() {
                    let sum: u64 = route["route"]
                        .as_array()
                        .expect("route list")
                        .iter()
                        .map(|d| d["weight"].as_u64().expect("integer weight"))
                        .sum();
                    assert_eq!(sum, 100, "{} step {i} http[{j}]", f.display());
                }
                // The default route comes last and matches everything.
                assert!(http.last().and_then(|r| r.get("match")).is_none());
            }
            let last = docs.last().expect("promoted state");
            assert_eq!(last["spec"]["http"][0]["route"][0]["weight"], 100);
            assert_eq!(
                last["spec"]["http"][0]["route"][0]["destination"]["host"],
                format!("{}-primary", r.metadata.name.as_deref().unwrap_or(""))
            );
        }
    }
}

#[test]
fn cli_prints_the_same_stream() {
    let file = root().join("rollouts/reviews-dark-launch.yaml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["plan", "-o", "virtualservice"])
        .arg(&file)
        .output()
        .expect("run sluice plan");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected: String = load(&file)
        .iter()
        .map(|r| sluice_k8s::istio::plan_yaml(r, &sluice_testkit::plan_of(r)).expect("yaml"))
        .collect();
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);

    let json = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["plan", "-o", "json"])
        .arg(&file)
        .output()
        .expect("run sluice plan");
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json output");
    assert_eq!(v[0]["steps"][0]["label"], "dark launch (mirror 20%)");
    assert_eq!(v[0]["steps"][0]["checks"], 5);
    assert_eq!(v[0]["steps"][0]["httpRoute"]["kind"], "HTTPRoute");
    assert_eq!(v[0]["steps"][0]["grpcRoute"]["kind"], "GRPCRoute");

    for (format, kind) in [
        ("httproute", RouteKind::Http),
        ("grpcroute", RouteKind::Grpc),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["plan", "-o", format])
            .arg(&file)
            .output()
            .expect("run sluice plan");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let expected: String = load(&file)
            .iter()
            .map(|r| {
                sluice_k8s::gateway_api::plan_yaml(r, &sluice_testkit::plan_of(r), kind)
                    .expect("yaml")
            })
            .collect();
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
        assert!(expected.contains("type: RequestMirror"), "{expected}");
    }
}

/// `sluice plan --route FILE`: the diff of every step against the user's own route, for the
/// two examples that name one (golden files), the same from the binary, and a clear error for
/// a route the Rollout does not name.
#[test]
fn plan_route_shows_each_steps_diff_against_the_users_route() {
    for (example, route) in [
        ("reviews-owned-virtualservice", "reviews-vs"),
        ("reviews-owned-httproute", "web-httproute"),
    ] {
        let file = root().join(format!("rollouts/{example}.yaml"));
        let route_file = root().join(format!("tests/fixtures/owned-routes/{route}.yaml"));
        let user_route: serde_json::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&route_file).expect("read route"))
                .expect("route YAML");
        let r = &load(&file)[0];
        let diff = sluice_k8s::owned_route::plan_diff(r, &sluice_testkit::plan_of(r), &user_route)
            .expect("diff");
        assert_golden(&format!("plan/{example}.route.diff"), &diff);
        assert!(diff.contains("# finalize (Rollout deleted): the rule put back\n  (no change)\n"));

        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["plan", "--route"])
            .arg(&route_file)
            .arg(&file)
            .output()
            .expect("run sluice plan");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), diff);
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["plan", "--route"])
        .arg(root().join("tests/fixtures/owned-routes/web-httproute.yaml"))
        .arg(root().join("rollouts/reviews-owned-virtualservice.yaml"))
        .output()
        .expect("run sluice plan");
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: the Rollout reviews does not name a route of its own for this HTTPRoute: set \
         spec.routing.gatewayAPI.routeRef\n"
    );
}
