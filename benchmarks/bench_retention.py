"""Keeping the disk in bounds: bytes on disk after compaction, expiry time, compaction MB/s.

Three figures of issue 6, measured in one run against baselines of the same run:

* **bytes on disk per raw byte** of a loghub corpus (default 200 MB, 32
  streams; ``benchmarks/corpus.py``) ingested with the defaults (lz4 blocks),
  then after ``store.compact(codec="lz4hc")`` and ``codec="zstd"`` (the
  ``chunkstore[zstd]`` extra); the whole store directory counts (segments,
  index log, WAL).  Baselines: ``gzip -6`` of the raw text (target: the
  compacted store at least as small) and the SQLite file of the same rows
  (``harness.sqlite_ingest``).  The read-side cost of each codec is shown as
  the scan speed of a query for a rare literal over the whole store;
* **retention**: a store of 100,000 small chunks spread over 30 days (one
  segment directory per day) and one of half the days; the time of
  ``apply_retention(now=...)`` expiring exactly one day (best of
  ``--repeat``, a further day each time).  Target: milliseconds per expired
  segment, the same for both stores (independent of what stays);
* **compaction throughput**: raw line bytes in per second of the two
  compactions above, wall clock and per core (CPU seconds of this process:
  compaction runs on one thread), and the cost of applying a delete request
  with a line filter to one stream.

``--smoke`` runs on 2 MB and 2,000 chunks in seconds and records nothing.

    python benchmarks/bench_retention.py [--size 200] [--chunks 100000] [--days 30] [--smoke]
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus as corpus_mod  # noqa: E402
import harness  # noqa: E402
from harness import fmt_bytes, fmt_rate, fmt_ratio  # noqa: E402

import chunkstore  # noqa: E402
from chunkstore.retention import RetentionPolicy  # noqa: E402

S = 1_000_000_000
DAY = 86_400 * S
#: options of every store here: durability costs are not what is measured
STORE_OPTS = dict(fsync="never", maintenance_interval=0)


def dir_bytes(path: Path) -> int:
    """Bytes of every file under ``path`` (apparent sizes, as ``du -b``)."""
    return sum(os.path.getsize(os.path.join(d, f)) for d, _dirs, files in os.walk(path)
               for f in files)


def have_zstd() -> bool:
    try:
        import zstandard  # noqa: F401
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------------------
# (a) + (c): ingest, compact, measure


def ingest(corpus, path: Path, batch: int = 2000) -> float:
    """Push the corpus round-robin in ``batch``-line pieces per stream, then close; seconds."""
    shutil.rmtree(path, ignore_errors=True)
    t0 = time.perf_counter()
    with chunkstore.open(path, **STORE_OPTS) as store:
        longest = max(len(s.lines) for s in corpus)
        for a in range(0, longest, batch):
            res = store.push([(s.labels, list(zip(s.ts[a:a + batch], s.lines[a:a + batch])))
                              for s in corpus if a < len(s.lines)])
            if res.rejected:
                raise RuntimeError(f"ingest: {len(res.rejected)} entries rejected, first "
                                   f"{res.rejected[0]}")
    return time.perf_counter() - t0


def compact_copy(src: Path, dst: Path, codec: str):
    """Copy the store at ``src`` to ``dst`` and compact it; (report, wall s, CPU s)."""
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    with chunkstore.open(dst, **STORE_OPTS) as store:
        w0, c0 = time.perf_counter(), time.process_time()
        rep = store.compact(codec=codec)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return rep, wall, cpu


def text_bytes(path: Path) -> tuple[int, int]:
    """(line text bytes, chunks) of every live chunk of the store at ``path``."""
    with chunkstore.open(path, read_only=True) as store:
        chunks = list(store.index.chunks.values())
    return sum(c.text_bytes for c in chunks), len(chunks)


def scan_time(path: Path, needle: str, repeat: int) -> tuple[float, int]:
    """Best seconds of a whole-store query for a rare literal; (seconds, matches)."""
    q = '{system=~".+"} |= "%s"' % needle.replace("\\", "\\\\").replace('"', '\\"')
    with chunkstore.open(path, read_only=True) as store:
        return harness.best_of(lambda: sum(1 for _ in store.query(q)), repeat=repeat, warmup=1)


def pick_needle(corpus) -> str:
    """A token of a line in the middle of the corpus: a rare literal for the scan figure."""
    s = corpus[len(corpus) // 2]
    line = s.lines[len(s.lines) // 2].decode("utf-8", "replace")
    return max(line.split(), key=len)[:24]


# ---------------------------------------------------------------------------
# (b): retention over many chunks


def build_day_store(path: Path, chunks: int, days: int, start_ns: int,
                    rounds_per_day: int = 4) -> int:
    """A store of about ``chunks`` small chunks over ``days`` days; returns the chunk count.

    Many streams, one chunk per stream per round: each round pushes three
    lines to every stream and seals every head at once (one fsync), with
    timestamps inside the round's slice of its day, so each day is its own
    segment directory.
    """
    shutil.rmtree(path, ignore_errors=True)
    streams = max(1, -(-chunks // (days * rounds_per_day)))
    labels = [{"app": f"app-{i % 50:02d}", "pod": f"pod-{i:05d}"} for i in range(streams)]
    slot = DAY // rounds_per_day
    with chunkstore.open(path, max_streams=0, **STORE_OPTS) as store:
        for d in range(days):
            for r in range(rounds_per_day):
                base = start_ns + d * DAY + r * slot
                store.push([(lb, [(base + k * S + i, f"level=info pod={lb['pod']} day={d} "
                                   f"round={r} msg=\"request served\" n={k}")
                                  for k in range(3)])
                            for i, lb in enumerate(labels)])
                store._seal(list(store.heads.values()))
        return len(store.index.chunks)


def time_expiry(path: Path, days: int, start_ns: int, repeat: int) -> dict:
    """Expire the oldest day ``repeat`` times (a further day each time); best run's figures."""
    policy = RetentionPolicy(period=f"{days}d")
    best = None
    with chunkstore.open(path, retention=policy, **STORE_OPTS) as store:
        total = len(store.index.chunks)
        for k in range(repeat):
            # chunks of day k end before start + (k + 1) days: exactly that day expires
            now = start_ns + (k + 1) * DAY + days * DAY
            rep = store.apply_retention(now=now)
            if not rep.segments_removed:
                raise RuntimeError(f"retention: expiring day {k} removed no segment: {rep}")
            if best is None or rep.seconds < best.seconds:
                best = rep
    return {"chunks": total, "report": best}


# ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = harness.make_parser(__doc__.split("\n\n")[0], default_size_mb=200, smoke_size_mb=2)
    p.add_argument("--streams", type=int, default=32, help="corpus streams")
    p.add_argument("--chunks", type=int, default=100_000, help="chunks of the retention store")
    p.add_argument("--days", type=int, default=30, help="days of the retention store")
    p.add_argument("--keep", action="store_true", help="keep the stores under benchmarks/.cache")
    args = harness.parse_args(p, argv)
    if args.smoke:
        args.chunks, args.days = 2_000, 10
    repeat = args.repeat
    info = harness.machine_info()
    info["zstandard"] = harness._version("zstandard")
    print(harness.machine_line(info))
    work = harness.work_dir("bench_retention")
    rows: list[dict] = []
    notes: list[str] = []

    # -- (a) bytes on disk -----------------------------------------------------
    corpus = corpus_mod.build_corpus(args.size_bytes, streams=args.streams, seed=args.seed)
    raw_path = work / "corpus.log"
    raw = corpus_mod.write_raw(corpus, raw_path)
    n_lines = corpus_mod.corpus_lines(corpus)
    gz = harness.gzip_size(raw_path, 6)
    sql_s, sql_bytes = harness.sqlite_ingest(corpus, work / "sqlite.db")
    base = work / "store-lz4"
    ing_s = ingest(corpus, base)
    text, n_chunks = text_bytes(base)
    stores = {"lz4": (base, None, None, None)}
    codecs = ["lz4hc"] + (["zstd"] if have_zstd() else [])
    for codec in codecs:
        path = work / f"store-{codec}"
        stores[codec] = (path, *compact_copy(base, path, codec))
    needle = pick_needle(corpus)

    def size_row(name, size, extra=None):
        row = {"figure": name, "bytes on disk": fmt_bytes(size),
               "per raw byte": f"{size / raw:.3f}", "raw / disk": fmt_ratio(raw, size),
               "vs gzip -6": f"{size / gz:.2f}x the size", "vs SQLite file":
               f"{size / sql_bytes:.2f}x the size"}
        row.update(extra or {})
        rows.append(row)

    size_row("gzip -6 of the raw text (baseline)", gz)
    size_row("SQLite file, same rows (baseline)", sql_bytes)
    sizes = {}
    for codec, (path, rep, wall, cpu) in stores.items():
        sizes[codec] = dir_bytes(path)
        scan_s, _n = scan_time(path, needle, repeat)
        label = ("chunkstore as ingested (lz4)" if rep is None
                 else f"chunkstore after compact(codec={codec!r})")
        size_row(label, sizes[codec], {"whole-store scan": fmt_rate(text, scan_s)})
    if "zstd" not in stores:
        notes.append("zstd: the zstandard package is not installed (pip install zstandard); "
                     "no zstd figures")
    best = min(sizes[c] for c in codecs)
    notes.append(f"target (compacted store at most the size of gzip -6): "
                 f"{'met' if best <= gz else 'missed'}; smallest compacted store "
                 f"{best / gz:.2f}x gzip -6, {best / sql_bytes:.2f}x the SQLite file")

    # -- (c) compaction throughput ------------------------------------------------
    for codec in codecs:
        _path, rep, wall, cpu = stores[codec]
        rows.append({"figure": f"compact lz4 -> {codec}: {rep.chunks_before:,} chunks -> "
                               f"{rep.chunks_after:,}, {rep.blocks_reencoded:,} blocks re-encoded",
                     "throughput": fmt_rate(text, wall),
                     "per core": fmt_rate(text, cpu)})
    # applying a delete with a line filter to one stream of the lz4hc store
    path = stores["lz4hc"][0]
    target = corpus[0]
    word = max(target.lines[len(target.lines) // 3].decode("utf-8", "replace").split(),
               key=len)[:16]
    sel = "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(target.labels.items())) + "}"
    with chunkstore.open(path, **STORE_OPTS) as store:
        d = store.delete(sel + ' |= "%s"' % word.replace("\\", "\\\\").replace('"', '\\"'))
        w0, c0 = time.perf_counter(), time.process_time()
        rep = store.compact(codec="lz4hc")
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    stream_text = target.raw_bytes  # line text of the one stream rewritten
    rows.append({"figure": f"apply a delete (line filter, 1 of {len(corpus)} streams, "
                           f"{d.entries:,} entries): {rep.blocks_reencoded:,} blocks re-encoded, "
                           f"{rep.blocks_copied:,} copied",
                 "throughput": fmt_rate(stream_text, wall), "per core": fmt_rate(stream_text, cpu),
                 "seconds": f"{wall * 1e3:.0f} ms"})

    # -- (b) retention ------------------------------------------------------------
    start_ns = corpus_mod.START_NS
    ret = {}
    for days, chunks in ((args.days, args.chunks),
                         (max(2, args.days // 2), args.chunks * max(2, args.days // 2) // args.days)):
        path = work / f"retention-{days}d"
        b0 = time.perf_counter()
        build_day_store(path, chunks, days, start_ns)
        build_s = time.perf_counter() - b0
        r = time_expiry(path, days, start_ns, min(repeat, days - 1))
        rep = r["report"]
        ret[days] = rep.seconds
        rows.append({"figure": f"retention: expire 1 of {days} days, store of {r['chunks']:,} "
                               f"chunks (built in {build_s:.1f} s)",
                     "expired": f"{rep.chunks:,} chunks, {len(rep.segments_removed)} segment(s)",
                     "seconds": f"{rep.seconds * 1e3:.1f} ms",
                     "per expired segment": f"{rep.seconds * 1e3 / len(rep.segments_removed):.1f} ms",
                     "per expired chunk": f"{rep.seconds * 1e6 / max(1, rep.chunks):.1f} µs"})
        if not args.keep:
            shutil.rmtree(path, ignore_errors=True)
    full, half = ret[args.days], ret[max(2, args.days // 2)]
    notes.append(f"retention: expiring one day takes {fmt_ratio(full, half)} as long in the "
                 f"{args.days}-day store as in the {max(2, args.days // 2)}-day one "
                 f"(1.00x = independent of what stays)")

    notes += [
        f"{len(corpus)} streams, {n_lines:,} lines, {raw / 1e6:.0f} MB raw text "
        f"({text / 1e6:.0f} MB of line text in {n_chunks:,} chunks as ingested); ingest "
        f"{fmt_rate(raw, ing_s)}, SQLite ingest {fmt_rate(raw, sql_s)}",
        "bytes on disk: the whole store directory after close (segments, index log, WAL); "
        "throughput: line text in / seconds; per core: / CPU seconds of the process",
        f"whole-store scan: query `|= {needle!r}` over every stream, line text / best seconds",
        f"kernels {'compiled' if info['accelerated'] is True else 'pure Python'}; "
        f"zstandard {info['zstandard']}; best of {repeat}",
    ]
    harness.report("Retention, deletion and compaction", rows, smoke=not args.record,
                   notes=notes, info=info)
    if not args.keep:
        for path in [raw_path, work / "sqlite.db"] + [v[0] for v in stores.values()]:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
