//! Which shop a request belongs to: a fixed `SHOP_SLUG` (one Worker per shop) or the first
//! label of the host, accepted only when listed in `SHOPS`. Staff labels are first names only.

/// How a request's shop was (not) resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShopResolution {
    Known(String),
    /// The host named a shop that is not configured (the slug is safe to log).
    Unknown(String),
    /// Nothing usable in the host (an IP, localhost with no SHOPS match, garbage).
    Missing,
}

/// Resolve the shop for `host` given the `SHOP_SLUG` and `SHOPS` vars.
pub fn resolve_shop(shop_slug: Option<&str>, shops: Option<&str>, host: &str) -> ShopResolution {
    if let Some(slug) = shop_slug.map(str::trim).filter(|s| !s.is_empty()) {
        return ShopResolution::Known(slug.to_string());
    }
    let host = host.split(':').next().unwrap_or("").to_ascii_lowercase();
    let label = host.split('.').next().unwrap_or("");
    if !is_slug(label) || host.parse::<std::net::Ipv4Addr>().is_ok() {
        return ShopResolution::Missing;
    }
    let listed = shops.unwrap_or("").split(',').map(str::trim).any(|s| !s.is_empty() && s.eq_ignore_ascii_case(label));
    if listed {
        ShopResolution::Known(label.to_string())
    } else {
        ShopResolution::Unknown(label.to_string())
    }
}

/// A shop slug: 1-40 chars of lowercase letters, digits and dashes.
pub fn is_slug(s: &str) -> bool {
    !s.is_empty() && s.len() <= 40 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The staff label for the log line: the first word of a first name, letters only, at most
/// 24 characters. Anything else (a surname, an email) never passes.
pub fn staff_label(first_name: &str) -> Option<String> {
    let word = first_name.split_whitespace().next()?;
    let clean: String = word.chars().filter(|c| c.is_alphabetic() || *c == '-' || *c == '\'').take(24).collect();
    if clean.is_empty() || word.contains('@') {
        None
    } else {
        Some(clean)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_var_wins() {
        assert_eq!(
            resolve_shop(Some("swicked"), Some("a,b"), "b.example.com"),
            ShopResolution::Known("swicked".into())
        );
    }

    #[test]
    fn host_label_must_be_listed() {
        assert_eq!(
            resolve_shop(None, Some("swicked, demo"), "demo.shops.test:8787"),
            ShopResolution::Known("demo".into())
        );
        assert_eq!(resolve_shop(None, Some("swicked"), "other.shops.test"), ShopResolution::Unknown("other".into()));
        assert_eq!(resolve_shop(None, None, "swicked.shops.test"), ShopResolution::Unknown("swicked".into()));
        assert_eq!(resolve_shop(None, Some("swicked"), "127.0.0.1:8787"), ShopResolution::Missing);
        assert_eq!(resolve_shop(None, Some("swicked"), "Bad_Host!.x"), ShopResolution::Missing);
    }

    #[test]
    fn staff_label_is_first_name_only() {
        assert_eq!(staff_label("Robbie"), Some("Robbie".into()));
        assert_eq!(staff_label("Robbie Jones"), Some("Robbie".into()));
        assert_eq!(staff_label("  "), None);
        assert_eq!(staff_label("robbie@shop.com"), None);
    }
}
