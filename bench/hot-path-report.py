#!/usr/bin/env python3
"""Prints the hot-path table of BENCHMARKS.md from criterion's last run
(`cargo bench -p shared --bench hot_path` writes target/criterion/<group>/<bench>/new/estimates.json):
median time per webhook and the ratio to each floor (bare HMAC over the same bytes, bare typed
serde_json parse of the same bytes), and verify + normalize against the two floors together (issue
23's target: at most 2×)."""

import json
import os
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
CRITERION = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "criterion"
GROUPS = [("meta_text_2k", "floor_hmac_sha256"), ("meta_status_65k", "floor_hmac_sha256"),
          ("waha_message", "floor_hmac_sha512")]


def median_us(group, bench):
    path = CRITERION / group / bench / "new" / "estimates.json"
    return json.loads(path.read_text())["median"]["point_estimate"] / 1000.0


def main():
    print("| payload | HMAC floor | verify | × floor | typed-parse floor | normalize | × floor "
          "| verify + normalize | × (HMAC + typed parse) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for group, hmac_floor in GROUPS:
        hmac = median_us(group, hmac_floor)
        verify = median_us(group, "verify")
        parse = median_us(group, "floor_typed_parse")
        normalize = median_us(group, "normalize")
        both = median_us(group, "verify_and_normalize")
        print(f"| {group} | {hmac:,.1f} µs | {verify:,.1f} µs | {verify / hmac:.1f}× | {parse:,.1f} µs "
              f"| {normalize:,.1f} µs | {normalize / parse:.1f}× | {both:,.1f} µs "
              f"| {both / (hmac + parse):.2f}× |")


if __name__ == "__main__":
    main()
