#!/usr/bin/env bash
# Shows the demo token store created by make-test-pki.sh, signs and verifies a message with it,
# then runs the milter in the foreground with the demo configuration.
#   scripts/run-demo.sh BINARY DEMO_DIR [SOCKET]
set -euo pipefail
bin=$1
demo=$2
socket=${3:-inet:8893@127.0.0.1}
export SOFTHSM2_CONF="$demo/softhsm2.conf"
module=/usr/lib/softhsm/libsofthsm2.so
scripts/demo-config.sh "$demo" "$socket"

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
# The sample as the unit's office would send it: From is the seal's own address, dated now.
sample="$demo/demo-message.eml"
sed -e 's|^From: .*|From: =?UTF-8?B?U+G7nyBUaMO0bmcgdGluIHbDoCBUcnV54buBbiB0aMO0bmc=?= <stttt@dienbien.gov.vn>\r|' \
    -e "s|^Date: .*|Date: $(LC_ALL=C date -R)\r|" Tests/MIMETests/Corpus/02-utf8-8bit-vietnamese.eml >"$sample"
unit_key="pkcs11:token=STTTT-DienBien;object=unit-seal;type=private?pin-source=file:$demo/pins/STTTT-DienBien"
verify() { "$bin" verify --trust "$demo/ca/root.pem" --crl-directory "$demo/crl" --revocation crl \
    --authserv-id mail.dienbien.gov.vn "$1"; }

echo "A message from the unit's own address, signed with the demo unit key (smime-milter sign):"
signed="$demo/demo-signed.eml"
"$bin" sign --module "$module" --chain "$demo/ca/chain.pem" --key "$unit_key" "$sample" >"$signed"
sed -n '1,/^\r\?$/p' "$signed"
echo "... (written to $signed)"
echo
echo "What verification adds to it as incoming mail (smime-milter verify): the seal's address is"
echo "the From address, so it passes."
verify "$signed"
echo
echo "openssl cms -verify on the same file:"
openssl cms -verify -in "$signed" -CAfile "$demo/ca/root.pem" -out /dev/null
echo
echo "The same seal on mail from a member of staff's own address: the signature is good, but the"
echo "certificate's address is not the From address, so the verdict is policy, with the reason:"
staff="$demo/demo-signed-staff.eml"
sed -e 's|^From: .*|From: ketoan@stttt.dienbien.gov.vn\r|' "$sample" |
    "$bin" sign --module "$module" --chain "$demo/ca/chain.pem" --key "$unit_key" >"$staff"
verify "$staff"
echo
echo "check-config on the demo configuration:"
"$bin" check-config --config "$demo/smime-milter.conf"
echo
cat <<TEXT
Starting smime-milter on $socket (Ctrl-C stops it). Point a Postfix at it with these lines
in main.cf (on a real server: a local: socket under /var/spool/postfix, see README.md):

    smtpd_milters = inet:127.0.0.1:8893
    non_smtpd_milters = inet:127.0.0.1:8893
    milter_default_action = tempfail
    milter_protocol = 6

and for the submission service in master.cf:

    submission inet n - y - - smtpd
      -o milter_macro_daemon_name=ORIGINATING

Mail from *@stttt.dienbien.gov.vn and *@muonglay.dienbien.gov.vn is signed with the demo
tokens; mail from outside is verified against the demo CA. "make demo" shows both through a
Postfix of its own. Each message gets a record in $demo/events.sqlite; the province's report:

    $bin report --config $demo/smime-milter.conf --by month
TEXT
exec "$bin" run --config "$demo/smime-milter.conf" --stderr
