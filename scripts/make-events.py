#!/usr/bin/env python3
"""Writes events/: Lambda events for `sam local invoke` and the handler tests.

Every ingest event is an API Gateway HTTP API (payload 2.0) request whose body is a provider
fixture from shared/fixtures/providers, signed with the documented test secrets below (the same
ones events/env.json configures). Run it again after changing a fixture or a secret:

    python3 scripts/make-events.py
"""
import base64
import urllib.parse
import hashlib
import hmac
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "shared" / "fixtures" / "providers"
EVENTS = ROOT / "events"

META_SECRET = "meta_app_secret_example"
VERIFY_TOKEN = "wagate-verify-token"
WAHA_KEY = "waha_hmac_key_example"
MAX_BODY_BYTES = 65536
TWILIO_TOKEN = "twilio_auth_token_example"
SHARED_TOKEN = "wagate_shared_token_example"
SOURCES = [
    {"id": "meta-main", "provider": "meta", "secrets": [META_SECRET], "verify_token": VERIFY_TOKEN},
    {"id": "waha-main", "provider": "waha", "secrets": [WAHA_KEY]},
    {"id": "twilio-main", "provider": "twilio", "secrets": [TWILIO_TOKEN]},
    {"id": "360dialog-main", "provider": "360dialog", "secrets": [SHARED_TOKEN]},
    {"id": "gupshup-main", "provider": "gupshup", "secrets": [SHARED_TOKEN]},
    {"id": "evolution-main", "provider": "evolution", "secrets": [SHARED_TOKEN]},
]
API_HOST = "abc123defg.execute-api.us-east-1.amazonaws.com"


def meta_sig(body: bytes) -> str:
    return "sha256=" + hmac.new(META_SECRET.encode(), body, hashlib.sha256).hexdigest()


def waha_sig(body: bytes) -> str:
    return hmac.new(WAHA_KEY.encode(), body, hashlib.sha512).hexdigest()


def twilio_sig(url: str, body: bytes) -> str:
    """X-Twilio-Signature: base64 HMAC-SHA1 of the URL and the sorted form parameters."""
    params = sorted(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))
    signed = url + "".join(k + v for k, v in params)
    return base64.b64encode(hmac.new(TWILIO_TOKEN.encode(), signed.encode(), hashlib.sha1).digest()).decode()


def http_event(method, source_id, body=b"", headers=None, query="", base64_body=False, n=0,
               path=None, route=None, path_parameters=None, stage="$default"):
    route = route or (f"{method} /webhooks/{{source_id}}" if method in ("GET", "POST") else "$default")
    path = path or f"/webhooks/{source_id}"
    host = API_HOST
    all_headers = {"host": host, "user-agent": "wagate-events", "x-forwarded-proto": "https"}
    if body:
        all_headers["content-type"] = "application/json"
        all_headers["content-length"] = str(len(body))
    all_headers.update(headers or {})
    event = {
        "version": "2.0",
        "routeKey": route,
        "rawPath": path,
        "rawQueryString": query,
        "headers": all_headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123defg",
            "domainName": host,
            "domainPrefix": "abc123defg",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.10", "userAgent": "wagate-events"},
            "requestId": f"wagate-event-{n:04d}",
            "routeKey": route,
            "stage": stage,
            "time": "21/Nov/2026:12:00:00 +0000",
            "timeEpoch": 1795262400000,
        },
        "pathParameters": path_parameters if path_parameters is not None else {"source_id": source_id},
        "isBase64Encoded": base64_body,
    }
    if query:
        params = {}
        for pair in query.split("&"):
            k, _, v = pair.partition("=")
            params[k] = v
        event["queryStringParameters"] = params
    if body:
        event["body"] = base64.b64encode(body).decode() if base64_body else body.decode("utf-8")
    return event


def function_url_event(method, path, body=b"", headers=None):
    """The same request as a Lambda Function URL delivers it: payload 2.0, route `$default`,
    no path parameters (the function reads the path itself), the URL's own host."""
    event = http_event(method, "", body, headers, path=path, route="$default", path_parameters={})
    host = "p4xq2mzbk7rj3vhe5wt6yc8nda0gsfiu.lambda-url.us-east-1.on.aws"
    event["headers"]["host"] = host
    event["requestContext"]["domainName"] = host
    event["requestContext"]["domainPrefix"] = host.split(".")[0]
    event["requestContext"]["apiId"] = host.split(".")[0]
    del event["pathParameters"]
    return event


ADMIN_KEY = "wagate-admin-key-example"
ADMIN_ENDPOINT_ID = "ep_01JBCQ3ZX0V9K8N7M6P5Q4R301"
ADMIN_TEST_ENDPOINT_ID = "ep_01JBCQ3ZX0V9K8N7M6P5Q4R304"
ADMIN_CONVERSATION_ID = "conv_01JBCQ3ZX0V9K8N7M6P5Q4R305"


def admin_event(method, path, body=None, query="", key=ADMIN_KEY, headers=None):
    """An API Gateway request to the management API (route `ANY /v1/{proxy+}`)."""
    raw = json.dumps(body, separators=(",", ":")).encode() if body is not None else b""
    all_headers = {"x-api-key": key} if key else {}
    all_headers.update(headers or {})
    return http_event(method, "", raw, all_headers, query=query, path=path,
                      route="ANY /v1/{proxy+}", path_parameters={"proxy": path[len("/v1/"):]})


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


EXPECTED = ROOT / "shared" / "fixtures" / "expected"


def inbound_event(fixture_name: str, n: int) -> str:
    """An inbound-queue message body: the reviewed normalized event of a fixture, as ingest
    enqueues it (InboundEvent JSON)."""
    expected = json.loads((EXPECTED / fixture_name).read_text())[0]
    event = {
        "id": f"evt_01JBCQ3ZX0V9K8N7M6P5Q4R3{n:02d}",
        "type": expected["type"],
        "dedup_key": expected["dedup_key"],
        "received_at": "2024-10-28T05:20:02Z",
        "request_id": f"01JBCQ3ZX0V9K8N7M6P5Q4R4{n:02d}",
        "data": expected["data"],
    }
    if expected["occurred_at"]:
        event["occurred_at"] = expected["occurred_at"]
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


def delivery_task(fixture_name: str, n: int, body_json: bool = False) -> str:
    """A delivery-queue message body: the task fan-out queues for endpoint `ep_events`, its body
    a JSON string (`body`) or, with `body_json`, the document itself (`DELIVERY_BODY_FORM=json`)."""
    expected = json.loads((EXPECTED / fixture_name).read_text())[0]
    event_id = f"evt_01JBCQ3ZX0V9K8N7M6P5Q4R3{n:02d}"
    envelope = {"id": event_id, "type": expected["type"], "created_at": "2024-10-28T05:20:02Z",
                "batch": False, "data": expected["data"]}
    task = {
        "delivery_id": f"msg_{event_id[4:]}_ep_events",
        "endpoint_id": "ep_events",
        "event_type": expected["type"],
        "batch": False,
        "event_ids": [event_id],
        "body": json.dumps(envelope, separators=(",", ":"), ensure_ascii=False),
        "created_at": "2024-10-28T05:20:02Z",
    }
    if body_json:
        del task["body"]
        task = {k: v for k, v in task.items() if k != "created_at"} | {
            "body_json": envelope, "created_at": task["created_at"]}
    return json.dumps(task, separators=(",", ":"), ensure_ascii=False)


def sqs_event(bodies, queue="wagate-InboundQueue"):
    records = []
    for n, body in enumerate(bodies):
        records.append({
            "messageId": f"4d7c{n:04d}-0b3a-4e5e-9c1d-1f2e3d4c5b6a",
            "receiptHandle": f"AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a{n:04d}",
            "body": body,
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1730092802000",
                           "SenderId": "AIDAIENQZJOLO23YVJ4VO", "ApproximateFirstReceiveTimestamp": "1730092802100"},
            "messageAttributes": {},
            "md5OfBody": hashlib.md5(body.encode()).hexdigest(),
            "eventSource": "aws:sqs",
            "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:{queue}",
            "awsRegion": "us-east-1",
        })
    return {"Records": records}


SCHEDULE_EVENT = {
    "version": "0",
    "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": "2026-11-21T12:00:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:events:us-east-1:123456789012:rule/wagate-SweepSchedule"],
    "detail": {},
}


def main():
    EVENTS.mkdir(exist_ok=True)
    for old in [p for p in EVENTS.glob("*.json") if p.name != "env.json"]:
        old.unlink()
    cases = {}
    for name in ["meta-text.json", "meta-image.json", "meta-status-delivered.json", "meta-status-failed.json",
                 "meta-multi-entry-batch.json", "meta-unicode-escapes.json", "meta-template-status-update.json",
                 "meta-handover-request-thread-control.json"]:
        body = fixture(name)
        cases[f"ingest-{name}"] = http_event("POST", "meta-main", body, {"x-hub-signature-256": meta_sig(body)})
    for name in ["waha-message.json", "waha-message-ack.json", "waha-session-status.json"]:
        body = fixture(name)
        cases[f"ingest-{name}"] = http_event("POST", "waha-main", body, {
            "x-webhook-hmac": waha_sig(body), "x-webhook-hmac-algorithm": "sha512",
            "x-webhook-request-id": "req-" + name, "x-webhook-timestamp": "1730092801123"})
    body = fixture("meta-text.json")
    cases["ingest-meta-base64.json"] = http_event("POST", "meta-main", body, {"x-hub-signature-256": meta_sig(body)}, base64_body=True)
    cases["ingest-meta-bad-signature.json"] = http_event("POST", "meta-main", body, {"x-hub-signature-256": meta_sig(body + b" ")})
    cases["ingest-meta-missing-signature.json"] = http_event("POST", "meta-main", body)
    waha_body = fixture("waha-message.json")
    cases["ingest-waha-bad-signature.json"] = http_event("POST", "waha-main", waha_body, {
        "x-webhook-hmac": "0" * 128, "x-webhook-hmac-algorithm": "sha512"})
    cases["ingest-unknown-source.json"] = http_event("POST", "nobody", body, {"x-hub-signature-256": meta_sig(body)})
    not_json = b"<xml>not json</xml>"
    cases["ingest-meta-not-json.json"] = http_event("POST", "meta-main", not_json, {"x-hub-signature-256": meta_sig(not_json)})
    padding = {"object": "whatsapp_business_account", "entry": [], "padding": "x" * MAX_BODY_BYTES}
    big = json.dumps(padding, separators=(",", ":")).encode()
    cases["ingest-oversized.json"] = http_event("POST", "meta-main", big, {"x-hub-signature-256": meta_sig(big)})
    cases["ingest-function-url-meta-text.json"] = function_url_event(
        "POST", "/webhooks/meta-main", body, {"x-hub-signature-256": meta_sig(body)})
    cases["ingest-function-url-other-path.json"] = function_url_event(
        "POST", "/hooks/meta-main", body, {"x-hub-signature-256": meta_sig(body)})
    # Twilio posts form bodies, which API Gateway hands over base64-encoded; the signature covers
    # the URL Twilio called, rebuilt from the host and path (no public_url configured).
    for name in ["twilio-inbound.form.txt", "twilio-status-read.form.txt"]:
        body = fixture(name)
        url = f"https://{API_HOST}/webhooks/twilio-main"
        cases[f"ingest-{name.replace('.form.txt', '.json')}"] = http_event("POST", "twilio-main", body, {
            "content-type": "application/x-www-form-urlencoded",
            "x-twilio-signature": twilio_sig(url, body)}, base64_body=True)
    # A named stage: the path API Gateway hands over starts with it, and so did Twilio's URL.
    body = fixture("twilio-inbound.form.txt")
    url = f"https://{API_HOST}/prod/webhooks/twilio-main"
    cases["ingest-twilio-stage-path.json"] = http_event("POST", "twilio-main", body, {
        "content-type": "application/x-www-form-urlencoded",
        "x-twilio-signature": twilio_sig(url, body)}, base64_body=True, path="/prod/webhooks/twilio-main",
        stage="prod")
    cases["ingest-twilio-other-url.json"] = http_event("POST", "twilio-main", body, {
        "content-type": "application/x-www-form-urlencoded",
        "x-twilio-signature": twilio_sig(f"https://{API_HOST}/webhooks/twilio-other", body)}, base64_body=True)
    body = fixture("meta-text.json")
    cases["ingest-360dialog-text.json"] = http_event("POST", "360dialog-main", body, {"x-wagate-token": SHARED_TOKEN})
    cases["ingest-360dialog-wrong-token.json"] = http_event("POST", "360dialog-main", body, {"x-wagate-token": "wrong"})
    cases["ingest-meta-handshake.json"] = http_event(
        "GET", "meta-main", query=f"hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1158201444")
    cases["ingest-meta-handshake-bad-token.json"] = http_event(
        "GET", "meta-main", query="hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1158201444")
    endpoint = f"/v1/endpoints/{ADMIN_ENDPOINT_ID}"
    cases["admin-list-endpoints.json"] = admin_event("GET", "/v1/endpoints", query="limit=20")
    cases["admin-create-endpoint.json"] = admin_event("POST", "/v1/endpoints", {
        "url": "https://crm.example.com/whatsapp", "event_types": ["whatsapp.message.*", "whatsapp.conversation.*"],
        "batching": True, "headers": {"X-API-Key": "receiver-key"}, "description": "CRM"},
        headers={"idempotency-key": "create-crm-endpoint-1"})
    cases["admin-create-endpoint-invalid.json"] = admin_event("POST", "/v1/endpoints", {"url": "http://10.0.0.8/hook"})
    cases["admin-get-endpoint.json"] = admin_event("GET", endpoint)
    cases["admin-update-endpoint.json"] = admin_event("PATCH", endpoint, {"event_types": ["*"], "description": "all events"})
    cases["admin-rotate-secret.json"] = admin_event("POST", endpoint + "/rotate-secret", {"grace_seconds": 3600})
    cases["admin-disable-endpoint.json"] = admin_event("POST", endpoint + "/disable")
    cases["admin-list-deliveries.json"] = admin_event("GET", "/v1/deliveries",
                                                      query=f"endpoint_id={ADMIN_ENDPOINT_ID}&status=dead_lettered&limit=50")
    cases["admin-recover-endpoint.json"] = admin_event("POST", endpoint + "/recover", query="since=2026-11-20T00:00:00Z")
    cases["admin-redrive.json"] = admin_event("POST", "/v1/deliveries/redrive", {"endpoint_id": ADMIN_ENDPOINT_ID})
    cases["admin-unauthorized.json"] = admin_event("GET", "/v1/endpoints", key=None)
    cases["admin-list-audit.json"] = admin_event("GET", "/v1/audit", query=f"target={ADMIN_ENDPOINT_ID}&limit=20")
    delivery = f"/v1/deliveries/msg_01JBCQ3ZX0V9K8N7M6P5Q4R302_{ADMIN_ENDPOINT_ID}"
    cases["admin-get-delivery.json"] = admin_event("GET", delivery)
    cases["admin-retry-delivery.json"] = admin_event("POST", delivery + "/retry", headers={"idempotency-key": "retry-1"})
    cases["admin-list-conversations.json"] = admin_event("GET", "/v1/conversations", query="status=active&source_id=meta-main")
    cases["admin-close-unknown-conversation.json"] = admin_event(
        "POST", "/v1/conversations/conv_01JBCQ3ZX0V9K8N7M6P5Q4R303/close", {"reason": "agent"})
    cases["admin-enable-endpoint.json"] = admin_event("POST", endpoint + "/enable")
    cases["admin-delete-endpoint.json"] = admin_event("DELETE", endpoint)
    cases["admin-test-endpoint.json"] = admin_event(
        "POST", f"/v1/endpoints/{ADMIN_TEST_ENDPOINT_ID}/test", {"event_type": "whatsapp.message.received"},
        headers={"idempotency-key": "test-send-1"})
    conversation = f"/v1/conversations/{ADMIN_CONVERSATION_ID}"
    cases["admin-get-conversation.json"] = admin_event("GET", conversation)
    cases["admin-transfer-conversation.json"] = admin_event("POST", conversation + "/transfer", {
        "to_team": "billing", "to_agent": "agent-ana", "notes": "Asked about invoice INV-2291"})
    cases["admin-set-labels.json"] = admin_event("PUT", conversation + "/labels", {"labels": ["vip", "billing"]})
    cases["admin-set-notes.json"] = admin_event("PUT", conversation + "/notes", {
        "notes": [{"text": "Prefers replies in Spanish", "author": "agent-ana"}]})
    cases["admin-set-automation-notes.json"] = admin_event("PUT", conversation + "/automation-notes", {
        "notes": [{"text": "Intent: billing question (0.91)", "author": "nlu-router"}]})
    cases["admin-handoff-conversation.json"] = admin_event("POST", conversation + "/handoff", {
        "reason": "Customer asked for a person", "requested_by": "faq-bot", "team_id": "billing",
        "notes": "Refund for order #1042"}, headers={"idempotency-key": "handoff-1"})
    cases["admin-close-conversation.json"] = admin_event("POST", conversation + "/close", {"reason": "manual"},
                                                         headers={"idempotency-key": "close-1"})
    cases["admin-create-campaign.json"] = admin_event("POST", "/v1/campaigns", {
        "name": "spring sale", "source_id": "meta-main", "complete_after_hours": 48,
        "metadata": {"owner": "marketing"}}, headers={"idempotency-key": "campaign-1"})
    cases["admin-list-campaigns.json"] = admin_event("GET", "/v1/campaigns", query="status=open")
    cases["admin-list-sources.json"] = admin_event("GET", "/v1/sources")
    # A captured Meta request, signed as Meta signs it; and the same body after a proxy
    # pretty-printed it (the signature no longer matches the bytes).
    body = fixture("meta-text.json")
    head = f"POST /webhooks/meta-main HTTP/1.1\r\nHost: {API_HOST}\r\nContent-Type: application/json\r\n" \
        f"X-Hub-Signature-256: {meta_sig(body)}\r\n\r\n"
    cases["admin-diagnose-source.json"] = admin_event(
        "POST", "/v1/sources/meta-main/diagnose", {"raw": head + body.decode("utf-8")})
    pretty = json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    cases["admin-diagnose-reserialized.json"] = admin_event(
        "POST", "/v1/sources/meta-main/diagnose", {"raw": head + pretty})
    cases["admin-stats.json"] = admin_event("GET", "/v1/stats", query="window=day")
    cases["admin-console.json"] = http_event("GET", "", path="/console/", route="GET /console/{proxy+}",
                                             path_parameters={"proxy": ""})

    cases["admin-send-message.json"] = admin_event("POST", "/v1/messages", {
        "source_id": "meta-main", "to": "+15550001111", "type": "text",
        "text": {"body": "Your order 1042 shipped"}, "metadata": {"order": 1042}},
        headers={"idempotency-key": "send-1"})
    for name, event in sorted(cases.items()):
        # Stable per file, so adding a fixture does not renumber the others.
        event["requestContext"]["requestId"] = "wagate-event-" + hashlib.sha256(name.encode()).hexdigest()[:12]
        (EVENTS / name).write_text(json.dumps(event, indent=2, ensure_ascii=False) + "\n")
    track = {
        "track-sqs-batch.json": sqs_event([inbound_event(f, n) for n, f in enumerate(
            ["meta-text.json", "meta-status-delivered.json", "waha-message-ack.json", "meta-template-status-update.json"])]),
        "track-sqs-poison.json": sqs_event([inbound_event("meta-text.json", 10), "not an inbound event"]),
    }
    for name, event in track.items():
        (EVENTS / name).write_text(json.dumps(event, indent=2, ensure_ascii=False) + "\n")
    (EVENTS / "fanout-sqs-batch.json").write_text(json.dumps(sqs_event(
        [inbound_event(f, 20 + n) for n, f in enumerate(["meta-template-status-update.json", "waha-session-status.json"])],
        queue="wagate-OutboundQueue"), indent=2, ensure_ascii=False) + "\n")
    # A campaign's completion as the sweep queues it (the sweep's own event: no provider fixture).
    campaign_completed = {
        "id": "evt_01JBCQ3ZX0V9K8N7M6P5Q4R350", "type": "whatsapp.campaign.completed",
        "dedup_key": "campaign:cmp_01JBCQ3ZX0V9K8N7M6P5Q4R360:completed",
        "received_at": "2024-10-29T05:20:02Z", "occurred_at": "2024-10-29T05:20:02Z",
        "data": {"source": {"id": "meta-main", "provider": "meta"}, "conversation": None,
                 "campaign": {"id": "cmp_01JBCQ3ZX0V9K8N7M6P5Q4R360", "name": "spring sale",
                              "source_id": "meta-main", "status": "completed",
                              "created_at": "2024-10-28T05:20:02Z", "complete_after": "2024-10-30T05:20:02Z",
                              "completed_at": "2024-10-29T05:20:02Z", "completion": "all_final",
                              "totals": {"total": 120, "sent": 118, "delivered": 117, "read": 96, "failed": 2},
                              "metadata": {"owner": "marketing"}}},
    }
    (EVENTS / "fanout-sqs-campaign-completed.json").write_text(json.dumps(sqs_event(
        [json.dumps(campaign_completed, separators=(",", ":"))], queue="wagate-OutboundQueue"),
        indent=2, ensure_ascii=False) + "\n")
    (EVENTS / "deliver-sqs-batch.json").write_text(json.dumps(sqs_event(
        [delivery_task("meta-template-status-update.json", 30),
         delivery_task("meta-template-status-update.json", 31, body_json=True)],
        queue="wagate-DeliveryQueue"), indent=2, ensure_ascii=False) + "\n")
    received = inbound_event("meta-text.json", 40)
    timer = json.dumps({"flush": "event-" + json.loads(received)["id"]}, separators=(",", ":"))
    (EVENTS / "buffer-sqs-batch.json").write_text(json.dumps(sqs_event(
        [received, timer], queue="wagate-BufferQueue"), indent=2, ensure_ascii=False) + "\n")
    # A message naming a Meta media file, as track hands it to the media function.
    (EVENTS / "media-sqs-batch.json").write_text(json.dumps(sqs_event(
        [inbound_event("meta-image.json", 50)], queue="wagate-MediaQueue"), indent=2, ensure_ascii=False) + "\n")
    (EVENTS / "sweep-schedule.json").write_text(json.dumps(SCHEDULE_EVENT, indent=2) + "\n")
    env = {"IngestFunction": {
        "WAGATE_SOURCES": json.dumps(SOURCES, separators=(",", ":")),
        "TABLE_NAME": "wagate-local",
        "INBOUND_QUEUE_URL": "http://127.0.0.1:5000/123456789012/wagate-inbound",
        "MAX_BODY_BYTES": str(MAX_BODY_BYTES),
    }, "TrackFunction": {
        "TABLE_NAME": "wagate-local",
        "BUFFER_QUEUE_URL": "http://127.0.0.1:5000/123456789012/wagate-buffer",
        "OUTBOUND_QUEUE_URL": "http://127.0.0.1:5000/123456789012/wagate-outbound",
    }, "FanoutFunction": {
        "TABLE_NAME": "wagate-local",
        "DELIVERY_QUEUE_URL": "http://127.0.0.1:5000/123456789012/wagate-delivery",
    }, "BufferFunction": {
        "TABLE_NAME": "wagate-local",
        "BUFFER_QUEUE_URL": "http://127.0.0.1:5000/123456789012/wagate-buffer",
        "DELIVERY_QUEUE_URL": "http://127.0.0.1:5000/123456789012/wagate-delivery",
    }, "DeliverFunction": {
        "TABLE_NAME": "wagate-local",
        "DELIVERY_QUEUE_URL": "http://127.0.0.1:5000/123456789012/wagate-delivery",
        "DELIVERY_DLQ_URL": "http://127.0.0.1:5000/123456789012/wagate-delivery-dlq",
    }, "AdminFunction": {
        "TABLE_NAME": "wagate-local",
        "DELIVERY_QUEUE_URL": "http://127.0.0.1:5000/123456789012/wagate-delivery",
        "DELIVERY_DLQ_URL": "http://127.0.0.1:5000/123456789012/wagate-delivery-dlq",
        "OUTBOUND_QUEUE_URL": "http://127.0.0.1:5000/123456789012/wagate-outbound",
        "ADMIN_API_KEYS": ADMIN_KEY,
        # Sources without send settings: admin-send-message.json answers 409 not_configured
        # until the sources name an access token (README, "Sending through a source").
        "WAGATE_SOURCES": json.dumps(SOURCES, separators=(",", ":")),
    }, "MediaFunction": {
        "TABLE_NAME": "wagate-local",
        "MEDIA_BUCKET": "wagate-media",
        "BUFFER_QUEUE_URL": "http://127.0.0.1:5000/123456789012/wagate-buffer",
        # Sources without an access token: the image goes on with media.status failed
        # (not_configured) until the sources name one (README, "Media files").
        "WAGATE_SOURCES": json.dumps(SOURCES, separators=(",", ":")),
    }, "SweepFunction": {
        "TABLE_NAME": "wagate-local",
        "OUTBOUND_QUEUE_URL": "http://127.0.0.1:5000/123456789012/wagate-outbound",
    }}
    (EVENTS / "env.json").write_text(json.dumps(env, indent=2) + "\n")
    print(f"wrote {len(cases)} events and env.json to {EVENTS}")


if __name__ == "__main__":
    main()
