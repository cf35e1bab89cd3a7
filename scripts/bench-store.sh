#!/usr/bin/env bash
# Figures of the embedded store (issue 13), for BENCHMARKS.md. Not a test.
#   scripts/bench-store.sh                 # in-process at 0/10k/100k/1M, CLI at 0/4k/100k, 30 s stress
#   SIZES="0 10000" CLI_SIZES="0 4000" STRESS_SECS=5 scripts/bench-store.sh
# Scratch files go to BENCH_DIR (default /var/tmp/keymgr-bench-store, a real disk: every
# write is fsynced). Filling uses store_batch (10,000 per transaction); it is not measured.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${SIZES:-"0 10000 100000 1000000"}
CLI_SIZES=${CLI_SIZES:-"0 4000 100000"}
STRESS_SECS=${STRESS_SECS:-30}
DIR=${BENCH_DIR:-/var/tmp/keymgr-bench-store}
N=${CLI_N:-200}
rm -rf "$DIR"; mkdir -p "$DIR"
trap 'rm -rf "$DIR"' EXIT

cargo build -q --release -p keymgr-cli --bin keymgr
cargo build -q --release -p keymgr-mock --example bench_store
BENCH=target/release/examples/bench_store
KEYMGR=target/release/keymgr

echo "## in-process ($(date -u +%FT%TZ))"
"$BENCH" "$DIR" $SIZES

echo
echo "## CLI: ms per call, mean of $N calls (a process per call)"
echo "| secrets in store | secret create | secret get |"
echo "|---|---|---|"
for n in $CLI_SIZES; do
  store="$DIR/cli-$n.store"; key="$DIR/cli-$n.key"; cfg="$DIR/cli-$n.toml"
  printf 'backend = "mock"\n[context]\nproject_id = "bench"\nuser_id = "bench"\n[mock]\npath = "%s"\nkey_file = "%s"\n' "$store" "$key" > "$cfg"
  "$BENCH" --fill "$store" "$key" "$n" bench
  id=$("$KEYMGR" --config "$cfg" secret create 2>/dev/null | tail -1)
  t0=$(date +%s%N)
  for _ in $(seq "$N"); do "$KEYMGR" --config "$cfg" secret create >/dev/null 2>&1; done
  t1=$(date +%s%N)
  for _ in $(seq "$N"); do "$KEYMGR" --config "$cfg" secret get "$id" --output - >/dev/null 2>&1; done
  t2=$(date +%s%N)
  awk -v n="$n" -v c=$(( (t1 - t0) / N )) -v g=$(( (t2 - t1) / N )) \
    'BEGIN { printf "| %d | %.2f | %.2f |\n", n, c / 1e6, g / 1e6 }'
  rm -f "$store"*
done

echo
echo "## 16 threads + 4 processes writing for $STRESS_SECS s"
KEYMGR_MOCK_STRESS_SECS=$STRESS_SECS cargo test -q --release -p keymgr-mock --test store \
  sixteen_threads_and_four_processes -- --nocapture 2>&1 | grep -E "secrets written|test result"
