#!/usr/bin/env bash
# tests/deploy/docs.sh MTLD MTLCTL SRC — the documentation stays true to the
# binaries:
#  - every flag of `mtld --help` is documented in docs/mtld.8, and every
#    setting in the Configuration table of docs/operations.md;
#  - every command and global option of `mtlctl --help` is in docs/mtlctl.1;
#  - both man pages format without a single groff warning;
#  - every relative link in README.md and docs/*.md names a file that exists.
set -euo pipefail
trap 'echo "FAIL: line $LINENO: $BASH_COMMAND (status $?)"' ERR
MTLD=$1
MTLCTL=$2
SRC=$3
fail=0
no() { echo "FAIL: $*"; fail=1; }
man_escape() { sed 's/-/\\-/g' <<<"$1"; } # --max-uri -> \-\-max\-uri

flags=$("$MTLD" --help | sed -nE 's/^  --([a-z0-9-]+).*/\1/p')
[ "$(wc -w <<<"$flags")" -ge 10 ] || { echo "FAIL: no flags read from mtld --help"; exit 1; }
for f in $flags; do
  grep -qF -- "$(man_escape "--$f")" "$SRC/docs/mtld.8" || no "docs/mtld.8 does not document --$f"
done
conf=$(sed -n '/^## Configuration/,/^## /p' "$SRC/docs/operations.md")
for f in $flags; do
  case "$f" in help | version | config) continue ;; esac
  grep -qF "\`$f\`" <<<"$conf" || no "docs/operations.md's Configuration table lacks \`$f\`"
done

help=$("$MTLCTL" --help 2>&1)
cmds=$(sed -n '/^Commands:/,/^$/p' <<<"$help" | sed -nE 's/^  ([a-z]+( [a-z]+)?)( [A-Z.]|  ).*/\1/p' | sed 's/ *$//')
[ "$(wc -l <<<"$cmds")" -ge 5 ] || { echo "FAIL: no commands read from mtlctl --help"; exit 1; }
while read -r c; do
  [ -n "$c" ] || continue
  # "job watch" is written "job watch" or "\fBjob watch\fR" or with \- escapes.
  grep -qE "$(sed 's/ /( |\\\\fR \\\\fB| \\\\fB)/' <<<"$c")" "$SRC/docs/mtlctl.1" ||
    no "docs/mtlctl.1 does not document 'mtlctl $c'"
done <<<"$cmds"
for o in $(sed -n '/^Global options/,/^$/p' <<<"$help" | grep -oE -- '--[a-z-]+'); do
  grep -qF -- "$(man_escape "$o")" "$SRC/docs/mtlctl.1" || no "docs/mtlctl.1 does not document $o"
done

if command -v groff >/dev/null; then
  for page in mtld.8 mtlctl.1; do
    w=$(groff -t -man -ww -z -Tutf8 "$SRC/docs/$page" 2>&1 || true)
    [ -z "$w" ] || no "groff warns about docs/$page: $w"
  done
fi

for md in "$SRC"/README.md "$SRC"/docs/*.md; do
  dir=$(dirname "$md")
  for link in $(grep -oE '\]\([^)#[:space:]]+' "$md" | sed 's/^](//' | grep -vE '^[a-z]+:' || true); do
    [ -e "$dir/$link" ] || no "$(basename "$md") links to $link, which does not exist"
  done
done
[ $fail -eq 0 ] && echo "ok: $(wc -w <<<"$flags") mtld flags in mtld.8 and operations.md, $(wc -l <<<"$cmds") mtlctl commands in mtlctl.1, man pages clean, links resolve"
exit $fail
