//! Real helper processes sluice starts itself: Prometheus for the standalone demo and for the
//! tests that need a real one. Each process is owned by a value that kills it on drop.

pub mod prometheus;

pub use prometheus::{ProcError, Prometheus};

/// Finds `binary` on `PATH` (or takes `$ENV_OVERRIDE` if set).
pub(crate) fn find_binary(binary: &str, env_override: &str) -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os(env_override) {
        return Some(p.into());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(binary))
        .find(|p| p.is_file())
}

/// A port that was free a moment ago on 127.0.0.1 (the OS picks it).
pub fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}
