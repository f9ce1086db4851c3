#!/usr/bin/env bash
# Writes the demo configuration and signing table for the token store of make-test-pki.sh.
#   scripts/demo-config.sh DEMO_DIR SOCKET
set -euo pipefail
demo=$1
socket=$2
user=$(id -un)
cat >"$demo/signing-table" <<TABLE
# The person with her own certificate signs as herself; the rest of each unit with its seal.
vanthu.stttt@dienbien.gov.vn  pkcs11:token=STTTT-DienBien;object=vanthu;type=private?pin-source=file:$demo/pins/STTTT-DienBien  chain=$demo/ca/chain.pem
*@stttt.dienbien.gov.vn       pkcs11:token=STTTT-DienBien;object=unit-seal;type=private?pin-source=file:$demo/pins/STTTT-DienBien  chain=$demo/ca/chain.pem
*@muonglay.dienbien.gov.vn    pkcs11:token=UBND-MuongLay;object=unit-seal;type=private?pin-source=file:$demo/pins/UBND-MuongLay  chain=$demo/ca/chain.pem
TABLE
cat >"$demo/smime-milter.conf" <<CONF
# The demo configuration (make run): demo tokens and CA under $demo.
Socket            $socket
UMask             000
UserID            $user
Syslog            no
AuthservID        mail.dienbien.gov.vn
MTA               ORIGINATING
SigningTable      $demo/signing-table
PKCS11Module      /usr/lib/softhsm/libsofthsm2.so
TrustAnchors      $demo/ca/root.pem
CRLDirectory      $demo/crl
RevocationCheck   crl
StateDirectory    $demo
CONF
