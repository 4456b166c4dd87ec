//! The ingest function's HTTP surface: shared's ingest router ([`Ingest::router`]) behind one
//! Lambda-specific step. API Gateway names the source in its path parameters whatever the path
//! looks like (a stage before it, when the stage is not `$default`), so a request that has them
//! is routed by that name; a Lambda Function URL has none and is routed by its path.

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::Uri;
use lambda_http::RequestExt;
use lambda_http::tower::ServiceBuilder;
use shared::clock::Clock;
use shared::pipeline::ingest::{Ingest, RequestedUri};

/// The router `main` serves (with the system clock).
pub fn router(ingest: Ingest) -> Router {
    let inner = Arc::new(ingest).router(Clock::system());
    Router::new().fallback_service(
        ServiceBuilder::new()
            .map_request(by_path_parameter)
            .service(inner),
    )
}

/// `/{stage}/webhooks/x` with the path parameter `source_id=x` → `/webhooks/x`. An id that is
/// not plain URL text names no configured source (ids are `A-Z a-z 0-9 _ -`): it goes to a
/// path that is no webhook URL, which ingest answers as an unknown source.
fn by_path_parameter(mut request: Request) -> Request {
    let Some(id) = request
        .path_parameters_ref()
        .and_then(|p| p.first("source_id"))
    else {
        return request;
    };
    let plain = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'));
    let path = if plain {
        format!("/webhooks/{id}")
    } else {
        "/".to_owned()
    };
    let target = match request.uri().query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    if let Ok(uri) = target.parse::<Uri>() {
        let requested = std::mem::replace(request.uri_mut(), uri);
        request.extensions_mut().insert(RequestedUri(requested));
    }
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(path: &str, source_id: &str) -> Request {
        let text = serde_json::json!({
            "version": "2.0", "routeKey": "POST /webhooks/{source_id}", "rawPath": path,
            "rawQueryString": "a=1", "headers": {},
            "requestContext": {"http": {"method": "POST", "path": path, "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1", "userAgent": "test"}, "stage": "prod",
                "requestId": "r", "routeKey": "POST /webhooks/{source_id}", "accountId": "1",
                "apiId": "a", "domainName": "d", "domainPrefix": "d", "time": "t", "timeEpoch": 0},
            "pathParameters": {"source_id": source_id}, "isBase64Encoded": false,
        });
        lambda_http::request::from_str(&text.to_string())
            .unwrap()
            .map(axum::body::Body::new)
    }

    #[test]
    fn the_source_comes_from_the_path_parameter_whatever_the_stage() {
        let r = by_path_parameter(event("/prod/webhooks/meta-main", "meta-main"));
        assert_eq!(r.uri(), "/webhooks/meta-main?a=1");
        let r = by_path_parameter(event("/prod/webhooks/a%20b", "a b"));
        assert_eq!(r.uri().path(), "/");
    }
}
