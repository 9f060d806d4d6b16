//! The app's error type: a class name, a fixed message and a redacted context. The
//! instrumentation wrapper turns it into a response and the line's `error_*` fields.

use crate::redact::{scrub_text, ContextValue, ErrorContext};

/// An error a handler returns on purpose. Class and message are `&'static str`, so customer
/// text cannot travel in them; details go in the [`ErrorContext`], allow-listed on the way to the line.
#[derive(Debug, Clone, PartialEq)]
pub struct AppError {
    pub status: u16,
    pub class: &'static str,
    pub message: &'static str,
    pub context: ErrorContext,
}

impl AppError {
    pub fn new(status: u16, class: &'static str, message: &'static str) -> Self {
        AppError { status, class, message, context: ErrorContext::new() }
    }

    /// Add one context entry; keys the Worker's allow-list does not name are dropped and
    /// counted when the line is written ([`ErrorContext::allowed`]).
    pub fn with(mut self, key: &'static str, value: ContextValue) -> Self {
        self.context.insert(key, value);
        self
    }

    pub fn not_found(what: &'static str) -> Self {
        Self::new(404, "NotFound", what)
    }

    pub fn bad_request(message: &'static str) -> Self {
        Self::new(400, "BadRequest", message)
    }
}

/// What the wrapper records for an error that was not an [`AppError`]: the runtime's class
/// and its message with values scrubbed.
#[derive(Debug, Clone, PartialEq)]
pub struct UnexpectedError {
    pub class: String,
    pub message: String,
}

impl UnexpectedError {
    pub fn new(class: &str, raw_message: &str) -> Self {
        UnexpectedError { class: class.to_string(), message: scrub_text(raw_message) }
    }
}

/// Any failure of a handler, as the wrapper sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum HandlerError {
    App(AppError),
    Unexpected(UnexpectedError),
}

impl From<AppError> for HandlerError {
    fn from(e: AppError) -> Self {
        HandlerError::App(e)
    }
}

impl HandlerError {
    pub fn status(&self) -> u16 {
        match self {
            HandlerError::App(e) => e.status,
            HandlerError::Unexpected(_) => 500,
        }
    }

    pub fn class(&self) -> &str {
        match self {
            HandlerError::App(e) => e.class,
            HandlerError::Unexpected(e) => &e.class,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            HandlerError::App(e) => e.message,
            HandlerError::Unexpected(e) => &e.message,
        }
    }

    /// The JSON body the client sees: the class and message of app errors, nothing internal
    /// for unexpected ones; always the request id.
    pub fn client_body(&self, request_id: &str) -> serde_json::Value {
        match self {
            HandlerError::App(e) => serde_json::json!({
                "error": e.class, "message": e.message, "request_id": request_id,
            }),
            HandlerError::Unexpected(_) => serde_json::json!({
                "error": "InternalError", "message": "internal error", "request_id": request_id,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unexpected_errors_hide_internals_from_clients() {
        let e = HandlerError::Unexpected(UnexpectedError::new("D1Error", "D1_ERROR: near \"Alice\": syntax error"));
        let body = e.client_body("req_1");
        assert_eq!(body["error"], "InternalError");
        assert!(!body.to_string().contains("D1"));
        assert_eq!(e.message(), "D1_ERROR: near [redacted]: syntax error");
        assert_eq!(e.status(), 500);
    }

    #[test]
    fn app_errors_keep_class_and_status() {
        let e: HandlerError =
            AppError::new(409, "BlockedByDependents", "Cannot delete ticket with attached transactions")
                .with("ticket_id", ContextValue::Int(2506))
                .into();
        assert_eq!(e.status(), 409);
        assert_eq!(e.client_body("req_1")["error"], "BlockedByDependents");
    }
}
