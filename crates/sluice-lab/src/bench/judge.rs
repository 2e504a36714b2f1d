//! `sluice bench judge`: how the error-rate judges behave, by simulation.
//!
//! Two versions serve requests; every `look` requests per version, each judge looks at what it
//! has seen so far, up to `max_requests` per version. Two scenarios, `runs` each:
//! - healthy (A/A): both versions at the base error rate. A Fail is a false Fail.
//! - degraded (A/B): the canary at the bad rate. Anything but a Fail within `max_requests` (a
//!   Pass, or still undecided) is a false Pass: the degradation was not caught.
//!
//! Judges, sluice's first:
//! - sluice's error-rate judge ([`sluice_analysis::judge::error_rate`]: Wald's SPRT on the
//!   conditional binomial, plus the confidence-sequence floor), every look;
//! - the mixture-SPRT confidence sequence alone (sluice's previous judge), every look;
//! - the fixed-horizon two-proportion z-test, one look at the fixed-horizon sample size for the
//!   same hypotheses and error rates;
//! - the same z-test, and Kayenta's Mann-Whitney on per-interval error rates, checked at every
//!   look (Fail at the first significant look, Pass at `max_requests` otherwise): what a rollout
//!   that re-runs a fixed-horizon test every interval does.

use std::io::Write;

use rand::{Rng, SeedableRng};

use sluice_analysis::judge::error_rate::error_rate_verdict;
use sluice_analysis::judge::latency::{MIN_SAMPLES, fails};
use sluice_analysis::judge::proportions::{fixed_horizon_size, z_test_margin};
use sluice_analysis::judge::sequential::{Counts, TOLERANCE, msprt};
use sluice_core::spec::{Comparison, ComparisonKind, Detect, Direction, Verdict};

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Setup(String),
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

/// What `sluice bench judge` is asked for.
#[derive(Clone, Debug)]
pub struct BenchArgs {
    pub runs: usize,
    pub seed: u64,
    pub margin: f64,
    pub confidence: f64,
    pub power: f64,
    pub detect: String,
    pub json: bool,
}

/// `sluice bench judge`: runs the simulation and prints the markdown table (or JSON).
pub fn bench_judge(args: &BenchArgs, out: &mut dyn Write) -> Result<(), BenchError> {
    let cfg = BenchConfig {
        runs: args.runs,
        seed: args.seed,
        margin: args.margin,
        confidence: args.confidence,
        power: args.power,
        detect: args.detect.clone(),
        ..Default::default()
    };
    cfg.check().map_err(BenchError::Setup)?;
    let report = run(&cfg);
    if args.json {
        writeln!(out, "{}", report.json())?;
    } else {
        write!(out, "{report}")?;
    }
    Ok(())
}

#[derive(Clone, Debug)]
pub struct BenchConfig {
    pub runs: usize,
    pub seed: u64,
    /// Requests per version between two looks (one analysis interval).
    pub look: u64,
    /// Requests per version after which a run stops.
    pub max_requests: u64,
    pub base_rate: f64,
    pub bad_rate: f64,
    pub margin: f64,
    /// `1 − confidence`: the declared false-Fail rate.
    pub confidence: f64,
    /// `1 − power`: the declared false-Pass rate at `detect`.
    pub power: f64,
    pub detect: String,
    /// Whether to simulate the other judges too (sluice's alone is much faster).
    pub others: bool,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            runs: 1000,
            seed: 42,
            look: 250,
            max_requests: 40_000,
            base_rate: 0.01,
            bad_rate: 0.02,
            margin: 0.1,
            confidence: 0.99,
            power: 0.95,
            detect: "2x".to_string(),
            others: true,
        }
    }
}

impl BenchConfig {
    fn comparison(&self) -> Comparison {
        Comparison {
            kind: ComparisonKind::ErrorRate,
            worse: Direction::Higher,
            margin: self.margin,
            confidence: self.confidence,
            detect: Some(self.detect.clone()),
            power: Some(self.power),
        }
    }

    /// The settings a Rollout would be refused for are refused here too.
    fn check(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.margin) {
            return Err(format!("--margin {} is outside 0..1", self.margin));
        }
        for (flag, v) in [("--confidence", self.confidence), ("--power", self.power)] {
            if !(0.5..1.0).contains(&v) {
                return Err(format!("{flag} {v} must be at least 0.5 and below 1"));
            }
        }
        match Detect::parse(&self.detect).map_err(|e| format!("--detect: {e}"))? {
            Detect::Ratio(r) if r <= 1.0 + self.margin => Err(format!(
                "--detect {} is within the margin ({}x)",
                self.detect,
                1.0 + self.margin
            )),
            _ => Ok(()),
        }
    }

    /// H1's ratio for the fixed-horizon size (a `+pp` detect is relative to the base rate).
    fn r1(&self) -> f64 {
        match Detect::parse(&self.detect) {
            Ok(Detect::Ratio(r)) => r,
            Ok(Detect::Points(d)) => 1.0 + d / self.base_rate,
            Err(_) => f64::NAN,
        }
    }

    /// Requests per version of the fixed-horizon test with the same hypotheses and error rates.
    pub fn fixed_horizon(&self) -> Option<u64> {
        fixed_horizon_size(
            self.base_rate,
            1.0 + self.margin,
            self.r1(),
            1.0 - self.confidence,
            1.0 - self.power,
        )
    }
}

/// How one run ended for one judge: the requests per version at the decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Fail(u64),
    Pass(u64),
    Undecided,
}

impl End {
    fn at(self) -> Option<u64> {
        match self {
            End::Fail(n) | End::Pass(n) => Some(n),
            End::Undecided => None,
        }
    }
}

/// One judge's figures.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct JudgeFigures {
    pub judge: String,
    /// Healthy runs that ended in Fail.
    pub false_fail: f64,
    /// Degraded runs that did not end in Fail within the maximum (passed or still undecided).
    pub false_pass: f64,
    pub healthy_pass_within_40k: f64,
    /// Requests per version to a decision (Pass or Fail); `None`: more than the maximum.
    pub median_requests_healthy: Option<u64>,
    pub median_requests_degraded: Option<u64>,
    pub p95_requests_healthy: Option<u64>,
    pub p95_requests_degraded: Option<u64>,
}

#[derive(Clone, Debug)]
pub struct BenchReport {
    pub config: BenchConfig,
    pub fixed_horizon_requests: Option<u64>,
    pub judges: Vec<JudgeFigures>,
}

/// Binomial(n, p) by inversion: walks the CDF from 0, about n·p steps. Chunks keep `q^n` away
/// from underflow.
fn binomial(rng: &mut impl Rng, n: u64, p: f64) -> u64 {
    if p <= 0.0 {
        return 0;
    }
    if p >= 1.0 {
        return n;
    }
    let mut total = 0;
    let mut left = n;
    while left > 0 {
        let m = left.min(500);
        left -= m;
        let q = 1.0 - p;
        let s = p / q;
        let a = (m + 1) as f64 * s;
        let mut r = q.powi(m as i32);
        let mut u: f64 = rng.random();
        let mut x = 0;
        while u > r && x < m {
            u -= r;
            x += 1;
            r *= a / x as f64 - s;
        }
        total += x;
    }
    total
}

/// Per-look error counts of one version over a whole run.
fn simulate(rng: &mut impl Rng, cfg: &BenchConfig, rate: f64) -> Vec<u64> {
    let looks = cfg.max_requests / cfg.look;
    (0..looks).map(|_| binomial(rng, cfg.look, rate)).collect()
}

/// Cumulative counts at look `k` (1-based).
fn counts(cfg: &BenchConfig, per_look: &[u64], k: usize) -> Counts {
    Counts {
        errors: per_look[..k].iter().sum(),
        requests: k as u64 * cfg.look,
    }
}

/// A judge that looks at every interval and may stop with either answer.
fn sequential(
    cfg: &BenchConfig,
    canary: &[u64],
    stable: &[u64],
    verdict: impl Fn(Counts, Counts, u32) -> Verdict,
) -> End {
    let (mut c, mut s) = (Counts::default(), Counts::default());
    for (i, (ce, se)) in canary.iter().zip(stable).enumerate() {
        c.errors += ce;
        s.errors += se;
        c.requests += cfg.look;
        s.requests += cfg.look;
        match verdict(c, s, i as u32 + 1) {
            Verdict::Fail => return End::Fail((i as u64 + 1) * cfg.look),
            Verdict::Pass => return End::Pass((i as u64 + 1) * cfg.look),
            _ => {}
        }
    }
    End::Undecided
}

/// A fixed-horizon test re-run at every look: Fail at the first significant look, Pass at the
/// maximum otherwise.
fn peeking(
    cfg: &BenchConfig,
    canary: &[u64],
    min_looks: usize,
    fails: impl Fn(usize) -> bool,
) -> End {
    match (min_looks..=canary.len()).find(|&k| fails(k)) {
        Some(k) => End::Fail(k as u64 * cfg.look),
        None => End::Pass(canary.len() as u64 * cfg.look),
    }
}

fn z_fails(cfg: &BenchConfig, canary: &[u64], stable: &[u64], k: usize) -> bool {
    let (c, s) = (counts(cfg, canary, k), counts(cfg, stable, k));
    z_test_margin(c.errors, c.requests, s.errors, s.requests, cfg.margin, 0.0).p_value
        < 1.0 - cfg.confidence
}

fn mw_fails(cfg: &BenchConfig, canary: &[u64], stable: &[u64], k: usize) -> bool {
    let rates =
        |v: &[u64]| -> Vec<f64> { v[..k].iter().map(|c| *c as f64 / cfg.look as f64).collect() };
    let cmp = Comparison {
        kind: ComparisonKind::Latency,
        ..cfg.comparison()
    };
    fails(&rates(canary), &rates(stable), &cmp)
}

/// The `q` quantile (lower) of the requests to a decision; undecided runs count as "more than
/// the maximum" (`None` when the quantile falls among them).
fn quantile_of(ends: &[End], q: f64) -> Option<u64> {
    let mut v: Vec<Option<u64>> = ends.iter().map(|e| e.at()).collect();
    v.sort_by_key(|x| x.unwrap_or(u64::MAX));
    let i = ((v.len() as f64 * q).ceil() as usize).saturating_sub(1);
    v.get(i).copied().flatten()
}

fn share(ends: &[End], pred: impl Fn(&End) -> bool) -> f64 {
    ends.iter().filter(|e| pred(e)).count() as f64 / ends.len().max(1) as f64
}

fn figures(judge: String, healthy: &[End], degraded: &[End]) -> JudgeFigures {
    JudgeFigures {
        judge,
        false_fail: share(healthy, |e| matches!(e, End::Fail(_))),
        false_pass: share(degraded, |e| !matches!(e, End::Fail(_))),
        healthy_pass_within_40k: share(healthy, |e| matches!(e, End::Pass(n) if *n <= 40_000)),
        median_requests_healthy: quantile_of(healthy, 0.5),
        median_requests_degraded: quantile_of(degraded, 0.5),
        p95_requests_healthy: quantile_of(healthy, 0.95),
        p95_requests_degraded: quantile_of(degraded, 0.95),
    }
}

/// Runs the simulation. Deterministic for a given config (seeded). `cfg` must pass `check`.
pub fn run(cfg: &BenchConfig) -> BenchReport {
    let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed);
    let cmp = cfg.comparison();
    let max_looks = (cfg.max_requests / cfg.look) as usize;
    let fixed = cfg.fixed_horizon();
    // The fixed horizon in whole looks (within the simulated maximum).
    let fixed_looks = fixed.map(|n| (n.div_ceil(cfg.look) as usize).clamp(1, max_looks));
    const JUDGES: usize = 5;
    let mut healthy: Vec<Vec<End>> = vec![Vec::new(); JUDGES];
    let mut degraded: Vec<Vec<End>> = vec![Vec::new(); JUDGES];
    for _ in 0..cfg.runs {
        let a1 = simulate(&mut rng, cfg, cfg.base_rate);
        let a2 = simulate(&mut rng, cfg, cfg.base_rate);
        let bad = simulate(&mut rng, cfg, cfg.bad_rate);
        let good = simulate(&mut rng, cfg, cfg.base_rate);
        for (canary, stable, into) in [(&a1, &a2, &mut healthy), (&bad, &good, &mut degraded)] {
            let sluice = sequential(cfg, canary, stable, |c, s, k| {
                error_rate_verdict(c, s, &cmp, k)
            });
            if !cfg.others {
                into[0].push(sluice);
                continue;
            }
            let ends = [
                sluice,
                sequential(cfg, canary, stable, |c, s, _| {
                    match msprt(c, s, cfg.margin, TOLERANCE, cfg.confidence) {
                        Some(t) if t.lower > 0.0 => Verdict::Fail,
                        Some(t) if t.upper < 0.0 => Verdict::Pass,
                        _ => Verdict::Inconclusive,
                    }
                }),
                match fixed_looks {
                    Some(k) if z_fails(cfg, canary, stable, k) => End::Fail(k as u64 * cfg.look),
                    Some(k) => End::Pass(k as u64 * cfg.look),
                    None => End::Undecided,
                },
                peeking(cfg, canary, 1, |k| z_fails(cfg, canary, stable, k)),
                peeking(cfg, canary, MIN_SAMPLES, |k| {
                    mw_fails(cfg, canary, stable, k)
                }),
            ];
            for (j, e) in ends.into_iter().enumerate() {
                into[j].push(e);
            }
        }
    }
    let names = [
        "sluice (Wald SPRT, conditional binomial)".to_string(),
        "mixture SPRT alone (sluice before)".to_string(),
        match fixed {
            Some(n) => format!("two-proportion z-test, fixed horizon {n}"),
            None => "two-proportion z-test, fixed horizon".to_string(),
        },
        "two-proportion z-test, checked every interval".to_string(),
        "Mann-Whitney on interval error rates (Kayenta), checked every interval".to_string(),
    ];
    let judges = names
        .into_iter()
        .zip(healthy.iter().zip(&degraded))
        .filter(|(_, (h, _))| !h.is_empty() || cfg.runs == 0)
        .map(|(name, (h, d))| figures(name, h, d))
        .collect();
    BenchReport {
        config: cfg.clone(),
        fixed_horizon_requests: fixed,
        judges,
    }
}

/// The goals, each with whether sluice's judge (the first) meets it.
pub fn goals(report: &BenchReport) -> Vec<(String, bool)> {
    let Some(j) = report.judges.first() else {
        return Vec::new();
    };
    let half = report.fixed_horizon_requests.map(|n| n / 2);
    let within_half = |m: Option<u64>| matches!((m, half), (Some(m), Some(h)) if m <= h);
    let pct = |x: f64| format!("{:.1}%", x * 100.0);
    let n = |x: Option<u64>| x.map_or("none".to_string(), |n| n.to_string());
    vec![
        (
            format!("false Fail ≤ 1% ({})", pct(j.false_fail)),
            j.false_fail <= 0.01,
        ),
        (
            format!("false Pass ≤ 5% ({})", pct(j.false_pass)),
            j.false_pass <= 0.05,
        ),
        (
            format!(
                "≥ 95% of healthy canaries pass within 40000 requests ({})",
                pct(j.healthy_pass_within_40k)
            ),
            j.healthy_pass_within_40k >= 0.95,
        ),
        (
            format!(
                "median requests ≤ ½ fixed horizon ({}): healthy {}",
                n(half),
                n(j.median_requests_healthy)
            ),
            within_half(j.median_requests_healthy),
        ),
        (
            format!(
                "median requests ≤ ½ fixed horizon ({}): degraded {}",
                n(half),
                n(j.median_requests_degraded)
            ),
            within_half(j.median_requests_degraded),
        ),
    ]
}

impl BenchReport {
    /// `{"fixed_horizon_requests": N, "judges": [...]}`.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "fixed_horizon_requests": self.fixed_horizon_requests,
            "judges": self.judges,
        })
    }
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.config;
        let pct = |x: f64| format!("{:.1}%", x * 100.0);
        writeln!(
            f,
            "Error-rate judges, {} simulated runs per scenario (seed {}): healthy = both versions at \
             {}, degraded = canary at {}; a look every {} requests per version, at most {}. \
             margin {}, detect {}, confidence {} (false Fail ≤ {}), power {} (false Pass ≤ {}). \
             Fixed-horizon two-proportion test for the same hypotheses and error rates: {} \
             requests per version.",
            c.runs,
            c.seed,
            pct(c.base_rate),
            pct(c.bad_rate),
            c.look,
            c.max_requests,
            c.margin,
            c.detect,
            c.confidence,
            pct(1.0 - c.confidence),
            c.power,
            pct(1.0 - c.power),
            self.fixed_horizon_requests
                .map_or("undefined".to_string(), |n| n.to_string()),
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "| judge | false Fail (healthy) | false Pass (degraded) | healthy pass within 40000 | \
             requests to decision, healthy: median / p95 | degraded: median / p95 |"
        )?;
        writeln!(f, "|---|---|---|---|---|---|")?;
        let n =
            |x: Option<u64>| x.map_or_else(|| format!("> {}", c.max_requests), |n| n.to_string());
        for j in &self.judges {
            writeln!(
                f,
                "| {} | {} | {} | {} | {} / {} | {} / {} |",
                j.judge,
                pct(j.false_fail),
                pct(j.false_pass),
                pct(j.healthy_pass_within_40k),
                n(j.median_requests_healthy),
                n(j.p95_requests_healthy),
                n(j.median_requests_degraded),
                n(j.p95_requests_degraded),
            )?;
        }
        writeln!(f)?;
        writeln!(f, "Goals for sluice's judge:")?;
        for (goal, met) in goals(self) {
            writeln!(f, "- {} {goal}", if met { "met:" } else { "NOT met:" })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binomial_has_the_right_mean() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let n = 4000;
        let total: u64 = (0..n).map(|_| binomial(&mut rng, 500, 0.02)).sum();
        let mean = total as f64 / n as f64;
        // Mean 10, sd of the mean ≈ 0.05.
        assert!((mean - 10.0).abs() < 0.25, "{mean}");
        assert_eq!(binomial(&mut rng, 10, 0.0), 0);
        assert_eq!(binomial(&mut rng, 10, 1.0), 10);
        assert!(binomial(&mut rng, 5000, 0.5) <= 5000);
    }

    #[test]
    fn bad_settings_are_refused() {
        let args = |f: &dyn Fn(&mut BenchArgs)| {
            let mut a = BenchArgs {
                runs: 1,
                seed: 1,
                margin: 0.1,
                confidence: 0.99,
                power: 0.95,
                detect: "2x".to_string(),
                json: true,
            };
            f(&mut a);
            let mut out = Vec::new();
            bench_judge(&a, &mut out).err().map(|e| e.to_string())
        };
        assert_eq!(args(&|_| {}), None);
        assert!(args(&|a| a.margin = -1.0).is_some_and(|e| e.contains("--margin")));
        assert!(args(&|a| a.power = 1.0).is_some_and(|e| e.contains("--power")));
        assert!(
            args(&|a| a.detect = "1.05x".into()).is_some_and(|e| e.contains("within the margin"))
        );
        assert!(args(&|a| a.detect = "lots".into()).is_some_and(|e| e.contains("--detect")));
    }

    #[test]
    fn json_has_exactly_the_promised_keys() {
        let report = run(&BenchConfig {
            runs: 20,
            ..BenchConfig::default()
        });
        let v = report.json();
        let top: Vec<&String> = v.as_object().expect("object").keys().collect();
        assert_eq!(top, ["fixed_horizon_requests", "judges"]);
        let judges = v["judges"].as_array().expect("judges");
        assert_eq!(judges.len(), 5);
        assert!(
            judges[0]["judge"]
                .as_str()
                .is_some_and(|j| j.starts_with("sluice"))
        );
        let mut keys: Vec<&String> = judges[0].as_object().expect("judge").keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "false_fail",
                "false_pass",
                "healthy_pass_within_40k",
                "judge",
                "median_requests_degraded",
                "median_requests_healthy",
                "p95_requests_degraded",
                "p95_requests_healthy"
            ]
        );
    }

    /// The README's figures (seed 42, 1000 runs, the defaults), as a regression test: the
    /// tolerances allow for a changed random stream, not for a changed judge.
    #[test]
    fn seeded_figures_hold() {
        let r = run(&BenchConfig::default());
        assert_eq!(r.fixed_horizon_requests, Some(6149));
        let s = &r.judges[0];
        let near =
            |got: Option<u64>, want: u64, tol: u64| got.is_some_and(|g| g.abs_diff(want) <= tol);
        assert!(s.false_fail <= 0.006, "{s:?}");
        assert!((s.false_pass - 0.02).abs() <= 0.015, "{s:?}");
        assert!(s.healthy_pass_within_40k >= 0.99, "{s:?}");
        assert!(near(s.median_requests_healthy, 2500, 250), "{s:?}");
        assert!(near(s.median_requests_degraded, 3000, 250), "{s:?}");
        assert!(near(s.p95_requests_healthy, 7250, 1000), "{s:?}");
        assert!(near(s.p95_requests_degraded, 7500, 1000), "{s:?}");
        // Every goal is met (README).
        let met: Vec<bool> = goals(&r).into_iter().map(|(_, m)| m).collect();
        assert_eq!(met, [true; 5]);
        // The comparisons the README draws: the previous judge rarely passes a healthy canary;
        // the fixed horizon keeps its declared rates; re-testing it every interval does not.
        assert!(
            r.judges[1].healthy_pass_within_40k < 0.3,
            "{:?}",
            r.judges[1]
        );
        let fixed = &r.judges[2];
        assert!(
            fixed.false_fail <= 0.015 && (fixed.false_pass - 0.05).abs() <= 0.02,
            "{fixed:?}"
        );
        assert!(r.judges[3].false_fail > 0.02, "{:?}", r.judges[3]);
    }

    /// The declared false-Fail rate (1 − confidence = 1%) holds where it is declared: at a
    /// canary exactly at the margin (1.1% against 1%), with the overshoot correction on.
    #[test]
    fn false_fail_rate_holds_at_the_margin() {
        let r = run(&BenchConfig {
            bad_rate: 0.011,
            seed: 7,
            others: false,
            ..BenchConfig::default()
        });
        let failed_at_margin = 1.0 - r.judges[0].false_pass;
        assert!(failed_at_margin <= 0.015, "{:?}", r.judges[0]);
    }
}
