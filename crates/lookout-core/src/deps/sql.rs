//! SQL signatures: a query's parameterized shape with every literal replaced by `?`, for the
//! request line and N+1 grouping. A hand-written scanner (no regex); no timing or counting here.

use crate::redact::is_sensitive_token;

/// Longest signature kept, in characters (an ellipsis marks a cut).
pub const MAX_SIGNATURE_CHARS: usize = 200;

/// The parameterized, whitespace-normalized shape of `sql`, safe to log.
///
/// * string literals (`'…'` with `''` or `\'` escapes, blobs `x'…'`) and numbers become `?`;
///   bound parameters (`?1`, `:name`, `@name`, `$name`) become `?`;
/// * `"…"`, `` `…` `` and `[…]` stay only when they hold a lower-case snake_case identifier
///   that does not look like a secret, otherwise they become `?` (SQLite reads an unknown
///   double-quoted name as a string);
/// * `IN (…)` lists of values become `IN (?)`, and `VALUES (…), (…)` keeps only the first row;
/// * comments are removed, whitespace runs become one space, commas are followed by one
///   space, a trailing `;` is dropped; identifiers and keywords are kept as written;
/// * the result is capped at [`MAX_SIGNATURE_CHARS`].
///
/// An unterminated literal swallows the rest of the text (it becomes one `?`), so a malformed
/// query can never leak what follows its quote.
pub fn sql_signature(sql: &str) -> String {
    let toks = collapse_values(collapse_in_lists(tokenize(sql)));
    crate::redact::cap_chars(render(&toks), MAX_SIGNATURE_CHARS)
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// Identifier or keyword, as written.
    Word(String),
    /// A literal or bound parameter, rendered `?`.
    Param,
    /// One of `( ) , ; .`
    Punct(char),
    /// Operators and anything else, as written.
    Op(String),
}

#[derive(Debug, Clone, PartialEq)]
struct Tok {
    kind: Kind,
    /// Whitespace or a comment stood before this token in the source.
    space_before: bool,
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

const OP_CHARS: &str = "=<>!|+-*/%&~^";

/// Skip a quoted span that opened at `i` (the quote char is `chars[i]`) and return the index
/// after it and its content. Doubled closing quotes and backslash escapes stay inside.
fn scan_quoted(chars: &[char], i: usize, close: char) -> (usize, String) {
    let mut j = i + 1;
    let mut content = String::new();
    while j < chars.len() {
        let c = chars[j];
        if c == '\\' && close != ']' {
            // Treat as an escape: over-swallowing is safe, ending early could leak.
            if let Some(&n) = chars.get(j + 1) {
                content.push(n);
            }
            j += 2;
            continue;
        }
        if c == close {
            if close != ']' && chars.get(j + 1) == Some(&close) {
                content.push(close);
                j += 2;
                continue;
            }
            return (j + 1, content);
        }
        content.push(c);
        j += 1;
    }
    (chars.len(), content)
}

fn is_plain_identifier(s: &str) -> bool {
    let mut cs = s.chars();
    cs.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && cs.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn tokenize(sql: &str) -> Vec<Tok> {
    let chars: Vec<char> = sql.chars().collect();
    let mut toks = Vec::new();
    let mut space = false;
    let mut i = 0;
    let push = |toks: &mut Vec<Tok>, kind: Kind, space: &mut bool| {
        toks.push(Tok { kind, space_before: *space });
        *space = false;
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c.is_whitespace() {
            space = true;
            i += 1;
        } else if c == '-' && next == Some('-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            space = true;
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            i = (i + 2).min(chars.len());
            space = true;
        } else if c == '\'' {
            i = scan_quoted(&chars, i, '\'').0;
            push(&mut toks, Kind::Param, &mut space);
        } else if c == '"' || c == '`' || c == '[' {
            let close = if c == '[' { ']' } else { c };
            let (end, content) = scan_quoted(&chars, i, close);
            i = end;
            let kind = if is_plain_identifier(&content) && !is_sensitive_token(&content) {
                Kind::Word(format!("{c}{content}{close}"))
            } else {
                Kind::Param
            };
            push(&mut toks, kind, &mut space);
        } else if (c == 'x' || c == 'X') && next == Some('\'') {
            i = scan_quoted(&chars, i + 1, '\'').0;
            push(&mut toks, Kind::Param, &mut space);
        } else if c.is_ascii_digit() || (c == '.' && next.is_some_and(|n| n.is_ascii_digit())) {
            // Numbers: 12, 1.5, .5, 1e-3, 0x1F.
            i += 1;
            while i < chars.len() {
                let d = chars[i];
                let exp_sign = matches!(d, '+' | '-') && matches!(chars[i - 1], 'e' | 'E') && !is_hex_number(&chars, i);
                if d.is_alphanumeric() || d == '.' || d == '_' || exp_sign {
                    i += 1;
                } else {
                    break;
                }
            }
            push(&mut toks, Kind::Param, &mut space);
        } else if matches!(c, '?' | ':' | '@' | '$')
            && next.is_some_and(|n| if c == '?' { n.is_ascii_digit() } else { is_ident_char(n) })
        {
            i += 1;
            while i < chars.len() && is_ident_char(chars[i]) {
                i += 1;
            }
            push(&mut toks, Kind::Param, &mut space);
        } else if c == '?' {
            i += 1;
            push(&mut toks, Kind::Param, &mut space);
        } else if is_ident_start(c) {
            let start = i;
            while i < chars.len() && is_ident_char(chars[i]) {
                i += 1;
            }
            push(&mut toks, Kind::Word(chars[start..i].iter().collect()), &mut space);
        } else if matches!(c, '(' | ')' | ',' | ';' | '.') {
            i += 1;
            push(&mut toks, Kind::Punct(c), &mut space);
        } else if OP_CHARS.contains(c) {
            let start = i;
            i += 1;
            while i < chars.len()
                && OP_CHARS.contains(chars[i])
                && !(chars[i] == '-' && chars.get(i + 1) == Some(&'-'))
                && !(chars[i] == '/' && chars.get(i + 1) == Some(&'*'))
            {
                i += 1;
            }
            push(&mut toks, Kind::Op(chars[start..i].iter().collect()), &mut space);
        } else {
            i += 1;
            push(&mut toks, Kind::Op(c.to_string()), &mut space);
        }
    }
    while matches!(toks.last(), Some(Tok { kind: Kind::Punct(';'), .. })) {
        toks.pop();
    }
    toks
}

/// Whether the number being scanned at `i` is hexadecimal (`0x…`), where `e` is a digit.
fn is_hex_number(chars: &[char], i: usize) -> bool {
    let mut j = i;
    while j > 0 && (chars[j - 1].is_alphanumeric() || chars[j - 1] == '.') {
        j -= 1;
    }
    matches!(chars.get(j..j + 2), Some(['0', 'x' | 'X']))
}

fn is_word(t: &Tok, w: &str) -> bool {
    matches!(&t.kind, Kind::Word(s) if s.eq_ignore_ascii_case(w))
}

/// Index of the `)` matching the `(` at `open`, if any.
fn matching_paren(toks: &[Tok], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (j, t) in toks.iter().enumerate().skip(open) {
        match t.kind {
            Kind::Punct('(') => depth += 1,
            Kind::Punct(')') => {
                depth -= 1;
                if depth == 0 {
                    return Some(j);
                }
            }
            _ => {}
        }
    }
    None
}

/// `IN (?, ?, -?)` -> `IN (?)`; subqueries (`IN (SELECT …)`) are left alone.
fn collapse_in_lists(toks: Vec<Tok>) -> Vec<Tok> {
    let mut out = Vec::with_capacity(toks.len());
    let mut i = 0;
    while i < toks.len() {
        let t = &toks[i];
        if is_word(t, "in") && matches!(toks.get(i + 1), Some(Tok { kind: Kind::Punct('('), .. })) {
            if let Some(close) = matching_paren(&toks, i + 1) {
                let inner = &toks[i + 2..close];
                let only_values = inner.iter().any(|t| t.kind == Kind::Param)
                    && inner.iter().all(|t| match &t.kind {
                        Kind::Param | Kind::Punct(',') => true,
                        Kind::Op(o) => o == "-" || o == "+",
                        _ => false,
                    });
                if only_values {
                    out.push(t.clone());
                    out.push(Tok { kind: Kind::Punct('('), space_before: true });
                    out.push(Tok { kind: Kind::Param, space_before: false });
                    out.push(Tok { kind: Kind::Punct(')'), space_before: false });
                    i = close + 1;
                    continue;
                }
            }
        }
        out.push(t.clone());
        i += 1;
    }
    out
}

/// `VALUES (…), (…), (…)` -> `VALUES (…)`: the first row shows the shape.
fn collapse_values(toks: Vec<Tok>) -> Vec<Tok> {
    let mut out = Vec::with_capacity(toks.len());
    let mut i = 0;
    while i < toks.len() {
        let is_values = is_word(&toks[i], "values");
        out.push(toks[i].clone());
        i += 1;
        if !is_values || !matches!(toks.get(i), Some(Tok { kind: Kind::Punct('('), .. })) {
            continue;
        }
        let Some(first_close) = matching_paren(&toks, i) else {
            continue;
        };
        out.extend_from_slice(&toks[i..=first_close]);
        i = first_close + 1;
        while matches!(toks.get(i), Some(Tok { kind: Kind::Punct(','), .. }))
            && matches!(toks.get(i + 1), Some(Tok { kind: Kind::Punct('('), .. }))
        {
            match matching_paren(&toks, i + 1) {
                Some(close) => i = close + 1,
                None => {
                    // An unclosed row: drop the rest, it holds values only.
                    i = toks.len();
                }
            }
        }
    }
    out
}

fn render(toks: &[Tok]) -> String {
    let mut out = String::new();
    let mut prev: Option<&Kind> = None;
    for t in toks {
        let space = match (prev, &t.kind) {
            (None, _) => false,
            (_, Kind::Punct(')' | ',' | ';' | '.')) => false,
            (Some(Kind::Punct('(' | '.')), _) => false,
            (Some(Kind::Punct(',')), _) => true,
            _ => t.space_before,
        };
        if space {
            out.push(' ');
        }
        match &t.kind {
            Kind::Word(w) | Kind::Op(w) => out.push_str(w),
            Kind::Param => out.push('?'),
            Kind::Punct(c) => out.push(*c),
        }
        prev = Some(&t.kind);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_and_number_literals_become_placeholders() {
        assert_eq!(
            sql_signature("SELECT * FROM customers WHERE name = 'Alice Smith' AND id = 42"),
            "SELECT * FROM customers WHERE name = ? AND id = ?"
        );
        assert_eq!(
            sql_signature("UPDATE t SET price = 12.50, qty = -3 WHERE x > 1e-3"),
            "UPDATE t SET price = ?, qty = -? WHERE x > ?"
        );
        assert_eq!(sql_signature("SELECT 0x1F, .5, x'DEADBEEF'"), "SELECT ?, ?, ?");
    }

    #[test]
    fn escaped_quotes_stay_inside_the_literal() {
        assert_eq!(
            sql_signature("SELECT * FROM c WHERE name = 'O''Brien' AND note = 'a'"),
            "SELECT * FROM c WHERE name = ? AND note = ?"
        );
        assert_eq!(
            sql_signature(r"SELECT * FROM c WHERE name = 'It\'s Alice' AND x = 1"),
            "SELECT * FROM c WHERE name = ? AND x = ?"
        );
        // An unterminated literal swallows everything after it.
        assert_eq!(sql_signature("SELECT * FROM c WHERE name = 'Alice Smith"), "SELECT * FROM c WHERE name = ?");
    }

    #[test]
    fn bound_parameters_are_normalized() {
        assert_eq!(
            sql_signature("SELECT * FROM t WHERE a = ?1 AND b = :b AND c = @c AND d = $d AND e = ?"),
            "SELECT * FROM t WHERE a = ? AND b = ? AND c = ? AND d = ? AND e = ?"
        );
    }

    #[test]
    fn identifiers_are_kept() {
        assert_eq!(
            sql_signature("SELECT customers.name, t2.col_3 FROM customers JOIN t2 ON t2.id = customers.id"),
            "SELECT customers.name, t2.col_3 FROM customers JOIN t2 ON t2.id = customers.id"
        );
        assert_eq!(
            sql_signature(r#"SELECT "order", [group] FROM "line_items""#),
            r#"SELECT "order", [group] FROM "line_items""#
        );
        assert_eq!(sql_signature("SELECT count(*) FROM t"), "SELECT count(*) FROM t");
    }

    #[test]
    fn double_quoted_values_are_not_identifiers() {
        assert_eq!(sql_signature(r#"SELECT * FROM c WHERE name = "Alice Smith""#), "SELECT * FROM c WHERE name = ?");
        assert_eq!(
            sql_signature(r#"SELECT * FROM c WHERE email = "bob@example.com""#),
            "SELECT * FROM c WHERE email = ?"
        );
    }

    #[test]
    fn in_lists_collapse() {
        let want = "SELECT * FROM t WHERE id IN (?)";
        assert_eq!(sql_signature("SELECT * FROM t WHERE id IN (?, ?, ?)"), want);
        assert_eq!(sql_signature("SELECT * FROM t WHERE id IN (1,2,3)"), want);
        assert_eq!(sql_signature("SELECT * FROM t WHERE id in(  'a' ,'b')"), "SELECT * FROM t WHERE id in (?)");
        assert_eq!(sql_signature("SELECT * FROM t WHERE id IN (?1)"), want);
        assert_eq!(
            sql_signature("SELECT * FROM t WHERE id IN (SELECT id FROM u WHERE v = 3)"),
            "SELECT * FROM t WHERE id IN (SELECT id FROM u WHERE v = ?)"
        );
    }

    #[test]
    fn values_rows_collapse() {
        let want = "INSERT INTO t (a, b) VALUES (?, ?)";
        assert_eq!(sql_signature("INSERT INTO t (a, b) VALUES (1, 'x')"), want);
        assert_eq!(sql_signature("INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y'),(3,'z')"), want);
        assert_eq!(
            sql_signature("INSERT INTO t (a) VALUES (?), (?) ON CONFLICT (a) DO NOTHING"),
            "INSERT INTO t (a) VALUES (?) ON CONFLICT (a) DO NOTHING"
        );
    }

    #[test]
    fn whitespace_and_comments_are_normalized() {
        let want = "SELECT a, b FROM t WHERE c = ?";
        assert_eq!(sql_signature("  SELECT a,b\n\tFROM   t -- the table\n WHERE c = /* value */ 5 ;"), want);
        assert_eq!(sql_signature("SELECT a ,  b FROM t WHERE c = 'x';"), want);
        assert_eq!(sql_signature("SELECT a, b FROM t /* unterminated comment 'Alice'"), "SELECT a, b FROM t");
    }

    #[test]
    fn same_query_with_other_values_has_same_signature() {
        assert_eq!(
            sql_signature("SELECT * FROM lines WHERE ticket_id = 2506"),
            sql_signature("SELECT * FROM lines WHERE ticket_id = 17")
        );
    }

    #[test]
    fn long_queries_are_capped() {
        let sql = format!("SELECT {} FROM t", (0..100).map(|i| format!("col_{i}")).collect::<Vec<_>>().join(", "));
        let sig = sql_signature(&sql);
        assert_eq!(sig.chars().count(), MAX_SIGNATURE_CHARS + 1);
        assert!(sig.ends_with('…'));
    }

    #[test]
    fn odd_input_does_not_panic() {
        for s in
            ["", "'", "\"", "[", "x'", "?", ":", "/*", "--", "é'ü", "IN (", "VALUES (", "VALUES (1), (", "1e", "0x"]
        {
            let _ = sql_signature(s);
        }
        assert_eq!(sql_signature(""), "");
    }
}
