#!/usr/bin/env bash
# Production-shaped Keystone and Barbican for keymgr's tests and load runs:
# PostgreSQL (Debian package) holding both databases, Keystone and Barbican
# each under gunicorn (4 workers, gthread), keystonemiddleware's token cache
# on. Same contract and KEYMGR_TEST_* names as scripts/servers/openstack.sh.
#
#   openstack.sh start DIR                 start all three, provision, write DIR/env
#   openstack.sh stop DIR                  stop all three
#   openstack.sh restart-barbican DIR      reload Barbican as operators do (SIGHUP: gunicorn
#                                          starts new workers, the old ones finish and exit)
#   openstack.sh stop-start-barbican DIR   stop Barbican (all workers) and start it again
#   openstack.sh kill-barbican-worker DIR  SIGKILL one Barbican worker (gunicorn forks another)
#   openstack.sh restart-keystone DIR      stop Keystone and start it again
#   openstack.sh restart-postgres DIR      stop PostgreSQL (fast mode) and start it again
#
# PostgreSQL refuses to run as root: when this script runs as root, initdb
# and postgres run as the Debian package's `postgres` user over a data folder
# in a fresh temporary directory that user owns (its path is in DIR/pgdata);
# otherwise they run as the caller. It listens on a free loopback port only.
#
# OPENSTACK_TOKEN_CACHE_SECONDS (default 300, keystonemiddleware's default
# in deployments) sets Barbican's token_cache_time; -1 turns it off (then a
# revoked token is refused at once, as the light set's revocation tests expect).
# KEYMGR_GUNICORN_WORKERS (default 4) and KEYMGR_GUNICORN_THREADS (default 4).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
venv="$root/.venv"
py="$venv/bin/python"
workers=${KEYMGR_GUNICORN_WORKERS:-4}
threads=${KEYMGR_GUNICORN_THREADS:-4}

die() {
    echo "production/openstack.sh: $*" >&2
    exit 1
}

free_port() {
    "$py" -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
}

pgbin() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -n "$d" ] || die "PostgreSQL is not installed (KEYMGR_SERVERS=production bash scripts/setup.sh)"
    echo "$d"
}

# as_pg CMD...: run CMD as the PostgreSQL user (postgres when we are root).
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

tails() {
    local dir=$1 f
    for f in "$dir/keystone/keystone.log" "$dir/keystone/manage.log" "$dir/barbican/barbican.log" \
        "$(cat "$dir/pgdata" 2>/dev/null)/postgres.log"; do
        [ -f "$f" ] || continue
        echo "---- last lines of $f" >&2
        tail -n 40 "$f" >&2
    done
}

# wait_http URL SECONDS PIDFILE: until URL answers below 500, the process dies, or time runs out.
wait_http() {
    "$py" - "$1" "$2" "$(cat "$3")" <<'PY'
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
PY
}

# --- PostgreSQL
start_postgres() {
    local dir=$1 data port
    data=$(cat "$dir/pgdata")
    port=$(cat "$dir/postgres-port")
    as_pg "$(pgbin)/pg_ctl" -D "$data/db" -l "$data/postgres.log" -w -t 60 \
        -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$data" start >/dev/null ||
        { tails "$dir"; die "PostgreSQL did not start on port $port"; }
}

stop_postgres() {
    local dir=$1 data
    data=$(cat "$dir/pgdata" 2>/dev/null) || return 0
    [ -f "$data/db/postmaster.pid" ] || return 0
    as_pg "$(pgbin)/pg_ctl" -D "$data/db" -m fast -w -t 30 stop >/dev/null 2>&1 ||
        as_pg "$(pgbin)/pg_ctl" -D "$data/db" -m immediate -w stop >/dev/null 2>&1 || true
}

init_postgres() {
    local dir=$1 pw=$2 data port bin
    bin=$(pgbin)
    data=$(mktemp -d /tmp/keymgr-pg.XXXXXX)
    echo "$data" >"$dir/pgdata"
    port=$(free_port)
    echo "$port" >"$dir/postgres-port"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$data"
    chmod 700 "$data"
    # The superuser password goes to initdb in a 0600 file, never on argv.
    (umask 077 && printf '%s\n' "$pw" >"$data/pwfile")
    [ "$(id -u)" -eq 0 ] && chown postgres: "$data/pwfile"
    as_pg "$bin/initdb" -D "$data/db" -U keymgr --pwfile="$data/pwfile" --auth=scram-sha-256 \
        -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    rm -f "$data/pwfile"
    # Sized for 2 x 4 workers x (pool 5 + overflow 10) plus the tools.
    cat >>"$data/db/postgresql.conf" <<CONF
max_connections = 300
shared_buffers = 128MB
log_min_messages = warning
CONF
    start_postgres "$dir"
    local db
    for db in keystone barbican; do
        PGPASSWORD=$pw "$bin/psql" -q -h 127.0.0.1 -p "$port" -U keymgr -d postgres \
            -c "CREATE DATABASE $db" >/dev/null || die "cannot create database $db"
    done
}

# --- gunicorn services
launch() { # NAME DIR PORT ENV...
    local name=$1 dir=$2 port=$3
    shift 3
    (cd "$dir/$name" && exec env "$@" setsid "$venv/bin/gunicorn" \
        --chdir "$here" --bind "127.0.0.1:$port" --workers "$workers" \
        --worker-class gthread --threads "$threads" --keep-alive 30 --backlog 256 \
        --timeout 120 --graceful-timeout 5 --pid "$dir/$name/gunicorn.pid" \
        --name "keymgr-$name" "wsgi:$name()" >>"$dir/$name/$name.log" 2>&1 </dev/null) &
    echo $! >"$dir/$name/pid"
}

kill_group() {
    local pidfile=$1 pid i
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
}

start_keystone() {
    local dir=$1 port
    port=$(cat "$dir/keystone/port")
    launch keystone "$dir" "$port" "OS_KEYSTONE_CONFIG_DIR=$dir/keystone"
    wait_http "http://127.0.0.1:$port/v3" 120 "$dir/keystone/pid" ||
        { tails "$dir"; die "Keystone did not start on port $port"; }
}

start_barbican() {
    local dir=$1 port
    port=$(cat "$dir/barbican/port")
    launch barbican "$dir" "$port" "HOME=$dir/barbican/home" "KEYMGR_BARBICAN_PASTE=$dir/barbican/barbican-api-paste.ini"
    wait_http "http://127.0.0.1:$port/" 120 "$dir/barbican/pid" ||
        { tails "$dir"; die "Barbican did not start on port $port"; }
}

start() {
    local dir=$1
    [ -x "$py" ] || die "no Python environment at $venv: run scripts/setup.sh"
    "$py" -c 'import keystone, barbican, gunicorn, psycopg2' 2>/dev/null ||
        die "keystone, barbican, gunicorn and psycopg2 must be installed in $venv: run scripts/setup.sh"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    chmod 700 "$dir"
    umask 077
    local ks="$dir/keystone" bb="$dir/barbican"
    rm -rf "$ks" "$bb" "$dir/env"
    mkdir -p "$ks/fernet-keys" "$ks/credential-keys" "$bb/home/.barbican"

    local kport bport admin_pw pg_pw kek pgport
    kport=$(free_port)
    bport=$(free_port)
    while [ "$bport" = "$kport" ]; do bport=$(free_port); done
    echo "$kport" >"$ks/port"
    echo "$bport" >"$bb/port"
    admin_pw=$("$py" -c 'import secrets;print(secrets.token_urlsafe(18))')
    pg_pw=$("$py" -c 'import secrets;print(secrets.token_urlsafe(18))')
    init_postgres "$dir" "$pg_pw"
    pgport=$(cat "$dir/postgres-port")
    local pgurl="postgresql+psycopg2://keymgr:$pg_pw@127.0.0.1:$pgport"

    cat >"$ks/keystone.conf" <<CONF
[DEFAULT]
debug = False
[database]
connection = $pgurl/keystone
max_pool_size = 5
max_overflow = 10
[token]
provider = fernet
expiration = 3600
[fernet_tokens]
key_repository = $ks/fernet-keys
[fernet_receipts]
key_repository = $ks/fernet-keys
[credential]
key_repository = $ks/credential-keys
CONF

    # Barbican's configuration now (its service password is filled in after
    # provisioning) so its schema is made while Keystone sets up.
    kek=$("$py" -c 'import base64,os;print(base64.urlsafe_b64encode(os.urandom(32)).decode())')
    cat >"$bb/home/.barbican/barbican.conf" <<CONF
[DEFAULT]
debug = False
host_href = http://127.0.0.1:$bport
db_auto_create = True
[database]
connection = $pgurl/barbican
max_pool_size = 5
max_overflow = 10
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
password = @SERVICE_PASSWORD@
project_name = service
user_domain_name = Default
project_domain_name = Default
region_name = RegionOne
service_type = key-manager
token_cache_time = ${OPENSTACK_TOKEN_CACHE_SECONDS:-300}
CONF
    sed -e 's|^/v1:.*|/v1: barbican-api-keystone|' \
        "$venv/etc/barbican/barbican-api-paste.ini" >"$bb/barbican-api-paste.ini"
    # The schema once, before four workers start.
    (cd "$bb" && HOME="$bb/home" KEYMGR_BARBICAN_PASTE="$bb/barbican-api-paste.ini" \
        exec "$py" "$here/wsgi.py" barbican-schema >>"$bb/barbican.log" 2>&1) &
    local schema=$!

    local km=("$venv/bin/keystone-manage" --config-file "$ks/keystone.conf")
    local owner=(--keystone-user "$(id -un)" --keystone-group "$(id -gn)")
    (
        "${km[@]}" fernet_setup "${owner[@]}" >>"$ks/manage-fernet.log" 2>&1 &
        f=$!
        "${km[@]}" credential_setup "${owner[@]}" >>"$ks/manage-credential.log" 2>&1 &
        c=$!
        "${km[@]}" db_sync >>"$ks/manage.log" 2>&1 && wait $f && wait $c &&
            "${km[@]}" bootstrap --bootstrap-password "$admin_pw" \
                --bootstrap-public-url "http://127.0.0.1:$kport/v3" \
                --bootstrap-admin-url "http://127.0.0.1:$kport/v3" \
                --bootstrap-internal-url "http://127.0.0.1:$kport/v3" \
                --bootstrap-region-id RegionOne >>"$ks/manage.log" 2>&1
    ) || {
        tails "$dir"
        die "keystone-manage failed"
    }
    start_keystone "$dir"

    {
        echo "export KEYMGR_TEST_KEYSTONE_URL=http://127.0.0.1:$kport/v3"
        echo "export KEYMGR_TEST_BARBICAN_URL=http://127.0.0.1:$bport"
        echo "export KEYMGR_TEST_BARBICAN_RESTART=\"bash $here/openstack.sh restart-barbican $dir\""
        echo "export KEYMGR_TEST_SERVERS=production"
    } >"$dir/env"
    chmod 600 "$dir/env"
    echo "$admin_pw" | "$py" "$here/../openstack/provision.py" \
        "http://127.0.0.1:$kport" "http://127.0.0.1:$bport" "$dir/env" || {
        tails "$dir"
        die "provisioning Keystone failed"
    }
    local svc_pw
    svc_pw=$(sed -n 's/^export KEYMGR_TEST_OS_SERVICE_PASSWORD=//p' "$dir/env")
    wait $schema || { tails "$dir"; die "Barbican's schema could not be created"; }
    sed -i -e 's/^db_auto_create = True/db_auto_create = False/' \
        -e "s|^password = @SERVICE_PASSWORD@|password = $svc_pw|" "$bb/home/.barbican/barbican.conf"
    start_barbican "$dir"
    echo "production/openstack.sh: PostgreSQL on 127.0.0.1:$pgport, Keystone on 127.0.0.1:$kport and Barbican on 127.0.0.1:$bport ($workers gunicorn workers x $threads threads each)"
}

stop() {
    local dir=$1 data
    kill_group "$dir/barbican/pid"
    kill_group "$dir/keystone/pid"
    stop_postgres "$dir"
    data=$(cat "$dir/pgdata" 2>/dev/null || true)
    case "$data" in /tmp/keymgr-pg.*) rm -rf "$data" ;; esac
    rm -f "$dir/pgdata"
}

# One worker of the gunicorn master in DIR/NAME/gunicorn.pid.
a_worker() {
    local master
    master=$(cat "$1/$2/gunicorn.pid")
    pgrep -P "$master" | head -n 1
}

# reload DIR NAME: SIGHUP to the gunicorn master; wait until every old
# worker has exited and as many new ones run.
reload() {
    local dir=$1 name=$2 master old i n
    master=$(cat "$dir/$name/gunicorn.pid")
    old=$(pgrep -P "$master" | tr '\n' ' ')
    kill -HUP "$master"
    for ((i = 0; i < 1200; i++)); do
        sleep 0.1
        local alive=0 p
        for p in $old; do kill -0 "$p" 2>/dev/null && alive=1; done
        n=$(pgrep -P "$master" | wc -l)
        [ $alive = 0 ] && [ "$n" -ge "$workers" ] && return 0
    done
    die "$name did not reload in 120 s"
}

cmd=${1:-}
dir=${2:-}
usage="usage: $0 start|stop|restart-barbican|stop-start-barbican|kill-barbican-worker|restart-keystone|restart-postgres DIR"
[ -n "$dir" ] || die "$usage"
case "$cmd" in
start) start "$dir" ;;
stop) stop "$dir" ;;
restart-barbican) reload "$dir" barbican ;;
stop-start-barbican) kill_group "$dir/barbican/pid" && start_barbican "$dir" ;;
restart-keystone) kill_group "$dir/keystone/pid" && start_keystone "$dir" ;;
kill-barbican-worker)
    w=$(a_worker "$dir" barbican)
    [ -n "$w" ] || die "no Barbican worker found"
    kill -KILL "$w"
    echo "killed Barbican worker $w"
    ;;
restart-postgres) stop_postgres "$dir" && start_postgres "$dir" ;;
*) die "$usage" ;;
esac
