//! What a request line says about the request target: the matched **route template**
//! (OpenTelemetry's `http.route`: `/api/tickets/{id}/photos/{name}`), or, for a path no route
//! matched, a capped and redacted **shape** of it ([`path_shape`]: ids, emails, phone numbers
//! and tokens replaced by placeholders), never the raw path. Also the small route matcher an
//! adopting Worker may use ([`match_route`], a table of `"METHOD /template"` entries), which
//! answers the template and the captured segments, and the method rules ([`is_served_method`],
//! [`method_label`]). Pure: no `worker`, no I/O.

use crate::redact::{has_secret_prefix, is_sensitive_token};

/// Methods the instrumentation serves; anything else is answered `501` before any route runs.
pub const SERVED_METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Segments of an unmatched path kept in its shape; more are cut with `/…`.
pub const MAX_SHAPE_SEGMENTS: usize = 8;
/// Longest segment (decoded, in characters) a shape keeps as it is.
pub const MAX_SEGMENT_CHARS: usize = 32;
/// Most digits a kept segment may have (`v2`, `2026`): longer numbers are ids or phone numbers.
const MAX_KEPT_DIGITS: usize = 4;
/// Longest method name the line carries as it is.
const MAX_METHOD_CHARS: usize = 20;

/// Placeholders of a path shape.
pub const ID: &str = "{id}";
pub const EMAIL: &str = "{email}";
pub const PHONE: &str = "{phone}";
pub const TOKEN: &str = "{token}";
/// Anything else that is not plainly a lower-case word (capitalized words, which may be
/// names, non-ASCII text, percent escapes, long segments).
pub const SEG: &str = "{seg}";

/// Whether the wrapper serves `method` (exact, upper-case: HTTP methods are case-sensitive).
/// Others (`PROPFIND`, `PURGE`, `TRACE`...) get `501` and never reach a route as `GET`.
pub fn is_served_method(method: &str) -> bool {
    SERVED_METHODS.contains(&method)
}

/// The method as the line carries it: the real method when it is a plain upper-case token of
/// at most 20 characters that does not look like a secret, else `_OTHER` (OpenTelemetry's
/// name for a method it does not know).
pub fn method_label(method: &str) -> String {
    let plain = !method.is_empty()
        && method.len() <= MAX_METHOD_CHARS
        && method.bytes().next().is_some_and(|b| b.is_ascii_uppercase())
        && method.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if plain && !is_sensitive_token(method) {
        method.to_string()
    } else {
        "_OTHER".to_string()
    }
}

/// The shape of a path no route matched: at most [`MAX_SHAPE_SEGMENTS`] segments, each kept
/// only when it is plainly a lower-case word (letters, digits, `-` `_` `.` `~`, at most 32
/// characters and 4 digits, not token-like), otherwise replaced by `{id}` (numbers, UUIDs,
/// identifiers with digits), `{email}`, `{phone}`, `{token}` (secret prefixes such as
/// `sk_live_`, session tokens, opaque blobs) or `{seg}` (anything else). Segments are judged
/// percent-decoded. No query string (callers pass the path only).
///
/// `path_shape("/x/alice@example.com")` is `/x/{email}`; `path_shape("/wp-login.php")` stays.
pub fn path_shape(path: &str) -> String {
    let rest = path.strip_prefix('/').unwrap_or(path);
    if rest.is_empty() {
        return "/".to_string();
    }
    let mut out = String::new();
    for (i, seg) in rest.split('/').enumerate() {
        if i == MAX_SHAPE_SEGMENTS {
            out.push_str("/…");
            break;
        }
        out.push('/');
        out.push_str(&segment_shape(seg));
    }
    out
}

fn segment_shape(seg: &str) -> String {
    if seg.is_empty() {
        return String::new();
    }
    // Longer than any kept segment even fully escaped: do not spend time decoding it.
    if seg.len() > 3 * MAX_SEGMENT_CHARS {
        return SEG.to_string();
    }
    let decoded = percent_decode_lossy(seg);
    let d = decoded.as_str();
    let digits = d.bytes().filter(u8::is_ascii_digit).count();
    if d.contains('@') {
        EMAIL.to_string()
    } else if d.bytes().all(|b| b.is_ascii_digit()) || is_uuid(d) {
        ID.to_string()
    } else if digits >= 7 && strip_extension(d).bytes().all(|b| b.is_ascii_digit() || b" +-().".contains(&b)) {
        PHONE.to_string()
    } else if is_token(d) {
        TOKEN.to_string()
    } else if d.chars().count() <= MAX_SEGMENT_CHARS && is_plain_word(d) && digits <= MAX_KEPT_DIGITS {
        d.to_string()
    } else if d.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') && digits > 0 {
        ID.to_string()
    } else {
        SEG.to_string()
    }
}

/// `name` without a short alphabetic extension (`+14155550100.png` -> `+14155550100`).
fn strip_extension(name: &str) -> &str {
    match name.rsplit_once('.') {
        Some((stem, ext)) if (1..=5).contains(&ext.len()) && ext.bytes().all(|b| b.is_ascii_alphabetic()) => stem,
        _ => name,
    }
}

fn is_plain_word(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.' | b'~'))
}

/// Words that introduce a credential in a path segment (`sess_robbie`, `token-abc123`).
const CREDENTIAL_WORDS: &[&str] =
    &["sess", "session", "token", "tok", "auth", "apikey", "api_key", "api-key", "secret", "bearer", "jwt", "otp"];

fn is_token(s: &str) -> bool {
    if has_secret_prefix(s) || is_sensitive_token(s) {
        return true;
    }
    // A credential word starting a word anywhere in the segment (`photo-sess_abc.png`).
    let lower = s.to_ascii_lowercase();
    let b = lower.as_bytes();
    (0..b.len()).filter(|&i| i == 0 || !b[i - 1].is_ascii_alphanumeric()).any(|i| {
        CREDENTIAL_WORDS.iter().any(|w| {
            b[i..].starts_with(w.as_bytes()) && {
                let rest = &b[i + w.len()..];
                rest.len() >= 3 && (matches!(rest[0], b'_' | b'-' | b'=' | b'.' | b':') || rest[0].is_ascii_digit())
            }
        })
    })
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter()
            .enumerate()
            .all(|(i, c)| if [8, 13, 18, 23].contains(&i) { *c == b'-' } else { c.is_ascii_hexdigit() })
}

/// Largest id [`parse_id`] accepts: 2^53 - 1, the largest integer a JS number (and so D1)
/// holds exactly.
pub const MAX_ID: i64 = (1 << 53) - 1;

/// A route id: a decimal integer from 1 to [`MAX_ID`], nothing else (no sign, no spaces).
pub fn parse_id(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 16 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<i64>().ok().filter(|n| (1..=MAX_ID).contains(n))
}

/// Percent-decode `s`; an escape that is not `%XX` stays as it is, invalid UTF-8 becomes
/// U+FFFD.
pub fn percent_decode_lossy(s: &str) -> String {
    let b = s.as_bytes();
    if !b.contains(&b'%') {
        return s.to_string();
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).and_then(|c| hex(*c)), b.get(i + 2).and_then(|c| hex(*c))) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Why a route table entry is not usable (found by [`check_routes`], in the adopter's tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteTableError {
    /// Not `"METHOD /template"` with a served method (`HEAD` is implied by `GET`).
    BadEntry(&'static str),
    /// A segment is empty, a `{param}` is not `{lower_snake}` alone in its segment, or a
    /// `{*rest}` is not the last segment.
    BadTemplate(&'static str),
    /// The same method and template twice.
    Duplicate(&'static str),
}

impl std::fmt::Display for RouteTableError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RouteTableError::BadEntry(e) => write!(f, "route {e:?} is not \"METHOD /template\" with a served method"),
            RouteTableError::BadTemplate(e) => {
                write!(f, "route {e:?}: segments are literals or {{name}} (lower_snake), {{*name}} last, none empty")
            }
            RouteTableError::Duplicate(e) => write!(f, "route {e:?} appears twice"),
        }
    }
}

/// One parsed entry: `GET /api/tickets/{id}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    method: &'static str,
    template: &'static str,
}

fn parse_entry(entry: &'static str) -> Result<Entry, RouteTableError> {
    let (method, template) = entry.split_once(' ').ok_or(RouteTableError::BadEntry(entry))?;
    if !is_served_method(method) || !template.starts_with('/') {
        return Err(RouteTableError::BadEntry(entry));
    }
    if template != "/" {
        let segs: Vec<&str> = template[1..].split('/').collect();
        for (i, seg) in segs.iter().enumerate() {
            let param_ok = |p: &str| {
                p.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
                    && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            };
            let ok = match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(p) => match p.strip_prefix('*') {
                    Some(rest) => i == segs.len() - 1 && param_ok(rest),
                    None => param_ok(p),
                },
                None => !seg.is_empty() && !seg.contains(['{', '}']),
            };
            if !ok {
                return Err(RouteTableError::BadTemplate(entry));
            }
        }
    }
    Ok(Entry { method, template })
}

/// Check a route table: every entry parses, none twice. Call it from a test of the app.
pub fn check_routes(entries: &[&'static str]) -> Result<(), RouteTableError> {
    let mut seen: Vec<Entry> = Vec::new();
    for e in entries {
        let parsed = parse_entry(e)?;
        if seen.contains(&parsed) {
            return Err(RouteTableError::Duplicate(e));
        }
        seen.push(parsed);
    }
    Ok(())
}

/// What [`match_route`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteMatch<'p> {
    /// `entry` matched (a `HEAD` request matches its `GET` entry); `params` are the raw
    /// (percent-encoded) captured segments by name, in template order.
    Found {
        entry: &'static str,
        template: &'static str,
        params: Vec<(&'static str, &'p str)>,
    },
    /// The path matched `template` but not with this method; `allow` lists the methods that
    /// would (for the `Allow` header).
    MethodNotAllowed {
        template: &'static str,
        allow: Vec<&'static str>,
    },
    NotFound,
}

/// Match `method` and `path` against `entries` (`"METHOD /template"`, first match wins).
/// `{name}` captures one non-empty segment; `{*name}`, last only, captures the rest of the
/// path (one segment or more, slashes included). One trailing slash is ignored (`/health/`
/// is `/health`); malformed entries never match (see [`check_routes`]).
pub fn match_route<'p>(entries: &[&'static str], method: &str, path: &'p str) -> RouteMatch<'p> {
    let path = match path.strip_suffix('/') {
        Some(p) if !p.is_empty() => p,
        _ => path,
    };
    let mut allowed: Option<(&'static str, Vec<&'static str>)> = None;
    for e in entries {
        let Ok(entry) = parse_entry(e) else { continue };
        let Some(params) = match_template(entry.template, path) else { continue };
        if entry.method == method || (method == "HEAD" && entry.method == "GET") {
            return RouteMatch::Found { entry: e, template: entry.template, params };
        }
        let (_, allow) = allowed.get_or_insert((entry.template, Vec::new()));
        for m in if entry.method == "GET" { &["GET", "HEAD"][..] } else { std::slice::from_ref(&entry.method) } {
            if !allow.contains(m) {
                allow.push(m);
            }
        }
    }
    match allowed {
        Some((template, allow)) => RouteMatch::MethodNotAllowed { template, allow },
        None => RouteMatch::NotFound,
    }
}

/// The captured segments when `path` matches `template`.
fn match_template<'p>(template: &'static str, path: &'p str) -> Option<Vec<(&'static str, &'p str)>> {
    if template == "/" {
        return (path == "/").then(Vec::new);
    }
    let mut t = template.strip_prefix('/')?.split('/');
    let mut rest = path.strip_prefix('/')?;
    let mut params = Vec::new();
    loop {
        let Some(ts) = t.next() else {
            return rest.is_empty().then_some(params);
        };
        let (ps, after) = match rest.split_once('/') {
            Some((seg, after)) => (seg, Some(after)),
            None if rest.is_empty() && ts.is_empty() => return None,
            None => (rest, None),
        };
        match ts.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            // `{*name}`: the rest of the path, whatever its segments (none of them empty at its start).
            Some(name) if name.starts_with('*') => {
                return (!ps.is_empty()).then(|| {
                    params.push((&name[1..], rest));
                    params
                });
            }
            Some(name) if !ps.is_empty() => params.push((name, ps)),
            Some(_) => return None,
            None if ts == ps => {}
            None => return None,
        }
        match after {
            Some(a) => {
                // A path that ends here with a slash would leave an empty segment.
                if a.is_empty() {
                    return None;
                }
                rest = a;
            }
            None => {
                return t.next().is_none().then_some(params);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTES: &[&str] = &[
        "GET /health",
        "GET /api/tickets/{id}",
        "DELETE /api/tickets/{id}",
        "GET /api/tickets/{id}/photos/{name}",
        "PUT /api/tickets/{id}/photos/{name}",
        "POST /webhooks/stripe",
        "GET /",
    ];

    #[test]
    fn matches_templates_and_captures_segments() {
        assert_eq!(
            match_route(ROUTES, "GET", "/api/tickets/2506/photos/front.png"),
            RouteMatch::Found {
                entry: "GET /api/tickets/{id}/photos/{name}",
                template: "/api/tickets/{id}/photos/{name}",
                params: vec![("id", "2506"), ("name", "front.png")],
            }
        );
        assert!(matches!(
            match_route(ROUTES, "DELETE", "/api/tickets/7"),
            RouteMatch::Found { entry: "DELETE /api/tickets/{id}", .. }
        ));
        assert!(matches!(match_route(ROUTES, "GET", "/"), RouteMatch::Found { entry: "GET /", .. }));
        assert!(matches!(match_route(ROUTES, "GET", "/health/"), RouteMatch::Found { entry: "GET /health", .. }));
    }

    #[test]
    fn head_is_served_by_get_routes() {
        assert!(matches!(match_route(ROUTES, "HEAD", "/health"), RouteMatch::Found { entry: "GET /health", .. }));
    }

    #[test]
    fn a_known_path_with_another_method_is_405_with_allow() {
        assert_eq!(
            match_route(ROUTES, "POST", "/api/tickets/9"),
            RouteMatch::MethodNotAllowed { template: "/api/tickets/{id}", allow: vec!["GET", "HEAD", "DELETE"] }
        );
        assert_eq!(
            match_route(ROUTES, "GET", "/webhooks/stripe"),
            RouteMatch::MethodNotAllowed { template: "/webhooks/stripe", allow: vec!["POST"] }
        );
    }

    #[test]
    fn unknown_paths_and_empty_captures_do_not_match() {
        for p in ["/api/tickets", "/api/tickets//photos/x", "/api/tickets/1/photos/", "/nope", "", "api/tickets/1"] {
            assert_eq!(match_route(ROUTES, "GET", p), RouteMatch::NotFound, "{p}");
        }
    }

    #[test]
    fn a_tail_param_captures_the_rest_of_the_path() {
        let routes = &["GET /files/{*path}", "GET /files"];
        assert_eq!(
            match_route(routes, "GET", "/files/a/b/c.png"),
            RouteMatch::Found {
                entry: "GET /files/{*path}",
                template: "/files/{*path}",
                params: vec![("path", "a/b/c.png")]
            }
        );
        assert!(matches!(
            match_route(routes, "GET", "/files/x"),
            RouteMatch::Found { entry: "GET /files/{*path}", ref params, .. } if params == &vec![("path", "x")]
        ));
        assert!(matches!(match_route(routes, "GET", "/files"), RouteMatch::Found { entry: "GET /files", .. }));
        assert_eq!(match_route(routes, "GET", "/files//x"), RouteMatch::NotFound);
        assert_eq!(check_routes(&["GET /a/{*rest}/b"]), Err(RouteTableError::BadTemplate("GET /a/{*rest}/b")));
        assert_eq!(check_routes(routes), Ok(()));
    }

    #[test]
    fn route_tables_are_checked() {
        assert_eq!(check_routes(ROUTES), Ok(()));
        assert_eq!(check_routes(&["GET api"]), Err(RouteTableError::BadEntry("GET api")));
        assert_eq!(check_routes(&["FETCH /a"]), Err(RouteTableError::BadEntry("FETCH /a")));
        assert_eq!(check_routes(&["GET /a/{Id}"]), Err(RouteTableError::BadTemplate("GET /a/{Id}")));
        assert_eq!(check_routes(&["GET /a/x{id}"]), Err(RouteTableError::BadTemplate("GET /a/x{id}")));
        assert_eq!(check_routes(&["GET /a//b"]), Err(RouteTableError::BadTemplate("GET /a//b")));
        assert_eq!(check_routes(&["GET /a", "GET /a"]), Err(RouteTableError::Duplicate("GET /a")));
        // A malformed entry never matches.
        assert_eq!(match_route(&["GET /a/{Id}"], "GET", "/a/1"), RouteMatch::NotFound);
    }

    #[test]
    fn shapes_replace_ids_emails_phones_and_tokens() {
        for (path, shape) in [
            ("/", "/"),
            ("", "/"),
            ("/x/alice@example.com", "/x/{email}"),
            ("/x/alice%40example.com", "/x/{email}"),
            ("/api/tickets/2506", "/api/tickets/{id}"),
            ("/api/tickets/2506/photos/+14155550100.png", "/api/tickets/{id}/photos/{phone}"),
            ("/call/+1%20(415)%20555-0100", "/call/{phone}"),
            ("/x/sess_robbie", "/x/{token}"),
            ("/x/sk_live_51HxYzAbCdEfGhIjKl", "/x/{token}"),
            ("/x/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", "/x/{token}"),
            ("/x/550e8400-e29b-41d4-a716-446655440000", "/x/{id}"),
            ("/x/cus_Nf8a9", "/x/{id}"),
            ("/customers/Alice", "/customers/{seg}"),
            ("/customers/Jos%C3%A9", "/customers/{seg}"),
            ("/wp-login.php", "/wp-login.php"),
            ("/.env", "/.env"),
            ("/v2/report-2026", "/v2/report-2026"),
            ("/a//b/", "/a//b/"),
            ("/%2540", "/{seg}"),
        ] {
            assert_eq!(path_shape(path), shape, "{path}");
        }
    }

    #[test]
    fn shapes_are_capped() {
        let long = format!("/{}", "a/".repeat(5000));
        assert_eq!(path_shape(&long), "/a/a/a/a/a/a/a/a/…");
        let seg = format!("/{}", "a".repeat(60_000));
        assert_eq!(path_shape(&seg), "/{seg}");
    }

    #[test]
    fn ids() {
        assert_eq!(parse_id("2506"), Some(2506));
        assert_eq!(parse_id("9007199254740991"), Some(MAX_ID));
        for bad in ["", "0", "-1", "+1", " 1", "1.0", "9007199254740992", "99999999999999999999", "0x10", "１"] {
            assert_eq!(parse_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn methods() {
        assert!(is_served_method("GET") && is_served_method("OPTIONS"));
        for m in ["PROPFIND", "PURGE", "MKCOL", "SEARCH", "LOCK", "TRACE", "CONNECT", "get", ""] {
            assert!(!is_served_method(m), "{m}");
        }
        assert_eq!(method_label("PROPFIND"), "PROPFIND");
        assert_eq!(method_label("get"), "_OTHER");
        assert_eq!(method_label("SK_LIVE_ABCDEFGHIJKL"), "_OTHER");
        assert_eq!(method_label(&"X".repeat(21)), "_OTHER");
    }
}

#[cfg(test)]
mod props {
    use proptest::prelude::*;
    use proptest::sample::select;

    use super::*;
    use crate::deps::pii_props::{assert_clean, percent_encode, pii, Pii};

    /// A session token as apps mint them.
    fn session_token() -> impl Strategy<Value = Pii> {
        prop_oneof![
            "[a-z]{3,12}".prop_map(|r| format!("sess_{r}")),
            "[A-Za-z0-9]{20,40}".prop_map(|r| format!("session-{r}")),
            "[a-f0-9]{32,64}",
            "[A-Za-z0-9_-]{10,30}".prop_map(|r| format!("eyJhbGciOiJIUzI1NiJ9.{r}.{r}")),
        ]
        .prop_map(|t| Pii { needles: vec![t.clone()], text: t, digits: None })
    }

    fn secret() -> impl Strategy<Value = Pii> {
        prop_oneof![pii(), session_token()]
    }

    fn word() -> impl Strategy<Value = &'static str> {
        select(&["api", "tickets", "x", "photos", "v1", "customers", "wp-admin", ".env", "report-2026", ""][..])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// No email, phone number, card, API key (`sk_live_`...), session token or name in
        /// any place of a path survives its shape, raw or percent-encoded.
        #[test]
        fn path_shape_never_leaks(p in secret(), a in word(), b in word(), form in 0..8usize) {
            let t = &p.text;
            let enc = percent_encode(t);
            let path = match form {
                0 => format!("/{a}/{t}/{b}"),
                1 => format!("/{a}/{enc}"),
                2 => format!("/{a}/photo-{enc}.png"),
                3 => format!("/{enc}/{a}/{b}"),
                4 => format!("/{a}/{b}/{}", t.replace(' ', "/")),
                5 => format!("/{a}/{}", enc.replace("%20", "/")),
                6 => format!("/{a}/{t}.json"),
                _ => format!("/{a}/{b}/{a}/{b}/{a}/{b}/{a}/{enc}"),
            };
            let shape = path_shape(&path);
            assert_clean(&p, "path_shape", &shape)?;
            prop_assert!(!shape.contains('@'), "{}", shape);
            prop_assert!(shape.chars().count() <= MAX_SHAPE_SEGMENTS * (MAX_SEGMENT_CHARS + 1) + 2, "{}", shape);
        }

        /// Any input: no panic, a capped shape without escapes, and matching never panics.
        #[test]
        fn arbitrary_paths_never_panic(s in "\\PC{0,300}", m in "[A-Za-z]{0,12}") {
            let shape = path_shape(&s);
            prop_assert!(shape.starts_with('/'));
            prop_assert!(shape.chars().count() <= MAX_SHAPE_SEGMENTS * (MAX_SEGMENT_CHARS + 1) + 2, "{}", shape);
            prop_assert!(!shape.contains('%'), "{}", shape);
            let _ = match_route(&["GET /a/{id}", "POST /a/{id}/b/{name}", "GET /"], &m, &s);
            let _ = method_label(&m);
        }

        /// Route ids: any text is an id only when it is the decimal of an integer in range.
        #[test]
        fn ids_parse_only_in_range(s in "\\PC{0,24}", n in proptest::prelude::any::<i64>()) {
            if let Some(id) = parse_id(&s) {
                prop_assert!((1..=MAX_ID).contains(&id));
                prop_assert_eq!(id.to_string(), s.trim_start_matches('0'));
            }
            prop_assert_eq!(parse_id(&n.to_string()), Some(n).filter(|n| (1..=MAX_ID).contains(n)));
        }

        /// Route ids: whatever the segment, a match captures exactly it.
        #[test]
        fn captures_are_the_segments(id in "[^/]{1,40}", name in "[^/]{1,40}") {
            let path = format!("/api/tickets/{id}/photos/{name}");
            match match_route(&["GET /api/tickets/{id}/photos/{name}"], "GET", &path) {
                RouteMatch::Found { params, .. } => prop_assert_eq!(params, vec![("id", id.as_str()), ("name", name.as_str())]),
                other => prop_assert!(false, "{:?}", other),
            }
        }
    }
}
