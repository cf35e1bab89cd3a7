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

export KEYMGR_REQUIRE_TOOLS=1
export KEYMGR_PYTHON="$root/.venv/bin/python"
export PATH="$root/.venv/bin:$PATH"

echo "test: cargo fmt --check"
cargo fmt --all -- --check
echo "test: cargo clippy"
cargo clippy --workspace --all-targets --all-features -- -D warnings
echo "test: cargo test"
cargo test --workspace --all-features
