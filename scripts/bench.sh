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
echo "== token: one token shared by several mail servers through p11-kit server, versus the same token direct"
key="pkcs11:token=STTTT-DienBien;object=unit-seal;type=private?pin-source=file:$demo/pins/STTTT-DienBien"
server_dir=$(mktemp -d)
p11-kit server -f -s --provider "$module" -n "$server_dir/p11-kit.sock" "pkcs11:token=STTTT-DienBien" >/dev/null &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null || true; rm -rf "$server_dir"' EXIT
for _ in $(seq 100); do [ -S "$server_dir/p11-kit.sock" ] && break; sleep 0.05; done
rates() { # label, then the bench token command line: prints raw and 2-thread pool rates
    local label=$1
    shift
    "$@" --seconds "$seconds" --key "$key" | awk -v label="$label" '
        /^raw C_Sign/ { raw = $(NF-1) } /^pool, 2 thread/ { pool = $(NF-1) }
        END { printf "%s %s %s\n", label, raw, pool }'
}
{
    rates direct "$bin" bench token --module "$module"
    P11_KIT_SERVER_ADDRESS="unix:path=$server_dir/p11-kit.sock" \
        rates p11-kit-server "$bin" bench token --module /usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so
} | awk '{ raw[NR] = $2; pool[NR] = $3; name[NR] = $1 }
    END {
        printf "%-30s %12s %12s\n", "path (RSA-2048)", "raw sig/s", "pool x2 sig/s"
        for (i = 1; i <= NR; i++) printf "%-30s %12s %12s\n", name[i], raw[i], pool[i]
        printf "%-30s %12.2f %12.2f\n", "server / direct", raw[2] / raw[1], pool[2] / pool[1]
        printf "the server adds %.2f ms to each signature (a USB token takes 50-500 ms)\n", (1 / raw[2] - 1 / raw[1]) * 1000
    }'
kill "$server_pid" 2>/dev/null || true
echo
echo "== tokens: one unit's slow or hung token versus another unit's mail, through the milter protocol"
python3 scripts/bench-tokens.py "$bin" "$demo"
echo
echo "== revocation: verification with a 5 MB CRL cached versus none; latency with the CA up, slow and down"
python3 scripts/bench-revocation.py "$bin" "$demo"
echo
echo "== records and metrics: the daemon's CPU per message with each off and on; the report over a million records; one scrape"
python3 scripts/bench-daemon-cpu.py "$bin" "$demo"
"$bin" bench report --units conf/units.sample --records 1000000
"$bin" bench metrics --cert "$demo/certs/STTTT-DienBien-unit-seal.pem" --chain "$demo/ca/chain.pem"
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
