//! Route paths from file paths, by Next.js's rules.
//!
//! **Pages Router** (`pages/**`): the file path relative to `pages`, without its page
//! extension, with a final `/index` removed (`api/users/index.js` → `/api/users`,
//! `api/index.js` → `/api`, but `api/index/index.js` → `/api/index`). A page is an API
//! route when its path is `/api` or starts with `/api/`. `_app`, `_document` and `_error` at
//! the root are Next's special files, not routes. Unlike the App Router, the Pages Router
//! has no private files: `pages/api/_util.js` *is* the route `/api/_util`.
//!
//! **App Router** (`app/**`): a route is a folder with a `route.<ext>` (or, for UI, a
//! `page.<ext>`). Folders named `(group)` are left out of the path, `@slot` folders too;
//! folders starting with `_` are private (they and everything under them are not routes);
//! `%5F` at the start of a folder name stands for a literal `_`.

/// Next.js's default `pageExtensions`.
pub const DEFAULT_PAGE_EXTENSIONS: [&str; 4] = ["tsx", "ts", "jsx", "js"];

/// Strips a page extension from a file path (Next: `/\.+(ext1|ext2)$/`); `None` when the
/// file does not have one.
fn strip_extension<'a>(file: &'a str, extensions: &[String]) -> Option<&'a str> {
    // Longest extension first, so `page.ts` beats `ts` when both are configured.
    let mut by_length: Vec<&String> = extensions.iter().collect();
    by_length.sort_by_key(|e| std::cmp::Reverse(e.len()));
    for ext in by_length {
        if let Some(stem) = file.strip_suffix(ext.as_str())
            && stem.ends_with('.')
        {
            let stem = stem.trim_end_matches('.');
            if !stem.is_empty() && !stem.ends_with('/') {
                return Some(stem);
            }
        }
    }
    None
}

/// What a file under `pages/` is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PagesFile {
    /// An API route at this path.
    Api(String),
    /// A UI page at this path (only checked for clashes with the API routes).
    Page(String),
    /// Not a route: no page extension, a type declaration, or `_app`/`_document`/`_error`.
    Skip,
}

/// Classifies a file by its path relative to the `pages` folder (`/`-separated).
pub fn pages_file(rel: &str, extensions: &[String]) -> PagesFile {
    if rel.ends_with(".d.ts") {
        return PagesFile::Skip;
    }
    let Some(stem) = strip_extension(rel, extensions) else {
        return PagesFile::Skip;
    };
    let page = format!("/{stem}");
    let page = match page.strip_suffix("/index") {
        Some("") => "/".to_owned(),
        Some(parent) => parent.to_owned(),
        None => page,
    };
    if matches!(page.as_str(), "/_app" | "/_document" | "/_error") {
        return PagesFile::Skip;
    }
    if page == "/api" || page.starts_with("/api/") {
        PagesFile::Api(page)
    } else {
        PagesFile::Page(page)
    }
}

/// What a file under `app/` is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppFile {
    /// A route handler (`route.<ext>`) at this path.
    Route(String),
    /// A page (`page.<ext>`) at this path (only checked for clashes).
    Page(String),
    /// Anything else: layouts, components, private folders, parallel-route slots' pages.
    Skip,
}

/// Classifies a file by its path relative to the `app` folder (`/`-separated).
pub fn app_file(rel: &str, extensions: &[String]) -> AppFile {
    let Some(stem) = strip_extension(rel, extensions) else {
        return AppFile::Skip;
    };
    let (dir, leaf) = stem.rsplit_once('/').unwrap_or(("", stem));
    let is_route = match leaf {
        "route" => true,
        "page" => false,
        _ => return AppFile::Skip,
    };
    let mut segments = Vec::new();
    let mut in_slot = false;
    for folder in dir.split('/').filter(|s| !s.is_empty()) {
        if folder.starts_with('_') {
            return AppFile::Skip; // a private folder
        }
        if folder.starts_with('(') && folder.ends_with(')') {
            continue; // a route group
        }
        if folder.starts_with('@') {
            in_slot = true; // a parallel-route slot: not part of the URL
            continue;
        }
        segments.push(match folder.strip_prefix("%5F") {
            Some(rest) => format!("_{rest}"),
            None => folder.to_owned(),
        });
    }
    let path = format!("/{}", segments.join("/"));
    if is_route {
        AppFile::Route(path)
    } else if in_slot {
        AppFile::Skip // a slot's page renders inside its parent's layout, at the same URL
    } else {
        AppFile::Page(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exts() -> Vec<String> {
        DEFAULT_PAGE_EXTENSIONS.map(String::from).to_vec()
    }

    #[test]
    fn pages_paths_follow_next() {
        let api = |p: &str| PagesFile::Api(p.to_owned());
        let page = |p: &str| PagesFile::Page(p.to_owned());
        let table = [
            ("api/hello.js", api("/api/hello")),
            ("api/index.js", api("/api")),
            ("api.ts", api("/api")),
            ("api/users/index.ts", api("/api/users")),
            ("api/users/[id].js", api("/api/users/[id]")),
            ("api/users/[id]/posts.tsx", api("/api/users/[id]/posts")),
            ("api/docs/[...slug].jsx", api("/api/docs/[...slug]")),
            ("api/shop/[[...path]].js", api("/api/shop/[[...path]]")),
            ("api/index/index.js", api("/api/index")),
            ("api/_util.js", api("/api/_util")),
            ("api/v1.2/x.js", api("/api/v1.2/x")),
            ("api/types.d.ts", PagesFile::Skip),
            ("api/data.json", PagesFile::Skip),
            ("api/esm.mjs", PagesFile::Skip),
            ("index.tsx", page("/")),
            ("about.js", page("/about")),
            ("apiary.js", page("/apiary")),
            ("_app.js", PagesFile::Skip),
            ("_document.tsx", PagesFile::Skip),
            ("blog/_draft.js", page("/blog/_draft")),
        ];
        for (file, want) in table {
            assert_eq!(pages_file(file, &exts()), want, "{file}");
        }
        let with_mjs: Vec<String> = ["js", "mjs", "cjs"].map(String::from).to_vec();
        assert_eq!(pages_file("api/esm.mjs", &with_mjs), api("/api/esm"));
        let page_ts = vec!["page.ts".to_owned()];
        assert_eq!(pages_file("api/x.page.ts", &page_ts), api("/api/x"));
        assert_eq!(pages_file("api/x.ts", &page_ts), PagesFile::Skip);
    }

    #[test]
    fn app_paths_follow_next() {
        let route = |p: &str| AppFile::Route(p.to_owned());
        let page = |p: &str| AppFile::Page(p.to_owned());
        let table = [
            ("api/hello/route.ts", route("/api/hello")),
            ("route.js", route("/")),
            ("api/users/[id]/route.js", route("/api/users/[id]")),
            ("api/(admin)/stats/route.ts", route("/api/stats")),
            ("(marketing)/api/feed/route.ts", route("/api/feed")),
            (
                "api/files/[...path]/route.ts",
                route("/api/files/[...path]"),
            ),
            (
                "api/shop/[[...rest]]/route.tsx",
                route("/api/shop/[[...rest]]"),
            ),
            ("@modal/api/x/route.ts", route("/api/x")),
            ("%5Fnext-ish/route.ts", route("/_next-ish")),
            ("_lib/route.ts", AppFile::Skip),
            ("api/_private/x/route.ts", AppFile::Skip),
            ("api/hello/helper.ts", AppFile::Skip),
            ("api/hello/layout.tsx", AppFile::Skip),
            ("api/hello/route.mjs", AppFile::Skip),
            ("about/page.tsx", page("/about")),
            ("page.tsx", page("/")),
            ("@modal/login/page.tsx", AppFile::Skip),
        ];
        for (file, want) in table {
            assert_eq!(app_file(file, &exts()), want, "{file}");
        }
    }
}
