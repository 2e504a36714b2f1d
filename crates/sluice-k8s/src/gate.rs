//! A tower layer in front of the kube client that refuses every mutating request unless this
//! replica's [`Fence`] holds at the moment the request leaves: the lease was renewed recently
//! enough, measured on the monotonic clock (see `leader`, Fenced writes). Losing or failing to
//! renew the lease therefore stops writing at once, even inside a reconcile that is already
//! running or in a process that was frozen; reads (watches, caches) keep going so a new leader
//! starts warm.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Method, Request};
use tower::{Layer, Service};

use super::leader::Fence;

#[derive(Clone)]
pub struct LeaderGateLayer {
    leader: Fence,
}

impl LeaderGateLayer {
    pub fn new(leader: Fence) -> Self {
        LeaderGateLayer { leader }
    }
}

impl<S> Layer<S> for LeaderGateLayer {
    type Service = LeaderGate<S>;
    fn layer(&self, inner: S) -> Self::Service {
        LeaderGate {
            inner,
            leader: self.leader.clone(),
        }
    }
}

#[derive(Clone)]
pub struct LeaderGate<S> {
    inner: S,
    leader: Fence,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "not the leader: refusing {0} (this replica does not hold the sluice Lease, or has not \
     renewed it recently enough)"
)]
pub struct NotLeader(pub String);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, B> Service<Request<B>> for LeaderGate<S>
where
    S: Service<Request<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let read = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        if !read && !self.leader.holds() {
            let what = format!("{} {}", req.method(), req.uri().path());
            return Box::pin(async move { Err(Box::new(NotLeader(what)) as BoxError) });
        }
        let fut = self.inner.call(req);
        Box::pin(async move { fut.await.map_err(Into::into) })
    }
}
