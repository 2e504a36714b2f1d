//! The router over ADS against a real Envoy: what is pushed per change (counted by the
//! server), that Envoy serves exactly the translation (its `/config_dump` against the JSON),
//! resync after an Envoy restart, and a NACK keeping the last good config.

use std::time::{Duration, Instant};

use serde_json::Value;

use sluice_core::spec::{Rollout, StringMatch, Upstreams};
use sluice_core::traffic::TrafficPlan;
use sluice_envoy::ads::proto::{CLUSTER_TYPE, VIRTUAL_HOST_TYPE};
use sluice_envoy::translate::{RouteTarget, XdsSource, translate_rollout, with_catch_all};
use sluice_envoy::xds::vhds_name;
use sluice_testkit::procs::envoy::EnvoyProcess;

use super::envoy_router::{Rig, ab_matches, header_match, rig_with, rollout};

/// `n` rollouts named `app-{i}` (host `app-{i}`), stable v1, canary v2.
fn fleet(rig: &Rig, n: usize) -> Vec<Rollout> {
    (0..n)
        .map(|i| {
            let name = format!("app-{i}");
            rollout(&name, &[&name], &rig.v1, &rig.v2)
        })
        .collect()
}

fn pushed(rig: &Rig, type_url: &str) -> (u64, u64, u64) {
    let p = rig
        .router
        .ads()
        .expect("ADS")
        .pushed()
        .get(type_url)
        .cloned()
        .unwrap_or_default();
    (p.responses, p.resources, p.removed)
}

#[tokio::test]
async fn one_rollouts_change_pushes_that_rollouts_resources_only() {
    let rig = rig_with(true).await;
    let rollouts = fleet(&rig, 30);
    let items: Vec<(Rollout, TrafficPlan)> = rollouts
        .iter()
        .map(|r| (r.clone(), TrafficPlan::stable_only()))
        .collect();
    rig.router.set_many(&items).await.expect("all 30 served");
    assert_eq!(rig.count_canary(5, "app-7", &[]).await, 0);
    let (_, clusters0, _) = pushed(&rig, CLUSTER_TYPE);
    let (_, vhosts0, _) = pushed(&rig, VIRTUAL_HOST_TYPE);
    assert_eq!(clusters0, 60, "two clusters per rollout");
    assert_eq!(vhosts0, 30, "one virtual host per rollout");

    // A weight change: one virtual host, no cluster.
    let w = rig
        .router
        .set(&rollouts[7], &TrafficPlan::weighted(100))
        .await
        .expect("served");
    assert!(w.confirmed_in.is_some(), "an ADS change waits for the ACK");
    assert_eq!(rig.count_canary(10, "app-7", &[]).await, 10);
    assert_eq!(rig.count_canary(10, "app-8", &[]).await, 0);
    assert_eq!(pushed(&rig, CLUSTER_TYPE).1, clusters0);
    let (responses1, vhosts1, _) = pushed(&rig, VIRTUAL_HOST_TYPE);
    assert_eq!(vhosts1, vhosts0 + 1, "only app-7's virtual host is re-sent");

    // Ten changes at once: coalesced into few pushes, each virtual host sent once.
    let all = TrafficPlan::weighted(100);
    let sets = rollouts[10..20].iter().map(|r| rig.router.set(r, &all));
    for r in futures::future::join_all(sets).await {
        r.expect("served");
    }
    let (responses2, vhosts2, _) = pushed(&rig, VIRTUAL_HOST_TYPE);
    assert_eq!(vhosts2, vhosts1 + 10);
    assert!(
        responses2 - responses1 <= 3,
        "10 concurrent changes took {} pushes",
        responses2 - responses1
    );
    assert_eq!(rig.count_canary(5, "app-15", &[]).await, 5);

    // Removing a rollout removes its virtual host, then its two clusters; nothing else moves.
    rig.router.remove("default/app-3").await.expect("removed");
    assert_eq!(rig.get("app-3", &[]).await.0, 404);
    assert_eq!(pushed(&rig, VIRTUAL_HOST_TYPE).2, 1);
    assert_eq!(pushed(&rig, CLUSTER_TYPE).2, 2);
    assert_eq!(pushed(&rig, CLUSTER_TYPE).1, clusters0);
    assert_eq!(rig.count_canary(5, "app-4", &[]).await, 0);
    assert_eq!(rig.router.plans().await.len(), 29);
}

/// Every proto field sluice encodes by hand reaches Envoy as meant: Envoy's own dump of the
/// virtual hosts and clusters holds every value of the JSON translation.
#[tokio::test]
async fn envoy_serves_exactly_the_translation() {
    let rig = rig_with(true).await;
    let web = rollout("web", &["web", "Web.Example"], &rig.v1, &rig.v2);
    let mut dns = rollout("ratings", &["ratings"], &rig.v1, &rig.v2);
    dns.metadata.namespace = Some("bookinfo".into());
    dns.spec.upstreams = Some(Upstreams {
        stable: "localhost:9081".into(),
        canary: "localhost:9082".into(),
        stable_revision: None,
    });
    let mut matches = ab_matches();
    matches.push(header_match(
        "x-group",
        StringMatch {
            prefix: Some("beta-".into()),
            ..Default::default()
        },
    ));
    let plans = [
        (web.clone(), TrafficPlan::matched(&matches, Some(30))),
        (dns.clone(), TrafficPlan::weighted(25)),
    ];
    rig.router.set_many(&plans).await.expect("served");
    let dump = config_dump(&rig).await;
    for (r, plan) in &plans {
        let cfg = translate_rollout(&RouteTarget::from_rollout(r).expect("target"), plan)
            .expect("translates");
        let mut vh = cfg.virtual_host.clone();
        vh["name"] = Value::String(vhds_name(&cfg.prefix));
        let served = find(&dump, "virtual_hosts", &vhds_name(&cfg.prefix))
            .unwrap_or_else(|| panic!("no virtual host {} in {dump:#}", cfg.prefix));
        contains(&vh, served, &cfg.prefix);
        for c in &cfg.clusters {
            let name = c["name"].as_str().expect("name");
            let served = find_cluster(&dump, name).unwrap_or_else(|| panic!("no cluster {name}"));
            let mut c = c.clone();
            c.as_object_mut().expect("object").remove("@type");
            contains(&c, served, name);
        }
    }
    // The lone-rollout catch-all comes and goes with the count.
    rig.router
        .remove("bookinfo/ratings")
        .await
        .expect("removed");
    let dump = config_dump(&rig).await;
    let served = find(&dump, "virtual_hosts", "sluice/web").expect("web");
    let cfg =
        translate_rollout(&RouteTarget::from_rollout(&web).expect("t"), &plans[0].1).expect("ok");
    assert_eq!(
        served["domains"],
        with_catch_all(&cfg.virtual_host)["domains"]
    );
    assert_eq!(rig.get("anything", &[]).await.0, 200);
}

async fn config_dump(rig: &Rig) -> Value {
    let url = format!("http://127.0.0.1:{}/config_dump", rig.envoy.admin_port);
    rig.client
        .get(url)
        .send()
        .await
        .expect("config_dump")
        .json()
        .await
        .expect("JSON")
}

/// The object named `name` in any `key` array of `v`.
fn find<'a>(v: &'a Value, key: &str, name: &str) -> Option<&'a Value> {
    match v {
        Value::Object(o) => {
            if let Some(Value::Array(items)) = o.get(key)
                && let Some(hit) = items.iter().find(|i| i["name"] == name)
            {
                return Some(hit);
            }
            o.values().find_map(|x| find(x, key, name))
        }
        Value::Array(a) => a.iter().find_map(|x| find(x, key, name)),
        _ => None,
    }
}

fn find_cluster<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    match v {
        Value::Object(o) => {
            if let Some(c) = o.get("cluster")
                && c["name"] == name
            {
                return Some(c);
            }
            o.values().find_map(|x| find_cluster(x, name))
        }
        Value::Array(a) => a.iter().find_map(|x| find_cluster(x, name)),
        _ => None,
    }
}

/// Every leaf of `want` is in `got`; a leaf Envoy leaves out of its dump must be a protobuf
/// default (STATIC, HUNDRED, 0, false).
fn contains(want: &Value, got: &Value, at: &str) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, wv) in w {
                match g.get(k) {
                    Some(gv) => contains(wv, gv, &format!("{at}.{k}")),
                    None => assert!(
                        matches!(wv.as_str(), Some("STATIC" | "HUNDRED"))
                            || wv == &Value::from(0)
                            || wv == &Value::Bool(false),
                        "{at}.{k}: {wv} is not served (Envoy has {got:#})"
                    ),
                }
            }
        }
        (Value::Array(w), Value::Array(g)) => {
            assert_eq!(w.len(), g.len(), "{at}: {want} vs {got}");
            for (i, (wv, gv)) in w.iter().zip(g).enumerate() {
                contains(wv, gv, &format!("{at}[{i}]"));
            }
        }
        (Value::Number(w), g) => assert_eq!(
            Some(w.to_string()),
            g.as_str()
                .map(str::to_string)
                .or_else(|| g.as_number().map(|n| n.to_string())),
            "{at}"
        ),
        (w, g) => assert_eq!(w, g, "{at}"),
    }
}

#[tokio::test]
async fn a_restarted_envoy_gets_everything_again() {
    let mut rig = rig_with(true).await;
    let rollouts = fleet(&rig, 5);
    let items: Vec<(Rollout, TrafficPlan)> = rollouts
        .iter()
        .enumerate()
        .map(|(i, r)| {
            (
                r.clone(),
                TrafficPlan::weighted(if i == 2 { 100 } else { 0 }),
            )
        })
        .collect();
    rig.router.set_many(&items).await.expect("served");
    let (_, vhosts0, _) = pushed(&rig, VIRTUAL_HOST_TYPE);
    let port = rig.router.ads().expect("ADS").local_addr().port();
    // Kill Envoy; start a new one with the same bootstrap source.
    let old = std::mem::replace(
        &mut rig.envoy,
        EnvoyProcess::start_with_xds(
            rig.dir.path(),
            XdsSource::Ads {
                host: "127.0.0.1".into(),
                port,
            },
        )
        .await
        .expect("second envoy"),
    );
    old.stop().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while rig.get("app-2", &[]).await.0 != 200 {
        assert!(Instant::now() < deadline, "the new Envoy never got app-2");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(rig.count_canary(10, "app-2", &[]).await, 10);
    assert_eq!(rig.count_canary(10, "app-4", &[]).await, 0);
    assert_eq!(
        pushed(&rig, VIRTUAL_HOST_TYPE).1,
        vhosts0 + 5,
        "the new Envoy got every virtual host once"
    );
    // And changes keep flowing to it.
    rig.router
        .set(&rollouts[4], &TrafficPlan::weighted(100))
        .await
        .expect("served by the new Envoy");
    assert_eq!(rig.count_canary(10, "app-4", &[]).await, 10);
}

/// A plan sluice translates but Envoy refuses (`\s{33}`: RE2 counts `\s` one range more than
/// sluice's estimate): `set` fails with Envoy's own reason, the previous plan keeps serving and
/// stays the router's plan, and other rollouts' changes still go through.
#[tokio::test]
async fn a_nack_keeps_the_last_good_config_and_says_why() {
    let rig = rig_with(true).await;
    let r = rollout("reviews", &["reviews"], &rig.v1, &rig.v2);
    let other = rollout("ratings", &["ratings"], &rig.v1, &rig.v2);
    rig.router
        .set_many(&[
            (r.clone(), TrafficPlan::weighted(100)),
            (other.clone(), TrafficPlan::stable_only()),
        ])
        .await
        .expect("served");
    let near = header_match(
        "x-user",
        StringMatch {
            regex: Some("\\s{33}".into()),
            ..Default::default()
        },
    );
    let (bad_plan, good_plan) = (
        TrafficPlan::matched(&[near], None),
        TrafficPlan::weighted(100),
    );
    let bad = rig.router.set(&r, &bad_plan);
    let good = rig.router.set(&other, &good_plan);
    let (bad, good) = tokio::join!(bad, good);
    let err = bad.expect_err("envoy rejects the regex").to_string();
    assert!(err.contains("rejected"), "{err}");
    // Envoy's error_detail is in the message (RE2's complaint about the program size).
    assert!(err.to_lowercase().contains("regex"), "{err}");
    good.expect("the other rollout's change in the same batch still applies");
    assert_eq!(
        rig.router.plan("default/reviews").await,
        Some(TrafficPlan::weighted(100))
    );
    assert_eq!(rig.count_canary(10, "reviews", &[]).await, 10);
    assert_eq!(rig.count_canary(10, "ratings", &[]).await, 10);
    // Rejected in the batch (when both changes shared one) and alone: never re-sent on its own.
    let log = std::fs::read_to_string(&rig.envoy.log_path).expect("envoy log");
    let nacks = log.matches("delta config for").count();
    assert!((1..=2).contains(&nacks), "{nacks} rejections: {log}");
    // The stream is fine afterwards.
    rig.router
        .set(&r, &TrafficPlan::stable_only())
        .await
        .expect("served");
    assert_eq!(rig.count_canary(10, "reviews", &[]).await, 0);
    // A new rollout refused at its virtual host: the clusters pushed for it go away again.
    let fresh = rollout("fresh", &["fresh"], &rig.v1, &rig.v2);
    let (_, _, removed_before) = pushed(&rig, CLUSTER_TYPE);
    rig.router
        .set(&fresh, &bad_plan)
        .await
        .expect_err("envoy rejects the regex");
    assert_eq!(rig.router.plan("default/fresh").await, None);
    assert_eq!(pushed(&rig, CLUSTER_TYPE).2, removed_before + 2);
    let deadline = Instant::now() + Duration::from_secs(5);
    while find_cluster(&config_dump(&rig).await, "fresh-canary").is_some() {
        assert!(
            Instant::now() < deadline,
            "fresh's clusters stayed in Envoy"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(rig.get("fresh", &[]).await.0, 404);
}

/// decision → served for one rollout's change with 100 and 1,000 rollouts loaded (debug build;
/// printed for the docs, bounded loosely so a regression to O(N) per change shows).
#[tokio::test]
async fn single_change_latency_stays_flat_with_the_fleet_size() {
    let rig = rig_with(true).await;
    let mut results = Vec::new();
    for n in [100usize, 1000] {
        let rollouts = fleet(&rig, n);
        let items: Vec<(Rollout, TrafficPlan)> = rollouts
            .iter()
            .map(|r| (r.clone(), TrafficPlan::stable_only()))
            .collect();
        let t = Instant::now();
        rig.router.set_many(&items).await.expect("fleet served");
        let load = t.elapsed();
        let mut lat = Vec::new();
        for i in 0..50 {
            let r = &rollouts[(i * 7) % n];
            let t = Instant::now();
            rig.router
                .set(r, &TrafficPlan::weighted((i % 9 * 10 + 10) as u32))
                .await
                .expect("served");
            lat.push(t.elapsed());
        }
        lat.sort();
        let p50 = lat[lat.len() / 2];
        let p99 = lat[lat.len() * 99 / 100];
        eprintln!(
            "ADS, {n} rollouts: load {load:?}; one change -> served p50 {p50:?}, p99 {p99:?}"
        );
        results.push((n, p50));
        assert!(
            p99 < Duration::from_secs(1),
            "{n} rollouts: p99 {p99:?} for one change"
        );
    }
    eprintln!("{results:?}");
}

/// The bootstrap's stats inclusion list keeps what sluice's builtin queries, the demo and the
/// router read, and drops the rest (≈ 340 series per rollout without it).
#[tokio::test]
async fn envoy_exports_only_the_stats_sluice_reads() {
    let rig = rig_with(true).await;
    let r = rollout("reviews", &["reviews"], &rig.v1, &rig.v2);
    rig.router
        .set(&r, &TrafficPlan::weighted(50))
        .await
        .expect("served");
    rig.count_canary(20, "reviews", &[]).await;
    let url = format!("http://127.0.0.1:{}/stats/prometheus", rig.envoy.admin_port);
    let text = rig
        .client
        .get(url)
        .send()
        .await
        .expect("stats")
        .text()
        .await
        .expect("text");
    for series in [
        // sluice-analysis' builtin success rate and latency (both clusters).
        r#"envoy_cluster_upstream_rq_xx{envoy_response_code_class="2",envoy_cluster_name="reviews-canary"}"#,
        r#"envoy_cluster_upstream_rq_xx{envoy_response_code_class="2",envoy_cluster_name="reviews-stable"}"#,
        r#"envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="reviews-canary",le="#,
        r#"envoy_cluster_upstream_rq{envoy_response_code="200",envoy_cluster_name="reviews-canary"}"#,
        "envoy_cluster_upstream_rq_total{envoy_cluster_name=\"reviews-canary\"}",
    ] {
        assert!(text.contains(series), "missing {series} in:\n{text}");
    }
    let rollout_series = text
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains("reviews-canary"))
        .count();
    assert!(
        rollout_series < 40,
        "{rollout_series} series for one cluster:\n{text}"
    );
    assert!(!text.contains("upstream_cx_total"), "{text}");
}
