//! The fleet board, held by the one `FleetMonitor` object (fleet_monitor.rs routes `/board/*`
//! here), and the shop monitors' pushes to it (issue 13).
//!
//! - `POST /board/summary` (from a shop monitor): a `ShopSummary`, checked, kept if newer.
//! - `GET /board/view/{limit}` (from `GET /ops/fleet`): the `FleetView`, from memory (the
//!   fleet object adds its open incidents, `fleet_incidents`).
//!
//! Storage: `board(shop TEXT PRIMARY KEY, at_ms INTEGER, data TEXT)`, one row per shop,
//! written on each accepted push; read once when the object loads.

use std::cell::RefCell;

use lookout_core::board::{FleetBoard, ShopSummary, DEFAULT_LIMIT, MAX_LIMIT};
use worker::{console_log, Env, Method, Response, Result, State};

use crate::fleet_monitor::{binding_for_objects, fleet_request};

fn log(v: serde_json::Value) {
    console_log!("{v}");
}

/// The board's state inside its object.
#[derive(Default)]
pub struct BoardHost {
    board: RefCell<Option<FleetBoard>>,
}

impl BoardHost {
    fn load(&self, state: &State) {
        if self.board.borrow().is_some() {
            return;
        }
        let sql = state.storage().sql();
        if let Err(e) = sql.exec(
            "CREATE TABLE IF NOT EXISTS board (shop TEXT PRIMARY KEY, at_ms INTEGER NOT NULL, data TEXT NOT NULL)",
            None,
        ) {
            log(serde_json::json!({"kind": "board_storage_error", "error": e.to_string()}));
        }
        #[derive(serde::Deserialize)]
        struct Row {
            data: String,
        }
        let rows: Vec<Row> = sql.exec("SELECT data FROM board", None).and_then(|c| c.to_array()).unwrap_or_else(|e| {
            log(serde_json::json!({"kind": "board_storage_error", "error": e.to_string()}));
            Vec::new()
        });
        let (board, bad) = FleetBoard::restore(rows.iter().map(|r| r.data.as_str()));
        if bad > 0 {
            log(serde_json::json!({"kind": "board_restore_error", "unreadable_rows": bad}));
        }
        *self.board.borrow_mut() = Some(board);
    }

    /// A shop monitor's summary (`POST /board/summary`): checked, kept and stored if newer
    /// than the one the board has.
    pub fn accept(&self, state: &State, body: &[u8]) -> Result<Response> {
        self.load(state);
        let summary = match ShopSummary::parse(body) {
            Ok(s) => s,
            Err(e) => {
                log(serde_json::json!({"kind": "board_summary_refused", "error": e.to_string()}));
                return Response::error(e.to_string(), 400);
            }
        };
        let data = serde_json::to_string(&summary)?;
        let (shop, at_ms) = (summary.shop.clone(), summary.at_ms);
        let kept = self.board.borrow_mut().as_mut().is_some_and(|b| b.upsert(summary));
        if kept {
            state.storage().sql().exec(
                "INSERT OR REPLACE INTO board (shop, at_ms, data) VALUES (?, ?, ?)",
                vec![shop.into(), at_ms.into(), data.into()],
            )?;
        }
        Response::from_json(&serde_json::json!({"kept": kept}))
    }

    /// The fleet answer (`GET /board/view/{limit}`) over the `known` shops and any that
    /// pushed, from memory.
    pub fn view(&self, state: &State, known: &[String], limit: &str, now_ms: i64) -> Result<serde_json::Value> {
        self.load(state);
        let limit = limit.parse().unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT);
        let guard = self.board.borrow();
        let board = guard.as_ref().ok_or_else(|| worker::Error::RustError("board not loaded".into()))?;
        Ok(serde_json::to_value(board.view(known, now_ms, limit))?)
    }
}

/// Push a shop's summary to the board in the fleet object (from the shop's monitor, through
/// the binding the monitors use). Returns whether it arrived.
pub async fn push(env: &Env, summary: &ShopSummary) -> bool {
    let result = match serde_json::to_string(summary) {
        Ok(body) => fleet_request(env, &binding_for_objects(env), Method::Post, "/board/summary", Some(&body)).await,
        Err(e) => Err(e.to_string()),
    };
    match result {
        Ok((200, _)) => true,
        Ok((status, _)) => {
            log(serde_json::json!({"kind": "board_push_failed", "shop": summary.shop, "status": status}));
            false
        }
        Err(e) => {
            log(serde_json::json!({"kind": "board_push_failed", "shop": summary.shop, "error": e}));
            false
        }
    }
}
