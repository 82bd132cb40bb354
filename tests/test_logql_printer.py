"""Printing syntax trees back to LogQL: parse(print(tree)) == tree, and print is a fixed point."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings

from chunkstore.errors import QueryError
from chunkstore.logql import _ast_strategies as strategies
from chunkstore.logql import parse, parse_selector, to_string
from chunkstore.logql.ast import (
    AndLabelFilter,
    BinaryOp,
    BytesLabelFilter,
    Drop,
    DurationLabelFilter,
    Grouping,
    LabelFilter,
    LineFilter,
    LogQuery,
    LogRange,
    Matcher,
    NumberLiteral,
    NumericLabelFilter,
    OrLabelFilter,
    RangeAggregation,
    Selector,
    StringLabelFilter,
    VectorAggregation,
    VectorExpr,
    VectorMatching,
)
from chunkstore.logql.printer import quote

ROUND_TRIP_QUERIES = [
    # selectors
    '{app="a"}',
    '{app="a", env!="dev", pod=~"api-.*", ns!~"kube.*"}',
    "{app=`raw \\w+`}",
    '{app="quote\\"back\\\\slash\\nnewline\\ttab"}',
    '{app="é ü 😀"}',
    '{app="\\x00\\x1b\\u200b"}',
    '{ñame="x", _under_score9="y"}',
    '{App="Upper"}',
    '{rate="x", count="y", bytes="z", ip="w"}',
    '{app!=""}',
    '{app=~".+", x=~".*"}',
    '({app="a"})',
    '(({app="a"} |= "x"))',
    # line filters
    '{app="a"} |= "x"',
    '{app="a"} != "x"',
    '{app="a"} |~ "x.*y"',
    '{app="a"} !~ "(?i)err"',
    '{app="a"} |> "<_> GET <_>"',
    '{app="a"} !> "x <_>"',
    '{app="a"} |> ""',
    '{app="a"} |= ""',
    '{app="a"} |= "a" or "b" or "c"',
    '{app="a"} != "a" or "b"',
    '{app="a"} |~ "a+" or "b+"',
    '{app="a"} |= ip("10.0.0.0/8")',
    '{app="a"} != ip("192.168.0.1-192.168.0.9")',
    '{app="a"} |= ip("::1") or "text" or ip("2001:db8::/32")',
    '{app="a"} |= "x" != "y" |~ "z" !~ "w"',
    '{app="a"} |= `back\\tick`',
    # parsers
    '{app="a"} | json',
    '{app="a"} | json a="b.c", d',
    '{app="a"} | json first="tags[0]", spaced="[\\"a b\\"]"',
    '{app="a"} | logfmt',
    '{app="a"} | logfmt --strict',
    '{app="a"} | logfmt --keep-empty',
    '{app="a"} | logfmt --strict --keep-empty',
    '{app="a"} | logfmt --keep-empty --strict a, b="c"',
    '{app="a"} | logfmt level, code="status"',
    '{app="a"} | regexp "(?P<method>\\\\w+) (?P<path>\\\\S+)"',
    '{app="a"} | regexp `(?P<ip>\\d+\\.\\d+\\.\\d+\\.\\d+)`',
    '{app="a"} | pattern "<ip> - <_> [<ts>] \\"<method> <path>\\""',
    '{app="a"} | unpack',
    '{app="a"} | unpack | logfmt',
    '{app="a"} | json | logfmt | unpack',
    # label filters
    '{app="a"} | json | status="200"',
    '{app="a"} | json | status!="200"',
    '{app="a"} | json | status=~"2.."',
    '{app="a"} | json | status!~"5.."',
    '{app="a"} | json | status >= 500',
    '{app="a"} | json | status == 500',
    '{app="a"} | json | status = 500',
    '{app="a"} | json | status != 500',
    '{app="a"} | json | ratio < 0.25',
    '{app="a"} | json | ratio <= -1.5e-7',
    '{app="a"} | json | ratio > +3',
    '{app="a"} | json | big > 1e300',
    '{app="a"} | logfmt | latency > 250ms',
    '{app="a"} | logfmt | latency >= 1m30s',
    '{app="a"} | logfmt | latency < 1.5h',
    '{app="a"} | logfmt | latency == 300us',
    '{app="a"} | logfmt | latency != -5s',
    '{app="a"} | logfmt | latency > 1d',
    '{app="a"} | logfmt | size > 20MB',
    '{app="a"} | logfmt | size <= 1KiB',
    '{app="a"} | logfmt | size == 42k',
    '{app="a"} | logfmt | size != 3GiB',
    '{app="a"} | logfmt | addr = ip("192.168.0.0/16")',
    '{app="a"} | logfmt | addr != ip("10.0.0.1")',
    '{app="a"} | logfmt | a="1" and b="2"',
    '{app="a"} | logfmt | a="1" or b="2"',
    '{app="a"} | logfmt | a="1", b="2"',
    '{app="a"} | logfmt | a="1" b="2"',
    '{app="a"} | logfmt | a="1" or b="2" and c="3"',
    '{app="a"} | logfmt | (a="1" or b="2") and c="3"',
    '{app="a"} | logfmt | a="1", b="2" or c="3"',
    '{app="a"} | logfmt | a="1" and (b="2" and c="3")',
    '{app="a"} | logfmt | ((a > 1))',
    '{app="a"} | logfmt | level="error" | status >= 500 or latency > 1s',
    '{app="a"} | json | __error__=""',
    '{app="a"} | json | __error__!="JSONParserErr"',
    '{app="a"} | logfmt | bytes > 1KB',
    # formatters and label edits
    '{app="a"} | line_format "{{.level}}: {{.msg}}"',
    '{app="a"} | line_format `{{ printf "\\x1b[31m%s\\x1b[0m" .msg }}`',
    '{app="a"} | line_format ""',
    '{app="a"} | label_format level="{{ .lvl | upper }}"',
    '{app="a"} | label_format dst=src',
    '{app="a"} | label_format a="{{.b}}", c=d, e=""',
    '{app="a"} | drop a',
    '{app="a"} | drop a, b, c="v"',
    '{app="a"} | drop a=~"x.*", b!="y", c!~"z"',
    '{app="a"} | keep a',
    '{app="a"} | keep a, b="v"',
    '{app="a"} | decolorize',
    '{app="a"} | line_format "{{.msg}}" | decolorize |= "x"',
    '{app="a"} |= "x" | json | a="b" | line_format "{{.a}}" | label_format c=a | drop d | keep e'
    " | decolorize",
    # range aggregations
    'count_over_time({app="a"}[5m])',
    'count_over_time({app="a"} |= "x" [5m])',
    'count_over_time({app="a"}[5m] |= "x")',
    'count_over_time(({app="a"} |= "x")[5m])',
    'count_over_time(({app="a"} |= "x" [5m]))',
    'count_over_time({app="a"}[1h30m] offset 5m)',
    'count_over_time({app="a"}[500ms] offset -1h)',
    'count_over_time({app="a"}[1d])',
    'count_over_time({app="a"}[2w])',
    'rate({app="a"}[1m])',
    'rate({app="a"} | unwrap x [1m])',
    'rate_counter({app="a"} | logfmt | unwrap c [1m])',
    'bytes_over_time({app="a"}[1m])',
    'bytes_rate({app="a"} | json [1m])',
    'absent_over_time({app="a"}[1m])',
    'absent_over_time({app="a"} | unwrap x [1m])',
    'sum_over_time({app="a"} | logfmt | unwrap v [1m])',
    'avg_over_time({app="a"} | logfmt | unwrap v [1m]) by (pod)',
    'avg_over_time({app="a"} | logfmt | unwrap v [1m]) by ()',
    'min_over_time({app="a"} | logfmt | unwrap v [1m]) without (pod)',
    'max_over_time({app="a"} | logfmt | unwrap v [1m]) without ()',
    'stddev_over_time({app="a"} | unwrap bytes(size) [1m])',
    'stdvar_over_time({app="a"} | unwrap duration(latency) [1m])',
    'first_over_time({app="a"} | unwrap duration_seconds(latency) [1m])',
    'last_over_time({app="a"} | unwrap v | __error__="" [1m])',
    'last_over_time({app="a"} | unwrap v | __error__="" | v > 0 [1m])',
    'quantile_over_time(0.99, {app="a"} | json | unwrap latency [5m]) by (route)',
    'quantile_over_time(0, {app="a"} | unwrap v [1m])',
    'quantile_over_time(1, {app="a"} | unwrap v [1m])',
    'sum_over_time({app="a"}[1m] | unwrap v)',
    'sum_over_time({app="a"}[1m] offset 1m | json | unwrap v)',
    'sum_over_time(({app="a"} | json | unwrap v)[1m] offset 2m)',
    'rate(({app=~"foo|bar"} |~ ".+bar" | unwrap bar)[1m])',
    # vector aggregations
    'sum(rate({app="a"}[1m]))',
    'sum by (app) (rate({app="a"}[1m]))',
    'sum(rate({app="a"}[1m])) by (app)',
    'sum without (pod, zone) (rate({app="a"}[1m]))',
    'sum by () (rate({app="a"}[1m]))',
    'avg(rate({app="a"}[1m]))',
    'min(rate({app="a"}[1m]))',
    'max(rate({app="a"}[1m]))',
    'count(rate({app="a"}[1m]))',
    'stddev(rate({app="a"}[1m]))',
    'stdvar(rate({app="a"}[1m]))',
    'topk(5, rate({app="a"}[1m]))',
    'topk by (app) (5, rate({app="a"}[1m]))',
    'bottomk(2, rate({app="a"}[1m])) without (pod)',
    'sort(rate({app="a"}[1m]))',
    'sort_desc(rate({app="a"}[1m]))',
    'sort by () (rate({app="a"}[1m]))',
    'approx_topk(3, rate({app="a"}[1m]))',
    'sum(sum by (a) (count_over_time({app="a"}[1m])))',
    # binary operators and literals
    "1",
    "-1",
    "1.5e3",
    "0.1",
    "1e-7",
    "123456789012345678",
    "vector(1)",
    "vector(0.5)",
    "1 + 2 * 3",
    "(1 + 2) * 3",
    "1 - 2 - 3",
    "1 - (2 - 3)",
    "2 ^ 3 ^ 2",
    "(2 ^ 3) ^ 2",
    "-1 ^ 2",
    "1 - -1",
    "1 % 2 / 3 * 4",
    "1 == bool 1",
    "1 >= bool 2 < bool 3",
    'sum(rate({app="a"}[1m])) / sum(rate({app="b"}[1m]))',
    'rate({app="a"}[1m]) > 0.5',
    'rate({app="a"}[1m]) > bool 0.5',
    'rate({app="a"}[1m]) or vector(0)',
    'rate({app="a"}[1m]) and rate({app="b"}[1m]) unless rate({app="c"}[1m])',
    'rate({app="a"}[1m]) or rate({app="b"}[1m]) and rate({app="c"}[1m])',
    '(rate({app="a"}[1m]) or rate({app="b"}[1m])) and rate({app="c"}[1m])',
    'rate({app="a"}[1m]) + on (app) rate({app="b"}[1m])',
    'rate({app="a"}[1m]) + on () rate({app="b"}[1m])',
    'rate({app="a"}[1m]) + ignoring (pod) rate({app="b"}[1m])',
    'rate({app="a"}[1m]) * on (app) group_left rate({app="b"}[1m])',
    'rate({app="a"}[1m]) * on (app) group_left (team, owner) rate({app="b"}[1m])',
    'rate({app="a"}[1m]) / ignoring (pod) group_right (x) rate({app="b"}[1m])',
    'rate({app="a"}[1m]) == bool on (app) rate({app="b"}[1m])',
    'label_replace(rate({app="a"}[1m]), "dst", "$1", "src", "(.*)")',
    'label_replace(sum by (a) (rate({app="a"}[1m])), "d", "${1}-x", "a", "")',
    'sum(rate({app="a"}[1m])) * 100 / sum(rate({app="b"}[1m])) > 5',
    # comments and spacing
    'sum(\n  rate({app="a"}[1m]) # per second\n) /* total */',
    'SUM BY (app) (RATE({app="a"} | JSON [1m]))',
]


@pytest.mark.parametrize("query", ROUND_TRIP_QUERIES)
def test_round_trip(query):
    expr = parse(query)
    text = to_string(expr)
    assert parse(text) == expr, text
    assert to_string(parse(text)) == text


def test_the_corpus_is_large_and_distinct():
    assert len(ROUND_TRIP_QUERIES) >= 150
    assert len(set(ROUND_TRIP_QUERIES)) == len(ROUND_TRIP_QUERIES)


@pytest.mark.parametrize(
    ("query", "canonical"),
    [
        ('{app = "a" ,b=~`x`}', '{app="a", b=~"x"}'),
        ('{app="a"}|="x"or"y"|json a="a"|LOGFMT', '{app="a"} |= "x" or "y" | json a | logfmt'),
        ('count_over_time({app="a"}[5m] |= "x")', 'count_over_time({app="a"} |= "x" [5m])'),
        ('count_over_time(({app="a"})[90s])', 'count_over_time({app="a"}[1m30s])'),
        ('sum(rate({app="a"}[1m])) by (x)', 'sum by (x) (rate({app="a"}[1m]))'),
        (
            '{app="a"} | x = 5 | y > 1.5s | z <= 2048B',
            '{app="a"} | x == 5 | y > 1s500ms | z <= 2KiB',
        ),
        ('{app="a"} | a="1", b="2" or c="3"', '{app="a"} | a="1" and (b="2" or c="3")'),
        ("((1 + 2)) * 3.0", "(1 + 2) * 3"),
        ("vector(1) + ignoring() vector(1)", "vector(1) + vector(1)"),
        ("1e3 + 0.5", "1000 + 0.5"),
        ('rate({app="a"}[1m] offset 0s)', 'rate({app="a"}[1m])'),
        ("- 0", "-0.0"),
        ('{app="a"} |= "tab\there"', '{app="a"} |= "tab\\there"'),
    ],
)
def test_canonical_form(query, canonical):
    assert to_string(parse(query)) == canonical


def test_negative_zero_survives():
    expr = parse("- 0")
    assert math.copysign(1.0, expr.value) == -1.0
    assert math.copysign(1.0, parse(to_string(expr)).value) == -1.0


def test_quote_escapes_what_go_would():
    assert quote('a"b\\c\n\x00é\u200b') == '"a\\"b\\\\c\\n\\x00é\\u200b"'


def test_any_node_prints():
    assert to_string(Matcher("a", "=~", "b")) == 'a=~"b"'
    assert to_string(parse_selector('{a="b"}')) == '{a="b"}'
    assert (
        to_string(
            AndLabelFilter(
                StringLabelFilter("a", "=", "1"),
                OrLabelFilter(NumericLabelFilter("b", ">", 2), BytesLabelFilter("c", "<", 0)),
            )
        )
        == 'a="1" and (b > 2 or c < 0KB)'
    )
    assert str(parse('{app="a"} |= "x"')) == '{app="a"} |= "x"'


SELECTOR = Selector((Matcher("app", "=", "a"),))


@pytest.mark.parametrize(
    "tree",
    [
        LogQuery(Selector((Matcher("json", "=", "a"),))),  # keyword as a label name
        LogQuery(Selector((Matcher("a b", "=", "a"),))),
        LogQuery(Selector((Matcher("", "=", "a"),))),
        NumberLiteral(math.nan),
        NumberLiteral(math.inf),
        VectorExpr(-1.0),
        RangeAggregation("rate", LogRange(SELECTOR, (), 1)),  # sub-millisecond range
        RangeAggregation("quantile_over_time", LogRange(SELECTOR, (), 60 * 10**9), param=-0.5),
        VectorAggregation("topk", VectorExpr(1.0), param=-1),
        BinaryOp("+", LogQuery(SELECTOR), NumberLiteral(1.0)),
        BinaryOp(
            "+",
            VectorExpr(1.0),
            VectorExpr(1.0),
            matching=VectorMatching(False, (), "one-to-one", ("x",)),
        ),
        LogQuery(SELECTOR, (LabelFilter(DurationLabelFilter("d", ">", 2**63)),)),
    ],
)
def test_unprintable_trees_raise_value_error(tree):
    with pytest.raises(ValueError) as info:
        to_string(tree)
    assert not isinstance(info.value, QueryError)


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(strategies.queries())
def test_random_trees_round_trip(tree):
    text = to_string(tree)
    assert parse(text) == tree, text
    assert to_string(parse(text)) == text


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(strategies.log_queries())
def test_random_log_queries_round_trip(tree):
    assert parse(to_string(tree)) == tree


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(strategies.label_filter_exprs(max_leaves=10))
def test_random_label_filters_round_trip(expr):
    text = '{app="a"} | ' + to_string(expr)
    assert parse(text).stages == (LabelFilter(expr),), text


def test_group_left_before_a_parenthesised_operand_keeps_empty_include_list():
    tree = BinaryOp(
        "+",
        VectorExpr(1.0),
        BinaryOp("-", VectorExpr(1.0), VectorExpr(2.0)),
        matching=VectorMatching(True, ("a",), "many-to-one"),
    )
    text = to_string(tree)
    assert text == "vector(1) + on (a) group_left () (vector(1) - vector(2))"
    assert parse(text) == tree
    assert (
        to_string(parse("vector(1) + on (a) group_left vector(2)"))
        == "vector(1) + on (a) group_left vector(2)"
    )


def test_drop_of_a_bare_name_then_a_negative_line_filter_cannot_be_written():
    # Loki reads `| drop a != "x"` as a drop matcher, so this stage pair has no text.
    assert parse('{app="a"} | drop a != "x"').stages == (Drop((Matcher("a", "!=", "x"),)),)
    tree = LogQuery(SELECTOR, (Drop(("a",)), LineFilter("!=", ("x",), (False,))))
    with pytest.raises(ValueError, match="cannot be written"):
        to_string(tree)


def test_grouping_placement_is_canonical():
    assert (
        to_string(VectorAggregation("sum", VectorExpr(1.0), grouping=Grouping(("a",))))
        == "sum by (a) (vector(1))"
    )
