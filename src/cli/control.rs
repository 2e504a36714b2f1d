//! `sluice status | wait | promote | pause | resume | abort | retry | undo`: the HTTP API's
//! client commands, for people and CI pipelines.
//!
//! Talks to a sluice server (`--server` / `SLUICE_SERVER`) with an optional token
//! (`--token` / `SLUICE_TOKEN`, needed for commands). Kubernetes mode through the user's
//! kubeconfig is not implemented here: point `--server` at the controller's API instead.
//! Exit codes are in [`super::exit`] and docs/ci.md.

use std::time::Duration;

use sluice::engine::Command;

use super::client::{Client, ClientError, parse_name};
use super::wait::WaitFor;
use super::{exit, render, wait};

/// The server the CLI talks to by default (see [`sluice::api::DEFAULT_LISTEN`]).
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7474";

#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    /// sluice server URL.
    #[arg(long, env = "SLUICE_SERVER", default_value = DEFAULT_SERVER)]
    pub server: String,
    /// API token for commands (sent as a bearer token).
    #[arg(long, env = "SLUICE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// NAME or NAMESPACE/NAME (namespace `default`); without it, every rollout.
    pub name: Option<String>,
    /// Keep printing a line on every change (until interrupted).
    #[arg(long, short)]
    pub watch: bool,
    #[arg(long, short, value_enum, default_value = "text")]
    pub output: Output,
    /// Poll interval for --watch.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(clap::Args, Debug)]
pub struct CommandArgs {
    /// NAME or NAMESPACE/NAME (namespace `default`).
    pub name: String,
    /// Why (recorded in the server log).
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(clap::Args, Debug)]
pub struct WaitArgs {
    /// NAME or NAMESPACE/NAME (namespace `default`).
    pub name: String,
    /// The state to wait for.
    #[arg(long = "for", value_enum)]
    pub target: WaitFor,
    /// Give up after this long (Go-style duration: 90s, 30m, 1h).
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Only a status about this revision counts (the version just deployed). Recommended in
    /// CI: without it, the outcome of an earlier rollout may answer.
    #[arg(long)]
    pub revision: Option<String>,
    /// Poll interval.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub interval: Duration,
    #[command(flatten)]
    pub server: ServerArgs,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    sluice::duration::parse(s)
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            None
        }
    }
}

fn client(args: &ServerArgs) -> Result<Client, u8> {
    Client::new(&args.server, args.token.clone()).map_err(|e| {
        eprintln!("error: {e}");
        exit::for_error(&e)
    })
}

fn name(input: &str) -> Result<(String, String), u8> {
    parse_name(input).map_err(|e| {
        eprintln!("error: {e}");
        exit::USAGE
    })
}

fn fail(e: ClientError) -> u8 {
    eprintln!("error: {e}");
    exit::for_error(&e)
}

/// `sluice status [NAME] [--watch]`.
pub fn status(args: StatusArgs) -> u8 {
    let Some(rt) = runtime() else {
        return exit::ERROR;
    };
    rt.block_on(async move {
        let c = match client(&args.server) {
            Ok(c) => c,
            Err(code) => return code,
        };
        let target = match args.name.as_deref().map(name).transpose() {
            Ok(t) => t,
            Err(code) => return code,
        };
        let mut last = String::new();
        loop {
            let text = match &target {
                Some((ns, n)) => match c.get(ns, n).await {
                    Ok(v) => match (args.output, args.watch) {
                        (Output::Json, _) => {
                            serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
                        }
                        (Output::Text, true) => render::one_line(&v) + "\n",
                        (Output::Text, false) => render::detail(&v),
                    },
                    Err(e) => return fail(e),
                },
                None => match c.list().await {
                    Ok(vs) => match args.output {
                        Output::Json => {
                            serde_json::to_string_pretty(&vs).unwrap_or_default() + "\n"
                        }
                        Output::Text => render::table(&vs),
                    },
                    Err(e) => return fail(e),
                },
            };
            if text != last {
                print!("{text}");
                last = text;
            }
            if !args.watch {
                return exit::OK;
            }
            tokio::time::sleep(args.interval).await;
        }
    })
}

/// `sluice promote|pause|resume|abort|retry|undo NAME`.
pub fn command(cmd: Command, args: CommandArgs) -> u8 {
    let Some(rt) = runtime() else {
        return exit::ERROR;
    };
    rt.block_on(async move {
        let c = match client(&args.server) {
            Ok(c) => c,
            Err(code) => return code,
        };
        let (ns, n) = match name(&args.name) {
            Ok(t) => t,
            Err(code) => return code,
        };
        if token_missing(&args.server) {
            eprintln!(
                "error: {} needs the API token: pass --token or set SLUICE_TOKEN",
                cmd.as_str()
            );
            return exit::USAGE;
        }
        match c.command(&ns, &n, cmd, args.reason).await {
            Ok(accepted) => {
                println!("{ns}/{n}: {}", accepted.message);
                exit::OK
            }
            Err(e) => fail(e),
        }
    })
}

fn token_missing(args: &ServerArgs) -> bool {
    args.token.as_deref().is_none_or(|t| t.trim().is_empty())
}

/// `sluice wait NAME --for succeeded|paused|promoted`.
pub fn wait(args: WaitArgs) -> u8 {
    let Some(rt) = runtime() else {
        return exit::ERROR;
    };
    rt.block_on(async move {
        let c = match client(&args.server) {
            Ok(c) => c,
            Err(code) => return code,
        };
        let (ns, n) = match name(&args.name) {
            Ok(t) => t,
            Err(code) => return code,
        };
        wait::run(
            &c,
            &ns,
            &n,
            args.target,
            args.revision.as_deref(),
            args.timeout,
            args.interval,
        )
        .await
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn default_server_matches_the_listen_address() {
        assert_eq!(
            super::DEFAULT_SERVER,
            format!("http://{}", sluice::api::DEFAULT_LISTEN)
        );
    }
}
