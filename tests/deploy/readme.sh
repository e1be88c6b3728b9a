#!/usr/bin/env bash
# tests/deploy/readme.sh BUILD SRC — README.md's "The same flow with curl"
# runs as written, so the README cannot rot. The ```sh blocks of that section
# are taken from the README itself and run by bash in a scratch directory
# that looks like the source tree (build/, data/, examples/ linked in); only
# the build line (cmake ...) is left out, the binaries being built already.
# Then checked: every reply parsed as JSON without an "error"; the job
# succeeded with the results and the baseline comparison the README
# describes; the metrics came as CSV; the checkpoint is a safetensors file;
# `kill %1` stopped mtld with status 0.
set -euo pipefail
trap 'echo "FAIL: line $LINENO: $BASH_COMMAND (status $?)"' ERR
BUILD=$(cd "$1" && pwd)
SRC=$(cd "$2" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
no() { echo "FAIL: $*"; fail=1; }

awk '/^## The same flow with curl/ { on = 1; next }
     /^## / { on = 0 }
     on && /^```sh$/ { code = 1; next }
     on && /^```$/ { code = 0; next }
     on && code { print }' "$SRC/README.md" >"$tmp/walk.sh"
[ "$(grep -c . "$tmp/walk.sh")" -ge 10 ] || { echo "FAIL: no walk-through found in README.md"; exit 1; }
grep -v '^cmake ' "$tmp/walk.sh" >"$tmp/run.sh"
grep -q 'kill %1' "$tmp/run.sh" || no "the walk-through does not stop mtld"
echo 'wait %1' >>"$tmp/run.sh" # mtld's exit status after the README's kill %1

mkdir "$tmp/tree"
ln -s "$BUILD" "$tmp/tree/build"
ln -s "$SRC/data" "$tmp/tree/data"
ln -s "$SRC/examples" "$tmp/tree/examples"
# timeout: the README polls until the job ends; a hang fails here.
if ! (cd "$tmp/tree" && timeout 180 bash -e "$tmp/run.sh" >"$tmp/out" 2>"$tmp/err"); then
  no "the walk-through failed (or mtld did not exit 0):"
  cat "$tmp/out" "$tmp/err"
fi

# One reply per line (JSON is compact; the metrics CSV spans many lines).
grep '^{' "$tmp/out" >"$tmp/json" || true
[ "$(wc -l <"$tmp/json")" -ge 5 ] || no "expected 5+ JSON replies, got: $(cat "$tmp/out")"
if grep -q '"error"' "$tmp/json"; then no "a reply was an error: $(grep '"error"' "$tmp/json")"; fi
grep -q '"name":"stackoverflow"' "$tmp/json" || no "the upload reply does not name the dataset"
job=$(grep '"state":"succeeded"' "$tmp/json" | tail -1 || true)
[ -n "$job" ] || no "the job did not succeed: $(tail -3 "$tmp/json")"
for key in '"results"' '"salary"' '"remote"' '"mse"' '"accuracy"' '"macro_f1"' '"baseline"' '"delta_mtl"'; do
  grep -q "$key" <<<"$job" || no "the finished job lacks $key (README promises it)"
done
grep -q '^step,task,split,name,value' "$tmp/out" || no "no metrics CSV header in the output"
ck=$tmp/tree/so-mtl.safetensors
if [ -s "$ck" ]; then
  # u64 little-endian header length, then a JSON header that starts with '{'.
  [ "$(dd if="$ck" bs=1 skip=8 count=1 2>/dev/null)" = "{" ] || no "so-mtl.safetensors is not safetensors"
else
  no "no so-mtl.safetensors"
fi
[ $fail -eq 0 ] && echo "ok: README walk-through ($(grep -c . "$tmp/run.sh") lines) ran; job succeeded, checkpoint saved, mtld stopped cleanly"
exit $fail
