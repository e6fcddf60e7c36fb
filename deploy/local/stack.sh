#!/usr/bin/env bash
# The local stack: Redis, two churnd replicas and Prometheus with the project's rules, on
# loopback, with the real binaries (Debian's redis-server and prometheus, churnd built from this
# tree). `make stack` runs it; Ctrl-C stops everything.
#
#   deploy/local/stack.sh          start, print where to look, run until Ctrl-C
#   deploy/local/stack.sh --check  start, wait until Prometheus scrapes both replicas and has
#                                  loaded the rules (its HTTP API says so), then stop
#
# The ports are set here, once each; override them from the environment (STACK_REDIS_PORT=...).
set -euo pipefail

REDIS_PORT=${STACK_REDIS_PORT:-16379}
CHURND1_GRPC_PORT=${STACK_CHURND1_GRPC_PORT:-15051}
CHURND1_HTTP_PORT=${STACK_CHURND1_HTTP_PORT:-15090}
CHURND2_GRPC_PORT=${STACK_CHURND2_GRPC_PORT:-15052}
CHURND2_HTTP_PORT=${STACK_CHURND2_HTTP_PORT:-15091}
PROMETHEUS_PORT=${STACK_PROMETHEUS_PORT:-15099}
HOST=127.0.0.1

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
check=false
[[ "${1:-}" == "--check" ]] && check=true

for tool in redis-server prometheus curl go; do
	if ! command -v "$tool" >/dev/null; then
		echo "stack: $tool not found: apt-get install -y redis-server prometheus curl (and Go for churnd)" >&2
		exit 1
	fi
done

run="$(mktemp -d "${TMPDIR:-/tmp}/churn-stack.XXXXXX")"
pids=()
names=()

# stop ends every process this script started, newest first: SIGTERM, then at most 20 s each
# before SIGKILL (churnd drains within its --shutdown-grace, 15 s by default).
stop() {
	trap - INT TERM EXIT
	echo "stack: stopping"
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		local pid=${pids[i]}
		kill -TERM "$pid" 2>/dev/null || continue
		for _ in $(seq 1 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.2
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "stack: ${names[i]} did not stop within 20s; killing it" >&2
			kill -KILL "$pid" 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true
	done
	echo "stack: stopped; logs and data were in $run (removed)"
	rm -rf "$run"
}
trap stop EXIT
trap 'exit 130' INT TERM

# start runs a command in the background with its output in $run/<name>.log.
start() {
	local name=$1
	shift
	"$@" >"$run/$name.log" 2>&1 &
	pids+=($!)
	names+=("$name")
}

# wait_for polls a URL until it answers 200, for at most 30 s; on failure it shows the log.
wait_for() {
	local name=$1 url=$2
	for _ in $(seq 1 150); do
		if curl -fsS -o /dev/null "$url" 2>/dev/null; then
			return 0
		fi
		if ! kill -0 "${pids[-1]}" 2>/dev/null; then
			break
		fi
		sleep 0.2
	done
	echo "stack: $name did not answer $url; its log ($run/$name.log):" >&2
	tail -n 20 "$run/$name.log" >&2
	exit 1
}

for port in "$REDIS_PORT" "$CHURND1_GRPC_PORT" "$CHURND1_HTTP_PORT" "$CHURND2_GRPC_PORT" "$CHURND2_HTTP_PORT" "$PROMETHEUS_PORT"; do
	if (exec 3<>"/dev/tcp/$HOST/$port") 2>/dev/null; then
		echo "stack: $HOST:$port is already in use: stop what listens there or set the STACK_*_PORT variables" >&2
		exit 1
	fi
done

echo "stack: building churnd"
(cd "$root" && CGO_ENABLED=0 go build -trimpath -o "$run/churnd" ./cmd/churnd)

start redis redis-server --bind "$HOST" --port "$REDIS_PORT" --save "" --appendonly no --dir "$run"
for _ in $(seq 1 150); do
	redis-cli -h "$HOST" -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
	sleep 0.2
done

set -a
# shellcheck source=churnd.env
. "$here/churnd.env"
set +a
start churnd-1 "$run/churnd" --grpc-addr "$HOST:$CHURND1_GRPC_PORT" --http-addr "$HOST:$CHURND1_HTTP_PORT" --redis-addr "$HOST:$REDIS_PORT"
wait_for churnd-1 "http://$HOST:$CHURND1_HTTP_PORT/readyz"
start churnd-2 "$run/churnd" --grpc-addr "$HOST:$CHURND2_GRPC_PORT" --http-addr "$HOST:$CHURND2_HTTP_PORT" --redis-addr "$HOST:$REDIS_PORT"
wait_for churnd-2 "http://$HOST:$CHURND2_HTTP_PORT/readyz"

cp "$here/prometheus.yml" "$root/deploy/prometheus/rules.yml" "$run/"
cat >"$run/targets.json" <<EOF
[{"targets": ["$HOST:$CHURND1_HTTP_PORT", "$HOST:$CHURND2_HTTP_PORT"], "labels": {"stack": "local"}}]
EOF
if command -v promtool >/dev/null; then
	promtool check config "$run/prometheus.yml" >"$run/promtool.log" 2>&1 || { cat "$run/promtool.log" >&2; exit 1; }
fi
start prometheus prometheus --config.file="$run/prometheus.yml" --storage.tsdb.path="$run/prometheus-data" \
	--web.listen-address="$HOST:$PROMETHEUS_PORT"
wait_for prometheus "http://$HOST:$PROMETHEUS_PORT/-/ready"

prom="http://$HOST:$PROMETHEUS_PORT"
if $check; then
	# Both replicas up and every rule group loaded, by Prometheus's HTTP API; 60 s at most.
	want_groups=$(grep -c '^  - name:' "$run/rules.yml")
	want_rules=$(grep -c '^        expr:' "$run/rules.yml")
	# count prints how many distinct matches of a pattern an API answer has (0 on any error).
	count() { { curl -fsS "$1" 2>/dev/null || true; } | { grep -o "$2" || true; } | sort -u | wc -l; }
	for _ in $(seq 1 120); do
		up=$(count "$prom/api/v1/query?query=up%7Bjob%3D%22churnd%22%7D%3D%3D1" '"instance":"[^"]*"')
		groups=$(count "$prom/api/v1/rules" '"name":"churn\.[a-z]*"')
		rules=$( { curl -fsS "$prom/api/v1/rules" 2>/dev/null || true; } | { grep -o '"query":' || true; } | wc -l)
		if [[ $up -eq 2 && $groups -eq $want_groups && $rules -eq $want_rules ]]; then
			echo "stack: check passed: Prometheus scrapes $up churnd replicas (up == 1) and has loaded $groups rule groups with $rules rules"
			exit 0
		fi
		sleep 0.5
	done
	echo "stack: check failed: $up of 2 replicas up, $groups of $want_groups rule groups and $rules of $want_rules rules loaded" >&2
	curl -fsS "$prom/api/v1/targets" >&2 || true
	exit 1
fi

cat <<EOF

The local stack is up (logs in $run):
  Redis        $HOST:$REDIS_PORT
  churnd-1     gRPC $HOST:$CHURND1_GRPC_PORT   metrics http://$HOST:$CHURND1_HTTP_PORT/metrics   ready http://$HOST:$CHURND1_HTTP_PORT/readyz
  churnd-2     gRPC $HOST:$CHURND2_GRPC_PORT   metrics http://$HOST:$CHURND2_HTTP_PORT/metrics   ready http://$HOST:$CHURND2_HTTP_PORT/readyz
  Prometheus   $prom  (targets $prom/targets, rules $prom/rules, alerts $prom/alerts)
  Grafana      import deploy/grafana/churnd.json into yours, with this Prometheus as its data source

Score a customer:      go run ./cmd/churnctl score --addr $HOST:$CHURND1_GRPC_PORT --request testdata/requests/basic.json
List models:          go run ./cmd/churnctl models list --addr $HOST:$CHURND2_GRPC_PORT --token local-admin-token

Ctrl-C stops everything.
EOF
wait -n "${pids[@]}" || true
echo "stack: a process ended on its own; see $run/*.log" >&2
for n in "${names[@]}"; do tail -n 5 "$run/$n.log" >&2; done
exit 1
