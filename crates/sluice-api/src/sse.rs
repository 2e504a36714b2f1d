//! `/api/v1/events/stream`: rollout changes as Server-Sent Events.
//!
//! Each client has its own broadcast receiver. Sending on a broadcast channel never waits, so
//! a slow client cannot slow the engine; it only falls behind. When it has fallen further
//! behind than the channel keeps, it gets one `lagged` event and the stream ends: the browser's
//! `EventSource` reconnects and the UI refetches, which is cheaper and more correct than
//! replaying a backlog.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::{ApiError, ApiState};

pub(crate) async fn stream(
    State(st): State<ApiState>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    // The permit lives in the stream: it is released when the client goes away.
    let permit = Arc::clone(&st.streams)
        .try_acquire_owned()
        .map_err(|_| ApiError::Busy("too many live event streams are open; retry later".into()))?;
    let rx = st.backend.subscribe();
    let events = futures::stream::unfold(Some((rx, permit)), |state| async move {
        let (mut rx, permit) = state?;
        loop {
            match rx.recv().await {
                Ok(change) => match Event::default().event("change").json_data(&change) {
                    Ok(ev) => return Some((Ok(ev), Some((rx, permit)))),
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
    // A slot is not held forever by a client that never leaves (see `server`).
    let events = futures::StreamExt::take_until(
        events,
        tokio::time::sleep(super::server::MAX_STREAM_LIFETIME),
    );
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
