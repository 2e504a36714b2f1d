//! Secrets (webhook URLs, tokens) that must never reach logs, status, events or the UI.
//!
//! A [`Secret`] is read from an environment variable or a file, never from a spec field, and
//! prints as `***` through both `Debug` and `Display`, so a `?secret` in a tracing macro or a
//! `{:?}` of a struct holding one cannot leak it. Only [`Secret::expose`] gives the value, and
//! its callers hand it straight to the HTTP client.
//!
//! Caveat: HTTP client errors carry the request URL; code that logs them must strip it first
//! (`reqwest::Error::without_url`), which `crate::webhooks` and `crate::notify` do.

use std::fmt;
use std::path::Path;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set or not valid UTF-8")]
    MissingEnv(String),
    #[error("cannot read secret file {path}: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} is empty")]
    Empty(String),
}

impl Secret {
    /// Wrap a value obtained some other safe way (e.g. a clap flag reading an env var).
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value of environment variable `name`, trimmed.
    pub fn from_env(name: &str) -> Result<Self, SecretError> {
        let v = std::env::var(name).map_err(|_| SecretError::MissingEnv(name.to_string()))?;
        Self::non_empty(v, || format!("environment variable {name}"))
    }

    /// The contents of the file at `path`, trimmed (files written by `echo` end in a newline;
    /// Kubernetes Secret volumes often do too).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, SecretError> {
        let path = path.as_ref();
        let v = std::fs::read_to_string(path).map_err(|source| SecretError::File {
            path: path.display().to_string(),
            source,
        })?;
        Self::non_empty(v, || format!("secret file {}", path.display()))
    }

    fn non_empty(v: String, what: impl FnOnce() -> String) -> Result<Self, SecretError> {
        let t = v.trim();
        if t.is_empty() {
            return Err(SecretError::Empty(what()));
        }
        Ok(Secret(t.to_string()))
    }

    /// The secret value: pass it to the HTTP client, never to a formatter.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_formats_its_value() {
        let s = Secret::new("https://hooks.example/T0/B0/very-secret");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{:?}", Some(&s)), "Some(***)");
        assert_eq!(s.expose(), "https://hooks.example/T0/B0/very-secret");
    }

    #[test]
    fn reads_files_trimmed_and_rejects_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("url");
        std::fs::write(&p, "https://x/y\n").expect("write");
        assert_eq!(Secret::from_file(&p).expect("read").expose(), "https://x/y");
        std::fs::write(&p, "  \n").expect("write");
        assert!(matches!(Secret::from_file(&p), Err(SecretError::Empty(_))));
        let missing = Secret::from_file(dir.path().join("nope"));
        assert!(matches!(missing, Err(SecretError::File { .. })));
        assert!(matches!(
            Secret::from_env("SLUICE_TEST_SURELY_UNSET_VAR"),
            Err(SecretError::MissingEnv(_))
        ));
    }
}
