"""Quick mode of the reader fuzzers (issue 9, suite 5), and what they found.

Each target in ``fuzz/`` (chunk reader, WAL reader, index reader, LogQL
parser) runs a few hundred Hypothesis examples drawn from its seed corpus
plus mutations (``fuzz/fuzzlib.py``); the targets compare the compiled
kernels with their pure-Python twins on every input, so both backends run
in either CI pass.  ``CHUNKSTORE_FUZZ_EXAMPLES`` changes the count; the long
mode is ``python fuzz/fuzz_<target>.py`` (see docs/FUZZING.md).
"""

from __future__ import annotations

import os
import sys

import pytest
from hypothesis import HealthCheck, given, settings

import chunkstore
from chunkstore import index_log
from chunkstore.errors import CorruptionError

FUZZ_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fuzz")
sys.path.insert(0, FUZZ_DIR)

import fuzzlib  # noqa: E402

EXAMPLES = int(os.environ.get("CHUNKSTORE_FUZZ_EXAMPLES", "200"))


@pytest.mark.parametrize("name", fuzzlib.TARGETS)
def test_seed_corpus_is_valid_and_accepted(name):
    target = fuzzlib.load_target(name)
    seeds = fuzzlib.load_corpus(name)
    assert len(seeds) >= 3 and all(len(s) <= 4096 for s in seeds)
    for data in seeds:
        assert target.check(data), f"{name}: a seed is refused by its reader"


@pytest.mark.parametrize("name", fuzzlib.TARGETS)
def test_fuzz_target_quick(name):
    target = fuzzlib.load_target(name)

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(fuzzlib.inputs(target))
    def one_input(data):
        target.check(data)

    one_input()


def test_fixups_repair_exactly_the_checksums():
    """A mutated seed with its checksums recomputed reaches the parsing behind them."""
    for name in ("chunk_reader", "wal_reader", "index_reader"):
        target = fuzzlib.load_target(name)
        d = os.path.join(fuzzlib.CORPUS_DIR, name)
        for fname in os.listdir(d):
            if fname.startswith("raw-"):  # raw blocks carry no checksum
                continue
            with open(os.path.join(d, fname), "rb") as f:
                data = f.read()
            assert target.fixup(data) == data, fname  # nothing to fix in a valid file
            broken = bytearray(data)
            broken[len(data) // 2] ^= 0xFF
            assert target.check(bytes(broken)) is False, fname
            if name != "wal_reader":  # a WAL record's length may change: nothing to fix
                assert target.check(target.fixup(bytes(broken))) in (True, False)


# ---------------------------------------------------------------------------
# regressions found by the fuzzers


def _store_with_chunk_record(path, **changes) -> None:
    """A store with one sealed chunk, plus a second CHUNK record with ``changes``."""
    with chunkstore.open(path, maintenance_interval=0) as s:
        s.append({"app": "a"}, "line", ts=10)
    records, _end, _problem = index_log.read_index_log(os.path.join(path, "index.log"))
    value = list(next(r.value for r in records if r.type == index_log.CHUNK))
    fields = ["chunk_id", "stream_id", "segment", "offset", "length", "min_ts", "max_ts",
              "n_entries", "text_bytes", "stored_bytes", "max_lsn"]
    value[0] = 99
    for k, v in changes.items():
        value[fields.index(k)] = v
    with open(os.path.join(path, "index.log"), "ab") as f:
        f.write(index_log.frame(index_log.CHUNK, value))


@pytest.mark.parametrize("segment", ["segments/\0/00000001.seg", "../outside.seg",
                                     "/etc/passwd", 7, "", "segments", "segments/2024-01-01/",
                                     "segments/2024-01-01/00000001.txt"])
def test_regression_index_chunk_naming_a_segment_outside_the_store_is_reported(
        tmp_path, segment):
    """A CHUNK record (valid checksum) naming ``segm\\0ents/...`` made ``verify()`` raise
    ``ValueError: embedded null byte``; a ``..`` name would let retention unlink a
    file outside the store.  Such a record is now reported and never applied."""
    path = tmp_path / "s"
    _store_with_chunk_record(path, segment=segment)
    with chunkstore.open(path, read_only=True) as r:
        assert 99 not in r.index.chunks
        assert any(isinstance(p, CorruptionError) and "segment" in str(p)
                   for p in r.replay_report.problems)
        assert [e.raw for e in r.query('{app="a"}')] == [b"line"]
        assert r.verify().ok


@pytest.mark.parametrize("segment", ["", "segments/2024-01-01"])
def test_regression_index_chunk_naming_a_directory_is_reported_not_read(tmp_path, segment):
    """A CHUNK record naming ``""`` (the store directory itself) passed the name
    check, and the next ``compact()`` died opening it (``IsADirectoryError``).
    Found by the quick fuzz run.  Only ``segments/<day>/<n>.seg`` is accepted now
    (and ``""`` with length 0: a sealed-LSN record, next test)."""
    _assert_bad_chunk_record_is_reported_and_harmless(tmp_path / "s", "segment",
                                                      segment=segment)


def _assert_bad_chunk_record_is_reported_and_harmless(path, fragment: str, **record) -> None:
    """A CHUNK record with ``record``'s fields is reported (naming ``fragment``), kept
    out of the index, and the store still compacts and answers."""
    _store_with_chunk_record(path, **record)
    with chunkstore.open(path, maintenance_interval=0) as s:
        assert 99 not in s.index.chunks
        assert any(fragment in str(p) for p in s.replay_report.problems)
        s.compact()
        assert [e.raw for e in s.query('{app="a"}')] == [b"line"]


def test_regression_a_sealed_lsn_record_without_its_drop_never_enters_the_index(tmp_path):
    """The fuzz input behind the test above: a sealed-LSN record (segment ``""``,
    length 0; FORMAT.md section 6) whose DROP is missing.  It was put in the
    index as a chunk, and ``compact()`` tried to read it.  Now only its
    ``max_lsn`` is applied."""
    path = tmp_path / "s"
    _store_with_chunk_record(path, segment="", length=0, max_lsn=12345)
    with chunkstore.open(path, maintenance_interval=0) as s:
        assert 99 not in s.index.chunks and s.replay_report.problems == []
        (entry,) = s.index.streams.values()
        assert entry.flushed_lsn == 12345
        s.compact()
        assert [e.raw for e in s.query('{app="a"}')] == [b"line"]
        assert s.next_chunk_id > 99  # its id is never handed out again


def test_regression_index_chunk_of_the_wrong_types_is_not_half_applied(tmp_path):
    """A CHUNK record whose ``max_lsn`` was a string was reported as bad but stayed in
    the index, and the next ``compact()`` died with ``TypeError``."""
    _assert_bad_chunk_record_is_reported_and_harmless(tmp_path / "s", "max_lsn", max_lsn="x")


def test_regression_index_stream_record_with_a_non_integer_id_is_reported(tmp_path):
    """A STREAM record whose stream id was ``None`` entered the index, and ``series()``
    then died sorting the ids (``TypeError``).  Found by atheris."""
    path = tmp_path / "s"
    with chunkstore.open(path, maintenance_interval=0) as s:
        s.append({"app": "a"}, "line", ts=10)
    with open(os.path.join(path, "index.log"), "ab") as f:
        f.write(index_log.frame(index_log.STREAM, [None, 1, b"app\xffb\xff"]))
        f.write(index_log.frame(index_log.TOMBSTONE, ["x", '{app="a"}', "0", 1, 2]))
    with chunkstore.open(path, read_only=True) as r:
        assert len(r.replay_report.problems) == 2
        assert r.series('{app=~".+"}') == [{"app": "a"}]
        assert [e.raw for e in r.query('{app="a"}')] == [b"line"]


@pytest.mark.parametrize("query", ["vector(0oe9)", "vector(0b1e2)", "vector(0O7E1)"])
def test_regression_logql_e_exponent_after_an_octal_or_binary_prefix(query):
    """``0oe9`` reached ``int('e')`` in the lexer's digit check (``ValueError``); like
    Go's scanner it is now ``'e' exponent requires decimal mantissa``.  Found by atheris."""
    from chunkstore import logql
    from chunkstore.errors import QueryError

    with pytest.raises(QueryError, match="exponent requires decimal mantissa"):
        logql.parse(query)
