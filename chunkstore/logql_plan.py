"""Planning a LogQL log query: from the AST to streams, scanner filter and pipeline.

The planner splits a query into what runs where:

* the stream selector becomes label :class:`~chunkstore.matchers.Matcher`\\ s
  resolved against postings;
* line filters that see the original line (every one before the first stage
  that rewrites the line: ``line_format``, ``decolorize``, ``unpack``) become
  clauses of the Cython scanner's ``Filter``, applied inside decompressed
  blocks before a line becomes a Python object.  ``|=`` / ``!=`` literal
  filters are *replaced* by their clause (the scanner's semantics are
  exactly theirs); regex and pattern filters contribute literal prefilters
  (``error|warn`` → two literals, ``(?i)timeout`` → a case-insensitive one)
  and still run in Python on the survivors;
* everything else runs per surviving line in the Python pipeline
  (``chunkstore.logql.pipeline``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from chunkstore import _kernels
from chunkstore import logql
from chunkstore.errors import QueryError
from chunkstore.logql import ast
from chunkstore.logql import formatters as fmt
from chunkstore.logql import label_filters as lf
from chunkstore.logql import line_filters as lines
from chunkstore.logql import parsers
from chunkstore.logql.pipeline import Pipeline
from chunkstore.matchers import Matcher

__all__ = ["LogPlan", "plan_log_query", "plan_from_ast", "parse_selector_matchers",
           "compile_stages", "to_matchers", "bare_process"]


@dataclass
class LogPlan:
    """What the querier needs to run a log query."""

    expr: ast.LogQuery
    matchers: list[Matcher]
    clauses: list[tuple[tuple[bytes, ...], bool, bool]]
    scan_filter: object
    pipeline: Pipeline | None

    @property
    def process(self):
        """``process(ts, line, metadata, stream_labels)`` for the querier, or None."""
        pipe = self.pipeline
        if pipe is None:
            return None
        cache: dict = {}

        def process(ts, line, meta, stream_labels):
            sp = cache.get(id(stream_labels))
            if sp is None:
                sp = cache[id(stream_labels)] = (pipe.for_stream(stream_labels), stream_labels)
            if meta:
                meta = [(_s(k), _s(v)) for k, v in meta]
            return sp[0].process(ts, line, meta)

        return process


def bare_process():
    """``process`` of a query with no pipeline stages, for entries with metadata.

    A query with only literal line filters runs no pipeline (the scanner did
    all of it); an entry's structured metadata still becomes labels the way
    every pipeline adds it (names normalised, ``_extracted`` on a clash with
    a stream label), so both paths return the same labels.
    """
    return LogPlan(None, [], [], None, Pipeline(())).process


def _s(v) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, (bytes, bytearray, memoryview)) else v


@functools.lru_cache(maxsize=256)
def _parse_log_query(text: str) -> ast.LogQuery:
    return logql.parse_log_query(text)


def to_matchers(selector: ast.Selector) -> list[Matcher]:
    return [Matcher(m.name, m.op, m.value) for m in selector.matchers]


@functools.lru_cache(maxsize=256)
def _selector_matchers(text: str) -> tuple[Matcher, ...]:
    return tuple(to_matchers(logql.parse_selector(text)))


def parse_selector_matchers(text: str) -> list[Matcher]:
    """Matchers of a ``{...}`` selector (also accepts a log query: its selector)."""
    if not isinstance(text, str):
        raise QueryError(f"selector: expected a string, got {type(text).__name__}")
    try:
        return list(_selector_matchers(text))
    except QueryError:
        expr = _parse_log_query(text)
        return to_matchers(expr.selector)


def plan_log_query(text: str) -> LogPlan:
    if not isinstance(text, str):
        raise QueryError(f"query: expected a LogQL string, got {type(text).__name__}")
    expr = _parse_log_query(text)
    return plan_from_ast(expr)


def plan_from_ast(expr: ast.LogQuery, *, stages=None) -> LogPlan:
    stages = expr.stages if stages is None else stages
    clauses, python_stages = compile_stages(stages)
    flt = _kernels.scan.Filter(clauses)
    pipe = Pipeline(python_stages) if python_stages else None
    return LogPlan(expr, to_matchers(expr.selector), clauses, flt, pipe)


_LINE_REWRITERS = (ast.LineFormat, ast.Decolorize, ast.UnpackParser)


def compile_stages(stages) -> tuple[list, list]:
    """Scanner clauses and Python stage objects for a tuple of AST stages."""
    clauses: list = []
    out: list = []
    original_line = True
    for st in stages:
        if isinstance(st, ast.LineFilter):
            stage = _line_filter(st)
            if original_line:
                replaced = _as_clause(stage)
                if replaced is not None:
                    if replaced is not True:
                        clauses.append(replaced)
                    continue
                pre = lines.literal_prefilters(stage) if not isinstance(stage, _AnyOf) else None
                for needles, ci in pre or ():
                    clauses.append((tuple(needles), False, bool(ci)))
            out.append(stage)
            continue
        if isinstance(st, _LINE_REWRITERS):
            original_line = False
        out.append(_stage(st))
    return clauses, out


def _as_clause(stage):
    """A scanner clause exactly equivalent to a literal filter, True for a no-op, else None."""
    if not isinstance(stage, lines.Contains):
        return None
    if stage.negate:
        return (stage.needles, True, False)
    if stage._const is True:
        return True
    return (stage._effective, False, False)


class _AnyOf(lines.LineFilter):
    """A positive ``or`` chain mixing literals and ``ip(...)``: keep a line any part keeps."""

    __slots__ = ("parts",)

    def __init__(self, parts):
        self.parts = tuple(parts)

    def match(self, line: bytes) -> bool:
        return any(p.match(line) for p in self.parts)


class _AllOf(lines.LineFilter):
    """A negated mixed chain: ``!= "a" or ip("x")`` drops a line any part matches."""

    __slots__ = ("parts",)

    def __init__(self, parts):
        self.parts = tuple(parts)

    def match(self, line: bytes) -> bool:
        return all(p.match(line) for p in self.parts)


def _line_filter(st: ast.LineFilter):
    op = st.op
    negate = op[0] == "!"
    if not any(st.ips):
        if op in ("|=", "!="):
            return lines.Contains(tuple(st.values), negate)
        if op in ("|~", "!~"):
            if len(st.values) == 1:
                return lines.Regex(st.values[0], negate)
            parts = [lines.Regex(v, False) for v in st.values]
        else:
            if len(st.values) == 1:
                return lines.PatternFilter(st.values[0], negate)
            parts = [lines.PatternFilter(v, False) for v in st.values]
    else:
        parts = [lines.IPFilter(v, False) if ip else lines.Contains((v,), False)
                 for v, ip in zip(st.values, st.ips)]
        if len(parts) == 1 and not negate:
            return parts[0]
    if negate:
        return _AllOf([_Not(p) for p in parts])
    return _AnyOf(parts)


class _Not(lines.LineFilter):
    __slots__ = ("inner",)

    def __init__(self, inner):
        self.inner = inner

    def match(self, line: bytes) -> bool:
        return not self.inner.match(line)


def _label_filter(e):
    if isinstance(e, ast.AndLabelFilter):
        return lf.AndFilter(_label_filter(e.left), _label_filter(e.right))
    if isinstance(e, ast.OrLabelFilter):
        return lf.OrFilter(_label_filter(e.left), _label_filter(e.right))
    if isinstance(e, ast.StringLabelFilter):
        return lf.StringLabelFilter(e.name, e.op, e.value)
    if isinstance(e, ast.NumericLabelFilter):
        return lf.NumericLabelFilter(e.name, e.op, e.value)
    if isinstance(e, ast.DurationLabelFilter):
        return lf.DurationLabelFilter(e.name, e.op, e.value_ns)
    if isinstance(e, ast.BytesLabelFilter):
        return lf.BytesLabelFilter(e.name, e.op, e.value)
    if isinstance(e, ast.IPLabelFilter):
        return lf.IPLabelFilter(e.name, e.op, e.pattern)
    raise QueryError(f"query: unsupported label filter {type(e).__name__}")


def _drop_keep_items(items):
    out = []
    for it in items:
        if isinstance(it, str):
            out.append((it, None))
        else:
            out.append((it.name, (it.op, it.value)))
    return out


def label_filter_stage(e):
    return _label_filter(e)


def _stage(st):
    if isinstance(st, ast.JSONParser):
        return parsers.JSONParser([(x.name, x.expression) for x in st.extractions] or None)
    if isinstance(st, ast.LogfmtParser):
        return parsers.LogfmtParser(st.strict, st.keep_empty,
                                    [(x.name, x.expression) for x in st.extractions] or None)
    if isinstance(st, ast.RegexpParser):
        return parsers.RegexpParser(st.pattern)
    if isinstance(st, ast.PatternParser):
        return parsers.PatternParser(st.pattern)
    if isinstance(st, ast.UnpackParser):
        return parsers.UnpackParser()
    if isinstance(st, ast.LabelFilter):
        return _label_filter(st.expr)
    if isinstance(st, ast.LineFormat):
        return fmt.LineFormat(st.template)
    if isinstance(st, ast.LabelFormat):
        return fmt.LabelFormat([(i.name, "rename" if i.rename else "template", i.value)
                                for i in st.items])
    if isinstance(st, ast.Drop):
        return fmt.DropLabels(_drop_keep_items(st.items))
    if isinstance(st, ast.Keep):
        return fmt.KeepLabels(_drop_keep_items(st.items))
    if isinstance(st, ast.Decolorize):
        return fmt.Decolorize()
    raise QueryError(f"query: unsupported pipeline stage {type(st).__name__}")
