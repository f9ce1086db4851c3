#!/usr/bin/env bash
# Writes the demo configuration and signing table for the token store of make-test-pki.sh.
#   scripts/demo-config.sh DEMO_DIR SOCKET [OUT_DIR]   (OUT_DIR defaults to DEMO_DIR)
set -euo pipefail
demo=$1
socket=$2
out=${3:-$1}
user=$(id -un)
cat >"$out/signing-table" <<TABLE
# The person with her own certificate signs as herself; the rest of each unit with its seal.
vanthu.stttt@dienbien.gov.vn  pkcs11:token=STTTT-DienBien;object=vanthu;type=private?pin-source=file:$demo/pins/STTTT-DienBien  chain=$demo/ca/chain.pem
*@stttt.dienbien.gov.vn       pkcs11:token=STTTT-DienBien;object=unit-seal;type=private?pin-source=file:$demo/pins/STTTT-DienBien  chain=$demo/ca/chain.pem
*@muonglay.dienbien.gov.vn    pkcs11:token=UBND-MuongLay;object=unit-seal;type=private?pin-source=file:$demo/pins/UBND-MuongLay  chain=$demo/ca/chain.pem
TABLE
cat >"$out/units" <<UNITS
# The units the demo's records and report name (conf/units.sample lists the plan's 13).
vanthu.stttt@dienbien.gov.vn  Sở Thông tin và Truyền thông
*@stttt.dienbien.gov.vn       Sở Thông tin và Truyền thông
*@muonglay.dienbien.gov.vn    Ủy ban nhân dân thị xã Mường Lay
vanphong.ubnd@dienbien.gov.vn Ủy ban nhân dân tỉnh
UNITS
cat >"$out/smime-milter.conf" <<CONF
# The demo configuration (make run): demo tokens and CA under $demo.
Socket            $socket
UMask             000
UserID            $user
Syslog            no
AuthservID        mail.dienbien.gov.vn
MTA               ORIGINATING
SigningTable      $out/signing-table
PKCS11Module      /usr/lib/softhsm/libsofthsm2.so
TrustAnchors      $demo/ca/root.pem
CRLDirectory      $demo/crl
RevocationCheck   crl
StateDirectory    $out
Units             $out/units
CONF
