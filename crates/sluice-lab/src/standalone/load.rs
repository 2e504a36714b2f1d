//! Client traffic through Envoy for the demo, the benchmark and the end-to-end tests: a steady
//! background load, and bursts whose answers are tallied by the version that served them
//! (the demo backends name themselves in the `x-demo-version` header).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The header the demo backends answer with.
pub const VERSION_HEADER: &str = "x-demo-version";

/// Answers counted by who served them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tally {
    /// Answers per `x-demo-version`; answers without it (Envoy's own, e.g. a 503 before the
    /// first routes exist) count under `"envoy <status>"`.
    pub by_version: BTreeMap<String, u64>,
    /// Answers with a 5xx status (included in `by_version` too).
    pub server_errors: u64,
    /// Requests without an answer (connection refused, timeout).
    pub failed: u64,
}

impl Tally {
    pub fn answered(&self) -> u64 {
        self.by_version.values().sum()
    }

    pub fn count(&self, version: &str) -> u64 {
        self.by_version.get(version).copied().unwrap_or(0)
    }

    /// Share (0..=1) of answers served by `version`; 0 when nothing was answered.
    pub fn share(&self, version: &str) -> f64 {
        let n = self.answered();
        if n == 0 {
            0.0
        } else {
            self.count(version) as f64 / n as f64
        }
    }

    fn add(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Answered { status, version } => {
                *self
                    .by_version
                    .entry(version.clone().unwrap_or_else(|| format!("envoy {status}")))
                    .or_default() += 1;
                if *status >= 500 {
                    self.server_errors += 1;
                }
            }
            Outcome::Failed => self.failed += 1,
        }
    }

    /// Both tallies together.
    pub fn plus(&self, other: &Tally) -> Tally {
        let mut by_version = self.by_version.clone();
        for (v, n) in &other.by_version {
            *by_version.entry(v.clone()).or_default() += n;
        }
        Tally {
            by_version,
            server_errors: self.server_errors + other.server_errors,
            failed: self.failed + other.failed,
        }
    }

    /// `v1=12 v2=3`: the answers by version, for people.
    pub fn describe(&self) -> String {
        if self.by_version.is_empty() {
            return "none".into();
        }
        self.by_version
            .iter()
            .map(|(v, n)| format!("{v}={n}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// What happened between `earlier` and `self` (both snapshots of the same counter).
    pub fn since(&self, earlier: &Tally) -> Tally {
        let mut by_version = BTreeMap::new();
        for (v, n) in &self.by_version {
            let d = n.saturating_sub(earlier.count(v));
            if d > 0 {
                by_version.insert(v.clone(), d);
            }
        }
        Tally {
            by_version,
            server_errors: self.server_errors.saturating_sub(earlier.server_errors),
            failed: self.failed.saturating_sub(earlier.failed),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Answered {
        status: u16,
        version: Option<String>,
    },
    Failed,
}

/// One request: what to call and with which headers (`host` selects the rollout in Envoy).
#[derive(Clone, Debug)]
pub struct Target {
    pub url: String,
    pub host: String,
    pub headers: Vec<(String, String)>,
}

impl Target {
    pub fn new(url: impl Into<String>, host: impl Into<String>) -> Target {
        Target {
            url: url.into(),
            host: host.into(),
            headers: Vec::new(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Target {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

/// A client for local test traffic: no proxy, short timeouts.
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(3))
        .build()
}

pub async fn send(client: &reqwest::Client, target: &Target) -> Outcome {
    let mut req = client.get(&target.url).header("host", &target.host);
    for (k, v) in &target.headers {
        req = req.header(k, v);
    }
    match req.send().await {
        Ok(resp) => {
            let version = resp
                .headers()
                .get(VERSION_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let status = resp.status().as_u16();
            // Read the body so the connection goes back to the pool.
            let _ = resp.bytes().await;
            Outcome::Answered { status, version }
        }
        Err(_) => Outcome::Failed,
    }
}

/// `n` requests, `concurrency` at a time; returns who answered them.
pub async fn burst(
    client: &reqwest::Client,
    target: &Target,
    n: usize,
    concurrency: usize,
) -> Tally {
    use futures::StreamExt;
    let outcomes: Vec<Outcome> = futures::stream::iter(0..n)
        .map(|_| send(client, target))
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut t = Tally::default();
    for o in &outcomes {
        t.add(o);
    }
    t
}

/// One kind of request in a load mix: a name for its tally, what to send, and its share.
#[derive(Clone, Debug)]
pub struct Class {
    pub name: String,
    pub target: Target,
    /// Relative weight among the classes (e.g. 70 / 15 / 15).
    pub weight: u32,
}

/// A steady background load at about `rps` requests per second; stops when dropped. Requests
/// of a mix are spread over its classes by weight (deterministically, not at random: the
/// shares hold over any few seconds) and tallied per class.
pub struct LoadGen {
    tallies: Arc<Mutex<BTreeMap<String, Tally>>>,
    task: tokio::task::JoinHandle<()>,
}

impl LoadGen {
    /// One class of requests, all to `target`.
    pub fn start(client: reqwest::Client, target: Target, rps: u32) -> LoadGen {
        Self::start_mix(
            client,
            vec![Class {
                name: "all".into(),
                target,
                weight: 1,
            }],
            rps,
        )
    }

    /// Requests of every class in `mix`, each class's share its weight over the sum.
    pub fn start_mix(client: reqwest::Client, mix: Vec<Class>, rps: u32) -> LoadGen {
        let tallies = Arc::new(Mutex::new(BTreeMap::new()));
        let t = tallies.clone();
        // The class of the i-th request: slot i mod the sum of weights, classes side by side.
        let total: u32 = mix.iter().map(|c| c.weight).sum::<u32>().max(1);
        let pick = move |i: u64| -> Option<Class> {
            let mut slot = (i % u64::from(total)) as u32;
            for c in &mix {
                if slot < c.weight {
                    return Some(c.clone());
                }
                slot -= c.weight;
            }
            None
        };
        let task = tokio::spawn(async move {
            let mut every =
                tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rps.max(1))));
            // A slow answer must not make the load burst afterwards.
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // Bounded in-flight requests: a hanging upstream cannot pile up tasks.
            let inflight = Arc::new(tokio::sync::Semaphore::new(64));
            for i in 0u64.. {
                every.tick().await;
                let Some(class) = pick(i) else {
                    return;
                };
                let Ok(permit) = inflight.clone().acquire_owned().await else {
                    return;
                };
                let (client, t) = (client.clone(), t.clone());
                tokio::spawn(async move {
                    let o = send(&client, &class.target).await;
                    t.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .entry(class.name)
                        .or_insert_with(Tally::default)
                        .add(&o);
                    drop(permit);
                });
            }
        });
        LoadGen { tallies, task }
    }

    /// Everything answered so far, all classes together.
    pub fn snapshot(&self) -> Tally {
        self.tallies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .fold(Tally::default(), |acc, t| acc.plus(t))
    }

    /// Everything answered so far for the requests of class `name`.
    pub fn snapshot_of(&self, name: &str) -> Tally {
        self.tallies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for LoadGen {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn burst_tallies_answers_by_version_and_failures() {
        // A tiny backend answering as "v9", 500 on every other request.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let n = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let app = axum::Router::new().fallback(move || {
            let n = n.clone();
            async move {
                let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let status = if i.is_multiple_of(2) {
                    axum::http::StatusCode::OK
                } else {
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR
                };
                (status, [(VERSION_HEADER, "v9")], "x")
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        let c = client().unwrap();
        let t = burst(
            &c,
            &Target::new(format!("http://{addr}/"), "reviews"),
            10,
            3,
        )
        .await;
        assert_eq!(t.count("v9"), 10);
        assert_eq!(t.server_errors, 5);
        assert_eq!(t.failed, 0);
        assert_eq!(t.share("v9"), 1.0);

        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let t2 = burst(&c, &Target::new(format!("http://{dead}/"), "x"), 3, 3).await;
        assert_eq!(t2.failed, 3);
        assert_eq!(t2.answered(), 0);
        assert_eq!(t2.share("v9"), 0.0);

        let later = Tally {
            by_version: [("v9".to_string(), 15)].into(),
            server_errors: 7,
            failed: 1,
        };
        assert_eq!(later.plus(&t).count("v9"), 25);
        assert_eq!(later.describe(), "v9=15");
        let d = later.since(&t);
        assert_eq!(d.count("v9"), 5);
        assert_eq!(d.server_errors, 2);
        assert_eq!(d.failed, 1);
    }

    #[tokio::test]
    async fn a_mix_sends_each_class_its_share_with_its_headers() {
        // Answers with the version named in the request's `x-want` header.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().fallback(|h: axum::http::HeaderMap| async move {
            let v = h
                .get("x-want")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("plain")
                .to_string();
            ([(VERSION_HEADER, v)], "x")
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        let url = format!("http://{addr}/");
        let mix = vec![
            Class {
                name: "plain".into(),
                target: Target::new(&url, "reviews"),
                weight: 3,
            },
            Class {
                name: "beta".into(),
                target: Target::new(&url, "reviews").header("x-want", "beta"),
                weight: 1,
            },
        ];
        let load = LoadGen::start_mix(client().unwrap(), mix, 200);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while load.snapshot().answered() < 80 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{:?}",
                load.snapshot()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (plain, beta) = (load.snapshot_of("plain"), load.snapshot_of("beta"));
        assert_eq!(plain.count("plain"), plain.answered(), "{plain:?}");
        assert_eq!(beta.count("beta"), beta.answered(), "{beta:?}");
        let share = beta.answered() as f64 / (plain.answered() + beta.answered()) as f64;
        assert!((0.2..=0.3).contains(&share), "beta share {share}");
        assert_eq!(
            load.snapshot().answered(),
            plain.answered() + beta.answered()
        );
    }
}
