#!/usr/bin/env bash
# wagate's verify + normalize next to pywa and whatsapp-api-js on the same payloads
# (bench/payloads/), each in-process with the same loop, then a table of µs per webhook and
# ratios. Installs pinned versions of both into $TARGET/side-by-side (nothing global).
set -euo pipefail
cd "$(dirname "$0")/../.."
PYWA_VERSION=4.5.0
WAJS_VERSION=6.3.0
work="${CARGO_TARGET_DIR:-$PWD/target}/side-by-side"
mkdir -p "$work"
payloads=(bench/payloads/meta-text-2k.json bench/payloads/meta-status-65k.json bench/payloads/waha-message.json)

if [ ! -x "$work/venv/bin/python" ]; then python3 -m venv "$work/venv"; fi
"$work/venv/bin/pip" install --quiet --disable-pip-version-check "pywa==$PYWA_VERSION"
if [ ! -d "$work/node/node_modules/whatsapp-api-js" ]; then
  mkdir -p "$work/node"
  (cd "$work/node" && npm init -y >/dev/null && npm install --silent --no-audit --no-fund "whatsapp-api-js@$WAJS_VERSION")
fi
cp bench/side-by-side/wajs_bench.mjs "$work/node/"

cargo build --quiet --release -p shared --example side_by_side
results="$work/results.jsonl"
: > "$results"
"${CARGO_TARGET_DIR:-target}/release/examples/side_by_side" "${payloads[@]}" | tee -a "$results"
"$work/venv/bin/python" bench/side-by-side/pywa_bench.py "${payloads[@]:0:2}" | tee -a "$results"
absolute=("${payloads[@]/#/$PWD/}")
(cd "$work/node" && node wajs_bench.mjs "${absolute[@]}") | tee -a "$results"

python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {(r["payload"], r["handler"]): r for r in rows}
print()
print("| payload | wagate (all items) | pywa " + "(first item) | ratio | whatsapp-api-js (first item) | ratio |")
print("|---|---|---|---|---|---|")
for payload in dict.fromkeys(r["payload"] for r in rows):
    ours = by.get((payload, "wagate"))
    cells = [payload, f'{ours["us_per_webhook"]:,.1f} µs ({ours["items_parsed"]} events)' if ours else "–"]
    for h in ("pywa", "whatsapp-api-js"):
        other = by.get((payload, h))
        if other and ours:
            cells += [f'{other["us_per_webhook"]:,.1f} µs', f'{other["us_per_webhook"] / ours["us_per_webhook"]:.1f}× ours']
        else:
            cells += ["–", "–"]
    print("| " + " | ".join(cells) + " |")
PY
