//! Reading a request body within a size limit ([`read_body`]): the declared `Content-Length`
//! is judged before anything is read, and a body without one (chunked) is counted while it
//! streams in, so a client can never make the Worker buffer more than the limit (plus one
//! chunk). The limits' arithmetic lives in `lookout_core::http`.

use futures_util::StreamExt;
use lookout_core::error::AppError;
use lookout_core::http::{check_declared_length, BodyCounter, BodyError};
use lookout_core::redact::ContextValue;
use worker::Request;

use crate::instrument::Failure;

fn refused(e: BodyError) -> Failure {
    match e {
        BodyError::TooLarge { bytes, limit } => AppError::new(413, "PayloadTooLarge", e.message())
            .with("bytes", ContextValue::Int(i64::try_from(bytes).unwrap_or(i64::MAX)))
            .with("limit", ContextValue::Int(i64::try_from(limit).unwrap_or(i64::MAX)))
            .into(),
        BodyError::BadLength => AppError::bad_request(e.message()).into(),
    }
}

/// The request's body, at most `limit` bytes: 413 `PayloadTooLarge` (with `bytes` and
/// `limit`) when `Content-Length` says more, before reading, or as soon as the bytes read
/// pass the limit; 400 `BadRequest` for a `Content-Length` that is not a number.
pub async fn read_body(req: &mut Request, limit: usize) -> Result<Vec<u8>, Failure> {
    let declared = req.headers().get("content-length")?;
    let expected = check_declared_length(declared.as_deref(), limit as u64).map_err(refused)?;
    if req.inner().body().is_none() {
        return Ok(Vec::new());
    }
    let mut out = Vec::with_capacity(expected.unwrap_or(0).min(limit as u64) as usize);
    let mut counter = BodyCounter::new(limit as u64);
    let mut stream = req.stream()?;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        counter.add(chunk.len()).map_err(refused)?;
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
