"""Vector aggregations (``sum``, ``avg``, ``topk``, ``sort``...) and ``label_replace``.

Each aggregation groups the series of its input step by step: ``by (l)``
keeps only the listed labels, ``without (l)`` drops them, no grouping puts
everything in one group with no labels.  The float algorithms are
Prometheus' (and Loki's), including their NaN and infinity behaviour:
``avg`` is an incremental mean that keeps an infinite mean rather than
turning it into NaN, ``min``/``max`` skip a leading NaN, ``stddev``/``stdvar``
use Welford's update (population variance), ``topk``/``bottomk`` rank NaN
last and keep the input labels, ``sort``/``sort_desc`` order an instant
vector by value with NaN last and leave range results alone.
"""

from __future__ import annotations

import math
import re  # fixed internal pattern only

from chunkstore.errors import QueryError
from chunkstore.logql import ast
from chunkstore.logql.evaluator import EvalContext, Scalar, by_step, evaluate

__all__ = ["eval_vector_aggregation", "eval_label_replace", "AGGREGATORS", "go_expand"]

NAN = float("nan")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")


def _sum(values: list) -> float:
    total = values[0]
    for v in values[1:]:
        total += v
    return total


def _avg(values: list) -> float:
    mean = values[0]
    count = 1
    for v in values[1:]:
        count += 1
        if math.isinf(mean):
            if math.isinf(v) and (mean > 0) == (v > 0):
                continue  # the same infinity: the mean is already right
            if not math.isinf(v) and not math.isnan(v):
                continue  # a finite value cannot move an infinite mean
        mean += v / count - mean / count
    return mean


def _min(values: list) -> float:
    m = values[0]
    for v in values[1:]:
        if m > v or math.isnan(m):
            m = v
    return m


def _max(values: list) -> float:
    m = values[0]
    for v in values[1:]:
        if m < v or math.isnan(m):
            m = v
    return m


def _stdvar(values: list) -> float:
    mean = values[0]
    acc = 0.0
    count = 1
    for v in values[1:]:
        count += 1
        delta = v - mean
        mean += delta / count
        acc += delta * (v - mean)
    return acc / count


def _stddev(values: list) -> float:
    return math.sqrt(_stdvar(values))


AGGREGATORS = {
    "sum": _sum,
    "avg": _avg,
    "min": _min,
    "max": _max,
    "count": lambda values: float(len(values)),
    "stdvar": _stdvar,
    "stddev": _stddev,
}


def group_key_fn(grouping: ast.Grouping | None):
    """Series key -> group key for ``by``/``without`` (no grouping: one group, no labels)."""
    if grouping is None:
        return lambda key: ()
    names = frozenset(grouping.labels)
    if grouping.without:
        return lambda key: tuple(p for p in key if p[0] not in names)
    return lambda key: tuple(p for p in key if p[0] in names)


def eval_vector_aggregation(expr: ast.VectorAggregation, ctx: EvalContext) -> dict:
    """Evaluate ``op [by|without (l)] ([param,] expr)`` on every step."""
    inner = evaluate(expr.expr, ctx)
    if isinstance(inner, Scalar):
        raise QueryError(f"query: {expr.op} needs a vector argument, got a scalar")
    op = expr.op
    instant = ctx.grid.n == 1
    if op in ("sort", "sort_desc"):
        return _sort(inner, op == "sort_desc") if instant else inner
    if op == "approx_topk" and not instant:
        raise QueryError("query: approx_topk is only supported for instant queries")
    key_fn = group_key_fn(expr.grouping)
    group_of = {key: key_fn(key) for key in inner}
    if op in ("topk", "bottomk", "approx_topk"):
        return _topk(inner, group_of, expr.param, op == "bottomk", instant)
    agg = AGGREGATORS.get(op)
    if agg is None:
        raise QueryError(f"query: unsupported vector aggregation {op}")
    # {group: {step: [values in series order]}}
    collected: dict = {}
    for key, row in inner.items():
        steps = collected.get(group_of[key])
        if steps is None:
            steps = collected[group_of[key]] = {}
        for i, v in row.items():
            values = steps.get(i)
            if values is None:
                steps[i] = [v]
            else:
                values.append(v)
    return {gkey: {i: agg(values) for i, values in steps.items()}
            for gkey, steps in collected.items()}


def _rank_key(descending: bool):
    if descending:
        return lambda item: (math.isnan(item[1]), -item[1])
    return lambda item: (math.isnan(item[1]), item[1])


def _topk(inner: dict, group_of: dict, k: int | None, bottom: bool, instant: bool) -> dict:
    if k is None:
        raise QueryError("parameter required for operation topk")
    out: dict = {}
    if k < 1:
        return out
    rank = _rank_key(not bottom)
    for i, points in sorted(by_step(inner).items()):
        groups: dict = {}
        for key, v in points:
            groups.setdefault(group_of[key], []).append((key, v))
        for candidates in groups.values():
            if len(candidates) > k:
                candidates = sorted(candidates, key=rank)[:k]
            elif instant:
                candidates.sort(key=rank)
            for key, value in candidates:
                row = out.get(key)
                if row is None:
                    row = out[key] = {}
                row[i] = value
    return out


def _sort(inner: dict, descending: bool) -> dict:
    rank = _rank_key(descending)
    items = [(key, row[0]) for key, row in inner.items() if 0 in row]
    items.sort(key=rank)
    return {key: {0: value} for key, value in items}


# ---------------------------------------------------------------------------
# label_replace


def _extract(template: str, i: int):
    """Go ``regexp.extract``: the ``$name`` / ``${name}`` reference at ``template[i:]``.

    Returns ``(name, num, next_index)`` or None when malformed; ``num`` is -1
    for a name that is not a plain group number.
    """
    brace = i < len(template) and template[i] == "{"
    j = i + 1 if brace else i
    start = j
    while j < len(template) and (template[j].isalpha() or template[j].isdecimal()
                                 or template[j] == "_"):
        j += 1
    if j == start:
        return None
    name = template[start:j]
    if brace:
        if j >= len(template) or template[j] != "}":
            return None
        j += 1
    num = -1
    if name.isascii() and name.isdigit() and not (name[0] == "0" and len(name) > 1):
        num = int(name) if len(name) <= 9 else -1
    return name, num, j


def go_expand(template: str, subject: bytes, spans, groupindex) -> str:
    """Go's ``Regexp.ExpandString``: ``$1``, ``${1}``, ``$name``, ``${name}``, ``$$``.

    ``spans`` are the group spans of the match in ``subject``; a reference to
    a missing or unmatched group expands to nothing; a malformed ``$`` is kept.
    """
    out: list = []
    i = 0
    n = len(template)
    while i < n:
        j = template.find("$", i)
        if j < 0:
            out.append(template[i:])
            break
        out.append(template[i:j])
        i = j + 1
        if i < n and template[i] == "$":
            out.append("$")
            i += 1
            continue
        ref = _extract(template, i)
        if ref is None:
            out.append("$")
            continue
        name, num, i = ref
        if num < 0:
            num = groupindex.get(name, -1)
        if 0 <= num < len(spans):
            s, e = spans[num]
            if s >= 0:
                out.append(subject[s:e].decode("utf-8", "replace"))
    return "".join(out)


def eval_label_replace(expr: ast.LabelReplace, ctx: EvalContext) -> dict:
    """``label_replace(v, dst, replacement, src, regex)`` as in Prometheus.

    Where the fully anchored ``regex`` matches the value of ``src`` (absent
    = ``""``), ``dst`` is set to the expanded ``replacement`` (removed when
    that is empty); other series pass unchanged.  Two series that end up
    with the same labels at the same step are an error.
    """
    from chunkstore.logql.line_filters import compile_re2, re2_go_spans

    inner = evaluate(expr.expr, ctx)
    if isinstance(inner, Scalar):
        raise QueryError("query: label_replace needs a vector argument, got a scalar")
    if not _LABEL_NAME.match(expr.dst):
        raise QueryError(f"invalid destination label name in label_replace(): {expr.dst}")
    rx = compile_re2("^(?:" + expr.regex + ")$", "label_replace")
    groupindex = dict(getattr(rx, "groupindex", {}) or {})
    out: dict = {}
    for key, row in inner.items():
        labels = dict(key)
        subject = labels.get(expr.src, "").encode("utf-8", "surrogatepass")
        spans, subject = re2_go_spans(rx, subject)
        new_key = key
        if spans is not None:
            value = go_expand(expr.replacement, subject, spans, groupindex)
            if value:
                labels[expr.dst] = value
            else:
                labels.pop(expr.dst, None)
            new_key = tuple(sorted(labels.items()))
        existing = out.get(new_key)
        if existing is None:
            out[new_key] = dict(row)
            continue
        for i, v in row.items():
            if i in existing:
                raise QueryError("vector cannot contain metrics with the same labelset")
            existing[i] = v
    return out
