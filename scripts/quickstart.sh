#!/usr/bin/env bash
# The quick start: the main job on the embedded backend, no server needed.
# Builds the `keymgr` tool, creates a key in a sealed embedded store,
# formats a LUKS2 volume with it (os-brick's passphrase rule), writes data
# through the encryption, reads it back, and prints each step.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

echo "== building keymgr (release)"
cargo build --release -q -p keymgr -p examples
keymgr="$root/target/release/keymgr"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/keymgr.toml" <<TOML
backend = "mock"
[context]
project_id = "demo"
user_id = "alice"
[mock]
path = "$work/store.sealed"
key_file = "$work/store.key"
TOML
export KEYMGR_CONFIG="$work/keymgr.toml"
echo "== embedded sealed store: $work/store.sealed (master key $work/store.key, mode 0600)"

id=$("$keymgr" secret create --bits 512 --name quickstart-volume-key --mode xts)
echo "== created a 512-bit AES key: $id"
"$keymgr" secret metadata "$id"

if "$keymgr" luks --help >/dev/null 2>&1; then
    truncate -s 32M "$work/volume.img"
    "$keymgr" luks format "$work/volume.img" --type luks2 --key-ref "$id" --pbkdf pbkdf2 --iter-time 100
    echo "== formatted $work/volume.img as LUKS2 with the key's passphrase (hex of the key bytes)"
    "$keymgr" luks dump "$work/volume.img" | head -20
    head -c 1048576 /dev/urandom > "$work/data.bin"
    "$keymgr" luks write "$work/volume.img" --key-ref "$id" --input "$work/data.bin"
    "$keymgr" luks read "$work/volume.img" --key-ref "$id" --output "$work/back.bin" --length 1048576
    cmp "$work/data.bin" "$work/back.bin"
    echo "== wrote 1 MiB through the encryption and read the same bytes back"
    if command -v cryptsetup >/dev/null 2>&1; then
        # The same passphrase through cryptsetup, given in a 0600 file, never on a command line.
        umask 077
        "$keymgr" secret get "$id" --output "$work/key.bin"
        python3 -c "import sys;open(sys.argv[2],'w').write(open(sys.argv[1],'rb').read().hex())" "$work/key.bin" "$work/pass"
        cryptsetup open --test-passphrase --key-file "$work/pass" "$work/volume.img"
        echo "== cryptsetup accepts the same volume with the os-brick passphrase"
    fi
fi

if [ -x "$root/target/release/examples" ] && "$root/target/release/examples" volume --help >/dev/null 2>&1; then
    echo "== the Cinder-style volume service on the same embedded backend"
    state="$work/cinder"
    ex() { "$root/target/release/examples" --state-dir "$state" "$@"; }
    ex volume type-create encrypted-luks2 --encryption luks2 --key-size 512 2>/dev/null || true
    ex volume --help | head -15
fi
echo "== done"
