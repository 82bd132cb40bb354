"""LogQL, the query language of chunkstore (Grafana Loki's, followed exactly).

The front end only: :func:`parse` turns query text into the typed tree of
:mod:`chunkstore.logql.ast`, :func:`to_string` turns a tree back into
canonical text. Evaluation lives elsewhere.
"""

from . import ast
from .ast import is_metric
from .parser import (
    MAX_DEPTH,
    MAX_QUERY_BYTES,
    parse,
    parse_expr,
    parse_log_query,
    parse_metric_query,
    parse_selector,
    validate_selector,
)
from .printer import to_string

__all__ = [
    "ast",
    "is_metric",
    "parse",
    "parse_expr",
    "parse_selector",
    "parse_log_query",
    "parse_metric_query",
    "validate_selector",
    "to_string",
    "MAX_DEPTH",
    "MAX_QUERY_BYTES",
]
