"""Token filters (FORMAT.md section 4): the kernel twins agree, and skipping never changes results.

- the compiled and pure-Python ``block_filter`` / ``key_hash`` / ``may_contain``
  give identical bytes and answers on the same inputs;
- every key of every line is in its block's filter (no false negatives);
- needle keys follow the documented rule (whole tokens, prefixes, suffixes);
- for random corpora and random needle queries, a store with filters
  returns exactly what the same data returns without them and what a
  brute-force scan of the entries returns; blocks really are skipped.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import chunkstore
from chunkstore import _block_py, _tokens_py, tokenfilter
from chunkstore._kernels import ACCELERATED

try:
    from chunkstore import _block as _block_c
    from chunkstore import _tokens as _tokens_c
except ImportError:  # pragma: no cover - pure-Python install
    _block_c = _tokens_c = None

TWINS = [pytest.param(_tokens_py, id="py")]
if _tokens_c is not None:
    TWINS.append(pytest.param(_tokens_c, id="c"))

_WORD = re.compile(rb"[0-9A-Za-z_\x80-\xff]+")

# lines made of a small alphabet so that tokens repeat, cross 8 bytes and hit
# line boundaries (tokens may not continue into the next line)
_alphabet = st.sampled_from(list(b"abcAB_9-=. \xc3\xa9/:"))
lines_st = st.lists(st.binary(max_size=0) | st.lists(_alphabet, max_size=40).map(bytes),
                    min_size=1, max_size=30)


def _raw(lines, meta=False):
    metas = [((b"k", b"v"),) if meta and i % 2 else None for i in range(len(lines))]
    return _block_py.encode_entries(list(range(len(lines))), lines, metas)


def _keys(line: bytes) -> set[bytes]:
    out = set()
    for t in _WORD.findall(line.lower()):
        if len(t) > tokenfilter.PREFIX_LEN:
            out.update((t[:tokenfilter.PREFIX_LEN], t[-tokenfilter.PREFIX_LEN:]))
        else:
            out.add(t)
    return out


@pytest.mark.skipif(_tokens_c is None, reason="the compiled kernels are not built")
@settings(max_examples=300, deadline=None)
@given(lines=lines_st, meta=st.booleans(), bpk=st.integers(1, 24), plen=st.integers(1, 8))
def test_twins_build_identical_filters(lines, meta, bpk, plen):
    raw = _raw(lines, meta)
    assert _tokens_c.block_filter(raw, bpk, plen) == _tokens_py.block_filter(raw, bpk, plen)


@pytest.mark.skipif(_tokens_c is None, reason="the compiled kernels are not built")
@settings(max_examples=300, deadline=None)
@given(key=st.binary(max_size=70), filt=st.binary(min_size=2, max_size=64))
def test_twins_hash_and_probe_identically(key, filt):
    assert _tokens_c.key_hash(key) == _tokens_py.key_hash(key)
    filt = bytes([filt[0] % 16 + 1]) + filt[1:]
    h = _tokens_py.key_hash(key)
    assert _tokens_c.may_contain(filt, [h]) == _tokens_py.may_contain(filt, [h])


@pytest.mark.parametrize("mod", TWINS)
def test_kernel_rejects_bad_input(mod):
    from chunkstore.errors import CorruptionError

    with pytest.raises(CorruptionError):
        mod.block_filter(b"\x05\x00\x00")
    with pytest.raises(ValueError):
        mod.block_filter(_raw([b"x"]), 0)
    with pytest.raises(ValueError):
        mod.block_filter(_raw([b"x"]), 10, 9)  # keys are single 8-byte words
    with pytest.raises(ValueError):
        mod.may_contain(b"\x00\xff", [1])
    with pytest.raises(ValueError):
        mod.may_contain(b"\x01\xff", [-1])
    assert mod.may_contain(b"", [1, 2, 3]) is True


@pytest.mark.parametrize("mod", TWINS)
@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=lines_st)
def test_no_false_negatives(mod, lines):
    f = mod.block_filter(_raw(lines), tokenfilter.BITS_PER_KEY, tokenfilter.PREFIX_LEN)
    for line in lines:
        for key in _keys(line):
            assert mod.may_contain(f, [mod.key_hash(key)]), (line, key)


def test_filter_size_and_false_positive_rate():
    # 2,000 distinct tokens at 10 bits per key: about 0.8% false positives
    lines = [b"tok%05d other" % i for i in range(2000)]
    f = tokenfilter.block_filter(_raw(lines))
    assert len(f) == 1 + (2001 * 10 + 7) // 8 and f[0] == 7
    misses = sum(tokenfilter.block_may_match(f, ((tokenfilter.needle_keys(b" nope%05d " % i),),))
                 for i in range(20000))
    assert misses / 20000 < 0.02


@pytest.mark.parametrize("needle, keys", [
    (b"8f3a2c1d", []),                        # touches both ends: inside some token
    (b" timeout ", [b"timeout"]),             # whole token
    (b"user=alice ", [b"alice"]),             # "user" is a short suffix: unusable
    (b"req-8f3a2c1d9e4b", [b"8f3a2c1d"]),     # "req" too short; the id starts a token
    (b"request_id=8f3a", [b"quest_id"]),      # the key ends a token: its last 8 bytes
    (b"a-B-c", [b"b"]),                       # lowercased
    (b" 0123456789abcdef ", [b"01234567", b"89abcdef"]),  # a long whole token: both ends
    (b"--", []),
])
def test_needle_keys_follow_the_rule(needle, keys):
    assert tokenfilter.needle_keys(needle) == tuple(sorted({_tokens_py.key_hash(k) for k in keys}))


# -- the store: skipping never changes results --------------------------------------

words = st.sampled_from(["GET", "POST", "timeout", "refused", "ok", "user", "alice", "bob",
                         "req", "id", "é", "ERROR", "error", "x"])
ids = st.text("0123456789abcdef", min_size=4, max_size=14)
line_st = st.lists(st.one_of(words, ids), min_size=1, max_size=6).flatmap(
    lambda parts: st.lists(st.sampled_from([" ", "-", "=", "_", "", "/"]),
                           min_size=len(parts), max_size=len(parts)).map(
        lambda seps: "".join(p + s for p, s in zip(parts, seps, strict=True))))


def _needles(draw, corpus):
    line = draw(st.sampled_from(corpus))
    i = draw(st.integers(0, len(line)))
    j = draw(st.integers(i, min(len(line), i + 24)))
    return line[i:j] if j > i else draw(ids)


@st.composite
def case(draw):
    corpus = draw(st.lists(line_st, min_size=5, max_size=120))
    needles = [_needles(draw, corpus) for _ in range(draw(st.integers(1, 3)))]
    ops = draw(st.lists(st.sampled_from(["|=", "|= (ci)", "!=", "or"]), min_size=len(needles),
                        max_size=len(needles)))
    return corpus, list(zip(needles, ops, strict=True))


def _groups(pairs):
    """Filter stages: ``or`` extends a preceding ``|=`` or ``!=`` stage, else starts ``|=``."""
    groups = []
    for needle, op in pairs:
        if op == "or" and groups and groups[-1][0] in ("|=", "!="):
            groups[-1][1].append(needle)
        else:
            groups.append(("|=" if op == "or" else op, [needle]))
    return groups


def _lit(needle: str) -> str:
    return '"' + needle.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _query(pairs) -> str:
    parts = []
    for op, alts in _groups(pairs):
        if op == "|= (ci)":
            parts.append(f"|~ `(?i){re.escape(alts[0])}`")
        else:
            parts.append(f"{op} " + " or ".join(_lit(a) for a in alts))
    return '{app=~".+"} ' + " ".join(parts)


def _brute(entries, pairs):
    out = []
    for ts, app, line in entries:
        keep = True
        for op, alts in _groups(pairs):
            if op == "|= (ci)":
                keep = keep and alts[0].lower() in line.lower()
            elif op == "!=":
                keep = keep and not any(a in line for a in alts)
            else:
                keep = keep and any(a in line for a in alts)
        if keep:
            out.append((ts, app, line))
    return sorted(out)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(c=case())
def test_results_with_filters_equal_results_without(tmp_path_factory, c):
    corpus, pairs = c
    base = tmp_path_factory.mktemp("tf")
    entries = [(i, f"a{i % 3}", line) for i, line in enumerate(corpus)]
    q = _query(pairs)
    got = {}
    for flag in (True, False):
        path = base / f"s{flag}"
        with chunkstore.open(path, block_size=512, chunk_target_size=2048, token_filters=flag,
                             maintenance_interval=0) as s:
            for ts, app, line in entries:
                s.append({"app": app}, line, ts=ts)
            s.flush()
            in_head = sorted((e.ts, e.labels["app"], e.line) for e in s.query(q, limit=None))
        with chunkstore.open(path, token_filters=flag, maintenance_interval=0) as s:
            got[flag] = sorted((e.ts, e.labels["app"], e.line) for e in s.query(q, limit=None))
            assert got[flag] == in_head
    assert got[True] == got[False] == _brute(entries, pairs)


def test_a_needle_query_skips_blocks(tmp_path):
    with chunkstore.open(tmp_path / "s", block_size=1024, maintenance_interval=0) as s:
        for i in range(3000):
            s.append({"app": "api"}, f"GET /x request_id=r{i:06d}-{i * 7919 % 100003:06d} ok",
                     ts=i)
    # reopened: every block is sealed with its filter (in the head, a filter
    # still being built by the background worker is not waited for)
    with chunkstore.open(tmp_path / "s", maintenance_interval=0) as s:
        got = list(s.query('{app="api"} |= "request_id=r001234-"'))
        assert [e.ts for e in got] == [1234]
        st_ = s.last_query_stats
        assert st_.blocks_filtered > 100 and st_.blocks_read <= 5, st_
        # a needle without separators may sit inside any token: nothing is skipped
        list(s.query('{app="api"} |= "001234"'))
        assert s.last_query_stats.blocks_filtered == 0
    assert ACCELERATED in (True, False)


def test_skip_gate_closes_when_filters_do_not_pay():
    f_has = tokenfilter.block_filter(_raw([b"timeout here"]))
    f_not = tokenfilter.block_filter(_raw([b"all good"]))
    reqs = tokenfilter.requirements([((b" timeout ",), False, False)])
    gate = tokenfilter.SkipGate(reqs)
    for _ in range(tokenfilter.SkipGate.WARMUP):
        assert gate.may_match(f_has)
    assert not gate.active
    assert gate.may_match(f_not)  # closed: every block is scanned
    selective = tokenfilter.SkipGate(reqs)
    for i in range(200):
        assert selective.may_match(f_not if i % 2 else f_has) == (i % 2 == 0)
    assert selective.active
    assert tokenfilter.SkipGate(()).active is False


@pytest.mark.parametrize("query", [
    'count_over_time({app="api"} |= "request_id=r001234-" [1h])',           # the fast path
    'sum(count_over_time({app="api"} |= "request_id=r001234-" | logfmt [1h]))',  # general path
])
def test_metric_queries_skip_blocks_with_the_same_answer(tmp_path, query):
    path = tmp_path / "s"
    with chunkstore.open(path, block_size=1024, maintenance_interval=0) as s:
        for i in range(3000):
            s.append({"app": "api"}, f"GET /x request_id=r{i:06d}-{i % 7} ok",
                     ts=i * 1_000_000)
    answers = {}
    for flag in (True, False):
        with chunkstore.open(path, token_filters=flag, maintenance_interval=0) as s:
            res = s.query_instant(query, 3_600_000_000_000)
            answers[flag] = sorted((tuple(sorted(r.labels.items())), r.value) for r in res)
            if flag:
                assert s.last_query_stats.blocks_filtered > 50, s.last_query_stats
    assert answers[True] == answers[False] and answers[True]


def test_a_damaged_filter_section_is_reported_but_never_hides_data(tmp_path):
    path = tmp_path / "s"
    with chunkstore.open(path, block_size=1024, maintenance_interval=0) as s:
        for i in range(2000):
            s.append({"app": "api"}, f"GET /x request_id=r{i:06d}-{i % 7} ok", ts=i)
    with chunkstore.open(path, maintenance_interval=0) as s:
        ref = next(iter(s.index.chunks.values()))
        meta = s.chunk_meta(ref)
        at = meta.offset + meta.filters_offset + 3  # inside the first block's filter
        seg = path / ref.segment
    data = bytearray(seg.read_bytes())
    data[at] ^= 0xFF
    seg.write_bytes(bytes(data))
    with chunkstore.open(path, maintenance_interval=0) as s:
        q = '{app="api"} |= "request_id=r000004-"'
        assert [e.ts for e in s.query(q)] == [4]
        counts = s.query_instant('count_over_time({app="api"} |= "request_id=r000004-" [1h])',
                                 3_600_000_000_000)
        assert [r.value for r in counts] == [1]
        problems = s.verify().problems
        assert any("token filters" in str(p) and p.offset == meta.offset + meta.filters_offset
                   for p in problems), problems
