//! Running one metric of one rollout against a [`MetricSource`]: render, query, judge.
//!
//! A metric has up to three parts, each asked of the source and judged on its own:
//! 1. `minRequests`: the canary's request count over the window (builtin count query of the data
//!    plane). Below it the whole check is Inconclusive — whatever the other parts say.
//! 2. thresholds: the expression for the canary, one instant value against `min`/`max`.
//! 3. `compare`: the statistical judge, canary against stable over the same window.
//!
//! The verdict is the worst part (Fail, then Inconclusive); every rendered query and what it
//! returned is kept in [`MetricRun`] so `sluice analyze` can show how the verdict came about.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::builtin::{self, Builtin, fmt};
use super::judge::{self, Counts, Judgement};
use super::names;
use super::source::{MetricSource, TimeRange};
use super::verdict::{against_thresholds, single_value, worst};
use sluice_core::spec::{CheckResult, ComparisonKind, DataPlane, Metric, Rollout, Verdict};
use sluice_core::traffic::Destination;

/// Points per version a comparison asks for over one window.
const COMPARE_POINTS: u32 = 30;
/// At most this many points per version however long the step has run.
const MAX_COMPARE_POINTS: u32 = 300;
/// A comparison's evidence reaches back at most this far.
const MAX_EVIDENCE: Duration = Duration::from_secs(24 * 3600);

/// What a comparison judges: everything since the current step began (its traffic split), so
/// that evidence accumulates from check to check and the sequential tests can stop as soon as
/// it suffices — or one window when the step is younger than that. Returns the span and the
/// look number `k` (1 for the first window of the step, then one more per window).
pub fn evidence_span(rollout: &Rollout, window: Duration, now: DateTime<Utc>) -> (Duration, u32) {
    let since = rollout
        .status
        .as_ref()
        .and_then(|s| s.step_started_at)
        .and_then(|t| (now - t).to_std().ok())
        .unwrap_or(Duration::ZERO)
        .min(MAX_EVIDENCE);
    if since <= window {
        return (window, 1);
    }
    let looks = (since.as_secs_f64() / window.as_secs_f64()).floor() as u32;
    (since, looks.max(1))
}

#[derive(Clone, Copy, Debug)]
pub struct RunOptions {
    /// Scrape interval of the Prometheus behind the source. Range queries for the judge use
    /// Grafana's `$__rate_interval` rule, `max(step + scrape, 4 × scrape)`, as the `interval` of
    /// each point, so every point has enough samples to compute a rate.
    pub scrape_interval: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        // Prometheus' own default.
        RunOptions {
            scrape_interval: Duration::from_secs(15),
        }
    }
}

/// One query of a metric run, for display.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryRun {
    /// What it was for: "value (canary)", "request count (canary)", "series (stable)", ...
    pub purpose: String,
    pub promql: String,
    /// What came back, in words: "99.5", "no data: ...", "error: ...", "30 points".
    pub outcome: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MetricRun {
    pub check: CheckResult,
    pub queries: Vec<QueryRun>,
}

struct Ctx<'a> {
    source: &'a dyn MetricSource,
    rollout: &'a Rollout,
    plane: DataPlane,
    now: DateTime<Utc>,
    queries: Vec<QueryRun>,
}

/// The outcome of one part: verdict, reason, and the value/bounds it judged.
struct Part {
    verdict: Verdict,
    reason: String,
    value: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
    /// Inconclusive for want of evidence: how many more canary requests would do.
    more_requests: Option<u64>,
}

impl Part {
    fn inconclusive(reason: impl Into<String>) -> Self {
        Part {
            verdict: Verdict::Inconclusive,
            reason: reason.into(),
            value: None,
            min: None,
            max: None,
            more_requests: None,
        }
    }
}

impl Ctx<'_> {
    fn render(
        &self,
        template: &str,
        target: Destination,
        window: Duration,
    ) -> Result<String, String> {
        let vars = names::variables(self.rollout, self.plane, target, window);
        sluice_core::template::render(template, &vars)
    }

    /// Instant query → one finite value or the reason there is none; recorded for display.
    async fn value(
        &mut self,
        purpose: &str,
        template: &str,
        target: Destination,
        window: Duration,
    ) -> Result<f64, String> {
        let promql = self
            .render(template, target, window)
            .map_err(|e| format!("query template: {e}"))?;
        let result = match self.source.query(&promql, self.now).await {
            Ok(v) => single_value(&v),
            Err(e) => Err(format!("query failed: {e}")),
        };
        self.queries.push(QueryRun {
            purpose: purpose.to_string(),
            promql,
            outcome: match &result {
                Ok(v) => fmt(*v),
                Err(e) => e.clone(),
            },
        });
        result
    }

    /// Range query of one version → the points of its single series.
    async fn series(
        &mut self,
        template: &str,
        target: Destination,
        window: Duration,
        scrape: Duration,
        points: u32,
    ) -> Result<Vec<f64>, String> {
        let step = (window / points.max(1))
            .max(scrape)
            .max(Duration::from_secs(1));
        let rate_window = (step + scrape).max(scrape * 4);
        let promql = self
            .render(template, target, rate_window)
            .map_err(|e| format!("query template: {e}"))?;
        let range = TimeRange {
            start: self.now
                - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::zero()),
            end: self.now,
            step,
        };
        let who = match target {
            Destination::Stable => "stable",
            Destination::Canary => "canary",
        };
        let result = match self.source.query_range(&promql, range).await {
            Ok(series) => match series.as_slice() {
                [] => Err(format!(
                    "no data for the {who}: the range query returned no series"
                )),
                [one] => Ok(one.points.iter().map(|(_, v)| *v).collect::<Vec<f64>>()),
                many => Err(format!(
                    "{} series for the {who} where one is expected; aggregate them, e.g. with sum()",
                    many.len()
                )),
            },
            Err(e) => Err(format!("query failed: {e}")),
        };
        self.queries.push(QueryRun {
            purpose: format!("series ({who}, step {})", names::promql_duration(step)),
            promql,
            outcome: match &result {
                Ok(points) => format!(
                    "{} points ({} finite)",
                    points.len(),
                    points.iter().filter(|v| v.is_finite()).count()
                ),
                Err(e) => e.clone(),
            },
        });
        result
    }
}

fn window_of(rollout: &Rollout, metric: &Metric) -> Result<Duration, String> {
    let (field, text) = match &metric.interval {
        Some(i) => ("interval", i.as_str()),
        None => ("analysis.interval", rollout.spec.analysis.interval.as_str()),
    };
    let d = sluice_core::duration::parse(text).map_err(|e| format!("{field}: {e}"))?;
    if d < Duration::from_secs(1) {
        return Err(format!(
            "{field}: a query window below 1s cannot hold a rate"
        ));
    }
    Ok(d)
}

/// Runs `metric` of `rollout` once at `now`.
pub async fn run_metric(
    source: &dyn MetricSource,
    rollout: &Rollout,
    metric: &Metric,
    now: DateTime<Utc>,
    opts: RunOptions,
) -> MetricRun {
    let mut ctx = Ctx {
        source,
        rollout,
        plane: names::data_plane(rollout),
        now,
        queries: Vec::new(),
    };
    let check = |part: Part| CheckResult {
        metric: metric.name.clone(),
        verdict: part.verdict,
        value: part.value,
        min: part.min,
        max: part.max,
        reason: part.reason,
        at: now,
        more_requests: part.more_requests,
    };
    let window = match window_of(rollout, metric) {
        Ok(w) => w,
        Err(e) => {
            return MetricRun {
                check: check(Part::inconclusive(e)),
                queries: ctx.queries,
            };
        }
    };
    let (template, builtin) = match (&metric.builtin, &metric.query) {
        (Some(b), None) => (
            builtin::template(ctx.plane, (*b).into()),
            Some(Builtin::from(*b)),
        ),
        (None, Some(q)) => (q.clone(), None),
        _ => {
            return MetricRun {
                check: check(Part::inconclusive(
                    "set exactly one of `builtin` and `query`",
                )),
                queries: ctx.queries,
            };
        }
    };
    let describe = |v: f64| match builtin {
        Some(b) => builtin::describe(b, v),
        None => format!("value {}", fmt(v)),
    };

    let mut parts = Vec::new();
    let mut traffic_ok = true;
    if let Some(min_requests) = metric.min_requests {
        let count_template = builtin::template(ctx.plane, Builtin::RequestCount);
        let span = names::promql_duration(window);
        match ctx
            .value(
                "request count (canary)",
                &count_template,
                Destination::Canary,
                window,
            )
            .await
        {
            Ok(n) if n >= min_requests => {}
            Ok(n) => {
                traffic_ok = false;
                parts.push(Part {
                    more_requests: Some((min_requests - n).max(1.0).ceil() as u64),
                    ..Part::inconclusive(format!(
                        "too little traffic: {} requests to the canary in {span}, below minRequests {}",
                        fmt(n),
                        fmt(min_requests)
                    ))
                });
            }
            Err(e) => {
                traffic_ok = false;
                parts.push(Part::inconclusive(format!("request count unknown ({e})")));
            }
        }
    }

    let has_thresholds = metric.thresholds.min.is_some() || metric.thresholds.max.is_some();
    if has_thresholds || metric.compare.is_none() {
        let part = match ctx
            .value("value (canary)", &template, Destination::Canary, window)
            .await
        {
            Ok(v) => {
                let (verdict, reason) = against_thresholds(v, &metric.thresholds, &describe(v));
                Part {
                    verdict,
                    reason,
                    value: Some(v),
                    min: metric.thresholds.min,
                    max: metric.thresholds.max,
                    more_requests: None,
                }
            }
            Err(e) => Part::inconclusive(e),
        };
        parts.push(part);
    }

    if let Some(cmp) = &metric.compare {
        let (span, look) = evidence_span(rollout, window, now);
        let j: Judgement = match cmp.kind {
            ComparisonKind::Latency => {
                let scrape = opts.scrape_interval;
                let points = (COMPARE_POINTS.saturating_mul(look)).min(MAX_COMPARE_POINTS);
                let canary = ctx
                    .series(&template, Destination::Canary, span, scrape, points)
                    .await;
                let stable = ctx
                    .series(&template, Destination::Stable, span, scrape, points)
                    .await;
                match (canary, stable) {
                    (Ok(c), Ok(s)) => judge::latency::judge_latency_at_look(&c, &s, cmp, look),
                    (Err(e), _) | (_, Err(e)) => Judgement::inconclusive(e),
                }
            }
            ComparisonKind::ErrorRate => {
                let errors = builtin::template(ctx.plane, Builtin::ErrorCount);
                let total = builtin::template(ctx.plane, Builtin::RequestCount);
                let mut counts = Vec::new();
                for (dest, who) in [
                    (Destination::Canary, "canary"),
                    (Destination::Stable, "stable"),
                ] {
                    let e = ctx
                        .value(&format!("5xx count ({who})"), &errors, dest, span)
                        .await;
                    let n = ctx
                        .value(&format!("request count ({who})"), &total, dest, span)
                        .await;
                    counts.push(match (e, n) {
                        // increase() extrapolates to fractions; counts are whole requests.
                        (Ok(e), Ok(n)) => Ok(Counts {
                            errors: e.max(0.0).round() as u64,
                            requests: n.max(0.0).round() as u64,
                        }),
                        (Err(e), _) | (_, Err(e)) => Err(format!("{who}: {e}")),
                    });
                }
                match (&counts[0], &counts[1]) {
                    (Ok(c), Ok(s)) => judge::judge_error_rate(*c, *s, cmp, look),
                    (Err(e), _) | (_, Err(e)) => Judgement::inconclusive(e.clone()),
                }
            }
        };
        let label = match cmp.kind {
            ComparisonKind::Latency => "compared with stable",
            ComparisonKind::ErrorRate => "error rate compared with stable",
        };
        parts.push(Part {
            verdict: j.verdict,
            reason: format!("{label}: {}", j.reason),
            value: j.value,
            min: None,
            max: j.max,
            more_requests: j.more_requests,
        });
    }

    let mut verdict = worst(parts.iter().map(|p| p.verdict));
    if !traffic_ok {
        // Too little traffic: never Pass, and not Fail either (Flagger's NaN-at-low-traffic trap).
        verdict = Verdict::Inconclusive;
    }
    // Value/bounds: the threshold part if any, else the judge's.
    let shown = parts
        .iter()
        .find(|p| p.value.is_some() && (p.min.is_some() || p.max.is_some()))
        .or_else(|| parts.iter().find(|p| p.value.is_some()));
    let mut reason = parts
        .iter()
        .map(|p| p.reason.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    if metric.mode == sluice_core::spec::MetricMode::Shadow {
        // Recorded, charted and notified like any check; the engine does not act on it.
        reason = format!("shadow, never acts: {reason}");
    }
    // Gathering evidence only when every undecided part is waiting for requests; then the
    // largest estimate is what the check still needs.
    let undecided = || parts.iter().filter(|p| p.verdict == Verdict::Inconclusive);
    let more_requests = (verdict == Verdict::Inconclusive
        && undecided().all(|p| p.more_requests.is_some()))
    .then(|| undecided().filter_map(|p| p.more_requests).max())
    .flatten();
    let combined = Part {
        verdict,
        reason,
        value: shown.and_then(|p| p.value),
        min: shown.and_then(|p| p.min),
        max: shown.and_then(|p| p.max),
        more_requests,
    };
    MetricRun {
        check: check(combined),
        queries: ctx.queries,
    }
}

/// Runs every metric of the rollout, concurrently.
pub async fn run_all(
    source: &dyn MetricSource,
    rollout: &Rollout,
    now: DateTime<Utc>,
    opts: RunOptions,
) -> Vec<MetricRun> {
    let runs = rollout
        .spec
        .analysis
        .metrics
        .iter()
        .map(|m| run_metric(source, rollout, m, now, opts));
    futures::future::join_all(runs).await
}

/// Every metric Inconclusive with the same reason (e.g. no Prometheus configured).
pub fn all_inconclusive(rollout: &Rollout, now: DateTime<Utc>, reason: &str) -> Vec<MetricRun> {
    rollout
        .spec
        .analysis
        .metrics
        .iter()
        .map(|m| MetricRun {
            check: CheckResult {
                metric: m.name.clone(),
                verdict: Verdict::Inconclusive,
                value: None,
                min: m.thresholds.min,
                max: m.thresholds.max,
                reason: reason.to_string(),
                at: now,
                more_requests: None,
            },
            queries: Vec::new(),
        })
        .collect()
}

#[cfg(test)]
mod tests;
