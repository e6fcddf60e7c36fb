#!/usr/bin/env bash
# Load run of the real churnd against the no-op gRPC floor, then its resident memory.
# usage: internal/tools/loadtest.sh [runs=5] [duration=8s]     (from the repository root; needs ghz,
# grpcurl and ../shared/bench; install: go install github.com/bojand/ghz/cmd/ghz@latest
# github.com/fullstorydev/grpcurl/cmd/grpcurl@latest)
# Prints one floor.sh line per run (ratio = churnd rps / floor rps in the same run), then RSS.
set -euo pipefail
runs=${1:-5}; dur=${2:-8s}
root=$(cd "$(dirname "$0")/../.." && pwd)
bench="${CHURN_BENCH_DIR:-$root/../shared/bench}"
[ -x "$bench/floor.sh" ] || { echo "need ../shared/bench/floor.sh beside the repository" >&2; exit 2; }
tmp=$(mktemp -d); pid=""
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$tmp"' EXIT
(cd "$root" && CGO_ENABLED=0 go build -trimpath -o "$tmp/churnd" ./cmd/churnd)
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
gport=$(port); hport=$(port)
"$tmp/churnd" --grpc-addr "127.0.0.1:$gport" --http-addr "127.0.0.1:$hport" --log-level warn &
pid=$!
for _ in $(seq 50); do curl -sf "127.0.0.1:$hport/healthz" >/dev/null && break; sleep 0.1; done
echo "churnd pid $pid on 127.0.0.1:$gport; $(nproc) cores; $(go version)"
for i in $(seq "$runs"); do
  "$bench/floor.sh" --target "127.0.0.1:$gport" --call churn.v1.ScoringService/Score \
    --data-file "$root/testdata/requests/basic.json" --concurrency 16 --duration "$dur"
done
grpcurl -plaintext -protoset-out "$tmp/api.pb" "127.0.0.1:$gport" describe churn.v1.ScoringService >/dev/null
ghz --insecure --protoset "$tmp/api.pb" --call churn.v1.ScoringService/Score -D "$root/testdata/requests/basic.json" \
  -c 16 -n 100000 "127.0.0.1:$gport" --format json | python3 -c 'import json,sys; r=json.load(sys.stdin); print("100k requests: rps=%.0f errors=%s" % (r["rps"], {k:v for k,v in (r.get("statusCodeDistribution") or {}).items() if k!="OK"}))'
served=$(curl -s "127.0.0.1:$hport/metrics" | awk '/^churn_scores_total\{rpc="Score"/ {s+=$2} END {printf "%d", s}')
echo "customers scored by Score since start: $served"
grep -E 'VmRSS|VmHWM' "/proc/$pid/status"
