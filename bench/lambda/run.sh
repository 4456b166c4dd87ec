#!/usr/bin/env bash
# Cold start, per-webhook cost inputs and 10,000-record batches of the real Lambda binaries:
# builds them (release profile, this machine's architecture), starts moto (SQS) on a free port
# unless $WAGATE_MOTO_URL is set and dynalite (DynamoDB; DYNAMODB=moto keeps DynamoDB on moto
# too), and runs `wagate-bench lambda-bench` (a Lambda runtime API emulator per process, a
# metering proxy in front of both). Arguments go to lambda-bench, e.g.
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

cargo build --release --locked "${bins[@]}" --bin wagate-bench

mkdir -p "$target/lambda-bench"
. scripts/moto.sh
if [ -z "${WAGATE_MOTO_URL:-}" ]; then
  start_moto "$target/lambda-bench/moto.log"
fi

# DynamoDB on dynalite (in memory, Node): moto's DynamoDB slows to tens of milliseconds per call
# as its tables fill, which would make the 10,000-record batches take hours. SQS stays on moto.
DYNALITE_VERSION=4.0.0
dynamodb=()
if [ "${DYNAMODB:-dynalite}" = dynalite ]; then
  if [ ! -x "$target/dynalite/node_modules/.bin/dynalite" ]; then
    mkdir -p "$target/dynalite"
    (cd "$target/dynalite" && npm init -y >/dev/null && npm install --silent --no-audit --no-fund "dynalite@$DYNALITE_VERSION")
  fi
  port=$(free_port)
  "$target/dynalite/node_modules/.bin/dynalite" --host 127.0.0.1 --port "$port" --createTableMs 0 >"$target/lambda-bench/dynalite.log" 2>&1 &
  dynalite_pid=$!
  trap 'kill "$dynalite_pid" "${moto_pid:-}" 2>/dev/null || true' EXIT
  wait_for_port "$port"
  dynamodb=(--dynamodb-url "http://127.0.0.1:$port")
fi

"$target/release/wagate-bench" lambda-bench --bin-dir "$target/release" \
  --endpoint-url "$WAGATE_MOTO_URL" "${dynamodb[@]}" --out-dir "$target/lambda-bench" "$@"
