//! Tests against real processes, started on free ports of 127.0.0.1 and killed on drop.

mod backtest;
mod e2e_standalone;
mod envoy_cli;
mod fleet;
mod ui_browser;
mod yaml11;
