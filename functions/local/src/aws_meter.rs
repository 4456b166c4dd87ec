//! A metering proxy in front of a DynamoDB/SQS endpoint (moto): the function binaries get it as
//! `AWS_ENDPOINT_URL`, it forwards every call unchanged and counts it by API action, with the
//! capacity the call would bill on AWS estimated from its sizes:
//!
//! - `PutItem`: one write unit per started KiB of the request (the item plus a little request
//!   overhead, so slightly high), once more when the item carries the GSI key (`gsi1pk`; the
//!   index projects everything);
//! - `DeleteItem`: one write unit;
//! - `GetItem` and `Query` (strongly consistent here): one read unit per started 4 KiB of the
//!   response;
//! - SQS: one request per started 64 KiB of the request, as SQS bills.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use hyper::body::Bytes;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::runtime_api::{Reply, respond, spawn_server};

/// What one API action cost over a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Usage {
    /// Calls made.
    pub calls: u64,
    /// Billed units: write or read capacity units for DynamoDB, requests for SQS.
    pub units: f64,
    /// Bytes sent.
    pub request_bytes: u64,
    /// Time the upstream (moto) took to answer, summed over the calls, ms.
    pub upstream_ms: f64,
}

/// The usage of one function, by `"{service} {action}"` (e.g. `DynamoDB PutItem`).
#[derive(Debug, Default)]
pub struct Meter {
    usage: Mutex<BTreeMap<String, Usage>>,
    by_item: Mutex<BTreeMap<String, Usage>>,
}

/// The kind of DynamoDB item a call reads or writes: its `pk` up to the key proper
/// (`dedup`, `blob#req`, `doc#conv`, …), from `Item`, `Key` or a query's `:pk`; for a query of
/// the `gsi1` index, `gsi1 ` and its partition up to the first `#`.
pub fn item_kind(request: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(request).ok()?;
    if let Some(partition) = v
        .pointer("/ExpressionAttributeValues/:p/S")
        .and_then(serde_json::Value::as_str)
    {
        let first = partition.split('#').next().unwrap_or_default();
        return Some(format!("gsi1 {first}"));
    }
    let pk = v
        .pointer("/Item/pk/S")
        .or_else(|| v.pointer("/Key/pk/S"))
        .or_else(|| v.pointer("/ExpressionAttributeValues/:pk/S"))
        .and_then(serde_json::Value::as_str)?;
    let mut parts = pk.split('#');
    let first = parts.next()?;
    Some(match (first, parts.next()) {
        ("doc" | "blob", Some(second)) if parts.next().is_some() => format!("{first}#{second}"),
        _ => first.to_owned(),
    })
}

impl Meter {
    /// Everything counted so far.
    pub fn snapshot(&self) -> BTreeMap<String, Usage> {
        self.usage
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// DynamoDB calls by action and item kind ([`item_kind`]), e.g. `PutItem doc#conv`.
    pub fn by_item(&self) -> BTreeMap<String, Usage> {
        self.by_item
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Forgets what was counted (between benchmark phases).
    pub fn reset(&self) {
        self.usage
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.by_item
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    fn add(&self, key: String, units: f64, request_bytes: usize, upstream: Duration) {
        Self::add_to(&self.usage, key, units, request_bytes, upstream);
    }

    fn add_to(
        map: &Mutex<BTreeMap<String, Usage>>,
        key: String,
        units: f64,
        request_bytes: usize,
        upstream: Duration,
    ) {
        let mut usage = map.lock().unwrap_or_else(PoisonError::into_inner);
        let u = usage.entry(key).or_default();
        u.calls += 1;
        u.units += units;
        u.request_bytes += u64::try_from(request_bytes).unwrap_or(0);
        u.upstream_ms += upstream.as_secs_f64() * 1000.0;
    }

    /// Counts one call of `target` (the `X-Amz-Target` header) with its bodies and the time the
    /// upstream took to answer it.
    pub fn record(&self, target: &str, request: &[u8], response: &[u8], upstream: Duration) {
        let (service, action) = match target.split_once('.') {
            Some(("DynamoDB_20120810", a)) => ("DynamoDB", a),
            Some(("AmazonSQS", a)) => ("SQS", a),
            Some((s, a)) => (s, a),
            None => ("other", target),
        };
        let started = |bytes: usize, unit: usize| bytes.div_ceil(unit).max(1) as f64;
        let units = match (service, action) {
            ("DynamoDB", "PutItem") => started(request.len(), 1024),
            ("DynamoDB", "DeleteItem") => 1.0,
            ("DynamoDB", "GetItem" | "Query") => started(response.len(), 4096),
            ("SQS", _) => started(request.len(), 64 * 1024),
            _ => 0.0,
        };
        self.add(
            format!("{service} {action}"),
            units,
            request.len(),
            upstream,
        );
        if service == "DynamoDB" {
            let kind = item_kind(request).unwrap_or_else(|| "?".to_owned());
            Self::add_to(
                &self.by_item,
                format!("{action} {kind}"),
                units,
                request.len(),
                upstream,
            );
        }
        if service == "DynamoDB"
            && action == "PutItem"
            && request.windows(6).any(|w| w == b"gsi1pk")
        {
            self.add(
                "DynamoDB PutItem (GSI)".to_owned(),
                started(request.len(), 1024),
                0,
                Duration::ZERO,
            );
        }
    }
}

/// A metering proxy for one function: forwards to `upstream`, counts into its [`Meter`].
#[derive(Debug)]
pub struct MeterProxy {
    url: String,
    meter: Arc<Meter>,
    server: JoinHandle<()>,
}

impl Drop for MeterProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Where a [`MeterProxy`] forwards.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Every call not routed elsewhere (`http://host:port`): moto.
    pub default: String,
    /// DynamoDB calls instead, when set: a faster DynamoDB implementation (dynalite). Such a
    /// server may lack `UpdateTimeToLive`, which the proxy then answers itself: TTLs only
    /// matter to reads here, and wagate's reads check `ttl` themselves.
    pub dynamodb: Option<String>,
}

impl MeterProxy {
    /// Starts a proxy on a free port of 127.0.0.1 in front of `upstream`.
    pub async fn start(upstream: &Upstream) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let meter = Arc::new(Meter::default());
        let client = reqwest::Client::builder()
            .build()
            .context("building the proxy client")?;
        let upstream = Upstream {
            default: upstream.default.trim_end_matches('/').to_owned(),
            dynamodb: upstream
                .dynamodb
                .as_deref()
                .map(|u| u.trim_end_matches('/').to_owned()),
        };
        let handler_meter = meter.clone();
        let server = spawn_server(
            listener,
            Arc::new(move |req: hyper::Request<hyper::body::Incoming>| -> Reply {
                let (client, upstream, meter) =
                    (client.clone(), upstream.clone(), handler_meter.clone());
                Box::pin(async move {
                    match forward(&client, &upstream, &meter, req).await {
                        Ok(r) => r,
                        Err(e) => respond(StatusCode::BAD_GATEWAY, format!("proxy: {e:#}")),
                    }
                })
            }),
        );
        Ok(Self { url, meter, server })
    }

    /// `AWS_ENDPOINT_URL` for the function.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// What the function called.
    pub fn meter(&self) -> &Meter {
        &self.meter
    }
}

async fn forward(
    client: &reqwest::Client,
    upstream: &Upstream,
    meter: &Meter,
    req: hyper::Request<hyper::body::Incoming>,
) -> anyhow::Result<hyper::Response<Full<Bytes>>> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown")
        .to_owned();
    let upstream = match &upstream.dynamodb {
        Some(dynamodb) if target.starts_with("DynamoDB_20120810.") => {
            if target == "DynamoDB_20120810.UpdateTimeToLive" {
                let asked: serde_json::Value = serde_json::from_slice(&body)?;
                let mut r = respond(
                    StatusCode::OK,
                    serde_json::json!({
                        "TimeToLiveSpecification": asked["TimeToLiveSpecification"]
                    })
                    .to_string(),
                );
                r.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static("application/x-amz-json-1.0"),
                );
                return Ok(r);
            }
            dynamodb
        }
        _ => &upstream.default,
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", hyper::http::uri::PathAndQuery::as_str);
    let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes())?;
    let mut out = client.request(method, format!("{upstream}{path}"));
    for (name, value) in &parts.headers {
        // The signature covers `host`, but moto does not check signatures; reqwest sets its own.
        if name != hyper::header::HOST && name != hyper::header::CONTENT_LENGTH {
            out = out.header(name.as_str(), value.as_bytes());
        }
    }
    let sent = Instant::now();
    let answer = out.body(body.clone()).send().await?;
    let status = answer.status().as_u16();
    let headers = answer.headers().clone();
    let answer_body = answer.bytes().await?;
    let upstream_time = sent.elapsed();
    meter.record(&target, &body, &answer_body, upstream_time);
    let mut r = respond(StatusCode::from_u16(status)?, answer_body);
    for (name, value) in &headers {
        if name != reqwest::header::CONTENT_LENGTH && name != reqwest::header::TRANSFER_ENCODING {
            if let (Ok(n), Ok(v)) = (
                hyper::header::HeaderName::from_bytes(name.as_str().as_bytes()),
                hyper::header::HeaderValue::from_bytes(value.as_bytes()),
            ) {
                r.headers_mut().insert(n, v);
            }
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_follow_the_billing_rules() {
        let meter = Meter::default();
        let ms = Duration::from_millis(2);
        meter.record("DynamoDB_20120810.PutItem", &[b'x'; 1500], b"{}", ms);
        meter.record(
            "DynamoDB_20120810.PutItem",
            br#"{"Item":{"gsi1pk":{"S":"a"}}}"#,
            b"{}",
            ms,
        );
        meter.record("DynamoDB_20120810.GetItem", b"{}", &[b'x'; 5000], ms);
        meter.record("DynamoDB_20120810.DeleteItem", b"{}", b"{}", ms);
        meter.record("AmazonSQS.SendMessageBatch", &[b'x'; 70 * 1024], b"{}", ms);
        let usage = meter.snapshot();
        assert_eq!(usage["DynamoDB PutItem"].calls, 2);
        assert_eq!(usage["DynamoDB PutItem"].units, 3.0);
        assert_eq!(usage["DynamoDB PutItem (GSI)"].units, 1.0);
        assert!((usage["DynamoDB PutItem"].upstream_ms - 4.0).abs() < 1e-9);
        meter.record(
            "DynamoDB_20120810.PutItem",
            br#"{"Item":{"pk":{"S":"doc#conv#meta-demo#1555"},"sk":{"S":"-"}}}"#,
            b"{}",
            ms,
        );
        assert_eq!(meter.by_item()["PutItem doc#conv"].calls, 1);
        assert_eq!(
            item_kind(br#"{"Key":{"pk":{"S":"dedup#evt_1"}}}"#).as_deref(),
            Some("dedup")
        );
        assert_eq!(
            item_kind(br#"{"ExpressionAttributeValues":{":pk":{"S":"blob#req#1"}}}"#).as_deref(),
            Some("blob#req")
        );
        assert_eq!(
            item_kind(br#"{"ExpressionAttributeValues":{":p":{"S":"conv-active#meta"}}}"#)
                .as_deref(),
            Some("gsi1 conv-active")
        );
        assert_eq!(usage["DynamoDB GetItem"].units, 2.0);
        assert_eq!(usage["DynamoDB DeleteItem"].units, 1.0);
        assert_eq!(usage["SQS SendMessageBatch"].units, 2.0);
        meter.reset();
        assert!(meter.snapshot().is_empty() && meter.by_item().is_empty());
    }

    #[tokio::test]
    async fn the_proxy_forwards_and_counts() {
        let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream_url = format!("http://{}", upstream.local_addr().unwrap());
        let _upstream = spawn_server(
            upstream,
            Arc::new(|req: hyper::Request<hyper::body::Incoming>| -> Reply {
                Box::pin(async move {
                    let target = req.headers()["x-amz-target"].to_str().unwrap().to_owned();
                    let mut r = respond(StatusCode::OK, format!("{{\"t\":\"{target}\"}}"));
                    r.headers_mut()
                        .insert("x-amzn-requestid", "r1".parse().unwrap());
                    r
                })
            }),
        );
        let proxy = MeterProxy::start(&Upstream {
            default: upstream_url,
            dynamodb: None,
        })
        .await
        .unwrap();
        let answer = reqwest::Client::new()
            .post(format!("{}/", proxy.url()))
            .header("x-amz-target", "AmazonSQS.SendMessageBatch")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.headers()["x-amzn-requestid"], "r1");
        assert_eq!(
            answer.text().await.unwrap(),
            r#"{"t":"AmazonSQS.SendMessageBatch"}"#
        );
        assert_eq!(proxy.meter().snapshot()["SQS SendMessageBatch"].calls, 1);
    }
}
