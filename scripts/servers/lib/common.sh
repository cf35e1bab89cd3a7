# Helpers shared by the test-server scripts (scripts/servers/*.sh and
# scripts/servers/production/*.sh). Sourced, never run: it lives in a
# subfolder because scripts/test.sh starts every top-level scripts/servers/*.sh.

# free_port: print a free TCP port on 127.0.0.1.
free_port() {
    python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
}

# kill_group PIDFILE [TENTHS]: SIGTERM the process group led by the pid in
# PIDFILE, wait up to TENTHS tenths of a second (default 50) for its leader to
# exit, SIGKILL what is left of the group, remove PIDFILE.
kill_group() {
    local pidfile=$1 tenths=${2:-50} pid i
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < tenths; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
}
