//! Dependency instrumentation, pure: SQL signatures, N+1 detection, external-call logging
//! rules, body redaction and cost arithmetic.
