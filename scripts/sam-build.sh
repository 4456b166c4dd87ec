#!/usr/bin/env bash
# `sam build` for every function (arm64, provided.al2023, BuildMethod rust-cargolambda) with one
# shared, absolute target directory, so the dependencies compile once for all seven functions.
# Recent SAM CLIs do this by themselves; older ones give each function its own `target/` and
# compile the AWS SDK seven times. Needs `pip install cargo-lambda aws-sam-cli`. Older SAM CLIs
# ask to confirm the rust-cargolambda beta feature: pass --beta-features.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
case "$CARGO_TARGET_DIR" in
  /*) ;;
  *) CARGO_TARGET_DIR="$PWD/$CARGO_TARGET_DIR" ;;
esac
rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1 || true
exec sam build "$@"
