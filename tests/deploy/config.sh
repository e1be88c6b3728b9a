#!/usr/bin/env bash
# tests/deploy/config.sh MTLD SRC — systemd/mtld.conf stays true to the
# settings table of daemon/config.c (as `mtld --help` prints it):
#  - every setting of --help appears in the file exactly once, as
#    "key = value" or "# key = value", under a comment saying what it does
#    and "Default: D" with the table's default D;
#  - a commented line shows the default (or, for an empty default, an
#    example); an active line has the default unless the key is one the file
#    sets on purpose for a system install (SET_FOR_INSTALL);
#  - no key in the file is unknown to mtld;
#  - mtld starts with the file as it is, and with every commented line of a
#    non-empty default uncommented (flags only move the data dir and port).
set -euo pipefail
trap 'echo "FAIL: line $LINENO: $BASH_COMMAND (status $?)"' ERR
MTLD=$1
SRC=$2
CONF=$SRC/systemd/mtld.conf
SET_FOR_INSTALL="data-dir"
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$tmp"' EXIT
fail=0
no() { echo "FAIL: $*"; fail=1; }

# key <TAB> default (empty when none) from --help; --config itself is a flag only.
"$MTLD" --help | sed -nE 's/^  --([a-z0-9-]+)( VALUE)? +(.*)$/\1\t\3/p' |
  grep -vE '^(help|version|config)\b' |
  sed -E 's/^([^\t]*)\t.*\[default: ([^]]*)\]$/\1\t\2/; t; s/^([^\t]*)\t.*$/\1\t/' >"$tmp/table"
n=$(wc -l <"$tmp/table")
[ "$n" -ge 10 ] || { echo "FAIL: could not read the settings from --help"; cat "$tmp/table"; exit 1; }

while IFS=$'\t' read -r key dflt; do
  lines=$(grep -nE "^(# )?$key = " "$CONF" || true)
  count=$(grep -c . <<<"$lines" || true)
  if [ "$count" -ne 1 ]; then
    no "'$key' appears $count times in $CONF (want once: '# $key = ${dflt:-EXAMPLE}' under a comment saying what it does and 'Default: ${dflt:-...}')"
    continue
  fi
  ln=${lines%%:*}
  text=${lines#*:}
  value=${text#*= }
  # The comment block right above the line.
  block=$(awk -v n="$ln" 'NR < n { if ($0 ~ /^#/ && $0 !~ /^(# )?[a-z][a-z0-9-]* = /) b = b "\n" $0; else b = "" }
                          END { print b }' "$CONF")
  [ -n "$block" ] || no "'$key' has no comment above it"
  if [ -n "$dflt" ]; then
    tr '\n' ' ' <<<"$block" | sed 's/#//g; s/  */ /g' | grep -qF "Default: $dflt" ||
      no "'$key': its comment does not say 'Default: $dflt'"
  fi
  if [ "${text:0:1}" = "#" ]; then
    [ -z "$dflt" ] || [ "$value" = "$dflt" ] ||
      no "'$key' is shown as '$value', but its default is '$dflt'"
  else
    [ "$value" = "$dflt" ] || grep -qw -- "$key" <<<"$SET_FOR_INSTALL" ||
      no "'$key = $value' differs from the default '$dflt' (add it to SET_FOR_INSTALL if on purpose)"
  fi
done <"$tmp/table"

for key in $(sed -nE 's/^(# )?([a-z][a-z0-9-]*) = .*/\2/p' "$CONF"); do
  grep -q "^$key"$'\t' "$tmp/table" || no "$CONF sets '$key', which mtld does not know"
done

start() { # $1 = config file; mtld must come up and stop cleanly
  rm -f "$tmp/url"
  "$MTLD" --config "$1" --data-dir "$tmp/data" --listen 127.0.0.1:0 --ready-file "$tmp/url" \
    2>"$tmp/log" &
  pid=$!
  for _ in $(seq 300); do [ -s "$tmp/url" ] && break; kill -0 $pid 2>/dev/null || break; sleep 0.1; done
  if [ -s "$tmp/url" ]; then
    kill -TERM $pid; wait $pid || no "mtld --config $1 did not stop cleanly"
  else
    no "mtld does not start with $1: $(cat "$tmp/log")"
  fi
  pid=
}
start "$CONF"
# Uncomment every shown default.
sed -E 's/^# ([a-z][a-z0-9-]* = )/\1/' "$CONF" >"$tmp/all.conf"
while IFS=$'\t' read -r key dflt; do
  [ -n "$dflt" ] || sed -i -E "/^$key = /d" "$tmp/all.conf"
done <"$tmp/table"
start "$tmp/all.conf"
# And the file check is able to fail: a bad value is refused with its line.
printf 'workers = many\n' >"$tmp/bad.conf"
if "$MTLD" --config "$tmp/bad.conf" --data-dir "$tmp/data" 2>"$tmp/err"; then no "a bad config was accepted"; fi
grep -q "bad.conf line 1: 'workers'" "$tmp/err" || no "bad config message: $(cat "$tmp/err")"
[ $fail -eq 0 ] && echo "ok: $n settings in $CONF, each with its meaning and default; mtld loads it"
exit $fail
