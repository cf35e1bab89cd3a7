# Shared parts of the two Keystone+Barbican sets: scripts/servers/openstack.sh
# (light: wsgiref, SQLite) and scripts/servers/production/openstack.sh
# (PostgreSQL, gunicorn). Sourced, never run.
#
# Sourcing it sets root (the checkout), venv and py (its Python environment).
# The sourcing script sets, before it calls anything here:
#   prog       prefix of error messages (e.g. "openstack.sh")
#   wait_secs  how long a service may take to answer
#   kill_tenths  how long (0.1 s steps) a stopped service may take to exit
# and defines launch_keystone DIR PORT and launch_barbican DIR PORT (start the
# service in its own session, its pid in DIR/NAME/pid). It may define
# extra_logs DIR (one more log file for tails).
#
# Functions documented as setting the caller's variables rely on bash's
# dynamic scope: the caller declares them `local` first.

os_lib=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$os_lib/../../.." && pwd)
venv="$root/.venv"
py="$venv/bin/python"
# shellcheck source=../lib/common.sh
. "$os_lib/../lib/common.sh"

die() {
    echo "$prog: $*" >&2
    exit 1
}

extra_logs() { :; }

# fail DIR MESSAGE: the log tails, then die with MESSAGE.
fail() {
    tails "$1"
    die "$2"
}

# tails DIR: the last lines of every server log there is, on stderr.
tails() {
    local dir=$1 f extra
    extra=$(extra_logs "$dir")
    for f in "$dir/keystone/keystone.log" "$dir/keystone/manage.log" "$dir/barbican/barbican.log" \
        ${extra:+"$extra"}; do
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

# require_python IMPORTS WHAT: die unless the venv exists and imports IMPORTS.
require_python() {
    [ -x "$py" ] || die "no Python environment at $venv: run scripts/setup.sh"
    "$py" -c "import $1" 2>/dev/null || die "$2 in $venv: run scripts/setup.sh"
}

# new_password: a fresh random password on stdout.
new_password() {
    "$py" -c 'import secrets;print(secrets.token_urlsafe(18))'
}

# prepare_dir: make the caller's DIR (0700) with fresh keystone/ and
# barbican/ folders, umask 077, two distinct free ports saved in
# keystone/port and barbican/port, and a new Keystone admin password.
# Sets the caller's dir (made absolute), ks, bb, kport, bport, admin_pw.
prepare_dir() {
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    chmod 700 "$dir"
    umask 077
    ks="$dir/keystone"
    bb="$dir/barbican"
    rm -rf "$ks" "$bb" "$dir/env"
    mkdir -p "$ks/fernet-keys" "$ks/credential-keys" "$bb/home/.barbican"
    kport=$(free_port)
    bport=$(free_port)
    while [ "$bport" = "$kport" ]; do bport=$(free_port); done
    echo "$kport" >"$ks/port"
    echo "$bport" >"$bb/port"
    admin_pw=$(new_password)
}

# write_keystone_conf KS DATABASE_LINES: KS/keystone.conf (fernet tokens).
write_keystone_conf() {
    local ks=$1 db=$2
    cat >"$ks/keystone.conf" <<EOF
[DEFAULT]
debug = False
[database]
$db
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
}

# write_barbican_conf BB KPORT BPORT DATABASE_LINES SERVICE_PASSWORD TOKEN_CACHE_SECONDS:
# BB/home/.barbican/barbican.conf (simple_crypto with a new KEK, Keystone
# auth as keymgr-service) and BB/barbican-api-paste.ini.
# Barbican 23 reads oslo.db's [database] connection; the old [DEFAULT]
# sql_connection is ignored (it would fall back to ./barbican.sqlite in the
# working directory).
write_barbican_conf() {
    local bb=$1 kport=$2 bport=$3 db=$4 svc_pw=$5 cache=$6 kek
    kek=$("$py" -c 'import base64,os;print(base64.urlsafe_b64encode(os.urandom(32)).decode())')
    cat >"$bb/home/.barbican/barbican.conf" <<EOF
[DEFAULT]
debug = False
host_href = http://127.0.0.1:$bport
db_auto_create = True
[database]
$db
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
token_cache_time = $cache
EOF
    # The /v1 composite of the shipped paste file already names the
    # Keystone pipeline; the copy keeps the test independent of /etc.
    sed -e 's|^/v1:.*|/v1: barbican-api-keystone|' \
        "$venv/etc/barbican/barbican-api-paste.ini" >"$bb/barbican-api-paste.ini"
}

# keystone_bootstrap KPORT ADMIN_PW KEYSTONE_MANAGE...: the admin user,
# project and endpoints (RegionOne). The password goes through the
# environment (OS_BOOTSTRAP_PASSWORD), never on argv.
keystone_bootstrap() {
    local kport=$1 pw=$2
    shift 2
    OS_BOOTSTRAP_PASSWORD=$pw "$@" bootstrap \
        --bootstrap-public-url "http://127.0.0.1:$kport/v3" \
        --bootstrap-admin-url "http://127.0.0.1:$kport/v3" \
        --bootstrap-internal-url "http://127.0.0.1:$kport/v3" \
        --bootstrap-region-id RegionOne
}

# provision DIR KPORT BPORT ADMIN_PW RESTART_COMMAND [ENV_LINE...]: write
# DIR/env (0600) with the URLs, the restart command and ENV_LINEs, then let
# provision.py add the tenants' credentials to it. Sets the caller's svc_pw
# (Barbican's service password).
provision() {
    local dir=$1 kport=$2 bport=$3 pw=$4 restart=$5 line
    shift 5
    {
        echo "export KEYMGR_TEST_KEYSTONE_URL=http://127.0.0.1:$kport/v3"
        echo "export KEYMGR_TEST_BARBICAN_URL=http://127.0.0.1:$bport"
        echo "export KEYMGR_TEST_BARBICAN_RESTART=\"$restart\""
        for line in "$@"; do echo "$line"; done
    } >"$dir/env"
    chmod 600 "$dir/env"
    echo "$pw" | "$py" "$os_lib/provision.py" \
        "http://127.0.0.1:$kport" "http://127.0.0.1:$bport" "$dir/env" ||
        fail "$dir" "provisioning Keystone failed"
    svc_pw=$(sed -n 's/^export KEYMGR_TEST_OS_SERVICE_PASSWORD=//p' "$dir/env")
}

# start_service DIR NAME LABEL PATH: launch_NAME on DIR/NAME/port and wait
# until http://127.0.0.1:PORT/PATH answers.
start_service() {
    local dir=$1 name=$2 label=$3 path=$4 port
    port=$(cat "$dir/$name/port")
    "launch_$name" "$dir" "$port"
    wait_http "http://127.0.0.1:$port$path" "$wait_secs" "$dir/$name/pid" ||
        fail "$dir" "$label did not start on port $port"
}

start_keystone() { start_service "$1" keystone Keystone /v3; }
start_barbican() { start_service "$1" barbican Barbican /; }

# stop_services DIR: stop Barbican, then Keystone.
stop_services() {
    kill_group "$1/barbican/pid" "$kill_tenths"
    kill_group "$1/keystone/pid" "$kill_tenths"
}
