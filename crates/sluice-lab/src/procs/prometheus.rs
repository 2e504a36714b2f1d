//! A Prometheus server started by hand (Debian's `prometheus` package; no systemd needed).
//!
//! [`Prometheus::start`] writes the given config into a fresh directory, starts the binary on
//! `127.0.0.1:<free port>` with its TSDB in that directory, and polls `/-/ready` until it answers
//! (deadline, no fixed sleep). The process is killed and the directory removed on drop.
//! Used by the analysis tests and by the standalone demo.
//!
//! The binary is `$SLUICE_PROMETHEUS` or `prometheus` on `PATH`; when missing, the error says how
//! to install it (`scripts/install-deps.sh`).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);
/// Another process may take the free port between choosing and binding it: try again.
const PORT_ATTEMPTS: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("{binary} not found on PATH (set ${env} or run scripts/install-deps.sh)")]
    NotInstalled {
        binary: &'static str,
        env: &'static str,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("prometheus exited during startup ({status}); log tail:\n{log}")]
    Exited { status: String, log: String },
    #[error("prometheus not ready after {after:?}; log tail:\n{log}")]
    NotReady { after: Duration, log: String },
    #[error("{0}")]
    Wait(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ProcError {
    let what = what.into();
    move |source| ProcError::Io { what, source }
}

pub struct Prometheus {
    child: Option<Child>,
    port: u16,
    url: String,
    dir: PathBuf,
    remove_dir: bool,
    client: reqwest::Client,
}

impl std::fmt::Debug for Prometheus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prometheus")
            .field("url", &self.url)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn fresh_dir() -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!(
        "sluice-prometheus-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

impl Prometheus {
    /// Starts Prometheus with `config_yaml` in a temporary directory (removed on drop).
    pub async fn start(config_yaml: &str) -> Result<Prometheus, ProcError> {
        let dir = fresh_dir();
        let mut p = Self::start_in(&dir, config_yaml).await?;
        p.remove_dir = true;
        Ok(p)
    }

    /// Starts Prometheus with `config_yaml`, its config, TSDB and log under `dir` (kept).
    pub async fn start_in(dir: &Path, config_yaml: &str) -> Result<Prometheus, ProcError> {
        let binary = super::find_binary("prometheus", "SLUICE_PROMETHEUS").ok_or(
            ProcError::NotInstalled {
                binary: "prometheus",
                env: "SLUICE_PROMETHEUS",
            },
        )?;
        std::fs::create_dir_all(dir.join("data"))
            .map_err(io(format!("create {}", dir.display())))?;
        let config = dir.join("prometheus.yml");
        std::fs::write(&config, config_yaml).map_err(io(format!("write {}", config.display())))?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| ProcError::Wait(format!("HTTP client: {e}")))?;
        let mut last = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = super::free_port().map_err(io("find a free port"))?;
            let mut p = Prometheus {
                child: None,
                port,
                url: format!("http://127.0.0.1:{port}"),
                dir: dir.to_path_buf(),
                remove_dir: false,
                client: client.clone(),
            };
            let log = File::create(p.log_path()).map_err(io("create prometheus.log"))?;
            let log2 = log.try_clone().map_err(io("clone log handle"))?;
            let child = Command::new(&binary)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log2)
                .spawn()
                .map_err(io(format!("start {}", binary.display())))?;
            p.child = Some(child);
            match p.wait_ready(READY_TIMEOUT).await {
                Ok(()) => return Ok(p),
                Err(ProcError::Exited { status, log })
                    if log.contains("address already in use") =>
                {
                    last = Some(ProcError::Exited { status, log });
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(ProcError::Wait("no port attempt made".into())))
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("prometheus.log")
    }

    /// The last lines of Prometheus' log (for error messages).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    async fn wait_ready(&mut self, timeout: Duration) -> Result<(), ProcError> {
        let start = Instant::now();
        let ready = format!("{}/-/ready", self.url);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(ProcError::Exited {
                    status: status.to_string(),
                    log: self.log_tail(),
                });
            }
            if let Ok(r) = self.client.get(&ready).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err(ProcError::NotReady {
                    after: timeout,
                    log: self.log_tail(),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until every active target of scrape job `job` is up (at least one), or `timeout`.
    pub async fn wait_for_targets(&self, job: &str, timeout: Duration) -> Result<(), ProcError> {
        let start = Instant::now();
        let url = format!("{}/api/v1/targets?state=active", self.url);
        let mut last;
        loop {
            match self.client.get(&url).send().await {
                Ok(r) => match r.json::<serde_json::Value>().await {
                    Ok(v) => {
                        let healths: Vec<String> = v["data"]["activeTargets"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter(|t| t["labels"]["job"] == job)
                            .map(|t| t["health"].as_str().unwrap_or("").to_string())
                            .collect();
                        if !healths.is_empty() && healths.iter().all(|h| h == "up") {
                            return Ok(());
                        }
                        last = format!("target health of job {job}: {healths:?}");
                    }
                    Err(e) => last = format!("bad targets answer: {e}"),
                },
                Err(e) => last = format!("targets request failed: {e}"),
            }
            if start.elapsed() > timeout {
                return Err(ProcError::Wait(format!(
                    "scrape job {job} not up after {timeout:?} ({last})"
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Kills the process and waits for it. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.stop();
        if self.remove_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A minimal config: scrape `targets` (host:port) as job `job` every `scrape_interval`.
pub fn scrape_config(job: &str, targets: &[String], scrape_interval: Duration) -> String {
    let every = sluice_analysis::names::promql_duration(scrape_interval);
    let list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
    format!(
        "global:\n  scrape_interval: {every}\n  evaluation_interval: {every}\nscrape_configs:\n  - job_name: '{job}'\n    scrape_interval: {every}\n    static_configs:\n      - targets: [{}]\n",
        list.join(", ")
    )
}
