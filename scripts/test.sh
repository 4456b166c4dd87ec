#!/usr/bin/env bash
# The test command of the README: every test of the workspace, with a moto server (DynamoDB + SQS
# on 127.0.0.1) for the adapter and pipeline suites. Installs what the tests need from PyPI
# (moto's server, which brings boto3 and PyYAML; standardwebhooks) into a venv under target/
# when the python3 on PATH lacks them; for the console's browser test, Chromium and chromedriver
# (Debian packages, when run as root) and axe-core (npm, under target/axe). Uses
# $WAGATE_MOTO_URL if already set.
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

# The console's browser test: a real headless Chromium under chromedriver, and axe-core for its
# accessibility checks. The test fails (it does not skip) when they are missing.
if [ -z "${WAGATE_CHROMEDRIVER:-}" ] && ! { command -v chromium >/dev/null && command -v chromedriver >/dev/null; }; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing chromium and chromium-driver (apt) for the console browser test"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "chromium and chromedriver are missing: the console browser test will fail" \
      "(install the Debian packages chromium and chromium-driver)" >&2
  fi
fi
if [ -z "${WAGATE_AXE_JS:-}" ] && [ ! -f target/axe/node_modules/axe-core/axe.min.js ]; then
  echo "installing axe-core into target/axe (npm) for the console's accessibility checks"
  if ! command -v npm >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
  fi
  npm install --silent --no-audit --no-fund --prefix target/axe axe-core@4
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
# Local mode's default build has no AWS SDK, and its HTTP clients use rustls on ring instead of
# aws-lc (`aws_adapters::http::client_builder`): the workspace run above has the SDK on, so the
# adapters' HTTP tests run once more the way that build has them.
if [ $# -eq 0 ]; then
  cargo test -p aws-adapters --no-default-features --lib --locked
fi
