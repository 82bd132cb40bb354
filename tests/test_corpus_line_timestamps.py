"""``benchmarks/corpus.py``'s ``timestamps`` option: the default corpus unchanged, the
``"line"`` kind what a collector parsing each line's own timestamp stores.

* the default (``"random-ns"``) corpus is the corpus benchmarks always used:
  the same bytes as before the option existed (a digest pinned for corpus
  version 3) and the same cache entry;
* ``"line"``: the same lines; every entry time is the ``"random-ns"`` time cut
  to the precision its line shows (:func:`line_precision_ns`), equal to the
  timestamp parsed back from the line text, and non-decreasing per stream;
* an unknown kind is a ``ValueError`` before anything is built.

Skipped without the loghub samples (except the argument check and the app
streams, which need none).
"""

from __future__ import annotations

import calendar
import hashlib
import re
import time
from pathlib import Path

import pytest
from file_modules import load

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


bench_corpus = load("bench_corpus_ts", BENCH / "corpus.py")
needs_loghub = pytest.mark.skipif(bench_corpus.find_loghub() is None,
                                  reason="loghub samples (shared/data/loghub) not present")

NS = 1_000_000_000
#: sha1 of a 300 kB default corpus (labels, ts, lines) at CORPUS_VERSION 3: the default
#: must not change without a version bump (other benchmarks' numbers depend on it)
DEFAULT_DIGEST_V3 = "ad285c8e8383e85664d35a8dc4f86ad1509ad4fd"


def _digest(corpus) -> str:
    h = hashlib.sha1()
    for s in corpus:
        h.update(repr(sorted(s.labels.items())).encode())
        h.update(repr(s.ts).encode())
        h.update(b"\n".join(s.lines))
    return h.hexdigest()


def test_an_unknown_timestamp_kind_is_rejected_before_building():
    with pytest.raises(ValueError, match="timestamps must be one of"):
        bench_corpus.build_corpus(1000, timestamps="parsed", cache=False)


@needs_loghub
def test_the_default_corpus_is_unchanged():
    default = bench_corpus.build_corpus(300_000, streams=16, cache=False)
    explicit = bench_corpus.build_corpus(300_000, streams=16, timestamps="random-ns",
                                         cache=False)
    assert _digest(default) == _digest(explicit)
    if bench_corpus.CORPUS_VERSION == 3:
        assert _digest(default) == DEFAULT_DIGEST_V3
    for s in default:
        assert all(a < b for a, b in zip(s.ts, s.ts[1:], strict=False))


@needs_loghub
def test_the_default_corpus_keeps_its_cache_entry(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_corpus, "CACHE_DIR", tmp_path)
    bench_corpus.build_corpus(100_000, streams=16)
    bench_corpus.build_corpus(100_000, streams=16, timestamps="line")  # derived, not cached
    entries = [p.name for p in tmp_path.iterdir()]
    assert len(entries) == 1
    root = bench_corpus.find_loghub()
    key_src = (f'[{bench_corpus.CORPUS_VERSION}, 100000, 16, 0, false, 0, '
               f'"{bench_corpus._source_key(root)}"]')
    assert entries == ["corpus-" + hashlib.sha1(key_src.encode()).hexdigest()[:16]]


# (system, regex group, strptime format, sub-second digits and separator) of
# lines whose rendered time strptime can read back
_PARSE = {
    "Hadoop": ("t0", "%Y-%m-%d %H:%M:%S", ",", 3),
    "Zookeeper": ("t0", "%Y-%m-%d %H:%M:%S", ",", 3),
    "OpenStack": ("t0", "%Y-%m-%d %H:%M:%S", ".", 3),
    "BGL": ("t2", "%Y-%m-%d-%H.%M.%S", ".", 6),
    "Windows": ("t0", "%Y-%m-%d %H:%M:%S", None, 0),
    "Spark": ("t0", "%y/%m/%d %H:%M:%S", None, 0),
    "HDFS": ("t0", "%y%m%d %H%M%S", None, 0),
    "Android": ("t0", "%m-%d %H:%M:%S", ".", 3),  # no year in the line: 2024
}


def _parse_line_time(system: str, line: str) -> int:
    group, fmt, sep, digits = _PARSE[system]
    text = re.match(bench_corpus._SYSTEMS[system][0], line).group(group)
    frac = 0
    if sep:
        text, sub = text.rsplit(sep, 1)
        assert len(sub) == digits
        frac = int(sub) * 10 ** (9 - digits)
    t = time.strptime(text, fmt)
    if "%Y" not in fmt and "%y" not in fmt:
        t = time.strptime(f"2024 {text}", f"%Y {fmt}")
    return calendar.timegm(t) * NS + frac


@needs_loghub
def test_line_timestamps_are_the_times_the_lines_show():
    default = bench_corpus.build_corpus(400_000, streams=16, cache=False)
    line = bench_corpus.build_corpus(400_000, streams=16, timestamps="line", cache=False)
    parsed = 0
    for d, s in zip(default, line, strict=True):
        assert s.labels == d.labels and s.lines == d.lines
        p = bench_corpus.line_precision_ns(s.labels)
        assert p in (NS, 1_000_000, 1_000)
        assert s.ts == [t - t % p for t in d.ts]
        assert all(a <= b for a, b in zip(s.ts, s.ts[1:], strict=False))
        system = s.labels["system"]
        if system in _PARSE:
            for ts, text in list(zip(s.ts, s.lines, strict=True))[:: max(1, len(s.ts) // 50)]:
                assert _parse_line_time(system, text.decode()) == ts, (system, text)
                parsed += 1
    assert parsed > 100
    precisions = {s.labels["system"]: bench_corpus.line_precision_ns(s.labels) for s in line}
    assert precisions["HDFS"] == NS and precisions["Hadoop"] == 1_000_000
    assert precisions["BGL"] == 1_000


def test_app_streams_have_the_precision_of_their_line_kind():
    assert bench_corpus.line_precision_ns({"app": "api", "env": "prod"}) == 1_000_000  # logfmt
    assert bench_corpus.line_precision_ns({"app": "web", "env": "prod"}) == NS  # nginx
    assert bench_corpus.line_precision_ns({"app": "auth", "env": "prod"}) == NS  # syslog
    assert bench_corpus.line_precision_ns({"job": "other"}) == 1
    corpus = bench_corpus.build_corpus(200_000, streams=4, apps=4, timestamps="line",
                                       cache=False)
    for s in corpus:
        p = bench_corpus.line_precision_ns(s.labels)
        assert p > 1 and all(t % p == 0 for t in s.ts)
        assert all(a <= b for a, b in zip(s.ts, s.ts[1:], strict=False))
