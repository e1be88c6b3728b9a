#!/usr/bin/env bash
# tests/deploy/guide.sh BUILD SRC — the tutorial of docs/guide.md ("Tutorial:
# from upload to results") runs as written: its first ```sh block is taken
# from the guide and run by bash, with the built mtlctl first on PATH, in a
# scratch directory that looks like the source tree. The one line that starts
# the daemon is replaced by a daemon this test starts on a free port
# (MTLD_URL tells mtlctl where), since 8470 may be taken on a shared machine.
# Checked: every command succeeds (bash -e: mtlctl exits non-zero on any
# error, and `job submit --watch` when the job fails), and the files the
# tutorial writes are what it says: metric curves as CSV, a safetensors
# checkpoint, one prediction per row of the CSV it predicted.
set -euo pipefail
trap 'echo "FAIL: line $LINENO: $BASH_COMMAND (status $?)"' ERR
BUILD=$(cd "$1" && pwd)
SRC=$(cd "$2" && pwd)
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$tmp"' EXIT
fail=0
no() { echo "FAIL: $*"; fail=1; }

awk '/^## Tutorial/ { on = 1; next }
     /^## / { on = 0 }
     on && /^```sh$/ && !done { code = 1; next }
     on && /^```$/ && code { code = 0; done = 1; next }
     on && code { print }' "$SRC/docs/guide.md" >"$tmp/tutorial.sh"
grep -q '^\./build/mtld ' "$tmp/tutorial.sh" || { echo "FAIL: the tutorial no longer starts mtld as expected"; exit 1; }
grep -v '^\./build/mtld ' "$tmp/tutorial.sh" >"$tmp/run.sh"
[ "$(grep -c mtlctl "$tmp/run.sh")" -ge 5 ] || { echo "FAIL: no tutorial found in docs/guide.md"; exit 1; }

mkdir "$tmp/tree"
ln -s "$SRC/data" "$tmp/tree/data"
ln -s "$SRC/examples" "$tmp/tree/examples"
ln -s "$SRC/client" "$tmp/tree/client"
"$BUILD/mtld" --listen 127.0.0.1:0 --data-dir "$tmp/data" --ready-file "$tmp/url" 2>"$tmp/mtld.log" &
pid=$!
for _ in $(seq 300); do [ -s "$tmp/url" ] && break; sleep 0.1; done
[ -s "$tmp/url" ] || { echo "FAIL: mtld did not start"; cat "$tmp/mtld.log"; exit 1; }
if ! (cd "$tmp/tree" && MTLD_URL=$(cat "$tmp/url") PATH="$BUILD:$PATH" NO_COLOR=1 \
  timeout 300 bash -e "$tmp/run.sh" >"$tmp/out" 2>&1); then
  no "the tutorial failed:"
  cat "$tmp/out"
fi
kill -TERM $pid
wait $pid || no "mtld did not stop cleanly"
pid=

t=$tmp/tree
[ -s "$t/curves.csv" ] && head -1 "$t/curves.csv" | grep -q '^step,task,split,name,value' ||
  no "curves.csv is not the metrics CSV: $(head -2 "$t/curves.csv" 2>/dev/null)"
[ -s "$t/so-mtl.safetensors" ] && [ "$(dd if="$t/so-mtl.safetensors" bs=1 skip=8 count=1 2>/dev/null)" = "{" ] ||
  no "so-mtl.safetensors is not a safetensors file"
if [ -s "$t/predictions.csv" ]; then
  rows=$(($(wc -l <"$SRC/data/stackoverflow/stackoverflow.csv") - 1))
  got=$(($(wc -l <"$t/predictions.csv") - 1))
  [ "$got" -eq "$rows" ] || no "predictions.csv has $got rows, the CSV $rows"
  head -1 "$t/predictions.csv" | grep -q salary && head -1 "$t/predictions.csv" | grep -q remote ||
    no "predictions.csv lacks a task column: $(head -1 "$t/predictions.csv")"
else
  no "no predictions.csv"
fi
[ $fail -eq 0 ] && echo "ok: the guide's tutorial ($(grep -c . "$tmp/run.sh") lines) ran; curves, checkpoint and $rows predictions written"
exit $fail
