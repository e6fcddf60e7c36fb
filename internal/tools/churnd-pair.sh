# Sourced by loadtest-cache.sh and latency.sh, after they set root (the repository) and tmp (a
# scratch directory) and declare pids=() (what their EXIT trap kills). Builds churnd without cgo,
# starts a throwaway redis-server and two churnd on loopback: one with the in-process cache, one
# with that Redis. Sets rport (Redis), mem and red (the two churnd's gRPC ports), and defines port
# (a free TCP port).
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
(cd "$root" && CGO_ENABLED=0 go build -trimpath -o "$tmp/churnd" ./cmd/churnd)
rport=$(port)
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --daemonize no >/dev/null &
pids+=($!)
until redis-cli -p "$rport" ping >/dev/null 2>&1; do sleep 0.1; done
started=""
start() { # name, extra flags...; sets $started to the gRPC port
  local g h; g=$(port); h=$(port)
  "$tmp/churnd" --grpc-addr "127.0.0.1:$g" --http-addr "127.0.0.1:$h" --log-level warn "${@:2}" >"$tmp/$1.log" 2>&1 &
  pids+=($!)
  until curl -sf "127.0.0.1:$h/healthz" >/dev/null; do sleep 0.1; done
  started=$g
}
start memory; mem=$started
start redis --redis-addr "127.0.0.1:$rport"; red=$started
