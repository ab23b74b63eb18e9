"""libmongocrypt with a KMIP server, as a test oracle for csfle's KMIP provider.

Runs libmongocrypt (bundled in PyPI `pymongocrypt`) with keys served from
memory and KMIP providers: each KMIP request libmongocrypt builds is sent over
TLS (the CA and client certificate given, TLS 1.2 or later, the server's
certificate and name verified) as pymongo 4.20.1 sends it
(`pymongo/synchronous/encryption.py`, `_EncryptionIO.kms_request`): the whole
message written, then reads of `bytes_needed` fed back until libmongocrypt has
the reply. Values cross as raw BSON (base64), as in `libmongocrypt_oracle.py`.

stdin:  {"kms_providers": {"kmip": {"endpoint": "host:port"}, "kmip:name": ..., "local": {"key": b64}?},
         "tls": {"ca_file": PEM path, "cert_file": PEM path of the certificate and its key},
         "keys": [b64 BSON key documents],
         "ops": [{"op": "create_key", "provider": "kmip", "master_key": {...}?}
                 | {"op": "encrypt", "key_id": b64, "algorithm": "det"|"rand", "bson": b64 {v: value}}
                 | {"op": "decrypt", "bson": b64 {v: binary subtype 6}}]}
stdout: {"libmongocrypt": version,
         "results": [{"bson": b64} | {"error": message}],
         "kmip": [{"provider": name, "endpoint": "host:port", "operation": name}]}

`create_key` answers the new key document; it joins the key vault, so later
ops in the same request may use it. `kmip` lists, in order, the KMIP
operation of every request libmongocrypt sent (read from its Operation item).
"""

import base64
import json
import socket
import ssl
import sys

import bson
from pymongocrypt.binding import libmongocrypt_version
from pymongocrypt.explicit_encrypter import ExplicitEncrypter
from pymongocrypt.options import MongoCryptOptions
from pymongocrypt.synchronous.state_machine import MongoCryptCallback

ALGORITHMS = {
    "det": "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic",
    "rand": "AEAD_AES_256_CBC_HMAC_SHA_512-Random",
}

# KMIP 1.4 Operation enumeration values of the six requests libmongocrypt sends.
OPERATIONS = {
    0x01: "Create",
    0x03: "Register",
    0x0A: "Get",
    0x12: "Activate",
    0x1F: "Encrypt",
    0x20: "Decrypt",
}

# The TTLV header of an Operation item: tag 42005C, type Enumeration, length 4.
OPERATION_HEADER = bytes.fromhex("42005c0500000004")

TIMEOUT_SECONDS = 10


def operation_of(message):
    """The name of the KMIP operation a request asks for."""
    at = message.find(OPERATION_HEADER)
    if at < 0:
        return "none"
    code = int.from_bytes(message[at + 8 : at + 12], "big")
    return OPERATIONS.get(code, "0x%X" % code)


def split_endpoint(endpoint):
    """`host:port` (or `[v6]:port`) as libmongocrypt gives it."""
    host, sep, port = endpoint.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError("KMIP endpoint without a port: %r" % endpoint)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


class KmipVault(MongoCryptCallback):
    def __init__(self, keys, tls):
        self.keys = keys  # raw BSON bytes
        self.inserted = []
        self.exchanges = []
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.check_hostname = True
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=tls["ca_file"])
        if tls.get("cert_file"):
            ctx.load_cert_chain(certfile=tls["cert_file"])
        self.ssl = ctx

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
        self.keys.append(bytes(data_key))
        return bson.decode(data_key)["_id"]

    def bson_encode(self, doc):
        return bson.encode(doc)

    def kms_request(self, kms_context):
        # pymongo's _EncryptionIO.kms_request: write the whole message, then
        # read what libmongocrypt still needs until it has the reply.
        endpoint = kms_context.endpoint
        message = kms_context.message
        self.exchanges.append(
            {
                "provider": kms_context.kms_provider,
                "endpoint": endpoint,
                "operation": operation_of(bytes(message)),
            }
        )
        host, port = split_endpoint(endpoint)
        with socket.create_connection((host, port), timeout=TIMEOUT_SECONDS) as raw:
            with self.ssl.wrap_socket(raw, server_hostname=host) as conn:
                conn.sendall(message)
                while kms_context.bytes_needed > 0:
                    data = conn.recv(kms_context.bytes_needed)
                    if not data:
                        raise OSError("KMS connection closed")
                    kms_context.feed(data)

    def collection_info(self, database, filter):
        raise RuntimeError("not used")

    def mark_command(self, database, cmd):
        raise RuntimeError("not used")

    def close(self):
        pass


def main():
    req = json.load(sys.stdin)
    b64d = base64.b64decode
    vault = KmipVault([b64d(k) for k in req["keys"]], req["tls"])
    providers = {}
    for name, options in req["kms_providers"].items():
        if name.split(":")[0] == "local":
            providers[name] = {"key": b64d(options["key"])}
        else:
            providers[name] = dict(options)
    enc = ExplicitEncrypter(vault, MongoCryptOptions(providers))
    results = []
    for op in req["ops"]:
        try:
            if op["op"] == "create_key":
                enc.create_data_key(op["provider"], master_key=op.get("master_key"))
                out = vault.inserted[-1]
            elif op["op"] == "encrypt":
                out = enc.encrypt(b64d(op["bson"]), ALGORITHMS[op["algorithm"]], key_id=b64d(op["key_id"]))
            elif op["op"] == "decrypt":
                out = enc.decrypt(b64d(op["bson"]))
            else:
                raise ValueError("unknown op " + op["op"])
            results.append({"bson": base64.b64encode(bytes(out)).decode()})
        except Exception as e:  # the error text is the result
            results.append({"error": "%s: %s" % (type(e).__name__, e)})
    enc.close()
    json.dump(
        {"libmongocrypt": libmongocrypt_version(), "results": results, "kmip": vault.exchanges},
        sys.stdout,
    )


if __name__ == "__main__":
    main()
