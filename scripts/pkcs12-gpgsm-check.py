#!/usr/bin/env python3
"""Says whether gpgsm 2.2 can decrypt a PKCS#12 file made with PBE-SHA1-3DES, without gpgsm.

    scripts/pkcs12-gpgsm-check.py FILE PASSWORD

Exit 0: gpgsm derives the right key for every 3DES-encrypted bag in the file. Exit 1: it derives a
wrong one for at least one bag, so `gpgsm --import` would refuse the file ("decryption failed;
trying charset ..."), every time. Exit 2: the file could not be read.

Why: gpgsm's PKCS#12 key derivation (RFC 7292, appendix B.2), when it needs more than one SHA-1
block (a 24-byte 3DES key does; a 20-byte MAC key or an 8-byte IV does not), adds B + 1 to each
64-byte block of I and writes the sum back with gcry_mpi_print in its shortest form. When the
sum's first byte is zero, the block is written one byte short and misplaced, and the second part
of the key comes out wrong. Each of the two blocks (salt, password) meets this with chance about
1/256, so about one file in 128 that OpenSSL makes with a random salt is refused. The tests make
a new file instead of handing such a file to gpgsm.
"""
import hashlib
import sys

# pbeWithSHAAnd3-KeyTripleDES-CBC, DER encoded with its tag and length.
OID_3DES = bytes.fromhex("060a2a864886f70d010c0103")


def der_length(data, at):
    first = data[at]
    if first < 0x80:
        return first, at + 1
    count = first & 0x7F
    return int.from_bytes(data[at + 1:at + 1 + count], "big"), at + 1 + count


def der_value(data, at, tag):
    if data[at] != tag:
        raise ValueError(f"expected DER tag {tag:#04x} at offset {at}")
    length, start = der_length(data, at + 1)
    return data[start:start + length], start + length


def pbe_parameters(data):
    """Salt and iteration count of every 3DES-encrypted bag (PKCS12-PBEParams follow the OID)."""
    at = data.find(OID_3DES)
    while at >= 0:
        _, inside = der_length(data, at + len(OID_3DES) + 1)
        salt, after = der_value(data, inside, 0x04)
        iterations, _ = der_value(data, after, 0x02)
        yield salt, int.from_bytes(iterations, "big")
        at = data.find(OID_3DES, at + 1)


def gpgsm_derives_the_key(salt, iterations, password):
    secret = b"".join(b"\0" + bytes([c]) for c in password.encode("utf-8")) + b"\0\0"
    i = bytes(salt[k % len(salt)] for k in range(64)) + bytes(secret[k % len(secret)] for k in range(64))
    digest = hashlib.sha1(b"\x01" * 64 + i).digest()  # ID 1: key material
    for _ in range(1, iterations):
        digest = hashlib.sha1(digest).digest()
    b_plus_one = int.from_bytes(bytes(digest[k % 20] for k in range(64)), "big") + 1
    for start in (0, 64):
        block = (int.from_bytes(i[start:start + 64], "big") + b_plus_one) % (1 << 512)
        if block >> 504 == 0:
            return False
    return True


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    try:
        with open(sys.argv[1], "rb") as handle:
            parameters = list(pbe_parameters(handle.read()))
    except (OSError, ValueError, IndexError) as error:
        print(f"pkcs12-gpgsm-check: {sys.argv[1]}: {error}", file=sys.stderr)
        return 2
    if not parameters:
        print(f"pkcs12-gpgsm-check: {sys.argv[1]}: no PBE-SHA1-3DES bag", file=sys.stderr)
        return 2
    if all(gpgsm_derives_the_key(salt, count, sys.argv[2]) for salt, count in parameters):
        return 0
    print(f"pkcs12-gpgsm-check: {sys.argv[1]}: gpgsm 2.2 would derive a wrong 3DES key for this salt")
    return 1


if __name__ == "__main__":
    sys.exit(main())
