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
workers=${KEYMGR_GUNICORN_WORKERS:-4}
threads=${KEYMGR_GUNICORN_THREADS:-4}

prog=production/openstack.sh
wait_secs=120
kill_tenths=100
# shellcheck source=../openstack/lib.sh
. "$here/../openstack/lib.sh"

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

extra_logs() { echo "$(cat "$1/pgdata" 2>/dev/null)/postgres.log"; }

# --- PostgreSQL
start_postgres() {
    local dir=$1 data port
    data=$(cat "$dir/pgdata")
    port=$(cat "$dir/postgres-port")
    as_pg "$(pgbin)/pg_ctl" -D "$data/db" -l "$data/postgres.log" -w -t 60 \
        -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$data" start >/dev/null ||
        fail "$dir" "PostgreSQL did not start on port $port"
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

launch_keystone() { launch keystone "$1" "$2" "OS_KEYSTONE_CONFIG_DIR=$1/keystone"; }
launch_barbican() {
    launch barbican "$1" "$2" "HOME=$1/barbican/home" "KEYMGR_BARBICAN_PASTE=$1/barbican/barbican-api-paste.ini"
}

start() {
    local dir=$1 ks bb kport bport admin_pw svc_pw pg_pw pgport
    require_python "keystone, barbican, gunicorn, psycopg2" \
        "keystone, barbican, gunicorn and psycopg2 must be installed"
    prepare_dir
    pg_pw=$(new_password)
    init_postgres "$dir" "$pg_pw"
    pgport=$(cat "$dir/postgres-port")
    local pgurl="postgresql+psycopg2://keymgr:$pg_pw@127.0.0.1:$pgport"
    local pool=$'max_pool_size = 5\nmax_overflow = 10'

    write_keystone_conf "$ks" "connection = $pgurl/keystone"$'\n'"$pool"
    # Barbican's configuration now (its service password is filled in after
    # provisioning) so its schema is made while Keystone sets up.
    write_barbican_conf "$bb" "$kport" "$bport" "connection = $pgurl/barbican"$'\n'"$pool" \
        @SERVICE_PASSWORD@ "${OPENSTACK_TOKEN_CACHE_SECONDS:-300}"
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
            keystone_bootstrap "$kport" "$admin_pw" "${km[@]}" >>"$ks/manage.log" 2>&1
    ) || fail "$dir" "keystone-manage failed"
    start_keystone "$dir"

    provision "$dir" "$kport" "$bport" "$admin_pw" \
        "bash $here/openstack.sh restart-barbican $dir" "export KEYMGR_TEST_SERVERS=production"
    wait $schema || fail "$dir" "Barbican's schema could not be created"
    sed -i -e 's/^db_auto_create = True/db_auto_create = False/' \
        -e "s|^password = @SERVICE_PASSWORD@|password = $svc_pw|" "$bb/home/.barbican/barbican.conf"
    start_barbican "$dir"
    echo "production/openstack.sh: PostgreSQL on 127.0.0.1:$pgport, Keystone on 127.0.0.1:$kport and Barbican on 127.0.0.1:$bport ($workers gunicorn workers x $threads threads each)"
}

stop() {
    local dir=$1 data
    stop_services "$dir"
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
stop-start-barbican) kill_group "$dir/barbican/pid" "$kill_tenths" && start_barbican "$dir" ;;
restart-keystone) kill_group "$dir/keystone/pid" "$kill_tenths" && start_keystone "$dir" ;;
kill-barbican-worker)
    w=$(a_worker "$dir" barbican)
    [ -n "$w" ] || die "no Barbican worker found"
    kill -KILL "$w"
    echo "killed Barbican worker $w"
    ;;
restart-postgres) stop_postgres "$dir" && start_postgres "$dir" ;;
*) die "$usage" ;;
esac
