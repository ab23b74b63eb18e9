#!/usr/bin/env python3
"""Writes the seed corpus of the `qe_payload` fuzz target: FLE2 encryption
placeholders (first byte 3) of every algorithm csfle supports, a range
expression, a malformed insert payload and range-math parameters, made
here with a minimal BSON encoder (no library). Key ids are 0x40..0x4f;
the fuzz target encrypts with its fixed key for every id, and
`tests/crate_fuzz_corpus.rs` checks that each `placeholder-*` seed turns into a
payload.

Run from the repository root: python3 fuzz/make_qe_payload_seeds.py
"""
import os
import struct

OUT = os.path.join("fuzz", "corpus", "qe_payload")
KEY_ID = bytes(range(0x40, 0x50))


def el(t, k, payload):
    return bytes([t]) + k.encode() + b"\0" + payload


def doc(*items):
    body = b"".join(items)
    return struct.pack("<i", len(body) + 5) + body + b"\0"


def array(*docs):
    return doc(*[el(0x03, str(i), d) for i, d in enumerate(docs)])


def i32(k, v):
    return el(0x10, k, struct.pack("<i", v))


def i64(k, v):
    return el(0x12, k, struct.pack("<q", v))


def dbl(k, v):
    return el(0x01, k, struct.pack("<d", v))


def string(k, s):
    b = s.encode() + b"\0"
    return el(0x02, k, struct.pack("<i", len(b)) + b)


def binary(k, sub, data):
    return el(0x05, k, struct.pack("<i", len(data)) + bytes([sub]) + data)


def boolean(k, v):
    return el(0x08, k, bytes([1 if v else 0]))


def placeholder(t, a, v, cm, s=None):
    items = [i32("t", t), i32("a", a), binary("ki", 4, KEY_ID), binary("ku", 4, KEY_ID), v, i64("cm", cm)]
    if s is not None:
        items.append(i64("s", s))
    return b"\x03" + doc(*items)


SEEDS = {
    "placeholder-equality-insert": placeholder(1, 2, string("v", "hello"), 2),
    "placeholder-equality-find": placeholder(2, 2, i32("v", 123456), 3),
    "placeholder-unindexed": placeholder(1, 1, string("v", "hello"), 0),
    "placeholder-range-insert": placeholder(
        1, 3, el(0x03, "v", doc(i32("v", 42), i32("min", 0), i32("max", 200), i32("trimFactor", 2))), 1, 2
    ),
    "placeholder-range-insert-double": placeholder(
        1, 3, el(0x03, "v", doc(dbl("v", 3.25), dbl("min", 0.0), dbl("max", 10.0), i32("precision", 2))), 0, 2
    ),
    "placeholder-range-find": placeholder(
        2,
        3,
        el(
            0x03,
            "v",
            doc(
                el(
                    0x03,
                    "edgesInfo",
                    doc(
                        i32("lowerBound", 10),
                        boolean("lbIncluded", True),
                        i32("upperBound", 90),
                        boolean("ubIncluded", False),
                        i32("indexMin", 0),
                        i32("indexMax", 200),
                    ),
                ),
                i32("payloadId", 1),
                i32("firstOperator", 2),
                i32("secondOperator", 3),
            ),
        ),
        0,
        1,
    ),
    "expression-match": doc(
        el(0x04, "$and", array(doc(el(0x03, "age", doc(i32("$gte", 5)))), doc(el(0x03, "age", doc(i32("$lt", 50))))))
    ),
    "bad-insert-payload": b"\x0b"
    + doc(
        binary("d", 0, b"\x01" * 32),
        binary("s", 0, b"\x02" * 32),
        binary("p", 0, b"\x03" * 49),
        binary("u", 4, KEY_ID),
        i32("t", 2),
        binary("v", 0, KEY_ID + b"\x05" * 64),
        binary("e", 0, b"\x06" * 32),
        binary("l", 0, b"\x07" * 32),
        i64("k", 0),
    ),
    # flags 0x1f: trim factor, precision, bounds, both bounds included.
    "range-math": bytes([0x1F, 2, 3, 2]) + bytes(range(4, 64)),
}

os.makedirs(OUT, exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
print(f"wrote {len(SEEDS)} seeds to {OUT}")
