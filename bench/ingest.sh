#!/usr/bin/env bash
# bench/ingest.sh — the ingestion benchmark of issue 4: a generated numeric CSV
# (1M rows x 16 columns, ~100 MB; bench/peers/gen_numeric_csv.py) uploaded end to
# end over HTTP into a real mtld (parse + durable store, 201 after the
# synchronous=FULL commit), with a Content-Length and chunked; MB/s of the file
# from curl's total time (best of 3), and the daemon's peak RSS (VmHWM) before
# and after. Then, side by side on the same file: mtld's parser alone
# (bench_csv), and the peers (bench/peers/csv_peers.py: pandas.read_csv,
# numpy.loadtxt, SQLite storing float32 blobs) when python3-pandas is there.
#
# usage: bench/ingest.sh [BUILD_DIR] [ROWS]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
rows=${2:-1000000}
mtld=$build/mtld
[ -x "$mtld" ] || { echo "build $build first" >&2; exit 1; }
tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }; rm -rf "$tmp"; }
trap cleanup EXIT

python3 "$here/bench/peers/gen_numeric_csv.py" "$rows" >"$tmp/big.csv"
size=$(stat -c %s "$tmp/big.csv")
mb=$(awk -v s="$size" 'BEGIN {printf "%.1f", s / 1e6}')
echo "machine: $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg); file: $rows rows x 16, $mb MB"

"$mtld" --listen 127.0.0.1:0 --data-dir "$tmp/data" --ready-file "$tmp/ready" --log-level warn \
    2>"$tmp/mtld.log" & pid=$!
for _ in $(seq 100); do [ -s "$tmp/ready" ] && break; sleep 0.1; done
U=$(cat "$tmp/ready")
hwm() { awk '/VmHWM/ {printf "%.1f MiB", $2 / 1024}' "/proc/$pid/status"; }
# CPU seconds (user + system) the daemon has used: on a shared machine the
# wall time says more about the other load than about mtld.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$pid/stat"; }
echo "mtld peak RSS at start: $(hwm)"
upload() { # name extra-curl-args...
    local name=$1; shift
    curl -s -o "$tmp/resp" -w '%{http_code} %{time_total}' -X POST -H 'Content-Type: text/csv' \
        "$@" -T "$tmp/big.csv" "$U/v1/datasets?name=$name"
}
for mode in length chunked; do
    best=; bestc=
    for i in 1 2 3; do
        c0=$(cpu)
        if [ $mode = chunked ]; then out=$(upload "${mode}$i" -H 'Transfer-Encoding: chunked')
        else out=$(upload "${mode}$i"); fi
        c1=$(cpu)
        code=${out% *}; t=${out#* }
        [ "$code" = 201 ] || { echo "upload failed: $code $(cat "$tmp/resp")" >&2; exit 1; }
        rate=$(awk -v m="$mb" -v t="$t" 'BEGIN {printf "%.1f", m / t}')
        crate=$(awk -v m="$mb" -v a="$c0" -v b="$c1" 'BEGIN {printf "%.1f", m / (b - a)}')
        echo "  $mode run $i: $rate MB/s wall ($t s), $crate MB per mtld CPU second ($(awk -v a="$c0" -v b="$c1" 'BEGIN {print b - a}') s)"
        best=$(awk -v a="${best:-0}" -v b="$rate" 'BEGIN {print (b > a) ? b : a}')
        bestc=$(awk -v a="${bestc:-0}" -v b="$crate" 'BEGIN {print (b > a) ? b : a}')
        curl -s -o /dev/null -X DELETE "$U/v1/datasets/${mode}$i"
    done
    echo "mtld end to end ($mode): best $best MB/s wall, $bestc MB/CPU-s; peak RSS so far $(hwm)"
done
grep -q . "$tmp/mtld.log" && { echo "daemon log:"; cat "$tmp/mtld.log"; }
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=

if [ -x "$build/tests/unit/api/bench_csv" ]; then
    echo "mtld parser alone (bench_csv, in memory, CPU time):"
    "$build/tests/unit/api/bench_csv" 0 "$tmp/big.csv" 2>&1 | sed 's/^/  /'
fi
# Debian's python3-pandas lives in the system python, which may not be the
# first python3 on PATH.
py=
for p in ${PYTHON:-} python3 /usr/bin/python3; do
    if "$p" -c 'import pandas' 2>/dev/null; then py=$p; break; fi
done
if [ -n "$py" ]; then
    "$py" "$here/bench/peers/csv_peers.py" "$tmp/big.csv" ${PEERS_ARGS:-}
else
    echo "(peers skipped: apt-get install python3-pandas)"
fi
