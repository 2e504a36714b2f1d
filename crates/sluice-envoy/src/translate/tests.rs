//! Translation tests: tables for the rules, golden files for the exact YAML a reviewer sees
//! (`tests/golden/envoy/*.yaml`; regenerate with `UPDATE_GOLDEN=1 cargo test --lib router::`).

use super::*;
use sluice_core::spec::{RolloutSpec, ServiceSpec, Upstreams};
use sluice_core::traffic::{Mirror, WeightedDestination};

pub(crate) fn rollout(ns: Option<&str>, name: &str, hosts: &[&str]) -> Rollout {
    let mut r = Rollout::new(
        name,
        RolloutSpec {
            target_ref: None,
            upstreams: Some(Upstreams {
                stable: "127.0.0.1:9081".into(),
                canary: "localhost:9082".into(),
                stable_revision: None,
            }),
            revision: None,
            service: ServiceSpec {
                port: 9080,
                hosts: hosts.iter().map(|h| h.to_string()).collect(),
                gateways: vec![],
            },
            routing: Default::default(),
            strategy: Default::default(),
            analysis: Default::default(),
            schedule: None,
            promotion: Default::default(),
            progress_deadline: Default::default(),
            webhooks: vec![],
            skip_analysis: false,
            notifications: vec![],
        },
    );
    r.metadata.namespace = ns.map(str::to_string);
    r
}

fn header(name: &str, m: StringMatch) -> HttpMatch {
    HttpMatch {
        headers: [(name.to_string(), m)].into(),
    }
}

fn exact(v: &str) -> StringMatch {
    StringMatch {
        exact: Some(v.into()),
        ..Default::default()
    }
}

fn regex(v: &str) -> StringMatch {
    StringMatch {
        regex: Some(v.into()),
        ..Default::default()
    }
}

pub(crate) fn ab_matches() -> Vec<HttpMatch> {
    vec![
        header("x-user", exact("beta")),
        header("cookie", regex("^(.*?;)?(user=test)(;.*)?$")),
    ]
}

fn target(r: &Rollout) -> RouteTarget {
    RouteTarget::from_rollout(r).unwrap()
}

fn golden(name: &str, value: &Value) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/golden/envoy")
        .join(format!("{name}.yaml"));
    let actual = sluice_core::yaml::to_string(value).unwrap();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
    assert_eq!(actual, expected, "{} differs", path.display());
}

#[test]
fn cluster_names_follow_the_namespace_rule() {
    assert_eq!(
        cluster_name(None, "reviews", Destination::Stable),
        "reviews-stable"
    );
    assert_eq!(
        cluster_name(Some("default"), "reviews", Destination::Canary),
        "reviews-canary"
    );
    assert_eq!(
        cluster_name(Some("bookinfo"), "reviews", Destination::Canary),
        "bookinfo-reviews-canary"
    );
}

#[test]
fn upstream_addresses_parse_or_say_why_not() {
    assert_eq!(
        Upstream::parse("127.0.0.1:80"),
        Ok(Upstream {
            host: "127.0.0.1".into(),
            port: 80
        })
    );
    assert_eq!(
        Upstream::parse("[::1]:80").map(|u| u.host),
        Ok("::1".into())
    );
    assert_eq!(
        Upstream::parse("reviews:9080").map(|u| u.is_ip()),
        Ok(false)
    );
    for bad in [
        "reviews",
        "reviews:",
        ":80",
        "a:0",
        "a:70000",
        "::1:80",
        "a b:80",
        "http://x:80",
    ] {
        assert!(Upstream::parse(bad).is_err(), "{bad} accepted");
    }
    let mut r = rollout(None, "reviews", &[]);
    r.spec.upstreams.as_mut().unwrap().canary = "nope".into();
    let err = RouteTarget::from_rollout(&r).unwrap_err();
    assert!(err.to_string().contains("spec.upstreams.canary"), "{err}");
    r.spec.upstreams = None;
    assert_eq!(
        RouteTarget::from_rollout(&r),
        Err(Error::MissingUpstreams {
            rollout: "default/reviews".into()
        })
    );
}

#[test]
fn canary_weights_become_relative_weighted_clusters() {
    let r = rollout(None, "reviews", &[]);
    let cfg = translate(&[(target(&r), TrafficPlan::weighted(10))]).unwrap();
    let vh = &cfg.route_config["virtual_hosts"][0];
    assert_eq!(vh["domains"], json!(["reviews", "*"]));
    assert_eq!(
        vh["routes"][0]["route"]["weighted_clusters"]["clusters"],
        json!([{"name": "reviews-stable", "weight": 90}, {"name": "reviews-canary", "weight": 10}])
    );
    assert_eq!(cfg.route_config["validate_clusters"], json!(true));
    assert_eq!(cfg.cluster_names(), ["reviews-stable", "reviews-canary"]);
    assert_eq!(cfg.clusters[0]["type"], "STATIC");
    assert_eq!(cfg.clusters[1]["type"], "STRICT_DNS");
    // 0% and 100%: a plain cluster, no zero-weight entries.
    let all_stable = translate(&[(target(&r), TrafficPlan::stable_only())]).unwrap();
    assert_eq!(
        all_stable.route_config["virtual_hosts"][0]["routes"][0]["route"],
        json!({"cluster": "reviews-stable"})
    );
    let all_canary = translate(&[(target(&r), TrafficPlan::weighted(100))]).unwrap();
    assert_eq!(
        all_canary.route_config["virtual_hosts"][0]["routes"][0]["route"],
        json!({"cluster": "reviews-canary"})
    );
}

#[test]
fn or_matches_become_one_route_each_in_plan_order() {
    let r = rollout(Some("bookinfo"), "reviews", &["reviews.local"]);
    let cfg = translate(&[(target(&r), TrafficPlan::matched(&ab_matches(), Some(20)))]).unwrap();
    let routes = cfg.route_config["virtual_hosts"][0]["routes"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(routes.len(), 3);
    assert_eq!(
        routes[0]["match"]["headers"],
        json!([{"name": "x-user", "string_match": {"exact": "beta"}}])
    );
    assert_eq!(
        routes[1]["match"]["headers"][0]["string_match"],
        json!({"safe_regex": {"regex": "^(.*?;)?(user=test)(;.*)?$"}})
    );
    assert_eq!(
        routes[0]["route"],
        json!({"cluster": "bookinfo-reviews-canary"})
    );
    assert_eq!(routes[2]["match"], json!({"prefix": "/"}));
    assert_eq!(
        routes[2]["route"]["request_mirror_policies"],
        json!([{"cluster": "bookinfo-reviews-canary", "runtime_fraction":
            {"default_value": {"numerator": 20, "denominator": "HUNDRED"}}}])
    );
}

#[test]
fn several_rollouts_get_their_own_hosts_and_no_catch_all() {
    let a = rollout(None, "reviews", &[]);
    let b = rollout(Some("shop"), "cart", &["cart", "Cart.example"]);
    let cfg = translate(&[
        (target(&b), TrafficPlan::weighted(50)),
        (target(&a), TrafficPlan::weighted(10)),
    ])
    .unwrap();
    let vhs = cfg.route_config["virtual_hosts"].as_array().unwrap();
    // Sorted by key: default/reviews before shop/cart.
    assert_eq!(vhs[0]["domains"], json!(["reviews"]));
    assert_eq!(vhs[1]["domains"], json!(["cart", "cart.example"]));
    assert_eq!(cfg.clusters.len(), 4);
    let clash = rollout(None, "ratings", &["CART"]);
    let err = translate(&[
        (target(&b), TrafficPlan::weighted(50)),
        (target(&clash), TrafficPlan::weighted(0)),
    ])
    .unwrap_err();
    assert!(matches!(err, Error::DuplicateHost { .. }), "{err}");
    // Hosts repeated by one rollout are fine; flattened names that collide are not.
    let twice = rollout(None, "reviews", &["reviews", "Reviews"]);
    let cfg = translate(&[(target(&twice), TrafficPlan::weighted(0))]).unwrap();
    assert_eq!(
        cfg.route_config["virtual_hosts"][0]["domains"],
        json!(["reviews", "*"])
    );
    let flat = rollout(None, "shop-cart", &["shop-cart"]);
    let err = translate(&[
        (target(&b), TrafficPlan::weighted(50)),
        (target(&flat), TrafficPlan::weighted(0)),
    ])
    .unwrap_err();
    assert!(matches!(err, Error::DuplicateClusters { .. }), "{err}");
}

#[test]
fn bad_plans_and_matches_are_refused_with_a_path() {
    let r = rollout(None, "reviews", &[]);
    let mut plan = TrafficPlan::weighted(10);
    plan.routes[0].destinations[0].weight = 10;
    let err = translate(&[(target(&r), plan)]).unwrap_err();
    assert!(err.to_string().contains("weights add up to 20"), "{err}");

    let both = StringMatch {
        exact: Some("a".into()),
        prefix: Some("b".into()),
        regex: None,
    };
    let plan = TrafficPlan::matched(&[header("x-user", both)], None);
    let err = translate(&[(target(&r), plan)]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "default/reviews: routes[0].matches[0].headers.x-user: exactly one of exact, prefix, regex is required"
    );

    let plan = TrafficPlan::matched(&[header("x-user", regex("(unclosed"))], None);
    let err = translate(&[(target(&r), plan)]).unwrap_err();
    assert!(matches!(err, Error::BadRegex { .. }), "{err}");
}

#[test]
fn content_version_is_stable_and_sensitive() {
    let a = [json!({"a": 1})];
    assert_eq!(content_version(&a), content_version(&[json!({"a": 1})]));
    assert_ne!(content_version(&a), content_version(&[json!({"a": 2})]));
}

/// The exact Envoy config for the three kinds of plan (canary, A/B, dark launch + mirror).
#[test]
fn golden_configs() {
    let r = rollout(None, "reviews", &[]);
    let opts = BootstrapOptions {
        xds: XdsSource::Files {
            dir: "/var/lib/sluice/xds".into(),
        },
        listen_address: "127.0.0.1".into(),
        listen_port: 10000,
        admin_port: 9901,
    };
    golden("bootstrap", &bootstrap(&opts));
    let ads = BootstrapOptions {
        xds: XdsSource::Ads {
            host: "127.0.0.1".into(),
            port: 18000,
        },
        ..opts.clone()
    };
    golden("bootstrap-ads", &bootstrap(&ads));
    for (name, plan) in golden_plans() {
        let cfg = translate(&[(target(&r), plan)]).unwrap();
        golden(
            &format!("{name}-rds"),
            &discovery_response("v", std::slice::from_ref(&cfg.route_config)),
        );
        if name == "canary" {
            golden("canary-cds", &discovery_response("v", &cfg.clusters));
        }
    }
}

pub(crate) fn golden_plans() -> Vec<(&'static str, TrafficPlan)> {
    let mut ab = TrafficPlan::matched(&ab_matches(), None);
    // A weighted default route with a mirror too, to cover every field at once.
    ab.routes[1].destinations = vec![
        WeightedDestination {
            destination: Destination::Stable,
            weight: 75,
            set_cookie: None,
        },
        WeightedDestination {
            destination: Destination::Canary,
            weight: 25,
            set_cookie: None,
        },
    ];
    ab.routes[1].mirror = Some(Mirror {
        destination: Destination::Canary,
        percent: 5,
    });
    vec![
        ("canary", TrafficPlan::weighted(25)),
        ("ab", TrafficPlan::matched(&ab_matches(), None)),
        (
            "dark-launch",
            TrafficPlan::matched(&ab_matches()[..1], Some(30)),
        ),
        ("mixed", ab),
        (
            "sticky",
            TrafficPlan::sticky_weighted(
                20,
                &sluice_core::traffic::SetCookie {
                    name: "sluice-canary".into(),
                    value: sluice_core::traffic::STICKY_COOKIE_VALUE.into(),
                    max_age_seconds: 3600,
                },
            ),
        ),
    ]
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn plan() -> impl Strategy<Value = TrafficPlan> {
        let matches = prop::collection::vec(
            prop::collection::btree_map(
                "[a-z]{1,8}",
                prop_oneof![
                    "[a-z0-9]{0,6}".prop_map(|v| exact(&v)),
                    "[a-z0-9]{0,6}".prop_map(|v| StringMatch {
                        prefix: Some(v),
                        ..Default::default()
                    }),
                    "[a-z]{1,6}".prop_map(|v| regex(&format!("^{v}.*$"))),
                ],
                0..3,
            )
            .prop_map(|headers| HttpMatch { headers }),
            0..3,
        );
        (matches, 0u32..=100, prop::option::of(1u32..=100)).prop_map(|(m, w, mirror)| {
            let mut p = TrafficPlan::matched(&m, mirror);
            let last = p.routes.len() - 1;
            p.routes[last].destinations = TrafficPlan::weighted(w).routes[0].destinations.clone();
            p
        })
    }

    proptest! {
        /// Every valid plan translates; each plan route becomes max(1, matches) Envoy routes in
        /// order; weights of every weighted route add up to 100; mirrors keep their percent.
        #[test]
        fn every_valid_plan_translates_faithfully(plan in plan()) {
            let r = rollout(None, "reviews", &[]);
            let cfg = translate(&[(target(&r), plan.clone())]).unwrap();
            let routes = cfg.route_config["virtual_hosts"][0]["routes"].as_array().unwrap().clone();
            let expected: usize = plan.routes.iter().map(|r| r.matches.len().max(1)).sum();
            prop_assert_eq!(routes.len(), expected);
            let last = routes.last().unwrap();
            prop_assert_eq!(&last["match"], &json!({"prefix": "/"}));
            for route in &routes {
                let action = &route["route"];
                if let Some(ws) = action["weighted_clusters"]["clusters"].as_array() {
                    let sum: u64 = ws.iter().map(|c| c["weight"].as_u64().unwrap()).sum();
                    prop_assert_eq!(sum, 100);
                    prop_assert!(ws.iter().all(|c| c["weight"].as_u64().unwrap() > 0));
                } else {
                    prop_assert!(action["cluster"].is_string());
                }
            }
            let mirror = plan.routes.last().unwrap().mirror.as_ref().map(|m| m.percent);
            let got = last["route"]["request_mirror_policies"][0]["runtime_fraction"]["default_value"]["numerator"].as_u64();
            prop_assert_eq!(got, mirror.map(u64::from));
        }
    }
}
