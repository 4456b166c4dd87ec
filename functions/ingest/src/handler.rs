//! API Gateway HTTP API or Lambda Function URL request (payload 2.0) → [`Ingest::handle`] →
//! response.

use lambda_http::http::{HeaderMap, Method as HttpMethod, StatusCode, header};
use lambda_http::{Body, Request, RequestExt, Response};
use shared::pipeline::ingest::{Ingest, IngestRequest, Method};

/// Handles one request. Infallible: every outcome, errors included, is an HTTP answer.
pub async fn handle(ingest: &Ingest, req: Request) -> Response<Body> {
    let source_id = req
        .path_parameters_ref()
        .and_then(|p| p.first("source_id"))
        .map(str::to_owned)
        .or_else(|| source_from_path(req.uri().path()))
        .unwrap_or_default();
    let method = match *req.method() {
        HttpMethod::POST => Method::Post,
        HttpMethod::GET => Method::Get,
        _ => Method::Other,
    };
    let query = req.uri().query().unwrap_or_default().to_owned();
    let headers = req.headers().clone();
    // lambda_http already base64-decoded bodies that API Gateway marked `isBase64Encoded`.
    let body: &[u8] = req.body().as_ref();
    let get = |name: &str| header_str(&headers, name);
    let request = IngestRequest {
        method,
        source_id: &source_id,
        query: &query,
        body,
        hub_signature_256: get("x-hub-signature-256"),
        webhook_hmac: get("x-webhook-hmac"),
        webhook_hmac_algorithm: get("x-webhook-hmac-algorithm"),
    };
    let out = ingest.handle(request, chrono::Utc::now()).await;
    let status = StatusCode::from_u16(out.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, out.content_type)
        .body(Body::Text(out.body))
        .unwrap_or_else(|_| Response::new(Body::Empty))
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `/webhooks/{source_id}` → `source_id`, for requests without path parameters (a Lambda
/// Function URL sends every path to the function): any other path is no webhook URL.
fn source_from_path(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/webhooks/")?;
    let id = rest.strip_suffix('/').unwrap_or(rest);
    (!id.is_empty() && !id.contains('/')).then(|| id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::source_from_path;

    #[test]
    fn source_id_is_the_segment_after_webhooks() {
        assert_eq!(
            source_from_path("/webhooks/meta-main").as_deref(),
            Some("meta-main")
        );
        assert_eq!(
            source_from_path("/webhooks/waha-main/").as_deref(),
            Some("waha-main")
        );
        assert_eq!(source_from_path("/webhooks/"), None);
        assert_eq!(source_from_path("/other/x"), None);
        assert_eq!(source_from_path("/hooks/webhooks/x"), None);
        assert_eq!(source_from_path("/webhooks/x/y"), None);
        assert_eq!(source_from_path("/webhooks//"), None);
    }
}
