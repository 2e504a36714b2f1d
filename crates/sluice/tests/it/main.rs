//! Integration tests of `sluice`: in-process tests as modules here, tests that start real
//! processes (Envoy, Prometheus, Chromium, the `sluice` binary with them) under [`real`], so
//! `cargo nextest run -E 'test(/^real::/)'` selects them.

mod cli_kube;
mod cli_wait;
mod plan;
mod real;
mod validate;
