#!/usr/bin/env bash
# Installs the Debian packages smime-milter builds, runs and is tested with, when missing.
#   scripts/install-deps.sh          what the build and `make run` need
#   scripts/install-deps.sh test     plus the independent verifiers and peers the tests use
#   scripts/install-deps.sh bench    plus OpenDKIM, the baseline milter of the Postfix benchmark,
#                                    and valgrind for scripts/profile-signing.py
#   scripts/install-deps.sh deb      plus Debian's package tools (make deb, make test-deb)
set -euo pipefail

packages=(libmilter-dev libssl-dev libp11-kit-dev libsqlite3-dev libpq-dev p11-kit p11-kit-modules softhsm2 opensc openssl pkg-config)
if [ "${1:-}" = test ] || [ "${1:-}" = bench ]; then
    # gcc builds the hardware-like PKCS#11 test module (Tests/HardwareToken).
    packages+=(gpgsm libnss3-tools postfix swaks python3-pip gcc)
    # PostgreSQL 15 for the shared records database (initdb and pg_ctl, started by the tests).
    packages+=(postgresql)
    # Headless Chromium renders the HTML report in a test; DejaVu has the Vietnamese letters.
    packages+=(chromium fonts-dejavu-core)
    # systemd-analyze verifies the shipped unit files.
    packages+=(systemd)
    # Prometheus scrapes the daemon and promtool checks and unit-tests the alert rules.
    packages+=(prometheus)
fi
if [ "${1:-}" = bench ]; then
    packages+=(opendkim valgrind)
fi
if [ "${1:-}" = deb ]; then
    packages+=(debhelper dpkg-dev lintian mmdebstrap rsync)
fi

missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done

if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing Debian packages: ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}" >&2
        exit 1
    fi
    echo "installing: ${missing[*]}"
    # Postfix asks how to configure itself; the tests run their own instances, so: none.
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    echo "postfix postfix/mailname string localhost" | debconf-set-selections
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if { [ "${1:-}" = test ] || [ "${1:-}" = bench ]; } && ! python3 -c "import miltertest, cryptography" 2>/dev/null; then
    # Debian's own Python refuses system-wide pip installs unless told (PEP 668).
    # cryptography: test_hostile.py makes the attacker's certificates and signatures.
    python3 -m pip install -q miltertest pytest cryptography 2>/dev/null ||
        python3 -m pip install -q --break-system-packages miltertest pytest cryptography
fi
