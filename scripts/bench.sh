#!/usr/bin/env bash
# Benchmarks, each with its baseline in the same run.
#   scripts/bench.sh BINARY DEMO_DIR
set -euo pipefail
bin=$1
demo=$2
export SOFTHSM2_CONF="$demo/softhsm2.conf"
module=/usr/lib/softhsm/libsofthsm2.so
seconds=${BENCH_SECONDS:-3}

echo "== token: raw C_Sign on one session versus the session pool (RSA-2048)"
"$bin" bench token --module "$module" --seconds "$seconds" \
    --key "pkcs11:token=STTTT-DienBien;object=unit-seal;type=private?pin-source=file:$demo/pins/STTTT-DienBien"
echo
echo "== token: ECDSA P-256"
"$bin" bench token --module "$module" --seconds "$seconds" \
    --key "pkcs11:token=UBND-MuongLay;object=unit-seal;type=private?pin-source=file:$demo/pins/UBND-MuongLay"
echo
echo "== OpenSSL's own RSA-2048 signing rate on this machine (software key, for comparison)"
openssl speed -seconds "$seconds" rsa2048 2>/dev/null | grep -E "^rsa 2048|^ *sign" || true
echo
echo "== MIME: parse and prepare a 25 MB attachment (baselines: a plain copy, Foundation's base64)"
"$bin" bench mime --megabytes 25
echo
echo "== S/MIME: whole messages signed with the token and verified in-process, beside openssl cms -verify"
"$bin" bench smime --module "$module" --seconds "$seconds" --trust "$demo/ca/root.pem" --chain "$demo/ca/chain.pem" \
    --key "pkcs11:token=STTTT-DienBien;object=unit-seal;type=private?pin-source=file:$demo/pins/STTTT-DienBien"
echo
echo "== Through Postfix: smtp-source -> loopback Postfix -> smtp-sink, no milter / OpenDKIM / smime-milter"
mkdir -p state
python3 scripts/bench-postfix.py "$bin" "$demo" state/bench-postfix.json
echo "(JSON: state/bench-postfix.json)"
