#!/usr/bin/env python3
"""Generates csfle's FLE1 interop vectors with libmongocrypt.

libmongocrypt (as bundled in PyPI `pymongocrypt`, pinned below) encrypts
values of every BSON type with fixed, published test keys, and what it
produces (or the error it refuses with) is written to `tests/data/oracle/`,
where `cargo test` reads it: no service, no Python, no `../shared` needed.

    /opt/csfle-oracle/bin/python tests/oracle/generate_vectors.py [--check]

(`--check` writes nothing: it fails unless the committed files are what
this libmongocrypt says.) Run from anywhere; it writes next to itself
(`../data/oracle/`). Needs only pymongocrypt and pymongo (the venv
`tests/oracle/README.md` describes). No network: the AWS, Azure and GCP
KMS requests libmongocrypt makes are answered in process by `FakeKms`
below, and those exchanges are recorded in the output, so csfle's tests can
replay them.

Deterministic ciphertexts, key ids and the recorded KMS exchanges are the
same on every run; random ciphertexts and the local keys' wrapped
`keyMaterial` change (libmongocrypt draws their IVs), so a regeneration
changes those lines only.

Every value crosses as raw BSON (base64 of the document `{"v": value}`), so
no type or bit passes through a Python object: dbPointer, symbol and
undefined, which pymongo cannot write, are built byte by byte.
"""

import base64
import hashlib
import json
import pathlib
import struct
import sys
import uuid

import bson
import pymongocrypt
from bson.binary import Binary
from bson.code import Code
from bson.datetime_ms import DatetimeMS
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.regex import Regex
from bson.timestamp import Timestamp
from pymongocrypt.binding import libmongocrypt_version
from pymongocrypt.errors import MongoCryptError
from pymongocrypt.explicit_encrypter import ExplicitEncrypter
from pymongocrypt.options import MongoCryptOptions
from pymongocrypt.synchronous.state_machine import MongoCryptCallback

# The pin: regenerate with exactly these, or the committed vectors would
# silently describe another libmongocrypt.
PYMONGOCRYPT_VERSION = "1.21.2"
LIBMONGOCRYPT_VERSION = "1.21.0"

OUT = pathlib.Path(__file__).resolve().parent.parent / "data" / "oracle"

ALGORITHMS = {
    "det": "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic",
    "rand": "AEAD_AES_256_CBC_HMAC_SHA_512-Random",
}


def test_bytes(label, n):
    """Fixed test key bytes, published here: SHAKE-256 of a label."""
    return hashlib.shake_256(("csfle interop vectors: " + label).encode()).digest(n)


# The local master key (96 bytes) and the data keys' plaintext material.
LOCAL_MASTER_KEY = test_bytes("local master key", 96)

# name, provider, _id, masterKey options (None for local).
KEYS = [
    ("local", "local", uuid.UUID("c5f1e000-0000-4000-8000-000000000001"), None),
    (
        "aws",
        "aws",
        uuid.UUID("c5f1e000-0000-4000-8000-000000000002"),
        {
            "region": "us-east-1",
            "key": "arn:aws:kms:us-east-1:000000000000:key/c5f1e000-0000-4000-8000-00000000a115",
        },
    ),
    (
        "azure",
        "azure",
        uuid.UUID("c5f1e000-0000-4000-8000-000000000003"),
        {"keyVaultEndpoint": "csfle-test.vault.azure.net", "keyName": "csfle-test-key"},
    ),
    (
        "gcp",
        "gcp",
        uuid.UUID("c5f1e000-0000-4000-8000-000000000004"),
        {
            "projectId": "csfle-test",
            "location": "global",
            "keyRing": "csfle-test-ring",
            "keyName": "csfle-test-key",
        },
    ),
]

# Access tokens for the fake KMSes: with one configured, libmongocrypt makes
# no OAuth request.
KMS_PROVIDERS = {
    "local": {"key": LOCAL_MASTER_KEY},
    "aws": {"accessKeyId": "AKIACSFLETESTVECTORS", "secretAccessKey": "csfle-test-secret"},
    "azure": {"accessToken": "csfle-test-azure-token"},
    "gcp": {"accessToken": "csfle-test-gcp-token"},
}


def b64(b):
    return base64.b64encode(bytes(b)).decode()


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64url(b):
    return base64.urlsafe_b64encode(bytes(b)).decode().rstrip("=")


# ---------------------------------------------------------------- raw BSON


def doc_v(value):
    """The BSON document {"v": value}, by pymongo."""
    return bson.encode({"v": value})


def raw_v(type_byte, payload):
    """The BSON document {"v": <payload of type_byte>}, byte by byte, for
    the types pymongo does not write."""
    body = bytes([type_byte]) + b"v\x00" + payload + b"\x00"
    return struct.pack("<i", 4 + len(body)) + body


def bson_string(s):
    b = s.encode() + b"\x00"
    return struct.pack("<i", len(b)) + b


def db_pointer(namespace, oid_hex):
    return raw_v(0x0C, bson_string(namespace) + bytes.fromhex(oid_hex))


def symbol(s):
    return raw_v(0x0E, bson_string(s))


UNDEFINED = raw_v(0x06, b"")

# The BSON types by the name `$type` uses, with their type bytes.
TYPE_NAMES = {
    0x01: "double",
    0x02: "string",
    0x03: "object",
    0x04: "array",
    0x05: "binData",
    0x06: "undefined",
    0x07: "objectId",
    0x08: "bool",
    0x09: "date",
    0x0A: "null",
    0x0B: "regex",
    0x0C: "dbPointer",
    0x0D: "javascript",
    0x0E: "symbol",
    0x0F: "javascriptWithScope",
    0x10: "int",
    0x11: "timestamp",
    0x12: "long",
    0x13: "decimal",
    0xFF: "minKey",
    0x7F: "maxKey",
}


def type_of(raw):
    return TYPE_NAMES[raw[4]]


# Values of every BSON type, several per type at the edges that matter to
# the cipher (plaintext lengths around the 16-byte block) and to the
# serializer (extremes, signed zeros, NaN, nesting, every binary subtype).
LONG_TEXT = "The quick brown fox jumps over the lazy dog. " * 24
VALUES = [
    ("string/empty", doc_v("")),
    ("string/ascii", doc_v("hello")),
    ("string/10-bytes", doc_v("0123456789")),  # 4 + 10 + 1 = 15 bytes of plaintext
    ("string/11-bytes", doc_v("0123456789a")),  # 16: a whole padding block
    ("string/12-bytes", doc_v("0123456789ab")),  # 17
    ("string/unicode", doc_v("ünïcødé ∑ 𝄞 日本語")),
    ("string/long", doc_v(LONG_TEXT)),
    ("int/zero", doc_v(0)),
    ("int/one", doc_v(1)),
    ("int/minus-one", doc_v(-1)),
    ("int/max", doc_v(2**31 - 1)),
    ("int/min", doc_v(-(2**31))),
    ("long/zero", doc_v(Int64(0))),
    ("long/minus-one", doc_v(Int64(-1))),
    ("long/max", doc_v(Int64(2**63 - 1))),
    ("long/min", doc_v(Int64(-(2**63)))),
    ("date/epoch", doc_v(DatetimeMS(0))),
    ("date/2009", doc_v(DatetimeMS(1232739599082))),
    ("date/before-epoch", doc_v(DatetimeMS(-62135596800000))),
    ("date/max", doc_v(DatetimeMS(2**63 - 1))),
    ("objectId/zero", doc_v(ObjectId("000000000000000000000000"))),
    ("objectId/fixed", doc_v(ObjectId("65f1c0ffee0ddba11c0ffee5"))),
    ("binData/generic-empty", doc_v(Binary(b"", 0))),
    ("binData/generic", doc_v(Binary(b"\x00\x01\x02binary\xff", 0))),
    ("binData/function", doc_v(Binary(b"function bytes", 1))),
    ("binData/old-binary", doc_v(Binary(b"old binary", 2))),
    ("binData/uuid-old", doc_v(Binary(bytes.fromhex("00112233445566778899aabbccddeeff"), 3))),
    ("binData/uuid", doc_v(Binary(bytes.fromhex("c5f1e0000000400080000000000000ff"), 4))),
    ("binData/md5", doc_v(Binary(hashlib.md5(b"csfle").digest(), 5))),
    ("binData/column", doc_v(Binary(b"\x01\x02\x03column", 7))),
    ("binData/sensitive", doc_v(Binary(b"sensitive", 8))),
    ("binData/vector", doc_v(Binary(b"\x03\x00\x01\x02\x03", 9))),
    ("binData/user-defined", doc_v(Binary(b"user defined", 0x80))),
    ("regex/no-options", doc_v(Regex("^abc$", ""))),
    ("regex/options", doc_v(Regex("a.*b", "imsx"))),
    ("regex/unicode", doc_v(Regex("ü+", "u"))),
    ("dbPointer/fixed", db_pointer("db.coll", "65f1c0ffee0ddba11c0ffee5")),
    ("javascript/fixed", doc_v(Code("function() { return 1; }"))),
    ("symbol/fixed", symbol("a symbol")),
    ("timestamp/zero", doc_v(Timestamp(0, 0))),
    ("timestamp/fixed", doc_v(Timestamp(1565545664, 1))),
    ("timestamp/max", doc_v(Timestamp(2**32 - 1, 2**32 - 1))),
    ("double/zero", doc_v(0.0)),
    ("double/negative-zero", doc_v(-0.0)),
    ("double/pi", doc_v(3.141592653589793)),
    ("double/infinity", doc_v(float("inf"))),
    ("double/negative-infinity", doc_v(float("-inf"))),
    ("double/nan", doc_v(float("nan"))),
    ("decimal/fixed", doc_v(Decimal128("1234.5678"))),
    ("decimal/negative-zero", doc_v(Decimal128("-0"))),
    ("decimal/nan", doc_v(Decimal128("NaN"))),
    ("decimal/infinity", doc_v(Decimal128("Infinity"))),
    ("bool/true", doc_v(True)),
    ("bool/false", doc_v(False)),
    ("object/empty", doc_v({})),
    (
        "object/nested",
        doc_v({"a": 1, "b": {"c": "d", "e": [1, Int64(2), 3.5]}, "f": Binary(b"x", 4)}),
    ),
    ("array/empty", doc_v([])),
    ("array/mixed", doc_v([1, "two", {"three": 3}, [4], None, True])),
    ("javascriptWithScope/empty-scope", doc_v(Code("x", {}))),
    ("javascriptWithScope/fixed", doc_v(Code("function() { return x; }", {"x": 1}))),
    ("null/null", doc_v(None)),
    ("undefined/undefined", UNDEFINED),
    ("minKey/minKey", doc_v(MinKey())),
    ("maxKey/maxKey", doc_v(MaxKey())),
    ("binData/encrypted", doc_v(Binary(b"\x01" + bytes(40), 6))),
]

# One fresh value per type for the corpus (the types the specification's
# corpus covers, values of our own).
CORPUS_VALUES = [
    ("double", doc_v(-12.25)),
    ("string", doc_v("corpus string")),
    ("object", doc_v({"corpus": "object", "n": 7})),
    ("array", doc_v(["corpus", 7, {"x": "y"}])),
    ("binData=00", doc_v(Binary(b"corpus generic", 0))),
    ("binData=04", doc_v(Binary(bytes.fromhex("0123456789abcdef0123456789abcdef"), 4))),
    ("undefined", UNDEFINED),
    ("objectId", doc_v(ObjectId("5d5051b3a8cb6f1e64c0ffee"))),
    ("bool", doc_v(True)),
    ("date", doc_v(DatetimeMS(1565545664123))),
    ("null", doc_v(None)),
    ("regex", doc_v(Regex("corpus.*", "i"))),
    ("dbPointer", db_pointer("corpus.coll", "5d5051b3a8cb6f1e64c0ffee")),
    ("javascript", doc_v(Code("corpus()"))),
    ("symbol", symbol("corpus symbol")),
    ("javascriptWithScope", doc_v(Code("corpus(y)", {"y": "z"}))),
    ("int", doc_v(123456)),
    ("timestamp", doc_v(Timestamp(1565545664, 7))),
    ("long", doc_v(Int64(-1234567890123))),
    ("decimal", doc_v(Decimal128("-9.87654321E+10"))),
    ("minKey", doc_v(MinKey())),
    ("maxKey", doc_v(MaxKey())),
]


# ---------------------------------------------------------------- the fake KMS


class FakeKms:
    """Answers libmongocrypt's AWS, Azure and GCP KMS requests in process.

    A wrap returns an opaque handle as the wrapped key, as a real KMS
    returns a ciphertext only it can read; an unwrap of a handle it issued
    returns the plaintext. Each exchange is recorded (request line, body,
    reply body) for the replay in csfle's tests; headers are not recorded
    (AWS's carry the request time and its signature)."""

    def __init__(self):
        self.wrapped = {}  # handle -> (plaintext key, AWS KeyId)
        self.exchanges = []  # (provider, operation, request, reply)

    def handle(self, provider, plaintext, key_id=None):
        # Opaque, and (as libmongocrypt requires of a wrapped key) no
        # shorter than the 96-byte plaintext: a label and filler bytes.
        label = "csfle test %s KMS: wrapped key %d" % (provider, len(self.wrapped) + 1)
        h = label.encode() + test_bytes(label, 96)
        self.wrapped[h] = (plaintext, key_id)
        return h

    def answer(self, provider, message):
        head, _, body = bytes(message).partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        request_line = lines[0]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        request = json.loads(body)
        if provider == "aws":
            target = headers["x-amz-target"]
            if target == "TrentService.Encrypt":
                op = "encrypt"
                reply = {
                    "KeyId": request["KeyId"],
                    "CiphertextBlob": b64(
                        self.handle("aws", base64.b64decode(request["Plaintext"]), request["KeyId"])
                    ),
                }
            elif target == "TrentService.Decrypt":
                op = "decrypt"
                # A Decrypt names no key: the blob does (here, the table).
                plaintext, key_id = self.wrapped[base64.b64decode(request["CiphertextBlob"])]
                reply = {"KeyId": key_id, "Plaintext": b64(plaintext)}
            else:
                raise ValueError("unexpected AWS target " + target)
        elif provider == "azure":
            if "/wrapkey?" in request_line:
                op = "encrypt"
                h = self.handle("azure", b64url_decode(request["value"]))
                reply = {"kid": "https://csfle-test.vault.azure.net/keys/csfle-test-key/1", "value": b64url(h)}
            elif "/unwrapkey?" in request_line:
                op = "decrypt"
                reply = {
                    "kid": "https://csfle-test.vault.azure.net/keys/csfle-test-key/1",
                    "value": b64url(self.wrapped[b64url_decode(request["value"])][0]),
                }
            else:
                raise ValueError("unexpected Azure request " + request_line)
        elif provider == "gcp":
            if ":encrypt " in request_line:
                op = "encrypt"
                h = self.handle("gcp", base64.b64decode(request["plaintext"]))
                reply = {
                    "name": "projects/csfle-test/locations/global/keyRings/csfle-test-ring/cryptoKeys/csfle-test-key/cryptoKeyVersions/1",
                    "ciphertext": b64(h),
                }
            elif ":decrypt " in request_line:
                op = "decrypt"
                reply = {"plaintext": b64(self.wrapped[base64.b64decode(request["ciphertext"])][0])}
            else:
                raise ValueError("unexpected GCP request " + request_line)
        else:
            raise ValueError("unexpected KMS provider " + provider)
        reply_body = json.dumps(reply, separators=(",", ":"))
        self.exchanges.append(
            (
                provider,
                op,
                {"request_line": request_line, "host": headers["host"], "body": body.decode()},
                {"status_line": "HTTP/1.1 200 OK", "body": reply_body},
            )
        )
        b = reply_body.encode()
        return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(b), b)


class Callback(MongoCryptCallback):
    """libmongocrypt's I/O: keys served from memory, KMS by `FakeKms`."""

    def __init__(self, kms):
        self.keys = []  # raw BSON key documents
        self.inserted = []
        self.kms = kms

    def fetch_keys(self, filter):
        # libmongocrypt asks with {$or: [{_id: {$in: ids}}, {keyAltNames: {$in: names}}]}.
        f = bson.decode(filter)
        ids, names = set(), set()
        for clause in f.get("$or", []):
            ids.update(bytes(x) for x in clause.get("_id", {}).get("$in", []))
            names.update(clause.get("keyAltNames", {}).get("$in", []))
        for raw in self.keys:
            doc = bson.decode(raw)
            if bytes(doc["_id"]) in ids or names.intersection(doc.get("keyAltNames", [])):
                yield raw

    def insert_data_key(self, data_key):
        self.inserted.append(bytes(data_key))
        return bson.decode(data_key)["_id"]

    def bson_encode(self, doc):
        return bson.encode(doc)

    def kms_request(self, kms_context):
        reply = self.kms.answer(kms_context.kms_provider, kms_context.message)
        kms_context.feed(reply)
        if kms_context.bytes_needed != 0:
            raise RuntimeError("libmongocrypt wants more of the KMS reply")

    def collection_info(self, database, filter):
        raise RuntimeError("not used")

    def mark_command(self, database, cmd):
        raise RuntimeError("not used")

    def close(self):
        pass


# ---------------------------------------------------------------- generation


def check_pin():
    if pymongocrypt.__version__ != PYMONGOCRYPT_VERSION:
        sys.exit("pymongocrypt %s found, the vectors are pinned to %s" % (pymongocrypt.__version__, PYMONGOCRYPT_VERSION))
    if libmongocrypt_version() != LIBMONGOCRYPT_VERSION:
        sys.exit("libmongocrypt %s loaded, the vectors are pinned to %s" % (libmongocrypt_version(), LIBMONGOCRYPT_VERSION))


def make_keys(enc, callback, kms):
    """Creates the data keys with fixed material, then gives each its fixed
    _id (which the wrapped key does not bind, as the specification's custom
    key material prose test relies on) and fixed dates."""
    out = []
    for name, provider, key_id, master_key in KEYS:
        material = test_bytes("data key " + name, 96)
        first = len(kms.exchanges)
        enc.create_data_key(provider, master_key=master_key, key_alt_names=[name], key_material=material)
        doc = bson.decode(callback.inserted[-1])
        doc["_id"] = Binary(key_id.bytes, 4)
        # Fixed dates too, so that a regeneration changes only what
        # libmongocrypt draws at random.
        doc["creationDate"] = doc["updateDate"] = DatetimeMS(1700000000000)
        raw = bson.encode(doc)
        callback.keys.append(raw)
        wraps = kms.exchanges[first:]
        assert len(wraps) == (0 if provider == "local" else 1), wraps
        out.append(
            {
                "name": name,
                "provider": provider,
                "id": b64(key_id.bytes),
                "alt_names": [name],
                "key_material": b64(material),
                "document": b64(raw),
            }
        )
    return out


def encrypt(enc, raw, algorithm, key):
    """(blob, None) or (None, libmongocrypt's error message)."""
    key_id, alt = key
    try:
        out = enc.encrypt(raw, ALGORITHMS[algorithm], key_id=key_id, key_alt_name=alt)
    except MongoCryptError as e:  # libmongocrypt's refusal is the result
        message = str(e)
        # Only the type checks may refuse: anything else is a fault here.
        assert message.startswith(("BSON type invalid", "BSON binary subtype 6")), message
        return None, message
    v = bson.decode(out, codec_options=bson.CodecOptions())["v"]
    assert isinstance(v, Binary) and v.subtype == 6, v
    blob = bytes(v)
    assert blob[0] == {"det": 1, "rand": 2}[algorithm], blob[:1]
    assert blob[17] == raw[4], "original type byte"
    # Decrypted by libmongocrypt to the same bytes.
    back = enc.decrypt(bson.encode({"v": v}))
    assert bytes(back) == raw, (raw, bytes(back))
    return blob, None


def generate_values(enc, local_id):
    key = (local_id.bytes, None)
    out = {"deterministic": [], "deterministic_refused": [], "random": [], "random_refused": []}
    for name, raw in VALUES:
        for algorithm, allowed, refused in (("det", "deterministic", "deterministic_refused"), ("rand", "random", "random_refused")):
            blob, error = encrypt(enc, raw, algorithm, key)
            entry = {"name": name, "type": type_of(raw), "value": b64(raw)}
            if blob is None:
                entry["error"] = error
                out[refused].append(entry)
                continue
            if algorithm == "det":
                again, _ = encrypt(enc, raw, algorithm, key)
                assert again == blob, "deterministic"
            entry["blob"] = b64(blob)
            out[allowed].append(entry)
    return out


def generate_corpus(enc, keys):
    entries = []
    for key in keys:
        for type_name, raw in CORPUS_VALUES:
            for algorithm in ("det", "rand"):
                for identifier in ("id", "altname"):
                    ref = (base64.b64decode(key["id"]), None) if identifier == "id" else (None, key["name"])
                    blob, error = encrypt(enc, raw, algorithm, ref)
                    entry = {
                        "name": "%s_%s_%s_%s" % (key["name"], type_name, algorithm, identifier),
                        "kms": key["name"],
                        "type": type_of(raw),
                        "algo": algorithm,
                        "identifier": identifier,
                        "allowed": blob is not None,
                        "value": b64(raw),
                    }
                    if blob is None:
                        entry["error"] = error
                    else:
                        entry["blob"] = b64(blob)
                    entries.append(entry)
    return entries


def recorded_exchanges(kms, keys):
    """The first wrap and unwrap of each cloud key, and a check that every
    later exchange for it repeated them."""
    out = []
    for key in keys:
        if key["provider"] == "local":
            continue
        mine = [e for e in kms.exchanges if e[0] == key["provider"]]
        rec = {"key": key["name"], "provider": key["provider"]}
        for op in ("encrypt", "decrypt"):
            same = [e for e in mine if e[1] == op]
            assert same, (key["name"], op)
            assert all(e[2:] == same[0][2:] for e in same), (key["name"], op)
            rec[op] = {"request": same[0][2], "reply": same[0][3]}
        out.append(rec)
    return out


def encrypter(kms, documents=()):
    """libmongocrypt with the fixed KMS providers, over the key vault
    `documents` (raw BSON), its KMS requests answered by `kms`."""
    callback = Callback(kms)
    callback.keys.extend(documents)
    opts = MongoCryptOptions({"local": KMS_PROVIDERS["local"], "aws": KMS_PROVIDERS["aws"]})
    # pymongocrypt's option check knows only Azure client credentials and
    # GCP service accounts; libmongocrypt also takes an access token, which
    # spares an OAuth exchange. Set after the check.
    opts.kms_providers = KMS_PROVIDERS
    return ExplicitEncrypter(callback, opts), callback


def generate(kms):
    """The three files' contents, fresh from libmongocrypt."""
    enc, callback = encrypter(kms)
    header = {
        "generator": "tests/oracle/generate_vectors.py",
        "pymongocrypt": pymongocrypt.__version__,
        "libmongocrypt": libmongocrypt_version(),
    }
    keys = make_keys(enc, callback, kms)
    values = generate_values(enc, KEYS[0][2])
    corpus = generate_corpus(enc, keys)
    exchanges = recorded_exchanges(kms, keys)
    enc.close()
    return {
        "fle1-keys.json": dict(
            header,
            description="The data keys every vector uses: plaintext material, and the key documents libmongocrypt made (local: wrapped under local_master_key; aws, azure, gcp: by the fake KMS, whose exchanges kms_exchanges records).",
            local_master_key=b64(LOCAL_MASTER_KEY),
            keys=keys,
            kms_exchanges=exchanges,
        ),
        "fle1-values.json": dict(
            header,
            description="Values of every BSON type encrypted with the local key (keys: fle1-keys.json) by both algorithms, or libmongocrypt's refusal. value: base64 BSON {v: value}; blob: base64 payload of the subtype-6 binary.",
            key="local",
            **values,
        ),
        "fle1-corpus.json": dict(
            header,
            description="A corpus of the specification corpus' shape, with values of our own: each type x kms (local, aws, azure, gcp) x algorithm x key by id or by alternate name, allowed (blob) or refused (error).",
            entries=corpus,
        ),
    }


def without_randomness(name, content):
    """`content` without what libmongocrypt draws at random: the random
    blobs and the local key document's wrapped keyMaterial."""
    content = json.loads(json.dumps(content))
    if name == "fle1-keys.json":
        for key in content["keys"]:
            if key["provider"] == "local":
                doc = bson.decode(base64.b64decode(key["document"]))
                doc.pop("keyMaterial")
                key["document"] = b64(bson.encode(doc))
    elif name == "fle1-values.json":
        for entry in content["random"]:
            entry.pop("blob")
    elif name == "fle1-corpus.json":
        for entry in content["entries"]:
            if entry["algo"] == "rand":
                entry.pop("blob", None)
    return content


def committed_blobs(files):
    """(name, value, blob) of every blob in the committed files."""
    values = files["fle1-values.json"]
    for kind in ("deterministic", "random"):
        for e in values[kind]:
            yield e["name"], e["value"], e["blob"]
    for e in files["fle1-corpus.json"]["entries"]:
        if e["allowed"]:
            yield e["name"], e["value"], e["blob"]


def check(kms, fresh):
    """The committed files are what the pinned libmongocrypt says: equal to
    a fresh generation but for the random draws, and every committed blob
    decrypts, with the committed key documents, to its value."""
    committed = {name: json.loads((OUT / name).read_text()) for name in fresh}
    failed = False
    for name in fresh:
        if without_randomness(name, committed[name]) != without_randomness(name, fresh[name]):
            print("%s differs from a fresh generation" % name)
            failed = True
    documents = [base64.b64decode(k["document"]) for k in committed["fle1-keys.json"]["keys"]]
    enc, _ = encrypter(kms, documents)
    n = 0
    for name, value, blob in committed_blobs(committed):
        v = Binary(base64.b64decode(blob), 6)
        try:
            ok = bytes(enc.decrypt(bson.encode({"v": v}))) == base64.b64decode(value)
        except MongoCryptError as e:
            ok = False
            print("%s: %s" % (name, e))
        if not ok:
            print("%s: the committed blob does not decrypt to its value" % name)
            failed = True
        n += 1
    enc.close()
    if failed:
        sys.exit("the committed vectors are stale: regenerate them (tests/oracle/README.md)")
    print("the committed vectors agree with libmongocrypt %s: %d blobs decrypted" % (libmongocrypt_version(), n))


def write(name, content):
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / name
    path.write_text(json.dumps(content, indent=1, ensure_ascii=False) + "\n")
    print("wrote", path)


def main():
    check_pin()
    kms = FakeKms()
    fresh = generate(kms)
    if sys.argv[1:] == ["--check"]:
        check(kms, fresh)
        return
    if sys.argv[1:]:
        sys.exit("usage: generate_vectors.py [--check]")
    for name, content in fresh.items():
        write(name, content)
    values = fresh["fle1-values.json"]
    counts = {k: len(values[k]) for k in ("deterministic", "deterministic_refused", "random", "random_refused")}
    corpus = fresh["fle1-corpus.json"]["entries"]
    counts["corpus"] = len(corpus)
    counts["corpus_allowed"] = sum(1 for e in corpus if e["allowed"])
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
