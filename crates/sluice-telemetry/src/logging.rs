//! Logging: tracing with a human format by default, JSON with `--log-format json`.
//!
//! The level comes from `RUST_LOG` (default `info`). Every tick of a rollout runs inside
//! [`tick_span`], so each line logged while reconciling it carries `namespace`, `rollout` (the
//! name) and `revision`: the human format prints them as a `tick{...}:` prefix, the JSON
//! format as the `span` object.

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use sluice_core::spec::Rollout;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Human,
    /// One JSON object per line, with the current span's fields.
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("invalid RUST_LOG filter: {0}")]
    Filter(String),
    #[error("a global tracing subscriber is already installed")]
    AlreadySet,
}

/// The filter from `RUST_LOG`'s value (read by the binary) when set and not blank (an invalid
/// value is an error, not silently ignored), else `info`.
pub fn env_filter(rust_log: Option<&str>) -> Result<EnvFilter, LoggingError> {
    match rust_log {
        Some(v) if !v.trim().is_empty() => {
            EnvFilter::try_new(v).map_err(|e| LoggingError::Filter(format!("{v:?}: {e}")))
        }
        _ => Ok(EnvFilter::new("info")),
    }
}

/// A subscriber writing to `writer`; tests pass a buffer to capture what would be logged.
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
    ansi: bool,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(true);
    match format {
        LogFormat::Human => Box::new(builder.with_ansi(ansi).finish()),
        LogFormat::Json => Box::new(
            builder
                .json()
                .with_current_span(true)
                .with_span_list(false)
                .finish(),
        ),
    }
}

/// Install the process-wide subscriber (stderr). Call once, at the start of `main`, with the
/// value of `RUST_LOG`.
pub fn init(format: LogFormat, rust_log: Option<&str>) -> Result<(), LoggingError> {
    use std::io::IsTerminal;
    let ansi = std::io::stderr().is_terminal();
    let sub = subscriber(format, env_filter(rust_log)?, std::io::stderr, ansi);
    tracing::subscriber::set_global_default(sub).map_err(|_| LoggingError::AlreadySet)
}

/// The span of one tick of one rollout. `revision` (the target's revision, the one being
/// rolled out or already stable) is recorded by `exec::tick` once it has observed it: recording
/// a field twice would print it twice in the human format.
pub fn tick_span(rollout: &Rollout) -> tracing::Span {
    // The field is `rollout`, not `name`: the JSON format puts the span's own name under
    // `name` in the same object.
    tracing::info_span!(
        "tick",
        namespace = %rollout.metadata.namespace.as_deref().unwrap_or("default"),
        rollout = %rollout.metadata.name.as_deref().unwrap_or(""),
        revision = tracing::field::Empty,
    )
}
