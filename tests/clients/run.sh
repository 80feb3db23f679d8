#!/usr/bin/env bash
# Runs the real-client tests (tests/clients/test_*.py) against a datakube server it starts itself:
# the release binary, a temporary --data-dir (first start generates demo data at scale 0.002)
# and a free port on 127.0.0.1. The server is always stopped. Exit code = pytest's.
#
#   tests/clients/install.sh            # once: Mono, the venv with the pinned clients
#   tests/clients/run.sh [pytest args]  # e.g. -k netas, -x, -v
#
# Environment:
#   DATAKUBE_BIN      server binary (default $CARGO_TARGET_DIR/release/datakube)
#   DATAKUBE_LOG      server log filter (default info; e.g. debug,h2=info,rustls=info,hyper=info)
#   XMLA_TRACE=1      route the clients through xmla_proxy.py (plain HTTP) and log every request
#                     and response; a failed test shows its own exchanges
#   DATAKUBE_KEEP=1   keep the temporary folder (data dir, server log, trace) after the run
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"
# shellcheck source=../../scripts/env.sh
source scripts/env.sh

say() { echo "clients/run: $*"; }
die() { echo "clients/run: ERROR: $*" >&2; exit 2; }

bin="${DATAKUBE_BIN:-$CARGO_TARGET_DIR/release/datakube}"
py="$here/.venv/bin/python"
[ -x "$bin" ] || die "no server binary at $bin: build it with 'cargo build --release -p datakube'"
[ -x "$py" ] || die "no venv at $here/.venv: run tests/clients/install.sh first"
command -v curl >/dev/null || die "curl is needed to wait for /health"

work="$(mktemp -d "${TMPDIR:-/tmp}/datakube-clients.XXXXXX")"
server_log="$work/server.log"
server_pid=""

cleanup() {
    local rc=$?
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.2; done
        if kill -0 "$server_pid" 2>/dev/null; then
            say "server did not stop on SIGTERM within 10 s; sending SIGKILL"
            kill -KILL "$server_pid" 2>/dev/null || true
        fi
        wait "$server_pid" 2>/dev/null || true
    fi
    if [ "$rc" -ne 0 ] && [ -f "$server_log" ]; then
        say "exit code $rc; last lines of the server log:"
        tail -n 40 "$server_log" | sed 's/^/    /'
    fi
    if [ "${DATAKUBE_KEEP:-}" = 1 ] || [ "${XMLA_TRACE:-}" = 1 ]; then
        say "kept $work (server.log, xmla-trace.log, data)"
    else
        rm -rf "$work"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port="$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="https://127.0.0.1:$port"

say "starting $bin on 127.0.0.1:$port with data dir $work/data (log: $server_log)"
started=$(date +%s)
DATAKUBE_LOG="${DATAKUBE_LOG:-info}" "$bin" \
    --data-dir "$work/data" --cube-definitions "$repo/cube-definitions" \
    serve --listen "127.0.0.1:$port" --demo-scale 0.002 \
    >"$server_log" 2>&1 </dev/null &
server_pid=$!

# First start generates the demo data (~10-20 s on 2 cores), then loads the members. The server
# listens at once (/health answers 200 while it starts); /ready turns 200 once it can answer.
for _ in $(seq 1 300); do
    if curl -skf --max-time 2 "$base/ready" >/dev/null 2>&1; then break; fi
    kill -0 "$server_pid" 2>/dev/null || die "the server exited during start-up (log above)"
    sleep 1
done
curl -skf --max-time 2 "$base/ready" >/dev/null 2>&1 || die "$base/ready not 200 after 300 s"
say "server ready after $(($(date +%s) - started)) s: $(curl -sk "$base/health" | tr -d ' \n')"

set +e
(
    cd "$here"
    DATAKUBE_URL="$base/xmla" \
    DATAKUBE_DATA_DIR="$work/data" \
    DATAKUBE_TLS_CERT="$work/data/tls/cert.pem" \
    DATAKUBE_SERVER_LOG="$server_log" \
    XMLA_TRACE_LOG="$work/xmla-trace.log" \
    PYTHONDONTWRITEBYTECODE=1 \
        "$py" -m pytest "$@"
)
rc=$?
set -e
exit "$rc"
