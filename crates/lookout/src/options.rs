//! What an adopting Worker configures in code: the binding names lookout uses and the app's
//! error-context keys, and its dashboard panels. Everything else is a var (see README "Configuration"). One `const`
//! [`Options`] per Worker, passed to [`crate::wrap`], [`crate::ops::serve`] and
//! [`crate::cron::run`].

use lookout_core::redact::ContextKeys;

use crate::pages::PanelsHook;

/// lookout's settings that live in code. Build one with [`Options::new`] and the `const`
/// setters; the defaults are the names the sample shop app uses.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The `ShopMonitor` Durable Object namespace (`[[durable_objects.bindings]] name`).
    pub monitor_binding: &'static str,
    /// The `FleetMonitor` Durable Object namespace (fleet incidents, silences, the dead-man's
    /// switch). Not bound: the operator's silence and fleet routes answer 503, the rest works.
    pub fleet_binding: &'static str,
    /// The D1 database [`crate::db::Db`] opens.
    pub d1_binding: &'static str,
    /// The R2 bucket [`crate::r2::Files`] opens.
    pub r2_binding: &'static str,
    /// Error-context keys the app may put in an [`crate::AppError`], beyond lookout's own
    /// (`lookout_core::redact::LOOKOUT_CONTEXT_KEYS`). Any other key is dropped and counted.
    pub context_keys: ContextKeys,
    /// The app's panels on a shop's dashboard page ([`PanelsHook`]); `None`: none.
    pub panels: Option<PanelsHook>,
}

impl Options {
    pub const fn new() -> Options {
        Options {
            monitor_binding: "SHOP_MONITOR",
            fleet_binding: crate::fleet_monitor::DEFAULT_FLEET_BINDING,
            d1_binding: "DB",
            r2_binding: "FILES",
            context_keys: ContextKeys::new(&[]),
            panels: None,
        }
    }

    pub const fn monitor_binding(mut self, name: &'static str) -> Options {
        self.monitor_binding = name;
        self
    }

    pub const fn fleet_binding(mut self, name: &'static str) -> Options {
        self.fleet_binding = name;
        self
    }

    pub const fn d1_binding(mut self, name: &'static str) -> Options {
        self.d1_binding = name;
        self
    }

    pub const fn r2_binding(mut self, name: &'static str) -> Options {
        self.r2_binding = name;
        self
    }

    /// Figures the app adds to each shop's dashboard page (today's revenue, open tickets...).
    pub const fn panels(mut self, hook: PanelsHook) -> Options {
        self.panels = Some(hook);
        self
    }

    pub const fn context_keys(mut self, keys: &'static [&'static str]) -> Options {
        self.context_keys = ContextKeys::new(keys);
        self
    }
}

impl Default for Options {
    fn default() -> Self {
        Options::new()
    }
}
