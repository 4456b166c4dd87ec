#!/usr/bin/env bash
# Instructions (cachegrind) and allocations (uprobes on glibc's malloc/realloc) per normalize of
# each payload in bench/payloads/: deterministic where times on a shared host are not. Needs
# valgrind and perf (apt-get install valgrind linux-perf); run as root for the uprobes.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --profile bench -p shared --example normalize_loop
bin="${CARGO_TARGET_DIR:-target}/release/examples/normalize_loop"
libc=$(ldd "$bin" | awk '/libc.so.6/ {print $3}')
perf probe -q -x "$libc" malloc 2>/dev/null || true
perf probe -q -x "$libc" realloc 2>/dev/null || true
instructions() {
  valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1 |
    awk '/I *refs/ {gsub(",", "", $4); print $4}'
}
allocations() {
  perf stat -x, -e probe_libc:malloc,probe_libc:realloc "$bin" "$1" "$2" 2>&1 >/dev/null |
    awk -F, '/probe_libc/ {n += $1} END {print n}'
}
echo "| payload | instructions per normalize | allocations per normalize |"
echo "|---|---|---|"
for payload in bench/payloads/meta-text-2k.json:2000 bench/payloads/meta-status-65k.json:30 bench/payloads/waha-message.json:2000; do
  file=${payload%%:*}; n=${payload##*:}
  i=$(( ($(instructions "$file" "$n") - $(instructions "$file" 0)) / n ))
  a=$(( ($(allocations "$file" 1000) - $(allocations "$file" 0)) / 1000 ))
  echo "| $(basename "$file" .json) | $i | $a |"
done
