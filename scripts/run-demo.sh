#!/usr/bin/env bash
# Runs smime-milter against the demo token store created by make-test-pki.sh.
#   scripts/run-demo.sh BINARY DEMO_DIR
set -euo pipefail
bin=$1
demo=$2
export SOFTHSM2_CONF="$demo/softhsm2.conf"
module=/usr/lib/softhsm/libsofthsm2.so

echo "Demo token store: $demo (SOFTHSM2_CONF=$SOFTHSM2_CONF)"
echo "Tokens and keys on it, with the URIs to put in the signing table:"
echo
"$bin" tokens --module "$module" \
    --pin-source "STTTT-DienBien=file:$demo/pins/STTTT-DienBien" \
    --pin-source "UBND-MuongLay=file:$demo/pins/UBND-MuongLay"
echo
echo "Signing rate of the demo unit key:"
"$bin" bench token --module "$module" --seconds 1 \
    --key "pkcs11:token=STTTT-DienBien;object=unit-seal;type=private?pin-source=file:$demo/pins/STTTT-DienBien"
echo
echo "A message signed with the demo unit key (smime-milter sign):"
signed="$demo/demo-signed.eml"
"$bin" sign --module "$module" --chain "$demo/ca/chain.pem" \
    --key "pkcs11:token=STTTT-DienBien;object=unit-seal;type=private?pin-source=file:$demo/pins/STTTT-DienBien" \
    Tests/MIMETests/Corpus/02-utf8-8bit-vietnamese.eml >"$signed"
sed -n '1,/^\r\?$/p' "$signed"
echo "... (written to $signed)"
echo
echo "What verification adds to it as incoming mail (smime-milter verify):"
"$bin" verify --trust "$demo/ca/root.pem" --crl-directory "$demo/crl" --revocation crl \
    --authserv-id mail.dienbien.gov.vn --from stttt@dienbien.gov.vn "$signed"
echo
echo "openssl cms -verify on the same file:"
openssl cms -verify -in "$signed" -CAfile "$demo/ca/root.pem" -out /dev/null
