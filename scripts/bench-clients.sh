#!/usr/bin/env bash
# Client cost of keymgr against Castellan 5.8 on the same servers in one run:
# fetch one secret SEQ times in sequence (median latency; keymgr reuses one
# client through its blocking API, synchronous like Castellan's, and also
# reports the async API's median on a multi-threaded runtime; Castellan builds
# its session per call as it does in services), and
# 64-way throughput of `get` for SECONDS (keymgr: 64 tokio tasks; Castellan:
# 64 Python threads). On KMIP (PyKMIP), which Castellan does not reach, the
# other client is PyKMIP's own ProxyKmipClient (one per thread: it is not
# thread-safe; its `get` is one KMIP Get, keymgr's is Get Attributes + Get).
# Needs the test servers: run under scripts/test.sh's
# environment, or give ENV files (scripts/servers/*.sh `start DIR` writes DIR/env).
# Usage: scripts/bench-clients.sh [SEQ=200] [SECONDS=10] [ENV_FILE...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seq=${1:-200}
seconds=${2:-10}
shift $(( $# > 2 ? 2 : $# )) || true
for f in "$@"; do set -a; . "$f"; set +a; done
py=${KEYMGR_PYTHON:-$root/.venv/bin/python}
"$py" -c 'import castellan' 2>/dev/null || { echo "castellan is not installed in $py (scripts/setup.sh)" >&2; exit 1; }
(cd "$root" && cargo build -q --release -p tests --bin bench-get)
bench="$root/target/release/bench-get"
out=$(mktemp); trap 'rm -f "$out"' EXIT

castellan_bench() {
    "$py" - "$1" "$seq" "$seconds" <<'PY'
import json, os, statistics, sys, threading, time
from oslo_config import cfg
from castellan import options
from castellan.common.objects import symmetric_key
from castellan import key_manager

backend, seq, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
conf = cfg.ConfigOpts()
if backend == "vault":
    options.set_defaults(conf, backend="vault", vault_url=os.environ["KEYMGR_TEST_VAULT_ADDR"],
                         vault_root_token_id=os.environ["KEYMGR_TEST_VAULT_TOKEN"],
                         vault_kv_mountpoint="secret", vault_kv_version=2)
    ctx = object()
else:
    from castellan.common.credentials import keystone_password
    options.set_defaults(conf, backend="barbican", auth_endpoint=os.environ["KEYMGR_TEST_KEYSTONE_URL"])
    ctx = keystone_password.KeystonePassword(
        password=os.environ["KEYMGR_TEST_OS_PASSWORD_A"], auth_url=os.environ["KEYMGR_TEST_KEYSTONE_URL"],
        username=os.environ["KEYMGR_TEST_OS_USER_A"], user_domain_name="Default",
        project_name=os.environ["KEYMGR_TEST_OS_PROJECT_A"], project_domain_name="Default")
km = key_manager.API(conf)
payload = bytes(range(32))
kid = km.store(ctx, symmetric_key.SymmetricKey("AES", 256, payload))
km.get(ctx, kid)
lat = []
for _ in range(seq):
    t = time.perf_counter()
    k = km.get(ctx, kid)
    lat.append(time.perf_counter() - t)
    assert k.get_encoded() == payload
done = [0]; errors = [0]; lock = threading.Lock()
deadline = time.perf_counter() + seconds
def worker():
    while time.perf_counter() < deadline:
        try:
            km.get(ctx, kid); ok = True
        except Exception:
            ok = False
        with lock:
            if ok: done[0] += 1
            else: errors[0] += 1
start = time.perf_counter()
ts = [threading.Thread(target=worker) for _ in range(64)]
[t.start() for t in ts]; [t.join() for t in ts]
elapsed = time.perf_counter() - start
km.delete(ctx, kid)
print(json.dumps({"client": "castellan", "backend": backend, "seq": seq,
                  "median_ms": round(statistics.median(lat) * 1e3, 3), "total_s": round(sum(lat), 3),
                  "ops_64": done[0], "errors_64": errors[0], "throughput_64": round(done[0] / elapsed, 1)}))
PY
}

pykmip_bench() {
    "$py" - "$seq" "$seconds" <<'PY'
import json, os, statistics, sys, threading, time
from kmip.pie.client import ProxyKmipClient
from kmip.pie import objects
from kmip.core import enums
seq, seconds = int(sys.argv[1]), float(sys.argv[2])
def client():
    c = ProxyKmipClient(config="client", config_file=os.environ["KEYMGR_TEST_KMIP_CLIENT_CONF"])
    c.open()
    return c
c = client()
payload = bytes(range(32))
kid = c.register(objects.SymmetricKey(enums.CryptographicAlgorithm.AES, 256, payload, name="bench"))
c.get(kid)
lat = []
for _ in range(seq):
    t = time.perf_counter()
    k = c.get(kid)
    lat.append(time.perf_counter() - t)
    assert k.value == payload
done = [0]; errors = [0]; lock = threading.Lock()
deadline = time.perf_counter() + seconds
def worker():
    w = client()
    while time.perf_counter() < deadline:
        try:
            w.get(kid); ok = True
        except Exception:
            ok = False
        with lock:
            if ok: done[0] += 1
            else: errors[0] += 1
    w.close()
start = time.perf_counter()
ts = [threading.Thread(target=worker) for _ in range(64)]
[t.start() for t in ts]; [t.join() for t in ts]
elapsed = time.perf_counter() - start
c.destroy(kid)
print(json.dumps({"client": "pykmip", "backend": "kmip", "seq": seq,
                  "median_ms": round(statistics.median(lat) * 1e3, 3), "total_s": round(sum(lat), 3),
                  "ops_64": done[0], "errors_64": errors[0], "throughput_64": round(done[0] / elapsed, 1)}))
PY
}

for b in vault barbican kmip; do
    if [ $b = vault ] && [ -z "${KEYMGR_TEST_VAULT_ADDR:-}" ]; then echo "skip vault: KEYMGR_TEST_VAULT_ADDR unset" >&2; continue; fi
    if [ $b = barbican ] && [ -z "${KEYMGR_TEST_KEYSTONE_URL:-}" ]; then echo "skip barbican: KEYMGR_TEST_KEYSTONE_URL unset" >&2; continue; fi
    if [ $b = kmip ] && [ -z "${KEYMGR_TEST_KMIP_PORT:-}" ]; then echo "skip kmip: KEYMGR_TEST_KMIP_PORT unset" >&2; continue; fi
    "$bench" $b "$seq" "$seconds" | tee -a "$out"
    if [ $b = kmip ]; then pykmip_bench | tee -a "$out"; else castellan_bench $b | tee -a "$out"; fi
done

"$py" - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
by = {(r["client"], r["backend"]): r for r in rows}
print()
print("| backend | client | median get, sequential (ms) | median get, async multi-threaded (ms) | 64-way get/s | errors |")
print("|---|---|---|---|---|---|")
for (c, b), r in sorted(by.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    a = f"{r['median_async_ms']:.2f}" if "median_async_ms" in r else "-"
    print(f"| {b} | {c} | {r['median_ms']:.2f} | {a} | {r['throughput_64']:.0f} | {r['errors_64']} |")
for b, other in (("vault", "castellan"), ("barbican", "castellan"), ("kmip", "pykmip")):
    k, c = by.get(("keymgr", b)), by.get((other, b))
    if k and c:
        print(f"{b}: keymgr median = {k['median_ms'] / c['median_ms']:.2f} x {other}'s; "
              f"throughput = {k['throughput_64'] / max(c['throughput_64'], 1e-9):.1f} x {other}'s")
PY
