//! The real standalone setup the demo, `sluice bench rollback` and the end-to-end tests run:
//! demo backends (in this process), a real Envoy fed over ADS by the sluice that runs on it
//! (or by file-based xDS: [`Stack::start_files`]), a real Prometheus
//! scraping Envoy's `/stats/prometheus` every second, all on 127.0.0.1 with free ports, in one
//! work directory. Every child process is killed when the [`Stack`] is dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::demo_app::{self, DemoConfig, DemoHandle};
use crate::procs::envoy::{EnvoyError, EnvoyProcess};
use crate::procs::{ProcError, Prometheus};

use sluice_envoy::translate::XdsSource;
use sluice_standalone::launch::{Options, Xds};
use sluice_standalone::runner::Timing;

/// Prometheus' scrape interval in this setup.
pub const SCRAPE: Duration = Duration::from_secs(1);
/// The Prometheus job scraping Envoy.
pub const ENVOY_JOB: &str = "envoy";

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("demo backend: {0}")]
    Demo(#[from] demo_app::DemoError),
    #[error("envoy: {0}")]
    Envoy(#[from] EnvoyError),
    #[error("prometheus: {0}")]
    Prometheus(#[from] ProcError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StackError + '_ {
    move |source| StackError::Io {
        path: path.display().to_string(),
        source,
    }
}

pub struct Stack {
    pub work_dir: PathBuf,
    /// Demo backends with their versions.
    pub apps: Vec<(String, DemoHandle)>,
    pub envoy: EnvoyProcess,
    pub prometheus: Prometheus,
    pub rollouts_dir: PathBuf,
    /// How Envoy is fed: the ADS address sluice must serve on, or the xDS directory.
    pub xds: Xds,
    pub store_path: PathBuf,
}

impl Stack {
    /// Starts the backends, Envoy (bootstrapped for ADS from the sluice that
    /// [`options`](Stack::options) configures) and Prometheus in `work_dir`, and waits until
    /// Prometheus scrapes Envoy.
    pub async fn start(work_dir: &Path, backends: &[DemoConfig]) -> Result<Stack, StackError> {
        Self::start_xds(work_dir, backends, false).await
    }

    /// [`Stack::start`] with file-based xDS (`work_dir/xds`).
    pub async fn start_files(
        work_dir: &Path,
        backends: &[DemoConfig],
    ) -> Result<Stack, StackError> {
        Self::start_xds(work_dir, backends, true).await
    }

    async fn start_xds(
        work_dir: &Path,
        backends: &[DemoConfig],
        files: bool,
    ) -> Result<Stack, StackError> {
        let rollouts_dir = work_dir.join("rollouts");
        std::fs::create_dir_all(&rollouts_dir).map_err(io(&rollouts_dir))?;
        let mut apps = Vec::new();
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        for cfg in backends {
            apps.push((
                cfg.version.clone(),
                demo_app::start(cfg.clone(), any).await?,
            ));
        }
        let (envoy, xds) = if files {
            // The router the helper returns is not used: sluice opens the same directory itself.
            let (envoy, router) =
                EnvoyProcess::start_standalone(work_dir, Duration::from_secs(5)).await?;
            let dir = router.dir().map(Path::to_path_buf).unwrap_or_default();
            (envoy, Xds::Files { dir })
        } else {
            // Envoy starts first and keeps reconnecting (every ≤ 1 s) until sluice serves ADS
            // on this port.
            let port = crate::procs::free_port().map_err(|source| StackError::Io {
                path: "127.0.0.1:0".into(),
                source,
            })?;
            let xds = XdsSource::Ads {
                host: "127.0.0.1".into(),
                port,
            };
            let envoy = EnvoyProcess::start_with_xds(work_dir, xds).await?;
            (
                envoy,
                Xds::Ads {
                    listen: format!("127.0.0.1:{port}"),
                },
            )
        };
        let config = prometheus_config(envoy.admin_port);
        let prometheus = Prometheus::start_in(&work_dir.join("prometheus"), &config).await?;
        prometheus
            .wait_for_targets(ENVOY_JOB, Duration::from_secs(30))
            .await?;
        Ok(Stack {
            work_dir: work_dir.to_path_buf(),
            apps,
            envoy,
            prometheus,
            rollouts_dir,
            xds,
            store_path: work_dir.join("sluice.redb"),
        })
    }

    /// Kills Envoy and Prometheus and waits for them to exit (dropping also kills them, without
    /// waiting).
    pub async fn stop(self) {
        let Stack {
            envoy,
            mut prometheus,
            ..
        } = self;
        envoy.stop().await;
        prometheus.stop();
    }

    /// The backend answering as `version`.
    pub fn app(&self, version: &str) -> Option<&DemoHandle> {
        self.apps.iter().find(|(v, _)| v == version).map(|(_, a)| a)
    }

    /// Where clients send requests (Host header selects the rollout).
    pub fn envoy_url(&self) -> String {
        self.envoy.url()
    }

    pub fn envoy_admin(&self) -> String {
        format!("127.0.0.1:{}", self.envoy.admin_port)
    }

    /// Options for a sluice standalone over this stack, HTTP on `listen`.
    pub fn options(&self, listen: &str) -> Options {
        Options {
            dir: self.rollouts_dir.clone(),
            xds: self.xds.clone(),
            store: self.store_path.clone(),
            prometheus: Some(self.prometheus.url().to_string()),
            scrape_interval: SCRAPE,
            listen: listen.to_string(),
            envoy_admin: Some(self.envoy_admin()),
            timing: Timing::default(),
        }
    }

    /// Writes a rollout file atomically (temp file + rename): the loader never reads half.
    pub fn write_rollout(&self, file_name: &str, yaml: &str) -> Result<PathBuf, StackError> {
        let path = self.rollouts_dir.join(file_name);
        // A dot file is ignored by the loader until it is renamed.
        let tmp = self.rollouts_dir.join(format!(".{file_name}.tmp"));
        std::fs::write(&tmp, yaml).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        Ok(path)
    }
}

/// Scrape Envoy's admin `/stats/prometheus` every second.
pub fn prometheus_config(envoy_admin_port: u16) -> String {
    format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: '{ENVOY_JOB}'\n    scrape_interval: 1s\n    metrics_path: /stats/prometheus\n    static_configs:\n      - targets: ['127.0.0.1:{envoy_admin_port}']\n"
    )
}

/// A standalone canary Rollout for the stack (host `name`), checking the success rate.
pub fn canary_rollout(
    name: &str,
    stable: &str,
    canary: &str,
    steps: &[u32],
    interval: &str,
    min_success: f64,
) -> String {
    labelled_canary_rollout(name, stable, canary, None, steps, interval, min_success)
}

/// [`canary_rollout`] with `revision` labelling the canary's version (e.g. `v2`).
pub fn labelled_canary_rollout(
    name: &str,
    stable: &str,
    canary: &str,
    revision: Option<&str>,
    steps: &[u32],
    interval: &str,
    min_success: f64,
) -> String {
    let steps: Vec<String> = steps.iter().map(u32::to_string).collect();
    let revision = revision
        .map(|r| format!("  revision: {r}\n"))
        .unwrap_or_default();
    format!(
        r#"apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata: {{name: {name}}}
spec:
  upstreams: {{stable: "{stable}", canary: "{canary}"}}
{revision}  service: {{port: 80, hosts: [{name}]}}
  strategy: {{canary: {{steps: [{steps}]}}}}
  analysis:
    interval: {interval}
    failureLimit: 1
    inconclusiveLimit: 2
    metrics:
      - {{name: success-rate, builtin: request-success-rate, thresholds: {{min: {min_success}}}}}
"#,
        steps = steps.join(", ")
    )
}
