#!/usr/bin/env bash
# Installs what the tests need when it is missing: Debian tools (cryptsetup,
# qemu-img, PostgreSQL) and a Python virtual environment in .venv with the servers and
# helpers listed in scripts/requirements-test.txt. Safe to run again.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

need_apt=()
command -v cryptsetup >/dev/null 2>&1 || need_apt+=(cryptsetup-bin)
command -v qemu-img >/dev/null 2>&1 || need_apt+=(qemu-utils)
command -v qemu-io >/dev/null 2>&1 || need_apt+=(qemu-utils)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# The LUKS crash-consistency test records the writes of each operation with strace.
command -v strace >/dev/null 2>&1 || need_apt+=(strace)
# PostgreSQL (Debian's server) for the production-shaped test servers
# (scripts/servers/production/) and the CI smoke run of scripts/load.sh.
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || need_apt+=(postgresql)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${need_apt[*]}"
    if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

venv="$root/.venv"
req="$root/scripts/requirements-test.txt"
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setup: preparing Python environment in .venv (this takes a few minutes the first time)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q -r "$req"
    echo "$want" > "$stamp"
fi
echo "setup: ready (cryptsetup $(cryptsetup --version | cut -d' ' -f2), $(qemu-img --version | head -1), python $("$venv/bin/python" --version | cut -d' ' -f2))"
