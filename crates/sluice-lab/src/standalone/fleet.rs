//! `sluice bench fleet`: N rollouts progressing at once on one machine, measured from outside.
//!
//! Setup: the real standalone stack ([`Stack`]: demo backends v1 and v2, a real Envoy, a real
//! Prometheus scraping Envoy every second) and **the `sluice standalone` binary as a child
//! process** (so its RSS and CPU are its own, not the benchmark's), with `--envoy-admin` so a
//! routing change counts as applied only once Envoy reports it. N canary rollouts
//! `r00000 …` (host = name, v1 → v2 in 20 steps from 50%, the builtin success rate checked
//! every `--interval`) are written before sluice starts; a load generator spreads `--rps`
//! requests per second over their hosts through Envoy.
//!
//! Measured:
//! - **all at their first step**: sluice start → every rollout Progressing with its first
//!   plan confirmed by Envoy (the API's `appliedTraffic`);
//! - then over a window of `--duration`: sluice RSS (steady = last sample, peak = `VmHWM`),
//!   sluice CPU % (of one core), Envoy RSS / CPU %, Prometheus queries per second (its own
//!   `prometheus_http_requests_total` for `/api/v1/query`), growth of the history the store
//!   keeps per rollout per hour (weighed through the API on 20 rollouts);
//! - **command → served** while all progress: `--probes` rollouts are aborted one at a time,
//!   spread over the window; each sample is the time from sending `abort` to the first of 20
//!   consecutive answers from v1 through Envoy (before the abort the canary holds ≥ 50%, so 20
//!   v1 answers in a row by chance has odds below 1 in a million). It includes the decision
//!   (the tick the command triggers), the xDS write and Envoy's confirmation.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::demo_app::DemoConfig;

use super::demo::WorkDir;
use super::load::{self, Class, LoadGen, Target};
use super::stack::{Stack, StackError};

/// Consecutive stable answers that count as "served" after an abort.
const STREAK: usize = 20;
/// Longest wait for one probe's abort to be served (a timeout counts as this long).
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Debug)]
pub struct FleetOptions {
    pub rollouts: usize,
    /// Every rollout's analysis interval.
    pub interval: Duration,
    /// The measurement window, after all reached their first step (or that wait timed out).
    pub duration: Duration,
    /// Longest wait for every rollout to reach its first step.
    pub first_step_timeout: Duration,
    /// Requests per second through Envoy, spread over every rollout's host.
    pub rps: u32,
    /// Single-rollout changes (aborts) measured during the window.
    pub probes: usize,
    /// The `sluice` binary to run as `sluice standalone`.
    pub sluice_bin: PathBuf,
}

/// What `--json` prints. The first eight keys are the ones issue 16 names.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FleetReport {
    pub rollouts: usize,
    /// sluice's resident memory at the end of the window.
    pub rss_mib: f64,
    /// Percent of one core over the window.
    pub cpu_percent: f64,
    /// Command → served (see the module docs); None when no probe could run.
    pub apply_p50_ms: Option<f64>,
    pub apply_p99_ms: Option<f64>,
    pub prometheus_qps: f64,
    /// Growth of the history the store keeps (events and checks as JSON, measured on a
    /// sample of rollouts through the API), per rollout, extrapolated to an hour.
    pub store_bytes_per_rollout_hour: f64,
    /// None when not all rollouts reached their first step within the timeout.
    pub all_first_step_s: Option<f64>,
    /// sluice's peak resident memory (`VmHWM`).
    pub rss_peak_mib: f64,
    pub envoy_rss_mib: f64,
    pub envoy_cpu_percent: f64,
    /// Rollouts at their first step when the wait ended.
    pub first_step_reached: usize,
    pub apply_samples: usize,
    /// Probes not served within 30 s (counted as 30 s in the percentiles).
    pub apply_timeouts: usize,
    pub window_s: f64,
    /// The store file's growth over the window (redb grows its file in large steps, so
    /// over a short window this says little; the history growth above is the trend).
    pub store_file_growth_bytes: f64,
    pub store_file_bytes: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error(transparent)]
    Stack(#[from] StackError),
    #[error("HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("sluice standalone: {0}")]
    Sluice(String),
    #[error("--rollouts must be at least 1")]
    NoRollouts,
}

/// The rollout the benchmark writes (name = host).
pub fn rollout_yaml(name: &str, stable: &str, canary: &str, interval: &str) -> String {
    let steps: Vec<String> = (0..20).map(|i| (50 + 2 * i).to_string()).collect();
    format!(
        r#"apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata: {{name: {name}}}
spec:
  upstreams: {{stable: "{stable}", canary: "{canary}"}}
  service: {{port: 80, hosts: [{name}]}}
  strategy: {{canary: {{steps: [{steps}]}}}}
  analysis:
    interval: {interval}
    failureLimit: 1000000
    inconclusiveLimit: 1000000
    metrics:
      - {{name: success-rate, builtin: request-success-rate, thresholds: {{min: 90}}}}
"#,
        steps = steps.join(", ")
    )
}

fn name(i: usize) -> String {
    format!("r{i:05}")
}

/// The sluice child: killed (and reaped) on drop.
struct Child(tokio::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        if self.0.start_kill().is_ok() {
            for _ in 0..200 {
                if matches!(self.0.try_wait(), Ok(Some(_)) | Err(_)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// CPU seconds (user + system) and RSS / peak RSS in MiB of a process, from /proc.
#[derive(Clone, Copy, Debug, Default)]
struct ProcSample {
    cpu_s: f64,
    rss_mib: f64,
    peak_mib: f64,
}

fn proc_sample(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at state (field 3).
    let rest = stat.rsplit_once(") ")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    // utime and stime are fields 14 and 15 (11 and 12 here); USER_HZ is 100 on Linux.
    let cpu_s = (ticks(11)? + ticks(12)?) / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Some(ProcSample {
        cpu_s,
        rss_mib: kb("VmRSS:") / 1024.0,
        peak_mib: kb("VmHWM:") / 1024.0,
    })
}

/// Instant queries Prometheus has answered so far (its own counter).
async fn prometheus_queries(client: &reqwest::Client, base: &str) -> f64 {
    let Ok(resp) = client.get(format!("{base}/metrics")).send().await else {
        return 0.0;
    };
    let text = resp.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| {
            l.starts_with("prometheus_http_requests_total{")
                && l.contains("handler=\"/api/v1/query\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The rollouts that are Progressing with a plan Envoy confirmed.
async fn at_first_step(client: &reqwest::Client, api: &str) -> Result<Vec<String>, reqwest::Error> {
    let list: Vec<serde_json::Value> = client
        .get(format!("{api}/api/v1/rollouts"))
        .send()
        .await?
        .json()
        .await?;
    Ok(list
        .iter()
        .filter(|v| {
            let s = &v["status"];
            s["phase"] == "Progressing"
                && s["canaryWeight"].as_u64().unwrap_or(0) > 0
                && !s["appliedTraffic"].is_null()
        })
        .filter_map(|v| v["name"].as_str().map(str::to_string))
        .collect())
}

/// Rollouts whose history is weighed (enough for an average, cheap at any N).
const HISTORY_SAMPLE: usize = 20;

/// Bytes of history (events and analysis checks, as the API serves them) of a sample of
/// rollouts: what the store keeps for them, in its JSON encoding.
async fn history_bytes(client: &reqwest::Client, api: &str, names: &[String]) -> f64 {
    let mut total = 0.0;
    for n in names {
        for what in ["events", "analysis"] {
            let url = format!("{api}/api/v1/rollouts/default/{n}/{what}");
            if let Ok(resp) = client.get(url).send().await
                && let Ok(body) = resp.bytes().await
            {
                total += body.len() as f64;
            }
        }
    }
    total
}

fn file_size(path: &Path) -> f64 {
    std::fs::metadata(path)
        .map(|m| m.len() as f64)
        .unwrap_or(0.0)
}

/// The whole benchmark. `progress` gets a line per stage (stderr in the CLI).
pub async fn fleet(
    opts: &FleetOptions,
    progress: &mut (dyn FnMut(String) + Send),
) -> Result<FleetReport, FleetError> {
    if opts.rollouts == 0 {
        return Err(FleetError::NoRollouts);
    }
    let work = WorkDir::new("sluice-bench-fleet")?;
    progress("starting Envoy, Prometheus and the demo backends".into());
    let stack = Stack::start(&work.0, &[DemoConfig::new("v1"), DemoConfig::new("v2")]).await?;
    let addr = |v: &str| stack.app(v).map(|a| a.upstream()).unwrap_or_default();
    let (v1, v2) = (addr("v1"), addr("v2"));
    let interval = format!("{}ms", opts.interval.as_millis());
    for i in 0..opts.rollouts {
        let n = name(i);
        std::fs::write(
            stack.rollouts_dir.join(format!("{n}.yaml")),
            rollout_yaml(&n, &v1, &v2, &interval),
        )?;
    }
    let token = "fleet-bench-token";
    let token_file = work.0.join("token");
    std::fs::write(&token_file, token)?;
    let port = crate::procs::free_port()?;
    let api = format!("http://127.0.0.1:{port}");
    let log_path = work.0.join("sluice.log");
    let log = std::fs::File::create(&log_path)?;
    progress(format!(
        "starting sluice standalone with {} rollouts (interval {interval})",
        opts.rollouts
    ));
    let started = Instant::now();
    // The transport the stack's Envoy was started with (ADS by default).
    let xds_args: Vec<std::ffi::OsString> = match &stack.xds {
        sluice_standalone::launch::Xds::Ads { listen } => {
            vec![
                "--xds".into(),
                "ads".into(),
                "--xds-listen".into(),
                listen.into(),
            ]
        }
        sluice_standalone::launch::Xds::Files { dir } => {
            vec![
                "--xds".into(),
                "files".into(),
                "--xds-dir".into(),
                dir.into(),
            ]
        }
    };
    let child = tokio::process::Command::new(&opts.sluice_bin)
        .arg("standalone")
        .arg("--dir")
        .arg(&stack.rollouts_dir)
        .args(&xds_args)
        .arg("--store")
        .arg(&stack.store_path)
        .arg("--prometheus")
        .arg(stack.prometheus.url())
        .arg("--scrape-interval")
        .arg("1s")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--envoy-admin")
        .arg(stack.envoy_admin())
        .arg("--token-file")
        .arg(&token_file)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| FleetError::Sluice(format!("{}: {e}", opts.sluice_bin.display())))?;
    let mut child = Child(child);
    let pid = child
        .0
        .id()
        .ok_or_else(|| FleetError::Sluice("exited at once".into()))?;
    let client = load::client()?;
    let alive = |child: &mut Child| -> Result<(), FleetError> {
        match child.0.try_wait() {
            Ok(Some(status)) => Err(FleetError::Sluice(format!(
                "exited ({status}): {}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            ))),
            _ => Ok(()),
        }
    };

    // Every host gets its share of the load (weights 1: spread evenly, in turn).
    let mix = (0..opts.rollouts)
        .map(|i| Class {
            name: "all".into(),
            target: Target::new(stack.envoy_url(), name(i)),
            weight: 1,
        })
        .collect();
    let _load = LoadGen::start_mix(client.clone(), mix, opts.rps.max(1));

    let deadline = started + opts.first_step_timeout;
    let mut reached = 0;
    let mut all_first_step_s = None;
    let mut last_report = Instant::now();
    loop {
        alive(&mut child)?;
        if let Ok(names) = at_first_step(&client, &api).await {
            reached = names.len();
            if reached == opts.rollouts {
                all_first_step_s = Some(started.elapsed().as_secs_f64());
                break;
            }
        }
        if Instant::now() >= deadline {
            break;
        }
        if last_report.elapsed() >= Duration::from_secs(10) {
            progress(format!(
                "{reached}/{} at their first step after {:.0} s",
                opts.rollouts,
                started.elapsed().as_secs_f64()
            ));
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    progress(match all_first_step_s {
        Some(s) => format!("all {} at their first step after {s:.1} s", opts.rollouts),
        None => format!(
            "{reached}/{} at their first step after {:.0} s (timeout)",
            opts.rollouts,
            opts.first_step_timeout.as_secs_f64()
        ),
    });

    // The measurement window.
    let envoy_pid = stack.envoy.pid();
    let window_start = Instant::now();
    let s0 = proc_sample(pid).unwrap_or_default();
    let e0 = envoy_pid.and_then(proc_sample).unwrap_or_default();
    let q0 = prometheus_queries(&client, stack.prometheus.url()).await;
    let store0 = file_size(&stack.store_path);
    let weighed: Vec<String> = (0..HISTORY_SAMPLE.min(opts.rollouts))
        .map(|k| name(k * opts.rollouts / HISTORY_SAMPLE.min(opts.rollouts)))
        .collect();
    let h0 = history_bytes(&client, &api, &weighed).await;
    progress(format!(
        "measuring for {:.0} s with {} aborts spread over it",
        opts.duration.as_secs_f64(),
        opts.probes
    ));
    let mut samples = Vec::new();
    let mut timeouts = 0;
    let probes = opts.probes.min(opts.rollouts);
    let gap = opts.duration / u32::try_from(probes.max(1)).unwrap_or(1);
    let probe_client = load::client()?;
    // Probe rollouts spread over the fleet; one that cannot be aborted now is skipped.
    let mut candidates = (0..probes).map(|k| name(k * opts.rollouts / probes.max(1)));
    let mut next_probe = window_start;
    while window_start.elapsed() < opts.duration {
        alive(&mut child)?;
        if Instant::now() >= next_probe
            && let Some(n) = candidates.next()
        {
            next_probe += gap;
            match probe(&probe_client, &api, token, &stack.envoy_url(), &n).await {
                Ok(Some(ms)) => samples.push(ms),
                Ok(None) => {
                    timeouts += 1;
                    samples.push(PROBE_TIMEOUT.as_secs_f64() * 1e3);
                }
                Err(e) => progress(format!("probe {n} skipped: {e}")),
            }
            continue;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let window = window_start.elapsed().as_secs_f64();
    let s1 = proc_sample(pid).unwrap_or_default();
    let e1 = envoy_pid.and_then(proc_sample).unwrap_or_default();
    let q1 = prometheus_queries(&client, stack.prometheus.url()).await;
    let store1 = file_size(&stack.store_path);
    let h1 = history_bytes(&client, &api, &weighed).await;
    alive(&mut child)?;
    drop(child);

    let round = |x: f64, digits: i32| {
        let f = 10f64.powi(digits);
        (x * f).round() / f
    };
    let pct = |q: f64| crate::bench::percentile(&samples, q).map(|v| round(v, 1));
    Ok(FleetReport {
        rollouts: opts.rollouts,
        rss_mib: round(s1.rss_mib, 1),
        cpu_percent: round((s1.cpu_s - s0.cpu_s) / window * 100.0, 1),
        apply_p50_ms: pct(0.5),
        apply_p99_ms: pct(0.99),
        prometheus_qps: round((q1 - q0) / window, 2),
        store_bytes_per_rollout_hour: round(
            (h1 - h0).max(0.0) / weighed.len().max(1) as f64 * 3600.0 / window,
            0,
        ),
        store_file_growth_bytes: round(store1 - store0, 0),
        store_file_bytes: round(store1, 0),
        all_first_step_s: all_first_step_s.map(|s| round(s, 2)),
        rss_peak_mib: round(s1.peak_mib, 1),
        envoy_rss_mib: round(e1.rss_mib, 1),
        envoy_cpu_percent: round((e1.cpu_s - e0.cpu_s) / window * 100.0, 1),
        first_step_reached: reached,
        apply_samples: samples.len(),
        apply_timeouts: timeouts,
        window_s: round(window, 1),
    })
}

/// Aborts rollout `name`; Some(ms) from sending the command to the first of [`STREAK`]
/// consecutive stable (v1) answers through Envoy, None after [`PROBE_TIMEOUT`].
async fn probe(
    client: &reqwest::Client,
    api: &str,
    token: &str,
    envoy: &str,
    name: &str,
) -> Result<Option<f64>, String> {
    let target = Target::new(envoy, name);
    let t0 = Instant::now();
    let resp = client
        .post(format!("{api}/api/v1/rollouts/default/{name}/abort"))
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        let status = resp.status();
        return Err(format!(
            "abort answered {status}: {}",
            resp.text().await.unwrap_or_default()
        ));
    }
    let mut streak = 0;
    let mut streak_start = None;
    while t0.elapsed() < PROBE_TIMEOUT {
        let at = t0.elapsed();
        match load::send(client, &target).await {
            load::Outcome::Answered {
                version: Some(v), ..
            } if v == "v1" => {
                streak_start.get_or_insert(at);
                streak += 1;
                if streak >= STREAK {
                    return Ok(streak_start.map(|d| d.as_secs_f64() * 1e3));
                }
            }
            _ => {
                streak = 0;
                streak_start = None;
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    #[test]
    fn bench_rollout_is_a_valid_standalone_canary_starting_at_half() {
        let r = sluice_standalone::loader::parse(
            &super::rollout_yaml("r00001", "127.0.0.1:1", "127.0.0.1:2", "10000ms"),
            "r.yaml",
        )
        .unwrap();
        let plan = sluice_core::rollout_plan::RolloutPlan::try_from(&r[0].spec).unwrap();
        // The probes rely on the canary holding at least half the traffic from the first step.
        assert!(plan.stages.len() >= 20, "{}", plan.stages.len());
        assert_eq!(
            plan.analysis.interval_std,
            std::time::Duration::from_secs(10)
        );
    }

    #[test]
    fn proc_sample_reads_this_process() {
        let s = super::proc_sample(std::process::id()).unwrap();
        assert!(s.rss_mib > 1.0 && s.peak_mib >= s.rss_mib, "{s:?}");
    }
}
