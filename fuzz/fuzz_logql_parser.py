"""Fuzz the LogQL parser: hostile query text, and what a parsed query becomes.

The input bytes are decoded as UTF-8 (invalid bytes replaced) and parsed.

- ``parse`` may only refuse a query with :class:`QueryError`;
- a parsed query prints (``to_string``) to text that parses back to the same
  tree and prints the same again (parse, print, parse);
- a parsed log query plans (``plan_log_query``: regexes compiled with RE2,
  templates parsed, the scanner's literals extracted) and its pipeline runs
  over a few sample lines (logfmt, JSON, plain, binary, with structured
  metadata) without raising.

Planning may refuse a query with ``QueryError`` too; anything else is a
finding.  Inputs are the corpus queries, random syntax trees from
``chunkstore.logql._ast_strategies`` printed to text, and random bytes, all
put through mutations that also splice in the grammar's tokens.

Run: ``python fuzz/fuzz_logql_parser.py [--hypothesis] [--seconds N]``.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fuzzlib  # noqa: E402
from fuzzlib import Finding  # noqa: E402

from chunkstore import logql  # noqa: E402
from chunkstore.errors import QueryError  # noqa: E402
from chunkstore.logql_plan import plan_from_ast  # noqa: E402

NAME = "logql_parser"

TOKENS = (
    "{", "}", "(", ")", "[", "]", ",", "|", "|=", "!=", "|~", "!~", "|>", "!>", "=", "=~",
    "==", ">", ">=", "<", "<=", "+", "-", "*", "/", "%", "^", " and ", " or ", " unless ",
    " by ", " without ", " on ", " ignoring ", " group_left ", " group_right ", " bool ",
    " offset ", "| json", "| logfmt", "| regexp ", "| pattern ", "| unpack", "| line_format ",
    "| label_format ", "| drop ", "| keep ", "| decolorize", "| unwrap ", "duration(",
    "duration_seconds(", "bytes(", "ip(", "rate(", "count_over_time(", "bytes_over_time(",
    "sum", "avg", "topk(", "quantile_over_time(0.9,", "label_replace(", "vector(", "--strict",
    "--keep-empty", "[5m]", "[1h30m]", "5m", "1.5e3", "0x1f", "-0", "NaN", "Inf", "10KB",
    '"x"', '""', '"\\"', '"\\u00e9"', "`raw`", "`", '"', "{{ .x }}", "{{ printf \"%d\" 1 }}",
    "__error__", "__line__", "app", '{app="api"}', "#c\n", "\u00e9", "\x00", "\n", " ",
)

_STREAM = {"app": "api", "env": "prod"}
_LINES = (
    (1, b'level=error msg="boom" status=500 duration=1.5s bytes=10KB', None),
    (2, b'{"status": 404, "a": {"b": [1, "x"]}, "msg": "\\u00e9"}', ((b"trace", b"t1"),)),
    (3, b"GET /api/v1/users 200 12ms 10.0.0.1", None),
    (-(1 << 63), b"\x00\xff\x1b[31mred\x1b[0m\n", None),
)


def _pipeline_runs(tree) -> None:
    plan = plan_from_ast(tree)
    plan.scan_filter.matches(_LINES[0][1])
    process = plan.process  # what the querier calls for each entry
    if process is not None:
        for ts, line, meta in _LINES:
            process(ts, line, meta, _STREAM)


def check(data: bytes) -> bool:
    text = data.decode("utf-8", "replace")
    try:
        tree = logql.parse(text)
    except QueryError:
        return False
    printed = logql.to_string(tree)
    try:
        again = logql.parse(printed)
    except QueryError as exc:
        raise Finding(f"the printed query does not parse: {printed!r}: {exc}") from None
    if again != tree:
        raise Finding(f"parse(to_string(tree)) != tree for {text!r} printed as {printed!r}")
    if logql.to_string(again) != printed:
        raise Finding(f"printing is not stable for {printed!r}")
    if isinstance(tree, logql.ast.LogQuery):
        try:
            _pipeline_runs(tree)
        except QueryError:
            return False
    return True


def extra_seeds():
    """Random valid syntax trees, printed."""
    from chunkstore.logql import _ast_strategies

    return _ast_strategies.queries().map(lambda t: logql.to_string(t).encode())


if __name__ == "__main__":
    fuzzlib.main(NAME)
