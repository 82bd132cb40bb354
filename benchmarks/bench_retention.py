"""Keeping the disk in bounds: bytes on disk after compaction, expiry time, compaction MB/s.

Three figures of issue 6, measured in one run against baselines of the same run:

* **bytes on disk per raw byte** of a loghub corpus (default 200 MB, 32
  streams; ``benchmarks/corpus.py``) ingested with the defaults (lz4 blocks),
  then after ``store.compact(codec="lz4hc")`` and ``codec="zstd"`` (the
  ``chunkstore[zstd]`` extra) with the default options (entries re-cut into
  ``compact_block_size`` = 4 MiB blocks, zstd at ``COMPACT_LEVELS`` with
  ``COMPACT_ZSTD_PARAMS``, token filters at ``COMPACT_FILTER_BITS_PER_KEY``),
  and at each ``--zstd-levels`` level besides; the whole store directory
  counts (segments, index log, WAL).  Twice, for the same line text with two
  kinds of entry timestamps (``corpus.build_corpus(timestamps=...)``):
  **random-ns**, the corpus's own (each line a random nanosecond inside its
  slot: about 31 bits a line that the text does not show; every run before
  this option measured these), and **line**, each time cut to the precision
  its line shows it at (seconds, milliseconds or microseconds), what a
  collector parsing the line's timestamp stores.  Baselines: ``gzip -6`` of
  the raw text (target: the compacted store at least as small; the verdict
  is given for each timestamp kind), ``gzip -6`` of the text with each
  line's nanosecond timestamp in front (the store keeps the timestamps, the
  raw text does not) and the SQLite file of the same rows
  (``harness.sqlite_ingest``).  Where a default zstd store's bytes are: each
  block's columns compressed alone with the same settings (an estimate: the
  block compresses them together), the token filters with their measured
  false-positive rate, and the rest.  The read-side cost of each codec is
  shown as the scan speed of a query for a rare literal over the whole
  store;
* **retention**: a store of 100,000 small chunks spread over 30 days (one
  segment directory per day) and one of half the days; the time of
  ``apply_retention(now=...)`` expiring exactly one day (best of
  ``--repeat``, a further day each time).  Target: milliseconds per expired
  segment, the same for both stores (independent of what stays);
* **compaction throughput**: raw line bytes in per second of the
  compactions above (random-ns timestamps), wall clock and per core (CPU
  seconds of this process: compaction runs on one thread), and the cost of
  applying a delete request with a line filter to one stream.

``--smoke`` runs on 2 MB and 2,000 chunks in seconds and records nothing.

    python benchmarks/bench_retention.py [--size 200] [--chunks 100000] [--days 30]
        [--zstd-levels 16] [--smoke] [--no-record]
"""

from __future__ import annotations

import os
import random
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus as corpus_mod  # noqa: E402
import harness  # noqa: E402
from harness import fmt_bytes, fmt_rate, fmt_ratio  # noqa: E402

import chunkstore  # noqa: E402
from chunkstore import _kernels, compaction  # noqa: E402
from chunkstore.retention import RetentionPolicy  # noqa: E402

S = 1_000_000_000
#: the two kinds of entry timestamps the size figures are measured for (module docstring)
TS_KINDS = {"random-ns": "random-ns timestamps", "line": "line timestamps"}
DAY = 86_400 * S
#: options of every store here: durability costs are not what is measured
STORE_OPTS = dict(fsync="never", maintenance_interval=0)


def dir_bytes(path: Path) -> int:
    """Bytes of every file under ``path`` (apparent sizes, as ``du -b``)."""
    return sum(os.path.getsize(os.path.join(d, f)) for d, _dirs, files in os.walk(path)
               for f in files)


def filter_bytes(path: Path) -> int:
    """Bytes of the token filter sections (FORMAT.md section 4) of every live chunk."""
    with chunkstore.open(path, read_only=True) as store:
        return sum(getattr(store.chunk_meta(ref), "filters_len", 0)
                   for ref in store.index.chunks.values())


def store_parts(path: Path) -> str:
    """Where a store's bytes are: segments (of which token filters), WAL, index log."""
    seg, wal = dir_bytes(path / "segments"), dir_bytes(path / "wal")
    idx = os.path.getsize(path / "index.log")
    filters = filter_bytes(path)
    return (f"segments {fmt_bytes(seg)} (token filters {fmt_bytes(filters)}), WAL "
            f"{fmt_bytes(wal)}, index log {fmt_bytes(idx)}")


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
            res = store.push([(s.labels, list(zip(s.ts[a:a + batch], s.lines[a:a + batch],
                                                           strict=True)))
                              for s in corpus if a < len(s.lines)])
            if res.rejected:
                raise RuntimeError(f"ingest: {len(res.rejected)} entries rejected, first "
                                   f"{res.rejected[0]}")
    return time.perf_counter() - t0


def compact_copy(src: Path, dst: Path, codec: str, level: int | None = None):
    """Copy the store at ``src`` to ``dst`` and compact it; (report, wall s, CPU s).

    ``level``: compress at this level instead of ``compaction.COMPACT_LEVELS``'.
    """
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    codec_id = chunkstore.options._CODECS[codec]
    saved = dict(compaction.COMPACT_LEVELS)
    if level is not None:
        compaction.COMPACT_LEVELS[codec_id] = level
    try:
        with chunkstore.open(dst, **STORE_OPTS) as store:
            w0, c0 = time.perf_counter(), time.process_time()
            rep = store.compact(codec=codec)
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    finally:
        compaction.COMPACT_LEVELS.clear()
        compaction.COMPACT_LEVELS.update(saved)
    return rep, wall, cpu


def gzip_with_ts(corpus, level: int = 6) -> int:
    """gzip bytes of every line with its decimal nanosecond timestamp and a space in front."""
    import zlib

    comp = zlib.compressobj(level, zlib.DEFLATED, 31)
    n = 0
    for s in corpus:
        n += len(comp.compress(b"".join(b"%d %s\n" % (ts, line)
                                        for ts, line in zip(s.ts, s.lines, strict=True))))
    return n + len(comp.flush())


def needle_matches(corpus, needle: bytes) -> tuple[int, int]:
    """(distinct entries, lines) of the corpus whose line contains ``needle``.

    A store drops an exact duplicate (same stream, time and line) within a
    block, so it returns at least the first and at most the second; they are
    equal when no two entries of a stream share a time (random-ns timestamps).
    """
    total = distinct = 0
    for s in corpus:
        hits = [(ts, line) for ts, line in zip(s.ts, s.lines, strict=True) if needle in line]
        total += len(hits)
        distinct += len(set(hits))
    return distinct, total


def text_bytes(path: Path) -> tuple[int, int]:
    """(line text bytes, chunks) of every live chunk of the store at ``path``."""
    with chunkstore.open(path, read_only=True) as store:
        chunks = list(store.index.chunks.values())
    return sum(c.text_bytes for c in chunks), len(chunks)


def _uvarint(buf: bytes, pos: int) -> tuple[int, int]:
    v = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return v, pos


def raw_columns(raw: bytes) -> dict[str, bytes]:
    """The parts of a raw block (FORMAT.md section 2): ts and length columns, metadata, text."""
    n, pos = _uvarint(raw, 0)
    text_len, pos = _uvarint(raw, pos)
    meta_len, pos = _uvarint(raw, pos)
    ts, _lines, _metas = _kernels.block.decode_entries(raw)
    # the same timestamps with empty lines: the header (n, then two zero
    # varints), the same ts column, then n zero lengths
    alone = _kernels.block.encode_entries(ts, [b""] * n)
    ts_len = len(alone) - _uvarint(alone, 0)[1] - 2 - n
    cols_end = len(raw) - text_len - meta_len
    return {"ts": raw[pos:pos + ts_len], "len": raw[pos + ts_len:cols_end],
            "meta": raw[cols_end:len(raw) - text_len], "text": raw[len(raw) - text_len:]}


def bytes_by_part(path: Path, level: int, probes: int = 1000) -> dict:
    """Where the bytes of a zstd-compacted store are, and its filters' false positives.

    Each block's columns are compressed alone with compaction's settings for
    ``level`` (``compaction.compress_block``, framing not counted): an
    estimate of each column's share, since the block compresses them
    together.  ``fp1`` / ``fp2``: the share of ``probes`` random one-key /
    two-key probes per block that its token filter lets through.
    """
    out = dict.fromkeys(("ts", "len", "meta", "text", "stored", "filters", "blocks",
                         "entries", "fp1", "fp2"), 0)
    rng = random.Random(0)
    may = _kernels.tokens.may_contain
    codec = _kernels.block.CODEC_ZSTD
    checked = 0
    with chunkstore.open(path, read_only=True) as store:
        for ref in store.index.chunks.values():
            meta = store.chunk_meta(ref)
            reader = store.segment_reader(ref.segment)
            tfs = reader.read_filters(meta)
            for bm, tf in zip(meta.blocks, tfs, strict=True):
                out["blocks"] += 1
                out["entries"] += bm.n_entries
                out["stored"] += bm.stored_len
                out["filters"] += len(tf)
                raw = reader.read_raw_block(ref.offset, bm)
                for name, col in raw_columns(raw).items():
                    if col:
                        out[name] += (len(compaction.compress_block(col, codec, level))
                                      - _kernels.block.STORED_OVERHEAD)
                if tf:
                    checked += 1
                    out["fp1"] += sum(may(tf, (rng.getrandbits(64),)) for _ in range(probes))
                    out["fp2"] += sum(may(tf, (rng.getrandbits(64), rng.getrandbits(64)))
                                      for _ in range(probes))
    out["fp1"] /= max(1, checked * probes)
    out["fp2"] /= max(1, checked * probes)
    out["rest"] = dir_bytes(path) - out["stored"] - out["filters"]
    return out


def parts_row(kind: str, parts: dict, total: int) -> dict:
    """The table row of :func:`bytes_by_part` for a store of ``total`` bytes."""
    cols = parts["ts"] + parts["len"] + parts["meta"] + parts["text"]

    def part(name: str, label: str) -> str:
        return (f"{label} ~{fmt_bytes(parts[name])} ({parts[name] / total:.0%}, "
                f"{parts[name] * 8 / max(1, parts['entries']):.1f} bits per entry)")

    shown = [part("ts", "ts column"), part("len", "length column")]
    if parts["meta"]:
        shown.append(part("meta", "metadata"))
    shown.append(part("text", "line text"))
    return {"figure": f"where the default zstd store's bytes are, {TS_KINDS[kind]}",
            "result": "; ".join(shown) + (
                f"; token filters {fmt_bytes(parts['filters'])} ({parts['filters'] / total:.0%}); "
                f"chunk framing, index log and WAL {fmt_bytes(parts['rest'])}"),
            "detail": f"columns compressed one by one with compaction's zstd settings "
                      f"({fmt_bytes(cols)} in all; {fmt_bytes(parts['stored'])} of stored "
                      f"blocks, compressed together); token filters at "
                      f"{compaction.COMPACT_FILTER_BITS_PER_KEY} bits per key: "
                      f"{parts['fp1']:.1%} false positives for one random key, "
                      f"{parts['fp2']:.2%} for two (a long token's ends), "
                      f"{parts['blocks']} blocks"}


def scan_time(path: Path, needle: str, repeat: int) -> tuple[float, int]:
    """Best seconds of a whole-store query for a rare literal; (seconds, matches)."""
    q = '{system=~".+"} |= ' + logql_string(needle)
    with chunkstore.open(path, read_only=True) as store:
        return harness.best_of(lambda: sum(1 for _ in store.query(q)), repeat=repeat, warmup=1)


def logql_string(text: str) -> str:
    """``text`` as a double-quoted LogQL string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


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


def zstd_params(level: int) -> str:
    """How compaction compresses at zstd ``level``: the level and its parameter overrides."""
    over = compaction.COMPACT_ZSTD_PARAMS.get(level)
    return f"level {level}" + (" with " + ", ".join(f"{k} {v}" for k, v in over.items())
                               if over else "")


def figure_name(codec: str, zstd_default: int, kind: str) -> str:
    """The row title of a store of timestamps ``kind``: as ingested, or compacted with
    ``codec`` (``zstdN``: level N)."""
    if codec == "lz4":
        name = "chunkstore as ingested (lz4)"
    elif codec == "zstd":
        name = f"chunkstore after compact(codec=\"zstd\"), {zstd_params(zstd_default)}"
    elif codec.startswith("zstd"):
        name = (f"chunkstore after compact(codec=\"zstd\") at "
                f"{zstd_params(int(codec[4:]))}, not the default")
    else:
        name = f"chunkstore after compact(codec=\"{codec}\")"
    return f"{name}, {TS_KINDS[kind]}"


def main(argv: list[str] | None = None) -> int:
    p = harness.make_parser(__doc__.split("\n\n")[0], default_size_mb=200, smoke_size_mb=2)
    p.add_argument("--streams", type=int, default=32, help="corpus streams")
    p.add_argument("--chunks", type=int, default=100_000, help="chunks of the retention store")
    p.add_argument("--days", type=int, default=30, help="days of the retention store")
    p.add_argument("--keep", action="store_true", help="keep the stores under benchmarks/.cache")
    p.add_argument("--zstd-levels", default="16",
                   help="comma-separated zstd levels to compact at besides the default "
                        "(COMPACT_LEVELS); '' for none")
    args = harness.parse_args(p, argv)
    if args.smoke:
        args.chunks, args.days = 2_000, 10
    if args.days < 4:
        p.error(f"--days must be at least 4, got {args.days}")
    repeat = args.repeat
    info = harness.machine_info()
    info["zstandard"] = harness._version("zstandard")
    print(harness.machine_line(info))
    # one directory per run: a smoke run (the test suite) may overlap a full one
    work = harness.work_dir(f"bench_retention/run-{os.getpid()}")
    rows: list[dict] = []
    notes: list[str] = []

    # -- (a) bytes on disk per raw byte, for each kind of timestamps --------------------
    # the same lines for both kinds: one raw text, one gzip baseline
    corpora = {kind: corpus_mod.build_corpus(args.size_bytes, streams=args.streams,
                                             seed=args.seed, timestamps=kind)
               for kind in TS_KINDS}
    corpus = corpora["random-ns"]
    raw_path = work / "corpus.log"
    raw = corpus_mod.write_raw(corpus, raw_path)
    n_lines = corpus_mod.corpus_lines(corpus)
    gz = harness.gzip_size(raw_path, 6)
    gz_ts = {kind: gzip_with_ts(c, 6) for kind, c in corpora.items()}
    sql_s, sql_bytes = harness.sqlite_ingest(corpus, work / "sqlite.db")
    codecs = ["lz4hc"] + (["zstd"] if have_zstd() else [])
    extra_levels = [int(x) for x in args.zstd_levels.split(",") if x.strip()]
    zstd_default = compaction.COMPACT_LEVELS.get(chunkstore.options._CODECS["zstd"], 0)
    stores: dict[tuple[str, str], tuple] = {}  # (timestamp kind, codec) -> (path, report, s, s)
    ing_s = {}
    for kind, c in corpora.items():
        base = work / f"store-{kind}-lz4"
        ing_s[kind] = ingest(c, base)
        stores[kind, "lz4"] = (base, None, 0.0, 0.0)
        for codec in codecs:
            path = work / f"store-{kind}-{codec}"
            stores[kind, codec] = (path, *compact_copy(base, path, codec))
        if have_zstd() and kind == "random-ns":
            for level in extra_levels:
                if level == zstd_default:
                    continue
                path = work / f"store-{kind}-zstd{level}"
                stores[kind, f"zstd{level}"] = (path, *compact_copy(base, path, "zstd", level))
    text, n_chunks = text_bytes(stores["random-ns", "lz4"][0])
    compacted = [c for k, c in stores if k == "random-ns" and c != "lz4"]
    needle = pick_needle(corpus)

    def size_row(figure: str, size: int, detail: str = "") -> None:
        rows.append({"figure": figure,
                     "result": f"{fmt_bytes(size)}: {size / raw:.3f} bytes per raw byte "
                               f"(raw / disk {fmt_ratio(raw, size)})",
                     "vs baseline": f"{size / gz:.2f}x gzip -6, {size / sql_bytes:.2f}x SQLite",
                     "detail": detail})

    size_row("gzip -6 of the raw text (baseline)", gz,
             "the line text alone, the same for both kinds of timestamps")
    for kind in TS_KINDS:
        size_row(f"gzip -6 of the text with timestamps (baseline), {TS_KINDS[kind]}", gz_ts[kind],
                 "each line as '<ts_ns> <line>': the store keeps the timestamps, the raw "
                 "text not")
    size_row("SQLite file of the same rows (baseline)", sql_bytes,
             "table (ts, stream_id, line) + index on (stream_id, ts); random-ns timestamps "
             "(SQLite stores either kind as 8-byte integers)")
    sizes = {}
    for (kind, codec), (path, rep, _wall, _cpu) in stores.items():
        sizes[kind, codec] = dir_bytes(path)
        scan_s, n = scan_time(path, needle, repeat)
        lo, hi = needle_matches(corpora[kind], needle.encode())
        if not lo <= n <= hi:  # compaction must keep every entry
            raise SystemExit(f"bench_retention: the {codec} store ({TS_KINDS[kind]}) returns "
                             f"{n} lines with {needle!r}, the corpus has {hi} ({lo} distinct)")
        size_row(figure_name(codec, zstd_default, kind), sizes[kind, codec],
                 f"{store_parts(path)}; whole-store scan {fmt_rate(text, scan_s)}")
        if rep is not None:
            rows[-1]["detail"] += (f"; {rep.blocks_written:,} blocks written "
                                   f"({fmt_bytes(text // max(1, rep.blocks_written))} of text "
                                   f"each), {rep.blocks_copied:,} copied")
    if have_zstd():
        for kind in TS_KINDS:
            rows.append(parts_row(kind, bytes_by_part(stores[kind, "zstd"][0], zstd_default),
                                  sizes[kind, "zstd"]))
    else:
        notes.append("zstd: the zstandard package is not installed (pip install "
                     "'chunkstore[zstd]'); no zstd figures")
    for kind in TS_KINDS:
        best = min(codecs, key=lambda c, k=kind: sizes[k, c])
        smallest = sizes[kind, best]
        no_filters = smallest - filter_bytes(stores[kind, best][0])
        notes.append(f"target (compacted store at most the size of gzip -6 of the raw text), "
                     f"default compaction, {TS_KINDS[kind]}: "
                     f"{'met' if smallest <= gz else 'missed'}, smallest compacted store "
                     f"({best}) {smallest / gz:.2f}x gzip -6 ({smallest / gz_ts[kind]:.2f}x "
                     f"gzip -6 of the text with these timestamps; {no_filters / gz:.2f}x gzip "
                     f"-6 without its token filters) and {smallest / sql_bytes:.2f}x the "
                     f"SQLite file")
    for c in compacted:
        if c not in codecs:
            size = sizes["random-ns", c]
            no_filters = size - filter_bytes(stores["random-ns", c][0])
            notes.append(f"{figure_name(c, zstd_default, 'random-ns')}: {size / gz:.2f}x gzip "
                         f"-6 ({'meets' if size <= gz else 'misses'} the target; "
                         f"{no_filters / gz:.2f}x without its token filters)")
    notes.append("timestamps: random-ns = the corpus's entry times, each line's slot in the "
                 "day plus a random fraction of it in nanoseconds (about 31 random bits a "
                 "line that its text does not show; what every earlier run of this benchmark "
                 "measured); line = the same lines, each entry time cut to the precision its "
                 "line shows it at (seconds, milliseconds or microseconds by system), what a "
                 "collector parsing each line's own timestamp stores (equal timestamps "
                 "allowed; the store drops an exact duplicate, same time and line, within a "
                 "block)")

    # -- (c) compaction throughput ---------------------------------------------------
    for codec in compacted:
        _path, rep, wall, cpu = stores["random-ns", codec]
        name = (codec if not codec.startswith("zstd") or codec == "zstd"
                else f"zstd level {codec[4:]}")
        rows.append({"figure": f"compaction throughput, lz4 -> {name}"
                               + (f" ({zstd_params(zstd_default)})" if codec == "zstd" else ""),
                     "result": f"{fmt_rate(text, wall)} ({fmt_rate(text, cpu)} per core)",
                     "detail": f"{rep.chunks_before:,} chunks -> {rep.chunks_after:,}, "
                               f"{rep.blocks_reencoded:,} blocks re-encoded in {wall:.2f} s"})
    # a delete request with a line filter on one stream, applied by compaction
    target = corpus[0]
    word = max(target.lines[len(target.lines) // 3].decode("utf-8", "replace").split(),
               key=len)[:16]
    sel = "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(target.labels.items())) + "}"
    q = sel + " |= " + logql_string(word)
    with chunkstore.open(stores["random-ns", "lz4hc"][0], **STORE_OPTS) as store:
        d = store.delete(q)
        w0, c0 = time.perf_counter(), time.process_time()
        rep = store.compact(codec="lz4hc")
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        want = sum(word.encode() in line for line in target.lines)
        if d.entries != want or rep.entries_removed != want or rep.tombstones_applied != 1:
            raise SystemExit(f"bench_retention: delete {q} reported {d.entries} entries and "
                             f"compaction removed {rep.entries_removed}; the stream has {want}")
    rows.append({"figure": f"apply a delete with a line filter (1 of {len(corpus)} streams)",
                 "result": f"{wall * 1e3:.0f} ms: {fmt_rate(target.raw_bytes, wall)} of that "
                           f"stream ({fmt_rate(target.raw_bytes, cpu)} per core)",
                 "detail": f"{d.entries:,} entries deleted; {rep.blocks_reencoded:,} blocks "
                           f"re-encoded, {rep.blocks_copied:,} copied"})

    # -- (b) retention -----------------------------------------------------------------
    start_ns = corpus_mod.START_NS
    half_days = args.days // 2
    ret = {}
    half_chunks = args.chunks * half_days // args.days
    for days, chunks in ((args.days, args.chunks), (half_days, half_chunks)):
        path = work / f"retention-{days}d"
        b0 = time.perf_counter()
        build_day_store(path, chunks, days, start_ns)
        build_s = time.perf_counter() - b0
        r = time_expiry(path, days, start_ns, min(repeat, days - 1))
        rep = r["report"]
        ret[days] = rep.seconds
        n_seg = len(rep.segments_removed)
        rows.append({"figure": f"retention: expire 1 day of {days}, {r['chunks']:,} chunks "
                               f"in the store",
                     "result": f"{rep.seconds * 1e3:.1f} ms ({rep.seconds * 1e3 / n_seg:.1f} ms "
                               f"per expired segment)",
                     "detail": f"{rep.chunks:,} chunks in {n_seg} segment(s) expired, "
                               f"{rep.seconds * 1e6 / max(1, rep.chunks):.1f} µs per chunk; "
                               f"store built in {build_s:.1f} s"})
        if not args.keep:
            shutil.rmtree(path, ignore_errors=True)
    notes.append(f"retention: expiring one day took {fmt_ratio(ret[args.days], ret[half_days])} "
                 f"as long with {args.days} days in the store as with {half_days} "
                 f"(1.00x = independent of what stays)")

    notes += [
        f"corpus: {len(corpus)} streams, {n_lines:,} lines, {raw / 1e6:.0f} MB of raw text "
        f"({text / 1e6:.0f} MB of line text in {n_chunks:,} chunks as ingested, default "
        f"options: 256 KiB blocks, 1.5 MiB chunks; compaction re-cuts into "
        f"{chunkstore.StoreOptions().compact_block_size / 2**20:g} MiB blocks); ingest "
        f"{fmt_rate(raw, ing_s['random-ns'])} (line timestamps "
        f"{fmt_rate(raw, ing_s['line'])}), SQLite ingest {fmt_rate(raw, sql_s)}",
        "bytes on disk: the whole store directory after close (segments, index log, WAL); "
        "throughput: line text in / wall seconds; per core: / CPU seconds of the process "
        "(compaction runs on one thread)",
        f"whole-store scan: a query for the literal {needle!r} over every stream, line text / "
        f"best seconds: the read cost of each codec",
        f"retention stores: one chunk per stream per 6 hours, three lines each; best of "
        f"{min(repeat, half_days - 1)} expiries (a further day each time)",
        f"kernels {'compiled' if info['accelerated'] is True else 'pure Python'}; "
        f"zstandard {info['zstandard']}; best of {repeat}",
    ]
    harness.report("Retention, deletion and compaction", rows, smoke=not args.record,
                   notes=notes, info=info)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
