#!/usr/bin/env bash
# The one test command: installs what is missing, starts the test servers on
# free loopback ports, checks formatting and lints, runs every test, and
# stops the servers whatever happens.
#
# KEYMGR_SERVERS picks the server set: `light` (default; scripts/servers/*.sh:
# one wsgiref process each on SQLite, OpenBao dev servers and a plain raft
# cluster) or `production` (scripts/servers/production/*.sh: PostgreSQL,
# Keystone and Barbican under gunicorn with 4 workers, OpenBao raft over TLS).
# Both write the same KEYMGR_TEST_* names.
#
# Each scripts/servers/NAME.sh implements `start DIR` (start in the
# background with all state in DIR, wait until ready, write `export VAR=...`
# lines to DIR/env) and `stop DIR`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

bash scripts/setup.sh

testenv="$root/.testenv"
rm -rf "$testenv"
mkdir -p "$testenv"
chmod 700 "$testenv"

case "${KEYMGR_SERVERS:-light}" in
light) servers=scripts/servers ;;
production) servers=scripts/servers/production ;;
*)
    echo "test: KEYMGR_SERVERS must be light or production, not ${KEYMGR_SERVERS}" >&2
    exit 2
    ;;
esac

started=()
stop_servers() {
    for name in "${started[@]}"; do
        bash "$servers/$name.sh" stop "$testenv/$name" || true
    done
}
trap stop_servers EXIT

for script in "$servers"/*.sh; do
    [ -e "$script" ] || continue
    name=$(basename "$script" .sh)
    mkdir -p "$testenv/$name"
    started+=("$name")
    echo "test: starting $name"
    bash "$script" start "$testenv/$name"
    # shellcheck disable=SC1090
    [ -f "$testenv/$name/env" ] && source "$testenv/$name/env"
done

# The production-shaped smoke run (scripts/load.sh, 10 s, audit must be
# clean) needs its own servers under the light set: start them now, in the
# background, while fmt and clippy run. KEYMGR_SMOKE=0 skips it.
smoke_dir="$testenv/production"
smoke_pid=""
if [ "${KEYMGR_SMOKE:-1}" = 1 ]; then
    if [ "$servers" = scripts/servers/production ]; then
        smoke_dir=$testenv
    else
        mkdir -p "$smoke_dir"
        (
            bash scripts/servers/production/openstack.sh start "$smoke_dir/openstack" &&
                bash scripts/servers/production/openbao.sh start "$smoke_dir/openbao"
        ) >"$testenv/production-start.log" 2>&1 &
        smoke_pid=$!
        stop_smoke() {
            bash scripts/servers/production/openstack.sh stop "$smoke_dir/openstack" || true
            bash scripts/servers/production/openbao.sh stop "$smoke_dir/openbao" || true
        }
        trap 'stop_servers; stop_smoke' EXIT
    fi
fi

export KEYMGR_REQUIRE_TOOLS=1
export KEYMGR_PYTHON="$root/.venv/bin/python"
export PATH="$root/.venv/bin:$PATH"

echo "test: cargo fmt --check"
cargo fmt --all -- --check
echo "test: cargo clippy"
cargo clippy --workspace --all-targets --all-features -- -D warnings
echo "test: cargo test"
cargo test --workspace --all-features

if [ "${KEYMGR_SMOKE:-1}" = 1 ]; then
    if [ -n "$smoke_pid" ] && ! wait "$smoke_pid"; then
        cat "$testenv/production-start.log" >&2
        echo "test: the production-shaped servers did not start" >&2
        exit 1
    fi
    echo "test: production-shaped smoke run (10 s, audit must be clean)"
    bash scripts/load.sh --servers production --keep "$smoke_dir" --seconds 10 --backends vault,barbican \
        --no-castellan --profile dev
fi
