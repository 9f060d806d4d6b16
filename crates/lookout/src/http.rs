//! Outbound HTTP with a timeout, shared by alert delivery and the external-call wrapper.

use std::time::Duration;

use futures_util::future::{select, Either};
use worker::{AbortController, Fetch, Request, Response};

/// Why a fetch produced no response.
#[derive(Debug)]
pub enum FetchError {
    /// No answer within the timeout (the request was aborted).
    Timeout,
    /// DNS, connect, TLS or reset: the runtime's message, unscrubbed.
    Network(String),
}

/// Send `req`, aborting it after `timeout`.
pub async fn fetch_with_timeout(req: Request, timeout: Duration) -> Result<Response, FetchError> {
    let controller = AbortController::default();
    let fetch = Fetch::Request(req);
    let signal = controller.signal();
    let send = Box::pin(fetch.send_with_signal(&signal));
    let timer = Box::pin(worker::Delay::from(timeout));
    let outcome = match select(send, timer).await {
        Either::Left((r, _)) => Some(r),
        Either::Right(_) => None,
    };
    match outcome {
        Some(Ok(resp)) => Ok(resp),
        Some(Err(e)) => Err(FetchError::Network(e.to_string())),
        None => {
            controller.abort();
            Err(FetchError::Timeout)
        }
    }
}
