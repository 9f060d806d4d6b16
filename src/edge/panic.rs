//! What survives a panic. With `panic = "abort"` a panic kills the wasm instance, so the
//! wrapper keeps every in-flight request in a registry; the panic hook writes their log lines
//! and hands each one to the JavaScript entry (`js/entry.mjs`), which answers 500 with the
//! request id and forwards the record to the shop's monitor. Cron runs in flight are
//! reported the same way (`scheduled::report_in_flight_runs`).

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use worker::wasm_bindgen::prelude::*;
use worker::wasm_bindgen::JsValue;

use crate::core::deps::D1Tally;
use crate::core::record::{round_ms, ExternalCounts, RequestRecord};

#[wasm_bindgen]
extern "C" {
    /// Defined by `js/entry.mjs`; absent when the module runs without it.
    #[wasm_bindgen(js_namespace = globalThis, js_name = __lookout_on_panic, catch)]
    fn on_panic(request: &JsValue, request_id: &str, line: &str) -> Result<(), JsValue>;
}

/// A request between the start and the end of the wrapper.
pub struct InFlight {
    pub record: RefCell<RequestRecord>,
    pub external: RefCell<ExternalCounts>,
    pub d1: RefCell<D1Tally>,
    pub t0_ms: f64,
    pub js_request: JsValue,
}

impl InFlight {
    pub fn new(record: RequestRecord, t0_ms: f64, js_request: JsValue) -> Self {
        InFlight {
            record: RefCell::new(record),
            external: RefCell::default(),
            d1: RefCell::default(),
            t0_ms,
            js_request,
        }
    }

    /// Fill the end-of-request fields and return the line.
    pub fn finish(&self, status: u16, now_ms: f64) -> String {
        let mut r = self.record.borrow_mut();
        r.status = status;
        r.ms = round_ms(now_ms - self.t0_ms);
        if let Ok(ext) = self.external.try_borrow() {
            r.external_calls = ext.to_field();
        }
        if let Ok(d1) = self.d1.try_borrow() {
            d1.apply_to(&mut r);
        }
        r.to_line()
    }
}

thread_local! {
    static IN_FLIGHT: RefCell<Vec<Rc<InFlight>>> = const { RefCell::new(Vec::new()) };
    /// The request whose future is being polled right now (the one that panicked, if any).
    static CURRENT: RefCell<Option<Rc<str>>> = const { RefCell::new(None) };
}

pub fn register(f: Rc<InFlight>) {
    IN_FLIGHT.with(|v| v.borrow_mut().push(f));
}

pub fn unregister(request_id: &str) {
    IN_FLIGHT
        .with(|v| v.borrow_mut().retain(|f| f.record.try_borrow().map(|r| r.request_id != request_id).unwrap_or(true)));
}

thread_local! {
    static HOOK_INSTALLED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Install the hook once per wasm instance (a reinit starts with a fresh instance), after the
/// `worker` crate's own start-up hook, which it replaces: that one prints the panic message,
/// and a message may hold customer data. What it did besides printing (flag the instance for
/// a reset) is done here too.
pub fn ensure_hook(now_ms: fn() -> f64) {
    if HOOK_INSTALLED.with(|h| h.replace(true)) {
        return;
    }
    std::panic::set_hook(Box::new(move |info| {
        let location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        report_in_flight(&location, now_ms());
        crate::edge::scheduled::report_in_flight_runs(&location);
        flag_critical_error();
    }));
}

fn flag_critical_error() {
    use worker::js_sys::{global, Reflect};
    if let Ok(state) = Reflect::get(&global(), &JsValue::from_str("__worker_init_state")) {
        if state.is_object() {
            let _ = Reflect::set(&state, &JsValue::from_str("criticalError"), &JsValue::TRUE);
        }
    }
}

/// Finish every in-flight request's line: the one being polled is the panic, the others die
/// with the instance. The panic message is not logged (it may hold data); its location is.
fn report_in_flight(location: &str, now: f64) {
    let current = CURRENT.with(|c| c.try_borrow().ok().and_then(|c| c.clone()));
    let current = current.as_deref().map(str::to_string);
    let all = IN_FLIGHT.with(|v| v.try_borrow().map(|v| v.clone()).unwrap_or_default());
    for f in all {
        let request_id = {
            let Ok(mut r) = f.record.try_borrow_mut() else { continue };
            if current.as_deref() == Some(r.request_id.as_str()) {
                r.error_class = Some("Panic".into());
                r.error_msg = Some(format!("handler panicked at {location}"));
            } else {
                r.error_class = Some("AbortedByPanic".into());
                r.error_msg = Some("the wasm instance was reset by another request's panic".into());
            }
            r.request_id.clone()
        };
        let line = f.finish(500, now);
        worker::console_log!("{line}");
        let _ = on_panic(&f.js_request, &request_id, &line);
    }
}

/// A future that marks its request as the current one while it is polled.
pub struct Tracked<F> {
    pub request_id: Rc<str>,
    pub inner: Pin<Box<F>>,
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let id = Rc::clone(&self.request_id);
        CURRENT.with(|c| *c.borrow_mut() = Some(id));
        let out = self.inner.as_mut().poll(cx);
        CURRENT.with(|c| *c.borrow_mut() = None);
        out
    }
}
