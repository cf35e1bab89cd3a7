"""Markdown tables from the JSON lines scripts/load.sh --json FILE writes.

Usage: report.py FILE   (one line per run: keymgr's and Castellan's)

Prints, per backend and concurrency, throughput and p50/p99 of each
operation for both clients, and keymgr's throughput over Castellan's.
"""

import json
import sys


def fmt(x):
    return "-" if x is None else ("%.1f" % x if x < 100 else "%.0f" % x)


def main():
    rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
    print("| backend | way | client | ops/s | get p50/p99 ms | metadata p50/p99 | create p50/p99 | store p50/p99 | "
          "consumer p50/p99 | delete p50/p99 | errors | lost | dup |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ops = r["operations"]
        cell = lambda op: "%s / %s" % (fmt(ops[op]["p50_ms"]), fmt(ops[op]["p99_ms"]))
        print("| %s | %d | %s | %.0f | %s | %s | %s | %s | %s | %s | %d | %s | %s |" % (
            r["backend"], r["concurrency"], r["client"], r["throughput"], cell("get"), cell("metadata"),
            cell("create"), cell("store"), cell("consumer"), cell("delete"), r["errors"], r["lost"],
            r["duplicated"]))
    print()
    print("| backend | way | keymgr ops/s | Castellan ops/s | ratio | get p99 keymgr / Castellan |")
    print("|---|---|---|---|---|---|")
    by = {(r["client"], r["backend"], r["concurrency"]): r for r in rows}
    for (client, backend, way), k in sorted(by.items()):
        c = by.get(("castellan", backend, way))
        if client != "keymgr" or c is None:
            continue
        ratio = k["throughput"] / c["throughput"] if c["throughput"] else float("inf")
        print("| %s | %d | %.0f | %.1f | %.1fx | %s / %s |" % (
            backend, way, k["throughput"], c["throughput"], ratio,
            fmt(k["operations"]["get"]["p99_ms"]), fmt(c["operations"]["get"]["p99_ms"])))


if __name__ == "__main__":
    main()
