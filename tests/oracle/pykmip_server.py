#!/usr/bin/env python3
"""PyKMIP (pykmip==0.11.0) as the KMIP server of csfle's service tests.

    pykmip_server.py serve --dir DIR --port PORT
        Serves KMIP on 127.0.0.1:PORT until killed: SIGKILL to its process
        group (start it with setsid), as PyKMIP takes ~10 s to stop on
        SIGTERM and forks a multiprocessing manager that outlives its parent. DIR holds ca.pem, server.pem (the
        server's certificate) and server.key; the database and the log are
        written there too. TLS 1.2 only (PyKMIP's "TLS1.2" suite), client
        certificates from ca.pem required, and only the suites rustls and
        PyKMIP share for ECDSA P-256 certificates:
        TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 and
        TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384.

    pykmip_server.py seed --dir DIR --port PORT --client-cert PEM --client-key KEY
        Registers and activates the drivers' test SecretData on a fresh
        database and checks that it got the Unique Identifier "1", as the
        specification's KMIP key documents expect (masterKey.keyId "1").

The SecretData is the one MongoDB's drivers register for their KMIP tests
(mongodb-labs/drivers-evergreen-tools, .evergreen/csfle/kms_kmip_client.py,
Apache-2.0).
"""

import argparse
import logging
import os
import sys

# The drivers' KMIP SecretData, registered as UID "1".
SECRETDATA = bytes.fromhex(
    "f5c95881f327067033716668"
    "49f9fd0e08cd8dc9376128fb"
    "defefd496f3c7c90f8fb5e4c"
    "5d4d047562d4dac63609d363"
    "d770317c0b392e9d4689a125"
    "724617762ff3f0c881e8946a"
    "ca320f7014389033d23343d4"
    "0765ee3c298f26a3332ec015"
)
assert len(SECRETDATA) == 96

SUITES = ",".join(
    [
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    ]
)


def serve(args):
    from kmip.services.server import KmipServer

    server = KmipServer(
        hostname="127.0.0.1",
        port=args.port,
        certificate_path=os.path.join(args.dir, "server.pem"),
        key_path=os.path.join(args.dir, "server.key"),
        ca_path=os.path.join(args.dir, "ca.pem"),
        auth_suite="TLS1.2",
        config_path=None,
        log_path=os.path.join(args.dir, "pykmip.log"),
        enable_tls_client_auth=True,
        tls_cipher_suites=SUITES,
        logging_level=logging.INFO,
        database_path=os.path.join(args.dir, "pykmip.db"),
    )
    with server:
        print(f"PyKMIP serving on 127.0.0.1:{args.port}", flush=True)
        server.serve()


def seed(args):
    import kmip.core.enums
    import kmip.pie.client
    import kmip.pie.objects

    # ProxyKmipClient wants a configuration file; everything is given here.
    conf = os.path.join(args.dir, "client.conf")
    with open(conf, "w") as f:
        f.write("# all settings are passed to ProxyKmipClient\n")
    client = kmip.pie.client.ProxyKmipClient(
        hostname="127.0.0.1",
        port=args.port,
        cert=args.client_cert,
        key=args.client_key,
        ca=os.path.join(args.dir, "ca.pem"),
        ssl_version="PROTOCOL_TLSv1_2",
        config_file=conf,
    )
    with client:
        secret = kmip.pie.objects.SecretData(
            SECRETDATA, kmip.core.enums.SecretDataType.PASSWORD
        )
        uid = client.register(secret)
        client.activate(uid)
        got = client.get(uid)
    if uid != "1" or got.value != SECRETDATA:
        print(f"expected the SecretData as UID 1, got UID {uid!r}", file=sys.stderr)
        sys.exit(1)
    print('seeded the drivers\' SecretData as UID "1"', flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("serve", "seed"):
        p = sub.add_parser(name)
        p.add_argument("--dir", required=True)
        p.add_argument("--port", type=int, required=True)
        if name == "seed":
            p.add_argument("--client-cert", required=True)
            p.add_argument("--client-key", required=True)
    args = parser.parse_args()
    {"serve": serve, "seed": seed}[args.command](args)


if __name__ == "__main__":
    main()
