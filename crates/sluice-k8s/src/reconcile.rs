//! The reconcile function: thin glue around [`sluice_core::exec::tick`] (see the module docs of
//! [`sluice_k8s`] for the flow), the finalizer's cleanup, and the status write.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kube::Client;
use kube::api::{Api, Patch};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use serde_json::{Value, json};

use super::recorder::{KubeRecorder, Live};
use super::router::KubeRouter;
use super::workloads::KubeWorkloads;
use super::{Error, ObjectError, Result, commands, names, objects, retry_on_conflict};
use sluice_core::backend::ChangeKind;
use sluice_core::engine::{Event, EventReason};
use sluice_core::exec::{self, Analyzer, Executors, Recorder, Webhooks};
use sluice_core::rollout_plan::RolloutPlan;
use sluice_core::spec::{Condition, Phase, Rollout, RolloutStatus};
use sluice_core::traffic::TrafficPlan;

pub use super::Clock;

/// Everything a reconcile needs; built once per controller.
pub struct Context {
    pub client: Client,
    pub workloads: Arc<KubeWorkloads>,
    pub router: Arc<KubeRouter>,
    pub recorder: Arc<KubeRecorder>,
    pub executors: Executors,
    pub live: Arc<Live>,
    pub clock: Clock,
    /// sluice's own metrics; `None` in tests that do not look at them.
    pub metrics: Option<Arc<sluice_telemetry::Metrics>>,
    /// Uids of Rollouts whose finalizer this replica removed (the last [`FINALIZED_KEPT`]): a
    /// reconcile queued from a lagging cache for one of them sends nothing at all.
    finalized: std::sync::Mutex<std::collections::VecDeque<String>>,
    /// The controller's watch caches (`None`: reads are GETs).
    pub caches: Option<Arc<crate::cache::Caches>>,
}

/// How many finalized Rollouts [`Context`] remembers (a few KiB).
const FINALIZED_KEPT: usize = 256;

impl Context {
    /// `client` must be the leader-gated client: every write of the reconcile goes through it.
    pub fn new(
        client: Client,
        analyzer: Arc<dyn Analyzer>,
        webhooks: Arc<dyn Webhooks>,
        live: Arc<Live>,
        clock: Clock,
    ) -> Self {
        let workloads = Arc::new(KubeWorkloads::new(client.clone()));
        let router = Arc::new(KubeRouter::new(client.clone(), live.clone()));
        let recorder = Arc::new(KubeRecorder::new(
            client.clone(),
            live.clone(),
            clock.clone(),
            None,
        ));
        let executors = Executors {
            router: router.clone(),
            workloads: workloads.clone(),
            analyzer,
            webhooks,
            recorder: recorder.clone(),
        };
        Context {
            client,
            workloads,
            router,
            recorder,
            executors,
            live,
            clock,
            metrics: None,
            finalized: Default::default(),
            caches: None,
        }
    }

    /// Reads from the controller's watch caches instead of the API server (see
    /// [`crate::cache`]). Call before [`Context::with_identity`] and
    /// [`Context::with_telemetry`], which wrap what this builds.
    pub fn with_caches(mut self, caches: Arc<crate::cache::Caches>) -> Self {
        let workloads = Arc::new(KubeWorkloads::with_caches(
            self.client.clone(),
            Arc::clone(&caches),
        ));
        let router = Arc::new(KubeRouter::with_caches(
            self.client.clone(),
            self.live.clone(),
            Arc::clone(&caches),
        ));
        self.executors.workloads = workloads.clone();
        self.executors.router = router.clone();
        self.workloads = workloads;
        self.router = router;
        self.caches = Some(caches);
        self
    }

    /// Names this replica in the Events it records (`reportingInstance`, e.g. the pod name).
    /// Call before [`Context::with_telemetry`], which wraps the recorder.
    pub fn with_identity(mut self, identity: &str) -> Self {
        let recorder = Arc::new(KubeRecorder::new(
            self.client.clone(),
            self.live.clone(),
            self.clock.clone(),
            Some(identity.to_string()),
        ));
        self.executors.recorder = recorder.clone();
        self.recorder = recorder;
        self
    }

    /// Adds analysis timing, event/verdict metrics and notifications around the executors.
    fn lock_finalized(&self) -> std::sync::MutexGuard<'_, std::collections::VecDeque<String>> {
        // A panic while holding this lock cannot leave the list inconsistent.
        self.finalized
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn finalized(&self, rollout: &Rollout) -> bool {
        let uid = rollout.metadata.uid.as_deref();
        uid.is_some_and(|uid| self.lock_finalized().iter().any(|u| u == uid))
    }

    fn remember_finalized(&self, rollout: &Rollout) {
        if let Some(uid) = rollout.metadata.uid.clone() {
            let mut kept = self.lock_finalized();
            if kept.len() == FINALIZED_KEPT {
                kept.pop_front();
            }
            kept.push_back(uid);
        }
    }

    pub fn with_telemetry(mut self, tel: &sluice_notify::Telemetry) -> Self {
        self.executors = tel.wrap(self.executors);
        self.metrics = Some(Arc::clone(&tel.metrics));
        self
    }
}

/// Entry point for the kube-runtime Controller.
pub async fn reconcile(rollout: Arc<Rollout>, ctx: Arc<Context>) -> Result<Action> {
    let ns = objects::namespace(&rollout)?.to_string();
    let deleting = rollout.metadata.deletion_timestamp.is_some();
    // Finalized here already (a uid is never reused): the copy comes from a cache that has not
    // seen the deletion yet. Not even a read: no request about a Rollout after its finalizer
    // is removed.
    if ctx.finalized(&rollout) {
        return Ok(Action::await_change());
    }
    let api: Api<Rollout> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(rollout) = current_while_deleting(&api, rollout).await? else {
        return Ok(Action::await_change());
    };
    let copy = deleting.then(|| Arc::clone(&rollout));
    let done = finalizer(&api, names::FINALIZER, rollout, |event| async {
        match event {
            Finalizer::Apply(r) => apply(&r, &ctx).await,
            Finalizer::Cleanup(r) => cleanup(&r, &ctx).await,
        }
    })
    .await;
    // For a Rollout being deleted, success means cleanup ran and the finalizer is gone.
    if let (Ok(_), Some(r)) = (&done, copy) {
        ctx.remember_finalized(&r);
    }
    done.map_err(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(e)
        | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        other => Error::Finalizer(other.to_string()),
    })
}

/// A Rollout being deleted, as the API server has it now, or `None` when its cleanup already
/// ran (gone, or our finalizer removed). The reflector cache can lag: a reconcile queued by a
/// related object's event may carry a copy whose finalizer was removed a moment ago, and
/// running cleanup on it again would re-point traffic and send `Finalized` twice.
async fn current_while_deleting(
    api: &Api<Rollout>,
    rollout: Arc<Rollout>,
) -> Result<Option<Arc<Rollout>>> {
    if rollout.metadata.deletion_timestamp.is_none() {
        return Ok(Some(rollout));
    }
    let fresh = api.get_opt(objects::name(&rollout)?).await?;
    Ok(fresh
        .filter(|r| {
            r.metadata
                .finalizers
                .as_ref()
                .is_some_and(|f| f.iter().any(|f| f == names::FINALIZER))
        })
        .map(Arc::new))
}

/// Requeue after an error: cleanup waiting for the target comes back soon, real errors a bit
/// later (the controller's own backoff applies on top for repeated failures).
pub fn error_policy(rollout: Arc<Rollout>, error: &Error, _ctx: Arc<Context>) -> Action {
    match error {
        Error::Waiting(why) => {
            tracing::debug!(rollout = %rollout.key(), %why, "waiting");
            Action::requeue(Duration::from_secs(5))
        }
        e => {
            tracing::warn!(rollout = %rollout.key(), error = %e, kind = e.metric_label(), "reconcile failed");
            Action::requeue(Duration::from_secs(15))
        }
    }
}

/// The Rollout parsed into the plan the engine runs, with the rules `sluice validate` applies
/// (`RolloutPlan::try_from` *is* those rules) plus what only Kubernetes mode needs; otherwise
/// every problem as `field path: message`.
pub fn parse_rollout(rollout: &Rollout) -> std::result::Result<RolloutPlan, Vec<String>> {
    let mut meta = sluice_core::validate::rules::Findings::default();
    sluice_core::validate::rules::check_metadata(rollout, &mut meta);
    let mut out: Vec<String> = meta
        .0
        .into_iter()
        .map(|(path, message)| format!("{path}: {message}"))
        .collect();
    let plan = RolloutPlan::try_from(&rollout.spec)
        .map_err(|e| out.extend(e.0.iter().map(|p| p.to_string())));
    if rollout.spec.target_ref.is_none() {
        out.push(
            "spec.targetRef: required on Kubernetes (spec.upstreams is for standalone mode)"
                .to_string(),
        );
    }
    match plan {
        Ok(plan) if out.is_empty() => Ok(plan),
        _ => Err(out),
    }
}

/// An invalid spec stops the rollout where it is: no object is created or changed, no engine
/// step runs, traffic stays as it was. The status says why (`Ready=False`, reason
/// `InvalidSpec`, the first problem's field path) and one Warning Event per generation does
/// too; a spec edit wakes the controller again.
async fn refuse_invalid_spec(
    rollout: &Rollout,
    ctx: &Context,
    problems: &[String],
) -> Result<Action> {
    let more = match problems.len() {
        0 | 1 => String::new(),
        n => format!(" (and {} more)", n - 1),
    };
    let message = format!(
        "invalid spec: {}{more}",
        problems.first().map_or("", String::as_str)
    );
    report_blocked(rollout, ctx, EventReason::InvalidSpec, &message).await?;
    tracing::warn!(rollout = %rollout.key(), problems = ?problems, "invalid spec: not acting on it");
    Ok(Action::await_change())
}

/// What stops a rollout before any decision, as the condition reason and message a user reads
/// in `kubectl describe rollout`; `None` for errors that are not about this Rollout's world
/// (a conflict, a timeout: retried without a word).
fn blocking_cause(e: &Error, step: SetupStep) -> Option<(EventReason, String)> {
    match (e, step) {
        (Error::NotFound(what), SetupStep::Workloads) => Some((
            EventReason::TargetNotFound,
            format!("{what}; create it or fix spec.targetRef"),
        )),
        (Error::Object(ObjectError::NoSelector(d)), _) => Some((
            EventReason::UnsupportedSelector,
            format!(
                "target Deployment {d} selects its pods with matchExpressions only; sluice needs \
                 spec.selector.matchLabels"
            ),
        )),
        (Error::NotFound(what), SetupStep::Istio | SetupStep::GatewayApi) => Some((
            EventReason::RouteNotFound,
            format!("{what}; create it or fix the reference"),
        )),
        (Error::OwnedRoute(e), _) => Some((EventReason::RouteRuleUnusable, e.to_string())),
        (Error::Kube(kube::Error::Api(s)), SetupStep::Istio) if s.code == 404 => Some((
            EventReason::IstioAPIMissing,
            format!(
                "networking.istio.io/v1 destinationrules/virtualservices not served by this \
                 cluster (Istio >= 1.22 installs them): {}",
                s.message
            ),
        )),
        (Error::ApiMissing(what), SetupStep::GatewayApi) => Some((
            EventReason::GatewayAPIMissing,
            format!(
                "{what} not served by this cluster: install the Gateway API CRDs (standard \
                 channel, v1.1 or later for GRPCRoute), or remove spec.routing.gatewayAPI to \
                 route with Istio"
            ),
        )),
        (Error::Kube(kube::Error::Api(s)), step) if s.code == 403 => Some((
            EventReason::Forbidden,
            format!(
                "{}: {} (check the ClusterRole in deploy/rbac)",
                step.what(),
                s.message
            ),
        )),
        _ => None,
    }
}

/// The setup steps before the engine runs, for naming what failed.
#[derive(Clone, Copy, Debug)]
enum SetupStep {
    Workloads,
    Istio,
    GatewayApi,
}

impl SetupStep {
    fn what(self) -> &'static str {
        match self {
            SetupStep::Workloads => "creating <name>-primary and its Services",
            SetupStep::Istio => "preparing the routes (DestinationRules, or the route you own)",
            SetupStep::GatewayApi => "reading the Gateway API discovery, or the route you own",
        }
    }
}

/// Writes `Ready=False` with `reason` and `message` (also `status.message`) and sends one
/// Warning Event per distinct cause: not again while the same message stands for the same
/// generation. Nothing else in the status changes (traffic stays as it is).
async fn report_blocked(
    rollout: &Rollout,
    ctx: &Context,
    reason: EventReason,
    message: &str,
) -> Result<()> {
    let name = objects::name(rollout)?;
    let api: Api<Rollout> = Api::namespaced(ctx.client.clone(), objects::namespace(rollout)?);
    let old = rollout.status.clone().unwrap_or_default();
    let now = ctx.clock.now();
    let already_told = old.observed_generation == rollout.metadata.generation
        && old.conditions.iter().any(|c| {
            c.kind == names::READY_CONDITION && c.reason == reason.as_str() && c.message == message
        });
    let mut status = old.clone();
    status.observed_generation = rollout.metadata.generation;
    status.message = Some(message.to_string());
    let since = old
        .conditions
        .iter()
        .find(|c| c.kind == names::READY_CONDITION && c.status == "False")
        .map_or(now, |c| c.last_transition_time);
    status
        .conditions
        .retain(|c| c.kind != names::READY_CONDITION);
    status.conditions.push(Condition {
        kind: names::READY_CONDITION.into(),
        status: "False".into(),
        reason: reason.as_str().into(),
        message: message.to_string(),
        last_transition_time: since,
    });
    if status != old {
        write_status(&api, name, &old, &status).await?;
        ctx.live.notify(rollout, &status, ChangeKind::Status);
    }
    if !already_told {
        let ev = Event {
            reason,
            message: message.to_string(),
            warning: true,
        };
        ctx.recorder.event(rollout, &status, &ev).await;
    }
    Ok(())
}

/// Runs a setup step; an error that blocks the rollout is also written where the user looks.
async fn setup<T>(
    rollout: &Rollout,
    ctx: &Context,
    step: SetupStep,
    result: Result<T>,
) -> Result<T> {
    if let Err(e) = &result
        && let Some((reason, message)) = blocking_cause(e, step)
    {
        tracing::warn!(rollout = %rollout.key(), %reason, %message, "blocked");
        report_blocked(rollout, ctx, reason, &message).await?;
    }
    result
}

/// How soon a Rollout whose templates do not resolve is looked at again: a template created or
/// fixed later does not change the Rollout, so no watch event would wake it.
pub const TEMPLATE_RETRY: Duration = Duration::from_secs(30);

/// `rollout` with its analysis templates resolved against the API server as it is now (an
/// edited template applies at the next check; the engine records its new resourceVersion),
/// or every problem as `field path: message`.
pub async fn with_templates(
    rollout: &Rollout,
    client: &Client,
) -> Result<std::result::Result<Rollout, Vec<String>>> {
    use sluice_core::analysis_template::{
        self as at, AnalysisTemplate, ClusterAnalysisTemplate, Scope, TemplateSource, Templates,
    };
    if rollout.spec.analysis.templates.is_empty() {
        return Ok(Ok(rollout.clone()));
    }
    let ns = objects::namespace(rollout)?;
    let mut set = Templates::default();
    for t in &rollout.spec.analysis.templates {
        let found = if t.cluster_scope {
            let api: Api<ClusterAnalysisTemplate> = Api::all(client.clone());
            api.get_opt(&t.name)
                .await?
                .map(|o| (Scope::Cluster, None, o.metadata, o.spec.into()))
        } else {
            let api: Api<AnalysisTemplate> = Api::namespaced(client.clone(), ns);
            api.get_opt(&t.name)
                .await?
                .map(|o| (Scope::Namespaced, Some(ns.to_string()), o.metadata, o.spec))
        };
        if let Some((scope, namespace, meta, spec)) = found {
            set.insert(TemplateSource {
                scope,
                namespace,
                name: t.name.clone(),
                version: meta
                    .resource_version
                    .unwrap_or_else(|| at::content_hash(&spec)),
                spec,
            });
        }
    }
    Ok(at::resolve(rollout, &set).map_err(|e| e.iter().map(ToString::to_string).collect()))
}

async fn apply(rollout: &Rollout, ctx: &Context) -> Result<Action> {
    let resolved = match with_templates(rollout, &ctx.client).await? {
        Ok(r) => r,
        Err(problems) => {
            refuse_invalid_spec(rollout, ctx, &problems).await?;
            return Ok(Action::requeue(TEMPLATE_RETRY));
        }
    };
    let rollout = &resolved;
    let plan = match parse_rollout(rollout) {
        Ok(plan) => plan,
        Err(problems) => return refuse_invalid_spec(rollout, ctx, &problems).await,
    };
    setup(
        rollout,
        ctx,
        SetupStep::Workloads,
        ctx.workloads.ensure(rollout).await,
    )
    .await?;
    let routing = if rollout.spec.routing.gateway_api.is_some() {
        SetupStep::GatewayApi
    } else {
        SetupStep::Istio
    };
    setup(rollout, ctx, routing, ctx.router.ensure(rollout).await).await?;

    let name = objects::name(rollout)?;
    let api: Api<Rollout> = Api::namespaced(ctx.client.clone(), objects::namespace(rollout)?);
    let old = rollout.status.clone().unwrap_or_default();
    let now = ctx.clock.now();

    let pending = commands::pending(rollout);
    let mut command = None;
    let mut processed = None;
    if let Some(p) = &pending {
        match &p.command {
            _ if commands::already_processed(&old, &p.raw) => {}
            Ok(c) => {
                command = Some(*c);
                let outcome = match sluice_core::engine::command_allowed(&old, *c) {
                    Ok(()) => "Accepted",
                    Err(_) => "Rejected",
                };
                processed = Some((p.raw.clone(), outcome));
            }
            Err(msg) => {
                let ev = Event {
                    reason: EventReason::CommandRejected,
                    message: msg.clone(),
                    warning: true,
                };
                ctx.recorder.event(rollout, &old, &ev).await;
                processed = Some((p.raw.clone(), "Invalid"));
            }
        }
    }

    // A command annotated while the tick waits on a slow analysis or webhook: `abort` and
    // `pause` cut it short instead of waiting for the next reconcile.
    let caught: std::sync::Mutex<Option<commands::Pending>> = std::sync::Mutex::new(None);
    let out = {
        let seen = pending.as_ref().map(|p| p.raw.clone());
        let interrupt = watch_for_preempting_command(ctx, &api, rollout, &old, seen, &caught);
        let interrupt: exec::Interrupt<'_> = std::pin::pin!(interrupt);
        match &ctx.metrics {
            Some(m) => {
                sluice_telemetry::observed_tick_interruptible(
                    &ctx.executors,
                    m,
                    rollout,
                    &plan,
                    &old,
                    command,
                    now,
                    Some(interrupt),
                )
                .await
            }
            None => {
                exec::tick_interruptible(
                    &ctx.executors,
                    rollout,
                    &plan,
                    &old,
                    command,
                    now,
                    Some(interrupt),
                )
                .await
            }
        }
    };
    let caught = caught.into_inner().unwrap_or_else(|e| e.into_inner());
    // The engine saw the caught command unless an executor failed first: then the annotation
    // stays, and the next reconcile runs it.
    let caught = caught.filter(|_| out.unhandled_command.is_none());
    if let Some(c) = &caught
        && let Ok(cmd) = c.command
    {
        let outcome = match sluice_core::engine::command_allowed(&old, cmd) {
            Ok(()) => "Accepted",
            Err(_) => "Rejected",
        };
        processed = Some((c.raw.clone(), outcome));
    }
    let mut status = out.status.clone();
    if let Some(plan) = out.applied.clone() {
        // Only after the router confirmed it: the status says what is served.
        status.applied_traffic = Some(plan);
    }
    status.observed_generation = rollout.metadata.generation;
    status.conditions = conditions(&old, &status, now, processed);
    // An unchanged status is not written: every write is a watch event that wakes us again.
    if status != old {
        // A failed write returns here: the tick's events never leave, and the next reconcile
        // decides again from the old status (the outbox contract of `exec::deliver`).
        write_status(&api, name, &old, &status).await?;
        ctx.live.notify(rollout, &status, ChangeKind::Status);
    }
    sluice_telemetry::observed_deliver(
        &ctx.executors,
        rollout,
        out.revision.as_deref(),
        &out.outbox,
    )
    .await;
    for p in pending.iter().chain(caught.iter()) {
        // Clears only what the annotation still says: the caught command replaced the first.
        commands::clear(&api, name, &p.raw).await?;
    }
    if let Some(e) = out.error {
        // The status written above already holds every effect that succeeded.
        return Err(e.into());
    }
    ctx.workloads.settle(rollout, &status).await?;
    Ok(Action::requeue(requeue_after(&plan, &status, now)))
}

/// How often a reconcile waiting on an analysis or a webhook re-reads its Rollout for a
/// preempting command (`abort`, `pause`): the bound on how late such a command lands.
pub const COMMAND_POLL: Duration = Duration::from_millis(250);

/// Resolves with a preempting command annotated on the Rollout after this reconcile read it
/// (`seen`), storing the annotation in `caught`. Reads start after one [`COMMAND_POLL`]: a
/// quick tick costs no extra request.
async fn watch_for_preempting_command(
    ctx: &Context,
    api: &Api<Rollout>,
    rollout: &Rollout,
    status: &RolloutStatus,
    seen: Option<String>,
    caught: &std::sync::Mutex<Option<commands::Pending>>,
) -> sluice_core::engine::Command {
    let (ns, name) = (
        rollout.metadata.namespace.as_deref().unwrap_or_default(),
        rollout.metadata.name.as_deref().unwrap_or_default(),
    );
    loop {
        tokio::time::sleep(COMMAND_POLL).await;
        // The watch cache has the annotation as soon as the watch delivers it: no request.
        let cached = ctx.caches.as_ref().map(|c| c.rollouts.get(ns, name));
        let fresh = match cached {
            Some(Ok(Some(r))) => r,
            _ => match api.get(name).await {
                Ok(r) => r,
                Err(_) => continue,
            },
        };
        let Some(p) = commands::pending(&fresh) else {
            continue;
        };
        if Some(&p.raw) == seen.as_ref() || commands::already_processed(status, &p.raw) {
            continue;
        }
        if let Ok(c) = p.command
            && c.preempts()
        {
            *caught.lock().unwrap_or_else(|e| e.into_inner()) = Some(p);
            return c;
        }
    }
}

/// Patches the status subresource with `new`. A merge patch, with explicit nulls for fields
/// `new` dropped (optional fields are omitted when empty, and a merge patch would keep them).
pub async fn write_status(
    api: &Api<Rollout>,
    name: &str,
    old: &RolloutStatus,
    new: &RolloutStatus,
) -> Result<()> {
    let body = status_patch(old, new)?;
    let (params, patch) = (super::names::patch_params(), Patch::Merge(&body));
    retry_on_conflict("write status", || api.patch_status(name, &params, &patch)).await?;
    Ok(())
}

pub fn status_patch(old: &RolloutStatus, new: &RolloutStatus) -> Result<Value> {
    let ser = |s: &RolloutStatus| {
        serde_json::to_value(s).map_err(|e| Error::Invalid(format!("status: {e}")))
    };
    let (old_v, mut new_v) = (ser(old)?, ser(new)?);
    if let (Some(o), Some(n)) = (old_v.as_object(), new_v.as_object_mut()) {
        for k in o.keys() {
            n.entry(k.clone()).or_insert(Value::Null);
        }
    }
    Ok(json!({ "status": new_v }))
}

/// `Progressing` and `Healthy` from the phase, plus the command acknowledgement.
/// `lastTransitionTime` only moves when a condition's status changes.
pub fn conditions(
    old: &RolloutStatus,
    new: &RolloutStatus,
    now: DateTime<Utc>,
    processed: Option<(String, &str)>,
) -> Vec<Condition> {
    let reason = new
        .reason
        .map(|r| {
            serde_json::to_value(r)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        })
        .filter(|r| !r.is_empty())
        .map(|r| {
            let mut c = r.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect())
                .unwrap_or_default()
        })
        .unwrap_or_else(|| new.phase.as_str().to_string());
    let message = new.message.clone().unwrap_or_default();
    let progressing = matches!(
        new.phase,
        Phase::Progressing | Phase::Paused | Phase::Promoting
    );
    let healthy = new.phase != Phase::Failed;
    let mut out = Vec::new();
    for (kind, status) in [("Progressing", progressing), ("Healthy", healthy)] {
        let status = if status { "True" } else { "False" }.to_string();
        let since = old
            .conditions
            .iter()
            .find(|c| c.kind == kind && c.status == status)
            .map(|c| c.last_transition_time)
            .unwrap_or(now);
        out.push(Condition {
            kind: kind.into(),
            status,
            reason: reason.clone(),
            message: message.clone(),
            last_transition_time: since,
        });
    }
    // The tick's own: whether Istio took the last plan (see `exec::TRAFFIC_CONDITION`) and
    // whether every workload effect ran (`exec::EFFECTS_CONDITION`).
    out.extend(
        new.conditions
            .iter()
            .filter(|c| c.kind == exec::TRAFFIC_CONDITION || c.kind == exec::EFFECTS_CONDITION)
            .cloned(),
    );
    match processed {
        Some((raw, outcome)) => out.push(commands::processed_condition(&raw, outcome, now)),
        None => out.extend(
            old.conditions
                .iter()
                .filter(|c| c.kind == names::COMMAND_CONDITION)
                .cloned(),
        ),
    }
    out
}

/// When to look again: at the next analysis while a step runs, soon while waiting for pods,
/// the analysis interval otherwise (watches on the Rollout and the Deployments wake us on
/// every change anyway).
pub fn requeue_after(plan: &RolloutPlan, status: &RolloutStatus, now: DateTime<Utc>) -> Duration {
    let interval = plan.analysis.interval_std;
    let floor = Duration::from_secs(1);
    if status.reason == Some(sluice_core::spec::Reason::WaitingForReady) {
        return interval.min(Duration::from_secs(5)).max(floor);
    }
    match status.phase {
        Phase::Progressing | Phase::Promoting => status
            .next_analysis_at
            .and_then(|t| (t - now).to_std().ok())
            .unwrap_or(interval)
            .clamp(floor, interval.max(floor)),
        _ => interval.max(floor),
    }
}

/// Deletion: 100% to primary first, the user's Deployment back at full scale and Ready, then
/// sluice's objects removed. Until the target is Ready the finalizer stays (returns
/// [`Error::Waiting`]), so traffic is never left without pods.
pub async fn cleanup(rollout: &Rollout, ctx: &Context) -> Result<Action> {
    if rollout.spec.target_ref.is_none() {
        return Ok(Action::await_change());
    }
    // Never creates the VirtualService on the way out (a Rollout deleted before its first
    // reconcile has none; one whose cleanup already ran has had it removed).
    ctx.router
        .apply_plan_if_present(rollout, &TrafficPlan::stable_only())
        .await?;
    if !ctx.workloads.restore_target(rollout).await? {
        return Err(Error::Waiting(format!(
            "{}: target Deployment scaling back up before cleanup",
            rollout.key()
        )));
    }
    // Routes first: a route the user owns gets its rule back (pointing at their own Services)
    // before `<name>-primary` and its Service go.
    ctx.router.remove(rollout).await?;
    ctx.workloads.remove(rollout).await?;
    let status = rollout.status.clone().unwrap_or_default();
    let ev = Event {
        reason: EventReason::Finalized,
        message: "traffic on the target again; sluice's objects removed".into(),
        warning: false,
    };
    ctx.recorder.event(rollout, &status, &ev).await;
    ctx.live.notify(rollout, &status, ChangeKind::Deleted);
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::spec::Reason;

    #[test]
    fn status_patch_nulls_dropped_fields() {
        let old = RolloutStatus {
            reason: Some(Reason::Inconclusive),
            message: Some("x".into()),
            ..Default::default()
        };
        let new = RolloutStatus::default();
        let p = status_patch(&old, &new).expect("patch");
        assert_eq!(p["status"]["reason"], Value::Null);
        assert_eq!(p["status"]["message"], Value::Null);
        assert_eq!(p["status"]["phase"], json!("Idle"));
    }

    #[test]
    fn conditions_keep_transition_time_while_unchanged() {
        let t0 = Utc::now();
        let t1 = t0 + chrono::Duration::seconds(30);
        let mut s = RolloutStatus {
            phase: Phase::Progressing,
            ..Default::default()
        };
        s.conditions = conditions(&RolloutStatus::default(), &s, t0, None);
        let again = conditions(&s, &s, t1, None);
        let p = again
            .iter()
            .find(|c| c.kind == "Progressing")
            .expect("cond");
        assert_eq!((p.status.as_str(), p.last_transition_time), ("True", t0));
        let failed = RolloutStatus {
            phase: Phase::Failed,
            reason: Some(Reason::AnalysisFailed),
            ..s.clone()
        };
        let c = conditions(&s, &failed, t1, Some(("abort@1".into(), "Accepted")));
        let h = c.iter().find(|c| c.kind == "Healthy").expect("cond");
        assert_eq!(
            (h.status.as_str(), h.reason.as_str()),
            ("False", "AnalysisFailed")
        );
        assert_eq!(h.last_transition_time, t1);
        assert!(
            c.iter()
                .any(|c| c.kind == names::COMMAND_CONDITION && c.message == "abort@1")
        );
    }
}
