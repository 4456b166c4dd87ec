#!/usr/bin/env bash
# Cold start, per-webhook cost inputs and 10,000-record batches of the real Lambda binaries:
# builds them (release profile, this machine's architecture), starts moto on a free port unless
# $WAGATE_MOTO_URL is set, and runs `wagate-local lambda-bench` (a Lambda runtime API emulator
# per process, a metering proxy in front of moto). Arguments go to lambda-bench, e.g.
#   bash bench/lambda/run.sh --runs 5 --webhooks 200 --big-batch 0
# With ARM64=1 it also builds the arm64 zips with cargo lambda and prints their sizes.
set -euo pipefail
cd "$(dirname "$0")/../.."
target="${CARGO_TARGET_DIR:-$PWD/target}"
functions=(ingest track sweep fanout buffer deliver admin)
bins=()
for f in "${functions[@]}"; do bins+=(--bin "$f"); done

if [ "${ARM64:-0}" = 1 ]; then
  cargo lambda build --release --arm64 --locked --output-format zip "${bins[@]}"
  printf '%-8s %12s %12s\n' function bootstrap zip
  for f in "${functions[@]}"; do
    zip="$target/lambda/$f/bootstrap.zip"
    inside=$(python3 -c 'import sys, zipfile; print(zipfile.ZipFile(sys.argv[1]).getinfo("bootstrap").file_size)' "$zip")
    printf '%-8s %12s %12s\n' "$f" "$inside" "$(stat -c %s "$zip")"
  done
fi

cargo build --release --locked "${bins[@]}" --bin wagate-local

if [ -z "${WAGATE_MOTO_URL:-}" ]; then
  . scripts/moto.sh
  mkdir -p "$target/lambda-bench"
  start_moto "$target/lambda-bench/moto.log"
fi

"$target/release/wagate-local" lambda-bench --bin-dir "$target/release" \
  --endpoint-url "$WAGATE_MOTO_URL" --out-dir "$target/lambda-bench" "$@"
