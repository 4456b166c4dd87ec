#!/usr/bin/env bash
# Seeds fuzz/corpus/<target>/ for every fuzz target from the repository's own inputs (provider
# fixtures, events/, the README's configuration example) and a few handwritten inputs. Adds to
# what is there (libFuzzer's finds stay); `rm -rf corpus` first for a fresh start. corpus/ is
# git-ignored. Needs python3 (to read the JSON of events/ and the README).
set -euo pipefail
cd "$(dirname "$0")"
root=..
fixtures=$root/shared/fixtures/providers

targets=(meta_normalize waha_normalize twilio_normalize gupshup_normalize evolution_normalize signatures admin_api queue_record retry_after sources_config diagnose)
for t in "${targets[@]}"; do mkdir -p "corpus/$t"; done

# seed TARGET NAME: the standard input becomes corpus/TARGET/NAME.
seed() { cat >"corpus/$1/$2"; }

# Provider bodies: the fixtures, and every webhook body in events/ (signed, some base64).
cp "$fixtures"/meta-*.json corpus/meta_normalize/
cp "$fixtures"/waha-*.json corpus/waha_normalize/
cp "$fixtures"/twilio-* corpus/twilio_normalize/
cp "$fixtures"/gupshup-*.json corpus/gupshup_normalize/
cp "$fixtures"/evolution-*.json corpus/evolution_normalize/
cp "$fixtures"/360dialog-*.json corpus/meta_normalize/ 2>/dev/null || true
python3 - "$root/events" <<'EOF'
import base64, glob, json, os, sys
for path in sorted(glob.glob(os.path.join(sys.argv[1], "ingest-*.json"))):
    event = json.load(open(path))
    body = event.get("body") or ""
    raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
    name = os.path.basename(path)
    target = "meta_normalize"
    for provider in ("waha", "twilio", "gupshup", "evolution"):
        if f"-{provider}-" in name:
            target = f"{provider}_normalize"
    open(os.path.join("corpus", target, "event-" + name), "wb").write(raw)
EOF

# Signatures: a body alone, and bodies with headers after 0xFF separators
# (body, secret, Meta header, WAHA header, WAHA algorithm, query, chat id, WAHA message id).
cp "$fixtures"/meta-text.json "$fixtures"/waha-message.json corpus/signatures/
printf '{"a":1}\xffmeta_app_secret_example\xffsha256=00\xffabcd\xffsha512\xffhub.mode=subscribe&hub.verify_token=meta_app_secret_example&hub.challenge=42\xff16505551234@c.us\xfftrue_16505551234@c.us_3EB0C767D26A1D2F5A1E' \
  | seed signatures headers
printf 'caf\xc3\xa9 \xe2\x82\xac\xffk\xff\xff\xff\xff\xff120363020000000000@g.us\xfffalse_120363020000000000@g.us_ABC_16505551234@c.us' \
  | seed signatures group-ids

# Admin API: every events/admin-*.json as a request (fuzz/src/admin.rs: method and target,
# headers, blank line, body), then handwritten sequences separated by 0xFF.
python3 - "$root/events" <<'EOF'
import glob, json, os, sys
for path in sorted(glob.glob(os.path.join(sys.argv[1], "admin-*.json"))):
    event = json.load(open(path))
    headers = event.get("headers") or {}
    target = event["rawPath"] + ("?" + event["rawQueryString"] if event.get("rawQueryString") else "")
    lines = [event["requestContext"]["http"]["method"] + " " + target]
    # No X-API-Key line means the valid key to the target; an unauthenticated call says so.
    lines.append("X-API-Key: " + headers.get("x-api-key", ""))
    if "idempotency-key" in headers:
        lines.append("Idempotency-Key: " + headers["idempotency-key"])
    request = "\n".join(lines) + "\n\n" + (event.get("body") or "")
    open(os.path.join("corpus", "admin_api", os.path.basename(path)), "w").write(request)
EOF
{
  printf 'POST /v1/endpoints\nIdempotency-Key: k1\n\n{"url":"https://hooks.example.com/wa","event_types":["whatsapp.message.*"],"headers":{"X-API-Key":"r"},"description":"crm"}'
  printf '\xffGET /v1/endpoints/{ep}\n\n'
  printf '\xffPATCH /v1/endpoints/{ep}\n\n{"description":null,"enabled":false,"batching":false}'
  printf '\xffPOST /v1/endpoints/{ep}/rotate-secret\n\n{"grace_seconds":0}'
  printf '\xffPOST /v1/endpoints\nIdempotency-Key: k1\n\n{"url":"https://hooks.example.com/wa","event_types":["whatsapp.message.*"],"headers":{"X-API-Key":"r"},"description":"crm"}'
  printf '\xffGET /v1/endpoints?limit=1\n\n'
  printf '\xffDELETE /v1/endpoints/{ep}\n\n'
  printf '\xffGET /v1/audit?target={ep}&limit=2\n\n'
} | seed admin_api seq-endpoint-lifecycle
{
  printf 'POST /v1/endpoints/{ep}/test\nReceiver-Status: 410\n\n{"event_type":"whatsapp.message.read"}'
  printf '\xffPOST /v1/endpoints/{ep}/test\n\n'
  printf '\xffPOST /v1/endpoints/{ep}/enable\n\n'
  printf '\xffPOST /v1/endpoints/{ep}/test\nReceiver-Status: 503\nReceiver-Retry-After: 120\n\n{}'
  printf '\xffGET /v1/deliveries?endpoint_id={ep}&status=delivered&limit=5\n\n'
} | seed admin_api seq-test-deliveries
{
  printf 'GET /v1/deliveries/{dlv}\n\n'
  printf '\xffPOST /v1/deliveries/{dlv}/retry\nIdempotency-Key: r1\n\n'
  printf '\xffPOST /v1/endpoints/{ep}/recover?since=2026-11-20T00:00:00Z\n\n'
  printf '\xffPOST /v1/deliveries/redrive\n\n{"max":5.0}'
  printf '\xffGET /v1/deliveries?cursor=MjAyNi0xMS0yMVQxMjowMDowMC4wMDBaI3g&since=2026-11-01T00:00:00%%2B01:00&until=2027-01-01T00:00:00Z&event_type=whatsapp.message.read\n\n'
} | seed admin_api seq-deliveries
{
  printf 'PUT /v1/conversations/{conv}/labels\n\n{"labels":[" vip ","vip","\\u00e9t\\u00e9"]}'
  printf '\xffPUT /v1/conversations/{conv}/notes\n\n{"notes":[{"text":"call back","author":"ana"},{"text":"x"}]}'
  printf '\xffPOST /v1/conversations/{conv}/transfer\n\n{"to_team":"billing","notes":"n"}'
  printf '\xffPOST /v1/conversations/{conv}/close\nIdempotency-Key: c1\n\n{"reason":"agent"}'
  printf '\xffPOST /v1/conversations/{conv}/close\n\n'
  printf '\xffGET /v1/conversations?status=ended&source_id=meta-main\n\n'
  printf '\xffGET /v1/audit?action=close\n\n'
} | seed admin_api seq-conversations
printf 'POST /v1/endpoints/{ep}/disable\n\n{"not_a_field":1}\xffPATCH /v1/endpoints/{ep}\n\n{"headers":{"x-api-key":"********","X-Extra":"v"}}\xffGET /v1/audit?limit=5\n\n' \
  | seed admin_api audit-trail
printf 'GET /prod/v1/endpoints/\n\n\xffPUT /v1/endpoints\n\n\xffGET /v1/deliveries/redrive\n\n\xffGET /v1/nothing\n\n\xffGET /v1\n\n\xffPOST /v1/endpoints\nX-API-Key: wagate-admin-key-old\n\n[1,2]\xffPOST /v1/endpoints\n\n{"url":"https://x.example.com","bogus":1}\xffPOST /v1/endpoints\n\n{"url": 7}\xffPOST /v1/endpoints\n\n{"url":"https://x.ex' \
  | seed admin_api routing-and-refusals

# Queue records: every SQS record body in events/ (track, fanout, buffer, deliver), the expected
# normalized events of the provider fixtures, and claim-checks with and without their blob.
python3 - "$root/events" "$root/shared/fixtures/expected" <<'EOF'
import glob, json, os, sys
out = os.path.join("corpus", "queue_record")
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*-sqs-*.json"))):
    for i, record in enumerate(json.load(open(path)).get("Records", [])):
        name = "%s-%d" % (os.path.basename(path)[:-5], i)
        open(os.path.join(out, name), "w").write(record["body"])
for path in sorted(glob.glob(os.path.join(sys.argv[2], "*.json")))[:40]:
    events = json.load(open(path))
    for i, event in enumerate(events if isinstance(events, list) else [events]):
        name = "expected-%s-%d" % (os.path.basename(path)[:-5], i)
        open(os.path.join(out, name), "w").write(json.dumps(event, separators=(",", ":")))
EOF
first_record=$(ls corpus/queue_record/track-sqs-batch-0 2>/dev/null || ls corpus/queue_record/* | head -1)
{ printf '{"claim_check":"evt#evt_01JBCQ3ZX0V9K8N7M6P5Q4R340"}\xff'; cat "$first_record"; } | seed queue_record claim-check
printf '{"claim_check":"task#gone"}' | seed queue_record claim-check-missing
printf '{"claim_check":"k","extra":1}\xff[[[[[[[[[[{"a":[]}]]]]]]]]]]' | seed queue_record claim-check-nested-blob
printf '{"delivery_id":"msg_1_ep_1","endpoint_id":"ep_1","event_type":"whatsapp.message.read","batch":false,"event_ids":[],"body":"{\\"x\\":\\"\\uffff\\"}","created_at":"2026-11-21T12:00:00Z"}' \
  | seed queue_record delivery-task

# Retry-After: delta-seconds, the three HTTP date forms, refusals; some with clock bytes.
i=0
for v in '120' '0' ' 5 ' '+5' '-1' '18446744073709551615' '18446744073709551616' '1.5' 'soon' '' \
  'Sat, 21 Nov 2026 12:05:00 GMT' 'Wed, 21 Oct 2015 07:28:00 GMT' 'Sat, 21 Nov 2026 12:05:00 +0100' \
  'Sunday, 06-Nov-94 08:49:37 GMT' 'Sun Nov  6 08:49:37 1994' 'Fri, 31 Dec 9999 23:59:59 GMT'; do
  printf '%s' "$v" | seed retry_after "value-$i"
  i=$((i + 1))
done
printf 'Sat, 21 Nov 2026 12:05:00 GMT\xff\x00\x4b\x01\x6b\x00\x00\x00\x00\x00\xca\x9a\x3b\x78\x00\x00\x00\x00\x00\x00\x00\x02\x03\x80' \
  | seed retry_after date-with-clock

# Sources: the README's example, events/env.json, and handwritten edge cases.
python3 - "$root/README.md" "$root/events/env.json" <<'EOF'
import json, os, re, sys
out = os.path.join("corpus", "sources_config")
readme = open(sys.argv[1]).read()
for i, block in enumerate(re.findall(r"```json\n(.*?)```", readme, re.S)):
    if '"provider"' in block:
        open(os.path.join(out, "readme-%d" % i), "w").write(block)
for function, env in json.load(open(sys.argv[2])).items():
    if "WAGATE_SOURCES" in env:
        open(os.path.join(out, "env-" + function), "w").write(env["WAGATE_SOURCES"])
EOF
printf '[{"id":"a","provider":"meta","secrets":" k1 , k2 ,","verify_tokens":["t1"," t2 "]},{"id":"b_2-X","provider":"waha","secrets":["s,t"]}]' \
  | seed sources_config joined-and-lists
printf '[{"id":"a","provider":"meta","secrets":"x"},{"id":"a","provider":"waha","secrets":"y"}]' | seed sources_config duplicate
printf '[{"id":"a/b","provider":"meta","secrets":"x"}]' | seed sources_config bad-id
printf '[{"id":"a","provider":"meta","secrets":" , "}]' | seed sources_config no-secret
printf '[{"id":"a","provider":"twilio","secrets":"x","verify_token":"t"}]' | seed sources_config unknown-provider
printf '[]' | seed sources_config empty

# Diagnosis: provider index (Provider::ALL: 0 meta, 1 waha, 2 twilio, 3 360dialog, 4 gupshup,
# 5 evolution), 0xFF, secrets (comma-separated), 0xFF, a captured request, 0xFF, url, 0xFF,
# public_url; signed here, some then changed the way hops change them.
python3 - <<'EOF'
import base64, hashlib, hmac, json
def seed(name, provider, secrets, raw, url="", public=""):
    data = bytes([provider]) + b"\xff" + secrets.encode() + b"\xff" + raw.encode() + b"\xff" + url.encode() + b"\xff" + public.encode()
    open("corpus/diagnose/" + name, "wb").write(data)
body = '{"object":"whatsapp_business_account","entry":[{"id":"1","text":"Ol\\u00e1","link":"https:\\/\\/x.example\\/a"}]}'
sig = "sha256=" + hmac.new(b"meta-secret-1", body.encode(), hashlib.sha256).hexdigest()
head = "POST /webhooks/fuzz-source HTTP/1.1\r\nHost: gw.example.com\r\nX-Hub-Signature-256: " + sig + "\r\n\r\n"
seed("meta-verified", 0, "old-secret,meta-secret-1", head + body)
seed("meta-pretty", 0, "meta-secret-1", head + json.dumps(json.loads(body), indent=2, ensure_ascii=False))
seed("meta-decoded", 0, "meta-secret-1", head + body.replace("\\u00e1", "\u00e1"))
sha1 = "sha1=" + hmac.new(b"meta-secret-1", body.encode(), hashlib.sha1).hexdigest()
seed("meta-sha1", 0, "meta-secret-1", "X-Hub-Signature: " + sha1 + "\n\n" + body)
waha = hmac.new(b"waha-key-1", body.encode(), hashlib.sha512).hexdigest()
seed("waha", 1, "waha-key-1", "X-Webhook-Hmac: " + waha + "\nX-Webhook-Hmac-Algorithm: sha512\n\n" + body)
form = "Body=hi&From=whatsapp%3A%2B15550001111&MessageSid=SM1"
url = "https://gw.example.com/prod/webhooks/fuzz-source"
params = sorted((k, v.replace("%3A", ":").replace("%2B", "+")) for k, v in (p.split("=") for p in form.split("&")))
signed = url + "".join(k + v for k, v in params)
tw = base64.b64encode(hmac.new(b"twilio-token-1", signed.encode(), hashlib.sha1).digest()).decode()
seed("twilio-url", 2, "twilio-token-1", "POST /webhooks/fuzz-source HTTP/1.1\nHost: internal:3000\nX-Twilio-Signature: " + tw + "\n\n" + form, url)
seed("twilio-public", 2, "twilio-token-1", "POST /webhooks/fuzz-source HTTP/1.1\nX-Twilio-Signature: " + tw + "\n\n" + form, "", url)
seed("gupshup-query", 4, "token-one,token-two", "POST /webhooks/fuzz-source?token=token-two HTTP/1.1\nAuthorization: Bearer token-one\n\n{}")
seed("evolution-apikey", 5, "instance-key", 'Content-Type: application/json\n\n{"event":"messages.upsert","apikey":"instance-key"}')
EOF

for t in "${targets[@]}"; do printf '%-16s %4d inputs\n' "$t" "$(ls "corpus/$t" | wc -l)"; done
