//! The dashboards' pure parts: which `/ops/` paths are pages (and which are public: the
//! sign-in form and the static assets), the pages' HTML (plain skeletons, escaped, no inline
//! script or style; one stylesheet and one script fetch the JSON APIs), the security headers
//! they carry, the sign-in form's body, and the app-defined panel type. Serving, cookies and
//! the assets' bytes are the library's (`lookout::pages`); sessions are `session.rs`.

use serde::Serialize;

/// The Content-Security-Policy of every page: nothing but this origin's one script, one
/// stylesheet and its JSON APIs; no inline script or style, no framing, forms post here only.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Headers every page (and every 401 sign-in page) carries, besides the CSP.
pub const PAGE_HEADERS: [(&str, &str); 5] = [
    ("content-type", "text/html; charset=utf-8"),
    ("cache-control", "no-store"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
];

/// The static files the pages load (served from the library, public: no data in them).
pub const ASSETS: [&str; 2] = ["dash.js", "dash.css"];

/// What an `/ops/` path is, for the dashboards. Anything else is the JSON API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageRoute {
    /// `GET /ops/` (and `/ops`): the fleet page.
    Fleet,
    /// `GET /ops/shop/{shop}`: one shop's page (the slug is checked by the caller).
    Shop(String),
    /// `GET /ops/login`: the sign-in form (public).
    LoginForm,
    /// `POST /ops/login`: the sign-in (public; the token decides).
    SignIn,
    /// `POST /ops/logout`: clears the cookie (public).
    SignOut,
    /// `GET /ops/assets/{name}`: a static file (public).
    Asset(&'static str),
}

impl PageRoute {
    /// Reachable without a session.
    pub fn is_public(&self) -> bool {
        matches!(self, PageRoute::LoginForm | PageRoute::SignIn | PageRoute::SignOut | PageRoute::Asset(_))
    }

    /// The dashboards a session opens (refused with the sign-in form, not JSON).
    pub fn is_page(&self) -> bool {
        matches!(self, PageRoute::Fleet | PageRoute::Shop(_))
    }

    /// Classify `method` and `path` (`None`: not the dashboards', the API decides).
    pub fn of(method: &str, path: &str) -> Option<PageRoute> {
        let rest = path.strip_prefix("/ops")?;
        let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        match (method, segs.as_slice()) {
            ("GET" | "HEAD", []) => Some(PageRoute::Fleet),
            ("GET" | "HEAD", ["shop", shop]) => Some(PageRoute::Shop((*shop).to_string())),
            ("GET" | "HEAD", ["login"]) => Some(PageRoute::LoginForm),
            ("POST", ["login"]) => Some(PageRoute::SignIn),
            ("POST", ["logout"]) => Some(PageRoute::SignOut),
            ("GET" | "HEAD", ["assets", name]) => ASSETS.iter().find(|a| *a == name).map(|a| PageRoute::Asset(a)),
            _ => None,
        }
    }
}

/// Escape text for HTML content and double-quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Where a sign-in may send the browser: a dashboard path of this origin, else `/ops/`.
pub fn safe_next(next: Option<&str>) -> String {
    let ok = next.filter(|n| {
        (n == &"/ops/" || n.starts_with("/ops/shop/"))
            && n.len() <= 200
            && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b))
            && !n.contains("//")
            && !n.contains("..")
    });
    ok.unwrap_or("/ops/").to_string()
}

/// The sign-in form's fields (`application/x-www-form-urlencoded`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LoginForm {
    pub token: String,
    pub next: String,
}

/// Largest sign-in body read.
pub const MAX_LOGIN_BODY: usize = 4096;

impl LoginForm {
    /// Parse the form body; unknown fields are ignored, `next` is made safe.
    pub fn parse(body: &[u8]) -> LoginForm {
        let mut token = String::new();
        let mut next = None;
        for (k, v) in form_pairs(body) {
            match k.as_str() {
                "token" => token = v,
                "next" => next = Some(v),
                _ => {}
            }
        }
        LoginForm { token, next: safe_next(next.as_deref()) }
    }
}

/// `application/x-www-form-urlencoded` pairs (`+` is a space, `%XX` a byte; bad escapes are
/// kept as they are).
fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    fn decode(s: &[u8]) -> String {
        let mut out = Vec::with_capacity(s.len());
        let mut i = 0;
        while i < s.len() {
            match s[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < s.len() => {
                    match std::str::from_utf8(&s[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                        Some(b) => {
                            out.push(b);
                            i += 2;
                        }
                        None => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    body.split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.iter().position(|&b| b == b'=') {
            Some(i) => (decode(&p[..i]), decode(&p[i + 1..])),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// One app-defined figure on a shop's page (the app's panels hook gives them): `value` is the
/// number, `display` the text the page shows (formatted by the app, e.g. `$812.30`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Panel {
    /// Stable key (`snake_case`), for tests and scripts.
    pub key: String,
    pub label: String,
    pub value: f64,
    pub display: String,
    /// A short line under the figure (e.g. `47 payments`), or none.
    pub detail: Option<String>,
}

impl Panel {
    pub fn new(key: &str, label: &str, value: f64, display: impl Into<String>) -> Panel {
        Panel { key: key.to_string(), label: label.to_string(), value, display: display.into(), detail: None }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Panel {
        self.detail = Some(detail.into());
        self
    }
}

/// Cents as dollars for a panel's `display` (`81230` -> `$812.30`).
pub fn usd_cents(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    let dollars = (c / 100).to_string();
    let mut grouped = String::new();
    for (i, ch) in dollars.chars().enumerate() {
        if i > 0 && (dollars.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    format!("{sign}${grouped}.{:02}", c % 100)
}

/// What the page layout needs besides its body.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Cache-busting version of the assets (their content hash).
    pub asset_version: &'a str,
    pub build_version: &'a str,
}

fn head(title: &str, frame: Frame, with_script: bool) -> String {
    let v = escape(frame.asset_version);
    let script = if with_script {
        format!("\n<script src=\"/ops/assets/dash.js?v={v}\" defer></script>")
    } else {
        String::new()
    };
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<title>{} · lookout</title>\n<link rel=\"icon\" href=\"data:,\">\n<link rel=\"stylesheet\" href=\"/ops/assets/dash.css?v={v}\">{script}\n</head>\n",
        escape(title)
    )
}

fn topbar(active: &str, frame: Frame) -> String {
    let fleet_class = if active == "fleet" { " class=\"active\"" } else { "" };
    format!(
        "<header class=\"topbar\">\n<a class=\"brand\" href=\"/ops/\"><span class=\"logo\"></span>lookout</a>\n\
<nav><a href=\"/ops/\"{fleet_class}>Fleet</a></nav>\n<div class=\"spacer\"></div>\n\
<span class=\"live\" id=\"live\" title=\"updates every 2 s\"><span class=\"dot\"></span><span id=\"live-text\">connecting</span></span>\n\
<span class=\"build\">build {}</span>\n\
<form method=\"post\" action=\"/ops/logout\"><button type=\"submit\" class=\"signout\">Sign out</button></form>\n</header>\n",
        escape(frame.build_version)
    )
}

/// The sign-in page. `message` is shown above the form (a refused token, an expired session).
pub fn login_page(next: &str, message: Option<&str>, frame: Frame) -> String {
    let msg = message.map(|m| format!("<p class=\"notice\" role=\"alert\">{}</p>\n", escape(m))).unwrap_or_default();
    format!(
        "{}<body class=\"login\" data-page=\"login\">\n<main class=\"login-card\">\n\
<div class=\"brand big\"><span class=\"logo\"></span>lookout</div>\n\
<h1>Operator sign-in</h1>\n<p class=\"sub\">Dashboards for every shop. Paste the operator token (<code>OPS_TOKEN</code>).</p>\n{msg}\
<form method=\"post\" action=\"/ops/login\" class=\"login-form\">\n\
<label for=\"token\">Operator token</label>\n\
<input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required autofocus>\n\
<input type=\"hidden\" name=\"next\" value=\"{}\">\n<button type=\"submit\" id=\"signin\">Sign in</button>\n</form>\n\
<p class=\"fine\">The session lasts 12 hours. Signing in sets an HttpOnly cookie for <code>/ops</code> only.</p>\n\
</main>\n</body>\n</html>\n",
        head("Sign in", frame, false),
        escape(&safe_next(Some(next)))
    )
}

/// The fleet page: the layout and empty containers the script fills from `GET /ops/fleet`.
pub fn fleet_page(frame: Frame) -> String {
    format!(
        "{}<body data-page=\"fleet\">\n{}<main>\n\
<section class=\"pagehead\"><div><h1>Fleet</h1><p class=\"sub\" id=\"subtitle\">All shops, sorted by trouble</p></div></section>\n\
<section class=\"kpis\" id=\"kpis\"></section>\n\
<section class=\"grid main-side\">\n\
<div class=\"card\"><div class=\"card-head\"><h2>Shops</h2><span class=\"hint\" id=\"shop-count\"></span></div>\n\
<div class=\"table-wrap\"><table class=\"data\" id=\"shops\"><thead><tr>\
<th>Shop</th><th>Status</th><th class=\"num\">Requests (1 h)</th><th class=\"num\">Error rate</th>\
<th class=\"num\">p95</th><th class=\"num\">Crons today</th><th class=\"num\">AI spend (month)</th>\
</tr></thead><tbody></tbody></table></div></div>\n\
<div class=\"side\">\n<div class=\"card\"><div class=\"card-head\"><h2>Firing now</h2></div><ul class=\"alerts-list\" id=\"firing\"></ul></div>\n\
<div class=\"card\"><div class=\"card-head\"><h2>Top error classes</h2><span class=\"hint\">last hour, all shops</span></div><ol class=\"classes\" id=\"classes\"></ol></div>\n\
</div>\n</section>\n</main>\n</body>\n</html>\n",
        head("Fleet", frame, true),
        topbar("fleet", frame)
    )
}

/// One shop's page: containers the script fills from the shop's status, history and panels.
pub fn shop_page(shop: &str, frame: Frame) -> String {
    let s = escape(shop);
    format!(
        "{}<body data-page=\"shop\" data-shop=\"{s}\">\n{}<main>\n\
<section class=\"pagehead\"><div><a class=\"back\" href=\"/ops/\">Fleet</a><h1>{s} <span id=\"state-badge\" class=\"badge\"></span></h1>\
<p class=\"sub\" id=\"subtitle\"></p></div>\n\
<div class=\"range\" role=\"group\" aria-label=\"range\"><button type=\"button\" data-range=\"24h\" class=\"on\">24 h</button><button type=\"button\" data-range=\"30d\">30 days</button></div></section>\n\
<section class=\"kpis\" id=\"kpis\"></section>\n\
<section id=\"alerts\" class=\"alerts\"></section>\n\
<section class=\"grid two\">\n\
<div class=\"card chart-card\"><div class=\"card-head\"><h2>Requests</h2><span class=\"hint\" id=\"req-hint\"></span></div><div class=\"chart\" id=\"chart-requests\"></div></div>\n\
<div class=\"card chart-card\"><div class=\"card-head\"><h2>Error rate (5xx)</h2><span class=\"hint\" id=\"err-hint\"></span></div><div class=\"chart\" id=\"chart-errors\"></div></div>\n\
<div class=\"card chart-card\"><div class=\"card-head\"><h2>Request latency</h2><span class=\"hint\">p50 / p95, ms</span></div><div class=\"chart\" id=\"chart-latency\"></div></div>\n\
<div class=\"card chart-card\"><div class=\"card-head\"><h2>D1 latency</h2><span class=\"hint\">slowest query, p50 / p95, ms</span></div><div class=\"chart\" id=\"chart-d1\"></div></div>\n\
</section>\n\
<section class=\"grid two\">\n\
<div class=\"card\"><div class=\"card-head\"><h2>Crons</h2></div><div class=\"table-wrap\"><table class=\"data\" id=\"crons\"><thead><tr>\
<th>Cron</th><th>State</th><th>Last run</th><th class=\"num\">Took</th><th>Next</th></tr></thead><tbody></tbody></table></div></div>\n\
<div class=\"card\"><div class=\"card-head\"><h2>Spend</h2></div><div id=\"spend\"></div></div>\n\
<div class=\"card chart-card\"><div class=\"card-head\"><h2>R2 storage</h2><span class=\"hint\" id=\"r2-hint\">sampled by the daily job</span></div><div class=\"chart\" id=\"chart-r2\"></div></div>\n\
<div class=\"card\"><div class=\"card-head\"><h2>Silences</h2></div><ul class=\"plain\" id=\"silences\"></ul>\
<div class=\"card-head sub-head\"><h2>Recent alert changes</h2></div><ul class=\"plain changes\" id=\"changes\"></ul></div>\n\
</section>\n</main>\n</body>\n</html>\n",
        head(shop, frame, true),
        topbar("shop", frame)
    )
}

/// A page for an unknown shop (signed in).
pub fn not_found_page(what: &str, frame: Frame) -> String {
    format!(
        "{}<body data-page=\"missing\">\n{}<main><section class=\"pagehead\"><div><h1>Not found</h1>\
<p class=\"sub\">{}</p><p><a href=\"/ops/\">Back to the fleet</a></p></div></section></main>\n</body>\n</html>\n",
        head("Not found", frame, false),
        topbar("", frame),
        escape(what)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: Frame = Frame { asset_version: "abc123", build_version: "0.1.0+test" };

    #[test]
    fn routes() {
        use PageRoute as P;
        assert_eq!(P::of("GET", "/ops/"), Some(P::Fleet));
        assert_eq!(P::of("GET", "/ops"), Some(P::Fleet));
        assert_eq!(P::of("GET", "/ops/shop/swicked"), Some(P::Shop("swicked".into())));
        assert_eq!(P::of("GET", "/ops/login"), Some(P::LoginForm));
        assert_eq!(P::of("POST", "/ops/login"), Some(P::SignIn));
        assert_eq!(P::of("POST", "/ops/logout"), Some(P::SignOut));
        assert_eq!(P::of("GET", "/ops/assets/dash.js"), Some(P::Asset("dash.js")));
        assert_eq!(P::of("GET", "/ops/assets/../secret"), None);
        assert_eq!(P::of("GET", "/ops/assets/other.js"), None);
        assert_eq!(P::of("GET", "/ops/shops/swicked/status"), None);
        assert_eq!(P::of("GET", "/ops/fleet"), None);
        assert_eq!(P::of("POST", "/ops/"), None);
        assert_eq!(P::of("GET", "/opsx"), None);
        assert!(P::Asset("dash.js").is_public() && !P::Fleet.is_public() && P::Fleet.is_page());
        assert!(!P::LoginForm.is_page());
    }

    #[test]
    fn next_is_kept_on_the_dashboards() {
        assert_eq!(safe_next(Some("/ops/shop/swicked")), "/ops/shop/swicked");
        assert_eq!(safe_next(Some("/ops/")), "/ops/");
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/ops/shop//evil",
            "/ops/shop/../../x",
            "/elsewhere",
            "/ops/shops/x/status",
            "/ops/shop/a\"onmouseover=x",
            "/ops/shop/\\evil",
        ] {
            assert_eq!(safe_next(Some(bad)), "/ops/", "{bad}");
        }
        assert_eq!(safe_next(None), "/ops/");
    }

    #[test]
    fn login_form_parsing() {
        let f = LoginForm::parse(b"token=s3cr%2Bt+x&next=%2Fops%2Fshop%2Fswicked&junk");
        assert_eq!(f, LoginForm { token: "s3cr+t x".into(), next: "/ops/shop/swicked".into() });
        let f = LoginForm::parse(b"next=https%3A%2F%2Fevil&token=%ZZ%");
        assert_eq!(f, LoginForm { token: "%ZZ%".into(), next: "/ops/".into() });
        assert_eq!(LoginForm::parse(b""), LoginForm { token: String::new(), next: "/ops/".into() });
        assert_eq!(LoginForm::parse(b"token=%e9%").token, "\u{fffd}%");
    }

    #[test]
    fn pages_escape_and_carry_no_inline_script_or_style() {
        let shop = "<script>alert(1)</script>";
        for html in [
            shop_page(shop, FRAME),
            fleet_page(FRAME),
            login_page("/ops/shop/\"x", Some("<b>no</b>"), FRAME),
            not_found_page(shop, FRAME),
        ] {
            assert!(!html.contains("<script>"), "an inline script: {html}");
            assert!(!html.contains("<style"), "an inline style");
            assert!(!html.contains(" style="), "a style attribute");
            let handler = html.match_indices(" on").any(|(i, _)| {
                let rest = &html[i + 3..];
                let name_len = rest.bytes().take_while(u8::is_ascii_lowercase).count();
                name_len > 0 && rest[name_len..].starts_with('=')
            });
            assert!(!handler, "an event handler attribute");
            assert!(!html.contains("<b>"));
            for tag in html.match_indices("<script").map(|(i, _)| &html[i..]) {
                assert!(tag.starts_with("<script src=\"/ops/assets/dash.js?v=abc123\" defer></script>"), "{tag}");
            }
        }
        assert!(shop_page(shop, FRAME).contains("data-shop=\"&lt;script&gt;alert(1)&lt;/script&gt;\""));
        let login = login_page("/ops/shop/swicked", None, FRAME);
        assert!(!login.contains("<script"), "the sign-in page runs no script");
        assert!(login.contains("name=\"next\" value=\"/ops/shop/swicked\""));
        assert!(login.contains("action=\"/ops/login\""));
    }

    #[test]
    fn csp_is_strict() {
        for d in ["default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"] {
            assert!(CSP.contains(d), "{d}");
        }
        assert!(!CSP.contains("unsafe"));
    }

    #[test]
    fn money_for_panels() {
        assert_eq!(usd_cents(81230), "$812.30");
        assert_eq!(usd_cents(0), "$0.00");
        assert_eq!(usd_cents(123_456_789), "$1,234,567.89");
        assert_eq!(usd_cents(-5), "-$0.05");
    }
}
