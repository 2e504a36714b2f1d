//! `sluice bench judge`: how the error-rate judges behave, by simulation.
//!
//! Two versions serve requests; every `look` requests per version, each judge looks at what it
//! has seen so far. On A/A traffic (both at the base error rate) a Fail is a false positive; on
//! A/B traffic (base → bad) a Fail is a detection, and the requests seen so far are what it
//! cost. Judges:
//!
//! - the sequential mixture SPRT of [`sluice_analysis::judge::error_rate`], looking at every interval;
//! - a Kayenta-style Mann-Whitney judge on per-interval error rates ([`sluice_analysis::judge::latency`]),
//!   at a fixed horizon (one look at N requests) and looked at every interval;
//! - the fixed-horizon two-proportion z-test, likewise.
//!
//! "Requests to detect" for a fixed-horizon judge is the smallest horizon on the grid at which
//! it detects in at least half of the runs (its median sample size); for judges that look every
//! interval, the median over runs of the requests seen at the first Fail.

use std::io::Write;

use rand::{Rng, SeedableRng};

use sluice_analysis::judge::latency::{MIN_SAMPLES, fails};
use sluice_analysis::judge::proportions::z_test_margin;
use sluice_analysis::judge::sequential::{Counts, TOLERANCE, msprt};
use sluice_core::spec::{Comparison, ComparisonKind, Direction};

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Setup(String),
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

/// `sluice bench judge`: runs the simulation and prints the markdown table.
pub fn bench_judge(
    runs: usize,
    seed: u64,
    margin: f64,
    out: &mut dyn Write,
) -> Result<(), BenchError> {
    if !(margin >= 0.0 && margin.is_finite()) {
        return Err(BenchError::Setup(format!(
            "--margin must be a non-negative number, not {margin}"
        )));
    }
    let cfg = BenchConfig {
        runs,
        seed,
        margin,
        ..Default::default()
    };
    write!(out, "{}", run(&cfg))?;
    Ok(())
}

#[derive(Clone, Debug)]
pub struct BenchConfig {
    pub runs: usize,
    pub seed: u64,
    /// Requests per version between two looks (one analysis interval).
    pub look: u64,
    /// Requests per version after which a run stops undecided.
    pub max_requests: u64,
    pub base_rate: f64,
    pub bad_rate: f64,
    pub margin: f64,
    pub confidence: f64,
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
            confidence: 0.95,
        }
    }
}

/// One row of the table.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub judge: &'static str,
    pub looks: String,
    /// Fraction of A/A runs that ended in Fail.
    pub false_fail: f64,
    /// Fraction of A/B runs that ended in Fail.
    pub detected: f64,
    /// Requests per version needed to detect in half the runs (see module docs); `None`: not
    /// within the maximum.
    pub requests_to_detect: Option<u64>,
    /// The same for 95% of the runs.
    pub requests_to_detect_95: Option<u64>,
    /// Fixed-horizon rows: the horizon whose false-Fail rate is shown.
    pub horizon: Option<u64>,
}

#[derive(Clone, Debug)]
pub struct BenchReport {
    pub config: BenchConfig,
    pub rows: Vec<Row>,
    /// Median requests per version at which the sequential test *passed* A/A traffic.
    pub sequential_pass_median: Option<u64>,
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

/// Per-interval error counts of one version over a whole run.
fn simulate(rng: &mut impl Rng, cfg: &BenchConfig, rate: f64) -> Vec<u64> {
    let looks = cfg.max_requests / cfg.look;
    (0..looks).map(|_| binomial(rng, cfg.look, rate)).collect()
}

struct Outcome {
    /// Requests per version at the first Fail.
    fail_at: Option<u64>,
    pass_at: Option<u64>,
}

fn sequential(cfg: &BenchConfig, canary: &[u64], stable: &[u64]) -> Outcome {
    let (mut ce, mut se) = (0, 0);
    for (i, (c, s)) in canary.iter().zip(stable).enumerate() {
        ce += c;
        se += s;
        let n = (i as u64 + 1) * cfg.look;
        let Some(t) = msprt(
            Counts {
                errors: ce,
                requests: n,
            },
            Counts {
                errors: se,
                requests: n,
            },
            cfg.margin,
            TOLERANCE,
            cfg.confidence,
        ) else {
            continue;
        };
        if t.lower > 0.0 {
            return Outcome {
                fail_at: Some(n),
                pass_at: None,
            };
        }
        if t.upper < 0.0 {
            return Outcome {
                fail_at: None,
                pass_at: Some(n),
            };
        }
    }
    Outcome {
        fail_at: None,
        pass_at: None,
    }
}

fn rates(cfg: &BenchConfig, counts: &[u64]) -> Vec<f64> {
    counts.iter().map(|c| *c as f64 / cfg.look as f64).collect()
}

fn mw_fails(cfg: &BenchConfig, canary: &[u64], stable: &[u64], looks: usize) -> bool {
    let cmp = Comparison {
        kind: ComparisonKind::Latency,
        worse: Direction::Higher,
        margin: cfg.margin,
        confidence: cfg.confidence,
    };
    fails(
        &rates(cfg, &canary[..looks]),
        &rates(cfg, &stable[..looks]),
        &cmp,
    )
}

fn z_fails(cfg: &BenchConfig, canary: &[u64], stable: &[u64], looks: usize) -> bool {
    let n = looks as u64 * cfg.look;
    let ce: u64 = canary[..looks].iter().sum();
    let se: u64 = stable[..looks].iter().sum();
    z_test_margin(ce, n, se, n, cfg.margin, TOLERANCE).p_value < 1.0 - cfg.confidence
}

fn first_fail(
    cfg: &BenchConfig,
    canary: &[u64],
    stable: &[u64],
    min_looks: usize,
    fails: fn(&BenchConfig, &[u64], &[u64], usize) -> bool,
) -> Option<u64> {
    (min_looks..=canary.len())
        .find(|&k| fails(cfg, canary, stable, k))
        .map(|k| k as u64 * cfg.look)
}

/// The `q` quantile (lower) of the requests at which runs stopped; undecided runs count as
/// "more than the maximum".
fn quantile_of(v: &[Option<u64>], q: f64) -> Option<u64> {
    let mut v = v.to_vec();
    v.sort_by_key(|x| x.unwrap_or(u64::MAX));
    let i = ((v.len() as f64 * q).ceil() as usize).saturating_sub(1);
    v.get(i).copied().flatten()
}

fn median(v: &[Option<u64>]) -> Option<u64> {
    quantile_of(v, 0.5)
}

fn fraction(v: &[Option<u64>]) -> f64 {
    v.iter().filter(|x| x.is_some()).count() as f64 / v.len().max(1) as f64
}

/// Runs the simulation. Deterministic for a given config (seeded).
pub fn run(cfg: &BenchConfig) -> BenchReport {
    let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed);
    let looks = (cfg.max_requests / cfg.look) as usize;
    // Fixed horizons (in looks): +25% steps from the smallest the rank test accepts.
    let mut grid = Vec::new();
    let mut k = MIN_SAMPLES.max(1);
    while k < looks {
        grid.push(k);
        k = (k * 5).div_ceil(4);
    }
    grid.push(looks);

    let mut seq_aa = Vec::new();
    let mut seq_pass = Vec::new();
    let mut seq_ab = Vec::new();
    let mut mw_peek_aa = Vec::new();
    let mut mw_peek_ab = Vec::new();
    let mut z_peek_aa = Vec::new();
    let mut z_peek_ab = Vec::new();
    // Per horizon: (false fails on A/A, detections on A/B).
    let mut mw_fixed = vec![(0usize, 0usize); grid.len()];
    let mut z_fixed = vec![(0usize, 0usize); grid.len()];
    for _ in 0..cfg.runs {
        let a1 = simulate(&mut rng, cfg, cfg.base_rate);
        let a2 = simulate(&mut rng, cfg, cfg.base_rate);
        let bad = simulate(&mut rng, cfg, cfg.bad_rate);
        let good = simulate(&mut rng, cfg, cfg.base_rate);
        let s = sequential(cfg, &a1, &a2);
        seq_aa.push(s.fail_at);
        seq_pass.push(s.pass_at);
        seq_ab.push(sequential(cfg, &bad, &good).fail_at);
        mw_peek_aa.push(first_fail(cfg, &a1, &a2, MIN_SAMPLES, mw_fails));
        mw_peek_ab.push(first_fail(cfg, &bad, &good, MIN_SAMPLES, mw_fails));
        z_peek_aa.push(first_fail(cfg, &a1, &a2, 1, z_fails));
        z_peek_ab.push(first_fail(cfg, &bad, &good, 1, z_fails));
        for (i, &h) in grid.iter().enumerate() {
            mw_fixed[i].0 += usize::from(mw_fails(cfg, &a1, &a2, h));
            mw_fixed[i].1 += usize::from(mw_fails(cfg, &bad, &good, h));
            z_fixed[i].0 += usize::from(z_fails(cfg, &a1, &a2, h));
            z_fixed[i].1 += usize::from(z_fails(cfg, &bad, &good, h));
        }
    }
    let runs = cfg.runs.max(1) as f64;
    let every = format!("every {}", cfg.look);
    // Fixed horizon: the smallest horizon on the grid detecting in ≥ half (≥ 95%) of the runs;
    // its false-Fail rate is the one shown.
    let fixed_row = |judge: &'static str, table: &[(usize, usize)]| {
        let at = |q: f64| table.iter().position(|(_, d)| *d as f64 / runs >= q);
        let i = at(0.5).unwrap_or(table.len() - 1);
        let horizon = grid[i] as u64 * cfg.look;
        Row {
            judge,
            looks: "once".to_string(),
            false_fail: table[i].0 as f64 / runs,
            detected: table[i].1 as f64 / runs,
            requests_to_detect: at(0.5).map(|i| grid[i] as u64 * cfg.look),
            requests_to_detect_95: at(0.95).map(|i| grid[i] as u64 * cfg.look),
            horizon: Some(horizon),
        }
    };
    let peeking = |judge: &'static str, aa: &[Option<u64>], ab: &[Option<u64>]| Row {
        judge,
        looks: every.clone(),
        false_fail: fraction(aa),
        detected: fraction(ab),
        requests_to_detect: median(ab),
        requests_to_detect_95: quantile_of(ab, 0.95),
        horizon: None,
    };
    let rows = vec![
        peeking("sequential test (mixture SPRT)", &seq_aa, &seq_ab),
        fixed_row(
            "Mann-Whitney on interval error rates, fixed horizon",
            &mw_fixed,
        ),
        peeking(
            "Mann-Whitney on interval error rates, checked every interval",
            &mw_peek_aa,
            &mw_peek_ab,
        ),
        fixed_row("two-proportion z-test, fixed horizon", &z_fixed),
        peeking(
            "two-proportion z-test, checked every interval",
            &z_peek_aa,
            &z_peek_ab,
        ),
    ];
    BenchReport {
        config: cfg.clone(),
        rows,
        sequential_pass_median: median(&seq_pass),
    }
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.config;
        let pct = |x: f64| format!("{:.1}%", x * 100.0);
        writeln!(
            f,
            "Error-rate judges, {} simulated runs per scenario (seed {}): A/A at {} errors, A/B at \
             {} → {}; margin {} + 0.1pp, confidence {}; at most {} requests per version. A fixed \
             horizon's \"requests to detect\" is the smallest horizon detecting in 50% / 95% of runs; \
             for judges that look every interval, the median / 95th percentile of the requests \
             seen at the first Fail.",
            c.runs,
            c.seed,
            pct(c.base_rate),
            pct(c.base_rate),
            pct(c.bad_rate),
            pct(c.margin),
            pct(c.confidence),
            c.max_requests
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "| judge | looks | false Fail on A/A | detects {} → {} | requests to detect: median | 95% |",
            pct(c.base_rate),
            pct(c.bad_rate)
        )?;
        writeln!(f, "|---|---|---|---|---|---|")?;
        let n = |x: Option<u64>| {
            x.map(|n| n.to_string())
                .unwrap_or_else(|| format!("> {}", c.max_requests))
        };
        for r in &self.rows {
            let detects = match r.horizon {
                Some(h) => format!("{} (at {h})", pct(r.detected)),
                None => pct(r.detected),
            };
            let false_fail = match r.horizon {
                Some(h) => format!("{} (at {h})", pct(r.false_fail)),
                None => pct(r.false_fail),
            };
            writeln!(
                f,
                "| {} | {} | {} | {} | {} | {} |",
                r.judge,
                r.looks,
                false_fail,
                detects,
                n(r.requests_to_detect),
                n(r.requests_to_detect_95)
            )?;
        }
        writeln!(f)?;
        match self.sequential_pass_median {
            Some(n) => writeln!(
                f,
                "On A/A traffic the sequential test also stops early with a Pass: median {n} requests per version."
            ),
            None => writeln!(
                f,
                "On A/A traffic the sequential test passed in fewer than half the runs within {} requests.",
                c.max_requests
            ),
        }
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
    fn small_simulation_is_deterministic_and_sensible() {
        let cfg = BenchConfig {
            runs: 60,
            max_requests: 20_000,
            ..BenchConfig::default()
        };
        let a = run(&cfg);
        let b = run(&cfg);
        assert_eq!(a.rows, b.rows);
        assert_eq!(a.rows.len(), 5);
        let seq = &a.rows[0];
        // A doubling of the error rate is caught in most runs, long before the maximum...
        assert!(seq.detected > 0.8, "{seq:?}");
        assert!(
            seq.requests_to_detect.is_some_and(|n| n < 20_000),
            "{seq:?}"
        );
        // ...and identical versions rarely fail.
        assert!(seq.false_fail <= 0.1, "{seq:?}");
        let table = a.to_string();
        assert!(
            table.contains("| sequential test (mixture SPRT) | every 250 |"),
            "{table}"
        );
        assert!(a.rows[1].horizon.is_some() && a.rows[0].horizon.is_none());
    }
}
