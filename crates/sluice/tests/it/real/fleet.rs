//! `sluice bench fleet` as a user runs it, at a small N: the JSON object has every key the
//! issue names, and the figures are those of a working fleet (every rollout at its first step,
//! aborts served, Prometheus asked, sluice's own process measured).

use std::process::Command;

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

#[test]
fn bench_fleet_json_reports_a_working_fleet_of_five() {
    let out = Command::new(SLUICE)
        .args([
            "bench",
            "fleet",
            "--rollouts",
            "5",
            "--interval",
            "2s",
            "--duration",
            "10s",
            "--probes",
            "3",
            "--rps",
            "50",
            "--json",
        ])
        .output()
        .expect("run sluice bench fleet");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    for key in [
        "rollouts",
        "rss_mib",
        "cpu_percent",
        "apply_p50_ms",
        "apply_p99_ms",
        "prometheus_qps",
        "store_bytes_per_rollout_hour",
        "all_first_step_s",
    ] {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    let num = |k: &str| {
        v[k].as_f64()
            .unwrap_or_else(|| panic!("{k} not a number: {v}"))
    };
    assert_eq!(v["rollouts"], 5);
    // A process that was measured (not a zero read from a missing /proc entry) and is small.
    assert!((5.0..512.0).contains(&num("rss_mib")), "{v}");
    assert!(num("rss_peak_mib") >= num("rss_mib"), "{v}");
    assert!((0.0..200.0).contains(&num("cpu_percent")), "{v}");
    assert!(num("envoy_rss_mib") > 5.0, "{v}");
    // Every abort was served, well within the 30 s the probe waits.
    assert_eq!(v["apply_samples"], 3, "{v}");
    assert_eq!(v["apply_timeouts"], 0, "{v}");
    assert!(
        num("apply_p50_ms") > 0.0 && num("apply_p50_ms") <= num("apply_p99_ms"),
        "{v}"
    );
    assert!(num("apply_p99_ms") < 10_000.0, "{v}");
    // Five rollouts checking every 2 s ask Prometheus; nothing else does during the window.
    assert!((0.3..50.0).contains(&num("prometheus_qps")), "{v}");
    // Checks are recorded: history grows.
    assert!(num("store_bytes_per_rollout_hour") > 0.0, "{v}");
    let first = num("all_first_step_s");
    assert!(first > 0.0 && first < 60.0, "{v}");
}
