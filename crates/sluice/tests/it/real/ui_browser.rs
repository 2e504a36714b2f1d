//! The web UI in a real headless Chromium (Debian `chromium` + `chromium-driver`), driven by
//! fantoccini over WebDriver, against the app served on 127.0.0.1: once over the in-memory
//! backend (which runs the real engine on a ticker), once over the real standalone mode
//! (rollout file, runner, store, a real Envoy fed by file-based xDS, demo upstreams).
//!
//! Proves: the page lists rollouts; the manual promotion gate shows; clicking promote asks for
//! the token once and moves the rollout on; the page follows without a reload (SSE). Saves
//! screenshots under `$CARGO_TARGET_TMPDIR/ui-screenshots/`. Fails (never skips) when the
//! browser, the driver or Envoy is missing: `scripts/install-deps.sh` installs them.

// Helpers outside #[test] fns panic on purpose: the panic is the test's failure report.
#![allow(clippy::unwrap_used)]

use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use sluice_api::{ApiState, router};
use sluice_core::spec::{Phase, Reason};
use sluice_testkit::memory::{Health, MemoryBackend};
use sluice_testkit::web::{TOKEN, canary, dark_launch, drive};

const CHROMIUM: &str = "/usr/bin/chromium";
const DEADLINE: Duration = Duration::from_secs(20);
/// Well under the UI's 30 s fallback refresh: an update this fast came through SSE.
const SSE_DEADLINE: Duration = Duration::from_secs(8);

/// chromedriver, killed when the test ends however it ends.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

async fn start_driver() -> Driver {
    for bin in [CHROMIUM, "/usr/bin/chromedriver"] {
        assert!(
            std::path::Path::new(bin).exists(),
            "{bin} is missing: run scripts/install-deps.sh (installs chromium and chromium-driver)"
        );
    }
    let port = free_port();
    let child = Command::new("/usr/bin/chromedriver")
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver { child, port };
    // Ready when its status endpoint answers.
    let start = Instant::now();
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/status");
    loop {
        let answer = http.get(&url).timeout(Duration::from_secs(1)).send().await;
        if let Ok(resp) = answer
            && let Ok(text) = resp.text().await
            && text.contains("\"ready\":true")
        {
            return driver;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "chromedriver not ready within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A browser session; the profile directory lives as long as the returned guard.
async fn browser(driver: &Driver) -> (Client, tempfile::TempDir) {
    let profile = tempfile::tempdir().expect("temp profile dir");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1440,1000", "--hide-scrollbars",
                format!("--user-data-dir={}", profile.path().display()),
            ]
        }),
    );
    let client = ClientBuilder::rustls()
        .expect("rustls connector")
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a WebDriver session");
    (client, profile)
}

/// Serve the app on a free port of 127.0.0.1; the server stops with the test's runtime.
async fn serve(backend: Arc<MemoryBackend>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(ApiState::new(backend, Some(TOKEN.into())));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

async fn save_screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    let path = screenshot_dir().join(name);
    std::fs::write(&path, png).expect("write screenshot");
    eprintln!("screenshot: {}", path.display());
}

/// Text of the first element matching `css`, polled until `want` holds.
async fn wait_text(c: &Client, css: &str, want: impl Fn(&str) -> bool) -> String {
    wait_text_within(c, css, want, DEADLINE).await
}

async fn wait_text_within(
    c: &Client,
    css: &str,
    want: impl Fn(&str) -> bool,
    deadline: Duration,
) -> String {
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < deadline {
        if let Ok(el) = c.find(Locator::Css(css)).await
            && let Ok(t) = el.text().await
        {
            if want(&t) {
                return t;
            }
            last = t;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css}: text never matched within {deadline:?}; last {last:?}");
}

/// Click the element matching `css`. The page re-renders on every change, so an element found
/// a moment ago may be gone: find it again until the click lands.
async fn click(c: &Client, css: &str) {
    let start = Instant::now();
    loop {
        let err = match c.find(Locator::Css(css)).await {
            Ok(el) => match el.click().await {
                Ok(_) => return,
                Err(e) => e,
            },
            Err(e) => e,
        };
        assert!(start.elapsed() < DEADLINE, "cannot click {css}: {err}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn js(c: &Client, script: &str) -> serde_json::Value {
    c.execute(script, vec![]).await.expect("script runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_at_the_manual_gate_updates_the_page_live() {
    sluice_testkit::fakes::install_crypto();
    let backend = MemoryBackend::new(256);

    // default/web: walked to the manual gate on a simulated clock ending now, so the charts
    // have history. shop/checkout: a dark launch moving in real time. default/search: failed
    // analysis, rolled back.
    let mut now = Utc::now() - chrono::Duration::seconds(40);
    backend.insert(
        canary("default", "web", true, "1s", &[5, 10, 25, 50, 75]),
        "v1.4.2",
    );
    backend.insert(
        canary("default", "search", false, "1s", &[20, 50]),
        "v3.0.0",
    );
    backend.deploy("default", "web", "v1.5.0");
    backend.deploy("default", "search", "v3.1.0");
    backend.set_health("default", "search", Health::Failing);
    drive(&backend, &mut now, "default", "search", |s| {
        s.phase == Phase::Failed
    })
    .await;
    let gate = drive(&backend, &mut now, "default", "web", |s| {
        s.reason == Some(Reason::AwaitingPromotion)
    })
    .await;
    assert_eq!(gate.phase, Phase::Paused);
    // 30 s per iteration: its dark phase (checked near the end) must outlast the walk through
    // the other pages even on a loaded machine (2 s, then 10 s, made it finish first under
    // load). Nothing here needs it to move on.
    backend.insert(dark_launch("shop", "checkout", "30s"), "2024.11.1");
    backend.deploy("shop", "checkout", "2024.11.2");
    let _ticker = backend.spawn_ticker(Duration::from_millis(200));

    let base = serve(backend.clone()).await;
    let driver = start_driver().await;
    let (c, _profile) = browser(&driver).await;

    // The list shows the rollout at its gate.
    c.goto(&format!("{base}/")).await.unwrap();
    let row = r#"tr.rollout-row[data-key="default/web"]"#;
    let text = wait_text(&c, row, |t| t.contains("awaiting promotion")).await;
    assert!(text.contains("Paused"), "{text}");
    wait_text(&c, r#"tr.rollout-row[data-key="shop/checkout"]"#, |t| {
        t.contains("Progressing")
    })
    .await;
    save_screenshot(&c, "sluice-ui-list.png").await;

    // The detail page: the gate is visible in the timeline, with charts and events.
    click(&c, row).await;
    wait_text(&c, "#phase", |t| t == "Paused").await;
    let timeline = wait_text(&c, "#timeline", |t| t.contains("manual promotion")).await;
    assert!(timeline.contains("canary 75%"), "{timeline}");
    assert!(timeline.contains("waiting"), "{timeline}");
    let charts = c.find_all(Locator::Css(".chart")).await.unwrap();
    assert_eq!(charts.len(), 2, "one chart per metric");
    let points = c
        .find_all(Locator::Css(".chart circle.pt-Pass"))
        .await
        .unwrap();
    assert!(
        points.len() >= 10,
        "5 analyses x 2 metrics drawn, got {}",
        points.len()
    );
    assert_eq!(
        c.find_all(Locator::Css(".chart line.threshold"))
            .await
            .unwrap()
            .len(),
        2
    );
    let page_id = js(&c, "return window.sluicePageId").await;
    save_screenshot(&c, "sluice-ui-gate.png").await;
    // The whole page, for the README and reviews; then back to a laptop-sized window.
    c.set_window_size(1440, 1700).await.unwrap();
    save_screenshot(&c, "sluice-ui-gate-full.png").await;
    c.set_window_size(1440, 1000).await.unwrap();

    // Promote: the token is asked for once, then the page follows the engine without a reload.
    click(&c, r#"button[data-cmd="promote"]"#).await;
    let input = c
        .wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css("#token-dialog[open] #token-input"))
        .await
        .expect("the token dialog opens");
    input.send_keys(TOKEN).await.unwrap();
    click(&c, "#token-ok").await;
    wait_text(&c, "#phase", |t| t == "Succeeded").await;
    assert_eq!(
        backend
            .status("default", "web")
            .unwrap()
            .stable_revision
            .as_deref(),
        Some("v1.5.0")
    );
    assert_eq!(
        js(&c, "return window.sluicePageId").await,
        page_id,
        "the page reloaded"
    );
    let events = wait_text(&c, "#events", |t| t.contains("Succeeded")).await;
    assert!(events.contains("promoted"), "{events}");
    // The token is kept for the tab but never shown.
    assert_eq!(
        js(&c, "return sessionStorage.getItem('sluice.apiToken')").await,
        TOKEN
    );
    let body = js(
        &c,
        "return document.body.innerText + document.body.innerHTML",
    )
    .await;
    assert!(
        !body.as_str().unwrap_or_default().contains(TOKEN),
        "the token is rendered"
    );
    save_screenshot(&c, "sluice-ui-promoted.png").await;

    // Back on the list, without a reload either.
    click(&c, "a.back").await;
    wait_text(&c, row, |t| t.contains("Succeeded")).await;
    assert_eq!(js(&c, "return window.sluicePageId").await, page_id);

    // A change made on the server side only (a new revision) reaches the open page through
    // the SSE stream, well before the page's 30 s fallback refresh could.
    backend.deploy("default", "web", "v1.6.0");
    wait_text_within(&c, row, |t| t.contains("v1.6.0"), SSE_DEADLINE).await;
    assert_eq!(js(&c, "return window.sluicePageId").await, page_id);

    // A rolled-back rollout: failed points on the charts, the failed step in the timeline.
    c.goto(&format!("{base}/#/rollouts/default/search"))
        .await
        .unwrap();
    wait_text(&c, "#phase", |t| t == "Failed").await;
    let timeline = wait_text(&c, "#timeline", |t| t.contains("failed")).await;
    assert!(timeline.contains("canary 20%"), "{timeline}");
    let failed = c
        .find_all(Locator::Css(".chart circle.pt-Fail"))
        .await
        .unwrap();
    assert_eq!(failed.len(), 4, "2 failed analyses x 2 metrics");
    save_screenshot(&c, "sluice-ui-rolled-back.png").await;
    click(&c, "a.back").await;
    let page_id = js(&c, "return window.sluicePageId").await;

    // A dark launch shows its match rule and mirror.
    click(&c, r#"tr.rollout-row[data-key="shop/checkout"] a"#).await;
    let routes = wait_text(&c, ".routes", |t| t.contains("x-beta")).await;
    assert!(routes.contains(r#"x-beta = "true""#), "{routes}");
    assert!(routes.contains("canary 100%"), "{routes}");
    assert!(routes.contains("mirror 20% to canary"), "{routes}");
    c.set_window_size(1440, 1400).await.unwrap();
    save_screenshot(&c, "sluice-ui-dark-launch.png").await;

    // Abort asks for confirmation: cancel changes nothing, confirm rolls back.
    let abort = r#"button[data-cmd="abort"]"#;
    // Record every command the page sends from here on.
    js(
        &c,
        "window.sluicePosts = []; const f = window.fetch; \
         window.fetch = (u, o) => { if (o && o.method === 'POST') window.sluicePosts.push(u); \
         return f(u, o); }; return true",
    )
    .await;
    click(&c, abort).await;
    c.wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css("#confirm-dialog[open]"))
        .await
        .expect("the confirmation opens");
    click(&c, "#confirm-cancel").await;
    assert_eq!(
        js(&c, "return document.querySelector('#confirm-dialog').open").await,
        false
    );
    assert_eq!(
        js(&c, "return window.sluicePosts.length").await,
        0,
        "cancel sent a command"
    );
    assert_ne!(
        backend.status("shop", "checkout").unwrap().phase,
        Phase::Failed
    );
    click(&c, abort).await;
    c.wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css("#confirm-dialog[open] #confirm-ok"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The token is already known for this tab: no second prompt.
    wait_text(&c, "#phase", |t| t == "Failed").await;
    assert_eq!(
        backend.status("shop", "checkout").unwrap().reason,
        Some(Reason::Aborted)
    );
    assert_eq!(
        js(&c, "return window.sluicePosts").await,
        json!(["/api/v1/rollouts/shop/checkout/abort"])
    );
    assert_eq!(js(&c, "return window.sluicePageId").await, page_id);
    c.close().await.unwrap();
}

// ------------------------------------------------------------------ standalone backend

/// A standalone Rollout with a manual gate and no metrics (so no Prometheus is involved: the
/// engine passes each step because the user asked for no checks), 1 s steps.
fn standalone_rollout(stable: &str, canary: &str) -> String {
    format!(
        r#"apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata: {{name: web}}
spec:
  upstreams: {{stable: "{stable}", canary: "{canary}"}}
  revision: v2
  service: {{port: 80, hosts: [web]}}
  strategy: {{canary: {{steps: [20, 50]}}}}
  analysis: {{interval: 1s}}
  promotion: {{manual: true}}
"#
    )
}

/// The same UI flow against the real standalone mode: rollout file in a directory, the
/// standalone runner and store, sluice's file-based xDS served by a real Envoy, demo backends
/// as upstreams, and the web API/UI served by `Standalone::launch` on 127.0.0.1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_over_the_standalone_backend_moves_the_rollout_on() {
    use sluice_core::backend::Backend;
    use sluice_lab::standalone::load::{self, Target};
    use sluice_standalone::launch::{Options, Standalone};
    use sluice_standalone::runner::Timing;
    use sluice_testkit::demo_app::{self, DemoConfig};
    use sluice_testkit::procs::envoy::EnvoyProcess;

    sluice_testkit::fakes::install_crypto();
    let work = tempfile::tempdir().expect("temp dir");
    let any = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let v1 = demo_app::start(DemoConfig::new("v1"), any).await.unwrap();
    let v2 = demo_app::start(DemoConfig::new("v2"), any).await.unwrap();
    let (envoy, xds) = EnvoyProcess::start_standalone(work.path(), Duration::from_secs(5))
        .await
        .expect("Envoy starts (run scripts/install-deps.sh)");
    // sluice opens the same xDS directory itself.
    let xds_dir = xds.dir().expect("file-based xDS").to_path_buf();
    drop(xds);
    let rollouts = work.path().join("rollouts");
    std::fs::create_dir_all(&rollouts).unwrap();
    std::fs::write(
        rollouts.join("web.yaml"),
        standalone_rollout(&v1.upstream(), &v2.upstream()),
    )
    .unwrap();
    // A file that cannot be loaded: the page lists it with its field path (issue 15).
    std::fs::write(
        rollouts.join("broken.yaml"),
        "apiVersion: sluice.dev/v1alpha1\nkind: Rollout\nmetadata: {name: broken}\nspec:\n  \
         upstreams: {stable: \"127.0.0.1:1\", canary: \"127.0.0.1:2\"}\n  service: {port: 8080}\n  \
         strategy: {canary: {steps: [10]}}\n  analysis: {interval: soon}\n",
    )
    .unwrap();
    let opts = Options {
        dir: rollouts,
        xds: sluice_standalone::launch::Xds::Files { dir: xds_dir },
        store: work.path().join("sluice.redb"),
        // No metric is defined, so the analyzer never queries a Prometheus.
        prometheus: None,
        scrape_interval: Duration::from_secs(1),
        listen: "127.0.0.1:0".into(),
        envoy_admin: Some(format!("127.0.0.1:{}", envoy.admin_port)),
        timing: Timing::default(),
    };
    let sluice = Standalone::launch(opts, None, |b| router(ApiState::new(b, Some(TOKEN.into()))))
        .await
        .expect("standalone sluice starts");
    let base = format!("http://{}", sluice.http_addr);
    let driver = start_driver().await;
    let (c, _profile) = browser(&driver).await;

    // The list shows the rollout reaching its manual gate.
    c.goto(&format!("{base}/")).await.unwrap();
    let row = r#"tr.rollout-row[data-key="default/web"]"#;
    let text = wait_text(&c, row, |t| t.contains("awaiting promotion")).await;
    assert!(text.contains("Paused"), "{text}");
    let problems = wait_text(&c, "#problems", |t| t.contains("broken.yaml")).await;
    assert!(problems.contains("spec.analysis.interval"), "{problems}");
    let gate = sluice.backend.get("default", "web").await.unwrap();
    assert_eq!(gate.status.phase, Phase::Paused);
    assert_eq!(gate.status.reason, Some(Reason::AwaitingPromotion));
    assert_eq!(gate.status.canary_weight, 50);
    save_screenshot(&c, "sluice-ui-standalone-list.png").await;

    // Envoy really serves the gate's split: both versions answer.
    let http = load::client().unwrap();
    let target = Target::new(envoy.url(), "web");
    let split = load::burst(&http, &target, 40, 4).await;
    assert_eq!(split.failed + split.server_errors, 0, "{split:?}");
    assert!(
        split.count("v1") > 0 && split.count("v2") > 0,
        "a 50% split served only one side: {split:?}"
    );

    // The detail page shows the gate; mark the window to detect a reload.
    click(&c, row).await;
    wait_text(&c, "#phase", |t| t == "Paused").await;
    wait_text(&c, "#timeline", |t| t.contains("manual promotion")).await;
    js(
        &c,
        "window.sluiceTestMarker = 'before-promote'; return true",
    )
    .await;
    save_screenshot(&c, "sluice-ui-standalone-gate.png").await;

    // Promote with the token; the page follows the runner without a reload.
    click(&c, r#"button[data-cmd="promote"]"#).await;
    let input = c
        .wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css("#token-dialog[open] #token-input"))
        .await
        .expect("the token dialog opens");
    input.send_keys(TOKEN).await.unwrap();
    click(&c, "#token-ok").await;
    wait_text(&c, "#phase", |t| t == "Succeeded").await;
    assert_eq!(
        js(&c, "return window.sluiceTestMarker ?? null").await,
        json!("before-promote"),
        "the page reloaded"
    );
    let done = sluice.backend.get("default", "web").await.unwrap();
    assert_eq!(done.status.phase, Phase::Succeeded);
    assert_eq!(done.status.stable_revision.as_deref(), Some("v2"));
    let events = wait_text(&c, "#events", |t| t.contains("Succeeded")).await;
    assert!(events.contains("promoted"), "{events}");
    save_screenshot(&c, "sluice-ui-standalone-promoted.png").await;

    // Envoy now sends everything to the promoted version.
    let after = load::burst(&http, &target, 20, 4).await;
    assert_eq!(after.count("v2"), 20, "{after:?}");

    c.close().await.unwrap();
    sluice.shutdown().await;
    envoy.stop().await;
}
