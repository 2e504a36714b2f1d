//! A small in-memory Kubernetes API server as a tower Service, for `kube::Client::new`.
//!
//! What it models (enough for sluice's reconcile to run many rounds): objects per
//! group/resource/namespace/name, resourceVersions (bumped on every write, checked on PUT and
//! on merge patches that carry one → 409), `generation` bumped on spec changes, status
//! subresources (writes to `/status` change only `.status`, writes to the object never do),
//! finalizers (DELETE sets `deletionTimestamp`; the object goes away when the last finalizer is
//! removed), JSON patch (test/add/remove), JSON merge patch, and server-side apply as a merge
//! that creates missing objects, and watches: `?watch=true&resourceVersion=N` streams every
//! change after N (ADDED / MODIFIED / DELETED, one JSON object per line) and then each new one
//! as it happens, so kube-runtime's watchers, reflectors and controllers run against it; a
//! resourceVersion older than the last [`FakeApi::compact`] gets the API server's answer, an
//! `ERROR` event with a `410 Gone` Status (the watcher then lists again). What it does not
//! model: field ownership of server-side apply, validation, bookmarks, watch timeouts. Tests
//! can inject error answers and read a log of every request.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::BodyExt;
use kube::client::Body;
use serde_json::{Value, json};

#[derive(Clone, Debug)]
pub struct Logged {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub body: Value,
    /// RBAC view of the request.
    pub group: String,
    pub resource: String,
    pub verb: String,
    pub status: u16,
}

/// An edit of one object, as a user makes it.
type UserEdit = Box<dyn FnOnce(&mut Value) + Send>;

/// A user's edit waiting for a request ([`FakeApi::edit_before_next`]).
struct PendingEdit {
    method: Method,
    path_suffix: String,
    edit: Option<UserEdit>,
}

struct Injection {
    method: Method,
    path_suffix: String,
    code: u16,
    times: usize,
}

type Key = (String, String, String, String);

/// One change, as a watch reports it.
struct Change {
    rv: u64,
    key: Key,
    kind: &'static str,
    object: Value,
}

/// One change as [`FakeApi::history`] reports it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub rv: u64,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub kind: &'static str,
    pub group: String,
    pub resource: String,
    pub namespace: String,
    pub name: String,
    pub object: Value,
}

/// An open watch: (group, resource, namespace or "" for all) and where its lines go.
struct Watcher {
    group: String,
    resource: String,
    namespace: String,
    tx: tokio::sync::mpsc::UnboundedSender<Bytes>,
}

impl Watcher {
    fn sees(&self, key: &Key) -> bool {
        key.0 == self.group
            && key.1 == self.resource
            && (self.namespace.is_empty() || key.2 == self.namespace)
    }
}

fn watch_line(kind: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

#[derive(Default)]
struct State {
    /// (group, resource, namespace, name) → object.
    objects: BTreeMap<Key, Value>,
    rv: u64,
    uid: u64,
    log: Vec<Logged>,
    injections: Vec<Injection>,
    edits: Vec<PendingEdit>,
    /// Every change since the last compaction, oldest first.
    changes: Vec<Change>,
    /// Watches from a resourceVersion below this get 410 Gone.
    compacted_at: u64,
    watchers: Vec<Watcher>,
    /// API groups this server does not serve (their CRDs not installed): discovery and every
    /// request to them answer 404, as the API server does.
    unserved: std::collections::BTreeSet<String>,
}

impl State {
    /// Records a change for watches, and sends it to the open ones.
    fn changed(&mut self, kind: &'static str, key: &Key, object: &Value) {
        let line = watch_line(kind, object);
        self.watchers
            .retain(|w| !w.sees(key) || w.tx.send(line.clone()).is_ok());
        self.changes.push(Change {
            rv: self.rv,
            key: key.clone(),
            kind,
            object: object.clone(),
        });
    }
}

/// A response body: one JSON document, or a watch's stream of lines.
pub enum FakeBody {
    Once(Option<Bytes>),
    Watch(tokio::sync::mpsc::UnboundedReceiver<Bytes>),
}

impl http_body::Body for FakeBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            FakeBody::Once(b) => Poll::Ready(b.take().map(|b| Ok(http_body::Frame::data(b)))),
            FakeBody::Watch(rx) => rx
                .poll_recv(cx)
                .map(|line| line.map(|b| Ok(http_body::Frame::data(b)))),
        }
    }
}

#[derive(Clone, Default)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
}

struct Target {
    group: String,
    resource: String,
    namespace: String,
    name: Option<String>,
    sub: Option<String>,
}

fn parse_path(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", "v1", rest @ ..] => (String::new(), rest),
        ["apis", g, _v, rest @ ..] => (g.to_string(), rest),
        _ => return None,
    };
    match rest {
        ["namespaces", ns, resource, tail @ ..] => Some(Target {
            group,
            resource: resource.to_string(),
            namespace: ns.to_string(),
            name: tail.first().map(|s| s.to_string()),
            sub: tail.get(1).map(|s| s.to_string()),
        }),
        [resource] => Some(Target {
            group,
            resource: resource.to_string(),
            namespace: String::new(),
            name: None,
            sub: None,
        }),
        // Cluster-scoped objects (ClusterAnalysisTemplates).
        [resource, name, tail @ ..] if *resource != "namespaces" => Some(Target {
            group,
            resource: resource.to_string(),
            namespace: String::new(),
            name: Some(name.to_string()),
            sub: tail.first().map(|s| s.to_string()),
        }),
        _ => None,
    }
}

fn status_body(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
           "reason": reason, "message": message})
}

/// RFC 7386 JSON merge patch.
pub fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            if let Some(t) = target.as_object_mut() {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

impl FakeApi {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn client(&self) -> kube::Client {
        kube::Client::new(self.clone(), "default")
    }

    fn key(group: &str, resource: &str, ns: &str, name: &str) -> (String, String, String, String) {
        (group.into(), resource.into(), ns.into(), name.into())
    }

    /// Store an object directly (as if created by someone else), with fresh metadata.
    pub fn seed(&self, group: &str, resource: &str, obj: Value) {
        let mut s = self.state.lock().expect("lock");
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut obj = obj;
        s.rv += 1;
        s.uid += 1;
        obj["metadata"]["resourceVersion"] = json!(s.rv.to_string());
        if obj["metadata"]["uid"].is_null() {
            obj["metadata"]["uid"] = json!(format!("uid-{}", s.uid));
        }
        if obj["metadata"]["generation"].is_null() {
            obj["metadata"]["generation"] = json!(1);
        }
        let key = Self::key(group, resource, &ns, &name);
        let kind = if s.objects.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        s.changed(kind, &key, &obj);
        s.objects.insert(key, obj);
    }

    /// Forgets the change history, as etcd compaction does: watches from an older
    /// resourceVersion get `410 Gone` and must list again.
    pub fn compact(&self) {
        let mut s = self.state.lock().expect("lock");
        s.compacted_at = s.rv + 1;
        s.changes.clear();
    }

    /// Every change since the last [`FakeApi::compact`], oldest first, each with the object as
    /// it was right after that change: for tests that check what was true at every moment
    /// (e.g. what a Service selected while another object had some state).
    pub fn history(&self) -> Vec<Recorded> {
        let s = self.state.lock().expect("lock");
        s.changes
            .iter()
            .map(|c| Recorded {
                rv: c.rv,
                kind: c.kind,
                group: c.key.0.clone(),
                resource: c.key.1.clone(),
                namespace: c.key.2.clone(),
                name: c.key.3.clone(),
                object: c.object.clone(),
            })
            .collect()
    }

    /// How many watches are open now (for tests that wait for a controller to start).
    pub fn open_watches(&self) -> usize {
        let mut s = self.state.lock().expect("lock");
        s.watchers.retain(|w| !w.tx.is_closed());
        s.watchers.len()
    }

    /// Serves `GET …?watch=true`: what changed after the requested resourceVersion, then every
    /// new change until the client hangs up.
    fn watch(&self, path: &str, query: &str) -> (u16, FakeBody) {
        let mut s = self.state.lock().expect("lock");
        let t = parse_path(path);
        s.log.push(Logged {
            method: Method::GET,
            path: path.into(),
            query: query.into(),
            content_type: String::new(),
            body: Value::Null,
            group: t.as_ref().map(|t| t.group.clone()).unwrap_or_default(),
            resource: t.as_ref().map(|t| t.resource.clone()).unwrap_or_default(),
            verb: "watch".into(),
            status: 200,
        });
        let Some(t) = t else {
            let body = serde_json::to_vec(&status_body(404, "NotFound", path)).unwrap_or_default();
            return (404, FakeBody::Once(Some(Bytes::from(body))));
        };
        let from: u64 = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("resourceVersion="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(s.rv);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        if from + 1 < s.compacted_at {
            let gone = json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": format!("too old resource version: {from} ({})", s.compacted_at),
                "reason": "Expired", "code": 410,
            });
            let _ = tx.send(watch_line("ERROR", &gone));
            return (200, FakeBody::Watch(rx));
        }
        let w = Watcher {
            group: t.group,
            resource: t.resource,
            namespace: t.namespace,
            tx,
        };
        for c in s.changes.iter().filter(|c| c.rv > from && w.sees(&c.key)) {
            let _ = w.tx.send(watch_line(c.kind, &c.object));
        }
        s.watchers.push(w);
        (200, FakeBody::Watch(rx))
    }

    pub fn get(&self, group: &str, resource: &str, ns: &str, name: &str) -> Option<Value> {
        let s = self.state.lock().expect("lock");
        s.objects
            .get(&Self::key(group, resource, ns, name))
            .cloned()
    }

    /// Edit an object as a user would (spec changes bump generation).
    pub fn edit(
        &self,
        group: &str,
        resource: &str,
        ns: &str,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) {
        let mut s = self.state.lock().expect("lock");
        Self::edit_locked(&mut s, &Self::key(group, resource, ns, name), f);
    }

    fn edit_locked(s: &mut State, key: &Key, f: impl FnOnce(&mut Value)) {
        s.rv += 1;
        let rv = s.rv;
        if let Some(obj) = s.objects.get_mut(key) {
            let spec_before = obj["spec"].clone();
            f(obj);
            if obj["spec"] != spec_before {
                let g = obj["metadata"]["generation"].as_i64().unwrap_or(1);
                obj["metadata"]["generation"] = json!(g + 1);
            }
            obj["metadata"]["resourceVersion"] = json!(rv.to_string());
            let obj = obj.clone();
            s.changed("MODIFIED", key, &obj);
        }
    }

    /// A user's edit that lands just before the next `method` request whose path ends with
    /// `path_suffix` is served, on the object that request names: a write that carries the
    /// resourceVersion it read before then meets a real 409 Conflict.
    pub fn edit_before_next(
        &self,
        method: Method,
        path_suffix: &str,
        f: impl FnOnce(&mut Value) + Send + 'static,
    ) {
        self.state.lock().expect("lock").edits.push(PendingEdit {
            method,
            path_suffix: path_suffix.into(),
            edit: Some(Box::new(f)),
        });
    }

    /// The Deployment controller and kubelet: every Deployment is rolled out and available.
    pub fn roll_out_deployments(&self) {
        let mut s = self.state.lock().expect("lock");
        let keys: Vec<Key> = s
            .objects
            .keys()
            .filter(|(g, r, _, _)| g == "apps" && r == "deployments")
            .cloned()
            .collect();
        for key in keys {
            let Some(current) = s.objects.get(&key) else {
                continue;
            };
            let replicas = current["spec"]["replicas"].as_i64().unwrap_or(1);
            let status = json!({
                "observedGeneration": current["metadata"]["generation"],
                "replicas": replicas, "updatedReplicas": replicas,
                "readyReplicas": replicas, "availableReplicas": replicas,
            });
            // Compared before cloning: `sluice bench kube` calls this often over thousands.
            if current["status"] == status {
                continue;
            }
            let mut obj = current.clone();
            obj["status"] = status;
            s.rv += 1;
            obj["metadata"]["resourceVersion"] = json!(s.rv.to_string());
            s.changed("MODIFIED", &key, &obj);
            s.objects.insert(key, obj);
        }
    }

    /// Stops serving API `group` (as if its CRDs were uninstalled): discovery of it and every
    /// request to its resources get 404.
    pub fn unserve(&self, group: &str) {
        self.state
            .lock()
            .expect("lock")
            .unserved
            .insert(group.to_string());
    }

    /// Serves `group` again (its CRDs installed).
    pub fn serve_group(&self, group: &str) {
        self.state.lock().expect("lock").unserved.remove(group);
    }

    /// `GET /apis/<group>/<version>` (API discovery): the resources sluice uses in that group,
    /// or 404 when the group is not served. Logged as a `get` of resource "" (RBAC grants
    /// discovery to every authenticated user).
    fn discovery(s: &mut State, method: &Method, path: &str) -> Option<(u16, Value)> {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let ["apis", group, version] = parts.as_slice() else {
            return None;
        };
        if method != Method::GET {
            return None;
        }
        let resources: &[(&str, &str)] = match *group {
            "gateway.networking.k8s.io" => {
                &[("httproutes", "HTTPRoute"), ("grpcroutes", "GRPCRoute")]
            }
            "networking.istio.io" => &[
                ("virtualservices", "VirtualService"),
                ("destinationrules", "DestinationRule"),
            ],
            _ => &[],
        };
        let answer = if s.unserved.contains(*group) {
            (
                404,
                status_body(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                ),
            )
        } else {
            let list: Vec<Value> = resources
                .iter()
                .map(|(plural, kind)| {
                    json!({"name": plural, "singularName": "", "namespaced": true, "kind": kind,
                           "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]})
                })
                .collect();
            (
                200,
                json!({"kind": "APIResourceList", "apiVersion": "v1",
                       "groupVersion": format!("{group}/{version}"), "resources": list}),
            )
        };
        s.log.push(Logged {
            method: Method::GET,
            path: path.into(),
            query: String::new(),
            content_type: String::new(),
            body: Value::Null,
            group: group.to_string(),
            resource: String::new(),
            verb: "get".into(),
            status: answer.0,
        });
        Some(answer)
    }

    /// Answer the next `times` requests with `method` whose path ends with `path_suffix`
    /// with an error `code` (409 → Conflict, 404 → NotFound, 403 → Forbidden, else InternalError).
    pub fn inject(&self, method: Method, path_suffix: &str, code: u16, times: usize) {
        self.state.lock().expect("lock").injections.push(Injection {
            method,
            path_suffix: path_suffix.into(),
            code,
            times,
        });
    }

    pub fn log(&self) -> Vec<Logged> {
        self.state.lock().expect("lock").log.clone()
    }

    pub fn clear_log(&self) {
        self.state.lock().expect("lock").log.clear();
    }

    fn handle(
        &self,
        method: Method,
        path: &str,
        query: &str,
        ct: &str,
        body: Value,
    ) -> (u16, Value) {
        let mut s = self.state.lock().expect("lock");
        if let Some(answer) = Self::discovery(&mut s, &method, path) {
            return answer;
        }
        let Some(t) = parse_path(path) else {
            return (
                404,
                status_body(404, "NotFound", &format!("no route {path}")),
            );
        };
        if s.unserved.contains(&t.group) {
            return (
                404,
                status_body(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                ),
            );
        }
        let resource = match &t.sub {
            Some(sub) => format!("{}/{sub}", t.resource),
            None => t.resource.clone(),
        };
        let verb = match (&method, &t.name) {
            (&Method::GET, None) if query.contains("watch=true") => "watch",
            (&Method::GET, None) => "list",
            (&Method::GET, Some(_)) => "get",
            (&Method::POST, _) => "create",
            (&Method::PUT, _) => "update",
            (&Method::PATCH, _) => "patch",
            (&Method::DELETE, _) => "delete",
            _ => "unknown",
        };
        let due = s.edits.iter_mut().find_map(|e| {
            (e.method == method && path.ends_with(&e.path_suffix))
                .then(|| e.edit.take())
                .flatten()
        });
        if let (Some(edit), Some(name)) = (due, &t.name) {
            let key = Self::key(&t.group, &t.resource, &t.namespace, name);
            Self::edit_locked(&mut s, &key, edit);
        }
        s.edits.retain(|e| e.edit.is_some());
        let mut injected = None;
        for inj in s.injections.iter_mut() {
            if inj.times > 0 && inj.method == method && path.ends_with(&inj.path_suffix) {
                inj.times -= 1;
                injected = Some(inj.code);
                break;
            }
        }
        let (code, out) = match injected {
            Some(409) => (409, status_body(409, "Conflict", "injected conflict")),
            Some(404) => (404, status_body(404, "NotFound", "injected not found")),
            Some(403) => (403, status_body(403, "Forbidden", "injected forbidden")),
            Some(c) => (c, status_body(c, "InternalError", "injected error")),
            None => Self::serve(&mut s, &method, &t, ct, body.clone()),
        };
        s.log.push(Logged {
            method,
            path: path.into(),
            query: query.into(),
            content_type: ct.into(),
            body,
            group: t.group,
            resource,
            verb: verb.into(),
            status: code,
        });
        (code, out)
    }

    fn serve(s: &mut State, method: &Method, t: &Target, ct: &str, body: Value) -> (u16, Value) {
        let Some(name) = t.name.clone().or_else(|| {
            (method == Method::POST).then(|| {
                body["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
        }) else {
            // Collection GET.
            let items: Vec<Value> = s
                .objects
                .iter()
                .filter(|((g, r, ns, _), _)| {
                    *g == t.group
                        && *r == t.resource
                        && (t.namespace.is_empty() || *ns == t.namespace)
                })
                .map(|(_, v)| v.clone())
                .collect();
            return (
                200,
                json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": s.rv.to_string()}, "items": items}),
            );
        };
        let key = FakeApi::key(&t.group, &t.resource, &t.namespace, &name);
        let existing = s.objects.get(&key).cloned();
        let not_found = || {
            (
                404,
                status_body(404, "NotFound", &format!("{} {name} not found", t.resource)),
            )
        };
        let status_sub = t.sub.as_deref() == Some("status");
        match *method {
            Method::GET => existing.map(|o| (200, o)).unwrap_or_else(not_found),
            Method::POST => {
                if existing.is_some() {
                    return (
                        409,
                        status_body(409, "AlreadyExists", &format!("{name} already exists")),
                    );
                }
                let mut obj = body;
                s.uid += 1;
                obj["metadata"]["uid"] = json!(format!("uid-{}", s.uid));
                obj["metadata"]["generation"] = json!(1);
                obj["metadata"]["namespace"] = json!(t.namespace);
                Self::store(s, key, obj)
            }
            Method::PUT => {
                let Some(old) = existing else {
                    return not_found();
                };
                if body["metadata"]["resourceVersion"] != old["metadata"]["resourceVersion"] {
                    return (
                        409,
                        status_body(409, "Conflict", "the object has been modified"),
                    );
                }
                let mut obj = body;
                Self::keep_subresource(&old, &mut obj, status_sub);
                Self::finish_write(s, key, &old, obj)
            }
            Method::PATCH => {
                let apply = ct.starts_with("application/apply-patch");
                let Some(old) = existing else {
                    if apply {
                        let mut obj = body;
                        s.uid += 1;
                        obj["metadata"]["uid"] = json!(format!("uid-{}", s.uid));
                        obj["metadata"]["generation"] = json!(1);
                        return Self::store(s, key, obj);
                    }
                    return not_found();
                };
                let mut obj = old.clone();
                if ct.starts_with("application/json-patch") {
                    // As the API server does (evanphx/json-patch): `test` for null passes
                    // when the path does not exist.
                    let ops: Vec<Value> = body
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|op| {
                            !(op["op"] == "test"
                                && op["value"].is_null()
                                && op["path"]
                                    .as_str()
                                    .is_some_and(|p| obj.pointer(p).is_none()))
                        })
                        .collect();
                    let patch: json_patch::Patch = match serde_json::from_value(Value::Array(ops)) {
                        Ok(p) => p,
                        Err(e) => return (400, status_body(400, "BadRequest", &e.to_string())),
                    };
                    if let Err(e) = json_patch::patch(&mut obj, &patch) {
                        return (422, status_body(422, "Invalid", &e.to_string()));
                    }
                } else {
                    let rv = &body["metadata"]["resourceVersion"];
                    if !rv.is_null() && *rv != old["metadata"]["resourceVersion"] {
                        return (
                            409,
                            status_body(409, "Conflict", "the object has been modified"),
                        );
                    }
                    merge(&mut obj, &body);
                }
                Self::keep_subresource(&old, &mut obj, status_sub);
                Self::finish_write(s, key, &old, obj)
            }
            Method::DELETE => {
                let Some(mut obj) = existing else {
                    return not_found();
                };
                let has_finalizers = obj["metadata"]["finalizers"]
                    .as_array()
                    .is_some_and(|f| !f.is_empty());
                if has_finalizers {
                    obj["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
                    return Self::store(s, key, obj);
                }
                s.objects.remove(&key);
                s.rv += 1;
                obj["metadata"]["resourceVersion"] = json!(s.rv.to_string());
                s.changed("DELETED", &key, &obj);
                (
                    200,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
                )
            }
            _ => (405, status_body(405, "MethodNotAllowed", "")),
        }
    }

    /// Status subresource semantics: `/status` writes change only `.status`; other writes never do.
    fn keep_subresource(old: &Value, new: &mut Value, status_sub: bool) {
        if status_sub {
            let status = new["status"].clone();
            *new = old.clone();
            new["status"] = status;
        } else if !old["status"].is_null() {
            new["status"] = old["status"].clone();
        } else if let Some(o) = new.as_object_mut() {
            o.remove("status");
        }
    }

    fn finish_write(
        s: &mut State,
        key: (String, String, String, String),
        old: &Value,
        mut obj: Value,
    ) -> (u16, Value) {
        obj["metadata"]["uid"] = old["metadata"]["uid"].clone();
        let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
        obj["metadata"]["generation"] = json!(if obj["spec"] != old["spec"] {
            generation + 1
        } else {
            generation
        });
        let deleting = !old["metadata"]["deletionTimestamp"].is_null();
        let no_finalizers = obj["metadata"]["finalizers"]
            .as_array()
            .is_none_or(|f| f.is_empty());
        if deleting && no_finalizers {
            s.objects.remove(&key);
            s.rv += 1;
            obj["metadata"]["resourceVersion"] = json!(s.rv.to_string());
            s.changed("DELETED", &key, &obj);
            return (200, obj);
        }
        Self::store(s, key, obj)
    }

    fn store(s: &mut State, key: (String, String, String, String), mut obj: Value) -> (u16, Value) {
        s.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(s.rv.to_string());
        let kind = if s.objects.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        s.changed(kind, &key, &obj);
        s.objects.insert(key, obj.clone());
        (200, obj)
    }
}

impl tower::Service<Request<Body>> for FakeApi {
    type Response = Response<FakeBody>;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<FakeBody>, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let query = parts.uri.query().unwrap_or_default();
            if parts.method == Method::GET && query.contains("watch=true") {
                let (code, body) = this.watch(parts.uri.path(), query);
                return Ok(Response::builder()
                    .status(code)
                    .header("content-type", "application/json")
                    .body(body)
                    .expect("response"));
            }
            let bytes = body
                .collect()
                .await
                .map(|b| b.to_bytes().to_vec())
                .unwrap_or_default();
            let body: Value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap_or(Value::Null)
            };
            let ct = parts
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let (code, out) = this.handle(
                parts.method,
                parts.uri.path(),
                parts.uri.query().unwrap_or_default(),
                &ct,
                body,
            );
            let resp = Response::builder()
                .status(code)
                .header("content-type", "application/json")
                .body(FakeBody::Once(Some(Bytes::from(
                    serde_json::to_vec(&out).unwrap_or_default(),
                ))))
                .expect("response");
            Ok(resp)
        })
    }
}

/// The Bookinfo `reviews` world the controller and `sluice --kube` tests start from.
pub mod fixtures {
    use serde_json::{Value, json};

    /// The user's Deployment `reviews` in `ns`, running `image`.
    pub fn reviews_deployment(ns: &str, image: &str, replicas: i64) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "reviews", "namespace": ns},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "reviews"}},
                "template": {
                    "metadata": {"labels": {"app": "reviews"}},
                    "spec": {"containers": [{"name": "reviews", "image": image, "ports": [{"containerPort": 9080}]}]}
                }
            }
        })
    }

    /// A canary Rollout (10% then 50%, one failure rolls back) targeting `reviews`.
    pub fn reviews_rollout(ns: &str) -> Value {
        json!({
            "apiVersion": "sluice.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "reviews", "namespace": ns},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "reviews"},
                "service": {"port": 9080},
                "strategy": {"canary": {"steps": [10, 50]}},
                "analysis": {"interval": "1m", "failureLimit": 1}
            }
        })
    }
}
