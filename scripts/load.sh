#!/usr/bin/env bash
# Mixed-workload load run against real servers: create 10%, store 10%, get
# 60%, metadata 10%, consumer add/remove 5%, delete 5% per backend (the
# embedded store, OpenBao, Barbican), keymgr (tokio tasks) and then Castellan
# (Python threads) on the same servers. Prints per-operation p50/p99 and
# throughput, and ends with keymgr's audit line
# `N ops, M errors, lost L, duplicated D`; exits non-zero when that audit is
# not clean (lost, duplicated, wrong payload, untyped error).
#
# Usage: scripts/load.sh [--servers production|light] [--seconds N]
#          [--concurrency 64[,8,1]] [--backends mock,vault,barbican]
#          [--fault barbican-worker|postgres|raft-leader|keystone]
#          [--no-castellan] [--json FILE] [--keep DIR] [--profile release|dev]
#
# --profile dev uses target/debug/load, which `cargo test` has built already
# (the CI smoke run in scripts/test.sh uses it; figures use release).
#
# It starts the chosen server set in a temporary folder and stops it at the
# end (--keep DIR: start it in DIR, or reuse it there, and leave it running).
# A fault runs once per run, a third of the way in, against the backend it
# concerns (production set only):
#   barbican-worker  kill -9 one gunicorn Barbican worker (gunicorn forks another)
#   postgres         restart PostgreSQL (fast shutdown, start)
#   keystone         restart Keystone (all its workers)
#   raft-leader      kill -9 the OpenBao raft leader, start it again 5 s later
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

servers=production seconds=10 concurrency=64 backends=mock,vault,barbican
fault="" castellan=1 json="" keep="" profile=release
while [ $# -gt 0 ]; do
    case "$1" in
    --servers) servers=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --backends) backends=$2; shift 2 ;;
    --fault) fault=$2; shift 2 ;;
    --no-castellan) castellan=0; shift ;;
    --json) json=$2; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    --profile) profile=$2; shift 2 ;;
    *) echo "load.sh: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done
case "$servers" in
light) sdir="$root/scripts/servers" ;;
production) sdir="$root/scripts/servers/production" ;;
*) echo "load.sh: --servers must be production or light" >&2; exit 2 ;;
esac

if [ -n "$keep" ]; then
    env_dir=$keep
    mkdir -p "$env_dir"
else
    env_dir=$(mktemp -d /tmp/keymgr-load.XXXXXX)
fi
chmod 700 "$env_dir"
env_dir=$(cd "$env_dir" && pwd)
started=()
cleanup() {
    for name in "${started[@]}"; do
        bash "$sdir/$name.sh" stop "$env_dir/$name" >/dev/null 2>&1 || true
    done
    [ -n "$keep" ] || rm -rf "$env_dir"
}
trap cleanup EXIT

# Only the servers the backends need.
need=()
case ",$backends," in *,barbican,*) need+=(openstack) ;; esac
case ",$backends," in *,vault,*) need+=(openbao) ;; esac
for name in "${need[@]}"; do
    if [ ! -f "$env_dir/$name/env" ]; then
        echo "load: starting $servers $name"
        [ -n "$keep" ] || started+=("$name")
        bash "$sdir/$name.sh" start "$env_dir/$name" >"$env_dir/$name.start.log" 2>&1 ||
            { cat "$env_dir/$name.start.log" >&2; exit 1; }
    fi
    set -a
    # shellcheck disable=SC1090
    . "$env_dir/$name/env"
    set +a
done

fault_args=()
if [ -n "$fault" ]; then
    [ "$servers" = production ] || { echo "load.sh: faults need --servers production" >&2; exit 2; }
    ctl="bash $sdir/openstack.sh"
    bao="bash $sdir/openbao.sh"
    case "$fault" in
    barbican-worker) cmd="$ctl kill-barbican-worker $env_dir/openstack" fb=barbican ;;
    postgres) cmd="$ctl restart-postgres $env_dir/openstack" fb=barbican ;;
    keystone) cmd="$ctl restart-keystone $env_dir/openstack" fb=barbican ;;
    raft-leader)
        d="$env_dir/openbao"
        cmd="n=\$($bao leader $d) && $bao kill-node $d \$n && echo killed raft leader node\$n && sleep 5 && $bao start-node $d \$n >/dev/null"
        fb=vault
        ;;
    *) echo "load.sh: unknown fault $fault" >&2; exit 2 ;;
    esac
    at=$(awk -v s="$seconds" 'BEGIN { printf "%.1f", s / 3 }')
    fault_args=(--fault-at "$at" --fault-cmd "$cmd" --fault-backend "$fb")
    echo "load: fault $fault at $at s against $fb"
fi

case "$profile" in
release) cargo build -q --release -p tests --bin load; bin="$root/target/release/load" ;;
dev) cargo build -q -p tests --bin load; bin="$root/target/debug/load" ;;
*) echo "load.sh: --profile must be release or dev" >&2; exit 2 ;;
esac
json_args=()
[ -n "$json" ] && json_args=(--json "$json")
echo "load: keymgr, $servers servers, $seconds s, concurrency $concurrency, $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"
rc=0
"$bin" --backends "$backends" --seconds "$seconds" --concurrency "$concurrency" \
    "${fault_args[@]}" "${json_args[@]}" >"$env_dir/keymgr.out" || rc=$?

if [ "$castellan" = 1 ]; then
    cb=$(echo "$backends" | tr ',' '\n' | grep -v '^mock$' | paste -sd, -)
    if [ -n "$cb" ]; then
        echo "load: Castellan, same servers and mix"
        "$root/.venv/bin/python" "$root/scripts/load/castellan_load.py" --backends "$cb" \
            --seconds "$seconds" --concurrency "$concurrency" "${json_args[@]}" || true
    fi
fi
# keymgr's report last, so its audit line is the final line.
echo "load: keymgr"
cat "$env_dir/keymgr.out"
exit $rc
