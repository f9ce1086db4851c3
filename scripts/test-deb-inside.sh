#!/usr/bin/env bash
# Runs inside the fresh Debian 12 root of scripts/test-deb.sh, as root: the package's life from
# install to purge. Arguments: the package's version and the rebuild's.
set -euo pipefail
version=$1
next=$2
export DEBIAN_FRONTEND=noninteractive
conf=/etc/smime-milter/smime-milter.conf
fail() { echo "test-deb: FAILED: $*" >&2; exit 1; }
step() { echo "== $*"; }

apt-get update -qq

step "Postfix first (no daemon starts in this root: policy-rc.d says no)"
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
chmod +x /usr/sbin/policy-rc.d
apt-get install -y -q --no-install-recommends postfix >/srv/postfix.log 2>&1 || { cat /srv/postfix.log; fail "installing postfix"; }

step "install: only Debian packages come with it, none of them Swift"
apt-get install -y -q --no-install-recommends "/srv/debs/smime-milter_${version}_amd64.deb" >/srv/install.log 2>&1 ||
    { cat /srv/install.log; fail "apt-get install"; }
grep -E "^(Get|Unpacking) " /srv/install.log | sed 's/^/   /' | head -40
! dpkg-query -W -f '${Package}\n' | grep -i swift || fail "a Swift package was installed"
grep -q "is installed but not started" /srv/install.log || fail "postinst did not say the daemon is not configured"
grep -A3 "is installed but not started" /srv/install.log | sed 's/^/   /'

step "the binary: version, no Swift library"
[ "$(smime-milter --version)" = "$version" ] || fail "smime-milter --version says $(smime-milter --version), not $version"
ldd /usr/sbin/smime-milter | sed 's/^/   /'
! ldd /usr/sbin/smime-milter | grep -Ei "swift|not found" || fail "a Swift library or a missing library is linked"

step "layout, user, group"
for path in /usr/sbin/smime-milter /lib/systemd/system/smime-milter.service /usr/lib/sysusers.d/smime-milter.conf \
    /lib/systemd/system/smime-milter-report.service /lib/systemd/system/smime-milter-report.timer \
    /usr/lib/tmpfiles.d/smime-milter.conf /usr/share/man/man8/smime-milter.8.gz /usr/share/man/man5/smime-milter.conf.5.gz \
    /usr/share/doc/smime-milter/examples/smime-milter.conf.sample /usr/share/smime-milter/trust/vgca-root-2010.pem "$conf"; do
    [ -e "$path" ] || fail "$path is missing"
done
dpkg-query --showformat='${Conffiles}\n' --show smime-milter | grep -q " $conf " || fail "$conf is not a conffile"
# The monthly report timer ships disabled: it needs ReportMailTo and ReportMailFrom first.
[ ! -e /etc/systemd/system/timers.target.wants/smime-milter-report.timer ] || fail "the report timer was enabled on install"
getent passwd smime-milter >/dev/null || fail "no smime-milter user"
id -nG postfix | tr ' ' '\n' | grep -qx smime-milter || fail "postfix is not in the smime-milter group"
[ "$(stat -c '%U %G %a' /var/spool/postfix/smime-milter)" = "smime-milter postfix 750" ] ||
    fail "/var/spool/postfix/smime-milter: $(stat -c '%U %G %a' /var/spool/postfix/smime-milter)"
[ "$(stat -c '%U %a' /etc/smime-milter/pins)" = "smime-milter 700" ] || fail "/etc/smime-milter/pins: $(stat -c '%U %a' /etc/smime-milter/pins)"

step "unconfigured: check-config refuses with a clear line"
if smime-milter check-config --no-tokens --config "$conf" >/srv/check.log 2>&1; then fail "an unconfigured file passed"; fi
grep "not configured yet" /srv/check.log | sed 's/^/   /' || { cat /srv/check.log; fail "no 'not configured yet'"; }

step "configured with a SoftHSM token: check-config logs in and runs"
apt-get install -y -q --no-install-recommends softhsm2 p11-kit-modules >/dev/null 2>&1 || fail "installing softhsm2"
echo "directories.tokendir = /srv/pki/tokens" >/srv/pki/softhsm2.conf
export SOFTHSM2_CONF=/srv/pki/softhsm2.conf
chown smime-milter: /srv/pki/pins/*
chmod 0400 /srv/pki/pins/*
cat >/srv/signing-table <<TABLE
*@stttt.dienbien.gov.vn  pkcs11:token=STTTT-DienBien;object=unit-seal;type=private?pin-source=file:/srv/pki/pins/STTTT-DienBien  chain=/srv/pki/ca/chain.pem
TABLE
sed -i -e 's|^#SigningTable .*|SigningTable    /srv/signing-table|' \
    -e 's|^#TrustAnchors .*|TrustAnchors    /usr/share/smime-milter/trust, /srv/pki/ca/root.pem|' "$conf"
echo "# local change: kept on upgrade" >>"$conf"
smime-milter check-config --config "$conf" >/srv/check.log 2>&1 || { cat /srv/check.log; fail "check-config"; }
sed 's/^/   /' /srv/check.log

step "upgrade to $next: local configuration kept, sample replaced"
apt-get install -y -q -o Dpkg::Options::=--force-confold "/srv/debs/smime-milter_${next}_amd64.deb" >/srv/upgrade.log 2>&1 ||
    { cat /srv/upgrade.log; fail "upgrade"; }
[ "$(dpkg-query -W -f '${Version}' smime-milter)" = "$next" ] || fail "not upgraded"
grep -q "local change: kept on upgrade" "$conf" || fail "the local configuration was overwritten"
grep -q "^SigningTable    /srv/signing-table" "$conf" || fail "the local SigningTable line was lost"
grep -q "sample changed in $next" /usr/share/doc/smime-milter/examples/smime-milter.conf.sample || fail "the sample was not upgraded"
[ -e "$conf.dpkg-dist" ] && echo "   the new default is beside it: $conf.dpkg-dist"
smime-milter check-config --config "$conf" --quiet >/dev/null 2>&1 || fail "check-config after the upgrade"

step "purge: nothing left"
apt-get purge -y -q smime-milter >/srv/purge.log 2>&1 || { cat /srv/purge.log; fail "purge"; }
left=$(find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /srv \) -prune -o -name '*smime-milter*' -print)
[ -z "$left" ] || fail "left after purge: $left"
[ ! -e /etc/smime-milter ] || fail "/etc/smime-milter is still there: $(ls -A /etc/smime-milter)"
echo "   nothing named smime-milter remains (the system user stays, as Debian keeps system users)"
