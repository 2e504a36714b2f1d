//! Client-side rate limit of the kube clients (`--kube-qps`, `--kube-burst`): a token bucket in
//! a tower layer, shared by a replica's read and write clients, as client-go's QPS/Burst.
//!
//! A request takes a token; with none left it waits until one has been refilled (the bucket
//! refills at `qps` per second up to `burst`). Waiting, not failing: a burst of reconciles (a
//! restart with many Rollouts) spreads out instead of erroring. A watch takes one token when
//! it opens and none while it streams.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::Request;
use tower::{Layer, Service};

/// Requests per second and burst of the API clients.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClientLimits {
    pub qps: f64,
    pub burst: u32,
}

impl Default for ClientLimits {
    /// 50/s, bursts of 100: client-go's 5/10 starves a fleet (Flagger raised its own to
    /// 100/250 for ~50 canaries); an idle fleet sends nothing, so this only shapes bursts.
    fn default() -> Self {
        ClientLimits {
            qps: 50.0,
            burst: 100,
        }
    }
}

impl ClientLimits {
    /// Refuses limits that would stop every request.
    pub fn check(&self) -> Result<(), String> {
        if !(self.qps.is_finite() && self.qps > 0.0) {
            return Err(format!("--kube-qps: must be > 0, got {}", self.qps));
        }
        if self.burst == 0 {
            return Err("--kube-burst: must be >= 1".into());
        }
        Ok(())
    }
}

/// The token bucket, shared by every clone of the layer.
#[derive(Debug)]
struct Bucket {
    limits: ClientLimits,
    /// Tokens now; negative: reserved by requests still waiting.
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// Takes a token at `now`; returns how long the request must wait for it.
    fn reserve(&mut self, now: Instant) -> Duration {
        let burst = f64::from(self.limits.burst);
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * self.limits.qps;
        self.tokens = (self.tokens + refill).min(burst);
        self.at = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.limits.qps)
        }
    }
}

#[derive(Clone, Debug)]
pub struct ThrottleLayer {
    bucket: Arc<Mutex<Bucket>>,
}

impl ThrottleLayer {
    pub fn new(limits: ClientLimits) -> Self {
        ThrottleLayer {
            bucket: Arc::new(Mutex::new(Bucket {
                limits,
                tokens: f64::from(limits.burst),
                at: Instant::now(),
            })),
        }
    }

    fn reserve(&self) -> Duration {
        // A panic while holding this lock cannot leave the bucket in a worse state than a
        // wrong token count for a moment.
        self.bucket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .reserve(Instant::now())
    }
}

impl<S> Layer<S> for ThrottleLayer {
    type Service = Throttle<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Throttle {
            inner,
            layer: self.clone(),
            state: Slot::Idle,
        }
    }
}

/// The token of the next request: not taken yet, waited for, or held.
enum Slot {
    Idle,
    Waiting(Pin<Box<tokio::time::Sleep>>),
    Held,
}

/// The service is ready only once its next request holds a token (the tower way, as
/// `tower::limit::RateLimit`): kube's client buffers requests in front of it, so they queue.
pub struct Throttle<S> {
    inner: S,
    layer: ThrottleLayer,
    state: Slot,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, B> Service<Request<B>> for Throttle<S>
where
    S: Service<Request<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        loop {
            match &mut self.state {
                Slot::Idle => {
                    let wait = self.layer.reserve();
                    self.state = if wait.is_zero() {
                        Slot::Held
                    } else {
                        Slot::Waiting(Box::pin(tokio::time::sleep(wait)))
                    };
                }
                Slot::Waiting(sleep) => {
                    std::task::ready!(sleep.as_mut().poll(cx));
                    self.state = Slot::Held;
                }
                Slot::Held => return self.inner.poll_ready(cx).map_err(Into::into),
            }
        }
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        self.state = Slot::Idle;
        let fut = self.inner.call(req);
        Box::pin(async move { fut.await.map_err(Into::into) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_requests_are_spaced_at_the_rate() {
        let t0 = Instant::now();
        let mut b = Bucket {
            limits: ClientLimits {
                qps: 10.0,
                burst: 3,
            },
            tokens: 3.0,
            at: t0,
        };
        for _ in 0..3 {
            assert_eq!(b.reserve(t0), Duration::ZERO);
        }
        // The fourth and fifth wait one and two refills (100 ms each).
        assert_eq!(b.reserve(t0), Duration::from_millis(100));
        assert_eq!(b.reserve(t0), Duration::from_millis(200));
        // After a quiet second the bucket is full again, never fuller than the burst.
        let later = t0 + Duration::from_secs(10);
        for _ in 0..3 {
            assert_eq!(b.reserve(later), Duration::ZERO);
        }
        assert!(b.reserve(later) > Duration::ZERO);
    }

    #[test]
    fn limits_that_would_stop_every_request_are_refused() {
        let bad = |qps, burst| ClientLimits { qps, burst }.check().expect_err("refused");
        assert!(bad(0.0, 10).contains("--kube-qps"));
        assert!(bad(f64::NAN, 10).contains("--kube-qps"));
        assert!(bad(5.0, 0).contains("--kube-burst"));
        assert_eq!(ClientLimits::default().check(), Ok(()));
    }
}
