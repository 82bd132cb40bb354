"""Hand-written recursive-descent LogQL parser: entry points and log pipelines.

The grammar and every check follow Loki's ``pkg/logql/syntax`` (the yacc
grammar, plus the validation its constructors do), so a query Loki rejects
raises :class:`~chunkstore.errors.QueryError` here and one it accepts parses
to the tree Loki would build. The metric half of the grammar (aggregations,
binary operators, log ranges) lives in :mod:`.parser_metric`; this module
holds selectors, pipeline stages, label filters and the value validators.

Errors carry ``pos``, the 0-based character offset of the offending token.
Like Loki, syntax errors win over semantic ones: checks Loki makes after
parsing (non-empty selectors, aggregation parameters, grouping and unwrap
rules) are collected while parsing and raised only once the whole query is
syntactically valid; checks Loki makes while building a node (regexes,
patterns, IP ranges) raise at once.

Limits: a query of :data:`MAX_QUERY_BYTES` UTF-8 bytes or more is refused
(Loki's 128 KiB), and nesting beyond :data:`MAX_DEPTH` levels raises
QueryError rather than exhausting the Python stack; the same bound keeps
every tree shallow enough for recursive consumers (printer, evaluator).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from contextlib import contextmanager

import re2

from ..errors import QueryError
from . import ast
from .lexer import Token, tokenize
from .parser_metric import MetricGrammar
from .re2_groups import capture_names

__all__ = [
    "parse",
    "parse_expr",
    "parse_selector",
    "parse_log_query",
    "parse_metric_query",
    "validate_selector",
    "MAX_QUERY_BYTES",
    "MAX_DEPTH",
]

#: Loki's maxInputSize: queries of this many UTF-8 bytes or more are refused.
MAX_QUERY_BYTES = 131072
#: Deepest nesting accepted (parentheses, function arguments, operator chains).
MAX_DEPTH = 128

EMPTY_SELECTOR_MESSAGE = (
    "queries require at least one regexp or equality matcher that does not have an "
    "empty-compatible value. "
    'For instance, app=~".*" does not meet this requirement, but app=~".+" will'
)

_LINE_FILTER_KINDS = frozenset(ast.LINE_FILTER_OPS)
_MATCH_KINDS = frozenset(ast.MATCH_OPS)
_COMPARISON_KINDS = {"==": "==", "=": "==", "!=": "!=", ">": ">", ">=": ">=", "<": "<", "<=": "<="}
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


# --------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------


def parse(query: str) -> ast.Expr:
    """Parse a LogQL query: a :class:`~.ast.LogQuery` or a :class:`~.ast.SampleExpr`.

    Raises QueryError (with ``pos``) for anything Loki would refuse to run:
    syntax errors, invalid regexes and patterns, selectors that match every
    stream, aggregations used with the wrong arguments, oversized input.
    """
    return _Parser(query).parse_root()


#: Loki's name for :func:`parse`.
parse_expr = parse


def parse_selector(text: str, *, validate: bool = True) -> ast.Selector:
    """Parse a bare stream selector such as ``{app="api", env=~"prod|dev"}``.

    For retention rules and ``series()``. With ``validate`` False the
    selector may match every stream (``{}``, ``{a=~".*"}``). Raises
    QueryError for anything but a selector, pipelines included.
    """
    parser = _Parser(text, validate_selectors=validate)
    expr = parser.parse_root()
    if not isinstance(expr, ast.LogQuery) or expr.stages:
        raise QueryError("selector: only a stream selector is supported here", pos=0, query=text)
    return expr.selector


def parse_log_query(text: str) -> ast.LogQuery:
    """Parse a log query (selector and pipeline); metric queries raise QueryError."""
    expr = parse(text)
    if not isinstance(expr, ast.LogQuery):
        raise QueryError(
            "log query: only log queries are supported here, not metric queries", pos=0, query=text
        )
    return expr


def parse_metric_query(text: str) -> ast.SampleExpr:
    """Parse a metric query; log queries raise QueryError."""
    expr = parse(text)
    if not isinstance(expr, ast.SampleExpr):
        raise QueryError(
            "metric query: only metric queries are supported here, not log queries",
            pos=0,
            query=text,
        )
    return expr


def validate_selector(
    selector: ast.Selector, *, pos: int | None = None, query: str | None = None
) -> None:
    """Refuse a selector that would select every stream (Loki's rule).

    At least one matcher must not match the empty string: ``app="a"``,
    ``app=~".+"`` and ``app!=""`` qualify; ``app=~".*"``, ``app!="a"`` and
    ``{}`` alone do not. Raises QueryError with Loki's message.
    """
    for matcher in selector.matchers:
        if not _matches_empty(matcher):
            return
    raise QueryError(EMPTY_SELECTOR_MESSAGE, pos=pos, query=query)


def _matches_empty(matcher: ast.Matcher) -> bool:
    if matcher.op == "=":
        return matcher.value == ""
    if matcher.op == "!=":
        return matcher.value != ""
    full = _regex_matches_empty(matcher.value)
    return full if matcher.op == "=~" else not full


@functools.lru_cache(maxsize=1024)
def _regex_matches_empty(pattern: str) -> bool:
    try:
        compiled = re2.compile(_anchored(pattern), _RE2_OPTIONS)
    except re2.error:
        raise QueryError(matcher_regex_error(pattern) or "error parsing regexp") from None
    return compiled.search("") is not None


def _anchored(pattern: str) -> str:
    """How Prometheus compiles a label matcher's regex: anchored, ``.`` matching newlines."""
    return "^(?s:" + pattern + ")$"


# --------------------------------------------------------------------------
# Value validators (what Loki's node constructors check)
# --------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def regex_error(pattern: str) -> str | None:
    """Go's "error parsing regexp: ..." message for a pattern RE2 cannot compile, else None."""
    try:
        re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as err:
        detail = (
            err.args[0].decode("utf-8", "replace")
            if err.args and isinstance(err.args[0], bytes)
            else str(err)
        )
        return f"error parsing regexp: {detail}"
    return None


def matcher_regex_error(pattern: str) -> str | None:
    """Prometheus' matcher checks: the bare regex parses and so does its anchored form.

    The second catches ``\\Qabc``, whose quoting would swallow the closing
    parenthesis Prometheus wraps around it.
    """
    return regex_error(pattern) or regex_error(_anchored(pattern))


def regexp_parser_error(pattern: str) -> str | None:
    """Loki's NewRegexpParser checks: compiles, has named groups, names valid and unique."""
    error = regex_error(pattern)
    if error is not None:
        return f"invalid regexp parser: {error}"
    names = capture_names(pattern)
    if not names:
        return "invalid regexp parser: at least one named capture must be supplied"
    seen = set()
    for name in names:
        if not _LABEL_NAME.fullmatch(name):
            return f"invalid regexp parser: invalid extracted label name '{name}'"
        if name in seen:
            return f"invalid regexp parser: duplicate extracted label name '{name}'"
        seen.add(name)
    return None


_PATTERN_CAPTURE = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*)>")


def _pattern_nodes(pattern: str) -> list[tuple[str, str]]:
    """Split a Loki pattern into ("capture", name) and ("literal", text) nodes."""
    nodes: list[tuple[str, str]] = []
    i = 0
    while i < len(pattern):
        match = _PATTERN_CAPTURE.match(pattern, i)
        if match:
            nodes.append(("capture", match.group(1)))
            i = match.end()
            continue
        if nodes and nodes[-1][0] == "literal":
            nodes[-1] = ("literal", nodes[-1][1] + pattern[i])
        else:
            nodes.append(("literal", pattern[i]))
        i += 1
    return nodes


def _consecutive_capture_error(nodes: list[tuple[str, str]]) -> str | None:
    for (kind, name), (next_kind, next_name) in zip(nodes, nodes[1:], strict=False):
        if kind == "capture" and next_kind == "capture":
            return f"found consecutive capture '<{name}><{next_name}>': invalid expression"
    return None


def pattern_parser_error(pattern: str) -> str | None:
    """Loki's pattern.New checks for ``| pattern``: captures present, not adjacent, names unique.

    Loki checks every adjacent pair; older releases only looked at even
    positions and then failed at match time instead.
    """
    if pattern == "":
        return (
            "invalid pattern parser: syntax error: unexpected $end, expecting IDENTIFIER or LITERAL"
        )
    nodes = _pattern_nodes(pattern)
    named = [name for kind, name in nodes if kind == "capture" and name != "_"]
    if not named:
        return "invalid pattern parser: at least one capture is required"
    error = _consecutive_capture_error(nodes)
    if error is not None:
        return f"invalid pattern parser: {error}"
    seen = set()
    for name in named:
        if name in seen:
            return f"invalid pattern parser: duplicate capture name ({name}): invalid expression"
        seen.add(name)
    return None


def pattern_filter_error(pattern: str) -> str | None:
    """Checks for a ``|>``/``!>`` pattern: only ``<_>`` captures, never two in a row."""
    if pattern == "":
        return None
    nodes = _pattern_nodes(pattern)
    error = _consecutive_capture_error(nodes)
    if error is not None:
        return error
    for kind, name in nodes:
        if kind == "capture" and name != "_":
            return f"named captures are not allowed: found '<{name}>'"
    return None


def _go_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _parse_addr(text: str, *, allow_zone: bool = True):
    if not allow_zone and "%" in text:
        raise ValueError(text)
    if text != text.strip() or not text:
        raise ValueError(text)
    return ipaddress.ip_address(text)


def ip_pattern_error(pattern: str) -> str | None:
    """Loki's IP pattern rules: an address, a CIDR prefix or a ``from-to`` range of one family."""
    try:
        _parse_addr(pattern)
        return None
    except ValueError:
        pass
    addr, slash, bits = pattern.rpartition("/")
    if slash:
        try:
            parsed = _parse_addr(addr, allow_zone=False)
            if (
                bits.isascii()
                and bits.isdigit()
                and (bits == "0" or bits[0] != "0")
                and int(bits) <= parsed.max_prefixlen
            ):
                return None
        except ValueError:
            pass
    low, dash, high = pattern.partition("-")
    if dash:
        try:
            first, last = _parse_addr(low), _parse_addr(high)
            same_zone = getattr(first, "scope_id", None) == getattr(last, "scope_id", None)
            if first.version == last.version and same_zone and first <= last:
                return None
        except ValueError:
            pass
    return f"ip: invalid pattern: {_go_quote(pattern)}"


def number_error(text: str, what: str) -> str:
    """Loki's message for a NUMBER token Go's ParseFloat rejects."""
    try:
        reason = "value out of range" if float(text.replace("_", "")) else "invalid syntax"
    except ValueError:
        reason = "invalid syntax"
    parsing = f"strconv.ParseFloat: parsing {_go_quote(text)}: {reason}"
    return f"unable to parse {what} as a float: {parsing}"


# --------------------------------------------------------------------------
# The parser
# --------------------------------------------------------------------------


class _Parser(MetricGrammar):
    """One parse of one query. Not reusable; not thread-safe (cheap to create)."""

    def __init__(self, query: str, *, validate_selectors: bool = True):
        if not isinstance(query, str):
            raise TypeError(f"logql: query must be str, not {type(query).__name__}")
        self.query = query
        self.validate_selectors = validate_selectors
        self.deferred: list[QueryError] = []
        self.depth = 0
        self.i = 0
        try:
            size = len(query.encode("utf-8"))
        except UnicodeEncodeError as err:
            raise QueryError("invalid UTF-8 rune", pos=err.start, query=query) from None
        if size >= MAX_QUERY_BYTES:
            raise QueryError(f"input size too long ({size} > {MAX_QUERY_BYTES})", query=query)
        self.tokens = tokenize(query)

    # -- token handling ----------------------------------------------------

    @property
    def tok(self) -> Token:
        token = self.tokens[self.i]
        if token.kind == "ERROR":
            raise QueryError(str(token.value), pos=token.pos, query=self.query)
        return token

    def peek(self, offset: int = 1) -> Token:
        """Look ahead without raising on a lexer error (an ERROR token matches nothing)."""
        return self.tokens[min(self.i + offset, len(self.tokens) - 1)]

    def advance(self) -> Token:
        token = self.tok
        if token.kind != "EOF":
            self.i += 1
        return token

    def syntax_error(self, expected: str, token: Token | None = None,
                     loki_expecting: str | None = None) -> QueryError:
        # Loki's (goyacc) wording first, "unexpected X[, expecting Y]", so that
        # messages match Loki's; then ours, which names what was expected.
        token = token or self.tok
        unexpected = "$end" if token.kind == "EOF" else token.text
        if loki_expecting:
            unexpected += f", expecting {loki_expecting}"
        return QueryError(
            f"syntax error: unexpected {unexpected}: expected {expected} but found "
            f"{token.describe()}",
            pos=token.pos,
            query=self.query,
        )

    def error(self, message: str, pos: int) -> QueryError:
        return QueryError(message, pos=pos, query=self.query)

    def defer(self, message: str, pos: int) -> None:
        """Record a semantic error to raise once the query proved syntactically valid."""
        self.deferred.append(self.error(message, pos))

    def expect(self, kind: str, expected: str | None = None) -> Token:
        if self.tok.kind != kind:
            raise self.syntax_error(expected or f'"{kind}"')
        return self.advance()

    def expect_ident(self, expected: str = "label name") -> str:
        token = self.tok
        if token.kind != "IDENT":
            raise self.syntax_error(expected, loki_expecting="IDENTIFIER")
        self.advance()
        return token.value

    @contextmanager
    def nested(self, pos: int, extra: int = 0):
        """Count one nesting level; refuse queries deeper than MAX_DEPTH."""
        self.depth += 1 + extra
        try:
            if self.depth > MAX_DEPTH:
                raise self.error(f"query is nested too deeply (limit {MAX_DEPTH} levels)", pos)
            yield
        finally:
            self.depth -= 1 + extra

    # -- root --------------------------------------------------------------

    def parse_root(self) -> ast.Expr:
        try:
            expr = self.parse_expr()
        except RecursionError:
            # MAX_DEPTH keeps well inside the default limit; this only fires
            # when the caller was already deep in its own stack.
            raise self.error("query is nested too deeply for the Python stack", 0) from None
        if self.tok.kind != "EOF":
            raise self.syntax_error("end of query")
        if self.deferred:
            raise self.deferred[0]
        return expr

    # -- selectors ---------------------------------------------------------

    def parse_selector(self) -> ast.Selector:
        """``{name op "value", ...}``; queues the non-empty check (Loki runs it after parsing)."""
        start = self.expect("{", '"{"')
        matchers = []
        if self.tok.kind == "}":
            self.advance()
        else:
            while True:
                matchers.append(self.parse_matcher())
                if self.tok.kind == ",":
                    self.advance()
                elif self.tok.kind == "}":
                    self.advance()
                    break
                else:
                    raise self.syntax_error('"," or "}"')
        selector = ast.Selector(tuple(matchers))
        if self.validate_selectors:
            try:
                validate_selector(selector, pos=start.pos, query=self.query)
            except QueryError as err:
                self.deferred.append(err)
        return selector

    def parse_matcher(self) -> ast.Matcher:
        name = self.expect_ident()
        op = self.tok
        if op.kind not in _MATCH_KINDS:
            raise self.syntax_error('"=", "!=", "=~" or "!~"')
        self.advance()
        value = self.expect("STRING", "a string")
        if op.kind in ("=~", "!~"):
            self.check(matcher_regex_error(value.value), value.pos)
        return ast.Matcher(name, op.kind, value.value)

    def check(self, message: str | None, pos: int) -> None:
        if message is not None:
            raise self.error(message, pos)

    # -- log queries and pipelines ----------------------------------------

    def parse_log_query(self) -> ast.LogQuery:
        selector = self.parse_selector()
        stages, unwrap = self.parse_pipeline(allow_unwrap=False)
        return ast.LogQuery(selector, stages)

    def parse_pipeline(
        self, *, allow_unwrap: bool
    ) -> tuple[tuple[ast.Stage, ...], ast.Unwrap | None]:
        """Stages up to the first token that cannot continue a pipeline; then an optional unwrap."""
        stages: list[ast.Stage] = []
        while True:
            token = self.tok
            if token.kind in _LINE_FILTER_KINDS:
                stages.append(self.parse_line_filter())
            elif token.kind == "|":
                if self.peek().is_kw("unwrap"):
                    if not allow_unwrap:
                        raise self.error(
                            "syntax error: unwrap is only allowed inside a range aggregation",
                            self.peek().pos,
                        )
                    return tuple(stages), self.parse_unwrap()
                self.advance()
                stages.append(self.parse_stage())
            else:
                return tuple(stages), None

    def parse_line_filter(self) -> ast.LineFilter:
        op = self.advance()
        values, ips = [], []
        while True:
            token = self.tok
            if token.kind == "STRING":
                self.advance()
                values.append(token.value)
                ips.append(False)
            elif token.kind == "FUNC" and token.value == "ip":
                self.advance()
                self.expect("(", '"("')
                pattern = self.expect("STRING", "an IP pattern string")
                self.expect(")", '")"')
                if op.kind not in ("|=", "!="):
                    raise self.error("ip: invalid operation", token.pos)
                self.check(ip_pattern_error(pattern.value), pattern.pos)
                values.append(pattern.value)
                ips.append(True)
            else:
                raise self.syntax_error('a string or ip("...")')
            if op.kind in ("|~", "!~") and not ips[-1]:
                self.check(regex_error(values[-1]), token.pos)
            elif op.kind in ("|>", "!>"):
                self.check(pattern_filter_error(values[-1]), token.pos)
            if not self.tok.is_kw("or"):
                return ast.LineFilter(op.kind, tuple(values), tuple(ips))
            self.advance()

    def parse_stage(self) -> ast.Stage:
        """The stage after a ``|``: parser, formatter, drop/keep, decolorize or label filter."""
        token = self.tok
        if token.kind == "KW":
            word = token.value
            handler = getattr(self, f"_stage_{word}", None)
            if handler is not None:
                self.advance()
                return handler(token)
        if token.kind in ("IDENT", "("):
            return ast.LabelFilter(self.parse_label_filter())
        raise self.syntax_error("a parser, a formatter, drop, keep, decolorize or a label filter")

    def _stage_json(self, token: Token) -> ast.Stage:
        return ast.JSONParser(self.parse_extractions())

    def _stage_logfmt(self, token: Token) -> ast.Stage:
        flags = set()
        while self.tok.kind == "FLAG":
            flags.add(self.advance().value)
        return ast.LogfmtParser(
            "--strict" in flags, "--keep-empty" in flags, self.parse_extractions()
        )

    def _stage_regexp(self, token: Token) -> ast.Stage:
        pattern = self.expect("STRING", "a regular expression string")
        self.check(regexp_parser_error(pattern.value), pattern.pos)
        return ast.RegexpParser(pattern.value)

    def _stage_pattern(self, token: Token) -> ast.Stage:
        pattern = self.expect("STRING", "a pattern string")
        self.check(pattern_parser_error(pattern.value), pattern.pos)
        return ast.PatternParser(pattern.value)

    def _stage_unpack(self, token: Token) -> ast.Stage:
        return ast.UnpackParser()

    def _stage_decolorize(self, token: Token) -> ast.Stage:
        return ast.Decolorize()

    def _stage_line_format(self, token: Token) -> ast.Stage:
        return ast.LineFormat(self.expect("STRING", "a template string").value)

    def _stage_label_format(self, token: Token) -> ast.Stage:
        items = []
        seen = set()
        while True:
            name_token = self.tok
            name = self.expect_ident()
            self.expect("=", '"="')
            value = self.tok
            if value.kind == "IDENT":
                items.append(ast.LabelFormatItem(name, value.value, True))
            elif value.kind == "STRING":
                items.append(ast.LabelFormatItem(name, value.value, False))
            else:
                raise self.syntax_error("a label name or a template string")
            self.advance()
            if name == "__error__":
                self.defer("__error__ cannot be formatted", name_token.pos)
            elif name in seen:
                self.defer(
                    f"multiple label name '{name}' not allowed in a single format operation",
                    name_token.pos,
                )
            seen.add(name)
            if self.tok.kind != ",":
                return ast.LabelFormat(tuple(items))
            self.advance()

    def _stage_drop(self, token: Token) -> ast.Stage:
        return ast.Drop(self.parse_named_matchers())

    def _stage_keep(self, token: Token) -> ast.Stage:
        return ast.Keep(self.parse_named_matchers())

    def parse_extractions(self) -> tuple[ast.LabelExtraction, ...]:
        """``a="expr", b`` after json or logfmt; empty when no identifier follows."""
        items = []
        if self.tok.kind != "IDENT":
            return ()
        while True:
            name = self.expect_ident()
            expression = name
            if self.tok.kind == "=":
                self.advance()
                expression = self.expect("STRING", "an extraction expression string").value
            items.append(ast.LabelExtraction(name, expression))
            if self.tok.kind != ",":
                return tuple(items)
            self.advance()

    def parse_named_matchers(self) -> tuple[str | ast.Matcher, ...]:
        items: list[str | ast.Matcher] = []
        while True:
            name = self.expect_ident()
            op = self.tok
            if op.kind in _MATCH_KINDS:
                self.advance()
                value = self.expect("STRING", "a string")
                if op.kind in ("=~", "!~"):
                    self.check(matcher_regex_error(value.value), value.pos)
                items.append(ast.Matcher(name, op.kind, value.value))
            else:
                items.append(name)
            if self.tok.kind != ",":
                return tuple(items)
            self.advance()

    def parse_unwrap(self) -> ast.Unwrap:
        self.expect("|")
        self.advance()  # unwrap
        token = self.tok
        conversion = None
        if token.kind == "FUNC" and token.value in ("bytes", "duration", "duration_seconds"):
            conversion = token.value
            self.advance()
            self.expect("(", '"("')
            label = self.expect_ident()
            self.expect(")", '")"')
        elif token.kind == "IDENT":
            label = self.advance().value
        else:
            raise self.syntax_error(
                "a label name or bytes(...), duration(...), duration_seconds(...)"
            )
        post_filters = []
        while self.tok.kind == "|":
            self.advance()
            if self.tok.kind not in ("IDENT", "("):
                raise self.syntax_error("a label filter (only label filters may follow unwrap)")
            post_filters.append(self.parse_label_filter())
        return ast.Unwrap(label, conversion, tuple(post_filters))

    # -- label filters -----------------------------------------------------
    #
    # Loki's yacc grammar gives "or" and "and" precedences (and binds
    # tighter, both left-associative) but none to "," or to two filters
    # written side by side; yacc then shifts, so a comma or a juxtaposition
    # takes the whole rest of the enclosing level as its right operand.

    def parse_label_filter(self) -> ast.LabelFilterExpr:
        return self._label_filter_or()

    def _label_filter_or(self) -> ast.LabelFilterExpr:
        left = self._label_filter_and()
        chain = 0
        while self.tok.is_kw("or"):
            token = self.advance()
            chain += 1
            with self.nested(token.pos, chain):
                right = self._label_filter_and()
            left = ast.OrLabelFilter(left, right)
        return left

    def _label_filter_and(self) -> ast.LabelFilterExpr:
        left = self._label_filter_unit()
        chain = 0
        while self.tok.is_kw("and"):
            token = self.advance()
            chain += 1
            with self.nested(token.pos, chain):
                right = self._label_filter_unit()
            left = ast.AndLabelFilter(left, right)
        return left

    def _label_filter_unit(self) -> ast.LabelFilterExpr:
        first = self._label_filter_primary()
        token = self.tok
        if token.kind == ",":
            self.advance()
        elif token.kind not in ("IDENT", "("):
            return first
        with self.nested(token.pos):
            rest = self._label_filter_or()
        return ast.AndLabelFilter(first, rest)

    def _label_filter_primary(self) -> ast.LabelFilterExpr:
        token = self.tok
        if token.kind == "(":
            self.advance()
            with self.nested(token.pos):
                inner = self._label_filter_or()
            self.expect(")", '")"')
            return inner
        name = self.expect_ident("a label filter")
        op = self.tok
        if op.kind not in _COMPARISON_KINDS and op.kind not in _MATCH_KINDS:
            raise self.syntax_error(
                'a comparison operator ("=", "!=", "=~", "!~", "==", ">", ">=", "<", "<=")'
            )
        self.advance()
        value = self.tok
        if value.kind == "STRING" and op.kind in _MATCH_KINDS:
            self.advance()
            if op.kind in ("=~", "!~"):
                self.check(matcher_regex_error(value.value), value.pos)
            return ast.StringLabelFilter(name, op.kind, value.value)
        if op.kind in ("=~", "!~"):
            raise self.syntax_error("a string")
        if value.kind == "FUNC" and value.value == "ip" and op.kind in ("=", "!="):
            self.advance()
            self.expect("(", '"("')
            pattern = self.expect("STRING", "an IP pattern string")
            self.expect(")", '")"')
            self.check(ip_pattern_error(pattern.value), pattern.pos)
            return ast.IPLabelFilter(name, op.kind, pattern.value)
        comparison = _COMPARISON_KINDS[op.kind]
        if value.kind == "DURATION":
            self.advance()
            return ast.DurationLabelFilter(name, comparison, value.value)
        if value.kind == "BYTES":
            self.advance()
            return ast.BytesLabelFilter(name, comparison, value.value)
        if value.kind == "NUMBER" or (value.kind in ("+", "-") and self.peek().kind == "NUMBER"):
            return ast.NumericLabelFilter(name, comparison, self.parse_signed_number())
        expected = (
            "a string, a number, a duration, a byte size or ip(...)"
            if op.kind in ("=", "!=")
            else "a number, a duration or a byte size"
        )
        raise self.syntax_error(expected)

    def parse_signed_number(self) -> float:
        """Loki's literalExpr: NUMBER, ``+NUMBER`` or ``-NUMBER``, as a finite float."""
        sign = 1.0
        if self.tok.kind in ("+", "-"):
            sign = -1.0 if self.advance().kind == "-" else 1.0
        number = self.expect("NUMBER", "a number")
        if number.value is None:
            raise self.error(number_error(number.text, "literal"), number.pos)
        return sign * number.value
