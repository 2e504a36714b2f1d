//! Serving the router over HTTP/1.1 with limits a browser tab or a local client cannot
//! exhaust (issue 15): `axum::serve` has no header-size, header-read or connection limits.
//!
//! | limit | value | what the client sees |
//! |---|---|---|
//! | request head (line + headers) | [`MAX_HEADER_BYTES`] | `431 Request Header Fields Too Large`, connection closed |
//! | time to send a request head, also between keep-alive requests | [`HEADER_READ_TIMEOUT`] | connection closed |
//! | open connections | [`MAX_CONNECTIONS`] | further connections wait in the listen backlog |
//! | request body | [`MAX_BODY_BYTES`] | `413 Payload Too Large` |
//! | one event stream's life | [`MAX_STREAM_LIFETIME`] | the stream ends; `EventSource` reconnects |
//! | `Host` | loopback names + `--allowed-host` | `421 Misdirected Request` (DNS rebinding) |

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;

/// Request line plus headers, in bytes (hyper's read buffer; its minimum is 8 KiB).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// From accepting a connection (or finishing a response on it) to the end of the next
/// request head. A client that sends nothing, or trickles, is cut off after this.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once (event streams included: [`crate::MAX_STREAMS`] is lower).
pub const MAX_CONNECTIONS: usize = 1024;
/// Body of any request (commands carry `{"reason": ...}`).
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Longest life of one `/api/v1/events/stream`: the slot is freed even if the client never
/// leaves; browsers reconnect on their own.
pub const MAX_STREAM_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// Serves `app` on `listener` until `shutdown` resolves (then stops accepting; connections
/// in flight finish on their own).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    serve_with(listener, app, shutdown, HEADER_READ_TIMEOUT).await
}

/// [`serve`] with another header-read timeout (tests).
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send,
    header_read_timeout: Duration,
) -> std::io::Result<()> {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            return Ok(());
        };
        let (stream, _) = tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let svc = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout)
                .max_buf_size(MAX_HEADER_BYTES)
                .serve_connection(TokioIo::new(stream), svc);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
}
