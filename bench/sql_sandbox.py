"""SQL sandbox benchmark: what the sandbox costs per query, and how fast its limits bite.

Baseline: what workspace queries did before issue 8 — a plain ``duckdb.connect`` on the
workspace file and ``execute().df()`` — on the same file, in the same run. Reported: the
median latency of a small aggregate and of a 10,000-row result for the baseline, the
sandbox inline (locked read-only connection in this process) and the sandbox in its
worker process (the default), as ratios against the baseline; then the time a runaway
cross join takes to be stopped at a 2 s limit, and what ``repeat('x', 4e9)`` (8 GB outside
DuckDB's buffer pool) does to this process's peak memory under each isolation.

    .venv/bin/python bench/sql_sandbox.py [--runs 40]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import duckdb  # noqa: E402

from zhinao.analytics import sandbox  # noqa: E402

SMALL = "SELECT plan, count(*) AS n, avg(fee) AS arpu FROM bills GROUP BY plan ORDER BY plan"
WIDE = "SELECT * FROM bills LIMIT 10000"


def median_ms(fn, runs: int) -> float:
    fn()  # warm: the worker pool starts on first use
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=40)
    args = ap.parse_args()
    path = Path(tempfile.mkdtemp()) / "w.duckdb"
    con = duckdb.connect(str(path))  # synthetic bills (fixed formula, no randomness): only the timing matters
    con.execute("CREATE TABLE bills AS SELECT i AS id, 'plan_' || (i % 7) AS plan, 30 + (i % 97) AS fee, "
                "'customer ' || i AS note FROM range(200000) t(i)")
    con.close()

    def baseline(sql):
        def run():
            c = duckdb.connect(str(path))
            try:
                return c.execute(sql).df()
            finally:
                c.close()
        return run

    inline = sandbox.SqlLimits(isolation="inline", max_rows=10_000)
    process = sandbox.SqlLimits(isolation="process", max_rows=10_000)
    print(f"duckdb {duckdb.__version__}; {args.runs} runs each; median ms (ratio to the baseline)")
    for label, sql in (("small aggregate", SMALL), ("10,000 rows", WIDE)):
        base = median_ms(baseline(sql), args.runs)
        a = median_ms(lambda: inline.run(path, sql).frame(), args.runs)
        b = median_ms(lambda: process.run(path, sql).frame(), args.runs)
        print(f"{label:16s} baseline {base:7.1f}  sandbox inline {a:7.1f} ({a / base:4.1f}x)  "
              f"sandbox worker {b:7.1f} ({b / base:4.1f}x)")

    cross = "SELECT count(*) FROM range(100000) a, range(100000) b WHERE a.range + b.range = 7"
    for lim in (inline.but(timeout_s=2.0), process.but(timeout_s=2.0)):
        t0 = time.perf_counter()
        try:
            lim.run(path, cross)
            verdict = "not stopped"
        except sandbox.SqlLimitExceeded as e:
            verdict = e.code
        print(f"cross join, 2 s limit, {lim.isolation:7s}: {verdict} after {time.perf_counter() - t0:.2f} s")

    bomb = "SELECT length(repeat('x', 4000000000))"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    try:
        process.run(path, bomb)
        verdict = "ran"
    except sandbox.SqlLimitExceeded as e:
        verdict = e.code
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before
    print(f"repeat('x', 4e9), worker: {verdict} after {time.perf_counter() - t0:.2f} s; "
          f"this process's peak RSS grew {grown:.0f} MB")
    print("(inline, the same query allocates ~8 GB in the calling process before DuckDB can stop it; "
          "not run here)")


if __name__ == "__main__":
    main()
