# Sourced by scripts/test.sh and bench/lambda/run.sh: `start_moto LOG` starts moto's server
# (DynamoDB + SQS, through scripts/moto-server.py) on a free port of 127.0.0.1, logging to LOG, stops it when the shell exits, and
# exports WAGATE_MOTO_URL. `free_port` and `wait_for_port PORT` are the helpers it uses.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for_port() {
  for _ in $(seq 1 100); do
    if python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), 1)" 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  echo "nothing listens on 127.0.0.1:$1" >&2
  return 1
}

start_moto() {
  if ! python3 -c 'import moto.server' 2>/dev/null; then
    echo "moto's server not found: pip install 'moto[server]' (or run ./scripts/test.sh)" >&2
    return 1
  fi
  local port
  port=$(free_port)
  # moto_server with DynamoDB's atomic conditional writes (scripts/moto-server.py).
  python3 "$(dirname "${BASH_SOURCE[0]}")/moto-server.py" -H 127.0.0.1 -p "$port" >"$1" 2>&1 &
  moto_pid=$!
  trap 'kill "$moto_pid" 2>/dev/null || true' EXIT
  wait_for_port "$port"
  export WAGATE_MOTO_URL="http://127.0.0.1:$port"
}
