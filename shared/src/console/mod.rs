//! The operator web console: a small single-page app (vanilla JavaScript modules, no build step)
//! compiled into the binary and served at `/console/` by whatever serves the management API (the
//! admin function, local mode), before the API's key gate: the page itself is public, every
//! call it makes goes to `../v1/…` with the operator's `X-API-Key`.
//!
//! Owns: which paths are console paths (`/console`, `/console/`, `/console/<asset>`, each after
//! at most one stage segment, as API Gateway's named stages put one), the assets, and the headers
//! every console answer carries (a CSP without `unsafe-inline`, `nosniff`, no referrer, no
//! framing, no caching without revalidation). Must not: read the API key, call the API, or
//! serve anything outside `/console`; the assets hold no inline script or style, so the CSP can
//! stay strict.

use axum::body::Body;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;

/// The Content-Security-Policy of every console answer: scripts, styles, images and API calls
/// from this origin only; no inline script or style, no framing, no `<base>`.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// The assets: name under `/console/`, content type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    ("index.html", HTML, include_bytes!("assets/index.html")),
    ("app.css", CSS, include_bytes!("assets/app.css")),
    ("icon.svg", SVG, include_bytes!("assets/icon.svg")),
    ("app.js", JS, include_bytes!("assets/app.js")),
    ("api.js", JS, include_bytes!("assets/api.js")),
    ("dom.js", JS, include_bytes!("assets/dom.js")),
    ("catalog.js", JS, include_bytes!("assets/catalog.js")),
    ("endpoints.js", JS, include_bytes!("assets/endpoints.js")),
    ("deliveries.js", JS, include_bytes!("assets/deliveries.js")),
    (
        "conversations.js",
        JS,
        include_bytes!("assets/conversations.js"),
    ),
    ("sources.js", JS, include_bytes!("assets/sources.js")),
    ("overview.js", JS, include_bytes!("assets/overview.js")),
];

/// What a console path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target<'a> {
    /// `/console` without the slash: relative URLs would resolve one level too high.
    Redirect,
    /// `/console/`.
    Index,
    /// `/console/<rest>` (`rest` not empty, maybe not an asset).
    Asset(&'a str),
}

/// Which console target `path` names, if it is a console path: `console` as the first segment,
/// or as the second after one stage segment (not `v1`, the API's own).
fn target(path: &str) -> Option<Target<'_>> {
    let rest = path.strip_prefix('/')?;
    let rest = match rest.strip_prefix("console") {
        Some(after) if after.is_empty() || after.starts_with('/') => after,
        _ => {
            let (stage, after) = rest.split_once('/')?;
            if stage.is_empty() || stage == "v1" {
                return None;
            }
            match after.strip_prefix("console") {
                Some(after) if after.is_empty() || after.starts_with('/') => after,
                _ => return None,
            }
        }
    };
    Some(match rest {
        "" => Target::Redirect,
        "/" => Target::Index,
        asset => Target::Asset(&asset[1..]),
    })
}

/// The answer for a console path (`None` when `path` is not one): `/console` → 308 to the
/// relative `console/` (a stage prefix survives), `/console/` → the page, `/console/<asset>` →
/// the asset or a plain 404; GET and HEAD only (405 otherwise). Every answer carries the
/// console's security headers.
pub fn serve(method: &Method, path: &str) -> Option<Response> {
    let target = target(path)?;
    if method != Method::GET && method != Method::HEAD {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Some(response);
    }
    let mut response = match target {
        Target::Redirect => {
            let mut r = plain(StatusCode::PERMANENT_REDIRECT, "");
            r.headers_mut()
                .insert(header::LOCATION, HeaderValue::from_static("console/"));
            r
        }
        Target::Index => asset("index.html").unwrap_or_else(not_found),
        Target::Asset(name) => asset(name).unwrap_or_else(not_found),
    };
    if method == Method::HEAD {
        *response.body_mut() = Body::empty();
    }
    Some(response)
}

fn asset(name: &str) -> Option<Response> {
    let (_, content_type, bytes) = ASSETS.iter().find(|(n, _, _)| *n == name)?;
    Some(respond(
        StatusCode::OK,
        content_type,
        Body::from(Bytes::from_static(bytes)),
    ))
}

fn not_found() -> Response {
    plain(StatusCode::NOT_FOUND, "not found\n")
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    respond(status, TEXT, Body::from(text))
}

fn respond(status: StatusCode, content_type: &'static str, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    let fixed = [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-cache"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Option<Response> {
        serve(&Method::GET, path)
    }

    async fn body_of(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn header<'a>(response: &'a Response, name: &str) -> &'a str {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    #[test]
    fn console_paths_are_recognised_with_or_without_one_stage_segment() {
        assert_eq!(target("/console"), Some(Target::Redirect));
        assert_eq!(target("/console/"), Some(Target::Index));
        assert_eq!(target("/console/app.js"), Some(Target::Asset("app.js")));
        assert_eq!(target("/prod/console"), Some(Target::Redirect));
        assert_eq!(target("/prod/console/"), Some(Target::Index));
        assert_eq!(
            target("/prod/console/app.css"),
            Some(Target::Asset("app.css"))
        );
        assert_eq!(target("/console/a/b"), Some(Target::Asset("a/b")));
    }

    #[test]
    fn other_paths_are_not_the_consoles() {
        for path in [
            "",
            "/",
            "console",
            "/consoles",
            "/console.js",
            "/v1/console",
            "/v1/console/app.js",
            "/a/b/console/",
            "//console/",
            "/prod/consolex/",
            "/webhooks/meta-demo",
            "/v1/endpoints",
        ] {
            assert_eq!(target(path), None, "{path}");
            assert!(get(path).is_none(), "{path}");
        }
    }

    #[test]
    fn the_bare_path_redirects_relatively_so_a_stage_prefix_survives() {
        for path in ["/console", "/prod/console"] {
            let r = get(path).unwrap();
            assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
            assert_eq!(header(&r, "location"), "console/");
            assert_eq!(header(&r, "x-frame-options"), "DENY");
        }
    }

    #[tokio::test]
    async fn the_slash_path_serves_the_page_with_its_security_headers() {
        for path in ["/console/", "/prod/console/", "/console/index.html"] {
            let r = get(path).unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            assert_eq!(header(&r, "content-type"), "text/html; charset=utf-8");
            assert_eq!(
                header(&r, "content-security-policy"),
                CONTENT_SECURITY_POLICY
            );
            assert_eq!(header(&r, "x-content-type-options"), "nosniff");
            assert_eq!(header(&r, "referrer-policy"), "no-referrer");
            assert_eq!(header(&r, "x-frame-options"), "DENY");
            assert_eq!(header(&r, "cache-control"), "no-cache");
            assert!(body_of(r).await.contains("<main"));
        }
    }

    #[test]
    fn the_policy_allows_nothing_inline_and_nothing_from_elsewhere() {
        for part in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ] {
            assert!(CONTENT_SECURITY_POLICY.contains(part), "{part}");
        }
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
    }

    #[tokio::test]
    async fn assets_carry_their_content_type_and_unknown_ones_are_a_plain_404() {
        let cases = [
            ("/console/app.js", "text/javascript; charset=utf-8"),
            ("/console/app.css", "text/css; charset=utf-8"),
            ("/console/icon.svg", "image/svg+xml; charset=utf-8"),
            ("/prod/console/sources.js", "text/javascript; charset=utf-8"),
        ];
        for (path, content_type) in cases {
            let r = get(path).unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            assert_eq!(header(&r, "content-type"), content_type, "{path}");
        }
        for path in [
            "/console/nope.js",
            "/console/../Cargo.toml",
            "/console/a/app.js",
        ] {
            let r = get(path).unwrap();
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
            assert_eq!(header(&r, "content-type"), "text/plain; charset=utf-8");
            assert_eq!(
                header(&r, "content-security-policy"),
                CONTENT_SECURITY_POLICY
            );
            assert_eq!(body_of(r).await, "not found\n");
        }
    }

    #[tokio::test]
    async fn only_get_and_head_are_answered_and_head_has_no_body() {
        let r = serve(&Method::HEAD, "/console/app.js").unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "content-type"), "text/javascript; charset=utf-8");
        assert!(body_of(r).await.is_empty());
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS] {
            let r = serve(&method, "/console/").unwrap();
            assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
            assert_eq!(header(&r, "allow"), "GET, HEAD");
            assert_eq!(header(&r, "x-content-type-options"), "nosniff");
        }
    }

    #[test]
    fn the_console_offers_every_event_type_the_gateway_emits() {
        let (_, _, bytes) = ASSETS.iter().find(|(n, _, _)| *n == "catalog.js").unwrap();
        let catalog = std::str::from_utf8(bytes).unwrap();
        let list = catalog
            .split_once("export const EVENT_TYPES = [")
            .and_then(|(_, rest)| rest.split_once("];"))
            .unwrap()
            .0;
        let offered: Vec<&str> = list
            .split(',')
            .map(|t| t.trim().trim_matches('\''))
            .filter(|t| !t.is_empty())
            .collect();
        let emitted: Vec<&str> = crate::model::EventType::ALL
            .iter()
            .map(|t| t.as_str())
            .collect();
        assert_eq!(offered, emitted);
    }

    /// ` onclick="`, ` onload="`…: an attribute that runs inline script.
    fn has_event_attribute(text: &str) -> bool {
        text.match_indices(" on").any(|(i, _)| {
            let rest = &text[i + 3..];
            let name_len = rest.bytes().take_while(u8::is_ascii_lowercase).count();
            name_len > 0 && rest[name_len..].starts_with("=\"")
        })
    }

    /// The CSP forbids inline script and style: the assets must not need them.
    #[test]
    fn no_asset_holds_inline_script_inline_style_or_remote_resources() {
        for (name, _, bytes) in ASSETS {
            let text = std::str::from_utf8(bytes).unwrap();
            assert!(!text.contains("style=\""), "{name}: a style attribute");
            assert!(!text.contains("<style"), "{name}: a style element");
            assert!(
                !has_event_attribute(text),
                "{name}: an inline event handler"
            );
            for remote in [
                "src=\"http",
                "href=\"http",
                "url(http",
                "from 'http",
                "@import",
                "fetch('http",
            ] {
                assert!(
                    !text.contains(remote),
                    "{name}: a remote resource ({remote})"
                );
            }
            assert!(!text.contains("innerHTML"), "{name}: innerHTML");
            assert!(!text.contains("localStorage"), "{name}: localStorage");
        }
        let index = std::str::from_utf8(ASSETS[0].2).unwrap();
        for line in index.lines().filter(|l| l.contains("<script")) {
            assert!(line.contains("src=\""), "inline script: {line}");
        }
    }
}
