//! Request ids: `cf-ray` plus a short random suffix, or `req_` plus a longer random part when
//! there is no (valid) `cf-ray`, as in local runs. The caller supplies the randomness.

const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
const RAY_SUFFIX_LEN: usize = 6;
const LOCAL_LEN: usize = 12;
const MAX_RAY_LEN: usize = 48;

/// Build a request id. `random` supplies the entropy (at least 62 bits are used).
pub fn make_request_id(cf_ray: Option<&str>, random: u64) -> String {
    match cf_ray.filter(|r| is_valid_ray(r)) {
        Some(ray) => format!("{ray}-{}", base36(random, RAY_SUFFIX_LEN)),
        None => format!("req_{}", base36(random, LOCAL_LEN)),
    }
}

/// A cf-ray as Cloudflare sets it: hex and a colo code, e.g. `8f3a2b1c4d5e6f70-SJC`.
/// Anything else (too long, odd characters) is ignored so a header cannot inject text.
fn is_valid_ray(ray: &str) -> bool {
    !ray.is_empty() && ray.len() <= MAX_RAY_LEN && ray.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn base36(mut n: u64, len: usize) -> String {
    let mut out = vec![b'0'; len];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(n % 36) as usize];
        n /= 36;
    }
    String::from_utf8(out).expect("ascii")
}

/// Whether `id` has the shape this module produces (used by tests and by ingest validation).
pub fn is_request_id(id: &str) -> bool {
    if let Some(rest) = id.strip_prefix("req_") {
        return rest.len() == LOCAL_LEN && rest.bytes().all(|b| ALPHABET.contains(&b));
    }
    match id.rsplit_once('-') {
        Some((ray, suffix)) => {
            is_valid_ray(ray) && suffix.len() == RAY_SUFFIX_LEN && suffix.bytes().all(|b| ALPHABET.contains(&b))
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_cf_ray() {
        let id = make_request_id(Some("8f3a2b1c4d5e6f70-SJC"), 123_456_789);
        assert_eq!(id, "8f3a2b1c4d5e6f70-SJC-21i3v9");
        assert!(is_request_id(&id));
    }

    #[test]
    fn without_cf_ray() {
        let id = make_request_id(None, u64::MAX);
        assert_eq!(id.len(), 4 + 12);
        assert!(id.starts_with("req_"));
        assert!(is_request_id(&id));
    }

    #[test]
    fn hostile_ray_is_ignored() {
        let id = make_request_id(Some("x\"; drop table"), 1);
        assert_eq!(id, "req_000000000001");
        let id = make_request_id(Some(&"a".repeat(200)), 1);
        assert!(id.starts_with("req_"));
    }

    #[test]
    fn distinct_randomness_gives_distinct_ids() {
        let ids: std::collections::HashSet<String> =
            (0..10_000u64).map(|i| make_request_id(None, i.wrapping_mul(0x9E37_79B9_7F4A_7C15))).collect();
        assert_eq!(ids.len(), 10_000);
    }

    #[test]
    fn rejects_foreign_shapes() {
        assert!(!is_request_id("req_ABC"));
        assert!(!is_request_id("hello"));
        assert!(!is_request_id("ray-TOOLONGSUFFIX"));
    }
}
