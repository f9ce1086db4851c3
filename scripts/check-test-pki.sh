#!/usr/bin/env bash
# Makes the test PKI once (scripts/make-test-pki.sh, as the tests do) and then N times the
# PKCS#12 file of its file-only key, imported into a new gpgsm home and a new NSS database
# exactly as Tests/TestSupport/IndependentTools.swift does: refused files are replaced by new
# ones, up to five. Prints how many files gpgsm or pk12util refused and how many setups failed
# (all five refused: the tests that need gpgsm would fail); exits 1 if any setup failed.
#
#   scripts/check-test-pki.sh [N]     (default 500; 500 took 36 minutes on a busy 2-core machine)
set -uo pipefail

rounds=${1:-500}
repository=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/check-test-pki.XXXXXX)
trap 'rm -rf "$work"' EXIT
pki=$work/pki
bash "$repository/scripts/make-test-pki.sh" "$pki" >"$work/make-test-pki.log" 2>&1 || {
    cat "$work/make-test-pki.log"
    echo "check-test-pki: making the test PKI failed" >&2
    exit 1
}
# The same protection as IndependentTools.pkcs12Protection.
protection=(-keypbe PBE-SHA1-3DES -certpbe NONE -macalg sha1)

refused=0
failed=0
for round in $(seq "$rounds"); do
    home=$work/round/gnupg
    nss=$work/round/nss
    rm -rf "$work/round"
    mkdir -p "$home" "$nss"
    chmod 0700 "$home"
    printf 'disable-crl-checks\ndisable-policy-checks\n' >"$home/gpgsm.conf"
    printf 'allow-loopback-pinentry\n' >"$home/gpg-agent.conf"
    gpg-connect-agent --homedir "$home" /bye </dev/null >/dev/null 2>&1
    GNUPGHOME=$home gpgsm --batch --import "$pki/ca/root.pem" "$pki/ca/intermediate.pem" >/dev/null 2>&1
    imported=
    for attempt in 1 2 3 4 5; do
        p12=$work/round/vanphong-$attempt.p12
        openssl pkcs12 -export -inkey "$pki/certs/vanphong.key" -in "$pki/certs/vanphong.pem" \
            -certfile "$pki/ca/intermediate.pem" -passout pass:test -out "$p12" "${protection[@]}"
        if echo test | GNUPGHOME=$home gpgsm --batch --pinentry-mode loopback --passphrase-fd 0 --import "$p12" \
            >"$work/round/gpgsm.log" 2>&1; then
            imported=$p12
            break
        fi
        refused=$((refused + 1))
        echo "round $round: gpgsm refused file $attempt: $(grep -v 'dirmngr\|issuer certificate\|trying charset' "$work/round/gpgsm.log" | head -2 | tr '\n' ' ')"
    done
    if [ -z "$imported" ]; then
        failed=$((failed + 1))
    else
        certutil -N -d "sql:$nss" --empty-password >/dev/null 2>&1
        if ! pk12util -i "$imported" -d "sql:$nss" -W test >"$work/round/pk12util.log" 2>&1; then
            failed=$((failed + 1))
            echo "round $round: pk12util refused the file: $(cat "$work/round/pk12util.log")"
        fi
    fi
    gpgconf --homedir "$home" --kill all >/dev/null 2>&1
done
echo "check-test-pki: $rounds setups, $refused PKCS#12 files refused by gpgsm and replaced, $failed setups failed"
[ "$failed" -eq 0 ]
