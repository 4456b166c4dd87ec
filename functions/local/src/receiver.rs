//! The bundled receiver: a subscriber endpoint on 127.0.0.1 that verifies `X-Webhook-Signature`
//! and the Standard Webhooks headers with the endpoint secret and prints each delivery. For the
//! fault run it can fail or stall a share of requests and collects what it accepted.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use serde_json::Value;
use shared::signature::{EndpointSecret, verify_standard_webhook, webhook_signature};
use tokio::net::TcpListener;

/// Receiver behaviour.
#[derive(Debug, Clone)]
pub struct ReceiverOptions {
    /// The endpoint secret deliveries are signed with.
    pub secret: EndpointSecret,
    /// Print one line per delivery.
    pub print: bool,
    /// Share of requests answered 500 without processing them.
    pub fail_rate: f64,
    /// Share of requests that stall for `stall` and are then answered 503 (the sender has timed
    /// out by then): not processed either.
    pub stall_rate: f64,
    /// How long a stalled request hangs.
    pub stall: Duration,
    /// Seed of the random choices.
    pub seed: u64,
}

/// What the receiver accepted (verified and answered 2xx).
#[derive(Debug, Default, Clone)]
pub struct Collected {
    /// Times each `X-Idempotency-Key` was accepted.
    pub by_key: HashMap<String, u32>,
    /// Times each item (`{type} {message id or event id}`) was accepted.
    pub items: HashMap<String, u32>,
    /// Event types seen, with counts of items.
    pub types: BTreeMap<String, u64>,
    /// Requests answered 401 (signature problems).
    pub rejected: u64,
    /// Requests failed or stalled on purpose.
    pub injected_failures: u64,
    /// Batches (deliveries with `"batch": true`) and their item counts.
    pub batches: Vec<usize>,
    /// When each item was first accepted (for end-to-end latency).
    pub arrived: HashMap<String, std::time::Instant>,
    /// Deliveries accepted, and their bytes (body and header lines, as sent over the wire).
    pub deliveries: u64,
    /// See `deliveries`.
    pub bytes: u64,
}

/// A small deterministic random source (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next value in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// A running receiver.
#[derive(Debug, Clone)]
pub struct Receiver {
    addr: SocketAddr,
    collected: Arc<Mutex<Collected>>,
}

struct Inner {
    options: ReceiverOptions,
    rng: Mutex<Rng>,
    collected: Arc<Mutex<Collected>>,
}

/// The key of one delivered item: its type and its message id (or event id).
pub fn item_key(event_type: &str, item: &Value) -> String {
    let id = item
        .pointer("/message/id")
        .or_else(|| item.pointer("/conversation/id"))
        .or_else(|| item.get("event_id"))
        .and_then(Value::as_str)
        .unwrap_or("?");
    format!("{event_type} {id}")
}

/// The items of an envelope: `data` itself, or each element of a batch.
pub fn items(envelope: &Value) -> Vec<&Value> {
    match envelope.get("data") {
        Some(Value::Array(list)) => list.iter().collect(),
        Some(one) => vec![one],
        None => Vec::new(),
    }
}

/// What the receiver keeps of a delivery: its type, id and batch flag, and its items' keys.
#[derive(Debug, PartialEq, Eq)]
pub struct Summary {
    /// `type` (`?` when missing or not a string).
    pub event_type: String,
    /// `id` (`?` when missing or not a string).
    pub id: String,
    /// `batch` is `true`.
    pub batch: bool,
    /// [`item_key`] of each item.
    pub keys: Vec<String>,
    /// The first item's `conversation.id`, if it has one.
    pub conversation: Option<String>,
}

impl Summary {
    /// From a delivery's body: read in one typed pass when the body has the plain shape the
    /// gateway writes, else through a [`Value`] tree (the same answer, slower: tested). `None`
    /// when the body is not JSON.
    pub fn read(body: &[u8]) -> Option<Self> {
        if let Ok(MapOnly(plain)) = serde_json::from_slice::<MapOnly<Plain<'_>>>(body) {
            return Some(plain.summary());
        }
        serde_json::from_slice::<Value>(body)
            .ok()
            .map(|envelope| Self::from_value(&envelope))
    }

    /// From a parsed envelope.
    pub fn from_value(envelope: &Value) -> Self {
        let event_type = envelope.get("type").and_then(Value::as_str).unwrap_or("?");
        let list = items(envelope);
        Self {
            event_type: event_type.to_owned(),
            id: envelope
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned(),
            batch: envelope
                .get("batch")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            keys: list.iter().map(|i| item_key(event_type, i)).collect(),
            conversation: list
                .first()
                .and_then(|i| i.pointer("/conversation/id"))
                .and_then(Value::as_str)
                .map(str::to_owned),
        }
    }
}

/// A delivery of the plain shape: every field the receiver reads of the type it expects, or
/// absent. Anything else (a `null` id, an item that is not an object, a duplicate key) fails
/// this reading and goes through the tree, which decides what it means.
#[derive(serde::Deserialize)]
struct Plain<'a> {
    #[serde(rename = "type", borrow, default)]
    event_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(default)]
    batch: Option<bool>,
    #[serde(borrow, default)]
    data: PlainData<'a>,
}

#[derive(Default)]
enum PlainData<'a> {
    #[default]
    Absent,
    One(PlainItem<'a>),
    Many(Vec<PlainItem<'a>>),
    /// A scalar or `null`: one item with no id.
    Scalar,
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for PlainData<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = PlainData<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a delivery's data")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                map: M,
            ) -> Result<Self::Value, M::Error> {
                serde::Deserialize::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(PlainData::One)
            }
            fn visit_seq<S: serde::de::SeqAccess<'de>>(
                self,
                seq: S,
            ) -> Result<Self::Value, S::Error> {
                let list: Vec<MapOnly<PlainItem<'a>>> = serde::Deserialize::deserialize(
                    serde::de::value::SeqAccessDeserializer::new(seq),
                )?;
                Ok(PlainData::Many(list.into_iter().map(|i| i.0).collect()))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(PlainData::Scalar)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(PlainData::Scalar)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(PlainData::Scalar)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(PlainData::Scalar)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(PlainData::Scalar)
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(PlainData::Scalar)
            }
        }
        d.deserialize_any(Visit(std::marker::PhantomData))
    }
}

/// An item: the ids [`item_key`] looks for, each a string where present.
#[derive(serde::Deserialize)]
struct PlainItem<'a> {
    #[serde(borrow, default)]
    message: Option<MapOnly<PlainId<'a>>>,
    #[serde(borrow, default)]
    conversation: Option<MapOnly<PlainId<'a>>>,
    #[serde(borrow, default)]
    event_id: Option<Cow<'a, str>>,
}

#[derive(serde::Deserialize)]
struct PlainId<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
}

/// `T` read only from a JSON object: a derived struct also reads an array as its fields in
/// order, where the tree would find no key.
struct MapOnly<T>(T);

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for MapOnly<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<T>(std::marker::PhantomData<T>);
        impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for Visit<T> {
            type Value = MapOnly<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                map: M,
            ) -> Result<Self::Value, M::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(MapOnly)
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

impl Plain<'_> {
    fn summary(self) -> Summary {
        let event_type = self.event_type.as_deref().unwrap_or("?");
        let key = |item: &PlainItem<'_>| {
            let id = item
                .message
                .as_ref()
                .or(item.conversation.as_ref())
                .map(|m| m.0.id.as_ref())
                .or(item.event_id.as_deref())
                .unwrap_or("?");
            format!("{event_type} {id}")
        };
        let (keys, conversation) = match &self.data {
            PlainData::Absent => (Vec::new(), None),
            PlainData::Scalar => (vec![format!("{event_type} ?")], None),
            PlainData::One(item) => (vec![key(item)], item.conversation.as_ref()),
            PlainData::Many(list) => (
                list.iter().map(key).collect(),
                list.first().and_then(|i| i.conversation.as_ref()),
            ),
        };
        Summary {
            event_type: event_type.to_owned(),
            id: self.id.as_deref().unwrap_or("?").to_owned(),
            batch: self.batch.unwrap_or(false),
            keys,
            conversation: conversation.map(|c| c.0.id.clone().into_owned()),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn header<'a>(req: &'a Parts, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

/// Checks both signatures; the error says which failed.
fn verify(secret: &EndpointSecret, parts: &Parts, body: &[u8]) -> Result<(), &'static str> {
    let expected = webhook_signature(secret, body);
    let given = header(parts, "x-webhook-signature").ok_or("no X-Webhook-Signature")?;
    if !constant_time_eq(expected.as_bytes(), given.as_bytes()) {
        return Err("X-Webhook-Signature does not match");
    }
    let id = header(parts, "webhook-id").ok_or("no webhook-id")?;
    let ts = header(parts, "webhook-timestamp").ok_or("no webhook-timestamp")?;
    let sig = header(parts, "webhook-signature").ok_or("no webhook-signature")?;
    verify_standard_webhook(
        secret,
        id,
        ts,
        sig,
        body,
        chrono::Utc::now().timestamp(),
        300,
    )
    .map_err(|_| "Standard Webhooks signature does not verify")
}

impl Inner {
    async fn handle(&self, req: Request) -> Response {
        let (parts, body) = req.into_parts();
        // The signatures cover these exact bytes, whatever their size.
        let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
            return answer(StatusCode::BAD_REQUEST, "unreadable body");
        };
        if let Err(why) = verify(&self.options.secret, &parts, &body) {
            self.lock().rejected += 1;
            if self.options.print {
                println!("receiver | REJECTED: {why}");
            }
            return answer(StatusCode::UNAUTHORIZED, why);
        }
        let roll = self
            .rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .next_f64();
        if roll < self.options.fail_rate {
            self.lock().injected_failures += 1;
            return answer(StatusCode::INTERNAL_SERVER_ERROR, "injected failure");
        }
        if roll < self.options.fail_rate + self.options.stall_rate {
            self.lock().injected_failures += 1;
            tokio::time::sleep(self.options.stall).await;
            return answer(StatusCode::SERVICE_UNAVAILABLE, "injected stall");
        }
        let Some(summary) = Summary::read(&body) else {
            return answer(StatusCode::BAD_REQUEST, "not JSON");
        };
        let key = header(&parts, "x-idempotency-key")
            .unwrap_or_default()
            .to_owned();
        {
            let mut c = self.lock();
            let header_bytes: usize = parts
                .headers
                .iter()
                .map(|(n, v)| n.as_str().len() + v.len() + 4)
                .sum();
            c.deliveries += 1;
            c.bytes += u64::try_from(body.len() + header_bytes).unwrap_or(0);
            let seen = c.by_key.entry(key.clone()).or_insert(0);
            *seen += 1;
            let again = *seen > 1;
            let now = std::time::Instant::now();
            let count = summary.keys.len();
            for item in summary.keys {
                c.arrived.entry(item.clone()).or_insert(now);
                *c.items.entry(item).or_insert(0) += 1;
            }
            *c.types.entry(summary.event_type.clone()).or_insert(0) +=
                u64::try_from(count).unwrap_or(0);
            if summary.batch {
                c.batches.push(count);
            }
            if self.options.print {
                let what = if summary.batch {
                    format!("batch of {count}")
                } else {
                    "1 event".to_owned()
                };
                let conversation = summary
                    .conversation
                    .map(|c| format!(" conversation {c}"))
                    .unwrap_or_default();
                println!(
                    "receiver | verified {}: {what} ({}){conversation} idempotency-key {key}{}",
                    summary.event_type,
                    summary.id,
                    if again {
                        " (already seen: a receiver deduplicates it)"
                    } else {
                        ""
                    }
                );
            }
        }
        answer(StatusCode::OK, "ok")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Collected> {
        self.collected
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn answer(status: StatusCode, text: &str) -> Response {
    let mut r = Response::new(Body::from(text.to_owned()));
    *r.status_mut() = status;
    r
}

impl Receiver {
    /// A receiver on a free port of 127.0.0.1 with a fresh secret, failing `fail_rate` and
    /// stalling `stall_rate` of deliveries for `stall` (the load and fault runs).
    pub async fn start_local(
        fail_rate: f64,
        stall_rate: f64,
        stall: Duration,
        seed: u64,
    ) -> anyhow::Result<(Self, EndpointSecret)> {
        let secret = EndpointSecret::generate().map_err(|e| anyhow::anyhow!("randomness: {e}"))?;
        let receiver = Self::start(
            TcpListener::bind("127.0.0.1:0").await?,
            ReceiverOptions {
                secret: secret.clone(),
                print: false,
                fail_rate,
                stall_rate,
                stall,
                seed,
            },
        )?;
        Ok((receiver, secret))
    }

    /// Starts a receiver on `listener`; it runs until the process ends.
    pub fn start(listener: TcpListener, options: ReceiverOptions) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let collected = Arc::new(Mutex::new(Collected::default()));
        let inner = Arc::new(Inner {
            rng: Mutex::new(Rng::new(options.seed)),
            options,
            collected: collected.clone(),
        });
        // Every method and path is a delivery.
        let app = Router::new()
            .fallback(|State(inner): State<Arc<Inner>>, req: Request| async move {
                inner.handle(req).await
            })
            .with_state(inner);
        tokio::spawn(async move {
            let _served = axum::serve(listener, app).await;
        });
        Ok(Self { addr, collected })
    }

    /// An endpoint that delivers here with `secret` (batching on, no extra headers).
    pub fn endpoint(
        &self,
        id: &str,
        secret: &EndpointSecret,
        description: &str,
        event_types: &[&str],
    ) -> crate::config::EndpointSpec {
        crate::config::EndpointSpec {
            id: id.into(),
            url: format!("http://{}/hook", self.addr()),
            secret: secret.expose().to_owned(),
            description: Some(description.into()),
            event_types: event_types.iter().map(|t| (*t).to_owned()).collect(),
            batching: true,
            headers: std::collections::BTreeMap::new(),
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A copy of what it accepted so far.
    pub fn collected(&self) -> Collected {
        self.collected
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// `f` of what it accepted so far, without copying it (a load run checks often whether
    /// everything arrived).
    pub fn with_collected<T>(&self, f: impl FnOnce(&Collected) -> T) -> T {
        f(&self
            .collected
            .lock()
            .unwrap_or_else(PoisonError::into_inner))
    }

    /// Takes what it accepted so far, leaving it empty: a long run reads it step by step
    /// instead of keeping every item's record for the whole run.
    pub fn take_collected(&self) -> Collected {
        std::mem::take(
            &mut *self
                .collected
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_keys_name_the_message_or_the_event() {
        let item =
            serde_json::json!({"message": {"id": "wamid.1"}, "conversation": {"id": "conv_1"}});
        assert_eq!(
            item_key("whatsapp.message.read", &item),
            "whatsapp.message.read wamid.1"
        );
        let item = serde_json::json!({"conversation": {"id": "conv_1"}});
        assert_eq!(
            item_key("whatsapp.conversation.created", &item),
            "whatsapp.conversation.created conv_1"
        );
        let batch = serde_json::json!({"batch": true, "data": [{"a": 1}, {"a": 2}]});
        assert_eq!(items(&batch).len(), 2);
    }

    #[test]
    fn the_typed_reading_agrees_with_the_tree() {
        let bodies = [
            r#"{"id":"evt_1","type":"whatsapp.message.received","data":{"message":{"id":"wamid.1","text":{"body":"a\"b"}},"conversation":{"id":"conv_1","x":[1,{"y":null}]}}}"#,
            r#"{"id":"evt_2","type":"whatsapp.message.received","batch":true,"data":[{"message":{"id":"wamid.\u0041"},"conversation":{"id":"conv_2"}},{"conversation":{"id":"conv_2"}},{"event_id":"evt_x"},{}]}"#,
            r#"{"type":"whatsapp.conversation.created","data":{"conversation":{"id":"conv_3"}}}"#,
            r#"{"id":"evt_4","data":{"event_id":"evt_4"}}"#,
            r#"{"id":"evt_5","type":"t","data":null}"#,
            r#"{"id":"evt_6","type":"t","data":"text"}"#,
            r#"{"id":"evt_7","type":"t","data":7}"#,
            r#"{"id":"evt_8","type":"t"}"#,
            r#"{"id":"evt_9","type":"t","batch":false,"data":[]}"#,
            // Shapes only the tree reads; the answer must still be the same.
            r#"{"id":null,"type":7,"batch":"yes","data":{"message":{"id":null},"conversation":{"id":"c"}}}"#,
            r#"{"id":"evt_10","type":"t","data":{"message":{},"conversation":{"id":"c"}}}"#,
            r#"{"id":"evt_11","type":"t","data":{"message":"wamid.1","event_id":"e"}}"#,
            r#"{"id":"evt_12","type":"t","data":[1,{"message":{"id":"m"}}]}"#,
            r#"{"id":"evt_13","type":"t","type":"u","data":{"message":{"id":"m"}}}"#,
            r#"{"id":"evt_14","type":"t","data":{"message":null,"conversation":{"id":"c"}}}"#,
            r#"{"id":"evt_15","type":"t","data":{"conversation":{"id":5},"event_id":"e"}}"#,
            r#"[1,2]"#,
            r#"["t","evt_16",true,{"message":{"id":"m"}}]"#,
            r#"{"id":"evt_17","type":"t","data":{"message":["m"],"conversation":{"id":"c"}}}"#,
            r#"{"id":"evt_18","type":"t","data":[["m"],{"event_id":"e"}]}"#,
            r#""text""#,
        ];
        for body in bodies {
            let tree: Value = serde_json::from_str(body).unwrap();
            assert_eq!(
                Summary::read(body.as_bytes()),
                Some(Summary::from_value(&tree)),
                "{body}"
            );
        }
        // The plain ones are read without the tree.
        for body in &bodies[..9] {
            assert!(
                serde_json::from_str::<MapOnly<Plain<'_>>>(body).is_ok(),
                "{body}"
            );
        }
        assert_eq!(Summary::read(b"{not json"), None);
    }

    #[tokio::test]
    async fn signed_deliveries_are_accepted_and_the_rest_refused() {
        use shared::signature::sign_standard_webhook;
        let client = aws_adapters::http::client();
        let body =
            br#"{"id":"evt_1","type":"whatsapp.message.read","data":{"message":{"id":"wamid.1"}}}"#;
        let post = |receiver: &Receiver, secret: &EndpointSecret, signed: &[u8], sent: &[u8]| {
            let now = chrono::Utc::now().timestamp();
            client
                .post(format!("http://{}/hook", receiver.addr()))
                .header("x-webhook-signature", webhook_signature(secret, signed))
                .header("webhook-id", "msg_1")
                .header("webhook-timestamp", now.to_string())
                .header(
                    "webhook-signature",
                    sign_standard_webhook(secret, "msg_1", now, signed),
                )
                .header("x-idempotency-key", "key_1")
                .body(sent.to_vec())
                .send()
        };
        let (receiver, secret) = Receiver::start_local(0.0, 0.0, Duration::ZERO, 1)
            .await
            .unwrap();
        let ok = post(&receiver, &secret, body, body).await.unwrap();
        assert_eq!(ok.status(), 200);
        assert_eq!(ok.text().await.unwrap(), "ok");
        let tampered = post(&receiver, &secret, body, b"{}").await.unwrap();
        assert_eq!(tampered.status(), 401);
        assert_eq!(
            tampered.text().await.unwrap(),
            "X-Webhook-Signature does not match"
        );
        let unsigned = client
            .post(format!("http://{}/other", receiver.addr()))
            .send()
            .await
            .unwrap();
        assert_eq!(unsigned.status(), 401);
        let collected = receiver.collected();
        assert_eq!((collected.deliveries, collected.rejected), (1, 2));
        assert_eq!(collected.by_key["key_1"], 1);
        assert_eq!(collected.items["whatsapp.message.read wamid.1"], 1);

        let (failing, secret) = Receiver::start_local(1.0, 0.0, Duration::ZERO, 1)
            .await
            .unwrap();
        let failed = post(&failing, &secret, body, body).await.unwrap();
        assert_eq!(failed.status(), 500);
        let (stalling, secret) = Receiver::start_local(0.0, 1.0, Duration::from_millis(1), 1)
            .await
            .unwrap();
        let stalled = post(&stalling, &secret, body, body).await.unwrap();
        assert_eq!(stalled.status(), 503);
        assert_eq!(stalling.collected().injected_failures, 1);
        assert_eq!(stalling.collected().deliveries, 0);
    }

    #[test]
    fn the_rng_is_uniform_enough_and_deterministic() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let draws: Vec<f64> = (0..10_000).map(|_| a.next_f64()).collect();
        assert!(draws.iter().all(|d| (0.0..1.0).contains(d)));
        let low = draws.iter().filter(|d| **d < 0.3).count();
        assert!((2_700..3_300).contains(&low), "{low}");
        assert_eq!(draws[0], b.next_f64());
    }
}
