//! `sluice status | wait | <verb> --kube`: the real binary with a kubeconfig pointing at the
//! in-memory API server (`k8s_support`, served on 127.0.0.1), and the real controller
//! reconcile (`sluice_k8s::reconcile`) playing the controller in the background where a test
//! needs one. No cluster: what the fake does not model (watches, validation, RBAC) is not
//! tested here.

// Helpers outside #[test] fns panic on purpose: the panic is the test's failure report.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use http::Method;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sluice_core::backend::RolloutView;
use sluice_core::engine::{Command, command_allowed};
use sluice_core::spec::{Phase, Reason, Rollout, RolloutStatus, Verdict};
use sluice_k8s::reconcile::{Context, reconcile};
use sluice_k8s::recorder::Live;
use sluice_testkit::fakes::{FakeAnalyzer, NoWebhooks};
use sluice_testkit::kube_api::{FakeApi, fixtures};

const NS: &str = "bookinfo";

use crate::exit;

/// The fake API server on a socket, a kubeconfig for it, and the controller's reconcile.
struct Cluster {
    api: FakeApi,
    ctx: Arc<Context>,
    analyzer: Arc<FakeAnalyzer>,
    now: Arc<Mutex<DateTime<Utc>>>,
    url: String,
    dir: tempfile::TempDir,
    kubeconfig: String,
}

/// Serves the tower Service over HTTP/1 for the CLI process.
async fn serve(api: FakeApi) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let api = api.clone();
        async move {
            let (parts, body) = req.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            let req = http::Request::from_parts(parts, kube::client::Body::from(bytes.to_vec()));
            let resp = match tower::ServiceExt::oneshot(api, req).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            let (parts, body) = resp.into_parts();
            let bytes = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            axum::response::Response::from_parts(parts, axum::body::Body::from(bytes))
        }
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

fn kubeconfig(server: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: shop\n\
         clusters:\n- name: fake\n  cluster: {{server: \"{server}\"}}\n\
         users:\n- name: me\n  user: {{}}\n\
         contexts:\n- name: shop\n  context: {{cluster: fake, user: me, namespace: {NS}}}\n\
         - name: other\n  context: {{cluster: fake, user: me, namespace: elsewhere}}\n"
    )
}

fn rollout() -> Value {
    fixtures::reviews_rollout(NS)
}

fn deployment(image: &str) -> Value {
    fixtures::reviews_deployment(NS, image, 2)
}

struct Run {
    code: u8,
    stdout: String,
    stderr: String,
}

impl Cluster {
    /// `bookinfo/reviews` initialised by the controller, then v2 deployed: canary at 10%,
    /// Progressing.
    async fn progressing() -> Self {
        sluice_testkit::fakes::install_crypto();
        let api = FakeApi::new();
        api.seed("apps", "deployments", deployment("reviews:v1"));
        api.seed("sluice.dev", "rollouts", rollout());
        api.roll_out_deployments();
        let analyzer = Arc::new(FakeAnalyzer::new(Verdict::Pass));
        let now = Arc::new(Mutex::new(
            DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
        ));
        let clock = now.clone();
        let ctx = Arc::new(Context::new(
            api.client(),
            analyzer.clone(),
            Arc::new(NoWebhooks),
            Arc::new(Live::default()),
            Arc::new(move || *clock.lock().unwrap()),
        ));
        let url = serve(api.clone()).await;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        std::fs::write(&path, kubeconfig(&url)).unwrap();
        let c = Cluster {
            api,
            ctx,
            analyzer,
            now,
            url,
            kubeconfig: path.display().to_string(),
            dir,
        };
        c.reconcile().await; // finalizer
        c.reconcile().await; // primary, services, VirtualService
        c.api.roll_out_deployments();
        c.reconcile().await; // target scaled to zero
        c.api.roll_out_deployments();
        c.api.edit("apps", "deployments", NS, "reviews", |d| {
            d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("reviews:v2");
        });
        c.reconcile().await;
        c.api.roll_out_deployments();
        c.reconcile().await;
        let st = c.status();
        assert_eq!(
            (st.phase, st.canary_weight),
            (Phase::Progressing, 10),
            "{st:?}"
        );
        c
    }

    async fn reconcile(&self) {
        let r: Rollout = serde_json::from_value(
            self.api
                .get("sluice.dev", "rollouts", NS, "reviews")
                .unwrap(),
        )
        .unwrap();
        if let Err(e) = reconcile(Arc::new(r), self.ctx.clone()).await {
            panic!("reconcile failed: {e}");
        }
    }

    fn status(&self) -> RolloutStatus {
        let v = self
            .api
            .get("sluice.dev", "rollouts", NS, "reviews")
            .unwrap();
        serde_json::from_value(v["status"].clone()).unwrap_or_default()
    }

    fn annotation(&self, key: &str) -> Option<String> {
        let v = self
            .api
            .get("sluice.dev", "rollouts", NS, "reviews")
            .unwrap();
        v["metadata"]["annotations"][key]
            .as_str()
            .map(str::to_string)
    }

    /// The controller, reconciling every 50ms until dropped; `before` runs before each round.
    fn controller(
        self: &Arc<Self>,
        before: impl Fn(&Cluster) + Send + Sync + 'static,
    ) -> ControllerTask {
        let stop = Arc::new(AtomicBool::new(false));
        let (me, flag) = (self.clone(), stop.clone());
        let handle = tokio::spawn(async move {
            while !flag.load(Ordering::Relaxed) {
                before(&me);
                me.reconcile().await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        ControllerTask { stop, handle }
    }

    async fn sluice(&self, args: &[&str]) -> Run {
        self.sluice_env(args, &[]).await
    }

    async fn sluice_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"));
        cmd.args(args)
            .env_remove("SLUICE_SERVER")
            .env_remove("SLUICE_TOKEN")
            .env_remove("SLUICE_KUBE")
            // Never the developer's own cluster.
            .env("KUBECONFIG", self.dir.path().join("missing"))
            .env("HOME", self.dir.path())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
            .await
            .expect("sluice finished within 60s")
            .expect("sluice runs");
        Run {
            code: out.status.code().expect("exit code") as u8,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn patches(&self) -> Vec<sluice_testkit::kube_api::Logged> {
        self.api
            .log()
            .into_iter()
            .filter(|l| {
                l.method == Method::PATCH
                    && l.resource == "rollouts"
                    && l.path.ends_with("/reviews")
            })
            .filter(|l| l.body["metadata"]["annotations"]["sluice.dev/command"].is_string())
            .collect()
    }
}

struct ControllerTask {
    stop: Arc<AtomicBool>,
    handle: tokio::task::JoinHandle<()>,
}

impl ControllerTask {
    /// Stops the loop and reports a reconcile panic as the test's failure.
    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Err(e) = self.handle.await {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

fn kube_args<'a>(c: &'a Cluster, args: &[&'a str]) -> Vec<&'a str> {
    let mut v = args.to_vec();
    v.extend(["--kubeconfig", c.kubeconfig.as_str()]);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reads_the_rollout_in_the_contexts_namespace() {
    let c = Cluster::progressing().await;
    let r = c.sluice(&kube_args(&c, &["status", "reviews"])).await;
    assert_eq!(r.code, exit::OK, "{}", r.stderr);
    assert!(r.stdout.contains("bookinfo/reviews"), "{}", r.stdout);
    assert!(r.stdout.contains("Progressing"), "{}", r.stdout);
    assert!(r.stdout.contains("canary 10%"), "{}", r.stdout);

    let r = c
        .sluice(&kube_args(&c, &["status", "reviews", "-o", "json"]))
        .await;
    assert_eq!(r.code, exit::OK, "{}", r.stderr);
    let v: RolloutView = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!((v.namespace.as_str(), v.name.as_str()), (NS, "reviews"));
    assert_eq!(v.status, c.status(), "the status subresource, as stored");
    assert_eq!(v.stages, ["canary 10%", "canary 50%"]);

    // The list: the context's namespace by default; another context sees nothing there.
    let r = c.sluice(&kube_args(&c, &["status"])).await;
    assert_eq!(r.code, exit::OK, "{}", r.stderr);
    assert!(r.stdout.contains("reviews"), "{}", r.stdout);
    let r = c
        .sluice(&kube_args(&c, &["status", "--context", "other", "reviews"]))
        .await;
    assert_eq!(r.code, exit::UNREACHABLE, "{} {}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("elsewhere/reviews not found"),
        "{}",
        r.stderr
    );
    let r = c
        .sluice(&kube_args(
            &c,
            &["status", "--context", "other", "-n", NS, "reviews"],
        ))
        .await;
    assert_eq!(r.code, exit::OK, "-n overrides the context: {}", r.stderr);

    // SLUICE_KUBE=1 with the usual KUBECONFIG variable.
    let r = c
        .sluice_env(
            &["status", "bookinfo/reviews"],
            &[("SLUICE_KUBE", "1"), ("KUBECONFIG", c.kubeconfig.as_str())],
        )
        .await;
    assert_eq!(r.code, exit::OK, "{}", r.stderr);
    assert!(r.stdout.contains("Progressing"), "{}", r.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_have_the_documented_codes() {
    let c = Cluster::progressing().await;
    let r = c.sluice(&kube_args(&c, &["status", "ratings"])).await;
    assert_eq!(r.code, exit::UNREACHABLE, "no such rollout: {}", r.stderr);

    c.api.inject(Method::GET, "/reviews", 403, 1);
    let r = c.sluice(&kube_args(&c, &["status", "reviews"])).await;
    assert_eq!(r.code, exit::UNREACHABLE, "forbidden: {}", r.stderr);
    assert!(r.stderr.contains("refused"), "{}", r.stderr);

    // Nothing listening at the kubeconfig's server.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let path = c.dir.path().join("dead");
    std::fs::write(&path, kubeconfig(&dead)).unwrap();
    let r = c
        .sluice(&["status", "reviews", "--kubeconfig", path.to_str().unwrap()])
        .await;
    assert_eq!(r.code, exit::UNREACHABLE, "{}", r.stderr);
    assert!(r.stderr.contains("cannot reach"), "{}", r.stderr);

    // A kubeconfig that does not exist is a usage error, not "unreachable".
    let r = c
        .sluice(&[
            "status",
            "reviews",
            "--kubeconfig",
            "/nonexistent/kubeconfig",
        ])
        .await;
    assert_eq!(r.code, 64, "{}", r.stderr);
    assert!(c.url.starts_with("http://127.0.0.1:"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_does_not_apply_is_refused_and_nothing_is_written() {
    let c = Cluster::progressing().await;
    c.api.clear_log();
    let r = c.sluice(&kube_args(&c, &["undo", "reviews"])).await;
    assert_eq!(r.code, exit::REFUSED, "{} {}", r.stdout, r.stderr);
    let want = command_allowed(&c.status(), Command::Undo).unwrap_err();
    assert_eq!(
        r.stderr.trim(),
        format!("error: {want}"),
        "the HTTP 409's message"
    );
    assert!(c.patches().is_empty(), "nothing written: {:?}", c.patches());
    assert_eq!(c.annotation("sluice.dev/command"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_is_the_nonced_annotation_and_the_controller_acknowledges_it() {
    let c = Arc::new(Cluster::progressing().await);
    c.api.clear_log();
    let controller = c.controller(|_| {});
    let r = c
        .sluice(&kube_args(
            &c,
            &["pause", "reviews", "--ack-timeout", "20s"],
        ))
        .await;
    controller.stop().await;
    assert_eq!(r.code, exit::OK, "{} {}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("accepted by the controller"),
        "{}",
        r.stdout
    );

    let patches = c.patches();
    assert_eq!(patches.len(), 1, "one write: {patches:?}");
    let p = &patches[0];
    assert_eq!(p.content_type, "application/merge-patch+json");
    assert_eq!(
        p.path,
        format!("/apis/sluice.dev/v1alpha1/namespaces/{NS}/rollouts/reviews")
    );
    let value = p.body["metadata"]["annotations"]["sluice.dev/command"]
        .as_str()
        .unwrap()
        .to_string();
    let (verb, nonce) = value.split_once('@').expect("verb@nonce");
    assert_eq!(verb, "pause");
    let (millis, rand) = nonce.split_once('-').expect("millis-random");
    assert!(millis.parse::<i64>().is_ok() && rand.len() == 4, "{value}");
    assert!(
        p.body["metadata"]["resourceVersion"].is_string(),
        "the write is conditional on the status it was checked against: {}",
        p.body
    );
    assert!(r.stdout.contains(&value), "{}", r.stdout);
    // The controller ran it: paused by the user, the annotation cleared and acknowledged.
    let st = c.status();
    assert_eq!(st.phase, Phase::Paused, "{st:?}");
    assert_eq!(c.annotation("sluice.dev/command"), None);
    assert_eq!(c.annotation("sluice.dev/command-ack"), Some(value));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_controller_the_command_waits_on_the_rollout() {
    let c = Cluster::progressing().await;
    let r = c
        .sluice(&kube_args(
            &c,
            &["abort", "reviews", "--ack-timeout", "300ms"],
        ))
        .await;
    assert_eq!(r.code, exit::OK, "not an error: {} {}", r.stdout, r.stderr);
    assert!(r.stdout.contains("not yet acknowledged"), "{}", r.stdout);
    let pending = c
        .annotation("sluice.dev/command")
        .expect("still on the Rollout");
    assert!(pending.starts_with("abort@"), "{pending}");
    assert_eq!(c.status().phase, Phase::Progressing, "nothing ran it");

    // A write that meets a concurrent change is re-checked and retried.
    c.api.inject(Method::PATCH, "/reviews", 409, 1);
    let r = c
        .sluice(&kube_args(&c, &["pause", "reviews", "--ack-timeout", "0s"]))
        .await;
    assert_eq!(r.code, exit::OK, "{} {}", r.stdout, r.stderr);
    let pending = c.annotation("sluice.dev/command").unwrap();
    assert!(pending.starts_with("pause@"), "{pending}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_follows_the_status_with_the_http_exit_codes() {
    let c = Arc::new(Cluster::progressing().await);

    // Nothing changes: timeout.
    let r = c
        .sluice(&kube_args(
            &c,
            &[
                "wait",
                "reviews",
                "--for",
                "succeeded",
                "--timeout",
                "500ms",
                "--interval",
                "100ms",
            ],
        ))
        .await;
    assert_eq!(r.code, exit::TIMEOUT, "{}", r.stderr);

    // Analysis passes each minute: two steps, promotion, succeeded.
    let controller = c.controller(|c| *c.now.lock().unwrap() += chrono::Duration::seconds(61));
    let roll = c.clone();
    let deployments = tokio::spawn(async move {
        for _ in 0..400 {
            roll.api.roll_out_deployments();
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    });
    let r = c
        .sluice(&kube_args(
            &c,
            &[
                "wait",
                "reviews",
                "--for",
                "succeeded",
                "--revision",
                "target",
                "--timeout",
                "30s",
                "--interval",
                "100ms",
            ],
        ))
        .await;
    controller.stop().await;
    deployments.abort();
    assert_eq!(r.code, exit::OK, "{} {}", r.stdout, r.stderr);
    let st = c.status();
    assert_eq!(st.phase, Phase::Succeeded);
    // `--revision target` named the pod template just deployed (v2), now stable.
    let want = st.stable_revision.clone().unwrap();
    assert!(
        r.stderr.contains("Succeeded") || r.stdout.contains("Succeeded"),
        "{}",
        r.stdout
    );

    // The revision before v2 is not this one: an old success does not answer for it.
    c.api.edit("apps", "deployments", NS, "reviews", |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("reviews:v3");
    });
    let r = c
        .sluice(&kube_args(
            &c,
            &[
                "wait",
                "reviews",
                "--for",
                "succeeded",
                "--revision",
                "target",
                "--timeout",
                "400ms",
                "--interval",
                "100ms",
            ],
        ))
        .await;
    assert_eq!(
        r.code,
        exit::TIMEOUT,
        "v3 is not rolled out yet: {}",
        r.stderr
    );
    let r = c
        .sluice(&kube_args(
            &c,
            &[
                "wait",
                "reviews",
                "--for",
                "succeeded",
                "--revision",
                &want,
                "--timeout",
                "5s",
            ],
        ))
        .await;
    assert_eq!(r.code, exit::OK, "v2's hash: {}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_reports_rollback_and_abort() {
    let c = Arc::new(Cluster::progressing().await);
    c.analyzer.set(Verdict::Fail);
    let controller = c.controller(|c| *c.now.lock().unwrap() += chrono::Duration::seconds(61));
    let r = c
        .sluice(&kube_args(
            &c,
            &[
                "wait",
                "reviews",
                "--for",
                "paused",
                "--timeout",
                "30s",
                "--interval",
                "100ms",
            ],
        ))
        .await;
    controller.stop().await;
    assert_eq!(r.code, exit::ROLLED_BACK, "{} {}", r.stdout, r.stderr);
    let st = c.status();
    assert_eq!(
        (st.phase, st.reason),
        (Phase::Failed, Some(Reason::AnalysisFailed))
    );

    // Retry from the CLI, then abort it while the test waits.
    let controller = c.controller(|_| {});
    let r = c.sluice(&kube_args(&c, &["retry", "reviews"])).await;
    assert_eq!(r.code, exit::OK, "{} {}", r.stdout, r.stderr);
    let r = c.sluice(&kube_args(&c, &["abort", "reviews"])).await;
    assert_eq!(r.code, exit::OK, "{} {}", r.stdout, r.stderr);
    let r = c
        .sluice(&kube_args(
            &c,
            &[
                "wait",
                "reviews",
                "--for",
                "succeeded",
                "--timeout",
                "30s",
                "--interval",
                "100ms",
            ],
        ))
        .await;
    controller.stop().await;
    assert_eq!(r.code, exit::ABORTED, "{} {}", r.stdout, r.stderr);
}
