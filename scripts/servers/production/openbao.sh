#!/usr/bin/env bash
# Production-shaped OpenBao: the light set's servers (scripts/servers/openbao.sh:
# a dev server for the feature tests, a TLS dev server for the custom-CA test)
# with the 3-node raft cluster served over TLS from a throwaway CA
# (OPENBAO_RAFT_TLS=1). The cluster is what keymgr-vault's HA test and
# scripts/load.sh use; DIR/env adds KEYMGR_TEST_VAULT_CLUSTER_CA (and
# SSL_CERT_FILE, the same CA, for clients that read the system trust store).
#
#   openbao.sh start DIR | stop DIR | kill-node DIR N | start-node DIR N | restart-node DIR N
#   openbao.sh leader DIR    prints the number (1-3) of the raft leader
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
light="$here/../openbao.sh"
cmd=${1:?usage: openbao.sh start|stop|kill-node|start-node|restart-node|leader DIR [N]}
dir=${2:?usage: openbao.sh start|stop|kill-node|start-node|restart-node|leader DIR [N]}
case "$cmd" in
start)
    OPENBAO_RAFT_TLS=1 bash "$light" start "$dir"
    # The node control the HA test calls is the light script's (same DIR layout).
    echo "export KEYMGR_TEST_SERVERS=production" >>"$dir/env"
    ;;
leader)
    for n in 1 2 3; do
        port=$(sed -n 's/^  address = "127.0.0.1:\([0-9]*\)".*/\1/p' "$dir/raft$n/config.hcl" | head -1)
        if curl -s --cacert "$dir/raft-ca/ca.pem" "https://127.0.0.1:$port/v1/sys/leader" 2>/dev/null |
            grep -q '"is_self":true'; then
            echo "$n"
            exit 0
        fi
    done
    echo "production/openbao.sh: no leader" >&2
    exit 1
    ;;
*) exec bash "$light" "$@" ;;
esac
