#!/usr/bin/env bash
# Latency and throughput of churnd's cached reads and writes with grpcload (a lean client that
# sends pre-encoded requests; see grpcload/main.go), against the no-op floor in the same run.
# Starts its own throwaway redis-server, a churnd with the in-process cache, a churnd with the
# Redis cache and the floor (../shared/bench/floor), all on loopback. Each round measures, one
# after the other, each for the duration:
#   Score with the in-process cache and with the Redis cache at concurrency 16 (the on/off ratio);
#   GetScore with Redis, then the floor, at concurrency 16, 4 and 1.
# usage: internal/tools/latency.sh [rounds=3] [duration=8s]    (from the repository root;
# needs python3, redis-server, redis-cli, curl and ../shared/bench beside the repository)
set -euo pipefail
rounds=${1:-3}; dur=${2:-8s}
root=$(cd "$(dirname "$0")/../.." && pwd)
bench="${CHURN_BENCH_DIR:-$root/../shared/bench}"
[ -d "$bench/floor" ] || { echo "need ../shared/bench/floor beside the repository (or CHURN_BENCH_DIR)" >&2; exit 2; }
tmp=$(mktemp -d); pids=()
trap 'for p in "${pids[@]}"; do kill $p 2>/dev/null; done; rm -rf "$tmp"' EXIT
(cd "$root/internal/tools" && go build -o "$tmp/grpcload" ./grpcload)
(cd "$bench/floor" && go build -o "$tmp/floor" .)
convert() { # type, JSON file, output
  (cd "$root" && go tool -modfile=internal/tools/go.mod buf convert proto --type "$1" --from "$2" --to "$3")
}
convert churn.v1.ScoreRequest "$root/testdata/requests/complaints.json" "$tmp/score.binpb"
echo '{"customerId": "cust-0042"}' >"$tmp/get.json"
convert churn.v1.GetScoreRequest "$tmp/get.json" "$tmp/get.binpb"

. "$root/internal/tools/churnd-pair.sh"
fport=$(port)
"$tmp/floor" -addr "127.0.0.1:$fport" 2>/dev/null &
pids+=($!)
sleep 0.5

load() { # port, method, request file, extra grpcload flags...
  "$tmp/grpcload" -target "127.0.0.1:$1" -method "/churn.v1.ScoringService/$2" -data "$3" -d "$dur" "${@:4}"
}
field() { sed -E "s/.* $1=([^ ]+).*/\1/" <<<" $2"; }
echo "$(nproc) cores; $(go version); $(redis-server --version | cut -d' ' -f3)"
load "$red" Score "$tmp/score.binpb" -c 1 -d 1s >/dev/null # cust-0042 is cached from here on
for i in $(seq "$rounds"); do
  m=$(load "$mem" Score "$tmp/score.binpb" -c 16); r=$(load "$red" Score "$tmp/score.binpb" -c 16)
  ratio=$(python3 -c "print('%.3f' % ($(field rps "$r")/$(field rps "$m")))")
  echo "round $i Score c16: in-process cache $m"
  echo "round $i Score c16: Redis cache      $r"
  echo "round $i Score c16: Redis/in-process rps $ratio"
  for c in 16 4 1; do
    g=$(load "$red" GetScore "$tmp/get.binpb" -c "$c"); f=$(load "$fport" GetScore "$tmp/get.binpb" -c "$c")
    echo "round $i GetScore c$c: Redis $g"
    echo "round $i GetScore c$c: floor $f"
  done
done
