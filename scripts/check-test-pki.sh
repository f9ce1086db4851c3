#!/usr/bin/env bash
# Makes the test PKI once (scripts/make-test-pki.sh, as the tests do) and then N times the
# PKCS#12 file of its file-only key, imported into a new gpgsm home and a new NSS database
# exactly as Tests/TestSupport/IndependentTools.swift does: a file whose salt gpgsm 2.2 derives
# a wrong key for (scripts/pkcs12-gpgsm-check.py) is replaced before gpgsm sees it. Prints how
# many files were replaced, how many gpgsm or pk12util refused (each refusal fails its setup,
# as it fails the tests) and how many setups failed; exits 1 if any setup failed.
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

replaced=0
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
    for attempt in $(seq 20); do
        p12=$work/round/vanphong-$attempt.p12
        openssl pkcs12 -export -inkey "$pki/certs/vanphong.key" -in "$pki/certs/vanphong.pem" \
            -certfile "$pki/ca/intermediate.pem" -passout pass:test -out "$p12" "${protection[@]}"
        if python3 "$repository/scripts/pkcs12-gpgsm-check.py" "$p12" test >/dev/null; then
            imported=$p12
            break
        fi
        replaced=$((replaced + 1))
    done
    if [ -z "$imported" ]; then
        failed=$((failed + 1))
        echo "round $round: twenty files in a row had a salt gpgsm cannot use"
    elif ! echo test | GNUPGHOME=$home gpgsm --batch --pinentry-mode loopback --passphrase-fd 0 --import "$imported" \
        >"$work/round/gpgsm.log" 2>&1; then
        refused=$((refused + 1))
        failed=$((failed + 1))
        echo "round $round: gpgsm refused the file: $(grep -v 'dirmngr\|issuer certificate' "$work/round/gpgsm.log" | head -3 | tr '\n' ' ')"
    else
        certutil -N -d "sql:$nss" --empty-password >/dev/null 2>&1
        if ! pk12util -i "$imported" -d "sql:$nss" -W test >"$work/round/pk12util.log" 2>&1; then
            refused=$((refused + 1))
            failed=$((failed + 1))
            echo "round $round: pk12util refused the file: $(cat "$work/round/pk12util.log")"
        fi
    fi
    gpgconf --homedir "$home" --kill all >/dev/null 2>&1
done
echo "check-test-pki: $rounds setups, $replaced PKCS#12 files replaced before import, $refused refused by gpgsm or pk12util, $failed setups failed"
[ "$failed" -eq 0 ]
