//! The `sluice` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sluice::cli;
use sluice::engine::Command;

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "Progressive delivery: canary, dark launch and A/B rollouts gated on Prometheus",
    after_help = "Exit codes of status/wait/promote/...: 0 ok, 1 error, 2 rolled back, 3 aborted, \
                  4 timed out, 5 server unreachable / token refused / no such rollout, \
                  6 awaited state can no longer come, 7 command refused (409), 64 usage. \
                  See docs/ci.md."
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print the Rollout CustomResourceDefinition generated from the Rust types.
    Crd,
    /// Show one rollout (NAME or NAMESPACE/NAME), or every rollout.
    Status(cli::StatusArgs),
    /// Wait until a rollout succeeds, pauses (e.g. at the manual gate) or is promoted.
    Wait(cli::WaitArgs),
    /// At the manual gate, promote; while progressing or paused, pass the current step now.
    Promote(cli::CommandArgs),
    /// Hold a rollout where it is.
    Pause(cli::CommandArgs),
    /// Continue a paused rollout.
    Resume(cli::CommandArgs),
    /// Roll back now: all traffic to stable.
    Abort(cli::CommandArgs),
    /// After a failure, run the same revision again from the first step.
    Retry(cli::CommandArgs),
    /// After a promotion, put the previous stable revision back.
    Undo(cli::CommandArgs),
}

fn main() -> ExitCode {
    // clap's own exit code for bad arguments (2) would collide with "rolled back".
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { cli::exit::USAGE } else { 0 });
        }
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let code = match cli.command {
        Cmd::Crd => {
            use kube::CustomResourceExt;
            match serde_yaml::to_string(&sluice::spec::Rollout::crd()) {
                Ok(y) => {
                    print!("{y}");
                    0
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    1
                }
            }
        }
        Cmd::Status(a) => cli::status(a),
        Cmd::Wait(a) => cli::wait(a),
        Cmd::Promote(a) => cli::command(Command::Promote, a),
        Cmd::Pause(a) => cli::command(Command::Pause, a),
        Cmd::Resume(a) => cli::command(Command::Resume, a),
        Cmd::Abort(a) => cli::command(Command::Abort, a),
        Cmd::Retry(a) => cli::command(Command::Retry, a),
        Cmd::Undo(a) => cli::command(Command::Undo, a),
    };
    ExitCode::from(code)
}
