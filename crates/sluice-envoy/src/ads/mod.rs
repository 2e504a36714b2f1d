//! An xDS management server for one (or a few) Envoys: delta ADS over gRPC, hand-rolled on
//! hyper's HTTP/2 server (Envoy is the only client; the protocol is one bidirectional stream of
//! length-prefixed protobuf messages).
//!
//! ## Flow
//! The router [`publish`](AdsServer::publish)es changed resources (clusters, the one route
//! configuration, one virtual host per rollout) into the server's desired state, which bumps a
//! generation counter. Every Envoy stream compares what it has sent with the desired state,
//! per resource type, and sends only the difference (`DeltaDiscoveryResponse`: changed
//! resources and removed names), one response in flight per type. Envoy answers each response
//! with an ACK or a NACK (`error_detail`); [`wait`](AdsServer::wait) returns once every
//! subscribed Envoy acknowledged a generation, or with Envoy's own error message.
//!
//! ## Guarantees
//! - One rollout's change sends that rollout's resources only (per-type diff by content
//!   version); [`AdsServer::pushed`] counts what was sent, for tests and benchmarks.
//! - A (re)connecting Envoy gets everything it lacks: the diff starts from the versions it
//!   reports (`initial_resource_versions`), empty after a restart.
//! - After a NACK the stream keeps going; what the router publishes next (the last good
//!   config) is diffed against what was sent, so Envoy converges back to it.
//!
//! ## Caveats
//! Plaintext HTTP/2 (h2c) on the address given, meant for 127.0.0.1. No compression, no
//! state-of-the-world ADS: Envoy's bootstrap must say `DELTA_GRPC` ([`crate::translate`]).

pub mod convert;
pub mod proto;

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http_body::Frame;
use http_body_util::BodyExt;
use prost::Message;
use tokio::sync::{mpsc, watch};

use proto::{DeltaDiscoveryRequest, DeltaDiscoveryResponse};

/// Why a wait for Envoy's acknowledgement ended without one.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AckError {
    #[error("Envoy rejected the {kind} update: {detail}")]
    Rejected { kind: &'static str, detail: String },
    #[error(
        "no Envoy acknowledged the {kind} update within {timeout:?} ({connected} connected to the xDS server)"
    )]
    Timeout {
        kind: &'static str,
        timeout: Duration,
        connected: usize,
    },
}

/// A resource in the desired state: its content version and its encoded message.
#[derive(Clone, Debug)]
struct Res {
    version: String,
    body: Bytes,
}

#[derive(Default)]
struct StreamStatus {
    /// Types Envoy subscribed on this stream.
    subscribed: BTreeSet<String>,
    /// Per type: the generation this stream is known to serve (acked, or nothing to send).
    acked: BTreeMap<String, u64>,
    /// Per type: the last rejected generation and Envoy's message.
    nacked: BTreeMap<String, (u64, String)>,
}

#[derive(Default)]
struct Shared {
    generation: u64,
    /// Per type URL: name → resource.
    desired: BTreeMap<String, BTreeMap<String, Res>>,
    /// Per type URL: the generation of its last change.
    changed_at: BTreeMap<String, u64>,
    streams: BTreeMap<u64, StreamStatus>,
}

/// Counts of what the server sent, per type URL (responses, resources, removals).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pushed {
    pub responses: u64,
    pub resources: u64,
    pub removed: u64,
}

struct Inner {
    shared: Mutex<Shared>,
    /// Bumped on every publish: streams wake and diff.
    desired_tx: watch::Sender<u64>,
    /// Bumped on every ACK / NACK / stream change: waiters re-check.
    acks_tx: watch::Sender<u64>,
    pushed: Mutex<BTreeMap<String, Pushed>>,
    next_stream: AtomicU64,
    nonce: AtomicU64,
}

/// The running server; dropping it stops accepting and ends every stream.
pub struct AdsServer {
    inner: Arc<Inner>,
    addr: SocketAddr,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for AdsServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep serving it.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Short name of a type URL for messages (`Cluster`, `VirtualHost`, ...).
pub fn kind(type_url: &str) -> &'static str {
    match type_url {
        proto::CLUSTER_TYPE => "Cluster",
        proto::ROUTE_CONFIG_TYPE => "RouteConfiguration",
        proto::VIRTUAL_HOST_TYPE => "VirtualHost",
        _ => "resource",
    }
}

impl AdsServer {
    /// Listen on `addr` (`127.0.0.1:0` picks a free port) and serve Envoys from now on.
    pub async fn bind(addr: &str) -> std::io::Result<AdsServer> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            shared: Mutex::new(Shared::default()),
            desired_tx: watch::channel(0).0,
            acks_tx: watch::channel(0).0,
            pushed: Mutex::new(BTreeMap::new()),
            next_stream: AtomicU64::new(1),
            nonce: AtomicU64::new(1),
        });
        let accept = tokio::spawn(accept_loop(listener, inner.clone()));
        Ok(AdsServer {
            inner,
            addr,
            accept,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Envoy streams connected now.
    pub fn connected(&self) -> usize {
        lock(&self.inner.shared).streams.len()
    }

    /// What was sent so far, per type URL.
    pub fn pushed(&self) -> BTreeMap<String, Pushed> {
        lock(&self.inner.pushed).clone()
    }

    /// Change the desired state of `type_url`: upsert `(name, version, body)`s, remove `removed`.
    /// Returns the generation to [`wait`](Self::wait) for; unchanged content is not a change
    /// (the current generation of that type is returned, already served where acked).
    pub fn publish(
        &self,
        type_url: &str,
        upserts: Vec<(String, String, Bytes)>,
        removed: &[String],
    ) -> u64 {
        let mut s = lock(&self.inner.shared);
        let next = s.generation + 1;
        let desired = s.desired.entry(type_url.to_string()).or_default();
        let mut changed = false;
        for (name, version, body) in upserts {
            if desired.get(&name).is_some_and(|r| r.version == version) {
                continue;
            }
            desired.insert(name, Res { version, body });
            changed = true;
        }
        for name in removed {
            changed |= desired.remove(name).is_some();
        }
        if !changed {
            return s.changed_at.get(type_url).copied().unwrap_or(0);
        }
        s.generation = next;
        s.changed_at.insert(type_url.to_string(), next);
        drop(s);
        self.inner.desired_tx.send_replace(next);
        next
    }

    /// Wait until every Envoy subscribed to `type_url` serves generation `generation` (at
    /// least one must be connected), Envoy rejects it, or `timeout` passes.
    pub async fn wait(
        &self,
        type_url: &str,
        generation: u64,
        timeout: Duration,
    ) -> Result<(), AckError> {
        let mut rx = self.inner.acks_tx.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            {
                let s = lock(&self.inner.shared);
                let mut subscribed = 0;
                let mut all = true;
                for st in s.streams.values() {
                    if let Some((g, detail)) = st.nacked.get(type_url)
                        && *g >= generation
                    {
                        return Err(AckError::Rejected {
                            kind: kind(type_url),
                            detail: detail.clone(),
                        });
                    }
                    if st.subscribed.contains(type_url) {
                        subscribed += 1;
                        all &= st.acked.get(type_url).is_some_and(|g| *g >= generation);
                    }
                }
                if subscribed > 0 && all {
                    return Ok(());
                }
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { break },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        Err(AckError::Timeout {
            kind: kind(type_url),
            timeout,
            connected: self.connected(),
        })
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, inner: Arc<Inner>) {
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "xDS server: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let inner = inner.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let inner = inner.clone();
                async move { Ok::<_, Infallible>(handle(inner, req)) }
            });
            let conn =
                hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "xDS connection ended");
            }
        });
    }
}

/// The response body: frames from the stream task, then the trailers it sends last.
struct ChannelBody(mpsc::Receiver<Frame<Bytes>>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|f| f.map(Ok))
    }
}

fn grpc_error(status: u32, message: &str) -> http::Response<ChannelBody> {
    let (_tx, rx) = mpsc::channel(1);
    let mut resp = http::Response::new(ChannelBody(rx));
    let h = resp.headers_mut();
    h.insert(
        "content-type",
        http::HeaderValue::from_static("application/grpc"),
    );
    h.insert("grpc-status", http::HeaderValue::from(status));
    if let Ok(v) = http::HeaderValue::from_str(message) {
        h.insert("grpc-message", v);
    }
    resp
}

fn handle(
    inner: Arc<Inner>,
    req: http::Request<hyper::body::Incoming>,
) -> http::Response<ChannelBody> {
    if req.uri().path() != proto::DELTA_ADS_PATH {
        // 12 = UNIMPLEMENTED (e.g. state-of-the-world ADS from a bootstrap saying GRPC).
        return grpc_error(12, "sluice serves delta ADS only (api_type: DELTA_GRPC)");
    }
    let (tx, rx) = mpsc::channel(16);
    let id = inner.next_stream.fetch_add(1, Ordering::Relaxed);
    tokio::spawn(run_stream(inner, id, req.into_body(), tx));
    let mut resp = http::Response::new(ChannelBody(rx));
    resp.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/grpc"),
    );
    resp
}

/// Removes the stream's status when its task ends, however it ends.
struct StreamGuard {
    inner: Arc<Inner>,
    id: u64,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        lock(&self.inner.shared).streams.remove(&self.id);
        self.inner.acks_tx.send_modify(|g| *g += 1);
    }
}

/// What one stream has told Envoy, per type.
#[derive(Default)]
struct StreamView {
    /// Per type: name → version sent (or reported by Envoy when it reconnected).
    sent: BTreeMap<String, BTreeMap<String, String>>,
    /// Per type: explicit resource names / namespaces subscribed; empty = wildcard.
    names: BTreeMap<String, BTreeSet<String>>,
    /// Per type: the response awaiting ACK: nonce, generation, and what `sent` said before it
    /// for the names it carried (put back on a NACK: Envoy kept its old versions).
    inflight: BTreeMap<String, Inflight>,
    /// Types whose subscription changed: they get a response even when it is empty (Envoy
    /// waits for one before it counts the subscription as initialised).
    must_reply: BTreeSet<String>,
    /// Per type: the generation Envoy rejected; nothing is re-sent until the desired state
    /// changes again (the router puts the last good config back).
    hold: BTreeMap<String, u64>,
}

struct Inflight {
    nonce: String,
    generation: u64,
    before: Vec<(String, Option<String>)>,
}

async fn run_stream(
    inner: Arc<Inner>,
    id: u64,
    mut body: hyper::body::Incoming,
    tx: mpsc::Sender<Frame<Bytes>>,
) {
    lock(&inner.shared)
        .streams
        .insert(id, StreamStatus::default());
    let _guard = StreamGuard {
        inner: inner.clone(),
        id,
    };
    let mut desired_rx = inner.desired_tx.subscribe();
    let mut view = StreamView::default();
    let mut buf = BytesMut::new();
    loop {
        // Answer what can be answered before waiting again.
        for type_url in view.names.keys().cloned().collect::<Vec<_>>() {
            if !view.inflight.contains_key(&type_url)
                && let Some(msg) = diff(&inner, id, &mut view, &type_url)
                && tx.send(Frame::data(encode(&msg))).await.is_err()
            {
                return;
            }
        }
        tokio::select! {
            frame = body.frame() => {
                let data = match frame {
                    Some(Ok(f)) => match f.into_data() {
                        Ok(d) => d,
                        Err(_) => continue, // trailers
                    },
                    Some(Err(e)) => {
                        tracing::debug!(stream = id, error = %e, "xDS stream broke");
                        return;
                    }
                    None => return,
                };
                buf.extend_from_slice(&data);
                while let Some(msg) = next_message(&mut buf) {
                    match msg {
                        Ok(req) => on_request(&inner, id, &mut view, req),
                        Err(reason) => {
                            tracing::warn!(stream = id, %reason, "xDS stream: bad message");
                            let _ = tx.send(Frame::trailers(trailers(3, &reason))).await;
                            return;
                        }
                    }
                }
            }
            r = desired_rx.changed() => if r.is_err() { return },
        }
    }
}

fn trailers(status: u32, message: &str) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    h.insert("grpc-status", http::HeaderValue::from(status));
    if let Ok(v) = http::HeaderValue::from_str(message) {
        h.insert("grpc-message", v);
    }
    h
}

/// One length-prefixed gRPC message out of `buf`, when complete.
fn next_message(buf: &mut BytesMut) -> Option<Result<DeltaDiscoveryRequest, String>> {
    if buf.len() < 5 {
        return None;
    }
    let compressed = buf[0];
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if buf.len() < 5 + len {
        return None;
    }
    buf.advance(5);
    let msg = buf.split_to(len);
    if compressed != 0 {
        return Some(Err("compressed gRPC messages are not supported".into()));
    }
    Some(DeltaDiscoveryRequest::decode(msg.freeze()).map_err(|e| e.to_string()))
}

fn encode(msg: &DeltaDiscoveryResponse) -> Bytes {
    let len = msg.encoded_len();
    let mut out = BytesMut::with_capacity(5 + len);
    out.extend_from_slice(&[0]);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    // Encoding into a buffer with enough capacity cannot fail.
    let _ = msg.encode(&mut out);
    out.freeze()
}

fn on_request(inner: &Inner, id: u64, view: &mut StreamView, req: DeltaDiscoveryRequest) {
    let t = req.type_url.clone();
    let first = !view.names.contains_key(&t);
    if first || !req.resource_names_subscribe.is_empty() {
        view.must_reply.insert(t.clone());
    }
    let names = view.names.entry(t.clone()).or_default();
    for n in &req.resource_names_subscribe {
        names.insert(n.clone());
    }
    for n in &req.resource_names_unsubscribe {
        names.remove(n);
    }
    if first {
        // A reconnecting Envoy says what it has; the diff starts from there.
        view.sent.insert(
            t.clone(),
            req.initial_resource_versions.into_iter().collect(),
        );
    }
    let mut s = lock(&inner.shared);
    let Some(st) = s.streams.get_mut(&id) else {
        return;
    };
    st.subscribed.insert(t.clone());
    if !req.response_nonce.is_empty()
        && view
            .inflight
            .get(&t)
            .is_some_and(|f| f.nonce == req.response_nonce)
        && let Some(Inflight {
            generation, before, ..
        }) = view.inflight.remove(&t)
    {
        match req.error_detail {
            Some(e) if e.code != 0 || !e.message.is_empty() => {
                tracing::warn!(kind = kind(&t), detail = %e.message, "Envoy rejected an xDS update");
                st.nacked.insert(t.clone(), (generation, e.message));
                view.hold.insert(t.clone(), generation);
                let sent = view.sent.entry(t.clone()).or_default();
                for (name, version) in before {
                    match version {
                        Some(v) => sent.insert(name, v),
                        None => sent.remove(&name),
                    };
                }
            }
            _ => {
                let a = st.acked.entry(t.clone()).or_default();
                *a = (*a).max(generation);
            }
        }
        drop(s);
        inner.acks_tx.send_modify(|g| *g += 1);
    }
}

/// The response bringing this stream's `type_url` up to the desired state, or None when it
/// is up to date (then it counts as serving the current generation).
fn diff(
    inner: &Inner,
    id: u64,
    view: &mut StreamView,
    type_url: &str,
) -> Option<DeltaDiscoveryResponse> {
    let mut s = lock(&inner.shared);
    let generation = s.generation;
    if let Some(held) = view.hold.get(type_url) {
        if s.changed_at.get(type_url).is_some_and(|c| c <= held) {
            return None;
        }
        view.hold.remove(type_url);
    }
    let empty = BTreeMap::new();
    let desired = s.desired.get(type_url).unwrap_or(&empty);
    let sent = view.sent.entry(type_url.to_string()).or_default();
    let mut resources = Vec::new();
    for (name, res) in desired {
        if sent.get(name) != Some(&res.version) && wants(&view.names, type_url, name) {
            resources.push(proto::Resource {
                version: res.version.clone(),
                name: name.clone(),
                resource: Some(proto::Any {
                    type_url: type_url.to_string(),
                    value: res.body.to_vec(),
                }),
            });
        }
    }
    let removed: Vec<String> = sent
        .keys()
        .filter(|n| !desired.contains_key(*n))
        .cloned()
        .collect();
    let must_reply = view.must_reply.remove(type_url);
    if resources.is_empty() && removed.is_empty() && !must_reply {
        if let Some(st) = s.streams.get_mut(&id) {
            let a = st.acked.entry(type_url.to_string()).or_default();
            if *a < generation {
                *a = generation;
                drop(s);
                inner.acks_tx.send_modify(|g| *g += 1);
            }
        }
        return None;
    }
    drop(s);
    let mut before = Vec::with_capacity(resources.len() + removed.len());
    for r in &resources {
        before.push((
            r.name.clone(),
            sent.insert(r.name.clone(), r.version.clone()),
        ));
    }
    for n in &removed {
        before.push((n.clone(), sent.remove(n)));
    }
    let nonce = inner.nonce.fetch_add(1, Ordering::Relaxed).to_string();
    view.inflight.insert(
        type_url.to_string(),
        Inflight {
            nonce: nonce.clone(),
            generation,
            before,
        },
    );
    {
        let mut p = lock(&inner.pushed);
        let p = p.entry(type_url.to_string()).or_default();
        p.responses += 1;
        p.resources += resources.len() as u64;
        p.removed += removed.len() as u64;
    }
    Some(DeltaDiscoveryResponse {
        system_version_info: generation.to_string(),
        resources,
        type_url: type_url.to_string(),
        nonce,
        removed_resources: removed,
    })
}

/// Whether a stream subscribed to `name`: wildcard (no names, or `*`), the name itself, or a
/// namespace it lies in (VHDS subscribes to `sluice`; its resources are `sluice/...`).
fn wants(names: &BTreeMap<String, BTreeSet<String>>, type_url: &str, name: &str) -> bool {
    match names.get(type_url) {
        None => false,
        Some(n) if n.is_empty() || n.contains("*") => true,
        Some(n) => {
            n.contains(name)
                || n.iter().any(|ns| {
                    name.strip_prefix(ns.trim_end_matches("/*"))
                        .is_some_and(|rest| rest.starts_with('/'))
                })
        }
    }
}
