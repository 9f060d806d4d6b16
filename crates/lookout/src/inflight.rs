//! What survives a panic. With `panic = "abort"` a panic kills the wasm instance, so every
//! request and every cron run in flight is kept in one registry; the panic hook makes each
//! write its line and hand what must still be sent (the request's record, the run's End
//! check-in) to the JavaScript entry (`js/entry.mjs`), which answers 500 with the request id
//! and sends it. Then it hands over the records of finished requests this isolate had not yet
//! sent (the pending partial buckets of every shop, `forward::hand_over_on_panic`), and every
//! shop monitor loaded in this instance hands over what it had not stored
//! (`shop_monitor::hand_over_on_panic`: a Worker and its Durable Objects may share the wasm
//! instance, locally they always do), so a panic loses no other request's record. The one
//! being polled when the panic hit is reported as
//! `Panic`, the others as `AbortedByPanic`. The panic message is never logged (it may hold
//! data); its location is.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use worker::wasm_bindgen::JsValue;

/// Something in flight that must still report if the instance dies.
pub(crate) trait InFlight {
    /// Write the line and hand what must still be sent to the JS entry. `panicked`: this is
    /// the one whose code was running; `location` is `file:line` of the panic.
    fn report_panic(&self, panicked: bool, location: &str);
}

thread_local! {
    static IN_FLIGHT: RefCell<Vec<(u64, Rc<dyn InFlight>)>> = const { RefCell::new(Vec::new()) };
    /// The entry whose future is being polled right now (the one that panicked, if any).
    static CURRENT: Cell<Option<u64>> = const { Cell::new(None) };
    static NEXT_ID: Cell<u64> = const { Cell::new(1) };
    static HOOK_INSTALLED: Cell<bool> = const { Cell::new(false) };
}

/// An entry's place in the registry; dropping it takes the entry out.
pub(crate) struct Registration {
    id: u64,
}

impl Registration {
    /// Run `fut` marked as this entry's code (so a panic inside it is attributed to it).
    pub(crate) fn track<F: Future>(&self, fut: F) -> Tracked<F> {
        Tracked { id: self.id, inner: Box::pin(fut) }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let id = self.id;
        IN_FLIGHT.with(|v| {
            if let Ok(mut v) = v.try_borrow_mut() {
                v.retain(|(i, _)| *i != id);
            }
        });
    }
}

/// Keep `entry` until the returned registration is dropped; installs the hook on first use.
pub(crate) fn register(entry: Rc<dyn InFlight>) -> Registration {
    ensure_hook();
    let id = NEXT_ID.with(|n| {
        let id = n.get();
        n.set(id + 1);
        id
    });
    IN_FLIGHT.with(|v| v.borrow_mut().push((id, entry)));
    Registration { id }
}

/// A future that marks its entry as the current one while it is polled.
pub(crate) struct Tracked<F> {
    id: u64,
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let previous = CURRENT.with(|c| c.replace(Some(self.id)));
        let out = self.inner.as_mut().poll(cx);
        CURRENT.with(|c| c.set(previous));
        out
    }
}

/// Install the hook once per wasm instance (a reinit starts with a fresh instance). It
/// replaces the `worker` crate's start-up hook, which prints the panic message (a message may
/// hold customer data); what that hook did besides printing (flag the instance for a reset)
/// is done here too.
fn ensure_hook() {
    if HOOK_INSTALLED.with(|h| h.replace(true)) {
        return;
    }
    std::panic::set_hook(Box::new(move |info| {
        let location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        let current = CURRENT.with(|c| c.get());
        let all = IN_FLIGHT.with(|v| v.try_borrow().map(|v| v.clone()).unwrap_or_default());
        for (id, entry) in all {
            entry.report_panic(Some(id) == current, &location);
        }
        crate::forward::hand_over_on_panic();
        crate::shop_monitor::hand_over_on_panic();
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
