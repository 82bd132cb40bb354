"""LogQL label filter stages: ``| status >= 400``, ``| level=~"err.*"``, ``| addr = ip("10.0.0.0/8")``.

Semantics from Loki's pkg/logql/log/label_filter.go:

* String filters (``=``, ``!=``, ``=~``, ``!~``) compare the label value, an
  absent label being ``""``; ``__error__`` reads the builder's error, so
  ``| __error__=""`` drops errored lines.  They are the only filters that can
  test ``__error__``.  Regexes are fully anchored (``^(?:re)$``) and ``.``
  does not match newline, as Loki's label-filter regexes; ``.*`` keeps
  everything and ``.+`` keeps any non-empty value, Loki's rewrites.
* Numeric, duration and bytes filters drop the line when the label is
  absent.  When the value does not convert they keep the line and set
  ``__error__="LabelFilterErr"`` with Go's conversion message in
  ``__error_details__`` — unless an error is already set, which is kept.
* ``ip()`` label filters keep the line when an error is already set, drop it
  when the label is absent, else look for a matching IP inside the value.
* ``and`` evaluates both sides (the right one even when the left failed);
  ``or`` skips the right side when the left passed.

Known deviation, on purpose: Loki's regex simplifier turns some label
regexes into substring tests (``name=~"al.*"`` also matches ``prealpha``,
grafana/loki#14433); here the documented whole-value anchoring applies.
"""

from __future__ import annotations

import operator
from typing import Callable

from chunkstore.errors import QueryError
from chunkstore.logql.labels_builder import ERR_LABEL_FILTER, ERROR_LABEL, LabelsBuilder
from chunkstore.logql.line_filters import (
    _ANCHOR_BOTH,
    IPMatcher,
    _whole_pattern_shape,
    compile_re2,
    re2_go_spans,
)
from chunkstore.logql.units import GoParseError, parse_bytes, parse_go_duration_ns, parse_go_float

__all__ = [
    "LabelFilter",
    "StringLabelFilter",
    "NumericLabelFilter",
    "DurationLabelFilter",
    "BytesLabelFilter",
    "IPLabelFilter",
    "AndFilter",
    "OrFilter",
    "LabelMatcher",
]

_COMPARE: dict[str, Callable] = {
    "==": operator.eq,
    "=": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


class LabelFilter:
    """Base of the label filter stages: ``process(ts, line, lb) -> (line, keep)``."""

    __slots__ = ()

    def process(self, ts: int, line: bytes, lb: LabelsBuilder) -> tuple[bytes, bool]:  # pragma: no cover
        raise NotImplementedError


class LabelMatcher:
    """A string matcher ``name op value`` usable on any string (label filters, drop, keep).

    ``op`` is ``=``, ``!=``, ``=~`` or ``!~``.  With ``prometheus=True`` the
    regex follows Prometheus label matchers (``^(?s:re)$``: ``.`` matches
    newline), as Loki's ``drop``/``keep`` use; otherwise Loki's label filter
    form (``^(?:re)$``).  Raises QueryError for an unknown op or a bad regex.
    """

    __slots__ = ("name", "op", "value", "_rx", "_negate", "_shape")

    def __init__(self, name: str, op: str, value: str, *, prometheus: bool = False):
        if op not in ("=", "!=", "=~", "!~"):
            raise QueryError(f"label matcher: unknown operator {op!r} for label {name!r}")
        self.name, self.op, self.value = name, op, value
        self._negate = op in ("!=", "!~")
        self._rx = None
        self._shape = None
        if op in ("=~", "!~"):
            compile_re2(value, f"label matcher {name}")  # the pattern must stand alone
            self._rx = compile_re2(("(?s:%s)" if prometheus else "(?:%s)") % value, f"label matcher {name}",
                                   captures=False)
            if not prometheus:
                self._shape = _whole_pattern_shape(value)

    def matches(self, value: str) -> bool:
        """Whether ``value`` satisfies the matcher."""
        if self._rx is None:
            return (value == self.value) != self._negate
        shape = self._shape
        if shape == "true":
            ok = True
        elif shape == "exists":
            ok = value != ""
        else:
            spans, _ = re2_go_spans(self._rx, value.encode("utf-8", "surrogatepass"), _ANCHOR_BOTH)
            ok = spans is not None
        return ok != self._negate

    def __repr__(self) -> str:
        return f"LabelMatcher({self.name!r}, {self.op!r}, {self.value!r})"


class StringLabelFilter(LabelFilter):
    """``| name = "v"``, ``!= "v"``, ``=~ "re"``, ``!~ "re"``.

    An absent label compares as ``""``.  ``name="__error__"`` tests the
    current error (``| __error__ = ""`` keeps only lines without one).
    Raises QueryError for an unknown op or invalid regex.
    """

    __slots__ = ("name", "op", "value", "_matcher", "_is_error")

    def __init__(self, name: str, op: str, value: str):
        self.name, self.op, self.value = name, op, value
        self._matcher = LabelMatcher(name, op, value)
        self._is_error = name == ERROR_LABEL

    def process(self, ts, line, lb):
        if self._is_error:
            return line, self._matcher.matches(lb.err)
        v = lb.get(self.name)
        return line, self._matcher.matches("" if v is None else v)

    def __repr__(self) -> str:
        return f"StringLabelFilter({self.name!r}, {self.op!r}, {self.value!r})"


class _ConvertingFilter(LabelFilter):
    """Shared logic of the numeric, duration and bytes filters."""

    __slots__ = ("name", "op", "value", "_cmp")

    def __init__(self, name: str, op: str, value):
        cmp = _COMPARE.get(op)
        if cmp is None:
            raise QueryError(f"label filter: unknown comparison {op!r} for label {name!r}")
        self.name, self.op, self.value, self._cmp = name, op, value, cmp

    @staticmethod
    def _convert(text: str):  # pragma: no cover - abstract
        raise NotImplementedError

    def process(self, ts, line, lb):
        v = lb.get(self.name)
        if v is None:
            return line, False
        try:
            converted = self._convert(v)
        except GoParseError as exc:
            if not lb.err:  # keep a more useful earlier error
                lb.set_error(ERR_LABEL_FILTER, str(exc))
            return line, True
        return line, self._cmp(converted, self.value)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.op!r}, {self.value!r})"


class NumericLabelFilter(_ConvertingFilter):
    """``| name op 1.5`` with op ``== = != > >= < <=``; the label parsed by Go's ParseFloat.

    NaN compares unequal to everything (``!=`` true), as in Go.
    """

    __slots__ = ()

    def __init__(self, name: str, op: str, value: float):
        super().__init__(name, op, float(value))

    _convert = staticmethod(parse_go_float)


class DurationLabelFilter(_ConvertingFilter):
    """``| latency > 250ms``: ``value_ns`` in nanoseconds, the label parsed by Go's ParseDuration."""

    __slots__ = ()

    def __init__(self, name: str, op: str, value_ns: int):
        super().__init__(name, op, int(value_ns))

    _convert = staticmethod(parse_go_duration_ns)


class BytesLabelFilter(_ConvertingFilter):
    """``| size >= 20KB``: ``value_bytes`` as an integer, the label parsed by humanize.ParseBytes."""

    __slots__ = ()

    def __init__(self, name: str, op: str, value_bytes: int):
        super().__init__(name, op, int(value_bytes))

    _convert = staticmethod(parse_bytes)


class IPLabelFilter(LabelFilter):
    """``| addr = ip("192.168.0.0/16")`` or ``!=``.

    Keeps the line if an error is already set; drops it if the label is
    absent; otherwise ``=`` keeps it when Loki's IP scanner finds a matching
    address anywhere in the value.  Raises QueryError for a bad spec or op.
    """

    __slots__ = ("name", "op", "spec", "_matcher", "_negate")

    def __init__(self, name: str, op: str, spec: str):
        if op not in ("=", "==", "!="):
            raise QueryError(f"ip label filter: operator {op!r} not allowed, use = or !=")
        self.name, self.op, self.spec = name, op, spec
        self._negate = op == "!="
        self._matcher = IPMatcher(spec)

    def process(self, ts, line, lb):
        if lb.err:
            return line, True
        v = lb.get(self.name)
        if v is None:
            return line, False
        return line, self._matcher.search(v.encode("utf-8", "surrogatepass")) != self._negate

    def __repr__(self) -> str:
        return f"IPLabelFilter({self.name!r}, {self.op!r}, {self.spec!r})"


class AndFilter(LabelFilter):
    """``a and b`` (also ``a, b``, ``a b``, ``a | b``): both sides run, both must pass."""

    __slots__ = ("left", "right")

    def __init__(self, left, right):
        self.left, self.right = left, right

    def process(self, ts, line, lb):
        line, lok = self.left.process(ts, line, lb)
        line, rok = self.right.process(ts, line, lb)
        return line, lok and rok

    def __repr__(self) -> str:
        return f"AndFilter({self.left!r}, {self.right!r})"


class OrFilter(LabelFilter):
    """``a or b``: the right side runs only when the left one fails."""

    __slots__ = ("left", "right")

    def __init__(self, left, right):
        self.left, self.right = left, right

    def process(self, ts, line, lb):
        line, lok = self.left.process(ts, line, lb)
        if lok:
            return line, True
        return self.right.process(ts, line, lb)

    def __repr__(self) -> str:
        return f"OrFilter({self.left!r}, {self.right!r})"
