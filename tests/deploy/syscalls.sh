#!/usr/bin/env bash
# tests/deploy/syscalls.sh MTLD SRC — the sandbox of systemd/mtld.service lets
# mtld work. There is no PID-1 systemd here, so the test does what the
# sandbox would see: it runs the real mtld under strace through a workload
# that touches every part (a gzip CSV upload through SQLite, a training job on
# OpenBLAS with checkpoints, metrics, predictions from a checkpoint, the event
# stream, /metrics, SIGHUP, a clean stop, a restart on the existing database),
# then checks against the unit file itself:
#  - every system call made is allowed by its SystemCallFilter= lines
#    (groups expanded with `systemd-analyze syscall-filter`; allow-list minus
#    the ~deny lists, as systemd applies them);
#  - every socket() is of a family in RestrictAddressFamilies=;
#  - nothing is opened under /proc but the process's own entries
#    (ProcSubset=pid), and nothing is written outside the data directory and
#    the places the unit leaves writable (ProtectSystem=strict).
# Exit 77 (skipped) without strace or systemd-analyze.
set -euo pipefail
trap 'echo "FAIL: line $LINENO: $BASH_COMMAND (status $?)"' ERR
MTLD=$1
SRC=$2
UNIT=$SRC/systemd/mtld.service
# The unit runs a release mtld: an ASan/UBSan build makes other system calls
# (its shadow memory, its leak check, which cannot run under ptrace) and is not
# what the sandbox will see.
if [ "${MTLD_SANITIZED:-0}" = 1 ]; then echo "skip: sanitizer build"; exit 77; fi
for tool in strace systemd-analyze curl gzip; do
  command -v "$tool" >/dev/null || { echo "skip: no $tool"; exit 77; }
done

tmp=$(mktemp -d)
pid=  # mtld
spid= # strace
cleanup() {
  [ -n "$spid" ] && [ -z "$pid" ] && pid=$(pgrep -x -P "$spid" mtld || true)
  [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
  [ -n "$spid" ] && kill -9 "$spid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# --- what the unit allows ---------------------------------------------------
expand() { # a group or a call -> the calls, one a line
  case "$1" in
    @*) systemd-analyze syscall-filter "$1" | sed -n '2,$p' | sed 's/^ *//' |
          grep -v -e '^#' -e '^$' | while read -r n; do expand "$n"; done ;;
    *) echo "$1" ;;
  esac
}
# In order, as systemd merges them: the first line is the allow-list, a
# later line adds to it, a later ~line removes from it.
first=1
: >"$tmp/allowed"
while IFS= read -r line; do
  v=${line#SystemCallFilter=}
  : >"$tmp/items"
  if [ "${v#\~}" != "$v" ]; then deny=1; v=${v#\~}; else deny=0; fi
  for item in $v; do expand "$item" >>"$tmp/items"; done
  sort -u "$tmp/items" -o "$tmp/items"
  if [ $first -eq 1 ] && [ $deny -eq 1 ]; then
    echo "FAIL: $UNIT's first SystemCallFilter= is a deny-list; mtld uses an allow-list"; exit 1
  fi
  first=0
  if [ $deny -eq 1 ]; then
    comm -23 "$tmp/allowed" "$tmp/items" >"$tmp/next"
  else
    sort -u "$tmp/allowed" "$tmp/items" >"$tmp/next"
  fi
  mv "$tmp/next" "$tmp/allowed"
done < <(grep '^SystemCallFilter=' "$UNIT")
[ -s "$tmp/allowed" ] || { echo "FAIL: $UNIT has no SystemCallFilter allow-list"; exit 1; }
families=$(sed -n 's/^RestrictAddressFamilies=//p' "$UNIT")
[ -n "$families" ] || { echo "FAIL: no RestrictAddressFamilies="; exit 1; }

# --- the workload -------------------------------------------------------------
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 # as the unit sets them
run_mtld() { # $1 = trace file
  rm -f "$tmp/url"
  # NOTIFY_SOCKET (nobody listening) so the sd_notify path runs too.
  NOTIFY_SOCKET=$tmp/notify WATCHDOG_USEC=1000000 \
    strace -f -qq -s 256 -o "$1" "$MTLD" --listen 127.0.0.1:0 --data-dir "$tmp/data" \
    --ready-file "$tmp/url" --workers 2 --log-file "$tmp/mtld.log" >>"$tmp/out" 2>&1 &
  spid=$!
  pid=
  for _ in $(seq 600); do
    # mtld, strace's child, by name: strace also forks short-lived children
    # of its own at start (to probe ptrace features), which a loaded machine
    # lets pgrep see first.
    [ -n "$pid" ] || pid=$(pgrep -x -P "$spid" mtld || true)
    [ -s "$tmp/url" ] && [ -n "$pid" ] && break
    kill -0 "$spid" 2>/dev/null || { echo "FAIL: mtld exited"; cat "$tmp/mtld.log"; exit 1; }
    sleep 0.1
  done
  [ -s "$tmp/url" ] && [ -n "$pid" ] || {
    echo "FAIL: mtld did not start (strace $spid, mtld '$pid', url '$(cat "$tmp/url" 2>/dev/null)')"
    cat "$tmp/out" "$tmp/mtld.log" 2>/dev/null
    exit 1
  }
  U=$(cat "$tmp/url")
}
stop_mtld() {
  kill -TERM "$pid"
  wait "$spid" || { echo "FAIL: mtld exited with status $? on SIGTERM"; exit 1; }
  pid=
  spid=
}
req() { # curl that fails on an HTTP error
  curl -sS --fail-with-body --max-time 120 "$@"
  echo
}

run_mtld "$tmp/trace1"
gzip -c "$SRC/data/stackoverflow/stackoverflow.csv" >"$tmp/so.csv.gz"
req -X POST "$U/v1/datasets?name=so" -H 'Content-Type: text/csv' \
  -H 'Content-Encoding: gzip' --data-binary @"$tmp/so.csv.gz" >/dev/null
req -X POST "$U/v1/tasks" -H 'Content-Type: application/json' \
  -d '{"name":"salary","dataset":"so","target":"salary","kind":"regression"}' >/dev/null
req -X POST "$U/v1/tasks" -H 'Content-Type: application/json' \
  -d '{"name":"remote","dataset":"so","target":"remote","kind":"classification"}' >/dev/null
req -X POST "$U/v1/jobs" -H 'Content-Type: application/json' \
  -d '{"algorithm":"multitask","tasks":["salary","remote"],"model":{"trunk":[16]},
       "epochs":2,"checkpoint_every":20}' >/dev/null
state=
for _ in $(seq 1200); do
  state=$(curl -s "$U/v1/jobs/1" | grep -o '"state": *"[a-z]*"' | head -1 | grep -o '[a-z]*"$' | tr -d '"' || true)
  case "$state" in succeeded | failed | cancelled) break ;; esac
  sleep 0.1
done
[ "$state" = succeeded ] || { echo "FAIL: job state '$state'"; curl -s "$U/v1/jobs/1"; exit 1; }
req "$U/v1/jobs/1/metrics?format=csv" >/dev/null
req -o "$tmp/ck.safetensors" "$U/v1/jobs/1/checkpoints/latest"
head -21 "$SRC/data/stackoverflow/stackoverflow.csv" |
  req -X POST "$U/v1/jobs/1/predict?task=remote" -H 'Content-Type: text/csv' \
    --data-binary @- >/dev/null
req "$U/v1/jobs/1/events" >/dev/null # ended job: the stream closes itself
req "$U/metrics" >/dev/null
kill -HUP "$pid"
for _ in $(seq 100); do grep -q event=log_reopened "$tmp/mtld.log" && break; sleep 0.1; done
stop_mtld
run_mtld "$tmp/trace2" # the existing database, migrations checked
req "$U/v1/jobs/1" >/dev/null
stop_mtld

# --- the verdict --------------------------------------------------------------
cat "$tmp/trace1" "$tmp/trace2" >"$tmp/trace"
sed -nE 's/^[0-9]+ +([a-z0-9_]+)\(.*/\1/p' "$tmp/trace" | sort -u >"$tmp/used"
n_used=$(wc -l <"$tmp/used")
# Refused calls known to be harmless, each with its reason:
#  mbind  OpenBLAS's mbind(MPOL_PREFERRED, empty mask) on its buffer asks for
#         the default policy and ignores the result (the unit says so);
#  fchown SQLite gives new -wal/-shm files the database's owner only when
#         running as root; the unit runs as the mtld user.
tolerated="mbind"
[ "$(id -u)" -eq 0 ] && tolerated="$tolerated fchown"
bad=$(comm -23 "$tmp/used" "$tmp/allowed" | grep -vxF -f <(printf '%s\n' $tolerated) || true)
fail=0
if [ -n "$bad" ]; then
  echo "FAIL: system calls the unit's SystemCallFilter= would refuse:"
  for c in $bad; do echo "  $c: $(grep -m1 -E "^[0-9]+ +$c\(" "$tmp/trace")"; done
  fail=1
fi
for fam in $(sed -nE 's/^[0-9]+ +socket\((AF_[A-Z0-9]+),.*/\1/p' "$tmp/trace" | sort -u); do
  case " $families " in *" $fam "*) ;; *) echo "FAIL: socket($fam) not in RestrictAddressFamilies=$families"; fail=1 ;; esac
done
# (glibc's malloc reads /proc/sys/vm/overcommit_memory when it trims a
# thread's heap; hidden, it assumes the default overcommit mode: the unit
# says so.)
procs=$(sed -nE 's/^[0-9]+ +open(at)?\([^"]*"(\/proc\/[^"]*)".*/\2/p' "$tmp/trace" |
  grep -vE '^/proc/(self|thread-self|[0-9]+)(/|$)' |
  grep -vx /proc/sys/vm/overcommit_memory | sort -u || true)
if [ -n "$procs" ]; then
  echo "FAIL: /proc files ProcSubset=pid hides: $procs"
  fail=1
fi
# Files opened for writing: only under the data dir (StateDirectory), the
# log and ready files of this test, and /dev/null.
writes=$(grep -E '^[0-9]+ +openat\(.*O_(WRONLY|RDWR)' "$tmp/trace" |
  sed -nE 's/^[0-9]+ +openat\([^"]*"([^"]*)".*/\1/p' |
  grep -vE "^($tmp/|/dev/null$)" | sort -u || true)
if [ -n "$writes" ]; then
  echo "FAIL: files written outside the data directory (ProtectSystem=strict): $writes"
  fail=1
fi
[ $fail -eq 0 ] || exit 1
echo "ok: $n_used distinct system calls, all allowed by $(basename "$UNIT") ($(wc -l <"$tmp/allowed") allowed);" \
  "socket families: $(sed -nE 's/^[0-9]+ +socket\((AF_[A-Z0-9]+),.*/\1/p' "$tmp/trace" | sort -u | tr '\n' ' ')"
