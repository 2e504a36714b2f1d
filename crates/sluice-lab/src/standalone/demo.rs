//! `sluice demo`: the whole loop on this machine, in about a minute.
//!
//! Starts demo backends v1 (stable), v2 (healthy) and v3 (30% HTTP 500) in this process, a real
//! Envoy and a real Prometheus (1 s scrape of Envoy), a load generator (~50 rps through Envoy)
//! and sluice standalone with its HTTP API/UI. Then it edits the rollout file like a user
//! would: canary → v2 (promoted step by step), then canary → v3 (rolled back), each labelled
//! with `revision: vN`. One terminal line per change shows versions, phase, step, weight and
//! verdicts.
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
use sluice_core::spec::Phase;

use super::load::{self, LoadGen, Target};
use super::progress;
use super::stack::{self, Stack, StackError};
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
        "starting Envoy, Prometheus and demo backends v1/v2/v3 in {} ...",
        work.0.display()
    )?;
    let bad = DemoConfig {
        error_rate: opts.bad_error_rate,
        ..DemoConfig::new("v3")
    };
    let stack = Stack::start(
        &work.0,
        &[DemoConfig::new("v1"), DemoConfig::new("v2"), bad],
    )
    .await?;
    let v1 = upstream(&stack, "v1")?;
    // Stable and canary both v1: nothing to roll out yet.
    stack.write_rollout("reviews.yaml", &demo_rollout(opts, &v1, &v1, "v1"))?;
    let token = new_token();
    let tok = token.clone();
    let sluice =
        Standalone::launch(stack.options(&opts.listen), None, move |b| app(b, tok)).await?;
    let client = load::client()?;
    let load = LoadGen::start(client, Target::new(stack.envoy_url(), ROLLOUT), opts.rps);
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

/// The demo's rollout file: the canary labelled with its version, so that the UI, the CLI and
/// the progress lines say `v1 → v2` rather than addresses.
fn demo_rollout(opts: &DemoOptions, stable: &str, canary: &str, version: &str) -> String {
    stack::labelled_canary_rollout(
        ROLLOUT,
        stable,
        canary,
        Some(version),
        &opts.steps,
        &opts.interval,
        95.0,
    )
}

/// The scenario: v2 through the canary to promotion, then v3 until it is rolled back.
pub async fn scenario(
    demo: &Demo,
    opts: &DemoOptions,
    out: &mut (dyn Write + Send),
) -> Result<(), DemoError> {
    let v1 = upstream(&demo.stack, "v1")?;
    let v2 = upstream(&demo.stack, "v2")?;
    let v3 = upstream(&demo.stack, "v3")?;
    writeln!(out, "\n▶ canary → v2 (healthy): edit reviews.yaml")?;
    demo.stack
        .write_rollout("reviews.yaml", &demo_rollout(opts, &v1, &v2, "v2"))?;
    let st = follow(demo, out, opts.phase_timeout, |p| {
        matches!(p, Phase::Succeeded | Phase::Failed)
    })
    .await?;
    if st != Phase::Succeeded {
        return Err(DemoError::Scenario(format!(
            "v2 ended {st}, expected Succeeded"
        )));
    }
    writeln!(out, "✔ v2 promoted: the stable cluster now points at v2")?;

    writeln!(
        out,
        "\n▶ canary → v3 ({}% errors): edit reviews.yaml",
        (opts.bad_error_rate * 100.0).round()
    )?;
    // upstreams.stable stays v1 in the file: after the promotion, stable points at v2 anyway.
    demo.stack
        .write_rollout("reviews.yaml", &demo_rollout(opts, &v1, &v3, "v3"))?;
    let st = follow(demo, out, opts.phase_timeout, |p| {
        matches!(p, Phase::Failed | Phase::Succeeded)
    })
    .await?;
    if st != Phase::Failed {
        return Err(DemoError::Scenario(format!(
            "v3 ended {st}, expected Failed"
        )));
    }
    writeln!(out, "✔ v3 rolled back: all traffic on stable (v2)")?;

    // Show where the load actually went.
    let t = demo.load.snapshot();
    writeln!(
        out,
        "\nrequests through Envoy: {} answered ({} with 5xx), {} failed; by version: {}",
        t.answered(),
        t.server_errors,
        t.failed,
        t.by_version
            .iter()
            .map(|(v, n)| format!("{v}={n}"))
            .collect::<Vec<_>>()
            .join(" ")
    )?;
    Ok(())
}

/// Prints a line per change of the demo rollout until `done(phase)` (after the rollout left
/// its starting phase), returning that phase.
async fn follow(
    demo: &Demo,
    out: &mut (dyn Write + Send),
    timeout: Duration,
    done: impl Fn(Phase) -> bool,
) -> Result<Phase, DemoError> {
    let backend = &demo.sluice.backend;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_line = String::new();
    let mut started = false;
    loop {
        if let Ok(v) = backend.get("default", ROLLOUT).await {
            let line = progress::line(ROLLOUT, &v.status, v.stages.len());
            if line != last_line {
                writeln!(out, "  {} {line}", chrono::Utc::now().format("%H:%M:%S"))?;
                last_line = line;
            }
            // The file edit is picked up within a second; until then the old phase shows.
            if matches!(
                v.status.phase,
                Phase::Progressing | Phase::Paused | Phase::Promoting
            ) {
                started = true;
            }
            if started && done(v.status.phase) {
                return Ok(v.status.phase);
            }
        }
        if tokio::time::Instant::now() > deadline {
            return Err(DemoError::Scenario(format!(
                "no outcome after {}s (last: {last_line})",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
