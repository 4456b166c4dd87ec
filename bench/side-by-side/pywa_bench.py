"""pywa (PyPI) verifying and parsing the same webhooks in-process, no server: the signature check
(`webhook_update_validator`) and the update handler (`webhook_update_handler`, which builds the
typed `Message` / `MessageStatus` and calls the registered handlers). Mean of a timed loop, best
of 5 rounds, one JSON line per payload. Run through run.sh."""

import hashlib
import hmac
import json
import logging
import pathlib
import sys
import time

from pywa import WhatsApp, handlers

SECRET = "bench-app-secret-0123456789abcdef"
logging.getLogger("pywa").setLevel(logging.CRITICAL)


def main():
    for path in sys.argv[1:]:
        body = pathlib.Path(path).read_bytes()
        name = pathlib.Path(path).stem
        header = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        # Duplicate skipping off: the same body is handled over and over on purpose.
        wa = WhatsApp(app_secret=SECRET, skip_duplicate_updates=False)
        parsed = {"n": 0, "last": None}

        def keep(_client, update):
            parsed["n"] += 1
            parsed["last"] = update

        wa.add_handlers(handlers.MessageHandler(keep), handlers.MessageStatusHandler(keep))

        def handle():
            if wa.webhook_update_validator(body, header) is not None:
                raise SystemExit("valid signature refused")
            wa.webhook_update_handler(body)

        if wa.webhook_update_validator(body, "sha256=" + "0" * 64) is None:
            raise SystemExit("wrong signature accepted")
        handle()
        if parsed["n"] != 1:
            raise SystemExit(f"{name}: pywa did not parse the update (handlers called {parsed['n']} times)")
        items = parsed["n"]
        started = time.perf_counter()
        probe = 0
        while time.perf_counter() - started < 0.1:
            handle()
            probe += 1
        n = max(probe * 3, 10)
        best = float("inf")
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(n):
                handle()
            best = min(best, (time.perf_counter() - t) * 1e6 / n)
        print(json.dumps({"handler": "pywa", "payload": name, "us_per_webhook": best, "items_parsed": items}))


if __name__ == "__main__":
    main()
