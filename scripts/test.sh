#!/usr/bin/env bash
# The test command of the README: every test of the workspace, with a moto server (DynamoDB + SQS
# on 127.0.0.1) for the adapter and pipeline suites. Uses $WAGATE_MOTO_URL if already set.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${WAGATE_MOTO_URL:-}" ]; then
  if ! command -v moto_server >/dev/null 2>&1; then
    echo "moto_server not found: pip install 'moto[server]'" >&2
    exit 1
  fi
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  log=$(mktemp -t moto.XXXXXX.log)
  moto_server -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
  moto_pid=$!
  trap 'kill "$moto_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 1 100); do
    if python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null; then break; fi
    sleep 0.2
  done
  export WAGATE_MOTO_URL="http://127.0.0.1:$port"
  echo "moto on $WAGATE_MOTO_URL (log: $log)"
fi

cargo test --workspace --locked "$@"
