#!/usr/bin/env bash
# bench/api_wrk.sh — the API benchmark of issue 6: wrk, 64 connections,
# 10 s, against GET /v1/jobs/{id} of a real mtld while two jobs train, next
# to bench/bare_mhd (a libmicrohttpd server answering a fixed JSON, the same
# thread pool). Also both servers idle, so the training's share is visible.
#
# usage: bench/api_wrk.sh [BUILD_DIR]   (needs wrk: apt-get install wrk)
# Prints one line per run: requests/s, non-2xx, latency p50/p99.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
mtld=$build/mtld
bare=$build/bench/bare_mhd
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
[ -x "$mtld" ] && [ -x "$bare" ] || { echo "build $build first (mtld, bench/bare_mhd)" >&2; exit 1; }

tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

run_wrk() { # label url
    local out
    out=$(wrk -t2 -c64 -d10s --latency "$2" 2>&1)
    local rps non2xx p50 p99
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out"); non2xx=${non2xx:-0}
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    printf '%-38s %10s req/s  non-2xx %-6s p50 %-8s p99 %s\n' "$1" "$rps" "$non2xx" "$p50" "$p99"
}

start_bare() {
    "$bare" 18471 4 & pids+=($!)
    sleep 0.5
}
stop_last() { local p=${pids[-1]}; kill "$p"; wait "$p" 2>/dev/null || true; unset 'pids[-1]'; }

echo "machine: $(nproc) cores, $(uname -r); wrk -t2 -c64 -d10s"
start_bare
run_wrk "bare_mhd, idle machine" "http://127.0.0.1:18471/v1/jobs/1"
stop_last

"$mtld" --listen 127.0.0.1:0 --data-dir "$tmp/data" --ready-file "$tmp/ready" --workers 2 ${MTLD_ARGS:-} \
    --log-level warn 2>"$tmp/mtld.log" & pids+=($!)
for _ in $(seq 100); do [ -s "$tmp/ready" ] && break; sleep 0.1; done
U=$(cat "$tmp/ready")
curl -sf -X POST "$U/v1/datasets?name=so" -H 'Content-Type: text/csv' \
    --data-binary @"$here/data/stackoverflow/stackoverflow.csv" >/dev/null
curl -sf -X POST "$U/v1/tasks" -H 'Content-Type: application/json' \
    -d '{"name":"salary","dataset":"so","target":"salary","kind":"regression"}' >/dev/null
curl -sf -X POST "$U/v1/tasks" -H 'Content-Type: application/json' \
    -d '{"name":"remote","dataset":"so","target":"remote","kind":"classification"}' >/dev/null
# job 1: a short job, finished (its view has results); jobs 2 and 3 train.
curl -sf -X POST "$U/v1/jobs" -H 'Content-Type: application/json' \
    -d '{"algorithm":"multitask","tasks":["salary","remote"],"epochs":1}' >/dev/null
for _ in $(seq 300); do curl -s "$U/v1/jobs/1" | grep -q '"succeeded"' && break; sleep 0.1; done
run_wrk "mtld GET /v1/jobs/1, idle" "$U/v1/jobs/1"
spec='{"algorithm":"multitask","tasks":["salary","remote"],"model":{"trunk":[128,64]},"epochs":100000}'
for _ in 1 2; do
    curl -sf -X POST "$U/v1/jobs" -H 'Content-Type: application/json' -d "$spec" >/dev/null
done
for _ in $(seq 100); do
    curl -s "$U/v1/jobs?state=running" | grep -q '"total":2' && break; sleep 0.1
done
s0=$(curl -s "$U/v1/jobs/2" | sed -n 's/.*"step":\([0-9]*\).*/\1/p')
run_wrk "mtld GET /v1/jobs/2, 2 jobs training" "$U/v1/jobs/2"
s1=$(curl -s "$U/v1/jobs/2" | sed -n 's/.*"step":\([0-9]*\).*/\1/p')
# The same with the training threads put back at the HTTP threads' priority
# (what --worker-nice 0 gives): the workers are the threads named
# mtld-worker (at --worker-nice, default 19).
mpid=${pids[-1]}
renice_workers() {
    for t in /proc/"$mpid"/task/*; do
        if [ "$(cat "$t/comm")" = mtld-worker ]; then renice -n "$1" -p "$(basename "$t")" >/dev/null; fi
    done
}
renice_workers 0
run_wrk "mtld GET /v1/jobs/2, worker-nice 0" "$U/v1/jobs/2"
s1b=$(curl -s "$U/v1/jobs/2" | sed -n 's/.*"step":\([0-9]*\).*/\1/p')
renice_workers 19 # back to the default (lowering a nice value needs root, as this runs)
echo "job 2 training steps during wrk (10 s): $((s1 - s0)) at worker-nice 19, $((s1b - s1)) at 0"
s1=$(curl -s "$U/v1/jobs/2" | sed -n 's/.*"step":\([0-9]*\).*/\1/p')
start_bare
run_wrk "bare_mhd, while mtld trains 2 jobs" "http://127.0.0.1:18471/v1/jobs/1"
stop_last
sleep 10
s2=$(curl -s "$U/v1/jobs/2" | sed -n 's/.*"step":\([0-9]*\).*/\1/p')
echo "job 2 training steps over bare_mhd's 10 s run and 10 s idle: $((s2 - s1))"

# Event-stream watchers must not slow training (issue 6): job 2's steps in
# 10 s with no watcher, then with 16 streams open on it (the default
# --sse-watchers), each a curl reading every event.
step_of() { curl -s "$U/v1/jobs/$1" | sed -n 's/.*"step":\([0-9]*\).*/\1/p'; }
a0=$(step_of 2); sleep 10; a1=$(step_of 2)
for _ in $(seq 16); do curl -sN "$U/v1/jobs/2/events" >/dev/null & pids+=($!); done
sleep 1
b0=$(step_of 2); sleep 10; b1=$(step_of 2)
echo "job 2 training steps in 10 s: $((a1 - a0)) with no event stream, $((b1 - b0)) with 16 streams open"
