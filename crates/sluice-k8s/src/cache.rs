//! The controller's watch caches: what a reconcile and the web API read instead of asking the
//! API server.
//!
//! ## Flow
//! [`Controller`](crate::controller::Controller) starts one reflector per kind and watch scope
//! (all namespaces, or each of `--namespaces`): Rollouts, Deployments, Services, and Istio's
//! DestinationRules and VirtualServices. Each [`Cache`] is a kube-runtime [`Store`] plus a flag
//! set once its first list completed. A reconcile reads the target and primary Deployments,
//! the Services and the Istio objects from there, so an idle rollout costs no request at all;
//! the backend lists and gets Rollouts from there.
//!
//! ## Guarantees and caveats
//! - A cache that has not listed yet (starting, or its list failing: the Istio CRDs missing,
//!   RBAC) is never trusted: the read goes to the API server, as without caches, so a
//!   reconcile never mistakes "not synced" for "not there".
//! - A cache can lag the API server by a watch event. Reads used for decisions compare
//!   revisions and readiness that only move forward, and writes that must not act on a stale
//!   read are guarded by a resourceVersion (the target's template restore); a stale read
//!   costs at most an unneeded idempotent apply or one more reconcile.
//! - Deletion re-reads the Rollout from the API server (see `reconcile`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::serde::de::DeserializeOwned;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};

use crate::router::{destination_rule_resource, virtual_service_resource};
use sluice_core::spec::Rollout;

/// One kind's watch caches, one store per watch scope.
pub struct Cache<K: Resource + 'static>
where
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    scopes: Vec<(Store<K>, Arc<AtomicBool>)>,
    dyntype: K::DynamicType,
}

impl<K: Resource + Clone + 'static> Cache<K>
where
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    /// Whether every scope has listed once: only then is an absent object really absent.
    pub fn ready(&self) -> bool {
        !self.scopes.is_empty() && self.scopes.iter().all(|(_, r)| r.load(Ordering::Acquire))
    }

    /// The cached object, `None` if absent; `Err(())` when the cache cannot say (not synced):
    /// ask the API server.
    pub fn get(&self, namespace: &str, name: &str) -> Result<Option<K>, NotSynced> {
        if !self.ready() {
            return Err(NotSynced);
        }
        let key = ObjectRef::new_with(name, self.dyntype.clone()).within(namespace);
        Ok(self
            .scopes
            .iter()
            .find_map(|(s, _)| s.get(&key))
            .map(|o| o.as_ref().clone()))
    }

    /// Every cached object, or `Err` when not synced.
    pub fn list(&self) -> Result<Vec<Arc<K>>, NotSynced> {
        if !self.ready() {
            return Err(NotSynced);
        }
        Ok(self.scopes.iter().flat_map(|(s, _)| s.state()).collect())
    }

    /// The stores, for the kube-runtime controller's mapping functions.
    pub fn stores(&self) -> impl Iterator<Item = &Store<K>> {
        self.scopes.iter().map(|(s, _)| s)
    }
}

/// A cache that has not listed yet: the caller reads from the API server instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotSynced;

/// What a reflector stream yields: the applied objects, errors included (the watcher retries).
pub type Applied<K> = futures::stream::BoxStream<'static, Result<K, watcher::Error>>;

/// A reflector over `api` writing into a new store; the returned stream must be polled for
/// the store to fill (and the flag to turn true once it listed).
fn reflect<K>(api: Api<K>, dyntype: K::DynamicType) -> (Store<K>, Arc<AtomicBool>, Applied<K>)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: std::hash::Hash + Eq + Clone + Send + Sync,
{
    let writer = reflector::store::Writer::new(dyntype);
    let store = writer.as_reader();
    let synced = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&synced);
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .inspect_ok(move |e| {
            if matches!(e, watcher::Event::InitDone) {
                flag.store(true, Ordering::Release);
            }
        })
        .reflect(writer)
        .applied_objects()
        .boxed();
    (store, synced, stream)
}

/// The APIs of every watch scope (`[]`: one cluster-wide scope), from `all` and `namespaced`.
fn scoped<K>(
    namespaces: &[String],
    all: impl Fn() -> Api<K>,
    namespaced: impl Fn(&str) -> Api<K>,
) -> Vec<Api<K>> {
    if namespaces.is_empty() {
        vec![all()]
    } else {
        namespaces.iter().map(|n| namespaced(n)).collect()
    }
}

/// [`scoped`] for a kind known at compile time.
fn typed<K>(client: &Client, namespaces: &[String]) -> Vec<Api<K>>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    scoped(
        namespaces,
        || Api::all(client.clone()),
        |n| Api::namespaced(client.clone(), n),
    )
}

/// [`scoped`] for one of Istio's kinds.
fn dynamic(client: &Client, namespaces: &[String], ar: &ApiResource) -> Vec<Api<DynamicObject>> {
    scoped(
        namespaces,
        || Api::all_with(client.clone(), ar),
        |n| Api::namespaced_with(client.clone(), n, ar),
    )
}

/// A cache of one kind over every scope, and the streams that fill it.
fn cache<K>(apis: Vec<Api<K>>, dyntype: K::DynamicType) -> (Cache<K>, Vec<Applied<K>>)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: std::hash::Hash + Eq + Clone + Send + Sync,
{
    let mut scopes = Vec::new();
    let mut streams = Vec::new();
    for api in apis {
        let (store, synced, stream) = reflect(api, dyntype.clone());
        scopes.push((store, synced));
        streams.push(stream);
    }
    (Cache { scopes, dyntype }, streams)
}

/// Every cache a controller replica keeps, read by the reconcile and the backend.
pub struct Caches {
    pub rollouts: Cache<Rollout>,
    pub deployments: Cache<Deployment>,
    pub services: Cache<Service>,
    pub destination_rules: Cache<DynamicObject>,
    pub virtual_services: Cache<DynamicObject>,
}

/// The streams that fill [`Caches`]: the Rollout and Deployment ones feed the kube-runtime
/// controller (one per scope, in the order of `--namespaces`); the others only fill their
/// cache ([`Streams::drive_others`]).
pub struct Streams {
    pub rollouts: Vec<Applied<Rollout>>,
    pub deployments: Vec<Applied<Deployment>>,
    services: Vec<Applied<Service>>,
    istio: Vec<Applied<DynamicObject>>,
}

impl Caches {
    /// Caches for `namespaces` (empty: all), read with `client` (the ungated read client).
    pub fn new(client: &Client, namespaces: &[String]) -> (Arc<Caches>, Streams) {
        let (rollouts, rollout_streams) = cache(typed(client, namespaces), ());
        let (deployments, deployment_streams) = cache(typed(client, namespaces), ());
        let (services, service_streams) = cache(typed(client, namespaces), ());
        let dr = destination_rule_resource();
        let (destination_rules, mut istio) = cache(dynamic(client, namespaces, &dr), dr);
        let vs = virtual_service_resource();
        let (virtual_services, vs) = cache(dynamic(client, namespaces, &vs), vs);
        istio.extend(vs);
        (
            Arc::new(Caches {
                rollouts,
                deployments,
                services,
                destination_rules,
                virtual_services,
            }),
            Streams {
                rollouts: rollout_streams,
                deployments: deployment_streams,
                services: service_streams,
                istio,
            },
        )
    }

    /// The Istio cache of `ar` (DestinationRules or VirtualServices), if it is one of them.
    pub fn istio(&self, ar: &ApiResource) -> Option<&Cache<DynamicObject>> {
        if ar.plural == "destinationrules" {
            Some(&self.destination_rules)
        } else if ar.plural == "virtualservices" {
            Some(&self.virtual_services)
        } else {
            None
        }
    }
}

impl Streams {
    /// Runs the Service and Istio reflectors until the process ends. Their errors do not make
    /// the replica unready: a reconcile then reads from the API server and reports what it
    /// finds there (`IstioAPIMissing`, `Forbidden`) on the Rollout itself.
    pub fn drive_others(services: Vec<Applied<Service>>, istio: Vec<Applied<DynamicObject>>) {
        for s in services {
            tokio::spawn(drain(s, "services/v1"));
        }
        for s in istio {
            tokio::spawn(drain(s, "networking.istio.io/v1"));
        }
    }

    /// Splits off the streams [`Streams::drive_others`] runs.
    #[allow(clippy::type_complexity)]
    pub fn split(
        self,
    ) -> (
        Vec<Applied<Rollout>>,
        Vec<Applied<Deployment>>,
        Vec<Applied<Service>>,
        Vec<Applied<DynamicObject>>,
    ) {
        (self.rollouts, self.deployments, self.services, self.istio)
    }
}

async fn drain<K>(stream: impl Stream<Item = Result<K, watcher::Error>>, what: &'static str) {
    let mut stream = std::pin::pin!(stream);
    let mut failing = false;
    while let Some(item) = stream.next().await {
        match item {
            // Logged once per failing stretch (the watcher retries with a backoff).
            Err(e) if !failing => {
                failing = true;
                tracing::debug!(error = %e, watching = what, "cache watch failing; reading from the API server meanwhile");
            }
            Err(_) => {}
            Ok(_) => failing = false,
        }
    }
}
