#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS (default 600) each, JOBS at a
# time (default 2), with seed corpora made by the real cryptsetup and
# qemu-img, and prints executions and findings per target.
#
# cargo-fuzz needs nightly compiler flags; on this stable toolchain they are
# enabled with RUSTC_BOOTSTRAP=1 (no other toolchain can be installed here).
# Usage: scripts/fuzz.sh [SECONDS] [JOBS] [TARGET...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/fuzz"
seconds=${1:-600}
jobs=${2:-2}
shift $(( $# > 2 ? 2 : $# )) || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(luks1_header luks2_header open_volume sealed_store vault_record barbican_answer kmip_ttlv)

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1

seeds="$root/fuzz/corpus"
mkdir -p "$seeds"
make_seeds() {
    local tmp; tmp=$(mktemp -d)
    printf 'fuzz' > "$tmp/pass"
    mkdir -p "$seeds"/{luks1_header,luks2_header,open_volume,sealed_store,vault_record,barbican_answer,kmip_ttlv}
    if command -v cryptsetup >/dev/null; then
        truncate -s 18M "$tmp/a"; cryptsetup luksFormat -q --type luks1 --pbkdf-force-iterations 1000 --key-file "$tmp/pass" "$tmp/a"
        head -c 4096 "$tmp/a" > "$seeds/luks1_header/cryptsetup-luks1"
        for kdf in pbkdf2 argon2id; do
            truncate -s 18M "$tmp/b"
            if [ $kdf = pbkdf2 ]; then extra=(--pbkdf-force-iterations 1000); else extra=(--pbkdf-memory 32 --pbkdf-force-iterations 4 --pbkdf-parallel 1); fi
            cryptsetup luksFormat -q --type luks2 --pbkdf $kdf "${extra[@]}" --luks2-keyslots-size 262144 --key-file "$tmp/pass" "$tmp/b"
            head -c 32768 "$tmp/b" > "$seeds/luks2_header/cryptsetup-luks2-$kdf"
            # A small whole volume: header, keyslots and a little data.
            head -c $((16384 * 2 + 262144 + 8192)) "$tmp/b" > "$seeds/open_volume/cryptsetup-luks2-$kdf"
        done
    fi
    if command -v qemu-img >/dev/null; then
        qemu-img create -q -f luks --object secret,id=s0,file="$tmp/pass" -o key-secret=s0,iter-time=10 "$tmp/q" 1M
        head -c 4096 "$tmp/q" > "$seeds/luks1_header/qemu-luks1"
        cp "$tmp/q" "$seeds/open_volume/qemu-luks1"
    fi
    printf '{"type":"symmetric","value":"00ff","algorithm":"AES","bit_length":16,"name":1700000000,"created":1700000000}' > "$seeds/vault_record/castellan"
    printf '\x00{"secret_ref":"http://h/v1/secrets/1b4e28ba-2fa1-11d2-883f-0016d3cca427","secret_type":"opaque","consumers":[]}' > "$seeds/barbican_answer/secret"
    printf '\x03{"code":409,"title":"Conflict","description":"has consumers"}' > "$seeds/barbican_answer/error"
    # A real sealed store under the fixed key the target uses (32 bytes of 0x07).
    printf '\x07%.0s' $(seq 32) > "$tmp/store.key"; chmod 600 "$tmp/store.key"
    printf 'backend = "mock"\n[mock]\npath = "%s"\nkey_file = "%s"\n' "$tmp/store.sealed" "$tmp/store.key" > "$tmp/km.toml"
    (cd "$root" && cargo build -q -p keymgr-cli)
    for k in symmetric passphrase; do
        printf 'seed-secret' | "$root/target/debug/keymgr" --config "$tmp/km.toml" secret store --kind $k >/dev/null
    done
    cp "$tmp/store.sealed" "$seeds/sealed_store/two-secrets"
    rm -rf "$tmp"
}
make_seeds

cargo fuzz build -O >/dev/null
mkdir -p "$root/fuzz/results"
run_one() {
    local t=$1
    local log="$root/fuzz/results/$t.log"
    cargo fuzz run -O "$t" "$seeds/$t" -- -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=20 -print_final_stats=1 > "$log" 2>&1 || true
    local execs crashes
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    crashes=$(ls "$root/fuzz/artifacts/$t" 2>/dev/null | wc -l)
    echo "$t: ${execs:-?} executions in ${seconds}s, ${crashes} findings"
}
running=0
for t in "${targets[@]}"; do
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then wait -n; running=$((running - 1)); fi
done
wait
