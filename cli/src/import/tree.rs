//! The checks Next.js makes on a whole set of routes before it serves any (its route sorter
//! builds a trie and refuses shapes it cannot order), so that `import` refuses what
//! `next build` refuses:
//!
//! - two files for one route (`users.js` and `users/index.js`, `x.js` and `x.ts`, a
//!   `pages/api` file and an `app` route handler, a `page` and a `route` at one URL);
//! - different parameter names at one level (`[id]` beside `[slug]`);
//! - a required and an optional catch-all at one level;
//! - an optional catch-all beside a route of the same specificity (`shop.js` and
//!   `shop/[[...path]].js`: both answer `/shop`);
//! - a segment after a catch-all, a repeated parameter name, `[[id]]`, `[.x]`.
//!
//! The trie is the structure Next.js sorts with; only the rules live here. Precedence
//! between the accepted routes is `apiroutes_crds::pattern`'s, as at the gateway.

use std::collections::BTreeMap;

/// A route the checks look at: its Next.js path and the file that defines it.
#[derive(Clone, Debug)]
pub struct Entry<'a> {
    pub path: &'a str,
    pub file: &'a str,
}

#[derive(Default)]
struct Node<'a> {
    /// The file whose route ends here.
    terminal: Option<&'a str>,
    children: BTreeMap<String, Node<'a>>,
    /// (name, file that named it) of the `[x]`, `[...x]` and `[[...x]]` children.
    slug: Option<(String, &'a str)>,
    rest: Option<(String, &'a str)>,
    optional_rest: Option<(String, &'a str)>,
}

/// Runs Next's checks over all routes; returns every problem found (empty when none).
pub fn check(entries: &[Entry<'_>]) -> Vec<String> {
    let mut root = Node::default();
    let mut problems = Vec::new();
    for entry in entries {
        let segments: Vec<&str> = entry.path.split('/').filter(|s| !s.is_empty()).collect();
        if let Err(p) = root.insert(&segments, entry, &mut Vec::new(), false, "") {
            problems.push(p);
        }
    }
    root.check_optional_catch_all("", &mut problems);
    problems
}

impl<'a> Node<'a> {
    fn insert(
        &mut self,
        segments: &[&str],
        entry: &Entry<'a>,
        slug_names: &mut Vec<String>,
        after_catch_all: bool,
        prefix: &str,
    ) -> Result<(), String> {
        let Some((&segment, rest)) = segments.split_first() else {
            if let Some(other) = self.terminal {
                let path = if prefix.is_empty() { "/" } else { prefix };
                return Err(format!(
                    "{other} and {} are both the route {path}; Next.js serves one file per route: remove or rename one",
                    entry.file
                ));
            }
            self.terminal = Some(entry.file);
            return Ok(());
        };
        if after_catch_all {
            return Err(format!(
                "{}: a catch-all must be the last part of the path (\"{}\")",
                entry.file, entry.path
            ));
        }
        let mut key = segment.to_owned();
        let mut is_catch_all = false;
        if let Some(inner) = segment.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            let (mut name, optional) =
                match inner.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
                    Some(n) => (n, true),
                    None => (inner, false),
                };
            if let Some(n) = name.strip_prefix("...") {
                name = n;
                is_catch_all = true;
            }
            if name.starts_with('[') || name.ends_with(']') {
                return Err(format!(
                    "{}: parameter names may not start or end with extra brackets ('{name}')",
                    entry.file
                ));
            }
            if name.starts_with('.') {
                return Err(format!(
                    "{}: parameter names may not start with a period ('{name}')",
                    entry.file
                ));
            }
            for previous in slug_names.iter() {
                if previous == name {
                    return Err(format!(
                        "{}: the parameter name \"{name}\" appears twice in \"{}\"",
                        entry.file, entry.path
                    ));
                }
                if word_chars(previous) == word_chars(name) {
                    return Err(format!(
                        "{}: the parameter names \"{previous}\" and \"{name}\" differ only by non-word characters in \"{}\"",
                        entry.file, entry.path
                    ));
                }
            }
            let level = if prefix.is_empty() { "/" } else { prefix };
            let slot = if is_catch_all && optional {
                if let Some((other, file)) = &self.rest {
                    return Err(format!(
                        "{} and {file}: a required and an optional catch-all at the same level ({level}: \"[...{other}]\" and \"{segment}\")",
                        entry.file
                    ));
                }
                key = "[[...]]".to_owned();
                &mut self.optional_rest
            } else if is_catch_all {
                if let Some((other, file)) = &self.optional_rest {
                    return Err(format!(
                        "{} and {file}: an optional and a required catch-all at the same level ({level}: \"[[...{other}]]\" and \"{segment}\")",
                        entry.file
                    ));
                }
                key = "[...]".to_owned();
                &mut self.rest
            } else {
                if optional {
                    return Err(format!(
                        "{}: optional parameters are only for catch-alls: use \"[[...{name}]]\", not \"{segment}\"",
                        entry.file
                    ));
                }
                key = "[]".to_owned();
                &mut self.slug
            };
            match slot {
                Some((other, file)) if other != name => {
                    return Err(format!(
                        "{} and {file}: different parameter names at the same level ({level}: \"{other}\" and \"{name}\"); Next.js needs one name per level: rename one",
                        entry.file
                    ));
                }
                Some(_) => {}
                None => *slot = Some((name.to_owned(), entry.file)),
            }
            slug_names.push(name.to_owned());
        }
        let child_prefix = format!("{prefix}/{segment}");
        self.children.entry(key).or_default().insert(
            rest,
            entry,
            slug_names,
            is_catch_all,
            &child_prefix,
        )
    }

    fn check_optional_catch_all(&self, prefix: &str, problems: &mut Vec<String>) {
        if let (Some(file), Some((name, catch_all_file))) = (self.terminal, &self.optional_rest) {
            let route = if prefix.is_empty() { "/" } else { prefix };
            problems.push(format!(
                "{file} and {catch_all_file}: a route with the same specificity as an optional catch-all (\"{route}\" and \"{prefix}/[[...{name}]]\" both answer {route}); remove one, or make the catch-all required (\"[...{name}]\")"
            ));
        }
        for (key, child) in &self.children {
            let segment = match key.as_str() {
                "[]" => self.slug.as_ref().map(|(n, _)| format!("[{n}]")),
                "[...]" => self.rest.as_ref().map(|(n, _)| format!("[...{n}]")),
                "[[...]]" => self
                    .optional_rest
                    .as_ref()
                    .map(|(n, _)| format!("[[...{n}]]")),
                _ => None,
            }
            .unwrap_or_else(|| key.clone());
            child.check_optional_catch_all(&format!("{prefix}/{segment}"), problems);
        }
    }
}

/// `slug.replace(/\W/g, '')`.
fn word_chars(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(routes: &[(&'static str, &'static str)]) -> Vec<String> {
        let entries: Vec<Entry<'_>> = routes
            .iter()
            .map(|(path, file)| Entry { path, file })
            .collect();
        check(&entries)
    }

    #[test]
    fn a_good_tree_passes() {
        assert!(
            run(&[
                ("/api", "pages/api/index.js"),
                ("/api/users", "pages/api/users.js"),
                ("/api/users/[id]", "pages/api/users/[id].js"),
                (
                    "/api/users/[id]/posts/[postId]",
                    "pages/api/users/[id]/posts/[postId].js"
                ),
                ("/api/users/me", "pages/api/users/me.js"),
                ("/api/docs/[...slug]", "pages/api/docs/[...slug].js"),
                ("/api/shop/[[...path]]", "pages/api/shop/[[...path]].js"),
                ("/api/[other]", "pages/api/[other].js"),
                ("/", "pages/index.js"),
            ])
            .is_empty()
        );
    }

    #[test]
    fn refuses_what_next_refuses() {
        let one = |routes: &[(&'static str, &'static str)], needle: &str| {
            let problems = run(routes);
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert!(
                problems[0].contains(needle),
                "{problems:?} lacks {needle:?}"
            );
        };
        one(
            &[
                ("/api/users", "pages/api/users.js"),
                ("/api/users", "pages/api/users/index.js"),
            ],
            "pages/api/users.js and pages/api/users/index.js are both the route /api/users",
        );
        one(
            &[("/api/users/[id]", "a.js"), ("/api/users/[slug]/x", "b.js")],
            "different parameter names at the same level (/api/users: \"id\" and \"slug\")",
        );
        one(
            &[
                ("/api/shop", "pages/api/shop.js"),
                ("/api/shop/[[...path]]", "pages/api/shop/[[...path]].js"),
            ],
            "same specificity as an optional catch-all (\"/api/shop\" and \"/api/shop/[[...path]]\"",
        );
        one(
            &[("/api/a/[...x]", "a.js"), ("/api/a/[[...x]]", "b.js")],
            "a required and an optional catch-all at the same level",
        );
        one(
            &[("/api/[...x]/y", "a.js")],
            "a catch-all must be the last part",
        );
        one(&[("/api/[a]/[a]", "a.js")], "appears twice");
        one(
            &[("/api/[a-b]/[ab]", "a.js")],
            "differ only by non-word characters",
        );
        one(
            &[("/api/[[a]]", "a.js")],
            "optional parameters are only for catch-alls",
        );
    }
}
