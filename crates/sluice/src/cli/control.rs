//! `sluice status | wait | promote | pause | resume | abort | retry | undo`: the HTTP API's
//! client commands, for people and CI pipelines.
//!
//! Talks to a sluice server (`--server` / `SLUICE_SERVER`) with an optional token
//! (`--token` / `SLUICE_TOKEN`, needed for commands), or, with `--kube` / `--context` /
//! `--kubeconfig` / `SLUICE_KUBE=1`, to the Kubernetes cluster with the user's kubeconfig
//! ([`super::cluster`]). Both sit behind [`RolloutClient`], so each verb exists once.
//! Exit codes are in [`super::exit`] and docs/ci.md.

use std::time::Duration;

use sluice_core::engine::Command;

use super::client::{Client, ClientError, RolloutClient, parse_name_in};
use super::cluster::{KubeClient, KubeTarget};
use super::wait::WaitFor;
use super::{exit, render, wait};

/// The server the CLI talks to by default (see [`sluice_api::DEFAULT_LISTEN`]).
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7474";

#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    /// sluice server URL.
    #[arg(long, env = "SLUICE_SERVER", default_value = DEFAULT_SERVER)]
    pub server: String,
    /// API token for commands (sent as a bearer token).
    #[arg(long, env = "SLUICE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Talk to the Kubernetes cluster with your kubeconfig (KUBECONFIG, ~/.kube/config or the
    /// in-cluster service account) instead of a sluice server; --server/--token are ignored.
    #[arg(
        long,
        env = "SLUICE_KUBE",
        value_parser = clap::builder::BoolishValueParser::new(),
        action = clap::ArgAction::SetTrue
    )]
    pub kube: bool,
    /// Kubeconfig file to use (implies --kube).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// Kubeconfig context to use (implies --kube).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// Namespace of a NAME given without one (default: `default`, or with --kube the
    /// context's namespace); for `status` without NAME, list only this namespace.
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
}

impl ServerArgs {
    pub fn kube_mode(&self) -> bool {
        self.kube || self.kubeconfig.is_some() || self.context.is_some()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// NAME or NAMESPACE/NAME (namespace: -n, else `default` or the kubeconfig context's);
    /// without it, every rollout (with --kube: of that namespace, or -A).
    pub name: Option<String>,
    /// Keep printing a line on every change (until interrupted).
    #[arg(long, short)]
    pub watch: bool,
    #[arg(long, short, value_enum, default_value = "text")]
    pub output: Output,
    /// Poll interval for --watch.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Without NAME in Kubernetes mode: every namespace, not only the context's.
    #[arg(long, short = 'A')]
    pub all_namespaces: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(clap::Args, Debug)]
pub struct CommandArgs {
    /// NAME or NAMESPACE/NAME (namespace: -n, else `default` or the kubeconfig context's).
    pub name: String,
    /// Why (recorded in the server log; not recorded in Kubernetes mode).
    #[arg(long)]
    pub reason: Option<String>,
    /// Kubernetes mode: how long to wait for the controller to acknowledge the command (0:
    /// don't wait). Not acknowledged in time is reported, not an error: the command stays on
    /// the Rollout until the controller runs it.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub ack_timeout: Duration,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(clap::Args, Debug)]
pub struct WaitArgs {
    /// NAME or NAMESPACE/NAME (namespace: -n, else `default` or the kubeconfig context's).
    pub name: String,
    /// The state to wait for.
    #[arg(long = "for", value_enum)]
    pub target: WaitFor,
    /// Give up after this long (Go-style duration: 90s, 30m, 1h).
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Only a status about this revision counts (the version just deployed). Recommended in
    /// CI: without it, the outcome of an earlier rollout may answer. In Kubernetes mode
    /// revisions are pod-template hashes: `target` means the target Deployment's current one.
    #[arg(long)]
    pub revision: Option<String>,
    /// Poll interval.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub interval: Duration,
    #[command(flatten)]
    pub server: ServerArgs,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    sluice_core::duration::parse(s)
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

/// The HTTP client, or the cluster's with `--kube` and friends (`ack_timeout`: for commands).
async fn client(args: &ServerArgs, ack_timeout: Duration) -> Result<Box<dyn RolloutClient>, u8> {
    let made: Result<Box<dyn RolloutClient>, ClientError> = if args.kube_mode() {
        KubeClient::connect(&KubeTarget {
            kubeconfig: args.kubeconfig.as_deref(),
            context: args.context.as_deref(),
        })
        .await
        .map(|c| Box::new(c.with_ack_timeout(ack_timeout)) as Box<dyn RolloutClient>)
    } else {
        Client::new(&args.server, args.token.clone()).map(|c| Box::new(c) as Box<dyn RolloutClient>)
    };
    made.map_err(|e| {
        eprintln!("error: {e}");
        exit::for_error(&e)
    })
}

/// NAMESPACE/NAME wins over `-n`, which wins over the client's default namespace.
fn name(input: &str, args: &ServerArgs, c: &dyn RolloutClient) -> Result<(String, String), u8> {
    let default_ns = args.namespace.as_deref().unwrap_or(c.default_namespace());
    parse_name_in(input, default_ns).map_err(|e| {
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
        let c = match client(&args.server, Duration::ZERO).await {
            Ok(c) => c,
            Err(code) => return code,
        };
        let target = match args
            .name
            .as_deref()
            .map(|n| name(n, &args.server, c.as_ref()))
            .transpose()
        {
            Ok(t) => t,
            Err(code) => return code,
        };
        let scope = match &args.server.namespace {
            Some(ns) => Some(ns.clone()),
            None if args.all_namespaces || c.lists_all_by_default() => None,
            None => Some(c.default_namespace().to_string()),
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
                None => match c.list(scope.as_deref()).await {
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
        let kube = args.server.kube_mode();
        let c = match client(&args.server, args.ack_timeout).await {
            Ok(c) => c,
            Err(code) => return code,
        };
        let (ns, n) = match name(&args.name, &args.server, c.as_ref()) {
            Ok(t) => t,
            Err(code) => return code,
        };
        // The cluster authenticates with the kubeconfig's credentials instead.
        if !kube && token_missing(&args.server) {
            eprintln!(
                "error: {} needs the API token: pass --token or set SLUICE_TOKEN",
                cmd.as_str()
            );
            return exit::USAGE;
        }
        match c.command(&ns, &n, cmd, args.reason).await {
            Ok(message) => {
                println!("{ns}/{n}: {message}");
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
        let c = match client(&args.server, Duration::ZERO).await {
            Ok(c) => c,
            Err(code) => return code,
        };
        let (ns, n) = match name(&args.name, &args.server, c.as_ref()) {
            Ok(t) => t,
            Err(code) => return code,
        };
        let revision = match &args.revision {
            Some(r) => match c.resolve_revision(&ns, &n, r).await {
                Ok(r) => Some(r),
                Err(e) => return fail(e),
            },
            None => None,
        };
        wait::run(
            c.as_ref(),
            &ns,
            &n,
            args.target,
            revision.as_deref(),
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
            format!("http://{}", sluice_api::DEFAULT_LISTEN)
        );
    }
}
