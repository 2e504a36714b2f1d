//! The metric source abstraction: instant and range queries, and what they return.
//!
//! The analyzer and the judge only see [`MetricSource`]; [`super::prometheus::PrometheusSource`]
//! is the real one, tests substitute fakes. Every failure is a typed [`SourceError`] whose text
//! names the address and what went wrong, never a credential.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// One labelled value at one instant (an element of an instant vector).
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    /// Unix seconds.
    pub at: f64,
    pub value: f64,
}

/// One labelled series of `(unix seconds, value)` points (an element of a range vector).
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub points: Vec<(f64, f64)>,
}

/// What an instant query evaluated to, by Prometheus' `resultType`.
#[derive(Clone, Debug, PartialEq)]
pub enum QueryValue {
    Vector(Vec<Sample>),
    Scalar { at: f64, value: f64 },
    Matrix(Vec<Series>),
    String { at: f64, value: String },
}

/// `[start, end]` sampled every `step`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimeRange {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub step: Duration,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SourceError {
    /// No connection could be made (after the retries).
    #[error("Prometheus at {address} unreachable after {attempts} attempt(s): {detail}")]
    Unreachable {
        address: String,
        attempts: u32,
        detail: String,
    },
    #[error("Prometheus at {address} did not answer within {after:?}")]
    Timeout { address: String, after: Duration },
    /// A non-2xx answer that is not a Prometheus error document (proxy pages, 401s, ...).
    #[error("Prometheus at {address} answered HTTP {status}{}", excerpt_suffix(.body))]
    HttpStatus {
        address: String,
        status: u16,
        body: String,
    },
    /// Prometheus' own `{"status":"error"}` answer: bad PromQL, execution errors, ...
    #[error("Prometheus at {address} rejected the query (HTTP {status}, {error_type}): {error}")]
    Query {
        address: String,
        status: u16,
        error_type: String,
        error: String,
    },
    /// The answer was not the JSON the API documents.
    #[error("Prometheus at {address} sent an unreadable answer: {detail}")]
    BadResponse { address: String, detail: String },
    /// Local configuration: invalid address, unreadable token or password file, bad header.
    #[error("Prometheus client configuration: {0}")]
    Config(String),
}

fn excerpt_suffix(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

impl SourceError {
    /// A short stable label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            SourceError::Unreachable { .. } => "unreachable",
            SourceError::Timeout { .. } => "timeout",
            SourceError::HttpStatus { .. } => "http_status",
            SourceError::Query { .. } => "query_error",
            SourceError::BadResponse { .. } => "bad_response",
            SourceError::Config(_) => "config",
        }
    }
}

#[async_trait::async_trait]
pub trait MetricSource: Send + Sync {
    /// Evaluates `promql` at instant `at` (`/api/v1/query`).
    async fn query(&self, promql: &str, at: DateTime<Utc>) -> Result<QueryValue, SourceError>;
    /// Evaluates `promql` over a range (`/api/v1/query_range`): one series per label set.
    async fn query_range(&self, promql: &str, range: TimeRange)
    -> Result<Vec<Series>, SourceError>;
}
