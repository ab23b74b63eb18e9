"""libmongocrypt as a test oracle for csfle.

Runs libmongocrypt (bundled in PyPI `pymongocrypt`) with keys served from
memory and a local master key: no server, no network. Values cross as raw BSON
(base64) so no type passes through Python objects.

stdin:  {"local_master_key": b64, "keys": [b64 BSON key documents],
         "ops": [{"op": "encrypt", "key_id": b64, "algorithm": "det"|"rand", "bson": b64 {v: value}}
                 | {"op": "decrypt", "bson": b64 {v: binary subtype 6}}
                 | {"op": "create_key", "key_material": b64?}]}
stdout: {"libmongocrypt": version, "results": [{"bson": b64} | {"error": message}]}
"""

import base64
import json
import sys

import bson
from pymongocrypt.binding import libmongocrypt_version
from pymongocrypt.explicit_encrypter import ExplicitEncrypter
from pymongocrypt.options import DataKeyOpts, MongoCryptOptions
from pymongocrypt.synchronous.state_machine import MongoCryptCallback

ALGORITHMS = {
    "det": "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic",
    "rand": "AEAD_AES_256_CBC_HMAC_SHA_512-Random",
}


class MemoryKeyVault(MongoCryptCallback):
    def __init__(self, keys):
        self.keys = keys  # raw BSON bytes
        self.inserted = []

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
        self.inserted.append(data_key)
        return bson.decode(data_key)["_id"]

    def bson_encode(self, doc):
        return bson.encode(doc)

    def kms_request(self, kms_context):
        raise RuntimeError("no KMS requests expected with a local master key")

    def collection_info(self, database, filter):
        raise RuntimeError("not used")

    def mark_command(self, database, cmd):
        raise RuntimeError("not used")

    def close(self):
        pass


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
                out = enc.encrypt(b64d(op["bson"]), ALGORITHMS[op["algorithm"]], key_id=b64d(op["key_id"]))
            elif op["op"] == "decrypt":
                out = enc.decrypt(b64d(op["bson"]))
            elif op["op"] == "create_key":
                material = op.get("key_material")
                enc.create_data_key(
                    "local",
                    master_key=None,
                    key_alt_names=None,
                    key_material=b64d(material) if material else None,
                )
                out = vault.inserted[-1]
            else:
                raise ValueError("unknown op " + op["op"])
            results.append({"bson": base64.b64encode(bytes(out)).decode()})
        except Exception as e:  # the error text is the result
            results.append({"error": str(e)})
    enc.close()
    json.dump({"libmongocrypt": libmongocrypt_version(), "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
