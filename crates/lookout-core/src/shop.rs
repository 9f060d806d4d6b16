//! Which shops a Worker serves ([`ShopSet`], from `SHOP_SLUG` / `SHOPS`) and which one a
//! request belongs to: the fixed slug, or the first label of the host when it is listed.
//! Staff labels are first names only.

/// How a request's shop was (not) resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShopResolution {
    Known(String),
    /// The host named a shop that is not configured (the slug is safe to log).
    Unknown(String),
    /// Nothing usable in the host (an IP, localhost with no SHOPS match, garbage).
    Missing,
}

/// The shops a Worker serves, from its vars, parsed in one place with one rule: `SHOP_SLUG`
/// (one Worker per shop) wins when set; else the slugs listed in `SHOPS` (comma-separated,
/// trimmed, each a [slug](is_slug), duplicates ignored), matched against the first label of
/// the request's host (lower-cased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShopSet {
    One(String),
    Listed(Vec<String>),
}

/// Why the shop vars were refused (each names the var and the value's problem).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShopConfigError {
    /// `SHOP_SLUG` is set but not a slug: the Worker serves no shop until it is fixed.
    InvalidShopSlug,
    /// Entries of `SHOPS` that are not slugs (ignored; the valid ones are served).
    InvalidShops(Vec<String>),
}

impl std::fmt::Display for ShopConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShopConfigError::InvalidShopSlug => {
                write!(f, "SHOP_SLUG is not a shop slug (1-40 of a-z, 0-9, -); no shop is served until it is fixed")
            }
            ShopConfigError::InvalidShops(bad) => write!(
                f,
                "SHOPS has {} entr{} that are not shop slugs (1-40 of a-z, 0-9, -), ignored: {}",
                bad.len(),
                if bad.len() == 1 { "y" } else { "ies" },
                bad.iter().map(|b| format!("{:?}", crate::redact::scrub_text(b))).collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

impl ShopSet {
    /// From `SHOP_SLUG` and `SHOPS`; the set in force and what was wrong with the vars.
    pub fn from_vars(shop_slug: Option<&str>, shops: Option<&str>) -> (ShopSet, Option<ShopConfigError>) {
        if let Some(slug) = shop_slug.map(str::trim).filter(|s| !s.is_empty()) {
            return if is_slug(slug) {
                (ShopSet::One(slug.to_string()), None)
            } else {
                (ShopSet::Listed(Vec::new()), Some(ShopConfigError::InvalidShopSlug))
            };
        }
        let mut listed: Vec<String> = Vec::new();
        let mut bad = Vec::new();
        for s in shops.unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if !is_slug(s) {
                bad.push(s.to_string());
            } else if !listed.iter().any(|l| l == s) {
                listed.push(s.to_string());
            }
        }
        let err = (!bad.is_empty()).then_some(ShopConfigError::InvalidShops(bad));
        (ShopSet::Listed(listed), err)
    }

    /// Whether `shop` is served.
    pub fn contains(&self, shop: &str) -> bool {
        match self {
            ShopSet::One(s) => s == shop,
            ShopSet::Listed(l) => l.iter().any(|s| s == shop),
        }
    }

    /// Every shop served, in configuration order (what a cron runs for).
    pub fn all(&self) -> &[String] {
        match self {
            ShopSet::One(s) => std::slice::from_ref(s),
            ShopSet::Listed(l) => l,
        }
    }

    /// The shop of a request to `host`.
    pub fn resolve(&self, host: &str) -> ShopResolution {
        if let ShopSet::One(slug) = self {
            return ShopResolution::Known(slug.clone());
        }
        let host = host.split(':').next().unwrap_or("").to_ascii_lowercase();
        let label = host.split('.').next().unwrap_or("");
        if !is_slug(label) || host.parse::<std::net::Ipv4Addr>().is_ok() {
            return ShopResolution::Missing;
        }
        if self.contains(label) {
            ShopResolution::Known(label.to_string())
        } else {
            ShopResolution::Unknown(label.to_string())
        }
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

    fn resolve_shop(shop_slug: Option<&str>, shops: Option<&str>, host: &str) -> ShopResolution {
        ShopSet::from_vars(shop_slug, shops).0.resolve(host)
    }

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
        assert_eq!(resolve_shop(None, Some("swicked"), "SWICKED.shops.test"), ShopResolution::Known("swicked".into()));
    }

    #[test]
    fn one_rule_for_every_use_of_the_shop_vars() {
        let (set, err) = ShopSet::from_vars(Some(""), Some(" swicked, demo ,swicked,Bad Shop,,x_y "));
        assert_eq!(set.all(), ["swicked".to_string(), "demo".to_string()]);
        assert!(set.contains("demo") && !set.contains("Bad Shop") && !set.contains(" demo "));
        assert_eq!(err, Some(ShopConfigError::InvalidShops(vec!["Bad Shop".into(), "x_y".into()])));
        assert!(err.unwrap().to_string().starts_with("SHOPS has 2 entries"));
        let (set, err) = ShopSet::from_vars(Some(" demo "), Some("swicked"));
        assert_eq!((set.all(), err), (&["demo".to_string()][..], None));
        // An invalid SHOP_SLUG serves nothing and says so (it never silently serves a shop
        // whose monitor cannot be named).
        let (set, err) = ShopSet::from_vars(Some("My Shop"), Some("swicked"));
        assert!(set.all().is_empty() && !set.contains("swicked"));
        assert_eq!(err, Some(ShopConfigError::InvalidShopSlug));
        assert_eq!(set.resolve("swicked.shops.test"), ShopResolution::Unknown("swicked".into()));
    }

    #[test]
    fn staff_label_is_first_name_only() {
        assert_eq!(staff_label("Robbie"), Some("Robbie".into()));
        assert_eq!(staff_label("Robbie Jones"), Some("Robbie".into()));
        assert_eq!(staff_label("  "), None);
        assert_eq!(staff_label("robbie@shop.com"), None);
    }
}
