"""Binary operators of LogQL metric queries: arithmetic, comparisons and set operations.

Semantics are Loki's, which are Prometheus' with two differences: division
and modulo by zero give NaN (Loki guards them), and there is no metric
name to drop.  Float operations follow Go (``%`` is ``math.Mod``, ``^`` is
``math.Pow``, comparisons with NaN are false except ``!=``).

* vector ``op`` scalar (either side): applied to every point; a comparison
  without ``bool`` keeps the point with the *vector's* value, with ``bool``
  it gives 0 or 1.
* vector ``op`` vector: points are matched by signature, all labels by
  default, ``on (l)`` / ``ignoring (l)`` otherwise; one-to-one unless
  ``group_left`` (many-to-one) or ``group_right`` (one-to-many), whose
  ``(labels)`` are copied from the "one" side.  Duplicate signatures on the
  side that must be unique are errors, worded as Prometheus and Loki word
  them.
* ``and`` / ``or`` / ``unless``: set operations on signatures, per step.
"""

from __future__ import annotations

import math
import operator

from chunkstore.errors import QueryError
from chunkstore.logql import ast
from chunkstore.logql.evaluator import EvalContext, Scalar, by_step, evaluate

__all__ = ["eval_binary", "scalar_binop", "arithmetic", "go_pow", "go_mod", "COMPARISONS"]

NAN = float("nan")
INF = float("inf")

COMPARISONS = {
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
SET_OPS = ("and", "or", "unless")


def go_mod(a: float, b: float) -> float:
    """Go's ``math.Mod``: the remainder, signed like ``a``; NaN for ``b == 0`` or infinite ``a``."""
    try:
        return math.fmod(a, b)
    except ValueError:
        return NAN


def _is_odd_int(y: float) -> bool:
    return math.isfinite(y) and y == math.floor(y) and math.fmod(y, 2.0) != 0.0


def go_pow(x: float, y: float) -> float:
    """Go's ``math.Pow``: C99 ``pow`` special cases, NaN/±Inf instead of exceptions."""
    try:
        return math.pow(x, y)
    except ValueError:
        if x == 0.0:  # 0 ** negative: ±Inf (the sign survives for odd integer powers)
            return math.copysign(INF, x) if _is_odd_int(y) else INF
        return NAN  # negative base, non-integer exponent
    except OverflowError:
        return -INF if x < 0 and _is_odd_int(y) else INF


def arithmetic(op: str, a: float, b: float) -> float:
    """``a op b`` for ``+ - * / % ^`` with Loki's float semantics."""
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        return NAN if b == 0 else a / b
    if op == "%":
        return NAN if b == 0 else go_mod(a, b)
    if op == "^":
        return go_pow(a, b)
    raise QueryError(f"query: unknown arithmetic operator {op!r}")


def scalar_binop(op: str, a: float, b: float) -> float:
    """``a op b`` for two scalars: arithmetic, or 1/0 for a comparison (Loki folds literals so)."""
    cmp = COMPARISONS.get(op)
    if cmp is not None:
        return 1.0 if cmp(a, b) else 0.0
    if op in SET_OPS:
        raise QueryError(f"query: the set operator {op} needs vectors on both sides")
    return arithmetic(op, a, b)


def eval_binary(expr: ast.BinaryOp, ctx: EvalContext):
    """Evaluate a binary operation node (see the module docstring)."""
    lhs = evaluate(expr.lhs, ctx)
    rhs = evaluate(expr.rhs, ctx)
    lscalar, rscalar = isinstance(lhs, Scalar), isinstance(rhs, Scalar)
    if lscalar and rscalar:
        return Scalar(scalar_binop(expr.op, lhs.value, rhs.value))
    if expr.op in SET_OPS:
        if lscalar or rscalar:
            raise QueryError(f"query: the set operator {expr.op} needs vectors on both sides")
        return _set_operation(expr.op, lhs, rhs, expr.matching)
    if rscalar:
        return _vector_scalar(expr.op, lhs, rhs.value, False, expr.return_bool)
    if lscalar:
        return _vector_scalar(expr.op, rhs, lhs.value, True, expr.return_bool)
    return _vector_vector(expr.op, lhs, rhs, expr.matching, expr.return_bool)


# ---------------------------------------------------------------------------
# vector and scalar


def _vector_scalar(op: str, matrix: dict, scalar: float, scalar_left: bool,
                   return_bool: bool) -> dict:
    out: dict = {}
    cmp = COMPARISONS.get(op)
    for key, row in matrix.items():
        new: dict = {}
        for i, v in row.items():
            a, b = (scalar, v) if scalar_left else (v, scalar)
            if cmp is not None:
                ok = cmp(a, b)
                if return_bool:
                    new[i] = 1.0 if ok else 0.0
                elif ok:
                    new[i] = v  # the vector's value, whichever side it is on
            else:
                new[i] = arithmetic(op, a, b)
        if new:
            out[key] = new
    return out


# ---------------------------------------------------------------------------
# vector matching


def _signature_fn(matching: ast.VectorMatching | None):
    """Key -> matching signature: all labels, ``on`` labels, or all but ``ignoring`` labels."""
    if matching is None:
        return lambda key: key
    names = frozenset(matching.labels)
    if matching.on:
        return lambda key: tuple(p for p in key if p[0] in names)
    return lambda key: tuple(p for p in key if p[0] not in names)


def _fmt_key(key: tuple) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in key) + "}"


def _result_key(many: tuple, one: tuple, matching: ast.VectorMatching | None) -> tuple:
    """Prometheus' ``resultMetric``: the labels of an output point."""
    if matching is None:
        return many
    labels = dict(many)
    if matching.card == "one-to-one":
        names = set(matching.labels)
        if matching.on:
            labels = {k: v for k, v in labels.items() if k in names}
        else:
            for name in names:
                labels.pop(name, None)
    else:
        one_labels = dict(one)
        for name in matching.include:
            value = one_labels.get(name, "")
            if value:
                labels[name] = value
            else:
                labels.pop(name, None)
    return tuple(sorted(labels.items()))


def _vector_vector(op: str, lhs: dict, rhs: dict, matching: ast.VectorMatching | None,
                   return_bool: bool) -> dict:
    card = matching.card if matching is not None else "one-to-one"
    sig = _signature_fn(matching)
    if card == "one-to-many":
        many, one, one_side = rhs, lhs, "left"
    else:
        many, one, one_side = lhs, rhs, "right"
    many_sigs = {k: sig(k) for k in many}
    one_sigs = {k: sig(k) for k in one}
    one_steps = by_step(one)
    cmp = COMPARISONS.get(op)
    out: dict = {}
    result_keys: dict = {}
    for i, many_points in sorted(by_step(many).items()):
        one_points = one_steps.get(i)
        if not one_points:
            continue
        index: dict = {}
        for key, v in one_points:
            s = one_sigs[key]
            if s in index:
                raise QueryError(
                    f"found duplicate series for the match group {_fmt_key(s)} on the {one_side} "
                    f"hand-side of the operation: [{_fmt_key(index[s][0])}, {_fmt_key(key)}];"
                    "many-to-many matching not allowed: matching labels must be unique on one side")
            index[s] = (key, v)
        matched: set = set()
        inserted: set = set()
        for key, v in many_points:
            s = many_sigs[key]
            found = index.get(s)
            if found is None:
                continue
            okey, ov = found
            if card == "one-to-one":
                if s in matched:
                    raise QueryError("multiple matches for labels: many-to-one matching must be "
                                     "explicit (group_left/group_right)")
                matched.add(s)
            a, b = (ov, v) if card == "one-to-many" else (v, ov)
            if cmp is not None:
                ok = cmp(a, b)
                if return_bool:
                    value = 1.0 if ok else 0.0
                elif ok:
                    value = a
                else:
                    continue
            else:
                value = arithmetic(op, a, b)
            pair = (key, okey)
            rkey = result_keys.get(pair)
            if rkey is None:
                rkey = result_keys[pair] = _result_key(key, okey, matching)
            if card != "one-to-one":
                if rkey in inserted:
                    raise QueryError("multiple matches for labels: grouping labels must ensure "
                                     "unique matches")
                inserted.add(rkey)
            row = out.get(rkey)
            if row is None:
                row = out[rkey] = {}
            row[i] = value
    return out


def _set_operation(op: str, lhs: dict, rhs: dict, matching: ast.VectorMatching | None) -> dict:
    sig = _signature_fn(matching)
    lsigs = {k: sig(k) for k in lhs}
    rsigs = {k: sig(k) for k in rhs}
    rsteps = {i: {rsigs[k] for k, _v in points} for i, points in by_step(rhs).items()}
    out: dict = {}
    if op in ("and", "unless"):
        keep_if_matched = op == "and"
        for key, row in lhs.items():
            s = lsigs[key]
            new = {i: v for i, v in row.items()
                   if (s in rsteps.get(i, ())) == keep_if_matched}
            if new:
                out[key] = new
        return out
    # or: every lhs point, plus rhs points whose signature the lhs lacks at that step
    lsteps = {i: {lsigs[k] for k, _v in points} for i, points in by_step(lhs).items()}
    for key, row in lhs.items():
        out[key] = dict(row)
    for key, row in rhs.items():
        s = rsigs[key]
        new = {i: v for i, v in row.items() if s not in lsteps.get(i, ())}
        if new:
            target = out.setdefault(key, {})
            target.update(new)
    return out
