#!/usr/bin/env bash
# The test command of the README: every test of the workspace, with a moto server (DynamoDB + SQS
# on 127.0.0.1) for the adapter and pipeline suites. Installs what the tests need from PyPI
# (moto's server, which brings boto3 and PyYAML; standardwebhooks) into a venv under target/
# when the python3 on PATH lacks them. Uses $WAGATE_MOTO_URL if already set.
set -euo pipefail
cd "$(dirname "$0")/.."
# Incremental compilation keeps a second copy of every workspace crate's build state (gigabytes
# across the test binaries) for edits this command never makes; set CARGO_INCREMENTAL=1 to keep it.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

if ! python3 -c 'import moto.server, boto3, yaml, standardwebhooks' 2>/dev/null; then
  venv="$PWD/target/test-venv"
  if ! "$venv/bin/python3" -c 'import moto.server, boto3, yaml, standardwebhooks' 2>/dev/null; then
    echo "installing moto[server] and standardwebhooks into $venv"
    python3 -m venv "$venv"
    "$venv/bin/python3" -m pip install --quiet --disable-pip-version-check 'moto[server]' standardwebhooks
  fi
  # The tests run `python3` (moto, the template provisioner, standardwebhooks).
  export PATH="$venv/bin:$PATH"
fi

if [ -z "${WAGATE_MOTO_URL:-}" ]; then
  . scripts/moto.sh
  log=$(mktemp -t moto.XXXXXX.log)
  start_moto "$log"
  echo "moto on $WAGATE_MOTO_URL (log: $log)"
fi

# The Lambda binaries themselves, for the suite that runs them over a runtime API emulator. Built
# with every target, so dependencies are compiled once with the features `cargo test` resolves
# (a `--bins` build resolves fewer and compiles the AWS SDK a second time).
cargo build --workspace --all-targets --locked
cargo test --workspace --locked "$@"
