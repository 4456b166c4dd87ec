# Sourced by scripts/test.sh and bench/lambda/run.sh: `start_moto LOG` starts moto's server
# (DynamoDB + SQS) on a free port of 127.0.0.1, logging to LOG, stops it when the shell exits, and
# exports WAGATE_MOTO_URL.
start_moto() {
  if ! command -v moto_server >/dev/null 2>&1; then
    echo "moto_server not found: pip install 'moto[server]'" >&2
    return 1
  fi
  local port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  moto_server -H 127.0.0.1 -p "$port" >"$1" 2>&1 &
  moto_pid=$!
  trap 'kill "$moto_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 1 100); do
    if python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null; then break; fi
    sleep 0.2
  done
  export WAGATE_MOTO_URL="http://127.0.0.1:$port"
}
