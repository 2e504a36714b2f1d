//! Integration tests of `sluice-notify`: in-process tests as modules here, tests that start real
//! processes (Envoy, Prometheus, Chromium, the `sluice` binary with them) under [`real`], so
//! `cargo nextest run -E 'test(/^real::/)'` selects them.

mod dashboards;
mod effects;
mod notify;
mod real;
mod telemetry;
mod webhooks;
