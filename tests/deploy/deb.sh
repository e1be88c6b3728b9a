#!/usr/bin/env bash
# tests/deploy/deb.sh BUILD — `cpack -G DEB` builds the package, and it is
# what docs/operations.md promises. Checked from the .deb itself:
#  - its contents (dpkg-deb -c): the binaries, units, sysusers/tmpfiles
#    snippets, /etc/mtld/mtld.conf, man pages and docs, nothing under
#    /usr/local, the config a conffile;
#  - Depends: the runtime library packages, each a real package installed on
#    this machine (the build links against them), none of the -dev ones;
#  - it installs (dpkg --root into a scratch root, maintainer scripts run
#    chroot-less with DPKG_ROOT): the mtld system user exists afterwards, its
#    data directory belongs to it, no unit is enabled (no .wants links), and
#    the installed mtld runs; removal keeps the data and the config.
# Exit 77 (skipped) without dpkg-deb or cpack.
set -euo pipefail
trap 'echo "FAIL: line $LINENO: $BASH_COMMAND (status $?)"' ERR
BUILD=$1
for t in dpkg-deb dpkg cpack; do command -v $t >/dev/null || { echo "skip: no $t"; exit 77; }; done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
no() { echo "FAIL: $*"; fail=1; }

(cd "$BUILD" && cpack -G DEB -B "$tmp/out" >"$tmp/cpack.log" 2>&1) || { cat "$tmp/cpack.log"; exit 1; }
deb=$(ls "$tmp"/out/mtld_*.deb)
echo "built $(basename "$deb") ($(stat -c %s "$deb") bytes)"
dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\./|/|' >"$tmp/list"
cat "$tmp/list"
for f in /usr/bin/mtld /usr/bin/mtlctl /usr/lib/systemd/system/mtld.service \
  /usr/lib/systemd/system/mtld.socket /usr/lib/sysusers.d/mtld.conf /usr/lib/tmpfiles.d/mtld.conf \
  /etc/mtld/mtld.conf /usr/share/man/man8/mtld.8.gz /usr/share/man/man1/mtlctl.1.gz \
  /usr/share/bash-completion/completions/mtlctl \
  /usr/share/doc/mtld/README.md /usr/share/doc/mtld/operations.md; do
  grep -qxF "$f" "$tmp/list" || no "$f is not in the package"
done
! grep -q '^/usr/local' "$tmp/list" || no "files under /usr/local"

dpkg-deb -e "$deb" "$tmp/ctl"
grep -qxF /etc/mtld/mtld.conf "$tmp/ctl/conffiles" || no "/etc/mtld/mtld.conf is not a conffile"
for s in postinst prerm; do sh -n "$tmp/ctl/$s" || no "$s does not parse"; done
! grep -Eq 'systemctl +(--[a-z-]+ +)*(enable|start)|deb-systemd-helper +enable' "$tmp/ctl/postinst" ||
  no "postinst enables or starts something"

depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
for lib in libc6 libsqlite3-0 libmicrohttpd libjansson4 libopenblas libcurl; do
  grep -q "$lib" <<<"$depends" || no "Depends lacks $lib"
done
for p in $(tr ',|' '\n\n' <<<"$depends" | sed -E 's/\(.*\)//; s/ //g' | grep .); do
  case "$p" in *-dev) no "Depends on a -dev package: $p" ;; esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
    no "Depends names $p, which is not an installed package here"
done

# Install into a scratch root. The library packages are this machine's, not
# the root's, hence --force-depends; scripts run without chroot (DPKG_ROOT).
r=$tmp/root
mkdir -p "$r/var/lib/dpkg/info" "$r/var/lib/dpkg/updates" "$r/etc"
: >"$r/var/lib/dpkg/status"
dpkg --root="$r" --force-script-chrootless --force-depends --log=/dev/null -i "$deb" \
  >"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log"; exit 1; }
dpkg --root="$r" -s mtld | grep -q '^Status: install ok installed' || no "not installed"
if command -v systemd-sysusers >/dev/null; then
  grep -q '^mtld:x:' "$r/etc/passwd" 2>/dev/null || no "installing did not create the mtld user"
  uid=$(awk -F: '$1 == "mtld" { print $3 }' "$r/etc/passwd")
  [ "$(stat -c %u "$r/var/lib/mtld" 2>/dev/null)" = "$uid" ] || no "/var/lib/mtld is not mtld's"
fi
wants=$(find "$r" -path '*.wants/*' 2>/dev/null || true)
[ -z "$wants" ] || no "installing enabled units: $wants"
"$r/usr/bin/mtld" --version | grep -q "^mtld " || no "the installed mtld does not run"
dpkg --root="$r" --force-script-chrootless --log=/dev/null -r mtld >>"$tmp/dpkg.log" 2>&1 ||
  { cat "$tmp/dpkg.log"; no "removal failed"; }
[ ! -e "$r/usr/bin/mtld" ] || no "removal left /usr/bin/mtld"
[ -f "$r/etc/mtld/mtld.conf" ] || no "removal (not purge) dropped the conffile"
[ -d "$r/var/lib/mtld" ] || no "removal dropped /var/lib/mtld"
[ $fail -eq 0 ] && echo "ok: contents, conffile, Depends, install (user, nothing enabled), removal"
exit $fail
