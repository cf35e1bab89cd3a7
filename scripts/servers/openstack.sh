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

prog=openstack.sh
wait_secs=60
kill_tenths=50
# shellcheck source=openstack/lib.sh
. "$here/openstack/lib.sh"

# launch NAME DIR ARGS...: serve.py in its own session, run from DIR/NAME so
# any relative path stays in DIR.
launch() {
    local name=$1 dir=$2
    shift 2
    (cd "$dir/$name" && exec setsid "$py" "$here/openstack/serve.py" "$name" "$@" \
        >>"$dir/$name/$name.log" 2>&1 </dev/null) &
    echo $! >"$dir/$name/pid"
}

launch_keystone() { launch keystone "$1" "$2" "$1/keystone"; }
launch_barbican() { HOME="$1/barbican/home" launch barbican "$1" "$2" "$1/barbican/barbican-api-paste.ini"; }

start() {
    local dir=$1 ks bb kport bport admin_pw svc_pw
    require_python "keystone, barbican" "keystone and barbican are not installed"
    prepare_dir
    write_keystone_conf "$ks" "connection = sqlite:///$ks/keystone.db"

    local km=("$venv/bin/keystone-manage" --config-file "$ks/keystone.conf")
    {
        "${km[@]}" db_sync &&
            "${km[@]}" fernet_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)" &&
            "${km[@]}" credential_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)" &&
            keystone_bootstrap "$kport" "$admin_pw" "${km[@]}"
    } >>"$ks/manage.log" 2>&1 || fail "$dir" "keystone-manage failed"
    start_keystone "$dir"

    provision "$dir" "$kport" "$bport" "$admin_pw" \
        "bash $root/scripts/servers/openstack.sh restart-barbican $dir"
    write_barbican_conf "$bb" "$kport" "$bport" "connection = sqlite:///$bb/barbican.db" \
        "$svc_pw" "${OPENSTACK_TOKEN_CACHE_SECONDS:--1}"
    start_barbican "$dir"

    echo "openstack.sh: Keystone on 127.0.0.1:$kport, Barbican on 127.0.0.1:$bport"
}

stop() {
    stop_services "$1"
}

restart_barbican() {
    local dir=$1
    kill_group "$dir/barbican/pid" "$kill_tenths"
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
