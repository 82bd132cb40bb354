"""Metric-query figures (issue 5): count_over_time by the fast path, the general path, SQLite.

On a loghub corpus (default 1,000 MB of raw text, 32 streams, 4 of them
synthetic app logs from ``chunkstore.corpus``; every stream gets an ``app``
label, the loghub system in lower case for loghub streams, and has ``env``
prod or staging), loaded once into a store cached under ``benchmarks/.cache/``
(keyed by size and seed; so is the SQLite database):

(a) ``sum by (app) (count_over_time({env="prod"} |= "error" [1m]))`` over the
    whole time range with 1-minute steps, one thread: GB/s of raw text of the
    selected streams through the fast path (``count_raw`` on each block: no
    Python object per line);
(b) the same counts through the general pipeline path:
    ``|~ "error"`` instead of ``|= "error"`` (same lines; a regex runs in the
    Python pipeline, after the scanner's literal prefilter);
(c) (a) with 1-minute steps over a 5-minute range (overlapping windows reuse
    bucket sums: about the cost of (a));
(d) SQLite over the same streams and data, in the same run:
    ``SELECT stream_id, (ts - origin - 1) / 60e9, count(*) FROM logs WHERE
    stream_id IN (prod streams) AND instr(line, 'error') > 0 GROUP BY 1, 2``
    (the buckets are exactly the left-open windows of (a)), and the ``LIKE
    '%error%'`` form of the issue (case-insensitive: more lines).

Targets: (a) >= 1.5 GB/s per core and >= 2x SQLite.  Every run checks (a),
(b) and (c) against each other and (a) against SQLite's ``instr`` counts
summed per app and minute; a mismatch fails the run.  ``--smoke`` runs on
2 MB and records nothing.

    python benchmarks/bench_metric.py [--size 1000] [--repeat 3] [--smoke]
"""

from __future__ import annotations

import sqlite3
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus as corpus_mod  # noqa: E402
import harness  # noqa: E402
from harness import fmt_bytes, fmt_rate, fmt_ratio  # noqa: E402
from store_cache import cached_file, cached_store  # noqa: E402

#: Bump when the way the cached store is built changes.
STORE_CACHE_VERSION = 1
APPS = 4
NS = 1_000_000_000
STEP = 60 * NS
NEEDLE = "error"
FAST = 'sum by (app) (count_over_time({env="prod"} |= "error" [1m]))'
GENERAL = 'sum by (app) (count_over_time({env="prod"} |~ "error" [1m]))'
OVERLAP = 'sum by (app) (count_over_time({env="prod"} |= "error" [5m]))'


def with_app_labels(corpus):
    """Every stream with an ``app`` label (loghub streams: their system, lower case)."""
    out = []
    for s in corpus:
        labels = dict(s.labels)
        labels.setdefault("app", labels.get("system", "unknown").lower())
        out.append(corpus_mod.Stream(labels, s.ts, s.lines))
    return out


def sqlite_buckets(path: Path, stream_ids: list[int], where: str, needle: str, origin: int,
                   *, repeat: int) -> tuple[float, list]:
    """SQLite's per-stream, per-window counts; (best seconds, rows)."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    ids = ",".join(str(i) for i in stream_ids)
    sql = (f"SELECT stream_id, (ts - ? - 1) / ?, count(*) FROM logs "
           f"WHERE stream_id IN ({ids}) AND {where} GROUP BY 1, 2")
    arg = needle.encode() if "instr" in where else f"%{needle}%"
    try:
        return harness.best_of(lambda: con.execute(sql, (origin, STEP, arg)).fetchall(),
                               repeat=repeat, warmup=1)
    finally:
        con.close()


def as_counts(series) -> dict:
    """``{(app, step ts): count}`` from a query_range result."""
    return {(s.labels.get("app", ""), t): v for s in series for t, v in s.points}


def fail(msg: str) -> int:
    print(f"bench_metric: MISMATCH: {msg}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    p = harness.make_parser(__doc__.split("\n\n")[0], default_size_mb=1000, smoke_size_mb=2)
    p.add_argument("--streams", type=int, default=32)
    args = harness.parse_args(p, argv)
    import chunkstore

    info = harness.machine_info()
    print(harness.machine_line(info))
    if not chunkstore.ACCELERATED:
        print("bench_metric: WARNING: measuring the pure-Python kernels", file=sys.stderr)
    repeat = args.repeat

    t = time.perf_counter()
    corpus = with_app_labels(corpus_mod.build_corpus(args.size_bytes, streams=args.streams,
                                                     seed=args.seed, apps=APPS))
    key = f"{args.size:g}MB-{args.streams}s-seed{args.seed}-v{corpus_mod.CORPUS_VERSION}"
    store_path = cached_store(chunkstore, corpus, f"bench_metric-store-{key}-"
                                                  f"{STORE_CACHE_VERSION}")
    db = cached_file(f"bench_metric-sqlite-{key}.db",
                     lambda tmp: harness.sqlite_ingest(corpus, tmp))
    prod = [i for i, s in enumerate(corpus) if s.labels.get("env") == "prod"]
    prod_bytes = sum(corpus_mod.corpus_bytes([corpus[i]]) for i in prod)
    lo = min(s.ts[0] for s in corpus if s.ts)
    hi = max(s.ts[-1] for s in corpus if s.ts)
    start = lo - lo % STEP + STEP  # minute-aligned; the first window (start - 1m, start] holds lo
    end = hi - hi % STEP + STEP
    n_steps = (end - start) // STEP + 1
    print(f"corpus: {len(corpus)} streams ({len(prod)} prod, {fmt_bytes(prod_bytes)} raw), "
          f"{corpus_mod.corpus_lines(corpus):,} lines, {n_steps:,} one-minute steps; store and "
          f"SQLite ready ({time.perf_counter() - t:.1f}s)")

    rows: list[dict] = []
    store = chunkstore.open(store_path, read_only=True)
    try:
        def run(q):
            return store.query_range(q, start, end, STEP)

        f_s, fast = harness.best_of(lambda: run(FAST), repeat=repeat, warmup=1)
        fst = store.last_query_stats
        if not fst.fast_path:
            return fail("the fast query did not take the fast path")
        g_s, general = harness.best_of(lambda: run(GENERAL), repeat=max(1, repeat - 1))
        if store.last_query_stats.fast_path:
            return fail("the general query took the fast path")
        o_s, overlap = harness.best_of(lambda: run(OVERLAP), repeat=repeat, warmup=1)
        i_s, i_rows = sqlite_buckets(db, prod, "instr(line, ?) > 0", NEEDLE, start - STEP,
                                     repeat=repeat)
        l_s, l_rows = sqlite_buckets(db, prod, "CAST(line AS TEXT) LIKE ?", NEEDLE,
                                     start - STEP, repeat=repeat)
    finally:
        store.close()

    # -- answers must agree ---------------------------------------------------------
    fast_counts = as_counts(fast)
    if as_counts(general) != fast_counts:
        return fail("fast and general paths disagree")
    want: dict = {}
    for sid, bucket, count in i_rows:
        k = (corpus[sid].labels["app"], start + bucket * STEP)
        want[k] = want.get(k, 0.0) + count
    if want != fast_counts:
        diff = sorted(set(want.items()) ^ set(fast_counts.items()))[:5]
        return fail(f"store and SQLite instr counts differ: {diff}")
    five = {}  # the 5m windows are sums of five 1m windows
    for (app, ts), c in fast_counts.items():
        for k in range(5):
            five[(app, ts + k * STEP)] = five.get((app, ts + k * STEP), 0.0) + c
    got5 = as_counts(overlap)
    if any(abs(got5.get(k, 0.0) - v) > 0 for k, v in five.items() if k[1] <= end) or \
            any(k not in five for k in got5):
        return fail("5m windows are not the sums of the 1m windows")
    matched = sum(fast_counts.values())
    like_matched = sum(r[2] for r in l_rows)

    # -- figures ------------------------------------------------------------------
    gbps = prod_bytes / f_s / 1e9
    rows.append({"figure": f"(a) fast path: {FAST}", "time": f"{f_s:.3f} s",
                 "raw text": fmt_rate(prod_bytes, f_s),
                 "vs SQLite instr": fmt_ratio(i_s, f_s), "lines counted": f"{int(matched):,}"})
    rows.append({"figure": f"(b) general path: {GENERAL}", "time": f"{g_s:.3f} s",
                 "raw text": fmt_rate(prod_bytes, g_s), "vs SQLite instr": fmt_ratio(i_s, g_s),
                 "lines counted": f"{int(matched):,}"})
    rows.append({"figure": f"(c) fast path, 5m windows every 1m: {OVERLAP}",
                 "time": f"{o_s:.3f} s", "raw text": fmt_rate(prod_bytes, o_s),
                 "vs SQLite instr": fmt_ratio(i_s, o_s), "lines counted": ""})
    rows.append({"figure": "(d) SQLite GROUP BY stream, minute: instr(line, 'error') > 0",
                 "time": f"{i_s:.3f} s", "raw text": fmt_rate(prod_bytes, i_s),
                 "vs SQLite instr": "1.00x", "lines counted": f"{int(matched):,}"})
    rows.append({"figure": "(d) SQLite GROUP BY stream, minute: LIKE '%error%' (ignores case)",
                 "time": f"{l_s:.3f} s", "raw text": fmt_rate(prod_bytes, l_s),
                 "vs SQLite instr": fmt_ratio(i_s, l_s), "lines counted": f"{like_matched:,}"})
    notes = [
        f"{len(corpus)} streams ({APPS} synthetic app streams), {len(prod)} selected by "
        f'env="prod": {fmt_bytes(prod_bytes)} of raw text (line bytes plus newlines), '
        f"{n_steps:,} steps of 1 minute; one thread; kernels "
        f"{'compiled' if chunkstore.ACCELERATED else 'pure Python'}; best of {repeat}",
        f"fast path: {gbps:.2f} GB/s per core (target >= 1.5), {i_s / f_s:.2f}x SQLite instr "
        f"(target >= 2x), {g_s / f_s:.1f}x the general path; it read "
        f"{fmt_bytes(fst.bytes_read)} compressed, decompressed {fmt_bytes(fst.bytes_decompressed)} "
        f"in {fst.blocks_read:,} blocks",
        "every run checks (a) = (b) = SQLite instr per app and minute, and (c) = five-minute "
        "sums of (a)",
    ]
    harness.report("Metric queries", rows, smoke=not args.record, notes=notes, info=info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
