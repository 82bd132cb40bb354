"""Hypothesis strategies that build random, valid LogQL syntax trees.

Every tree drawn here is one the parser could have produced: names are
identifiers that are not keywords, regexes compile, selectors select,
aggregations get the arguments Loki allows. So ``parse(to_string(tree)) ==
tree`` must hold for each of them, which is what the printer tests check;
the shipped ``chunkstore.strategies`` can build query text on top of them.

Hypothesis is imported inside the functions, so importing this module (or
the LogQL package) does not require it. Strategies shrink towards short
selectors, no pipeline stages, and ``count_over_time``-style leaves.

Every function builds its strategy once and returns the same object on
later calls (``functools.cache``), and ``@composite`` bodies draw only from
strategies built outside them. Building a strategy is not free (a
``from_regex`` compiles its regex, and Hypothesis validates every new
strategy tree on its first draw), so a strategy made inside a draw, or on
every call of a function used inside one, costs that on every example:
before this was done a metric expression took about 75 ms to draw.
Strategies are immutable, so sharing them is safe.
"""

from __future__ import annotations

from functools import cache

from . import ast
from .lexer import KEYWORDS

__all__ = [
    "label_names",
    "label_values",
    "matchers",
    "selectors",
    "stages",
    "label_filter_exprs",
    "log_queries",
    "log_ranges",
    "range_aggregations",
    "metric_exprs",
    "queries",
]

# Valid RE2 patterns, some matching the empty string and some not.
_REGEXES = (
    ".*",
    ".+",
    "a|b",
    "(?i)err(or)?",
    "[0-9]+",
    "x\\d{2,3}",
    "",
    "é+",
    "^api/.*$",
    "\\w+\\s*=",
)
_NON_EMPTY_REGEXES = (".+", "[0-9]+", "x\\d{2,3}", "é+", "\\w+\\s*=")
_REGEXP_PARSERS = ("(?P<a>\\w+)", "(?P<method>\\S+) (?P<path>\\S+)", "^(?P<x>.)(\\d)?")
_PATTERN_PARSERS = ("<a> <_> <b>", "<_> - <ip> [<ts>]", "level=<level>")
_PATTERN_FILTERS = ("", "GET <_> 200", "<_> error", "plain text")
_IP_PATTERNS = (
    "192.168.0.1",
    "10.0.0.0/8",
    "192.168.1.0-192.168.1.255",
    "::1",
    "2001:db8::/32",
    "fe80::1%eth0",
)
_NAMES = (
    "app",
    "env",
    "__error__",
    "level",
    "status",
    "ñame",
    "_x9",
    "Job",
    "rate",
    "count",
    "bytes",
    "ip",
)


def _st():
    import hypothesis.strategies as st

    return st


@cache
def label_names():
    """Label names that lex as identifiers and are not keywords; shrink towards ``app``."""
    st = _st()
    generated = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True).filter(
        lambda s: s.lower() not in KEYWORDS
    )
    return st.one_of(st.sampled_from(_NAMES), generated)


@cache
def label_values(*, max_size: int = 8):
    """Arbitrary text (control characters included, no lone surrogates)."""
    st = _st()
    return st.text(st.characters(blacklist_categories=("Cs",)), max_size=max_size)


@cache
def matchers():
    st = _st()
    plain = st.builds(ast.Matcher, label_names(), st.sampled_from(("=", "!=")), label_values())
    regex = st.builds(
        ast.Matcher, label_names(), st.sampled_from(("=~", "!~")), st.sampled_from(_REGEXES)
    )
    return st.one_of(plain, regex)


@cache
def selectors():
    """Selectors that pass ``validate_selector``: one matcher never matches the empty string."""
    st = _st()
    selecting = st.one_of(
        st.builds(ast.Matcher, label_names(), st.just("="), label_values().filter(bool)),
        st.builds(ast.Matcher, label_names(), st.just("=~"), st.sampled_from(_NON_EMPTY_REGEXES)),
        st.builds(ast.Matcher, label_names(), st.just("!="), st.just("")),
    )
    others = st.lists(matchers(), max_size=3)
    return st.tuples(selecting, others, st.integers(0, 3)).map(
        lambda t: ast.Selector(tuple(t[1][: t[2]] + [t[0]] + t[1][t[2] :]))
    )


@cache
def _line_filters():
    st = _st()
    ops = st.sampled_from(ast.LINE_FILTER_OPS)
    counts = st.integers(1, 3)
    booleans = st.booleans()
    ip_patterns = st.sampled_from(_IP_PATTERNS)
    regexes = st.sampled_from(_REGEXES)
    pattern_filters = st.sampled_from(_PATTERN_FILTERS)
    texts = label_values()

    @st.composite
    def build(draw):
        op = draw(ops)
        count = draw(counts)
        values, ips = [], []
        for _ in range(count):
            if op in ("|=", "!=") and draw(booleans):
                values.append(draw(ip_patterns))
                ips.append(True)
                continue
            if op in ("|~", "!~"):
                values.append(draw(regexes))
            elif op in ("|>", "!>"):
                values.append(draw(pattern_filters))
            else:
                values.append(draw(texts))
            ips.append(False)
        return ast.LineFilter(op, tuple(values), tuple(ips))

    return build()


@cache
def _extractions():
    st = _st()
    item = st.one_of(
        label_names().map(lambda name: ast.LabelExtraction(name, name)),
        st.builds(
            ast.LabelExtraction, label_names(), st.sampled_from(("a.b", "tags[0]", '["x y"]', "k"))
        ),
    )
    return st.lists(item, max_size=3).map(tuple)


@cache
def _parsers():
    st = _st()
    return st.one_of(
        st.builds(ast.JSONParser, _extractions()),
        st.builds(ast.LogfmtParser, st.booleans(), st.booleans(), _extractions()),
        st.builds(ast.RegexpParser, st.sampled_from(_REGEXP_PARSERS)),
        st.builds(ast.PatternParser, st.sampled_from(_PATTERN_PARSERS)),
        st.just(ast.UnpackParser()),
    )


@cache
def label_filter_exprs(*, max_leaves: int = 6):
    """Label filter predicates, nested ``and``/``or`` trees of every comparison kind."""
    st = _st()
    comparison = st.sampled_from(ast.COMPARISON_OPS)
    leaves = st.one_of(
        st.builds(
            ast.StringLabelFilter, label_names(), st.sampled_from(("=", "!=")), label_values()
        ),
        st.builds(
            ast.StringLabelFilter,
            label_names(),
            st.sampled_from(("=~", "!~")),
            st.sampled_from(_REGEXES),
        ),
        st.builds(
            ast.NumericLabelFilter,
            label_names(),
            comparison,
            st.floats(allow_nan=False, allow_infinity=False),
        ),
        st.builds(
            ast.DurationLabelFilter, label_names(), comparison, st.integers(-(2**63), 2**63 - 1)
        ),
        st.builds(ast.BytesLabelFilter, label_names(), comparison, st.integers(0, 2**53)),
        st.builds(
            ast.IPLabelFilter,
            label_names(),
            st.sampled_from(("=", "!=")),
            st.sampled_from(_IP_PATTERNS),
        ),
    )
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.builds(ast.AndLabelFilter, children, children),
            st.builds(ast.OrLabelFilter, children, children),
        ),
        max_leaves=max_leaves,
    )


@cache
def _label_formats():
    st = _st()
    item = st.one_of(
        st.builds(ast.LabelFormatItem, label_names(), label_names(), st.just(True)),
        st.builds(
            ast.LabelFormatItem,
            label_names(),
            st.sampled_from(("{{.a}}", "{{ .b | upper }}-x", "")),
            st.just(False),
        ),
    )
    unique = st.lists(item, min_size=1, max_size=3, unique_by=lambda i: i.name)
    return unique.filter(lambda items: all(i.name != "__error__" for i in items)).map(
        lambda items: ast.LabelFormat(tuple(items))
    )


@cache
def _named_matchers():
    st = _st()
    return st.lists(st.one_of(label_names(), matchers()), min_size=1, max_size=3).map(tuple)


@cache
def stages():
    """Any pipeline stage except unwrap (which only ends a range's pipeline)."""
    st = _st()
    return st.one_of(
        _line_filters(),
        _parsers(),
        label_filter_exprs().map(ast.LabelFilter),
        st.builds(ast.LineFormat, st.sampled_from(("{{.msg}}", "{{ .a }} {{ .b }}", "", "x\ty"))),
        _label_formats(),
        st.builds(ast.Drop, _named_matchers()),
        st.builds(ast.Keep, _named_matchers()),
        st.just(ast.Decolorize()),
    )


def _printable(pipeline: tuple) -> bool:
    """False for the one stage pair no text expresses: ``| drop a`` then a ``!=``/``!~`` filter."""
    for stage, following in zip(pipeline, pipeline[1:], strict=False):
        if (
            isinstance(stage, (ast.Drop, ast.Keep))
            and isinstance(stage.items[-1], str)
            and isinstance(following, ast.LineFilter)
            and following.op in ("!=", "!~")
        ):
            return False
    return True


@cache
def _pipelines(*, max_size: int = 4):
    return _st().lists(stages(), max_size=max_size).map(tuple).filter(_printable)


@cache
def log_queries():
    return _st().builds(ast.LogQuery, selectors(), _pipelines())


@cache
def _unwraps():
    st = _st()
    return st.builds(
        ast.Unwrap,
        label_names(),
        st.sampled_from(ast.CONVERSIONS),
        st.lists(label_filter_exprs(max_leaves=3), max_size=2).map(tuple),
    )


@cache
def log_ranges(*, unwrap: bool | None = None):
    """Log ranges; ``unwrap`` True/False forces an unwrap in or out, None lets it vary."""
    st = _st()
    unwraps = {True: _unwraps(), False: st.none(), None: st.none() | _unwraps()}[unwrap]
    return st.builds(
        ast.LogRange,
        selectors(),
        _pipelines(max_size=3),
        st.integers(1, 10**7).map(lambda ms: ms * 1_000_000),
        st.integers(-(10**15), 10**15),
        unwraps,
    )


_NEEDS_UNWRAP = (
    "avg_over_time",
    "sum_over_time",
    "min_over_time",
    "max_over_time",
    "stdvar_over_time",
    "stddev_over_time",
    "quantile_over_time",
    "first_over_time",
    "last_over_time",
    "rate_counter",
)
_NO_UNWRAP = ("count_over_time", "bytes_over_time", "bytes_rate")
_GROUPABLE = (
    "avg_over_time",
    "stddev_over_time",
    "stdvar_over_time",
    "quantile_over_time",
    "max_over_time",
    "min_over_time",
    "first_over_time",
    "last_over_time",
)


@cache
def _groupings():
    st = _st()
    return st.builds(ast.Grouping, st.lists(label_names(), max_size=3).map(tuple), st.booleans())


@cache
def range_aggregations():
    """Range aggregations obeying Loki's unwrap, parameter and grouping rules."""
    st = _st()
    ops = st.sampled_from(ast.RANGE_OPS)
    ranges = {needs: log_ranges(unwrap=needs) for needs in (True, False, None)}
    params = st.floats(0, 1e6).map(abs)
    groupings = st.none() | _groupings()

    @st.composite
    def build(draw):
        op = draw(ops)
        needs = True if op in _NEEDS_UNWRAP else False if op in _NO_UNWRAP else None
        log_range = draw(ranges[needs])
        param = draw(params) if op == "quantile_over_time" else None
        grouping = draw(groupings) if op in _GROUPABLE else None
        return ast.RangeAggregation(op, log_range, param, grouping)

    return build()


def _vector_aggregations(children):
    st = _st()
    ops = st.sampled_from(ast.VECTOR_OPS)
    params = st.integers(1, 1000)
    sort_groupings = st.none() | st.builds(ast.Grouping, st.just(()), st.booleans())
    groupings = st.none() | _groupings()

    @st.composite
    def build(draw):
        op = draw(ops)
        param = draw(params) if op in ("topk", "bottomk", "approx_topk") else None
        if op == "approx_topk":
            grouping = None
        elif op in ("sort", "sort_desc"):
            grouping = draw(sort_groupings)
        else:
            grouping = draw(groupings)
        return ast.VectorAggregation(op, draw(children), param, grouping)

    return build()


@cache
def _matchings():
    st = _st()
    booleans = st.booleans()
    names = st.lists(label_names(), max_size=2)
    cards = st.sampled_from(ast.CARDINALITIES)

    @st.composite
    def build(draw):
        on = draw(booleans)
        labels = tuple(draw(names))
        card = draw(cards)
        include = () if card == "one-to-one" else tuple(draw(names))
        if not on and not labels and card == "one-to-one":
            return None
        return ast.VectorMatching(on, labels, card, include)

    return st.none() | build()


def _binary_ops(children):
    st = _st()

    def fix(args):
        op, lhs, rhs, return_bool, matching = args
        if op in ("or", "and", "unless") and (ast.is_scalar(lhs) or ast.is_scalar(rhs)):
            op = "+"  # Loki refuses scalar legs on set operators
        return ast.BinaryOp(op, lhs, rhs, return_bool, matching)

    return st.tuples(
        st.sampled_from(ast.BINARY_OPS), children, children, st.booleans(), _matchings()
    ).map(fix)


@cache
def metric_exprs(*, max_leaves: int = 5):
    """Metric expressions: aggregations, binary operators, literals, vector(), label_replace()."""
    st = _st()
    finite = st.floats(allow_nan=False, allow_infinity=False)
    leaves = st.one_of(
        range_aggregations(),
        st.builds(ast.NumberLiteral, finite),
        st.builds(ast.VectorExpr, finite.map(abs)),
    )

    def extend(children):
        return st.one_of(
            _vector_aggregations(children),
            _binary_ops(children),
            st.builds(
                ast.LabelReplace,
                children,
                label_names(),
                st.sampled_from(("$1", "${1}-x", "")),
                label_names(),
                st.sampled_from(_REGEXES),
            ),
        )

    return st.recursive(leaves, extend, max_leaves=max_leaves)


@cache
def queries():
    """Any query tree: a log query or a metric expression."""
    return _st().one_of(log_queries(), metric_exprs())
