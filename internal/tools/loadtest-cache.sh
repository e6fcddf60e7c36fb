#!/usr/bin/env bash
# Load runs for the score cache, on loopback: Score with the Redis cache against Score with the
# in-process cache (alternating, same request, concurrency 16), then GetScore with Redis against
# the no-op floor. Starts its own throwaway redis-server. Needs ghz, grpcurl, python3, redis-server,
# redis-cli and curl.
# churnd cannot run without a score cache: the in-process cache (no network round trip) is the
# nearest it has to "caching off", so "Redis/in-process rps" is the issue's on/off ratio.
# Each Score run also prints the CPU time (user+system, from /proc/<pid>/stat) per call of the
# churnd it loads and, for the Redis one, of redis-server: "cpu_us churnd=… redis=…".
# cache_errors counts UNAVAILABLE and DEADLINE_EXCEEDED: the calls still in flight when ghz stops
# (up to 16, its concurrency) and, for GetScore, those the score cache failed (DEADLINE_EXCEEDED
# when it answered too late, under load); errors counts every other failure.
# usage: internal/tools/loadtest-cache.sh [runs=3] [duration=8s]    (from the repository root)
set -euo pipefail
runs=${1:-3}; dur=${2:-8s}
root=$(cd "$(dirname "$0")/../.." && pwd)
bench="${CHURN_BENCH_DIR:-$root/../shared/bench}"
tmp=$(mktemp -d); pids=()
trap 'for p in "${pids[@]}"; do kill $p 2>/dev/null; done; rm -rf "$tmp"' EXIT
. "$root/internal/tools/churnd-pair.sh"
grpcurl -plaintext -protoset-out "$tmp/api.pb" "127.0.0.1:$mem" describe churn.v1.ScoringService >/dev/null
req="$root/testdata/requests/complaints.json"
ticks() { # pid: its CPU time so far (user+system), in clock ticks
  local f; read -ra f <"/proc/$1/stat"; echo $((f[13] + f[14]))
}
run() { # port method data [name=pid...]: one ghz run; with name=pid, each one's CPU µs per call
  local out kv n t0=() t1=() i
  for kv in "${@:4}"; do t0+=("$(ticks "${kv#*=}")"); done
  out=$(ghz --insecure --protoset "$tmp/api.pb" --call "churn.v1.ScoringService/$2" -D "$3" -c 16 -z "$dur" --format json "127.0.0.1:$1" 2>/dev/null |
    python3 -c 'import json,sys; r=json.load(sys.stdin); p=[x["latency"] for x in r["latencyDistribution"] if x["percentage"]==99][0]/1e6; d=r["statusCodeDistribution"]; u=sum(d.get(k,0) for k in ("Unavailable","DeadlineExceeded")); e=sum(v for k,v in d.items() if k not in ("OK","Canceled","Unavailable","DeadlineExceeded")); print("rps=%.0f p99_ms=%.3f errors=%d cache_errors=%d calls=%d" % (r["rps"], p, e, u, r["count"]))')
  for kv in "${@:4}"; do t1+=("$(ticks "${kv#*=}")"); done
  if [ $# -gt 3 ]; then
    n=${out##*calls=}
    out+=" cpu_us"
    for i in "${!t0[@]}"; do
      kv=${*:4+i:1}
      out+=" ${kv%%=*}=$(python3 -c 'import sys; a,b,hz,n=map(int,sys.argv[1:]); print("%.1f" % ((b-a)*1e6/hz/max(n,1)))' "${t0[i]}" "${t1[i]}" "$(getconf CLK_TCK)" "$n")"
    done
  fi
  echo "$out"
}
echo "$(nproc) cores; $(go version); $(redis-server --version | cut -d' ' -f3)"
model=$(grpcurl -plaintext -d @ "127.0.0.1:$mem" churn.v1.ScoringService/Score <"$req" |
  python3 -c 'import json,sys; print(json.load(sys.stdin).get("model"))')
echo "model: $model"
for i in $(seq "$runs"); do
  m=$(run "$mem" Score "$req" "churnd=${pids[1]}"); r=$(run "$red" Score "$req" "churnd=${pids[2]}" "redis=${pids[0]}")
  ratio=$(python3 -c "import sys; print('%.3f' % (float(sys.argv[2].split()[0][4:]) / float(sys.argv[1].split()[0][4:])))" "$m" "$r")
  echo "run $i Score in-process cache: $m | Redis cache: $r | Redis/in-process rps: $ratio"
done
echo '{"customerId": "cust-0042"}' > "$tmp/get.json"
for i in $(seq "$runs"); do
  echo "run $i GetScore (Redis): $(run "$red" GetScore "$tmp/get.json")"
done
[ -x "$bench/floor.sh" ] && "$bench/floor.sh" --target "127.0.0.1:$red" --call churn.v1.ScoringService/GetScore \
  --data-file "$tmp/get.json" --concurrency 16 --duration "$dur"
