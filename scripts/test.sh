#!/usr/bin/env bash
# The test command of the README: every test of the workspace, with a moto server (DynamoDB + SQS
# on 127.0.0.1) for the adapter and pipeline suites. Uses $WAGATE_MOTO_URL if already set.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${WAGATE_MOTO_URL:-}" ]; then
  . scripts/moto.sh
  log=$(mktemp -t moto.XXXXXX.log)
  start_moto "$log"
  echo "moto on $WAGATE_MOTO_URL (log: $log)"
fi

# The Lambda binaries themselves, for the suite that runs them over a runtime API emulator.
cargo build --workspace --bins --locked
cargo test --workspace --locked "$@"
