#!/usr/bin/env bash
# Side-by-side benchmarks of the LUKS data path on this machine (issue 4).
#
#   (a) AES-256-XTS at 4096-byte sectors: `openssl speed -evp aes-256-xts` against
#       the luks crate (examples/xts_throughput.rs), on 1 core and on 2 cores.
#   (b) `qemu-img convert` of a 1 GiB qemu-made LUKS1 image to raw against
#       `keymgr luks read` of the same image (outputs on the same file system,
#       both compared byte for byte with the plaintext); also the luks::stream
#       path alone (examples/luks_read.rs), the library call behind the CLI.
#   (c) `cryptsetup open --test-passphrase` against `keymgr luks test-passphrase`
#       on the same pbkdf2-sha256 and argon2id LUKS2 headers.
#   (d) peak RSS of `keymgr luks read` / `keymgr luks write` on a 4 GiB volume.
#   (f) reencryption of a 1 GiB LUKS2 volume under a new volume key (issue 17):
#       `keymgr luks reencrypt` against `cryptsetup reencrypt --force-offline-reencrypt`
#       per resilience (checksum, journal, none), with peak RSS.
#   (e) client cost against Castellan 5.8 (issue 8): one secret fetched
#       CLIENT_SEQ times in sequence (median latency) and 64-way `get`
#       throughput for CLIENT_SECONDS, through keymgr (one client reused) and
#       through Castellan, on the same OpenBao and the same Barbican
#       (scripts/bench-clients.sh). Servers are started for the run with
#       scripts/servers/*.sh unless KEYMGR_TEST_VAULT_ADDR and
#       KEYMGR_TEST_KEYSTONE_URL are already set; Barbican gets
#       keystonemiddleware's deployed token cache (300 s).
#
# Every pair is printed with its ratio. Sections whose tools are missing print
# "skipped: <reason>" (never made-up numbers).
#
# Usage: scripts/bench.sh [--build] [--quick] [--no-clients] [--only-clients]
#   --build         build target/release/keymgr first (cargo build --release -p keymgr-cli)
#   --quick         1-second XTS runs, 256 MiB image in (b), 1 GiB volume in (d),
#                   50 sequential gets and 3 s of 64-way load in (e)
#   --no-clients    leave out (e) (no servers needed)
#   --only-clients  run (e) only
# Env: KEYMGR_BIN (default target/release/keymgr), BENCH_DIR (scratch directory,
#      default a new directory under /var/tmp, removed at exit), XTS_SECONDS (3),
#      REPEAT (runs per timing in (b)/(c); the best run is reported, all runs
#      are printed, because other processes share the cores; default 5),
#      CLIENT_SEQ (200), CLIENT_SECONDS (10).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
BUILD=0
QUICK=0
DATA=1
CLIENTS=1
for a in "$@"; do
    case "$a" in
    --build) BUILD=1 ;;
    --quick) QUICK=1 ;;
    --no-clients) CLIENTS=0 ;;
    --only-clients) DATA=0 ;;
    -h | --help)
        sed -n '2,40p' "$0"
        exit 0
        ;;
    *)
        echo "unknown argument $a" >&2
        exit 2
        ;;
    esac
done

KEYMGR="${KEYMGR_BIN:-$ROOT/target/release/keymgr}"
XTS_SECONDS="${XTS_SECONDS:-3}"
REPEAT="${REPEAT:-5}"
CLIENT_SEQ="${CLIENT_SEQ:-200}"
CLIENT_SECONDS="${CLIENT_SECONDS:-10}"
IMG_MIB=1024
BIG_MIB=4096
if [ "$QUICK" = 1 ]; then
    XTS_SECONDS=1
    IMG_MIB=256
    BIG_MIB=1024
    CLIENT_SEQ=50
    CLIENT_SECONDS=3
fi
if [ -n "${BENCH_DIR:-}" ]; then
    WORK="$BENCH_DIR"
    mkdir -p "$WORK"
    OWN_WORK=0
else
    WORK="$(mktemp -d /var/tmp/keymgr-bench.XXXXXX)"
    OWN_WORK=1
fi
SERVERS=() # scripts/servers/NAME.sh started by (e), stopped at exit
cleanup() {
    for name in "${SERVERS[@]}"; do
        bash "$ROOT/scripts/servers/$name.sh" stop "$WORK/servers/$name" >/dev/null 2>&1 || true
    done
    if [ "$OWN_WORK" = 1 ]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT

have() { command -v "$1" >/dev/null 2>&1; }
# ratio A B -> A/B with 2 decimals
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
# smallest of the numbers on stdin (best run)
best() { sort -g | head -1; }
# time_cmd CMD... -> prints wall seconds; the command's output goes to $WORK/last.log
time_cmd() {
    local t0 t1
    t0=$(now)
    if ! "$@" >"$WORK/last.log" 2>&1; then
        echo "command failed: $*" >&2
        tail -5 "$WORK/last.log" >&2
        return 1
    fi
    t1=$(now)
    elapsed "$t0" "$t1"
}
keymgr_has() { [ -x "$KEYMGR" ] && "$KEYMGR" luks "$1" --help >/dev/null 2>&1; }

echo "== machine"
echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
if have lscpu; then
    lscpu | grep -E '^(Model name|CPU\(s\)|Thread\(s\) per core)' | sed 's/  */ /g'
    echo "flags: $(lscpu | grep -o -w -E 'aes|avx2|avx512f|avx512vl|vaes|vpclmulqdq' | sort -u | tr '\n' ' ')"
fi
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) (other processes share these cores)"
if have openssl; then echo "openssl: $(openssl version)"; fi
if have qemu-img; then echo "qemu-img: $(qemu-img --version | head -1)"; fi
if have cryptsetup; then echo "cryptsetup: $(cryptsetup --version)"; fi

if [ "$BUILD" = 1 ]; then
    echo "== building keymgr (release)"
    cargo build --release -p keymgr-cli
fi
if [ "$DATA" = 1 ]; then
echo "== building luks example xts_throughput (release)"
cargo build --release -q -p luks --example xts_throughput --example luks_read
XTS_BIN="$ROOT/target/release/examples/xts_throughput"
READ_BIN="$ROOT/target/release/examples/luks_read"

# ---------------------------------------------------------------- (a)
echo
echo "== (a) AES-256-XTS, 4096-byte sectors (GB/s = 10^9 bytes/s)"
echo "   per-core figures divide by CPU time (as openssl speed does), so they hold on a shared machine;"
echo "   wall-clock and 2-core figures need otherwise idle cores"
crate_gbps() { # backend threads op -> "wall-clock GB/s" "GB/s per CPU second"
    "$XTS_BIN" --backend "$1" --threads "$2" --op "$3" --sector 4096 --seconds "$XTS_SECONDS" |
        awk -v t="$2" '$1 == "xts" { delete f; for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] } if (f["threads"] == t) { g = f["gbps"]; c = f["cpu_gbps"] } } END { print g, c }'
}
if have openssl; then
    o1=$(openssl speed -evp aes-256-xts -bytes 4096 -seconds "$XTS_SECONDS" 2>/dev/null | awk '/^AES-256-XTS/ { v = $2 } END { sub("k", "", v); printf "%.3f", v * 1000 / 1e9 }')
    o2=$(openssl speed -multi 2 -evp aes-256-xts -bytes 4096 -seconds "$XTS_SECONDS" 2>/dev/null | awk '/^AES-256-XTS/ { v = $2 } END { sub("k", "", v); printf "%.3f", v * 1000 / 1e9 }')
    d1=$(openssl speed -decrypt -evp aes-256-xts -bytes 4096 -seconds "$XTS_SECONDS" 2>/dev/null | awk '/^AES-256-XTS/ { v = $2 } END { sub("k", "", v); printf "%.3f", v * 1000 / 1e9 }')
    d2=$(openssl speed -decrypt -multi 2 -evp aes-256-xts -bytes 4096 -seconds "$XTS_SECONDS" 2>/dev/null | awk '/^AES-256-XTS/ { v = $2 } END { sub("k", "", v); printf "%.3f", v * 1000 / 1e9 }')
    echo "openssl speed -evp aes-256-xts (divides by user CPU time): encrypt 1 core $o1 GB/s, 2 cores $o2 GB/s; decrypt 1 core $d1 GB/s, 2 cores $d2 GB/s"
else
    o1=""
    o2=""
    echo "skipped openssl: openssl not installed"
fi
for backend in $("$XTS_BIN" --seconds 0.01 --threads 1 --op encrypt | awk '$1 == "xts" { split($2, kv, "="); print kv[2] }' | sort -u); do
    for op in encrypt decrypt; do
        read -r c1 p1 < <(crate_gbps "$backend" 1 "$op")
        read -r c2 _ < <(crate_gbps "$backend" 2 "$op")
        echo "luks $backend $op: per core (CPU time) $p1 GB/s; wall clock 1 thread $c1 GB/s, 2 threads $c2 GB/s (2-core scaling $(ratio "$c2" "$c1")x)"
        if [ -n "$o1" ]; then
            if [ "$op" = encrypt ]; then r1=$o1 r2=$o2; else r1=$d1 r2=$d2; fi
            echo "  vs openssl speed $op: per core $r1 GB/s -> ratio $(ratio "$p1" "$r1")x; 2 processes $r2 GB/s vs 2 threads -> ratio $(ratio "$c2" "$r2")x"
        fi
    done
done

# ---------------------------------------------------------------- (b)
echo
echo "== (b) qemu-img convert vs keymgr luks read, ${IMG_MIB} MiB qemu-made LUKS1 image"
printf 'bench passphrase' >"$WORK/pass"
if ! have qemu-img; then
    echo "skipped: qemu-img not installed"
elif ! keymgr_has read; then
    echo "skipped: $KEYMGR has no 'luks read' (build it with scripts/bench.sh --build)"
else
    head -c "$((IMG_MIB << 20))" /dev/urandom >"$WORK/plain.raw"
    # iter-time 100 ms keeps the (identical) unlock small next to the data path.
    qemu-img convert -f raw -O luks --object secret,id=s0,file="$WORK/pass" \
        -o key-secret=s0,iter-time=100 "$WORK/plain.raw" "$WORK/img.luks"
    cat "$WORK/img.luks" >/dev/null # both runs start from the page cache
    echo "scratch directory: $WORK ($(df -T "$WORK" | awk 'NR == 2 { print $2 }'))"
    # One untimed run of each first: on this VM the first write of 1 GiB to
    # memory the guest has not touched yet costs ~3 s of system time (the host
    # backs the pages on first touch), whichever tool happens to run first.
    qemu-img convert --object secret,id=s0,file="$WORK/pass" \
        --image-opts "driver=luks,key-secret=s0,file.filename=$WORK/img.luks" -O raw "$WORK/qemu.raw"
    "$KEYMGR" luks read "$WORK/img.luks" --key-file "$WORK/pass" --output "$WORK/keymgr.raw"
    "$READ_BIN" "$WORK/img.luks" "$WORK/pass" "$WORK/stream.raw" 2>/dev/null
    qt=()
    kt=()
    st=()
    # Each tool removes its own previous output just before it runs, so each
    # one writes into memory freed a moment ago (removing all three at once
    # favoured whichever ran first), and `sync` first so that no tool pays for
    # writing back another's output. Neither tool syncs its output: both
    # timings are up to the data being in the page cache.
    for _ in $(seq "$REPEAT"); do
        rm -f "$WORK/qemu.raw"
        sync
        qt+=("$(time_cmd qemu-img convert --object secret,id=s0,file="$WORK/pass" \
            --image-opts "driver=luks,key-secret=s0,file.filename=$WORK/img.luks" -O raw "$WORK/qemu.raw")")
        rm -f "$WORK/keymgr.raw"
        sync
        kt+=("$(time_cmd "$KEYMGR" luks read "$WORK/img.luks" --key-file "$WORK/pass" --output "$WORK/keymgr.raw")")
        rm -f "$WORK/stream.raw"
        sync
        st+=("$(time_cmd "$READ_BIN" "$WORK/img.luks" "$WORK/pass" "$WORK/stream.raw")")
    done
    cmp "$WORK/plain.raw" "$WORK/qemu.raw" && cmp "$WORK/plain.raw" "$WORK/keymgr.raw" &&
        cmp "$WORK/plain.raw" "$WORK/stream.raw" && echo "outputs identical to the plaintext: yes"
    qm=$(printf '%s\n' "${qt[@]}" | best)
    km=$(printf '%s\n' "${kt[@]}" | best)
    echo "qemu-img convert: best ${qm} s (runs: ${qt[*]})"
    echo "keymgr luks read: best ${km} s (runs: ${kt[*]})"
    sm=$(printf '%s\n' "${st[@]}" | best)
    echo "luks::stream alone (examples/luks_read, the library call keymgr luks read makes): best ${sm} s (runs: ${st[*]})"
    echo "speed-up keymgr vs qemu-img: $(ratio "$qm" "$km")x ($(awk -v s="$km" -v m="$IMG_MIB" 'BEGIN { printf "%.2f", m * 1048576 / s / 1e9 }') GB/s incl. unlock and write)"
    echo "speed-up luks::stream vs qemu-img: $(ratio "$qm" "$sm")x ($(awk -v s="$sm" -v m="$IMG_MIB" 'BEGIN { printf "%.2f", m * 1048576 / s / 1e9 }') GB/s incl. unlock and write)"
    rm -f "$WORK/qemu.raw" "$WORK/keymgr.raw" "$WORK/stream.raw" "$WORK/plain.raw" "$WORK/img.luks"
fi

# ---------------------------------------------------------------- (c)
echo
echo "== (c) cryptsetup open --test-passphrase vs keymgr luks test-passphrase"
if ! have cryptsetup; then
    echo "skipped: cryptsetup not installed"
elif ! keymgr_has test-passphrase; then
    echo "skipped: $KEYMGR has no 'luks test-passphrase' (build it with scripts/bench.sh --build)"
else
    declare -A KDF_ARGS=(
        [pbkdf2-sha256-1000000]="--pbkdf pbkdf2 --hash sha256 --pbkdf-force-iterations 1000000"
        [argon2id-t4-m262144-p2]="--pbkdf argon2id --pbkdf-force-iterations 4 --pbkdf-memory 262144 --pbkdf-parallel 2"
    )
    for name in pbkdf2-sha256-1000000 argon2id-t4-m262144-p2; do
        hdr="$WORK/$name.img"
        truncate -s 32M "$hdr"
        # shellcheck disable=SC2086
        cryptsetup luksFormat -q --type luks2 ${KDF_ARGS[$name]} --key-file "$WORK/pass" "$hdr" >/dev/null
        # One untimed run of each first (fresh memory costs the first one more).
        cryptsetup open --test-passphrase --key-file "$WORK/pass" "$hdr"
        "$KEYMGR" luks test-passphrase "$hdr" --key-file "$WORK/pass" 2>/dev/null
        ct=()
        kt=()
        for _ in $(seq "$REPEAT"); do
            ct+=("$(time_cmd cryptsetup open --test-passphrase --key-file "$WORK/pass" "$hdr")")
            kt+=("$(time_cmd "$KEYMGR" luks test-passphrase "$hdr" --key-file "$WORK/pass")")
        done
        cm=$(printf '%s\n' "${ct[@]}" | best)
        km=$(printf '%s\n' "${kt[@]}" | best)
        echo "$name: cryptsetup best ${cm} s (runs: ${ct[*]}), keymgr best ${km} s (runs: ${kt[*]}), keymgr/cryptsetup $(ratio "$km" "$cm")x"
        rm -f "$hdr"
    done
fi

# ---------------------------------------------------------------- (d)
echo
echo "== (d) peak RSS of keymgr luks read|write, ${BIG_MIB} MiB volume"
if [ ! -x /usr/bin/time ]; then
    echo "skipped: /usr/bin/time not installed"
elif ! have qemu-img; then
    echo "skipped: qemu-img not installed (used to make the volume)"
elif ! keymgr_has read || ! keymgr_has write; then
    echo "skipped: $KEYMGR has no 'luks read'/'luks write' (build it with scripts/bench.sh --build)"
else
    qemu-img create -q -f luks --object secret,id=s0,file="$WORK/pass" \
        -o key-secret=s0,iter-time=100 "$WORK/big.luks" "${BIG_MIB}M"
    rss() { awk -F': *' '/Maximum resident set size/ { printf "%.1f", $2 / 1024 }' "$1"; }
    t0=$(now)
    head -c "$((BIG_MIB << 20))" /dev/zero |
        /usr/bin/time -v -o "$WORK/write.time" "$KEYMGR" luks write "$WORK/big.luks" --key-file "$WORK/pass" --input - >/dev/null
    t1=$(now)
    /usr/bin/time -v -o "$WORK/read.time" "$KEYMGR" luks read "$WORK/big.luks" --key-file "$WORK/pass" --output - |
        cmp -n "$((BIG_MIB << 20))" - /dev/zero && echo "read back equals what was written: yes"
    t2=$(now)
    echo "keymgr luks write: peak RSS $(rss "$WORK/write.time") MiB, $(elapsed "$t0" "$t1") s"
    echo "keymgr luks read:  peak RSS $(rss "$WORK/read.time") MiB, $(elapsed "$t1" "$t2") s"
    rm -f "$WORK/big.luks"
fi

echo
echo "== (f) reencryption under a new volume key, ${IMG_MIB} MiB LUKS2 volume (aes-xts-plain64, 4096-byte sectors):"
echo "   keymgr luks reencrypt vs cryptsetup reencrypt --force-offline-reencrypt, per resilience; peak RSS"
if ! have cryptsetup; then
    echo "skipped: cryptsetup not installed"
elif [ ! -x /usr/bin/time ]; then
    echo "skipped: /usr/bin/time not installed"
elif ! keymgr_has reencrypt; then
    echo "skipped: $KEYMGR has no 'luks reencrypt' (build it with scripts/bench.sh --build)"
else
    printf 'reencrypt-bench' >"$WORK/rpass"
    RE="$WORK/re.img"
    rm -f "$RE"
    truncate -s "$((IMG_MIB + 16))M" "$RE"
    FASTKDF=(--pbkdf pbkdf2 --pbkdf-force-iterations 1000)
    cryptsetup luksFormat -q --type luks2 --sector-size 4096 "${FASTKDF[@]}" --key-file "$WORK/rpass" "$RE"
    rss() { awk -F': *' '/Maximum resident set size/ { printf "%.1f", $2 / 1024 }' "$1"; }
    for r in checksum journal none; do
        t0=$(now)
        /usr/bin/time -v -o "$WORK/cs.time" cryptsetup reencrypt -q --force-offline-reencrypt \
            --resilience "$r" "${FASTKDF[@]}" --key-file "$WORK/rpass" "$RE" >"$WORK/last.log" 2>&1 ||
            { echo "cryptsetup reencrypt failed"; tail -3 "$WORK/last.log"; }
        t1=$(now)
        /usr/bin/time -v -o "$WORK/km.time" "$KEYMGR" -q luks reencrypt "$RE" --key-file "$WORK/rpass" \
            --resilience "$r" "${FASTKDF[@]}" >"$WORK/last.log" 2>&1 ||
            { echo "keymgr luks reencrypt failed"; tail -3 "$WORK/last.log"; }
        t2=$(now)
        cs_s=$(elapsed "$t0" "$t1")
        km_s=$(elapsed "$t1" "$t2")
        mibs() { awk -v m="$IMG_MIB" -v s="$1" 'BEGIN { if (s > 0) printf "%.0f", m / s; else print "n/a" }'; }
        echo "$r: cryptsetup $cs_s s ($(mibs "$cs_s") MiB/s, peak RSS $(rss "$WORK/cs.time") MiB)," \
            "keymgr $km_s s ($(mibs "$km_s") MiB/s, peak RSS $(rss "$WORK/km.time") MiB): keymgr $(ratio "$cs_s" "$km_s")x"
    done
    cryptsetup open --test-passphrase --key-file "$WORK/rpass" "$RE" && echo "cryptsetup opens the result: yes"
    rm -f "$RE"
fi
fi # DATA

# ---------------------------------------------------------------- (e)
if [ "$CLIENTS" = 1 ]; then
    echo
    echo "== (e) client cost: keymgr vs Castellan on the same OpenBao and Barbican (${CLIENT_SEQ} sequential gets, ${CLIENT_SECONDS} s of 64-way gets)"
    PY="$ROOT/.venv/bin/python"
    if ! "$PY" -c 'import castellan, keystone, barbican' 2>/dev/null; then
        echo "skipped: castellan, keystone or barbican missing from $ROOT/.venv (run scripts/setup.sh)"
    else
        envs=()
        if [ -n "${KEYMGR_TEST_VAULT_ADDR:-}" ] && [ -n "${KEYMGR_TEST_KEYSTONE_URL:-}" ]; then
            echo "servers: the ones named by KEYMGR_TEST_* in the environment"
        else
            mkdir -p "$WORK/servers"
            chmod 700 "$WORK/servers"
            for name in openbao openstack pykmip; do
                mkdir -p "$WORK/servers/$name"
                SERVERS+=("$name")
                echo "starting $name (scripts/servers/$name.sh)"
                OPENSTACK_TOKEN_CACHE_SECONDS=300 bash "$ROOT/scripts/servers/$name.sh" start "$WORK/servers/$name" >"$WORK/servers/$name.log" 2>&1 || {
                    tail -20 "$WORK/servers/$name.log" >&2
                    echo "could not start $name" >&2
                    exit 1
                }
                envs+=("$WORK/servers/$name/env")
            done
        fi
        KEYMGR_PYTHON="$PY" bash "$ROOT/scripts/bench-clients.sh" "$CLIENT_SEQ" "$CLIENT_SECONDS" "${envs[@]}"
    fi
fi
