#!/usr/bin/env bash
# The test command of the README: every test of the workspace. Later suites that need moto
# (DynamoDB + SQS on 127.0.0.1) start it through this script.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked "$@"
