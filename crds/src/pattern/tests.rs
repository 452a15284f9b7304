#![allow(clippy::unwrap_used)]

use super::*;
use proptest::prelude::*;

fn p(s: &str) -> Pattern {
    Pattern::parse(s).unwrap()
}

#[test]
fn parses_every_segment_kind() {
    let pat = p("/api/users/[id]/files/[...path]");
    assert_eq!(
        pat.segments(),
        &[
            Segment::Static("api".into()),
            Segment::Static("users".into()),
            Segment::Dynamic("id".into()),
            Segment::Static("files".into()),
            Segment::CatchAll("path".into()),
        ]
    );
    assert_eq!(
        p("/api/[[...slug]]").segments().last(),
        Some(&Segment::OptionalCatchAll("slug".into()))
    );
    assert!(p("/").segments().is_empty());
    assert_eq!(
        p("/api/a%20b~c:d@e").segments()[1],
        Segment::Static("a%20b~c:d@e".into())
    );
}

#[test]
fn rejects_malformed_patterns_saying_where() {
    use PatternError::*;
    let cases: &[(&str, PatternError)] = &[
        ("", Empty),
        ("api/x", NoLeadingSlash("api/x".into())),
        ("/api/", TrailingSlash { at: 4 }),
        ("/api//x", EmptySegment { at: 5 }),
        (
            "/api/../x",
            DotSegment {
                segment: "..".into(),
                at: 5,
            },
        ),
        (
            "/api/a b",
            BadCharacter {
                segment: "a b".into(),
                ch: ' ',
                at: 6,
            },
        ),
        (
            "/api/é",
            BadCharacter {
                segment: "é".into(),
                ch: 'é',
                at: 5,
            },
        ),
        (
            "/api/%zz",
            BadEscape {
                segment: "%zz".into(),
                at: 5,
            },
        ),
        (
            "/api/[id",
            MalformedParam {
                segment: "[id".into(),
                at: 5,
            },
        ),
        (
            "/api/x[id]",
            MalformedParam {
                segment: "x[id]".into(),
                at: 5,
            },
        ),
        (
            "/api/[..id]",
            MalformedParam {
                segment: "[..id]".into(),
                at: 5,
            },
        ),
        (
            "/api/[[id]]",
            OptionalNotCatchAll {
                segment: "[[id]]".into(),
                name: "id".into(),
                at: 5,
            },
        ),
        (
            "/api/[]",
            EmptyParamName {
                segment: "[]".into(),
                at: 5,
            },
        ),
        (
            "/api/[...]",
            EmptyParamName {
                segment: "[...]".into(),
                at: 5,
            },
        ),
        (
            "/api/[a b]",
            BadParamName {
                segment: "[a b]".into(),
                at: 5,
            },
        ),
        (
            "/api/[id]/x/[id]",
            DuplicateParam {
                name: "id".into(),
                at: 12,
            },
        ),
        (
            "/api/[...slug]/x",
            CatchAllNotLast {
                segment: "[...slug]".into(),
                at: 5,
            },
        ),
        (
            "/api/[[...slug]]/[id]",
            CatchAllNotLast {
                segment: "[[...slug]]".into(),
                at: 5,
            },
        ),
    ];
    for (text, want) in cases {
        assert_eq!(Pattern::parse(text).as_ref(), Err(want), "{text}");
    }
    // The messages name the problem and the place.
    let msg = Pattern::parse("/api/[...a]/b").unwrap_err().to_string();
    assert!(
        msg.contains("must be the last segment") && msg.contains("byte 5"),
        "{msg}"
    );
}

#[test]
fn canonical_form_erases_names_only() {
    assert_eq!(p("/api/users/[id]").canonical(), "/api/users/[]");
    assert_eq!(p("/api/[a]/[...b]").canonical(), "/api/[]/[...]");
    assert_eq!(p("/api/[[...b]]").canonical(), "/api/[[...]]");
    assert_eq!(p("/").canonical(), "/");
    assert_eq!(p("/api/[id]").canonical(), p("/api/[slug]").canonical());
    assert_ne!(p("/api/[id]").canonical(), p("/api/[...id]").canonical());
    assert_ne!(p("/api/Users").canonical(), p("/api/users").canonical());
}

/// The order in which Next.js 16 tries these routes (its `getSortedRoutes`).
const NEXT_ORDER: &[&str] = &[
    "/",
    "/api",
    "/api/posts",
    "/api/posts/[id]",
    "/api/users",
    "/api/users/me",
    "/api/users/[id]",
    "/api/users/[id]/posts",
    "/api/users/[id]/[...rest]",
    "/api/users/[...all]",
    "/api/[section]",
    "/api/[section]/about",
    "/api/[...slug]",
    "/[[...root]]",
];

#[test]
fn precedence_is_nexts_sorted_route_order() {
    let pats: Vec<Pattern> = NEXT_ORDER.iter().map(|s| p(s)).collect();
    for w in pats.windows(2) {
        assert!(
            w[0].precedence() > w[1].precedence(),
            "{} should beat {}",
            w[0],
            w[1]
        );
    }
    let mut shuffled = pats.clone();
    shuffled.reverse();
    shuffled.sort_by(|a, b| b.precedence().cmp(&a.precedence()));
    assert_eq!(shuffled, pats);
}

/// The winner for a path is the greatest matching pattern.
fn winner<'a>(pats: &'a [Pattern], path: &str) -> Option<(&'a Pattern, Params)> {
    pats.iter()
        .filter_map(|pat| pat.match_path(path).unwrap().map(|params| (pat, params)))
        .max_by(|a, b| a.0.precedence().cmp(&b.0.precedence()))
}

#[test]
fn winner_follows_next_with_backtracking() {
    let pats: Vec<Pattern> = NEXT_ORDER.iter().map(|s| p(s)).collect();
    let cases = [
        ("/api/users/me", "/api/users/me"),
        ("/api/users/42", "/api/users/[id]"),
        ("/api/users/42/posts", "/api/users/[id]/posts"),
        ("/api/users/42/x/y", "/api/users/[id]/[...rest]"),
        // nothing fits below /api/users/[id] with one more segment except the catch-all
        ("/api/users/me/posts", "/api/users/[id]/posts"),
        ("/api/posts/1/2", "/api/[...slug]"),
        ("/api/about", "/api/[section]"),
        ("/api/users", "/api/users"),
        ("/api/x/about", "/api/[section]/about"),
        ("/api/x/y", "/api/[...slug]"),
        ("/other/x", "/[[...root]]"),
        ("/", "/"),
    ];
    for (path, want) in cases {
        let (got, _) = winner(&pats, path).unwrap();
        assert_eq!(got.to_string(), want, "{path}");
    }
}

#[test]
fn static_route_does_not_block_deeper_dynamic_paths() {
    let pats = vec![p("/api/users"), p("/api/[x]/[y]")];
    assert_eq!(winner(&pats, "/api/users/1").unwrap().0, &pats[1]);
}

#[test]
fn parameters_are_decoded_after_matching() {
    let m = p("/api/users/[id]")
        .match_path("/api/users/a%2Fb%20c")
        .unwrap()
        .unwrap();
    assert_eq!(m.get("id"), Some(&ParamValue::One("a/b c".into())));
    let m = p("/api/docs/[...slug]")
        .match_path("/api/docs/a/b%2Fc/%C3%A9")
        .unwrap()
        .unwrap();
    assert_eq!(
        m.get("slug"),
        Some(&ParamValue::Many(vec![
            "a".into(),
            "b/c".into(),
            "é".into()
        ]))
    );
    assert_eq!(m.to_json(), r#"{"slug":["a","b/c","é"]}"#);
    // static segments compare undecoded and case-sensitively
    assert_eq!(p("/api/hello").match_path("/api/%68ello").unwrap(), None);
    assert_eq!(p("/api/hello").match_path("/api/Hello").unwrap(), None);
    assert_eq!(p("/api/[x]").match_path("/api/%zz"), Err(MatchError));
    assert_eq!(p("/api/[x]").match_path("/api/%C3"), Err(MatchError));
}

#[test]
fn catch_all_arity() {
    assert_eq!(p("/api/[...s]").match_path("/api").unwrap(), None);
    let m = p("/api/[[...s]]").match_path("/api").unwrap().unwrap();
    assert_eq!(
        m.get("s"),
        Some(&ParamValue::Absent),
        "optional catch-all with zero segments is named but has no value"
    );
    assert_eq!(m.to_json(), r#"{"s":null}"#);
    assert_eq!(p("/api/[id]").match_path("/api").unwrap(), None);
    assert_eq!(p("/api/[id]").match_path("/api/a/b").unwrap(), None);
    assert_eq!(p("/").match_path("/").unwrap(), Some(Params::default()));
}

fn segment_strategy() -> impl Strategy<Value = Segment> {
    let name = "[a-zA-Z0-9_-]{1,8}";
    prop_oneof![
        "[a-zA-Z0-9._~!$&()*+,;=:@-]{1,8}"
            .prop_filter("dot segments", |s| s != "." && s != "..")
            .prop_map(Segment::Static),
        name.prop_map(Segment::Dynamic),
    ]
}

fn pattern_strategy() -> impl Strategy<Value = Pattern> {
    let name = "[a-zA-Z0-9_-]{1,8}";
    (
        prop::collection::vec(segment_strategy(), 0..6),
        prop::option::of(prop_oneof![
            name.prop_map(Segment::CatchAll),
            name.prop_map(Segment::OptionalCatchAll),
        ]),
    )
        .prop_map(|(mut segments, tail)| {
            segments.extend(tail);
            // make parameter names unique
            for (i, s) in segments.iter_mut().enumerate() {
                match s {
                    Segment::Dynamic(n) | Segment::CatchAll(n) | Segment::OptionalCatchAll(n) => {
                        n.push_str(&format!("_{i}"))
                    }
                    Segment::Static(_) => {}
                }
            }
            Pattern { segments }
        })
}

proptest! {
    #[test]
    fn parsing_never_panics(s in "\\PC{0,40}") {
        let _ = Pattern::parse(&s);
    }

    #[test]
    fn parsing_bracket_soup_never_panics(s in "[/\\[\\].a%]{0,24}") {
        let _ = Pattern::parse(&s);
    }

    #[test]
    fn display_parse_round_trips(pat in pattern_strategy()) {
        let text = pat.to_string();
        prop_assert_eq!(Pattern::parse(&text), Ok(pat));
    }

    #[test]
    fn precedence_is_a_total_order_consistent_with_canonical(a in pattern_strategy(), b in pattern_strategy()) {
        let ord = a.precedence().cmp(&b.precedence());
        prop_assert_eq!(ord.reverse(), b.precedence().cmp(&a.precedence()));
        prop_assert_eq!(ord == Ordering::Equal, a.canonical() == b.canonical());
    }
}

#[test]
fn form_values_decode_plus_as_space_and_refuse_bad_escapes() {
    assert_eq!(decode_form("a+b%2Bc").unwrap(), "a b+c");
    assert_eq!(decode_form("%C3%A9").unwrap(), "é");
    assert_eq!(decode_form("plain").unwrap(), "plain");
    assert_eq!(decode_form("%zz"), Err(MatchError));
    assert_eq!(decode_form("%C3"), Err(MatchError));
    // Path decoding keeps '+'.
    assert_eq!(decode("a+b").unwrap(), "a+b");
}
