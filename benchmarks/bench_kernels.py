"""Storage-core figures of the block kernels, one core, against their ceilings and baselines.

On a loghub corpus (default 200 MB, 32 streams; see ``benchmarks/corpus.py``),
with the kernels of ``chunkstore._kernels`` (compiled when built, else the
pure-Python twins; the report says which):

* encode + compress: ``block.encode_entries`` + ``block.compress_block``
  (lz4) per block of about 256 KiB of raw entries, MB/s of line text;
  ceiling: python-lz4 compressing the same raw blocks;
* decompress alone and decompress + scan (``scan.scan_block`` with a
  ``scan.Filter``) for a rare literal, a frequent literal and a
  case-insensitive literal, and decompress + ``scan.count_raw`` into
  one-minute buckets, GB/s of line text; ceiling: python-lz4 decompress;
  baselines: ``grep -F -c`` over the same raw text in the page cache and the
  plain-Python ``needle in line`` loop;
* compression ratio (line text / stored bytes) for lz4 and lz4-hc at 64 KiB,
  256 KiB and 1 MiB blocks, with gzip -6 of the raw text for reference;
* fingerprints per second (``hashing.fingerprint_canonical``) over canonical
  label bytes, with ``zlib.crc32`` over the same bytes as the call floor.

Every match count is checked against grep and the Python loop; a mismatch
fails the run.  ``--smoke`` runs on 2 MB and records nothing.

    python benchmarks/bench_kernels.py [--size 200] [--streams 32] [--smoke]
"""

from __future__ import annotations

import random
import re
import sys
import time
import zlib
from array import array
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus as corpus_mod  # noqa: E402
import harness  # noqa: E402
from harness import fmt_rate, fmt_ratio  # noqa: E402

LZ4, LZ4HC = 1, 2
TS_MIN, TS_MAX = -(1 << 63), 1 << 63
KIB = 1024


def split_blocks(corpus, block_bytes: int) -> list[tuple[list[int], list[bytes]]]:
    """Each stream cut into runs of entries whose raw encoding is about ``block_bytes``.

    The raw size is estimated as line bytes plus 8 bytes of columns per entry
    (timestamp delta and length varints), as a head block would count it.
    """
    out = []
    for s in corpus:
        ts, lines = s.ts, s.lines
        a, size = 0, 0
        for i, line in enumerate(lines):
            size += len(line) + 8
            if size >= block_bytes:
                out.append((ts[a:i + 1], lines[a:i + 1]))
                a, size = i + 1, 0
        if a < len(lines):
            out.append((ts[a:], lines[a:]))
    return out


def pick_rare_needle(text: bytes, lines_sample: list[bytes], seed: int) -> bytes:
    """A re-drawn token (hex id or long digit run) found in 1..10 lines of the corpus."""
    rng = random.Random(seed)
    token = re.compile(rb"(?=[0-9a-f]*[a-f])[0-9a-f]{12,}|\d{11,}")
    for _ in range(200):
        toks = token.findall(rng.choice(lines_sample))
        if toks:
            t = rng.choice(toks)[:16]
            if 1 <= text.count(t) <= 10:
                return t
    return b"connection reset by peer"  # fallback: a short literal, still rare


def main(argv: list[str] | None = None) -> int:
    p = harness.make_parser(__doc__.split("\n\n")[0], default_size_mb=200, smoke_size_mb=2)
    p.add_argument("--streams", type=int, default=32)
    args = harness.parse_args(p, argv)
    try:
        from chunkstore import _kernels as K

        block, scan, hashing = K.block, K.scan, K.hashing
    except Exception as e:  # noqa: BLE001
        print(f"bench_kernels: cannot import chunkstore._kernels: {e}", file=sys.stderr)
        return 2
    info = harness.machine_info()
    print(harness.machine_line(info))
    if not K.ACCELERATED:
        print("bench_kernels: WARNING: the compiled kernels are not built; measuring the "
              "pure-Python twins (python setup.py build_ext --inplace)", file=sys.stderr)
    streams = 8 if args.smoke else args.streams
    repeat = args.repeat

    t0 = time.perf_counter()
    corpus = corpus_mod.build_corpus(args.size_bytes, streams=streams, seed=args.seed)
    all_lines = [ln for s in corpus for ln in s.lines]
    text_bytes = sum(map(len, all_lines))
    print(f"corpus: {len(corpus)} streams, {len(all_lines):,} lines, "
          f"{text_bytes / 1e6:.1f} MB of line text ({time.perf_counter() - t0:.1f}s)")

    rows: list[dict] = []
    notes: list[str] = []

    # -- encode + compress (256 KiB) ----------------------------------------
    groups = split_blocks(corpus, 256 * KIB)
    enc_s, raws = harness.best_of(
        lambda: [block.encode_entries(ts, lines, None) for ts, lines in groups], repeat=repeat)
    comp_s, stored = harness.best_of(lambda: [block.compress_block(r, LZ4) for r in raws],
                                     repeat=repeat)
    both_s, _ = harness.best_of(
        lambda: [block.compress_block(block.encode_entries(ts, lines, None), LZ4)
                 for ts, lines in groups], repeat=repeat)
    lz4_c, lz4_d = harness.lz4_ceiling(raws, repeat=repeat)
    raw_bytes = sum(map(len, raws))
    stored_bytes = sum(map(len, stored))
    print(f"{len(raws)} blocks, mean raw {raw_bytes / len(raws) / KIB:.0f} KiB")
    rows.append({"figure": "encode_entries alone", "result": fmt_rate(text_bytes, enc_s),
                 "vs ceiling": "", "vs grep -F": "", "vs Python": "", "lines matched": ""})
    rows.append({"figure": "compress_block lz4 alone", "result": fmt_rate(text_bytes, comp_s),
                 "vs ceiling": f"{fmt_ratio(lz4_c, comp_s)} of python-lz4 compress "
                               f"({fmt_rate(text_bytes, lz4_c)})"})
    rows.append({"figure": "encode + compress lz4, 256 KiB blocks",
                 "result": fmt_rate(text_bytes, both_s),
                 "vs ceiling": f"{fmt_ratio(lz4_c, both_s)} of python-lz4 compress"})

    # -- decompress, scan ----------------------------------------------------
    # Measured as lz4_ceiling measures python-lz4: each output dropped before the
    # next block (keeping them all alive writes into fresh memory every block).
    dec_s, _ = harness.best_of(lambda: sum(len(block.decompress_block(s)) for s in stored),
                               repeat=repeat)
    rows.append({"figure": "decompress_block alone", "result": fmt_rate(text_bytes, dec_s),
                 "vs ceiling": f"{fmt_ratio(lz4_d, dec_s)} of python-lz4 decompress "
                               f"({fmt_rate(text_bytes, lz4_d)})"})

    joined = b"\n".join(all_lines)
    rare = pick_rare_needle(joined, all_lines[:: max(1, len(all_lines) // 5000)], args.seed)
    del joined
    needles = [("rare literal", rare, False), ("frequent literal", b"INFO", False),
               ("case-insensitive literal", b"error", True)]
    raw_path = harness.work_dir("bench_kernels") / "corpus.log"
    corpus_mod.write_raw(corpus, raw_path)
    try:
        for label, needle, ci in needles:
            flt = scan.Filter([((needle,), False, ci)])

            def run_scan(flt=flt):
                n = 0
                for s in stored:
                    n += len(scan.scan_block(s, flt, TS_MIN, TS_MAX))
                return n

            s_s, count = harness.best_of(run_scan, repeat=repeat)
            g_s, g_count = harness.grep_count(raw_path, needle, ignore_case=ci, repeat=repeat)
            if ci:
                py_s, py_count = harness.python_in_loop([ln.lower() for ln in all_lines], needle,
                                                        repeat=1)
                py_note = " (on pre-lowered lines)"
            else:
                py_s, py_count = harness.python_in_loop(all_lines, needle, repeat=repeat)
                py_note = ""
            if not count == g_count == py_count:
                print(f"bench_kernels: MISMATCH for {needle!r}: scan {count}, grep {g_count}, "
                      f"python {py_count}", file=sys.stderr)
                return 1
            rows.append({
                "figure": f"decompress + scan_block, {label} {needle.decode()!r}"
                          + (" -i" if ci else ""),
                "result": fmt_rate(text_bytes, s_s),
                "vs ceiling": f"{fmt_ratio(lz4_d, s_s)} of python-lz4 decompress",
                "vs grep -F": f"{fmt_ratio(g_s, s_s)} grep -F{' -i' if ci else ''} "
                              f"({fmt_rate(text_bytes, g_s)})",
                "vs Python": f"{fmt_ratio(py_s, s_s)} `in` loop{py_note} "
                             f"({fmt_rate(text_bytes, py_s)})",
                "lines matched": count,
            })

        # count_raw: count_over_time into one-minute buckets, no per-line objects.
        origin = min(s.ts[0] for s in corpus if s.ts) - 1
        span = max(s.ts[-1] for s in corpus if s.ts) - origin
        width = 60 * 10**9
        n_buckets = span // width + 1
        flt = scan.Filter([((b"INFO",), False, False)])

        def run_count():
            counts = array("q", bytes(8 * n_buckets))
            sums = array("q", bytes(8 * n_buckets))
            n = 0
            for s in stored:
                n += scan.count_raw(block.decompress_block(s), flt, TS_MIN, TS_MAX, origin,
                                    width, counts, sums)
            return n

        c_s, c_count = harness.best_of(run_count, repeat=repeat)
        freq_row = next(r for r in rows if "frequent" in r["figure"])
        if c_count != freq_row["lines matched"]:
            print(f"bench_kernels: MISMATCH count_raw {c_count} vs scan "
                  f"{freq_row['lines matched']}", file=sys.stderr)
            return 1
        rows.append({"figure": "decompress + count_raw (1 min buckets), 'INFO'",
                     "result": fmt_rate(text_bytes, c_s),
                     "vs ceiling": f"{fmt_ratio(lz4_d, c_s)} of python-lz4 decompress",
                     "lines matched": c_count})
        gz = harness.gzip_size(raw_path, 6)
        raw_file_bytes = raw_path.stat().st_size
    finally:
        raw_path.unlink(missing_ok=True)

    # -- compression ratios --------------------------------------------------
    import lz4.block as lz4b

    for bs in (64 * KIB, 256 * KIB, 1024 * KIB):
        cut = split_blocks(corpus, bs)
        blocks = [block.encode_entries(ts, lines, None) for ts, lines in cut]
        text_only = sum(len(lz4b.compress(b"".join(lines), store_size=False)) for _, lines in cut)
        out = {}
        for name, codec in (("lz4", LZ4), ("lz4-hc", LZ4HC)):
            t = time.perf_counter()
            size = sum(len(block.compress_block(r, codec)) for r in blocks)
            out[name] = (size, time.perf_counter() - t)
        rows.append({
            "figure": f"ratio at {bs // KIB} KiB blocks",
            "result": f"lz4 {text_bytes / out['lz4'][0]:.2f}x, "
                      f"lz4-hc {text_bytes / out['lz4-hc'][0]:.2f}x "
                      f"(hc compress {fmt_rate(text_bytes, out['lz4-hc'][1])})",
            "vs ceiling": f"python-lz4 on the line text alone {text_bytes / text_only:.2f}x; "
                          f"gzip -6 of the raw file {raw_file_bytes / gz:.2f}x",
        })
    notes.append(f"ratios are line text / stored bytes (13-byte frame and the timestamp and "
                 f"length columns included: corpus timestamps have nanosecond jitter); "
                 f"256 KiB lz4 stored {stored_bytes / 1e6:.1f} MB for "
                 f"{text_bytes / 1e6:.1f} MB of text")

    # -- fingerprints --------------------------------------------------------
    n_fp = 20_000 if args.smoke else 500_000
    canon = list(harness.label_sets(n_fp, seed=args.seed))
    fp = hashing.fingerprint_canonical

    def run_fp():
        for c in canon:
            fp(c)

    def run_crc():
        for c in canon:
            zlib.crc32(c)

    f_s, _ = harness.best_of(run_fp, repeat=repeat)
    z_s, _ = harness.best_of(run_crc, repeat=repeat)
    mean_len = sum(map(len, canon)) / len(canon)
    rows.append({"figure": f"fingerprint_canonical ({mean_len:.0f}-byte label sets)",
                 "result": f"{n_fp / f_s / 1e6:.2f} M/s ({f_s / n_fp * 1e9:.0f} ns)",
                 "vs ceiling": f"{fmt_ratio(z_s, f_s)} of zlib.crc32 call "
                               f"({z_s / n_fp * 1e9:.0f} ns)"})

    notes.insert(0, f"{len(corpus)} streams, {len(all_lines):,} lines, {text_bytes / 1e6:.0f} MB "
                    f"of loghub-derived line text; one core; kernels "
                    f"{'compiled' if K.ACCELERATED else 'pure Python'}; best of {repeat}")
    notes.append(f"rare needle {rare.decode()!r}; GB/s are of line text (newlines excluded)")
    harness.report("Block kernels", rows, smoke=not args.record, notes=notes, info=info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
