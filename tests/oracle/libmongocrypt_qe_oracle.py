"""libmongocrypt as a Queryable Encryption oracle for csfle.

The QE counterpart of `libmongocrypt_oracle.py` (whose FLE1 protocol is
unchanged): libmongocrypt (bundled in PyPI `pymongocrypt`) with keys served
from memory and a local master key, no server, no network. Values, range
options and payloads cross as raw BSON (base64), so no type passes through
Python objects.

stdin:  {"local_master_key": b64, "keys": [b64 BSON key documents],
         "ops": [{"op": "encrypt", "key_id": b64,
                  "algorithm": "Indexed" | "Unindexed" | "Range",
                  "bson": b64 {v: value} (an expression {v: {$and: [...]}} when is_expression),
                  "contention_factor": int?, "query_type": "equality" | "range"?,
                  "range_opts": b64 BSON {min?, max?, sparsity? (int64), trimFactor? (int32),
                                          precision? (int32)}?,
                  "is_expression": bool?}
                 | {"op": "decrypt", "bson": b64 {v: binary subtype 6}}]}
stdout: {"libmongocrypt": version, "results": [{"bson": b64} | {"error": message}]}

Options absent from an op are not set on libmongocrypt's context (so its
own defaults and errors apply). One process answers a whole batch: the
range find payloads' `payloadId` is libmongocrypt's per-process counter, so
the caller reads it from each answer.
"""

import base64
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from libmongocrypt_oracle import MemoryKeyVault  # noqa: E402
from pymongocrypt.binding import libmongocrypt_version  # noqa: E402
from pymongocrypt.explicit_encrypter import ExplicitEncrypter  # noqa: E402
from pymongocrypt.options import MongoCryptOptions  # noqa: E402

ALGORITHMS = ("Indexed", "Unindexed", "Range")
QUERY_TYPES = ("equality", "range")


def encrypt(enc, op, b64d):
    algorithm = op["algorithm"]
    if algorithm not in ALGORITHMS:
        raise ValueError("unknown algorithm " + repr(algorithm))
    query_type = op.get("query_type")
    if query_type is not None and query_type not in QUERY_TYPES:
        raise ValueError("unknown query type " + repr(query_type))
    range_opts = op.get("range_opts")
    return enc.encrypt(
        b64d(op["bson"]),
        algorithm,
        key_id=b64d(op["key_id"]),
        query_type=query_type,
        contention_factor=op.get("contention_factor"),
        range_opts=b64d(range_opts) if range_opts is not None else None,
        is_expression=bool(op.get("is_expression", False)),
    )


def main():
    req = json.load(sys.stdin)
    b64d = base64.b64decode
    vault = MemoryKeyVault([b64d(k) for k in req["keys"]])
    opts = MongoCryptOptions({"local": {"key": b64d(req["local_master_key"])}})
    enc = ExplicitEncrypter(vault, opts)
    results = []
    for op in req["ops"]:
        try:
            if op["op"] == "encrypt":
                out = encrypt(enc, op, b64d)
            elif op["op"] == "decrypt":
                out = enc.decrypt(b64d(op["bson"]))
            else:
                raise ValueError("unknown op " + repr(op["op"]))
            results.append({"bson": base64.b64encode(bytes(out)).decode()})
        except Exception as e:  # the error text is the result
            results.append({"error": str(e)})
    enc.close()
    json.dump({"libmongocrypt": libmongocrypt_version(), "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
