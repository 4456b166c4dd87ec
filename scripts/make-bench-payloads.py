#!/usr/bin/env python3
"""Writes the benchmark payloads to bench/payloads/ (deterministic; the criterion benches and the
side-by-side scripts read the same files):

- meta-text-2k.json: one Meta text message, padded to 2 KiB with a realistic long body;
- meta-status-65k.json: one Meta change with as many delivery statuses as fit in 65 KiB
  (Meta batches statuses of a broadcast into one webhook), with its `contacts` entry;
- waha-message.json: the WAHA `message` event of the shared fixtures, unchanged.
"""

import copy
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "shared" / "fixtures" / "providers"
OUT = ROOT / "bench" / "payloads"


def dump(value) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


# Meta's business-scoped user id, which current webhooks carry next to `wa_id` (and which
# pywa 4.x requires).
USER_ID = "US.13491208655302741918"


def meta_text_2k() -> bytes:
    payload = json.loads((FIXTURES / "meta-text.json").read_text())
    value = payload["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["user_id"] = USER_ID
    message = value["messages"][0]
    sentence = "Hi, I need help with order #1042: the parcel arrived damaged and two items are missing. "
    body = ""
    while len(dump(payload)) < 2048:
        body += sentence[len(body) % len(sentence)]
        message["text"]["body"] = body
    return dump(payload)


def meta_status_65k() -> bytes:
    payload = json.loads((FIXTURES / "meta-status-delivered.json").read_text())
    value = payload["entry"][0]["changes"][0]["value"]
    template = value["statuses"][0]
    value["contacts"][0]["user_id"] = USER_ID
    statuses = []
    n = 0
    while True:
        status = copy.deepcopy(template)
        status["id"] = f"wamid.HBgLMTU1NTAwMDExMTEVAgASGBQzRUIwQzc2N0QyNkExRDJGNUExRQ{n:06d}A="
        status["recipient_id"] = f"1555{n:07d}"
        status["timestamp"] = str(1730092902 + n)
        status["conversation"]["id"] = f"{n:032x}"
        statuses.append(status)
        value["statuses"] = statuses
        if len(dump(payload)) > 65 * 1024:
            statuses.pop()
            value["statuses"] = statuses
            return dump(payload)
        n += 1


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    files = {
        "meta-text-2k.json": meta_text_2k(),
        "meta-status-65k.json": meta_status_65k(),
        "waha-message.json": (FIXTURES / "waha-message.json").read_bytes(),
    }
    for name, data in files.items():
        (OUT / name).write_bytes(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
