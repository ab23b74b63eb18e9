#!/usr/bin/env python3
"""Writes the seed corpus of the `qe_value` fuzz target: stored QE values
made here, independently of csfle (Python's `cryptography`), under the fuzz
key (96 x 0x22, `csfle::fuzzing::qe_fixed_key`), following libmongocrypt's
layouts. `tests/crate_fuzz_corpus.rs` decrypts the `valid-*` seeds with csfle and
checks their plaintexts: a second implementation agreeing with csfle's.

Run from the repository root: python3 fuzz/make_qe_seeds.py
"""
import hashlib
import hmac
import os
import struct

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

KEY = bytes([0x22]) * 96
KEY_ID = bytes(range(0x40, 0x50))
# The BSON string "hello" (int32 length, bytes, NUL): BSON type 2.
VALUE = struct.pack("<i", 6) + b"hello\x00"
OUT = os.path.join("fuzz", "corpus", "qe_value")


def mac(key, msg):
    return hmac.new(key, msg, hashlib.sha256).digest()


def u64(n):
    return struct.pack("<Q", n)


def ctr(key, iv, data):
    e = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return e.update(data) + e.finalize()


def fle2v2aead(key, iv, aad, p):
    padder = padding.PKCS7(128).padder()
    padded = padder.update(p) + padder.finalize()
    e = Cipher(algorithms.AES(key[:32]), modes.CBC(iv)).encryptor()
    s = e.update(padded) + e.finalize()
    return iv + s + mac(key[32:64], aad + iv + s)


def fle2aead(key, iv, aad, p):
    s = ctr(key[:32], iv, p)
    return iv + s + mac(key[32:64], aad + iv + s)


def fle2(key, iv, p):
    return iv + ctr(key, iv, p)


def server_data_token(key):
    return mac(key[64:], u64(3))


def main():
    os.makedirs(OUT, exist_ok=True)
    iv = bytes(range(16))
    seeds = {}
    for subtype, cipher in ((16, fle2v2aead), (6, fle2aead)):
        prefix = bytes([subtype]) + KEY_ID + b"\x02"
        seeds[f"valid-unindexed-{subtype}"] = prefix + cipher(KEY, iv, prefix, VALUE)
    token = server_data_token(KEY)
    inner_v2 = KEY_ID + fle2v2aead(KEY, iv, KEY_ID, VALUE)
    sev = fle2(token, iv, inner_v2)
    block = bytes(range(96))
    head = KEY_ID + b"\x02"
    seeds["valid-indexed-14"] = b"\x0e" + head + sev + block
    seeds["valid-indexed-15"] = b"\x0f" + head + b"\x03" + sev + block * 3
    seeds["valid-indexed-17"] = (
        b"\x11" + head + struct.pack("<III", 3, 1, 1) + sev + block * 3
    )
    client_v1 = fle2aead(KEY, iv, KEY_ID, VALUE)
    inner_v1 = u64(16 + len(client_v1)) + KEY_ID + client_v1 + u64(1) + bytes(96)
    seeds["valid-indexed-7"] = b"\x07" + head + fle2(token, iv, inner_v1)
    # Broken ones: a lying edge count, a lying v1 length, a truncated value.
    seeds["bad-range-edges"] = b"\x0f" + head + b"\xff" + sev + block
    bad_inner = u64(1 << 40) + inner_v1[8:]
    seeds["bad-v1-length"] = b"\x07" + head + fle2(token, iv, bad_inner)
    seeds["bad-truncated"] = seeds["valid-indexed-14"][:-97]
    for name, data in seeds.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
