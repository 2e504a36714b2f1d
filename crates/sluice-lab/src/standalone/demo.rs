//! `sluice demo`: the whole loop on this machine, every strategy, in a few minutes.
//!
//! Starts demo backends v1 (stable), v2, v3, v4 (healthy) and v5 (30% HTTP 500) in this
//! process, a real Envoy and a real Prometheus (1 s scrape of Envoy), a load generator (~50 rps
//! through Envoy; 15% of it as beta testers with the header `x-beta-tester: true`, 15% as the
//! signed-in user jason with the cookie `user=jason`) and sluice standalone with its HTTP
//! API/UI. Then it edits the rollout file like a user would, one story after the other:
//! 1. canary → v2: 20/50/80%, promoted;
//! 2. dark launch → v3: beta testers reach v3, half of everyone else's requests are mirrored to
//!    it, and every other answer still comes from stable: shown as counts; then promoted;
//! 3. A/B test → v4: jason sees v4, everyone else v3; judged on its success rate, promoted;
//! 4. canary → v5: fails its checks and is rolled back.
//!
//! One terminal line per change shows versions, phase, step, weight and verdicts.
//!
//! Every child process belongs to the [`Stack`]; dropping the demo future (Ctrl-C in the
//! binary) kills them all.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

use crate::demo_app::DemoConfig;
use sluice_core::backend::Backend;
use sluice_core::spec::{Phase, RolloutStatus};

use super::load::{self, Class, LoadGen, Tally, Target};
use super::progress;
use super::stack::{Stack, StackError};
use sluice_standalone::launch::{LaunchError, Standalone};

pub const ROLLOUT: &str = "reviews";

#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Analysis interval of the demo rollout (each step lasts about this long).
    pub interval: String,
    pub steps: Vec<u32>,
    /// Requests per second of the load generator.
    pub rps: u32,
    /// v3's share of HTTP 500 answers.
    pub bad_error_rate: f64,
    /// HTTP API/UI address.
    pub listen: String,
    /// Give up on a phase after this long.
    pub phase_timeout: Duration,
    /// Passing checks of the dark launch and of the A/B test.
    pub iterations: u32,
    /// Share of the requests outside the dark launch's match mirrored to the new version.
    pub mirror_percent: u32,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            interval: "5s".into(),
            steps: vec![20, 50, 80],
            rps: 50,
            bad_error_rate: 0.3,
            listen: "127.0.0.1:0".into(),
            phase_timeout: Duration::from_secs(180),
            iterations: 3,
            mirror_percent: 50,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Stack(#[from] StackError),
    #[error(transparent)]
    Launch(#[from] LaunchError),
    #[error("HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("{0}")]
    Scenario(String),
    #[error("output: {0}")]
    Output(#[from] std::io::Error),
}

/// A work directory removed when dropped.
pub struct WorkDir(pub PathBuf);

impl WorkDir {
    pub fn new(prefix: &str) -> std::io::Result<WorkDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(WorkDir(dir))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What the running demo holds; dropping it stops everything.
pub struct Demo {
    pub sluice: Standalone,
    pub load: LoadGen,
    pub stack: Stack,
    pub token: String,
    _work: WorkDir,
}

impl Demo {
    /// Stops sluice, the load and every child process, waiting for them to exit.
    pub async fn stop(self) {
        let Demo {
            sluice,
            load,
            stack,
            _work,
            ..
        } = self;
        drop(load);
        sluice.shutdown().await;
        stack.stop().await;
    }
}

/// A random API token (hex).
pub fn new_token() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Starts the stack and sluice; `app` builds the HTTP app (API/UI) from the backend and the
/// token.
pub async fn start(
    opts: &DemoOptions,
    out: &mut (dyn Write + Send),
    app: impl FnOnce(Arc<dyn Backend>, String) -> axum::Router,
) -> Result<Demo, DemoError> {
    let work = WorkDir::new("sluice-demo")?;
    writeln!(
        out,
        "starting Envoy, Prometheus and demo backends v1..v5 in {} ...",
        work.0.display()
    )?;
    let bad = DemoConfig {
        error_rate: opts.bad_error_rate,
        ..DemoConfig::new(BAD)
    };
    let stack = Stack::start(
        &work.0,
        &[
            DemoConfig::new("v1"),
            DemoConfig::new("v2"),
            DemoConfig::new("v3"),
            DemoConfig::new("v4"),
            bad,
        ],
    )
    .await?;
    let v1 = upstream(&stack, "v1")?;
    // Stable and canary both v1: nothing to roll out yet.
    stack.write_rollout(
        "reviews.yaml",
        &demo_rollout(opts, &v1, &v1, "v1", &canary_strategy(opts)),
    )?;
    let token = new_token();
    let tok = token.clone();
    let sluice =
        Standalone::launch(stack.options(&opts.listen), None, move |b| app(b, tok)).await?;
    let client = load::client()?;
    // Traffic starts once Envoy routes the rollout (sluice pushes its first virtual host after
    // the file has settled): requests before that would only count Envoy's own 404s.
    let probe = Target::new(stack.envoy_url(), ROLLOUT);
    for _ in 0..100 {
        if let load::Outcome::Answered {
            version: Some(_), ..
        } = load::send(&client, &probe).await
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let load = LoadGen::start_mix(client, load_mix(&stack.envoy_url()), opts.rps);
    writeln!(
        out,
        "  Envoy       {}  (Host: {ROLLOUT})",
        stack.envoy_url()
    )?;
    writeln!(out, "  Prometheus  {}", stack.prometheus.url())?;
    writeln!(out, "  web UI      http://{}/", sluice.http_addr)?;
    writeln!(out, "  API token   {token}")?;
    writeln!(
        out,
        "  CLI         SLUICE_SERVER=http://{} SLUICE_TOKEN={token} sluice status reviews --watch",
        sluice.http_addr
    )?;
    Ok(Demo {
        sluice,
        load,
        stack,
        token,
        _work: work,
    })
}

fn upstream(stack: &Stack, version: &str) -> Result<String, DemoError> {
    stack
        .app(version)
        .map(|a| a.upstream())
        .ok_or_else(|| DemoError::Scenario(format!("no backend {version}")))
}

/// The healthy versions of the stories, in order, and the failing one.
const BAD: &str = "v5";
/// Load classes: the header of the dark launch's beta testers and the cookie of the A/B test's
/// signed-in user, each on 15% of the requests.
pub const PLAIN: &str = "plain";
pub const BETA: &str = "beta testers";
pub const JASON: &str = "user jason";
const BETA_HEADER: (&str, &str) = ("x-beta-tester", "true");
/// As a browser sends it: pairs separated by `; `, so the A/B test's regex allows the space
/// (the classic `^(.*?;)?(user=jason)(;.*)?$` only matches `user=jason` first or after a bare `;`).
const COOKIE: &str = "theme=dark; user=jason";

fn load_mix(envoy_url: &str) -> Vec<Class> {
    let target = || Target::new(envoy_url, ROLLOUT);
    vec![
        Class {
            name: PLAIN.into(),
            target: target(),
            weight: 70,
        },
        Class {
            name: BETA.into(),
            target: target().header(BETA_HEADER.0, BETA_HEADER.1),
            weight: 15,
        },
        Class {
            name: JASON.into(),
            target: target().header("cookie", COOKIE),
            weight: 15,
        },
    ]
}

fn canary_strategy(opts: &DemoOptions) -> String {
    let steps: Vec<String> = opts.steps.iter().map(u32::to_string).collect();
    format!("{{canary: {{steps: [{}]}}}}", steps.join(", "))
}

fn dark_launch_strategy(opts: &DemoOptions) -> String {
    format!(
        "{{darkLaunch: {{match: [{{headers: {{{}: {{exact: \"{}\"}}}}}}], mirrorPercent: {}, iterations: {}}}}}",
        BETA_HEADER.0, BETA_HEADER.1, opts.mirror_percent, opts.iterations
    )
}

fn ab_test_strategy(opts: &DemoOptions) -> String {
    format!(
        "{{abTest: {{match: [{{headers: {{cookie: {{regex: \"^(.*?; ?)?(user=jason)(;.*)?$\"}}}}}}], iterations: {}}}}}",
        opts.iterations
    )
}

/// The demo's rollout file: the canary labelled with its version, so that the UI, the CLI and
/// the progress lines say `v1 → v2` rather than addresses. `upstreams.stable` stays v1 in every
/// edit: after a promotion the stable cluster points at the promoted version anyway.
fn demo_rollout(
    opts: &DemoOptions,
    stable: &str,
    canary: &str,
    version: &str,
    strategy: &str,
) -> String {
    format!(
        r#"apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata: {{name: {ROLLOUT}}}
spec:
  upstreams: {{stable: "{stable}", canary: "{canary}"}}
  revision: {version}
  service: {{port: 80, hosts: [{ROLLOUT}]}}
  strategy: {strategy}
  analysis:
    interval: {interval}
    failureLimit: 1
    # The matched cohorts are small (15% of the load each): the first window after a change
    # may hold no request of theirs yet.
    inconclusiveLimit: 3
    metrics:
      - {{name: success-rate, builtin: request-success-rate, thresholds: {{min: 95}}}}
"#,
        interval = opts.interval
    )
}

/// What the load generator's classes received, and what a backend saw, between two moments.
struct Window {
    load: [Tally; 3],
    mirrored: u64,
}

impl Window {
    async fn now(demo: &Demo, version: &str) -> Window {
        let mirrored = match demo.stack.app(version) {
            Some(a) => a.stats().await.mirrored,
            None => 0,
        };
        Window {
            load: [PLAIN, BETA, JASON].map(|c| demo.load.snapshot_of(c)),
            mirrored,
        }
    }

    fn since(&self, earlier: &Window) -> Window {
        Window {
            load: [0, 1, 2].map(|i| self.load[i].since(&earlier.load[i])),
            mirrored: self.mirrored.saturating_sub(earlier.mirrored),
        }
    }
}

/// The four stories, one after the other (see the module docs).
pub async fn scenario(
    demo: &Demo,
    opts: &DemoOptions,
    out: &mut (dyn Write + Send),
) -> Result<(), DemoError> {
    let v1 = upstream(&demo.stack, "v1")?;
    let edit = |version: &str, strategy: String| -> Result<(), DemoError> {
        let canary = upstream(&demo.stack, version)?;
        demo.stack.write_rollout(
            "reviews.yaml",
            &demo_rollout(opts, &v1, &canary, version, &strategy),
        )?;
        Ok(())
    };
    // Paused ends a story too: the demo says why instead of waiting for the timeout.
    let terminal =
        |st: &RolloutStatus| matches!(st.phase, Phase::Succeeded | Phase::Failed | Phase::Paused);

    // 1. A canary, promoted.
    writeln!(
        out,
        "\n▶ 1/4 canary → v2 (healthy): edit reviews.yaml, steps {:?}",
        opts.steps
    )?;
    edit("v2", canary_strategy(opts))?;
    let st = Follow::new(demo, opts).until(out, terminal).await?;
    expect(&st, Phase::Succeeded, "v2")?;
    writeln!(out, "✔ v2 promoted: the stable cluster now points at v2")?;

    // 2. A dark launch: counts taken while it runs (before the promotion moves everyone).
    writeln!(
        out,
        "\n▶ 2/4 dark launch → v3: requests with `{}: {}` go to v3; {}% of the others are \
         mirrored to it (its answers to them are discarded)",
        BETA_HEADER.0, BETA_HEADER.1, opts.mirror_percent
    )?;
    edit("v3", dark_launch_strategy(opts))?;
    let window = stage_window(demo, opts, out, "v3").await?;
    writeln!(
        out,
        "  while dark: {BETA} answered by {}; everyone else answered by {}; mirrored copies \
         received by v3: {}",
        window.load[1].describe(),
        window.load[0].plus(&window.load[2]).describe(),
        window.mirrored
    )?;
    let st = Follow::new(demo, opts).until(out, terminal).await?;
    expect(&st, Phase::Succeeded, "v3")?;
    writeln!(
        out,
        "✔ v3 promoted after {} passing checks in the dark",
        opts.iterations
    )?;

    // 3. An A/B test and its verdict.
    writeln!(
        out,
        "\n▶ 3/4 A/B test → v4: the signed-in user jason (cookie `user=jason`) sees B = v4, \
         everyone else A = v3; B is judged on its success rate"
    )?;
    edit("v4", ab_test_strategy(opts))?;
    let window = stage_window(demo, opts, out, "v4").await?;
    writeln!(
        out,
        "  during the test: {JASON} answered by {}; everyone else answered by {}",
        window.load[2].describe(),
        window.load[0].plus(&window.load[1]).describe(),
    )?;
    let st = Follow::new(demo, opts).until(out, terminal).await?;
    let verdicts = progress::verdicts(&st);
    match st.phase {
        Phase::Succeeded => writeln!(
            out,
            "✔ A/B verdict: B (v4) wins ({verdicts}, {} checks): promoted",
            opts.iterations
        )?,
        _ => writeln!(
            out,
            "✗ A/B verdict: A (v3) stays ({verdicts}): B rolled back"
        )?,
    }
    expect(&st, Phase::Succeeded, "v4")?;

    // 4. A failing canary, rolled back.
    writeln!(
        out,
        "\n▶ 4/4 canary → {BAD} ({}% errors): edit reviews.yaml",
        (opts.bad_error_rate * 100.0).round()
    )?;
    edit(BAD, canary_strategy(opts))?;
    let st = Follow::new(demo, opts).until(out, terminal).await?;
    expect(&st, Phase::Failed, BAD)?;
    writeln!(out, "✔ {BAD} rolled back: all traffic on stable (v4)")?;

    // Where the load actually went.
    let t = demo.load.snapshot();
    writeln!(
        out,
        "\nrequests through Envoy: {} answered ({} with 5xx), {} failed; by version: {}",
        t.answered(),
        t.server_errors,
        t.failed,
        t.describe()
    )?;
    Ok(())
}

fn expect(st: &RolloutStatus, want: Phase, version: &str) -> Result<(), DemoError> {
    if st.phase == want {
        Ok(())
    } else {
        Err(DemoError::Scenario(format!(
            "{version} ended {}, expected {want}: {}",
            st.phase,
            st.message.as_deref().unwrap_or("")
        )))
    }
}

/// The load between the moment the stage's routes send requests to `version` and the moment
/// it has all but its last check: well inside the stage, whatever the interval.
async fn stage_window(
    demo: &Demo,
    opts: &DemoOptions,
    out: &mut (dyn Write + Send),
    version: &str,
) -> Result<Window, DemoError> {
    let mut follow = Follow::new(demo, opts);
    let st = follow
        .until(out, |s| {
            (s.phase == Phase::Progressing && s.canary_traffic)
                || matches!(s.phase, Phase::Succeeded | Phase::Failed)
        })
        .await?;
    if st.phase != Phase::Progressing {
        return Err(DemoError::Scenario(format!(
            "{version} ended {} before its stage ran",
            st.phase
        )));
    }
    let start = Window::now(demo, version).await;
    let last = opts.iterations.saturating_sub(1).max(1);
    follow
        .until(out, |s| {
            s.passed_checks >= last || s.phase != Phase::Progressing
        })
        .await?;
    Ok(Window::now(demo, version).await.since(&start))
}

/// Prints a line per change of the demo rollout while waiting for a condition.
struct Follow<'a> {
    demo: &'a Demo,
    deadline: tokio::time::Instant,
    timeout: Duration,
    last_line: String,
    /// The file edit is picked up within a second; until the rollout has started, the old
    /// phase (e.g. the previous story's Succeeded) shows and must not end the wait.
    started: bool,
}

impl<'a> Follow<'a> {
    fn new(demo: &'a Demo, opts: &DemoOptions) -> Self {
        Follow {
            demo,
            deadline: tokio::time::Instant::now() + opts.phase_timeout,
            timeout: opts.phase_timeout,
            last_line: String::new(),
            started: false,
        }
    }

    async fn until(
        &mut self,
        out: &mut (dyn Write + Send),
        done: impl Fn(&RolloutStatus) -> bool,
    ) -> Result<RolloutStatus, DemoError> {
        let backend = &self.demo.sluice.backend;
        loop {
            if let Ok(v) = backend.get("default", ROLLOUT).await {
                let line = progress::line(ROLLOUT, &v.status, v.stages.len());
                if line != self.last_line {
                    writeln!(out, "  {} {line}", chrono::Utc::now().format("%H:%M:%S"))?;
                    self.last_line = line;
                }
                if matches!(
                    v.status.phase,
                    Phase::Progressing | Phase::Paused | Phase::Promoting
                ) {
                    self.started = true;
                }
                if self.started && done(&v.status) {
                    return Ok(v.status);
                }
            }
            if tokio::time::Instant::now() > self.deadline {
                return Err(DemoError::Scenario(format!(
                    "no outcome after {}s (last: {})",
                    self.timeout.as_secs(),
                    self.last_line
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
