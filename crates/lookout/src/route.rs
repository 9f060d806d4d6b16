//! How a route function tells the line which route it served: [`RequestCtx::route`] matches
//! the request against the app's table of `"METHOD /template"` entries and records the
//! template as the line's `path` (OpenTelemetry's `http.route`); [`RequestCtx::set_route`]
//! records one for apps with a router of their own. Until then the line carries the path's
//! redacted shape (`lookout_core::route::path_shape`), never the raw path. Matching lives in
//! `lookout_core::route`.

use lookout_core::error::AppError;
use lookout_core::redact::ContextValue;
use lookout_core::route::{match_route, parse_id, percent_decode_lossy, RouteMatch};
use worker::Request;

use crate::instrument::RequestCtx;

pub use lookout_core::route::MAX_ID;

/// The route a request matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The table entry, e.g. `"GET /api/tickets/{id}"` (a `HEAD` request matches its `GET`
    /// entry): match on it in the route function.
    pub entry: &'static str,
    /// Its template, e.g. `/api/tickets/{id}`: the line's `path`.
    pub template: &'static str,
    params: Vec<(&'static str, String)>,
}

impl Route {
    /// The captured segment `name`, percent-decoded; `""` when the template has no such param.
    pub fn param(&self, name: &str) -> &str {
        self.params.iter().find(|(n, _)| *n == name).map_or("", |(_, v)| v.as_str())
    }

    /// The captured segment `name` as a positive id (1 to 2^53 - 1); otherwise 400
    /// `BadRequest` naming the param (`field`).
    pub fn id(&self, name: &str) -> Result<i64, AppError> {
        let field = self.params.iter().find(|(n, _)| *n == name).map_or("id", |(n, _)| *n);
        parse_id(self.param(name)).ok_or_else(|| {
            AppError::bad_request("ids are positive integers up to 2^53 - 1").with("field", ContextValue::Label(field))
        })
    }
}

impl RequestCtx {
    /// Match `req` against `routes` (`"METHOD /template"`, first match wins, `HEAD` served by
    /// `GET` entries) and record the template as the line's `path`. No match: 404 `NotFound`
    /// (the line keeps the path's redacted shape). The path matches with another method: 405
    /// `MethodNotAllowed` with an `Allow` header (the line has the template). Check the table
    /// in a test with `lookout_core::route::check_routes`.
    pub fn route(&self, req: &Request, routes: &[&'static str]) -> Result<Route, AppError> {
        let method = req.inner().method();
        let path = req.path();
        match match_route(routes, &method, &path) {
            RouteMatch::Found { entry, template, params } => {
                self.set_route(template);
                let params = params.into_iter().map(|(n, v)| (n, percent_decode_lossy(v))).collect();
                Ok(Route { entry, template, params })
            }
            RouteMatch::MethodNotAllowed { template, allow } => {
                self.set_route(template);
                *self.state.allow.borrow_mut() = Some(allow.join(", "));
                Err(AppError::new(405, "MethodNotAllowed", "this route does not take this method"))
            }
            RouteMatch::NotFound => Err(AppError::not_found("no such route")),
        }
    }

    /// Record the route template this request was served by (the line's `path`), for apps
    /// that route on their own. Only a `&'static str` can be given, so no request data.
    pub fn set_route(&self, template: &'static str) {
        self.state.record.borrow_mut().path = template.to_string();
    }
}
