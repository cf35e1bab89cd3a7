#!/usr/bin/env bash
# Test servers for keymgr-barbican: a real Keystone 30 and a real Barbican 23
# (PyPI packages in .venv), SQLite, fernet tokens, on free loopback ports.
#
#   openstack.sh start DIR             start both, provision tenants, write DIR/env
#   openstack.sh stop DIR              stop both (by saved process-group ids)
#   openstack.sh restart-barbican DIR  stop Barbican and start it again (tests use it)
#
# All state lives in DIR (mode 0700; env and config files with passwords and
# the KEK are 0600). On a failure the server log tails are printed.
#
# OPENSTACK_TOKEN_CACHE_SECONDS (default -1: off) sets keystonemiddleware's
# token_cache_time in Barbican. The tests keep it off so a revoked token is
# refused at once; scripts/bench.sh sets 300, keystonemiddleware's default in
# deployments, so a client that reuses its token is not charged a Keystone
# round trip on every Barbican call.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
venv="$root/.venv"
py="$venv/bin/python"

die() {
    echo "openstack.sh: $*" >&2
    exit 1
}

free_port() {
    "$py" -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
}

tails() {
    local dir=$1 f
    for f in "$dir/keystone/keystone.log" "$dir/keystone/manage.log" "$dir/barbican/barbican.log"; do
        [ -f "$f" ] || continue
        echo "---- last lines of $f" >&2
        tail -n 40 "$f" >&2
    done
}

# wait_http URL SECONDS PIDFILE: until URL answers (any HTTP status below
# 500), or the process dies, or time runs out.
wait_http() {
    "$py" - "$1" "$2" "$(cat "$3")" <<'EOF'
import os, sys, time, urllib.error, urllib.request
url, secs, pid = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
end = time.time() + secs
while time.time() < end:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit(1)
    try:
        urllib.request.urlopen(url, timeout=2)
        sys.exit(0)
    except urllib.error.HTTPError as e:
        if e.code < 500:
            sys.exit(0)
    except Exception:
        pass
    time.sleep(0.2)
sys.exit(1)
EOF
}

# launch NAME LOG PIDFILE ENV... -- ARGS...: serve.py in its own session.
launch() {
    local name=$1 log=$2 pidfile=$3
    shift 3
    local envs=()
    while [ "$1" != "--" ]; do
        envs+=("$1")
        shift
    done
    shift
    # Run from the log's folder so any relative path stays in DIR.
    (cd "$(dirname "$log")" && exec env "${envs[@]}" setsid "$py" "$here/openstack/serve.py" "$name" "$@" >>"$log" 2>&1 </dev/null) &
    echo $! >"$pidfile"
}

kill_group() {
    local pidfile=$1 pid i
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
}

start_barbican() {
    local dir=$1 port
    port=$(cat "$dir/barbican/port")
    launch barbican "$dir/barbican/barbican.log" "$dir/barbican/pid" \
        "HOME=$dir/barbican/home" -- "$port" "$dir/barbican/barbican-api-paste.ini"
    if ! wait_http "http://127.0.0.1:$port/" 60 "$dir/barbican/pid"; then
        tails "$dir"
        die "Barbican did not start on port $port"
    fi
}

start() {
    local dir=$1
    [ -x "$py" ] || die "no Python environment at $venv: run scripts/setup.sh"
    "$py" -c 'import keystone, barbican' 2>/dev/null ||
        die "keystone and barbican are not installed in $venv: run scripts/setup.sh"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    chmod 700 "$dir"
    umask 077
    local ks="$dir/keystone" bb="$dir/barbican"
    rm -rf "$ks" "$bb" "$dir/env"
    mkdir -p "$ks/fernet-keys" "$ks/credential-keys" "$bb/home/.barbican"

    local kport bport admin_pw kek
    kport=$(free_port)
    bport=$(free_port)
    while [ "$bport" = "$kport" ]; do bport=$(free_port); done
    echo "$kport" >"$ks/port"
    echo "$bport" >"$bb/port"
    admin_pw=$("$py" -c 'import secrets;print(secrets.token_urlsafe(18))')

    cat >"$ks/keystone.conf" <<EOF
[DEFAULT]
debug = False
[database]
connection = sqlite:///$ks/keystone.db
[token]
provider = fernet
expiration = 3600
[fernet_tokens]
key_repository = $ks/fernet-keys
[fernet_receipts]
key_repository = $ks/fernet-keys
[credential]
key_repository = $ks/credential-keys
EOF

    local km=("$venv/bin/keystone-manage" --config-file "$ks/keystone.conf")
    {
        "${km[@]}" db_sync &&
            "${km[@]}" fernet_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)" &&
            "${km[@]}" credential_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)" &&
            "${km[@]}" bootstrap --bootstrap-password "$admin_pw" \
                --bootstrap-public-url "http://127.0.0.1:$kport/v3" \
                --bootstrap-admin-url "http://127.0.0.1:$kport/v3" \
                --bootstrap-internal-url "http://127.0.0.1:$kport/v3" \
                --bootstrap-region-id RegionOne
    } >>"$ks/manage.log" 2>&1 || {
        tails "$dir"
        die "keystone-manage failed"
    }

    launch keystone "$ks/keystone.log" "$ks/pid" -- "$kport" "$ks"
    if ! wait_http "http://127.0.0.1:$kport/v3" 60 "$ks/pid"; then
        tails "$dir"
        die "Keystone did not start on port $kport"
    fi

    {
        echo "export KEYMGR_TEST_KEYSTONE_URL=http://127.0.0.1:$kport/v3"
        echo "export KEYMGR_TEST_BARBICAN_URL=http://127.0.0.1:$bport"
        echo "export KEYMGR_TEST_BARBICAN_RESTART=\"bash $root/scripts/servers/openstack.sh restart-barbican $dir\""
    } >"$dir/env"
    chmod 600 "$dir/env"
    echo "$admin_pw" | "$py" "$here/openstack/provision.py" \
        "http://127.0.0.1:$kport" "http://127.0.0.1:$bport" "$dir/env" || {
        tails "$dir"
        die "provisioning Keystone failed"
    }
    local svc_pw
    svc_pw=$(sed -n 's/^export KEYMGR_TEST_OS_SERVICE_PASSWORD=//p' "$dir/env")

    kek=$("$py" -c 'import base64,os;print(base64.urlsafe_b64encode(os.urandom(32)).decode())')
    cat >"$bb/home/.barbican/barbican.conf" <<EOF
[DEFAULT]
debug = False
host_href = http://127.0.0.1:$bport
db_auto_create = True
[database]
# Barbican 23 reads oslo.db's [database] connection; the old
# [DEFAULT] sql_connection is ignored (it would fall back to
# ./barbican.sqlite in the working directory).
connection = sqlite:///$bb/barbican.db
[secretstore]
enabled_secretstore_plugins = store_crypto
[crypto]
enabled_crypto_plugins = simple_crypto
[simple_crypto_plugin]
kek = $kek
[oslo_policy]
enforce_new_defaults = True
enforce_scope = False
[keystone_authtoken]
www_authenticate_uri = http://127.0.0.1:$kport/v3
auth_url = http://127.0.0.1:$kport
auth_type = password
username = keymgr-service
password = $svc_pw
project_name = service
user_domain_name = Default
project_domain_name = Default
region_name = RegionOne
service_type = key-manager
token_cache_time = ${OPENSTACK_TOKEN_CACHE_SECONDS:--1}
EOF
    # The /v1 composite of the shipped paste file already names the
    # Keystone pipeline; the copy keeps the test independent of /etc.
    sed -e 's|^/v1:.*|/v1: barbican-api-keystone|' \
        "$venv/etc/barbican/barbican-api-paste.ini" >"$bb/barbican-api-paste.ini"
    start_barbican "$dir"

    # A token check through Barbican: the whole chain works.
    echo "openstack.sh: Keystone on 127.0.0.1:$kport, Barbican on 127.0.0.1:$bport"
}

stop() {
    local dir=$1
    kill_group "$dir/barbican/pid"
    kill_group "$dir/keystone/pid"
}

restart_barbican() {
    local dir=$1
    kill_group "$dir/barbican/pid"
    start_barbican "$dir"
}

cmd=${1:-}
dir=${2:-}
[ -n "$dir" ] || die "usage: $0 start|stop|restart-barbican DIR"
case "$cmd" in
start) start "$dir" ;;
stop) stop "$dir" ;;
restart-barbican) restart_barbican "$dir" ;;
*) die "usage: $0 start|stop|restart-barbican DIR" ;;
esac
