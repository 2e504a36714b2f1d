//! Integration tests of `sluice`: in-process tests as modules here, tests that start real
//! processes (Envoy, Prometheus, Chromium, the `sluice` binary with them) under [`real`], so
//! `cargo nextest run -E 'test(/^real::/)'` selects them.

mod cli_kube;
mod cli_wait;
mod plan;
mod real;
mod validate;

/// The documented exit codes (docs/ci.md): the numbers are the contract, so they are spelled
/// out here rather than imported from the binary.
mod exit {
    pub const OK: u8 = 0;
    pub const ROLLED_BACK: u8 = 2;
    pub const ABORTED: u8 = 3;
    pub const TIMEOUT: u8 = 4;
    pub const UNREACHABLE: u8 = 5;
    pub const REFUSED: u8 = 7;
    pub const USAGE: u8 = 64;
}
