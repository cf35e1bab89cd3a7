"""The scripts/load.sh mixed workload through Castellan, with Python threads.

Same mix as keymgr's load binary (create 10%, store 10%, get 60%, metadata
10%, consumer add/remove 5%, delete 5%), THREADS threads for SECONDS per
backend, against the servers named by the KEYMGR_TEST_* environment: the
Barbican backend with Keystone password credentials, the Vault backend on
the raft cluster's first node (Castellan takes one URL) with its CA. Prints
the same table and final line as keymgr's, and one JSON line per run to
--json FILE. An audit reads back every acknowledged secret and lists the
project to count names that exist twice.

Usage: castellan_load.py [--backends vault,barbican] [--seconds N] [--concurrency 64] [--json FILE]
"""

import argparse
import json
import logging
import os
import random
import sys
import threading
import time
import uuid

from castellan import key_manager, options
from castellan.common import exception
from castellan.common.objects import opaque_data, symmetric_key
from oslo_config import cfg

MIX = [("create", 10), ("store", 10), ("get", 60), ("metadata", 10), ("consumer", 5), ("delete", 5)]
OPS = [name for name, _ in MIX]


def pick(rng):
    d = rng.randrange(100)
    for name, w in MIX:
        if d < w:
            return name
        d -= w
    return "delete"


def manager(backend):
    conf = cfg.ConfigOpts()
    if backend == "vault":
        cluster = os.environ.get("KEYMGR_TEST_VAULT_CLUSTER")
        if cluster:
            url, token = cluster.split(",")[0], os.environ["KEYMGR_TEST_VAULT_CLUSTER_TOKEN"]
        else:
            url, token = os.environ["KEYMGR_TEST_VAULT_ADDR"], os.environ["KEYMGR_TEST_VAULT_TOKEN"]
        options.set_defaults(conf, backend="vault", vault_url=url, vault_root_token_id=token,
                             vault_kv_mountpoint="secret", vault_kv_version=2,
                             vault_ssl_ca_crt_file=os.environ.get("KEYMGR_TEST_VAULT_CLUSTER_CA"),
                             vault_use_ssl=url.startswith("https"))
        return key_manager.API(conf), object()
    from castellan.common.credentials import keystone_password

    url = os.environ["KEYMGR_TEST_KEYSTONE_URL"]
    options.set_defaults(conf, backend="barbican", auth_endpoint=url)
    ctx = keystone_password.KeystonePassword(
        password=os.environ["KEYMGR_TEST_OS_PASSWORD_A"], auth_url=url,
        username=os.environ["KEYMGR_TEST_OS_USER_A"], user_domain_name="Default",
        project_name=os.environ["KEYMGR_TEST_OS_PROJECT_A"], project_domain_name="Default")
    return key_manager.API(conf), ctx


def quantile(v, q):
    if not v:
        return None
    v = sorted(v)
    i = max(1, min(len(v), int(-(-len(v) * q // 1)))) - 1
    return v[i]


def run(backend, threads, seconds, prefix):
    km, ctx = manager(backend)
    lock = threading.Lock()
    live = {}  # name -> (id, payload or None)
    acknowledged = {}
    deleted = set()
    lat = {op: [] for op in OPS}
    errors = []
    seq = [0]
    consumers_supported = [backend == "barbican"]
    create_works = [True]

    def name():
        with lock:
            seq[0] += 1
            return "%s-%d" % (prefix, seq[0])

    def ack(n, kid, payload):
        with lock:
            acknowledged[n] = kid
            live[n] = (kid, payload)

    def store(rng):
        n = name()
        payload = rng.randbytes(32)
        kid = km.store(ctx, opaque_data.OpaqueData(payload, name=n))
        ack(n, kid, payload)

    for _ in range(min(threads, 64)):
        try:
            store(random.Random())
        except Exception:
            pass

    start = time.perf_counter()
    deadline = start + seconds

    def worker(i):
        rng = random.Random(i * 7919 + time.time_ns())
        while time.perf_counter() < deadline:
            op = pick(rng)
            t = time.perf_counter()
            try:
                if op == "create":
                    n = name()
                    if create_works[0]:
                        try:
                            kid = km.create_key(ctx, "AES", 256, name=n)
                            ack(n, kid, None)
                        except ValueError:
                            # Castellan 5.8's Vault create_key builds its
                            # key with `created` as a string and raises
                            # ValueError after writing it: fall back to
                            # what it does (32 random bytes, stored).
                            create_works[0] = False
                            raise
                    else:
                        kid = km.store(ctx, symmetric_key.SymmetricKey("AES", 256, os.urandom(32), name=n))
                        ack(n, kid, None)
                elif op == "store":
                    store(rng)
                elif op in ("get", "metadata", "consumer", "delete"):
                    with lock:
                        if not live:
                            continue
                        n = rng.choice(list(live))
                        kid, want = live[n]
                        if op in ("consumer", "delete"):
                            del live[n]
                    if op == "get":
                        try:
                            got = km.get(ctx, kid).get_encoded()
                        except exception.ManagedObjectNotFoundError:
                            continue
                        if want is not None and got != want:
                            errors.append((time.perf_counter() - start, op, "wrong payload"))
                    elif op == "metadata":
                        try:
                            km.get(ctx, kid, metadata_only=True)
                        except exception.ManagedObjectNotFoundError:
                            continue
                    elif op == "consumer":
                        try:
                            if not consumers_supported[0]:
                                continue
                            c = {"service": "load", "resource_type": "volume", "resource_id": n + "-c"}
                            try:
                                km.add_consumer(ctx, kid, c)
                            except NotImplementedError:
                                consumers_supported[0] = False
                                continue
                            km.remove_consumer(ctx, kid, c)
                        finally:
                            with lock:
                                live[n] = (kid, want)
                    else:
                        km.delete(ctx, kid)
                        with lock:
                            deleted.add(kid)
                lat[op].append(time.perf_counter() - t)
            except Exception as e:  # noqa: BLE001 (every failure is counted)
                errors.append((time.perf_counter() - start, op, type(e).__name__))
                time.sleep(0.02)

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    elapsed = time.perf_counter() - start

    # Audit: every live acknowledged secret reads back; names listed twice.
    lost = 0
    for n, (kid, want) in list(live.items()):
        try:
            got = km.get(ctx, kid).get_encoded()
            if want is not None and got != want:
                lost += 1
        except Exception:  # noqa: BLE001
            lost += 1
    duplicated = "?"
    try:
        names = [o.name for o in km.list(ctx, metadata_only=True) if o.name and o.name.startswith(prefix + "-")]
        duplicated = len(names) - len(set(names))
    except Exception:  # noqa: BLE001
        pass
    for kid in [k for k, _ in live.values()]:
        try:
            km.delete(ctx, kid)
        except Exception:  # noqa: BLE001
            pass
    return lat, errors, elapsed, len(live), lost, duplicated


def main():
    # Castellan's Vault list warns once per key deleted meanwhile: keep the table readable.
    logging.basicConfig(level=logging.ERROR)
    p = argparse.ArgumentParser()
    p.add_argument("--backends", default="vault,barbican")
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--concurrency", default="64")
    p.add_argument("--json")
    a = p.parse_args()
    total_ops = total_err = total_lost = 0
    run_id = "castellan-%s" % uuid.uuid4().hex[:8]
    for backend in a.backends.split(","):
        env = "KEYMGR_TEST_KEYSTONE_URL" if backend == "barbican" else "KEYMGR_TEST_VAULT_ADDR"
        if not os.environ.get(env):
            print("== castellan %s: skipped, %s is not set" % (backend, env))
            continue
        for threads in [int(c) for c in a.concurrency.split(",")]:
            lat, errors, elapsed, audited, lost, dup = run(
                backend, threads, a.seconds, "%s-%s-%d" % (run_id, backend, threads))
            ops = sum(len(v) for v in lat.values())
            print("== castellan %s, %d threads, %.1f s: %d ops, %.0f ops/s" % (backend, threads, elapsed, ops, ops / elapsed))
            print("   %-9s %7s %9s %9s %9s" % ("op", "count", "p50 ms", "p99 ms", "ops/s"))
            row = {}
            for op in OPS:
                p50, p99 = quantile(lat[op], 0.5), quantile(lat[op], 0.99)
                f = lambda x: "-" if x is None else "%.1f" % (x * 1e3)
                print("   %-9s %7d %9s %9s %9.0f" % (op, len(lat[op]), f(p50), f(p99), len(lat[op]) / elapsed))
                row[op] = {"count": len(lat[op]), "p50_ms": p50 and p50 * 1e3, "p99_ms": p99 and p99 * 1e3}
            if errors:
                kinds = {}
                for _, op, k in errors:
                    kinds["%s/%s" % (k, op)] = kinds.get("%s/%s" % (k, op), 0) + 1
                print("   errors: %s" % kinds)
            print("   audit: %d live secrets read back; lost %d, duplicated %s" % (audited, lost, dup))
            print("castellan %s %d-way: %d ops, %d errors, lost %d, duplicated %s" % (backend, threads, ops, len(errors), lost, dup))
            if a.json:
                with open(a.json, "a") as fh:
                    fh.write(json.dumps({"client": "castellan", "backend": backend, "concurrency": threads,
                                         "seconds": elapsed, "ops": ops, "throughput": ops / elapsed,
                                         "errors": len(errors), "lost": lost, "duplicated": dup,
                                         "operations": row}) + "\n")
            total_ops += ops
            total_err += len(errors)
            total_lost += lost
    print("castellan: %d ops, %d errors, lost %d" % (total_ops, total_err, total_lost))
    return 0


if __name__ == "__main__":
    sys.exit(main())
