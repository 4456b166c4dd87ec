//! A metering proxy in front of a DynamoDB/SQS endpoint (moto): the function binaries get it as
//! `AWS_ENDPOINT_URL`, it forwards every call unchanged and counts it by API action, with the
//! capacity the call would bill on AWS estimated from its sizes:
//!
//! - `PutItem`: one write unit per started KiB of the item, sized as DynamoDB sizes items
//!   (attribute names plus values: UTF-8 bytes of strings, raw bytes of binaries, about half the
//!   digits of numbers), the larger of the old and the new item when it replaces one; a failed
//!   conditional write bills the same;
//! - the `gsi1` index (keys only): one write unit when an item enters or leaves it, two when
//!   its index key changes (delete and put), none when the key stays. The proxies of one run
//!   share a [`Ledger`] of what each item last was, so they know the old item;
//! - `DeleteItem`: the deleted item's size, at least one unit;
//! - `GetItem` and `Query`: one read unit per started 4 KiB of the items read, half for an
//!   eventually consistent read (a query of the index always is);
//! - SQS: one request per started 64 KiB of the request, as SQS bills.
//!
//! Each count also keeps the estimate earlier reports used (`request_units`: write units by the
//! request's size, and the index written again with every write of an indexed item, as if it
//! projected every attribute), so figures stay comparable across reports.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode, header, uri::PathAndQuery};
use axum::response::Response;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::runtime_api::{Reply, respond, spawn_server};

/// What one API action cost over a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Usage {
    /// Calls made.
    pub calls: u64,
    /// Billed units: write or read capacity units for DynamoDB, requests for SQS.
    pub units: f64,
    /// Bytes sent.
    pub request_bytes: u64,
    /// The units by the rule of earlier reports (see the module doc).
    pub request_units: f64,
    /// Time the upstream (moto) took to answer, summed over the calls, ms.
    pub upstream_ms: f64,
}

/// The usage of one function, by `"{service} {action}"` (e.g. `DynamoDB PutItem`).
#[derive(Debug, Default)]
pub struct Meter {
    usage: Mutex<BTreeMap<String, Usage>>,
    by_item: Mutex<BTreeMap<String, Usage>>,
    calls: Mutex<BTreeSet<Call>>,
    ledger: Arc<Ledger>,
}

/// One kind of call a function made, as an IAM policy sees it: the action it needs, the resource
/// and the partition key value it names (`dynamodb:LeadingKeys`). Kept for the whole life of the
/// proxy ([`Meter::reset`] does not forget them), so a test can check every call a function made
/// against the policy the template gives it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Call {
    /// The IAM action: `dynamodb:PutItem`, `sqs:SendMessage` (the batch APIs are authorised as
    /// their single forms).
    pub action: String,
    /// `TableName` (with `/index/{IndexName}` for an index) or the queue's name.
    pub resource: String,
    /// The partition key values the call names: `pk` of `Key` or `Item`, or the value a query's
    /// key condition compares the partition key with. Empty for calls that name none.
    pub leading_keys: Vec<String>,
}

/// What IAM checks of a call with `target` (`X-Amz-Target`) and `request` body.
pub fn call_of(target: &str, request: &[u8]) -> Option<Call> {
    let (service, action) = target.split_once('.')?;
    let v: serde_json::Value = serde_json::from_slice(request).unwrap_or_default();
    let text = |p: &str| v.pointer(p).and_then(serde_json::Value::as_str);
    match service {
        // A transaction is authorised item by item, as the single writes it is made of: one
        // `PutItem` on the table naming every item's key.
        "DynamoDB_20120810" if action == "TransactWriteItems" => {
            let items = v
                .pointer("/TransactItems")
                .and_then(serde_json::Value::as_array)
                .cloned()
                .unwrap_or_default();
            let table = items
                .iter()
                .find_map(|i| {
                    i.pointer("/Put/TableName")
                        .and_then(serde_json::Value::as_str)
                })
                .unwrap_or("?")
                .to_owned();
            let leading_keys = items
                .iter()
                .filter_map(|i| {
                    i.pointer("/Put/Item/pk/S")
                        .and_then(serde_json::Value::as_str)
                })
                .map(str::to_owned)
                .collect();
            Some(Call {
                action: "dynamodb:PutItem".into(),
                resource: table,
                leading_keys,
            })
        }
        "DynamoDB_20120810" => {
            let table = text("/TableName").unwrap_or("?");
            let resource = match text("/IndexName") {
                Some(index) => format!("{table}/index/{index}"),
                None => table.to_owned(),
            };
            let mut leading_keys: Vec<String> = ["/Key/pk/S", "/Item/pk/S"]
                .iter()
                .filter_map(|p| text(p).map(str::to_owned))
                .collect();
            // `pk = :pk`, `gsi1pk = :p AND …`: the value of the first comparison.
            if let Some(condition) = text("/KeyConditionExpression") {
                let placeholder = condition
                    .split_whitespace()
                    .nth(2)
                    .unwrap_or_default()
                    .trim_end_matches(')');
                if let Some(value) = v
                    .pointer(&format!("/ExpressionAttributeValues/{placeholder}/S"))
                    .and_then(serde_json::Value::as_str)
                {
                    leading_keys.push(value.to_owned());
                }
            }
            Some(Call {
                action: format!("dynamodb:{action}"),
                resource,
                leading_keys,
            })
        }
        "AmazonSQS" => {
            let single = match action {
                "SendMessageBatch" => "SendMessage",
                "DeleteMessageBatch" => "DeleteMessage",
                "ChangeMessageVisibilityBatch" => "ChangeMessageVisibility",
                other => other,
            };
            let queue = text("/QueueUrl")
                .or_else(|| text("/QueueName"))
                .and_then(|u| u.rsplit('/').next())
                .unwrap_or("?");
            Some(Call {
                action: format!("sqs:{single}"),
                resource: queue.to_owned(),
                leading_keys: Vec::new(),
            })
        }
        _ => None,
    }
}

/// What the items of one run last were, as far as the metering proxies saw them written: their
/// size and index key, which the next write of the same item is billed against.
#[derive(Debug, Default)]
pub struct Ledger {
    items: Mutex<std::collections::HashMap<String, Stored>>,
}

#[derive(Debug, Clone, PartialEq)]
struct Stored {
    size: usize,
    index: Option<(String, String)>,
}

impl Ledger {
    fn get(&self, key: &str) -> Option<Stored> {
        self.items
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    fn set(&self, key: String, stored: Option<Stored>) {
        let mut items = self.items.lock().unwrap_or_else(PoisonError::into_inner);
        match stored {
            Some(s) => items.insert(key, s),
            None => items.remove(&key),
        };
    }
}

/// The size DynamoDB bills for an attribute value (without its name).
fn value_size(v: &serde_json::Value) -> usize {
    use base64::Engine as _;
    let Some((kind, inner)) = v.as_object().and_then(|o| o.iter().next()) else {
        return 0;
    };
    match (kind.as_str(), inner) {
        ("S", serde_json::Value::String(s)) => s.len(),
        ("N", serde_json::Value::String(n)) => number_size(n),
        ("B", serde_json::Value::String(b)) => base64::engine::general_purpose::STANDARD
            .decode(b)
            .map_or(b.len() * 3 / 4, |raw| raw.len()),
        ("BOOL" | "NULL", _) => 1,
        ("SS" | "BS", serde_json::Value::Array(items)) => items
            .iter()
            .map(|i| value_size(&serde_json::json!({ &kind[..1]: i })))
            .sum(),
        ("NS", serde_json::Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map_or(0, number_size))
            .sum(),
        ("L", serde_json::Value::Array(items)) => {
            3 + items.iter().map(|i| 1 + value_size(i)).sum::<usize>()
        }
        ("M", serde_json::Value::Object(map)) => 3 + item_size(map),
        _ => 0,
    }
}

/// A number's size: about one byte per two significant digits, plus one.
fn number_size(n: &str) -> usize {
    let digits: String = n.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
    significant.max(1).div_ceil(2) + 1
}

/// An item's size as DynamoDB bills it: attribute names plus values.
pub fn item_size(item: &serde_json::Map<String, serde_json::Value>) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + 1 + value_size(value))
        .sum()
}

fn started(bytes: usize, unit: usize) -> f64 {
    // At most a few thousand units per call: exact in an f64.
    #[allow(clippy::cast_precision_loss)]
    let units = bytes.div_ceil(unit).max(1) as f64;
    units
}

/// The table key of a request's item or key (`pk`/`sk`).
fn table_key(map: &serde_json::Value) -> Option<String> {
    let pk = map.pointer("/pk/S")?.as_str()?;
    let sk = map.pointer("/sk/S").and_then(serde_json::Value::as_str);
    Some(format!("{pk}\u{1f}{}", sk.unwrap_or_default()))
}

/// The `gsi1` key of an item, if it carries one.
fn index_key(item: &serde_json::Value) -> Option<(String, String)> {
    Some((
        item.pointer("/gsi1pk/S")?.as_str()?.to_owned(),
        item.pointer("/gsi1sk/S")?.as_str()?.to_owned(),
    ))
}

/// Index writes for an item whose index key goes from `old` to `new` (keys-only projection).
fn index_writes(old: Option<&(String, String)>, new: Option<&(String, String)>) -> f64 {
    match (old, new) {
        (None, None) => 0.0,
        (Some(a), Some(b)) if a == b => 0.0,
        (Some(_), Some(_)) => 2.0,
        _ => 1.0,
    }
}

/// Read units for `bytes` of items read, halved for an eventually consistent read.
fn read_units(bytes: usize, consistent: bool) -> f64 {
    let units = started(bytes, 4096);
    if consistent { units } else { units / 2.0 }
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

    /// Every kind of call made since the proxy started ([`Call`]).
    pub fn calls(&self) -> BTreeSet<Call> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Forgets what was counted (between benchmark phases); not the [`calls`](Self::calls).
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

    /// A meter whose write units are billed against `ledger` (shared by the proxies of a run).
    pub fn with_ledger(ledger: Arc<Ledger>) -> Self {
        Self {
            ledger,
            ..Self::default()
        }
    }

    fn add(&self, key: String, units: (f64, f64), request_bytes: usize, upstream: Duration) {
        Self::add_to(&self.usage, key, units, request_bytes, upstream);
    }

    fn add_to(
        map: &Mutex<BTreeMap<String, Usage>>,
        key: String,
        (units, request_units): (f64, f64),
        request_bytes: usize,
        upstream: Duration,
    ) {
        let mut usage = map.lock().unwrap_or_else(PoisonError::into_inner);
        let u = usage.entry(key).or_default();
        u.calls += 1;
        u.units += units;
        u.request_units += request_units;
        u.request_bytes += u64::try_from(request_bytes).unwrap_or(0);
        u.upstream_ms += upstream.as_secs_f64() * 1000.0;
    }

    /// Write units of a `PutItem` or `DeleteItem` (and of its index), the earlier estimate
    /// beside each; the ledger learns the item when the call succeeded.
    fn write_units(
        &self,
        action: &str,
        request: &serde_json::Value,
        request_len: usize,
        ok: bool,
    ) -> [(f64, f64); 2] {
        let old_rule = |bytes: usize| started(bytes, 1024);
        let (key, item) = match action {
            "PutItem" => (request.get("Item").and_then(table_key), request.get("Item")),
            _ => (request.get("Key").and_then(table_key), None),
        };
        let old = key.as_deref().and_then(|k| self.ledger.get(k));
        let new = item.and_then(serde_json::Value::as_object).map(|i| Stored {
            size: item_size(i),
            index: index_key(&serde_json::Value::Object(i.clone())),
        });
        let size = old
            .as_ref()
            .map_or(0, |o| o.size)
            .max(new.as_ref().map_or(0, |n| n.size));
        let index = index_writes(
            old.as_ref().and_then(|o| o.index.as_ref()),
            new.as_ref().and_then(|n| n.index.as_ref()),
        );
        let (table_old_rule, index_old_rule) = match action {
            "PutItem" => (
                old_rule(request_len),
                if new.as_ref().is_some_and(|n| n.index.is_some()) {
                    old_rule(request_len)
                } else {
                    0.0
                },
            ),
            _ => (1.0, 0.0),
        };
        if ok && let Some(key) = key {
            self.ledger.set(key, new);
        }
        [
            (started(size, 1024), table_old_rule),
            (if ok { index } else { 0.0 }, index_old_rule),
        ]
    }

    /// Counts one call of `target` (the `X-Amz-Target` header) with its bodies, whether it
    /// succeeded, and the time the upstream took to answer it.
    pub fn record(
        &self,
        target: &str,
        (request, response): (&[u8], &[u8]),
        ok: bool,
        upstream: Duration,
    ) {
        if let Some(call) = call_of(target, request) {
            self.calls
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(call);
        }
        let (service, action) = match target.split_once('.') {
            Some(("DynamoDB_20120810", a)) => ("DynamoDB", a),
            Some(("AmazonSQS", a)) => ("SQS", a),
            Some((s, a)) => (s, a),
            None => ("other", target),
        };
        let parsed = |bytes: &[u8]| {
            serde_json::from_slice::<serde_json::Value>(bytes).unwrap_or(serde_json::Value::Null)
        };
        let mut index = None;
        let units = match (service, action) {
            ("DynamoDB", "PutItem" | "DeleteItem") => {
                let [table, gsi] = self.write_units(action, &parsed(request), request.len(), ok);
                index = Some(gsi);
                table
            }
            // A transaction bills each write twice (prepare and commit).
            ("DynamoDB", "TransactWriteItems") => {
                let asked = parsed(request);
                let (mut table, mut gsi) = ((0.0, 0.0), (0.0, 0.0));
                let puts = asked
                    .pointer("/TransactItems")
                    .and_then(serde_json::Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|i| i.get("Put"));
                for put in puts {
                    let [t, g] = self.write_units("PutItem", put, put.to_string().len(), ok);
                    table = (table.0 + 2.0 * t.0, table.1 + 2.0 * t.1);
                    gsi = (gsi.0 + 2.0 * g.0, gsi.1 + 2.0 * g.1);
                }
                index = Some(gsi);
                table
            }
            ("DynamoDB", "GetItem" | "Query") => {
                let asked = parsed(request);
                let answer = parsed(response);
                let items: Vec<&serde_json::Value> = match answer.get("Items") {
                    Some(serde_json::Value::Array(items)) => items.iter().collect(),
                    _ => answer.get("Item").into_iter().collect(),
                };
                let bytes = items
                    .iter()
                    .filter_map(|i| i.as_object())
                    .map(item_size)
                    .sum();
                let consistent = asked.get("IndexName").is_none()
                    && asked.get("ConsistentRead") == Some(&serde_json::Value::Bool(true));
                (read_units(bytes, consistent), started(response.len(), 4096))
            }
            ("SQS", _) => {
                let units = started(request.len(), 64 * 1024);
                (units, units)
            }
            _ => (0.0, 0.0),
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
            if let Some(gsi) = index.filter(|g| g.0 > 0.0 || g.1 > 0.0) {
                Self::add_to(
                    &self.by_item,
                    format!("{action} {kind} (GSI)"),
                    gsi,
                    0,
                    Duration::ZERO,
                );
            }
        }
        if let Some(gsi) = index.filter(|g| g.0 > 0.0 || g.1 > 0.0) {
            self.add(format!("DynamoDB {action} (GSI)"), gsi, 0, Duration::ZERO);
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
    /// What the items were, shared by the proxies of one run (see [`Ledger`]).
    pub ledger: Arc<Ledger>,
}

impl MeterProxy {
    /// Starts a proxy on a free port of 127.0.0.1 in front of `upstream`.
    pub async fn start(upstream: &Upstream) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let meter = Arc::new(Meter::with_ledger(upstream.ledger.clone()));
        let client = aws_adapters::http::client_builder()
            .build()
            .context("building the proxy client")?;
        let upstream = Upstream {
            default: upstream.default.trim_end_matches('/').to_owned(),
            dynamodb: upstream
                .dynamodb
                .as_deref()
                .map(|u| u.trim_end_matches('/').to_owned()),
            ledger: upstream.ledger.clone(),
        };
        let handler_meter = meter.clone();
        let server = spawn_server(
            listener,
            Arc::new(move |req: Request| -> Reply {
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
    req: Request,
) -> anyhow::Result<Response> {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await?;
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
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/x-amz-json-1.0"),
                );
                return Ok(r);
            }
            dynamodb
        }
        _ => &upstream.default,
    };
    let path = parts.uri.path_and_query().map_or("/", PathAndQuery::as_str);
    let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes())?;
    let mut out = client.request(method, format!("{upstream}{path}"));
    for (name, value) in &parts.headers {
        // The signature covers `host`, but moto does not check signatures; reqwest sets its own.
        if name != header::HOST && name != header::CONTENT_LENGTH {
            out = out.header(name.as_str(), value.as_bytes());
        }
    }
    let sent = Instant::now();
    let answer = out.body(body.clone()).send().await?;
    let status = answer.status().as_u16();
    let headers = answer.headers().clone();
    let answer_body = answer.bytes().await?;
    let upstream_time = sent.elapsed();
    meter.record(
        &target,
        (&body, &answer_body),
        (200..300).contains(&status),
        upstream_time,
    );
    let mut r = respond(StatusCode::from_u16(status)?, answer_body);
    for (name, value) in &headers {
        if name != reqwest::header::CONTENT_LENGTH
            && name != reqwest::header::TRANSFER_ENCODING
            && let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_str().as_bytes()),
                HeaderValue::from_bytes(value.as_bytes()),
            )
        {
            r.headers_mut().insert(n, v);
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transaction_bills_each_write_twice_and_is_authorised_as_its_puts() {
        let meter = Meter::default();
        let request = br#"{"TransactItems":[
            {"Put":{"TableName":"t","Item":{"pk":{"S":"doc#msg#a"},"body":{"S":"x"}}}},
            {"Put":{"TableName":"t","Item":{"pk":{"S":"doc#campaign-count#c#1"},"body":{"S":"y"}}}}]}"#;
        meter.record(
            "DynamoDB_20120810.TransactWriteItems",
            (request, b"{}"),
            true,
            Duration::ZERO,
        );
        assert_eq!(meter.snapshot()["DynamoDB TransactWriteItems"].units, 4.0);
        let call = call_of("DynamoDB_20120810.TransactWriteItems", request).unwrap();
        assert_eq!(call.action, "dynamodb:PutItem");
        assert_eq!(call.resource, "t");
        assert_eq!(call.leading_keys, ["doc#msg#a", "doc#campaign-count#c#1"]);
    }

    #[test]
    fn units_follow_the_billing_rules() {
        let meter = Meter::default();
        let ms = Duration::from_millis(2);
        let put = |meter: &Meter, item: &str| {
            let request = format!(r#"{{"TableName":"t","Item":{item}}}"#);
            meter.record(
                "DynamoDB_20120810.PutItem",
                (request.as_bytes(), b"{}"),
                true,
                ms,
            );
        };
        // 2 + 1 + 5 + 1 + 1 + 2000 bytes: two write units; the earlier rule counted the
        // request's 2,051 bytes, three.
        let text = "x".repeat(2000);
        put(
            &meter,
            &format!(r#"{{"pk":{{"S":"doc#a"}},"b":{{"S":"{text}"}}}}"#),
        );
        let usage = meter.snapshot();
        assert_eq!(usage["DynamoDB PutItem"].units, 2.0);
        assert_eq!(usage["DynamoDB PutItem"].request_units, 3.0);
        // A binary counts its raw bytes, not its base64: 1,200 bytes sent as 1,600 characters.
        let b64 = "AAAA".repeat(400);
        put(
            &meter,
            &format!(r#"{{"pk":{{"S":"doc#b"}},"z":{{"B":"{b64}"}}}}"#),
        );
        let usage = meter.snapshot();
        assert_eq!(usage["DynamoDB PutItem"].units, 4.0);
        assert_eq!(usage["DynamoDB PutItem"].request_units, 5.0);
        // Replacing a large item with a small one bills the larger.
        put(&meter, r#"{"pk":{"S":"doc#a"},"b":{"S":"y"}}"#);
        assert_eq!(meter.snapshot()["DynamoDB PutItem"].units, 6.0);
        // The index: entering it is one write, keeping the key none, changing it two, leaving
        // it one.
        let indexed = |sort: &str| {
            format!(
                r#"{{"pk":{{"S":"doc#conv#1"}},"gsi1pk":{{"S":"p"}},"gsi1sk":{{"S":"{sort}"}}}}"#
            )
        };
        let gsi = |meter: &Meter| {
            meter
                .snapshot()
                .get("DynamoDB PutItem (GSI)")
                .map_or(0.0, |u| u.units)
        };
        put(&meter, &indexed("1"));
        assert_eq!(gsi(&meter), 1.0);
        put(&meter, &indexed("1"));
        assert_eq!(gsi(&meter), 1.0);
        put(&meter, &indexed("2"));
        assert_eq!(gsi(&meter), 3.0);
        put(&meter, r#"{"pk":{"S":"doc#conv#1"}}"#);
        assert_eq!(gsi(&meter), 4.0);
        // The earlier rule counted the index again with every indexed write.
        assert_eq!(
            meter.snapshot()["DynamoDB PutItem (GSI)"].request_units,
            3.0
        );
        // A failed conditional write bills the item but changes nothing.
        let refused = format!(r#"{{"Item":{}}}"#, indexed("3"));
        meter.record(
            "DynamoDB_20120810.PutItem",
            (refused.as_bytes(), b"{}"),
            false,
            ms,
        );
        assert_eq!(gsi(&meter), 4.0);
        assert_eq!(meter.by_item()["PutItem doc#conv"].calls, 5);
        // Reads: the items' size, halved when eventually consistent.
        let item = format!(
            r#"{{"Item":{{"pk":{{"S":"doc#a"}},"b":{{"S":"{}"}}}}}}"#,
            "x".repeat(5000)
        );
        meter.record(
            "DynamoDB_20120810.GetItem",
            (br#"{"ConsistentRead":true}"#, item.as_bytes()),
            true,
            ms,
        );
        meter.record(
            "DynamoDB_20120810.GetItem",
            (b"{}", item.as_bytes()),
            true,
            ms,
        );
        assert_eq!(meter.snapshot()["DynamoDB GetItem"].units, 3.0);
        meter.record(
            "DynamoDB_20120810.DeleteItem",
            (br#"{"Key":{"pk":{"S":"doc#b"}}}"#, b"{}"),
            true,
            ms,
        );
        assert_eq!(meter.snapshot()["DynamoDB DeleteItem"].units, 2.0);
        meter.record(
            "AmazonSQS.SendMessageBatch",
            (&[b'x'; 70 * 1024], b"{}"),
            true,
            ms,
        );
        assert_eq!(meter.snapshot()["SQS SendMessageBatch"].units, 2.0);
        assert!(meter.snapshot()["DynamoDB PutItem"].upstream_ms > 0.0);
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
        meter.reset();
        assert!(meter.snapshot().is_empty() && meter.by_item().is_empty());
    }

    #[tokio::test]
    async fn the_proxy_forwards_and_counts() {
        let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream_url = format!("http://{}", upstream.local_addr().unwrap());
        let _upstream = spawn_server(
            upstream,
            Arc::new(|req: Request| -> Reply {
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
            ledger: Arc::default(),
        })
        .await
        .unwrap();
        let answer = aws_adapters::http::client()
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
