//! The only way app code reaches D1: every statement is timed and fed to the request's
//! `D1Tally` (count, slowest signature, N+1). Signatures come from `crate::core::deps`; no
//! bound value is ever recorded.

use std::rc::Rc;

use serde::de::DeserializeOwned;
use worker::wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement, D1Result};

use crate::edge::instrument::{now_ms, Failure, RequestCtx};

/// A timed D1 handle bound to one request.
pub struct Db {
    d1: D1Database,
    ctx: Rc<RequestCtx>,
}

/// D1 binds JS numbers; BigInt is rejected. Ids and amounts fit in 2^53.
pub fn int(n: i64) -> JsValue {
    JsValue::from(n as f64)
}

impl Db {
    pub fn new(ctx: &Rc<RequestCtx>) -> Result<Db, Failure> {
        Ok(Db { d1: ctx.env.d1("DB")?, ctx: Rc::clone(ctx) })
    }

    fn stmt(&self, sql: &str, params: &[JsValue]) -> Result<D1PreparedStatement, Failure> {
        Ok(self.d1.prepare(sql).bind(params)?)
    }

    /// All rows, deserialized.
    pub async fn all<T: DeserializeOwned>(&self, sql: &str, params: &[JsValue]) -> Result<Vec<T>, Failure> {
        let stmt = self.stmt(sql, params)?;
        let t0 = now_ms();
        let res = stmt.all().await;
        self.ctx.record_d1(&[sql], now_ms() - t0);
        Ok(res?.results::<T>()?)
    }

    /// The first row, if any.
    pub async fn first<T: DeserializeOwned>(&self, sql: &str, params: &[JsValue]) -> Result<Option<T>, Failure> {
        let stmt = self.stmt(sql, params)?;
        let t0 = now_ms();
        let res = stmt.first::<T>(None).await;
        self.ctx.record_d1(&[sql], now_ms() - t0);
        Ok(res?)
    }

    /// A statement for its effect; returns the number of changed rows.
    pub async fn run(&self, sql: &str, params: &[JsValue]) -> Result<u64, Failure> {
        let stmt = self.stmt(sql, params)?;
        let t0 = now_ms();
        let res = stmt.run().await;
        self.ctx.record_d1(&[sql], now_ms() - t0);
        let res: D1Result = res?;
        Ok(res.meta()?.and_then(|m| m.changes).unwrap_or(0) as u64)
    }

    /// Several statements in one round trip (a transaction in D1).
    pub async fn batch(&self, statements: &[(&str, Vec<JsValue>)]) -> Result<Vec<D1Result>, Failure> {
        let stmts = statements.iter().map(|(sql, p)| self.stmt(sql, p)).collect::<Result<Vec<_>, _>>()?;
        let sqls: Vec<&str> = statements.iter().map(|(sql, _)| *sql).collect();
        let t0 = now_ms();
        let res = self.d1.batch(stmts).await;
        self.ctx.record_d1(&sqls, now_ms() - t0);
        Ok(res?)
    }
}
