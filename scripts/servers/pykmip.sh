#!/usr/bin/env bash
# PyKMIP (`pykmip-server` from .venv) for the keymgr-kmip tests, on loopback:
# a throwaway CA, a server certificate and a client certificate
# (extendedKeyUsage = clientAuth) made with openssl; TLS 1.2 with client
# certificate authentication; a SQLite database in DIR.
# The keys are ECDSA P-256: PyKMIP's TLS1.2 suite offers, of AEAD cipher
# suites (the only ones rustls has), only ECDHE-ECDSA-AES-GCM, which need an
# ECDSA server certificate (with an RSA one it has only CBC suites left).
# Usage: pykmip.sh start DIR | stop DIR
# Everything it makes lives in DIR (mode 0700); keys are 0600 files.
set -Eeuo pipefail
cmd=${1:?usage: pykmip.sh start|stop DIR}
dir=${2:?usage: pykmip.sh start|stop DIR}
root=$(cd "$(dirname "$0")/../.." && pwd)
py="$root/.venv/bin/python"
server="$root/.venv/bin/pykmip-server"

# free_port
# shellcheck source=lib/common.sh
. "$root/scripts/servers/lib/common.sh"

case "$cmd" in
start)
    mkdir -p "$dir"; chmod 700 "$dir"
    trap 'echo "pykmip: start failed at line $LINENO" >&2; tail -n 30 "$dir/server.log" >&2 2>/dev/null || true' ERR
    [ -x "$server" ] || { echo "pykmip: $server missing (run scripts/setup.sh)" >&2; exit 1; }
    umask 077
    pki="$dir/pki"; mkdir -p "$pki"
    # CA
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=keymgr test KMIP CA" \
        -keyout "$pki/ca.key" -out "$pki/ca.crt" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    # server and client leaf certificates
    leaf() { # NAME CN EKU SAN
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$2" -keyout "$pki/$1.key" -out "$pki/$1.csr" 2>/dev/null
        printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=%s\n%s' \
            "$3" "$4" > "$pki/$1.ext"
        openssl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
            -days 2 -sha256 -extfile "$pki/$1.ext" -out "$pki/$1.crt" 2>/dev/null
    }
    leaf server localhost serverAuth "subjectAltName=DNS:localhost,IP:127.0.0.1"
    leaf client keymgr-tests clientAuth ""
    port=$(free_port)
    cat > "$dir/server.conf" <<CONF
[server]
hostname=127.0.0.1
port=$port
certificate_path=$pki/server.crt
key_path=$pki/server.key
ca_path=$pki/ca.crt
auth_suite=TLS1.2
enable_tls_client_auth=True
policy_path=$dir/policies
database_path=$dir/pykmip.db
logging_level=INFO
CONF
    mkdir -p "$dir/policies"
    # The Python client's own config, for the interop tests.
    cat > "$dir/client.conf" <<CONF
[client]
host=127.0.0.1
port=$port
certfile=$pki/client.crt
keyfile=$pki/client.key
ca_certs=$pki/ca.crt
ssl_version=PROTOCOL_SSLv23
cert_reqs=CERT_REQUIRED
CONF
    "$server" -f "$dir/server.conf" -l "$dir/server.log" > "$dir/stdout.log" 2>&1 &
    echo $! > "$dir/pid"
    ready=0
    for i in $(seq 1 300); do
        if openssl s_client -connect "127.0.0.1:$port" -CAfile "$pki/ca.crt" \
            -cert "$pki/client.crt" -key "$pki/client.key" -verify_return_error </dev/null >/dev/null 2>&1; then
            ready=1; break
        fi
        kill -0 "$(cat "$dir/pid")" 2>/dev/null || break
        sleep 0.1
    done
    [ $ready = 1 ] || { echo "pykmip: the server did not accept TLS on port $port" >&2; tail -n 30 "$dir/server.log" "$dir/stdout.log" >&2 || true; exit 1; }
    cat > "$dir/env" <<ENV
export KEYMGR_TEST_KMIP_HOST=127.0.0.1
export KEYMGR_TEST_KMIP_PORT=$port
export KEYMGR_TEST_KMIP_CERTFILE=$pki/client.crt
export KEYMGR_TEST_KMIP_KEYFILE=$pki/client.key
export KEYMGR_TEST_KMIP_CA_CERTS=$pki/ca.crt
export KEYMGR_TEST_KMIP_CLIENT_CONF=$dir/client.conf
ENV
    trap - ERR
    echo "pykmip: server at 127.0.0.1:$port"
    ;;
stop)
    [ -f "$dir/pid" ] || exit 0
    pid=$(cat "$dir/pid")
    # The server's children (its monitor) go with its process group.
    pkids=$(pgrep -P "$pid" 2>/dev/null || true)
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" $pkids 2>/dev/null || true
    rm -f "$dir/pid"
    ;;
*) echo "usage: pykmip.sh start|stop DIR" >&2; exit 2 ;;
esac
