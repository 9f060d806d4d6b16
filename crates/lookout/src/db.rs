//! The only way app code reaches D1: every statement is timed and fed to a `D1Tally` (count,
//! slowest signature, N+1), the request's ([`Db::new`]) or a cron run's
//! ([`crate::cron::JobCtx::db`]), so a job's queries are counted like a request's.
//! Signatures come from `lookout_core::deps`; no bound value is ever recorded.

use std::cell::RefCell;
use std::rc::Rc;

use lookout_core::deps::D1Tally;
use serde::de::DeserializeOwned;
use worker::wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement, D1Result, Env};

use crate::clock::mono_ms;
use crate::instrument::{Failure, RequestCtx};

/// A timed D1 handle that counts into one request's or one cron run's tally.
pub struct Db {
    d1: D1Database,
    tally: Rc<RefCell<D1Tally>>,
}

/// D1 binds JS numbers; BigInt is rejected. Ids and amounts fit in 2^53.
pub fn int(n: i64) -> JsValue {
    JsValue::from(n as f64)
}

impl Db {
    /// The request's database (`Options::d1_binding`), counted into its line.
    pub fn new(ctx: &RequestCtx) -> Result<Db, Failure> {
        Db::open(&ctx.env, ctx.options().d1_binding, Rc::clone(&ctx.state.d1))
    }

    pub(crate) fn open(env: &Env, binding: &str, tally: Rc<RefCell<D1Tally>>) -> Result<Db, Failure> {
        Ok(Db { d1: env.d1(binding)?, tally })
    }

    fn record(&self, sql: &[&str], ms: f64) {
        let mut d1 = self.tally.borrow_mut();
        match sql {
            [one] => d1.record_query(one, ms),
            many => d1.record_batch(many, ms),
        }
    }

    fn stmt(&self, sql: &str, params: &[JsValue]) -> Result<D1PreparedStatement, Failure> {
        Ok(self.d1.prepare(sql).bind(params)?)
    }

    /// All rows, deserialized.
    pub async fn all<T: DeserializeOwned>(&self, sql: &str, params: &[JsValue]) -> Result<Vec<T>, Failure> {
        let stmt = self.stmt(sql, params)?;
        let t0 = mono_ms();
        let res = stmt.all().await;
        self.record(&[sql], mono_ms() - t0);
        Ok(res?.results::<T>()?)
    }

    /// The first row, if any.
    pub async fn first<T: DeserializeOwned>(&self, sql: &str, params: &[JsValue]) -> Result<Option<T>, Failure> {
        let stmt = self.stmt(sql, params)?;
        let t0 = mono_ms();
        let res = stmt.first::<T>(None).await;
        self.record(&[sql], mono_ms() - t0);
        Ok(res?)
    }

    /// A statement for its effect; returns the number of changed rows.
    pub async fn run(&self, sql: &str, params: &[JsValue]) -> Result<u64, Failure> {
        let stmt = self.stmt(sql, params)?;
        let t0 = mono_ms();
        let res = stmt.run().await;
        self.record(&[sql], mono_ms() - t0);
        let res: D1Result = res?;
        Ok(res.meta()?.and_then(|m| m.changes).unwrap_or(0) as u64)
    }

    /// Several statements in one round trip (a transaction in D1).
    pub async fn batch(&self, statements: &[(&str, Vec<JsValue>)]) -> Result<Vec<D1Result>, Failure> {
        let stmts = statements.iter().map(|(sql, p)| self.stmt(sql, p)).collect::<Result<Vec<_>, _>>()?;
        let sqls: Vec<&str> = statements.iter().map(|(sql, _)| *sql).collect();
        let t0 = mono_ms();
        let res = self.d1.batch(stmts).await;
        self.record(&sqls, mono_ms() - t0);
        Ok(res?)
    }
}
