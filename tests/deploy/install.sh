#!/usr/bin/env bash
# tests/deploy/install.sh BUILD — `cmake --install` puts everything where
# docs/operations.md says (into a scratch DESTDIR):
#  - --prefix /usr: both binaries, the units, sysusers/tmpfiles snippets,
#    /etc/mtld/mtld.conf, the man pages, the bash completion, the docs, and
#    nothing else; the installed binary runs;
#  - the sysusers snippet creates the mtld user and the tmpfiles snippet its
#    directory, in the scratch root (systemd-sysusers/-tmpfiles --root);
#  - --prefix /usr/local: the unit names /usr/local/bin/mtld and
#    /usr/local/etc/mtld/mtld.conf, where the config went.
set -euo pipefail
trap 'echo "FAIL: line $LINENO: $BASH_COMMAND (status $?)"' ERR
BUILD=$1
SRC=$(cd "$(dirname "$0")/../.." && pwd)
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
fail=0

DESTDIR=$root/usr-prefix cmake --install "$BUILD" --prefix /usr >/dev/null
r=$root/usr-prefix
expect=(
  usr/bin/mtld usr/bin/mtlctl
  usr/lib/systemd/system/mtld.service usr/lib/systemd/system/mtld.socket
  usr/lib/sysusers.d/mtld.conf usr/lib/tmpfiles.d/mtld.conf
  etc/mtld/mtld.conf
  usr/share/man/man8/mtld.8.gz usr/share/man/man1/mtlctl.1.gz
  usr/share/bash-completion/completions/mtlctl
  usr/share/doc/mtld/README.md usr/share/doc/mtld/guide.md usr/share/doc/mtld/api.md
  usr/share/doc/mtld/operations.md usr/share/doc/mtld/architecture.md
  usr/share/doc/mtld/openapi.yaml
)
for f in "$SRC"/examples/*; do expect+=("usr/share/doc/mtld/examples/$(basename "$f")"); done
for f in "${expect[@]}"; do
  [ -f "$r/$f" ] || { echo "FAIL: not installed: /$f"; fail=1; }
done
[ -x "$r/usr/bin/mtld" ] && "$r/usr/bin/mtld" --version | grep -q '^mtld ' ||
  { echo "FAIL: the installed mtld does not run"; fail=1; }
cmp -s "$r/etc/mtld/mtld.conf" "$SRC/systemd/mtld.conf" || { echo "FAIL: mtld.conf differs"; fail=1; }
zcat "$r/usr/share/man/man8/mtld.8.gz" | cmp -s - "$SRC/docs/mtld.8" || { echo "FAIL: mtld.8.gz"; fail=1; }
# Nothing else: no stray files (build output, tests) in the install.
extra=$(cd "$r" && find . -type f | sed 's|^\./||' | sort |
  grep -vxF -f <(printf '%s\n' "${expect[@]}") || true)
[ -z "$extra" ] || { echo "FAIL: unexpected files installed:"; echo "$extra"; fail=1; }

if command -v systemd-sysusers >/dev/null && command -v systemd-tmpfiles >/dev/null; then
  mkdir -p "$root/sys/etc"
  systemd-sysusers --root="$root/sys" "$r/usr/lib/sysusers.d/mtld.conf" 2>/dev/null
  grep -q '^mtld:x:[0-9]*:[0-9]*:[^:]*:/var/lib/mtld:/usr/sbin/nologin$' "$root/sys/etc/passwd" ||
    { echo "FAIL: sysusers did not create the mtld user"; cat "$root/sys/etc/passwd"; fail=1; }
  uid=$(awk -F: '$1 == "mtld" { print $3 }' "$root/sys/etc/passwd")
  (( uid < 1000 )) || { echo "FAIL: mtld is not a system user (uid $uid)"; fail=1; }
  systemd-tmpfiles --root="$root/sys" --create "$r/usr/lib/tmpfiles.d/mtld.conf"
  [ "$(stat -c '%a %u' "$root/sys/var/lib/mtld")" = "750 $uid" ] ||
    { echo "FAIL: /var/lib/mtld: $(stat -c '%a %u' "$root/sys/var/lib/mtld")"; fail=1; }
fi

DESTDIR=$root/local cmake --install "$BUILD" --prefix /usr/local >/dev/null
grep -qx 'ExecStart=/usr/local/bin/mtld --config /usr/local/etc/mtld/mtld.conf' \
  "$root/local/usr/local/lib/systemd/system/mtld.service" ||
  { echo "FAIL: /usr/local unit: $(grep ExecStart "$root/local/usr/local/lib/systemd/system/mtld.service")"; fail=1; }
[ -f "$root/local/usr/local/etc/mtld/mtld.conf" ] || { echo "FAIL: no /usr/local/etc/mtld/mtld.conf"; fail=1; }
[ $fail -eq 0 ] && echo "ok: ${#expect[@]} files installed, user and directory created, /usr/local paths"
exit $fail
