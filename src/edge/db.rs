//! The only way app code reaches D1: every query is timed and counted into the request's
//! line (count, slowest signature). Signatures come from `crate::core`; no bound value is
//! ever recorded.

use std::rc::Rc;

use serde::de::DeserializeOwned;
use worker::wasm_bindgen::JsValue;
use worker::{D1Database, D1Result};

use crate::edge::instrument::{now_ms, Failure, RequestCtx};

/// Collapse whitespace; values are bound as parameters, never interpolated.
fn signature(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A timed D1 handle bound to one request.
pub struct Db {
    d1: D1Database,
    ctx: Rc<RequestCtx>,
}

impl Db {
    pub fn new(ctx: &Rc<RequestCtx>) -> Result<Db, Failure> {
        Ok(Db { d1: ctx.env.d1("DB")?, ctx: Rc::clone(ctx) })
    }

    fn stmt(&self, sql: &str, params: &[JsValue]) -> Result<worker::D1PreparedStatement, Failure> {
        Ok(self.d1.prepare(sql).bind(params)?)
    }

    fn record(&self, sql: &str, t0: f64) {
        self.ctx.record_d1(signature(sql), now_ms() - t0);
    }

    /// All rows, deserialized.
    pub async fn all<T: DeserializeOwned>(&self, sql: &str, params: &[JsValue]) -> Result<Vec<T>, Failure> {
        let stmt = self.stmt(sql, params)?;
        let t0 = now_ms();
        let res = stmt.all().await;
        self.record(sql, t0);
        Ok(res?.results::<T>()?)
    }

    /// The first row, if any.
    pub async fn first<T: DeserializeOwned>(&self, sql: &str, params: &[JsValue]) -> Result<Option<T>, Failure> {
        let stmt = self.stmt(sql, params)?;
        let t0 = now_ms();
        let res = stmt.first::<T>(None).await;
        self.record(sql, t0);
        Ok(res?)
    }

    /// A statement for its effect; returns the number of changed rows.
    pub async fn run(&self, sql: &str, params: &[JsValue]) -> Result<u64, Failure> {
        let stmt = self.stmt(sql, params)?;
        let t0 = now_ms();
        let res = stmt.run().await;
        self.record(sql, t0);
        let res: D1Result = res?;
        Ok(res.meta()?.and_then(|m| m.changes).unwrap_or(0) as u64)
    }
}
