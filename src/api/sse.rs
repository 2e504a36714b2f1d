//! `/api/v1/events/stream`: rollout changes as Server-Sent Events.
//!
//! Each client has its own broadcast receiver. Sending on a broadcast channel never waits, so
//! a slow client cannot slow the engine; it only falls behind. When it has fallen further
//! behind than the channel keeps, it gets one `lagged` event and the stream ends: the browser's
//! `EventSource` reconnects and the UI refetches, which is cheaper and more correct than
//! replaying a backlog.

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::ApiState;

pub(crate) async fn stream(
    State(st): State<ApiState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = st.backend.subscribe();
    let events = futures::stream::unfold(Some(rx), |rx| async move {
        let mut rx = rx?;
        loop {
            match rx.recv().await {
                Ok(change) => match Event::default().event("change").json_data(&change) {
                    Ok(ev) => return Some((Ok(ev), Some(rx))),
                    Err(e) => tracing::warn!(error = %e, "cannot encode a change"),
                },
                Err(RecvError::Lagged(missed)) => {
                    tracing::info!(missed, "SSE client fell behind; disconnecting it");
                    let ev = Event::default()
                        .event("lagged")
                        .data(format!("missed {missed} changes; reconnect and refetch"));
                    // Ending the stream after this event closes the connection.
                    return Some((Ok(ev), None));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}
