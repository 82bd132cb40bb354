"""Hypothesis strategies for property-based tests of code that uses chunkstore.

Install with ``pip install 'chunkstore[hypothesis]'``; this module imports
Hypothesis at the top, so only import it from tests.  Each strategy draws
values that chunkstore accepts (unless its name says otherwise), shrinks
towards a small, readable example named in its docstring, and checks its
arguments when it is called, before anything is drawn, raising
:class:`hypothesis.errors.InvalidArgument` naming the bad parameter.

Data: :func:`label_names`, :func:`label_values`, :func:`label_sets`,
:func:`invalid_label_sets`, :func:`structured_metadata`, :func:`log_lines`,
:func:`timestamps`, :func:`entries`, :func:`streams`, :func:`push_batches`.
Queries (built as LogQL syntax trees and printed, so they always parse):
:func:`selectors`, :func:`line_filters`, :func:`queries`.  Stores:
:func:`stores` (a strategy of open stores, closed after each example) and
the pytest fixture :func:`chunkstore_store` (``from chunkstore.strategies
import chunkstore_store`` in a ``conftest.py``).

``st.from_type(chunkstore.Labels)`` draws validated :class:`~chunkstore.Labels`.
The model to test against is :class:`chunkstore.testing.ReferenceStore`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import weakref
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone

import hypothesis.strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.strategies import SearchStrategy

from chunkstore.errors import LabelError
from chunkstore.labels import DEFAULT_LIMITS, Labels
from chunkstore.logql import _ast_strategies as _ast_st
from chunkstore.logql import ast, parse_selector, to_string
from chunkstore.logql.lexer import KEYWORDS
from chunkstore.timeutil import I64_MAX, I64_MIN, to_ns

__all__ = [
    "chunkstore_store",
    "entries",
    "invalid_label_sets",
    "label_names",
    "label_sets",
    "label_values",
    "line_filters",
    "log_lines",
    "push_batches",
    "queries",
    "selectors",
    "stores",
    "streams",
    "structured_metadata",
    "timestamps",
]

#: Where :func:`timestamps` starts by default: 2024-01-01T00:00:00Z in ns.
DEFAULT_MIN_TS = 1_704_067_200_000_000_000
#: Default span of :func:`timestamps`: one day.
DEFAULT_SPAN_NS = 86_400 * 1_000_000_000
#: Kinds of :func:`log_lines`, in shrink order.
LINE_KINDS = ("empty", "plain", "logfmt", "json", "nginx", "unicode", "long")
#: Lines of kind "long" are at least this many bytes.
LONG_LINE_MIN = 1024

_COMMON_NAMES = ("app", "env", "namespace", "job", "host", "level", "region", "pod", "team")
_COMMON_VALUES = ("api", "prod", "dev", "web", "db", "staging", "payments", "eu-west-1", "x")
_NAME_HEAD = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_NAME_TAIL = _NAME_HEAD + "0123456789_"
_LOWER = "abcdefghijklmnopqrstuvwxyz"
_ASCII_TEXT = _LOWER + _LOWER.upper() + "0123456789 .,:;-_/()[]'!?#%&*+=<>@"
_LEVELS = ("info", "debug", "warn", "error")
_BAD_UTF8 = (b"\xff", b"\xc3", b"\x80", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xc0\xaf")
_METHODS = ("GET", "POST", "PUT", "DELETE", "HEAD", "PATCH")
_STATUSES = (200, 201, 204, 301, 304, 400, 401, 403, 404, 429, 500, 502, 503)
_AGENTS = ("curl/8.4.0", "Mozilla/5.0 (X11; Linux x86_64)", "kube-probe/1.29", "Go-http-client/1.1")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


# ---------------------------------------------------------------------------
# argument checks: run when a strategy is built, before anything is drawn

def _fail(func: str, message: str) -> InvalidArgument:
    return InvalidArgument(f"{func}: {message}")


def _check_int(func: str, name: str, value, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(func, f"{name} must be an int, got {value!r}")
    if lo is not None and value < lo:
        raise _fail(func, f"{name} must be at least {lo}, got {value}")
    if hi is not None and value > hi:
        raise _fail(func, f"{name} must be at most {hi}, got {value}")
    return value


def _check_sizes(func: str, min_size, max_size, lo: int, hi: int) -> None:
    _check_int(func, "min_size", min_size, lo, hi)
    _check_int(func, "max_size", max_size, lo, hi)
    if min_size > max_size:
        raise _fail(func, f"min_size {min_size} is larger than max_size {max_size}")


def _check_strategy(func: str, name: str, value) -> None:
    if value is not None and not isinstance(value, SearchStrategy):
        raise _fail(func, f"{name} must be a Hypothesis strategy or None, got {value!r}")


def _check_bool(func: str, name: str, value) -> None:
    if not isinstance(value, bool):
        raise _fail(func, f"{name} must be True or False, got {value!r}")


def _valid_name(name) -> bool:
    try:
        Labels.from_input({name: "x"})
    except LabelError:
        return False
    return True


def _ts_arg(func: str, name: str, value, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, datetime) or (isinstance(value, int) and not isinstance(value, bool)):
        try:
            return to_ns(value, what=name)
        except (TypeError, ValueError) as exc:
            raise _fail(func, str(exc)) from None
    raise _fail(func, f"{name} must be int nanoseconds or a datetime, got {value!r}")


# ---------------------------------------------------------------------------
# labels

def label_names() -> SearchStrategy[str]:
    """Label names chunkstore accepts and LogQL can write; shrinks towards ``"app"``.

    Names match ``[a-zA-Z_][a-zA-Z0-9_]*`` and do not start with ``__``
    (reserved).  LogQL keywords (``by``, ``json``, ``offset`` ...) are valid
    label names but cannot be named in a selector, so they are left out.
    Common names (``app``, ``env``, ``job`` ...) are drawn often so that
    label sets share names, as real ones do.
    """
    generated = st.builds(
        lambda under, head, tail: ("_" if under else "") + head + tail,
        st.booleans(), st.sampled_from(_NAME_HEAD), st.text(_NAME_TAIL, max_size=15),
    ).filter(lambda s: s.lower() not in KEYWORDS)
    return st.one_of(st.sampled_from(_COMMON_NAMES), generated)


def label_values(*, min_size: int = 1, max_size: int = 16) -> SearchStrategy[str]:
    """Label values: any non-empty Unicode text; shrinks towards ``"api"``.

    ``min_size``/``max_size`` bound the length in characters (1 <= min_size
    <= max_size <= 512, so a value never exceeds chunkstore's default
    ``max_label_value_length`` of 2048 bytes).  Control characters, quotes,
    backslashes and non-BMP characters all occur; lone surrogates (which
    cannot be encoded) do not.  Empty values are not values: chunkstore
    drops a label whose value is ``""``.
    """
    _check_sizes("label_values", min_size, max_size, 1, 512)
    text = st.text(st.characters(codec="utf-8"), min_size=min_size, max_size=max_size)
    common = [v for v in _COMMON_VALUES if min_size <= len(v) <= max_size]
    return st.one_of(st.sampled_from(common), text) if common else text


def label_sets(
    *,
    min_size: int = 1,
    max_size: int = 4,
    names: Iterable[str] | SearchStrategy[str] | None = None,
    values: SearchStrategy[str] | None = None,
) -> SearchStrategy[dict[str, str]]:
    """Label sets (``dict[str, str]``) that name a stream; shrinks towards ``{"app": "api"}``.

    Valid by chunkstore's default rules (:meth:`chunkstore.Labels.from_input`):
    ``min_size`` to ``max_size`` labels (1 <= min_size <= max_size <= 15,
    the default ``max_label_names``).  ``names`` is a collection of names to
    choose from or a strategy of names (default :func:`label_names`);
    ``values`` a strategy of values (default :func:`label_values`; empty
    strings it draws are discarded, since chunkstore drops empty labels).
    For :class:`chunkstore.Labels` objects use ``st.from_type(chunkstore.Labels)``.
    """
    func = "label_sets"
    _check_sizes(func, min_size, max_size, 1, DEFAULT_LIMITS.max_names)
    _check_strategy(func, "values", values)
    if names is None:
        name_st = label_names()
    elif isinstance(names, SearchStrategy):
        name_st = names
    elif isinstance(names, (str, bytes)) or not isinstance(names, Iterable):
        raise _fail(func, f"names must be a collection of label names or a strategy, got {names!r}")
    else:
        pool = sorted(set(names))
        for n in pool:
            if not isinstance(n, str) or not _valid_name(n):
                raise _fail(func, f"names holds an invalid label name {n!r}")
        if len(pool) < min_size:
            raise _fail(func, f"names has {len(pool)} distinct names, "
                              f"fewer than min_size {min_size}")
        name_st = st.sampled_from(pool)
    value_st = (label_values() if values is None else values).filter(bool)
    return st.dictionaries(name_st, value_st, min_size=min_size, max_size=max_size)


def _bad_names() -> SearchStrategy[str]:
    return st.one_of(
        st.just(""),
        st.builds(lambda d, t: d + t, st.sampled_from("0123456789"),
                  st.text(_NAME_TAIL, max_size=6)),
        st.builds(lambda h, c, t: h + c + t, st.sampled_from(_NAME_HEAD),
                  st.sampled_from("-.:/ ñé\n\"{}"), st.text(_NAME_TAIL, max_size=6)),
    )


def invalid_label_sets() -> SearchStrategy[dict]:
    """Label sets chunkstore always rejects with ``LabelError``; shrinks towards ``{}``.

    One defect each (possibly next to valid labels): no labels; only empty
    values; a malformed name (``"1a"``, ``"a-b"``, ``""``); a reserved name
    (``__x``); more than 15 labels; a name over 1024 bytes; a value over
    2048 bytes; a value or name that is not a ``str``; a value with a lone
    surrogate.  Checked against chunkstore's default limits.
    """
    extra = st.dictionaries(label_names(), label_values(max_size=6), max_size=2)

    def with_extra(bad: SearchStrategy[dict]) -> SearchStrategy[dict]:
        return st.builds(lambda b, e: {**e, **b}, bad, extra)

    one = lambda names, values: st.builds(lambda n, v: {n: v}, names, values)  # noqa: E731
    return st.one_of(
        st.just({}),
        st.dictionaries(label_names(), st.just(""), min_size=1, max_size=3),
        with_extra(one(_bad_names(), label_values())),
        with_extra(one(label_names().map(lambda n: "__" + n.lstrip("_")), label_values())),
        st.dictionaries(label_names(), label_values(max_size=4),
                        min_size=DEFAULT_LIMITS.max_names + 1,
                        max_size=DEFAULT_LIMITS.max_names + 3),
        with_extra(one(st.integers(DEFAULT_LIMITS.max_name_length + 1, 4096).map(lambda k: "n" * k),
                       label_values())),
        with_extra(one(label_names(), st.integers(DEFAULT_LIMITS.max_value_length + 1, 8192)
                       .map(lambda k: "v" * k))),
        with_extra(one(label_names(), st.one_of(st.integers(), st.none(), st.binary(max_size=4)))),
        with_extra(one(st.integers(), label_values())),
        with_extra(one(label_names(), st.builds(lambda a, b: a + "\ud800" + b,
                                                st.text(max_size=3, alphabet=_LOWER),
                                                st.text(max_size=3, alphabet=_LOWER)))),
    )


def structured_metadata(*, min_size: int = 0, max_size: int = 3) -> SearchStrategy[dict[str, str]]:
    """Structured metadata for an entry (``dict[str, str]``); shrinks towards ``{}``.

    Names are lower-case identifiers (``trace_id``-like), which Loki's name
    normalisation leaves unchanged; values are any text, possibly empty.
    """
    _check_sizes("structured_metadata", min_size, max_size, 0, 64)
    names = st.builds(lambda h, t: h + t, st.sampled_from(_LOWER),
                      st.text(_LOWER + "0123456789_", max_size=10)
                      ).filter(lambda s: s not in KEYWORDS)
    values = st.text(st.characters(codec="utf-8"), max_size=20)
    return st.dictionaries(names, values, min_size=min_size, max_size=max_size)


# ---------------------------------------------------------------------------
# log lines

def _ascii_text(max_size: int, min_size: int = 0) -> SearchStrategy[str]:
    return st.text(_ASCII_TEXT, min_size=min_size, max_size=max_size)


def _logfmt_value(v: str) -> str:
    if v and not any(c in v for c in ' ="\\\n\t'):
        return v
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _logfmt_lines() -> SearchStrategy[str]:
    keys = st.builds(lambda h, t: h + t, st.sampled_from(_LOWER),
                     st.text(_LOWER + "_", max_size=10))
    values = st.one_of(
        st.integers(-(10**6), 10**9).map(str),
        _ascii_text(20),
        st.builds(lambda n, u: f"{n}{u}", st.integers(0, 5000), st.sampled_from(("ms", "s", "us"))),
        st.text(st.characters(codec="utf-8"), max_size=12),
    )
    return st.builds(
        lambda level, msg, extra: f"level={level} msg={_logfmt_value(msg)}"
        + "".join(f" {k}={_logfmt_value(v)}" for k, v in extra),
        st.sampled_from(_LEVELS), _ascii_text(30), st.lists(st.tuples(keys, values), max_size=5),
    )


def _json_lines() -> SearchStrategy[str]:
    keys = st.text(_LOWER + "_", min_size=1, max_size=10).filter(
        lambda k: k not in ("level", "msg"))
    scalars = st.one_of(
        st.integers(-(2**53), 2**53), st.text(st.characters(codec="utf-8"), max_size=12),
        st.booleans(), st.none(), st.floats(allow_nan=False, allow_infinity=False),
    )
    values = st.recursive(
        scalars,
        lambda inner: st.one_of(st.lists(inner, max_size=3),
                                st.dictionaries(st.text(_LOWER, min_size=1, max_size=6), inner,
                                                max_size=3)),
        max_leaves=6,
    )
    return st.builds(
        lambda level, msg, extra: json.dumps({"level": level, "msg": msg, **extra},
                                             ensure_ascii=False, separators=(",", ":")),
        st.sampled_from(_LEVELS), _ascii_text(30), st.dictionaries(keys, values, max_size=4),
    )


def _clf_time(ts: int) -> str:
    d = datetime.fromtimestamp(ts // 1_000_000_000, tz=timezone.utc)
    return f"{d.day:02d}/{_MONTHS[d.month - 1]}/{d.year:04d}:{d:%H:%M:%S} +0000"


def _nginx_lines() -> SearchStrategy[str]:
    segment = st.text(_LOWER + "0123456789-_.", min_size=1, max_size=10)
    path = st.builds(
        lambda parts, q: "/" + "/".join(parts) + (f"?q={q}" if q else ""),
        st.lists(segment, max_size=4),
        st.one_of(st.none(), st.text(_LOWER + "0123456789", max_size=8)),
    )
    return st.builds(
        lambda ip, ts, method, p, status, size, agent:
        f'{ip} - - [{_clf_time(ts)}] "{method} {p} HTTP/1.1" {status} {size} "-" "{agent}"',
        st.ip_addresses(v=4).map(str),
        st.integers(DEFAULT_MIN_TS, DEFAULT_MIN_TS + DEFAULT_SPAN_NS - 1),
        st.sampled_from(_METHODS), path, st.sampled_from(_STATUSES), st.integers(0, 10**7),
        st.sampled_from(_AGENTS),
    )


def _unicode_lines() -> SearchStrategy[str]:
    return st.builds(
        lambda a, c, b: a + c + b,
        st.text(st.characters(codec="utf-8"), max_size=20),
        st.characters(codec="utf-8", min_codepoint=0x80),
        st.text(st.characters(codec="utf-8"), max_size=20),
    )


def _long_lines(max_size: int) -> SearchStrategy[str]:
    return st.builds(
        lambda piece, n: (piece * (n // len(piece) + 1))[:n],
        _ascii_text(16, min_size=1), st.integers(LONG_LINE_MIN, max_size),
    )


def _insert_bad(line: str, where: tuple[int, bytes] | None) -> bytes:
    raw = line.encode("utf-8")
    if where is None:
        return raw
    pos, bad = where
    pos %= len(raw) + 1
    return raw[:pos] + bad + raw[pos:]


def log_lines(
    *, kind: str | None = None, max_size: int = 64 * 1024, allow_invalid_utf8: bool = False
) -> SearchStrategy:
    """Log lines of realistic shapes; shrinks towards ``""``.

    ``kind`` picks one shape, None mixes them all (in this order, which is
    also the shrink order):

    ``"empty"``    ``""``
    ``"plain"``    ASCII text; minimal ``""``
    ``"logfmt"``   ``level=info msg="..." key=value ...``; minimal ``level=info msg=""``
    ``"json"``     one JSON object with ``level`` and ``msg``; minimal ``{"level":"info","msg":""}``
    ``"nginx"``    a combined access-log line; minimal ``0.0.0.0 - - [01/Jan/2024:00:00:00
                   +0000] "GET / HTTP/1.1" 200 0 "-" "curl/8.4.0"`` (one line)
    ``"unicode"``  text with at least one non-ASCII character; minimal ``"\\x80"``
    ``"long"``     ``LONG_LINE_MIN`` (1024) to ``max_size`` bytes; minimal ``"0" * 1024``

    Lines are ``str`` and at most ``max_size`` bytes in UTF-8 (default 64 KiB,
    well under the store's default ``max_line_size``; at least 1032, room
    for the shortest long line and an invalid byte sequence).  With
    ``allow_invalid_utf8=True`` lines are ``bytes`` instead, and some hold a
    byte sequence that is not UTF-8 (``entry.line`` shows it replaced,
    ``entry.raw`` keeps it).
    """
    func = "log_lines"
    if kind is not None and kind not in LINE_KINDS:
        raise _fail(func, f"kind must be None or one of {LINE_KINDS}, got {kind!r}")
    _check_int(func, "max_size", max_size, LONG_LINE_MIN + 8)
    _check_bool(func, "allow_invalid_utf8", allow_invalid_utf8)
    room = max_size - 8 if allow_invalid_utf8 else max_size
    builders = {
        "plain": lambda: _ascii_text(100),
        "logfmt": _logfmt_lines,
        "json": _json_lines,
        "nginx": _nginx_lines,
        "unicode": _unicode_lines,
        "empty": lambda: st.just(""),
        "long": lambda: _long_lines(room),
    }
    kinds = LINE_KINDS if kind is None else (kind,)
    parts = []
    for k in kinds:
        s = builders[k]()
        if k != "long":  # the others stay far below 1 KiB; this is only a guard
            s = s.filter(lambda line: len(line.encode("utf-8")) <= room)
        parts.append(s)
    lines = st.one_of(*parts) if len(parts) > 1 else parts[0]
    if not allow_invalid_utf8:
        return lines
    bad = st.one_of(st.none(), st.tuples(st.integers(0, 2**16), st.sampled_from(_BAD_UTF8)))
    return st.builds(_insert_bad, lines, bad)


# ---------------------------------------------------------------------------
# entries and streams

def _timestamps(func: str, min, max) -> SearchStrategy[int]:  # noqa: A002
    lo = None if min is None else _ts_arg(func, "min", min, 0)
    hi = None if max is None else _ts_arg(func, "max", max, 0)
    if lo is None and hi is None:
        lo = DEFAULT_MIN_TS
    if hi is None:
        hi = lo + DEFAULT_SPAN_NS - 1 if lo <= I64_MAX - DEFAULT_SPAN_NS else I64_MAX
    elif lo is None:
        lo = hi - DEFAULT_SPAN_NS + 1 if hi >= I64_MIN + DEFAULT_SPAN_NS else I64_MIN
    if lo > hi:
        raise _fail(func, f"min {lo} is larger than max {hi}")
    return st.integers(lo, hi)


def timestamps(*, min=None, max=None) -> SearchStrategy[int]:  # noqa: A002
    """Integer nanosecond timestamps in ``[min, max]``; shrinks towards ``min``.

    ``min``/``max`` are int ns or datetimes (naive meaning UTC).  By default
    the day from 2024-01-01T00:00:00Z (``DEFAULT_MIN_TS``); with only ``min``
    the day after it, with only ``max`` the day before it.  (When the range
    includes 0 Hypothesis shrinks towards 0 instead.)
    """
    return _timestamps("timestamps", min, max)


def entries(
    *,
    timestamps: SearchStrategy[int] | None = None,  # noqa: F811 - the parameter is the strategy
    lines: SearchStrategy | None = None,
    metadata: bool | SearchStrategy = False,
) -> SearchStrategy[tuple]:
    """Entries as ``Store.push`` takes them; shrinks towards ``(DEFAULT_MIN_TS, "")``.

    ``(ts, line)`` tuples, or ``(ts, line, metadata)`` when ``metadata`` is
    True (drawn from :func:`structured_metadata`) or a strategy of
    ``dict[str, str]``.  ``timestamps`` and ``lines`` default to
    :func:`timestamps` and :func:`log_lines`.
    """
    func = "entries"
    _check_strategy(func, "timestamps", timestamps)
    _check_strategy(func, "lines", lines)
    if not isinstance(metadata, (bool, SearchStrategy)):
        raise _fail(func, f"metadata must be True, False or a strategy, got {metadata!r}")
    ts_st = _timestamps(func, None, None) if timestamps is None else timestamps
    line_st = log_lines() if lines is None else lines
    if metadata is False:
        return st.tuples(ts_st, line_st)
    meta_st = structured_metadata() if metadata is True else metadata
    return st.tuples(ts_st, line_st, meta_st)


def _entry_key(e: tuple) -> tuple:
    line = e[1].encode("utf-8") if isinstance(e[1], str) else e[1]
    meta = tuple(sorted(e[2].items())) if len(e) == 3 and e[2] else ()
    return e[0], line, meta


def streams(
    *,
    labels: Mapping[str, str] | SearchStrategy | None = None,
    min_size: int = 1,
    max_size: int = 10,
    start: SearchStrategy[int] | None = None,
    max_gap_ns: int = 60 * 1_000_000_000,
    lines: SearchStrategy | None = None,
    metadata: bool | SearchStrategy = False,
    out_of_order: bool = False,
    duplicates: bool = False,
) -> SearchStrategy[tuple[dict, list]]:
    """One stream as ``(labels, entries)``, the item ``Store.push`` takes.

    Shrinks towards ``({"app": "api"}, [(DEFAULT_MIN_TS, "")])``.

    ``labels``: a fixed label set, a strategy, or None for :func:`label_sets`.
    ``min_size``/``max_size`` entries (before duplicates are added); the
    first at a timestamp from ``start`` (default :func:`timestamps`), each
    next one 0 to ``max_gap_ns`` later (default one minute), so entries are
    in time order, and ``max_size`` entries span at most
    ``max_size * max_gap_ns``.  Without ``duplicates`` no two entries are
    exact duplicates (same ts, line and metadata).

    ``out_of_order=True`` moves some entries up to 3 places earlier (so by
    at most ``3 * max_gap_ns``, well inside the default out-of-order window
    of one hour).  ``duplicates=True`` repeats some entries right after
    themselves; chunkstore (like Loki) drops an exact duplicate only while
    the first copy is still in the stream's open head block, which is
    always the case within one ``push``.
    """
    func = "streams"
    _check_sizes(func, min_size, max_size, 0, 10_000)
    _check_int(func, "max_gap_ns", max_gap_ns, 0)
    _check_strategy(func, "start", start)
    _check_strategy(func, "lines", lines)
    _check_bool(func, "out_of_order", out_of_order)
    _check_bool(func, "duplicates", duplicates)
    if not isinstance(metadata, (bool, SearchStrategy)):
        raise _fail(func, f"metadata must be True, False or a strategy, got {metadata!r}")
    if labels is None:
        label_st = label_sets()
    elif isinstance(labels, SearchStrategy):
        label_st = labels
    elif isinstance(labels, Mapping):
        try:
            Labels.from_input(labels)
        except LabelError as exc:
            raise _fail(func, f"labels is not a valid label set: {exc}") from None
        label_st = st.just(dict(labels))
    else:
        raise _fail(func, f"labels must be a mapping, a strategy or None, got {labels!r}")
    start_st = _timestamps(func, None, None) if start is None else start
    line_st = log_lines() if lines is None else lines
    meta_st = (None if metadata is False
               else structured_metadata() if metadata is True else metadata)
    item = st.tuples(
        st.integers(0, max_gap_ns), line_st,
        st.none() if meta_st is None else meta_st,
        st.booleans() if duplicates else st.just(False),
        st.integers(0, 3) if out_of_order else st.just(0),
    )

    @st.composite
    def build(draw):
        lbl = draw(label_st)
        ts = draw(start_st)
        items = draw(st.lists(item, min_size=min_size, max_size=max_size))
        out: list[tuple] = []
        seen: set = set()
        for i, (gap, line, meta, dup, _move) in enumerate(items):
            if i:
                ts += gap
            e = (ts, line) if meta_st is None else (ts, line, meta)
            while _entry_key(e) in seen:  # keep entries unique: nudge by 1 ns
                ts += 1
                e = (ts,) + e[1:]
            seen.add(_entry_key(e))
            out.append(e)
            if dup:
                out.append(e)
        if out_of_order:
            moves = [m for *_rest, m in items]
            for i, m in enumerate(moves):
                if m and i < len(out):
                    e = out.pop(i)
                    out.insert(max(0, i - m), e)
        return lbl, out

    return build()


def push_batches(
    *, min_size: int = 1, max_size: int = 4, streams: SearchStrategy | None = None  # noqa: F811
) -> SearchStrategy[list]:
    """Arguments for ``Store.push``: lists of ``(labels, entries)`` with distinct label sets.

    ``min_size``/``max_size`` streams per batch; ``streams`` a strategy of
    items (default :func:`streams`).  Shrinks towards
    ``[({"app": "api"}, [(DEFAULT_MIN_TS, "")])]``.
    """
    func = "push_batches"
    _check_sizes(func, min_size, max_size, 0, 1000)
    _check_strategy(func, "streams", streams)
    item = _streams_default() if streams is None else streams
    return st.lists(item, min_size=min_size, max_size=max_size,
                    unique_by=lambda s: frozenset((k, v) for k, v in s[0].items() if v != ""))


_streams_default = streams


# ---------------------------------------------------------------------------
# queries

def _re_escape(value: str) -> str:
    """A RE2 pattern matching exactly ``value`` (only RE2 metacharacters escaped)."""
    return "".join("\\" + c if c in "\\.+*?()|[]{}^$" else c for c in value)


def _matcher_on(name: str, value: str, *, selecting: bool) -> SearchStrategy[ast.Matcher]:
    """Matchers on a label the stream has, all matching ``value``."""
    any_ = "(?s).+" if "\n" in value else ".+"
    options = [
        ast.Matcher(name, "=", value),
        ast.Matcher(name, "=~", _re_escape(value)),
        ast.Matcher(name, "!=", ""),
        ast.Matcher(name, "=~", any_),
        ast.Matcher(name, "=~", _re_escape(value[:1]) + "(?s).*"),
    ]
    if not selecting:  # these also match the empty string
        options += [
            ast.Matcher(name, "!=", value + "x"),
            ast.Matcher(name, "!~", _re_escape(value) + "x"),
            ast.Matcher(name, "=~", _re_escape(value) + "|"),
        ]
    return st.sampled_from(options)


def _matcher_absent(name: str) -> SearchStrategy[ast.Matcher]:
    """Matchers on a label the stream lacks (its value reads as ``""``)."""
    return st.sampled_from([
        ast.Matcher(name, "=", ""),
        ast.Matcher(name, "!~", ".+"),
        ast.Matcher(name, "!=", "x"),
        ast.Matcher(name, "=~", ".*"),
    ])


def selectors(*, labels: Mapping[str, str] | None = None) -> SearchStrategy[str]:
    """Stream selector text (``{app="api", env=~"prod|dev"}``) that always parses.

    With ``labels`` (a label set), every selector drawn selects that stream:
    one matcher that does not match the empty string (``=``, an escaped
    ``=~``, ``!=""``, ``=~".+"``) on one of its labels, plus up to three
    more on its labels or on names it lacks.  Shrinks towards
    ``{NAME="VALUE"}`` on its first label (in sorted order).  Without
    ``labels``, arbitrary valid selectors over every operator, shrinking
    towards ``{app="0"}``.
    """
    func = "selectors"
    if labels is None:
        return _ast_st.selectors().map(to_string)
    if not isinstance(labels, Mapping):
        raise _fail(func, f"labels must be a mapping of label names to values, got {labels!r}")
    try:
        pairs = Labels.from_input(labels).pairs
    except LabelError as exc:
        raise _fail(func, f"labels is not a valid label set: {exc}") from None
    for n, _v in pairs:
        if n.lower() in KEYWORDS:
            raise _fail(func, f"labels has name {n!r}, a LogQL keyword no selector can name")
    present = {n for n, _ in pairs}
    others = st.one_of(
        st.integers(0, len(pairs) - 1).flatmap(
            lambda i: _matcher_on(pairs[i][0], pairs[i][1], selecting=False)),
        label_names().filter(lambda n: n not in present).flatmap(_matcher_absent),
    )

    @st.composite
    def build(draw):
        i = draw(st.integers(0, len(pairs) - 1))
        first = draw(_matcher_on(pairs[i][0], pairs[i][1], selecting=True))
        rest = draw(st.lists(others, max_size=3))
        pos = draw(st.integers(0, len(rest)))
        return to_string(ast.Selector(tuple(rest[:pos] + [first] + rest[pos:])))

    return build()


def line_filters() -> SearchStrategy[str]:
    """Line filter text to append to a selector: ``|= "a" or "b"``, ``|> "<_> error"`` ...

    Every operator, ``or`` chains and ``ip("...")`` filters; shrinks towards
    ``|= ""`` (which keeps every line).  ``selector + " " + filter`` always parses.
    """
    return _ast_st._line_filters().map(to_string)


def _replace_selectors(node, selector: ast.Selector):
    if isinstance(node, ast.Selector):
        return selector
    if isinstance(node, tuple):
        return tuple(_replace_selectors(x, selector) for x in node)
    if dataclasses.is_dataclass(node) and isinstance(node, ast.Node):
        changes = {}
        for f in dataclasses.fields(node):
            v = getattr(node, f.name)
            nv = _replace_selectors(v, selector)
            if nv is not v:
                changes[f.name] = nv
        return dataclasses.replace(node, **changes) if changes else node
    return node


def _compiles(tree) -> bool:
    """Whether every pipeline builds (Loki refuses ``| logfmt x="a.b"`` when it runs)."""
    from chunkstore.errors import QueryError
    from chunkstore.logql_plan import compile_stages

    for node in ast.walk(tree):
        if isinstance(node, (ast.LogQuery, ast.LogRange)):
            try:
                compile_stages(node.stages)
            except QueryError:
                return False
    return True


def queries(*, kind: str | None = None, selector: SearchStrategy[str] | None = None
            ) -> SearchStrategy[str]:
    """LogQL query text, built as a syntax tree and printed, so it always parses.

    Every pipeline in it also compiles, so a log query runs on a store
    (metric queries may still hit evaluation-time checks Loki has, such as
    series left with an ``__error__`` label).

    ``kind``: ``"log"`` (selector plus pipeline: line filters, parsers,
    label filters, formatters, drop/keep), ``"metric"`` (range and vector
    aggregations, binary operators, literals), or None for both.
    ``selector``: a strategy of selector text (for example
    ``selectors(labels=...)``) used for every selector of the query, so it
    selects the streams you care about.  Shrinks towards a bare selector
    (``{app="0"}``) for log queries and ``count_over_time({app="0"}[1ms])``
    for metric queries.  A metric query takes a few milliseconds to draw
    (a log query about as long), more than most strategies: suppress
    ``HealthCheck.too_slow`` in tests that draw many.
    """
    func = "queries"
    if kind not in (None, "log", "metric"):
        raise _fail(func, f"kind must be None, 'log' or 'metric', got {kind!r}")
    _check_strategy(func, "selector", selector)
    trees = {"log": _ast_st.log_queries, "metric": _ast_st.metric_exprs,
             None: _ast_st.queries}[kind]().filter(_compiles)
    if selector is None:
        return trees.map(to_string)
    return st.tuples(trees, selector.map(parse_selector)).map(
        lambda t: to_string(_replace_selectors(t[0], t[1])))


# ---------------------------------------------------------------------------
# stores

_STORE_SHAPES = st.fixed_dictionaries({
    # shrink towards chunkstore's defaults (the first of each list)
    "block_size": st.sampled_from([256 * 1024, 4096, 512]),
    "chunk_target_size": st.sampled_from([1536 * 1024, 16 * 1024, 2048]),
    "codec": st.sampled_from(["lz4", "none", "lz4hc"]),
})


def _close_and_remove(store, path: str) -> None:
    try:
        store.close()
    finally:
        shutil.rmtree(path, ignore_errors=True)


def stores(tmp_path: str | os.PathLike | None = None, **options) -> SearchStrategy:
    """Open, empty stores, each in a fresh directory under ``tmp_path``.

    The block size, chunk size and codec are drawn (shrinking towards
    chunkstore's defaults) so that small tests still cross block and chunk
    boundaries; ``options`` are passed to :func:`chunkstore.open` and win
    over drawn ones.  ``maintenance_interval`` defaults to 0 (no background
    thread) so results never depend on timing.  Inside a Hypothesis test
    each store is closed and its directory removed when the example ends;
    outside one (``.example()``) the directory is removed when the store is
    garbage-collected.  ``tmp_path`` defaults to the system temp directory;
    with pytest use ``tmp_path_factory.mktemp(...)`` or pass the function's
    ``tmp_path`` and suppress ``HealthCheck.function_scoped_fixture``.
    """
    import chunkstore
    from chunkstore.options import StoreOptions

    func = "stores"
    try:
        StoreOptions.from_kwargs(**{k: v for k, v in options.items() if k != "read_only"})
    except (TypeError, ValueError) as exc:
        raise _fail(func, f"invalid store options: {exc}") from None
    if tmp_path is not None and not isinstance(tmp_path, (str, os.PathLike)):
        raise _fail(func, f"tmp_path must be a path or None, got {tmp_path!r}")
    base = None if tmp_path is None else os.fspath(tmp_path)

    def open_one(shape: dict):
        from hypothesis.control import cleanup

        if base is not None:
            os.makedirs(base, exist_ok=True)
        path = tempfile.mkdtemp(prefix="chunkstore-", dir=base)
        opts = {"maintenance_interval": 0, **shape, **options}
        store = chunkstore.open(os.path.join(path, "store"), **opts)
        try:
            cleanup(lambda: _close_and_remove(store, path))
        except InvalidArgument:  # not inside a test: no build context
            weakref.finalize(store, shutil.rmtree, path, True)
        return store

    return _STORE_SHAPES.map(open_one)


try:
    import pytest as _pytest
except ImportError:  # pragma: no cover - pytest is optional
    _pytest = None

if _pytest is not None:

    @_pytest.fixture
    def chunkstore_store(request, tmp_path):
        """An open, empty store in ``tmp_path``, closed after the test.

        Options come from a ``chunkstore_options`` fixture (a dict) when the
        test module or a conftest defines one.  For example-based tests; in a
        Hypothesis ``@given`` test use :func:`stores`, which gives every
        example a fresh store.
        """
        import chunkstore

        try:
            options = request.getfixturevalue("chunkstore_options")
        except _pytest.FixtureLookupError:
            options = {}
        store = chunkstore.open(tmp_path / "chunkstore", **{"maintenance_interval": 0, **options})
        try:
            yield store
        finally:
            store.close()
else:  # pragma: no cover
    chunkstore_store = None


st.register_type_strategy(Labels, st.deferred(lambda: label_sets().map(Labels.from_input)))


def _hypothesis_setup_hook() -> None:
    """Hypothesis' plugin entry point (pyproject.toml): importing this module
    registered ``st.from_type(Labels)`` above; nothing else to do."""
