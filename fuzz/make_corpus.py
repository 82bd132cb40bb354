"""Write the seed corpus of every fuzz target: small valid files, a few KB each.

``python fuzz/make_corpus.py`` (re)writes ``fuzz/corpus/<target>/``; the
output is deterministic (fixed timestamps and lines), so a regenerated
corpus differs from the committed one only when a format changed.
``--check`` instead verifies that every committed seed is still accepted by
its target's readers (``tests/test_fuzz_quick.py`` does the same).

Seeds, by target:

- ``chunk_reader``: whole chunks in every codec (none, lz4, lz4-hc, zstd),
  with structured metadata, out-of-order and int64-extreme timestamps, empty
  and binary lines, several blocks; a stored block; raw blocks (with and
  without metadata, and the empty block);
- ``wal_reader``: WAL segments (docs/FORMAT.md section 5): the worked
  example, several streams and records, metadata;
- ``index_reader``: index logs with every record type (STREAM, CHUNK, DROP,
  TOMBSTONE, TOMBSTONE_DONE);
- ``logql_parser``: queries covering the grammar (selectors, every line
  filter, parsers, label filters, formatters, metric queries, binary
  operators).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fuzzlib  # noqa: E402

from chunkstore import _block_py as block  # noqa: E402  (pure twin: same bytes)
from chunkstore import index_log, wal, wal_records  # noqa: E402
from chunkstore._kernels import xxh64  # noqa: E402
from chunkstore.chunkfile_format import encode_chunk  # noqa: E402
from chunkstore._tokens_py import block_filter as _block_filter  # noqa: E402
from chunkstore.tokenfilter import BITS_PER_KEY, PREFIX_LEN  # noqa: E402


def block_filter(raw: bytes) -> bytes:
    """A block's token filter as the store writes it (chunk version 2)."""
    return _block_filter(raw, BITS_PER_KEY, PREFIX_LEN)

T0 = 1_704_067_200_000_000_000  # 2024-01-01T00:00:00Z
I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1


def _canonical(pairs: dict[str, str]) -> bytes:
    out = b""
    for k in sorted(pairs):
        out += k.encode() + b"\xff" + pairs[k].encode() + b"\xff"
    return out


def _stored(entries, codec: int) -> tuple[bytes, int, int, int, int, bytes]:
    ts = [e[0] for e in entries]
    lines = [e[1] for e in entries]
    metas = [e[2] if len(e) > 2 else None for e in entries]
    raw = block.encode_entries(ts, lines, metas)
    stored = block.compress_block(raw, codec)
    return (stored, len(entries), min(ts), max(ts), sum(len(x) for x in lines),
            block_filter(raw))


def _chunk(labels: dict[str, str], blocks: list) -> bytes:
    canonical = _canonical(labels)
    data, _meta = encode_chunk(xxh64(canonical), canonical, blocks)
    return data


def chunk_reader() -> dict[str, bytes]:
    logfmt = [(T0 + i * 1_000_000_000, f"level={'info' if i % 3 else 'error'} msg=\"req {i}\" "
               f"path=/api/v1/users/{i * 37} status={200 + (i % 5) * 100}".encode())
              for i in range(12)]
    meta = [(T0 + i, f"GET /x/{i} 200".encode(), ((b"trace_id", f"{i:08x}".encode()),))
            for i in range(6)]
    ooo = [(T0 + 5, b"late"), (T0 + 1, b"early"), (T0 + 5, b"late twin"), (T0 + 3, b"")]
    extremes = [(I64_MIN, b"min"), (-1, b"\x00\xff\n binary\r\n"), (0, b""), (I64_MAX, b"max")]
    out = {
        "chunk-none.bin": _chunk({"app": "api"}, [_stored(logfmt[:4], block.CODEC_NONE)]),
        "chunk-lz4-two-blocks.bin": _chunk(
            {"app": "api", "env": "prod"},
            [_stored(logfmt[:6], block.CODEC_LZ4), _stored(logfmt[6:], block.CODEC_LZ4)]),
        "chunk-lz4hc-metadata.bin": _chunk({"app": "web"}, [_stored(meta, block.CODEC_LZ4HC)]),
        "chunk-out-of-order.bin": _chunk({"job": "x"}, [_stored(ooo, block.CODEC_LZ4),
                                                        _stored(ooo[:2], block.CODEC_NONE)]),
        "chunk-int64-extremes.bin": _chunk({"a": "b"}, [_stored(extremes, block.CODEC_NONE)]),
        "stored-lz4.bin": _stored(logfmt, block.CODEC_LZ4)[0],
        "raw-logfmt.bin": block.encode_entries([e[0] for e in logfmt], [e[1] for e in logfmt]),
        "raw-metadata.bin": block.encode_entries([e[0] for e in meta], [e[1] for e in meta],
                                                 [e[2] for e in meta]),
        "raw-empty.bin": block.encode_entries([], []),
    }
    try:
        out["chunk-zstd.bin"] = _chunk({"app": "db"}, [_stored(logfmt, block.CODEC_ZSTD)])
    except ValueError:  # zstandard missing: the seed is optional
        pass
    return out


def _segment(seq: int, records: list[bytes]) -> bytes:
    return wal.segment_header(seq) + b"".join(records)


def wal_reader() -> dict[str, bytes]:
    api = _canonical({"app": "api"})
    web = _canonical({"app": "web", "env": "prod"})
    raw1 = block.encode_entries([1000], [b"hi"])
    many = block.encode_entries([T0 + i for i in range(8)],
                                [f"line {i}".encode() for i in range(8)])
    meta = block.encode_entries([T0, T0 - 5], [b"a", b""], [None, ((b"k", b"v"),)])
    return {
        "wal-format-example.wal": _segment(1, [
            wal_records.encode_stream(1, xxh64(api), api),
            wal_records.encode_entries(1, 1, raw1)]),
        "wal-two-streams.wal": _segment(1, [
            wal_records.encode_stream(1, xxh64(api), api),
            wal_records.encode_stream(2, xxh64(web), web),
            wal_records.encode_entries(1, 1, many),
            wal_records.encode_entries(2, 2, meta),
            wal_records.encode_entries(3, 1, raw1)]),
        "wal-entries-only.wal": _segment(1, [wal_records.encode_entries(7, 3, many)]),
        "wal-empty.wal": _segment(1, []),
    }


def index_reader() -> dict[str, bytes]:
    api = _canonical({"app": "api"})
    web = _canonical({"app": "web"})
    day = "segments/2024-01-01/00000001.seg"
    stream = (index_log.STREAM, [1, xxh64(api), api])
    chunk = (index_log.CHUNK, [1, 1, day, 16, 420, T0, T0 + 99, 10, 200, 420, 5])
    records = {
        "index-empty.log": [],
        "index-one-chunk.log": [stream, chunk],
        "index-every-record.log": [
            stream,
            (index_log.STREAM, [2, xxh64(web), web]),
            chunk,
            (index_log.CHUNK, [2, 2, day, 436, 300, T0 + 5, T0 + 50, 4, 80, 300, 9]),
            (index_log.CHUNK, [3, 1, "segments/2024-01-02/00000001.seg", 16, 500,
                               T0 + 86400 * 10**9, T0 + 86401 * 10**9, 12, 300, 500, 14]),
            (index_log.DROP, [2]),
            (index_log.TOMBSTONE, [1, '{app="api"} |= "secret"', T0, T0 + 10**9, T0 + 7]),
            (index_log.TOMBSTONE, [2, '{app="web"}', I64_MIN, I64_MAX, T0 + 8]),
            (index_log.TOMBSTONE_DONE, [2]),
        ],
    }
    header = index_log._header_bytes()
    return {name: header + b"".join(index_log.frame(t, v) for t, v in recs)
            for name, recs in records.items()}


QUERIES = [
    '{app="api"}',
    '{app="api", env=~"prod|dev", team!="x", host!~"db.*"}',
    '{app="api"} |= "error" != "timeout" |~ "(?i)fail(ed|ure)" !~ "debug"',
    '{app="api"} |> "GET <_> 200" !> "<_> health"',
    '{app="api"} |= "a" or "b" != "c" or "d"',
    '{app="api"} |= ip("10.0.0.0/8")',
    '{app="api"} | json | status >= 500 and duration > 1s or bytes < 10KB',
    '{app="api"} | json first="x.y", second="z[0]" | line_format "{{.first}}"',
    '{app="api"} | logfmt --strict --keep-empty | level="error"',
    '{app="api"} | regexp "(?P<method>\\\\S+) (?P<path>\\\\S+)" | method=~"GET|POST"',
    '{app="api"} | pattern "<ip> - - [<_>] \\"<method> <path> <_>\\" <status>"',
    '{app="api"} | unpack | __error__="" | drop __error__, __error_details__',
    '{app="api"} | label_format svc="{{ .app | upper }}", x=app | keep svc, level',
    '{app="api"} | decolorize | line_format `{{ printf "%s %d" .a 3 }}`',
    '{app="api"} | json | addr = ip("192.168.0.0/16")',
    'count_over_time({app="api"} |= "error" [5m])',
    'sum by (level) (rate({app="api"} | logfmt [1m] offset 1h))',
    'topk(3, sum without (pod) (bytes_over_time({app="api"}[10m])))',
    'quantile_over_time(0.99, {app="api"} | json | unwrap duration(latency) [5m]) by (path)',
    'sum(rate({app="a"}[1m])) / ignoring(x) group_left sum(rate({app="b"}[1m])) > bool 0.5',
    'avg_over_time({app="api"} | logfmt | unwrap bytes(size) | __error__="" [1h])',
    'label_replace(rate({app="api"}[1m]), "dst", "$1", "src", "(.*)")',
    'vector(1) + 2 * 3 ^ 2 - -1',
    'absent_over_time({app="api"}[5m])',
    'sum by (app) (count_over_time({app=~".+"} [1m])) unless on (app) vector(0)',
    '{app="api"} # a comment\n |= "x"',
    '{app="\\u00e9\\"quoted\\\\"} |= `raw \\ string`',
    'sort_desc(sum(rate({app="api"}[5m])) by (level))',
]


def logql_parser() -> dict[str, bytes]:
    return {f"query-{i:02d}.logql": q.encode() for i, q in enumerate(QUERIES)}


BUILDERS = {"chunk_reader": chunk_reader, "wal_reader": wal_reader,
            "index_reader": index_reader, "logql_parser": logql_parser}


def write() -> None:
    for name, build in BUILDERS.items():
        d = os.path.join(fuzzlib.CORPUS_DIR, name)
        # seeds named v1-* are chunks in an older format version, written by an
        # earlier version of this script: kept, never regenerated
        kept = {}
        if os.path.isdir(d):
            for fname in os.listdir(d):
                if fname.startswith("v1-"):
                    with open(os.path.join(d, fname), "rb") as f:
                        kept[fname] = f.read()
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        for fname, data in kept.items():
            with open(os.path.join(d, fname), "wb") as f:
                f.write(data)
        files = build()
        for fname, data in files.items():
            with open(os.path.join(d, fname), "wb") as f:
                f.write(data)
        print(f"{name}: {len(files)} seeds, {sum(map(len, files.values()))} bytes")


def check() -> int:
    """Every committed seed must be accepted by its target; returns how many are not."""
    bad = 0
    for name in BUILDERS:
        target = fuzzlib.load_target(name)
        d = os.path.join(fuzzlib.CORPUS_DIR, name)
        for fname in sorted(os.listdir(d)):
            with open(os.path.join(d, fname), "rb") as f:
                if not target.check(f.read()):
                    print(f"{name}/{fname}: refused by the reader", file=sys.stderr)
                    bad += 1
    return bad


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="verify the committed corpus instead")
    if ap.parse_args().check:
        sys.exit(1 if check() else 0)
    write()
