//! The thin edge layer: Worker entry points, the instrumentation wrapper, the sample shop
//! app and the Durable Object. It converts between the Workers runtime and the pure core;
//! decisions live in `crate::core`.

pub mod ai_guard;
pub mod app;
pub mod app_services;
pub mod audit;
pub mod config;
pub mod db;
pub mod deliver;
pub mod entry;
pub mod external;
pub mod forward;
pub mod http;
pub mod instrument;
pub mod ops;
pub mod panic;
pub mod r2;
pub mod reconcile;
pub mod scheduled;
pub mod shop_monitor;
