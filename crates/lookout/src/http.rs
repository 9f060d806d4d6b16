//! Outbound HTTP, shared by alert delivery and the external-call wrapper: [`fetch_capped`]
//! reads the whole answer (head and body) within one deadline, the body capped in size.

use std::time::Duration;

use futures_util::future::{select, Either};
use futures_util::StreamExt;
use lookout_core::http::{check_declared_length, BodyCounter};
use worker::{AbortController, Fetch, Headers, Request};

/// Why a fetch produced no (usable) response.
#[derive(Debug)]
pub enum FetchError {
    /// No whole answer within the timeout (the request was aborted).
    Timeout,
    /// DNS, connect, TLS or reset: the runtime's message, unscrubbed.
    Network(String),
    /// The answer's body is larger than the cap (declared, or counted while reading); it was
    /// not read further.
    TooLarge { status: u16 },
}

/// A whole answer: status, headers and the body (at most the cap).
pub struct Fetched {
    pub status: u16,
    pub headers: Headers,
    pub body: Vec<u8>,
}

/// Send `req` and read its whole answer within `timeout` (head and body: a server that sends
/// headers and then trickles the body times out too), reading at most `max_body` bytes.
pub async fn fetch_capped(req: Request, timeout: Duration, max_body: usize) -> Result<Fetched, FetchError> {
    let controller = AbortController::default();
    let signal = controller.signal();
    let whole = Box::pin(async move {
        let mut resp =
            Fetch::Request(req).send_with_signal(&signal).await.map_err(|e| FetchError::Network(e.to_string()))?;
        let status = resp.status_code();
        let declared = resp.headers().get("content-length").ok().flatten();
        if check_declared_length(declared.as_deref(), max_body as u64).is_err() {
            return Err(FetchError::TooLarge { status });
        }
        let mut body = Vec::new();
        if let Ok(mut stream) = resp.stream() {
            let mut counter = BodyCounter::new(max_body as u64);
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| FetchError::Network(e.to_string()))?;
                counter.add(chunk.len()).map_err(|_| FetchError::TooLarge { status })?;
                body.extend_from_slice(&chunk);
            }
        }
        Ok(Fetched { status, headers: resp.headers().clone(), body })
    });
    let timer = Box::pin(worker::Delay::from(timeout));
    let outcome = match select(whole, timer).await {
        Either::Left((r, _)) => r,
        Either::Right(_) => Err(FetchError::Timeout),
    };
    // Stop the transfer of an answer we will not read (timeout, oversize); harmless otherwise.
    if outcome.is_err() {
        controller.abort();
    }
    outcome
}
