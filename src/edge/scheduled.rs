//! The scheduled (cron) handler. For each watched cron the trigger runs (`CRON_WATCH`,
//! `WatchList::for_trigger`), per shop (`SHOP_SLUG`, else every slug in `SHOPS`), in order:
//! the Start check-in to the shop's monitor, the job, exactly one summary line
//! (`CronRecord::to_line`, console.log), the End check-in. A job that returns an error still
//! gets its line with an `errors` entry; a job that panics gets it from the panic hook
//! (`report_in_flight_runs`), which also hands the End check-in to `js/entry.mjs` to send.
//! A failed check-in is logged and never fails the job. The jobs: reconcile.rs (D1) and the
//! monitor's cost projections; decisions are in `core::cron`.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use worker::wasm_bindgen::prelude::*;
use worker::wasm_bindgen::JsValue;
use worker::{console_log, event, Env, Method, ScheduleContext, ScheduledEvent};

use crate::core::cron::{CronCheckIn, CronConfig, CronErrorEntry, CronRun, Job, Results, WatchEntry};
use crate::core::ingest::check_ins_body;
use crate::core::shop::is_slug;
use crate::edge::forward::{ingest_with_retry, monitor_request};
use crate::edge::{config, instrument, panic, reconcile};

#[wasm_bindgen]
extern "C" {
    /// Defined by `js/entry.mjs`: sends a panicked run's End check-in to the shop's monitor.
    #[wasm_bindgen(js_namespace = globalThis, js_name = __lookout_on_cron_panic, catch)]
    fn on_cron_panic(shop: &str, check_in_body: &str) -> Result<(), JsValue>;
}

fn wall_ms() -> i64 {
    worker::js_sys::Date::now() as i64
}

fn log(v: serde_json::Value) {
    console_log!("{v}");
}

/// Why a job failed: its class and raw message (scrubbed when it becomes an `errors` entry).
#[derive(Debug)]
pub struct JobFailure {
    pub class: String,
    pub message: String,
}

impl From<worker::Error> for JobFailure {
    fn from(e: worker::Error) -> Self {
        JobFailure { class: instrument::runtime_class(&e).to_string(), message: e.to_string() }
    }
}

pub type JobResult = Result<(), JobFailure>;

#[event(scheduled)]
pub async fn scheduled(event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    panic::ensure_hook(instrument::now_ms);
    let trigger = event.cron();
    let scheduled_ms = event.schedule() as i64;
    let var = |n: &str| config::var(&env, n);
    let (cfg, errors) = CronConfig::from_vars(
        var("CRON_WATCH").as_deref(),
        var("TWILIO_WEEKLY_BUDGET_MICROS").as_deref(),
        var("AI_MONTHLY_CAP_MICROS").as_deref(),
    );
    for e in errors {
        log(serde_json::json!({"kind": "config_error", "error": e}));
    }
    let entries: Vec<WatchEntry> = cfg.watch.for_trigger(&trigger).into_iter().cloned().collect();
    if entries.is_empty() {
        log(serde_json::json!({"kind": "cron_unwatched", "trigger": trigger,
            "message": "no watched cron runs on this trigger; add it to CRON_WATCH"}));
        return;
    }
    let build_version = config::build_version(&env);
    for shop in shops(&env) {
        for entry in &entries {
            run_one(&env, entry, &shop, &build_version, scheduled_ms).await;
        }
    }
}

/// The shops a cron runs for: `SHOP_SLUG`, else the valid slugs of `SHOPS`.
fn shops(env: &Env) -> Vec<String> {
    if let Some(s) = config::var(env, "SHOP_SLUG") {
        return vec![s.trim().to_string()];
    }
    let mut out: Vec<String> = Vec::new();
    for s in config::var(env, "SHOPS").unwrap_or_default().split(',').map(str::trim) {
        if is_slug(s) && !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    }
    out
}

/// One watched job for one shop: start, run, line, end.
async fn run_one(env: &Env, entry: &WatchEntry, shop: &str, build_version: &str, scheduled_ms: i64) {
    let (run, start) = CronRun::start(entry, shop, build_version, scheduled_ms, wall_ms());
    send_check_in(env, shop, &start).await;
    let flight = Rc::new(RunInFlight { run: run.clone(), results: RefCell::new(Results::new()) });
    RUNS.with(|r| r.borrow_mut().push(Rc::clone(&flight)));
    let test_env = config::is_test_env(env);
    let outcome =
        TrackedRun { key: flight.key(), inner: Box::pin(run_job(env, &entry.cron, shop, test_env, &flight)) }.await;
    RUNS.with(|r| r.borrow_mut().retain(|f| !Rc::ptr_eq(f, &flight)));
    let errors = match outcome {
        Ok(()) => Vec::new(),
        Err(f) => vec![CronErrorEntry::new(&f.class, &f.message)],
    };
    let results = flight.results.borrow().clone();
    let (record, end) = run.finish(wall_ms(), results, errors);
    console_log!("{}", record.to_line());
    send_check_in(env, shop, &end).await;
}

async fn run_job(env: &Env, cron: &str, shop: &str, test_env: bool, flight: &RunInFlight) -> JobResult {
    let started = flight.run.started_at_ms;
    match Job::from_name(cron, test_env) {
        Some(Job::DailyReconciliation) => reconcile::run(env, shop, started, &flight.results).await,
        Some(Job::WeeklyTwilioSummary) => monitor_job(env, shop, "/cron/twilio-summary", &flight.results).await,
        Some(Job::DailyAiCheck) => monitor_job(env, shop, "/cron/ai-check", &flight.results).await,
        Some(Job::TestError) => {
            flight.results.borrow_mut().int("steps_done", 1);
            Err(JobFailure {
                class: "JobError".into(),
                message: "export failed for customer 'Alice Smith' <alice@example.com>".into(),
            })
        }
        Some(Job::TestSlow) => {
            worker::Delay::from(Duration::from_secs(6)).await;
            flight.results.borrow_mut().int("slept_s", 6);
            Ok(())
        }
        Some(Job::TestPanic) => {
            let name = "Alice Smith";
            panic!("job state broken for customer {name}");
        }
        None => Err(JobFailure {
            class: "UnknownJob".into(),
            message: format!("no job named {cron} in this build (check CRON_WATCH)"),
        }),
    }
}

/// A cost job runs in the shop's monitor, which holds the spend; its figures come back.
async fn monitor_job(env: &Env, shop: &str, path: &str, results: &RefCell<Results>) -> JobResult {
    let (status, body) = monitor_request(env, shop, Method::Post, path, None).await?;
    if status != 200 {
        return Err(JobFailure {
            class: "MonitorError".into(),
            message: format!("monitor answered {status} for {path}"),
        });
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        results: Results,
    }
    let a: Answer = serde_json::from_str(&body)
        .map_err(|e| JobFailure { class: "MonitorError".into(), message: format!("monitor answer unreadable: {e}") })?;
    *results.borrow_mut() = a.results;
    Ok(())
}

/// Send one check-in (one retry); a failure is logged, never raised.
async fn send_check_in(env: &Env, shop: &str, ci: &CronCheckIn) {
    let body = check_ins_body(std::slice::from_ref(ci));
    if let Err(e) = ingest_with_retry(env, shop, &body).await {
        log(serde_json::json!({
            "kind": "cron_check_in_failed", "shop": shop, "cron": ci.cron, "run_id": ci.run_id,
            "type": if matches!(ci.kind, crate::core::cron::CheckInKind::Start) { "start" } else { "end" },
            "error": crate::core::redact::scrub_text(&e),
        }));
    }
}

// ---- Panic survival: runs in flight, for the panic hook (panic.rs). ----

/// A run between its Start check-in and its summary line.
struct RunInFlight {
    run: CronRun,
    results: RefCell<Results>,
}

impl RunInFlight {
    fn key(&self) -> Rc<str> {
        format!("{}/{}", self.run.shop, self.run.run_id).into()
    }
}

thread_local! {
    static RUNS: RefCell<Vec<Rc<RunInFlight>>> = const { RefCell::new(Vec::new()) };
    /// The run whose job is being polled right now (the one that panicked, if any).
    static CURRENT: RefCell<Option<Rc<str>>> = const { RefCell::new(None) };
}

/// A job future that marks its run as the current one while it is polled.
struct TrackedRun<F> {
    key: Rc<str>,
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for TrackedRun<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let key = Rc::clone(&self.key);
        CURRENT.with(|c| *c.borrow_mut() = Some(key));
        let out = self.inner.as_mut().poll(cx);
        CURRENT.with(|c| *c.borrow_mut() = None);
        out
    }
}

/// Called by the panic hook: every run in flight gets its summary line with an `errors`
/// entry (`Panic` for the run that panicked, `AbortedByPanic` for the others; the panic
/// message is never logged, its location is) and its End check-in goes to the JS entry.
pub fn report_in_flight_runs(location: &str) {
    let current = CURRENT.with(|c| c.try_borrow().ok().and_then(|c| c.clone()));
    let all = RUNS.with(|r| r.try_borrow().map(|r| r.clone()).unwrap_or_default());
    for f in all {
        let error = if current.as_deref() == Some(&*f.key()) {
            CronErrorEntry::new("Panic", &format!("job panicked at {location}"))
        } else {
            CronErrorEntry::new("AbortedByPanic", "the wasm instance was reset by a panic elsewhere")
        };
        let results = f.results.try_borrow().map(|r| r.clone()).unwrap_or_default();
        let shop = f.run.shop.clone();
        let (record, end) = f.run.clone().finish(wall_ms(), results, vec![error]);
        console_log!("{}", record.to_line());
        let _ = on_cron_panic(&shop, &check_ins_body(std::slice::from_ref(&end)));
    }
}
