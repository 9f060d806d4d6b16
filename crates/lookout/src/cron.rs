//! The cron runner: an adopting Worker's `#[event(scheduled)]` calls [`run`] with its
//! [`Jobs`], a registry of named jobs (any names, any number). For each watched cron the
//! trigger runs (`CRON_WATCH`, `WatchList::for_trigger`), per shop (`SHOP_SLUG`, else every
//! slug in `SHOPS`), in order: the Start check-in to the shop's monitor, the job, exactly one
//! summary line (`CronRecord::to_line`, console.log), the End check-in. A job that returns an
//! error still gets its line with an `errors` entry; a job that panics gets it from the panic
//! hook, which also hands the End check-in to `js/entry.mjs` to send. A failed check-in is
//! logged and never fails the job. Decisions are in `lookout_core::cron`.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use lookout_core::cron::{CheckInKind, CronCheckIn, CronConfig, CronErrorEntry, CronRun, Results, WatchEntry};
use lookout_core::deps::D1Tally;
use lookout_core::ingest::check_ins_body;
use lookout_core::redact::scrub_text;
use worker::wasm_bindgen::prelude::*;
use worker::wasm_bindgen::JsValue;
use worker::{console_log, Env, Method, ScheduledEvent};

use crate::clock::wall_ms;
use crate::db::Db;
use crate::forward::{ingest_with_retry, monitor_request};
use crate::inflight::{self, InFlight};
use crate::instrument::{runtime_class, Failure};
use crate::options::Options;
use crate::settings::{self, Settings};

#[wasm_bindgen]
extern "C" {
    /// Defined by `js/entry.mjs`: sends a panicked run's End check-in to the shop's monitor.
    #[wasm_bindgen(js_namespace = globalThis, js_name = __lookout_on_cron_panic, catch)]
    fn on_cron_panic(shop: &str, check_in_body: &str, monitor_binding: &str) -> Result<(), JsValue>;
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

impl JobFailure {
    pub fn new(class: &str, message: impl Into<String>) -> Self {
        JobFailure { class: class.to_string(), message: message.into() }
    }
}

impl From<worker::Error> for JobFailure {
    fn from(e: worker::Error) -> Self {
        JobFailure { class: runtime_class(&e).to_string(), message: e.to_string() }
    }
}

impl From<Failure> for JobFailure {
    fn from(f: Failure) -> Self {
        match f {
            Failure::App(e) => JobFailure::new(e.class, e.message),
            Failure::Runtime(e) => e.into(),
        }
    }
}

/// What a job returns: its figures go through [`JobCtx::int`] / [`JobCtx::flag`].
pub type JobResult = Result<(), JobFailure>;

type BoxedJob = Box<dyn Fn(JobCtx) -> Pin<Box<dyn Future<Output = JobResult>>>>;

/// The Worker's cron jobs by name. A watched cron (`CRON_WATCH`) runs the job of its name;
/// one with no job here gets an `UnknownJob` error in its summary line.
#[derive(Default)]
pub struct Jobs {
    jobs: Vec<(String, BoxedJob)>,
}

impl Jobs {
    pub fn new() -> Jobs {
        Jobs::default()
    }

    /// Register `job` under `name` (the `cron` of its `CRON_WATCH` entry).
    pub fn add<F, Fut>(mut self, name: &str, job: F) -> Jobs
    where
        F: Fn(JobCtx) -> Fut + 'static,
        Fut: Future<Output = JobResult> + 'static,
    {
        self.jobs.retain(|(n, _)| n != name);
        self.jobs.push((name.to_string(), Box::new(move |ctx| Box::pin(job(ctx)))));
        self
    }

    /// The registered names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.jobs.iter().map(|(n, _)| n.as_str())
    }

    fn get(&self, name: &str) -> Option<&BoxedJob> {
        self.jobs.iter().find(|(n, _)| n == name).map(|(_, j)| j)
    }
}

/// A run between its Start check-in and its summary line.
struct RunState {
    run: CronRun,
    results: RefCell<Results>,
    d1: Rc<RefCell<D1Tally>>,
    monitor_binding: &'static str,
}

impl RunState {
    /// The summary line (with the D1 tally) and the End check-in.
    fn finish(&self, errors: Vec<CronErrorEntry>) -> (String, CronCheckIn) {
        let results = self.results.try_borrow().map(|r| r.clone()).unwrap_or_default();
        let (mut record, end) = self.run.clone().finish(wall_ms(), results, errors);
        if let Ok(d1) = self.d1.try_borrow() {
            record.d1_queries = d1.queries();
            record.d1_slowest = d1.slowest().cloned();
        }
        (record.to_line(), end)
    }
}

impl InFlight for RunState {
    fn report_panic(&self, panicked: bool, location: &str) {
        let error = if panicked {
            CronErrorEntry::new("Panic", &format!("job panicked at {location}"))
        } else {
            CronErrorEntry::new("AbortedByPanic", "the wasm instance was reset by a panic elsewhere")
        };
        let (line, end) = self.finish(vec![error]);
        console_log!("{line}");
        let _ = on_cron_panic(&self.run.shop, &check_ins_body(std::slice::from_ref(&end)), self.monitor_binding);
    }
}

/// What a job sees: the env, its shop and start, a counted [`Db`], and its results.
#[derive(Clone)]
pub struct JobCtx {
    pub env: Env,
    pub shop: String,
    /// When the run started (wall clock, Unix epoch ms).
    pub started_at_ms: i64,
    settings: Rc<Settings>,
    state: Rc<RunState>,
}

impl JobCtx {
    /// Report an integer figure in the summary line's `results`.
    pub fn int(&self, key: &str, v: i64) -> &Self {
        self.state.results.borrow_mut().int(key, v);
        self
    }

    /// Report a flag in the summary line's `results`.
    pub fn flag(&self, key: &str, v: bool) -> &Self {
        self.state.results.borrow_mut().flag(key, v);
        self
    }

    /// The D1 database (`Options::d1_binding`), counted into the summary line.
    pub fn db(&self) -> Result<Db, JobFailure> {
        Ok(Db::open(&self.env, self.settings.options.d1_binding, Rc::clone(&self.state.d1))?)
    }

    /// Sample the app's R2 storage for the shop's dashboard (its "R2 storage growth" chart):
    /// list the bucket (`Options::r2_binding`) under `prefix`, count the objects whose key
    /// `keep` accepts and their bytes, report them as `r2_objects` and `r2_bytes` in the
    /// run's results and send the sample to the shop's monitor. A daily job calls it once.
    /// At most 100 list pages (100,000 objects) are read; a failed send is logged, not fatal.
    pub async fn sample_r2_usage(&self, prefix: &str, keep: impl Fn(&str) -> bool) -> Result<(u64, u64), JobFailure> {
        const MAX_PAGES: usize = 100;
        let bucket = self.env.bucket(self.settings.options.r2_binding)?;
        let (mut bytes, mut objects, mut cursor) = (0u64, 0u64, None::<String>);
        for _ in 0..MAX_PAGES {
            let mut list = bucket.list().prefix(prefix.to_string());
            if let Some(c) = cursor.take() {
                list = list.cursor(c);
            }
            let page = list.execute().await?;
            for o in page.objects().iter().filter(|o| keep(&o.key())) {
                bytes += o.size();
                objects += 1;
            }
            match page.cursor().filter(|_| page.truncated()) {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        self.int("r2_bytes", i64::try_from(bytes).unwrap_or(i64::MAX)).int("r2_objects", objects as i64);
        let body = serde_json::json!({"bytes": bytes, "objects": objects}).to_string();
        let binding = self.settings.options.monitor_binding;
        match monitor_request(&self.env, binding, &self.shop, Method::Post, "/r2/sample", Some(&body)).await {
            Ok((200, _)) => {}
            Ok((status, _)) => {
                log(serde_json::json!({"kind": "r2_sample_failed", "shop": self.shop, "status": status}))
            }
            Err(e) => log(
                serde_json::json!({"kind": "r2_sample_failed", "shop": self.shop, "error": scrub_text(&e.to_string())}),
            ),
        }
        Ok((bytes, objects))
    }

    /// `ENVIRONMENT=test`.
    pub fn is_test_env(&self) -> bool {
        self.settings.test_env
    }

    fn set_results(&self, r: Results) {
        *self.state.results.borrow_mut() = r;
    }
}

/// Run the watched crons of `event`'s trigger with `jobs`, for every shop.
pub async fn run(options: &Options, event: ScheduledEvent, env: Env, jobs: &Jobs) {
    let settings = settings::settings(&env, options);
    let trigger = event.cron();
    let scheduled_ms = event.schedule() as i64;
    let var = |n: &str| settings::var(&env, n);
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
    for shop in settings.shops.all() {
        for entry in &entries {
            run_one(&env, &settings, jobs, entry, shop, scheduled_ms).await;
        }
    }
}

/// One watched job for one shop: start, run, line, end.
async fn run_one(env: &Env, settings: &Rc<Settings>, jobs: &Jobs, entry: &WatchEntry, shop: &str, scheduled_ms: i64) {
    let binding = settings.options.monitor_binding;
    let (run, start) = CronRun::start(entry, shop, &settings.build_version, scheduled_ms, wall_ms());
    send_check_in(env, binding, shop, &start).await;
    let started_at_ms = run.started_at_ms;
    let state = Rc::new(RunState { run, results: RefCell::default(), d1: Rc::default(), monitor_binding: binding });
    let registration = inflight::register(Rc::clone(&state) as Rc<dyn InFlight>);
    let ctx = JobCtx {
        env: env.clone(),
        shop: shop.to_string(),
        started_at_ms,
        settings: Rc::clone(settings),
        state: Rc::clone(&state),
    };
    let outcome = match jobs.get(&entry.cron) {
        Some(job) => registration.track(job(ctx)).await,
        None => {
            Err(JobFailure::new("UnknownJob", format!("no job named {} in this build (check CRON_WATCH)", entry.cron)))
        }
    };
    drop(registration);
    let errors = match outcome {
        Ok(()) => Vec::new(),
        Err(f) => vec![CronErrorEntry::new(&f.class, &f.message)],
    };
    let (line, end) = state.finish(errors);
    console_log!("{line}");
    send_check_in(env, binding, shop, &end).await;
}

/// Built-in job: project the ISO week's Twilio spend (held by the shop's monitor) against
/// `TWILIO_WEEKLY_BUDGET_MICROS`; above 150% it fires `twilio_cost_projection`. Register it
/// under the cron's name: `Jobs::new().add("weekly_twilio_summary", lookout::cron::twilio_summary)`.
pub async fn twilio_summary(job: JobCtx) -> JobResult {
    monitor_job(&job, "/cron/twilio-summary").await
}

/// Built-in job: project the month's AI spend against `AI_MONTHLY_CAP_MICROS`; above it AI
/// is paused for the shop and `ai_cost_projection` fires.
pub async fn ai_check(job: JobCtx) -> JobResult {
    monitor_job(&job, "/cron/ai-check").await
}

/// A cost job runs in the shop's monitor, which holds the spend; its figures come back.
async fn monitor_job(job: &JobCtx, path: &str) -> JobResult {
    let binding = job.settings.options.monitor_binding;
    let (status, body) = monitor_request(&job.env, binding, &job.shop, Method::Post, path, None).await?;
    if status != 200 {
        return Err(JobFailure::new("MonitorError", format!("monitor answered {status} for {path}")));
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        results: Results,
    }
    let a: Answer = serde_json::from_str(&body)
        .map_err(|e| JobFailure::new("MonitorError", format!("monitor answer unreadable: {e}")))?;
    job.set_results(a.results);
    Ok(())
}

/// Send one check-in (one retry); a failure is logged, never raised.
async fn send_check_in(env: &Env, binding: &str, shop: &str, ci: &CronCheckIn) {
    let body = check_ins_body(std::slice::from_ref(ci));
    if let Err(e) = ingest_with_retry(env, binding, shop, &body).await {
        log(serde_json::json!({
            "kind": "cron_check_in_failed", "shop": shop, "cron": ci.cron, "run_id": ci.run_id,
            "type": if matches!(ci.kind, CheckInKind::Start) { "start" } else { "end" },
            "status": e.status, "attempts": e.attempts, "error": scrub_text(&e.error),
        }));
    }
}
