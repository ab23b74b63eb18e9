# Sourced by .ci/run: `start_pykmip` starts PyKMIP (pykmip==0.11.0 in the
# venv /opt/csfle-pykmip, reused between runs) on a free 127.0.0.1 port,
# with a CA made for this run and ECDSA P-256 server and client
# certificates (rustls and PyKMIP share no suite for RSA ones), seeds the
# drivers' SecretData as UID "1", and exports what the KMIP service tests
# read: CSFLE_KMIP_ENDPOINT, CSFLE_KMIP_CA_FILE, CSFLE_KMIP_CLIENT_CERT.
# Sets KMIP_PID, the leader of PyKMIP's own process group (it forks a
# multiprocessing manager that outlives a killed parent): stop them with
# `kill -KILL -- -"$KMIP_PID"` (PyKMIP takes ~10 s on SIGTERM).
# Appends its directory to TMP_DIRS.

# An ECDSA P-256 key (PKCS#8) and a certificate signed by the run's CA:
# _kmip_issue DIR NAME SUBJECT EXTENSION…
_kmip_issue() {
  local dir=$1 name=$2 subject=$3
  shift 3
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/$name.key" 2>/dev/null
  openssl req -new -key "$dir/$name.key" -subj "$subject" -out "$dir/$name.csr" 2>/dev/null
  printf '%s\n' 'basicConstraints=CA:FALSE' 'keyUsage=critical,digitalSignature' "$@" >"$dir/$name.ext"
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 2 -extfile "$dir/$name.ext" -out "$dir/$name.pem" 2>/dev/null
}

start_pykmip() {
  local venv=/opt/csfle-pykmip dir port
  if ! "$venv/bin/python" -c 'import kmip' >/dev/null 2>&1; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q 'pykmip==0.11.0' 'SQLAlchemy==2.1.9' 'cryptography==51.0.1'
  fi
  dir=$(mktemp -d)
  TMP_DIRS+=("$dir")
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=csfle KMIP test CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
  _kmip_issue "$dir" server /CN=127.0.0.1 \
    'subjectAltName=IP:127.0.0.1,DNS:localhost' 'extendedKeyUsage=serverAuth'
  _kmip_issue "$dir" client /CN=csfle-client 'extendedKeyUsage=clientAuth'
  # The client's certificate and (PKCS#8) key in one file, as tlsCertificateKeyFile takes them.
  cat "$dir/client.pem" "$dir/client.key" >"$dir/client-identity.pem"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  PYTHONWARNINGS=ignore setsid "$venv/bin/python" tests/oracle/pykmip_server.py serve --dir "$dir" --port "$port" \
    >"$dir/serve.out" 2>&1 &
  KMIP_PID=$!
  for _ in $(seq 1 150); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    if ! kill -0 "$KMIP_PID" 2>/dev/null; then cat "$dir/serve.out" >&2; echo "PyKMIP exited" >&2; return 1; fi
    sleep 0.2
  done
  PYTHONWARNINGS=ignore "$venv/bin/python" tests/oracle/pykmip_server.py seed --dir "$dir" --port "$port" \
    --client-cert "$dir/client.pem" --client-key "$dir/client.key"
  export CSFLE_KMIP_ENDPOINT="127.0.0.1:$port"
  export CSFLE_KMIP_CA_FILE="$dir/ca.pem"
  export CSFLE_KMIP_CLIENT_CERT="$dir/client-identity.pem"
  echo "CSFLE_KMIP_ENDPOINT=$CSFLE_KMIP_ENDPOINT (PyKMIP, TLS 1.2, client certificates; log $dir/pykmip.log)"
}
