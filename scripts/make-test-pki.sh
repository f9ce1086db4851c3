#!/usr/bin/env bash
# Creates a complete test PKI and SoftHSM2 token store in the directory given:
# a UTF-8 Vietnamese root and intermediate CA, a CRL, tokens whose keys are generated on the
# token (never extractable) with their certificates stored beside them, and file-only
# certificates for the negative cases. Used by the tests, `make run` (demo) and the benchmarks.
#
#   scripts/make-test-pki.sh DIR
#
# Environment: CRL_BASE_URL (default http://127.0.0.1:18080/crl) is written into the
# certificates' CRL distribution points, CA_BASE_URL (http://127.0.0.1:18080/ca) into their CA
# issuers and OCSP_URL (http://127.0.0.1:18081/) into their OCSP responder; all three are written
# into DIR/env too (the tests choose free ports for them at run time). Nothing outside DIR is touched: the token store has
# its own softhsm2.conf (export SOFTHSM2_CONF=DIR/softhsm2.conf to use it).
set -euo pipefail

dir=${1:?usage: make-test-pki.sh DIR}
crl_base=${CRL_BASE_URL:-http://127.0.0.1:18080/crl}
# The intermediate's certificate is published beside the CRLs (CA issuers), the OCSP responder
# listens on the next port.
ca_base=${CA_BASE_URL:-http://127.0.0.1:18080/ca}
ocsp_url=${OCSP_URL:-http://127.0.0.1:18081/}
module=${SOFTHSM2_MODULE:-/usr/lib/softhsm/libsofthsm2.so}

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
# Bumped whenever what this script makes changes, so that an older demo directory is made anew.
pki_version=4
if [ "$(cat "$dir/.complete" 2>/dev/null)" = "$pki_version" ]; then
    exit 0
fi
rm -rf "$dir/tokens" "$dir/ca" "$dir/certs" "$dir/pins" "$dir/work" "$dir/hwtoken"
mkdir -p "$dir/tokens" "$dir/ca" "$dir/certs" "$dir/pins" "$dir/work"
chmod 0700 "$dir/pins"
work="$dir/work"

cat >"$dir/softhsm2.conf" <<EOF
directories.tokendir = $dir/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
EOF
export SOFTHSM2_CONF="$dir/softhsm2.conf"

so_pin=87654321
user_pin=123456

# MARK: OpenSSL configuration for the CAs (openssl ca keeps an index for the CRL)
ca_conf() { # NAME
    local name=$1
    mkdir -p "$dir/ca/$name.db"
    : >"$dir/ca/$name.db/index.txt"
    echo 1000 >"$dir/ca/$name.db/serial"
    echo 1000 >"$dir/ca/$name.db/crlnumber"
    cat >"$dir/ca/$name.cnf" <<EOF
[ ca ]
default_ca = this_ca
[ this_ca ]
database = $dir/ca/$name.db/index.txt
serial = $dir/ca/$name.db/serial
crlnumber = $dir/ca/$name.db/crlnumber
new_certs_dir = $dir/ca/$name.db
certificate = $dir/ca/$name.pem
private_key = $dir/ca/$name.key
default_md = sha256
default_days = 730
default_crl_days = 3650
policy = any
unique_subject = no
copy_extensions = none
utf8 = yes
string_mask = utf8only
[ any ]
countryName = optional
organizationName = optional
organizationalUnitName = optional
localityName = optional
stateOrProvinceName = optional
commonName = supplied
emailAddress = optional
[ req ]
distinguished_name = dn
utf8 = yes
string_mask = utf8only
prompt = no
[ dn ]
CN = placeholder
[ v3_root ]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ v3_intermediate ]
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
crlDistributionPoints = URI:$crl_base/root.crl
EOF
}

ee_ext() { # EMAIL EKU KEYUSAGE -> extension file path
    local f="$work/ext-$RANDOM$RANDOM.cnf"
    cat >"$f" <<EOF
basicConstraints = critical, CA:false
keyUsage = critical, $3
extendedKeyUsage = $2
subjectAltName = email:$1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
crlDistributionPoints = URI:$crl_base/intermediate.crl
authorityInfoAccess = OCSP;URI:$ocsp_url, caIssuers;URI:$ca_base/intermediate.der
EOF
    echo "$f"
}

# MARK: CA hierarchy
ca_conf root
ca_conf intermediate
ca_conf untrusted

openssl req -new -x509 -utf8 -nameopt utf8 -config "$dir/ca/root.cnf" -extensions v3_root \
    -newkey rsa:2048 -nodes -keyout "$dir/ca/root.key" -out "$dir/ca/root.pem" -days 3650 -sha256 \
    -subj "/C=VN/O=Ban Cơ yếu Chính phủ (TEST)/CN=TEST Chính phủ Root CA" 2>/dev/null

openssl req -new -utf8 -config "$dir/ca/intermediate.cnf" -newkey rsa:2048 -nodes \
    -keyout "$dir/ca/intermediate.key" -out "$work/intermediate.csr" \
    -subj "/C=VN/O=Ban Cơ yếu Chính phủ (TEST)/CN=TEST Cơ quan chứng thực số Chính phủ" 2>/dev/null
openssl ca -batch -notext -config "$dir/ca/root.cnf" -extensions v3_intermediate -days 3000 \
    -in "$work/intermediate.csr" -out "$dir/ca/intermediate.pem" 2>/dev/null

openssl req -new -x509 -utf8 -config "$dir/ca/untrusted.cnf" -extensions v3_root \
    -newkey rsa:2048 -nodes -keyout "$dir/ca/untrusted.key" -out "$dir/ca/untrusted.pem" -days 3650 \
    -subj "/C=VN/O=Không tin cậy (TEST)/CN=TEST Untrusted CA" 2>/dev/null

# MARK: certificates whose key lives on a token
p11() { pkcs11-tool --module "$module" "$@"; }

init_token() { # LABEL
    softhsm2-util --init-token --free --label "$1" --so-pin "$so_pin" --pin "$user_pin" >/dev/null
    printf '%s' "$user_pin" >"$dir/pins/$1"
    chmod 0600 "$dir/pins/$1"
}

# TOKEN ID LABEL KEYTYPE EMAIL SUBJECT
token_key() {
    local token=$1 id=$2 label=$3 keytype=$4 email=$5 subject=$6
    local base="$work/$token-$label"
    p11 --token-label "$token" --login --pin "$user_pin" --keypairgen --key-type "$keytype" \
        --id "$id" --label "$label" >/dev/null
    p11 --token-label "$token" --read-object --type pubkey --id "$id" -o "$base.pub.der" >/dev/null
    openssl pkey -pubin -inform DER -in "$base.pub.der" -out "$base.pub.pem"
    # The CSR carries only the subject: its throw-away key is replaced by the token's public key.
    openssl req -new -utf8 -config "$dir/ca/intermediate.cnf" -newkey rsa:2048 -nodes \
        -keyout "$base.throwaway.key" -out "$base.csr" -subj "$subject" 2>/dev/null
    local serial
    serial=$(cat "$dir/ca/intermediate.db/serial")
    printf '%X\n' $((16#$serial + 1)) >"$dir/ca/intermediate.db/serial"
    openssl x509 -req -in "$base.csr" -CA "$dir/ca/intermediate.pem" -CAkey "$dir/ca/intermediate.key" \
        -set_serial "0x$serial" -days 730 -sha256 -force_pubkey "$base.pub.pem" \
        -extfile "$(ee_ext "$email" "emailProtection, clientAuth" "digitalSignature, nonRepudiation")" \
        -out "$dir/certs/$token-$label.pem" 2>/dev/null
    openssl x509 -in "$dir/certs/$token-$label.pem" -outform DER -out "$base.cert.der"
    p11 --token-label "$token" --login --pin "$user_pin" --write-object "$base.cert.der" --type cert \
        --id "$id" --label "$label" >/dev/null
}

init_token STTTT-DienBien
token_key STTTT-DienBien 01 unit-seal rsa:2048 stttt@dienbien.gov.vn \
    "/C=VN/ST=Điện Biên/O=Sở Thông tin và Truyền thông tỉnh Điện Biên/CN=Sở Thông tin và Truyền thông"
token_key STTTT-DienBien 02 vanthu rsa:2048 vanthu.stttt@dienbien.gov.vn \
    "/C=VN/ST=Điện Biên/O=Sở Thông tin và Truyền thông tỉnh Điện Biên/CN=Nguyễn Thị Thư"

init_token UBND-MuongLay
token_key UBND-MuongLay 01 unit-seal EC:prime256v1 ubnd.muonglay@dienbien.gov.vn \
    "/C=VN/ST=Điện Biên/O=Ủy ban nhân dân thị xã Mường Lay/CN=Ủy ban nhân dân thị xã Mường Lay"

# MARK: file-only certificates (PEM key beside them) for the second key source and the negative cases
file_cert() { # NAME CA EMAIL EKU KEYUSAGE SUBJECT [openssl ca date options...]
    local name=$1 ca=$2 email=$3 eku=$4 ku=$5 subject=$6
    shift 6
    openssl req -new -utf8 -config "$dir/ca/$ca.cnf" -newkey rsa:2048 -nodes \
        -keyout "$dir/certs/$name.key" -out "$work/$name.csr" -subj "$subject" 2>/dev/null
    openssl ca -batch -notext -config "$dir/ca/$ca.cnf" -extfile "$(ee_ext "$email" "$eku" "$ku")" \
        -in "$work/$name.csr" -out "$dir/certs/$name.pem" "$@" 2>/dev/null
    chmod 0600 "$dir/certs/$name.key"
}

file_cert vanphong intermediate vanphong.ubnd@dienbien.gov.vn "emailProtection" "digitalSignature, nonRepudiation" \
    "/C=VN/ST=Điện Biên/O=Văn phòng UBND tỉnh Điện Biên/CN=Văn phòng Ủy ban nhân dân tỉnh"
file_cert expired intermediate hethan@dienbien.gov.vn "emailProtection" "digitalSignature, nonRepudiation" \
    "/C=VN/O=Sở Nội vụ tỉnh Điện Biên/CN=Chứng thư đã hết hạn" -startdate 20200101000000Z -enddate 20210101000000Z
file_cert revoked intermediate thuhoi@dienbien.gov.vn "emailProtection" "digitalSignature, nonRepudiation" \
    "/C=VN/O=Sở Tài chính tỉnh Điện Biên/CN=Chứng thư bị thu hồi"
file_cert wrong-eku intermediate maychu@dienbien.gov.vn "serverAuth" "digitalSignature, keyEncipherment" \
    "/C=VN/O=Sở Xây dựng tỉnh Điện Biên/CN=Chứng thư máy chủ"
file_cert untrusted untrusted stttt@dienbien.gov.vn "emailProtection" "digitalSignature, nonRepudiation" \
    "/C=VN/O=Giả mạo/CN=Sở Thông tin và Truyền thông"

# A token nothing else logs in to, for wrong-PIN tests (PKCS#11 login is per token, so another
# key logged in on the same token would hide a wrong PIN).
init_token PIN-Test
p11 --token-label PIN-Test --login --pin "$user_pin" --keypairgen --key-type rsa:2048 --id 01 --label pin-test >/dev/null

# A token only the module-restart test uses, through a second SoftHSM instance in the test
# process. SoftHSM rewrites a token's file on every login and its file locks are per process, so
# another instance reading that token's file at the same moment can miss the token: no other
# test may share a token with a second instance.
init_token Restart-Test
p11 --token-label Restart-Test --login --pin "$user_pin" --keypairgen --key-type rsa:2048 --id 01 --label first >/dev/null
p11 --token-label Restart-Test --login --pin "$user_pin" --keypairgen --key-type rsa:2048 --id 02 --label second >/dev/null

# A token the recovery test deletes and re-creates: its key is imported from a file so that it
# can be put back identically (softhsm2-util --import).
file_cert recovery intermediate phuchoi@dienbien.gov.vn "emailProtection" "digitalSignature, nonRepudiation" \
    "/C=VN/O=Sở Thông tin và Truyền thông tỉnh Điện Biên/CN=Khôi phục token"
cat >"$dir/recovery-token.sh" <<SCRIPT
#!/usr/bin/env bash
# Pulls the Recovery-Test token out (pull) or puts a new one with the same key and certificate
# in (insert, after pulling any present), as a USB token is pulled and put back. The token's
# directory leaves and enters the token directory with one rename each, built in a staging
# directory beside it, so that a module reading the token directory meanwhile (other tests run
# at the same time) sees the token whole or not at all.
set -euo pipefail
staging=\$(mktemp -d "$dir/staging.XXXXXX")
trap 'rm -rf "\$staging"' EXIT
if [ -s "$dir/recovery-token-dir" ] && [ -d "$dir/tokens/\$(cat "$dir/recovery-token-dir")" ]; then
    mv "$dir/tokens/\$(cat "$dir/recovery-token-dir")" "\$staging/pulled"
fi
rm -f "$dir/recovery-token-dir"
[ "\${1:-insert}" = pull ] && exit 0
mkdir "\$staging/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "\$staging/tokens" >"\$staging/softhsm2.conf"
export SOFTHSM2_CONF="\$staging/softhsm2.conf"
softhsm2-util --init-token --free --label Recovery-Test --so-pin $so_pin --pin $user_pin >/dev/null
softhsm2-util --import "$dir/certs/recovery.key" --token Recovery-Test --label recovery --id 01 --pin $user_pin >/dev/null
openssl x509 -in "$dir/certs/recovery.pem" -outform DER -out "$dir/certs/recovery.der"
pkcs11-tool --module "$module" --token-label Recovery-Test --login --pin $user_pin \\
    --write-object "$dir/certs/recovery.der" --type cert --id 01 --label recovery >/dev/null
name=\$(ls "\$staging/tokens")
mv "\$staging/tokens/\$name" "$dir/tokens/\$name"
printf '%s\n' "\$name" >"$dir/recovery-token-dir"
printf '%s' $user_pin >"$dir/pins/Recovery-Test"
chmod 0600 "$dir/pins/Recovery-Test"
SCRIPT
chmod +x "$dir/recovery-token.sh"
"$dir/recovery-token.sh" insert

# MARK: tokens that behave like the province's USB tokens
# The hwtoken module (Tests/HardwareToken/hwtoken.c) sits between the tests and SoftHSM and adds
# latency, one signature at a time, a session cap, PIN locking, hangs and removal, per token, as
# the files in hwtoken/control/LABEL/ say. Each test owns its token.
hwtoken_source=$(cd "$(dirname "$0")/.." && pwd)/Tests/HardwareToken/hwtoken.c
mkdir -p "$dir/hwtoken/control"
cc=${CC:-cc}
command -v "$cc" >/dev/null || cc=clang
"$cc" -shared -fPIC -O2 -Wall -Wno-format-truncation -o "$dir/hwtoken/hwtoken.so" "$hwtoken_source" \
    $(pkg-config --cflags p11-kit-1) -ldl -lpthread
cp "$(readlink -f "$module")" "$dir/hwtoken/hwtoken.so.real"
for token in HW-PIN HW-Flags HW-Vanish HW-Slow HW-Hang HW-Pull HW-Unit-B; do
    init_token "$token"
    lower=$(printf '%s' "$token" | tr 'A-Z' 'a-z')
    token_key "$token" 01 seal EC:prime256v1 "seal@$lower.lab.dienbien.gov.vn" \
        "/C=VN/ST=Điện Biên/O=Phòng thử nghiệm $token/CN=Con dấu $token"
    mkdir -p "$dir/hwtoken/control/$token"
done

# The OCSP responder's certificate: issued by the intermediate for OCSP signing only (RFC 6960
# section 4.2.2.2), run with: openssl ocsp -index DIR/ca/intermediate.db/index.txt -CA
# DIR/ca/intermediate.pem -rsigner DIR/certs/ocsp.pem -rkey DIR/certs/ocsp.key -port 18081
cat >"$work/ocsp-ext.cnf" <<EOF
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = OCSPSigning
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
openssl req -new -utf8 -config "$dir/ca/intermediate.cnf" -newkey rsa:2048 -nodes \
    -keyout "$dir/certs/ocsp.key" -out "$work/ocsp.csr" -subj "/C=VN/O=Ban Cơ yếu Chính phủ (TEST)/CN=TEST OCSP" 2>/dev/null
openssl ca -batch -notext -config "$dir/ca/intermediate.cnf" -extfile "$work/ocsp-ext.cnf" \
    -in "$work/ocsp.csr" -out "$dir/certs/ocsp.pem" 2>/dev/null

openssl ca -config "$dir/ca/intermediate.cnf" -revoke "$dir/certs/revoked.pem" -crl_reason keyCompromise 2>/dev/null
openssl ca -config "$dir/ca/intermediate.cnf" -gencrl -out "$dir/ca/intermediate.crl.pem" 2>/dev/null
openssl ca -config "$dir/ca/root.cnf" -gencrl -out "$dir/ca/root.crl.pem" 2>/dev/null
mkdir -p "$dir/crl"
cp "$dir/ca/intermediate.crl.pem" "$dir/crl/intermediate.crl.pem"
cp "$dir/ca/root.crl.pem" "$dir/crl/root.crl.pem"
openssl crl -in "$dir/ca/intermediate.crl.pem" -outform DER -out "$dir/crl/intermediate.crl"
openssl crl -in "$dir/ca/root.crl.pem" -outform DER -out "$dir/crl/root.crl"

cp "$dir/ca/intermediate.pem" "$dir/ca/chain.pem"
# What the CA's web server publishes: the CRLs (crl/) and the intermediate (ca/, CA issuers).
openssl x509 -in "$dir/ca/intermediate.pem" -outform DER -out "$dir/ca/intermediate.der"
cat >"$dir/env" <<EOF
SOFTHSM2_CONF=$dir/softhsm2.conf
SOFTHSM2_MODULE=$module
HWTOKEN_MODULE_PATH=$dir/hwtoken/hwtoken.so
TEST_PIN=$user_pin
CRL_BASE_URL=$crl_base
CA_BASE_URL=$ca_base
OCSP_URL=$ocsp_url
EOF
rm -rf "$work"
echo "$pki_version" >"$dir/.complete"
