"""Write-path figures of the store (issue 3): ingest rate, bytes on disk, memory, open time.

On a loghub corpus (default 1,000 MB of raw text, 32 streams; see
``benchmarks/corpus.py``), single writer thread, ``fsync="batch"``:

(a) ingest through ``store.push()`` in batches of about 1,000 entries spread
    over the 32 streams (as a collector pushes), lines/s and MB/s of raw text
    for the push calls alone and for push + ``close()`` (close seals the open
    chunks), against SQLite (``harness.sqlite_ingest``: WAL mode,
    ``synchronous=NORMAL``, index on ``(stream_id, ts)``, 10k-row
    transactions) on the same corpus in the same run.  Targets: >= 1,000,000
    lines/s per core and >= 5x SQLite.  Also ``store.append()`` and
    ``stream.append()`` one line per call on a subset.
(b) bytes on disk: the store directory after close vs the raw text, SQLite's
    file and ``gzip -6`` of the raw text.
(c) peak RSS while ingesting into 10,000 streams, in a child process that
    makes its batches on the fly from a small pool of corpus lines (so no
    corpus sits in memory): baseline RSS before ingest, peak
    (``ru_maxrss``), and the growth against ``head_memory_budget``.
(d) open time and memory of a store of 100,000 chunks, opened and closed in a
    fresh process.

Every run checks that the store holds exactly the corpus (entries and text
bytes after reopening); a mismatch fails the run.  ``--smoke`` runs every part
on tiny sizes in seconds and records nothing.

    python benchmarks/bench_ingest.py [--size 1000] [--repeat 3] [--smoke]
"""

from __future__ import annotations

import gc
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus as corpus_mod  # noqa: E402
import harness  # noqa: E402
from harness import fmt_bytes, fmt_ratio  # noqa: E402

MIB = 1 << 20
BATCH_ENTRIES = 1_000


# ---------------------------------------------------------------------------
# helpers


def make_batches(corpus, batch_entries: int = BATCH_ENTRIES) -> list[list]:
    """The corpus as ``push()`` arguments: ~``batch_entries`` entries over every stream per call.

    Each batch takes the next slice of every stream still holding lines, so a
    stream's entries arrive in time order and every batch spans all streams
    (the label dicts are reused, as a collector reuses them).
    """
    cursors = [0] * len(corpus)
    batches = []
    while True:
        live = [i for i, s in enumerate(corpus) if cursors[i] < len(s.lines)]
        if not live:
            return batches
        per = -(-batch_entries // len(live))
        batch = []
        for i in live:
            s = corpus[i]
            a = cursors[i]
            b = min(a + per, len(s.lines))
            cursors[i] = b
            batch.append((s.labels, list(zip(s.ts[a:b], s.lines[a:b], strict=True))))
        batches.append(batch)


def dir_bytes(path: Path) -> dict[str, int]:
    """Apparent bytes of every file under ``path``, by top-level entry, plus ``total``."""
    out: dict[str, int] = {}
    for root, _dirs, files in os.walk(path):
        rel = Path(root).relative_to(path)
        top = rel.parts[0] if rel.parts else None
        for f in files:
            n = os.path.getsize(os.path.join(root, f))
            key = top or f
            out[key] = out.get(key, 0) + n
    out["total"] = sum(out.values())
    return out


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for ln in f:
            if ln.startswith(field):
                return int(ln.split()[1])
    return 0


def rss_kib() -> int:
    """Resident set size now, KiB (``VmRSS``)."""
    return _status_kib("VmRSS:")


def hwm_kib() -> int:
    """Peak resident set size of this process image, KiB (``VmHWM``).

    Unlike ``ru_maxrss`` it starts afresh at ``exec``: a child's
    ``ru_maxrss`` also covers the parent's memory at ``fork`` (Linux keeps
    the old image's high-water mark across ``exec``), so a child started by
    a parent holding a 1 GB corpus reports that parent's size.
    """
    return _status_kib("VmHWM:")


def peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def fail(msg: str) -> int:
    print(f"bench_ingest: MISMATCH: {msg}", file=sys.stderr)
    return 1


# ---------------------------------------------------------------------------
# (a) push


class FsyncClock:
    """Seconds the calling (writer) thread spends in ``os.fsync`` while installed.

    Benchmark instrumentation only: wraps ``os.fsync`` for the store's modules,
    which call it as ``os.fsync``; the WAL's group-commit thread is not counted.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0
        self._orig = os.fsync
        self._thread = threading.get_ident()

    def __enter__(self) -> FsyncClock:
        orig, me = self._orig, self._thread

        def fsync(fd):
            if threading.get_ident() != me:
                return orig(fd)
            t = time.perf_counter()
            try:
                return orig(fd)
            finally:
                self.seconds += time.perf_counter() - t
                self.calls += 1

        os.fsync = fsync
        return self

    def __exit__(self, *exc) -> None:
        os.fsync = self._orig


def time_push(chunkstore, batches, path: Path, n_lines: int) -> dict:
    """One ingest into a fresh store: wall and CPU seconds of the pushes and of close()."""
    shutil.rmtree(path, ignore_errors=True)
    store = chunkstore.open(path, fsync="batch")
    accepted = rejected = 0
    # The collector is paused as timeit does: a full collection would walk the
    # millions of prepared entry tuples this benchmark holds, not store state.
    gc.collect()
    harness.settle_page_cache()
    gc.disable()
    try:
        with FsyncClock() as fs:
            r0 = resource.getrusage(resource.RUSAGE_SELF)
            c0, t0 = time.process_time(), time.perf_counter()
            for batch in batches:
                r = store.push(batch)
                accepted += r.accepted
                rejected += len(r.rejected)
            c1, t1 = time.process_time(), time.perf_counter()
            r1 = resource.getrusage(resource.RUSAGE_SELF)
            push_fsync, push_fsyncs = fs.seconds, fs.calls
            store.close()
            c2, t2 = time.process_time(), time.perf_counter()
    finally:
        gc.enable()
    if accepted != n_lines or rejected:
        raise AssertionError(f"push accepted {accepted} and rejected {rejected} of {n_lines}")
    return {"push": t1 - t0, "close": t2 - t1, "total": t2 - t0, "push_cpu": c1 - c0,
            "total_cpu": c2 - c0, "push_fsync": push_fsync, "push_fsyncs": push_fsyncs,
            "total_fsync": fs.seconds, "push_sys": r1.ru_stime - r0.ru_stime}


def time_single_appends(chunkstore, corpus, n: int, path: Path):
    """``store.append`` and ``stream(...).append`` one entry per call: (append s, handle s, n)."""
    per = -(-n // len(corpus))
    subset = []  # round robin over the streams, each stream's entries in time order
    for k in range(per):
        for s in corpus:
            if k < len(s.lines):
                subset.append((s.labels, s.ts[k], s.lines[k]))
    subset = subset[:n]
    out = []
    for mode in ("append", "stream"):
        shutil.rmtree(path, ignore_errors=True)
        with chunkstore.open(path, fsync="batch") as store:
            if mode == "append":
                app = store.append
                t0 = time.perf_counter()
                for labels, ts, line in subset:
                    app(labels, line, ts)
                dt = time.perf_counter() - t0
            else:
                handles = {id(s.labels): store.stream(s.labels) for s in corpus}
                items = [(handles[id(lb)].append, ts, line) for lb, ts, line in subset]
                t0 = time.perf_counter()
                for app, ts, line in items:
                    app(line, ts)
                dt = time.perf_counter() - t0
            if store.stats().entries != len(subset):
                raise AssertionError(f"{mode}: store holds {store.stats().entries} entries, "
                                     f"expected {len(subset)}")
        out.append(dt)
    shutil.rmtree(path, ignore_errors=True)
    return out[0], out[1], len(subset)


# ---------------------------------------------------------------------------
# (c) peak RSS, 10,000 streams (child process)

RSS_STREAMS = 10_000
RSS_STREAMS_PER_BATCH = 100  # a batch: 100 streams x 10 entries


def rss_child(path: str, target_bytes: int, streams: int, seed: int,
              budget_mib: float | None = None) -> dict:
    """Ingest ``target_bytes`` of generated lines into ``streams`` streams; report memory.

    Lines come from a pool of 4,000 corpus lines whose first digit run is
    replaced by a counter, so lines differ and nothing but the pool is held.
    """
    import chunkstore

    pool_corpus = corpus_mod.build_corpus(2_000_000, streams=16, seed=seed)
    pool = []
    digits = re.compile(rb"\d+")
    for s in pool_corpus:
        for line in s.lines[:250]:
            m = digits.search(line)
            pool.append((line[:m.start()], line[m.end():]) if m else (line + b" n=", b""))
    del pool_corpus
    labels = [{"app": f"svc-{i % 50:02d}", "env": ("prod", "staging")[i % 2],
               "pod": f"pod-{i:05d}"} for i in range(streams)]
    store = chunkstore.open(path, fsync="batch", maintenance_interval=0,
                            **({"head_memory_budget": int(budget_mib * MIB)} if budget_mib else {}))
    budget = store.options.head_memory_budget
    gc.collect()
    # The pool's build leaves freed heap pages the allocator keeps: hand them
    # back first, so the baseline is memory in use, not what malloc cached.
    chunkstore._kernels.block.release_free_memory()
    base_rss, base_peak = rss_kib(), peak_kib()
    # First one short line per stream: what 10,000 open streams cost before any volume.
    for a in range(0, streams, 1000):
        r = store.push([(labels[i], [(corpus_mod.START_NS - 1, b"hello")])
                        for i in range(a, min(a + 1000, streams))])
    streams_rss = rss_kib()
    per_stream = BATCH_ENTRIES // RSS_STREAMS_PER_BATCH
    n_pool = len(pool)
    start = corpus_mod.START_NS
    k = 0
    done = 0
    n_lines = 0
    max_sampled = base_rss
    quarters: list[int] = []  # RSS after each quarter of the volume: is it flat?
    batches = 0
    t0 = time.perf_counter()
    while done < target_bytes:
        first = (batches * RSS_STREAMS_PER_BATCH) % streams
        batch = []
        for j in range(RSS_STREAMS_PER_BATCH):
            entries = []
            for _ in range(per_stream):
                pre, post = pool[k % n_pool]
                line = b"%s%d%s" % (pre, k, post)
                entries.append((start + k * 1000, line))
                done += len(line) + 1
                k += 1
            batch.append((labels[(first + j) % streams], entries))
        r = store.push(batch)
        if r.rejected:
            raise AssertionError(f"rss child: rejected {r.rejected[:3]}")
        n_lines += r.accepted
        batches += 1
        if batches % 200 == 0:
            max_sampled = max(max_sampled, rss_kib())
        if done >= target_bytes * (len(quarters) + 1) / 4:
            quarters.append(rss_kib())
    push_s = time.perf_counter() - t0
    pre_close_rss = rss_kib()
    head_accounted = store._head_mem
    n_chunks_open = len(store.index.chunks)
    t1 = time.perf_counter()
    store.close()
    close_s = time.perf_counter() - t1
    peak, hwm = peak_kib(), hwm_kib()  # before the verifying open below
    with chunkstore.open(path, read_only=True) as ro:
        st = ro.stats()
    return {"baseline_rss_kib": base_rss, "baseline_peak_kib": base_peak,
            "streams_rss_kib": streams_rss, "peak_kib": peak, "hwm_kib": hwm,
            "max_sampled_kib": max_sampled, "pre_close_rss_kib": pre_close_rss,
            "quarters_kib": quarters,
            "head_accounted": head_accounted, "chunks_before_close": n_chunks_open,
            "budget": budget, "bytes": done, "lines": n_lines + streams,
            "stored_entries": st.entries, "chunks": st.chunks, "streams": st.streams,
            "push_s": push_s, "close_s": close_s}


def rss_row_of(r: dict) -> dict:
    """The RESULTS row of one RSS child's report."""
    growth = (r["peak_kib"] - r["baseline_rss_kib"]) * 1024
    return {
        "figure": f"peak RSS, {fmt_bytes(r['bytes'])} into {r['streams']:,} streams "
                  f"(child process)",
        "lines/s": f"{r['lines'] / r['push_s']:,.0f}",
        "MB/s": f"{r['bytes'] / r['push_s'] / 1e6:.0f}",
        "seconds": round(r["push_s"], 2),
        "per core (CPU time)": f"baseline {r['baseline_rss_kib'] / 1024:.0f} MiB, peak "
                               f"{r['peak_kib'] / 1024:.0f} MiB: growth {growth / MIB:.0f} MiB "
                               f"vs head budget {r['budget'] / MIB:.0f} MiB "
                               f"({(growth - r['budget']) / MIB:+.0f} MiB; the store's index "
                               f"holds {r['index_kib'] / 1024:.0f} MiB: budget + index "
                               f"{(growth - r['budget']) / MIB - r['index_kib'] / 1024:+.0f} MiB)",
    }


def run_rss_child(work: Path, target_bytes: int, seed: int, streams: int = RSS_STREAMS,
                  budget_mib: float | None = None) -> dict:
    path = work / "rss-store"
    shutil.rmtree(path, ignore_errors=True)
    out = subprocess.run([sys.executable, __file__, "--child-rss", str(path),
                          "--size", str(target_bytes / 1e6), "--seed", str(seed),
                          "--streams", str(streams)]
                         + (["--child-budget", str(budget_mib)] if budget_mib else []),
                         capture_output=True, text=True)
    if out.returncode != 0:
        shutil.rmtree(path, ignore_errors=True)
        raise RuntimeError(f"rss child failed ({out.returncode}): {out.stderr[-2000:]}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    # What the finished store's in-memory index (streams, labels, postings,
    # chunks) holds on its own: the live bytes of opening it read-only in a
    # fresh process (tracemalloc; RSS there also keeps the replay's garbage).
    o = time_open(path, "ro", 1, trace=True)
    r["index_kib"] = o["held_bytes"] / 1024
    shutil.rmtree(path, ignore_errors=True)
    return r


# ---------------------------------------------------------------------------
# (d) a store of many chunks, opened in a fresh process

_OPEN_CHILD = r"""
import json, sys, time
def kib(field):
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith(field))
t0 = time.perf_counter()
import chunkstore
t1 = time.perf_counter()
base = kib("VmRSS:")
trace = len(sys.argv) > 3 and sys.argv[3] == "trace"
if trace:  # live bytes the open store holds (Python allocations), not RSS
    import gc, tracemalloc
    tracemalloc.start()
store = chunkstore.open(sys.argv[1], read_only=sys.argv[2] == "ro")
t2 = time.perf_counter()
opened = kib("VmRSS:")
if trace:
    gc.collect()
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
chunks = store.stats().chunks
t3 = time.perf_counter()
store.close()
t4 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "open_s": t2 - t1, "close_s": t4 - t3,
                  "base_kib": base, "opened_kib": opened, "peak_kib": kib("VmHWM:"),
                  "chunks": chunks, "held_bytes": held if trace else None}))
"""


def build_many_chunks(chunkstore, path: Path, streams: int, rounds: int) -> tuple[float, int]:
    """A store of ``streams * rounds`` chunks: push a few lines per stream, seal, repeat."""
    shutil.rmtree(path, ignore_errors=True)
    line = b"2024-01-01 00:00:00 INFO dfs.DataNode: Receiving block blk_%d src: /10.0.0.%d:50010"
    labels = [{"app": f"svc-{i % 50:02d}", "pod": f"pod-{i:05d}"} for i in range(streams)]
    t0 = time.perf_counter()
    store = chunkstore.open(path, fsync="batch", maintenance_interval=0)
    ts = corpus_mod.START_NS
    for _r in range(rounds):
        for a in range(0, streams, 500):
            batch = []
            for i in range(a, min(a + 500, streams)):
                batch.append((labels[i], [(ts + j, line % (ts + j, j)) for j in range(5)]))
            store.push(batch)
        ts += 1_000_000_000
        # Benchmark setup only: seal every open head as one chunk with a single
        # fsync (private calls; the public path would seal by size or age).
        store._seal(list(store.heads.values()))
        store._truncate_wal()
    store.close()
    return time.perf_counter() - t0, streams * rounds


def time_open(path: Path, mode: str, repeat: int, trace: bool = False) -> dict:
    best = None
    for _ in range(max(1, repeat)):
        out = subprocess.run([sys.executable, "-c", _OPEN_CHILD, str(path), mode]
                             + (["trace"] if trace else []),
                             capture_output=True, text=True, cwd=str(harness.REPO_DIR))
        if out.returncode != 0:
            raise RuntimeError(f"open child failed ({out.returncode}): {out.stderr[-2000:]}")
        r = json.loads(out.stdout.strip().splitlines()[-1])
        if best is None or r["open_s"] < best["open_s"]:
            best = r
    return best


# ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = harness.make_parser(__doc__.split("\n\n")[0], default_size_mb=1000, smoke_size_mb=2)
    p.add_argument("--streams", type=int, default=32)
    p.add_argument("--append-lines", type=int, default=200_000,
                   help="entries for the single append() rates (default 200,000)")
    p.add_argument("--rss-size", type=float, default=None, metavar="MB",
                   help="MB ingested into 10,000 streams for the RSS figure (default --size; "
                        "5 with --smoke)")
    p.add_argument("--chunks-streams", type=int, default=10_000)
    p.add_argument("--chunks-rounds", type=int, default=10)
    p.add_argument("--rss-budgets", default="", metavar="MiB,...",
                   help="also measure peak RSS into 10,000 streams under these head "
                        "budgets (e.g. 32,128): is the overshoot a constant?")
    p.add_argument("--child-rss", metavar="DIR", help=argparse_hidden())
    p.add_argument("--child-budget", type=float, default=None, help=argparse_hidden())
    args = harness.parse_args(p, argv)
    if args.child_rss:
        print(json.dumps(rss_child(args.child_rss, args.size_bytes, args.streams, args.seed,
                                   args.child_budget)))
        return 0

    import chunkstore

    info = harness.machine_info()
    print(harness.machine_line(info))
    if not chunkstore.ACCELERATED:
        print("bench_ingest: WARNING: measuring the pure-Python kernels", file=sys.stderr)
    if args.smoke:
        args.append_lines = 2_000
        args.chunks_streams, args.chunks_rounds = 1_000, 2
        rss_bytes = 5_000_000
    else:
        rss_bytes = int((args.rss_size or args.size) * 1e6)
    # A directory of this run's own: a --smoke run (the test suite) may run alongside.
    work = harness.work_dir(f"bench_ingest-{os.getpid()}")
    try:
        return measure(args, chunkstore, info, work, rss_bytes)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(args, chunkstore, info, work: Path, rss_bytes: int) -> int:
    """Parts (a) to (d); returns the exit status.

    The child processes of (c) and (d) are started first, while this process
    is still small (see :func:`hwm_kib` for why that matters to RSS figures).
    """
    repeat = args.repeat
    notes: list[str] = []

    # -- (c) peak RSS, 10,000 streams -----------------------------------------------
    # ... and the same volume into 100 streams: what is left when there is
    # hardly any per-stream state or index (the budget's "small constant").
    r = run_rss_child(work, rss_bytes, args.seed)
    r100 = run_rss_child(work, rss_bytes, args.seed, streams=100)
    for run in (r, r100):
        if run["stored_entries"] != run["lines"]:
            return fail(f"rss child stored {run['stored_entries']} of {run['lines']} entries")
    rss_row, rss_row_100 = rss_row_of(r), rss_row_of(r100)

    def quarters(run):
        return " / ".join(f"{q / 1024:.0f}" for q in run["quarters_kib"])

    notes.append(
        f"RSS after each quarter of the volume: {quarters(r)} MiB ({RSS_STREAMS:,} streams; "
        f"{r['chunks_before_close']:,} chunks in the index at the end), "
        f"{quarters(r100)} MiB (100 streams; {r100['chunks_before_close']:,} chunks)")
    notes.append(
        f"RSS child: one line into each of {RSS_STREAMS:,} streams (RSS "
        f"{r['baseline_rss_kib'] / 1024:.0f} -> {r['streams_rss_kib'] / 1024:.0f} MiB), then "
        f"batches of {RSS_STREAMS_PER_BATCH} streams x {BATCH_ENTRIES // RSS_STREAMS_PER_BATCH} "
        f"entries cycling through them, lines made on the fly from a 4,000-line pool (the "
        f"rate includes making them); before close: RSS {r['pre_close_rss_kib'] / 1024:.0f} "
        f"MiB, head bytes accounted {r['head_accounted'] / MIB:.0f} MiB, "
        f"{r['chunks_before_close']:,} chunks sealed early by the budget; close "
        f"{r['close_s']:.2f} s; {r['chunks']:,} chunks in all; peak = ru_maxrss "
        f"(VmHWM {r['hwm_kib'] / 1024:.0f} MiB)")

    budget_rows = []
    for b in [float(x) for x in args.rss_budgets.split(",") if x.strip()]:
        rb = run_rss_child(work, rss_bytes, args.seed, budget_mib=b)
        if rb["stored_entries"] != rb["lines"]:
            return fail(f"rss child stored {rb['stored_entries']} of {rb['lines']} entries")
        row = rss_row_of(rb)
        row["figure"] += f", head budget {b:g} MiB"
        budget_rows.append(row)
        notes.append(f"RSS child with a {b:g} MiB head budget: {rb['chunks']:,} chunks in all; "
                     f"RSS after each quarter {quarters(rb)} MiB")

    # -- (d) open a store of many chunks ---------------------------------------------
    many = work / "many-chunks"
    build_s, n_chunks = build_many_chunks(chunkstore, many, args.chunks_streams,
                                          args.chunks_rounds)
    index_bytes = dir_bytes(many).get("index.log", 0)
    open_rows = []
    for mode in ("rw", "ro"):
        o = time_open(many, mode, repeat)
        if o["chunks"] != n_chunks:
            return fail(f"reopened store lists {o['chunks']} chunks, built {n_chunks}")
        open_rows.append({
            "figure": f"open{'(read_only=True)' if mode == 'ro' else '()'} + close(), "
                      f"{n_chunks:,} chunks, {args.chunks_streams:,} streams (fresh process)",
            "seconds": round(o["open_s"] + o["close_s"], 3),
            "per core (CPU time)": f"open {o['open_s'] * 1000:.0f} ms, close "
                                   f"{o['close_s'] * 1000:.0f} ms; RSS after import "
                                   f"{o['base_kib'] / 1024:.0f} MiB, after open "
                                   f"{o['opened_kib'] / 1024:.0f} MiB "
                                   f"(+{(o['opened_kib'] - o['base_kib']) / 1024:.0f} MiB), "
                                   f"peak {o['peak_kib'] / 1024:.0f} MiB",
        })
    notes.append(f"many-chunks store built in {build_s:.1f} s (push 5 lines into each stream, "
                 f"then the private `_seal` of every head, per round); index.log "
                 f"{fmt_bytes(index_bytes)}; open best of {repeat} fresh processes")
    shutil.rmtree(many, ignore_errors=True)

    # -- the corpus -------------------------------------------------------------------
    t = time.perf_counter()
    corpus = corpus_mod.build_corpus(args.size_bytes, streams=args.streams, seed=args.seed)
    n_lines = corpus_mod.corpus_lines(corpus)
    raw_bytes = corpus_mod.corpus_bytes(corpus)
    text_bytes = raw_bytes - n_lines
    batches = make_batches(corpus)
    print(f"corpus: {len(corpus)} streams, {n_lines:,} lines, {raw_bytes / 1e6:.1f} MB raw, "
          f"{len(batches):,} batches ({time.perf_counter() - t:.1f}s)")

    # -- (a) push --------------------------------------------------------------------
    store_path = work / "store"
    runs = [time_push(chunkstore, batches, store_path, n_lines) for _ in range(repeat)]
    best = min(runs, key=lambda x: x["push"])
    best_total = min(runs, key=lambda x: x["total"])
    del batches
    gc.collect()

    # (b) bytes on disk, and the store holds exactly the corpus
    sizes = dir_bytes(store_path)
    with chunkstore.open(store_path, read_only=True) as ro:
        st = ro.stats()
    if st.entries != n_lines or st.bytes_raw != text_bytes or st.streams != len(corpus):
        return fail(f"store holds {st.entries} entries / {st.bytes_raw} text bytes / "
                    f"{st.streams} streams; corpus has {n_lines} / {text_bytes} / {len(corpus)}")
    shutil.rmtree(store_path, ignore_errors=True)

    db = work / "sqlite.db"
    sq_runs = [harness.sqlite_ingest(corpus, db) for _ in range(repeat)]
    sq_s = min(x[0] for x in sq_runs)
    sq_bytes = sq_runs[-1][1]
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)

    raw_path = work / "corpus.log"
    corpus_mod.write_raw(corpus, raw_path)
    try:
        gz = harness.gzip_size(raw_path, 6)
    finally:
        raw_path.unlink(missing_ok=True)

    rows: list[dict] = []
    rows.append({
        "figure": "push(), ~1,000 entries x 32 streams per call",
        "lines/s": f"{n_lines / best['push']:,.0f}",
        "MB/s": f"{raw_bytes / best['push'] / 1e6:.0f}", "seconds": round(best["push"], 2),
        "per core (CPU time)": f"{n_lines / best['push_cpu']:,.0f} lines/s "
                               f"({best['push_cpu']:.2f} s CPU, of which system "
                               f"{best['push_sys']:.2f} s); writer thread in fsync "
                               f"{best['push_fsync']:.2f} s ({best['push_fsyncs']} calls)",
        "vs SQLite": fmt_ratio(sq_s, best["push"]),
    })
    rows.append({
        "figure": "push() + close()",
        "lines/s": f"{n_lines / best_total['total']:,.0f}",
        "MB/s": f"{raw_bytes / best_total['total'] / 1e6:.0f}",
        "seconds": round(best_total["total"], 2),
        "per core (CPU time)": f"{n_lines / best_total['total_cpu']:,.0f} lines/s "
                               f"({best_total['total_cpu']:.2f} s CPU); close() alone "
                               f"{best_total['close']:.2f} s",
        "vs SQLite": fmt_ratio(sq_s, best_total["total"]),
    })
    rows.append({"figure": "SQLite executemany, 10k-row transactions (same corpus)",
                 "lines/s": f"{n_lines / sq_s:,.0f}", "MB/s": f"{raw_bytes / sq_s / 1e6:.0f}",
                 "seconds": round(sq_s, 2)})

    a_s, h_s, n_sub = time_single_appends(chunkstore, corpus, args.append_lines,
                                          work / "append-store")
    for fig, sec in ((f"store.append(), one line per call ({n_sub:,} lines)", a_s),
                     (f"stream(labels).append(), one line per call ({n_sub:,} lines)", h_s)):
        rows.append({"figure": fig, "lines/s": f"{n_sub / sec:,.0f}", "seconds": round(sec, 2),
                     "per core (CPU time)": f"{sec / n_sub * 1e6:.1f} us per call",
                     "vs SQLite": fmt_ratio(sq_s / n_lines * n_sub, sec)})

    rows.append({"figure": "bytes on disk after close (store directory)",
                 "lines/s": fmt_bytes(sizes["total"]),
                 "MB/s": f"raw/disk {raw_bytes / sizes['total']:.2f}x",
                 "per core (CPU time)": f"gzip -6 of the raw text {fmt_bytes(gz)} "
                                        f"({raw_bytes / gz:.2f}x): the store is "
                                        f"{sizes['total'] / gz:.2f}x gzip",
                 "vs SQLite": f"{sq_bytes / sizes['total']:.2f}x smaller than SQLite's file "
                              f"({fmt_bytes(sq_bytes)}, {sq_bytes / raw_bytes:.2f}x raw)"})
    notes.insert(0, f"store directory after close: segments {fmt_bytes(sizes.get('segments', 0))}"
                    f", index.log {fmt_bytes(sizes.get('index.log', 0))}, wal "
                    f"{fmt_bytes(sizes.get('wal', 0))}; {st.chunks:,} chunks; stored bytes by "
                    f"the index {fmt_bytes(st.bytes_stored)}")
    rows.append(rss_row)
    rows.append(rss_row_100)
    rows.extend(budget_rows)
    rows.extend(open_rows)

    notes.insert(0, f"{args.streams} streams, {n_lines:,} lines, {raw_bytes / 1e6:.0f} MB raw "
                    f"text (lines + newlines; MB/s are of it), loghub-derived, lines as bytes; "
                    f"fsync=\"batch\"; one writer thread; best of {repeat}; GC paused while "
                    f"pushing (as timeit); each timed write run, SQLite's too, starts after "
                    f"os.sync() (no writeback of earlier runs in it); 'per core' = lines / CPU "
                    f"time of the process (the WAL's group-commit fsync runs on its own "
                    f"thread, mostly waiting)")
    notes.append("targets: push >= 1,000,000 lines/s per core and >= 5x SQLite; peak RSS "
                 "within the head budget plus a small constant; open of 100,000 chunks well "
                 "under a second")
    harness.report("Store ingest", rows, smoke=not args.record, notes=notes, info=info)
    return 0


def argparse_hidden():
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    sys.exit(main())
