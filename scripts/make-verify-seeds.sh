#!/usr/bin/env bash
# Writes the seed corpus of the verifying-path fuzz target (VerifyFuzz) into the directory given:
# a throwaway test CA (trust.pem, which the target trusts) and a few signed messages made with
# keys generated here and thrown away: detached and opaque signatures that pass, a tampered one,
# a signer no one trusts, a From address the certificate does not name, a SHA-1 signature, a
# signature inside a multipart/mixed. No network, no token.
#
#   scripts/make-verify-seeds.sh DIR
set -euo pipefail

dir=${1:?usage: make-verify-seeds.sh DIR}
mkdir -p "$dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat >"$work/ext.cnf" <<'CNF'
[ root ]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ inter ]
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ signer ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, nonRepudiation
extendedKeyUsage = emailProtection
subjectAltName = email:vanthu.stttt@dienbien.gov.vn
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/$1.key" 2>/dev/null; }
key root
key inter
key signer
key stranger
openssl req -new -x509 -key "$work/root.key" -out "$work/root.pem" -days 36500 -utf8 \
    -subj "/C=VN/O=Fuzz Test Root/CN=Fuzz Test Root CA" -extensions root -config <(cat /etc/ssl/openssl.cnf "$work/ext.cnf") 2>/dev/null
openssl req -new -key "$work/inter.key" -subj "/C=VN/O=Fuzz Test Root/CN=Fuzz Test Intermediate" -out "$work/inter.csr"
openssl x509 -req -in "$work/inter.csr" -CA "$work/root.pem" -CAkey "$work/root.key" -set_serial 2 -days 36500 \
    -extfile "$work/ext.cnf" -extensions inter -out "$work/inter.pem" 2>/dev/null
openssl req -new -key "$work/signer.key" -utf8 -subj "/C=VN/O=Sở Thông tin và Truyền thông/CN=Văn thư/emailAddress=vanthu.stttt@dienbien.gov.vn" \
    -out "$work/signer.csr"
openssl x509 -req -in "$work/signer.csr" -CA "$work/inter.pem" -CAkey "$work/inter.key" -set_serial 3 -days 36500 \
    -extfile "$work/ext.cnf" -extensions signer -out "$work/signer.pem" 2>/dev/null
openssl req -new -x509 -key "$work/stranger.key" -subj "/CN=Stranger/emailAddress=vanthu.stttt@dienbien.gov.vn" -days 36500 \
    -addext "subjectAltName=email:vanthu.stttt@dienbien.gov.vn" -addext "extendedKeyUsage=emailProtection" -out "$work/stranger.pem" 2>/dev/null
cp "$work/root.pem" "$dir/trust.pem"

date=$(date -u -R)
header() { # FROM SUBJECT
    printf 'From: =?UTF-8?Q?V=C4=83n_th=C6=B0?= <%s>\r\nTo: ubnd@muonglay.dienbien.gov.vn\r\nDate: %s\r\nMessage-ID: <%s@dienbien.gov.vn>\r\nSubject: %s\r\n' \
        "$1" "$date" "$RANDOM$RANDOM" "$2"
}
inner() {
    printf 'Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nK=C3=ADnh g=E1=BB=ADi =E1=BB=A6y ban.\r\n'
}
sign() { # SIGNER-CERT SIGNER-KEY DIGEST [openssl options...]
    local cert=$1 keyfile=$2 md=$3
    shift 3
    inner >"$work/inner.mime"
    openssl cms -sign -binary -crlfeol -in "$work/inner.mime" -signer "$cert" -inkey "$keyfile" -md "$md" \
        -certfile "$work/inter.pem" "$@"
}
from=vanthu.stttt@dienbien.gov.vn
subject='=?UTF-8?B?Q8O0bmcgdsSDbiBz4buRIDE=?='
{ header "$from" "$subject"; sign "$work/signer.pem" "$work/signer.key" sha256; } >"$dir/01-detached-pass.eml"
{ header "$from" "$subject"; sign "$work/signer.pem" "$work/signer.key" sha256 -nodetach; } >"$dir/02-opaque-pass.eml"
sed 's/g=E1=BB=ADi/g=E1=BB=ADI/' "$dir/01-detached-pass.eml" >"$dir/03-tampered.eml"
{ header "$from" "Stranger"; sign "$work/stranger.pem" "$work/stranger.key" sha256; } >"$dir/04-untrusted.eml"
{ header "other@dienbien.gov.vn" "Not the signer"; sign "$work/signer.pem" "$work/signer.key" sha256; } >"$dir/05-from-mismatch.eml"
{ header "$from" "SHA-1"; sign "$work/signer.pem" "$work/signer.key" sha1; } >"$dir/06-sha1.eml"
{
    header "$from" "Forwarded"
    printf 'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="outer"\r\n\r\n--outer\r\nContent-Type: text/plain\r\n\r\nSee below.\r\n--outer\r\n'
    sign "$work/signer.pem" "$work/signer.key" sha256 | sed -n '/^MIME-Version/,$p' | tail -n +2
    printf '\r\n--outer--\r\n'
} >"$dir/07-signed-inside-mixed.eml"
