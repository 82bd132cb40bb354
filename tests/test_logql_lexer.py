"""The LogQL lexer and the duration/size literal parsers behave like Loki's."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chunkstore.logql import durations
from chunkstore.logql.lexer import tokenize

NS, US, MS, S, M, H, D = 1, 10**3, 10**6, 10**9, 60 * 10**9, 3600 * 10**9, 86400 * 10**9


def kinds(query: str) -> list[str]:
    return [t.kind for t in tokenize(query)]


def single(query: str):
    tokens = tokenize(query)
    assert [t.kind for t in tokens[1:]] == ["EOF"], tokens
    return tokens[0]


def test_operators_and_positions():
    tokens = tokenize('{a=~"x"} |= "y" != "z" |~ "r" !~ "s" |> "p" !> "q" | b >= 1')
    assert [t.kind for t in tokens] == [
        "{",
        "IDENT",
        "=~",
        "STRING",
        "}",
        "|=",
        "STRING",
        "!=",
        "STRING",
        "|~",
        "STRING",
        "!~",
        "STRING",
        "|>",
        "STRING",
        "!>",
        "STRING",
        "|",
        "IDENT",
        ">=",
        "NUMBER",
        "EOF",
    ]
    assert [t.pos for t in tokens[:6]] == [0, 1, 2, 4, 7, 9]
    assert tokens[-1].pos == len('{a=~"x"} |= "y" != "z" |~ "r" !~ "s" |> "p" !> "q" | b >= 1')


def test_comparison_and_arithmetic_operators():
    assert kinds("== != > >= < <= + - * / % ^ = ( ) , .") == [
        "==",
        "!=",
        ">",
        ">=",
        "<",
        "<=",
        "+",
        "-",
        "*",
        "/",
        "%",
        "^",
        "=",
        "(",
        ")",
        ",",
        ".",
        "EOF",
    ]


def test_keywords_are_case_insensitive_and_reserved():
    tokens = tokenize("BY Without json LOGFMT Or and UNLESS offset unwrap")
    assert all(t.kind == "KW" for t in tokens[:-1])
    assert [t.value for t in tokens[:-1]] == [
        "by",
        "without",
        "json",
        "logfmt",
        "or",
        "and",
        "unless",
        "offset",
        "unwrap",
    ]


def test_function_names_are_keywords_only_before_a_parenthesis():
    tokens = tokenize("rate(x) rate = sum by (a) count without(b) bytes(x) bytes ip(x) ip Sum (")
    described = [(t.kind, t.value) for t in tokens if t.kind in ("FUNC", "IDENT")]
    assert described == [
        ("FUNC", "rate"),
        ("IDENT", "x"),
        ("IDENT", "rate"),
        ("FUNC", "sum"),
        ("IDENT", "a"),
        ("FUNC", "count"),
        ("IDENT", "b"),
        ("FUNC", "bytes"),
        ("IDENT", "x"),
        ("IDENT", "bytes"),
        ("FUNC", "ip"),
        ("IDENT", "x"),
        ("IDENT", "ip"),
        ("FUNC", "sum"),
    ]


def test_by_must_be_followed_by_a_parenthesis_to_make_a_function():
    assert single("sum").kind == "IDENT"
    assert tokenize("sum bytes")[0].kind == "IDENT"
    assert tokenize("sum by(x)")[0].kind == "FUNC"
    assert tokenize("sum by x")[0].kind == "IDENT"


def test_unicode_identifiers_like_go():
    token = single("ñame_2")
    assert (token.kind, token.value) == ("IDENT", "ñame_2")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("5m", 5 * M),
        ("1h30m", 90 * M),
        ("1.5h", 90 * M),
        ("500ms", 500 * MS),
        ("1d", D),
        ("2w", 14 * D),
        ("1y", 365 * D),
        ("300us", 300 * US),
        ("300µs", 300 * US),
        ("10ns", 10),
        ("-5m", -5 * M),
        ("-1.5s", -1500 * MS),
        ("0s", 0),
        ("-0", 0),
        ("1h0.5s", H + 500 * MS),
    ],
)
def test_duration_tokens(text, value):
    token = single(text)
    assert (token.kind, token.value) == ("DURATION", value)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("20MB", 20_000_000),
        ("1KiB", 1024),
        ("42k", 42_000),
        ("5M", 5_000_000),
        ("1.5KB", 1500),
        ("3GiB", 3 * 2**30),
        ("7B", 7),
        ("2TB", 2 * 10**12),
    ],
)
def test_bytes_tokens(text, value):
    token = single(text)
    assert (token.kind, token.value) == ("BYTES", value)


def test_units_glued_only_when_they_parse():
    # "10mb": the duration run stops at "b", so Loki reads 10m and then an identifier.
    assert [(t.kind, t.text) for t in tokenize("10mb")[:2]] == [("DURATION", "10m"), ("IDENT", "b")]
    assert [(t.kind, t.text) for t in tokenize("5 m")[:2]] == [("NUMBER", "5"), ("IDENT", "m")]
    assert [(t.kind, t.text) for t in tokenize("5min")[:2]] == [("DURATION", "5m"), ("IDENT", "in")]


def test_minus_is_a_duration_sign_only_when_a_duration_follows():
    assert kinds("- 5") == ["-", "NUMBER", "EOF"]
    assert kinds("-5") == ["-", "NUMBER", "EOF"]
    assert kinds("1 -1") == ["NUMBER", "-", "NUMBER", "EOF"]
    assert kinds("-5m") == ["DURATION", "EOF"]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", 1.0),
        ("1.5", 1.5),
        (".5", 0.5),
        ("5.", 5.0),
        ("1e3", 1000.0),
        ("1E-2", 0.01),
        ("0x1p4", 16.0),
        ("1_000", 1000.0),
        ("0755", 755.0),
        ("0x10", None),
        ("0o17", None),
        ("1e400", None),
    ],
)
def test_numbers_follow_go_parse_float(text, value):
    token = single(text)
    assert token.kind == "NUMBER" and token.value == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("089", "invalid digit '8' in octal literal"),
        ("1__0", "'_' must separate successive digits"),
        ("5PB", "exponent requires hexadecimal mantissa"),
        ("1e", "exponent has no digits"),
        ("0x", "hexadecimal literal has no digits"),
        ("0x1.8", "hexadecimal mantissa requires a 'p' exponent"),
    ],
)
def test_malformed_numbers_are_lexer_errors(text, message):
    token = tokenize(text)[-1]
    assert token.kind == "ERROR" and message in token.value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('"plain"', "plain"),
        (r'"a\"b\\c"', 'a"b\\c'),
        (r'"\n\t\r\a\b\f\v"', "\n\t\r\a\b\f\v"),
        (r'"\x41\101\u00e9\U0001F600"', "AAé😀"),
        (r'"\x1b[31m"', "\x1b[31m"),
        ('`raw \\w+ "q"`', 'raw \\w+ "q"'),
        ("`multi\nline`", "multi\nline"),
        ('"#not a comment"', "#not a comment"),
    ],
)
def test_strings_decode_go_escapes(text, value):
    token = single(text)
    assert (token.kind, token.value) == ("STRING", value)


@pytest.mark.parametrize(
    ("text", "message", "pos"),
    [
        ('"open', "literal not terminated", 0),
        ('"a\nb"', "literal not terminated", 0),
        ("`open", "literal not terminated", 0),
        (r'x "\q"', "invalid char escape", 3),
        (r'"\'"', "invalid char escape", 1),
        (r'"\xff"', "invalid UTF-8", 0),
        (r'"\ud800"', "not a valid Unicode code point", 1),
        (r'"\777"', "above", 1),
        (r'"\12"', "invalid char escape", 1),
    ],
)
def test_bad_strings(text, message, pos):
    token = tokenize(text)[-1]
    assert token.kind == "ERROR" and message in token.value and token.pos == pos


def test_comments_are_skipped():
    assert kinds('{a="b"} # comment |= "x"\n |= "y"') == [
        "{",
        "IDENT",
        "=",
        "STRING",
        "}",
        "|=",
        "STRING",
        "EOF",
    ]
    assert kinds("1 /* block */ + // line\n 2") == ["NUMBER", "+", "NUMBER", "EOF"]
    assert tokenize("1 /* open")[-1].value == "comment not terminated"


def test_range_token():
    token = single("[1h30m]")
    assert (token.kind, token.value) == ("RANGE", 90 * M)
    assert tokenize("[5x]")[-1].value == 'unknown unit "x" in duration "5x"'
    assert tokenize("[1.5m]")[-1].kind == "ERROR"  # ranges use Prometheus syntax: no fractions
    assert tokenize("[5m")[-1].value == "missing closing ']' in duration"


def test_parser_flags():
    assert [(t.kind, t.value) for t in tokenize("--strict --keep-empty")[:2]] == [
        ("FLAG", "--strict"),
        ("FLAG", "--keep-empty"),
    ]
    assert kinds("--nope") == ["-", "-", "IDENT", "EOF"]


def test_errors_become_a_final_token_at_their_position():
    tokens = tokenize('{a="b"} @ |= "x"')
    assert tokens[-1].kind == "ERROR" and tokens[-1].pos == 8
    assert tokenize("a\x00")[-1].value == "invalid character NUL"
    assert tokenize("!x")[-1].kind == "ERROR"


def test_byte_order_mark_is_ignored():
    assert kinds("\ufeff1") == ["NUMBER", "EOF"]


# -- durations module -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("5m", 5 * M),
        ("1h30m", 90 * M),
        ("1y2w3d4h5m6s7ms", 365 * D + 17 * D + 4 * H + 5 * M + 6 * S + 7 * MS),
        ("90s", 90 * S),
    ],
)
def test_prometheus_durations(text, value):
    assert durations.parse_prometheus_duration_ns(text) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty duration string"),
        ("1m1h", "not a valid duration string"),
        ("5x", "unknown unit"),
        ("-5m", "not a valid"),
        ("1.5h", "unknown unit"),
        ("1m1m", "not a valid"),
        ("300y", "duration out of range"),
    ],
)
def test_prometheus_duration_errors(text, message):
    with pytest.raises(ValueError, match=message):
        durations.parse_prometheus_duration_ns(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1.5h", 90 * M),
        ("-3s", -3 * S),
        ("300us", 300 * US),
        ("300µs", 300 * US),
        ("300μs", 300 * US),
        ("2h45m", 165 * M),
        (".5s", 500 * MS),
        ("+1s", S),
        ("0", 0),
        ("-0", 0),
        ("1.0000000001s", S),
        ("2562047h47m16.854775807s", 2**63 - 1),
    ],
)
def test_go_durations(text, value):
    assert durations.parse_go_duration_ns(text) == value


@pytest.mark.parametrize(
    "text", ["", "1", "1d", ".s", "1.5", "-", "2562047h47m16.854775808s", "1h1x"]
)
def test_go_duration_errors(text):
    with pytest.raises(ValueError, match="time: "):
        durations.parse_go_duration_ns(text)


def test_logql_durations_try_prometheus_then_go():
    assert durations.parse_duration_ns("1d") == D
    assert durations.parse_duration_ns("1.5h") == 90 * M
    assert durations.parse_duration_ns("-1h") == -H
    with pytest.raises(ValueError):
        durations.parse_duration_ns("1d1.5h")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("10MB", 10_000_000),
        ("1KiB", 1024),
        ("5 B", 5),
        ("42", 42),
        ("1,000 kb", 1_000_000),
        ("1.5B", 1),
        ("2 gib", 2 * 2**30),
        ("1EB", 10**18),
        ("3k", 3000),
    ],
)
def test_parse_bytes(text, value):
    assert durations.parse_bytes(text) == value


@pytest.mark.parametrize("text", ["", "MB", "10 XB", "-1B", "1.2.3B", "16EiB", "20EB"])
def test_parse_bytes_errors(text):
    with pytest.raises(ValueError):
        durations.parse_bytes(text)


@given(st.integers(-(2**63), 2**63 - 1))
def test_format_duration_round_trips(ns):
    text = durations.format_duration(ns)
    assert durations.parse_duration_ns(text) == ns
    assert single(text).value == ns


@given(st.integers(0, 10**12).map(lambda ms: ms * MS))
def test_format_range_round_trips(ns):
    assert durations.parse_prometheus_duration_ns(durations.format_range(ns)) == ns


@given(st.integers(0, 2**53))
def test_format_bytes_round_trips(size):
    text = durations.format_bytes(size)
    assert durations.parse_bytes(text) == size
    assert single(text).value == size
