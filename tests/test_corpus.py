"""The corpora tests and benchmarks run on, and the benchmark scripts themselves.

* ``chunkstore.corpus`` (bundled synthetic app logs): deterministic per seed,
  time-ordered per stream, every line kind present, valid labels, realistic
  level mix, unique request ids, batches for ``push``.
* ``benchmarks/corpus.py`` (loghub-derived): re-draws variable parts rather
  than repeating lines, reaches its target size, unique needle ids, cache
  round trip.  Skipped when the loghub samples are absent.
* ``benchmarks/harness.py``: baselines agree with a plain count; reports are
  only recorded outside ``--smoke``.
* every ``benchmarks/bench_*.py --smoke`` exits 0 (skipped until the kernels
  import).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from file_modules import load

from chunkstore import corpus

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "benchmarks"
NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")


bench_corpus = load("bench_corpus", BENCH / "corpus.py")
harness = load("bench_harness", BENCH / "harness.py")

needs_loghub = pytest.mark.skipif(bench_corpus.find_loghub() is None,
                                  reason="loghub samples (shared/data/loghub) not present")

# ---------------------------------------------------------------------------
# chunkstore.corpus

_NGINX = re.compile(r'^\d+\.\d+\.\d+\.\d+ - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\] '
                    r'"(GET|POST|DELETE|PUT) \S+ HTTP/1\.1" \d{3} \d+ "[^"]*" "[^"]*" '
                    r'\d+\.\d{3} req-[0-9a-f]{8}$')
_NGINX_ERR = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[error\] ")
_SYSLOG = re.compile(r"^\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ \w+\[\d+\]: ")
_LOGFMT = re.compile(r'^ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=(debug|info|warn|error) '
                     r'msg="[^"]+"')


def line_kind(line: str) -> str | None:
    if line.startswith("{"):
        json.loads(line)
        return "json"
    if _LOGFMT.match(line):
        return "logfmt"
    if _NGINX.match(line) or _NGINX_ERR.match(line):
        return "nginx"
    if _SYSLOG.match(line):
        return "syslog"
    return None


def level_of(line: str, kind: str) -> str:
    if kind == "json":
        return json.loads(line)["level"]
    if kind == "logfmt":
        return _LOGFMT.match(line).group(1)
    if kind == "nginx":
        if _NGINX_ERR.match(line):
            return "error"
        status = int(line.split('" ', 2)[1].split()[0])
        return "error" if status >= 500 else "warn" if status >= 400 else "info"
    for lvl in ("error", "warning", "info"):
        if f": {lvl}:" in line:
            return lvl.replace("warning", "warn")
    return "info"


def test_generate_is_deterministic_per_seed():
    a = list(corpus.generate(seed=7, n_lines=3000))
    b = list(corpus.generate(seed=7, n_lines=3000))
    c = list(corpus.generate(seed=8, n_lines=3000))
    assert a == b
    assert [e[2] for e in a] != [e[2] for e in c]


def test_generate_counts_and_window():
    start, dur = 1_700_000_000 * 10**9, 600 * 10**9
    n = sum(1 for _ in corpus.generate(n_lines=1234, start_ns=start, duration_ns=dur))
    assert n == 1234
    entries = list(corpus.generate(start_ns=start, duration_ns=dur, lines_per_second_per_stream=2))
    assert len(entries) == round(2 * len(corpus.streams()) * 600)
    assert all(start <= ts < start + dur for _, ts, _, _ in entries)
    assert list(corpus.generate(n_lines=0)) == []


@pytest.mark.parametrize("kwargs", [
    {}, {"n_lines": -1}, {"duration_ns": 0}, {"n_lines": 5, "lines_per_second_per_stream": 0},
    {"n_lines": 5, "duration_ns": 10, "lines_per_second_per_stream": 1.0},
    {"n_lines": 5, "services": ["nope"]}, {"n_lines": 5, "services": []},
])
def test_generate_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        list(corpus.generate(**kwargs))


def test_generate_is_time_ordered_per_stream():
    last: dict[tuple, int] = {}
    for labels, ts, _line, _meta in corpus.generate(seed=1, n_lines=20_000):
        key = tuple(sorted(labels.items()))
        assert ts >= last.get(key, ts)
        last[key] = ts
    assert len(last) == len(corpus.streams())


def test_generate_produces_every_line_kind_with_its_service():
    kinds = {s.app: s.kind for s in corpus.SERVICES}
    seen = Counter()
    for labels, _ts, line, _meta in corpus.generate(seed=2, n_lines=20_000):
        kind = line_kind(line)
        assert kind == kinds[labels["app"]], line
        assert "\n" not in line
        seen[kind] += 1
    assert set(seen) == set(corpus.LINE_KINDS)


def test_generate_labels_are_valid_and_span_app_by_env():
    label_sets = {tuple(sorted(ls.items())) for ls, *_ in corpus.generate(seed=3, n_lines=10_000)}
    assert len(label_sets) == len(corpus.streams()) >= 8
    for ls in label_sets:
        for name, value in ls:
            assert NAME_RE.match(name) and not name.startswith("__")
            assert value
        assert "level" not in dict(ls)
    apps = {dict(ls)["app"] for ls in label_sets}
    envs = {dict(ls)["env"] for ls in label_sets}
    assert len(apps) >= 4 and envs == {"prod", "staging"}


def test_generate_level_mix_is_mostly_info_rarely_error():
    levels = Counter()
    for _labels, _ts, line, _meta in corpus.generate(seed=4, n_lines=40_000):
        levels[level_of(line, line_kind(line))] += 1
    n = sum(levels.values())
    assert levels["info"] / n > 0.6
    assert 0.02 < levels["warn"] / n < 0.2
    assert 0.001 < levels["error"] / n < 0.05


def test_generate_request_ids_are_unique_and_trace_ids_are_metadata():
    ids = []
    traced = {s.app for s in corpus.SERVICES if s.trace_metadata}
    n_meta = 0
    for labels, _ts, line, meta in corpus.generate(seed=5, n_lines=50_000):
        ids += re.findall(r"req-[0-9a-f]{8}\b", line)
        if meta is not None:
            n_meta += 1
            assert labels["app"] in traced
            assert re.fullmatch(r"[0-9a-f]{32}", meta["trace_id"])
    assert len(ids) > 30_000 and len(ids) == len(set(ids))
    assert n_meta > 5_000


def test_generate_selects_services_by_name():
    apps = {ls["app"] for ls, *_ in corpus.generate(n_lines=2000, services=["api", "auth"])}
    assert apps == {"api", "auth"}


def test_generate_is_fast():
    # The design target is >= 300k lines/s; assert a third of it so a busy
    # CI machine does not flake.
    t = time.perf_counter()
    n = sum(1 for _ in corpus.generate(seed=6, n_lines=200_000))
    rate = n / (time.perf_counter() - t)
    assert rate > 100_000, f"{rate:.0f} lines/s"


def test_stream_batches_regroup_generate():
    flat = list(corpus.generate(seed=9, n_lines=5000))
    batches = list(corpus.stream_batches(seed=9, n_lines=5000, batch_size=128))
    assert sum(len(e) for _, e in batches) == len(flat)
    per_stream: dict[tuple, list] = {}
    for labels, entries in batches:
        assert 0 < len(entries) <= 128
        per_stream.setdefault(tuple(sorted(labels.items())), []).extend(entries)
    expected: dict[tuple, list] = {}
    for labels, ts, line, meta in flat:
        expected.setdefault(tuple(sorted(labels.items())), []).append(
            (ts, line) if meta is None else (ts, line, meta))
    assert per_stream == expected
    with pytest.raises(ValueError):
        list(corpus.stream_batches(batch_size=0, n_lines=10))


# ---------------------------------------------------------------------------
# benchmarks/corpus.py (loghub)


@pytest.fixture(scope="module")
def loghub_10mb():
    return bench_corpus.build_corpus(10_000_000, streams=16, seed=0, cache=False)


@needs_loghub
def test_loghub_corpus_reaches_target_size(loghub_10mb):
    total = bench_corpus.corpus_bytes(loghub_10mb)
    assert abs(total - 10_000_000) <= 0.05 * 10_000_000
    assert len(loghub_10mb) == 16
    assert {s.labels["system"] for s in loghub_10mb} == set(bench_corpus.SYSTEMS)


@needs_loghub
def test_loghub_corpus_redraws_variable_parts(loghub_10mb):
    lines = [ln for s in loghub_10mb for ln in s.lines]
    dup = len(lines) - len(set(lines))
    assert dup / len(lines) < 0.05
    root = bench_corpus.find_loghub()
    sample = set()
    for p in root.glob("*_2k.log"):
        sample.update(p.read_bytes().splitlines())
    verbatim = sum(1 for ln in lines if ln in sample)
    assert verbatim / len(lines) < 0.01
    # Constant text of the templates survives: it is still the same systems.
    hdfs = next(s for s in loghub_10mb if s.labels["system"] == "HDFS")
    assert sum(b"blk_" in ln for ln in hdfs.lines) > len(hdfs.lines) // 2


@needs_loghub
def test_loghub_corpus_streams_are_time_ordered_with_valid_labels(loghub_10mb):
    for s in loghub_10mb:
        assert len(s.ts) == len(s.lines) > 0
        assert all(a < b for a, b in zip(s.ts, s.ts[1:], strict=False))
        assert all(b"\n" not in ln for ln in s.lines)
        for name, value in s.labels.items():
            assert NAME_RE.match(name) and value


@needs_loghub
def test_loghub_corpus_splits_systems_across_env_and_host():
    c = bench_corpus.build_corpus(400_000, streams=40, cache=False)
    keys = {tuple(sorted(s.labels.items())) for s in c}
    assert len(keys) == 40
    assert {s.labels["env"] for s in c} == {"prod", "staging"}


@needs_loghub
def test_loghub_corpus_is_deterministic_and_cached(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_corpus, "CACHE_DIR", tmp_path)
    a = bench_corpus.build_corpus(300_000, streams=4, seed=3, cache=True)
    assert any(tmp_path.iterdir())
    b = bench_corpus.build_corpus(300_000, streams=4, seed=3, cache=True)  # from the cache
    c = bench_corpus.build_corpus(300_000, streams=4, seed=3, cache=False)
    for x, y, z in zip(a, b, c, strict=True):
        assert x.labels == y.labels == z.labels
        assert x.ts == y.ts == z.ts
        assert x.lines == y.lines == z.lines
    d = bench_corpus.build_corpus(300_000, streams=4, seed=4, cache=False)
    assert d[0].lines != a[0].lines


@needs_loghub
def test_loghub_corpus_ids_are_unique_needles(tmp_path):
    c = bench_corpus.build_corpus(1_000_000, streams=8, with_ids=True, cache=False)
    needles = bench_corpus.pick_needles(c, 5, seed=1)
    assert len(needles) == 5
    text = b"\n".join(ln for s in c for ln in s.lines)
    for nd in needles:
        assert re.fullmatch(rb"req-[0-9a-f]{16}", nd)
        assert text.count(nd) == 1
    raw = tmp_path / "raw.log"
    assert bench_corpus.write_raw(c, raw) == raw.stat().st_size == bench_corpus.corpus_bytes(c)


def test_loghub_corpus_with_apps_and_fallback(monkeypatch, capsys):
    c = bench_corpus.build_corpus(200_000, streams=4, apps=2, cache=False)
    assert sum("app" in s.labels for s in c) >= 2
    monkeypatch.setattr(bench_corpus, "find_loghub", lambda: None)
    c = bench_corpus.build_corpus(200_000, streams=3, cache=False)
    assert "loghub samples not found" in capsys.readouterr().err
    assert all("app" in s.labels for s in c)
    assert abs(bench_corpus.corpus_bytes(c) - 200_000) < 0.05 * 200_000


def test_loghub_corpus_rejects_bad_arguments():
    for kwargs in ({"target_bytes": 0}, {"target_bytes": 10, "streams": 0},
                   {"target_bytes": 10, "streams": 2, "apps": 3}):
        with pytest.raises(ValueError):
            bench_corpus.build_corpus(**kwargs)


# ---------------------------------------------------------------------------
# benchmarks/harness.py


def test_harness_baselines_agree_with_a_plain_count(tmp_path):
    c = bench_corpus.build_corpus(300_000, streams=3, seed=1, cache=False)
    lines = [ln for s in c for ln in s.lines]
    needle = next(tok for tok in (b"INFO", b"error", b"req-", b" ")
                  if any(tok in ln for ln in lines))
    expected = sum(needle in ln for ln in lines)
    db = tmp_path / "logs.db"
    seconds, size = harness.sqlite_ingest(c, db, batch_rows=500)
    assert seconds > 0 and size > bench_corpus.corpus_bytes(c) * 0.5
    assert harness.sqlite_instr_count(db, needle, repeat=1)[1] == expected
    assert harness.sqlite_like_count(db, needle, repeat=1)[1] >= expected
    rows = harness.sqlite_bucket_count(db, needle, 3600 * 10**9, repeat=1)[1]
    assert sum(r[2] for r in rows) == expected
    assert harness.python_in_loop(lines, needle, repeat=1)[1] == expected
    raw = tmp_path / "raw.log"
    bench_corpus.write_raw(c, raw)
    assert harness.grep_count(raw, needle, repeat=1)[1] == expected
    assert harness.grep_count(raw, b"no such text anywhere", repeat=1)[1] == 0
    assert 0 < harness.gzip_size(raw) < raw.stat().st_size
    comp_s, decomp_s = harness.lz4_ceiling([b"".join(lines[:1000])], repeat=1)
    assert comp_s > 0 and decomp_s > 0


def test_harness_report_records_only_outside_smoke(tmp_path, capsys):
    path = tmp_path / "RESULTS.md"
    rows = [{"figure": "x", "result": 1.5}, {"figure": "y", "ratio": "2.00x"}]
    harness.report("T", rows, "python b.py --smoke", smoke=True, path=path)
    assert not path.exists()
    section = harness.report("T", rows, "python b.py", path=path)
    text = path.read_text()
    assert section in text and "`python b.py`" in text and "| figure | result | ratio |" in text
    assert "Machine:" in text
    info = harness.machine_info()
    for key in ("cpu", "cores", "ram_gib", "python", "lz4", "sqlite", "grep", "accelerated"):
        assert key in info


def test_harness_parse_args_smoke_convention():
    p = harness.make_parser("x", default_size_mb=200, smoke_size_mb=2)
    a = harness.parse_args(p, ["--smoke"])
    assert a.size_bytes == 2_000_000 and a.repeat == 1 and not a.record
    a = harness.parse_args(p, ["--size", "50"])
    assert a.size_bytes == 50_000_000 and a.record
    best, result = harness.best_of(lambda: 42, repeat=2)
    assert best >= 0 and result == 42


# ---------------------------------------------------------------------------
# every benchmark script, --smoke


def _kernels_ready() -> str | None:
    try:
        from chunkstore import _kernels as k

        for mod, names in ((k.block, ("encode_entries", "compress_block", "decompress_block")),
                           (k.scan, ("Filter", "scan_block", "count_raw")),
                           (k.hashing, ("fingerprint_canonical",))):
            for n in names:
                if not hasattr(mod, n):
                    return f"chunkstore._kernels lacks {n}"
    except Exception as e:  # noqa: BLE001
        return f"chunkstore._kernels does not import: {e}"
    return None


_NOT_READY = _kernels_ready()
BENCH_SCRIPTS = sorted(p.name for p in BENCH.glob("bench_*.py"))


@pytest.mark.skipif(_NOT_READY is not None, reason=_NOT_READY or "")
@pytest.mark.parametrize("script", BENCH_SCRIPTS)
def test_benchmark_script_smoke_run(script):
    results = BENCH / "RESULTS.md"
    before = results.read_bytes() if results.exists() else None
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))
    out = subprocess.run([sys.executable, str(BENCH / script), "--smoke"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    after = results.read_bytes() if results.exists() else None
    assert before == after, "a --smoke run must not append to RESULTS.md"
