# Sourced by loadtest-cache.sh and latency.sh, after they set root (the repository) and tmp (a
# scratch directory) and declare pids=() (what their EXIT trap kills). Builds churnd without cgo,
# starts a throwaway redis-server and two churnd on loopback: one with the in-process cache, one
# with that Redis. Sets rport (Redis), mem and red (the two churnd's gRPC ports), and defines port
# (a free TCP port). Needs python3, redis-server, redis-cli and curl.
#
# churnd runs with Go's collector defaults (GOGC=100, no GOMEMLIMIT) unless the caller sets GOGC
# or AUTOMEMLIMIT: under a cgroup memory limit churnd would otherwise pick GOGC=200 by itself,
# which moves the Redis/in-process ratio (docs/PERFORMANCE.md, "Stop 9").
export GOGC="${GOGC:-100}" AUTOMEMLIMIT="${AUTOMEMLIMIT:-off}"
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
await() { # pid, what, command...: run the command until it succeeds, for at most 10 s
  local i
  for i in $(seq 100); do
    "${@:3}" >/dev/null 2>&1 && return 0
    kill -0 "$1" 2>/dev/null || { echo "$2 exited at start-up" >&2; return 1; }
    sleep 0.1
  done
  echo "$2 did not answer within 10 s" >&2
  return 1
}
(cd "$root" && CGO_ENABLED=0 go build -trimpath -o "$tmp/churnd" ./cmd/churnd)
rport=$(port)
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --daemonize no >/dev/null &
pids+=($!)
await $! redis-server redis-cli -p "$rport" ping
started=""
start() { # name, extra flags...; sets $started to the gRPC port
  local g h; g=$(port); h=$(port)
  "$tmp/churnd" --grpc-addr "127.0.0.1:$g" --http-addr "127.0.0.1:$h" --log-level warn "${@:2}" >"$tmp/$1.log" 2>&1 &
  pids+=($!)
  await $! "churnd ($1; its log: $tmp/$1.log)" curl -sf "127.0.0.1:$h/healthz" || { cat "$tmp/$1.log" >&2; return 1; }
  started=$g
}
start memory; mem=$started
start redis --redis-addr "127.0.0.1:$rport"; red=$started
echo "churnd: GOGC=$GOGC AUTOMEMLIMIT=$AUTOMEMLIMIT"
