#!/usr/bin/env bash
# The quick start: the main job on the embedded backend, no server needed.
# Builds the `keymgr` tool, creates a key in a sealed embedded store,
# formats a LUKS2 volume with it (os-brick's passphrase rule), writes data
# through the encryption, reads it back, and prints each step.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

echo "== building keymgr (release)"
cargo build --release -q -p keymgr-cli -p examples
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

examples="$root/target/release/keymgr-examples"
if [ -x "$examples" ]; then
    echo "== the Cinder-style volume service on the same embedded backend"
    # A demo: fast KDF settings so the flow takes seconds.
    cat >> "$work/keymgr.toml" <<TOML
[examples]
pbkdf2_force_iterations = 1000
TOML
    ex() { echo "\$ keymgr-examples $*"; "$examples" --config "$work/keymgr.toml" --state-dir "$work/cinder" "$@"; }
    jid() { python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'; }
    ex volume type-create luks2-512 --encrypted --provider luks2 --key-size 512
    echo "\$ keymgr-examples volume create --size 4 --type luks2-512 --encryption-key-id $id   # bring your own key: cloned for the volume"
    vol=$("$examples" --config "$work/keymgr.toml" --state-dir "$work/cinder" volume create --size 4 --type luks2-512 --encryption-key-id "$id")
    echo "$vol"; vol=$(echo "$vol" | jid)
    ex volume attach "$vol"
    ex volume write "$vol" --offset 4096 --data "hello from an encrypted volume"
    ex volume read "$vol" --offset 4096 --length 30
    ex volume detach "$vol"
    echo "\$ keymgr-examples volume snapshot-create $vol"
    snap=$("$examples" --config "$work/keymgr.toml" --state-dir "$work/cinder" volume snapshot-create "$vol"); echo "$snap"; snap=$(echo "$snap" | jid)
    echo "\$ keymgr-examples volume create --snapshot $snap --type luks2-512   # its own secret and volume key (reencrypted)"
    vol2=$("$examples" --config "$work/keymgr.toml" --state-dir "$work/cinder" volume create --snapshot "$snap" --type luks2-512); echo "$vol2"; vol2=$(echo "$vol2" | jid)
    ex volume attach "$vol2"
    ex volume read "$vol2" --offset 4096 --length 30
    ex volume detach "$vol2"
    ex volume rotate-key "$vol2"   # a new secret and a new volume key: every sector reencrypted
    ex volume attach "$vol2"
    ex volume read "$vol2" --offset 4096 --length 30
    ex volume detach "$vol2"
    ex volume snapshot-delete "$snap"
    ex volume delete "$vol"
    ex volume delete "$vol2"
fi
echo "== done"
