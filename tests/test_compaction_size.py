"""What compaction does to make cold data small, and that it stays the same format.

* ``compaction.compress_block``: zstd at a level listed in
  ``COMPACT_ZSTD_PARAMS`` is compressed with those parameters and framed
  here; the stored block round-trips through both kernel backends, its frame
  declares ``raw_len``, the framing is byte-for-byte the kernel's (with the
  level's own parameters as overrides the two agree exactly), and every
  other codec or level is the kernel's own result;
* the tuned parameters make log text smaller than the plain level;
* the token filters of the blocks compaction builds have
  ``COMPACT_FILTER_BITS_PER_KEY`` bits per key: the same format (readers size
  them by length and ``k``), a bounded false-positive rate, and needle
  queries over a compacted store still return exactly the matching lines;
* ``benchmarks/bench_retention.py``'s per-column accounting covers every
  byte of a raw block, its same-information export is exactly
  ``<ts_ns> <line>\\n`` per entry, and its settings say what they change.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from file_modules import load
from hypothesis import given
from hypothesis import strategies as st

import chunkstore
from chunkstore import _block_py, _kernels, compaction
from chunkstore import corpus as app_corpus
from chunkstore.tokenfilter import PREFIX_LEN

zstandard = pytest.importorskip("zstandard")  # the chunkstore[zstd] extra

ZSTD = _kernels.block.CODEC_ZSTD
LEVEL = compaction.COMPACT_LEVELS[ZSTD]
BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _app_block(n_lines: int, seed: int = 0) -> bytes:
    """A raw block of ``n_lines`` synthetic app log lines (several line kinds)."""
    rows = list(app_corpus.generate(seed=seed, n_lines=n_lines))
    rows.sort(key=lambda r: r[1])
    return _kernels.block.encode_entries([r[1] for r in rows],
                                         [r[2].encode() for r in rows])


entries = st.lists(st.tuples(st.integers(-(2**63), 2**63 - 1),
                             st.binary(max_size=80) | st.text(max_size=60).map(str.encode)),
                   max_size=60)


@given(entries, st.sampled_from([1, 3, 9, 16]))
def test_tuned_zstd_blocks_round_trip_through_both_backends(items, level):
    raw = _kernels.block.encode_entries([t for t, _ in items], [line for _, line in items])
    stored = compaction.compress_block(raw, ZSTD, level)
    assert _kernels.block.read_block_header(stored) == (ZSTD, len(raw), len(stored) - 13)
    assert _kernels.block.decompress_block(stored) == raw
    assert _block_py.decompress_block(stored) == raw
    payload = stored[9:-4]
    assert zstandard.frame_content_size(payload) == len(raw)  # FORMAT.md section 3


def test_the_default_level_is_tuned_and_decodes():
    assert LEVEL in compaction.COMPACT_ZSTD_PARAMS
    raw = _app_block(3000)
    stored = compaction.compress_block(raw, ZSTD, LEVEL)
    assert stored != _kernels.block.compress_block(raw, ZSTD, LEVEL)
    assert _kernels.block.decompress_block(stored) == raw


@pytest.mark.parametrize("level", [1, 9, 16])
@pytest.mark.parametrize("n_lines", [1, 200, 20_000])
def test_framing_is_the_kernels_byte_for_byte(monkeypatch, level, n_lines):
    """With the level's own parameters as the overrides, both paths give the same bytes."""
    raw = _app_block(n_lines)
    own = zstandard.ZstdCompressionParameters.from_level(level, source_size=len(raw))
    monkeypatch.setitem(compaction.COMPACT_ZSTD_PARAMS, level, {"min_match": own.min_match})
    assert compaction.compress_block(raw, ZSTD, level) == \
        _kernels.block.compress_block(raw, ZSTD, level)


@pytest.mark.parametrize("codec,level", [(_kernels.block.CODEC_LZ4HC, 9),
                                         (_kernels.block.CODEC_LZ4, 0),
                                         (_kernels.block.CODEC_NONE, 0), (ZSTD, 2)])
def test_other_codecs_and_unlisted_levels_are_the_kernels_result(codec, level):
    assert level not in compaction.COMPACT_ZSTD_PARAMS or codec != ZSTD
    raw = _app_block(500)
    assert compaction.compress_block(raw, codec, level) == \
        _kernels.block.compress_block(raw, codec, level)


@pytest.mark.parametrize("mod", [_kernels.block, _block_py], ids=["kernel", "py"])
def test_zstd_params_are_the_same_bytes_in_both_twins(mod):
    """The tuned frame is made by the block kernel and its twin alike."""
    raw = _app_block(2000)
    params = compaction.COMPACT_ZSTD_PARAMS[LEVEL]
    assert mod.compress_block(raw, ZSTD, LEVEL, zstd_params=params) == \
        compaction.compress_block(raw, ZSTD, LEVEL)
    assert mod.compress_block(raw, ZSTD, LEVEL, zstd_params=None) == \
        mod.compress_block(raw, ZSTD, LEVEL)


def test_tuned_parameters_make_log_text_smaller_than_the_plain_level():
    raw = _app_block(40_000)
    tuned = compaction.compress_block(raw, ZSTD, LEVEL)
    plain = _kernels.block.compress_block(raw, ZSTD, LEVEL)
    assert len(tuned) < len(plain)


def test_compacted_filters_have_the_configured_bits_per_key_and_few_false_positives():
    raw = _app_block(20_000)
    cold = compaction.block_filter(raw)
    assert cold == _kernels.tokens.block_filter(raw, compaction.COMPACT_FILTER_BITS_PER_KEY,
                                                PREFIX_LEN)
    hot = _kernels.tokens.block_filter(raw, 10, PREFIX_LEN)
    assert len(cold) < len(hot)
    # a filter the readers accept: k in 1..16, within the size limit of FORMAT.md section 4
    assert 1 <= cold[0] <= 16 and 9 <= len(cold) <= len(raw) // 4 + 9
    rng = random.Random(7)
    probes = 20_000
    fp = sum(_kernels.tokens.may_contain(cold, (rng.getrandbits(64),)) for _ in range(probes))
    # 8 bits per key: about 2.2% for one key (0.8% at 10 bits); a loose bound
    assert fp / probes < 0.04


def test_a_compacted_store_uses_the_cold_filters_and_answers_needles_exactly(tmp_path):
    opts = dict(block_size=4096, compact_block_size=1 << 20, maintenance_interval=0,
                fsync="never")
    rows = list(app_corpus.generate(seed=3, n_lines=6000))
    with chunkstore.open(tmp_path / "s", **opts) as store:
        for a in range(0, len(rows), 1000):
            store.push([(labels, [(ts, line)]) for labels, ts, line, _m in rows[a:a + 1000]])
            store._seal(list(store.heads.values()))  # small chunks for compaction to merge
        store.compact(codec="zstd")
        checked = 0
        for ref in store.index.chunks.values():
            meta = store.chunk_meta(ref)
            reader = store.segment_reader(ref.segment)
            for bm, tf in zip(meta.blocks, reader.read_filters(meta), strict=True):
                assert bm.codec == ZSTD
                assert tf == compaction.block_filter(reader.read_raw_block(ref.offset, bm))
                checked += 1
        assert checked
        # needles present and absent: filters only ever skip blocks without a match
        lines = [line for _l, _t, line, _m in rows]
        for needle in [lines[17].split()[-1], lines[4000].split()[-1], "req-ffffffff",
                       "no-such-token-here"]:
            got = sum(1 for _ in store.query('{app=~".+"} |= "' + needle + '"'))
            assert got == sum(needle in line for line in lines), needle
        assert store.verify().ok


def _load_bench():
    return load("bench_retention_t", BENCH / "bench_retention.py", extra_path=BENCH)


@given(st.lists(st.tuples(st.integers(-(2**63), 2**63 - 1), st.binary(max_size=300),
                          st.none() | st.just(((b"trace", b"abc"),))), max_size=200))
def test_bench_raw_columns_cover_every_byte_of_a_raw_block(items):
    bench = _BENCH
    ts = [t for t, _l, _m in items]
    lines = [line for _t, line, _m in items]
    metas = [m for _t, _l, m in items]
    raw = _kernels.block.encode_entries(ts, lines, metas if any(metas) else None)
    cols = bench.raw_columns(raw)
    header = len(raw) - sum(map(len, cols.values()))
    assert 3 <= header <= 30
    assert cols["text"] == b"".join(lines)
    assert len(cols["len"]) == sum(max(1, -(-len(x).bit_length() // 7)) for x in lines)
    # the ts column is exactly what the same timestamps with empty lines give
    assert cols["ts"] in _kernels.block.encode_entries(ts, [b""] * len(ts))
    assert raw.endswith(cols["ts"] + cols["len"] + cols["meta"] + cols["text"])


_BENCH = _load_bench()


def test_bench_same_information_export_is_a_timestamp_and_the_line(tmp_path):
    """The same-information gzip baseline reads '<ts_ns> <line>\\n' per entry, in raw-text order."""
    from types import SimpleNamespace

    corpus = [SimpleNamespace(ts=[5, -3, 1_700_000_000_123_456_789], lines=[b"a b", b"", b"x"]),
              SimpleNamespace(ts=[], lines=[]),
              SimpleNamespace(ts=[7, 7, 7], lines=[b"dup", b"dup", b"other"])]
    path = tmp_path / "export.log"
    n = _BENCH.export_with_ts(corpus, path)
    want = b"5 a b\n-3 \n1700000000123456789 x\n7 dup\n7 dup\n7 other\n"
    assert path.read_bytes() == want and n == len(want)
    assert _BENCH.duplicate_entries(corpus) == 1


def test_bench_settings_name_what_they_change():
    Setting = _BENCH.Setting
    assert Setting("zstd").is_default and not Setting("zstd", level=16).is_default
    assert "not the default" in Setting("lz4hc", block_mib=8).title()
    assert "compact_block_size 8 MiB" in Setting("lz4hc", block_mib=8).title()
    assert Setting("lz4hc").title().startswith('chunkstore after compact(codec="lz4hc"), level 9')
    assert Setting("zstd", level=16).short() == "zstd level 16"
