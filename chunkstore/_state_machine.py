"""The store-vs-model state machine (re-exported by :mod:`chunkstore.testing`).

:class:`StoreStateMachine` drives a real store and a
:class:`~chunkstore.testing.ReferenceStore` with the same random operations
and compares their answers after each; the user documentation is in
:mod:`chunkstore.testing` and ``docs/TESTING.md``.  Requires Hypothesis.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping

import hypothesis.strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import chunkstore
from chunkstore import logql
from chunkstore import strategies as cs
from chunkstore._reference import ReferenceStore, _LogQuery
from chunkstore.errors import ChunkstoreError, LabelError
from chunkstore.labels import Labels
from chunkstore.logql import ast
from chunkstore.results import Entry

__all__ = ["StoreStateMachine"]

_MINUTE = 60 * 1_000_000_000
#: how far from its stream's newest entry the next one goes: -5 to +1 minutes, in ms
_DELTA_MS = st.builds(lambda m, ms: m * 60_000 + ms, st.integers(-5, 0), st.integers(0, 119_999))


def _outcome(fn):
    """``("ok", value)`` or ``(exception type name, message)`` for comparing calls."""
    try:
        return "ok", fn()
    except (ChunkstoreError, ValueError, TypeError) as exc:
        return type(exc).__name__, str(exc)


def _entry_row(e: Entry) -> tuple:
    return (e.ts, bytes(e.raw), tuple(sorted(e.labels.items())), tuple(sorted(e.stream.items())))


def _key(labels: Mapping) -> frozenset:
    return frozenset((k, v) for k, v in labels.items() if v != "")


def _exact_selector(labels: Mapping) -> str:
    return logql.to_string(ast.Selector(tuple(
        ast.Matcher(k, "=", v) for k, v in sorted(labels.items()) if v != "")))


def _raw_key(entry: tuple) -> tuple | None:
    line = entry[1]
    try:
        raw = line.encode("utf-8") if isinstance(line, str) else bytes(line)
    except (UnicodeEncodeError, TypeError):
        return None
    meta = entry[2] if len(entry) == 3 and entry[2] else {}
    return entry[0], raw, tuple(sorted(meta.items()))


# ---------------------------------------------------------------------------
# metric queries

#: log ranges and offsets of the machine's metric queries: windows that hold
#: some of its hour of data (the drawn ones span a millisecond to days)
_RANGES_NS = st.sampled_from([60, 300, 600, 1800, 90, 7]).map(lambda s: s * 1_000_000_000)
_OFFSETS_NS = st.sampled_from([0, 60, -120, 300]).map(lambda s: s * 1_000_000_000)
#: query steps: whole minutes (bucketed fast path), and one off by a millisecond
_STEPS_NS = st.sampled_from([60, 30, 240, 420]).map(
    lambda s: s * 1_000_000_000) | st.just(_MINUTE + 1_000_000)


def _retimed(node, range_ns: int, offset_ns: int):
    """``node`` with every log range reading ``[range_ns]`` at ``offset offset_ns``."""
    if isinstance(node, ast.LogRange):
        node = dataclasses.replace(node, range_ns=range_ns, offset_ns=offset_ns)
    if isinstance(node, tuple):
        return tuple(_retimed(x, range_ns, offset_ns) for x in node)
    if not isinstance(node, ast.Node):
        return node
    changes = {}
    for f in dataclasses.fields(node):
        v = getattr(node, f.name)
        nv = _retimed(v, range_ns, offset_ns)
        if nv is not v:
            changes[f.name] = nv
    return dataclasses.replace(node, **changes) if changes else node


#: the pipelines of the plain queries: none or literal filters (the store's
#: counting fast path), a regex, parsers and label filters (the general path)
_PIPELINES = ("", ' |= ""', ' |= "e"', ' != "a" |= "l"', ' |~ "(?s).*"', ' |~ "[0-9]+"',
              " | logfmt | drop __error__, __error_details__", ' | json | level="info"',
              ' |= "a" | logfmt | level!="debug"', ' | line_format "{{__line__}}!" |= "!"')
#: unwrapped values: the size of nginx lines (other lines have no such label)
_SIZE = ' | pattern `<_> - - [<_>] "<_>" <_> <size> <_>` | unwrap size'
_UNWRAP_OPS = ("sum_over_time", "avg_over_time", "max_over_time", "first_over_time",
               "last_over_time", "rate", "rate_counter", "stddev_over_time")


def _plain_metric_queries(selector) -> st.SearchStrategy[str]:
    """Common metric queries: counting with line filters and parsers, unwrapped sizes."""
    ranges = _RANGES_NS.map(lambda ns: f"[{ns // 1_000_000}ms]")
    offsets = _OFFSETS_NS.map(lambda ns: f" offset {ns // 1_000_000}ms" if ns else "")
    counting = st.builds(
        lambda op, sel, p, r, o: f"{op}({sel}{p} {r}{o})",
        st.sampled_from(("count_over_time", "rate", "bytes_over_time", "bytes_rate",
                         "absent_over_time")), selector, st.sampled_from(_PIPELINES), ranges,
        offsets)
    unwrapped = st.builds(lambda op, sel, r, o: f"{op}({sel}{_SIZE} {r}{o})",
                          st.sampled_from(_UNWRAP_OPS), selector, ranges, offsets)
    inner = counting | unwrapped
    return inner | st.builds(lambda agg, q: f"{agg}({q})",
                             st.sampled_from(("sum by (level)", "sum", "count", "max")), inner)


def _metric_queries(selector) -> st.SearchStrategy[str]:
    """Metric query text whose selectors are drawn from ``selector``, windows from the above.

    A third are random syntax trees (``strategies.queries``): most of those
    drop every line or fail, so the rest are common queries.
    """
    trees = st.builds(lambda q, r, o: logql.to_string(_retimed(logql.parse(q), r, o)),
                      cs.queries(kind="metric", selector=selector), _RANGES_NS, _OFFSETS_NS)
    plain = _plain_metric_queries(selector)
    return st.one_of(plain, plain, trees)


def _order_matters(q: str) -> bool:
    """Whether the order of entries with equal timestamps can change ``q``'s answer.

    It can for unwrapped values (``first_over_time``, ``rate_counter``, float
    sums, NaN in ``min_over_time``), except a quantile's sorted values or
    ``absent_over_time``'s presence; counting and bytes never depend on it.
    """
    try:
        tree = logql.parse(q)
    except ChunkstoreError:
        return False
    return any(isinstance(node, ast.RangeAggregation) and node.log_range.unwrap is not None
               and node.op not in ("quantile_over_time", "absent_over_time")
               for node in ast.walk(tree))


def _number(v: float):
    return "NaN" if math.isnan(v) else v


def _metric_rows(result):
    """A metric result as comparable data: NaN equals NaN, label dicts as sorted pairs."""
    if isinstance(result, float):
        return _number(result)
    out = []
    for r in result:
        if hasattr(r, "points"):
            out.append((tuple(sorted(r.labels.items())),
                        tuple((t, _number(v)) for t, v in r.points)))
        else:
            out.append((tuple(sorted(r.labels.items())), r.ts, _number(r.value)))
    return out


class StoreStateMachine(RuleBasedStateMachine):
    """Drive a real store and a :class:`ReferenceStore` with the same operations.

    Each rule does one thing to both and compares what they answered
    (rejections, push results, query results, delete counts); after every
    step the invariants compare each stream's full contents, its entry counts
    per 7-minute window (a metric query), ``stats()``, ``labels()`` and
    ``series()`` and run the index's own ``check()``.

    Hooks for subclasses:

    * ``options`` (class attribute) or :meth:`store_options`: options for
      ``chunkstore.open`` and the model, on top of ``fsync="always"`` and
      ``maintenance_interval=0``;
    * :meth:`make_store`: open the store at ``path`` (return a wrapper to
      test your own layer; the simulated crash needs ``_crash_for_tests``).

    Timestamps are drawn around the time the example starts: each stream's
    first entry 15 to 45 minutes before it, each next one from 5 minutes
    behind to 2 minutes ahead of the stream's newest entry (in whole
    milliseconds), so that with a small ``out_of_order_window`` some entries
    are rejected and with a ``retention`` of about half an hour some expire.

    The machine keeps away from what the model cannot decide (see
    :class:`ReferenceStore`): it never re-sends an entry it sent before in an
    earlier call (duplicates are only dropped within the head block), never
    writes into a range it deleted (the store's tombstone would hide it), and
    once the store was reopened does not write entries older than the
    model's out-of-order floor in streams that lost data.  Where a store may
    hold more than the model (deleted or expired entries not yet removed from
    disk), ``stats``/``labels``/``series`` are checked to lie between what
    the model holds and what it held.  ``apply_retention`` is only called
    with ``now`` at or before the wall clock, and queries are compared with
    the model's answer at the wall clock just before and just after.

    Metric queries (the ``metric_query`` rule: random syntax trees and
    common counting and unwrap queries, their windows fitted to the run's
    hour of data, as range or instant queries) must give exactly the same
    series, points and errors, except that a difference in a query over
    unwrapped values is not reported while the model holds two entries with
    the same timestamp: their order is the store's, and ``first_over_time``
    or a float sum depends on it.
    """

    #: options for both stores (merged over fsync="always", maintenance_interval=0)
    options: dict = {}

    @classmethod
    def store_options(cls) -> dict:
        return {"fsync": "always", "maintenance_interval": 0, **cls.options}

    def make_store(self, path: str):
        return chunkstore.open(path, **self.store_options())

    def make_reference(self) -> ReferenceStore:
        return ReferenceStore(**self.store_options())

    # -- setup ----------------------------------------------------------------
    def __init__(self):
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="chunkstore-machine-")
        self.path = os.path.join(self.dir, "store")
        self.base_ns = time.time_ns() // 1_000_000 * 1_000_000
        self.start_ns = self.base_ns - 30 * _MINUTE
        self.store = self.make_store(self.path)
        self.ref = self.make_reference()
        self.pool: list[dict] = []
        self.sent: dict[frozenset, set] = {}
        self.deletes: list[tuple[_LogQuery, int, int]] = []
        self.restarted = False

    def teardown(self):
        try:
            self.store.close()
        except Exception:  # noqa: BLE001 - a crashed or broken store must not mask the failure
            pass
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    @initialize(pool=st.lists(cs.label_sets(max_size=3), min_size=1, max_size=4, unique_by=_key),
                offsets=st.lists(st.integers(-15, 15), min_size=4, max_size=4))
    def choose_streams(self, pool, offsets):
        """The streams of this run, each with where (in minutes) its first entry goes."""
        self.pool = pool
        self.first_ts = {_key(lbl): self.start_ns + m * _MINUTE
                         for lbl, m in zip(pool, offsets[:len(pool)], strict=True)}

    # -- helpers ----------------------------------------------------------------
    def _labels(self, i: int) -> dict:
        return self.pool[i % len(self.pool)]

    def _anchor(self, labels: Mapping) -> int:
        newest = self.ref.newest_ts(labels)
        if newest is None:
            return self.first_ts.get(_key(labels), self.start_ns)
        return newest

    def _avoid(self, labels: Mapping, entry: tuple) -> bool:
        k = _raw_key(entry)
        if k is None:
            return False
        key = _key(labels)
        if k in self.sent.get(key, ()):
            return True
        if (self.restarted and entry[0] < self.ref.out_of_order_floor(labels)
                and key in {_key(lbl) for lbl in self.ref.streams_with_removals()}):
            # a reopened store rebuilds a stream's newest timestamp from what is
            # left of it; once data is removed it may accept older entries
            return True
        try:
            lbls = Labels.from_input(labels)
        except LabelError:
            return False
        for q, s, e in self.deletes:
            if s <= entry[0] < e and q.selects(lbls):
                if q.pipeline.process(entry[0], k[1], lbls, None) is not None:
                    return True
        return False

    def _note_sent(self, labels: Mapping, entries: Iterable[tuple]) -> None:
        bucket = self.sent.setdefault(_key(labels), set())
        for e in entries:
            k = _raw_key(e)
            if k is not None:
                bucket.add(k)

    def _check_query(self, q: str, start, end, direction: str, limit) -> None:
        t0 = time.time_ns()
        got = _outcome(lambda: [_entry_row(e) for e in self.store.query(
            q, start, end, limit=limit, direction=direction)])
        t1 = time.time_ns()
        nows = (t0, t1) if self.ref.retention_policy is not None else (None,)
        problems = []
        for now in nows:
            want = _outcome(lambda now=now: [_entry_row(e) for e in self.ref.query(
                q, start, end, direction=direction, now=now)])
            ok, why = _same_result(got, want, limit)
            if ok:
                return
            problems.append(why)
        raise AssertionError(f"query {q!r} [{start}, {end}) {direction} limit={limit}: "
                             + "; ".join(problems))

    # -- rules: writing -----------------------------------------------------------
    @rule(i=st.integers(0, 3), delta_ms=_DELTA_MS,
          line=cs.log_lines(
              max_size=8192) | cs.log_lines(max_size=8192, allow_invalid_utf8=True),
          metadata=st.none() | cs.structured_metadata(max_size=2))
    def append(self, i, delta_ms, line, metadata):
        labels = self._labels(i)
        ts = self._anchor(labels) + delta_ms * 1_000_000
        entry = (ts, line) if metadata is None else (ts, line, metadata)
        if self._avoid(labels, entry):
            return
        got = _outcome(lambda: self.store.append(labels, line, ts=ts, metadata=metadata))
        want = _outcome(lambda: self.ref.append(labels, line, ts=ts, metadata=metadata))
        self._note_sent(labels, [entry])
        assert got == want, f"append {labels} ts={ts}: store {got}, model {want}"

    @rule(items=st.lists(st.tuples(
        st.integers(0, 3) | st.integers(0, 3) | st.integers(0, 3) | cs.invalid_label_sets(),
        st.lists(st.tuples(
            _DELTA_MS,
            cs.log_lines(max_size=8192),
            st.none() | cs.structured_metadata(max_size=2)),
            max_size=6)),
        max_size=4))
    def push(self, items):
        batch = []
        for which, raw_entries in items:
            valid = isinstance(which, int)
            labels = self._labels(which) if valid else which
            anchor = self._anchor(labels) if valid else self.start_ns
            entries = []
            for delta_ms, line, meta in raw_entries:
                ts = anchor + delta_ms * 1_000_000
                e = (ts, line) if meta is None else (ts, line, meta)
                if valid and self._avoid(labels, e):
                    continue
                entries.append(e)
            batch.append((labels, entries))
        got = _outcome(lambda: self.store.push(batch))
        want = _outcome(lambda: self.ref.push(batch))
        for labels, entries in batch:
            self._note_sent(labels, entries)
        if got[0] == "ok" and want[0] == "ok":
            g, w = got[1], want[1]
            assert (g.accepted, g.rejected) == (w.accepted, w.rejected), (
                f"push: store accepted {g.accepted} rejected {g.rejected}; "
                f"model accepted {w.accepted} rejected {w.rejected}")
        else:
            assert got == want, f"push: store {got}, model {want}"

    @rule()
    def flush(self):
        self.store.flush()
        self.ref.flush()

    # -- rules: reading -------------------------------------------------------------
    @rule(data=st.data())
    def query(self, data):
        labels = data.draw(st.sampled_from(self.pool), label="stream")
        q = data.draw(cs.queries(kind="log", selector=cs.selectors(labels=labels)), label="query")
        start = data.draw(st.none() | st.integers(-10, 40).map(
            lambda m: self.start_ns + m * _MINUTE), label="start")
        end = data.draw(st.none() | st.integers(1, 40).map(
            lambda m: (self.start_ns if start is None else start) + m * _MINUTE), label="end")
        direction = data.draw(st.sampled_from(["backward", "forward"]), label="direction")
        limit = data.draw(st.none() | st.integers(0, 12), label="limit")
        self._check_query(q, start, end, direction, limit)

    @precondition(lambda self: self.ref.stats().entries > 0)
    @rule(data=st.data())
    def metric_query(self, data):
        """A random metric query over one stream (range or instant) on both; same answer.

        The query ends up to 10 minutes after an entry of the stream (of any
        stream if it holds none), so that its windows hold some.
        """
        labels = data.draw(st.sampled_from(self.pool), label="stream")
        q = data.draw(_metric_queries(cs.selectors(labels=labels)), label="query")
        dump = self.ref.dump()
        held = (sorted({ts for lbl, ts, _r, _m in dump if _key(lbl) == _key(labels)})
                or sorted({ts for _l, ts, _r, _m in dump}))
        end = (data.draw(st.sampled_from(held), label="near")
               + data.draw(st.integers(-1, 10), label="after_min") * _MINUTE)
        step = data.draw(st.none() | _STEPS_NS, label="step")
        if step is None:
            self._check_metric(q, None, end, None)
        else:
            start = end - data.draw(st.integers(0, 30), label="steps") * step
            self._check_metric(q, start, end, step)

    def _check_metric(self, q: str, start, end, step) -> None:
        def run(target, **now):
            if step is None:
                return _metric_rows(target.query_instant(q, end, **now))
            return _metric_rows(target.query_range(q, start, end, step, **now))

        t0 = time.time_ns()
        got = _outcome(lambda: run(self.store))
        t1 = time.time_ns()
        nows = (t0, t1) if self.ref.retention_policy is not None else (None,)
        wants = []
        for now in nows:
            want = _outcome(lambda now=now: run(self.ref, now=now))
            if got == want:
                return
            wants.append(want)
        stamps = [ts for _l, ts, _r, _m in self.ref.dump()]
        if len(set(stamps)) < len(stamps) and _order_matters(q):
            return  # equal timestamps: their order, so first/last/sums, may differ
        what = "query_instant" if step is None else f"query_range [{start}, {end}] step {step}"
        raise AssertionError(f"metric results differ: {what} {q!r}: store {got}, model "
                             + " or ".join(map(str, wants)))

    # -- rules: removing data ---------------------------------------------------------
    @rule(data=st.data())
    def delete(self, data):
        labels = data.draw(st.sampled_from(self.pool), label="stream")
        sel = data.draw(cs.selectors(labels=labels), label="selector")
        filters = data.draw(st.lists(cs.line_filters(), max_size=2), label="filters")
        q = " ".join([sel, *filters])
        start = self.start_ns + data.draw(st.integers(-10, 40), label="start_min") * _MINUTE
        end = start + data.draw(st.integers(1, 30), label="span_min") * _MINUTE
        t0 = time.time_ns()
        got = _outcome(lambda: self.store.delete(q, start, end).entries)
        t1 = time.time_ns()
        targets = _outcome(lambda: self.ref._delete_targets(q, start, end))
        if targets[0] == "ok":
            counts = {self.ref._visible(targets[1], now) for now in (t0, t1)}
            want = _outcome(lambda: self.ref.delete(q, start, end, now=t0).entries)
            assert got[0] == "ok" and got[1] in counts, (
                f"delete {q!r} [{start}, {end}): store {got}, model {sorted(counts)}")
            self.deletes.append((_LogQuery(q), start, end))
        else:
            want = targets
            assert got == want, f"delete {q!r}: store {got}, model {want}"

    @rule(minutes_ago=st.integers(0, 20))
    def apply_retention(self, minutes_ago):
        # never later than the wall clock: the store's query-time cutoff must
        # hide at least what this drops
        now = self.base_ns - minutes_ago * _MINUTE
        got = _outcome(lambda: self.store.apply_retention(now) and None)
        want = _outcome(lambda: self.ref.apply_retention(now) and None)
        assert got == want, f"apply_retention({now}): store {got}, model {want}"

    @rule()
    def compact(self):
        got = _outcome(lambda: self.store.compact() and None)
        want = _outcome(lambda: self.ref.compact() and None)  # after the store: later clock
        assert got == want, f"compact: store {got}, model {want}"

    # -- rules: restarts --------------------------------------------------------------
    def _after_restart(self) -> None:
        self.restarted = True

    @rule()
    def reopen(self):
        self.store.close()
        self.store = self.make_store(self.path)
        self._after_restart()

    @precondition(lambda self: hasattr(self.store, "_crash_for_tests"))
    @rule()
    def crash(self):
        """kill -9 in process: handles dropped without close(); acknowledged writes survive."""
        self.store._crash_for_tests()
        self.store = self.make_store(self.path)
        self._after_restart()

    # -- invariants ----------------------------------------------------------------------
    @invariant()
    def contents_agree(self):
        for labels in self.pool:
            self._check_query(_exact_selector(labels), None, None, "forward", None)

    @invariant()
    def counts_agree(self):
        """Per stream, entries counted in 7-minute windows over the whole run (tie-proof)."""
        start = self.start_ns - 60 * _MINUTE
        for labels in self.pool:
            q = f"count_over_time({_exact_selector(labels)}[7m])"
            self._check_metric(q, start, self.base_ns + 60 * _MINUTE, 7 * _MINUTE)

    @invariant()
    def index_answers_agree(self):
        if not self.pool:
            return
        removed = self.ref.streams_with_removals()
        extra = {_key(lbl) for lbl in removed}
        got_streams, want_streams = set(), set()
        for labels in self.pool:
            sel = _exact_selector(labels)
            got_streams |= {_key(d) for d in self.store.series(sel)}
            want_streams |= {_key(d) for d in self.ref.series(sel)}
        assert want_streams <= got_streams <= want_streams | extra, (
            f"series: store {got_streams}, model {want_streams} (+ maybe {extra})")
        got_names = set(self.store.labels())
        want_names = set(self.ref.labels())
        maybe = {n for lbl in removed for n in lbl}
        assert want_names <= got_names <= want_names | maybe, (
            f"labels: store {sorted(got_names)}, model {sorted(want_names)}")
        g, w = self.store.stats(), self.ref.stats()
        slack, slack_bytes = self.ref.removed_entries, self.ref.removed_bytes
        assert w.entries <= g.entries <= w.entries + slack, (
            f"stats: store {g.entries} entries, model {w.entries} (+ up to {slack} removed)")
        assert w.bytes_raw <= g.bytes_raw <= w.bytes_raw + slack_bytes, (
            f"stats: store {g.bytes_raw} raw bytes, model {w.bytes_raw}")
        assert w.streams <= g.streams <= w.streams + len(removed), (
            f"stats: store {g.streams} streams, model {w.streams}")

    @invariant()
    def index_is_consistent(self):
        index = getattr(self.store, "index", None)
        if index is not None and hasattr(index, "check"):
            index.check()


def _same_result(got, want, limit) -> tuple[bool, str]:
    if got[0] != "ok" or want[0] != "ok":
        return got == want, f"store {got}, model {want}"
    g, w = got[1], want[1]
    if [r[0] for r in g] != [r[0] for r in (w if limit is None else w[:limit])]:
        return False, (f"timestamps differ: store {[r[0] for r in g]}, "
                       f"model {[r[0] for r in w][:limit]}")
    if limit is None:
        if sorted(g) != sorted(w):
            return False, f"entries differ: store {sorted(g)}, model {sorted(w)}"
    else:
        missing = [r for r in g if r not in set(w)]
        if missing:
            return False, f"store returned entries the model does not: {missing}"
    return True, ""
