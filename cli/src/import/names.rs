//! ApiRoute names from route paths.
//!
//! The rule: every segment of the path in order, joined by `-`: a static segment
//! lower-cased with each run of characters other than `a-z0-9` turned into one `-`; a
//! parameter (`[id]`, `[...slug]`, `[[...slug]]`) by its name the same way; the root `/` is
//! `root`. A leading digit gets an `r-` in front, and `--name-prefix` is put before it all.
//! So `/api/users/[id]` is `api-users-id` and `/api/docs/[...slug]` is `api-docs-slug`.
//!
//! A name is at most 55 characters: the operator names the route's Deployment and Service
//! after it, and `<name>-preview` must still be a 63-character DNS label. A longer name
//! is cut and ends with `-` and 6 hex digits of a hash of the path (FNV-1a, stable across
//! versions and machines). Names that would be the same for two paths of one import
//! (`/api/users/[id]` and `/api/users/id`, `/api/Users` and `/api/users`) all get that
//! hash suffix, so every name is unique and depends only on its own path and on which
//! other paths collide with it.

use std::collections::BTreeMap;

use apiroutes_crds::pattern::Segment;

/// Longest name: 63 (a DNS label) minus `-preview`.
pub const MAX_NAME: usize = 55;

/// The readable part of a name (before prefix, cut and hash).
pub fn slug(path: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        // A parameter by its name; anything else (static, or not a pattern) as written.
        let parsed = Segment::parse(segment, 0).ok();
        let word = dashed(parsed.as_ref().and_then(Segment::param).unwrap_or(segment));
        if !word.is_empty() {
            words.push(word);
        }
    }
    if words.is_empty() {
        return "root".to_owned();
    }
    words.join("-")
}

fn dashed(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_owned()
}

/// FNV-1a (32 bits) of the path, as 6 hex digits.
fn hash6(path: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in path.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{:06x}", h & 0x00ff_ffff)
}

/// The name of one route, with or without the hash suffix.
fn name(prefix: &str, path: &str, hashed: bool) -> String {
    let mut base = format!("{prefix}{}", slug(path));
    if base.starts_with(|c: char| c.is_ascii_digit()) {
        base.insert_str(0, "r-");
    }
    if !hashed && base.len() <= MAX_NAME {
        return base;
    }
    let keep = MAX_NAME - 7;
    let mut cut: String = base.chars().take(keep).collect();
    while cut.ends_with('-') {
        cut.pop();
    }
    format!("{cut}-{}", hash6(path))
}

/// Normalizes a `--name-prefix`: `shop` and `shop-` both give `shop-`; empty stays empty.
pub fn prefix(raw: &str) -> Option<String> {
    if raw.is_empty() {
        return Some(String::new());
    }
    let word = dashed(raw);
    if word.is_empty() || word != raw.trim_end_matches('-') || word.len() > 30 {
        return None;
    }
    Some(format!("{word}-"))
}

/// Names for a set of route paths (one import), in the same order.
pub fn names(prefix: &str, paths: &[&str]) -> Vec<String> {
    let plain: Vec<String> = paths.iter().map(|p| name(prefix, p, false)).collect();
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for n in &plain {
        *count.entry(n.as_str()).or_default() += 1;
    }
    paths
        .iter()
        .zip(&plain)
        .map(|(path, n)| {
            if count.get(n.as_str()).copied().unwrap_or(0) > 1 {
                name(prefix, path, true)
            } else {
                n.clone()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_dns_label(n: &str) -> bool {
        !n.is_empty()
            && n.len() <= MAX_NAME
            && n.starts_with(|c: char| c.is_ascii_lowercase())
            && n.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && n.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !n.contains("--")
    }

    #[test]
    fn readable_names() {
        let table = [
            ("/api/hello", "api-hello"),
            ("/api", "api"),
            ("/", "root"),
            ("/api/users/[id]", "api-users-id"),
            (
                "/api/users/[id]/posts/[postId]",
                "api-users-id-posts-postid",
            ),
            ("/api/docs/[...slug]", "api-docs-slug"),
            ("/api/shop/[[...path]]", "api-shop-path"),
            ("/api/v1.2/Feed_XML", "api-v1-2-feed-xml"),
            ("/api/_util", "api-util"),
            ("/2024/report", "r-2024-report"),
        ];
        for (path, want) in table {
            let got = names("", &[path]);
            assert_eq!(got, [want], "{path}");
            assert!(is_dns_label(&got[0]));
        }
        assert_eq!(names("shop-", &["/api/x"]), ["shop-api-x"]);
        assert_eq!(prefix("shop"), Some("shop-".into()));
        assert_eq!(prefix("shop-"), Some("shop-".into()));
        assert_eq!(prefix(""), Some(String::new()));
        assert_eq!(prefix("Shop!"), None);
    }

    #[test]
    fn collisions_and_long_names_get_a_stable_hash() {
        let paths = ["/api/users/[id]", "/api/users/id", "/api/hello"];
        let got = names("", &paths);
        assert_ne!(got[0], got[1]);
        assert!(got[0].starts_with("api-users-id-") && got[0].len() == "api-users-id-".len() + 6);
        assert_eq!(got[2], "api-hello");
        // Stable: the same path gets the same name in every run and in another set.
        assert_eq!(names("", &paths), got);
        assert_eq!(names("", &["/api/users/[id]", "/api/users/id"])[0], got[0]);
        let long = format!(
            "/api/{}",
            "very-long-segment/".repeat(6).trim_end_matches('/')
        );
        let n = &names("", &[long.as_str()])[0];
        assert!(n.len() <= MAX_NAME && n.len() > MAX_NAME - 3, "{n}");
        assert!(is_dns_label(n), "{n}");
        for n in &got {
            assert!(is_dns_label(n), "{n}");
        }
    }
}
