//! The dashboard's files keeping the rules the Content-Security-Policy and the escaping need.
//! (How the API serves them, with their types and headers behind its authentication, is
//! tested from outside in tests/e2e_api.rs.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::{APP_JS, INDEX_HTML};

#[test]
fn the_page_loads_only_its_own_files_and_the_script_never_writes_markup() {
    // The Content-Security-Policy allows no inline script or style: the page must not have
    // any, or the browser would ignore it.
    for tag in INDEX_HTML
        .match_indices("<script")
        .map(|(i, _)| &INDEX_HTML[i..])
    {
        let end = tag.find('>').unwrap();
        assert!(
            tag[..end].contains("src=\"/dashboard/app.js\""),
            "{}",
            &tag[..end]
        );
        assert!(tag[end..].starts_with("></script>"), "an inline script");
    }
    assert!(!INDEX_HTML.contains("<style"), "an inline style sheet");
    assert!(!INDEX_HTML.contains(" style="), "an inline style");
    assert!(
        !INDEX_HTML
            .split_whitespace()
            .any(|word| word.starts_with("on") && word.contains('=')),
        "an inline event handler"
    );
    assert!(INDEX_HTML.contains("href=\"/dashboard/style.css\""));
    // Client ids and payloads are attacker-controlled: the script builds text nodes only.
    for sink in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
    ] {
        assert!(!APP_JS.contains(sink), "app.js uses {sink}");
    }
    for origin in ["http://", "https://", "//cdn"] {
        assert!(!INDEX_HTML.contains(origin), "the page loads {origin}");
    }
}
