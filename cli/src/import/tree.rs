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

use apiroutes_crds::pattern::Segment;

/// A route the checks look at: its Next.js path and the file that defines it.
#[derive(Clone, Debug)]
pub struct Entry<'a> {
    pub path: &'a str,
    pub file: &'a str,
}

#[derive(Default)]
struct Node<'a> {
    /// This node's segment as the first route through it wrote it (`users`, `[id]`).
    label: String,
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
        let inserted = segments(entry.path)
            .map_err(|e| format!("{}: {e}", entry.file))
            .and_then(|segments| root.insert(&segments, entry, &mut Vec::new(), false, ""));
        if let Err(p) = inserted {
            problems.push(p);
        }
    }
    root.check_optional_catch_all("", &mut problems);
    problems
}

/// A route's segments, read by the pattern language's own segment parser. A parameter
/// whose brackets are wrong is refused here; a static segment with characters outside the
/// pattern language is still a plain segment to Next's tree (an API route that has one is
/// refused on its own, by the whole pattern's check).
fn segments(path: &str) -> Result<Vec<Segment>, String> {
    let mut out = Vec::new();
    let mut at = 1;
    for part in path.split('/').filter(|s| !s.is_empty()) {
        out.push(match Segment::parse(part, at) {
            Ok(segment) => segment,
            Err(e) if e.in_param() => return Err(e.to_string()),
            Err(_) => Segment::Static(part.to_owned()),
        });
        at += part.len() + 1;
    }
    Ok(out)
}

impl<'a> Node<'a> {
    fn insert(
        &mut self,
        segments: &[Segment],
        entry: &Entry<'a>,
        slug_names: &mut Vec<String>,
        after_catch_all: bool,
        prefix: &str,
    ) -> Result<(), String> {
        let Some((segment, rest)) = segments.split_first() else {
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
        if let Some(name) = segment.param() {
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
            let slot = match segment {
                Segment::OptionalCatchAll(_) => {
                    if let Some((other, file)) = &self.rest {
                        return Err(format!(
                            "{} and {file}: a required and an optional catch-all at the same level ({level}: \"[...{other}]\" and \"{segment}\")",
                            entry.file
                        ));
                    }
                    &mut self.optional_rest
                }
                Segment::CatchAll(_) => {
                    if let Some((other, file)) = &self.optional_rest {
                        return Err(format!(
                            "{} and {file}: an optional and a required catch-all at the same level ({level}: \"[[...{other}]]\" and \"{segment}\")",
                            entry.file
                        ));
                    }
                    &mut self.rest
                }
                _ => &mut self.slug,
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
        let is_catch_all = matches!(segment, Segment::CatchAll(_) | Segment::OptionalCatchAll(_));
        self.children
            .entry(segment.canonical().to_owned())
            .or_insert_with(|| Node {
                label: segment.to_string(),
                ..Node::default()
            })
            .insert(rest, entry, slug_names, is_catch_all, &child_prefix)
    }

    fn check_optional_catch_all(&self, prefix: &str, problems: &mut Vec<String>) {
        if let (Some(file), Some((name, catch_all_file))) = (self.terminal, &self.optional_rest) {
            let route = if prefix.is_empty() { "/" } else { prefix };
            problems.push(format!(
                "{file} and {catch_all_file}: a route with the same specificity as an optional catch-all (\"{route}\" and \"{prefix}/[[...{name}]]\" both answer {route}); remove one, or make the catch-all required (\"[...{name}]\")"
            ));
        }
        for child in self.children.values() {
            child.check_optional_catch_all(&format!("{prefix}/{}", child.label), problems);
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
