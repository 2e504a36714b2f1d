//! Child processes sluice starts itself (the demo, the benchmarks, the tests): the real
//! Envoy and Prometheus, and helpers they share (free ports, readiness polling, finding
//! binaries).
//!
//! Every child is owned by a handle that kills it on drop: a process launched by sluice never
//! outlives it (and Envoy receives SIGTERM when its launcher exits anyway, see MACHINE_NOTES).

pub mod envoy;
pub mod prometheus;

pub use prometheus::{ProcError, Prometheus};

use std::time::{Duration, Instant};

/// A TCP port on 127.0.0.1 that was free a moment ago (the OS picked it). Another process can
/// take it before it is used; callers that bind it themselves should prefer binding port 0.
pub fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(l.local_addr()?.port())
}

/// Poll `check` every `every` until it returns true or `deadline` passes.
pub async fn poll_until<F, Fut>(deadline: Duration, every: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return true;
        }
        if start.elapsed() >= deadline {
            return false;
        }
        tokio::time::sleep(every).await;
    }
}

/// Finds `binary` on `PATH`, or takes `$env_override` when set (and it names a file).
pub(crate) fn find_binary(binary: &str, env_override: &str) -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os(env_override) {
        let p = std::path::PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(binary))
        .find(|p| p.is_file())
}
