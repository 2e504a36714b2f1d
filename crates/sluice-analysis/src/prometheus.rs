//! [`PrometheusSource`]: the Prometheus HTTP API (`/api/v1/query`, `/api/v1/query_range`).
//!
//! - Queries are POSTed as forms (no URL length limit), with Prometheus' own `timeout`
//!   parameter and the same client-side timeout per attempt.
//! - Connection errors and 5xx answers are retried a bounded number of times with doubling
//!   backoff; timeouts and 4xx are not (a slow or wrong query does not get better by asking
//!   again, and retries would multiply the analysis time).
//! - Credentials (bearer token file, basic-auth password file, userinfo in the address) are read
//!   per request, so rotated tokens are picked up, and never appear in errors: the address is
//!   shown without userinfo, header values are never formatted.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use serde::Deserialize;
use url::Url;

use super::source::{MetricSource, QueryValue, Sample, Series, SourceError, TimeRange};
use sluice_core::spec::PrometheusProvider;

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_ATTEMPTS: u32 = 3;
pub const DEFAULT_BACKOFF: Duration = Duration::from_millis(200);
/// Largest Prometheus answer read, in bytes; a larger one is an error (the check is
/// Inconclusive, never a pass). A rollout's queries return a few series of a few samples.
pub const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;
/// Most series accepted in one answer (vector or matrix).
pub const MAX_SERIES: usize = 1000;

/// How to reach one Prometheus.
#[derive(Clone, Debug)]
pub struct PrometheusConfig {
    /// Base URL, e.g. `http://prometheus:9090` or `https://host/prometheus` (a path prefix is kept).
    pub address: String,
    /// Per attempt, client side, and sent to Prometheus as the evaluation timeout.
    pub timeout: Duration,
    /// Attempts in total (1 = no retry), for connection errors and 5xx only.
    pub max_attempts: u32,
    /// Wait before the first retry; doubles each time.
    pub backoff: Duration,
    pub bearer_token_file: Option<PathBuf>,
    /// Username and the file holding the password.
    pub basic_auth: Option<(String, PathBuf)>,
    pub headers: BTreeMap<String, String>,
}

impl PrometheusConfig {
    pub fn new(address: impl Into<String>) -> Self {
        PrometheusConfig {
            address: address.into(),
            timeout: DEFAULT_TIMEOUT,
            max_attempts: DEFAULT_ATTEMPTS,
            backoff: DEFAULT_BACKOFF,
            bearer_token_file: None,
            basic_auth: None,
            headers: BTreeMap::new(),
        }
    }

    /// From `spec.analysis.provider.prometheus`; `address_override` (e.g. `--prometheus` or the
    /// demo's own Prometheus) replaces the address but keeps auth, headers and timeout.
    pub fn from_provider(
        provider: &PrometheusProvider,
        address_override: Option<&str>,
    ) -> Result<Self, SourceError> {
        let mut cfg = PrometheusConfig::new(address_override.unwrap_or(&provider.address));
        if let Some(t) = &provider.timeout {
            cfg.timeout = sluice_core::duration::parse(t)
                .map_err(|e| SourceError::Config(format!("provider.prometheus.timeout: {e}")))?;
        }
        cfg.bearer_token_file = provider.bearer_token_file.as_ref().map(PathBuf::from);
        cfg.basic_auth = provider
            .basic_auth
            .as_ref()
            .map(|b| (b.username.clone(), PathBuf::from(&b.password_file)));
        cfg.headers = provider.headers.clone();
        Ok(cfg)
    }
}

enum Attempt {
    Retryable(SourceError),
    Final(SourceError),
}

/// Credentials resolved at request time.
enum Auth {
    None,
    Bearer(PathBuf),
    BasicFile(String, PathBuf),
    /// From the address' userinfo.
    BasicInline(String, String),
}

pub struct PrometheusSource {
    client: reqwest::Client,
    base: Url,
    /// The address without credentials: the only form that goes into errors.
    shown: String,
    timeout: Duration,
    max_attempts: u32,
    backoff: Duration,
    auth: Auth,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl std::fmt::Debug for PrometheusSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrometheusSource")
            .field("address", &self.shown)
            .finish_non_exhaustive()
    }
}

/// A client suitable for [`PrometheusSource::with_client`]: rustls, no system proxy.
pub fn default_client() -> Result<reqwest::Client, SourceError> {
    reqwest::Client::builder()
        .build()
        .map_err(|e| SourceError::Config(format!("cannot build HTTP client: {}", e.without_url())))
}

impl PrometheusSource {
    pub fn new(cfg: PrometheusConfig) -> Result<Self, SourceError> {
        Self::with_client(default_client()?, cfg)
    }

    /// Shares `client` (connection pool, TLS config) across sources.
    pub fn with_client(
        client: reqwest::Client,
        cfg: PrometheusConfig,
    ) -> Result<Self, SourceError> {
        let mut base = Url::parse(cfg.address.trim()).map_err(|e| {
            SourceError::Config(format!(
                "invalid Prometheus address {:?}: {e}",
                redact(&cfg.address)
            ))
        })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(SourceError::Config(format!(
                "Prometheus address {} must be http:// or https://",
                redact(&cfg.address)
            )));
        }
        let inline = if base.username().is_empty() {
            None
        } else {
            let user = percent_decode(base.username());
            let pass = percent_decode(base.password().unwrap_or(""));
            // Infallible for http(s) URLs; ignore rather than fail on a theoretical error.
            let _ = base.set_username("");
            let _ = base.set_password(None);
            Some((user, pass))
        };
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        base.set_query(None);
        base.set_fragment(None);
        let auth = match (&cfg.bearer_token_file, &cfg.basic_auth, inline) {
            (Some(_), Some(_), _) => {
                return Err(SourceError::Config(
                    "set either bearerTokenFile or basicAuth, not both".into(),
                ));
            }
            (Some(file), None, _) => Auth::Bearer(file.clone()),
            (None, Some((user, file)), _) => Auth::BasicFile(user.clone(), file.clone()),
            (None, None, Some((user, pass))) => Auth::BasicInline(user, pass),
            (None, None, None) => Auth::None,
        };
        let mut headers = Vec::new();
        for (name, value) in &cfg.headers {
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| SourceError::Config(format!("invalid header name {name:?}")))?;
            // The value may be a secret (e.g. an API key): name the header, not the value.
            let mut v = HeaderValue::from_str(value)
                .map_err(|_| SourceError::Config(format!("invalid value for header {name:?}")))?;
            v.set_sensitive(true);
            headers.push((n, v));
        }
        let shown = base.as_str().trim_end_matches('/').to_string();
        Ok(PrometheusSource {
            client,
            base,
            shown,
            timeout: cfg.timeout,
            max_attempts: cfg.max_attempts.max(1),
            backoff: cfg.backoff,
            auth,
            headers,
        })
    }

    /// The address as shown in messages (no credentials).
    pub fn address(&self) -> &str {
        &self.shown
    }

    fn authorization(&self) -> Result<Option<HeaderValue>, SourceError> {
        let raw = match &self.auth {
            Auth::None => return Ok(None),
            Auth::Bearer(file) => {
                let token = read_secret(file, "bearer token")?;
                format!("Bearer {token}")
            }
            Auth::BasicFile(user, file) => {
                let pass = read_secret(file, "basic auth password")?;
                basic(user, &pass)
            }
            Auth::BasicInline(user, pass) => basic(user, pass),
        };
        let mut v = HeaderValue::from_str(&raw).map_err(|_| {
            SourceError::Config("credentials contain characters not allowed in a header".into())
        })?;
        v.set_sensitive(true);
        Ok(Some(v))
    }

    /// POSTs `form` to `path` with retries; parses the answer.
    async fn call(&self, path: &str, form: &[(&str, String)]) -> Result<Data, SourceError> {
        let url = self
            .base
            .join(path)
            .map_err(|e| SourceError::Config(format!("cannot build URL for {path}: {e}")))?;
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
            .finish();
        let auth = self.authorization()?;
        let mut backoff = self.backoff;
        for attempt in 1..=self.max_attempts {
            let mut req = self
                .client
                .post(url.clone())
                .timeout(self.timeout)
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(body.clone());
            if let Some(a) = &auth {
                req = req.header(AUTHORIZATION, a.clone());
            }
            for (n, v) in &self.headers {
                req = req.header(n.clone(), v.clone());
            }
            let error = match self.attempt(req).await {
                Ok(data) => return Ok(data),
                Err(Attempt::Final(e)) => return Err(e),
                Err(Attempt::Retryable(e)) => e,
            };
            if attempt == self.max_attempts {
                return Err(match error {
                    SourceError::Unreachable {
                        address, detail, ..
                    } => SourceError::Unreachable {
                        address,
                        attempts: attempt,
                        detail,
                    },
                    other => other,
                });
            }
            tracing::debug!(address = %self.shown, attempt, "retrying after {error}");
            tokio::time::sleep(backoff).await;
            backoff = backoff.saturating_mul(2);
        }
        Err(SourceError::Config(
            "max_attempts must be at least 1".into(),
        ))
    }

    /// One request: data, or an error that a retry may fix (connection failure, 5xx) or not.
    async fn attempt(&self, req: reqwest::RequestBuilder) -> Result<Data, Attempt> {
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return Err(Attempt::Final(self.timeout_error())),
            Err(e) => {
                return Err(Attempt::Retryable(SourceError::Unreachable {
                    address: self.shown.clone(),
                    attempts: 1,
                    detail: describe(&e),
                }));
            }
        };
        let status = resp.status().as_u16();
        let too_big = || {
            Attempt::Final(SourceError::BadResponse {
                address: self.shown.clone(),
                detail: format!(
                    "the answer is larger than {MAX_ANSWER_BYTES} bytes: aggregate the query \
                     (e.g. `sum by (...)`) so it returns a few series"
                ),
            })
        };
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
        {
            return Err(too_big());
        }
        // Read chunk by chunk, so an endless or huge answer stops at the cap instead of
        // growing the process (a 30 MB answer took it from 35 to 428 MB).
        let mut resp = resp;
        let mut bytes = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if bytes.len() + chunk.len() > MAX_ANSWER_BYTES {
                        return Err(too_big());
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) if e.is_timeout() => return Err(Attempt::Final(self.timeout_error())),
                Err(e) => {
                    return Err(Attempt::Final(SourceError::BadResponse {
                        address: self.shown.clone(),
                        detail: format!("reading the body failed: {}", describe(&e)),
                    }));
                }
            }
        }
        let data = parse_response(&self.shown, status, &bytes).map_err(|e| {
            if status >= 500 {
                Attempt::Retryable(e)
            } else {
                Attempt::Final(e)
            }
        })?;
        let series = match &data {
            Data::Vector(v) => v.len(),
            Data::Matrix(m) => m.len(),
            _ => 1,
        };
        if series > MAX_SERIES {
            return Err(Attempt::Final(SourceError::BadResponse {
                address: self.shown.clone(),
                detail: format!(
                    "{series} series in the answer, more than {MAX_SERIES}: aggregate the query \
                     (e.g. `sum by (...)`)"
                ),
            }));
        }
        Ok(data)
    }

    fn timeout_error(&self) -> SourceError {
        SourceError::Timeout {
            address: self.shown.clone(),
            after: self.timeout,
        }
    }
}

#[async_trait::async_trait]
impl MetricSource for PrometheusSource {
    async fn query(&self, promql: &str, at: DateTime<Utc>) -> Result<QueryValue, SourceError> {
        let form = [
            ("query", promql.to_string()),
            ("time", unix(at)),
            ("timeout", super::names::promql_duration(self.timeout)),
        ];
        Ok(self.call("api/v1/query", &form).await?.into_value())
    }

    async fn query_range(
        &self,
        promql: &str,
        range: TimeRange,
    ) -> Result<Vec<Series>, SourceError> {
        let form = [
            ("query", promql.to_string()),
            ("start", unix(range.start)),
            ("end", unix(range.end)),
            ("step", format!("{}", range.step.as_secs_f64().max(0.001))),
            ("timeout", super::names::promql_duration(self.timeout)),
        ];
        match self.call("api/v1/query_range", &form).await?.into_value() {
            QueryValue::Matrix(series) => Ok(series),
            other => Err(SourceError::BadResponse {
                address: self.shown.clone(),
                detail: format!(
                    "range query returned {} instead of a matrix",
                    kind_name(&other)
                ),
            }),
        }
    }
}

pub(crate) fn kind_name(v: &QueryValue) -> &'static str {
    match v {
        QueryValue::Vector(_) => "a vector",
        QueryValue::Scalar { .. } => "a scalar",
        QueryValue::Matrix(_) => "a matrix",
        QueryValue::String { .. } => "a string",
    }
}

fn unix(t: DateTime<Utc>) -> String {
    format!("{:.3}", t.timestamp_millis() as f64 / 1000.0)
}

fn basic(user: &str, pass: &str) -> String {
    format!("Basic {}", base64(format!("{user}:{pass}").as_bytes()))
}

fn read_secret(file: &std::path::Path, what: &str) -> Result<String, SourceError> {
    std::fs::read_to_string(file)
        .map(|s| s.trim().to_string())
        .map_err(|e| {
            SourceError::Config(format!("cannot read {what} file {}: {e}", file.display()))
        })
}

/// The error without its URL (which may carry a query string) and with its causes.
fn describe(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut out = String::new();
    let mut cur: Option<&dyn std::error::Error> = e.source();
    if e.is_connect() {
        out.push_str("connection failed");
    } else {
        out.push_str("request failed");
    }
    let mut seen = 0;
    while let Some(c) = cur {
        let text = c.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = c.source();
        seen += 1;
        if seen > 4 {
            break;
        }
    }
    out
}

fn redact(address: &str) -> String {
    match Url::parse(address.trim()) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => match address.rfind('@') {
            Some(i) => format!("***{}", &address[i..]),
            None => address.to_string(),
        },
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Standard base64 with padding (RFC 4648), for the basic-auth header.
fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The API's JSON
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiResponse {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
pub(crate) enum Data {
    Vector(Vec<RawSample>),
    Matrix(Vec<RawSeries>),
    Scalar((f64, String)),
    String((f64, String)),
}

#[derive(Deserialize, Debug)]
pub(crate) struct RawSample {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

#[derive(Deserialize, Debug)]
pub(crate) struct RawSeries {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<(f64, String)>,
}

/// Prometheus writes sample values as strings, including `NaN`, `+Inf` and `-Inf`.
fn number(s: &str) -> f64 {
    match s {
        "NaN" => f64::NAN,
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        // An unparseable value is no data, which every verdict treats as Inconclusive.
        other => other.parse().unwrap_or(f64::NAN),
    }
}

impl Data {
    fn into_value(self) -> QueryValue {
        match self {
            Data::Vector(v) => QueryValue::Vector(
                v.into_iter()
                    .map(|s| Sample {
                        labels: s.metric,
                        at: s.value.0,
                        value: number(&s.value.1),
                    })
                    .collect(),
            ),
            Data::Matrix(m) => QueryValue::Matrix(
                m.into_iter()
                    .map(|s| Series {
                        labels: s.metric,
                        points: s.values.iter().map(|(t, v)| (*t, number(v))).collect(),
                    })
                    .collect(),
            ),
            Data::Scalar((at, v)) => QueryValue::Scalar {
                at,
                value: number(&v),
            },
            Data::String((at, value)) => QueryValue::String { at, value },
        }
    }
}

/// One HTTP answer → data or the matching error. Pure, so every shape is unit-tested.
pub(crate) fn parse_response(address: &str, status: u16, body: &[u8]) -> Result<Data, SourceError> {
    let parsed: Result<ApiResponse, _> = serde_json::from_slice(body);
    match parsed {
        Ok(r) if r.status == "error" => Err(SourceError::Query {
            address: address.to_string(),
            status,
            error_type: r.error_type.unwrap_or_else(|| "unknown".into()),
            error: r.error.unwrap_or_else(|| "(no message)".into()),
        }),
        _ if !(200..300).contains(&status) => Err(SourceError::HttpStatus {
            address: address.to_string(),
            status,
            body: excerpt(body),
        }),
        Ok(r) if r.status == "success" => r.data.ok_or_else(|| SourceError::BadResponse {
            address: address.to_string(),
            detail: "status success without data".into(),
        }),
        Ok(r) => Err(SourceError::BadResponse {
            address: address.to_string(),
            detail: format!("unknown status {:?}", r.status),
        }),
        Err(e) => Err(SourceError::BadResponse {
            address: address.to_string(),
            detail: format!("invalid JSON ({e}): {}", excerpt(body)),
        }),
    }
}

/// The first line of a body, short: enough to recognise a proxy's error page.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let mut out: String = line.chars().take(160).collect();
    if line.chars().count() > 160 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests;
