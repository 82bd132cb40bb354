"""Parsing LogQL into the syntax tree: every construct, Loki's checks, error positions, fuzzing."""

from __future__ import annotations

import pathlib
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chunkstore.errors import QueryError
from chunkstore.logql import (
    MAX_DEPTH,
    MAX_QUERY_BYTES,
    is_metric,
    parse,
    parse_log_query,
    parse_metric_query,
    parse_selector,
    to_string,
    validate_selector,
)
from chunkstore.logql.ast import (
    AndLabelFilter,
    BinaryOp,
    BytesLabelFilter,
    Decolorize,
    Drop,
    DurationLabelFilter,
    Grouping,
    IPLabelFilter,
    JSONParser,
    Keep,
    LabelExtraction,
    LabelFormat,
    LabelFormatItem,
    LabelReplace,
    LineFilter,
    LineFormat,
    LogfmtParser,
    LogQuery,
    LogRange,
    Matcher,
    NumberLiteral,
    NumericLabelFilter,
    OrLabelFilter,
    PatternParser,
    RangeAggregation,
    RegexpParser,
    Selector,
    StringLabelFilter,
    UnpackParser,
    Unwrap,
    VectorAggregation,
    VectorExpr,
    VectorMatching,
    is_scalar,
    walk,
)

M, S, MS, H = 60 * 10**9, 10**9, 10**6, 3600 * 10**9
APP = Selector((Matcher("app", "=", "a"),))
CONFORMANCE = (
    pathlib.Path(__file__).resolve().parents[2] / "shared" / "conformance" / "loki-logqltest"
)


def stages(query: str):
    return parse_log_query('{app="a"} ' + query).stages


def label_filter(text: str):
    (stage,) = stages("| " + text)
    return stage.expr


def S_(name, op, value):
    return StringLabelFilter(name, op, value)


def rng(stages=(), range_ns=5 * M, offset_ns=0, unwrap=None, selector=APP):
    return LogRange(selector, tuple(stages), range_ns, offset_ns, unwrap)


# -- selectors ---------------------------------------------------------------


def test_selector_with_every_matcher_op():
    query = parse('{app="a", env!="dev", pod=~"api-.*", ns!~`kube.*`}')
    assert query == LogQuery(
        Selector(
            (
                Matcher("app", "=", "a"),
                Matcher("env", "!=", "dev"),
                Matcher("pod", "=~", "api-.*"),
                Matcher("ns", "!~", "kube.*"),
            )
        )
    )
    assert not is_metric(query)


def test_parenthesised_log_query():
    assert parse('(({app="a"} |= "x"))') == LogQuery(APP, (LineFilter("|=", ("x",), (False,)),))


@pytest.mark.parametrize(
    "query", ['{a=~".*"}', '{a!="x"}', "{}", '{a=""}', '{a!~".+"}', '{a=~"", b!="c"}']
)
def test_selectors_that_match_everything_are_refused(query):
    with pytest.raises(
        QueryError, match="queries require at least one regexp or equality matcher"
    ) as info:
        parse(query)
    assert info.value.pos == 0


@pytest.mark.parametrize("query", ['{a=~".+"}', '{a!=""}', '{a!~".*"}', '{a=~".*", b="x"}'])
def test_selectors_with_one_selecting_matcher_are_accepted(query):
    parse(query)


def test_validate_selector_directly():
    validate_selector(Selector((Matcher("a", "=", "b"),)))
    with pytest.raises(QueryError):
        validate_selector(Selector(()))


def test_parse_selector():
    assert parse_selector('{app="a"}') == APP
    assert parse_selector("{}", validate=False) == Selector(())
    for bad in ('{app="a"} |= "x"', 'rate({app="a"}[1m])', "{}"):
        with pytest.raises(QueryError):
            parse_selector(bad)


def test_parse_log_query_and_parse_metric_query_reject_the_other_kind():
    with pytest.raises(QueryError, match="only log queries"):
        parse_log_query('rate({app="a"}[1m])')
    with pytest.raises(QueryError, match="only metric queries"):
        parse_metric_query('{app="a"}')
    assert is_metric(parse_metric_query("1"))


# -- line filters ------------------------------------------------------------


def test_line_filters_in_order():
    assert stages('|= "a" != "b" |~ "c+" !~ "d" |> "<_> e" !> "f"') == (
        LineFilter("|=", ("a",), (False,)),
        LineFilter("!=", ("b",), (False,)),
        LineFilter("|~", ("c+",), (False,)),
        LineFilter("!~", ("d",), (False,)),
        LineFilter("|>", ("<_> e",), (False,)),
        LineFilter("!>", ("f",), (False,)),
    )


def test_or_chains_keep_each_operand_kind():
    assert stages('|= "a" or "b" or ip("10.0.0.0/8")') == (
        LineFilter("|=", ("a", "b", "10.0.0.0/8"), (False, False, True)),
    )
    (negated,) = stages('!= "a" or "b"')
    assert negated == LineFilter("!=", ("a", "b"), (False, False)) and negated.negated


def test_ip_line_filter():
    assert stages('!= ip("192.168.0.1-192.168.0.9")') == (
        LineFilter("!=", ("192.168.0.1-192.168.0.9",), (True,)),
    )


# -- parsers and formatters ----------------------------------------------------


def test_parsers():
    assert stages(
        '| json | json a="x.y", b | logfmt | logfmt --keep-empty --strict c, d="e" | unpack'
    ) == (
        JSONParser(),
        JSONParser((LabelExtraction("a", "x.y"), LabelExtraction("b", "b"))),
        LogfmtParser(),
        LogfmtParser(True, True, (LabelExtraction("c", "c"), LabelExtraction("d", "e"))),
        UnpackParser(),
    )
    assert stages(r'| regexp "(?P<a>\\w+)" | pattern `<ip> <_> <x>`') == (
        RegexpParser("(?P<a>\\w+)"),
        PatternParser("<ip> <_> <x>"),
    )


def test_formatters_drop_keep_decolorize():
    assert stages(
        '| line_format "{{.a}}" | label_format x="{{.y}}", z=w | drop a, b="c" | keep d, e=~"f.*"'
        " | decolorize"
    ) == (
        LineFormat("{{.a}}"),
        LabelFormat((LabelFormatItem("x", "{{.y}}", False), LabelFormatItem("z", "w", True))),
        Drop(("a", Matcher("b", "=", "c"))),
        Keep(("d", Matcher("e", "=~", "f.*"))),
        Decolorize(),
    )


def test_keywords_are_case_insensitive():
    assert stages("| JSON | Logfmt") == (JSONParser(), LogfmtParser())
    assert parse('SUM BY (a) (RATE({app="a"}[1m]))') == parse('sum by (a) (rate({app="a"}[1m]))')


# -- label filters -------------------------------------------------------------


def test_label_filter_kinds():
    assert label_filter('a="x"') == S_("a", "=", "x")
    assert label_filter('a=~"x.*"') == S_("a", "=~", "x.*")
    assert label_filter("n > 1.5") == NumericLabelFilter("n", ">", 1.5)
    assert label_filter("n = 2") == NumericLabelFilter("n", "==", 2.0)
    assert label_filter("n == -2") == NumericLabelFilter("n", "==", -2.0)
    assert label_filter("n <= +1e3") == NumericLabelFilter("n", "<=", 1000.0)
    assert label_filter("latency >= 250ms") == DurationLabelFilter("latency", ">=", 250 * MS)
    assert label_filter("latency != 1m30s") == DurationLabelFilter("latency", "!=", 90 * S)
    assert label_filter("latency < -1.5h") == DurationLabelFilter("latency", "<", -90 * M)
    assert label_filter("size > 20MB") == BytesLabelFilter("size", ">", 20_000_000)
    assert label_filter("size = 1KiB") == BytesLabelFilter("size", "==", 1024)
    assert label_filter('addr = ip("192.168.0.0/16")') == IPLabelFilter(
        "addr", "=", "192.168.0.0/16"
    )
    assert label_filter('addr != ip("::1")') == IPLabelFilter("addr", "!=", "::1")
    assert label_filter('__error__=""') == S_("__error__", "=", "")


def test_function_names_work_as_label_names():
    assert label_filter("bytes > 1KB") == BytesLabelFilter("bytes", ">", 1000)
    assert label_filter('rate="x"') == S_("rate", "=", "x")


def test_and_binds_tighter_than_or():
    a, b, c = S_("a", "=", "1"), S_("b", "=", "2"), S_("c", "=", "3")
    assert label_filter('a="1" or b="2" and c="3"') == OrLabelFilter(a, AndLabelFilter(b, c))
    assert label_filter('a="1" and b="2" or c="3"') == OrLabelFilter(AndLabelFilter(a, b), c)
    assert label_filter('a="1" and b="2" and c="3"') == AndLabelFilter(AndLabelFilter(a, b), c)
    assert label_filter('(a="1" or b="2") and c="3"') == AndLabelFilter(OrLabelFilter(a, b), c)


def test_comma_and_juxtaposition_take_the_rest_of_the_level():
    # Loki's yacc grammar gives "," no precedence, so it shifts: "a, b or c" is a and (b or c).
    a, b, c = S_("a", "=", "1"), S_("b", "=", "2"), S_("c", "=", "3")
    assert label_filter('a="1", b="2" or c="3"') == AndLabelFilter(a, OrLabelFilter(b, c))
    assert label_filter('a="1" b="2" or c="3"') == AndLabelFilter(a, OrLabelFilter(b, c))
    assert label_filter('a="1" or b="2", c="3"') == OrLabelFilter(a, AndLabelFilter(b, c))
    assert label_filter('a="1", b="2", c="3"') == AndLabelFilter(a, AndLabelFilter(b, c))
    assert label_filter('(a="1", b="2") or c="3"') == OrLabelFilter(AndLabelFilter(a, b), c)


# -- metric queries --------------------------------------------------------------


def test_range_aggregation_forms_are_equivalent():
    expected = RangeAggregation(
        "count_over_time", rng([LineFilter("|=", ("x",), (False,))], offset_ns=H)
    )
    for query in (
        'count_over_time({app="a"} |= "x" [5m] offset 1h)',
        'count_over_time({app="a"}[5m] offset 1h |= "x")',
        'count_over_time(({app="a"} |= "x")[5m] offset 1h)',
        'count_over_time(({app="a"} |= "x" [5m] offset 1h))',
        'count_over_time((({app="a"}[5m] offset 1h |= "x")))',
    ):
        assert parse(query) == expected, query


def test_unwrap_forms():
    unwrap = Unwrap("v", "duration", (S_("__error__", "=", ""),))
    expected = RangeAggregation(
        "avg_over_time", rng([LogfmtParser()], unwrap=unwrap), grouping=Grouping(("pod",))
    )
    for query in (
        'avg_over_time({app="a"} | logfmt | unwrap duration(v) | __error__="" [5m]) by (pod)',
        'avg_over_time(({app="a"} | logfmt | unwrap duration(v) | __error__="")[5m]) by (pod)',
    ):
        assert parse(query) == expected
    assert parse('sum_over_time({app="a"}[1m] | unwrap bytes(x))').log_range.unwrap == Unwrap(
        "x", "bytes"
    )
    assert parse('rate({app="a"} | unwrap x [1m])').log_range.unwrap == Unwrap("x")
    assert (
        parse(
            'max_over_time({app="a"} | unwrap duration_seconds(x) [1m])'
        ).log_range.unwrap.conversion
        == "duration_seconds"
    )


def test_quantile_and_groupings():
    expr = parse('quantile_over_time(0.99, {app="a"} | unwrap x [1m]) without (pod)')
    assert expr.param == 0.99 and expr.grouping == Grouping(("pod",), without=True)
    assert parse('avg_over_time({app="a"} | unwrap x [1m]) by ()').grouping == Grouping(())


def test_offset_may_be_negative():
    assert parse('rate({app="a"}[5m] offset -1m30s)').log_range.offset_ns == -90 * S


def test_vector_aggregations():
    inner = RangeAggregation("rate", rng(range_ns=M))
    assert parse('sum(rate({app="a"}[1m]))') == VectorAggregation("sum", inner)
    by = VectorAggregation("sum", inner, grouping=Grouping(("a", "b")))
    assert parse('sum by (a, b) (rate({app="a"}[1m]))') == by
    assert parse('sum(rate({app="a"}[1m])) by (a, b)') == by
    assert parse('topk(5, rate({app="a"}[1m]))') == VectorAggregation("topk", inner, param=5)
    assert parse('bottomk without (x) (2, rate({app="a"}[1m]))') == VectorAggregation(
        "bottomk", inner, 2, Grouping(("x",), True)
    )
    assert parse('approx_topk(3, rate({app="a"}[1m]))') == VectorAggregation(
        "approx_topk", inner, 3
    )
    assert parse('sort_desc(rate({app="a"}[1m]))') == VectorAggregation("sort_desc", inner)


def test_binary_operator_precedence_and_associativity():
    one, two, three = NumberLiteral(1.0), NumberLiteral(2.0), NumberLiteral(3.0)
    assert parse("1 + 2 * 3") == BinaryOp("+", one, BinaryOp("*", two, three))
    assert parse("1 - 2 - 3") == BinaryOp("-", BinaryOp("-", one, two), three)
    assert parse("1 ^ 2 ^ 3") == BinaryOp("^", one, BinaryOp("^", two, three))
    assert parse("(1 + 2) * 3") == BinaryOp("*", BinaryOp("+", one, two), three)
    assert parse("-1 ^ 2") == BinaryOp(
        "^", NumberLiteral(-1.0), two
    )  # the sign belongs to the literal
    assert parse("1 > 2 + 3") == BinaryOp(">", one, BinaryOp("+", two, three))
    v = VectorExpr(1.0)
    assert parse("vector(1) or vector(1) and vector(1)") == BinaryOp("or", v, BinaryOp("and", v, v))
    assert parse("vector(1) unless vector(1) and vector(1)") == BinaryOp(
        "and", BinaryOp("unless", v, v), v
    )
    assert parse("vector(1) == 1 or vector(1)") == BinaryOp("or", BinaryOp("==", v, one), v)


def test_binary_modifiers():
    v = VectorExpr(1.0)
    assert parse("vector(1) > bool 1") == BinaryOp(">", v, NumberLiteral(1.0), return_bool=True)
    assert parse("vector(1) + on (a, b) vector(1)") == BinaryOp(
        "+", v, v, matching=VectorMatching(True, ("a", "b"))
    )
    assert parse("vector(1) + on () vector(1)") == BinaryOp(
        "+", v, v, matching=VectorMatching(True, ())
    )
    assert parse("vector(1) + ignoring () vector(1)") == BinaryOp("+", v, v)
    assert parse("vector(1) / ignoring (x) group_left (y) vector(1)") == BinaryOp(
        "/", v, v, matching=VectorMatching(False, ("x",), "many-to-one", ("y",))
    )
    assert parse("vector(1) == bool on (x) group_right vector(1)") == BinaryOp(
        "==", v, v, True, VectorMatching(True, ("x",), "one-to-many")
    )
    assert parse("vector(1) * on (x) group_left () vector(1)").matching.include == ()


def test_literals_vector_and_label_replace():
    assert parse("1.5e3") == NumberLiteral(1500.0)
    assert parse("-2") == NumberLiteral(-2.0)
    assert parse("+.5") == NumberLiteral(0.5)
    assert parse("vector(0)") == VectorExpr(0.0)
    assert parse('label_replace(vector(1), "dst", "$1", "src", "(.*)")') == LabelReplace(
        VectorExpr(1.0), "dst", "$1", "src", "(.*)"
    )


def test_comments_inside_queries():
    assert parse('sum( # total\n rate({app="a"}[1m]) /* per second */)') == parse(
        'sum(rate({app="a"}[1m]))'
    )


def test_walk_and_is_scalar_helpers():
    expr = parse('sum(rate({app="a", env="b"} | x > 1 [1m])) + 2 * 3')
    matchers = [node for node in walk(expr) if isinstance(node, Matcher)]
    assert matchers == [Matcher("app", "=", "a"), Matcher("env", "=", "b")]
    assert any(isinstance(node, NumericLabelFilter) for node in walk(expr))
    assert is_scalar(expr.rhs) and not is_scalar(expr) and not is_scalar(expr.lhs)


# -- Loki's semantic checks --------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            'count_over_time({app="a"} | unwrap x [1m])',
            "invalid aggregation count_over_time with unwrap",
        ),
        ('bytes_rate({app="a"} | unwrap x [1m])', "invalid aggregation bytes_rate with unwrap"),
        ('sum_over_time({app="a"}[1m])', "invalid aggregation sum_over_time without unwrap"),
        ('rate_counter({app="a"}[1m])', "invalid aggregation rate_counter without unwrap"),
        ('first_over_time({app="a"}[1m])', "invalid aggregation first_over_time without unwrap"),
        ('rate({app="a"}[1m]) by (x)', "grouping not allowed for rate aggregation"),
        (
            'sum_over_time({app="a"} | unwrap x [1m]) by (x)',
            "grouping not allowed for sum_over_time aggregation",
        ),
        (
            'absent_over_time({app="a"}[1m]) by (x)',
            "grouping not allowed for absent_over_time aggregation",
        ),
        (
            'quantile_over_time({app="a"} | unwrap x [1m])',
            "parameter required for operation quantile_over_time",
        ),
        ('rate(2, {app="a"}[1m])', "parameter 2 not supported for operation rate"),
        ('topk(rate({app="a"}[1m]))', "parameter required for operation topk"),
        ('topk(1.5, rate({app="a"}[1m]))', "invalid parameter topk(1.5,"),
        ('bottomk(0, rate({app="a"}[1m]))', "invalid parameter (must be greater than 0) bottomk(0"),
        ('sum(2, rate({app="a"}[1m]))', "unsupported parameter for operation sum(2,"),
        ('sort by (a) (rate({app="a"}[1m]))', "sort and sort_desc doesn't allow grouping by"),
        (
            'approx_topk(2, rate({app="a"}[1m])) by (a)',
            "grouping not allowed for approx_topk aggregation",
        ),
        (
            "vector(1) and 1",
            "unexpected literal for right leg of logical/set binary operation (and): 1.000000",
        ),
        (
            "(1 + 1) or vector(1)",
            "unexpected literal for left leg of logical/set binary operation (or): 2.000000",
        ),
        ('{app="a"} + 1', "unexpected type for left leg of binary operation (+)"),
        ('1 / {app="a"}', "unexpected type for right leg of binary operation (/)"),
        (
            'label_replace(vector(1), "d", "r", "s", "(")',
            "invalid regex in label_replace: error parsing regexp",
        ),
        (
            '{app="a"} | label_format a="x", a=b',
            "multiple label name 'a' not allowed in a single format operation",
        ),
        ('{app="a"} | label_format __error__="x"', "__error__ cannot be formatted"),
        ("1e400", "unable to parse literal as a float"),
        ("vector(0x10)", "unable to parse vectorExpr as a float"),
        ('rate({app=~".*"}[1m])', "queries require at least one regexp or equality matcher"),
        ('{app="a"} |~ "("', "error parsing regexp: missing )"),
        ('{app="a"} | x=~"[a"', "error parsing regexp"),
        ('{app=~"(?P<a"}', "error parsing regexp"),
        ('{app="a"} | drop x=~"*"', "error parsing regexp"),
        ('{app="a"} |> "<verb> x"', "named captures are not allowed: found '<verb>'"),
        ('{app="a"} |> "<_><_>"', "found consecutive capture '<_><_>'"),
        (
            '{app="a"} | pattern "no captures"',
            "invalid pattern parser: at least one capture is required",
        ),
        ('{app="a"} | pattern "<a><b>"', "found consecutive capture '<a><b>': invalid expression"),
        ('{app="a"} | pattern "<a> <a>"', "duplicate capture name (a): invalid expression"),
        ('{app="a"} | pattern ""', "invalid pattern parser"),
        ('{app="a"} | regexp "nocapture"', "at least one named capture must be supplied"),
        ('{app="a"} | regexp "(x)"', "at least one named capture must be supplied"),
        ('{app="a"} | regexp "(?P<x>.)(?P<x>.)"', "duplicate extracted label name 'x'"),
        ('{app="a"} |= ip("notanip")', 'ip: invalid pattern: "notanip"'),
        ('{app="a"} |~ ip("10.0.0.0/8")', "ip: invalid operation"),
        ('{app="a"} |= "x" or ip("10.0.0.0/33")', "ip: invalid pattern"),
        ('{app="a"} | addr = ip("10.0.0.9-10.0.0.1")', "ip: invalid pattern"),
    ],
)
def test_loki_semantic_errors(query, message):
    with pytest.raises(QueryError) as info:
        parse(query)
    assert message in info.value.message
    assert info.value.pos is not None and 0 <= info.value.pos < len(query)


def test_syntax_errors_are_reported_before_semantic_ones():
    # The aggregation is invalid, but the query also fails to parse further on.
    with pytest.raises(QueryError, match="syntax error") as info:
        parse('sum_over_time({app="a"}[1m]) +')
    assert info.value.pos == len('sum_over_time({app="a"}[1m]) +')


@pytest.mark.parametrize(
    "pattern",
    [
        "10.0.0.1",
        "10.0.0.0/8",
        "10.0.0.1-10.0.0.9",
        "::1",
        "2001:db8::/32",
        "fe80::1%eth0",
        "1.2.3.4/32",
    ],
)
def test_valid_ip_patterns(pattern):
    parse(f'{{app="a"}} |= ip("{pattern}")')


# -- syntax error positions and messages -------------------------------------------

SYNTAX_ERRORS = [
    ('{app="a" |= "x"', 9, 'expected "," or "}" but found "|="'),
    ('{app="a"', 8, 'expected "," or "}" but found end of query'),
    ('{app="a",}', 9, "expected label name"),
    ("{app}", 4, 'expected "=", "!=", "=~" or "!~" but found "}"'),
    ("{app=a}", 5, 'expected a string but found "a"'),
    ("app", 0, "expected an expression"),
    ('{app="a"} |', 11, "expected a parser, a formatter"),
    ('{app="a"} |= 1', 13, 'expected a string or ip("...")'),
    ('{app="a"} |= "x" or', 19, 'expected a string or ip("...")'),
    ('{app="a"} | json a=', 19, "expected an extraction expression string"),
    ('{app="a"} | drop', 16, "expected label name but found end of query"),
    ('{app="a"} | keep a,', 19, "expected label name"),
    ('{app="a"} | x >', 15, "expected a number, a duration or a byte size"),
    ('{app="a"} | x =~ 1', 17, "expected a string"),
    ('{app="a"} | x ~ "a"', 14, "unexpected character"),
    ('{app="a"} | (x="a"', 18, 'expected ")"'),
    ('{app="a"} | line_format', 23, "expected a template string"),
    ('{app="a"} | label_format a', 26, 'expected "="'),
    ('{app="a"} | unwrap x', 12, "unwrap is only allowed inside a range aggregation"),
    ('rate({app="a"})', 14, 'expected a range such as [5m] but found ")"'),
    ('rate({app="a"}[1m]', 18, 'expected ")"'),
    ('rate({app="a"}[1m] offset 5)', 26, "expected a duration such as 5m"),
    ('rate({app="a"}[1m] | unwrap x | json)', 32, "expected a label filter"),
    ('quantile_over_time(-0.1, {app="a"} | unwrap x [1m])', 19, "expected a log range"),
    ('sum({app="a"})', 4, "expected a metric expression as the argument of sum"),
    ('sum(rate({app="a"}[1m])) by', 27, '"("'),
    ('sum by (a) (rate({app="a"}[1m])) by (b)', 33, "expected end of query"),
    ("sum by (a,) (vector(1))", 10, "expected label name"),
    ("vector(1) +", 11, "expected an expression"),
    ("vector(-1)", 7, "expected a number"),
    ("- vector(1)", 2, "expected a number after the sign"),
    ("vector(1) + on (a vector(1)", 18, '"," or ")"'),
    ('rate({app="a"}[5x])', 15, 'unknown unit "x" in duration "5x"'),
    ('rate({app="a"}[5m)', 14, "missing closing ']' in duration"),
    ('{app="a\n"}', 5, "literal not terminated"),
    ("(vector(1)", 10, 'expected ")"'),
    ("vector(1))", 9, "expected end of query"),
    (
        '{app="a"} | logfmt --strict --bogus',
        30,
        'expected a number after the sign (only number literals can be negated) but found "bogus"',
    ),
]


@pytest.mark.parametrize(("query", "pos", "message"), SYNTAX_ERRORS)
def test_syntax_error_positions_and_messages(query, pos, message):
    with pytest.raises(QueryError) as info:
        parse(query)
    assert message in info.value.message, info.value.message
    assert info.value.pos == pos, (info.value.pos, info.value.message)
    assert info.value.query == query
    assert f"(at position {pos})" in str(info.value)


def test_errors_are_value_errors_too():
    with pytest.raises(ValueError):
        parse("{")


# -- limits ------------------------------------------------------------------------


def test_query_size_limit_is_lokis():
    base = '{app="a"} |= "'
    fits = base + "x" * (MAX_QUERY_BYTES - len(base) - 2) + '"'
    assert len(fits.encode()) == MAX_QUERY_BYTES - 1
    parse(fits)
    with pytest.raises(QueryError, match=r"input size too long \(131072 > 131072\)"):
        parse(fits[:-1] + 'x"')
    with pytest.raises(QueryError, match="input size too long"):
        parse(base + "é" * MAX_QUERY_BYTES + '"')


@pytest.mark.parametrize(
    "build",
    [
        lambda n: "(" * n + "1" + ")" * n,
        lambda n: "1" + " + 1" * n,
        lambda n: "2" + " ^ 2" * n,
        lambda n: "sum(" * n + "vector(1)" + ")" * n,
        lambda n: '{app="a"} | ' + "(" * n + 'a="1"' + ")" * n,
        lambda n: '{app="a"} | ' + " or ".join(['a="1"'] * n),
        lambda n: '{app="a"} | ' + ", ".join(['a="1"'] * n),
    ],
)
def test_deep_nesting_raises_query_error_not_recursion_error(build):
    parse(build(10))
    with pytest.raises(QueryError, match="nested too deeply"):
        parse(build(5000))


def test_depth_limit_leaves_room_for_consumers():
    # The deepest accepted trees must print and compare without exhausting the stack.
    for n in range(MAX_DEPTH // 2 - 5, MAX_DEPTH + 5):
        try:
            expr = parse("(" * n + "1" + " + 1" * n + ")" * n)
        except QueryError:
            continue
        assert parse(to_string(expr)) == expr


# -- Loki's own queries ------------------------------------------------------------


def _conformance_queries():
    if not CONFORMANCE.is_dir():
        return []
    cases = []
    for path in sorted(CONFORMANCE.glob("*.logqltest")):
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            match = re.match(r"eval (?:instant at \S+|range from \S+ to \S+ step \S+) (.*)$", line)
            if not match:
                continue
            query = re.sub(r"\s+#[^\"`]*$", "", match.group(1)).strip()
            following = lines[number + 1].strip() if number + 1 < len(lines) else ""
            cases.append(
                pytest.param(
                    query, following.startswith("expect fail"), id=f"{path.stem}:{number + 1}"
                )
            )
    return cases


@pytest.mark.skipif(not CONFORMANCE.is_dir(), reason="shared conformance scripts not present")
@pytest.mark.parametrize(("query", "may_fail"), _conformance_queries())
def test_conformance_queries_parse_and_round_trip(query, may_fail):
    try:
        expr = parse(query)
    except QueryError:
        if may_fail:
            return
        raise
    text = to_string(expr)
    assert parse(text) == expr
    assert to_string(parse(text)) == text


# -- robustness ----------------------------------------------------------------------

VALID = [
    '{app="a"} |= "x" | json | a > 1 and b="c" | line_format "{{.a}}"',
    'sum by (a) (rate({app="a"} | logfmt | unwrap bytes(x) | __error__="" [5m] offset 1h))'
    ' / on (a) group_left count_over_time({app="b"}[1m])',
    'topk(3, quantile_over_time(0.9, {app="a"} | pattern "<a> <_>" | unwrap d [1m]) by (a))'
    " > bool 2",
    'label_replace(sum without (x) (bytes_rate({app=~"a.+"}[1m] |~ "r" or "s")),'
    ' "d", "$1", "s", "(.*)")',
    '{app="a"} | drop a, b="c" | keep d | label_format e=f | decolorize'
    ' |> "<_> x" != ip("10.0.0.0/8")',
]
_ALPHABET = st.sampled_from(
    list('{}()[],=!~|><+-*/%^#`"\\ \n.ab_019xyzé')
    + ["or", "and", "by", "sum", "rate", "json", "5m", "1e3"]
)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=80))
def test_arbitrary_text_only_raises_query_error(text):
    try:
        parse(text)
    except QueryError as err:
        assert err.pos is None or 0 <= err.pos <= len(text)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_ALPHABET, max_size=40).map("".join))
def test_token_soup_only_raises_query_error(text):
    try:
        parse(text)
    except QueryError:
        pass


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(VALID), st.data())
def test_mutated_queries_only_raise_query_error(query, data):
    chars = list(query)
    for _ in range(data.draw(st.integers(1, 4))):
        where = data.draw(st.integers(0, len(chars)))
        action = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        piece = data.draw(_ALPHABET)
        if action == "insert":
            chars[where:where] = list(piece)
        elif action == "delete" and chars:
            del chars[min(where, len(chars) - 1)]
        elif chars:
            chars[min(where, len(chars) - 1)] = piece
    text = "".join(chars)
    try:
        expr = parse(text)
    except QueryError:
        return
    # Whatever parsed must print back to an equivalent query.
    assert parse(to_string(expr)) == expr
