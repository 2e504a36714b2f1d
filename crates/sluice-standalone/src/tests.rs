//! Runner + backend over the real store and engine, with a fake data plane and metric source.

use std::sync::Arc;
use std::time::Duration;

use super::backend::StandaloneBackend;
use super::runner::{Deps, Runner, Timing};
use super::store::{Retention, Store};
use sluice_core::backend::{Backend, BackendError, ChangeKind};
use sluice_core::engine::Command;
use sluice_core::spec::{Phase, Reason, Rollout, RolloutStatus, Verdict};
use sluice_core::traffic::TrafficPlan;
use sluice_testkit::fakes::{FakeAnalyzer, FakeRouter, NoWebhooks};

struct Setup {
    _dir: tempfile::TempDir,
    store_path: std::path::PathBuf,
    router: Arc<FakeRouter>,
    analyzer: Arc<FakeAnalyzer>,
    // Keep the upstreams listening so the readiness probes succeed.
    _upstreams: Vec<tokio::net::TcpListener>,
    stable: String,
    canary: String,
}

async fn setup(verdict: Verdict) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let a = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let b = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    Setup {
        store_path: dir.path().join("sluice.redb"),
        _dir: dir,
        router: Arc::new(FakeRouter::default()),
        analyzer: Arc::new(FakeAnalyzer::new(verdict)),
        stable: a.local_addr().unwrap().to_string(),
        canary: b.local_addr().unwrap().to_string(),
        _upstreams: vec![a, b],
    }
}

impl Setup {
    async fn runner(&self) -> Arc<Runner> {
        self.runner_with(None).await
    }

    async fn runner_with(&self, telemetry: Option<sluice_notify::Telemetry>) -> Arc<Runner> {
        self.runner_full(
            telemetry,
            Arc::new(sluice_core::clock::SystemClock),
            Timing {
                max_period: Duration::from_millis(40),
                min_period: Duration::from_millis(10),
                probe_timeout: Duration::from_millis(300),
                probe_period: Duration::from_millis(40),
            },
        )
        .await
    }

    async fn runner_full(
        &self,
        telemetry: Option<sluice_notify::Telemetry>,
        clock: Arc<dyn sluice_core::clock::Clock>,
        timing: Timing,
    ) -> Arc<Runner> {
        // A runner shut down just before (a restart test) releases the store once its tasks
        // have ended, which takes a scheduler turn or more: retry instead of guessing a sleep.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let store = loop {
            match Store::open(&self.store_path, Retention::default()) {
                Ok(store) => break store,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::debug!(error = %e, "store still held by the previous runner");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => panic!("cannot open the store: {e}"),
            }
        };
        Runner::new(
            store,
            Deps {
                router: self.router.clone(),
                analyzer: self.analyzer.clone(),
                webhooks: Arc::new(NoWebhooks),
                telemetry,
                clock,
            },
            timing,
        )
    }

    fn rollout(&self, steps: &str) -> Rollout {
        serde_yaml::from_str(&format!(
            r#"
apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata: {{name: reviews, namespace: shop}}
spec:
  upstreams: {{stable: "{}", canary: "{}"}}
  service: {{port: 8080}}
  strategy: {{canary: {{steps: {steps}}}}}
  analysis: {{interval: 40ms, failureLimit: 1, inconclusiveLimit: 1000}}
"#,
            self.stable, self.canary
        ))
        .unwrap()
    }
}

/// A rollout whose versions carry labels: `revision` for the canary, and optionally
/// `upstreams.stableRevision`.
fn labelled(stable: &str, canary: &str, revision: &str, stable_revision: Option<&str>) -> Rollout {
    let stable_revision = stable_revision
        .map(|l| format!(", stableRevision: {l}"))
        .unwrap_or_default();
    serde_yaml::from_str(&format!(
        r#"
apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata: {{name: reviews, namespace: shop}}
spec:
  upstreams: {{stable: "{stable}", canary: "{canary}"{stable_revision}}}
  revision: {revision}
  service: {{port: 8080}}
  strategy: {{canary: {{steps: [20, 50]}}}}
  analysis: {{interval: 40ms, failureLimit: 1, inconclusiveLimit: 1000}}
"#
    ))
    .unwrap()
}

/// Polls the backend until `pred` holds for the rollout's status (5 s deadline).
async fn wait_for(
    backend: &StandaloneBackend,
    what: &str,
    pred: impl Fn(&RolloutStatus) -> bool,
) -> RolloutStatus {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(v) = backend.get("shop", "reviews").await
            && pred(&v.status)
        {
            return v.status;
        }
        if tokio::time::Instant::now() > deadline {
            let last = backend.get("shop", "reviews").await.map(|v| v.status);
            panic!("timed out waiting for {what}; last status: {last:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn canary_walks_every_step_then_stable_points_at_the_canary() {
    let s = setup(Verdict::Pass).await;
    let runner = s.runner().await;
    let backend = StandaloneBackend {
        runner: runner.clone(),
    };
    let mut changes = backend.subscribe();
    runner.upsert(s.rollout("[20, 50]"), None);
    let st = wait_for(&backend, "promotion", |st| st.phase == Phase::Succeeded).await;
    assert_eq!(st.stable_revision.as_deref(), Some(s.canary.as_str()));
    assert_eq!(st.canary_weight, 0);

    let log = s.router.log();
    let plans: Vec<TrafficPlan> = log.iter().map(|(_, _, p)| p.clone()).collect();
    let pos = |p: &TrafficPlan| plans.iter().position(|x| x == p);
    let (w20, w50) = (
        pos(&TrafficPlan::weighted(20)),
        pos(&TrafficPlan::weighted(50)),
    );
    assert!(w20.is_some() && w50.is_some() && w20 < w50, "{plans:?}");
    // The final all-stable plan is served by the stable cluster now pointing at the canary.
    let (stable, _, last) = log.last().unwrap();
    assert_eq!(last, &TrafficPlan::stable_only());
    assert_eq!(stable, &s.canary);

    let view = backend.get("shop", "reviews").await.unwrap();
    assert_eq!(view.traffic, Some(TrafficPlan::stable_only()));
    // The status alone says what is served (as on Kubernetes).
    assert_eq!(view.status.applied_traffic, view.traffic);
    assert_eq!(view.stages, vec!["canary 20%", "canary 50%"]);
    let reasons: Vec<String> = backend
        .events("shop", "reviews")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.reason)
        .collect();
    for r in [
        "Initialized",
        "RolloutStarted",
        "StepStarted",
        "StepAdvanced",
        "Promoting",
        "Succeeded",
    ] {
        assert!(reasons.iter().any(|x| x == r), "missing {r} in {reasons:?}");
    }
    let checks = backend.analysis("shop", "reviews").await.unwrap();
    assert!(checks.len() >= 2 && checks.iter().all(|c| c.verdict == Verdict::Pass));
    let mut kinds = Vec::new();
    while let Ok(c) = changes.try_recv() {
        kinds.push(c.kind);
    }
    for k in [ChangeKind::Status, ChangeKind::Event, ChangeKind::Analysis] {
        assert!(kinds.contains(&k), "no {k:?} change in {kinds:?}");
    }
    assert_eq!(backend.list().await.unwrap().len(), 1);

    // A finished rollout keeps ticking (probes, file edits) but writes nothing while idle.
    let commits = runner.store().commits();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        runner.store().commits(),
        commits,
        "idle ticks wrote to the store"
    );
}

/// Issue 11 (the clock injected) and 16 (a rollout wakes at its own interval, not every
/// second): under paused time a rollout checked every 10 s walks two steps and is promoted in
/// about 30 virtual seconds — the test takes milliseconds, no fixed sleep — with one analysis
/// per interval and a handful of ticks, where ticking every second took one per second.
#[tokio::test(start_paused = true)]
async fn under_paused_time_a_rollout_ticks_at_its_own_interval() {
    let s = setup(Verdict::Pass).await;
    let (wall0, t0) = (chrono::Utc::now(), tokio::time::Instant::now());
    let clock = move || {
        wall0 + chrono::Duration::from_std(tokio::time::Instant::now() - t0).unwrap_or_default()
    };
    let telemetry = sluice_notify::Telemetry::new(&sluice_notify::notify::NotifyConfig {
        sinks: vec![],
        ui_base_url: None,
    })
    .unwrap();
    let metrics = telemetry.metrics.clone();
    let runner = s
        .runner_full(
            Some(telemetry),
            Arc::new(clock),
            Timing {
                max_period: Duration::from_secs(60),
                min_period: Duration::from_millis(100),
                probe_timeout: Duration::from_millis(300),
                probe_period: Duration::from_secs(1),
            },
        )
        .await;
    let backend = StandaloneBackend {
        runner: runner.clone(),
    };
    let rollout: Rollout = serde_yaml::from_str(
        &serde_yaml::to_string(&s.rollout("[20, 50]"))
            .unwrap()
            .replace("interval: 40ms", "interval: 10s"),
    )
    .unwrap();
    assert_eq!(rollout.spec.analysis.interval, "10s");
    runner.upsert(rollout, None);
    let mut status = None;
    while t0.elapsed() < Duration::from_secs(120) {
        if let Ok(v) = backend.get("shop", "reviews").await
            && v.status.phase == Phase::Succeeded
        {
            status = Some(v.status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let took = t0.elapsed();
    let status = status.unwrap_or_else(|| panic!("not promoted within 120 virtual seconds"));
    // Two steps of one passing check each, 10 s apart.
    assert!(
        (Duration::from_secs(19)..Duration::from_secs(45)).contains(&took),
        "{took:?}"
    );
    let analyses = s.analyzer.started.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(analyses, 2, "one analysis per interval and step");
    let ticks: f64 = metrics
        .encode()
        .lines()
        .find(|l| l.starts_with("sluice_tick_duration_seconds_count"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .expect("tick count");
    // Start, each analysis, each step change and promotion — not one per second.
    assert!(ticks < 15.0, "{ticks} ticks in {took:?}");
    // History carries the injected clock's times.
    let events = backend.events("shop", "reviews").await.unwrap();
    let last = events.last().unwrap();
    assert!(last.at >= wall0 + chrono::Duration::seconds(19), "{last:?}");
    assert_eq!(status.stable_revision.as_deref(), Some(s.canary.as_str()));
}

#[tokio::test]
async fn failing_canary_is_rolled_back_to_all_stable() {
    let s = setup(Verdict::Fail).await;
    let runner = s.runner().await;
    let backend = StandaloneBackend {
        runner: runner.clone(),
    };
    runner.upsert(s.rollout("[20, 50]"), None);
    let st = wait_for(&backend, "rollback", |st| st.phase == Phase::Failed).await;
    assert_eq!(st.reason, Some(Reason::AnalysisFailed));
    assert_eq!(st.stable_revision.as_deref(), Some(s.stable.as_str()));
    let (stable, _, last) = s.router.log().last().unwrap().clone();
    assert_eq!(last, TrafficPlan::stable_only());
    assert_eq!(stable, s.stable, "stable still points at the old version");
}

#[tokio::test]
async fn restart_resumes_at_the_same_step_with_history() {
    let s = setup(Verdict::Pass).await;
    let runner = s.runner().await;
    let backend = StandaloneBackend {
        runner: runner.clone(),
    };
    runner.upsert(s.rollout("[20, 50, 80]"), None);
    // Hold at the second step: inconclusive checks never advance.
    wait_for(&backend, "step 2", |st| st.step_index == 1).await;
    s.analyzer.set(Verdict::Inconclusive);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let before = backend.get("shop", "reviews").await.unwrap();
    let history_before = backend.events("shop", "reviews").await.unwrap();
    assert!(before.status.step_index >= 1 && before.status.phase == Phase::Progressing);
    // "Crash": abort every task without any cleanup, drop the store handle.
    drop(backend);
    runner.shutdown();
    drop(runner);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let applies_before_restart = s.router.log().len();

    let runner = s.runner().await;
    let backend = StandaloneBackend {
        runner: runner.clone(),
    };
    runner.upsert(s.rollout("[20, 50, 80]"), None);
    let st = wait_for(&backend, "resume event", |_| true).await;
    assert_eq!(st.step_index, before.status.step_index);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let events = loop {
        let ev = backend.events("shop", "reviews").await.unwrap();
        if ev.iter().any(|e| e.reason == "Resumed") {
            break ev;
        }
        assert!(tokio::time::Instant::now() < deadline, "no Resumed event");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(&events[..history_before.len()], &history_before[..]);
    // First thing after the restart: the stored plan, unchanged.
    let after = s.router.log();
    assert_eq!(
        after[applies_before_restart].2,
        before.traffic.clone().unwrap()
    );
    // Still progressing at the same step, not restarted from the first.
    let now = backend.get("shop", "reviews").await.unwrap();
    assert_eq!(now.status.step_index, before.status.step_index);
    assert_eq!(now.status.phase, Phase::Progressing);
}

/// Restarts the runner over the same store once `done` holds, and returns the reasons of the
/// history after the restart has re-applied the stored plan and ticked a few times.
async fn reasons_after_restart(
    s: &Setup,
    rollout: Rollout,
    what: &str,
    done: impl Fn(&RolloutStatus) -> bool,
) -> (Phase, Vec<String>) {
    let runner = s.runner().await;
    let backend = StandaloneBackend {
        runner: runner.clone(),
    };
    runner.upsert(rollout.clone(), None);
    let phase = wait_for(&backend, what, done).await.phase;
    // Let the final state reach the store.
    tokio::time::sleep(Duration::from_millis(150)).await;
    drop(backend);
    runner.shutdown();
    drop(runner);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let applies_before_restart = s.router.log().len();

    let runner = s.runner().await;
    let backend = StandaloneBackend {
        runner: runner.clone(),
    };
    runner.upsert(rollout, None);
    // The stored plan is served again first (that part of resuming stays)...
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while s.router.log().len() == applies_before_restart {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: the stored plan was not re-applied"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // ... then several ticks, in which a `Resumed` entry would have been written.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = backend.get("shop", "reviews").await.unwrap().status;
    assert_eq!(status.phase, phase, "{what}: the restart changed the phase");
    let events = backend.events("shop", "reviews").await.unwrap();
    (phase, events.into_iter().map(|e| e.reason).collect())
}

#[tokio::test]
async fn restart_records_resumed_only_for_rollouts_in_flight() {
    // Finished: promoted, rolled back, and never started (stable = canary).
    let s = setup(Verdict::Pass).await;
    let (phase, reasons) = reasons_after_restart(&s, s.rollout("[50]"), "promotion", |st| {
        st.phase == Phase::Succeeded
    })
    .await;
    assert_eq!(phase, Phase::Succeeded);
    assert!(!reasons.iter().any(|r| r == "Resumed"), "{reasons:?}");

    let s = setup(Verdict::Fail).await;
    let (_, reasons) = reasons_after_restart(&s, s.rollout("[50]"), "rollback", |st| {
        st.phase == Phase::Failed
    })
    .await;
    assert!(!reasons.iter().any(|r| r == "Resumed"), "{reasons:?}");

    let s = setup(Verdict::Pass).await;
    let idle = labelled(&s.stable, &s.stable, "v1", None);
    let (phase, reasons) =
        reasons_after_restart(&s, idle, "idle", |st| st.phase == Phase::Idle).await;
    assert_eq!(phase, Phase::Idle);
    assert!(!reasons.iter().any(|r| r == "Resumed"), "{reasons:?}");

    // In flight (held at a step by inconclusive checks): resumed, and it says so.
    let s = setup(Verdict::Inconclusive).await;
    let (phase, reasons) = reasons_after_restart(&s, s.rollout("[20, 50]"), "progressing", |st| {
        st.phase == Phase::Progressing
    })
    .await;
    assert_eq!(phase, Phase::Progressing);
    assert_eq!(
        reasons.iter().filter(|r| *r == "Resumed").count(),
        1,
        "{reasons:?}"
    );
}

#[tokio::test]
async fn commands_are_checked_then_applied_on_an_immediate_tick() {
    let s = setup(Verdict::Inconclusive).await;
    let runner = s.runner().await;
    let backend = StandaloneBackend {
        runner: runner.clone(),
    };
    runner.upsert(s.rollout("[20, 50]"), None);
    wait_for(&backend, "progressing", |st| st.phase == Phase::Progressing).await;
    assert!(matches!(
        backend.command("shop", "reviews", Command::Resume).await,
        Err(BackendError::Conflict(_))
    ));
    assert!(matches!(
        backend.command("shop", "nope", Command::Pause).await,
        Err(BackendError::NotFound(_))
    ));
    backend
        .command("shop", "reviews", Command::Pause)
        .await
        .unwrap();
    let st = wait_for(&backend, "paused", |st| st.phase == Phase::Paused).await;
    assert_eq!(st.reason, Some(Reason::PausedByUser));
    backend
        .command("shop", "reviews", Command::Abort)
        .await
        .unwrap();
    let st = wait_for(&backend, "aborted", |st| st.phase == Phase::Failed).await;
    assert_eq!(st.reason, Some(Reason::Aborted));
    assert_eq!(s.router.log().last().unwrap().2, TrafficPlan::stable_only());
}

/// Issue 15: `abort` and `pause` used to wait behind a 30 s-slow Prometheus (19.8 s measured).
#[tokio::test]
async fn abort_and_pause_cut_short_a_slow_analysis() {
    use std::sync::atomic::Ordering::SeqCst;
    for (command, phase) in [
        (Command::Abort, Phase::Failed),
        (Command::Pause, Phase::Paused),
    ] {
        let s = setup(Verdict::Pass).await;
        s.analyzer.set_delay(Duration::from_secs(30));
        let runner = s.runner().await;
        let backend = StandaloneBackend {
            runner: runner.clone(),
        };
        runner.upsert(s.rollout("[20, 50]"), None);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while s.analyzer.started.load(SeqCst) == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no analysis started"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let sent = std::time::Instant::now();
        backend.command("shop", "reviews", command).await.unwrap();
        let st = wait_for(&backend, "the command", |st| st.phase == phase).await;
        let took = sent.elapsed();
        assert!(took < Duration::from_secs(1), "{command} took {took:?}");
        assert_eq!(
            s.analyzer.finished.load(SeqCst),
            0,
            "the analysis was not cancelled"
        );
        let rs = reasons(&backend).await;
        assert!(rs.contains(&"AnalysisCancelled".to_string()), "{rs:?}");
        if command == Command::Abort {
            assert_eq!(st.reason, Some(Reason::Aborted));
            assert_eq!(s.router.log().last().unwrap().2, TrafficPlan::stable_only());
        } else {
            assert_eq!(st.reason, Some(Reason::PausedByUser));
        }
    }
}

/// Issue 15: a plan the data plane refuses used to loop: 29 "started" notifications and 87
/// history entries in 30 s, the status `Idle` with no reason.
#[tokio::test]
async fn a_refused_plan_is_a_condition_with_one_notification_and_backoff() {
    use sluice_core::exec::{ROUTER_REFUSED, TRAFFIC_CONDITION};
    use std::sync::atomic::Ordering::SeqCst;
    let s = setup(Verdict::Pass).await;
    let rx = sluice_testkit::fakes::Receiver::start().await;
    let sink = s._dir.path().join("sink-url");
    std::fs::write(&sink, format!("{}/sink", rx.base)).unwrap();
    let telemetry = sluice_notify::Telemetry::new(&sluice_notify::notify::NotifyConfig {
        sinks: vec![sluice_core::spec::Notification {
            kind: sluice_core::spec::NotificationKind::Json,
            url_from_env: None,
            url_from_file: Some(sink.display().to_string()),
        }],
        ui_base_url: None,
    })
    .unwrap();
    let why = "Envoy rejected routes (rds) version 1a2b (its update_rejected counter moved)";
    s.router.refuse(Some(why));
    let runner = s.runner_with(Some(telemetry)).await;
    let backend = StandaloneBackend {
        runner: runner.clone(),
    };
    runner.upsert(s.rollout("[20, 50]"), None);
    let cond = |st: &RolloutStatus| {
        st.conditions
            .iter()
            .find(|c| c.kind == TRAFFIC_CONDITION)
            .cloned()
    };
    let st = wait_for(&backend, "the condition", |st| cond(st).is_some()).await;
    let c = cond(&st).unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", ROUTER_REFUSED)
    );
    assert_eq!(c.message, why);
    // A second of retries at a 40 ms period: backoff keeps them few, and they add nothing.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let tries = s.router.refused.load(SeqCst);
    assert!((3..=8).contains(&tries), "{tries} attempts in 1.2 s");
    let rs = reasons(&backend).await;
    assert_eq!(
        rs.iter().filter(|r| *r == ROUTER_REFUSED).count(),
        1,
        "{rs:?}"
    );
    assert!(rs.len() <= 2, "history grew while refused: {rs:?}");
    let hits = rx.hits("/sink");
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].body["topic"], "routerRefused", "{:?}", hits[0].body);
    let v = backend.get("shop", "reviews").await.unwrap();
    let json = serde_json::to_string(&v).unwrap();
    assert!(json.contains(why), "the API shows the cause: {json}");

    // Accepted again: the rollout goes on and the condition goes away.
    s.router.refuse(None);
    let st = wait_for(&backend, "promotion", |st| st.phase == Phase::Succeeded).await;
    assert!(cond(&st).is_none(), "{st:?}");
    assert!(
        reasons(&backend)
            .await
            .contains(&"RouterAccepted".to_string())
    );
}

#[tokio::test]
async fn spec_edits_restart_and_removal_leaves_all_stable() {
    let s = setup(Verdict::Inconclusive).await;
    let runner = s.runner().await;
    let backend = StandaloneBackend {
        runner: runner.clone(),
    };
    runner.upsert(s.rollout("[20, 50]"), None);
    wait_for(&backend, "canary 20%", |st| st.canary_weight == 20).await;
    // A new canary address is a new revision: the rollout restarts on it.
    let other = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other_addr = other.local_addr().unwrap().to_string();
    let mut edited = s.rollout("[20, 50]");
    edited.spec.upstreams.as_mut().unwrap().canary = other_addr.clone();
    runner.upsert(edited, None);
    wait_for(&backend, "new revision", |st| {
        st.canary_revision.as_deref() == Some(other_addr.as_str())
    })
    .await;
    let events = backend.events("shop", "reviews").await.unwrap();
    assert!(
        events.iter().any(|e| e.reason == "SpecUpdated"),
        "{events:?}"
    );

    runner.remove("shop/reviews").await;
    let (_, _, last) = s.router.log().last().unwrap().clone();
    assert_eq!(last, TrafficPlan::stable_only());
    assert!(matches!(
        backend.get("shop", "reviews").await,
        Err(BackendError::NotFound(_))
    ));
    assert!(runner.managed().is_empty());
    assert!(backend.list().await.unwrap().is_empty());
    // The record stays (retired) so the data plane can be rebuilt all-stable after a restart.
    let stored = runner.store().get("shop/reviews").unwrap().unwrap();
    assert!(stored.retired);
    assert_eq!(stored.applied, Some(TrafficPlan::stable_only()));
    let reasons: Vec<String> = runner
        .store()
        .events("shop/reviews")
        .unwrap()
        .into_iter()
        .map(|e| e.reason)
        .collect();
    assert_eq!(reasons.last().map(String::as_str), Some("Unmanaged"));

    // The file comes back: managed again from a fresh status, same stable pointer.
    runner.upsert(s.rollout("[20, 50]"), None);
    let st = wait_for(&backend, "managed again", |st| {
        st.phase == Phase::Progressing
    })
    .await;
    assert_eq!(st.step_index, 0);
}

#[tokio::test]
async fn start_up_keeps_rollouts_of_invalid_files_and_retires_removed_ones() {
    use super::loader::DirLoader;
    use super::server;
    let s = setup(Verdict::Inconclusive).await;
    let dir = tempfile::tempdir().unwrap();
    let reviews = s.rollout("[20, 50]");
    let mut other = s.rollout("[30]");
    other.metadata.name = Some("other".into());
    let (a, b) = (dir.path().join("a.yaml"), dir.path().join("b.yaml"));
    std::fs::write(&a, serde_yaml::to_string(&reviews).unwrap()).unwrap();
    std::fs::write(&b, serde_yaml::to_string(&other).unwrap()).unwrap();

    let runner = s.runner().await;
    let backend = StandaloneBackend {
        runner: runner.clone(),
    };
    let mut loader = DirLoader::new(dir.path());
    server::start(&runner, &mut loader).await.unwrap();
    assert_eq!(runner.managed(), vec!["shop/other", "shop/reviews"]);
    wait_for(&backend, "canary 20%", |st| st.canary_weight == 20).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while backend
        .get("shop", "other")
        .await
        .ok()
        .map(|v| v.status.canary_weight)
        != Some(30)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "other never reached 30%"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(backend);
    runner.shutdown();
    drop(runner);
    tokio::time::sleep(Duration::from_millis(50)).await;

    // While sluice is down: a.yaml gets a typo, b.yaml is deleted.
    std::fs::write(
        &a,
        "apiVersion: sluice.dev/v1alpha1\nkind: Rollout\nspec: [",
    )
    .unwrap();
    std::fs::remove_file(&b).unwrap();

    let runner = s.runner().await;
    let backend = StandaloneBackend {
        runner: runner.clone(),
    };
    let plans = server::stored_plans(runner.store()).await.unwrap();
    assert_eq!(
        plans.len(),
        2,
        "both rollouts are primed into the data plane"
    );
    let mut loader = DirLoader::new(dir.path());
    server::start(&runner, &mut loader).await.unwrap();
    assert_eq!(runner.managed(), vec!["shop/reviews"]);
    let v = backend.get("shop", "reviews").await.unwrap();
    assert_eq!(
        v.status.canary_weight, 20,
        "still at its step on the last good spec"
    );
    assert!(matches!(
        backend.get("shop", "other").await,
        Err(BackendError::NotFound(_))
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let ev = backend.events("shop", "reviews").await.unwrap();
        if ev.iter().any(|e| e.reason == "SpecInvalid") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no SpecInvalid: {ev:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // other's last plan is all-stable on its (unchanged) stable address.
    let log = s.router.log();
    assert!(
        log.iter()
            .any(|(st, _, p)| st == &s.stable && p == &TrafficPlan::weighted(30))
    );
    let other = runner.store().get("shop/other").unwrap().unwrap();
    assert!(other.retired);
    assert_eq!(other.applied, Some(TrafficPlan::stable_only()));

    // The invalid file is listed by the API with its position (issue 15: bad files reached
    // only the log), and leaves the list once fixed.
    let app = sluice_api::router(sluice_api::ApiState::new(
        Arc::new(StandaloneBackend {
            runner: runner.clone(),
        }),
        None,
    ));
    let problems = get_json(&app, "/api/v1/problems").await;
    let list = problems.as_array().unwrap();
    assert_eq!(list.len(), 1, "{problems}");
    assert_eq!(list[0]["file"], a.display().to_string());
    assert!(list[0]["line"].as_u64().is_some(), "{problems}");
    std::fs::write(&a, serde_yaml::to_string(&reviews).unwrap()).unwrap();
    loader.scan();
    runner.set_problems(loader.problems());
    assert_eq!(
        get_json(&app, "/api/v1/problems").await,
        serde_json::json!([])
    );
    // A field path, for a file that parses but says something wrong.
    std::fs::write(
        &a,
        serde_yaml::to_string(&reviews)
            .unwrap()
            .replace("interval: 40ms", "interval: soon"),
    )
    .unwrap();
    loader.scan();
    runner.set_problems(loader.problems());
    let problems = get_json(&app, "/api/v1/problems").await;
    assert_eq!(problems[0]["path"], "spec.analysis.interval", "{problems}");
}

async fn get_json(app: &axum::Router, uri: &str) -> serde_json::Value {
    use tower::ServiceExt;
    let resp = app
        .clone()
        .oneshot(
            axum::http::Request::get(uri)
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), axum::http::StatusCode::OK);
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test]
async fn the_web_api_drives_the_standalone_backend() {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    let s = setup(Verdict::Inconclusive).await;
    let runner = s.runner().await;
    let backend: Arc<dyn Backend> = Arc::new(StandaloneBackend {
        runner: runner.clone(),
    });
    let app = sluice_api::router(sluice_api::ApiState::new(
        backend.clone(),
        Some("s3cret".into()),
    ));
    runner.upsert(s.rollout("[20, 50]"), None);
    let sb = StandaloneBackend {
        runner: runner.clone(),
    };
    wait_for(&sb, "progressing", |st| st.phase == Phase::Progressing).await;

    let list = app
        .clone()
        .oneshot(
            Request::get("/api/v1/rollouts")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(list.status(), StatusCode::OK);
    let body = http_body_util::BodyExt::collect(list.into_body())
        .await
        .unwrap()
        .to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json[0]["name"], "reviews");
    assert_eq!(json[0]["namespace"], "shop");

    let pause = |token: &str| {
        Request::post("/api/v1/rollouts/shop/reviews/pause")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .unwrap()
    };
    let refused = app.clone().oneshot(pause("wrong")).await.unwrap();
    assert!(refused.status().is_client_error());
    assert_eq!(
        sb.get("shop", "reviews").await.unwrap().status.phase,
        Phase::Progressing
    );
    let accepted = app.clone().oneshot(pause("s3cret")).await.unwrap();
    assert!(accepted.status().is_success(), "{}", accepted.status());
    let st = wait_for(&sb, "paused over HTTP", |st| st.phase == Phase::Paused).await;
    assert_eq!(st.reason, Some(Reason::PausedByUser));
}

/// Reasons of the rollout's events, oldest first.
async fn reasons(backend: &StandaloneBackend) -> Vec<String> {
    backend
        .events("shop", "reviews")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.reason)
        .collect()
}

/// Labels, not addresses: the engine only ever compares labels with labels, so a file whose
/// two sides agree starts nothing, a new label rolls out, and a restart keeps them.
#[tokio::test]
async fn revision_labels_name_both_sides_across_promotion_restart_and_undo() {
    let s = setup(Verdict::Pass).await;
    let runner = s.runner().await;
    let backend = StandaloneBackend {
        runner: runner.clone(),
    };
    // v1 on both sides: nothing to roll out.
    runner.upsert(labelled(&s.stable, &s.stable, "v1", None), None);
    let st = wait_for(&backend, "initialized", |st| st.stable_revision.is_some()).await;
    assert_eq!(st.stable_revision.as_deref(), Some("v1"));
    // Several analysis intervals later it is still idle.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let st = backend.get("shop", "reviews").await.unwrap().status;
    assert_eq!(st.phase, Phase::Idle, "{st:?}");
    assert_eq!(st.canary_revision, None);
    assert!(
        !reasons(&backend)
            .await
            .iter()
            .any(|r| r == "RolloutStarted")
    );

    // The user points the canary at v2 and labels it.
    runner.upsert(labelled(&s.stable, &s.canary, "v2", None), None);
    let st = wait_for(&backend, "v2 promoted", |st| st.phase == Phase::Succeeded).await;
    assert_eq!(st.stable_revision.as_deref(), Some("v2"));
    assert_eq!(st.previous_stable_revision.as_deref(), Some("v1"));
    let events = backend.events("shop", "reviews").await.unwrap();
    assert!(
        events.iter().any(|e| e.message.contains("rolling out v2")),
        "{events:?}"
    );
    assert!(
        !events.iter().any(|e| e.message.contains(&s.canary)),
        "an address where a label belongs: {events:?}"
    );
    let up = runner
        .store()
        .get("shop/reviews")
        .unwrap()
        .unwrap()
        .upstreams;
    assert_eq!(
        (up.stable_address.as_str(), up.stable_revision.as_str()),
        (s.canary.as_str(), "v2")
    );

    // Restart from the store: still v2 at the canary address, nothing starts.
    drop(backend);
    runner.shutdown();
    drop(runner);
    // The aborted tasks release the store file shortly.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while Store::open(&s.store_path, Retention::default()).is_err() {
        assert!(tokio::time::Instant::now() < deadline, "store still open");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let applies_before_restart = s.router.log().len();
    let runner = s.runner().await;
    let backend = StandaloneBackend {
        runner: runner.clone(),
    };
    runner.upsert(labelled(&s.stable, &s.canary, "v2", None), None);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while s.router.log().len() == applies_before_restart {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no apply after restart"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let st = backend.get("shop", "reviews").await.unwrap().status;
    assert_eq!(st.phase, Phase::Succeeded, "{st:?}");
    assert_eq!(st.stable_revision.as_deref(), Some("v2"));
    assert_eq!(s.router.log()[applies_before_restart].0, s.canary);

    // Undo puts both back: the v1 address and the v1 label.
    backend
        .command("shop", "reviews", Command::Undo)
        .await
        .unwrap();
    let st = wait_for(&backend, "undone", |st| {
        st.stable_revision.as_deref() == Some("v1")
    })
    .await;
    assert_ne!(st.phase, Phase::Progressing);
    let up = runner
        .store()
        .get("shop/reviews")
        .unwrap()
        .unwrap()
        .upstreams;
    assert_eq!(
        (up.stable_address.as_str(), up.stable_revision.as_str()),
        (s.stable.as_str(), "v1")
    );
    assert_eq!(s.router.log().last().unwrap().0, s.stable);
}

/// Two upstreams labelled from the start: the stable label comes from the file, and between
/// rollouts an edit of the stable side reaches the engine (no rollout of a name change).
#[tokio::test]
async fn stable_label_from_the_file_and_its_edits_reach_the_engine() {
    let s = setup(Verdict::Inconclusive).await;
    let (a, b) = (s.stable.as_str(), s.canary.as_str());
    let runner = s.runner().await;
    let backend = StandaloneBackend {
        runner: runner.clone(),
    };
    runner.upsert(labelled(a, b, "v2", Some("v1")), None);
    let st = wait_for(&backend, "progressing", |st| st.phase == Phase::Progressing).await;
    assert_eq!(st.stable_revision.as_deref(), Some("v1"));
    assert_eq!(st.canary_revision.as_deref(), Some("v2"));

    // Back to v1 on both sides: the target reverted to stable.
    runner.upsert(labelled(a, a, "v1", Some("v1")), None);
    wait_for(&backend, "idle", |st| st.phase == Phase::Idle).await;

    // The operator moves stable to v2 by hand: stable runs v2, nothing to roll out.
    runner.upsert(labelled(b, b, "v2", None), None);
    let st = wait_for(&backend, "repointed", |st| {
        st.stable_revision.as_deref() == Some("v2")
    })
    .await;
    assert_eq!(
        st.previous_stable_revision, None,
        "the store forgot the undo address"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let st = backend.get("shop", "reviews").await.unwrap().status;
    assert_eq!(st.phase, Phase::Idle, "{st:?}");
    let events = backend.events("shop", "reviews").await.unwrap();
    let repointed = events
        .iter()
        .position(|e| e.reason == "StableRepointed")
        .expect("StableRepointed event");
    assert!(
        events[repointed]
            .message
            .contains(&format!("stable is v2 at {b}")),
        "{events:?}"
    );
    assert!(
        !events[repointed..]
            .iter()
            .any(|e| e.reason == "RolloutStarted"),
        "{events:?}"
    );
    assert_eq!(s.router.log().last().unwrap().0, b);

    // Only the stable label changes (stable still at upstreams.stable), with a new canary:
    // the rollout compares the new canary label with the new stable label.
    runner.upsert(labelled(b, a, "v3", Some("v2.0")), None);
    let st = wait_for(&backend, "progressing v3", |st| {
        st.phase == Phase::Progressing
    })
    .await;
    assert_eq!(st.stable_revision.as_deref(), Some("v2.0"));
    assert_eq!(st.canary_revision.as_deref(), Some("v3"));
    assert!(
        reasons(&backend)
            .await
            .iter()
            .any(|r| r == "StableRelabelled")
    );
}

/// A `tracing` writer into a shared buffer: the logs a test can grep.
#[derive(Clone, Default)]
struct LogBuffer(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Issue 15: a password in a Prometheus or webhook URL appears in no output: API JSON (list,
/// rollout, events, analysis, problems), `/metrics`, the logs (debug level, JSON), history
/// events and notifications, while both URLs fail and are retried.
#[tokio::test]
async fn a_password_in_a_prometheus_or_webhook_url_reaches_no_output() {
    const SECRET: &str = "hunter2-s3cret";
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let s = setup(Verdict::Pass).await;
    // Closed ports: both calls fail, so their errors (where a URL could leak) are exercised.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let rx = sluice_testkit::fakes::Receiver::start().await;
    let sink = s._dir.path().join("sink-url");
    std::fs::write(&sink, format!("{}/sink", rx.base)).unwrap();
    let telemetry = sluice_notify::Telemetry::new(&sluice_notify::notify::NotifyConfig {
        sinks: vec![sluice_core::spec::Notification {
            kind: sluice_core::spec::NotificationKind::Json,
            url_from_env: None,
            url_from_file: Some(sink.display().to_string()),
        }],
        ui_base_url: None,
    })
    .unwrap();
    let metrics = telemetry.metrics.clone();
    let analyzer = sluice_analysis::PrometheusAnalyzer::new(
        sluice_analysis::AddressPolicy::SpecOrDefault(None),
    )
    .unwrap();
    let webhooks = telemetry.webhooks().unwrap();
    let store = Store::open(&s.store_path, Retention::default()).unwrap();
    let runner = Runner::new(
        store,
        Deps {
            router: s.router.clone(),
            analyzer: Arc::new(analyzer),
            webhooks: Arc::new(webhooks),
            telemetry: Some(telemetry),
            clock: Arc::new(sluice_core::clock::SystemClock),
        },
        Timing {
            max_period: Duration::from_millis(40),
            min_period: Duration::from_millis(10),
            probe_timeout: Duration::from_millis(300),
            probe_period: Duration::from_millis(40),
        },
    );
    let rollout: Rollout = serde_yaml::from_str(&format!(
        r#"
apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata: {{name: reviews, namespace: shop}}
spec:
  upstreams: {{stable: "{}", canary: "{}"}}
  service: {{port: 8080}}
  strategy: {{canary: {{steps: [20, 50]}}}}
  analysis:
    interval: 1s
    failureLimit: 1
    inconclusiveLimit: 1000
    provider: {{prometheus: {{address: "http://sluice:{SECRET}@127.0.0.1:{closed}", timeout: 1s}}}}
    metrics: [{{name: up, query: "up", thresholds: {{min: 1}}}}]
  webhooks:
    - {{name: check, type: rollout, url: "http://127.0.0.1:{closed}/check?token={SECRET}"}}
"#,
        s.stable, s.canary
    ))
    .unwrap();
    runner.upsert(rollout, None);
    let backend = StandaloneBackend {
        runner: runner.clone(),
    };
    // Failed checks (the webhook) roll the rollout back: every path has run by then.
    let st = wait_for(&backend, "the rollback", |st| st.phase == Phase::Failed).await;
    assert_eq!(st.phase, Phase::Failed);

    let app = sluice_api::router(
        sluice_api::ApiState::new(Arc::new(StandaloneBackend { runner }), None)
            .with_metrics(metrics.encoder()),
    );
    let mut outputs = Vec::new();
    for uri in [
        "/api/v1/rollouts",
        "/api/v1/rollouts/shop/reviews",
        "/api/v1/rollouts/shop/reviews/events",
        "/api/v1/rollouts/shop/reviews/analysis",
        "/api/v1/problems",
    ] {
        outputs.push((uri.to_string(), get_json(&app, uri).await.to_string()));
    }
    outputs.push(("metrics".into(), metrics.encode()));
    let log_text = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    outputs.push(("logs".into(), log_text));
    let hits = rx.hits("/sink");
    outputs.push((
        "notifications".into(),
        format!("{:?}", hits.iter().map(|h| &h.body).collect::<Vec<_>>()),
    ));

    // The surfaces did see the failures (else the grep proves nothing)...
    let analysis = &outputs[3].1;
    assert!(
        analysis.contains("127.0.0.1") && analysis.contains("check"),
        "{analysis}"
    );
    assert!(outputs[5].1.contains("sluice_"), "metrics");
    assert!(
        outputs[6].1.contains("webhook failed"),
        "logs: {}",
        outputs[6].1
    );
    assert!(!hits.is_empty(), "no notification");
    // ...and the password appears in none of them.
    for (surface, text) in &outputs {
        assert!(
            !text.contains(SECRET),
            "{surface} leaks the password: {text}"
        );
    }
}

/// A template file next to the rollout: its metric runs, and an edit reaches the rollout at
/// its next check, recorded in the history with the template's new content hash.
#[tokio::test]
async fn a_template_file_in_the_directory_feeds_the_rollout_and_its_edit_is_recorded() {
    use super::loader::DirLoader;
    use super::server;
    let s = setup(Verdict::Inconclusive).await;
    let runner = s.runner().await;
    let backend = StandaloneBackend {
        runner: runner.clone(),
    };
    let dir = tempfile::tempdir().unwrap();
    let mut r = serde_json::to_value(s.rollout("[20, 50]")).unwrap();
    r["spec"]["analysis"]["templates"] =
        serde_json::json!([{"name": "errors", "args": {"max": 2}}]);
    std::fs::write(
        dir.path().join("reviews.yaml"),
        serde_yaml::to_string(&r).unwrap(),
    )
    .unwrap();
    let template = |query: &str| {
        format!(
            "apiVersion: sluice.dev/v1alpha1\nkind: AnalysisTemplate\nmetadata: {{name: errors, namespace: shop}}\n\
             spec:\n  args: [{{name: max, type: number}}]\n  metrics:\n    - {{name: errors, query: '{query}', thresholds: {{max: \"{{{{ args.max }}}}\"}}}}\n"
        )
    };
    let t = dir.path().join("errors.yaml");
    std::fs::write(&t, template("sum(errors_a)")).unwrap();
    let mut loader = DirLoader::new(dir.path());
    server::apply_events(&runner, loader.scan()).await;
    let st = wait_for(&backend, "canary 20%", |st| st.canary_weight == 20).await;
    assert_eq!(st.analysis_templates.len(), 1, "{st:?}");
    let first = st.analysis_templates[0].clone();
    assert!(first.starts_with("AnalysisTemplate errors@"), "{first}");
    let seen = || {
        s.analyzer
            .metrics
            .lock()
            .unwrap()
            .last()
            .cloned()
            .unwrap_or_default()
    };
    // The metrics the last check ran, once one has run `q` (5 s deadline).
    let ran = |q: &'static str| {
        let seen = &seen;
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            loop {
                let last = seen();
                if last.first().and_then(|m| m.query.as_deref()) == Some(q) {
                    return last;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no check ran {q}: {last:?}"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    assert_eq!(ran("sum(errors_a)").await[0].thresholds.max, Some(2.0));

    // Same size, new content: make the stamp differ as the loader tests do.
    std::fs::write(&t, template("sum(errors_b)")).unwrap();
    let f = std::fs::File::options().write(true).open(&t).unwrap();
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(2))
        .unwrap();
    server::apply_events(&runner, loader.scan()).await;
    let st = wait_for(&backend, "the new template version", |st| {
        st.analysis_templates.first().is_some_and(|v| *v != first)
    })
    .await;
    assert_eq!(st.step_index, 0, "the rollout goes on where it was");
    ran("sum(errors_b)").await;
    let events = backend.events("shop", "reviews").await.unwrap();
    let changed: Vec<&str> = events
        .iter()
        .filter(|e| e.reason == "AnalysisTemplateChanged")
        .map(|e| e.message.as_str())
        .collect();
    assert!(
        changed
            .iter()
            .any(|m| m.contains(&format!("(was {first})"))),
        "{changed:?}"
    );
}
