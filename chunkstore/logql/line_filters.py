"""LogQL line filters: ``|=``, ``!=``, ``|~``, ``!~``, ``|>``, ``!>`` and ``|= ip(...)``.

Each filter is a pipeline stage (``process(ts, line, lb) -> (line, keep)``) and
also exposes ``match(line) -> bool`` so a scan loop can run it without a
labels builder.  Lines are bytes and may hold invalid UTF-8.

Semantics follow Loki's pkg/logql/log/filter.go and the syntax package:

* ``|= "a" or "b"`` keeps a line containing any needle.  For the negated
  operators Loki applies De Morgan: ``!= "a" or "b"`` means ``!= "a" != "b"``,
  i.e. the line is dropped if it contains *any* needle.
* An empty needle or regex is Loki's TrueFilter: ``|= ""`` keeps everything,
  ``!= ""`` drops everything.  In a positive or-chain Loki drops TrueFilter legs
  (``|= "" or "x"`` behaves as ``|= "x"``); kept here on purpose.
* Regexes are Go RE2 syntax, unanchored, run by RE2.  Go reads an invalid byte
  as U+FFFD, RE2 will not match it at all, so a line with invalid UTF-8 that
  RE2 rejects is retried on its repaired form (:func:`go_utf8`).  Loki rewrites
  a whole-pattern ``.+`` into "line is non-empty" (so it matches ``"\\n"``);
  that is reproduced.
* ``|>`` patterns are literals and ``<_>`` placeholders; see :class:`PatternFilter`.
* ``ip("...")`` accepts a single address, a CIDR prefix or an ``a-b`` range and
  keeps lines where the IP scanner of Loki's ip.go finds a matching address.

:func:`literal_prefilters` extracts literals a line *must* contain to pass a
filter, for the planner's cheap pre-check; its docstring states when that is
sound.
"""

from __future__ import annotations

import ipaddress
import re  # fixed internal patterns only; user patterns always go to RE2
import warnings
from functools import lru_cache
from typing import Union

import re2

from chunkstore.errors import QueryError
from chunkstore.logql.labels_builder import go_utf8
from chunkstore.logql.units import go_quote

try:  # Python >= 3.11 moved the regex parser; it is only used to *analyse* patterns.
    import re._constants as _sre_c
    import re._parser as _sre_parse
except ImportError:  # pragma: no cover - Python 3.10
    import sre_constants as _sre_c  # type: ignore[no-redef]
    import sre_parse as _sre_parse  # type: ignore[no-redef]

__all__ = [
    "LineFilter",
    "Contains",
    "Regex",
    "PatternFilter",
    "IPFilter",
    "literal_prefilters",
    "compile_re2",
    "parse_pattern",
    "IPMatcher",
]


# --------------------------------------------------------------------------
# RE2 plumbing shared by the regex filter, the regexp parser and label filters
# --------------------------------------------------------------------------

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # bad user patterns are reported as QueryError, not on stderr
# Filters only need "is there a match": skipping submatch bookkeeping is cheaper.
_RE2_MATCH_ONLY = re2.Options()
_RE2_MATCH_ONLY.log_errors = False
_RE2_MATCH_ONLY.never_capture = True

_NULL_SPAN = (-1, -1)
try:
    _UNANCHORED = re2._re2.RE2.Anchor.UNANCHORED
    _ANCHOR_BOTH = re2._re2.RE2.Anchor.ANCHOR_BOTH
    _DIRECT = True
except AttributeError:  # pragma: no cover - a binding without the C++ object
    _UNANCHORED, _ANCHOR_BOTH, _DIRECT = "unanchored", "both", False


def compile_re2(pattern: str, context: str, *, captures: bool = True):
    """Compile a user pattern with RE2; raise QueryError naming ``context`` on failure.

    ``captures=False`` compiles for match/no-match only (group spans are not
    reported); the pattern is still validated with its groups.
    """
    try:
        if not captures:
            re2.compile(pattern, _RE2_OPTIONS)  # same errors as with captures
            return re2.compile(pattern, _RE2_MATCH_ONLY)
        return re2.compile(pattern, _RE2_OPTIONS)
    except (re2.error, UnicodeEncodeError, TypeError) as exc:
        raise QueryError(f"{context}: invalid regexp {go_quote(pattern)}: {exc}") from None


def re2_spans(rx, data: bytes, anchor=_UNANCHORED):
    """Group spans ``[(start, end), ...]`` of the first match in ``data``, or None.

    Calls the binding's C++ ``Match`` directly: the public ``search`` goes
    through a generator and costs twice as much per line.
    """
    if _DIRECT:
        spans = rx._regexp.Match(anchor, data, 0, len(data))
        return None if spans[0] == _NULL_SPAN else spans
    m = rx.search(data) if anchor == _UNANCHORED else rx.fullmatch(data)  # pragma: no cover
    return None if m is None else [m.span(i) for i in range(rx.groups + 1)]  # pragma: no cover


def re2_go_spans(rx, data: bytes, anchor=_UNANCHORED):
    """Like :func:`re2_spans` but with Go's treatment of invalid UTF-8.

    Returns ``(spans, subject)``; spans index into ``subject``, which is
    ``data`` or its U+FFFD-repaired copy.  RE2 cannot match through an invalid
    byte, so a match on the raw bytes is also a Go match; only a miss on
    non-ASCII input needs the (allocating) retry.
    """
    spans = re2_spans(rx, data, anchor)
    if spans is not None or data.isascii():
        return spans, data
    fixed = go_utf8(data)
    if fixed is data:
        return None, data
    return re2_spans(rx, fixed, anchor), fixed


# --------------------------------------------------------------------------
# Base class
# --------------------------------------------------------------------------

class LineFilter:
    """A stage that keeps or drops a line by its content alone."""

    __slots__ = ()
    negate: bool = False

    def match(self, line: bytes) -> bool:  # pragma: no cover - abstract
        """Whether the line passes the filter."""
        raise NotImplementedError

    def process(self, ts: int, line: bytes, lb) -> tuple[bytes, bool]:
        """Stage protocol: the line unchanged and whether it is kept."""
        return line, self.match(line)


def _as_bytes(value: Union[str, bytes]) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


# --------------------------------------------------------------------------
# |= and !=
# --------------------------------------------------------------------------

class Contains(LineFilter):
    """``|= "a" or "b"`` (``negate=False``) or ``!= "a" or "b"`` (``negate=True``).

    ``needles`` are bytes (str is UTF-8 encoded).  Positive: keep a line that
    contains any non-empty needle; all-empty keeps everything.  Negated: drop
    a line that contains any needle; any empty needle drops everything.
    Matching is a plain case-sensitive byte search.
    """

    __slots__ = ("needles", "negate", "_effective", "_const")

    def __init__(self, needles, negate: bool = False):
        if isinstance(needles, (str, bytes)):
            needles = (needles,)
        self.needles = tuple(_as_bytes(n) for n in needles)
        if not self.needles:
            raise QueryError("line filter: at least one string is required")
        self.negate = bool(negate)
        nonempty = tuple(n for n in self.needles if n)
        self._effective = nonempty
        if not negate:
            self._const = True if not nonempty else None
        else:
            self._const = False if len(nonempty) != len(self.needles) else None

    def match(self, line: bytes) -> bool:
        if self._const is not None:
            return self._const
        if self.negate:
            for n in self._effective:
                if n in line:
                    return False
            return True
        for n in self._effective:
            if n in line:
                return True
        return False

    def process(self, ts, line, lb):
        if self._const is not None:
            return line, self._const
        eff = self._effective
        if len(eff) == 1:
            return line, (eff[0] in line) != self.negate
        return line, self.match(line)

    def __repr__(self) -> str:
        return f"Contains({self.needles!r}, negate={self.negate})"


# --------------------------------------------------------------------------
# |~ and !~
# --------------------------------------------------------------------------

_ANY_REPEATS = (_sre_c.MAX_REPEAT, _sre_c.MIN_REPEAT)


def _whole_pattern_shape(pattern: str) -> str | None:
    """'true' for ``""``/``.*``, 'exists' for ``.+`` (optionally in groups), else None.

    These are the only whole-pattern rewrites of Loki's regex simplifier whose
    answer can differ from running the regex (``.+`` becomes "non-empty line").
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            tree = _sre_parse.parse(pattern)
    except Exception:
        return None
    if tree.state.flags & _sre_c.SRE_FLAG_DOTALL:
        return None
    data = list(tree.data)
    while len(data) == 1 and data[0][0] is _sre_c.SUBPATTERN:
        _, add, dele, sub = data[0][1]
        if (add | dele) & ~(_sre_c.SRE_FLAG_UNICODE):
            return None
        data = list(sub.data)
    if not data:
        return "true"
    if len(data) == 1 and data[0][0] in _ANY_REPEATS:
        lo, hi, sub = data[0][1]
        if hi == _sre_c.MAXREPEAT and len(sub.data) == 1 and sub.data[0][0] is _sre_c.ANY:
            if lo == 0:
                return "true"
            if lo == 1:
                return "exists"
    return None


class Regex(LineFilter):
    """``|~ "re"`` (``negate=False``) or ``!~ "re"`` (``negate=True``).

    ``pattern`` is Go RE2 syntax (``(?i)`` for case-insensitive), searched
    unanchored; ``.`` does not match newline unless ``(?s)``.  Raises
    QueryError if RE2 rejects the pattern.
    """

    __slots__ = ("pattern", "negate", "_rx", "_shape")

    def __init__(self, pattern: str, negate: bool = False):
        self.pattern = pattern
        self.negate = bool(negate)
        self._rx = compile_re2(pattern, "line filter", captures=False)
        self._shape = _whole_pattern_shape(pattern)

    def match(self, line: bytes) -> bool:
        shape = self._shape
        if shape == "true":
            return not self.negate
        if shape == "exists":
            return (len(line) > 0) != self.negate
        spans, _ = re2_go_spans(self._rx, line)
        return (spans is not None) != self.negate

    def process(self, ts, line, lb):
        return line, self.match(line)

    def __repr__(self) -> str:
        return f"Regex({self.pattern!r}, negate={self.negate})"


# --------------------------------------------------------------------------
# Pattern language shared by |> and | pattern
# --------------------------------------------------------------------------

_CAPTURE = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*)>")


def parse_pattern(text: str) -> list[Union[bytes, str]]:
    """Split a Loki pattern into nodes: ``bytes`` literals and ``str`` capture names.

    ``<name>`` (name ``[A-Za-z_][A-Za-z0-9_]*``) is a capture, ``<_>`` the
    unnamed one; any other character, including a ``<`` that does not start a
    capture, is literal text.  Adjacent literal characters form one node.
    """
    nodes: list[Union[bytes, str]] = []
    pos = 0
    for m in _CAPTURE.finditer(text):
        if m.start() > pos:
            nodes.append(text[pos:m.start()].encode("utf-8", "replace"))
        nodes.append(m.group(1))
        pos = m.end()
    if pos < len(text):
        nodes.append(text[pos:].encode("utf-8", "replace"))
    return nodes


def check_no_consecutive_captures(nodes: list) -> None:
    """Raise QueryError for ``<a><b>`` (Loki cannot split two adjacent captures)."""
    for a, b in zip(nodes, nodes[1:]):
        if isinstance(a, str) and isinstance(b, str):
            raise QueryError(f"found consecutive capture '<{a}><{b}>': invalid expression")


class PatternFilter(LineFilter):
    """``|> "pattern"`` (``negate=False``) or ``!> "pattern"`` (``negate=True``).

    The pattern holds literals and ``<_>`` placeholders (named captures are
    rejected).  Loki's test, reproduced exactly: every literal must be found
    in order, each after the previous; a placeholder must not match empty
    text (a literal found immediately where a placeholder should be fails);
    if the pattern ends with a literal the line must end there, if it ends
    with a placeholder something must remain.  The first literal is *not*
    anchored to the line start (Loki searches for it).  The empty pattern
    matches only the empty line.
    """

    __slots__ = ("pattern", "negate", "_nodes", "_ends_with_capture")

    def __init__(self, pattern: str, negate: bool = False):
        self.pattern = pattern
        self.negate = bool(negate)
        nodes = parse_pattern(pattern)
        check_no_consecutive_captures(nodes)
        for n in nodes:
            if isinstance(n, str) and n != "_":
                raise QueryError("named captures are not allowed")
        self._nodes = nodes
        self._ends_with_capture = bool(nodes) and isinstance(nodes[-1], str)

    def _test(self, line: bytes) -> bool:
        nodes = self._nodes
        if not line or not nodes:
            return not line and not nodes
        off = 0
        for i, node in enumerate(nodes):
            if isinstance(node, str):
                continue
            j = line.find(node, off)
            if j < 0:
                return False
            if i != 0 and j == off:
                return False
            off = j + len(node)
        return (off != len(line)) == self._ends_with_capture

    def match(self, line: bytes) -> bool:
        return self._test(line) != self.negate

    def process(self, ts, line, lb):
        return line, self._test(line) != self.negate

    def required_literals(self) -> list[bytes]:
        """Literal nodes; each must occur in a line the (positive) filter keeps."""
        return [n for n in self._nodes if isinstance(n, bytes) and n]

    def __repr__(self) -> str:
        return f"PatternFilter({self.pattern!r}, negate={self.negate})"


# --------------------------------------------------------------------------
# ip("...")
# --------------------------------------------------------------------------

_Addr = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


@lru_cache(maxsize=4096)
def _parse_go_addr(text: str) -> _Addr | None:
    """Go's ``netip.ParseAddr``: strict dotted quad (no leading zeros) or IPv6 with optional zone."""
    if ":" not in text and "." not in text:
        return None
    if text.endswith("%"):
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _strip_zone(addr: _Addr) -> _Addr:
    if isinstance(addr, ipaddress.IPv6Address) and addr.scope_id is not None:
        return ipaddress.IPv6Address(str(addr).split("%", 1)[0])
    return addr


class IPMatcher:
    """An ``ip("...")`` argument: a single address, a CIDR prefix or an ``a-b`` range.

    Parsed like Go's netip.ParseAddr, then netip.ParsePrefix (host bits may be
    set, ``192.168.4.5/16`` is fine), then netipx.ParseIPRange.  An IPv4
    address never matches an IPv6 pattern or the reverse (``::ffff:1.2.3.4``
    is IPv6).  Raises QueryError (``ip: invalid pattern: "..."``).
    """

    __slots__ = ("pattern", "_kind", "_a", "_b")

    def __init__(self, pattern: str):
        self.pattern = pattern
        addr = _parse_go_addr(pattern)
        if addr is not None:
            self._kind, self._a, self._b = "addr", addr, None
            return
        net = self._parse_prefix(pattern)
        if net is not None:
            self._kind, self._a, self._b = "prefix", net, None
            return
        rng = self._parse_range(pattern)
        if rng is not None:
            self._kind, (self._a, self._b) = "range", rng
            return
        raise QueryError(f"ip: invalid pattern: {go_quote(pattern)}")

    @staticmethod
    def _parse_prefix(text: str):
        addr_text, sep, bits = text.rpartition("/")
        if not sep or "%" in addr_text:
            return None
        if not bits.isascii() or not bits.isdigit() or (len(bits) > 1 and bits[0] == "0"):
            return None
        addr = _parse_go_addr(addr_text)
        if addr is None or int(bits) > addr.max_prefixlen:
            return None
        return ipaddress.ip_network(f"{addr}/{bits}", strict=False)

    @staticmethod
    def _parse_range(text: str):
        lo_text, sep, hi_text = text.partition("-")
        if not sep:
            return None
        lo, hi = _parse_go_addr(lo_text), _parse_go_addr(hi_text)
        if lo is None or hi is None or lo.version != hi.version:
            return None
        lo, hi = _strip_zone(lo), _strip_zone(hi)
        if hi < lo:
            return None
        return lo, hi

    def contains(self, addr: _Addr) -> bool:
        """Whether ``addr`` is the address, inside the prefix or inside the range."""
        kind = self._kind
        if kind == "addr":
            return addr == self._a
        if addr.version != self._a.version:
            return False
        if kind == "prefix":
            return addr in self._a
        return self._a <= addr <= self._b

    # Loki's scanner: at each position an IPv4 hint (digit, then a dot within
    # the next three bytes) or else an IPv6 hint (``::h``, or 1-4 hex digits
    # then ``:``) starts a candidate: the longest run of the family's
    # charset.  A candidate that does not parse or match is skipped whole.
    _HINT = re.compile(
        rb"(?s)(?=[0-9].{3})(?=[0-9].{0,2}\.)|(?=.{5})(?:(?=::[0-9a-fA-F])|(?=[0-9a-fA-F]{1,4}:))"
    )
    _V4_HINT = re.compile(rb"(?s)[0-9].{0,2}\.")
    _V4_RUN = re.compile(rb"[0-9.]*")
    _V6_RUN = re.compile(rb"[0-9a-fA-F:.]*")

    def search(self, data: bytes) -> bool:
        """Whether Loki's IP scanner finds an address in ``data`` that this pattern matches."""
        n = len(data)
        if n == 0 or (b"." not in data and b":" not in data):
            return False
        hint, v4hint = self._HINT.search, self._V4_HINT.match
        pos = 0
        while True:
            m = hint(data, pos)
            if m is None:
                return False
            i = m.start()
            if i + 3 < n and v4hint(data, i, i + 4):
                end = self._V4_RUN.match(data, i).end()
            else:
                end = self._V6_RUN.match(data, i).end()
            addr = _parse_go_addr(data[i:end].decode("ascii"))
            if addr is not None and self.contains(addr):
                return True
            pos = end + 1

    def __repr__(self) -> str:
        return f"IPMatcher({self.pattern!r})"


class IPFilter(LineFilter):
    """``|= ip("spec")`` (``negate=False``) or ``!= ip("spec")`` (``negate=True``).

    Keeps lines in which Loki's scanner finds an IPv4/IPv6 address matching
    ``spec`` (see :class:`IPMatcher`).  An empty line never matches.
    """

    __slots__ = ("spec", "negate", "_matcher")

    def __init__(self, spec: str, negate: bool = False):
        self.spec = spec
        self.negate = bool(negate)
        self._matcher = IPMatcher(spec)

    def match(self, line: bytes) -> bool:
        return self._matcher.search(line) != self.negate

    def process(self, ts, line, lb):
        return line, self._matcher.search(line) != self.negate

    def __repr__(self) -> str:
        return f"IPFilter({self.spec!r}, negate={self.negate})"


# --------------------------------------------------------------------------
# Literal prefilters for the planner
# --------------------------------------------------------------------------

Prefilter = tuple[tuple[bytes, ...], bool]


class _Bail(Exception):
    """The pattern uses something the analysis does not model."""


# Characters whose RE2 case-fold orbit leaves ASCII (k/K: U+212A KELVIN SIGN,
# s/S: U+017F LONG S).  A case-insensitive needle containing them could miss
# a line RE2 matches when checked with an ASCII-lowering byte search.
_CI_UNSAFE = frozenset("kKsS")
# RE2 syntax Python's parser reads differently (POSIX classes, \Q..\E, \C,
# \p{..}, \x{..}, octal/backreference digits) -> no analysis at all.
_RE2_ONLY = re.compile(r"\[:|\\[QECpPzx0-9]")


def _ci_needle(text: str) -> bytes | None:
    """Longest run of ``text`` that an ASCII-lowering search can check soundly, lowercased."""
    best = ""
    run = []
    for ch in text:
        if ch.isascii() and ch not in _CI_UNSAFE:
            run.append(ch)
        else:
            if len(run) > len(best):
                best = "".join(run)
            run = []
    if len(run) > len(best):
        best = "".join(run)
    return best.lower().encode("ascii") if best else None


def _analyse(items, ci: bool) -> list[Prefilter]:
    """AND-list of OR-groups of literals every match of ``items`` must contain."""
    groups: list[Prefilter] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            text = "".join(run)
            if ci:
                needle = _ci_needle(text)
                if needle:
                    groups.append(((needle,), True))
            else:
                groups.append(((text.encode("utf-8"),), False))
            run.clear()

    for op, av in items:
        if op is _sre_c.LITERAL:
            run.append(chr(av))
            continue
        flush()
        if op is _sre_c.SUBPATTERN:
            _group, add, dele, sub = av
            if (add | dele) & ~(_sre_c.SRE_FLAG_IGNORECASE | _sre_c.SRE_FLAG_DOTALL
                                | _sre_c.SRE_FLAG_MULTILINE | _sre_c.SRE_FLAG_UNICODE):
                raise _Bail
            sub_ci = (ci or bool(add & _sre_c.SRE_FLAG_IGNORECASE)) and not (dele & _sre_c.SRE_FLAG_IGNORECASE)
            groups.extend(_analyse(sub.data, sub_ci))
        elif op in _ANY_REPEATS:
            lo, _hi, sub = av
            if lo >= 1:
                groups.extend(_analyse(sub.data, ci))
        elif op is _sre_c.BRANCH:
            alternatives = [_analyse(b.data, ci) for b in av[1]]
            if alternatives and all(alternatives):
                picks = [max(alt, key=lambda g: min(len(n) for n in g[0])) for alt in alternatives]
                any_ci = any(p[1] for p in picks)
                needles: list[bytes] = []
                for p in picks:
                    for n in p[0]:
                        n = n.lower() if any_ci else n
                        if n not in needles:
                            needles.append(n)
                groups.append((tuple(needles), any_ci))
        elif op in (_sre_c.ANY, _sre_c.IN, _sre_c.NOT_LITERAL, _sre_c.AT, _sre_c.CATEGORY):
            pass
        else:
            raise _Bail  # backreferences, lookaround, atomic groups: not RE2
    flush()
    return groups


def _regex_prefilters(pattern: str) -> list[Prefilter] | None:
    if _RE2_ONLY.search(pattern):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            tree = _sre_parse.parse(pattern)
        flags = tree.state.flags
        if flags & ~(_sre_c.SRE_FLAG_IGNORECASE | _sre_c.SRE_FLAG_DOTALL
                     | _sre_c.SRE_FLAG_MULTILINE | _sre_c.SRE_FLAG_UNICODE):
            return None
        groups = _analyse(tree.data, bool(flags & _sre_c.SRE_FLAG_IGNORECASE))
    except (_Bail, Exception):
        return None
    unique: list[Prefilter] = []
    for g in groups:
        if g[0] and all(g[0]) and g not in unique:
            unique.append(g)
    return unique or None


def literal_prefilters(flt) -> list[Prefilter] | None:
    """Literals a line must contain to pass ``flt``, or None when nothing is provable.

    The result is an AND-list of OR-groups ``(needles, case_insensitive)``:
    a line can pass ``flt`` only if, for every group, some needle occurs in
    it — ``needle in line`` for a case-sensitive group, ``needle in
    line.lower()`` (ASCII lowering of the bytes) for a case-insensitive one,
    whose needles are returned lowercase ASCII.

    Soundness (a prefilter only rejects lines the filter rejects too):

    * :class:`Contains`: positive only; the needles themselves (the
      TrueFilter ``""`` legs removed; all-empty gives None).
    * :class:`Regex`: positive only, no ``.*``/``.+`` rewrite.  The pattern is
      analysed with Python's regex *parser* (RE2 still matches); anything
      Python reads differently from RE2 is refused up front (POSIX classes,
      ``\\Q``, ``\\C``, ``\\p``, ``\\x{}``, digit escapes, mid-pattern flags,
      warnings about nested sets) and anything outside the modelled subset
      (lookaround, backreferences, verbose mode) gives None.  A literal run is
      required when it sits on every path: in the top-level concatenation,
      inside groups, or in a repetition with minimum >= 1.  An alternation
      contributes one group holding one group per branch, only if *every*
      branch has one.  Case-insensitive runs keep only ASCII characters whose
      RE2 fold orbit is ASCII (not k/s, which fold with U+212A/U+017F), taking
      the longest such sub-run — a substring of a required string is required.
      A line with invalid UTF-8 is matched by the filter only through valid
      sequences (or U+FFFD), so required literals still appear verbatim.
    * :class:`PatternFilter`: positive only; each literal node is required
      (Loki's test finds every literal).
    * :class:`IPFilter` and all negated filters: None.
    """
    if isinstance(flt, Contains):
        if flt.negate or not flt._effective:
            return None
        return [(flt._effective, False)]
    if isinstance(flt, Regex):
        if flt.negate or flt._shape is not None:
            return None
        return _regex_prefilters(flt.pattern)
    if isinstance(flt, PatternFilter):
        if flt.negate:
            return None
        lits = flt.required_literals()
        return [((lit,), False) for lit in lits] or None
    return None
