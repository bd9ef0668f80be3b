# cluster/lib.sh — helpers shared by cluster/up, down, status and demo (sourced, not run).
# Expects ROOT (the repository) to be set by the caller.

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# The directory of the release executables: SPATE_BIN_DIR when set (tests, CI), otherwise a
# release build of the three products (incremental: seconds when nothing changed).
spate_binaries() {
  if [ -n "${SPATE_BIN_DIR:-}" ]; then
    BIN=$SPATE_BIN_DIR
  else
    [ -x "$ROOT/.tools/bin/tansu" ] && [ -x "$ROOT/.tools/bin/osmem-server" ] || "$ROOT/cluster/setup"
    echo "cluster: building spate-node, spate-probe and spate (release)…" >&2
    for p in spate-node spate-probe spate; do
      swift build --package-path "$ROOT" -c release --product "$p" 2>&1 | grep -E "error|warning: |Compiling|complete" >&2 || true
    done
    BIN="$ROOT/.build/release"
  fi
  for p in spate-node spate-probe spate; do
    [ -x "$BIN/$p" ] || { echo "cluster: $BIN/$p is missing (the build failed?)" >&2; exit 1; }
  done
}

# Ends the process in pid file $1 if it still runs executable $2: SIGTERM, then SIGKILL after
# $3 seconds. Removes the pid file.
stop_pid() {
  local pidfile=$1 exe=$2 grace=$3 pid i
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null && grep -q "$exe" "/proc/$pid/cmdline" 2>/dev/null; then
    kill -CONT "$pid" 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "cluster: $(basename "$exe") (pid $pid) did not stop within ${grace}s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pidfile"
}

# True when `spate status --format json` output $1 lists $2 nodes whose partition sets are
# disjoint and cover partitions 0..<$3.
cluster_settled() {
  python3 - "$1" "$2" "$3" <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); nodes, parts = int(sys.argv[2]), int(sys.argv[3])
sets = [set(p["partition"] for p in n["partitions"]) for n in s["cluster"]]
union = set().union(*sets) if sets else set()
sys.exit(0 if len(s["cluster"]) == nodes and union == set(range(parts)) and sum(map(len, sets)) == parts else 1)
PY
}
