"""Line filters, label filters, unit parsing and literal prefilters of the LogQL pipeline.

Expected values come from Loki's documentation and its pkg/logql/log tests
(filter_test.go, label_filter_test.go, ip_test.go); the Hypothesis tests
check that prefilters never reject a line the real filter keeps.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from chunkstore.errors import QueryError
from chunkstore.logql.label_filters import (
    AndFilter,
    BytesLabelFilter,
    DurationLabelFilter,
    IPLabelFilter,
    NumericLabelFilter,
    OrFilter,
    StringLabelFilter,
)
from chunkstore.logql.labels_builder import LabelsBuilder
from chunkstore.logql.line_filters import (
    Contains,
    IPFilter,
    PatternFilter,
    Regex,
    literal_prefilters,
)
from chunkstore.logql.units import GoParseError, parse_bytes, parse_go_duration_ns, parse_go_float


def keep(stage, line: bytes, stream=None, parsed=None, err="") -> tuple[bool, dict]:
    lb = LabelsBuilder(stream or {})
    for k, v in (parsed or {}).items():
        lb.set_parsed(k, v)
    if err:
        lb.set_error(err)
    _, ok = stage.process(0, line, lb)
    return ok, lb.labels()


# --------------------------------------------------------------------------
# |= and !=
# --------------------------------------------------------------------------

class TestContains:
    def test_documented_examples(self):
        assert Contains(b"error").match(b"level=error msg=boom")
        assert not Contains(b"error").match(b"level=info")
        assert Contains(b"kafka.server:type=ReplicaManager", negate=True).match(b"other")
        assert not Contains(b"kafka.server:type=ReplicaManager", negate=True).match(
            b"x kafka.server:type=ReplicaManager y")

    def test_case_sensitive(self):
        assert not Contains(b"Error").match(b"error")

    def test_or_chain_keeps_any(self):
        f = Contains((b"foo", b"bar"))
        assert f.match(b"xbarx") and f.match(b"foo") and not f.match(b"baz")

    def test_negated_or_chain_drops_any(self):
        # Loki: != "a" or "b"  ==  != "a" != "b"
        f = Contains((b"foo", b"bar"), negate=True)
        assert not f.match(b"foo") and not f.match(b"bar") and f.match(b"baz")
        assert not f.match(b"foo bar")

    def test_empty_needle_is_true_filter(self):
        assert Contains(b"").match(b"anything") and Contains(b"").match(b"")
        assert not Contains(b"", negate=True).match(b"anything")
        # Loki drops TrueFilter legs from positive or-chains
        assert not Contains((b"", b"foo")).match(b"bar")
        assert not Contains((b"foo", b""), negate=True).match(b"bar")

    def test_str_needles_are_utf8(self):
        assert Contains("é").match("café".encode())

    def test_invalid_utf8_line(self):
        assert Contains(b"\xff").match(b"a\xffb")
        assert Contains(b"b").match(b"a\xffb")

    def test_no_needles_is_an_error(self):
        with pytest.raises(QueryError):
            Contains(())


# --------------------------------------------------------------------------
# |~ and !~
# --------------------------------------------------------------------------

class TestRegex:
    def test_documented_examples(self):
        assert Regex("tsdb-ops.*io:2003").match(b"x tsdb-ops-7 io:2003")
        assert Regex(r"error=\w+").match(b"error=timeout")
        assert not Regex(r"error=\w+").match(b"error= x")

    def test_unanchored_and_case(self):
        assert Regex("rr").match(b"error")
        assert not Regex("ERROR").match(b"error")
        assert Regex("(?i)ERROR").match(b"error")

    def test_negated(self):
        assert Regex("err", negate=True).match(b"info")
        assert not Regex("err", negate=True).match(b"error")

    def test_dot_does_not_match_newline(self):
        assert not Regex("a.b").match(b"a\nb")
        assert Regex("(?s)a.b").match(b"a\nb")

    def test_invalid_utf8_reads_as_replacement_rune(self):
        # Go's regexp sees one U+FFFD per invalid byte
        assert Regex("a.b").match(b"a\xffb")
        assert Regex("^a.{2}b$").match(b"a\xff\xfeb")
        assert not Regex("a.b", negate=True).match(b"a\xffb")
        assert Regex("a\ufffdb").match(b"a\xffb")

    def test_loki_simplifications(self):
        assert Regex("").match(b"") and Regex(".*").match(b"")
        assert not Regex(".*", negate=True).match(b"x")
        # `.+` becomes "line not empty" in Loki, so a lone newline passes
        assert Regex(".+").match(b"\n") and not Regex(".+").match(b"")
        assert Regex("(.+)").match(b"\n")
        assert not Regex("a.+").match(b"a\n")

    def test_linear_time_on_hostile_pattern(self):
        assert not Regex("(a+)+$").match(b"a" * 50_000 + b"!")

    def test_bad_pattern(self):
        with pytest.raises(QueryError):
            Regex("(unclosed")


# --------------------------------------------------------------------------
# |> and !>
# --------------------------------------------------------------------------

class TestPatternFilter:
    @pytest.mark.parametrize("pattern,line,expected", [
        ("<_> bar", b"foo bar baz", False),
        ("<_> baz", b"foo bar baz", True),
        ("foo <_>", b"foo bar baz", True),
        ("<_> bar <_>", b" bar ", False),
        ("<_>bar<_>", b" bar ", True),
        ("foo <_>", b"xfoo bar", True),  # the first literal is searched, not anchored
        ("<_> error <_>", b"error y", False),
        ("", b"", True),
        ("", b"x", False),
        ("<_> error", b"", False),
    ])
    def test_loki_semantics(self, pattern, line, expected):
        assert PatternFilter(pattern).match(line) is expected
        assert PatternFilter(pattern, negate=True).match(line) is (not expected)

    def test_validation(self):
        with pytest.raises(QueryError):
            PatternFilter("<_><_>")
        with pytest.raises(QueryError):
            PatternFilter("<_> <name>")


# --------------------------------------------------------------------------
# ip("...")
# --------------------------------------------------------------------------

class TestIPFilter:
    LINES = [
        b"3.180.71.3 - - [17/May/2015:08:05:32 +0000] \"GET /downloads/product_1 HTTP/1.1\" 304 0",
        b"80.91.33.133 - - [17/May/2015:08:05:14 +0000] \"GET /downloads/product_1 HTTP/1.1\" 304 0",
        b"93.180.71.3 - - [17/May/2015:08:05:26 +0000] \"GET /downloads/product_1 HTTP/1.1\" 404 324",
    ]

    def test_single_ip_is_not_a_substring_match(self):
        f = IPFilter("3.180.71.3")
        assert [f.match(x) for x in self.LINES] == [True, False, False]

    def test_cidr_range_and_ipv6(self):
        assert IPFilter("192.168.4.5/16").match(b"src=192.168.200.1 ok")
        assert not IPFilter("192.168.4.5/16").match(b"src=192.169.0.1 ok")
        assert IPFilter("192.168.4.5-192.168.4.20").match(b"x 192.168.4.7")
        assert not IPFilter("192.168.4.5-192.168.4.20").match(b"x 192.168.4.21")
        assert IPFilter("2001:db8::1-2001:db8::8").match(b"peer 2001:db8::3 up")
        assert IPFilter("2001:db8::/32").match(b"peer=2001:db8:0:1::5")
        assert IPFilter("::1").match(b"listen ::1 port")

    def test_families_do_not_mix(self):
        assert not IPFilter("::ffff:1.2.3.4").match(b"1.2.3.4")
        assert not IPFilter("1.2.3.0/24").match(b"::ffff:1.2.3.4")

    def test_scanner_skips_a_failed_candidate_whole(self):
        # Loki tries "1.2.3.4.5" as one candidate and skips it entirely
        assert not IPFilter("2.3.4.5").match(b"1.2.3.4.5")
        assert IPFilter("2.3.4.5").match(b"1.2 2.3.4.5")

    def test_negated_and_empty(self):
        assert IPFilter("10.0.0.1", negate=True).match(b"10.0.0.2")
        assert not IPFilter("10.0.0.1").match(b"")
        assert IPFilter("10.0.0.1", negate=True).match(b"")

    @pytest.mark.parametrize("spec", ["", "foo", "1.2.3", "01.2.3.4", "1.2.3.4/33", "1.2.3.4/024",
                                      "2.2.2.2-1.1.1.1", "1.1.1.1-::1"])
    def test_invalid_specs(self, spec):
        with pytest.raises(QueryError):
            IPFilter(spec)


# --------------------------------------------------------------------------
# Label filters
# --------------------------------------------------------------------------

class TestStringLabelFilter:
    def test_equality_and_absent_label(self):
        f = StringLabelFilter("method", "=", "GET")
        assert keep(f, b"", parsed={"method": "GET"})[0]
        assert not keep(f, b"", parsed={"method": "POST"})[0]
        assert not keep(f, b"")[0]
        assert keep(StringLabelFilter("method", "=", ""), b"")[0]
        assert keep(StringLabelFilter("method", "!=", "GET"), b"")[0]

    def test_regex_is_fully_anchored(self):
        f = StringLabelFilter("test", "=~", "23.*")
        assert not keep(f, b"", parsed={"test": "1234"})[0]
        assert keep(StringLabelFilter("test", "=~", "12.*"), b"", parsed={"test": "1234"})[0]
        assert keep(StringLabelFilter("method", "!~", "2.."), b"", parsed={"method": "GET"})[0]
        assert not keep(StringLabelFilter("code", "!~", "2.."), b"", parsed={"code": "200"})[0]

    def test_regex_dot_and_newline(self):
        assert not keep(StringLabelFilter("x", "=~", "a.b"), b"", parsed={"x": "a\nb"})[0]
        assert keep(StringLabelFilter("x", "=~", ".*"), b"", parsed={"x": "a\nb"})[0]
        assert keep(StringLabelFilter("x", "=~", ".+"), b"", parsed={"x": "\n"})[0]
        assert not keep(StringLabelFilter("x", "=~", ".+"), b"")[0]

    def test_error_label(self):
        assert not keep(StringLabelFilter("__error__", "=", ""), b"", err="JSONParserErr")[0]
        assert keep(StringLabelFilter("__error__", "=", ""), b"")[0]
        f = StringLabelFilter("__error__", "!=", "JSONParserErr")
        assert not keep(f, b"", err="JSONParserErr")[0]
        assert keep(f, b"", err="LogfmtParserErr")[0]

    def test_bad_input(self):
        with pytest.raises(QueryError):
            StringLabelFilter("a", "=~", "(")
        with pytest.raises(QueryError):
            StringLabelFilter("a", ">", "x")


class TestConvertingFilters:
    def test_numeric(self):
        f = NumericLabelFilter("status", ">=", 400)
        assert keep(f, b"", parsed={"status": "500"})[0]
        assert not keep(f, b"", parsed={"status": "200"})[0]
        assert keep(NumericLabelFilter("x", "==", 1.5), b"", parsed={"x": "1.5"})[0]
        assert keep(NumericLabelFilter("x", "=", 1.5), b"", parsed={"x": "15e-1"})[0]
        assert keep(NumericLabelFilter("x", "!=", 1), b"", parsed={"x": "NaN"})[0]

    def test_absent_label_drops_the_line(self):
        for f in (NumericLabelFilter("n", ">", 0), DurationLabelFilter("d", ">", 0), BytesLabelFilter("b", ">", 0)):
            ok, labels = keep(f, b"")
            assert not ok and "__error__" not in labels

    def test_conversion_failure_keeps_line_with_error(self):
        ok, labels = keep(NumericLabelFilter("status", ">", 1), b"", parsed={"status": "abc"})
        assert ok
        assert labels["__error__"] == "LabelFilterErr"
        assert labels["__error_details__"] == 'strconv.ParseFloat: parsing "abc": invalid syntax'
        ok, labels = keep(DurationLabelFilter("d", ">", 1), b"", parsed={"d": "10"})
        assert ok and labels["__error_details__"] == 'time: missing unit in duration "10"'
        ok, labels = keep(BytesLabelFilter("b", ">", 1), b"", parsed={"b": "10 parsecs"})
        assert ok and labels["__error_details__"] == "unhandled size name: parsecs"

    def test_existing_error_is_kept(self):
        ok, labels = keep(NumericLabelFilter("n", ">", 1), b"", parsed={"n": "x"}, err="JSONParserErr")
        assert ok and labels["__error__"] == "JSONParserErr" and "__error_details__" not in labels

    def test_duration_and_bytes(self):
        assert keep(DurationLabelFilter("duration", ">", 10 * 10**9), b"", parsed={"duration": "1m"})[0]
        assert not keep(DurationLabelFilter("duration", ">", 60 * 10**9), b"", parsed={"duration": "59.9s"})[0]
        assert keep(BytesLabelFilter("size", "==", 20_000), b"", parsed={"size": "20KB"})[0]
        assert keep(BytesLabelFilter("size", "<", 20_480), b"", parsed={"size": "20kB"})[0]
        assert not keep(BytesLabelFilter("size", "<", 20_480), b"", parsed={"size": "20KiB"})[0]

    def test_documented_and_or_precedence(self):
        # | duration >= 20ms or method="GET" and size <= 20KB  ==  ((a or b) and c)
        a = DurationLabelFilter("duration", ">=", 20_000_000)
        b = StringLabelFilter("method", "=", "GET")
        c = BytesLabelFilter("size", "<=", 20_000)
        f = AndFilter(OrFilter(a, b), c)
        assert keep(f, b"", parsed={"duration": "1ms", "method": "GET", "size": "1KB"})[0]
        assert not keep(f, b"", parsed={"duration": "1s", "method": "GET", "size": "1MB"})[0]
        assert not keep(f, b"", parsed={"duration": "1ms", "method": "PUT", "size": "1KB"})[0]

    def test_and_runs_both_sides_or_short_circuits(self):
        bad = NumericLabelFilter("x", ">", 0)
        _, labels = keep(AndFilter(StringLabelFilter("a", "=", "no"), bad), b"", parsed={"x": "zz"})
        assert labels.get("__error__") == "LabelFilterErr"
        ok, labels = keep(OrFilter(StringLabelFilter("a", "=", ""), bad), b"", parsed={"x": "zz"})
        assert ok and "__error__" not in labels


class TestIPLabelFilter:
    def test_documented_examples(self):
        f = IPLabelFilter("addr", "=", "192.168.4.5/16")
        assert keep(f, b"", parsed={"addr": "192.168.1.1"})[0]
        assert not keep(f, b"", parsed={"addr": "10.0.0.1"})[0]
        assert not keep(f, b"")[0]
        g = AndFilter(f, IPLabelFilter("addr", "!=", "192.168.4.2"))
        assert not keep(g, b"", parsed={"addr": "192.168.4.2"})[0]
        assert keep(IPLabelFilter("remote_addr", "=", "2001:db8::1-2001:db8::8"), b"",
                    parsed={"remote_addr": "2001:db8::5"})[0]

    def test_error_keeps_line(self):
        assert keep(IPLabelFilter("addr", "=", "1.1.1.1"), b"", err="JSONParserErr")[0]

    def test_bad_spec_or_op(self):
        with pytest.raises(QueryError):
            IPLabelFilter("addr", "=", "nope")
        with pytest.raises(QueryError):
            IPLabelFilter("addr", ">", "1.1.1.1")


# --------------------------------------------------------------------------
# Go unit grammars
# --------------------------------------------------------------------------

class TestUnits:
    @pytest.mark.parametrize("text,ns", [
        ("1m30s", 90 * 10**9), ("250ms", 250 * 10**6), ("1.5h", 5400 * 10**9), ("-1.5h", -5400 * 10**9),
        ("0", 0), ("+0s", 0), ("1us", 1000), ("1\u00b5s", 1000), ("1\u03bcs", 1000), ("2h45m", 9900 * 10**9),
        (".5s", 5 * 10**8), ("1.s", 10**9), ("1.0000000001h", 3600000000360),
        ("9223372036854775807ns", 2**63 - 1), ("-9223372036854775808ns", -(2**63)),
        ("2562047h47m16.854775807s", 2**63 - 1),
    ])
    def test_durations(self, text, ns):
        assert parse_go_duration_ns(text) == ns

    @pytest.mark.parametrize("text,message", [
        ("", 'time: invalid duration ""'),
        ("1", 'time: missing unit in duration "1"'),
        ("1x", 'time: unknown unit "x" in duration "1x"'),
        ("1d", 'time: unknown unit "d" in duration "1d"'),
        (".s", 'time: invalid duration ".s"'),
        (" 1s", 'time: invalid duration " 1s"'),
        ("9223372036854775808ns", 'time: invalid duration "9223372036854775808ns"'),
        ("1h\u00e9", 'time: unknown unit "h\\xc3\\xa9" in duration "1h\\xc3\\xa9"'),
    ])
    def test_duration_errors(self, text, message):
        with pytest.raises(GoParseError) as info:
            parse_go_duration_ns(text)
        assert str(info.value) == message

    @pytest.mark.parametrize("text,n", [
        ("5MB", 5_000_000), ("10KiB", 10_240), ("1.5 gb", 1_500_000_000), ("1,024", 1024),
        ("42mib", 44_040_192), ("20B", 20), ("42", 42), ("1.5KiB", 1536), ("1k", 1000), ("3 EiB", 3 * 2**60),
    ])
    def test_bytes(self, text, n):
        assert parse_bytes(text) == n

    @pytest.mark.parametrize("text,message", [
        ("MB", 'strconv.ParseFloat: parsing "": invalid syntax'),
        ("1e3", "unhandled size name: e3"),
        ("18446744073709551616", "too large: 18446744073709551616"),
        ("1.2.3MB", 'strconv.ParseFloat: parsing "1.2.3": invalid syntax'),
    ])
    def test_bytes_errors(self, text, message):
        with pytest.raises(GoParseError) as info:
            parse_bytes(text)
        assert str(info.value) == message

    @pytest.mark.parametrize("text,value", [
        ("1", 1.0), ("-2.5", -2.5), ("1_000", 1000.0), ("1e-400", 0.0), ("0x1p-2", 0.25), (".5", 0.5),
        ("5.", 5.0), ("inf", math.inf), ("-Infinity", -math.inf), ("+INF", math.inf),
    ])
    def test_floats(self, text, value):
        assert parse_go_float(text) == value

    @pytest.mark.parametrize("text", ["", " 1", "1 ", "1__0", "_1", "1_", "0x1", "+nan", "1e", "abc", "infin", "1,5"])
    def test_float_syntax_errors(self, text):
        with pytest.raises(GoParseError, match="invalid syntax"):
            parse_go_float(text)

    def test_float_out_of_range(self):
        with pytest.raises(GoParseError, match='parsing "1e400": value out of range'):
            parse_go_float("1e400")
        assert math.isnan(parse_go_float("NaN"))


# --------------------------------------------------------------------------
# Literal prefilters
# --------------------------------------------------------------------------

def prefilter_keeps(groups, line: bytes) -> bool:
    lowered = line.lower()
    for needles, ci in groups:
        hay = lowered if ci else line
        if not any(n in hay for n in needles):
            return False
    return True


class TestLiteralPrefilters:
    def test_examples(self):
        assert literal_prefilters(Contains((b"a", b"bc"))) == [((b"a", b"bc"), False)]
        assert literal_prefilters(Regex("error|warn")) == [((b"error", b"warn"), False)]
        assert literal_prefilters(Regex("(?i)timeout")) == [((b"timeout",), True)]
        assert literal_prefilters(Regex("foo.*bar")) == [((b"foo",), False), ((b"bar",), False)]
        assert literal_prefilters(Regex("level=(error|warn)")) == [((b"level=",), False), ((b"error", b"warn"), False)]
        assert literal_prefilters(PatternFilter("<_> GET <_> 500")) == [((b" GET ",), False), ((b" 500",), False)]

    def test_nothing_provable(self):
        for f in (Contains(b"x", negate=True), Regex("x", negate=True), Regex(".*"), Regex("a?"),
                  Regex("x|.*"), Regex(r"\d+"), Regex("[[:alpha:]]+x"), Regex(r"\Qa.b\E"),
                  Contains(b""), IPFilter("1.2.3.4"), PatternFilter("<_>x", negate=True)):
            assert literal_prefilters(f) is None, f

    def test_case_folding_partners_are_left_out(self):
        # (?i)k also matches U+212A KELVIN SIGN, (?i)s U+017F LONG S
        assert literal_prefilters(Regex("(?i)kafka broker")) == [((b"a bro",), True)]
        assert Regex("(?i)kafka").match("\u212aafka".encode())
        assert literal_prefilters(Regex("(?i)ks")) is None

    def test_scoped_flags(self):
        assert literal_prefilters(Regex("ab(?i:cd)")) == [((b"ab",), False), ((b"cd",), True)]


_ALPHABET = "abkKsS\u00e9 .-"
_literal = st.text(alphabet="abkKsS\u00e9 -", min_size=1, max_size=4).map(
    lambda s: s.replace("-", r"\-"))
_atom = st.one_of(
    _literal, st.just("."), st.just("[ab]"), st.just("[^a]"), st.just(r"\d"), st.just(r"\b"),
    st.just("^"), st.just("$"), st.just(r"\."),
)


def _combine(children):
    return st.one_of(
        st.tuples(children, children).map(lambda t: t[0] + t[1]),
        st.tuples(children, children).map(lambda t: f"(?:{t[0]}|{t[1]})"),
        st.tuples(children, children).map(lambda t: f"{t[0]}|{t[1]}"),
        children.map(lambda c: f"({c})"),
        children.map(lambda c: f"(?:{c})*"),
        children.map(lambda c: f"(?:{c})+"),
        children.map(lambda c: f"(?:{c})?"),
        children.map(lambda c: f"(?:{c}){{1,2}}"),
        children.map(lambda c: f"(?i:{c})"),
        children.map(lambda c: f"(?-i:{c})"),
    )


regexes = st.tuples(st.sampled_from(["", "(?i)", "(?s)"]), st.recursive(_atom, _combine, max_leaves=8)).map(
    lambda t: t[0] + t[1])
line_text = st.text(alphabet=_ALPHABET + "\u212a\u017fAB\n", max_size=24).map(lambda s: s.encode())
lines = st.one_of(line_text, st.binary(max_size=24),
                  st.tuples(line_text, st.binary(max_size=3), line_text).map(lambda t: b"".join(t)))


@given(regexes, lines)
def test_regex_prefilter_is_sound(pattern, line):
    try:
        f = Regex(pattern)
    except QueryError:
        assume(False)
    groups = literal_prefilters(f)
    if groups is not None and f.match(line):
        assert prefilter_keeps(groups, line), (pattern, line, groups)


@given(regexes, line_text)
def test_regex_prefilter_is_sound_on_lines_built_from_its_literals(pattern, filler):
    """Lines containing the pattern's own text make matches (and so real checks) frequent."""
    try:
        f = Regex(pattern)
    except QueryError:
        assume(False)
    groups = literal_prefilters(f)
    plain = pattern.replace("\\", "").replace("(?i)", "").replace("(?s)", "").encode()
    for line in (plain, filler + plain, plain.upper(), plain + filler):
        if groups is not None and f.match(line):
            assert prefilter_keeps(groups, line), (pattern, line, groups)


@given(st.lists(st.binary(max_size=4), min_size=1, max_size=3), st.booleans(), lines)
def test_contains_prefilter_is_sound(needles, negate, line):
    f = Contains(tuple(needles), negate=negate)
    groups = literal_prefilters(f)
    if groups is not None and f.match(line):
        assert prefilter_keeps(groups, line)


@given(st.lists(st.one_of(st.text(alphabet="ab <>_", min_size=1, max_size=3), st.just("<_>")), max_size=5),
       line_text)
def test_pattern_prefilter_is_sound(parts, line):
    try:
        f = PatternFilter("".join(parts))
    except QueryError:
        assume(False)
    groups = literal_prefilters(f)
    if groups is not None and f.match(line):
        assert prefilter_keeps(groups, line)


@given(st.text(max_size=12))
def test_unit_parsers_raise_only_go_parse_errors(text):
    for fn in (parse_go_duration_ns, parse_bytes, parse_go_float):
        try:
            fn(text)
        except GoParseError:
            pass


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_duration_nanosecond_round_trip(ns):
    assert parse_go_duration_ns(f"{ns}ns") == ns
