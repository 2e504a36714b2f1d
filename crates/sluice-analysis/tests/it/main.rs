//! Integration tests of `sluice-analysis`: in-process tests as modules here, tests that start real
//! processes (Envoy, Prometheus, Chromium, the `sluice` binary with them) under [`real`], so
//! `cargo nextest run -E 'test(/^real::/)'` selects them.

mod judge_reference;
mod real;
