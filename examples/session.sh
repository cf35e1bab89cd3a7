#!/usr/bin/env bash
# Runs a session of each service on the embedded backend and prints it as
# Markdown (used to write examples/README.md). Usage: bash examples/session.sh
set -euo pipefail
BIN=${BIN:-target/debug/keymgr-examples}
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
cat > "$D/demo.toml" <<TOML
backend = "mock"
[mock]
path = "$D/state/keys.sealed"
[context]
project_id = "demo"
user_id = "alice"
[examples]
pbkdf2_force_iterations = 1000
[ephemeral_storage_encryption]
enabled = true
TOML
export KEYMGR_EXAMPLES_CONFIG="$D/demo.toml" KEYMGR_EXAMPLES_STATE_DIR="$D/state"
run() { echo "\$ keymgr-examples $*" | sed "s#$D/##g"; "$BIN" "$@" 2>&1 | sed "s#$D#/tmp/demo#g" || true; }
id() { python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'; }
fld() { python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])"; }
q() { "$BIN" "$@" 2>/dev/null; }

echo '### Volume'
echo '```console'
run volume type-create luks2-512 --encrypted --provider luks2 --key-size 512
q volume type-create plain >/dev/null
echo "\$ keymgr-examples key create --bits 256"; K=$(q key create --bits 256); echo "$K"
echo "\$ keymgr-examples volume create --size 4 --type luks2-512 --encryption-key-id $K"
V=$(q volume create --size 4 --type luks2-512 --encryption-key-id "$K"); echo "$V"; V=$(echo "$V" | id)
run key delete "$K"
run volume attach "$V"
run volume write "$V" --offset 4096 --data "hello from a BYOK volume"
run volume read "$V" --offset 4096 --length 24
run volume detach "$V"
run volume extend "$V" --size 8
echo "\$ keymgr-examples volume snapshot-create $V"
S=$(q volume snapshot-create "$V"); echo "$S"; S=$(echo "$S" | id)
echo "\$ keymgr-examples volume create --snapshot $S --type luks2-512"
V2=$(q volume create --snapshot "$S" --type luks2-512); echo "$V2"; V2=$(echo "$V2" | id)
echo "\$ keymgr-examples key create   # a different key for a copy of an encrypted snapshot"; K2=$(q key create); echo "$K2"
run volume create --snapshot "$S" --type luks2-512 --encryption-key-id "$K2"
run volume create --size 1 --type plain --encryption-key-id "$K2"
run volume attach "$V2"
run volume read "$V2" --offset 4096 --length 24
run volume rotate-key "$V2" --new-key-id "$K2"
run volume detach "$V2"
K3=$(q volume list | python3 -c "import json,sys; print([v for v in json.load(sys.stdin) if v['id'] == '$V2'][0]['encryption_key_id'])")
echo "\$ keymgr-examples volume rotate-key $V2 --new-key-id $K2   # your new key (BYOK); without it the service makes one"
q volume rotate-key "$V2" --new-key-id "$K2"
run key show "$K3"
run volume attach "$V2"
run volume read "$V2" --offset 4096 --length 24
run volume detach "$V2"
run volume snapshot-delete "$S"
run volume delete "$V"
run volume transfer "$V2" --to-project other --to-user bob
run volume read "$V2" --offset 4096 --length 24 --project other --user bob
run volume attach "$V2" --project other --user bob
run volume read "$V2" --offset 4096 --length 24 --project other --user bob
echo '```'

echo; echo '### Share'
echo '```console'
run share type-create plain
run share type-create enc-server --encryption-support share_server
echo "\$ keymgr-examples key create"; SK=$(q key create); echo "$SK"
run share create --size 2 --share-type plain --encryption-key-ref "$SK"
run share create --size 2 --share-type enc-server --encryption-key-ref 00000000-0000-4000-8000-000000000000
echo "\$ keymgr-examples share create --size 2 --share-type enc-server --encryption-key-ref $SK --network net1"
SH=$(q share create --size 2 --share-type enc-server --encryption-key-ref "$SK" --network net1); echo "$SH"; SH=$(echo "$SH" | id)
printf "share data survives restarts" > "$D/in.txt"
echo "\$ printf 'share data survives restarts' > in.txt"
run share write "$SH" --offset 0 --input "$D/in.txt"
echo "# every command is a new process: the service restarted in between"
run share read "$SH" --offset 0 --length 28 --output "$D/out.txt"
echo "\$ cat out.txt"; cat "$D/out.txt"; echo
run key show "$SK"
run key delete "$SK"
run share delete "$SH"
run key delete "$SK"
echo '```'

echo; echo '### Ephemeral'
echo '```console'
echo "\$ keymgr-examples ephemeral boot --size 2 --backing-file /tmp/demo/host-disk0"
I=$("$BIN" ephemeral boot --size 2 --backing-file "$D/host-disk0" 2>"$D/err"); cat "$D/err"; echo "$I" | sed "s#$D#/tmp/demo#g"; I=$(echo "$I" | id)
run ephemeral write "$I" --data "instance A private data"
echo "\$ grep -c 'instance A private data' /tmp/demo/host-disk0"; grep -c 'instance A private data' "$D/host-disk0" || true
echo "# the compute host crashes; a new instance reuses the backing file"
echo "\$ keymgr-examples ephemeral boot --size 2 --backing-file /tmp/demo/host-disk0"
I2=$(q ephemeral boot --size 2 --backing-file "$D/host-disk0"); echo "$I2" | sed "s#$D#/tmp/demo#g"; I2=$(echo "$I2" | id)
echo "\$ keymgr-examples ephemeral read $I2 --length 23 | od -c | head -2"; "$BIN" ephemeral read "$I2" --length 23 | od -c | head -2
run ephemeral delete "$I2"
run ephemeral delete "$I"
echo '```'

echo; echo '### Image'
echo '```console'
head -c 100000 /dev/urandom > "$D/guest.raw"; printf 'GUEST-MARKER' >> "$D/guest.raw"
echo "\$ keymgr-examples image create guest --file /tmp/demo/guest.raw --encrypt --disk-format qcow2 --secret-type passphrase"
IM=$(q image create guest --file "$D/guest.raw" --encrypt --disk-format qcow2 --secret-type passphrase); echo "$IM"; IMK=$(echo "$IM" | python3 -c 'import json,sys; print(json.load(sys.stdin)["properties"]["os_encrypt_key_id"])'); IM=$(echo "$IM" | id)
run volume create --image "$IM" --type plain
echo "\$ keymgr-examples volume create --image $IM --type luks2-512"
IV=$(q volume create --image "$IM" --type luks2-512); echo "$IV"; IV=$(echo "$IV" | id)
run key show "$IMK"
run image delete "$IM"
run key show "$IMK"
run volume attach "$IV"
echo "\$ keymgr-examples volume read $IV --offset 100000 --length 12"; "$BIN" volume read "$IV" --offset 100000 --length 12
run volume detach "$IV"
echo "\$ keymgr-examples image create from-vol --from-volume $IV"
IM2=$(q image create from-vol --from-volume "$IV"); echo "$IM2"; IM2=$(echo "$IM2" | id)
run image delete "$IM2"
echo '```'
